"""lib.report.gpu: the GPU run's table and caption from a hand-made results JSON, and the text when it has not run."""
from __future__ import annotations

import copy
import json
import math

import pytest

from lib.report import gpu

DATA = {
    "label": "NVIDIA H200, torch 2.11.0, CUDA 13.0",
    "environment": {"device": "cuda", "device_name": "NVIDIA H200", "torch_version": "2.11.0", "cuda_version": "13.0",
                    "cudnn_version": 91000},
    "smoke": False, "complete": True, "phase": "done", "dataset": "facades", "size": [256, 256], "batch": 16,
    "precision": "bf16", "minutes_per_model": 4.0, "budget_rule": "warm-up, then steps", "train_items": 318,
    "test_items": 60, "n_test_images": 60, "wall_seconds": 570.0, "fid_note": None,
    "segmenter": {"description": "unet (width 16) trained here"}, "smoothing": "mean of the last 3 points",
    "models": {
        "asapnet": {"params": 27_500_000, "steps": 2400, "train_seconds": 216.0, "images_per_second": 177.8,
                    "epochs": 120.75, "stopped_by_budget": False, "recipe": {"ema_decay": 0.999}},
        "pix2pixhd": {"params": 182_500_000, "steps": 900, "train_seconds": 220.0, "images_per_second": 65.5,
                      "epochs": 45.28, "stopped_by_budget": True, "recipe": {"ema_decay": 0.999}},
    },
    "timing": [
        {"model": m, "height": 256, "width": w, "precision": p, "median_ms": ms, "runs": 50, "timer": "cuda_event"}
        for m, base in (("asapnet", 2.0), ("pix2pixhd", 5.0)) for w in (256, 512) for p, ms in
        (("fp32", base * w / 256), ("bf16", base * w / 512))
    ],
    "quality": [
        {"model": "asapnet", "fid": 120.0, "kid": 0.08, "miou": 0.30, "pixel_accuracy": 0.6,
         "fid_smoothed": 118.0, "kid_smoothed": 0.075, "miou_smoothed": 0.31},
        {"model": "pix2pixhd", "fid": 130.0, "kid": 0.09, "miou": 0.28, "pixel_accuracy": 0.55},  # no curve
        {"model": "real", "fid": 60.0, "kid": 0.01, "miou": 0.45, "pixel_accuracy": 0.7},
    ],
}


def _write(tmp_path, data) -> str:
    path = tmp_path / "gpu_translation.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_not_run_yet_without_the_file(tmp_path):
    table, text = gpu.gpu_translation_section(tmp_path / "absent.json")
    assert table is None and "not run yet: no GPU was available" in text and gpu.RESULTS_FILE in text


def test_table_from_a_complete_run(tmp_path):
    table, caption = gpu.gpu_translation_section(_write(tmp_path, DATA))
    assert list(table.index) == ["ASAPNet", "pix2pixHD", "real photos"]
    a, p, r = (table.loc[k] for k in table.index)
    assert a["params (M)"] == pytest.approx(27.5) and a["train min"] == pytest.approx(3.6) and a["steps"] == 2400
    assert (a["FID"], a["KID"], a["mIoU"]) == (118.0, 0.075, 0.31)  # the smoothed values where the run has a curve
    assert (p["FID"], p["KID"], p["mIoU"]) == (130.0, 0.09, 0.28)  # else the last step's
    assert a["pixel acc."] == 0.6 and r["mIoU"] == 0.45
    assert math.isnan(r["params (M)"]) and math.isnan(r["ms 256x512 bf16"])  # no generator for the real photos
    ms = [c for c in table.columns if c.startswith("ms ")]
    assert ms == ["ms 256x256 fp32", "ms 256x256 bf16", "ms 256x512 fp32", "ms 256x512 bf16"]
    assert (a["ms 256x512 fp32"], p["ms 256x256 bf16"]) == (4.0, 2.5)
    for text in ("NVIDIA H200", "torch 2.11.0", "CUDA 13.0", "256x256", "batch 16", "bf16", "pix2pixHD 900 steps (stopped by the budget)",
                 "0.999", "median of 50 runs (cuda_event)"):
        assert text in caption
    assert "SMOKE" not in caption and "Incomplete" not in caption


def test_incomplete_run_and_missing_fid(tmp_path):
    data = copy.deepcopy(DATA)
    data.update(complete=False, phase="trained pix2pixhd", timing=[], quality=[], smoothing=None,
                fid_note="FID/KID not computed: FileNotFoundError: no weights")
    table, caption = gpu.gpu_translation_section(_write(tmp_path, data))
    assert list(table.index) == ["ASAPNet", "pix2pixHD"]  # no real row before the evaluation
    assert table["FID"].isna().all() and table["steps"].tolist() == [2400, 900]
    assert not any(c.startswith("ms ") for c in table.columns)
    assert caption.startswith("**Incomplete run** (last phase written: trained pix2pixhd)") and "no weights" in caption
