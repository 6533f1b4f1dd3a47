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
    assert list(table.index) == ["asapnet_plain", "asapnet_residual", "dncnn_gray"]  # runs evaluated on BSD68, grouped
    assert list(table["group"]) == ["ASAPNet rows", "ASAPNet rows", "plain CNNs"]
    assert table.loc["asapnet_residual", "Δ σ=25"] == pytest.approx(4.5)  # a file without ablation_delta: the two means
    assert table.loc["asapnet_residual", "95% CI σ=25"] == "–"
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


def test_files_without_parents_walk_the_variants_table():
    """A runs table without ``parent`` (older files): an ASAPNet row's parent follows the models' own
    table of base rows (lib.models.asapnet_denoise.VARIANT_BASE), not a copy of it."""
    from lib.models.asapnet_denoise import VARIANT_BASE

    runs = {f"asapnet_{v}": ("asapnet_denoise", v, "train400", 20.0) for v in VARIANT_BASE}
    parents = denoise.ablation_parents(_eval_json(runs))
    assert parents == {f"asapnet_{v}": (f"asapnet_{b}" if b else None) for v, b in VARIANT_BASE.items()}


def test_psnr_vs_time_points():
    ev = _eval_json()
    ev["bm3d_subset"][0].update(sigma=25.0, seconds_per_image=17.0)  # BM3D on the first image only at sigma 25
    fig, pts = denoise.plot_psnr_vs_time(ev, _timing())
    at25 = pts[(pts["set"] == "bsd68") & (pts["sigma"] == 25.0)].set_index("model")
    assert at25.loc["official_dncnn_b_gray", "ms"] == 2500.0  # same architecture as our DnCNN
    assert at25.loc["bm3d", "ms"] == pytest.approx(17000.0) and at25.loc["bm3d", "label"] == "BM3D (1 images)"
    assert at25.loc["asapnet_residual", "psnr"] == pytest.approx(24.5)
    assert at25[["ci_low", "ci_high"]].isna().all().all()  # a file without psnr_interval: no bars
    assert len(fig.axes) == 1  # the headline sigma only; no colour points in this file


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
    fig, pts = denoise.plot_psnr_vs_time(ev, timing)
    at25 = pts[pts["sigma"] == 25.0].set_index("model")
    assert at25["cnn"].to_dict() == {m: m.startswith(("dncnn", "cnn")) for m in at25.index}
    assert at25.loc["official_dncnn_b_gray", "ms"] == 2500.0  # the network of our DnCNN-20, not of a small CNN
    dashed = [line for line in fig.axes[0].get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and list(dashed[0].get_xdata()) == [60.0, 200.0, 2500.0]  # the plain CNNs' front


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
    fig, pts = denoise.plot_psnr_vs_time(ev, other)
    assert list(pts["model"]) == ["bm3d"]  # only BM3D, timed by the evaluation itself


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
    text = " ".join(rd.grid_findings(ev, train, 25))
    assert "a (+8.0 dB on 128-px crops" in text and "+4.0 dB on full images" in text
    assert "b (+7.0 dB" in text and "+7.1 dB on full images" in text
    assert "same pixels" in rd.grid_caption(ev) and "; 68 BSD68 images; each cell" in rd.grid_caption(ev)
    colour = {"grid_check": [dict(r, set="bsd68") for r in ev["grid_check"]]
              + [{"model": "c", "crop": 0, "n_images": 10, "sigma": 25, "gain_db": 9.0, "crop_minus_full_db": 0.0,
                  "set": "cbsd68"}]}
    assert "68 BSD68 images (grey runs), 10 CBSD68 images (colour runs); each cell" in rd.grid_caption(colour)


# ----------------------------------------------------------------------------- the full study: parents, deltas, intervals,
# longer training, colour

# run -> (model, variant, data, parent, ms per 481x321 image, PSNR at sigma 25 on BSD68 or CBSD68, GMAC)
STUDY = {
    "dncnn_gray": ("dncnn", None, "train400", None, 2500.0, 28.0, 102.6),
    "cnn_9x32": ("dncnn", None, "train400", "dncnn_gray", 70.0, 27.2, 2.9),
    "cnn_7x16": ("dncnn", None, "train400", "dncnn_gray", 30.0, 26.9, 1.8),
    "asapnet_plain": ("asapnet_denoise", "plain", "train400", None, 20.0, 20.0, 1.3),
    "asapnet_residual": ("asapnet_denoise", "residual", "train400", "asapnet_plain", 22.0, 24.0, 1.3),
    "asapnet_kernel": ("asapnet_denoise", "kernel", "train400", "asapnet_residual", 35.0, 26.0, 1.4),
    "asapnet_kernel_bilinear": ("asapnet_denoise", "kernel_bilinear", "train400", "asapnet_kernel", 36.0, 26.2, 1.4),
    "asapnet_hybrid_kernel": ("asapnet_denoise", "hybrid_kernel", "train400", "asapnet_kernel_bilinear", 50.0, 26.8, 2.0),
    "asapnet_hybrid_kernel_4x": ("asapnet_denoise", "hybrid_kernel", "train400", "asapnet_hybrid_kernel", 50.0, 27.3, 2.0),
    "cnn_7x16_4x": ("dncnn", None, "train400", "cnn_7x16", 30.0, 27.0, 1.8),
    "dncnn_color": ("dncnn", None, "cbsd432", None, 2700.0, 29.5, 104.0),
    "asapnet_hybrid_kernel_color": ("asapnet_denoise", "hybrid_kernel", "cbsd432", None, 60.0, 28.4, 2.2),
}
LONGER = ["asapnet_hybrid_kernel_4x", "cnn_7x16_4x"]
OTHERS = {("bsd68", "official_dncnn_b_gray"): 29.2, ("bsd68", "bm3d"): 28.6, ("cbsd68", "official_cdncnn_b_color"): 30.7}
INCLUDES_ZERO = "asapnet_kernel_bilinear"  # its delta's interval includes 0


def _study():
    """A ``denoise_eval.json`` with every field the evaluation stage writes now (sigma 15 = sigma 25 + 2 dB)."""
    runs = [{"run": n, "label": n, "model": m, "variant": v, "data": d, "parent": p, "params": 1e5, "gmacs": g,
             "change": f"4x the training budget of {p}" if n in LONGER else f"change of {n}"}
            for n, (m, v, d, p, _, _, g) in STUDY.items()]
    psnr = {("cbsd68" if d == "cbsd432" else "bsd68", n): v for n, (_, _, d, _, _, v, _) in STUDY.items()}
    psnr.update(OTHERS)
    summary = [{"set": st, "model": m, "kind": "ours", "sigma": sg, "n_images": 68, "psnr": v + (25 - sg) / 5,
                "ssim": 0.8, "psnr_noisy": 20.17, "seconds_per_image": 2.6 if m == "bm3d" else 0.5, "published_psnr": "nan"}
               for (st, m), v in psnr.items() for sg in (15.0, 25.0) if not (m == "bm3d" and sg == 15.0)]
    subset = [{"set": "bsd68", "model": "bm3d", "kind": "classical", "sigma": 15.0, "n_images": 10, "psnr": 30.9,
               "seconds_per_image": 2.5, "psnr_noisy": 24.6},
              *({"set": "cbsd68", "model": m, "kind": "ours", "sigma": 25.0, "n_images": 10, "psnr": v,
                 "seconds_per_image": 7.0 if m == "bm3d" else 0.5, "psnr_noisy": 20.2}
                for m, v in (("bm3d", 29.9), ("dncnn_color", 29.6), ("asapnet_hybrid_kernel_color", 28.1)))]
    deltas = []
    for n, (_, _, d, p, _, v, _) in STUDY.items():
        if p is not None:
            diff = v - STUDY[p][5]
            low, high = (-0.05, 0.45) if n == INCLUDES_ZERO else (diff - 0.1, diff + 0.1)
            deltas.append({"set": "bsd68", "sigma": 25.0, "model_a": n, "model_b": p, "n_images": 68, "mean_diff": diff,
                           "ci_low": low, "ci_high": high, "level": 0.95, "n_boot": 2000, "wins_a": 40})
    intervals = [{"set": st, "sigma": 25.0, "model": m, "n_images": 68, "psnr": v, "ci_low": v - 0.3, "ci_high": v + 0.25,
                  "level": 0.95, "n_boot": 2000} for (st, m), v in psnr.items()]
    paired = [{"set": "bsd68", "sigma": 25.0, "model_a": "asapnet_hybrid_kernel", "model_b": b, "n_images": 68,
               "mean_diff": 26.8 - STUDY[b][5], "ci_low": 26.7 - STUDY[b][5], "ci_high": 26.9 - STUDY[b][5],
               "level": 0.95, "n_boot": 2000, "wins_a": 20} for b in ("dncnn_gray", "cnn_7x16")]
    meta = {"best_variant": "asapnet_hybrid_kernel", "reference_cnn": "dncnn_gray", "rival_cnn": "cnn_7x16",
            "longer_training": LONGER, "bm3d_full_sigmas": {"bsd68": [25.0]}, "scale": "default",
            "images": {"bsd68": [f"b{i}" for i in range(68)], "cbsd68": [f"c{i}" for i in range(68)]},
            "bm3d_images": {"bsd68": [f"b{i}" for i in range(68)], "cbsd68": [f"c{i}" for i in range(10)]},
            "hardware": {"device": "cpu", "cpu_model": "AMD EPYC", "threads": 2}}
    timing = pd.DataFrame([{"model": n, "height": 321, "width": 481, "median_ms": c[4]} for n, c in STUDY.items()])
    return {"meta": meta, "runs": runs, "summary": summary, "bm3d_subset": subset, "ablation_delta": deltas,
            "psnr_interval": intervals, "paired_difference": paired, "grid_check": []}, timing


def _loss_curve(end_drop: float, steps: int = 800) -> pd.DataFrame:
    """A loss logged every 25 steps, the lr dropped 10x at 80% (the loss halves there), then falling by
    ``end_drop`` (a fraction) from the drop to the end, exponentially."""
    step = np.arange(25, steps + 1, 25)
    after = step >= 0.8 * steps
    rate = -np.log(1 - end_drop) / (steps - step[after][0])
    loss = np.where(after, 0.004 * np.exp(-rate * (step - step[after][0])), 0.008)
    return pd.DataFrame({"step": step, "loss": loss, "lr": np.where(after, 1e-4, 1e-3)})


def test_parents_come_from_the_runs_table():
    ev, _ = _study()
    parents = denoise.ablation_parents(ev)
    assert parents["asapnet_hybrid_kernel"] == "asapnet_kernel_bilinear"  # as written, not walked from the variants
    assert parents["asapnet_hybrid_kernel_4x"] == "asapnet_hybrid_kernel" and parents["cnn_7x16_4x"] == "cnn_7x16"
    assert parents["dncnn_gray"] is None and parents["asapnet_hybrid_kernel_color"] is None


def test_ablation_table_delta_and_interval_are_the_paired_records():
    ev, timing = _study()
    table = denoise.denoise_ablation_table(ev, timing, {}, sigma=25.0)
    records = {r["model_a"]: r for r in ev["ablation_delta"]}
    for run, row in table.iterrows():
        rec = records.get(run)
        if rec is None:
            assert pd.isna(row["Δ σ=25"]) and row["95% CI σ=25"] == "–"
            continue
        assert row["parent"] == rec["model_b"]
        assert row["Δ σ=25"] == pytest.approx(round(rec["mean_diff"], 3))
        assert row["95% CI σ=25"] == f"[{rec['ci_low']:+.2f}, {rec['ci_high']:+.2f}]"
    assert table.loc[INCLUDES_ZERO, "95% CI σ=25"] == "[-0.05, +0.45]"
    # grouped: the ASAPNet chain, the filter rows, the hybrid rows, the plain CNNs (most MACs first), longer training
    assert list(table.index) == ["asapnet_plain", "asapnet_residual", "asapnet_kernel", "asapnet_kernel_bilinear",
                                 "asapnet_hybrid_kernel", "dncnn_gray", "cnn_9x32", "cnn_7x16",
                                 "asapnet_hybrid_kernel_4x", "cnn_7x16_4x"]
    assert table.loc["cnn_7x16_4x", "group"] == "longer training" and table.loc["asapnet_kernel", "group"] == "filter rows"


def test_front_marks_exactly_the_non_dominated_points():
    ev, timing = _study()
    fig, pts = denoise.plot_psnr_vs_time(ev, timing)
    for (_, _), g in pts.groupby(["set", "sigma"]):
        for i, p in g.iterrows():
            others = g.drop(index=i)
            dominated = ((others["ms"] <= p["ms"]) & (others["psnr"] >= p["psnr"])
                         & ((others["ms"] < p["ms"]) | (others["psnr"] > p["psnr"]))).any()
            assert p["on_front"] == (not dominated), (p["model"], p["sigma"])
    at25 = pts[(pts["set"] == "bsd68") & (pts["sigma"] == 25.0)].set_index("model")
    assert sorted(at25.index[at25["on_front"]]) == ["asapnet_hybrid_kernel_4x", "asapnet_plain", "asapnet_residual",
                                                   "cnn_7x16_4x", "official_dncnn_b_gray"]
    assert at25.loc["bm3d", "ms"] == pytest.approx(2600.0) and at25.loc["bm3d", "n_images"] == 68  # every image at 25
    assert at25.loc["cnn_7x16", "ci_low"] == pytest.approx(26.6) and at25.loc["cnn_7x16", "ci_high"] == pytest.approx(27.15)
    assert at25.loc["asapnet_hybrid_kernel_4x", "longer"] and not at25.loc["asapnet_hybrid_kernel", "longer"]
    at15 = pts[(pts["set"] == "bsd68") & (pts["sigma"] == 15.0)].set_index("model")
    assert at15.loc["bm3d", "n_images"] == 10 and at15.loc["bm3d", "psnr"] == pytest.approx(30.9)  # the subset's row
    assert len(fig.axes) == 2  # BSD68 and CBSD68 at the headline sigma
    ringed = [c for c in fig.axes[0].collections if c.get_gid() == "front"]
    assert len(ringed) == 1 and len(ringed[0].get_offsets()) == 5  # the five front points of BSD68


def test_findings_quote_the_changes_with_their_intervals_and_times():
    ev, timing = _study()
    text = denoise.denoise_findings(ev, timing, sigma=25.0)
    assert "asapnet_residual over asapnet_plain: +4.00 dB [+3.90, +4.10]; 22 ms vs 20 ms" in text  # the largest gain
    assert "asapnet_kernel_bilinear over asapnet_kernel: +0.20 dB [-0.05, +0.45] (interval includes 0); 36 ms vs 35 ms" in text
    assert text.split("Largest gains: ")[1].startswith("asapnet_residual over asapnet_plain")  # the largest first
    filters = text.split("The other predicted-filter rows")[1].split("\n")[0]
    assert "asapnet_kernel_bilinear over asapnet_kernel" in filters  # the one filter row not among the largest gains
    assert "asapnet_kernel over asapnet_residual" not in filters and "asapnet_residual over" not in filters
    assert "Largest losses" not in text  # no change loses here
    assert "asapnet_hybrid_kernel minus cnn_7x16 (the plain CNN the verdict rests on): -0.10 dB" in text
    assert "and 30 ms for cnn_7x16 (1.67x its time)" in text


def test_findings_on_longer_training_and_the_front():
    ev, timing = _study()
    losses = {"asapnet_hybrid_kernel": _loss_curve(0.005), "asapnet_hybrid_kernel_4x": _loss_curve(0.10)}
    text = denoise.denoise_findings(ev, timing, sigma=25.0, losses=losses)
    more = text.split("**More training**")[1].split("\n")[0]
    assert ("asapnet_hybrid_kernel_4x (4x the training budget of asapnet_hybrid_kernel): +0.50 dB [+0.40, +0.60] over "
            "asapnet_hybrid_kernel") in more
    assert ("asapnet_hybrid_kernel is off the Pareto front of the equal-budget models, asapnet_hybrid_kernel_4x on that "
            "of all models (moves onto it)") in more
    assert "cnn_7x16 is on the Pareto front of the equal-budget models, cnn_7x16_4x on that of all models." in more
    assert "asapnet_hybrid_kernel flat (" in more and "asapnet_hybrid_kernel_4x still falling (-10.0%" in more
    assert ("-0.10 dB (asapnet_hybrid_kernel vs cnn_7x16) at the shared budget, +0.30 dB (asapnet_hybrid_kernel_4x vs "
            "cnn_7x16_4x) with both trained longer") in text and "more training changes which of the two is better" in text
    front = text.split("**On the Pareto front**")[1].split("\n")[0]
    assert "ASAPNet-derived among them: asapnet_plain, only as the fastest model of all; asapnet_residual; " \
           "asapnet_hybrid_kernel_4x (longer training)" in front
    # the plain-CNN front at equal budget: the 4x runs are on neither side
    assert "asapnet_hybrid_kernel (26.80 dB, 50 ms) by cnn_7x16 (26.90 dB, 30 ms)" in text
    assert "asapnet_hybrid_kernel_4x (27.30 dB" not in text.split("Dominated by a plain CNN")[1]


def test_findings_without_an_asapnet_run_on_the_front_say_so():
    ev, timing = _study()
    for r in ev["summary"]:  # a faster, better plain CNN than every ASAPNet run
        if r["model"] == "cnn_7x16_4x":
            r["psnr"] += 1.0
    slow = timing.assign(median_ms=[ms if m != "cnn_7x16_4x" else 10.0 for m, ms in zip(timing["model"], timing["median_ms"])])
    text = denoise.denoise_findings(ev, slow, sigma=25.0)
    assert "**No ASAPNet-derived run is on the Pareto front** of all models at σ=25 on BSD68 (ours, the official DnCNN, BM3D" in text


def test_colour_findings_use_the_cbsd68_numbers():
    ev, timing = _study()
    text = denoise.denoise_findings(ev, timing, sigma=25.0)
    colour = text.split("**Colour**")[1].split("\n")[0]
    assert colour.startswith(" (CBSD68, σ=25, 68 images;")
    assert "dncnn_color 29.50 dB [29.20, 29.75] in 2700 ms" in colour
    assert "asapnet_hybrid_kernel_color 28.40 dB [28.10, 28.65] in 60 ms, -1.10 dB vs dncnn_color at 45.0x its speed" in colour
    assert "CDnCNN-B (official weights) 30.70 dB [30.40, 30.95] in 2700 ms" in colour  # our CDnCNN-20's network and time
    assert ("CBM3D ran on the first 10 images only: 29.90 dB, against dncnn_color 29.60 dB, asapnet_hybrid_kernel_color "
            "28.10 dB on the same images") in colour
    assert ("dncnn_color is 1.20 dB below the CDnCNN-B (official weights), the same network (grey: dncnn_gray 1.20 dB "
            "below the DnCNN-B (official weights)).") in colour
    assert "trained much less well" not in colour
    table = denoise.denoise_color_table(ev, timing)
    assert list(table.index) == ["CDnCNN-B (official weights)", "CBM3D", "dncnn_color", "asapnet_hybrid_kernel_color"]
    assert table.loc["CBM3D", "PSNR σ=25"] == "29.90 (10 images)" and table.loc["dncnn_color", "PSNR σ=25"] == "29.50"
    assert table.loc["dncnn_color", "95% CI σ=25"] == "[29.20, 29.75]" and table.loc["CBM3D", "ms 481x321"] == "7,000"


def test_loss_trend_threshold():
    assert denoise.LOSS_STILL_FALLING == pytest.approx(0.02)
    steep, flat = denoise.loss_trend(_loss_curve(0.10)), denoise.loss_trend(_loss_curve(0.01))
    assert steep["drop"] == pytest.approx(0.10, abs=1e-6) and flat["drop"] == pytest.approx(0.01, abs=1e-6)
    assert steep["first_step"] == 650  # the first row at the final learning rate: the drop itself is no trend
    assert denoise.loss_trend_text(_loss_curve(0.10)).startswith("still falling (-10.0% ± 0.0% over steps 650-800)")
    assert denoise.loss_trend_text(_loss_curve(0.01)).startswith("flat (-1.0%")
    just = 1.5 * denoise.LOSS_STILL_FALLING  # above the threshold, but within the noise
    noisy = _loss_curve(just)
    noisy.loc[noisy["step"] >= 650, "loss"] *= np.tile([1.3, 0.75], 10)[: int((noisy["step"] >= 650).sum())]
    assert denoise.loss_trend_text(noisy).startswith("no clear trend")
    assert denoise.loss_trend(_loss_curve(0.1).head(3)) is None


def test_budget_caption_says_where_bm3d_ran_on_every_image():
    ev, _ = _study()
    train = {"cnn_7x16": {"steps": 8000, "batch_size": 16, "patch_size": 40, "pixel_samples": 204.8e6},
             "cnn_7x16_4x": {"steps": 32000, "batch_size": 16, "patch_size": 40, "pixel_samples": 819.2e6}}
    text = denoise.denoise_budget_caption(ev, train)
    assert "BM3D on BSD68: every image at σ=25, the first 10 at the other sigmas; CBM3D on CBSD68: the first 10 images" in text
    assert "except the longer-training runs (cnn_7x16_4x)" in text
    assert "Adam lr" not in text  # no run records its rate


def test_budget_caption_names_the_runs_trained_at_another_learning_rate():
    ev, _ = _study()
    run = {"steps": 8000, "batch_size": 16, "patch_size": 40, "pixel_samples": 204.8e6}
    train = {name: {**run, "train_config": {"lr": lr}}
             for name, lr in (("cnn_7x16", 1e-3), ("dncnn_gray", 1e-3), ("dncnn_color", 1e-4))}
    assert "; Adam lr 0.001 (dncnn_color: 0.0001)):" in denoise.denoise_budget_caption(ev, train)
    train["dncnn_color"]["train_config"]["lr"] = 1e-3
    assert "; Adam lr 0.001):" in denoise.denoise_budget_caption(ev, train)


def test_findings_without_a_residual_run_quote_no_residual_number():
    ev, timing = _cnn_study()  # plain trained, residual not
    text = denoise.denoise_findings(ev, timing, sigma=25.0)
    assert "20.00 dB at σ=25 against 20.17 dB for the noisy input itself:" in text
    assert "predicting the noise" not in text


def test_colour_findings_flag_a_colour_dncnn_that_trained_much_worse_than_its_grey_twin():
    ev, timing = _study()
    for r in ev["summary"]:  # the colour DnCNN-20 4.6 dB from the official weights, the grey one 1.2 dB
        if r["model"] == "dncnn_color":
            r["psnr"] -= 3.4
    colour = denoise.denoise_findings(ev, timing, sigma=25.0).split("**Colour**")[1].split("\n")[0]
    assert "dncnn_color is 4.60 dB below the CDnCNN-B (official weights), the same network (grey: dncnn_gray 1.20 dB" in colour
    assert "it trained much less well than its grey twin" in colour and "say little about the colour designs" in colour
    for r in ev["summary"]:  # within the margin of the grey gap (1.2 + 0.9 dB): no flag
        if r["model"] == "dncnn_color":
            r["psnr"] += 2.5
    colour = denoise.denoise_findings(ev, timing, sigma=25.0).split("**Colour**")[1].split("\n")[0]
    assert "2.10 dB below" in colour and "trained much less well" not in colour
