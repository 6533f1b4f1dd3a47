"""Translation section of the report: table values, speed-ups and the data the plots draw,
on a synthetic timing grid and evaluation file."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # tests only; notebooks keep the inline backend

import numpy as np
import pandas as pd
import pytest

from lib.io import write_csv
from lib.report import translation
from lib.report import translation_tables as tables
from lib.report.common import MISSING
from lib.translation.timing import GRID_COLUMNS

NAN = float("nan")


def _row(model, kind, h, w, median, *, threads_setting=0, threads=2, status="ok", predicted=NAN, params=1e6, gmacs=1.0):
    row = {c: NAN for c in GRID_COLUMNS}
    row.update(kind=kind, model=model, generator=model, height=h, width=w, megapixels=h * w / 1e6, device="cpu",
               dtype="fp32", tf32="-", threads_setting=threads_setting, threads=threads, params=params, gmacs=gmacs,
               status=status, predicted_ms=predicted, median_ms=median if status == "ok" else NAN,
               p90_ms=median * 1.1 if status == "ok" else NAN, note="" if status == "ok" else "skipped: ...")
    return row


@pytest.fixture()
def timing(tmp_path) -> pd.DataFrame:
    rows = [
        _row("asapnet", "paper_config", 256, 512, 1000.0, params=83e6, gmacs=45.8),
        _row("asapnet", "paper_config", 1024, 2048, 2500.0, params=84e6, gmacs=73.4),
        _row("pix2pixhd", "paper_config", 256, 512, 3600.0, params=183e6, gmacs=122.3),
        _row("pix2pixhd", "paper_config", 1024, 2048, NAN, status="skipped", predicted=56000.0, params=183e6, gmacs=1957.3),
        _row("spade", "paper_config", 256, 512, 8000.0, params=97e6, gmacs=281.3),
        _row("spade", "paper_config", 1024, 2048, NAN, status="skipped", predicted=120000.0, params=97e6, gmacs=4500.4),
        # one thread: a second setting
        _row("asapnet", "paper_config", 256, 512, 2000.0, threads_setting=1, threads=1, params=83e6, gmacs=45.8),
        _row("pix2pixhd", "paper_config", 256, 512, 8000.0, threads_setting=1, threads=1, params=183e6, gmacs=122.3),
        # as trained (Facades 128x128)
        _row("asapnet", "trained", 128, 128, 50.0, params=2e6, gmacs=0.5),
        _row("pix2pixhd", "trained", 128, 128, 150.0, params=11e6, gmacs=3.0),
    ]
    write_csv(tmp_path / "timing.csv", pd.DataFrame(rows, columns=list(GRID_COLUMNS)))
    return pd.read_csv(tmp_path / "timing.csv")  # as the report reads it


@pytest.fixture()
def eval_json() -> dict:
    def row(model, fid, lo, hi, miou, mlo, mhi, kid=0.05, between=""):
        return {"model": model, "n": 60, "fid": fid, "fid_boot_low": lo, "fid_boot_high": hi, "fid_boot_std": 1.0,
                "kid": kid, "kid_std": 0.01, "miou": miou, "miou_boot_low": mlo, "miou_boot_high": mhi,
                "miou_boot_std": 0.01, "pixel_accuracy": miou + 0.2, "mean_class_accuracy": miou + 0.1,
                "fid_between": between, "segmenter": "unet", "kid_boot_low": kid - 0.01 if kid != "nan" else kid,
                "kid_boot_high": kid + 0.02 if kid != "nan" else kid}

    rows = [
        {**row("asapnet", 150.0, 155.0, 170.0, 0.20, 0.18, 0.22), "kid_smoothed": 0.045},
        row("pix2pixhd", 140.0, 138.0, 160.0, 0.25, 0.23, 0.27),
        # NaN written by lib.io.write_json as a string
        row("real", 60.0, 62.0, 70.0, 0.40, 0.38, 0.42, kid="nan", between="real training photos vs real test photos"),
    ]
    return {
        "meta": {"scale": "default", "dataset": "facades", "test_split": "test", "size": [128, 128], "n_images": 60},
        "rows": rows,
    }


def test_translation_table_values(eval_json, timing):
    t = translation.translation_table(eval_json, timing)
    assert list(t.index) == ["ASAPNet", "pix2pixHD", "SPADE", "real photos"]
    a, p, s, r = (t.loc[i] for i in t.index)
    assert a["params (M), paper config"] == 83.0 and a["GMAC 256x512, paper config"] == 45.8
    assert a["params (M), as trained"] == 2.0 and a["GMAC, as trained"] == 0.5
    # all-threads times per size; the one-thread setting does not leak in
    assert a["time 256x512 (ms)"] == 1000.0 and a["time 1024x2048 (ms)"] == 2500.0
    assert p["time 256x512 (ms)"] == 3600.0 and p["time 1024x2048 (ms)"] == "skipped (predicted 56 s)"
    assert s["time 1024x2048 (ms)"] == "skipped (predicted 120 s)"
    assert list(t.columns).index("time 256x512 (ms)") < list(t.columns).index("time 1024x2048 (ms)")
    assert a["trained size"] == "128x128" and a["time as trained (ms)"] == 50.0 and p["time as trained (ms)"] == 150.0
    assert a["FID [95% CI]"] == "150.0 [155.0, 170.0]" and a["KID [95% CI]"] == "0.0500 [0.0400, 0.0700]"
    assert a["KID, smoothed final"] == "0.0450" and p["KID, smoothed final"] == MISSING  # pix2pixHD: no curve
    assert a["mIoU [95% CI]"] == "0.200 [0.180, 0.220]" and a["pixel accuracy"] == "0.400"
    # SPADE: timed only
    assert math.isnan(s["params (M), as trained"]) and s["FID [95% CI]"] == MISSING and s["N"] == MISSING
    # real photos: real-vs-real FID (fid_between set), KID NaN -> missing, mIoU ceiling, no times
    assert r["FID [95% CI]"] == "60.0 [62.0, 70.0]" and r["KID [95% CI]"] == MISSING
    assert r["mIoU [95% CI]"] == "0.400 [0.380, 0.420]" and r["time 256x512 (ms)"] == MISSING
    assert math.isnan(r["params (M), paper config"])


def test_real_fid_hidden_without_a_real_reference(eval_json, timing):
    eval_json["rows"][2]["fid_between"] = ""
    t = translation.translation_table(eval_json, timing)
    assert t.loc["real photos", "FID [95% CI]"] == MISSING
    fig = translation.plot_time_vs_quality(eval_json, timing)
    assert not [ln for ln in fig.axes[0].lines if ln.get_linestyle() == "--"]


def test_speedup_table_arithmetic(timing):
    t = translation.speedup_table(timing)
    assert list(t.columns) == ["256x512", "1024x2048"]
    assert t.loc[("pix2pixhd", "cpu", 2, "-"), "256x512"] == pytest.approx(3.6)
    assert t.loc[("spade", "cpu", 2, "-"), "256x512"] == pytest.approx(8.0)
    assert t.loc[("pix2pixhd", "cpu", 1, "-"), "256x512"] == pytest.approx(4.0)
    assert math.isnan(t.loc[("pix2pixhd", "cpu", 2, "-"), "1024x2048"])  # baseline skipped


def test_time_vs_quality_points_and_figure(eval_json, timing, tmp_path):
    pts = translation.time_quality_points(eval_json, timing)
    assert list(pts["model"]) == ["asapnet", "pix2pixhd"]
    assert list(pts["time_ms"]) == [50.0, 150.0]  # trained generators at the evaluated size, all threads
    assert list(pts["fid_low"]) == [155.0, 138.0] and list(pts["miou_high"]) == [0.22, 0.27]
    out = tmp_path / "tq.png"
    fig = translation.plot_time_vs_quality(eval_json, timing, out)
    assert out.stat().st_size > 0
    kid_ax, fid_ax, miou_ax = fig.axes
    assert [ln.get_ydata()[0] for ln in kid_ax.lines if ln.get_marker() == "o"] == [r["kid"] for r in eval_json["rows"] if r["model"] != "real"]
    points = [(ln.get_xdata()[0], ln.get_ydata()[0]) for ln in fid_ax.lines if ln.get_marker() == "o"]
    assert points == [(50.0, 150.0), (150.0, 140.0)]
    kid_bar = kid_ax.collections[0].get_segments()[0]  # ASAPNet's KID interval
    assert kid_bar[:, 1].tolist() == pytest.approx([0.04, 0.07])
    segs = fid_ax.collections[0].get_segments()[0]  # ASAPNet's interval, even though it lies above the point
    assert segs[:, 0].tolist() == [50.0, 50.0] and segs[:, 1].tolist() == [155.0, 170.0]
    dashed = {ax: [ln.get_ydata()[0] for ln in ax.lines if ln.get_linestyle() == "--"] for ax in (fid_ax, miou_ax)}
    assert dashed[fid_ax] == [60.0] and dashed[miou_ax] == [0.40]
    assert "facades" in fig._suptitle.get_text() and "N = 60" in fig._suptitle.get_text()
    assert "128x128" in fig._suptitle.get_text()


def _official() -> pd.DataFrame:
    """Rows as benchmarks/against_official.py writes them (fp32 and bf16, ours and official, per-round times)."""
    rows = []
    for (h, w), times in {(256, 512): (447.0, 564.0, 964.0, 905.0), (1024, 2048): (1800.0, 5500.0, 28000.0, 30300.0)}.items():
        for dtype, f in (("fp32", 1.0), ("bf16", 0.5)):
            for model, ms, code in zip(("asapnet", "official-asapnet", "pix2pixhd", "official-pix2pixhd"), times,
                                       ("ours", "official", "ours", "official")):
                rounds = " ".join(f"{ms * f * k:.1f}" for k in (1.1, 1.0, 0.9, 1.0, 1.3))  # quartiles: 1.0 and 1.1 x
                rows.append({"size": f"{h}x{w}", "height": h, "width": w, "dtype": dtype, "model": model, "code": code,
                             "threads": 2, "median_ms": ms * f, "times_ms": rounds, "runs": 5,
                             "max_abs_diff_vs_pair": 1e-5 if model == "asapnet" else None})
    return pd.DataFrame(rows)


def test_official_table_ratios():
    table = tables.official_table(_official())
    row = table[(table["size"] == "256x512") & (table["precision"] == "fp32")].iloc[0]
    assert row["ours / official"] == pytest.approx(447 / 564)
    assert row["official pix2pixHD / our ASAPNet"] == pytest.approx(905 / 447)
    assert row["our pix2pixHD / our ASAPNet"] == pytest.approx(964 / 447)
    assert row["max |ours - official| (ASAPNet)"] == pytest.approx(1e-5)
    assert len(table) == 4


def test_official_display_carries_the_interquartile_range_of_the_rounds():
    times, ratios = tables.official_display(_official())
    cell = times.loc[("256x512", "fp32"), "ASAPNet ours (ms)"]
    assert cell.startswith("447\u00a0[447") and cell.endswith("492]")  # quartiles of the five rounds: 447.0 and 491.7
    assert "SPADE" not in " ".join(times.columns)
    assert ratios.loc[("1024x2048", "fp32"), "official pix2pixHD / our ASAPNet"] == f"{30300 / 1800:.2f}"
    env = {"device": "cpu", "cpu_model": "AMD EPYC", "cpu_features": ["avx2"], "threads": 2, "torch_version": "2.x"}
    results = {"environment": env, "args": {"dtype": ["fp32", "bf16"], "warmup": 1},
               "rows": [{"runs": 5, "times_ms": "1 2 3"}]}
    cap = tables.official_caption(results, env, committed_in="abc123")
    assert "AMD EPYC (AVX2), 2 threads (the timing stage’s CPU)" in cap and "5 rounds" in cap
    assert "commit not recorded in the file (the file was committed in `abc123`)" in cap
    assert "interquartile range of the rounds" in cap
    other = tables.official_caption(results, {**env, "cpu_features": ["avx2", "avx512f"]})
    assert "another CPU" in other


def test_runtime_vs_megapixels_lines(timing):
    series = translation.runtime_series(timing, official=_official(), where={"official": "this CPU"})
    paper = series[series["series"] == "ASAPNet · paper Fig. 1 (GPU)"]
    assert paper["ms"].tolist() == [9.0, 14.0, 35.0, 130.0]
    assert np.allclose(paper["megapixels"], [s * s / 1e6 for s in (256, 512, 1024, 2048)])
    official = series[series["source"] == "official code"]
    assert sorted(official["ms"]) == [564.0, 905.0, 5500.0, 30300.0]  # fp32, official code only
    ours = series[series["source"] == "this run"]
    assert len(ours) == 6  # the skipped cells are not drawn
    fig = translation.plot_runtime_vs_megapixels(timing, official=_official(), where={"official": "this CPU"})
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    lines = {ln.get_label(): ln for ln in ax.lines}
    p2p = lines["pix2pixHD · cpu, 2 threads"]
    assert p2p.get_xdata().tolist() == [256 * 512 / 1e6] and p2p.get_ydata().tolist() == [3600.0]
    a = lines["ASAPNet · cpu, 2 threads"]
    assert a.get_ydata().tolist() == [1000.0, 2500.0]
    spade_paper = lines["SPADE · paper Fig. 1 (GPU)"]
    assert spade_paper.get_ydata().tolist() == [94.0, 359.0] and spade_paper.get_linestyle() == "--"
    assert lines["pix2pixHD · official code, this CPU (2 threads)"].get_ydata().tolist() == [905.0, 30300.0]
    # without a machine comparison the legend does not claim one
    unnamed = translation.runtime_series(timing, official=_official())
    assert unnamed[unnamed["source"] == "official code"]["series"].str.contains("CPU not identified").all()


def test_speed_table_shows_the_spread_the_file_records(eval_json, timing):
    t = tables.speed_table(eval_json, timing)
    # the fixture records p90 (1.1 x median) and no quartiles: the fastest-to-p90 range, flagged in the caption
    assert t.loc["pix2pixHD", "1024x2048 (ms)"] == "– (pred. 56 s)"
    timing.loc[:, "min_ms"] = timing["median_ms"] * 0.9
    t = tables.speed_table(eval_json, timing)
    assert t.loc["ASAPNet", "256x512 (ms)"] == "1,000\u00a0(900\u2060–\u20601,100)"
    cap = tables.speed_caption({"hardware": {"device": "cpu", "cpu_model": "X", "threads": 2}}, timing)
    assert "all-cores setting (2 threads)" in cap and "fastest and 90th-percentile run" in cap
    timing["q25_ms"], timing["q75_ms"] = timing["median_ms"] * 0.95, timing["median_ms"] * 1.05
    t = tables.speed_table(eval_json, timing)
    assert t.loc["ASAPNet", "256x512 (ms)"] == "1,000\u00a0[950\u2060–\u20601,050]"
    assert "interquartile range" in tables.speed_caption({}, timing)


def test_asapnet_scaling_note_reads_the_file(timing):
    extra = [dict(timing.iloc[0]) | {"height": 512, "width": 1024, "megapixels": 0.524288, "median_ms": 990.0,
                                     "min_ms": 950.0, "p90_ms": 1010.0, "gmacs": 53.6}]
    timing.loc[timing.index[0], ["min_ms"]] = 980.0
    frame = pd.concat([timing, pd.DataFrame(extra)], ignore_index=True)
    note = tables.asapnet_scaling_note(frame)
    assert "45.8 at 256x512, 53.6 at 512x1024" in note and "grow 4x from 256x512 to 512x1024" in note
    assert "x0.99" in note and "overlap, so the difference is run-to-run noise" in note
    assert tables.asapnet_scaling_note(timing[timing["model"] != "asapnet"]) == ""


def test_trained_models_follow_the_evaluation_file(eval_json):
    assert translation.trained_models(eval_json) == ["asapnet", "pix2pixhd"]  # rows, without the real photos
    eval_json["meta"]["models"] = ["pix2pixhd", "asapnet"]
    assert translation.trained_models(eval_json) == ["pix2pixhd", "asapnet"]  # the stage's own list wins


# ---------------------------------------------------------------- learning curves and per-class IoU

from lib.report import translation_curves as tc  # noqa: E402
from lib.report.translation_tables import quality_table  # noqa: E402


def _curves() -> pd.DataFrame:
    rows = [("asapnet", s, s * 60.0, kid, 100.0 * kid, 0.1 * s) for s, kid in [(1, 0.6), (2, 0.5), (3, 0.3), (4, 0.4)]]
    rows += [("pix2pixhd", s, s * 120.0, kid, 100.0 * kid, 0.05 * s) for s, kid in [(2, 0.9), (1, 1.0)]]
    return pd.DataFrame(rows, columns=["model", "step", "train_seconds", "kid", "fid", "miou"])


def test_curve_plot_table_raw_and_smoothed_series():
    t = tc.curve_plot_table(_curves())
    assert list(t.columns) == ["series", "step", "minutes", "kid", "fid", "miou"]
    raw = t[t["series"] == "ASAPNet"]
    assert raw["minutes"].tolist() == [1.0, 2.0, 3.0, 4.0] and raw["kid"].tolist() == [0.6, 0.5, 0.3, 0.4]
    smooth = t[t["series"] == "ASAPNet (mean of last 3)"]
    assert smooth["kid"].tolist() == pytest.approx([0.6, 0.55, (0.6 + 0.5 + 0.3) / 3, (0.5 + 0.3 + 0.4) / 3], abs=1e-5)
    p2p = t[t["series"] == "pix2pixHD"]
    assert p2p["step"].tolist() == [1, 2] and p2p["minutes"].tolist() == [2.0, 4.0]  # sorted by step
    assert tc.curve_plot_table(_curves().iloc[0:0]).empty


def test_learning_curve_figure_and_caption(eval_json, tmp_path):
    out = tmp_path / "curves.png"
    fig = tc.plot_learning_curves(_curves(), eval_json, out)
    assert out.stat().st_size > 0 and len(fig.axes) == 3
    kid_ax, fid_ax, miou_ax = fig.axes
    lines = {ln.get_label(): ln for ln in kid_ax.lines}
    assert lines["ASAPNet (snapshots)"].get_xdata().tolist() == [1.0, 2.0, 3.0, 4.0]
    assert lines["ASAPNet (mean of last 3)"].get_ydata()[-1] == pytest.approx(0.4, abs=1e-5)
    # reference lines: real-vs-real FID (KID is NaN in the fixture, so no KID line) and the mIoU ceiling
    dashed = {ax: [ln.get_ydata()[0] for ln in ax.lines if ln.get_linestyle() == "--"] for ax in fig.axes}
    assert dashed[kid_ax] == [] and dashed[fid_ax] == [60.0] and dashed[miou_ax] == [0.40]
    summaries = {m: {"steps": steps, "train_seconds": 600.0, "hardware": {"cpu_model": "AMD EPYC", "device": "cpu", "threads": 2}}
                 for m, steps in (("asapnet", 4000), ("pix2pixhd", 2000))}
    cap = tc.curves_caption(eval_json, summaries, _curves())
    for part in ("facades", "N = 60", "128x128", "ASAPNet 4000 steps, 4 snapshots, 10.0 min on AMD EPYC",
                 "pix2pixHD 2000 steps, 2 snapshots", "scale: default"):
        assert part in cap


def test_per_class_display_and_quality_columns(eval_json, timing):
    per_class = pd.DataFrame({"model": ["real", "real", "asapnet", "asapnet"], "class_id": [0, 1, 0, 1],
                              "class": ["background", "facade", "background", "facade"], "iou": [0.9, 0.8, 0.3, NAN]})
    t = tc.per_class_display(per_class)
    assert list(t.index) == ["background", "facade"] and list(t.columns) == ["ASAPNet", "real photos"]
    assert t.loc["background", "ASAPNet"] == "0.300" and t.loc["facade", "ASAPNet"] == MISSING
    q = quality_table(eval_json, timing)
    assert q.loc["ASAPNet", "KID, last 3 curve points"] == "0.0450" and q.loc["real photos", "KID [95% CI]"] == MISSING
