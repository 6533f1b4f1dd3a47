"""The denoising study's run settings and evaluation helpers (tiny models and images)."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from lib.config import ConfigError
from lib.denoise import compare
from lib.denoise import evaluate as ev
from lib.denoise import figures, study
from lib.denoise.protocol import denoise, denoise_psnr, noise_fn
from lib.metrics.psnr_ssim import psnr, to_uint8
from lib.models import build
from lib.paths import ROOT
from lib.stages import load_stage

TINY_ASAP = {"lr_max_width": 16, "lr_depth": 1, "hr_width": 8}


def _stage(runs: dict, common: dict | None = None) -> study.TrainDenoiserStage:
    return study.TrainDenoiserStage(common=common or {"sigma_range": [10, 55], "batch_size": 2}, runs=runs)


def test_default_params_build_every_run_on_one_budget():
    _, stage = load_stage("train_denoiser", ROOT / "params.yaml")
    table = study.run_table(stage)
    budget = stage.common["budget_pixels"]
    for name in stage.runs:
        run, model_cfg, train_cfg = study.run_settings(stage, name)
        assert train_cfg.sigma_range == (10.0, 55.0)  # blind training range of the study
        assert model_cfg.in_channels == run.channels
        if run.model == "asapnet_denoise":
            # patches hold at least 4 tiles per side (shorter ones fail on full images)
            assert min(train_cfg.sizes) >= 4 * model_cfg.tile_size
    # every run sees the budget's pixel-samples, to within one step; a longer-training row repeats a run
    # with a whole multiple of it (and says so)
    one_step = table["batch_size"] * table["patch_sizes"].map(lambda s: max(s) ** 2)
    runs = {n: stage.runs[n] for n in table["run"]}
    times = table["run"].map(lambda n: runs[n].get("train", {}).get("budget_pixels", budget) // budget)
    longer = times > 1
    assert ((table["pixel_samples"] >= times * budget) & (table["pixel_samples"] < times * budget + one_step)).all(), table
    assert (table.loc[longer, "change"].str.contains("x the training budget of")).all()
    assert table.loc[~longer, "parent"].dropna().isin(table["run"]).all()


def test_dvc_foreach_runs_every_run_of_params():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    assert dvc["stages"]["train_denoiser"]["foreach"] == "${train_denoiser.runs}"  # DVC: one stage per run


def test_run_settings_merges_common_and_variant():
    stage = _stage({"a": {"model": "asapnet_denoise", "variant": "small_tiles", "data": "cbsd432",
                          "model_cfg": TINY_ASAP, "train": {"patch_size": 64, "lr": 1e-4}}})
    run, cfg, train = study.run_settings(stage, "a")
    assert run.channels == 3 and cfg.in_channels == 3
    assert cfg.tile_size == 8 and cfg.context == "patch3" and cfg.residual  # the variant's settings
    assert cfg.hr_width == 8  # the override over the variant
    assert train.batch_size == 2 and train.patch_size == 64 and train.lr == 1e-4


@pytest.mark.parametrize(
    "runs, name, match",
    [
        ({"a": {"model": "dncnn", "data": "train400"}}, "missing", "no 'missing'"),
        ({"a": {"model": "unet", "data": "train400"}}, "a", "model"),
        ({"a": {"model": "dncnn", "data": "bsd68"}}, "a", "data"),
        ({"a": {"model": "asapnet_denoise", "variant": "nope", "data": "train400"}}, "a", "variant"),
        ({"a": {"model": "dncnn", "data": "train400", "model_cfg": {"depht": 3}}}, "a", "model_cfg"),
        ({"a": {"model": "dncnn", "data": "train400", "train": {"lr": "fast"}}}, "a", "lr"),
    ],
)
def test_run_settings_errors_name_the_key(runs, name, match):
    with pytest.raises((ConfigError, ValueError), match=match):  # a bad run fails when the section loads
        study.run_settings(_stage(runs), name)


def test_stage_without_runs_is_refused():
    with pytest.raises((ConfigError, ValueError), match="runs"):
        _stage({})


def test_run_cost_counts_dncnn_macs_in_closed_form():
    run, cfg, _ = study.run_settings(_stage({"d": {"model": "dncnn", "data": "train400", "model_cfg": {"depth": 4, "channels": 8}}}), "d")
    c = study.run_cost(run, cfg, 16, 24)
    # 3x3 convs: 1->8, 8->8 (x2), 8->1 per pixel
    assert c["gmacs"] * 1e9 == pytest.approx(16 * 24 * 9 * (1 * 8 + 8 * 8 * 2 + 8 * 1))
    assert c["params"] == sum(p.numel() for p in build("dncnn", cfg).parameters())


def _tiny_models():
    torch.manual_seed(0)
    gray = build("dncnn", {"depth": 3, "channels": 4, "in_channels": 1}).eval()
    color = study.run_settings(_stage({"c": {"model": "asapnet_denoise", "variant": "noise_level", "data": "cbsd432",
                                              "model_cfg": TINY_ASAP}}), "c")[1]
    return {"g": gray, "c": build("asapnet_denoise", color).eval()}


def _images(channels: int, n: int = 2, size: int = 32):
    rng = np.random.default_rng(0)
    shape = (size, size) if channels == 1 else (size, size, 3)
    return [(f"im{i}.png", rng.integers(0, 256, shape, dtype=np.uint8)) for i in range(n)]


def test_evaluate_trained_scores_models_on_their_sets():
    sets = {"bsd68": _images(1), "cbsd68": _images(3, 1)}
    df = ev.evaluate_trained(_tiny_models(), sets, [25.0], seed=0, progress=False)
    assert list(df.columns) == list(ev.PER_IMAGE_COLUMNS)
    assert set(zip(df["model"], df["set"])) == {("g", "bsd68"), ("c", "cbsd68")}  # set12 absent: skipped
    assert len(df) == 3
    # the scores are the protocol's: recompute one by hand
    name, clean = sets["bsd68"][0]
    noisy = noise_fn(0)(clean, 25.0, name)
    out = denoise(_tiny_models()["g"], noisy, sigma=25.0)
    row = df[(df["model"] == "g") & (df["name"] == name)].iloc[0]
    assert row["psnr"] == pytest.approx(psnr(clean, to_uint8(out)))
    assert row["psnr_noisy"] == pytest.approx(psnr(clean, to_uint8(noisy)))


def test_noise_level_input_changes_the_output():
    model = _tiny_models()["c"]
    noisy = np.random.default_rng(1).random((16, 16, 3)).astype(np.float32)
    assert not np.allclose(denoise(model, noisy, sigma=15.0), denoise(model, noisy, sigma=50.0))


def _rows(model, kind, set_name, names, sigmas, psnr_of):
    return pd.DataFrame([
        {"set": set_name, "model": model, "kind": kind, "name": n, "sigma": s, "psnr": psnr_of(n, s), "ssim": 0.5,
         "psnr_noisy": 20.0, "seconds": 1.0}
        for n in names for s in sigmas
    ])


def test_official_rows_select_the_evaluated_images_and_check_coverage():
    official = _rows("dncnn_b_gray", "x", "bsd68", ["a", "b", "c"], [15.0, 25.0], lambda n, s: 30.0)
    sets = {"bsd68": [("a", None), ("b", None)]}
    out = ev.official_rows(official, sets, [25.0])
    assert sorted(out["name"]) == ["a", "b"] and set(out["sigma"]) == {25.0}
    assert set(out["model"]) == {"official_dncnn_b_gray"} and set(out["kind"]) == {"official"}
    with pytest.raises(ValueError, match="no dncnn_b_gray rows for bsd68"):
        ev.official_rows(official, {"bsd68": [("a", None), ("z", None)]}, [25.0])


def test_summarize_means_over_common_images():
    names = ["a", "b", "c", "d"]
    full = _rows("m1", "ours", "bsd68", names, [25.0], lambda n, s: float(names.index(n)))
    part = _rows("bm3d", "classical", "bsd68", ["a"], [25.0], lambda n, s: 7.0)
    per_image = pd.concat([full, part])
    common = ev.summarize_common_images(per_image)
    assert set(common["model"]) == {"m1"}  # bm3d ran on fewer images: not in the like-for-like table
    assert common["psnr"].iloc[0] == pytest.approx(1.5) and common["n_images"].iloc[0] == 4
    subset = ev.summarize_common_images(ev.bm3d_subset(per_image, part))
    assert dict(zip(subset["model"], subset["psnr"])) == {"m1": 0.0, "bm3d": 7.0}


def test_run_table_describes_cnns_by_shape_and_counts_pixels():
    stage = _stage({"cnn": {"model": "dncnn", "data": "train400", "model_cfg": {"depth": 5, "channels": 8},
                            "train": {"patch_size": 20}},
                    "asap": {"model": "asapnet_denoise", "variant": "grid_robust", "data": "train400",
                             "model_cfg": TINY_ASAP, "train": {"patch_sizes": [32, 64]}}},
                   common={"batch_size": 4, "budget_pixels": 100_000})
    table = study.run_table(stage, 32, 48).set_index("run")
    assert "5 conv layers of 8 channels" in table.loc["cnn", "change"]
    assert table.loc["cnn", "steps"] == 63  # ceil(100000 / (4 * 20^2))
    assert table.loc["cnn", "pixel_samples"] == 63 * 4 * 400
    assert table.loc["asap", "patch_sizes"] == [32, 64] and 100_000 <= table.loc["asap", "pixel_samples"] < 100_000 + 4 * 64**2


def _pairs(diffs):
    rows = [{"set": "bsd68", "model": m, "name": f"im{i}", "sigma": 25.0, "psnr": 20.0 + (d if m == "a" else 0.0)}
            for i, d in enumerate(diffs) for m in ("a", "b")]
    return pd.DataFrame(rows)


def test_paired_bootstrap_interval_brackets_the_mean_difference():
    diffs = np.random.default_rng(1).normal(-0.5, 0.3, 40)
    r = compare.paired_bootstrap(_pairs(diffs), "a", "b", "bsd68", 25.0, n_boot=4000, seed=0)
    assert r["n_images"] == 40 and r["mean_diff"] == pytest.approx(diffs.mean())
    assert r["ci_low"] < r["mean_diff"] < r["ci_high"] < 0  # clearly negative
    se = diffs.std(ddof=1) / np.sqrt(40)
    assert r["ci_high"] - r["ci_low"] == pytest.approx(2 * 1.96 * se, rel=0.15)  # the normal-theory width
    assert r["wins_a"] == int((diffs > 0).sum())
    constant = compare.paired_bootstrap(_pairs([0.25] * 5), "a", "b", "bsd68", 25.0, n_boot=50)
    assert constant["ci_low"] == constant["ci_high"] == pytest.approx(0.25)  # no spread: no interval
    assert compare.paired_bootstrap(_pairs([1.0]), "a", "c", "bsd68", 25.0) is None  # no shared image


def test_reference_cnn_is_the_largest_gray_cnn_and_paired_differences_use_it():
    runs = {"big": study.DenoiseRun("dncnn", "train400"), "small": study.DenoiseRun("dncnn", "train400"),
            "color": study.DenoiseRun("dncnn", "cbsd432"), "asap": study.DenoiseRun("asapnet_denoise", "train400", "plain")}
    costs = {"big": 100.0, "small": 8.0, "color": 300.0, "asap": 1.0}
    assert compare.reference_cnn(runs, costs) == "big"
    assert compare.reference_cnn({"asap": runs["asap"]}, costs) is None
    per_image = _pairs([0.5, 1.5])
    out = compare.paired_differences(per_image, "a", "b", [25.0, 50.0], n_boot=10)
    assert [(r["set"], r["sigma"]) for r in out] == [("bsd68", 25.0)]  # only where both were scored
    assert compare.paired_differences(per_image, None, "b", [25.0]) == []


def test_best_variant_and_published_values():
    summary = pd.DataFrame([
        {"set": "bsd68", "model": "asap_a", "sigma": 25.0, "psnr": 25.0},
        {"set": "bsd68", "model": "asap_b", "sigma": 25.0, "psnr": 26.0},
        {"set": "bsd68", "model": "dn", "sigma": 25.0, "psnr": 29.0},
    ])
    runs = {"asap_a": study.DenoiseRun("asapnet_denoise", "train400", "plain"),
            "asap_b": study.DenoiseRun("asapnet_denoise", "train400", "residual"),
            "dn": study.DenoiseRun("dncnn", "train400")}
    assert compare.best_variant(summary, runs) == "asap_b"


def test_best_variant_leaves_out_the_longer_training_rows():
    summary = pd.DataFrame([{"set": "bsd68", "model": m, "sigma": 25.0, "psnr": v}
                            for m, v in [("asap_a", 25.0), ("asap_a_4x", 27.0), ("asap_b", 26.0)]])
    runs = {m: study.DenoiseRun("asapnet_denoise", "train400", "plain") for m in summary["model"]}
    assert compare.best_variant(summary, runs) == "asap_a_4x"
    assert compare.best_variant(summary, runs, exclude=["asap_a_4x"]) == "asap_b"


def test_run_parents_follow_the_variant_chain_and_name_the_longer_training_rows():
    def asap(v, **kw):
        return {"model": "asapnet_denoise", "variant": v, "data": "train400", "model_cfg": TINY_ASAP,
                "train": {"patch_size": 32, **kw}}

    def cnn(d, c, **kw):
        return {"model": "dncnn", "data": "train400", "model_cfg": {"depth": d, "channels": c},
                "train": {"patch_size": 20, **kw}}

    stage = _stage({"big": cnn(5, 16), "small": cnn(3, 8), "small_4x": cnn(3, 8, budget_pixels=400_000),
                    "plain": asap("plain"), "kernel": asap("kernel"),  # residual not trained: kernel -> plain
                    "kernel_only": asap("kernel_only"), "kernel_only_4x": asap("kernel_only", budget_pixels=400_000),
                    "color": {**asap("kernel"), "data": "cbsd432"}},
                   common={"batch_size": 2, "budget_pixels": 100_000})
    parents = study.run_parents(stage)
    assert parents["big"] == (None, None) and parents["small"] == ("big", None)  # CNNs: against DnCNN-20
    assert parents["plain"] == (None, None) and parents["kernel"] == ("plain", None)  # an untrained row is walked over
    assert parents["kernel_only"] == ("kernel", None)
    assert parents["kernel_only_4x"] == ("kernel_only", "4x the training budget of kernel_only")
    assert parents["small_4x"] == ("small", "4x the training budget of small")
    assert parents["color"] == (None, None)  # no colour base row was trained
    table = study.run_table(stage, 32, 48).set_index("run")
    assert table.loc["kernel_only_4x", "change"] == "4x the training budget of kernel_only"
    assert table.loc["kernel", "parent"] == "plain" and table.loc["kernel", "change"].startswith("+ a predicted 5x5")


def test_ablation_deltas_pair_each_run_with_its_parent():
    per_image = pd.concat([_pairs([0.5, 1.5, 1.0]),
                           _pairs([2.0, 2.0, 2.0]).replace({"model": {"a": "c", "b": "a"}})]).drop_duplicates(["model", "name"])
    out = compare.ablation_deltas(per_image, {"a": "b", "c": "a", "b": None}, [25.0], n_boot=50)
    got = {(r["model_a"], r["model_b"]): r["mean_diff"] for r in out}
    assert got[("a", "b")] == pytest.approx(1.0)
    assert ("c", "a") in got and len(got) == 2


def test_psnr_intervals_share_the_resample_and_bracket_the_mean():
    rng = np.random.default_rng(0)
    base = rng.normal(28, 2, 30)
    rows = [{"set": "bsd68", "sigma": 25.0, "model": m, "name": f"im{i}", "psnr": v + off}
            for m, off in [("a", 0.0), ("b", 1.0)] for i, v in enumerate(base)]
    rows += [{"set": "bsd68", "sigma": 25.0, "model": "bm3d", "name": f"im{i}", "psnr": 27.0 + i} for i in range(3)]
    out = compare.psnr_intervals(pd.DataFrame(rows), n_boot=500).set_index("model")
    assert out.loc["a", "n_images"] == 30 and out.loc["bm3d", "n_images"] == 3
    assert out.loc["a", "psnr"] == pytest.approx(base.mean())
    assert out.loc["a", "ci_low"] < out.loc["a", "psnr"] < out.loc["a", "ci_high"]
    # b is a shifted by 1 dB on every image: with one shared resample its interval is a's shifted by exactly 1 dB
    assert out.loc["b", "ci_low"] - out.loc["a", "ci_low"] == pytest.approx(1.0)
    assert out.loc["b", "ci_high"] - out.loc["a", "ci_high"] == pytest.approx(1.0)


def test_rival_cnn_is_the_fastest_cnn_at_least_as_good_else_the_nearest_in_time():
    runs = {"dn20": study.DenoiseRun("dncnn", "train400"), "c7": study.DenoiseRun("dncnn", "train400"),
            "c8": study.DenoiseRun("dncnn", "train400"), "asap": study.DenoiseRun("asapnet_denoise", "train400", "plain")}
    timing = pd.DataFrame([{"model": m, "height": 321, "width": 481, "median_ms": t}
                           for m, t in [("dn20", 900.0), ("c7", 12.0), ("c8", 30.0), ("asap", 20.0)]])
    def summary(asap):
        return pd.DataFrame([{"set": "bsd68", "sigma": 25.0, "model": m, "psnr": v}
                             for m, v in [("dn20", 28.6), ("c7", 28.1), ("c8", 28.3), ("asap", asap)]])

    assert compare.rival_cnn(summary(27.0), timing, runs, "asap", "dn20") == "c7"  # c7 is faster and better
    assert compare.rival_cnn(summary(28.2), timing, runs, "asap", "dn20") == "c8"  # only c8 is as good
    assert compare.rival_cnn(summary(28.5), timing, runs, "asap", "dn20") == "c8"  # none is: nearest in log time (30/20 < 20/12)
    assert compare.rival_cnn(summary(27.0), timing, runs, None, "dn20") is None
    # a longer-training run of c7 (same network, so the same time) measured a little faster: left out when excluded
    runs["c7_4x"] = study.DenoiseRun("dncnn", "train400")
    timing = pd.concat([timing, pd.DataFrame([{"model": "c7_4x", "height": 321, "width": 481, "median_ms": 11.9}])])
    longer = summary(27.0)
    longer = pd.concat([longer, pd.DataFrame([{"set": "bsd68", "sigma": 25.0, "model": "c7_4x", "psnr": 28.3}])])
    assert compare.rival_cnn(longer, timing, runs, "asap", "dn20") == "c7_4x"
    assert compare.rival_cnn(longer, timing, runs, "asap", "dn20", exclude=["c7_4x"]) == "c7"


def test_bm3d_runs_on_every_image_at_its_full_sigmas():
    images = [(f"im{i}", np.full((8, 8), 100 + i, np.uint8)) for i in range(3)]
    import lib.models.bm3d as bm3d_module
    calls = []
    original = bm3d_module.bm3d_denoise
    try:
        bm3d_module.bm3d_denoise = lambda noisy, s: (calls.append(s), noisy)[1]
        out = ev.evaluate_bm3d({"bsd68": images}, {"bsd68": 1}, [15.0, 25.0], 0, full_sigmas={"bsd68": [25]},
                               progress=False)
    finally:
        bm3d_module.bm3d_denoise = original
    assert out.groupby("sigma")["name"].nunique().to_dict() == {15.0: 1, 25.0: 3}
    assert calls == [15.0, 25.0, 25.0, 25.0]


@pytest.mark.slow  # starts two worker processes (a few seconds)
def test_bm3d_side_by_side_gives_the_rows_of_one_process():
    rng = np.random.default_rng(0)
    images = [(f"im{i}", rng.integers(60, 200, (24, 24), dtype=np.uint8)) for i in range(3)]
    kw = dict(full_sigmas={"bsd68": [25.0]}, progress=False)
    serial = ev.evaluate_bm3d({"bsd68": images}, {"bsd68": 1}, [15.0, 25.0], 0, **kw)
    parallel = ev.evaluate_bm3d({"bsd68": images}, {"bsd68": 1}, [15.0, 25.0], 0, workers=2, **kw)
    cols = ["set", "model", "kind", "name", "sigma", "psnr", "ssim", "psnr_noisy"]
    pd.testing.assert_frame_equal(serial[cols], parallel[cols])
    assert len(serial) == 4 and serial["psnr"].gt(serial["psnr_noisy"]).all()  # BM3D denoises


def test_bm3d_workers_setting():
    assert ev.bm3d_workers(3) == 3
    assert ev.bm3d_workers(0) >= 1  # one per core


def test_with_published_names_official_and_bm3d_rows_only():
    summary = pd.DataFrame([
        {"set": "bsd68", "model": "official_dncnn_b_gray", "kind": "official", "sigma": 25.0},
        {"set": "cbsd68", "model": "bm3d", "kind": "classical", "sigma": 50.0},
        {"set": "set12", "model": "official_dncnn_b_gray", "kind": "official", "sigma": 25.0},
        {"set": "bsd68", "model": "bm3d", "kind": "ours", "sigma": 25.0},  # a run of ours that happens to be called bm3d
    ])
    out = ev.with_published(summary)
    assert list(out["published_psnr"]) == [29.16, 27.38, None, None]  # DnCNN paper: Table II, CBM3D; none for Set12


def test_time_denoisers_rows():
    df = ev.time_denoisers({"g": _tiny_models()["g"]}, [(16, 24)], warmup=0, runs=2, progress=False)
    row = df.iloc[0]
    assert (row["height"], row["width"], row["runs"]) == (16, 24, 2)
    assert row["megapixels"] == pytest.approx(16 * 24 / 1e6)
    assert 0 < row["min_ms"] <= row["median_ms"] <= row["p90_ms"]


def test_crops_are_centred_uint8(tmp_path):
    clean = np.arange(40 * 50, dtype=np.int64).reshape(40, 50) % 256
    clean = clean.astype(np.uint8)
    out = figures.crops(clean, clean / 255.0, {"m": np.full((40, 50), 2.0)}, 10)
    assert np.array_equal(out["clean"], clean[15:25, 20:30])
    assert np.array_equal(out["noisy"], clean[15:25, 20:30])  # float -> clipped, rounded uint8
    assert out["m"].dtype == np.uint8 and (out["m"] == 255).all()
    fig = figures.crops_figure({25.0: out}, {25.0: {"m": 12.5}}, "t", tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 0 and len(fig.axes) == 3
    label = [t for t in fig.axes[2].texts if t.get_text() == "12.50 dB"]  # the PSNR sits inside its panel
    fig.canvas.draw()
    box, panel = label[0].get_window_extent(), fig.axes[2].get_window_extent()
    assert panel.x0 <= box.x0 and box.x1 <= panel.x1 and panel.y0 <= box.y0 and box.y1 <= panel.y1
    assert denoise_psnr(clean, clean / 255.0) == float("inf")  # identical after uint8 rounding


def test_grid_size_check_scores_crops_and_full_image_on_the_same_pixels():
    model = _tiny_models()["g"]
    images = [(n, im[:, :38]) for n, im in _images(1, n=2, size=40)]  # 40 x 38: 16-px windows cover 32 x 32
    df = ev.grid_size_check({"g": model}, images, [16, 0], 25.0, seed=0)
    assert list(df["crop"]) == [16, 0] and set(df["n_images"]) == {2} and set(df["sigma"]) == {25.0}
    assert list(df["n_windows"]) == [2 * 2 * 2, 2]
    crop_gain, full_gain = [], []
    for name, clean in images:
        noisy = noise_fn(0)(clean, 25.0, name)  # noised once, whole: the windows see the same noise
        full = denoise(model, noisy, sigma=25.0)
        stitched = np.zeros((32, 32), np.float32)
        for y in (0, 16):
            for x in (0, 16):
                stitched[y:y + 16, x:x + 16] = denoise(model, np.ascontiguousarray(noisy[y:y + 16, x:x + 16]), sigma=25.0)
        ref = denoise_psnr(clean[:32, :32], noisy[:32, :32])
        crop_gain.append(denoise_psnr(clean[:32, :32], stitched) - ref)
        full_gain.append(denoise_psnr(clean[:32, :32], full[:32, :32]) - ref)
    row = df[df["crop"] == 16].iloc[0]
    assert row["gain_db"] == pytest.approx(np.mean(crop_gain))
    assert row["gain_full_db"] == pytest.approx(np.mean(full_gain))
    assert row["crop_minus_full_db"] == pytest.approx(np.mean(crop_gain) - np.mean(full_gain))
    assert row["crop_minus_full_db"] != 0  # a 3-layer CNN sees the window borders
    whole = df[df["crop"] == 0].iloc[0]
    assert whole["gain_db"] == whole["gain_full_db"] and whole["crop_minus_full_db"] == 0


def test_grid_size_checks_run_each_model_on_its_own_test_set():
    models = _tiny_models()  # g: grey, c: colour
    sets = {"bsd68": _images(1, n=3, size=32), "cbsd68": _images(3, n=2, size=32), "set12": _images(1, n=1)}
    df = ev.grid_size_checks(models, {"g": 1, "c": 3}, sets, 2, [16, 0], 25.0, seed=0, progress=False)
    assert set(zip(df["model"], df["set"])) == {("g", "bsd68"), ("c", "cbsd68")}  # not Set12: the first set of each
    assert set(df["n_images"]) == {2} and len(df) == 4  # the first 2 images of each set; two crop sides per model
    alone = ev.grid_size_check({"c": models["c"]}, sets["cbsd68"][:2], [16, 0], 25.0, seed=0)
    mine = df[df["model"] == "c"].drop(columns="set").reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, alone)  # the same numbers as the check on that set alone
    every = ev.grid_size_checks(models, {"g": 1, "c": 3}, sets, 0, [0], 25.0, seed=0, progress=False)
    assert dict(zip(every["model"], every["n_images"])) == {"g": 3, "c": 2}  # 0: every image
    no_colour = ev.grid_size_checks(models, {"g": 1, "c": 3}, {"bsd68": sets["bsd68"]}, 1, [0], 25.0, seed=0,
                                    progress=False)
    assert list(no_colour["model"]) == ["g"]  # no colour test set: the colour run is left out
    assert ev.grid_size_checks({}, {}, sets, 1, [0], 25.0, seed=0).empty


def test_grid_size_check_tells_local_models_from_size_dependent_ones():
    """A per-pixel model gives the same pixels on crops and on the full image (difference 0, whatever
    the crops' content); a model that uses the image's mean does not."""

    class Pointwise(torch.nn.Module):
        def forward(self, x, sigma=None):
            return 0.8 * x + 0.1

    class MeanPull(torch.nn.Module):
        def forward(self, x, sigma=None):
            return 0.5 * x + 0.5 * x.mean(dim=(-2, -1), keepdim=True)

    images = _images(1, n=2, size=48)
    df = ev.grid_size_check({"p": Pointwise(), "m": MeanPull()}, images, [16, 32, 100, 0], 25.0, seed=1).set_index(
        ["model", "crop"])
    assert (df.loc["p", "crop_minus_full_db"] == 0).all()
    assert (df.loc["p", "gain_db"] == df.loc["p", "gain_full_db"]).all()
    assert (df.loc["m", "crop_minus_full_db"].loc[[16, 32]] != 0).all()
    assert df.loc[("m", 100), "crop_minus_full_db"] == 0 and df.loc[("m", 100), "n_windows"] == 2  # side > image: whole


def test_crop_panels_score_each_denoiser_on_the_protocol_noise():
    images = {"set12": _images(1, n=2, size=40), "bsd68": _images(1, n=1, size=40)}
    denoisers = {"id": lambda x, s: x, "half": lambda x, s: x / 2}
    panels, psnrs, title = figures.crop_panels(denoisers, images, [15.0, 50.0], seed=3, size=8)
    name, clean = images["bsd68"][0]  # BSD68 is preferred
    assert title.startswith(f"bsd68 {name}")
    assert list(panels) == [15.0, 50.0] and list(panels[15.0]) == ["clean", "noisy", "id", "half"]
    noisy = noise_fn(3)(clean, 50.0, name)
    assert psnrs[50.0]["id"] == psnrs[50.0]["noisy"] == denoise_psnr(clean, noisy)
    assert psnrs[50.0]["half"] == denoise_psnr(clean, noisy / 2)
    assert panels[50.0]["clean"].shape == (8, 8) and panels[50.0]["half"].dtype == np.uint8


def test_load_trained_uses_the_checkpoint_loader(tmp_path):
    from lib.checkpoint import save_checkpoint
    from lib.config import to_dict
    from lib.train.denoise import CHECKPOINT_NAME

    model = _tiny_models()["g"]
    (tmp_path / "g").mkdir()
    save_checkpoint(tmp_path / "g" / CHECKPOINT_NAME, model="dncnn", config=to_dict(model.cfg),
                    state_dict=model.state_dict(), step=0)
    loaded = ev.load_trained(_stage({"g": {"model": "dncnn", "data": "train400"}}), tmp_path)["g"]
    x = np.random.default_rng(0).random((12, 12)).astype(np.float32)
    assert not loaded.training and loaded.body[0].weight.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(denoise(loaded, x), denoise(model, x), rtol=0, atol=1e-5)  # same weights, other layout
    with pytest.raises(FileNotFoundError):
        ev.load_trained(_stage({"h": {"model": "dncnn", "data": "train400"}}), tmp_path)
