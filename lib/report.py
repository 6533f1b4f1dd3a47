"""Tables and figures for ``reports/index.html``, built only from committed metrics files.

The report notebook calls these functions; nothing here computes a metric. Every table comes
with a caption that states the scale (data, resolution, images, hardware) of its numbers.
"""
from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import Any, Mapping

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.ticker import NullFormatter

from lib.paths import git_revision

__all__ = [
    "run_header",
    "scale_caption",
    "dncnn_official_table",
    "plot_dncnn_per_image",
    "plot_gan_losses",
    "training_table",
    "translation_table",
    "plot_time_vs_quality",
    "plot_runtime_vs_megapixels",
    "speedup_table",
    "timing_caption",
    "time_quality_points",
    "runtime_series",
    "PAPER_FIG1_MS",
    "OFFICIAL_CPU_S",
    "denoise_labels",
    "denoise_psnr_table",
    "denoise_ablation_table",
    "plot_psnr_vs_time",
    "plot_denoise_losses",
    "denoise_findings",
    "denoise_budget_caption",
    "denoise_grid_table",
]

SCALE_TEXT = {
    "smoke": "SMOKE scale (a few cropped images: checks that the pipeline runs; numbers are not results)",
    "default": "default scale (real data at reduced size, trained on a 2-core CPU)",
    "paper": "paper scale",
}


def run_header(scale: str, title: str) -> str:
    """Markdown header: title, scale, code revision and render date."""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"# {title}\n\n"
        f"**Scale:** {SCALE_TEXT.get(scale, scale)}. **Code:** commit `{git_revision()}`. "
        f"**Rendered:** {when}.\n"
    )


def scale_caption(meta: Mapping[str, Any]) -> str:
    """One line stating where the numbers of a metrics file come from.

    Args:
        meta: the ``meta`` block of a metrics JSON (scale, hardware, threads, torch, protocol).
    """
    hw = meta.get("hardware", {})
    parts = [
        f"scale: {meta.get('scale')}",
        f"device: {hw.get('device', '?')} ({hw.get('cpu_model', '')}, {hw.get('threads', '?')} threads)".replace(" (, ", " ("),
        f"torch {hw.get('torch_version', '?')}",
        f"commit {meta.get('git_revision', '?')}",
    ]
    if meta.get("crop"):
        parts.insert(1, f"centre crops of {meta['crop']} px")
    if meta.get("max_images"):
        parts.insert(1, f"first {meta['max_images']} images per set")
    return "; ".join(parts) + "."


def dncnn_official_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Measured vs published PSNR (dB) and measured SSIM per test set, model and sigma.

    Args:
        metrics: the content of ``dncnn_official.json`` (``rows`` with set, model, sigma,
            n_images, psnr, ssim, psnr_noisy, published_psnr).

    Returns:
        A frame indexed by (test set, model, images) with, per sigma, the columns
        ``PSNR``, ``published``, ``diff`` (measured - published) and ``SSIM``.
    """
    rows = pd.DataFrame(metrics["rows"])
    rows["diff"] = rows["psnr"] - rows["published_psnr"]
    wide = rows.pivot_table(
        index=["set", "model", "n_images"], columns="sigma",
        values=["psnr", "published_psnr", "diff", "ssim"], aggfunc="first",
    )
    wide = wide.rename(columns={"psnr": "PSNR", "published_psnr": "published", "diff": "diff", "ssim": "SSIM"})
    wide = wide.swaplevel(0, 1, axis=1).sort_index(axis=1, level=0, sort_remaining=False)
    order = ["PSNR", "published", "diff", "SSIM"]
    sigmas = sorted({c[0] for c in wide.columns})
    wide = wide[[(s, m) for s in sigmas for m in order]]
    wide.columns = pd.MultiIndex.from_tuples([(f"sigma {s:g}", m) for s, m in wide.columns])
    wide.index = wide.index.set_names(["test set", "model", "images"])
    return wide.round(4)


def plot_dncnn_per_image(per_image: pd.DataFrame, out: str | Path | None = None) -> plt.Figure:
    """Per-image PSNR gain over the noisy input, per test set, model and sigma (box plot)."""
    frame = per_image.assign(gain=per_image["psnr"] - per_image["psnr_noisy"])
    grid = sns.catplot(
        data=frame, x="sigma", y="gain", hue="model", col="set", kind="box",
        height=3.2, aspect=1.1, sharey=False,
    )
    grid.set_axis_labels("noise sigma (0-255)", "PSNR gain over noisy input (dB)")
    grid.figure.suptitle("Official DnCNN weights: per-image PSNR gain", y=1.04)
    if out is not None:
        _save(grid.figure, out)
    return grid.figure


def plot_gan_losses(losses: Mapping[str, pd.DataFrame], out: str | Path | None = None) -> plt.Figure:
    """GAN loss curves per model (one column per model; D real/fake and G terms per row).

    Args:
        losses: model name -> the trainer's ``losses.csv`` as a frame.
        out: optional image file to write (atomically).
    """
    terms = [("d_real", "D real"), ("d_fake", "D fake"), ("g_gan", "G adversarial"), ("g_feat", "G feature matching")]
    fig, axes = plt.subplots(1, len(losses), figsize=(5.5 * len(losses), 3.4), squeeze=False)
    for ax, (name, frame) in zip(axes[0], losses.items()):
        for col, label in terms:
            if col in frame and frame[col].notna().any():
                smooth = frame[col].rolling(10, min_periods=1).mean()
                ax.plot(frame["step"], smooth, label=label)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_ylabel("loss (rolling mean of 10 logged points)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    if out is not None:
        _save(fig, out)
    return fig


def _save(fig: plt.Figure, out: str | Path) -> None:
    from lib.io import atomic_path

    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip("."), bbox_inches="tight", dpi=110)


def training_table(summaries: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per trained model: steps, epochs, wall time, final losses, VGG used, hardware."""
    rows = []
    for name, s in summaries.items():
        hw = s.get("hardware", {})
        row = {
            "model": name,
            "params (M)": round(s.get("generator_params", float("nan")) / 1e6, 2),
            "steps": s.get("steps"),
            "epochs": s.get("epochs"),
            "wall (min)": round(s.get("wall_seconds", float("nan")) / 60, 1),
            "VGG loss": s.get("vgg_used"),
            "device": f"{hw.get('device', '?')} x{hw.get('threads', '?')}",
        }
        row.update({f"final {k}": round(v, 4) for k, v in s.get("final_losses", {}).items()})
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


# ----------------------------------------------------------------------------- translation: time vs quality

# Paper Fig. 1 (GPU, digitised; DESIGN sec. 5): generator time in ms at square sizes (side in px).
PAPER_FIG1_MS = {
    "asapnet": {256: 9, 512: 14, 1024: 35, 2048: 130},
    "pix2pixhd": {256: 20, 512: 61, 1024: 166, 2048: 682},
    "spade": {512: 94, 1024: 359},
}
# The official implementations (tamarott/ASAPNet, NVIDIA/pix2pixHD) timed on this project's 2-core
# CPU: 2 threads, fp32, batch 1, random weights; (height, width) -> seconds. Source: the project's
# speed issue; taken on another occasion than our runs (benchmarks/NOTES.md), so compare ratios.
OFFICIAL_CPU_S = {
    "asapnet": {(256, 512): 0.91, (1024, 2048): 5.17},
    "pix2pixhd": {(256, 512): 1.99, (1024, 2048): 31.5},
}
OFFICIAL_CPU_THREADS = 2  # the setting of OFFICIAL_CPU_S
PAPER_SIZE = (256, 512)  # sec. 4: Cityscapes 256x512, the size of the paper's configs
MODEL_ORDER = ("asapnet", "pix2pixhd", "spade")
MODEL_LABELS = {"asapnet": "ASAPNet", "pix2pixhd": "pix2pixHD", "spade": "SPADE", "real": "real photos"}
MISSING = "–"  # shown where a number was not measured


def _num(value: Any) -> float:
    """A metrics-file value as float; NaN for missing values and NaN written as a string."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _finite(value: Any) -> bool:
    return math.isfinite(_num(value))


def _all_threads(timing: pd.DataFrame) -> pd.DataFrame:
    """Rows timed with all cores (``threads_setting`` 0) and TF32 off (or not applicable)."""
    return timing[(timing["threads_setting"] == 0) & timing["tf32"].isin(["-", "off"])]


def _models(eval_json: Mapping[str, Any], timing: pd.DataFrame) -> list[str]:
    seen = [r["model"] for r in eval_json.get("rows", []) if r["model"] != "real"] + list(timing["model"].unique())
    ordered = [m for m in MODEL_ORDER if m in seen]
    return ordered + [m for m in dict.fromkeys(seen) if m not in ordered]


def _time_value(rows: pd.DataFrame) -> Any:
    """Median ms (rounded) of the first row, ``skipped (predicted X s)`` for a skipped cell, or :data:`MISSING`."""
    if rows.empty:
        return MISSING
    r = rows.iloc[0]
    if r["status"] == "ok":
        return round(float(r["median_ms"]), 1)
    return f"skipped (predicted {_num(r['predicted_ms']) / 1e3:.3g} s)"


def _interval(value: Any, low: Any, high: Any, digits: int) -> str:
    if not _finite(value):
        return MISSING
    text = f"{_num(value):.{digits}f}"
    if _finite(low) and _finite(high):
        text += f" [{_num(low):.{digits}f}, {_num(high):.{digits}f}]"
    return text


def translation_table(eval_json: Mapping[str, Any], timing: pd.DataFrame) -> pd.DataFrame:
    """One row per model (and the real photos): size, cost, speed and quality side by side.

    Columns: ``params (M)`` and ``GMAC`` of the paper config at 256x512 (:data:`PAPER_SIZE`) and
    as trained; ``time HxW (ms)`` per timed size (paper config, all threads, median; a skipped
    cell reads ``skipped (predicted X s)``); ``time as trained (ms)`` at the trained size;
    ``N``; ``FID [95% CI]`` (bootstrap percentile interval); ``KID ± std``; ``mIoU [95% CI]``;
    ``pixel accuracy``. The ``real photos`` row holds the segmenter's mIoU ceiling and, where
    computed, the FID of real training vs real test photos (``fid_between``). Numbers not
    measured are NaN (numeric columns) or :data:`MISSING`.

    Args:
        eval_json: ``translation_eval.json`` (``rows`` with ``model`` and the ROW_COLUMNS).
        timing: ``translation_timing.csv`` as a frame (:data:`lib.metrics.timing.GRID_COLUMNS`).
    """
    nan = float("nan")
    evals = {r["model"]: r for r in eval_json.get("rows", [])}
    paper = timing[timing["kind"] == "paper_config"]
    trained = _all_threads(timing[timing["kind"] == "trained"])
    fast = _all_threads(paper)
    sizes = sorted({(int(h), int(w)) for h, w in zip(paper["height"], paper["width"])}, key=lambda hw: (hw[0] * hw[1], hw))
    ph, pw = PAPER_SIZE
    out = []
    for m in _models(eval_json, timing) + ["real"]:
        row: dict[str, Any] = {"model": MODEL_LABELS.get(m, m)}
        p = paper[(paper["model"] == m) & (paper["height"] == ph) & (paper["width"] == pw)]
        t = trained[trained["model"] == m]
        row["params (M), paper config"] = p["params"].iloc[0] / 1e6 if len(p) else nan
        g = p["gmacs"].dropna()
        row[f"GMAC {ph}x{pw}, paper config"] = g.iloc[0] if len(g) else nan
        row["params (M), as trained"] = t["params"].iloc[0] / 1e6 if len(t) else nan
        row["GMAC, as trained"] = _num(t["gmacs"].iloc[0]) if len(t) else nan
        for h, w in sizes:
            cell = fast[(fast["model"] == m) & (fast["height"] == h) & (fast["width"] == w)]
            row[f"time {h}x{w} (ms)"] = _time_value(cell)
        row["trained size"] = f"{int(t['height'].iloc[0])}x{int(t['width'].iloc[0])}" if len(t) else MISSING
        row["time as trained (ms)"] = _time_value(t)
        e = evals.get(m, {})
        real_fid = m != "real" or bool(e.get("fid_between"))
        row["N"] = int(e["n"]) if _finite(e.get("n")) else MISSING
        row["FID [95% CI]"] = _interval(e.get("fid"), e.get("fid_boot_low"), e.get("fid_boot_high"), 1) if real_fid else MISSING
        kid = e.get("kid")
        row["KID ± std"] = f"{_num(kid):.4f} ± {_num(e.get('kid_std')):.4f}" if real_fid and _finite(kid) else MISSING
        row["mIoU [95% CI]"] = _interval(e.get("miou"), e.get("miou_boot_low"), e.get("miou_boot_high"), 3)
        row["pixel accuracy"] = f"{_num(e['pixel_accuracy']):.3f}" if _finite(e.get("pixel_accuracy")) else MISSING
        out.append(row)
    return pd.DataFrame(out).set_index("model").round(2)


def time_quality_points(eval_json: Mapping[str, Any], timing: pd.DataFrame) -> pd.DataFrame:
    """The points of :func:`plot_time_vs_quality`: per evaluated model, the time of its
    generator as trained (all threads, median, at the evaluated size) and its FID and mIoU
    with their bootstrap intervals.

    Returns:
        Columns ``model``, ``time_ms``, ``time_p90_ms``, ``threads``, ``device``, ``fid``,
        ``fid_low``, ``fid_high``, ``kid``, ``kid_std``, ``miou``, ``miou_low``, ``miou_high``, ``n``.
        ``time_ms`` is NaN where no timing of the trained generator exists.
    """
    size = eval_json.get("meta", {}).get("size")
    trained = _all_threads(timing[(timing["kind"] == "trained") & (timing["status"] == "ok")])
    if size:
        trained = trained[(trained["height"] == int(size[0])) & (trained["width"] == int(size[-1]))]
    out = []
    for r in eval_json.get("rows", []):
        if r["model"] == "real":
            continue
        t = trained[trained["model"] == r["model"]]
        out.append({
            "model": r["model"],
            "time_ms": _num(t["median_ms"].iloc[0]) if len(t) else float("nan"),
            "time_p90_ms": _num(t["p90_ms"].iloc[0]) if len(t) else float("nan"),
            "threads": int(t["threads"].iloc[0]) if len(t) else None,
            "device": t["device"].iloc[0] if len(t) else None,
            **{k: _num(r.get(src)) for k, src in [
                ("fid", "fid"), ("fid_low", "fid_boot_low"), ("fid_high", "fid_boot_high"), ("kid", "kid"),
                ("kid_std", "kid_std"), ("miou", "miou"), ("miou_low", "miou_boot_low"), ("miou_high", "miou_boot_high"),
                ("n", "n"),
            ]},
        })
    return pd.DataFrame(out, columns=["model", "time_ms", "time_p90_ms", "threads", "device", "fid", "fid_low", "fid_high",
                                      "kid", "kid_std", "miou", "miou_low", "miou_high", "n"])


def _model_colors(models: list[str]) -> dict[str, Any]:
    palette = sns.color_palette("colorblind", max(len(MODEL_ORDER), len(models)))
    named = {m: palette[i] for i, m in enumerate(MODEL_ORDER)}
    rest = [c for c in palette if c not in named.values()]
    return {m: named.get(m) or rest[i % max(1, len(rest))] for i, m in enumerate(models)}


def plot_time_vs_quality(eval_json: Mapping[str, Any], timing: pd.DataFrame, out: str | Path | None = None) -> plt.Figure:
    """Inference time vs FID (left) and vs mIoU (right), one labelled point per model.

    Time: each generator as trained, at the evaluated size, all threads, median
    (:func:`time_quality_points`). Vertical bars: 95% bootstrap percentile intervals over the
    generated images (for FID they need not contain the point estimate: resampling with
    replacement biases FID upward). Dashed lines: the real-vs-real FID at the same N (the
    ``real`` row's ``fid`` where ``fid_between`` is set) and the segmenter's mIoU on the real
    photos (the ceiling).

    Args:
        eval_json: ``translation_eval.json``.
        timing: ``translation_timing.csv`` as a frame.
        out: optional image file to write (atomically).
    """
    pts = time_quality_points(eval_json, timing).dropna(subset=["time_ms"])
    meta = eval_json.get("meta", {})
    real = next((r for r in eval_json.get("rows", []) if r["model"] == "real"), {})
    colors = _model_colors(list(pts["model"]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    panels = [("fid", "FID (lower is better)"), ("miou", "mIoU (higher is better)")]
    for ax, (key, ylabel) in zip(axes, panels):
        for _, p in pts.iterrows():
            c = colors[p["model"]]
            if _finite(p[f"{key}_low"]) and _finite(p[f"{key}_high"]):
                ax.vlines(p["time_ms"], p[f"{key}_low"], p[f"{key}_high"], color=c, lw=2, alpha=0.6)
            ax.plot([p["time_ms"]], [p[key]], "o", color=c, ms=7, label=MODEL_LABELS.get(p["model"], p["model"]))
            ax.annotate(MODEL_LABELS.get(p["model"], p["model"]), (p["time_ms"], p[key]), textcoords="offset points",
                        xytext=(6, 4), fontsize=9)
        if key == "fid" and real.get("fid_between") and _finite(real.get("fid")):
            ax.axhline(_num(real["fid"]), ls="--", color="0.4", label="real train vs real test photos (same N)")
        if key == "miou" and _finite(real.get("miou")):
            ax.axhline(_num(real["miou"]), ls="--", color="0.4", label="real photos (segmenter ceiling)")
        if len(pts) and pts["time_ms"].max() > 10 * pts["time_ms"].min():
            ax.set_xscale("log")
        dev = pts["device"].iloc[0] if len(pts) else "?"
        thr = pts["threads"].iloc[0] if len(pts) else "?"
        ax.set_xlabel(f"generator time as trained, median ms ({dev}, {thr} threads, batch 1)")
        ax.set_ylabel(ylabel)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    size = meta.get("size")
    res = f"{size[0]}x{size[-1]}" if size else "?"
    n = meta.get("n_images", pts["n"].iloc[0] if len(pts) else "?")
    fig.suptitle(f"{meta.get('dataset', '?')} {meta.get('test_split', '')}, {res} px, N = {n} images; "
                 f"bars: 95% bootstrap intervals", fontsize=10)
    fig.tight_layout()
    if out is not None:
        _save(fig, out)
    return fig


def runtime_series(timing: pd.DataFrame, benchmark: pd.DataFrame | None = None) -> pd.DataFrame:
    """The lines of :func:`plot_runtime_vs_megapixels`: our paper-config timings (skipped cells
    left out), the paper's Fig. 1 GPU values (:data:`PAPER_FIG1_MS`), the official code on
    this CPU (:data:`OFFICIAL_CPU_S`) and, when given, the rows of the speed benchmark
    (``benchmarks/results/translation_speed_cpu.csv``: same generators, interleaved runs,
    including the sizes the stage skips).

    Returns:
        Columns ``source`` (``"this run"``, ``"paper Fig. 1 (GPU)"``, ``"official code, this CPU"``),
        ``model``, ``series`` (legend label), ``height``, ``width``, ``megapixels``, ``ms``,
        ours first, then the paper, then the official code; by series and megapixels within each.
    """
    rows = []
    ok = timing[(timing["kind"] == "paper_config") & (timing["status"] == "ok")]
    for _, r in ok.iterrows():
        setting = f"{r['device']}, {int(r['threads'])} thread{'s' if int(r['threads']) != 1 else ''}"
        if r["tf32"] in ("off", "on"):
            setting += f", TF32 {r['tf32']}"
        rows.append({"source": "this run", "model": r["model"], "series": f"{MODEL_LABELS.get(r['model'], r['model'])} · {setting}",
                     "height": int(r["height"]), "width": int(r["width"]), "ms": float(r["median_ms"])})
    for m, values in PAPER_FIG1_MS.items():
        for side, ms in values.items():
            rows.append({"source": "paper Fig. 1 (GPU)", "model": m, "series": f"{MODEL_LABELS[m]} · paper Fig. 1 (GPU)",
                         "height": side, "width": side, "ms": float(ms)})
    for m, values in OFFICIAL_CPU_S.items():
        for (h, w), s in values.items():
            rows.append({"source": "official code, this CPU", "model": m,
                         "series": f"{MODEL_LABELS[m]} · official code, this CPU ({OFFICIAL_CPU_THREADS} threads)",
                         "height": h, "width": w, "ms": s * 1e3})
    if benchmark is not None:
        for _, r in benchmark.iterrows():
            label = MODEL_LABELS.get(r["model"], r["model"]) + (" (reference MLP)" if r.get("impl") == "reference" else "")
            rows.append({"source": "benchmark, this CPU", "model": r["model"],
                         "series": f"{label} · benchmark, this CPU ({int(r['threads'])} threads)",
                         "height": int(r["height"]), "width": int(r["width"]), "ms": float(r["median_ms"])})
    frame = pd.DataFrame(rows, columns=["source", "model", "series", "height", "width", "ms"])
    frame.insert(5, "megapixels", frame["height"] * frame["width"] / 1e6)
    order = {"this run": 0, "benchmark, this CPU": 1, "paper Fig. 1 (GPU)": 2, "official code, this CPU": 3}
    frame = frame.assign(_order=frame["source"].map(order)).sort_values(["_order", "series", "megapixels"], kind="stable")
    return frame.drop(columns="_order").reset_index(drop=True)


def plot_runtime_vs_megapixels(timing: pd.DataFrame, out: str | Path | None = None,
                               benchmark: pd.DataFrame | None = None) -> plt.Figure:
    """Generator time (ms) vs image size (megapixels), log-log, one line per series of
    :func:`runtime_series`: ours solid (one per model x threads setting), the paper's Fig. 1
    GPU values dashed with open markers, the official code on this CPU dotted with crosses,
    the speed benchmark dash-dotted with open diamonds.

    Args:
        timing: ``translation_timing.csv`` as a frame.
        out: optional image file to write (atomically).
        benchmark: ``benchmarks/results/translation_speed_cpu.csv`` as a frame (optional).
    """
    series = runtime_series(timing, benchmark)
    colors = _model_colors(list(dict.fromkeys(series["model"])))
    styles = {"this run": ("-", "o", "full"), "benchmark, this CPU": ("-.", "D", "none"), "paper Fig. 1 (GPU)": ("--", "s", "none"), "official code, this CPU": (":", "X", "full")}
    fig, ax = plt.subplots(figsize=(8, 5))
    for (source, label), part in series.groupby(["source", "series"], sort=False):
        ls, marker, fill = styles[source]
        one_thread = source == "this run" and " 1 thread" in label
        ax.plot(part["megapixels"], part["ms"], ls=ls, marker=marker, fillstyle=fill, color=colors[part["model"].iloc[0]],
                alpha=0.55 if one_thread else 1.0, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("image size (megapixels)")
    ax.set_ylabel("generator forward time, median (ms)")
    ax.set_title("Runtime vs image size (batch 1, fp32); paper values on a GPU, ours as labelled", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    if out is not None:
        _save(fig, out)
    return fig


def timing_caption(meta: Mapping[str, Any]) -> str:
    """One line stating where the timings come from: scale, device, CPU or GPU model, cores,
    torch version, protocol settings and commit.

    Args:
        meta: the ``meta`` block of ``translation_timing.json``.
    """
    hw = meta.get("hardware", {})
    cfg = meta.get("config", {})
    threads = [int(s.get("threads", 0)) for s in cfg.get("settings", [])]
    settings = ", ".join("all cores" if not t else f"{t} thread{'s' if t > 1 else ''}" for t in threads)
    return (
        f"scale: {meta.get('scale')}; device: {hw.get('device', '?')} ({hw.get('device_name') or hw.get('cpu_model') or '?'}, "
        f"{meta.get('cpu_cores', hw.get('cpu_count', '?'))} cores); settings: {settings or '?'}; torch {hw.get('torch_version', '?')}; "
        f"batch 1, {cfg.get('dtype', '?')}, random weights, warm-up {cfg.get('warmup', '?')}, "
        f"{cfg.get('min_runs', '?')}-{cfg.get('max_runs', '?')} timed runs per cell; commit {meta.get('git_revision', '?')}."
    )


def speedup_table(timing: pd.DataFrame) -> pd.DataFrame:
    """ASAPNet's speed-up over each baseline: baseline median time / ASAPNet median time, per
    size (columns, ascending) and setting (rows: baseline, device, threads, TF32). NaN where
    either was not timed (a skipped baseline: see its predicted time in :func:`translation_table`).
    """
    from lib.metrics.timing import speedups

    s = speedups(timing)
    index = ["baseline", "device", "threads", "tf32"]
    if s.empty:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=index))
    order = sorted(set(zip(s["height"], s["width"], s["size"])), key=lambda t: (t[0] * t[1], t))
    wide = s.pivot_table(index=index, columns="size", values="speedup", aggfunc="first", dropna=False)
    wide = wide.reindex(columns=[o[2] for o in order])
    wide.columns.name = "speed-up (x)"
    return wide.round(2)


# ----------------------------------------------------------------------------- denoising study

SET_TITLES = {"bsd68": "BSD68", "set12": "Set12", "cbsd68": "CBSD68"}


def denoise_labels(eval_json: Mapping[str, Any]) -> dict[str, str]:
    """Row model key -> the name the report shows (runs' labels, official and BM3D rows)."""
    labels = {r["run"]: r["label"] for r in eval_json.get("runs", [])}
    labels.update({
        "official_dncnn_s": "DnCNN-S (official weights)",
        "official_dncnn_b_gray": "DnCNN-B (official weights)",
        "official_cdncnn_b_color": "CDnCNN-B (official weights)",
        "bm3d": "BM3D / CBM3D",
    })
    return labels


def denoise_psnr_table(eval_json: Mapping[str, Any], block: str = "summary", metric: str = "psnr") -> pd.DataFrame:
    """Mean PSNR (or SSIM) per model (rows) and test set x sigma (columns).

    Args:
        eval_json: ``denoise_eval.json`` (``summary``: every model on each set's evaluated
            images; ``bm3d_subset``: every model on the images BM3D ran on).
        block: ``"summary"`` or ``"bm3d_subset"``.
        metric: ``"psnr"`` or ``"ssim"``.

    Returns:
        Rows in the order official, BM3D, ours (runs order); columns ``(set (N images),
        sigma)``; for PSNR a ``published`` value in brackets where the DnCNN paper gives one
        for the whole set (formatted strings).
    """
    rows = pd.DataFrame(eval_json[block])
    if rows.empty:
        return pd.DataFrame()
    labels = denoise_labels(eval_json)
    order = {m: i for i, m in enumerate(["official_dncnn_s", "official_dncnn_b_gray", "official_cdncnn_b_color", "bm3d"]
                                        + [r["run"] for r in eval_json.get("runs", [])])}
    rows["row"] = rows["model"].map(lambda m: labels.get(m, m))
    rows["order"] = rows["model"].map(lambda m: order.get(m, len(order)))
    rows["column"] = [f"{SET_TITLES.get(s, s)} ({n} images)" for s, n in zip(rows["set"], rows["n_images"])]

    def cell(r) -> str:
        value = f"{r[metric]:.2f}" if metric == "psnr" else f"{r[metric]:.4f}"
        pub = r.get("published_psnr")  # None / "nan" where unpublished
        if metric == "psnr" and _finite(pub):
            value += f" ({_num(pub):.2f})"
        return value

    rows["cell"] = rows.apply(cell, axis=1)
    table = rows.pivot_table(index=["order", "row"], columns=["column", "sigma"], values="cell", aggfunc="first")
    table.index = table.index.droplevel(0)  # sorted by the row order, then dropped
    table.index.name = None
    set_order = {f"{SET_TITLES.get(s, s)} ({n} images)": i for s, n, i in
                 zip(rows["set"], rows["n_images"], rows["set"].map(list(SET_TITLES).index))}
    table = table[sorted(table.columns, key=lambda c: (set_order.get(c[0], 99), c[1]))]  # BSD68, Set12, CBSD68
    table.columns = pd.MultiIndex.from_tuples([(c, f"σ={s:g}") for c, s in table.columns])
    return table.fillna("–")


def denoise_ablation_table(eval_json: Mapping[str, Any], timing: pd.DataFrame,
                           train: Mapping[str, Mapping[str, Any]], set_name: str = "bsd68") -> pd.DataFrame:
    """The ablation: one row per gray run (runs order) with its change, cost and PSNR.

    Columns: change, params, GMAC (481x321), time at each timed size (ms, median), training
    steps and minutes, PSNR on ``set_name`` per sigma and ``Δ σ=25`` (gain over the row above,
    dB).
    """
    summary = pd.DataFrame(eval_json["summary"])
    runs = [r for r in eval_json.get("runs", []) if r["data"] == "train400"]
    rows = []
    for r in runs:
        row = {"run": r["run"], "change": r["change"], "params (M)": r["params"] / 1e6, "GMAC 481x321": r["gmacs"]}
        for (h, w), g in timing[timing["model"] == r["run"]].groupby(["height", "width"], sort=False):
            row[f"ms {w}x{h}"] = float(g["median_ms"].iloc[0])
        t = train.get(r["run"], {})
        row["steps"] = t.get("steps")
        row["train min"] = None if t.get("train_seconds") is None else t["train_seconds"] / 60
        s = summary[(summary["model"] == r["run"]) & (summary["set"] == set_name)]
        for sigma, v in zip(s["sigma"], s["psnr"]):
            row[f"PSNR σ={sigma:g}"] = v
        rows.append(row)
    table = pd.DataFrame(rows).set_index("run")
    if "PSNR σ=25" in table:
        table["Δ σ=25"] = table["PSNR σ=25"].diff()
    return table.round(3)


def plot_psnr_vs_time(eval_json: Mapping[str, Any], timing: pd.DataFrame, per_image: pd.DataFrame,
                      set_name: str = "bsd68", size: tuple[int, int] = (321, 481), out: str | Path | None = None) -> tuple[plt.Figure, pd.DataFrame]:
    """PSNR on ``set_name`` vs inference time per image at ``size`` (log x), one panel per sigma.

    Our models: generator-only median time (``denoise_timing.csv``). The official DnCNN-B
    has our DnCNN's architecture, so it gets our DnCNN's time. BM3D: its mean wall time per
    image from the evaluation (481x321 images, CPU), its PSNR on its own subset (marked).

    Returns:
        ``(figure, the plotted points)`` with columns ``model, label, sigma, ms, psnr, n_images``.
    """
    summary = pd.DataFrame(eval_json["summary"])
    labels = denoise_labels(eval_json)
    h, w = size
    t = timing[(timing["height"] == h) & (timing["width"] == w)].set_index("model")["median_ms"]
    points = []
    for _, r in summary[summary["set"] == set_name].iterrows():
        model = r["model"]
        ms = t.get(model)
        if model == "official_dncnn_b_gray":
            ms = t.get("dncnn_gray")
        if ms is None or pd.isna(ms):
            continue
        points.append({"model": model, "label": labels.get(model, model), "sigma": r["sigma"], "ms": float(ms),
                       "psnr": r["psnr"], "n_images": r["n_images"]})
    bm3d = per_image[(per_image["model"] == "bm3d") & (per_image["set"] == set_name)]
    for sigma, g in bm3d.groupby("sigma"):
        points.append({"model": "bm3d", "label": f"BM3D ({g['name'].nunique()} images)", "sigma": sigma,
                       "ms": 1e3 * g["seconds"].mean(), "psnr": g["psnr"].mean(), "n_images": g["name"].nunique()})
    data = pd.DataFrame(points)
    sigmas = sorted(data["sigma"].unique()) if len(data) else []
    fig, axes = plt.subplots(1, max(1, len(sigmas)), figsize=(4.6 * max(1, len(sigmas)), 3.8), squeeze=False)
    palette = dict(zip(data["label"].unique() if len(data) else [], sns.color_palette("tab10", 10) * 3))
    for ax, sigma in zip(axes[0], sigmas):
        d = data[data["sigma"] == sigma]
        for _, p in d.iterrows():
            marker = "s" if p["model"].startswith("official") else ("^" if p["model"] == "bm3d" else "o")
            ax.scatter(p["ms"], p["psnr"], color=palette[p["label"]], marker=marker, s=45, label=p["label"])
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only
        ax.set_title(f"{SET_TITLES.get(set_name, set_name)}, σ={sigma:g}")
        ax.set_xlabel(f"time per {w}x{h} image (ms, log)")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3, which="both")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(4, max(1, len(names))), fontsize=8, bbox_to_anchor=(0.5, -0.16))
    fig.tight_layout()
    if out is not None:
        _save(fig, out)
    return fig, data


def plot_denoise_losses(losses: Mapping[str, pd.DataFrame], out: str | Path | None = None) -> plt.Figure:
    """Training MSE per run (rolling mean of 5 logged points, log y)."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for name, frame in losses.items():
        ax.plot(frame["step"], frame["loss"].rolling(5, min_periods=1).mean(), label=name)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training MSE")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    if out is not None:
        _save(fig, out)
    return fig


def denoise_findings(eval_json: Mapping[str, Any], timing: pd.DataFrame, set_name: str = "bsd68",
                     size: tuple[int, int] = (321, 481), train: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The study's answer in a few sentences, every number read from the metrics files.

    States the plain transfer's PSNR against the noisy input, the best ASAPNet variant, its
    distance to our DnCNN and to the official DnCNN-B at each sigma, and the time ratio.
    """
    summary = pd.DataFrame(eval_json["summary"])
    s = summary[summary["set"] == set_name]
    best = eval_json["meta"].get("best_variant")

    def psnr(model: str, sigma: float) -> float | None:
        v = s[(s["model"] == model) & (s["sigma"] == sigma)]["psnr"]
        return None if v.empty else float(v.iloc[0])

    def noisy(sigma: float) -> float | None:
        v = s[s["sigma"] == sigma]["psnr_noisy"]
        return None if v.empty else float(v.iloc[0])

    sigmas = sorted(s["sigma"].unique())
    n = int(s["n_images"].max()) if len(s) else 0
    h, w = size
    t = timing[(timing["height"] == h) & (timing["width"] == w)].set_index("model")["median_ms"]
    parts = [f"On the first {n} {SET_TITLES.get(set_name, set_name)} images:"]
    plain, residual, noise_in = psnr("asapnet_plain", 25.0), psnr("asapnet_residual", 25.0), noisy(25.0)
    if plain is not None and residual is not None:
        verdict = (
            "a per-pixel network that sees one noisy pixel does not average the noise away"
            if max(plain, residual) < noise_in + 1.0
            else "more than 1 dB above the noisy input even without context"
        )
        parts.append(
            f"the plain transfer of ASAPNet reaches {plain:.2f} dB at σ=25 against {noise_in:.2f} dB for the "
            f"noisy input itself, and with a residual output (predicting the noise) {residual:.2f} dB: {verdict}."
        )
    if best:
        gaps = []
        for sigma in sigmas:
            b, ours, off = psnr(best, sigma), psnr("dncnn_gray", sigma), psnr("official_dncnn_b_gray", sigma)
            if b is None:
                continue
            txt = f"σ={sigma:g}: {b:.2f} dB"
            if ours is not None:
                txt += f" ({b - ours:+.2f} vs our DnCNN"
                txt += f", {b - off:+.2f} vs the official DnCNN-B)" if off is not None else ")"
            gaps.append(txt)
        parts.append(f"The best ASAPNet variant is **{best}** — " + "; ".join(gaps) + ".")
        if best in t and "dncnn_gray" in t:
            parts.append(
                f"It runs a {w}x{h} image in {t[best]:.0f} ms against {t['dncnn_gray']:.0f} ms for DnCNN "
                f"({t['dncnn_gray'] / t[best]:.1f}x faster, same CPU, batch 1, fp32)."
            )
    grid = pd.DataFrame(eval_json.get("grid_check", []))
    if train and not grid.empty:
        lost = []
        for model, g in grid.groupby("model", sort=False):
            patch = train.get(model, {}).get("patch_size")
            at_patch, full = g[g["crop"] == patch]["gain_db"], g[g["crop"] == 0]["gain_db"]
            if not at_patch.empty and not full.empty and float(at_patch.iloc[0]) - float(full.iloc[0]) > 3.0:
                lost.append(f"{model} ({float(at_patch.iloc[0]):+.1f} dB on {patch}-px crops, its training patch size, "
                            f"{float(full.iloc[0]):+.1f} dB on full images)")
        if lost:
            parts.append(
                "Some variants only work at the tile-grid size they were trained on: " + "; ".join(lost)
                + " (grid-size check, σ=25). Their low-res stream learned the statistics of a small grid of tiles."
            )
    return " ".join(p for p in parts if p)


def denoise_budget_caption(eval_json: Mapping[str, Any], train: Mapping[str, Mapping[str, Any]]) -> str:
    """The scale of the study's numbers: training budget per run, test images, hardware."""
    meta = eval_json["meta"]
    runs = []
    for name, t in train.items():
        runs.append(f"{name} {t.get('steps')} steps x {t.get('batch_size')} patches of {t.get('patch_size')} px "
                    f"({(t.get('train_seconds') or 0) / 60:.1f} min)")
    hw = meta.get("hardware", {})
    images = ", ".join(f"{SET_TITLES.get(s, s)} {len(n)}" for s, n in meta.get("images", {}).items())
    return (
        f"Scale: {meta.get('scale')}. Training (blind, sigma in {next(iter(train.values())).get('sigma_range') if train else '?'}, "
        f"Train400 gray / CBSD432 color): " + "; ".join(runs) + ". For comparison, DnCNN's own recipe is 50 epochs of "
        "1,600 batches of 128 patches, so our DnCNN rows show how far that budget is from the official weights. "
        f"Test images: {images} (the first ones of each set); BM3D on {sum(len(v) for v in meta.get('bm3d_images', {}).values())} of them. "
        f"Hardware: {hw.get('device', '?')} ({hw.get('cpu_model', '')}, {hw.get('threads', '?')} threads), torch {hw.get('torch_version', '?')}, "
        f"commit {meta.get('git_revision', '?')}."
    )


def denoise_grid_table(eval_json: Mapping[str, Any], train: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """PSNR gain over the noisy input (dB) of each ASAPNet run per crop side (``grid_check``),
    with the run's training patch side and tile size: does a run work at other grid sizes?"""
    grid = pd.DataFrame(eval_json.get("grid_check", []))
    if grid.empty:
        return pd.DataFrame()
    table = grid.pivot_table(index="model", columns="crop", values="gain_db", sort=False)
    table.columns = [("full image" if c == 0 else f"{c}x{c} crop") for c in table.columns]
    info = pd.DataFrame({
        m: {"train patch": train.get(m, {}).get("patch_size"),
            "tile": train.get(m, {}).get("model_config", {}).get("tile_size")}
        for m in table.index
    }).T
    return pd.concat([info, table.round(2)], axis=1)
