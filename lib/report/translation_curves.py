"""The label -> photo learning curves and per-class IoU in the report: KID, FID and mIoU of every
training snapshot against training wall time, and the IoU of each class per model.

The numbers come from the evaluation stage (``translation_curves.csv``, ``translation_per_class_iou.csv``,
:mod:`lib.translation.curves`); the smoothed line is the trailing mean whose last value is the
smoothed final value of ``translation_eval.json`` (docs/design.md#report).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import matplotlib.pyplot as plt
import pandas as pd

from lib.report.common import MISSING, format_frame, is_finite, save_figure, scale_caption, to_float
from lib.report.translation import MODEL_LABELS, model_colors
from lib.translation.curves import CURVE_METRICS, SMOOTH_POINTS, smoothed_curve

__all__ = ["curve_plot_table", "plot_learning_curves", "curves_caption", "per_class_display"]

PANELS = {"kid": "KID (lower is better)", "fid": "FID (lower is better)", "miou": "mIoU (higher is better)"}
SMOOTHED_SUFFIX = f" (mean of last {SMOOTH_POINTS})"


def curve_plot_table(curves: pd.DataFrame, study: str | None = None) -> pd.DataFrame:
    """The data of :func:`plot_learning_curves` as one tidy table (``reports/plots/translation_curves.csv``);
    ``study``: the study's name, added to each series (``ASAPNet · Facades``) where several studies share a table.

    Returns:
        Columns ``series`` (``ASAPNet`` for the evaluated snapshots, ``ASAPNet (mean of last 3)``
        for the trailing mean), ``step``, ``minutes`` (training wall time), ``kid``, ``fid``, ``miou``;
        raw rows first, then the smoothed ones, by model and step.
    """
    cols = ["series", "step", "minutes", *CURVE_METRICS]
    if curves.empty:
        return pd.DataFrame(columns=cols)
    parts = []
    # a 1-point mean is the raw curve (sorted by model and step)
    for frame, suffix in ((smoothed_curve(curves, 1), ""), (smoothed_curve(curves), SMOOTHED_SUFFIX)):
        parts.append(pd.DataFrame({
            "series": [MODEL_LABELS.get(m, m) + (f" · {study}" if study else "") + suffix for m in frame["model"]], "step": frame["step"].astype(int),
            "minutes": (frame["train_seconds"].astype(float) / 60).round(3),
            "kid": frame["kid"].astype(float).round(5), "fid": frame["fid"].astype(float).round(2),
            "miou": frame["miou"].astype(float).round(4)}))
    return pd.concat(parts, ignore_index=True)[cols]


def plot_learning_curves(curves: pd.DataFrame, eval_json: Mapping[str, Any] | None = None,
                         out: str | Path | None = None) -> plt.Figure:
    """KID, FID and mIoU (one panel each) against training wall time in minutes, one colour per model:
    the evaluated snapshots as points, the trailing mean of :data:`lib.translation.curves.SMOOTH_POINTS`
    points as a line. Dashed: the real photos' values from ``eval_json`` where they exist (KID and FID of
    real training vs test photos at the same N, the segmenter's mIoU ceiling).

    Args:
        curves: ``translation_curves.csv`` as a frame.
        eval_json: ``translation_eval.json`` (for the real-photo reference lines; optional).
        out: optional image file to write (atomically).
    """
    table = curve_plot_table(curves)
    models = list(dict.fromkeys(curves["model"])) if len(curves) else []
    colors = model_colors(models)
    real = next((r for r in (eval_json or {}).get("rows", []) if r["model"] == "real"), {})
    fig, axes = plt.subplots(1, len(PANELS), figsize=(13, 3.6))
    for ax, (key, ylabel) in zip(axes, PANELS.items()):
        for m in models:
            label = MODEL_LABELS.get(m, m)
            raw, smooth = table[table["series"] == label], table[table["series"] == label + SMOOTHED_SUFFIX]
            ax.plot(raw["minutes"], raw[key], "o", color=colors[m], ms=5, alpha=0.6, label=f"{label} (snapshots)")
            ax.plot(smooth["minutes"], smooth[key], "-", color=colors[m], lw=2, label=label + SMOOTHED_SUFFIX)
        has_real = bool(real.get("fid_between")) if key != "miou" else True
        if has_real and is_finite(real.get(key)):
            ax.axhline(to_float(real[key]), ls="--", color="0.4",
                       label="real photos (segmenter ceiling)" if key == "miou" else "real train vs real test photos")
        ax.set_xlabel("training wall time (min)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle("Learning curves: every training snapshot scored with the evaluation protocol, against training "
                 "wall time", fontsize=10)
    fig.tight_layout()
    if out is not None:
        save_figure(fig, out)
    return fig


def curves_caption(eval_json: Mapping[str, Any], summaries: Mapping[str, Mapping[str, Any]],
                   curves: pd.DataFrame) -> str:
    """Markdown caption of :func:`plot_learning_curves`: data, resolution, test images and where the
    evaluation ran (``translation_eval.json``'s meta), each model's training steps, snapshots and
    machine (its training summary), and what the line is.

    Args:
        eval_json: ``translation_eval.json``.
        summaries: model -> its ``train_<model>.json``.
        curves: ``translation_curves.csv`` as a frame.
    """
    meta = eval_json.get("meta", {})
    size = meta.get("size") or ["?"]
    runs = []
    for m, s in summaries.items():
        hw = s.get("hardware", {})
        n = int((curves["model"] == m).sum()) if len(curves) else 0
        runs.append(f"{MODEL_LABELS.get(m, m)} {s.get('steps', '?')} steps, {n} snapshots, "
                    f"{to_float(s.get('train_seconds')) / 60:.1f} min on {hw.get('cpu_model') or hw.get('device_name') or '?'} "
                    f"({hw.get('device', '?')}, {hw.get('threads', '?')} threads)")
    smoothing = eval_json.get("curves", {}).get("smoothing", f"mean of the last {SMOOTH_POINTS} curve points")
    return (f"*{meta.get('dataset', '?')} {meta.get('test_split', '')} split, N = {meta.get('n_images', '?')} test images "
            f"at {size[0]}x{size[-1]} px; training: {'; '.join(runs) or MISSING}. Each point: one snapshot of the "
            f"evaluation generator scored with the protocol above (no intervals); x: training wall time up to "
            f"that step. Line: trailing mean of {SMOOTH_POINTS} points; its last value is the smoothed final value "
            f"({smoothing}). Evaluation: {scale_caption(meta)}*")


def per_class_display(per_class: pd.DataFrame) -> pd.DataFrame:
    """The per-class IoU (``translation_per_class_iou.csv``) for display: one row per class (class-id
    order), one column per model (report labels, the real photos last), 3 decimals; :data:`MISSING`
    where a class is absent from both the label maps and the predictions."""
    wide = per_class.pivot(index=["class_id", "class"], columns="model", values="iou").sort_index(level="class_id")
    order = [m for m in dict.fromkeys(per_class["model"]) if m != "real"] + (["real"] if "real" in set(per_class["model"]) else [])
    wide = wide[order].droplevel("class_id")
    wide.columns = [MODEL_LABELS.get(m, m) for m in order]
    wide.index.name = None
    return format_frame(wide, default=3)
