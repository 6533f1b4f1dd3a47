"""Runs outside the pipeline that bound a study's results, in the report: the study trained at a
multiple of its default steps (``benchmarks/results/translation_budget_<dataset>.csv``, written by
``benchmarks/translation_budget.py``) and its segmenter trained with other settings
(``benchmarks/results/segmenter_ceiling_<dataset>.csv``, ``benchmarks/segmenter_ceiling.py``).

Both files are optional: a study without them gets no such block. The numbers are the files'
own; this module only arranges them (the smoothed value is the mean of the last
:data:`lib.translation.curves.SMOOTH_POINTS` snapshots, as in the study's quality table).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from lib.report.common import MISSING, format_number, save_figure
from lib.report.machines import NBSP
from lib.report.translation import MODEL_LABELS, interval_text, model_colors
from lib.translation.curves import SMOOTH_POINTS

__all__ = ["budget_file", "ceiling_file", "load_results", "budget_table", "budget_caption", "plot_budget_curves",
           "ceiling_table", "ceiling_caption"]

_BUDGET_COLUMNS = {"run", "budget_factor", "model", "step", "total_steps", "train_seconds", "final", "kid",
                   "kid_boot_low", "kid_boot_high", "fid", "miou", "miou_boot_low", "miou_boot_high", "cpu"}
_CEILING_COLUMNS = {"changed", "steps", "train_seconds", "n", "miou", "miou_boot_low", "miou_boot_high", "pixel_accuracy"}


def budget_file(root: str | Path, dataset: str) -> Path:
    return Path(root) / "benchmarks" / "results" / f"translation_budget_{dataset}.csv"


def ceiling_file(root: str | Path, dataset: str) -> Path:
    return Path(root) / "benchmarks" / "results" / f"segmenter_ceiling_{dataset}.csv"


def load_results(path: str | Path, kind: str) -> pd.DataFrame | None:
    """The file as a frame, ``None`` when it does not exist.

    Raises:
        ValueError: a file without the columns of ``kind`` (``"budget"`` or ``"ceiling"``), named.
    """
    path = Path(path)
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    need = _BUDGET_COLUMNS if kind == "budget" else _CEILING_COLUMNS
    missing = sorted(need - set(frame.columns))
    if missing:
        raise ValueError(f"{path}: missing columns {', '.join(missing)} (written by an older benchmarks/ script?)")
    return frame


def _ci(value, low, high, digits: int) -> str:
    """:func:`interval_text` kept on one line (as the quality table writes it)."""
    return interval_text(value, low, high, digits).replace(" [", NBSP + "[").replace(", ", "," + NBSP)


def _ordered_runs(frame: pd.DataFrame) -> list[str]:
    return list(frame.sort_values("budget_factor")["run"].drop_duplicates())


def budget_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per model and run: steps, training minutes, the final KID / mIoU with their intervals,
    the mean of the last :data:`SMOOTH_POINTS` snapshots of each, FID, and the best snapshot's KID and
    mIoU. Text cells for display."""
    rows = []
    for model in dict.fromkeys(frame["model"]):
        for run in _ordered_runs(frame):
            g = frame[(frame["model"] == model) & (frame["run"] == run)].sort_values("step")
            if g.empty:
                continue
            final = g[g["final"].astype(bool)].iloc[-1]
            last = g.tail(SMOOTH_POINTS)
            rows.append({
                "model": MODEL_LABELS.get(model, model),
                "budget": run,
                "steps": f"{int(final['total_steps']):,}",
                "minutes": format_number(final["train_seconds"] / 60, 1),
                "KID [95% CI]": _ci(final["kid"], final["kid_boot_low"], final["kid_boot_high"], 3),
                f"KID, last {SMOOTH_POINTS}": format_number(last["kid"].mean(), 3),
                "best KID": format_number(g["kid"].min(), 3),
                "FID": format_number(final["fid"], 1),
                "mIoU [95% CI]": _ci(final["miou"], final["miou_boot_low"], final["miou_boot_high"], 3),
                f"mIoU, last {SMOOTH_POINTS}": format_number(last["miou"].mean(), 3),
                "best mIoU": format_number(g["miou"].max(), 3),
            })
    return pd.DataFrame(rows).set_index(["model", "budget"]) if rows else pd.DataFrame()


def budget_caption(frame: pd.DataFrame, dataset: str) -> str:
    """What the runs are, where they ran and which file holds them."""
    runs = _ordered_runs(frame)
    cpus = sorted({str(c) for c in frame["cpu"].dropna()}) or [MISSING]
    return (f"*A run outside the pipeline: the same study with every model's steps and learning-rate decay "
            f"multiplied ({', '.join(runs)} the default steps), nothing else changed (the script checks the "
            f"training and evaluation settings, test set and segmenter against the pipeline's run), scored with the "
            f"same protocol and segmenter; each snapshot without intervals, the final step with them. Minutes: "
            f"training wall time as each run recorded it, on {', '.join(cpus)}. File: "
            f"`benchmarks/results/translation_budget_{dataset}.csv` (`benchmarks/translation_budget.py`).*")


def plot_budget_curves(frame: pd.DataFrame, out: str | Path | None = None) -> plt.Figure:
    """KID and mIoU of every snapshot against training minutes: one colour per model, one line style
    per budget (solid: the default run)."""
    models = list(dict.fromkeys(frame["model"]))
    colors = model_colors(models)
    styles = dict(zip(_ordered_runs(frame), ["-", "--", ":", "-."]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, (key, label) in zip(axes, (("kid", "KID (lower is better)"), ("miou", "mIoU (higher is better)"))):
        for model in models:
            for run, style in styles.items():
                g = frame[(frame["model"] == model) & (frame["run"] == run)].sort_values("step")
                if len(g):
                    ax.plot(g["train_seconds"] / 60, g[key], style, marker="o", ms=4, color=colors[model],
                            label=f"{MODEL_LABELS.get(model, model)}, {run} steps")
        ax.set_xlabel("training wall time (min)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("The study at its default budget and at a multiple of it: every snapshot, same protocol", fontsize=10)
    fig.tight_layout()
    if out is not None:
        save_figure(fig, out)
    return fig


def ceiling_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per segmenter run: the settings changed from ``params.yaml``, steps, minutes, mIoU with its
    interval on the real test photos, pixel accuracy. Text cells for display."""
    out = pd.DataFrame({
        "settings changed": [str(c) for c in frame["changed"]],
        "steps": [f"{int(s):,}" for s in frame["steps"]],
        "training minutes": [format_number(s / 60, 1) for s in frame["train_seconds"]],
        "mIoU on the real test photos [95% CI]": [_ci(m, lo, hi, 3) for m, lo, hi in
                                                  zip(frame["miou"], frame["miou_boot_low"], frame["miou_boot_high"])],
        "pixel acc.": [format_number(p, 3) for p in frame["pixel_accuracy"]],
    })
    return out.set_index("settings changed")


def ceiling_caption(frame: pd.DataFrame, dataset: str) -> str:
    n = int(frame["n"].iloc[0]) if len(frame) else 0
    cpus = sorted({str(c) for c in frame.get("cpu", pd.Series(dtype=str)).dropna()}) or [MISSING]
    return (f"*The study's segmenter trained outside the pipeline with some settings changed, each scored like the "
            f"pipeline's ceiling (the same {n} real test photos, bootstrap over images). `(params.yaml)`: the "
            f"pipeline's own segmenter, scored again. Training minutes on {', '.join(cpus)}, as each run recorded "
            f"them. File: `benchmarks/results/segmenter_ceiling_{dataset}.csv` (`benchmarks/segmenter_ceiling.py`).*")
