"""One table of bad inputs: each row is one case and ends in a clear error (its type, and a
message naming the file or the params key) or in a recovery where nothing is lost.

Three tables, each one parametrized test:

* ``ERRORS``: the call raises; the message names the file / params key (and the CLI, where
  there is one, exits non-zero with the same message).
* ``SKIPPED_FILES``: ``translate_dir`` records the bad label map in ``result.failed`` with a
  message naming it, writes the good one beside it, and ``python -m lib.translation.translate``
  exits 1.
* ``RECOVERIES``: the bad state is cleaned up or worked around without an error and without
  losing a good file.

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
    from lib.data.facades import FacadesDataset

    root = _facades_root(env.tmp, ["cmp_b0001", "cmp_b0002"], missing="cmp_b0002.png")
    return Expect(lambda: FacadesDataset(root, "train", 8), FileNotFoundError,
                  ["cmp_b0002", str(root / "base" / "cmp_b0002.png"), str(root / "splits_asapnet" / "train_ids.txt")])


@error_row
def _facades_empty_split(env: Env) -> Expect:
    from lib.data.facades import FacadesDataset

    root = _facades_root(env.tmp, [])
    return Expect(lambda: FacadesDataset(root, "train", 8), ValueError,
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


@pytest.mark.parametrize("row", RECOVERIES)
def test_bad_state_recovers_without_loss(row, tmp_path, monkeypatch, capsys, request):
    row(Env(tmp_path, monkeypatch, capsys, request))
