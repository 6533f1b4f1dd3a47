"""The report's summary and headline metrics, on small synthetic metrics files: the numbers come from
the files (none hard-coded), the flat files are what `dvc metrics show` prints, and the text answers
both questions with those numbers."""
from __future__ import annotations

import json
import math

from pathlib import Path

import pandas as pd
import pytest

from lib.report import summary as S
from lib.report.common import MISSING, format_frame, format_number
from lib.report.studies import Study


def _eval(asap_fid=150.0, p2p_fid=200.0, asap_miou=0.30, p2p_miou=0.20):
    def row(model, fid, miou, spread=2.0, **extra):
        return {"model": model, "n": 40, "fid": fid, "fid_boot_low": fid - spread, "fid_boot_high": fid + spread,
                "kid": fid / 1000, "kid_std": 0.01, "miou": miou, "miou_boot_low": miou - 0.01,
                "miou_boot_high": miou + 0.01, "pixel_accuracy": 0.5, **extra}

    return {"meta": {"scale": "default", "dataset": "facades", "n_images": 40, "size": [128, 128],
                     "models": ["asapnet", "pix2pixhd"]},
            "rows": [row("asapnet", asap_fid, asap_miou), row("pix2pixhd", p2p_fid, p2p_miou),
                     row("real", 60.0, 0.5, fid_between="real training photos vs real test photos", kid="nan")]}


def _studies(ev=None):
    """One study with results (Facades), as the notebook loads it."""
    return [Study("facades", "Facades", Path("reports/metrics/translation/facades"), ev or _eval())]


HW = {"device": "cpu", "cpu_model": "AMD EPYC", "cpu_features": ["avx2", "avx512f"], "threads": 2}


def _timing_json():
    def s(baseline, size, speedup, status="ok", threads=0):
        h, w = (int(x) for x in size.split("x"))
        return {"baseline": baseline, "size": size, "device": "cpu", "dtype": "fp32", "tf32": "-",
                "threads_setting": threads, "threads": 2, "height": h, "width": w,
                "speedup": speedup if status == "ok" else "nan", "baseline_status": status, "predicted_speedup": "nan"}

    return {"meta": {"hardware": dict(HW)},
            "speedups": [s("pix2pixhd", "256x512", 2.5), s("pix2pixhd", "256x512", 3.0, threads=1),
                         s("spade", "256x512", 6.0), s("pix2pixhd", "1024x2048", None, status="skipped")]}


def _official(env=None):
    """benchmarks/results/against_official_cpu.json: our and the official generators timed in one run."""
    rows = [("asapnet", "ours", 1024, 2048, 1000.0), ("official-asapnet", "official", 1024, 2048, 3000.0),
            ("pix2pixhd", "ours", 1024, 2048, 20000.0), ("official-pix2pixhd", "official", 1024, 2048, 18000.0),
            ("asapnet", "ours", 256, 512, 100.0), ("pix2pixhd", "ours", 256, 512, 900.0)]
    return {"environment": dict(HW) if env is None else env,
            "rows": [{"size": f"{h}x{w}", "height": h, "width": w, "dtype": "fp32", "model": m, "code": c, "threads": 2,
                      "median_ms": ms} for m, c, h, w, ms in rows]}


def _benchmark():
    """benchmarks/results/translation_speed_cpu.csv rows (the dvc plots table draws them, labelled by machine)."""
    rows = [("asapnet", "fast", 1024, 2048, 1000.0), ("asapnet", "reference", 1024, 2048, 2000.0),
            ("pix2pixhd", "", 1024, 2048, 20000.0), ("asapnet", "fast", 256, 512, 100.0),
            ("pix2pixhd", "", 256, 512, 900.0)]
    return pd.DataFrame([{"device": "cpu", "dtype": "fp32", "height": h, "width": w, "model": m, "impl": i or None, "threads": 2,
                          "median_ms": ms} for m, i, h, w, ms in rows])


def _denoise(asap_psnr=27.0, cnn_psnr=26.0):
    runs = [{"run": "dncnn_gray", "label": "DnCNN-20 (ours)", "model": "dncnn", "variant": "nan", "data": "train400", "gmacs": 100.0},
            {"run": "cnn_small", "label": "plain CNN small", "model": "dncnn", "variant": "nan", "data": "train400", "gmacs": 1.0},
            {"run": "asap_a", "label": "ASAPNet a", "model": "asapnet_denoise", "variant": "plain", "data": "train400", "gmacs": 1.0},
            {"run": "asap_b", "label": "ASAPNet b", "model": "asapnet_denoise", "variant": "context_conv", "data": "train400", "gmacs": 1.5}]
    psnr = {"official_dncnn_b_gray": (31.0, 29.0, 26.0), "dncnn_gray": (25.0, 23.0, 20.0), "cnn_small": (28.0, cnn_psnr, 22.0),
            "asap_a": (22.0, 21.0, 18.0), "asap_b": (28.5, asap_psnr, 23.0)}
    summary = [{"set": "bsd68", "model": m, "kind": "official" if m.startswith("official") else "ours", "sigma": sig,
                "n_images": 68, "psnr": v, "psnr_noisy": 20.2 if sig == 25.0 else 15.0}
               for m, vals in psnr.items() for sig, v in zip((15.0, 25.0, 50.0), vals)]
    summary.append({"set": "set12", "model": "asap_b", "kind": "ours", "sigma": 25.0, "n_images": 12, "psnr": 99.0,
                    "psnr_noisy": 20.0})
    return {"meta": {"scale": "default"}, "runs": runs, "summary": summary}


def _denoise_timing():
    ms = {"dncnn_gray": 3000.0, "cnn_small": 190.0, "asap_a": 150.0, "asap_b": 200.0}
    return pd.DataFrame([{"model": m, "height": 321, "width": 481, "median_ms": v} for m, v in ms.items()])


def test_headline_rows_are_flat_rounded_and_from_the_files():
    rows = S.headline({"facades": _eval(asap_fid=150.04)}, _timing_json(), _denoise(), _official())
    assert rows["translation_facades_asapnet"] == {"fid": 150.0, "kid": 0.15, "miou": 0.3}
    assert rows["translation_facades_real_photos"] == {"fid": 60.0, "miou": 0.5}  # KID "nan" left out
    # all-threads measurement of the stage; the skipped 1024x2048 cell: our pix2pixHD / our ASAPNet of the
    # ours-vs-official run on the same machine (not the official pix2pixHD, not the stage's 256x512 again)
    assert rows["speedup_256x512"] == {"pix2pixhd": 2.5, "spade": 6.0}
    assert rows["speedup_1024x2048"] == {"pix2pixhd": 20.0}
    assert rows["psnr_dncnn_b_official"] == {"s15": 31.0, "s25": 29.0, "s50": 26.0}
    assert rows["psnr_asap_b"]["s25"] == 27.0  # BSD68 only: the Set12 row does not leak in
    for values in rows.values():
        assert values and all(isinstance(v, float) and math.isfinite(v) for v in values.values())


def test_headline_takes_no_ratio_from_another_or_an_unidentified_machine():
    other = {**HW, "cpu_features": ["avx2"]}  # another CPU of the same model name
    unknown = {k: v for k, v in HW.items() if k != "cpu_features"}  # cannot tell
    for env in (other, unknown, {**HW, "threads": 1}):
        rows = S.headline({"facades": _eval()}, _timing_json(), _denoise(), _official(env))
        assert "speedup_1024x2048" not in rows and rows["speedup_256x512"] == {"pix2pixhd": 2.5, "spade": 6.0}
        text = S.summary_markdown(_studies(_eval()), _timing_json(), _denoise(), _denoise_timing(), _official(env))
        assert "1024x2048" not in text


def test_headline_follows_changed_metrics():
    rows = S.headline({"facades": _eval(asap_fid=123.45)}, _timing_json(), _denoise(asap_psnr=24.321), _official())
    assert rows["translation_facades_asapnet"]["fid"] == 123.5 and rows["psnr_asap_b"]["s25"] == 24.32


def test_write_headline_writes_one_flat_file_per_row_and_drops_stale_ones(tmp_path):
    (tmp_path / "psnr_old_run.json").write_text("{}")
    rows = S.headline({"facades": _eval()}, _timing_json(), _denoise(), _official())
    files = S.write_headline(rows, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{k}.json" for k in rows)
    assert len(files) == len(rows)
    data = json.loads((tmp_path / "speedup_256x512.json").read_text())
    assert data == {"pix2pixhd": 2.5, "spade": 6.0}
    # what `dvc metrics show` prints: rows = files, columns = the union of their keys: few and short
    keys = {k for f in tmp_path.iterdir() for k in json.loads(f.read_text())}
    assert keys == {"fid", "kid", "miou", "pix2pixhd", "spade", "s15", "s25", "s50"}


def test_summary_answers_both_questions_with_the_files_numbers():
    text = S.summary_markdown(_studies(_eval()), _timing_json(), _denoise(), _denoise_timing(), _official(), sigma=25,
                              anchors={"quality": "quality", "speed": "speed", "ablation": "ablation"})
    q1, q2 = text.split("**2. ")
    assert q1.startswith("**1. Is ASAPNet faster than pix2pixHD at equal quality?**")
    assert "**Facades — Yes: faster, and its quality is at least equal.**" in q1
    assert "**2.50x** at 256x512 (timing stage)" in q1 and "**20.00x** at 1024x2048 (ours-vs-official run: our two generators;" in q1
    assert "AMD EPYC (AVX2/AVX\u2011512), 2 threads" in q1  # the machine of the ratios is named
    assert "better than pix2pixHD on all three measures" in q1  # KID, FID and mIoU: three listed, three counted
    assert "KID 0.150 vs 0.200" in q1 and "FID 150.0 vs 200.0" in q1 and "real photos 60.0" in q1
    assert "mIoU 0.300 vs 0.200" in q1
    assert "(95% bootstrap intervals of KID and FID and mIoU apart)" not in q1  # the fixture's KIDs have no intervals
    assert "(95% bootstrap intervals of FID and mIoU apart)" in q1
    assert "[quality table](#quality-facades)" in q1 and "[speed-ups](#speed)" in q1
    # no timing of the trained generators passed: said, and the verdict's speed is the architecture's
    assert "**Speed of the evaluated generators:** not timed" in q1
    assert "Does its idea carry over to denoising?**" in q2
    assert "ASAPNet b" in q2 and "**27.00 dB** in 200 ms" in q2 and "noisy input 20.20 dB" in q2
    assert "29.00 dB" in q2 and "2.00 dB behind" in q2 and "15.0x faster" in q2  # official DnCNN-B, our DnCNN-20's time
    assert "plain CNN small" in q2 and "+1.00 dB against it" in q2 and "1.05x its time" in q2  # 200 / 190 ms
    assert "on the PSNR-vs-time Pareto front of all 5 models" in q2 and "ASAPNet b (27.00 dB, 200 ms)" in q2
    assert "ASAPNet a (21.00 dB, 150 ms, the fastest model, so on it by speed alone)" in q2
    assert "**Partly: it beats a plain CNN as fast, but not the fully trained DnCNN.**" in q2
    assert "[ablation](#ablation)" in q2


def test_summary_verdicts_follow_the_numbers():
    worse = S.summary_markdown(_studies(_eval(asap_fid=250.0, asap_miou=0.1)), _timing_json(), _denoise(asap_psnr=25.0),
                               _denoise_timing(), _official())
    assert "**Facades — Faster, but not at equal quality.**" in worse and "worse than pix2pixHD on all three measures" in worse
    assert "**Not at this budget: a plain CNN as fast denoises as well or better.**" in worse
    mixed = S.summary_markdown(_studies(_eval(asap_fid=201.0, asap_miou=0.25, p2p_fid=200.0)), _timing_json(), _denoise(),
                               _denoise_timing(), _official())
    assert "mixed against pix2pixHD (better on mIoU, worse on KID and FID)" in mixed and "intervals" not in mixed
    smoothed = _eval()
    for r, v in zip(smoothed["rows"], (0.5, 0.1)):  # ASAPNet worse on the smoothed KID only
        r["kid_smoothed"] = v
    text = S.summary_markdown(_studies(smoothed), _timing_json(), _denoise(), _denoise_timing(), _official())
    assert "better on FID and mIoU, worse on KID" in text and "KID (mean of the last learning-curve points) 0.500 vs 0.100" in text


def test_summary_without_denoising_metrics_says_so():
    text = S.summary_markdown(_studies(_eval()), _timing_json(), {"summary": [], "runs": []})
    assert "No denoising metrics yet." in text and "FID 150.0" in text


def test_plot_tables_are_tidy_with_a_series_column():
    timing = pd.DataFrame([{"kind": "paper_config", "model": m, "height": 256, "width": 512, "megapixels": 0.131072,
                            "device": "cpu", "threads": 2, "threads_setting": 0, "tf32": "-", "status": "ok",
                            "median_ms": ms} for m, ms in (("asapnet", 100.0), ("pix2pixhd", 250.0))])
    losses = {"asap_a": pd.DataFrame({"step": [10, 20], "loss": [0.5, 0.25]}),
              "dncnn_gray": pd.DataFrame({"step": [10, 20, 30], "loss": [0.9, 0.4, 0.123456789]})}
    tables = S.plot_tables(_studies(), timing, _denoise(), losses, _benchmark(), where={"benchmark": "another CPU"})
    assert set(tables) == {"runtime_vs_size", "quality_vs_time", "psnr_vs_sigma", "denoise_losses"}
    for frame in tables.values():
        assert frame.columns[0] == "series"
    psnr = tables["psnr_vs_sigma"]
    assert len(psnr) == 15 and set(psnr["series"]) == {"dncnn_b_official", "dncnn_gray", "cnn_small", "asap_a", "asap_b"}
    loss = tables["denoise_losses"]
    assert len(loss) == 5 and loss["loss"].iloc[-1] == pytest.approx(0.12346)
    runtime = tables["runtime_vs_size"]
    ours = runtime[runtime["series"].str.startswith("ASAPNet · cpu")]
    assert list(ours["ms"]) == [100.0] and list(ours["size"]) == ["256x512"]
    bench = runtime[runtime["series"].str.contains("speed benchmark")]
    assert len(bench) == 5 and bench["series"].str.contains("another CPU").all()  # the machine is named


def test_format_frame_has_no_nan_cells():
    frame = pd.DataFrame({"ms 481x321": [3456.2, float("nan")], "PSNR σ=25": [29.3812, None], "VGG loss": [True, False],
                          "note": ["x", "nan"]})
    out = format_frame(frame, {"ms": 0})
    assert out.to_dict("list") == {"ms 481x321": ["3,456", MISSING], "PSNR σ=25": ["29.38", MISSING],
                                   "VGG loss": ["yes", "no"], "note": ["x", MISSING]}
    assert format_number("skipped", 2) == "skipped"


def test_denoise_answer_rests_on_the_files_rival_and_its_paired_interval():
    """The verdict: the best equal-budget ASAPNet run (meta.best_variant, not a longer-training run) against
    the plain CNN of meta.rival_cnn, with the paired interval of that pair; and no ASAPNet run on the front."""
    den = _denoise(asap_psnr=25.0)
    den["runs"].append({"run": "asap_b_4x", "label": "ASAPNet b 4x", "model": "asapnet_denoise", "variant": "context_conv",
                        "data": "train400", "gmacs": 1.5})
    den["summary"].append({"set": "bsd68", "model": "asap_b_4x", "kind": "ours", "sigma": 25.0, "n_images": 68,
                           "psnr": 25.9, "psnr_noisy": 20.2})
    den["meta"].update(best_variant="asap_b", rival_cnn="cnn_small", reference_cnn="dncnn_gray", longer_training=["asap_b_4x"])
    den["paired_difference"] = [{"set": "bsd68", "sigma": 25.0, "model_a": "asap_b", "model_b": "cnn_small", "n_images": 68,
                                 "mean_diff": -1.0, "ci_low": -1.2, "ci_high": -0.8, "level": 0.95, "n_boot": 2000, "wins_a": 3}]
    timing = pd.concat([_denoise_timing(), pd.DataFrame([{"model": "asap_b_4x", "height": 321, "width": 481, "median_ms": 200.0},
                                                          {"model": "asap_a", "height": 321, "width": 481, "median_ms": 400.0}])])
    timing = timing.drop_duplicates("model", keep="last")  # asap_a now slower than the plain CNN
    q2 = S.summary_markdown(_studies(_eval()), _timing_json(), den, timing, _official(), sigma=25).split("**2. ")[1]
    assert "the best variant at the shared training budget, ASAPNet b, reaches **25.00 dB**" in q2  # not the 4x run's 25.90
    assert "**Not at this budget: a plain CNN as fast denoises as well or better.**" in q2
    assert "scores -1.00 dB against it, 95% paired bootstrap interval [-1.20, -0.80] over 68 images" in q2
    assert "**Pareto front:** no ASAPNet-derived design is on the PSNR-vs-time Pareto front of all 6 models" in q2
