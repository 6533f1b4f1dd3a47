"""The denoising section's tables and plot data, on a synthetic metrics file."""
from __future__ import annotations

import pandas as pd
import pytest

from lib import report


def _eval_json():
    runs = [
        {"run": "dncnn_gray", "label": "DnCNN (ours)", "data": "train400", "change": "DnCNN", "params": 667073, "gmacs": 102.6},
        {"run": "asapnet_plain", "label": "plain", "data": "train400", "change": "plain", "params": 723233, "gmacs": 1.27},
        {"run": "asapnet_residual", "label": "residual", "data": "train400", "change": "+ residual", "params": 723233, "gmacs": 1.27},
        {"run": "asapnet_color", "label": "color", "data": "cbsd432", "change": "x", "params": 1, "gmacs": 1.0},
    ]
    psnr = {"official_dncnn_b_gray": 29.0, "dncnn_gray": 28.0, "asapnet_plain": 20.0, "asapnet_residual": 24.5}
    summary = [
        {"set": "bsd68", "model": m, "kind": "x", "sigma": s, "n_images": 4, "psnr": v + (15 - s) / 10, "ssim": 0.5,
         "psnr_noisy": 20.17 if s == 25 else 15.0, "seconds_per_image": 1.0,
         "published_psnr": 29.16 if (m == "official_dncnn_b_gray" and s == 25) else "nan"}
        for m, v in psnr.items() for s in (15.0, 25.0)
    ]
    bm3d = [dict(summary[0], model="bm3d", kind="classical", n_images=1, psnr=27.0, published_psnr=28.57)]
    meta = {"best_variant": "asapnet_residual", "scale": "default", "images": {"bsd68": ["a", "b", "c", "d"]},
            "bm3d_images": {"bsd68": ["a"]}, "hardware": {"device": "cpu", "cpu_model": "AMD EPYC", "threads": 2}}
    return {"meta": meta, "runs": runs, "summary": summary, "bm3d_subset": bm3d}


def _timing():
    ms = {"dncnn_gray": 2500.0, "asapnet_plain": 40.0, "asapnet_residual": 50.0}
    return pd.DataFrame([{"model": m, "height": 321, "width": 481, "median_ms": v} for m, v in ms.items()])


def test_psnr_table_orders_rows_and_brackets_published_values():
    table = report.denoise_psnr_table(_eval_json())
    assert list(table.index) == ["DnCNN-B (official weights)", "DnCNN (ours)", "plain", "residual"]
    col = ("BSD68 (4 images)", "σ=25")
    assert table.loc["DnCNN-B (official weights)", col] == "28.00 (29.16)"  # sigma 25: 29.0 - 1
    assert table.loc["residual", col] == "23.50"  # no published value: no bracket
    ssim = report.denoise_psnr_table(_eval_json(), metric="ssim")
    assert ssim.loc["plain", col] == "0.5000"


def test_ablation_table_gain_over_the_row_above():
    train = {"asapnet_residual": {"steps": 200, "train_seconds": 120.0}}
    table = report.denoise_ablation_table(_eval_json(), _timing(), train)
    assert list(table.index) == ["dncnn_gray", "asapnet_plain", "asapnet_residual"]  # gray runs only
    assert table.loc["asapnet_residual", "Δ σ=25"] == pytest.approx(4.5)
    assert table.loc["asapnet_residual", "ms 481x321"] == 50.0
    assert table.loc["asapnet_residual", "train min"] == pytest.approx(2.0)


def test_psnr_vs_time_points():
    per_image = pd.DataFrame([
        {"set": "bsd68", "model": "bm3d", "name": "a", "sigma": 25.0, "psnr": 27.0, "seconds": 17.0},
    ])
    fig, pts = report.plot_psnr_vs_time(_eval_json(), _timing(), per_image)
    at25 = pts[pts["sigma"] == 25.0].set_index("model")
    assert at25.loc["official_dncnn_b_gray", "ms"] == 2500.0  # same architecture as our DnCNN
    assert at25.loc["bm3d", "ms"] == pytest.approx(17000.0)
    assert at25.loc["asapnet_residual", "psnr"] == pytest.approx(23.5)
    assert len(fig.axes) == 2  # one panel per sigma


def test_findings_quote_the_numbers():
    text = report.denoise_findings(_eval_json(), _timing())
    assert "asapnet_residual" in text
    assert "-3.50 vs our DnCNN" in text and "-4.50 vs the official DnCNN-B" in text  # at sigma 25
    assert "50.0x faster" in text  # 2500 ms / 50 ms
    assert "does not average the noise away" not in text  # residual is 4.3 dB above the noisy input


def test_grid_table_shows_training_patch_and_gain_per_crop():
    ev = _eval_json()
    ev["grid_check"] = [
        {"model": "asapnet_plain", "crop": 64, "n_images": 3, "gain_db": 7.2},
        {"model": "asapnet_plain", "crop": 0, "n_images": 3, "gain_db": -1.8},
    ]
    train = {"asapnet_plain": {"patch_size": 64, "model_config": {"tile_size": 8}}}
    table = report.denoise_grid_table(ev, train)
    assert table.loc["asapnet_plain", "64x64 crop"] == 7.2
    assert table.loc["asapnet_plain", "full image"] == -1.8
    assert table.loc["asapnet_plain", "train patch"] == 64 and table.loc["asapnet_plain", "tile"] == 8


def test_findings_name_runs_that_only_work_at_their_training_grid():
    ev = _eval_json()
    ev["grid_check"] = [
        {"model": "asapnet_residual", "crop": 64, "n_images": 3, "gain_db": 7.2},
        {"model": "asapnet_residual", "crop": 0, "n_images": 3, "gain_db": -1.8},
        {"model": "asapnet_plain", "crop": 64, "n_images": 3, "gain_db": 1.0},
        {"model": "asapnet_plain", "crop": 0, "n_images": 3, "gain_db": 0.5},
    ]
    train = {"asapnet_residual": {"patch_size": 64}, "asapnet_plain": {"patch_size": 64}}
    text = report.denoise_findings(ev, _timing(), train=train)
    assert "asapnet_residual (+7.2 dB on 64-px crops" in text and "-1.8 dB on full images" in text
    assert "asapnet_plain (" not in text  # lost only 0.5 dB
