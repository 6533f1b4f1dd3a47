"""The denoising study's PSNR-vs-time view: the figure with every model's bootstrap interval and the
Pareto fronts (of every plotted model, and of our plain CNNs), and the sentences that place the
ASAPNet-derived runs against them."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from lib.report import ReportConfig
from lib.report.common import save_figure
from lib.report.denoise_runs import (
    ASAPNET,
    BM3D,
    FAMILIES,
    GROUPS,
    OFFICIAL_LABELS,
    SET_TITLES,
    front_verdict,
    longer_training,
    pareto_front,
    psnr_time_points,
    run_group,
    runs_on,
)

__all__ = ["plot_psnr_vs_time", "front_findings", "all_front_text", "cnn_front_findings", "short_name"]

HEADLINE_SIGMA = ReportConfig.headline_sigma  # the default of every ``sigma`` argument below
SIZE = (321, 481)  # (h, w): a BSD68 image, the size the study's times are read at
# point style per ASAPNet group (lib.report.denoise_runs.GROUPS) or family (FAMILIES): (colour, marker, legend)
STYLE = {
    GROUPS[0]: ("tab:orange", "o", "ASAPNet rows (ours)"),
    GROUPS[1]: ("tab:red", "P", "ASAPNet + predicted filter (ours)"),
    GROUPS[2]: ("tab:brown", "X", "ASAPNet hybrid, CNN front (ours)"),
    FAMILIES[1]: ("tab:blue", "D", "plain CNNs (ours)"),
    FAMILIES[2]: ("navy", "s", "DnCNN-20 (ours)"),
    FAMILIES[3]: ("tab:green", "s", "official DnCNN-B / CDnCNN-B"),
    FAMILIES[4]: ("tab:purple", "^", "BM3D / CBM3D"),
}
LABEL_FONT = 6.5  # point labels (pt)


def short_name(model: str, label: str = "") -> str:
    """The short text next to a point: the run name without ``asapnet_``; official and BM3D rows by name."""
    if model in OFFICIAL_LABELS:
        return OFFICIAL_LABELS[model].removesuffix(" (official weights)")
    if model == BM3D:
        return label.replace("BM3D / CBM3D", "BM3D") if label else "BM3D"
    return model.removeprefix("asapnet_")


def _style_key(point: Mapping[str, Any], groups: Mapping[str, str]) -> str:
    """The :data:`STYLE` key of a point: its ASAPNet group, else its family."""
    return groups.get(point["model"], GROUPS[0]) if point["family"] == FAMILIES[0] else point["family"]


def _place_labels(ax: plt.Axes, d: pd.DataFrame, names: list[str]) -> None:
    """Writes ``names`` next to the points of ``d``, each at the first of a few places beside its point whose
    text box (estimated in axes fractions) overlaps no marker nor a label placed before it (else the least covered)."""
    x0, x1 = np.log10(ax.get_xlim())
    y0, y1 = ax.get_ylim()
    fx = (np.log10(d["ms"].to_numpy(dtype=float)) - x0) / (x1 - x0)  # (N,) axes fractions
    fy = (d["psnr"].to_numpy(dtype=float) - y0) / (y1 - y0)
    width_in, height_in = ax.get_position().width * ax.figure.get_figwidth(), ax.get_position().height * ax.figure.get_figheight()
    char_w, box_h = LABEL_FONT * 0.62 / 72 / width_in, LABEL_FONT * 1.25 / 72 / height_in  # one character, one line
    ring = d["on_front"].to_numpy(dtype=bool)  # (N,) ringed points: a wider marker
    pad_x, pad_y = np.where(ring, 8, 5) / 72 / width_in, np.where(ring, 5, 3) / 72 / height_in  # (N,) beside the marker
    mark_x, mark_y = np.where(ring, 6, 4) / 72 / width_in, np.where(ring, 6, 4) / 72 / height_in  # (N,) half a marker
    offsets = [(1, 0), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1), (1, 2), (1, -2), (-1, 2), (-1, -2)]  # (right or left, rows up)
    placed = [(x - mx, y - my, x + mx, y + my) for x, y, mx, my in zip(fx, fy, mark_x, mark_y)]  # the markers

    def overlap(box: tuple[float, float, float, float]) -> float:
        """Area of ``box`` over the boxes placed so far, plus the part of it outside the axes."""
        area = sum(max(0.0, min(box[2], b[2]) - max(box[0], b[0])) * max(0.0, min(box[3], b[3]) - max(box[1], b[1]))
                   for b in placed)
        inside = max(0.0, min(box[2], 1) - max(box[0], 0)) * max(0.0, min(box[3], 1) - max(box[1], 0))
        return area + (box[2] - box[0]) * (box[3] - box[1]) - inside

    for x, y, name, px, py in sorted(zip(fx, fy, names, pad_x, pad_y), key=lambda t: -t[1]):
        w = char_w * len(name)
        boxes = []
        for ox, oy in offsets:
            left = x + px if ox > 0 else x - px - w
            bottom = y - box_h / 2 + oy * (box_h / 2 + py) * (1 if abs(oy) < 2 else 1.6)
            boxes.append((left, bottom, left + w, bottom + box_h))
        i = min(range(len(boxes)), key=lambda k: overlap(boxes[k]))  # the first free place, else the least covered one
        box = boxes[i]
        placed.append(box)
        leader = {} if offsets[i][1] == 0 else {"arrowprops": {"arrowstyle": "-", "lw": 0.4, "color": "0.6",
                                                              "shrinkA": 0, "shrinkB": 2}}
        anchor_x = box[0] if offsets[i][0] > 0 else box[2]  # the box's side nearest the point
        ax.annotate(name, xy=(x, y), xycoords="axes fraction", xytext=(anchor_x, box[1]), textcoords="axes fraction",
                    fontsize=LABEL_FONT, ha="left" if offsets[i][0] > 0 else "right", va="bottom", color="0.2",
                    zorder=4, annotation_clip=True, **leader)


def _panel(ax: plt.Axes, d: pd.DataFrame, groups: Mapping[str, str], title: str, size: tuple[int, int]) -> None:
    """One panel: every point with its interval, the front of all points (solid, ringed) and of the plain CNNs (dashed)."""
    front = d[d["on_front"]].sort_values("ms")
    if len(front) > 1:
        ax.plot(front["ms"], front["psnr"], color="0.15", lw=1.1, zorder=1)
    ax.scatter(front["ms"], front["psnr"], s=150, facecolors="none", edgecolors="0.15", lw=1.1, zorder=3, gid="front")
    cnn_front = pareto_front(d[d["cnn"]])
    if len(cnn_front) > 1:
        ax.plot(cnn_front["ms"], cnn_front["psnr"], color="tab:blue", lw=1.0, ls="--", zorder=1)
    for _, p in d.iterrows():
        colour, marker, _ = STYLE[_style_key(p, groups)]
        lo, hi = p["psnr"] - p["ci_low"], p["ci_high"] - p["psnr"]
        if np.isfinite(lo) and np.isfinite(hi):
            ax.errorbar(p["ms"], p["psnr"], yerr=[[max(lo, 0.0)], [max(hi, 0.0)]], fmt="none", ecolor=colour, lw=0.9,
                        capsize=2, zorder=2)
        ax.scatter(p["ms"], p["psnr"], marker=marker, s=36, zorder=3, edgecolors=colour, lw=1.2,
                   facecolors="white" if p["longer"] else colour)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only
    if len(d):
        lo_ms, hi_ms = d["ms"].min(), d["ms"].max()
        ax.set_xlim(lo_ms / 1.6, hi_ms * 2.2)  # room for the labels right of the slowest point
        lo_db, hi_db = np.nanmin(d[["psnr", "ci_low"]].to_numpy(dtype=float)), np.nanmax(d[["psnr", "ci_high"]].to_numpy(dtype=float))
        ax.set_ylim(lo_db - 0.04 * (hi_db - lo_db + 1), hi_db + 0.06 * (hi_db - lo_db + 1))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(f"time per {size[1]}x{size[0]} image (ms, log)")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(alpha=0.3, which="both")
    _place_labels(ax, d, [short_name(m, lab) for m, lab in zip(d["model"], d["label"])])


def plot_psnr_vs_time(eval_json: Mapping[str, Any], timing: pd.DataFrame, set_name: str = "bsd68",
                      size: tuple[int, int] = SIZE, sigma: float = HEADLINE_SIGMA, color_set: str | None = "cbsd68",
                      out: str | Path | None = None) -> tuple[plt.Figure, pd.DataFrame]:
    """PSNR against inference time per image at ``size`` (log x) at ``sigma``: ``set_name`` in the main
    panel, ``color_set`` in a second one where it has points (other sigmas: the PSNR tables).

    Every model is a point (:func:`lib.report.denoise_runs.psnr_time_points`: our runs, the official
    DnCNN with our DnCNN-20's time, BM3D with its wall time in the evaluation) with the 95% bootstrap
    interval of its mean PSNR (``psnr_interval``) as a vertical bar; colour and marker give the family
    (ASAPNet rows by group), open markers the longer-training runs. Solid line and rings: the Pareto front
    of every plotted point; dashed: that of our plain CNNs (a model below it is beaten by a plain CNN
    of ours as fast).

    Returns:
        ``(figure, the points)``: :func:`psnr_time_points`'s columns for every sigma of ``set_name`` and
        ``color_set``, with a ``set`` column first.
    """
    sets = [set_name] + ([color_set] if color_set and color_set != set_name else [])
    frames = [psnr_time_points(eval_json, timing, s, size).assign(set=s) for s in sets]
    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    data = data[["set", *[c for c in data.columns if c != "set"]]]
    groups = {r["run"]: run_group(r) for r in eval_json.get("runs", [])}  # longer-training runs: their design's group
    shown = [s for s in sets if ((data["set"] == s) & (data["sigma"] == float(sigma))).any()] or [set_name]
    wide = len(shown) > 1
    fig, axes = plt.subplots(1, len(shown), figsize=(14.5 if wide else 10, 6.2), squeeze=False,
                             gridspec_kw={"width_ratios": [2.1, 1][: len(shown)]})
    for ax, s in zip(axes[0], shown):
        d = data[(data["set"] == s) & (data["sigma"] == float(sigma))]
        _panel(ax, d, groups, f"{SET_TITLES.get(s, s)}, σ={sigma:g}", size)
    used = {_style_key(p, groups) for _, p in data[data["sigma"] == float(sigma)].iterrows()}
    handles = [Line2D([], [], color=c, marker=m, ls="none", label=name) for k, (c, m, name) in STYLE.items() if k in used]
    if data["longer"].any():
        handles.append(Line2D([], [], color="0.4", marker="o", mfc="white", ls="none", label="longer training (open)"))
    handles += [Line2D([], [], color="0.15", marker="o", mfc="none", ms=10, lw=1.1, label="Pareto front of all points"),
                Line2D([], [], color="tab:blue", ls="--", lw=1.0, label="Pareto front of our plain CNNs")]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, bbox_to_anchor=(0.5, -0.09), frameon=False)
    fig.suptitle("PSNR (mean, 95% bootstrap interval) against time per image (batch 1, fp32, median; "
                 "BM3D: its wall time)", fontsize=10)
    fig.tight_layout()
    if out is not None:
        save_figure(fig, out)
    return fig, data.reset_index(drop=True)


def _point_text(p: Mapping[str, Any]) -> str:
    return f"{p['model']} ({p['psnr']:.2f} dB, {p['ms']:.0f} ms)"


def all_front_text(points: pd.DataFrame, sigma: float, set_name: str) -> str:
    """The sentence on the Pareto front of every point of ``points`` (one sigma): which models are
    on it, and whether an ASAPNet-derived run is (saying when one is there only by being the fastest)."""
    if points.empty:
        return ""
    front = points[points["on_front"]].sort_values("ms")
    kinds = ["ours"] + [k for k, f in (("the official DnCNN", FAMILIES[3]), ("BM3D", FAMILIES[4])) if (points["family"] == f).any()]
    where = f"at σ={sigma:g} on {SET_TITLES.get(set_name, set_name)} ({', '.join(kinds)}: {len(points)} models)"
    listed = "; ".join(_point_text(p) for _, p in front.iterrows())
    asap = front[front["family"] == FAMILIES[0]]
    if asap.empty:
        return f"**No ASAPNet-derived run is on the Pareto front** of all models {where}; the front: {listed}."
    fastest = points["ms"].min()
    named = []
    for _, p in asap.iterrows():
        alone = ", only as the fastest model of all" if p["ms"] <= fastest else ""
        named.append(f"{p['model']}{' (longer training)' if p['longer'] else ''}{alone}")
    return f"**On the Pareto front** of all models {where}: {listed}. ASAPNet-derived among them: {'; '.join(named)}."


def cnn_front_findings(points: pd.DataFrame, asap: set[str], sigma: float) -> list[str]:
    """Sentences placing the ASAPNet runs ``asap`` against the Pareto front of our plain CNNs among ``points``
    (one sigma; pass equal-budget points for an equal-budget verdict)."""
    front = pareto_front(points[points["cnn"]])
    rows = points[points["model"].isin(asap)]
    if len(front) < 1 or rows.empty:
        return []
    dominated, other = [], []
    for _, p in rows.sort_values("psnr", ascending=False).iterrows():
        v = front_verdict(front, p["ms"], p["psnr"])
        if v["dominated_by"] is not None:
            d = v["dominated_by"]
            dominated.append(f"{p['model']} ({p['psnr']:.2f} dB, {p['ms']:.0f} ms) by {d['label']} "
                             f"({d['psnr']:.2f} dB, {d['ms']:.0f} ms)")
        elif v["margin_db"] is not None:
            other.append(f"{p['model']} is {v['margin_db']:+.2f} dB from the plain-CNN front at its speed")
        else:
            other.append(f"{p['model']} ({p['ms']:.0f} ms) lies outside the time range of the plain CNNs")
    out = []
    if dominated and not other:
        out.append(f"**ASAPNet is dominated** at σ={sigma:g}: for every variant a plain CNN of our own, trained on the same "
                   "budget, is at least as fast and at least as good: " + "; ".join(dominated) + ".")
    elif dominated:
        out.append(f"Dominated by a plain CNN (at least as fast and as good) at σ={sigma:g}: " + "; ".join(dominated) + ".")
    if other:
        out.append(f"Against the plain-CNN Pareto front at σ={sigma:g}: " + "; ".join(other) + ".")
    return out


def front_findings(eval_json: Mapping[str, Any], timing: pd.DataFrame, set_name: str = "bsd68",
                   size: tuple[int, int] = SIZE, sigma: float = HEADLINE_SIGMA) -> list[str]:
    """Whether an ASAPNet-derived run is on the Pareto front of every model at ``sigma`` (:func:`all_front_text`),
    then every equal-budget ASAPNet run against the front of our equal-budget plain CNNs (the longer-training
    runs are left out of both sides there)."""
    points = psnr_time_points(eval_json, timing, set_name, size)
    points = points[points["sigma"] == float(sigma)]
    longer = set(longer_training(eval_json))
    asap = {r["run"] for r in runs_on(eval_json, set_name) if r.get("model") == ASAPNET and r["run"] not in longer}
    out = [all_front_text(points, sigma, set_name)]
    out += cnn_front_findings(points[~points["longer"]], asap, sigma)
    return [s for s in out if s]
