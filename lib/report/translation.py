"""The label -> photo section of the report: training, quality, time and speed-up tables and figures."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from lib.metrics.timing import PAPER_FIG1_MS
from lib.report.common import MISSING, hardware_text, is_finite, save_figure, scale_caption, to_float
from lib.translation.timing import speedups

__all__ = [
    "trained_models",
    "training_caption",
    "training_table",
    "loss_weights",
    "plot_gan_losses",
    "eval_caption",
    "translation_table",
    "time_quality_points",
    "plot_time_vs_quality",
    "model_colors",
    "runtime_series",
    "plot_runtime_vs_megapixels",
    "speedup_table",
    "segmenter_caption",
]

PAPER_SIZE = (256, 512)  # sec. 4: Cityscapes 256x512, the size of the paper's configs
MODEL_ORDER = ("asapnet", "pix2pixhd", "spade")
MODEL_LABELS = {"asapnet": "ASAPNet", "pix2pixhd": "pix2pixHD", "spade": "SPADE", "real": "real photos"}


# ----------------------------------------------------------------------------- training

def trained_models(eval_json: Mapping[str, Any]) -> list[str]:
    """The trained generators, in the order of ``translation_eval.json`` (``meta.models``, else its rows)."""
    models = eval_json.get("meta", {}).get("models")
    if models:
        return list(models)
    return [r["model"] for r in eval_json.get("rows", []) if r["model"] != "real"]


def training_caption(summaries: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown caption of :func:`training_table`: scale, data and image size of the first run."""
    first = next(iter(summaries.values()))
    return (
        f"*Scale: {first['scale']}; {first['dataset']} train split, {first['train_pairs']} pairs at "
        f"{first['size']}x{first['size']} px; generator widths reduced where the config says so "
        f"(`params.yaml`: train_translation); hardware as listed.*"
    )


def training_table(summaries: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per trained model: steps, epochs, wall time, VGG / L1 / weight average / precision,
    hardware, final losses."""
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
            "L1 weight": f"{to_float((s.get('config') or {}).get('loss', {}).get('lambda_l1')):g}",  # as text: 20, 0.5
            "EMA": f"{to_float((s.get('config') or {}).get('ema_decay')):g}" if s.get("ema") else "no",  # text: 0.999, not 1.00
            "precision": s.get("precision", "fp32"),
            "machine": hardware_text(hw) if hw else MISSING,
        }
        row.update({f"final {k}": round(v, 4) for k, v in s.get("final_losses", {}).items()})
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


GAN_TERMS = (("d_real", "D real", None), ("d_fake", "D fake", None), ("g_gan", "G adversarial", None),
             ("g_feat", "G feature matching", "lambda_feat"), ("g_vgg", "G VGG", "lambda_vgg"), ("g_l1", "G L1", "lambda_l1"))
TERM_SHORT = {"g_gan": "adv", "g_feat": "FM", "g_vgg": "VGG", "g_l1": "L1"}  # the generator terms in a figure title


def loss_weights(summary: Mapping[str, Any]) -> dict[str, float]:
    """Loss column -> its weight in the generator loss (``config.loss`` of a training summary); the
    VGG term only where it was used (``vgg_used``)."""
    loss = (summary.get("config") or {}).get("loss") or {}
    weights = {col: to_float(loss.get(key)) for col, _, key in GAN_TERMS if key}
    if not summary.get("vgg_used"):
        weights.pop("g_vgg", None)
    return {k: v for k, v in weights.items() if is_finite(v) and v > 0}


def plot_gan_losses(losses: Mapping[str, pd.DataFrame], out: str | Path | None = None,
                    summaries: Mapping[str, Mapping[str, Any]] | None = None) -> plt.Figure:
    """GAN loss curves per model (one panel per model): every term of the discriminator and generator
    losses as logged (``losses_<model>.csv``: the weighted terms, e.g. ``g_l1`` = lambda_l1 x L1),
    a rolling mean of 10 logged points, with each weight in the legend and the title.

    Args:
        losses: model name -> the trainer's ``losses.csv`` as a frame.
        out: optional image file to write (atomically).
        summaries: model name -> its training summary (the weights, :func:`loss_weights`); without
            it, terms are drawn unlabelled by weight.
    """
    fig, axes = plt.subplots(1, len(losses), figsize=(5.5 * len(losses), 3.6), squeeze=False)
    for ax, (name, frame) in zip(axes[0], losses.items()):
        weights = loss_weights((summaries or {}).get(name, {}))
        g_terms = []
        for col, label, key in GAN_TERMS:
            if col not in frame or not frame[col].notna().any() or (key and not frame[col].abs().gt(0).any()):
                continue  # a term not logged, or off (weight 0: all zeros)
            w = weights.get(col)
            ax.plot(frame["step"], frame[col].rolling(10, min_periods=1).mean(),
                    label=f"{label} x {w:g}" if w is not None else label)
            if col in TERM_SHORT:
                g_terms.append(f"{w:g}·{TERM_SHORT[col]}" if w is not None else TERM_SHORT[col])
        ax.set_title(f"{MODEL_LABELS.get(name, name)}: G loss = {' + '.join(g_terms)}", fontsize=9)
        ax.set_xlabel("training step")
        ax.set_ylabel("loss term, weighted")
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(6, max(1, len(labels))), fontsize=8, bbox_to_anchor=(0.5, -0.08))
    fig.suptitle("GAN training losses: each term as it enters the loss (times its weight), rolling mean of 10 logged points",
                 fontsize=10)
    fig.tight_layout()
    if out is not None:
        save_figure(fig, out)
    return fig


# ----------------------------------------------------------------------------- quality and time

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
    return f"skipped (predicted {to_float(r['predicted_ms']) / 1e3:.3g} s)"


def interval_text(value: Any, low: Any, high: Any, digits: int) -> str:
    """``value [low, high]`` with ``digits`` decimals; the value alone without an interval, :data:`MISSING` without a value."""
    if not is_finite(value):
        return MISSING
    text = f"{to_float(value):.{digits}f}"
    if is_finite(low) and is_finite(high):
        text += f" [{to_float(low):.{digits}f}, {to_float(high):.{digits}f}]"
    return text


def eval_caption(eval_json: Mapping[str, Any], timing_meta: Mapping[str, Any] | None = None) -> str:
    """Markdown caption of the quality table: where the quality numbers come from (scale, machine,
    commit, data, N, segmenter) and, with ``timing_meta``, the machine of its ``ms / image`` column."""
    meta = eval_json["meta"]
    text = (f"*Quality: {scale_caption(meta)} {meta['dataset']} {meta['test_split']} split, "
            f"N = {meta['n_images']} images at {meta['size'][0]}x{meta['size'][1]} px; segmenter: {meta['segmenter']}.")
    if timing_meta:
        cfg = timing_meta.get("config", {})
        text += (f" `ms / image`: the generator as trained, batch 1, {cfg.get('dtype', '?')}, median of the timed runs "
                 f"on {hardware_text(timing_meta.get('hardware', {}))} (timing stage, commit {timing_meta.get('git_revision', '?')}).")
    return text + "*"


def translation_table(eval_json: Mapping[str, Any], timing: pd.DataFrame) -> pd.DataFrame:
    """One row per model (and the real photos): size, cost, speed and quality side by side.

    Columns: ``params (M)`` and ``GMAC`` of the paper config at 256x512 (:data:`PAPER_SIZE`) and
    as trained; ``time HxW (ms)`` per timed size (paper config, all threads, median; a skipped
    cell reads ``skipped (predicted X s)``); ``time as trained (ms)`` at the trained size;
    ``N``; ``FID [95% CI]`` and ``KID [95% CI]`` (bootstrap percentile intervals over real and
    generated images; files without a KID interval show KID alone); ``KID, smoothed final`` (mean
    of the last learning-curve points, :mod:`lib.translation.curves`; :data:`MISSING` without a
    curve); ``mIoU [95% CI]``; ``pixel accuracy``. The ``real photos`` row holds the segmenter's mIoU ceiling and, where
    computed, the FID of real training vs real test photos (``fid_between``). Numbers not
    measured are NaN (numeric columns) or :data:`MISSING`.

    Args:
        eval_json: ``translation_eval.json`` (``rows`` with ``model`` and the ROW_COLUMNS).
        timing: ``translation_timing.csv`` as a frame (the timing stage's ``GRID_COLUMNS``).
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
        row["GMAC, as trained"] = to_float(t["gmacs"].iloc[0]) if len(t) else nan
        for h, w in sizes:
            cell = fast[(fast["model"] == m) & (fast["height"] == h) & (fast["width"] == w)]
            row[f"time {h}x{w} (ms)"] = _time_value(cell)
        row["trained size"] = f"{int(t['height'].iloc[0])}x{int(t['width'].iloc[0])}" if len(t) else MISSING
        row["time as trained (ms)"] = _time_value(t)
        e = evals.get(m, {})
        real_fid = m != "real" or bool(e.get("fid_between"))
        row["N"] = int(e["n"]) if is_finite(e.get("n")) else MISSING
        row["FID [95% CI]"] = interval_text(e.get("fid"), e.get("fid_boot_low"), e.get("fid_boot_high"), 1) if real_fid else MISSING
        row["KID [95% CI]"] = interval_text(e.get("kid"), e.get("kid_boot_low"), e.get("kid_boot_high"), 4) if real_fid else MISSING
        row["KID, smoothed final"] = f"{to_float(e['kid_smoothed']):.4f}" if is_finite(e.get("kid_smoothed")) else MISSING
        row["mIoU [95% CI]"] = interval_text(e.get("miou"), e.get("miou_boot_low"), e.get("miou_boot_high"), 3)
        row["pixel accuracy"] = f"{to_float(e['pixel_accuracy']):.3f}" if is_finite(e.get("pixel_accuracy")) else MISSING
        out.append(row)
    return pd.DataFrame(out).set_index("model").round(2)


def time_quality_points(eval_json: Mapping[str, Any], timing: pd.DataFrame) -> pd.DataFrame:
    """The points of :func:`plot_time_vs_quality`: per evaluated model, the time of its
    generator as trained (all threads, median, at the evaluated size) and its KID, FID and mIoU
    with their bootstrap intervals.

    Returns:
        Columns ``model``, ``time_ms``, ``time_p90_ms``, ``threads``, ``device``, ``fid``,
        ``fid_low``, ``fid_high``, ``kid``, ``kid_std``, ``kid_low``, ``kid_high``, ``miou``, ``miou_low``,
        ``miou_high``, ``n``.
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
            "time_ms": to_float(t["median_ms"].iloc[0]) if len(t) else float("nan"),
            "time_p90_ms": to_float(t["p90_ms"].iloc[0]) if len(t) else float("nan"),
            "threads": int(t["threads"].iloc[0]) if len(t) else None,
            "device": t["device"].iloc[0] if len(t) else None,
            **{k: to_float(r.get(src)) for k, src in [
                ("fid", "fid"), ("fid_low", "fid_boot_low"), ("fid_high", "fid_boot_high"), ("kid", "kid"),
                ("kid_std", "kid_std"), ("kid_low", "kid_boot_low"), ("kid_high", "kid_boot_high"), ("miou", "miou"),
                ("miou_low", "miou_boot_low"), ("miou_high", "miou_boot_high"), ("n", "n"),
            ]},
        })
    return pd.DataFrame(out, columns=["model", "time_ms", "time_p90_ms", "threads", "device", "fid", "fid_low", "fid_high",
                                      "kid", "kid_std", "kid_low", "kid_high", "miou", "miou_low", "miou_high", "n"])


def model_colors(models: list[str]) -> dict[str, Any]:
    """One colour per model: the named models of :data:`MODEL_ORDER` keep theirs in every figure."""
    palette = sns.color_palette("colorblind", max(len(MODEL_ORDER), len(models)))
    named = {m: palette[i] for i, m in enumerate(MODEL_ORDER)}
    rest = [c for c in palette if c not in named.values()]
    return {m: named.get(m) or rest[i % max(1, len(rest))] for i, m in enumerate(models)}


def plot_time_vs_quality(eval_json: Mapping[str, Any], timing: pd.DataFrame, out: str | Path | None = None) -> plt.Figure:
    """Inference time vs KID (left, the headline at small N), FID and mIoU, one labelled point per model.

    Time: each generator as trained, at the evaluated size, all threads, median
    (:func:`time_quality_points`). Vertical bars: 95% bootstrap percentile intervals over the
    generated images (for FID they need not contain the point estimate: resampling with
    replacement biases FID upward). Dashed lines: the real-vs-real KID and FID at the same N (the
    ``real`` row's where ``fid_between`` is set) and the segmenter's mIoU on the real photos (the
    ceiling).

    Args:
        eval_json: ``translation_eval.json``.
        timing: ``translation_timing.csv`` as a frame.
        out: optional image file to write (atomically).
    """
    pts = time_quality_points(eval_json, timing).dropna(subset=["time_ms"])
    meta = eval_json.get("meta", {})
    real = next((r for r in eval_json.get("rows", []) if r["model"] == "real"), {})
    colors = model_colors(list(pts["model"]))
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    panels = [("kid", "KID (lower is better)"), ("fid", "FID (lower is better)"), ("miou", "mIoU (higher is better)")]
    for ax, (key, ylabel) in zip(axes, panels):
        for _, p in pts.iterrows():
            c = colors[p["model"]]
            if is_finite(p.get(f"{key}_low")) and is_finite(p.get(f"{key}_high")):
                ax.vlines(p["time_ms"], p[f"{key}_low"], p[f"{key}_high"], color=c, lw=2, alpha=0.6)
            ax.plot([p["time_ms"]], [p[key]], "o", color=c, ms=7, label=MODEL_LABELS.get(p["model"], p["model"]))
            ax.annotate(MODEL_LABELS.get(p["model"], p["model"]), (p["time_ms"], p[key]), textcoords="offset points",
                        xytext=(6, 4), fontsize=9)
        if key in ("kid", "fid") and real.get("fid_between") and is_finite(real.get(key)):
            ax.axhline(to_float(real[key]), ls="--", color="0.4", label="real train vs real test photos (same N)")
        if key == "miou" and is_finite(real.get("miou")):
            ax.axhline(to_float(real["miou"]), ls="--", color="0.4", label="real photos (segmenter ceiling)")
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
        save_figure(fig, out)
    return fig


RUNTIME_STYLES = {"this run": ("-", "o", "full"), "speed benchmark": ("-.", "D", "none"),
                  "paper Fig. 1 (GPU)": ("--", "s", "none"), "official code": (":", "X", "full")}


def runtime_series(timing: pd.DataFrame, benchmark: pd.DataFrame | None = None,
                   official: pd.DataFrame | None = None, where: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The lines of :func:`plot_runtime_vs_megapixels`: our paper-config timings (skipped cells
    left out), the paper's Fig. 1 GPU values (:data:`PAPER_FIG1_MS`) and, when given, the rows
    of the speed benchmark (``benchmarks/results/translation_speed_cpu.csv``: same generators,
    run in turn, including the sizes the stage skips) and the fp32 rows of the official
    code from ``benchmarks/results/against_official_cpu.csv`` (timed interleaved with ours).

    Args:
        timing, benchmark, official: the results as frames.
        where: ``{"benchmark": ..., "official": ...}``: the machine of each benchmark relative to the
            timing stage's (:func:`lib.report.machines.where_text`: ``this CPU``, ``another CPU``); the
            legend says it. Default ``CPU not identified``.

    Returns:
        Columns ``source`` (``"this run"``, ``"speed benchmark"``, ``"paper Fig. 1 (GPU)"``, ``"official code"``),
        ``model``, ``series`` (legend label), ``height``, ``width``, ``megapixels``, ``ms``,
        ours first, then the benchmark, the paper and the official code; by series and megapixels within each.
    """
    where = {"benchmark": "CPU not identified", "official": "CPU not identified", **(where or {})}
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
    if official is not None:
        fp32 = official[(official["dtype"] == "fp32") & (official["code"] == "official") & official["median_ms"].notna()]
        for _, r in fp32.iterrows():
            m = str(r["model"]).removeprefix("official-")
            rows.append({"source": "official code", "model": m,
                         "series": f"{MODEL_LABELS.get(m, m)} · official code, {where['official']} ({int(r['threads'])} threads)",
                         "height": int(r["height"]), "width": int(r["width"]), "ms": float(r["median_ms"])})
    if benchmark is not None:
        for _, r in benchmark.iterrows():
            label = MODEL_LABELS.get(r["model"], r["model"]) + (" (reference MLP)" if r.get("impl") == "reference" else "")
            rows.append({"source": "speed benchmark", "model": r["model"],
                         "series": f"{label} · speed benchmark, {where['benchmark']} ({int(r['threads'])} threads)",
                         "height": int(r["height"]), "width": int(r["width"]), "ms": float(r["median_ms"])})
    frame = pd.DataFrame(rows, columns=["source", "model", "series", "height", "width", "ms"])
    frame.insert(5, "megapixels", frame["height"] * frame["width"] / 1e6)
    order = {s: i for i, s in enumerate(("this run", "speed benchmark", "paper Fig. 1 (GPU)", "official code"))}
    frame = frame.assign(_order=frame["source"].map(order)).sort_values(["_order", "series", "megapixels"], kind="stable")
    return frame.drop(columns="_order").reset_index(drop=True)


def plot_runtime_vs_megapixels(timing: pd.DataFrame, out: str | Path | None = None,
                               benchmark: pd.DataFrame | None = None, official: pd.DataFrame | None = None,
                               where: Mapping[str, str] | None = None) -> plt.Figure:
    """Generator time (ms) vs image size (megapixels), log-log, one line per series of
    :func:`runtime_series`: ours solid (one per model x threads setting), the paper's Fig. 1
    GPU values dashed with open markers, the official code dotted with crosses, the speed
    benchmark dash-dotted with open diamonds; the legend names the machine of each.

    Args:
        timing: ``translation_timing.csv`` as a frame.
        out: optional image file to write (atomically).
        benchmark, official, where: as for :func:`runtime_series`.
    """
    series = runtime_series(timing, benchmark, official, where)
    colors = model_colors(list(dict.fromkeys(series["model"])))
    fig, ax = plt.subplots(figsize=(8, 5))
    for (source, label), part in series.groupby(["source", "series"], sort=False):
        ls, marker, fill = RUNTIME_STYLES[source]
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
        save_figure(fig, out)
    return fig


def speedup_table(timing: pd.DataFrame) -> pd.DataFrame:
    """ASAPNet's speed-up over each baseline: baseline median time / ASAPNet median time, per
    size (columns, ascending) and setting (rows: baseline, device, threads, TF32). NaN where
    either was not timed (a skipped baseline: see its predicted time in :func:`translation_table`).
    """
    s = speedups(timing)
    index = ["baseline", "device", "threads", "tf32"]
    if s.empty:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=index))
    order = sorted(set(zip(s["height"], s["width"], s["size"])), key=lambda t: (t[0] * t[1], t))
    wide = s.pivot_table(index=index, columns="size", values="speedup", aggfunc="first", dropna=False)
    wide = wide.reindex(columns=[o[2] for o in order])
    wide.columns.name = "speed-up (x)"
    return wide.round(2)


def segmenter_caption(seg: Mapping[str, Any]) -> str:
    """Markdown paragraph on the mIoU segmenter (``train_segmenter.json``) and its sample figure.

    The figure (:func:`lib.models.segmentation.segmentation_grid`) shows per row: photo | predicted
    classes | true classes.
    """
    return (
        f"**The mIoU segmenter.** No pretrained Cityscapes DRN-D-105 is available offline, so a {seg['config']['arch']} "
        f"({seg['params'] / 1e6:.2f} M parameters) is trained from scratch on the {seg['train_photos']} real training photos "
        f"at {seg['size'][0]}x{seg['size'][1]} px for {seg['steps']} steps ({seg['train_seconds'] / 60:.1f} min, {seg['scale']} scale). "
        "Its mIoU on the real test photos (the `real photos` row) is the ceiling for the generated images. Its "
        "predictions on real test photos (photo | prediction | labels):"
    )
