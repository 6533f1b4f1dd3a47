"""One table of bad inputs: each row is one case and ends in a clear error (its type, and a
message naming the file or the params key) or in a recovery where nothing is lost.

Three tables, each one parametrized test:

* ``ERRORS``: the call raises; the message names the file / params key (and the CLI, where
  there is one, exits non-zero with the same message). Among them: an output folder that is
  or resolves to an input folder, two inputs for one output name, an existing output without
  ``--overwrite`` (inputs and other files are never written over); a second writer on a
  locked folder (translation and training); NaN / infinity in checkpoints, params and
  generated images; params errors at load under the key the user wrote (derived values too).
* ``SKIPPED_FILES``: ``translate_dir`` records the bad label map in ``result.failed`` with a
  message naming it, writes the good one beside it, and ``python -m lib.translation.translate``
  exits 1.
* ``RECOVERIES``: the bad state is cleaned up or worked around without an error and without
  losing a good file: a checkpoint of other data, other output settings, more steps than
  requested or NaN weights is not resumed (one line says why); snapshots an earlier run left
  are not read; a killed writer leaves no stale lock; a killed notebook runner takes its
  kernel with it.

Related, more thorough tests: tests/test_config.py, tests/test_translate_cli.py,
tests/test_train_loop.py (resume after SIGKILL, changed settings), tests/test_io.py, tests/test_fid.py.
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_MODELS, tiny_train
from PIL import Image

from lib.checkpoint import save_checkpoint
from lib.config import ConfigError, to_dict
from lib.paths import ROOT

GEN_NAME = "asapnet"
GEN_CFG = TINY_MODELS[GEN_NAME][0]  # label_nc 5, height 64 (tile 4), instance edges on
LABEL_NC = GEN_CFG["label_nc"]


# ----------------------------------------------------------------------------- helpers


def _params(tmp_path: Path, edit: Callable[[dict], None]) -> Path:
    """A copy of the project's params.yaml with ``edit`` applied, written to ``tmp_path``."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    edit(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _generator_checkpoint(tmp_path: Path, model_name: str = GEN_NAME) -> Path:
    """A tiny ASAPNet generator checkpoint (``model_name`` recorded as its registry name)."""
    from lib.models import build

    torch.manual_seed(0)
    model = build(GEN_NAME, GEN_CFG)
    return save_checkpoint(tmp_path / "g.pt", model=model_name, config=to_dict(model.cfg),
                           state_dict=model.state_dict(), step=0)


def _label(path: Path, ids: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ids.astype(np.uint8)).save(path)  # (H, W) uint8: mode L
    return path


def _good_labels(tmp_path: Path) -> Path:
    """A label folder holding one good 64x64 map, ``good.png``."""
    rng = np.random.default_rng(0)
    _label(tmp_path / "labels" / "good.png", rng.integers(0, LABEL_NC, (64, 64)))
    return tmp_path / "labels"


def _bomb_png(path: Path, side: int = 14000) -> Path:
    """A valid 1-bit gray PNG of ``side`` x ``side`` zeros: its header claims ``side**2`` pixels
    (over Pillow's decompression-bomb limit) while the file stays a few tens of kB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def _translate_cli(ckpt: Path, labels: Path, out: Path, *extra: str) -> int:
    """``python -m lib.translation.translate`` in this process (its ``main``); the exit code."""
    from lib.translation.translate import main

    return main(["--checkpoint", str(ckpt), "--labels", str(labels), "--out", str(out), "--no-progress", *extra])


class Env(NamedTuple):
    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture
    request: pytest.FixtureRequest


class Expect(NamedTuple):
    """What an ``ERRORS`` row expects: ``call()`` raises ``error`` whose message contains every
    fragment of ``names`` and none of ``absent``; ``after()`` then checks what was left behind."""

    call: Callable[[], object]
    error: type[BaseException]
    names: list[str]
    absent: tuple[str, ...] = ()
    after: Callable[[], None] | None = None


def _row(func: Callable, marks=(), table: list | None = None):
    table.append(pytest.param(func, id=func.__name__.lstrip("_").replace("_", "-"), marks=marks))
    return func


ERRORS: list = []
SKIPPED_FILES: list = []
RECOVERIES: list = []


def error_row(func=None, *, marks=()):
    return (lambda f: _row(f, marks, ERRORS)) if func is None else _row(func, marks, ERRORS)


def skipped_file_row(func):
    return _row(func, (), SKIPPED_FILES)


def recovery_row(func=None, *, marks=()):
    return (lambda f: _row(f, marks, RECOVERIES)) if func is None else _row(func, marks, RECOVERIES)


# ----------------------------------------------------------------------------- rows: clear errors


@error_row
def _negative_max_images(env: Env) -> Expect:
    from lib.stages import load_stage

    path = _params(env.tmp, lambda p: p["dncnn_official"].update(max_images=-3))
    return Expect(lambda: load_stage("dncnn_official", path), ConfigError, ["dncnn_official.max_images", "-3"])


@error_row
def _negative_crop(env: Env) -> Expect:
    from lib.stages import load_stage

    path = _params(env.tmp, lambda p: p["dncnn_official"].update(crop=-64))
    return Expect(lambda: load_stage("dncnn_official", path), ConfigError, ["dncnn_official.crop", "-64"])


@error_row
def _misspelled_section(env: Env) -> Expect:
    from lib.stages import load_stage

    path = _params(env.tmp, lambda p: p.update(trian_denoiser=p.pop("train_denoiser")))
    # any stage loads the whole file: the typo is caught even by a stage that does not read it
    return Expect(lambda: load_stage("dncnn_official", path), ConfigError, [str(path), "trian_denoiser"])


@error_row
def _unknown_common_key(env: Env) -> Expect:
    from lib.stages import load_stage

    path = _params(env.tmp, lambda p: p["train_translation"]["common"].update(batch_sise=4))
    return Expect(lambda: load_stage("train_translation", path), ConfigError,
                  ["train_translation.common.batch_sise"], absent=("models.asapnet",))  # blamed on common


@error_row
def _out_is_a_file(env: Env) -> Expect:
    from lib.models import load_model
    from lib.translation.translate import translate_dir

    ckpt, labels = _generator_checkpoint(env.tmp), _good_labels(env.tmp)
    out = env.tmp / "out.png"
    out.write_bytes(b"not a folder")
    env.capsys.readouterr()
    assert _translate_cli(ckpt, labels, out) == 2
    assert f"error: {out}: " in env.capsys.readouterr().err

    def after_check() -> None:
        assert out.read_bytes() == b"not a folder"

    return Expect(lambda: translate_dir(load_model(ckpt), labels, out, progress=False), ValueError,
                  [str(out), "not a folder"], after=after_check)


@error_row
def _out_under_read_only_folder(env: Env) -> Expect:
    if os.geteuid() == 0:
        pytest.skip("runs as root: permission bits do not stop root from writing")
    from lib.models import load_model
    from lib.translation.translate import translate_dir

    ckpt, labels = _generator_checkpoint(env.tmp), _good_labels(env.tmp)
    locked = env.tmp / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    env.request.addfinalizer(lambda: locked.chmod(0o700))  # tmp_path can be cleaned up
    out = locked / "out"
    env.capsys.readouterr()
    assert _translate_cli(ckpt, labels, out) == 2
    assert str(out) in env.capsys.readouterr().err

    def after_check() -> None:
        assert not out.exists()

    return Expect(lambda: translate_dir(load_model(ckpt), labels, out, progress=False), ValueError,
                  [str(out), "cannot create the output folder"], after=after_check)


@error_row
def _empty_label_folder(env: Env) -> Expect:
    from lib.models import load_model
    from lib.translation.translate import translate_dir

    ckpt = _generator_checkpoint(env.tmp)
    labels = env.tmp / "labels"
    labels.mkdir()
    out = env.tmp / "out"
    env.capsys.readouterr()
    assert _translate_cli(ckpt, labels, out) != 0
    cap = env.capsys.readouterr()
    assert str(labels) in cap.err and "'*.png'" in cap.err and "images/s" not in cap.out + cap.err
    return Expect(lambda: translate_dir(load_model(ckpt), labels, out, progress=False), FileNotFoundError,
                  [str(labels), "'*.png'"])


@error_row
def _truncated_fid_weights(env: Env) -> Expect:
    from lib.data.fetch import CHECKSUM_DIR, read_checksums
    from lib.metrics.fid import HUB_WEIGHTS_NAME, ensure_inception_weights

    env.monkeypatch.setenv("TORCH_HOME", str(env.tmp / "torch"))
    hub = env.tmp / "torch" / "hub" / "checkpoints" / HUB_WEIGHTS_NAME
    hub.parent.mkdir(parents=True)
    hub.symlink_to(env.tmp / "moved_away.pth")  # a dangling hub-cache link from an earlier run
    truncated = env.tmp / "pt_inception-2015-12-05-reconstructed-fc-zeroed.pth"
    truncated.write_bytes(b"PK\x03\x04" + b"\x00" * 1000)
    expected = list(read_checksums(CHECKSUM_DIR / "fid_inception.sha256").values())

    def after_check() -> None:  # the dangling link is gone and no link to the bad file was made
        assert not hub.is_symlink() and not hub.exists()
        assert [p.name for p in hub.parent.iterdir()] == []

    return Expect(lambda: ensure_inception_weights(truncated), ValueError, [str(truncated), *expected],
                  after=after_check)


@error_row
def _truncated_official_dncnn(env: Env) -> Expect:
    from lib.data.fetch import CHECKSUM_DIR, read_checksums
    from lib.models.dncnn import load_official

    sums = read_checksums(CHECKSUM_DIR / "dncnn_official.sha256")
    digest = next(d for rel, d in sums.items() if rel.endswith("/GD_Gray_Blind.mat"))
    path = env.tmp / "GD_Gray_Blind.mat"
    path.write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 200)  # the start of a .mat, cut short
    return Expect(lambda: load_official(path), ValueError, [str(path), digest])


@error_row
def _corrupt_png(env: Env) -> Expect:
    from lib.data.images import read_image

    path = env.tmp / "photo.png"
    buf = env.tmp / "whole.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf)
    path.write_bytes(buf.read_bytes()[:200])  # header intact, pixel data cut
    return Expect(lambda: read_image(path), ValueError, [str(path), "corrupt"])


@error_row
def _rgb_image_as_label_map(env: Env) -> Expect:
    from lib.data.images import read_label

    path = env.tmp / "label.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    return Expect(lambda: read_label(path), ValueError, [str(path), "single-channel", "RGB"])


def _facades_root(tmp: Path, ids: list[str], missing: str | None = None) -> Path:
    root = tmp / "facades"
    (root / "splits_asapnet").mkdir(parents=True)
    (root / "base").mkdir()
    (root / "splits_asapnet" / "train_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    for i in ids:
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "base" / f"{i}.jpg")
        _label(root / "base" / f"{i}.png", np.ones((8, 8)))
    if missing:
        (root / "base" / missing).unlink()
    return root


@error_row
def _facades_missing_label(env: Env) -> Expect:
    from lib.data import translation_dataset

    root = _facades_root(env.tmp, ["cmp_b0001", "cmp_b0002"], missing="cmp_b0002.png")
    return Expect(lambda: translation_dataset("facades", root, "train", 8), FileNotFoundError,
                  ["cmp_b0002", str(root / "base" / "cmp_b0002.png"), str(root / "splits_asapnet" / "train_ids.txt")])


@error_row
def _facades_empty_split(env: Env) -> Expect:
    from lib.data import translation_dataset

    root = _facades_root(env.tmp, [])
    return Expect(lambda: translation_dataset("facades", root, "train", 8), ValueError,
                  ["empty", str(root / "splits_asapnet" / "train_ids.txt")])


@error_row
def _nan_loss(env: Env) -> Expect:
    from lib.train.common import check_finite

    last = env.tmp / "checkpoint.pt"
    return Expect(lambda: check_finite({"g_gan": torch.tensor(0.5), "g_feat": torch.tensor(float("nan"))}, 7, last),
                  FloatingPointError, ["'g_feat' = nan", "step 7", str(last)])


@error_row
def _unknown_model_in_checkpoint(env: Env) -> Expect:
    from lib.models import load_model

    ckpt = _generator_checkpoint(env.tmp, model_name="asapnet_v9")
    return Expect(lambda: load_model(ckpt), ValueError, [str(ckpt), "asapnet_v9"])


@error_row
def _missing_vgg19_weights(env: Env) -> Expect:
    from lib.stages import load_stage
    from lib.translation.requirements import VGG19_URL, require_training_files

    vgg = env.tmp / "weights" / "vgg19-dcbb9e9d.pth"
    path = _params(env.tmp, lambda p: p["train_translation"]["models"]["pix2pixhd"]["loss"].update(vgg_weights=str(vgg)))
    _, stage = load_stage("train_translation", path)
    return Expect(lambda: require_training_files(stage, "pix2pixhd"), FileNotFoundError,
                  [str(vgg), "train_translation.models.pix2pixhd.loss.vgg_weights", VGG19_URL],
                  after=lambda: require_training_files(stage, "asapnet"))  # the other recipe has no VGG loss: passes


@error_row
def _missing_torchscript_segmenter(env: Env) -> Expect:
    from lib.translation.requirements import DRN_URL, require_evaluation_files

    drn = env.tmp / "drn_d_105.pt"
    return Expect(lambda: require_evaluation_files(str(drn)), FileNotFoundError,
                  [str(drn), "evaluate_translation.segmenter", DRN_URL],
                  after=lambda: require_evaluation_files("trained"))  # the pipeline's own segmenter: nothing to check


# --- nothing lost: the translate CLI never writes over an input or a file it did not write


def _holder(env: Env, folder: Path) -> subprocess.Popen:
    """Another process holding ``folder``'s writer lock (killed when the test ends)."""
    code = ("import sys, time\nfrom lib.io import FolderLock\nFolderLock(sys.argv[1]).acquire()\n"
            "print('held', flush=True)\ntime.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    env.request.addfinalizer(lambda: (proc.kill(), proc.wait()))
    assert proc.stdout.readline().strip() == "held"
    return proc


def _cli_refuses(env: Env, ckpt: Path, labels: Path, out: Path, *extra: str, names: tuple[str, ...]) -> None:
    """The CLI exits 2 with one stderr line naming ``names``, and writes nothing."""
    env.capsys.readouterr()
    assert _translate_cli(ckpt, labels, out, *extra) == 2
    err = env.capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and all(n in err[0] for n in names), err


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@error_row
def _out_inside_the_label_folder(env: Env) -> Expect:
    from lib.models import load_model
    from lib.translation.translate import translate_dir

    ckpt, labels = _generator_checkpoint(env.tmp), _good_labels(env.tmp)
    before = _tree(labels)
    out = labels / "generated"
    _cli_refuses(env, ckpt, labels, out, names=(str(out), "input folder"))

    def after_check() -> None:  # the label folder is exactly as it was: no output, no folder, no lock
        assert _tree(labels) == before and not out.exists()

    return Expect(lambda: translate_dir(load_model(ckpt), labels, out, progress=False), ValueError,
                  [str(out), str(labels), "input folder"], after=after_check)


@error_row
def _out_is_a_symlink_to_the_label_folder(env: Env) -> Expect:
    from lib.models import load_model
    from lib.translation.translate import translate_dir

    ckpt, labels = _generator_checkpoint(env.tmp), _good_labels(env.tmp)
    link = env.tmp / "looks_new"
    link.symlink_to(labels, target_is_directory=True)
    before = _tree(labels)
    _cli_refuses(env, ckpt, labels, link, names=(str(link), "input folder"))
    return Expect(lambda: translate_dir(load_model(ckpt), labels, link, progress=False), ValueError,
                  [str(link), "input folder"], after=lambda: _check_equal(_tree(labels), before))


def _check_equal(a, b) -> None:
    assert a == b


@error_row
def _output_subfolder_symlinked_into_the_inputs(env: Env) -> Expect:
    from lib.models import load_model
    from lib.translation.translate import translate_dir

    ckpt, labels = _generator_checkpoint(env.tmp), _good_labels(env.tmp)
    _label(labels / "sub" / "good.png", np.ones((64, 64)))
    out = env.tmp / "out"
    out.mkdir()
    (out / "sub").symlink_to(labels, target_is_directory=True)  # out/sub/good.png would be labels/good.png
    before = _tree(labels)
    return Expect(lambda: translate_dir(load_model(ckpt), labels, out, pattern="**/*.png", progress=False), ValueError,
                  [str(out / "sub" / "good.png"), "overwrite an input"], after=lambda: _check_equal(_tree(labels), before))


@error_row
def _two_inputs_one_output_name(env: Env) -> Expect:
    from lib.models import load_model
    from lib.translation.translate import translate_dir

    ckpt, labels = _generator_checkpoint(env.tmp), _good_labels(env.tmp)
    Image.fromarray(np.ones((64, 64), np.uint8)).save(labels / "good.gif")  # same stem, other format
    out = env.tmp / "out"
    _cli_refuses(env, ckpt, labels, out, "--pattern", "good.*", names=("good.gif", "good.png"))
    return Expect(lambda: translate_dir(load_model(ckpt), labels, out, pattern="good.*", progress=False), ValueError,
                  [str(labels / "good.gif"), str(labels / "good.png"), str(out / "good.png")],
                  after=lambda: _check_equal(_tree(out) if out.exists() else {}, {}))


@error_row
def _existing_output_is_not_replaced(env: Env) -> Expect:
    from lib.models import load_model
    from lib.translation.translate import translate_dir

    ckpt, labels = _generator_checkpoint(env.tmp), _good_labels(env.tmp)
    out = env.tmp / "out"
    out.mkdir()
    mine = out / "good.png"
    mine.write_bytes(b"a file the user made")
    _cli_refuses(env, ckpt, labels, out, names=(str(mine), "--overwrite"))
    assert mine.read_bytes() == b"a file the user made"

    def after_check() -> None:  # untouched; --overwrite replaces it, and the count is what was written
        assert mine.read_bytes() == b"a file the user made"
        env.capsys.readouterr()
        assert _translate_cli(ckpt, labels, out, "--overwrite") == 0
        assert "wrote 1 images" in env.capsys.readouterr().out and mine.read_bytes()[:4] == b"\x89PNG"
        assert sorted(p.name for p in out.iterdir()) == ["good.png"]  # no lock file left behind

    return Expect(lambda: translate_dir(load_model(ckpt), labels, out, progress=False), FileExistsError,
                  [str(mine), "--overwrite"], after=after_check)


@error_row
def _second_translate_run_on_a_locked_folder(env: Env) -> Expect:
    from lib.io import FolderBusyError
    from lib.models import load_model
    from lib.translation.translate import translate_dir

    ckpt, labels = _generator_checkpoint(env.tmp), _good_labels(env.tmp)
    out = env.tmp / "out"
    holder = _holder(env, out)
    _cli_refuses(env, ckpt, labels, out, names=(str(out), f"pid {holder.pid}"))
    return Expect(lambda: translate_dir(load_model(ckpt), labels, out, progress=False), FolderBusyError,
                  [str(out), f"pid {holder.pid}"], after=lambda: _check_equal(sorted(p.name for p in out.iterdir()), [".writer.lock"]))


@error_row
def _second_training_run_on_a_locked_folder(env: Env) -> Expect:
    from lib.io import FolderBusyError

    out = env.tmp / "run"
    tiny_train("denoise", out, max_steps=2)
    before = _tree(out)
    holder = _holder(env, out)

    def after_check() -> None:  # the first run's checkpoint and loss log are untouched
        assert {k: v for k, v in _tree(out).items() if k != ".writer.lock"} == before

    return Expect(lambda: tiny_train("denoise", out, max_steps=4, seed=7), FolderBusyError,
                  [str(out), f"pid {holder.pid}", "training run"], after=after_check)


# --- non-finite values refused where they enter


@error_row
def _nan_weights_in_a_checkpoint(env: Env) -> Expect:
    from lib.models import build, load_model

    model = build(GEN_NAME, GEN_CFG)
    state = model.state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name].clone()
    state[name].view(-1)[3] = float("inf")
    ckpt = save_checkpoint(env.tmp / "g.pt", model=GEN_NAME, config=to_dict(model.cfg), state_dict=state, step=0)
    _cli_refuses(env, ckpt, _good_labels(env.tmp), env.tmp / "out", names=(str(ckpt), name))
    return Expect(lambda: load_model(ckpt), ValueError, [str(ckpt), repr(name), "non-finite"])


@error_row
def _checkpoint_of_the_wrong_structure(env: Env) -> Expect:
    from lib.models import load_model

    ckpt = env.tmp / "odd.pt"
    torch.save({"model": GEN_NAME, "config": dict(GEN_CFG), "state_dict": [1, 2], "step": 0, "git_revision": "x",
                "torch_version": "y"}, ckpt)
    _cli_refuses(env, ckpt, _good_labels(env.tmp), env.tmp / "out", names=(str(ckpt), "state_dict"))
    return Expect(lambda: load_model(ckpt), ValueError, [str(ckpt), "'state_dict'", "list"])


@error_row
def _nan_in_params(env: Env) -> Expect:
    from lib.stages import load_stage

    path = _params(env.tmp, lambda p: p["train_translation"]["common"].update(ema_decay=float("nan")))
    return Expect(lambda: load_stage("train_translation", path), ConfigError, ["train_translation.common.ema_decay", "nan"])


@error_row
def _infinite_in_a_nested_params_dict(env: Env) -> Expect:
    from lib.stages import load_stage

    path = _params(env.tmp, lambda p: p["train_translation"]["models"]["asapnet"]["generator_cfg"].update(init_gain=float("inf")))
    return Expect(lambda: load_stage("train_translation", path), ConfigError,
                  ["train_translation.models.asapnet.generator_cfg.init_gain", "inf"])


@error_row
def _sigma_above_255(env: Env) -> Expect:
    from lib.stages import load_stage

    path = _params(env.tmp, lambda p: p["train_denoiser"]["common"].update(sigma_range=[10, 300]))
    return Expect(lambda: load_stage("train_denoiser", path), ConfigError, ["train_denoiser.common.sigma_range", "255"],
                  absent=("train_denoiser.runs",))  # blamed where it was written


@error_row
def _empty_sigma_list(env: Env) -> Expect:
    from lib.stages import load_stage

    path = _params(env.tmp, lambda p: p["evaluate_denoising"].update(sigmas=[]))
    return Expect(lambda: load_stage("evaluate_denoising", path), ConfigError, ["evaluate_denoising.sigmas"])


@error_row
def _zero_learning_rate(env: Env) -> Expect:
    from lib.stages import load_stage

    path = _params(env.tmp, lambda p: p["train_segmenter"].update(lr=0.0))
    return Expect(lambda: load_stage("train_segmenter", path), ConfigError, ["train_segmenter.lr", "> 0"])


@error_row
def _generated_image_with_nan(env: Env) -> Expect:
    from lib.models import generate as gen
    from lib.models import load_model

    real = gen.generate
    env.monkeypatch.setattr(gen, "generate", lambda *a, **k: real(*a, **k) * float("nan"))  # e.g. a NaN input path
    model = load_model(_generator_checkpoint(env.tmp))
    return Expect(lambda: gen.generate_images(model, torch.zeros(2, 64, 64, dtype=torch.long)), ValueError,
                  ["NaN or infinite", "[0, 1]"])


# --- params errors at load, named by the key the user wrote


@error_row
def _derived_size_error_named_by_its_key(env: Env) -> Expect:
    from lib.stages import load_stage

    path = _params(env.tmp, lambda p: p["train_translation"]["common"].update(size=100))
    return Expect(lambda: load_stage("train_translation", path), ConfigError,
                  ["train_translation.common.size", "100", "multiple of 16"], absent=("models.asapnet.height",))


@error_row
def _unknown_generator_cfg_key(env: Env) -> Expect:
    from lib.stages import load_stage

    path = _params(env.tmp, lambda p: p["train_translation"]["models"]["asapnet"]["generator_cfg"].update(lr_widht=8))
    return Expect(lambda: load_stage("train_translation", path), ConfigError,
                  ["train_translation.models.asapnet.generator_cfg.lr_widht", "known keys"])


@error_row
def _generator_that_is_not_a_generator(env: Env) -> Expect:
    from lib.stages import load_stage

    path = _params(env.tmp, lambda p: p["train_translation"]["models"]["asapnet"].update(generator="patchgan"))
    return Expect(lambda: load_stage("train_translation", path), ConfigError,
                  ["train_translation.models.asapnet.generator", "'patchgan'", "asapnet, pix2pixhd, spade"])


@error_row
def _bad_value_in_a_section_another_stage_reads(env: Env) -> Expect:
    from lib.stages import check_params

    path = _params(env.tmp, lambda p: p["report"].update(headline_sigma=-25.0))
    # the notebook runner loads the whole file before any stage starts (scripts/run_notebook.py)
    return Expect(lambda: check_params(path), ConfigError, ["report.headline_sigma", "-25"])


@error_row
def _label_nc_below_the_dataset_labels(env: Env) -> Expect:
    from lib.stages import load_stage

    path = _params(env.tmp, lambda p: p["translation"]["per_dataset"]["facades"]["train_translation"]["common"][
        "generator_cfg"].update(label_nc=12))
    return Expect(lambda: load_stage("train_translation", path, "facades"), ConfigError,
                  ["translation.per_dataset.facades.train_translation.common.generator_cfg.label_nc=12",
                   "13 one-hot label channels"])


@error_row
def _label_nc_of_another_study(env: Env) -> Expect:
    """A study's label channels written into the shared recipe: the other study names the key."""
    from lib.stages import check_params

    path = _params(env.tmp, lambda p: p["train_translation"]["models"]["pix2pixhd"]["generator_cfg"].update(label_nc=13))
    return Expect(lambda: check_params(path), ConfigError,
                  ["train_translation.models.pix2pixhd.generator_cfg.label_nc=13", "'camvid' has 12"])


@error_row
def _study_without_its_dataset_entry(env: Env) -> Expect:
    from lib.stages import check_params

    path = _params(env.tmp, lambda p: p["translation"].update(datasets=["facades", "camvid", "mine"]))
    return Expect(lambda: check_params(path), ConfigError, ["translation.datasets[2]", "'mine'", "datasets section"])


@error_row
def _bad_dataset_entry(env: Env) -> Expect:
    from lib.stages import check_params

    path = _params(env.tmp, lambda p: p["datasets"]["camvid"]["splits"]["train"].update(photos="train"))
    return Expect(lambda: check_params(path), ConfigError, ["datasets.camvid.splits.train.list", "not both"])


@error_row
def _bm3d_requested_for_a_set_not_evaluated(env: Env) -> Expect:
    from lib.stages import load_stage

    path = _params(env.tmp, lambda p: p["evaluate_denoising"].update(  # was silently skipped
        sets={"bsd68": 0}, bm3d_images={"cbsd68": 3}, bm3d_full_sigmas={}))
    return Expect(lambda: load_stage("evaluate_denoising", path), ConfigError, ["evaluate_denoising.bm3d_images", "cbsd68"])


@error_row
def _bm3d_full_sigmas_outside_the_evaluated_sigmas(env: Env) -> Expect:
    from lib.stages import load_stage

    path = _params(env.tmp, lambda p: p["evaluate_denoising"].update(bm3d_full_sigmas={"bsd68": [30]}))
    return Expect(lambda: load_stage("evaluate_denoising", path), ConfigError,
                  ["evaluate_denoising.bm3d_full_sigmas", "bsd68", "30"])


@error_row
def _negative_bm3d_workers(env: Env) -> Expect:
    from lib.stages import load_stage

    path = _params(env.tmp, lambda p: p["evaluate_denoising"].update(bm3d_workers=-2))
    return Expect(lambda: load_stage("evaluate_denoising", path), ConfigError, ["evaluate_denoising", "bm3d_workers", "-2"])


# --- CLI input: one line naming the option or file


@error_row
def _unknown_device_name(env: Env) -> Expect:
    from lib.device import resolve_device

    _cli_refuses(env, _generator_checkpoint(env.tmp), _good_labels(env.tmp), env.tmp / "out", "--device", "gpu",
                 names=("--device", "'gpu'"))
    _cli_refuses(env, _generator_checkpoint(env.tmp), _good_labels(env.tmp), env.tmp / "out", "--max-memory-gb", "-1",
                 names=("--max-memory-gb",))
    return Expect(lambda: resolve_device("cuda:x"), ValueError, ["'cuda:x'", "not a device name"])


@error_row
def _list_file_not_utf8(env: Env) -> Expect:
    from lib.data import translation_dataset

    root = _facades_root(env.tmp, ["cmp_b0001"])
    ids = root / "splits_asapnet" / "train_ids.txt"
    ids.write_bytes("cmp_b0001\n\xe9t\xe9\n".encode("latin-1"))
    return Expect(lambda: translation_dataset("facades", root, "train", 8), ValueError, [str(ids), "UTF-8", "offset 10"])


@pytest.mark.parametrize("row", ERRORS)
def test_bad_input_raises_a_clear_error(row, tmp_path, monkeypatch, capsys, request):
    expect = row(Env(tmp_path, monkeypatch, capsys, request))
    with pytest.raises(expect.error) as info:
        expect.call()
    message = str(info.value)
    print(f"\n[{request.node.callspec.id}] {type(info.value).__name__}: {message}")
    for fragment in expect.names:
        assert fragment in message, f"{fragment!r} not named in: {message}"
    for fragment in expect.absent:
        assert fragment not in message, f"{fragment!r} wrongly named in: {message}"
    if expect.after is not None:
        expect.after()


# ----------------------------------------------------------------------------- rows: bad files skipped, named


class Skipped(NamedTuple):
    """A ``SKIPPED_FILES`` row: the bad label map ``bad`` (beside ``good.png``) fails with a
    message containing ``names``; ``cli`` are extra CLI arguments, ``kwargs`` extra
    ``translate_dir`` arguments."""

    bad: Path
    names: list[str]
    kwargs: dict
    cli: tuple[str, ...] = ()


@skipped_file_row
def _decompression_bomb(env: Env) -> Skipped:
    bomb = _bomb_png(env.tmp / "labels" / "bomb.png")
    assert bomb.stat().st_size < 100_000  # 14000x14000 in a few tens of kB
    return Skipped(bomb, ["too large to decode safely"], {})


@skipped_file_row
def _map_too_large_for_memory(env: Env) -> Skipped:
    big = _label(env.tmp / "labels" / "big.png", np.zeros((600, 600)))
    limit = int(0.001 * 2**30)  # what --max-memory-gb 0.001 gives
    return Skipped(big, ["600x600", "1.0 MiB available", "--max-memory-gb"], {"max_memory": limit},
                   ("--max-memory-gb", "0.001"))


@skipped_file_row
def _label_ids_out_of_range(env: Env) -> Skipped:
    ids = np.zeros((64, 64))
    ids[0, 0] = LABEL_NC + 2
    return Skipped(_label(env.tmp / "labels" / "ids.png", ids), [f"[0, {LABEL_NC + 2}]", f"[0, {LABEL_NC})"], {})


@skipped_file_row
def _instance_map_size_mismatch(env: Env) -> Skipped:
    inst = env.tmp / "instances"
    _label(inst / "good.png", np.arange(64 * 64).reshape(64, 64) % 3)
    _label(inst / "mismatch.png", np.zeros((32, 64)))
    bad = _label(env.tmp / "labels" / "mismatch.png", np.zeros((64, 64)))
    return Skipped(bad, [str(inst / "mismatch.png"), "(32, 64)", "(64, 64)"], {"instances": inst},
                   ("--instances", str(inst)))


@skipped_file_row
def _generated_image_not_finite(env: Env) -> Skipped:
    from lib.models import generate as gen

    real = gen.generate

    def nan_for_the_last_class(generator, label_ids, *args, **kwargs):  # a generator that breaks on one input
        out = real(generator, label_ids, *args, **kwargs)
        bad = (label_ids == LABEL_NC - 1).flatten(1).all(1)  # (B,)
        return torch.where(bad[:, None, None, None], torch.full_like(out, float("nan")), out)

    env.monkeypatch.setattr(gen, "generate", nan_for_the_last_class)
    bad = _label(env.tmp / "labels" / "flat.png", np.full((64, 64), LABEL_NC - 1))
    return Skipped(bad, ["NaN or infinite"], {})


@pytest.mark.parametrize("row", SKIPPED_FILES)
def test_bad_label_map_is_named_and_the_rest_written(row, tmp_path, monkeypatch, capsys, request):
    from lib.models import load_model
    from lib.translation.translate import translate_dir

    ckpt, labels = _generator_checkpoint(tmp_path), _good_labels(tmp_path)
    case = row(Env(tmp_path, monkeypatch, capsys, request))
    out = tmp_path / "out"
    result = translate_dir(load_model(ckpt), labels, out, progress=False, **case.kwargs)
    assert [p.name for p in result.written] == ["good.png"]  # the good map is still written
    assert [p for p, _ in result.failed] == [case.bad]
    message = result.failed[0][1]
    for fragment in [str(case.bad), *case.names]:
        assert fragment in message, f"{fragment!r} not named in: {message}"
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]  # nothing written for the bad map

    capsys.readouterr()
    assert _translate_cli(ckpt, labels, tmp_path / "out_cli", *case.cli) == 1
    cap = capsys.readouterr()
    assert str(case.bad) in cap.err and "wrote 1 images" in cap.out
    assert sorted(p.name for p in (tmp_path / "out_cli").iterdir()) == ["good.png"]
    print(f"\n[{request.node.callspec.id}] failed: {message}\n  CLI stderr: {cap.err.strip().splitlines()[-1]}")


# ----------------------------------------------------------------------------- rows: recoveries


@recovery_row
def _killed_atomic_write(env: Env) -> None:
    from lib.io import write_text

    target = write_text(env.tmp / "checkpoint.pt", "good")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is now free: the writer that "was killed"
    stale = env.tmp / f".checkpoint.pt.{dead.pid}.x1y2z3.tmp"
    stale.write_text("half a checkpoint")
    assert target.read_text() == "good"  # a killed writer never touches the target
    write_text(target, "newer")
    assert not stale.exists() and target.read_text() == "newer"
    assert sorted(p.name for p in env.tmp.iterdir()) == ["checkpoint.pt"]


@recovery_row
def _resume_keeps_epoch_int(env: Env) -> None:
    # the SIGKILL version (all three trainers): tests/test_train_loop.py::test_resume_after_sigkill_is_bitwise_identical
    first = tiny_train("denoise", env.tmp, max_steps=2)
    assert first["steps"] == 2
    resumed = tiny_train("denoise", env.tmp, max_steps=4)
    assert (resumed["start_step"], resumed["steps"]) == (2, 4)
    lines = (env.tmp / "losses.csv").read_text().splitlines()
    col = lines[0].split(",").index("epoch")
    epochs = [line.split(",")[col] for line in lines[1:]]
    assert epochs == ["0", "0", "0", "1"]  # 3 steps per epoch; no "1.0" after the resume


@recovery_row
def _changed_param_starts_afresh(env: Env) -> None:
    # all three trainers, and equality with a fresh run:
    # tests/test_train_loop.py::test_changed_setting_starts_afresh_and_equals_a_fresh_run
    tiny_train("denoise", env.tmp, max_steps=4)
    env.capsys.readouterr()
    changed = tiny_train("denoise", env.tmp, max_steps=4, seed=1)
    err = [line for line in env.capsys.readouterr().err.splitlines() if line.strip()]
    print(f"\n[changed-param-starts-afresh] stderr: {err}")
    assert len(err) == 1 and "seed" in err[0] and "starting afresh" in err[0], err
    assert (changed["start_step"], changed["steps_run"]) == (0, 4)


@recovery_row(marks=pytest.mark.slow)  # a papermill kernel: ~5 s
def _failed_stage_keeps_the_executed_notebook(env: Env) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("raise RuntimeError('stage failed on purpose')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = env.tmp / "nb.ipynb"
    nbformat.write(nb, src)
    dest = env.tmp / "runs" / "nb.ipynb"
    dest.parent.mkdir()
    dest.write_text("the committed executed notebook")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebook.py"), str(src), str(dest)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    print(f"\n[failed-stage-keeps-the-executed-notebook] stderr tail: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode != 0
    assert dest.read_text() == "the committed executed notebook"
    failed = dest.parent / "failed" / dest.name
    assert "stage failed on purpose" in failed.read_text()
    assert str(failed) in proc.stderr and f"{dest} was left as it was" in proc.stderr
    assert sorted(p.name for p in dest.parent.iterdir()) == ["failed", "nb.ipynb"]  # no temporary left


def _afresh_line(env: Env) -> str:
    """The one stderr line of a run that started afresh."""
    err = [line for line in env.capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "starting afresh" in err[0], err
    return err[0]


@recovery_row
def _other_data_with_the_same_names_starts_afresh(env: Env) -> None:
    # the fingerprint of the training data is in the checkpoint (lib.train.identity)
    tiny_train("denoise", env.tmp, max_steps=4)
    env.capsys.readouterr()
    again = tiny_train("denoise", env.tmp, max_steps=4)  # the same data: resumes, nothing to do
    assert (again["start_step"], again["steps_run"]) == (4, 0)
    assert env.capsys.readouterr().err.strip() == ""
    other = tiny_train("denoise", env.tmp, max_steps=4, data_kw={"seed": 1})  # same count and shapes, other pixels
    assert "training data changed" in _afresh_line(env)
    assert (other["start_step"], other["steps_run"]) == (0, 4)


@recovery_row
def _facades_fingerprint_follows_the_file_contents(env: Env) -> None:
    import shutil

    from lib.data import translation_dataset

    root = _facades_root(env.tmp / "a", ["cmp_b0001", "cmp_b0002"])
    first = translation_dataset("facades", root, "train", 8).fingerprint()
    copy = env.tmp / "b" / "facades"
    shutil.copytree(root, copy)
    os.utime(copy / "base" / "cmp_b0001.jpg", (0, 0))
    assert translation_dataset("facades", copy, "train", 8).fingerprint() == first  # same files elsewhere, other mtimes: same data
    Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(copy / "base" / "cmp_b0002.jpg")  # same name, other photo
    assert translation_dataset("facades", copy, "train", 8).fingerprint() != first


@recovery_row
def _fewer_steps_than_the_checkpoint_starts_afresh(env: Env) -> None:
    tiny_train("denoise", env.tmp, max_steps=4)
    env.capsys.readouterr()
    short = tiny_train("denoise", env.tmp, max_steps=2)  # not "0 steps from a checkpoint at step 4"
    assert "past the 2 steps requested" in _afresh_line(env)
    assert (short["start_step"], short["steps"]) == (0, 2)


@recovery_row
def _checkpoint_with_nan_weights_or_moments_is_not_resumed(env: Env) -> None:
    for part in ("weights", "optimizer"):
        tiny_train("denoise", env.tmp, max_steps=2)
        ckpt = torch.load(env.tmp / "checkpoint.pt", weights_only=True)
        if part == "weights":
            name = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point())
            ckpt["state_dict"][name].view(-1)[0] = float("nan")
        else:  # a NaN Adam moment would make the first resumed step NaN
            ckpt["optimizers"]["adam"]["state"][0]["exp_avg"].view(-1)[0] = float("inf")
            name = "optimizers.adam.state.0.exp_avg"
        torch.save(ckpt, env.tmp / "checkpoint.pt")
        env.capsys.readouterr()
        fresh = tiny_train("denoise", env.tmp, max_steps=2)
        assert name in _afresh_line(env) and fresh["start_step"] == 0


@recovery_row
def _fewer_curve_points_leave_no_stale_snapshot_read(env: Env) -> None:
    import shutil

    from lib.train.gan_outputs import SNAPSHOTS_DIR, list_snapshots

    tiny_train("gan", env.tmp, max_steps=4, curve_points=4)
    assert [s for s, _, _ in list_snapshots(env.tmp)] == [1, 2, 3, 4]
    env.capsys.readouterr()
    tiny_train("gan", env.tmp, max_steps=4, curve_points=2)
    assert "curve_steps" in _afresh_line(env)
    snaps = env.tmp / SNAPSHOTS_DIR
    assert sorted(p.name for p in snaps.iterdir()) == ["step_000002.pt", "step_000004.pt"]  # the old ones removed
    shutil.copy(snaps / "step_000004.pt", snaps / "step_000003.pt")  # a file left by hand, or by another version
    assert [s for s, _, _ in list_snapshots(env.tmp)] == [2, 4]  # the evaluation reads the run's own, by name


@recovery_row
def _killed_lock_holder_leaves_no_stale_lock(env: Env) -> None:
    from lib.io import LOCK_NAME, FolderLock

    out = env.tmp / "out"
    holder = _holder(env, out)
    holder.kill()  # kill -9: the kernel drops the flock with the process
    holder.wait()
    assert (out / LOCK_NAME).exists()  # the file stays ...
    with FolderLock(out):  # ... but is no lock
        assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert list(out.iterdir()) == []  # released: the lock file is gone


@recovery_row(marks=pytest.mark.slow)  # a papermill kernel: ~5 s
def _killed_runner_takes_the_stage_with_it(env: Env) -> None:
    import signal
    import time

    import nbformat

    pid_file = env.tmp / "kernel.pid"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                                          "time.sleep(300)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = env.tmp / "nb.ipynb"
    nbformat.write(nb, src)
    runner = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "run_notebook.py"), str(src), str(env.tmp / "runs" / "nb.ipynb")],
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    env.request.addfinalizer(lambda: (runner.kill(), runner.wait()))
    deadline = time.monotonic() + 120
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.2)
    kernel = int(pid_file.read_text())
    os.kill(runner.pid, signal.SIGKILL)  # no handler runs: the parent-death signal and the kernel's poller act
    runner.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(kernel, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(kernel, signal.SIGKILL)
        raise AssertionError(f"the stage's kernel (pid {kernel}) outlived its killed runner")


@pytest.mark.parametrize("row", RECOVERIES)
def test_bad_state_recovers_without_loss(row, tmp_path, monkeypatch, capsys, request):
    row(Env(tmp_path, monkeypatch, capsys, request))
