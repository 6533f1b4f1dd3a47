"""benchmarks/gpu_translation.py: its settings, and the whole script end to end on the CPU at smoke scale (no GPU needed)."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import gpu_translation as gt  # noqa: E402
from lib.config import load_params  # noqa: E402
from lib.models import make_config  # noqa: E402
from lib.models.asapnet import LOWRES_ROWS  # noqa: E402

RECIPES = {  # the default-scale recipes' generator_cfg (reduced widths), as params.yaml gives them
    "asapnet": {"label_nc": 13, "use_instance_edge": False, "learned_ds_factor": 8, "lr_max_width": 256},
    "pix2pixhd": {"label_nc": 13, "use_instance_edge": False, "ngf": 32},
}


@pytest.mark.parametrize("name", gt.MODELS)
def test_generator_config_has_the_paper_widths_at_256(name):
    paper = load_params(ROOT / "scales" / "paper.yaml")["train_translation"]["models"][name]["generator_cfg"]
    cfg = gt.generator_config(name, RECIPES[name], 256, smoke=False)
    for key in gt.PAPER_WIDTH_KEYS[name]:
        assert cfg[key] == paper[key]  # lr_max_width 1024 / learned_ds_factor 16; ngf 64
    assert cfg["label_nc"] == 13 and cfg["use_instance_edge"] is False  # Facades conditioning, from the recipe
    built = make_config(name, cfg)
    if name == "asapnet":
        assert built.height == 256 and built.tile_size == 256 // LOWRES_ROWS == built.learned_ds_factor


def test_generator_config_smoke_follows_the_geometry_rule():
    cfg = make_config("asapnet", gt.generator_config("asapnet", {**RECIPES["asapnet"], "lr_max_width": 32}, 32, smoke=True))
    assert cfg.height == 32 and cfg.learned_factor == cfg.tile_size == 2 and cfg.lr_max_width == 32


def test_plan_steps_fills_the_budget_share():
    assert gt.plan_steps(60.0, 0.5) == (108, 36)  # floor(0.9 * 60 / 0.5); the last third decays
    assert gt.plan_steps(60.0, 0.5, max_steps=3) == (3, 1)
    assert gt.plan_steps(1.0, 10.0) == (2, 1)  # never fewer than 2 steps


def test_defaults_and_bad_arguments():
    full, smoke = gt.parse_args([]), gt.parse_args(["--smoke", "--minutes", "2"])
    assert (full.size, full.batch, full.minutes, full.precision, full.max_steps) == (256, 16, 4.0, "bf16", 0)
    assert full.timing_sizes == ((256, 256), (256, 512)) and full.models == list(gt.MODELS)
    assert (smoke.size, smoke.minutes, smoke.max_steps) == (32, 2.0, 3)  # an explicit option wins over the smoke value
    assert full.out == "benchmarks/results/gpu_translation.json" != smoke.out  # a smoke run never lands in the report
    for argv in (["--models", "spade"], ["--minutes", "0"], ["--size", "40"], ["--warmup-steps", "1"]):
        with pytest.raises(SystemExit):
            gt.parse_args(argv)


def test_camvid_settings_follow_its_entry_and_study():
    """CamVid at the paper's ASAPNet height: 256x352 (the 180x240 copy's aspect), its own result file, its
    study's label channels (12) and segmenter recipe (frozen Inception features on train + val)."""
    from lib.train.gan import gan_config

    full, smoke = gt.parse_args(["--dataset", "camvid"]), gt.parse_args(["--dataset", "camvid", "--smoke"])
    assert full.size == 256 and full.timing_sizes == ((256, 352), (256, 512))  # as trained, and the paper's size
    assert full.out == "benchmarks/results/gpu_translation_camvid.json" and full.work == "data/processed/gpu_translation_camvid"
    assert full.segmenter_dir == "data/processed/segmenter/camvid"
    assert smoke.timing_sizes == ((32, 44), (32, 64)) and smoke.out == "benchmarks/results/gpu_translation_camvid_smoke.json"
    with pytest.raises(SystemExit):
        gt.parse_args(["--dataset", "cityscapes"])
    settings = gt.load_settings(full)
    stage = settings["train_translation"]
    assert stage.dataset == "camvid" and stage.paired().num_classes == 11
    cfg = gt.generator_config("asapnet", dict(gan_config(stage, "asapnet").generator_cfg), 256, smoke=False)
    assert (cfg["label_nc"], cfg["lr_max_width"], cfg["learned_ds_factor"]) == (12, 1024, 16)
    assert settings["train_segmenter"].arch == "inception" and settings["train_segmenter"].train_splits == ("train", "val")


def test_cuda_missing_is_a_clear_error(capsys):
    if gt.torch.cuda.is_available():
        pytest.skip("CUDA present")
    assert gt.main([]) == 2
    assert "--device cpu --smoke" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path, data_mirror, monkeypatch):
    """The documented smoke command: both models trained, timed and evaluated; then a run without pytorch-fid."""
    from lib.report import gpu
    from lib.translation import evaluate as ev

    out, work, root = tmp_path / "gpu.json", tmp_path / "work", data_mirror / "facades"
    assert gt.main(["--device", "cpu", "--smoke", "--out", str(out), "--work", str(work), "--data-root", str(root),
                    "--segmenter-dir", str(tmp_path / "none")]) == 0
    data = json.loads(out.read_text())
    assert data["complete"] and data["smoke"] and data["batch"] == 4 and data["environment"]["device"] == "cpu"
    for name in gt.MODELS:
        m = data["models"][name]
        assert m["steps"] == m["planned_steps"] == m["eval_step"] == 3 and not m["stopped_by_budget"]
        assert m["precision"] == "bf16" and m["train_seconds"] > 0 and m["warmup_steps"] == 2
        assert [c["step"] for c in data["curve"] if c["model"] == name] == [1, 2, 3]  # curve_steps(3, 6)
    asap = make_config("asapnet", data["models"]["asapnet"]["generator_cfg"])
    assert (asap.height, asap.learned_factor) == (32, 2)
    assert {(r["model"], r["height"], r["width"], r["precision"]) for r in data["timing"]} == {
        (m, h, w, p) for m in gt.MODELS for h, w in ((32, 32), (32, 64)) for p in gt.TIMING_PRECISIONS}
    assert all(r["median_ms"] > 0 for r in data["timing"])
    rows = {r["model"]: r for r in data["quality"]}
    assert list(rows) == [*gt.MODELS, "real"] and all(set(ev.ROW_COLUMNS) <= set(r) for r in rows.values())
    assert (data["fid_note"] is None) == all(math.isfinite(float(r["fid"])) for r in rows.values())
    assert data["segmenter"]["source"] == "trained here"

    # without pytorch-fid (as on a machine that lacks it), reusing the first run's segmenter: mIoU alone, equal to the first run's
    for mod in {"pytorch_fid", "pytorch_fid.inception", "pytorch_fid.fid_score", *(m for m in sys.modules if m.startswith("pytorch_fid"))}:
        monkeypatch.setitem(sys.modules, mod, None)  # importing it raises ImportError
    out2 = tmp_path / "no_fid.json"
    assert gt.main(["--device", "cpu", "--smoke", "--out", str(out2), "--work", str(tmp_path / "work2"), "--data-root", str(root),
                    "--segmenter-dir", str(work / "segmenter"), "--models", "asapnet"]) == 0
    no_fid = json.loads(out2.read_text())
    assert no_fid["segmenter"]["source"] == f"reused {work / 'segmenter'}"  # the first run's, trained at this size
    assert "not computed: ModuleNotFoundError" in no_fid["fid_note"] and no_fid["curve"] == [] and no_fid["complete"]
    for row in no_fid["quality"]:
        assert set(ev.ROW_COLUMNS) <= set(row) and math.isnan(float(row["fid"])) and math.isnan(float(row["kid"]))
        assert (row["miou"], row["pixel_accuracy"]) == (rows[row["model"]]["miou"], rows[row["model"]]["pixel_accuracy"])

    table, caption = gpu.gpu_translation_section(out)
    assert list(table.index) == ["ASAPNet", "pix2pixHD", "real photos"] and caption.startswith("**SMOKE run**")
    assert list(table["steps"][:2]) == [3, 3]


@pytest.mark.slow
def test_camvid_smoke_run_end_to_end(tmp_path, data_mirror):
    """The CamVid smoke command: both models on the mirror copy at 32x44, its segmenter trained here."""
    out, work = tmp_path / "gpu.json", tmp_path / "work"
    assert gt.main(["--device", "cpu", "--smoke", "--dataset", "camvid", "--out", str(out), "--work", str(work),
                    "--data-root", str(data_mirror / "camvid"), "--segmenter-dir", str(tmp_path / "none")]) == 0
    data = json.loads(out.read_text())
    assert data["complete"] and (data["dataset"], data["size"]) == ("camvid", [32, 44])
    assert {(r["height"], r["width"]) for r in data["timing"]} == {(32, 44), (32, 64)}
    assert "inception" in data["segmenter"]["description"] and len(data["quality"]) == 3
    assert all(0 <= float(r["miou"]) <= 1 for r in data["quality"])
