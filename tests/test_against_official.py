"""benchmarks/against_official.py: the parts that need no official code, and (with the checkouts) equality at a small size.

The equality tests run only when ``$ASAPNET_OFFICIAL_REPO``, ``$PIX2PIXHD_OFFICIAL_REPO`` and
(unless the ASAPNet checkout carries it) ``$SYNC_BN_REPO`` name local checkouts; otherwise, in CI
too, they are skipped: the official code is never part of this project.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import against_official as ao  # noqa: E402
from benchmarks.official_code import (  # noqa: E402
    ASAPNET_REPO_ENV,
    PIX2PIXHD_REPO_ENV,
    SYNC_BN_REPO_ENV,
    OfficialCode,
    OfficialCodeMissing,
    asapnet_argv,
    pix2pixhd_argv,
    resolve_repos,
)

SMALL = {"asapnet": {"lr_max_width": 32, "hr_width": 16}, "pix2pixhd": {"ngf": 8, "n_blocks": 2}}


def _fake_checkout(root, marker):
    (root / marker).parent.mkdir(parents=True, exist_ok=True)
    (root / marker).write_text("")
    return root


# ----------------------------------------------------------------------------- missing checkouts


def test_missing_checkouts_message_names_repositories_and_variables():
    with pytest.raises(OfficialCodeMissing) as e:
        resolve_repos(environ={})
    msg = str(e.value)
    for text in ("tamarott/ASAPNet", "NVIDIA/pix2pixHD", "vacancy/Synchronized-BatchNorm-PyTorch",
                 ASAPNET_REPO_ENV, PIX2PIXHD_REPO_ENV, SYNC_BN_REPO_ENV, "--asapnet-repo", "sync_batchnorm"):
        assert text in msg


def test_main_without_checkouts_exits_nonzero(monkeypatch, capsys, tmp_path):
    for env in (ASAPNET_REPO_ENV, PIX2PIXHD_REPO_ENV, SYNC_BN_REPO_ENV):
        monkeypatch.delenv(env, raising=False)
    assert ao.main(["--sizes", "256x256", "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert ASAPNET_REPO_ENV in err and "git clone https://github.com/NVIDIA/pix2pixHD" in err
    assert not list(tmp_path.iterdir())  # nothing written


def test_checkout_validation(tmp_path):
    asap = _fake_checkout(tmp_path / "ASAPNet", "models/networks/generator.py")
    p2p = _fake_checkout(tmp_path / "pix2pixHD", "models/networks.py")
    with pytest.raises(OfficialCodeMissing, match=f"{SYNC_BN_REPO_ENV} \\(not set\\)"):
        resolve_repos(asap, p2p, environ={})
    with pytest.raises(OfficialCodeMissing, match="has no models/networks.py"):
        resolve_repos(asap, tmp_path, environ={SYNC_BN_REPO_ENV: str(tmp_path)})
    _fake_checkout(asap, "models/networks/sync_batchnorm/__init__.py")  # carried by the checkout: not needed
    repos = resolve_repos(environ={ASAPNET_REPO_ENV: str(asap), PIX2PIXHD_REPO_ENV: str(p2p)})
    assert repos.asapnet == asap.resolve() and repos.pix2pixhd == p2p.resolve() and repos.sync_bn is None


# ----------------------------------------------------------------------------- arguments


def test_parse_args_sizes_dtypes_models():
    args = ao.parse_args(["--sizes", "1024x2048,256x256,256x512,256x256", "--dtype", "fp32,bf16",
                          "--models", "official-asapnet,asapnet", "--runs", "2", "--threads", "2"])
    assert args.sizes == [(256, 256), (256, 512), (1024, 2048)]  # sorted by pixels, deduplicated
    assert args.dtype == ["fp32", "bf16"] and args.models == ["official-asapnet", "asapnet"]
    default = ao.parse_args([])
    assert default.sizes == [(256, 256), (256, 512), (512, 1024), (1024, 2048)]
    assert default.dtype == ["fp32"] and default.models == list(ao.DEFAULT_MODELS) and default.runs >= 3


@pytest.mark.parametrize("argv", [["--sizes", "100x100"], ["--sizes", "256x200"], ["--sizes", "48x96"],
                                  ["--dtype", "fp16"], ["--models", "asapnet,dncnn"], ["--runs", "0"]])
def test_parse_args_rejects(argv, capsys):
    with pytest.raises(SystemExit) as e:
        ao.parse_args(argv)
    assert e.value.code == 2


def test_limits():
    assert ao.parse_args([]).limit_s == {None: 150.0, "spade": 40.0}
    assert ao.parse_limits("60,official-pix2pixhd=300") == {None: 60.0, "official-pix2pixhd": 300.0}
    for bad in ("dncnn=5", "spade=fast"):
        with pytest.raises(Exception, match="--limit-s"):
            ao.parse_limits(bad)


def test_model_predicted_over_its_limit_is_skipped_without_a_forward(monkeypatch):
    args = ao.parse_args(["--models", "spade", "--sizes", "64x128", "--limit-s", "150,spade=1", "--runs", "1"])
    monkeypatch.setattr(ao, "build_models", lambda *a, **k: ({"spade": torch.nn.Linear(1, 1)}, {}))
    history, skipped = {("spade", "fp32"): (32 * 64, 400.0)}, {}  # 0.4 s at a quarter of the pixels -> 1.6 s
    (row,) = ao.run_size(None, args, 64, 128, ["fp32"], history, skipped)
    assert row["note"] == "skipped: predicted 2 s > limit 1 s" and "median_ms" not in row
    assert skipped == {("spade", "fp32"): row["note"]}


def test_official_argv_follow_our_configs():
    cfg = ao.timing_config("asapnet", 256, 35, SMALL["asapnet"])
    argv = asapnet_argv(cfg, 512)
    opts = dict(zip(argv[::2], argv[1::2]))
    assert opts["--crop_size"] == "512" and float(opts["--aspect_ratio"]) == 2.0  # tile 512 / (16 * 2) = 16
    assert opts["--label_nc"] == "35" and opts["--lr_max_width"] == "32" and opts["--hr_width"] == "16"
    assert "--no_instance_edge" not in argv and opts["--gpu_ids"] == "-1"
    assert "--no_instance_edge" in asapnet_argv({**cfg, "use_instance_edge": False}, 512)
    p2p = pix2pixhd_argv(ao.timing_config("pix2pixhd", 256, 35, {"ngf": 8, "n_downsampling": 3}))
    popts = dict(zip(p2p[::2], p2p[1::2]))
    assert popts["--ngf"] == "8" and popts["--n_downsample_global"] == "3" and popts["--netG"] == "global"
    with pytest.raises(ValueError, match="hr_coor"):
        asapnet_argv({**cfg, "hr_coor": "none"}, 512)


# ----------------------------------------------------------------------------- results


def _rows():
    def row(size, dtype, model, ms, **kw):
        h, w = (int(v) for v in size.split("x"))
        return {"size": size, "height": h, "width": w, "dtype": dtype, "model": model,
                "code": "official" if model.startswith("official-") else "ours", "median_ms": ms, **kw}

    return [
        row("256x512", "fp32", "asapnet", 100.0, max_abs_diff_vs_pair=1e-6),
        row("256x512", "fp32", "official-asapnet", 200.0),
        row("256x512", "fp32", "pix2pixhd", 290.0, max_abs_diff_vs_pair=0.0),
        row("256x512", "fp32", "official-pix2pixhd", 300.0),
        row("1024x2048", "fp32", "asapnet", 1000.0),
        row("1024x2048", "fp32", "official-asapnet", 2000.0),
        row("1024x2048", "fp32", "official-pix2pixhd", 20000.0),
        row("1024x2048", "fp32", "spade", None, note="skipped: predicted 400 s > --limit-s 150"),
        row("256x512", "bf16", "asapnet", 50.0, psnr_vs_fp32_db=38.5),
    ]


def test_ratios_and_targets():
    rows = ao.add_ratios(_rows())
    a = rows[0]
    assert a["time_vs_official"] == pytest.approx(0.5) and a["speedup_vs_official_pix2pixhd"] == pytest.approx(3.0)
    assert rows[2]["time_vs_official"] == pytest.approx(290 / 300)
    assert "time_vs_official" not in rows[-1]  # no official bf16 row to divide by
    lines = ao.check_targets(rows)
    assert lines == [
        "256x512: official pix2pixHD / our ASAPNet = 3.00x (target >= 3.0x): PASS",
        "256x512: our ASAPNet / official ASAPNet = 0.50x (target <= 0.7x): PASS",
        "1024x2048: official pix2pixHD / our ASAPNet = 20.00x (target >= 15.0x): PASS",
        "1024x2048: our ASAPNet / official ASAPNet = 0.50x (target <= 0.35x): MISS",
    ]


def test_markdown_table_and_csv():
    rows = ao.add_ratios(_rows())
    table = ao.markdown_table(rows)
    lines = table.splitlines()
    assert lines[0].count("|") == lines[1].count("|") == lines[2].count("|")
    assert "| 256x512 | fp32 | 100 ms | 200 ms | 0.50 | 290 ms | 300 ms | 3.00 | - | 1.0e-06, 0.0e+00 | - |" in table
    assert "| 1024x2048 | fp32 | 1.00 s | 2.00 s | 0.50 | - | 20.00 s | 20.00 |" in table
    assert "asapnet 38.5" in table and "- spade fp32 1024x2048: skipped: predicted 400 s" in table
    text = ao.csv_text(rows)
    header, first = text.splitlines()[:2]
    assert header.split(",") == list(ao.CSV_COLUMNS) and first.startswith("256x512,256,512,fp32,asapnet,ours,")
    assert len(text.splitlines()) == len(rows) + 1


def test_notes_block_replacement():
    text = f"intro\n{ao.NOTES_BEGIN}\nold table\n{ao.NOTES_END}\noutro\n"
    new = ao.replace_notes_block(text, "| new |")
    assert new == f"intro\n{ao.NOTES_BEGIN}\n| new |\n{ao.NOTES_END}\noutro\n"
    with pytest.raises(ValueError, match="against_official"):
        ao.replace_notes_block("no markers", "x")
    notes = ao.NOTES.read_text()
    assert notes.index(ao.NOTES_BEGIN) < notes.index(ao.NOTES_END)  # --update-notes has a place to write


def test_psnr01_and_dtype_wrapper():
    ref = torch.zeros(1, 3, 4, 4)
    assert ao.psnr01(ref, ref) == math.inf
    assert ao.psnr01(ref + 0.2, ref) == pytest.approx(20.0)  # [0, 1] difference 0.1 -> MSE 1e-2
    fn = lambda: torch.ones(2, 2) @ torch.ones(2, 2)  # noqa: E731
    assert ao.with_dtype(fn, "fp32") is fn
    assert ao.with_dtype(fn, "bf16")().dtype == torch.bfloat16  # CPU autocast


def test_spade_builds_without_official_code():
    models, argvs = ao.build_models(None, ["spade"], 64, 128, overrides={"spade": {"ngf": 2, "spade_hidden": 4}})
    assert list(models) == ["spade"] and argvs == {} and not models["spade"].training
    with pytest.raises(OfficialCodeMissing):
        ao.build_models(None, ["asapnet"], 64, 128)


# ----------------------------------------------------------------------------- with the official code


@pytest.fixture(scope="module")
def official_code():
    try:
        repos = resolve_repos()
    except OfficialCodeMissing as e:
        pytest.skip(f"official checkouts not configured: {str(e).splitlines()[1].strip()} ...")
    return OfficialCode(repos)


def test_small_size_outputs_equal_official(official_code):
    """Same weights (official init, shifted), same input: ours equals the official output."""
    names = ["asapnet", "official-asapnet", "pix2pixhd", "official-pix2pixhd"]
    models, argvs = ao.build_models(official_code, names, 64, 128, overrides=SMALL)
    assert set(argvs) == {"official-asapnet", "official-pix2pixhd"}
    ids = ao.example_label_ids(64, 128)
    onehot, edge = ao.one_hot(ids, 35), ao.instance_edges(ids).unsqueeze(1)  # (1, 35, H, W), (1, 1, H, W)
    fns = ao.forward_fns(models, onehot, edge)
    with torch.inference_mode():
        out = {n: f() for n, f in fns.items()}
        ref = models["asapnet"](onehot, edge, impl="reference")
    for name, o in out.items():
        assert o.shape == (1, 3, 64, 128) and float(o.std()) > 0.05, name
    assert float((out["asapnet"] - out["official-asapnet"]).abs().max()) <= 1e-5
    assert float((ref - out["official-asapnet"]).abs().max()) <= 4e-6
    assert float((out["pix2pixhd"] - out["official-pix2pixhd"]).abs().max()) <= 1e-6


@pytest.mark.slow
def test_main_writes_results(official_code, tmp_path, monkeypatch):
    notes = tmp_path / "NOTES.md"
    notes.write_text(f"# notes\n{ao.NOTES_BEGIN}\nold\n{ao.NOTES_END}\n")
    monkeypatch.setattr(ao, "NOTES", notes)
    rc = ao.main(["--sizes", "256x256", "--runs", "1", "--models", "asapnet,official-asapnet", "--threads", "1",
                  "--out", str(tmp_path), "--stem", "t", "--update-notes"])
    assert rc == 0
    text = notes.read_text()
    assert "old" not in text and "| 256x256 | fp32 |" in text and "torch " in text
    data = json.loads((tmp_path / "t.json").read_text())
    rows = {r["model"]: r for r in data["rows"]}
    assert rows["asapnet"]["median_ms"] > 0 and rows["asapnet"]["max_abs_diff_vs_pair"] <= 1e-4
    assert rows["asapnet"]["time_vs_official"] > 0
    assert {"cpu_model", "threads", "torch_version", "cpu_features", "bf16_cpu_flags"} <= set(data["environment"])
    assert (tmp_path / "t.csv").read_text().startswith("size,height,width,dtype,model")
