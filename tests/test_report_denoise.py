"""The denoising section's tables, plot data and text, on a synthetic metrics file."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.report import denoise

# run -> (model, variant, training data, PSNR on BSD68 at sigma 15; sigma 25 is 1 dB lower)
RUNS = {
    "dncnn_gray": ("dncnn", "nan", "train400", 29.0),  # lib.io writes None as "nan"
    "asapnet_plain": ("asapnet_denoise", "plain", "train400", 21.0),
    "asapnet_residual": ("asapnet_denoise", "residual", "train400", 25.5),
    "asapnet_color": ("asapnet_denoise", "small_tiles", "cbsd432", None),  # not evaluated on BSD68
}


def _eval_json(runs=RUNS):
    table = [{"run": name, "label": name.replace("asapnet_", "") if name != "dncnn_gray" else "DnCNN (ours)",
              "model": model, "variant": variant, "data": data, "change": variant, "params": 723233, "gmacs": 1.27}
             for name, (model, variant, data, _) in runs.items()]
    psnr = {"official_dncnn_b_gray": 30.0, **{name: v[3] for name, v in runs.items() if v[3] is not None}}
    summary = [
        {"set": "bsd68", "model": m, "kind": "official" if m.startswith("official") else "ours", "sigma": s,
         "n_images": 4, "psnr": v + (15 - s) / 10, "ssim": 0.5, "psnr_noisy": 20.17 if s == 25 else 24.6,
         "seconds_per_image": 1.0, "published_psnr": 29.16 if (m == "official_dncnn_b_gray" and s == 25) else "nan"}
        for m, v in psnr.items() for s in (15.0, 25.0)
    ]
    bm3d = [dict(summary[0], model="bm3d", kind="classical", n_images=1, psnr=27.0, published_psnr=28.57)]
    meta = {"best_variant": "asapnet_residual", "scale": "default", "images": {"bsd68": ["a", "b", "c", "d"]},
            "bm3d_images": {"bsd68": ["a"]}, "hardware": {"device": "cpu", "cpu_model": "AMD EPYC", "threads": 2}}
    return {"meta": meta, "runs": table, "summary": summary, "bm3d_subset": bm3d}


def _timing():
    ms = {"dncnn_gray": 2500.0, "asapnet_plain": 40.0, "asapnet_residual": 50.0}
    return pd.DataFrame([{"model": m, "height": 321, "width": 481, "median_ms": v} for m, v in ms.items()])


def test_psnr_table_orders_rows_and_brackets_published_values():
    table = denoise.denoise_psnr_table(_eval_json())
    assert list(table.index) == ["DnCNN-B (official weights)", "DnCNN (ours)", "plain", "residual"]
    col = ("BSD68 (4 images)", "σ=25")
    assert table.loc["DnCNN-B (official weights)", col] == "29.00 (29.16)"  # sigma 25: 30.0 - 1
    assert table.loc["residual", col] == "24.50"  # no published value: no bracket
    ssim = denoise.denoise_psnr_table(_eval_json(), metric="ssim")
    assert ssim.loc["plain", col] == "0.5000"


def test_ablation_table_costs_and_gray_runs_only():
    train = {"asapnet_residual": {"steps": 200, "train_seconds": 120.0}}
    table = denoise.denoise_ablation_table(_eval_json(), _timing(), train, sigma=25.0)
    assert list(table.index) == ["dncnn_gray", "asapnet_plain", "asapnet_residual"]  # runs evaluated on BSD68
    assert table.loc["asapnet_residual", "Δ σ=25"] == pytest.approx(4.5)
    assert pd.isna(table.loc["asapnet_plain", "Δ σ=25"])  # the chain's root: no parent, no gain
    assert pd.isna(table.loc["dncnn_gray", "Δ σ=25"])  # not in the chain
    assert table.loc["asapnet_residual", "ms 481x321"] == 50.0
    assert table.loc["asapnet_residual", "train min"] == pytest.approx(2.0)


def test_ablation_gain_is_over_the_parent_not_the_row_above():
    runs = {
        "asapnet_plain": ("asapnet_denoise", "plain", "train400", 21.0),
        "asapnet_residual": ("asapnet_denoise", "residual", "train400", 25.5),
        "asapnet_context_patch": ("asapnet_denoise", "context_patch", "train400", 20.0),
        "asapnet_context_conv": ("asapnet_denoise", "context_conv", "train400", 27.0),  # side row
        "asapnet_small_tiles": ("asapnet_denoise", "small_tiles", "train400", 22.0),
        "asapnet_color": ("asapnet_denoise", "residual", "cbsd432", None),  # no plain run on cbsd432
    }
    ev = _eval_json(runs)
    assert denoise.ablation_parents(ev) == {
        "asapnet_plain": None, "asapnet_residual": "asapnet_plain", "asapnet_context_patch": "asapnet_residual",
        "asapnet_context_conv": "asapnet_residual", "asapnet_small_tiles": "asapnet_context_patch",
        "asapnet_color": None,  # its parent variant was not trained on its data (not: asapnet_plain)
    }
    table = denoise.denoise_ablation_table(ev, _timing(), {}, sigma=15.0)
    gain = table["Δ σ=15"]
    assert gain["asapnet_context_conv"] == pytest.approx(27.0 - 25.5)  # the row above (context_patch) would give 7.0
    assert gain["asapnet_small_tiles"] == pytest.approx(22.0 - 20.0)  # the row above (context_conv) would give -5.0
    assert table.loc["asapnet_small_tiles", "parent"] == "asapnet_context_patch"


def test_ablation_chain_matches_the_model_variants():
    from lib.models.asapnet_denoise import VARIANTS

    assert set(denoise.ABLATION_PARENT) == set(VARIANTS)
    for child, parent in denoise.ABLATION_PARENT.items():
        if parent is not None:  # the child is its parent plus changes, nothing of the parent undone
            assert VARIANTS[parent].items() <= VARIANTS[child].items(), (child, parent)
            assert VARIANTS[parent] != VARIANTS[child]


def test_psnr_vs_time_points():
    per_image = pd.DataFrame([
        {"set": "bsd68", "model": "bm3d", "name": "a", "sigma": 25.0, "psnr": 27.0, "seconds": 17.0},
    ])
    fig, pts = denoise.plot_psnr_vs_time(_eval_json(), _timing(), per_image)
    at25 = pts[pts["sigma"] == 25.0].set_index("model")
    assert at25.loc["official_dncnn_b_gray", "ms"] == 2500.0  # same architecture as our DnCNN
    assert at25.loc["bm3d", "ms"] == pytest.approx(17000.0)
    assert at25.loc["asapnet_residual", "psnr"] == pytest.approx(24.5)
    assert len(fig.axes) == 2  # one panel per sigma


def test_findings_quote_the_numbers():
    text = denoise.denoise_findings(_eval_json(), _timing(), sigma=25.0)
    assert "asapnet_residual" in text
    assert "-3.50 vs our DnCNN" in text and "-4.50 vs the official DnCNN-B" in text  # at sigma 25
    assert "50.0x faster" in text  # 2500 ms / 50 ms
    assert "20.00 dB at σ=25 against 20.17 dB" in text  # the plain transfer at the headline sigma
    assert "does not average the noise away" not in text  # residual is 4.3 dB above the noisy input


def test_findings_follow_the_headline_sigma():
    text = denoise.denoise_findings(_eval_json(), _timing(), sigma=15.0)
    assert "21.00 dB at σ=15 against 24.60 dB" in text and "predicting the noise) 25.50 dB" in text
    assert "does not average the noise away" in text  # at sigma 15 the residual run is < 1 dB above the input


def test_grid_table_shows_training_patch_and_gain_per_crop():
    ev = _eval_json()
    ev["grid_check"] = [
        {"model": "asapnet_plain", "crop": 64, "n_images": 3, "gain_db": 7.2},
        {"model": "asapnet_plain", "crop": 0, "n_images": 3, "gain_db": -1.8},
    ]
    train = {"asapnet_plain": {"patch_size": 64, "model_config": {"tile_size": 8}}}
    table = denoise.denoise_grid_table(ev, train)
    assert table.loc["asapnet_plain", "64x64 crop"] == 7.2
    assert table.loc["asapnet_plain", "full image"] == -1.8
    assert table.loc["asapnet_plain", "train patch"] == 64 and table.loc["asapnet_plain", "tile"] == 8
    train["asapnet_plain"]["patch_sizes"] = [64, 128]
    assert denoise.denoise_grid_table(ev, train).loc["asapnet_plain", "train patch"] == "64/128"


def test_findings_name_runs_that_only_work_at_their_training_grid():
    ev = _eval_json()
    ev["grid_check"] = [
        {"model": "asapnet_residual", "crop": 64, "n_images": 3, "gain_db": 7.2},
        {"model": "asapnet_residual", "crop": 0, "n_images": 3, "gain_db": -1.8},
        {"model": "asapnet_plain", "crop": 64, "n_images": 3, "gain_db": 1.0},
        {"model": "asapnet_plain", "crop": 0, "n_images": 3, "gain_db": 0.5},
    ]
    train = {"asapnet_residual": {"patch_size": 64}, "asapnet_plain": {"patch_size": 64}}
    text = denoise.denoise_findings(ev, _timing(), train=train, sigma=25.0)
    assert "asapnet_residual (+7.2 dB on 64-px crops" in text and "-1.8 dB on full images" in text
    assert "asapnet_plain (+1.0 dB" not in text  # lost only 0.5 dB: neither lost nor robust
    assert "(grid-size check, σ=25)" in text
    for row in ev["grid_check"]:
        row["sigma"] = 50.0  # written by the evaluation stage: wins over the headline sigma
    assert "(grid-size check, σ=50)" in denoise.denoise_findings(ev, _timing(), train=train, sigma=25.0)


def test_crops_caption_lists_the_noise_levels():
    assert denoise.crops_caption([25.0, 50.0]).startswith("Crops at σ = 25 and 50 ")
    assert denoise.crops_caption([15.0, 25.0, 50.0]).startswith("Crops at σ = 15, 25 and 50 ")
    assert denoise.crops_caption([25.0]).startswith("Crops at σ = 25 ")


# ----------------------------------------------------------------------------- plain CNNs, Pareto front, bootstrap

CNN_RUNS = {  # run -> (model, variant, data, PSNR at sigma 15), with GMACs and ms below
    "dncnn_gray": ("dncnn", "nan", "train400", 29.0),
    "cnn_small": ("dncnn", "nan", "train400", 27.0),
    "cnn_tiny": ("dncnn", "nan", "train400", 26.0),
    "asapnet_plain": ("asapnet_denoise", "plain", "train400", 21.0),
    "asapnet_context_conv": ("asapnet_denoise", "context_conv", "train400", 26.5),
    "asapnet_grid_robust": ("asapnet_denoise", "grid_robust", "train400", 25.5),
}
CNN_COST = {"dncnn_gray": (102.6, 2500.0), "cnn_small": (8.6, 200.0), "cnn_tiny": (1.8, 60.0),
            "asapnet_plain": (1.3, 40.0), "asapnet_context_conv": (1.8, 150.0), "asapnet_grid_robust": (1.8, 150.0)}


def _cnn_study():
    ev = _eval_json(CNN_RUNS)
    for r in ev["runs"]:
        r["gmacs"] = CNN_COST[r["run"]][0]
    ev["meta"]["best_variant"] = "asapnet_context_conv"
    timing = pd.DataFrame([{"model": m, "height": 321, "width": 481, "median_ms": c[1]} for m, c in CNN_COST.items()])
    return ev, timing


def test_pareto_front_keeps_the_non_dominated_points():
    pts = pd.DataFrame({"ms": [10.0, 20.0, 30.0, 40.0, 50.0], "psnr": [25.0, 24.0, 27.0, 27.0, 28.0]})
    front = denoise.pareto_front(pts)
    assert list(front["ms"]) == [10.0, 30.0, 50.0]  # 20 ms is slower and worse than 10 ms; 40 ms no better than 30
    v = denoise.front_verdict(front, 35.0, 26.0)
    assert v["dominated_by"]["ms"] == 30.0 and v["margin_db"] == pytest.approx(26.0 - 27.0 - 1.0 * (np.log10(35 / 30) / np.log10(50 / 30)))
    above = denoise.front_verdict(front, 20.0, 26.5)
    assert above["dominated_by"] is None and above["margin_db"] > 0
    assert denoise.front_verdict(front, 5.0, 20.0)["margin_db"] is None  # faster than every CNN


def test_cnn_rows_have_the_reference_cnn_as_parent_and_skipped_rows_are_walked_over():
    ev, _ = _cnn_study()
    parents = denoise.ablation_parents(ev)
    assert denoise.reference_run(ev["runs"]) == "dncnn_gray"  # the largest CNN
    assert parents["dncnn_gray"] is None and parents["cnn_small"] == parents["cnn_tiny"] == "dncnn_gray"
    assert parents["asapnet_context_conv"] == "asapnet_plain"  # its parent (residual) was not trained
    assert parents["asapnet_grid_robust"] == "asapnet_context_conv"


def test_psnr_vs_time_marks_cnns_and_draws_their_front():
    ev, timing = _cnn_study()
    fig, pts = denoise.plot_psnr_vs_time(ev, timing, pd.DataFrame())
    at25 = pts[pts["sigma"] == 25.0].set_index("model")
    assert at25["cnn"].to_dict() == {m: m.startswith(("dncnn", "cnn")) for m in at25.index}
    assert at25.loc["official_dncnn_b_gray", "ms"] == 2500.0  # the network of our DnCNN-20, not of a small CNN
    front_lines = [line for line in fig.axes[0].get_lines() if line.get_label() == "plain-CNN Pareto front"]
    assert len(front_lines) == 1 and list(front_lines[0].get_xdata()) == [60.0, 200.0, 2500.0]


def test_findings_say_plainly_when_asapnet_is_dominated():
    ev, timing = _cnn_study()
    text = denoise.denoise_findings(ev, timing, sigma=25.0)
    assert "**ASAPNet is dominated** at σ=25" not in text  # the plain transfer is faster than every CNN
    assert "asapnet_context_conv (25.50 dB, 150 ms) by cnn_tiny (25.00 dB" not in text  # 25.5 > 25.0: not dominated
    assert "asapnet_grid_robust (24.50 dB, 150 ms) by cnn_tiny (25.00 dB, 60 ms)" in text
    assert "asapnet_context_conv is -0.26 dB from the plain-CNN front" in text  # 25.5 vs 25.0 + 1.0 * log(150/60)/log(200/60)
    slow = timing.assign(median_ms=[2500.0, 200.0, 60.0, 100.0, 150.0, 150.0])
    for r in ev["summary"]:
        if r["model"] == "asapnet_context_conv":
            r["psnr"] -= 1.0
    assert "**ASAPNet is dominated** at σ=25" in denoise.denoise_findings(ev, slow, sigma=25.0)


def test_findings_quote_the_paired_bootstrap_and_grid_robust_runs():
    ev, timing = _cnn_study()
    ev["paired_difference"] = [{"set": "bsd68", "sigma": 25.0, "model_a": "asapnet_context_conv", "model_b": "dncnn_gray",
                                "n_images": 68, "mean_diff": -3.5, "ci_low": -3.7, "ci_high": -3.3, "level": 0.95,
                                "n_boot": 2000, "wins_a": 0}]
    ev["grid_check"] = [{"model": "asapnet_grid_robust", "crop": c, "n_images": 3, "sigma": 25.0, "gain_db": g}
                        for c, g in [(64, 6.0), (176, 6.4), (0, 6.5)]]
    train = {"asapnet_grid_robust": {"patch_sizes": [64, 96, 128, 160, 176]}}
    text = denoise.denoise_findings(ev, timing, train=train, sigma=25.0)
    assert "asapnet_context_conv minus dncnn_gray: -3.50 dB (95% paired bootstrap interval [-3.70, -3.30] over 68 images" in text
    assert "-2.50 vs our DnCNN" in text  # 25.5 - 28.0: the reference CNN, not a smaller one
    assert "Grid-size robust" in text and "asapnet_grid_robust (+6.4 dB on 176-px crops, its largest training side" in text


def test_front_findings_and_plot_without_timing_at_the_plotted_size():
    """The smoke scale times other sizes only: no points, no front, no error."""
    ev, timing = _cnn_study()
    other = timing.assign(height=64, width=64)
    assert "Pareto front" not in denoise.denoise_findings(ev, other, sigma=25.0)
    fig, pts = denoise.plot_psnr_vs_time(ev, other, pd.DataFrame(columns=["model", "set", "sigma", "name", "psnr", "seconds"]))
    assert pts.empty


def test_grid_check_on_identical_pixels_reads_the_difference():
    """Results of the identical-pixel grid check: the table shows windows minus full image, and a run
    that loses on the full image is named with the full image's gain on the same pixels."""
    from lib.report import denoise as rd

    ev = {"grid_check": [
        {"model": "a", "crop": 128, "n_images": 68, "sigma": 25, "gain_db": 8.0, "crop_minus_full_db": 4.0},
        {"model": "a", "crop": 0, "n_images": 68, "sigma": 25, "gain_db": 3.0, "crop_minus_full_db": 0.0},
        {"model": "b", "crop": 128, "n_images": 68, "sigma": 25, "gain_db": 7.0, "crop_minus_full_db": -0.1},
        {"model": "b", "crop": 0, "n_images": 68, "sigma": 25, "gain_db": 7.1, "crop_minus_full_db": 0.0},
    ]}
    train = {m: {"patch_size": 128, "model_config": {"tile_size": 8}} for m in "ab"}
    table = rd.denoise_grid_table(ev, train)
    assert "128x128 windows − full image" in table.columns and table.loc["a", "128x128 windows − full image"] == 4.0
    text = " ".join(rd._grid_findings(ev, train, 25))
    assert "a (+8.0 dB on 128-px crops" in text and "+4.0 dB on full images" in text
    assert "b (+7.0 dB" in text and "+7.1 dB on full images" in text
    assert "same pixels" in rd.grid_caption(ev)
