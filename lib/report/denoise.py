"""The denoising section of the report: official DnCNN, PSNR, ablation, time and grid-size tables and figures."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.ticker import NullFormatter

from lib.report import ReportConfig
from lib.report.common import MISSING, format_frame, hardware_text, is_finite, save_figure, to_float
from lib.report.denoise_runs import (
    ABLATION_PARENT,
    BM3D,
    OFFICIAL_LABELS,
    OFFICIAL_TWIN,
    SET_TITLES,
    ablation_parents,
    denoise_labels,
    front_verdict,
    pareto_front,
    psnr_time_points,
    reference_run,
    run_names,
    runs_on,
)
from lib.report.machines import spread, spread_note, time_cell

__all__ = [
    "ABLATION_PARENT",
    "dncnn_official_table",
    "plot_dncnn_per_image",
    "run_names",
    "ablation_parents",
    "denoise_labels",
    "denoise_psnr_table",
    "denoise_ablation_table",
    "plot_psnr_vs_time",
    "reference_run",
    "pareto_front",
    "front_verdict",
    "plot_denoise_losses",
    "denoise_findings",
    "denoise_budget_caption",
    "denoise_grid_table",
    "grid_sigma",
    "grid_caption",
    "ablation_cost_display",
    "crops_caption",
]

HEADLINE_SIGMA = ReportConfig.headline_sigma  # the default of every ``sigma`` argument below
GRID_ROBUST_DB = 0.3  # a run is grid-size robust when its full-image gain is within this of its training-size gain
GRID_LOST_DB = 3.0  # a run "only works at its training grid" when it loses more than this on full images


# ----------------------------------------------------------------------------- official DnCNN weights

def dncnn_official_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Measured vs published PSNR (dB) and measured SSIM per test set, model and sigma, one row each
    (a narrow table: it fits the page however many sets, models and sigmas the file holds).

    Args:
        metrics: the content of ``dncnn_official.json`` (``rows`` with set, model, sigma,
            n_images, psnr, ssim, psnr_noisy, published_psnr).

    Returns:
        A frame indexed by (test set, model, images, σ) with the columns ``PSNR``, ``published``,
        ``diff`` (measured - published) and ``SSIM``.
    """
    rows = pd.DataFrame(metrics["rows"])
    published = rows["published_psnr"].map(to_float)
    table = pd.DataFrame({"test set": rows["set"], "model": rows["model"], "images": rows["n_images"],
                          "σ": [f"{to_float(v):g}" for v in rows["sigma"]], "PSNR": rows["psnr"].astype(float),
                          "published": published, "diff": rows["psnr"].astype(float) - published,
                          "SSIM": rows["ssim"].astype(float)})
    order = {s: i for i, s in enumerate(dict.fromkeys(rows["set"]))}
    table = table.assign(_set=table["test set"].map(order), _sigma=rows["sigma"].astype(float))
    table = table.sort_values(["_set", "model", "_sigma"], kind="stable").drop(columns=["_set", "_sigma"])
    return table.set_index(["test set", "model", "images", "σ"])  # unrounded: the page rounds once, when it shows them


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
        save_figure(grid.figure, out)
    return grid.figure


# ----------------------------------------------------------------------------- tables

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
    order = {m: i for i, m in enumerate([*OFFICIAL_LABELS, BM3D, *run_names(eval_json)])}
    rows["row"] = rows["model"].map(lambda m: labels.get(m, m))
    rows["order"] = rows["model"].map(lambda m: order.get(m, len(order)))
    rows["column"] = [f"{SET_TITLES.get(s, s)} ({n} images)" for s, n in zip(rows["set"], rows["n_images"])]

    def cell(r) -> str:
        value = f"{r[metric]:.2f}" if metric == "psnr" else f"{r[metric]:.4f}"
        pub = r.get("published_psnr")  # None / "nan" where unpublished
        if metric == "psnr" and is_finite(pub):
            value += f" ({to_float(pub):.2f})"
        return value

    rows["cell"] = rows.apply(cell, axis=1)
    table = rows.pivot_table(index=["order", "row"], columns=["column", "sigma"], values="cell", aggfunc="first")
    table.index = table.index.droplevel(0)  # sorted by the row order, then dropped
    table.index.name = None
    set_order = {f"{SET_TITLES.get(s, s)} ({n} images)": i for s, n, i in
                 zip(rows["set"], rows["n_images"], rows["set"].map(list(SET_TITLES).index))}
    table = table[sorted(table.columns, key=lambda c: (set_order.get(c[0], 99), c[1]))]  # BSD68, Set12, CBSD68
    table.columns = pd.MultiIndex.from_tuples([(c, f"σ={s:g}") for c, s in table.columns])
    return table.fillna(MISSING)


def denoise_ablation_table(eval_json: Mapping[str, Any], timing: pd.DataFrame,
                           train: Mapping[str, Mapping[str, Any]], set_name: str = "bsd68",
                           sigma: float = HEADLINE_SIGMA) -> pd.DataFrame:
    """The ablation: one row per run evaluated on ``set_name`` (runs order) with its change, cost and PSNR.

    Columns: change, parent (the run this row changes, :func:`ablation_parents`), params, GMAC
    (481x321), time at each timed size (ms, median), training steps, pixel-samples (millions)
    and minutes (the training summaries in ``train``, else the planned values of the runs
    table), PSNR on
    ``set_name`` per sigma and ``Δ σ=<sigma>`` (gain over the parent at ``sigma``, dB; NaN
    without a parent).
    """
    summary = pd.DataFrame(eval_json["summary"])
    parents = ablation_parents(eval_json)
    rows = []
    for r in runs_on(eval_json, set_name):
        row = {"run": r["run"], "change": r["change"], "parent": parents.get(r["run"]) or MISSING,
               "params (M)": r["params"] / 1e6, "GMAC 481x321": r["gmacs"]}
        for (h, w), g in timing[timing["model"] == r["run"]].groupby(["height", "width"], sort=False):
            row[f"ms {w}x{h}"] = float(g["median_ms"].iloc[0])
        t = train.get(r["run"], {})
        row["steps"] = t.get("steps", r.get("steps"))
        pixels = t.get("pixel_samples", r.get("pixel_samples"))
        row["pixel-samples (M)"] = None if pixels is None else pixels / 1e6
        row["train min"] = None if t.get("train_seconds") is None else t["train_seconds"] / 60
        s = summary[(summary["model"] == r["run"]) & (summary["set"] == set_name)]
        for sig, v in zip(s["sigma"], s["psnr"]):
            row[f"PSNR σ={sig:g}"] = v
        rows.append(row)
    table = pd.DataFrame(rows).set_index("run")
    column = f"PSNR σ={sigma:g}"
    if column in table:
        psnr = table[column]
        table[f"Δ σ={sigma:g}"] = [psnr[run] - psnr[p] if p in psnr.index else float("nan")
                                   for run, p in zip(table.index, table["parent"])]
    return table.round(3)


def denoise_grid_table(eval_json: Mapping[str, Any], train: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """PSNR gain over the noisy input (dB) of each ASAPNet run per crop side (``grid_check``),
    with the run's training patch side and tile size: does a run work at other grid sizes?"""
    grid = pd.DataFrame(eval_json.get("grid_check", []))
    if grid.empty:
        return pd.DataFrame()
    if "crop_minus_full_db" in grid:  # scored on identical pixels: the crop windows' PSNR minus the full image's
        table = grid[grid["crop"] != 0].pivot_table(index="model", columns="crop", values="crop_minus_full_db", sort=False)
        table.columns = [f"{c}x{c} windows − full image" for c in table.columns]
    else:  # results written before the identical-pixel check: gains on different pixels
        table = grid.pivot_table(index="model", columns="crop", values="gain_db", sort=False)
        table.columns = [("full image" if c == 0 else f"{c}x{c} crop") for c in table.columns]
    info = pd.DataFrame({
        m: {"train patch": _sides_text(_train_sides(train.get(m, {}))),
            "tile": train.get(m, {}).get("model_config", {}).get("tile_size")}
        for m in table.index
    }).T
    return pd.concat([info, table.round(2)], axis=1)


def _train_sides(summary: Mapping[str, Any]) -> list[int]:
    """The training patch sides of a run's summary (``patch_sizes``, else ``patch_size``)."""
    sides = summary.get("patch_sizes") or ([summary["patch_size"]] if summary.get("patch_size") else [])
    return [int(p) for p in sides]


def _sides_text(sides: Sequence[int]) -> int | str | None:
    """One side as itself, several as ``"64/96/128"``, none as None."""
    if not sides:
        return None
    return sides[0] if len(sides) == 1 else "/".join(str(p) for p in sides)


def grid_caption(eval_json: Mapping[str, Any], sigma: float = HEADLINE_SIGMA) -> str:
    """The grid-size table's caption: its noise level and how many images each of its numbers averages."""
    counts = sorted({int(r["n_images"]) for r in eval_json.get("grid_check", []) if is_finite(r.get("n_images"))})
    n = "/".join(str(c) for c in counts) or "?"
    if any("crop_minus_full_db" in r for r in eval_json.get("grid_check", [])):
        return (f"*σ = {grid_sigma(eval_json, sigma):g}; {n} BSD68 image{'s' if n != '1' else ''}; each cell: the PSNR "
                f"(dB) of the image denoised as a grid of crop-side windows, each window alone, minus that of the whole "
                f"image denoised once, on the same pixels (so crop content cannot confound it). Near 0 (slightly "
                f"negative from window borders): the run works at any grid size; large and positive: it only works at "
                f"its training grid.*")
    return (f"*σ = {grid_sigma(eval_json, sigma):g}; each cell: the mean gain over the first {n} BSD68 image"
            f"{'s' if n != '1' else ''} only (the check is costly; crops and full images are different pixels), so it "
            f"shows large effects (a run that fails on full images), not differences of a few tenths of a dB.*")


def ablation_cost_display(ablation: pd.DataFrame, timing: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The cost half of :func:`denoise_ablation_table` for display, and its caption sentence on the spread:
    params, GMAC, the median time per size with its spread (:func:`lib.report.machines.time_cell`,
    from ``denoise_timing.csv``), training steps, pixel-samples and minutes."""
    cost = [c for c in ablation.columns if c.startswith(("params", "GMAC", "ms ", "steps", "pixel-samples", "train min"))]
    out = format_frame(ablation[cost], {"params": 3, "GMAC": 2, "ms": 0, "steps": 0, "pixel-samples": 1, "train min": 1})
    kinds = []
    for col in [c for c in cost if c.startswith("ms ")]:
        w, h = (int(x) for x in col.removeprefix("ms ").split("x"))
        cells = []
        for run in out.index:
            r = timing[(timing["model"] == run) & (timing["height"] == h) & (timing["width"] == w)]
            cells.append(time_cell(r.iloc[0]) if len(r) else MISSING)
            kinds.append(spread(r.iloc[0])[0] if len(r) else None)
        out[col] = cells
    runs = sorted({int(v) for v in timing.get("runs", pd.Series(dtype=float)) if is_finite(v)})
    return out, spread_note(kinds, "/".join(str(r) for r in runs))


def grid_sigma(eval_json: Mapping[str, Any], default: float = HEADLINE_SIGMA) -> float:
    """The noise level of the grid-size check: its rows' ``sigma`` where written, else ``default``."""
    sigmas = {to_float(r["sigma"]) for r in eval_json.get("grid_check", []) if is_finite(r.get("sigma"))}
    return sigmas.pop() if len(sigmas) == 1 else default


def crops_caption(sigmas: Sequence[float]) -> str:
    """Caption of the crop figure of the evaluation stage, drawn at ``sigmas`` (``report.crops_sigma``)."""
    names = [f"{s:g}" for s in sigmas]
    listed = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    return f"Crops at σ = {listed} (PSNR of the whole image under each crop):"


# ----------------------------------------------------------------------------- figures

def plot_psnr_vs_time(eval_json: Mapping[str, Any], timing: pd.DataFrame, per_image: pd.DataFrame,
                      set_name: str = "bsd68", size: tuple[int, int] = (321, 481), out: str | Path | None = None) -> tuple[plt.Figure, pd.DataFrame]:
    """PSNR on ``set_name`` vs inference time per image at ``size`` (log x), one panel per sigma,
    with the Pareto front of our DnCNN-style CNNs drawn as a line through their non-dominated
    points (:func:`pareto_front`): a model below the line is beaten by a plain CNN.

    Our models: generator-only median time (``denoise_timing.csv``). An official blind DnCNN
    has our DnCNN-20's network (:data:`OFFICIAL_TWIN`), so it gets its time. BM3D: its mean
    wall time per image from the evaluation (481x321 images, CPU), its PSNR on its own subset
    (marked).

    Returns:
        ``(figure, the plotted points)`` with columns ``model, label, sigma, ms, psnr,
        n_images, cnn``.
    """
    data = psnr_time_points(eval_json, timing, per_image, set_name, size)
    h, w = size
    sigmas = sorted(data["sigma"].unique()) if len(data) else []
    fig, axes = plt.subplots(1, max(1, len(sigmas)), figsize=(4.6 * max(1, len(sigmas)), 3.8), squeeze=False)
    palette = dict(zip(data["label"].unique() if len(data) else [], sns.color_palette("tab10", 10) * 3))
    for ax, sigma in zip(axes[0], sigmas):
        d = data[data["sigma"] == sigma]
        front = pareto_front(d[d["cnn"]])
        if len(front) > 1:
            ax.plot(front["ms"], front["psnr"], color="0.55", lw=1.2, ls="--", zorder=1, label="plain-CNN Pareto front")
        for _, p in d.iterrows():
            marker = "s" if p["model"] in OFFICIAL_LABELS else ("^" if p["model"] == BM3D else ("D" if p["cnn"] else "o"))
            ax.scatter(p["ms"], p["psnr"], color=palette[p["label"]], marker=marker, s=45, label=p["label"], zorder=2)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only
        ax.set_title(f"{SET_TITLES.get(set_name, set_name)}, σ={sigma:g}")
        ax.set_xlabel(f"time per {w}x{h} image (ms, log)")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3, which="both")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(4, max(1, len(names))), fontsize=8, bbox_to_anchor=(0.5, -0.16))
    fig.suptitle(f"PSNR against time per image ({SET_TITLES.get(set_name, set_name)}; times: batch 1, fp32, median; "
                 "dashed: the plain CNNs' Pareto front)", fontsize=10)
    fig.tight_layout()
    if out is not None:
        save_figure(fig, out)
    return fig, data


def plot_denoise_losses(losses: Mapping[str, pd.DataFrame], out: str | Path | None = None) -> plt.Figure:
    """Training MSE per run (rolling mean of 5 logged points, log y)."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for name, frame in losses.items():
        ax.plot(frame["step"], frame["loss"].rolling(5, min_periods=1).mean(), label=name)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("training MSE (log)")
    ax.set_title("Denoiser training loss, one line per run (rolling mean of 5 logged points)", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    if out is not None:
        save_figure(fig, out)
    return fig


# ----------------------------------------------------------------------------- text

def _grid_findings(eval_json: Mapping[str, Any], train: Mapping[str, Mapping[str, Any]], sigma: float) -> list[str]:
    """Sentences on the grid-size check: runs that only work at their training grid, runs that
    are grid-size robust (full-image gain within :data:`GRID_ROBUST_DB` of the gain at their
    largest training side among the checked crops)."""
    grid = pd.DataFrame(eval_json.get("grid_check", []))
    if grid.empty:
        return []
    lost, robust = [], []
    for model, g in grid.groupby("model", sort=False):
        sides = [p for p in _train_sides(train.get(model, {})) if p in set(g["crop"])]
        full = g[g["crop"] == 0]["gain_db"]
        if not sides or full.empty:
            continue
        side = max(sides)
        at_train, at_full = float(g[g["crop"] == side]["gain_db"].iloc[0]), float(full.iloc[0])
        if "crop_minus_full_db" in g:  # identical pixels: the full image's gain on the windows' pixels
            at_full = at_train - float(g[g["crop"] == side]["crop_minus_full_db"].iloc[0])
        where = (f"{at_train:+.1f} dB on {side}-px crops, {'its largest training side' if len(_train_sides(train[model])) > 1 else 'its training patch size'}, "
                 f"{at_full:+.1f} dB on full images")
        if at_train - at_full > GRID_LOST_DB:
            lost.append(f"{model} ({where})")
        elif abs(at_train - at_full) <= GRID_ROBUST_DB:
            robust.append(f"{model} ({where})")
    check = f"(grid-size check, σ={grid_sigma(eval_json, sigma):g})"
    out = []
    if lost:
        out.append("Some variants only work at the tile-grid size they were trained on: " + "; ".join(lost)
                   + f" {check}. Their low-res stream learned the statistics of a small grid of tiles.")
    if robust:
        out.append(f"Grid-size robust (full-image gain within {GRID_ROBUST_DB:g} dB of the training-size gain): "
                   + "; ".join(robust) + f" {check}.")
    return out


def _front_findings(eval_json: Mapping[str, Any], timing: pd.DataFrame, set_name: str, size: tuple[int, int],
                    sigma: float) -> list[str]:
    """Sentences placing every ASAPNet run against the Pareto front of our plain CNNs at ``sigma``."""
    points = psnr_time_points(eval_json, timing, None, set_name, size)
    points = points[points["sigma"] == float(sigma)]
    front = pareto_front(points[points["cnn"]])
    asap = {r["run"] for r in runs_on(eval_json, set_name) if r.get("model") == "asapnet_denoise"}
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


def denoise_findings(eval_json: Mapping[str, Any], timing: pd.DataFrame, set_name: str = "bsd68",
                     size: tuple[int, int] = (321, 481), train: Mapping[str, Mapping[str, Any]] | None = None,
                     sigma: float = HEADLINE_SIGMA) -> str:
    """The study's answer in a few sentences, every number read from the metrics files.

    States the plain transfer's PSNR (and the residual variant's, when trained) against the
    noisy input at ``sigma``, the best ASAPNet variant (``meta.best_variant``), its distance to
    our reference CNN (``meta.reference_cnn``, else :func:`reference_run`) and to the official
    blind DnCNN at each sigma with the paired bootstrap interval (``paired_difference``), the
    time ratio, where every ASAPNet run lies against the Pareto front of our plain CNNs (saying
    plainly when ASAPNet is dominated), and the grid-size check (``grid_check``). Runs are found
    in the runs table by variant (:data:`ABLATION_PARENT`) and model, not by name.
    """
    summary = pd.DataFrame(eval_json["summary"])
    s = summary[summary["set"] == set_name]
    meta = eval_json["meta"]
    best = meta.get("best_variant")
    runs = runs_on(eval_json, set_name)
    variant_run = {r.get("variant"): r["run"] for r in runs if r.get("variant") in ABLATION_PARENT}
    official = next((m for m in OFFICIAL_TWIN if m in set(s["model"])), None)  # the official blind DnCNN
    ours = meta.get("reference_cnn") if meta.get("reference_cnn") in {r["run"] for r in runs} else reference_run(runs)

    def psnr(model: str | None, sig: float) -> float | None:
        v = s[(s["model"] == model) & (s["sigma"] == sig)]["psnr"]
        return None if v.empty else float(v.iloc[0])

    def noisy(sig: float) -> float | None:
        v = s[s["sigma"] == sig]["psnr_noisy"]
        return None if v.empty else float(v.iloc[0])

    sigmas = sorted(s["sigma"].unique())
    n = int(s["n_images"].max()) if len(s) else 0
    h, w = size
    t = timing[(timing["height"] == h) & (timing["width"] == w)].set_index("model")["median_ms"]
    parts = [f"On {n} {SET_TITLES.get(set_name, set_name)} images:"]
    plain, residual = psnr(variant_run.get("plain"), sigma), psnr(variant_run.get("residual"), sigma)
    noise_in = noisy(sigma)
    if plain is not None and noise_in is not None:
        verdict = (
            "a per-pixel network that sees one noisy pixel does not average the noise away"
            if max(plain, residual if residual is not None else plain) < noise_in + 1.0
            else "more than 1 dB above the noisy input even without context"
        )
        with_res = "" if residual is None else f", and with a residual output (predicting the noise) {residual:.2f} dB"
        parts.append(f"the plain transfer of ASAPNet reaches {plain:.2f} dB at σ={sigma:g} against {noise_in:.2f} dB "
                     f"for the noisy input itself{with_res}: {verdict}.")
    if best:
        gaps = []
        for sig in sigmas:
            b, mine, off = psnr(best, sig), psnr(ours, sig), psnr(official, sig)
            if b is None:
                continue
            txt = f"σ={sig:g}: {b:.2f} dB"
            if mine is not None:
                txt += f" ({b - mine:+.2f} vs our DnCNN"
                txt += f", {b - off:+.2f} vs the official DnCNN-B)" if off is not None else ")"
            gaps.append(txt)
        parts.append(f"The best ASAPNet variant is **{best}** — " + "; ".join(gaps) + ".")
        paired = [r for r in eval_json.get("paired_difference", [])
                  if r["set"] == set_name and float(r["sigma"]) == float(sigma) and r["model_a"] == best]
        if paired:
            r = paired[0]
            parts.append(
                f"Image by image at σ={sigma:g}, {best} minus {r['model_b']}: {r['mean_diff']:+.2f} dB "
                f"({100 * r['level']:.0f}% paired bootstrap interval [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}] over "
                f"{r['n_images']} images; {best} is better on {r['wins_a']} of them)."
            )
        if best in t and ours in t:
            parts.append(
                f"It runs a {w}x{h} image in {t[best]:.0f} ms against {t[ours]:.0f} ms for DnCNN "
                f"({t[ours] / t[best]:.1f}x faster, same CPU, batch 1, fp32)."
            )
    parts += _front_findings(eval_json, timing, set_name, size, sigma)
    parts += _grid_findings(eval_json, train or {}, sigma)
    return " ".join(p for p in parts if p)


def denoise_budget_caption(eval_json: Mapping[str, Any], train: Mapping[str, Mapping[str, Any]]) -> str:
    """The scale of the study's numbers: training budget per run, test images, hardware."""
    meta = eval_json["meta"]
    runs = []
    for name, t in train.items():
        sides = _sides_text(_train_sides(t))
        pixels = t.get("pixel_samples")
        runs.append(f"{name} {t.get('steps')} steps x {t.get('batch_size')} patches of {sides} px"
                    + (f" = {pixels / 1e6:.0f} M pixel-samples" if pixels is not None else "")
                    + f" ({(t.get('train_seconds') or 0) / 60:.1f} min{', ' + t['precision'] if t.get('precision') else ''})")
    hw = meta.get("hardware", {})
    images = ", ".join(f"{SET_TITLES.get(s, s)} {len(n)}" for s, n in meta.get("images", {}).items())
    return (
        f"Scale: {meta.get('scale')}. Training (blind, sigma in {next(iter(train.values())).get('sigma_range') if train else '?'}, "
        f"Train400 gray / CBSD432 color; every run the same number of training pixel-samples): " + "; ".join(runs)
        + ". For comparison, DnCNN's own recipe is 50 epochs of 1,600 batches of 128 patches of 40 px (16.4 G "
        "pixel-samples), so our DnCNN rows show how far that budget is from the official weights. "
        f"Test images: {images}; BM3D on {sum(len(v) for v in meta.get('bm3d_images', {}).values())} of them. "
        f"Hardware: {hardware_text(hw)}, torch {hw.get('torch_version', '?')}, commit {meta.get('git_revision', '?')}."
    )
