"""The README's numbers are the committed results files' numbers.

Each claim is a sentence fragment of README.md with ``{}`` where a number stands, and the functions
that read those numbers from the results files (``reports/metrics/``, ``benchmarks/results/``, the
executed notebooks' recorded durations) and format them as the README does. The test formats the
fragment and looks for it in the README: a number edited by hand, a result re-measured without the
README following, or a claim reworded without this table following, fails it.
"""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
METRICS = ROOT / "reports" / "metrics"
FACADES = METRICS / "translation" / "facades"  # the Facades study's files
CAMVID = METRICS / "translation" / "camvid"  # the CamVid study's files
RESULTS = ROOT / "benchmarks" / "results"


@cache
def _json(path: Path) -> dict:
    return json.loads(path.read_text())


@cache
def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


def timing(model: str, h: int, w: int, column: str = "median_ms", kind: str = "paper_config") -> float:
    """The timing stage, all-cores setting."""
    t = _csv(METRICS / "translation_timing.csv")
    row = t[(t["kind"] == kind) & (t["model"] == model) & (t["height"] == h) & (t["width"] == w) & (t["threads_setting"] == 0)]
    return float(row[column].iloc[0])


def speedup(baseline: str, h: int, w: int) -> float:
    """Baseline / ASAPNet of the timing stage's run, all cores."""
    return timing(baseline, h, w) / timing("asapnet", h, w)


def official(model: str, size: str, dtype: str = "fp32") -> float:
    t = _csv(RESULTS / "against_official_cpu.csv")
    return float(t[(t["model"] == model) & (t["size"] == size) & (t["dtype"] == dtype)]["median_ms"].iloc[0])


def bench(model: str, size: str, impl: str | None = None, column: str = "median_ms") -> float:
    t = _csv(RESULTS / "translation_speed_cpu.csv")
    h, w = (int(x) for x in size.split("x"))
    rows = t[(t["model"] == model) & (t["height"] == h) & (t["width"] == w)]
    if impl:
        rows = rows[rows["impl"] == impl]
    return float(rows[column].iloc[0])


def quality(model: str, key: str, study: Path = FACADES) -> float:
    return float(next(r for r in _json(study / "translation_eval.json")["rows"] if r["model"] == model)[key])


def curve(model: str, i: int, key: str, study: Path = FACADES) -> float:
    """Learning-curve point ``i`` of a model (by step; ``i = "best"``: the lowest KID)."""
    c = _csv(study / "translation_curves.csv")
    points = c[c["model"] == model].sort_values("step").reset_index(drop=True)
    row = points.loc[points["kid"].idxmin()] if i == "best" else points.iloc[i]
    return float(row["train_seconds"]) / 60 if key == "minutes" else float(row[key])


def curve_range(model: str, key: str, study: Path = CAMVID) -> tuple[float, float]:
    points = _csv(study / "translation_curves.csv")
    values = points.loc[points["model"] == model, key]
    return float(values.min()), float(values.max())


def trained_ms(dataset: str, model: str, h: int, w: int, dtype: str = "fp32") -> float:
    """The timing stage's row of a study's trained generator (its architecture at ``h`` x ``w``)."""
    t = _csv(METRICS / "translation_timing.csv")
    row = t[t["kind"].str.startswith("trained") & (t["dataset"] == dataset) & (t["model"] == model)
            & (t["height"] == h) & (t["width"] == w) & (t["dtype"] == dtype)]
    return float(row["median_ms"].iloc[0])


def trained_speedup(dataset: str, h: int, w: int, dtype: str = "fp32") -> float:
    return trained_ms(dataset, "pix2pixhd", h, w, dtype) / trained_ms(dataset, "asapnet", h, w, dtype)


def budget(run: str, model: str, key: str, which: str = "final") -> float:
    """The CamVid study at a multiple of its steps (benchmarks/translation_budget.py): the final row, the
    mean of the last three snapshots (``last3``), the lowest / highest snapshot (``min`` / ``max``), or the
    snapshot at step ``which`` (digits)."""
    t = _csv(RESULTS / "translation_budget_camvid.csv")
    g = t[(t["run"] == run) & (t["model"] == model)].sort_values("step")
    if which == "final":
        row = g[g["final"]].iloc[0]
        return float(row["train_seconds"]) / 60 if key == "minutes" else float(row[key])
    if which == "last3":
        return float(g[key].tail(3).mean())
    if which in ("min", "max"):
        return float(getattr(g[key], which)())
    return float(g.loc[g["step"] == int(which), key].iloc[0])


def ceiling(changed: str, key: str = "miou") -> float:
    """A run of the CamVid segmenter with some settings changed (benchmarks/segmenter_ceiling.py)."""
    t = _csv(RESULTS / "segmenter_ceiling_camvid.csv")
    return float(t.loc[t["changed"] == changed, key].iloc[-1])


def gan_run(study: Path, model: str) -> dict:
    return _json(study / f"train_{model}.json")


def psnr(model: str, sigma: float, block: str = "summary", set_name: str = "bsd68") -> float:
    rows = _json(METRICS / "denoise_eval.json")[block]
    return float(next(r for r in rows if r["model"] == model and r["set"] == set_name and r["sigma"] == sigma)["psnr"])


def denoise_runs() -> list[dict]:
    """The denoising study's runs, as the evaluation's metrics file lists them."""
    return _json(METRICS / "denoise_eval.json")["runs"]


TEST_SET = {"train400": "bsd68", "cbsd432": "cbsd68"}  # a run's training data -> the set it is scored on


def delta(run: str, parent: str, set_name: str, sigma: float = 25.0) -> dict:
    """The paired-bootstrap difference of ``run`` against the run it changes."""
    return next(d for d in _json(METRICS / "denoise_eval.json")["ablation_delta"]
                if d["model_a"] == run and d["model_b"] == parent and d["set"] == set_name and d["sigma"] == sigma)


def denoise_row(run: dict) -> str:
    """The README's table row of one run: PSNR at sigma 15/25/50 on its test set, the change's delta
    at sigma 25 with its 95% interval against the run it changes, time, GMAC and training."""
    name, set_name = run["run"], TEST_SET[run["data"]]
    labels = {r["run"]: r["label"] for r in denoise_runs()}
    parent = run.get("parent")
    change = ""
    if isinstance(parent, str) and parent in labels:
        d = delta(name, parent, set_name)
        change = f"{d['mean_diff']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}] vs {labels[parent]}"
    train = _json(METRICS / f"train_denoise_{name}.json")
    return (f"| {run['label']} | " + " | ".join(f2(psnr(name, s, set_name=set_name)) for s in (15.0, 25.0, 50.0))
            + f" | {change} | {f0(denoise_ms(name))} | {f1(train['gmacs_481x321'])} | "
            + f"{train['steps']:,} steps, {f1(train['train_seconds'] / 60)} min |")


def paired(model_a: str, model_b: str, set_name: str = "bsd68", sigma: float = 25.0) -> dict:
    """The evaluation's paired-bootstrap difference of two models (``model_a`` minus ``model_b``)."""
    return next(d for d in _json(METRICS / "denoise_eval.json")["paired_difference"]
                if d["model_a"] == model_a and d["model_b"] == model_b and d["set"] == set_name and d["sigma"] == sigma)


def grid_gap(model: str, crop: int) -> float:
    """The grid check: PSNR of crop-side windows minus the full image's, on the same pixels."""
    return float(next(g["crop_minus_full_db"] for g in _json(METRICS / "denoise_eval.json")["grid_check"]
                      if g["model"] == model and g["crop"] == crop))


def loss_mean(run: str, last_step: int) -> float:
    """Mean logged training MSE of a run over its steps up to ``last_step``."""
    losses = _csv(METRICS / f"losses_denoise_{run}.csv")
    return float(losses.loc[losses["step"] <= last_step, "loss"].mean())


def _loss_trend(run: str) -> str:
    from lib.report.denoise_findings import loss_trend_text
    return loss_trend_text(_csv(METRICS / f"losses_denoise_{run}.csv"))


def denoise_ms(model: str) -> float:
    t = _csv(METRICS / "denoise_timing.csv")
    return float(t[(t["model"] == model) & (t["height"] == 321)]["median_ms"].iloc[0])


def train_min(run: str) -> float:
    return _json(METRICS / f"train_denoise_{run}.json")["train_seconds"] / 60


def dncnn(set_name: str, model: str, sigma: float) -> float:
    rows = _json(METRICS / "dncnn_official.json")["rows"]
    return float(next(r for r in rows if r["set"] == set_name and r["model"] == model and r["sigma"] == sigma)["psnr"])


def stage_min(*notebooks: str) -> float:
    """Minutes papermill recorded for executed notebooks in reports/runs/ (summed)."""
    return sum(_json(ROOT / "reports" / "runs" / f"{n}.ipynb")["metadata"]["papermill"]["duration"] for n in notebooks) / 60


DENOISERS = tuple(r["run"] for r in denoise_runs())  # every run the committed evaluation scored
STUDY_STAGES = {d: (f"03-train-translation-{d}-asapnet", f"03-train-translation-{d}-pix2pixhd",
                     f"04-train-segmenter-{d}", f"05-evaluate-translation-{d}") for d in ("facades", "camvid")}
STAGES = ("01-fetch-data", "02-evaluate-official-dncnn", *STUDY_STAGES["facades"], *STUDY_STAGES["camvid"],
          "06-time-translation", *(f"07-train-denoiser-{r}" for r in DENOISERS), "08-evaluate-denoising")


def f0(x: float) -> str:
    return f"{x:.0f}"


def f1(x: float) -> str:
    return f"{x:.1f}"


def f2(x: float) -> str:
    return f"{x:.2f}"


def f3(x: float) -> str:
    return f"{x:.3f}"


def f4(x: float) -> str:
    return f"{x:.4f}"


def signed(x: float) -> str:
    return f"{x:+.2f}"


def ms_or_s(x: float) -> str:
    """As the README's official table writes a time: ms below one second, else seconds (2 or 3 digits)."""
    return f"{x:.0f} ms" if x < 1000 else (f"{x / 1e3:.2f} s" if x < 10000 else f"{x / 1e3:.1f} s")


Claim = tuple[str, tuple[Callable[[], str], ...]]
CLAIMS: list[Claim] = [
    # stage times (papermill durations of the executed notebooks)
    ("about {} min at the default scale", (lambda: f0(stage_min(*STAGES)),)),
    ("about {} min in all before the report", (lambda: f0(stage_min(*STAGES)),)),
    *[(f"the {title} study: ASAPNet {{}} min, pix2pixHD {{}} min, segmenter {{}} min,\nFID/KID/mIoU with the learning curves {{}} min ({{}} min together)",
       (*((lambda n=n: f1(stage_min(n))) for n in STUDY_STAGES[d]), lambda d=d: f1(stage_min(*STUDY_STAGES[d]))))
      for d, title in (("facades", "Facades"), ("camvid", "CamVid"))],
    ("translation timing grid {} min", (lambda: f1(stage_min("06-time-translation")),)),
    ("denoiser training {} min for the {} runs",
     (lambda: f1(stage_min(*(f"07-train-denoiser-{r}" for r in DENOISERS))), lambda: str(len(DENOISERS)))),
    ("denoising evaluation {} min", (lambda: f1(stage_min("08-evaluate-denoising")),)),
    # translation quality
    # each study's quality table: the two generator rows
    *[(f"| {label} | {b}{{}}{b} [{{}}, {{}}] | {b}{{}}{b} | {{}} [{{}}, {{}}] | {b}{{}}{b} [{{}}, {{}}] | {{}} |",
       tuple((lambda m=m, k=k, f=f, st=st: f(quality(m, k, st))) for k, f in (
           ("kid", f3), ("kid_boot_low", f3), ("kid_boot_high", f3), ("kid_smoothed", f3), ("fid", f1),
           ("fid_boot_low", f1), ("fid_boot_high", f1), ("miou", f3), ("miou_boot_low", f3), ("miou_boot_high", f3),
           ("pixel_accuracy", f3))))
      for st in (FACADES, CAMVID) for m, label, b in (("asapnet", "ASAPNet", "**"), ("pix2pixhd", "pix2pixHD", ""))],
    ("2-core CPU (ASAPNet {} steps in {} min, pix2pixHD {} steps in {} min; bf16 autocast)",
     (lambda: f"{gan_run(FACADES, 'asapnet')['steps']:,}", lambda: f1(gan_run(FACADES, "asapnet")["train_seconds"] / 60),
      lambda: f"{gan_run(FACADES, 'pix2pixhd')['steps']:,}", lambda: f1(gan_run(FACADES, "pix2pixhd")["train_seconds"] / 60))),
    ("U-Net trained here on the real training photos ({} epochs, {} min)",
     (lambda: f0(gan_run(FACADES, "segmenter")["epochs"]), lambda: f1(gan_run(FACADES, "segmenter")["train_seconds"] / 60))),
    ("ASAPNet passes pix2pixHD's final KID ({})\nbefore its first snapshot ({} at {} min) and reaches {} at {} min",
     (lambda: f2(curve("pix2pixhd", -1, "kid")), lambda: f2(curve("asapnet", 0, "kid")), lambda: f1(curve("asapnet", 0, "minutes")),
      lambda: f2(curve("asapnet", 3, "kid")), lambda: f1(curve("asapnet", 3, "minutes")))),
    ("(KID {}-{}) and only then starts\nto follow the layout ({}, {}, {} at {}, {} and {} min)",
     (lambda: f2(min(curve("pix2pixhd", i, "kid") for i in range(3))), lambda: f2(max(curve("pix2pixhd", i, "kid") for i in range(3))),
      *((lambda i=i: f2(curve("pix2pixhd", i, "kid"))) for i in (3, 4, 5)),
      *((lambda i=i: f0(curve("pix2pixhd", i, "minutes"))) for i in (3, 4, 5)))),
    ("ASAPNet's mIoU peaked at {} at {} min",
     (lambda: f3(curve("asapnet", 3, "miou")), lambda: f0(curve("asapnet", 3, "minutes")))),
    # the CamVid study
    ("| real photos (ceiling; KID/FID: the real training vs test photos) | {} | | {} | {} | {} |",
     tuple((lambda k=k, f=f: f(quality("real", k, CAMVID))) for k, f in (
         ("kid", f3), ("fid", f1), ("miou", f3), ("pixel_accuracy", f3)))),
    ("ASAPNet {} steps in {} min,\npix2pixHD {} steps in {} min. FID/KID: all {} generated test images against the {} real test\nphotos",
     (lambda: f"{gan_run(CAMVID, 'asapnet')['steps']:,}", lambda: f1(gan_run(CAMVID, "asapnet")["train_seconds"] / 60),
      lambda: f"{gan_run(CAMVID, 'pix2pixhd')['steps']:,}", lambda: f1(gan_run(CAMVID, "pix2pixhd")["train_seconds"] / 60),
      lambda: str(int(quality("asapnet", "n", CAMVID))), lambda: str(int(quality("real", "n", CAMVID))))),
    ("photos ({} epochs, {} min)", (lambda: f0(gan_run(CAMVID, "segmenter")["epochs"]),
                                    lambda: f1(gan_run(CAMVID, "segmenter")["train_seconds"] / 60))),
    ("ASAPNet's first snapshot (KID {} at {} min) is already better than any pix2pixHD\nsnapshot (best {})",
     (lambda: f2(curve("asapnet", 0, "kid", CAMVID)), lambda: f1(curve("asapnet", 0, "minutes", CAMVID)),
      lambda: f2(curve_range("pix2pixhd", "kid")[0]))),
    ("it was best at {} min (KID {}, mIoU {})",
     (lambda: f1(curve("asapnet", "best", "minutes", CAMVID)), lambda: f2(curve("asapnet", "best", "kid", CAMVID)),
      lambda: f3(curve("asapnet", "best", "miou", CAMVID)))),
    ("pix2pixHD's mIoU stays between {} and {} at every snapshot while its KID drifts\nfrom {} to {}",
     (lambda: f2(curve_range("pix2pixhd", "miou")[0]), lambda: f2(curve_range("pix2pixhd", "miou")[1]),
      lambda: f2(curve("pix2pixhd", 0, "kid", CAMVID)), lambda: f2(curve("pix2pixhd", -1, "kid", CAMVID)))),
    ("Facades keeps the U-Net trained from scratch\n({} mIoU on the real test photos",
     (lambda: f3(quality("real", "miou")),)),
    ("`lib/models/inception_segmenter.py`):\n{} mIoU on the real CamVid test photos",
     (lambda: f3(quality("real", "miou", CAMVID)),)),
    ("at CamVid's 128x176\nASAPNet {} ms and pix2pixHD {} ms per image ({}x in fp32, {}x with bf16 autocast)",
     (lambda: f0(trained_ms("camvid", "asapnet", 128, 176)), lambda: f0(trained_ms("camvid", "pix2pixhd", 128, 176)),
      lambda: f2(trained_speedup("camvid", 128, 176)), lambda: f2(trained_speedup("camvid", 128, 176, "bf16")))),
    ("rebuilt for a 16x32 grid with its tile-size-dependent tensors redrawn) ASAPNet {} ms and pix2pixHD\n{} ms: **{}x** in fp32 ({}x in bf16)",
     (lambda: f0(trained_ms("camvid", "asapnet", 256, 512)), lambda: f0(trained_ms("camvid", "pix2pixhd", 256, 512)),
      lambda: f2(trained_speedup("camvid", 256, 512)), lambda: f2(trained_speedup("camvid", 256, 512, "bf16")))),
    ("(random weights, {}x at 256x512 in the same run: the architecture comparison)",
     (lambda: f2(speedup("pix2pixhd", 256, 512)),)),
    ("ASAPNet's low-resolution stream at 256 channels cuts its time {}x there, while halving\npix2pixHD's width (ngf 32) cuts its time {}x",
     (lambda: f2(timing("asapnet", 256, 512) / trained_ms("camvid", "asapnet", 256, 512)),
      lambda: f2(timing("pix2pixhd", 256, 512) / trained_ms("camvid", "pix2pixhd", 256, 512)))),
    ("ASAPNet is at least 2x faster at 256x512 at the trained widths ({}x)", (lambda: f2(trained_speedup("camvid", 256, 512)),)),
    ("the segmenter's ceiling, {} mIoU against the 0.55 aimed for", (lambda: f3(quality("real", "miou", CAMVID)),)),
    ("pix2pixHD's mIoU, {}, under half the ceiling\n({}) at every snapshot; ASAPNet's final mIoU, {}, under it by {} (its best snapshot, {},\nand the mean of its last three, {}, are above)",
     (lambda: f3(quality("pix2pixhd", "miou", CAMVID)), lambda: f3(quality("real", "miou", CAMVID) / 2),
      lambda: f3(quality("asapnet", "miou", CAMVID)),
      lambda: f3(quality("real", "miou", CAMVID) / 2 - quality("asapnet", "miou", CAMVID)),
      lambda: f3(curve_range("asapnet", "miou")[1]), lambda: f3(quality("asapnet", "miou_smoothed", CAMVID)))),
    ("at\ntwice the budget ({} and {} steps, {} and {} min;",
     (lambda: f"{int(budget('2x', 'asapnet', 'total_steps')):,}", lambda: f"{int(budget('2x', 'pix2pixhd', 'total_steps')):,}",
      lambda: f1(budget("2x", "asapnet", "minutes")), lambda: f1(budget("2x", "pix2pixhd", "minutes")))),
    ("pix2pixHD's mIoU is bounded by time, slowly: {} at the end ({}, mean of its\nlast three)",
     (lambda: f3(budget("2x", "pix2pixhd", "miou")), lambda: f3(budget("2x", "pix2pixhd", "miou", "last3")))),
    ("its KID does not improve ({}; its snapshots\nstay between {} and {})",
     (lambda: f3(budget("2x", "pix2pixhd", "kid")), lambda: f3(budget("2x", "pix2pixhd", "kid", "min")),
      lambda: f3(budget("2x", "pix2pixhd", "kid", "max")))),
    ("ASAPNet's KID improves a little ({}; mean of its last three {}), but its\nmIoU stays where it was ({}; mean of its last three {})",
     (lambda: f3(budget("2x", "asapnet", "kid")), lambda: f3(budget("2x", "asapnet", "kid", "last3")),
      lambda: f3(budget("2x", "asapnet", "miou")), lambda: f3(budget("2x", "asapnet", "miou", "last3")))),
    ("(KID {}\nand {} at steps 1,100 and 2,200)",
     (lambda: f3(budget("2x", "asapnet", "kid", "1100")), lambda: f3(budget("2x", "asapnet", "kid", "2200")))),
    ("moves little with more training (`benchmarks/results/segmenter_ceiling_camvid.csv`): {} with twice\nthe epochs, {} with a decoder twice as wide",
     (lambda: f3(ceiling("epochs=24")), lambda: f3(ceiling("decoder_width=128")))),
    # inference time, timing stage
    ("at 256x512 ASAPNet {} ms, pix2pixHD {} ms\n(**{}x**), SPADE {} s ({}x); at 256x256 {}x and {}x; at 512x1024 {}x (SPADE skipped",
     (lambda: f0(timing("asapnet", 256, 512)), lambda: f0(timing("pix2pixhd", 256, 512)),
      lambda: f2(speedup("pix2pixhd", 256, 512)), lambda: f2(timing("spade", 256, 512) / 1e3),
      lambda: f2(speedup("spade", 256, 512)), lambda: f2(speedup("pix2pixhd", 256, 256)),
      lambda: f2(speedup("spade", 256, 256)), lambda: f2(speedup("pix2pixhd", 512, 1024)))),
    ("ASAPNet {} ms, pix2pixHD {} ms per image",
     (lambda: f0(timing("asapnet", 128, 128, kind="trained")), lambda: f0(timing("pix2pixhd", 128, 128, kind="trained")))),
    ("({} ms, interquartile range {}-{}) to 512x1024 ({} ms, {}-{})",
     (lambda: f0(timing("asapnet", 256, 512)), lambda: f0(timing("asapnet", 256, 512, "q25_ms")),
      lambda: f0(timing("asapnet", 256, 512, "q75_ms")), lambda: f0(timing("asapnet", 512, 1024)),
      lambda: f0(timing("asapnet", 512, 1024, "q25_ms")), lambda: f0(timing("asapnet", 512, 1024, "q75_ms")))),
    ("the ours-vs-official table\nbelow: {} ms for our ASAPNet at 256x512", (lambda: f0(official("asapnet", "256x512")),)),
    ("({}, {} and {} GMAC at 256x512,\n512x1024 and 1024x2048)",
     tuple((lambda h=h, w=w: f1(timing("asapnet", h, w, "gmacs"))) for h, w in ((256, 512), (512, 1024), (1024, 2048)))),
    ("{}x in multiply-accumulates ({} against {} GMAC",
     (lambda: f2(timing("pix2pixhd", 256, 512, "gmacs") / timing("asapnet", 256, 512, "gmacs")),
      lambda: f1(timing("asapnet", 256, 512, "gmacs")), lambda: f1(timing("pix2pixhd", 256, 512, "gmacs")))),
    # ours against the official code (one run)
    *[(f"| {size} | {{}} | {{}} | {b}{{}}{b} | {{}} | {{}} | {b}{{}}x{b} | {b}{{}}x{b} |",
       (lambda s=size: ms_or_s(official("asapnet", s)), lambda s=size: ms_or_s(official("official-asapnet", s)),
        lambda s=size: f2(official("asapnet", s) / official("official-asapnet", s)),
        lambda s=size: ms_or_s(official("pix2pixhd", s)), lambda s=size: ms_or_s(official("official-pix2pixhd", s)),
        lambda s=size: f2(official("pix2pixhd", s) / official("asapnet", s)),
        lambda s=size: f2(official("official-pix2pixhd", s) / official("asapnet", s))))
      for size, b in (("256x512", ""), ("512x1024", ""), ("1024x2048", "**"))],
    ("The summary's speed-up at 1024x2048 ({}x)", (lambda: f2(official("pix2pixhd", "1024x2048") / official("asapnet", "1024x2048")),)),
    # the speed benchmark of another CPU
    ("its ASAPNet took {} ms at 256x512 against {} ms\nin the timing stage",
     (lambda: f"{bench('asapnet', '256x512', 'fast'):,.0f}", lambda: f0(timing("asapnet", 256, 512)))),
    ("{}x over pix2pixHD at 256x512 and {}x at 1024x2048, {}x\nover the reference MLP at 1024x2048, peak memory {} MiB against {} MiB",
     (lambda: f2(bench("pix2pixhd", "256x512") / bench("asapnet", "256x512", "fast")),
      lambda: f2(bench("pix2pixhd", "1024x2048") / bench("asapnet", "1024x2048", "fast")),
      lambda: f2(bench("asapnet", "1024x2048", "reference") / bench("asapnet", "1024x2048", "fast")),
      lambda: f0(bench("asapnet", "1024x2048", "fast", "peak_memory_mib")),
      lambda: f0(bench("pix2pixhd", "1024x2048", column="peak_memory_mib")))),
    # official DnCNN weights
    ("| DnCNN-B (blind) | BSD68 | {} | {} | {} |", tuple((lambda s=s: f3(dncnn("bsd68", "dncnn_b_gray", s))) for s in (15.0, 25.0, 50.0))),
    ("| CDnCNN-B (blind, color) | CBSD68 | {} | {} | {} |",
     tuple((lambda s=s: f3(dncnn("cbsd68", "cdncnn_b_color", s))) for s in (15.0, 25.0, 50.0))),
    # denoising study (the table rows: test_readme_denoising_table_has_every_run)
    ("| BM3D, first 10 images (all 68 at sigma 25) | {} | {} | {} |",
     tuple((lambda s=s: f2(psnr("bm3d", s, "bm3d_subset"))) for s in (15.0, 25.0, 50.0))),
    ("| CBM3D, first 10 images | {} | {} | {} |",
     tuple((lambda s=s: f2(psnr("bm3d", s, "bm3d_subset", "cbsd68"))) for s in (15.0, 25.0, 50.0))),
    ("BM3D on all 68 images at sigma 25: {} dB", (lambda: f2(psnr("bm3d", 25.0)),)),
    ("{} dB at sigma 25, {} dB behind the official",
     (lambda: f2(psnr("dncnn_gray", 25.0)), lambda: f2(psnr("official_dncnn_b_gray", 25.0) - psnr("dncnn_gray", 25.0)))),
    # denoising findings
    ("is {} dB [{}, {}] against the plain CNN 7x16 image by image",
     tuple((lambda k=k: signed(paired("asapnet_hybrid_kernel", "cnn_7x16")[k])) for k in ("mean_diff", "ci_low", "ci_high"))),
    ("and takes {}x its time. The fastest", (lambda: f1(denoise_ms("asapnet_hybrid_kernel") / denoise_ms("cnn_7x16")),)),
    ("runs in {} ms against {} ms and is {} dB below that CNN",
     (lambda: f0(denoise_ms("asapnet_kernel_only")), lambda: f0(denoise_ms("cnn_7x16")),
      lambda: f2(psnr("cnn_7x16", 25.0) - psnr("asapnet_kernel_only", 25.0)))),
    ("so the gap between them widens to {} dB",
     (lambda: f2(psnr("cnn_7x16_4x", 25.0) - psnr("asapnet_hybrid_kernel_4x", 25.0)),)),
    ("(+{} dB on 128-px windows), the conv front-end nearly (+{} dB)",
     (lambda: f1(grid_gap("asapnet_context_patch", 128)), lambda: f1(grid_gap("asapnet_context_conv", 128)))),
    ("Our CDnCNN-20 reaches {} dB on CBSD68, {} dB behind the official CDnCNN-B",
     (lambda: f2(psnr("dncnn_color", 25.0, set_name="cbsd68")),
      lambda: f2(psnr("official_cdncnn_b_color", 25.0, set_name="cbsd68") - psnr("dncnn_color", 25.0, set_name="cbsd68")))),
    ("({}), and the colour hybrid {} dB.",
     (lambda: f2(psnr("official_cdncnn_b_color", 25.0, set_name="cbsd68")),
      lambda: f2(psnr("asapnet_hybrid_kernel_color", 25.0, set_name="cbsd68")))),
    ("its training MSE averaged {} over the first 500 steps (the grey DnCNN-20 at",
     (lambda: f4(loss_mean("dncnn_color", 500)),)),
    ("1e-3: {}) and ended at {}, against {} for the colour hybrid.",
     (lambda: f4(loss_mean("dncnn_gray", 500)),
      lambda: f4(_json(METRICS / "train_denoise_dncnn_color.json")["final_loss"]),
      lambda: f4(_json(METRICS / "train_denoise_asapnet_hybrid_kernel_color.json")["final_loss"]))),
    ("its loss at the final rate: {}.", (lambda: _loss_trend("dncnn_color"),)),
    ("full-image output is {} dB below its output on 128-px windows (all 68 CBSD68 images),",
     (lambda: f1(grid_gap("asapnet_kernel_bilateral_color", 128)),)),
    ("against {} dB for the colour hybrid.", (lambda: signed(grid_gap("asapnet_hybrid_kernel_color", 128)),)),
    ("{} min colour beside other",
     (lambda: f0(_json(METRICS / "train_denoise_dncnn_color.json")["train_seconds"] / 60),)),
    ("The denoising stages took {} min of notebook time",
     (lambda: f0(stage_min("02-evaluate-official-dncnn", *(f"07-train-denoiser-{r}" for r in DENOISERS),
                           "08-evaluate-denoising")),)),
    ("the evaluation {} min,", (lambda: f1(stage_min("08-evaluate-denoising")),)),
    ("the official DnCNN rows {} min.", (lambda: f1(stage_min("02-evaluate-official-dncnn")),)),
]


def _claim_id(claim: Claim) -> str:
    return claim[0].split("{}")[0].strip()[:40] or claim[0][:40]


@pytest.mark.parametrize("claim", CLAIMS, ids=[_claim_id(c) for c in CLAIMS])
def test_readme_number_is_the_results_file_number(claim):
    template, values = claim
    text = template.format(*(v() for v in values))
    readme = (ROOT / "README.md").read_text()
    assert text in readme, f"README.md does not say {text!r} (from the committed results files)"


def test_readme_names_no_number_of_a_file_that_is_not_committed():
    readme = (ROOT / "README.md").read_text()
    # the DnCNN-S row came from a run whose results file is not in the repository
    assert not any(r["model"] == "dncnn_s" for r in _json(METRICS / "dncnn_official.json")["rows"])
    assert "31.732" not in readme and "| DnCNN-S" not in readme


@pytest.mark.parametrize("run", denoise_runs(), ids=lambda r: r["run"])
def test_readme_denoising_table_has_every_run(run):
    row = denoise_row(run)
    assert row in (ROOT / "README.md").read_text(), f"README.md lacks the row {row!r} (from the committed results files)"
