"""The denoising section of the report: official DnCNN, PSNR, ablation, colour and cost tables, the
loss figure and the budget caption. The PSNR-vs-time figure and the Pareto fronts are in
:mod:`lib.report.denoise_front`, the tile-grid check in :mod:`lib.report.denoise_grid`, the findings
text in :mod:`lib.report.denoise_findings`; their public names are re-exported here, so the report
notebook reads the whole section from this module."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from lib.report import ReportConfig
from lib.report.common import MISSING, format_frame, hardware_text, is_finite, save_figure, to_float
from lib.report.denoise_findings import LOSS_STILL_FALLING, LOSS_TREND_FRACTION, denoise_findings, loss_trend, loss_trend_text
from lib.report.denoise_front import front_findings, plot_psnr_vs_time
from lib.report.denoise_grid import denoise_grid_table, grid_caption, grid_findings, grid_sigma, sides_text, train_sides
from lib.report.denoise_runs import (
    ASAPNET,
    BM3D,
    OFFICIAL_LABELS,
    OFFICIAL_TWIN,
    SET_TITLES,
    ablation_deltas,
    ablation_parents,
    denoise_labels,
    front_verdict,
    ordered_runs,
    pareto_front,
    psnr_intervals,
    reference_run,
    run_names,
    runs_on,
    twin_run,
)
from lib.report.machines import spread, spread_note, time_cell

__all__ = [
    "dncnn_official_table",
    "plot_dncnn_per_image",
    "run_names",
    "ablation_parents",
    "denoise_labels",
    "denoise_psnr_table",
    "denoise_ablation_table",
    "denoise_color_table",
    "plot_psnr_vs_time",
    "reference_run",
    "pareto_front",
    "front_verdict",
    "front_findings",
    "plot_denoise_losses",
    "denoise_findings",
    "loss_trend",
    "loss_trend_text",
    "LOSS_TREND_FRACTION",
    "LOSS_STILL_FALLING",
    "denoise_budget_caption",
    "bm3d_coverage",
    "denoise_grid_table",
    "grid_sigma",
    "grid_caption",
    "grid_findings",
    "ablation_cost_display",
    "crops_caption",
]

HEADLINE_SIGMA = ReportConfig.headline_sigma  # the default of every ``sigma`` argument below


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
    """The ablation: one row per run evaluated on ``set_name`` with its change, cost and PSNR, grouped
    (:func:`lib.report.denoise_runs.ordered_runs`: the ASAPNet chain, the filter rows, the hybrid rows, the
    plain CNNs, the longer-training runs).

    Columns: group, change, parent (the run this row changes, :func:`ablation_parents`), params, GMAC
    (481x321), time at each timed size (ms, median), training steps, pixel-samples (millions) and
    minutes (the training summaries in ``train``, else the planned values of the runs table), PSNR on
    ``set_name`` per sigma, ``Δ σ=<sigma>`` (dB over the parent at ``sigma``: the paired mean difference of
    ``ablation_delta``, else the difference of the two means; NaN without a parent) and ``95% CI σ=<sigma>``
    (the bootstrap interval of that difference as text, ``[+0.12, +0.30]``; :data:`MISSING` without a record).
    """
    summary = pd.DataFrame(eval_json["summary"])
    parents = ablation_parents(eval_json)
    deltas = ablation_deltas(eval_json, set_name, sigma)
    rows = []
    for group, r in ordered_runs(eval_json, set_name):
        row = {"run": r["run"], "group": group, "change": r["change"], "parent": parents.get(r["run"]) or MISSING,
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
        levels = {round(100 * to_float(d.get("level", 0.95))) for d in deltas.values()} or {95}
        ci_column = f"{levels.pop() if len(levels) == 1 else 95}% CI σ={sigma:g}"
        diff, ci = [], []
        for run, p in zip(table.index, table["parent"]):
            d = deltas.get(run)
            if d is not None and d["model_b"] == p:
                diff.append(to_float(d["mean_diff"]))
                ci.append(f"[{to_float(d['ci_low']):+.2f}, {to_float(d['ci_high']):+.2f}]")
            else:
                diff.append(psnr[run] - psnr[p] if p in psnr.index else float("nan"))
                ci.append(MISSING)
        table[f"Δ σ={sigma:g}"] = diff
        table[ci_column] = ci
    return table.round(3)


def denoise_color_table(eval_json: Mapping[str, Any], timing: pd.DataFrame, set_name: str = "cbsd68",
                        size: tuple[int, int] = (321, 481)) -> pd.DataFrame:
    """The colour models on ``set_name`` (CBSD68): the official CDnCNN-B, CBM3D, our CDnCNN-20 and the
    ASAPNet-derived colour runs, one row each, with mean PSNR per sigma (``summary``; CBM3D where it ran
    on the images of only some sigmas: its ``bm3d_subset`` value and image count in brackets), the 95%
    bootstrap interval at each sigma (``psnr_interval``) and the time per image at ``size`` (ms; CBM3D:
    its wall time in the evaluation). Formatted strings; empty without colour rows."""
    rows = [r for r in eval_json.get("summary", []) if r["set"] == set_name]
    if not rows:
        return pd.DataFrame()
    full = {(r["model"], to_float(r["sigma"])) for r in rows}
    rows += [r for r in eval_json.get("bm3d_subset", [])
             if r["set"] == set_name and r["model"] == BM3D and (BM3D, to_float(r["sigma"])) not in full]
    labels, intervals = denoise_labels(eval_json), psnr_intervals(eval_json)
    labels[BM3D] = "CBM3D"
    runs = runs_on(eval_json, set_name)
    h, w = size
    t = timing[(timing["height"] == h) & (timing["width"] == w)].set_index("model")["median_ms"]
    order = {m: i for i, m in enumerate([*OFFICIAL_LABELS, BM3D, reference_run(runs),
                                         *(r["run"] for r in runs if r.get("model") != ASAPNET),
                                         *(r["run"] for r in runs if r.get("model") == ASAPNET)])}
    n = max(int(r["n_images"]) for r in rows)
    cells: dict[str, dict[str, str]] = {}
    for r in sorted(rows, key=lambda r: (order.get(r["model"], len(order)), to_float(r["sigma"]))):
        model, sigma = r["model"], to_float(r["sigma"])
        row = cells.setdefault(labels.get(model, model), {})
        value = f"{to_float(r['psnr']):.2f}"
        if int(r["n_images"]) != n:
            value += f" ({r['n_images']} images)"
        ci = intervals.get((set_name, sigma, model))
        row[f"PSNR σ={sigma:g}"] = value
        row[f"95% CI σ={sigma:g}"] = f"[{to_float(ci['ci_low']):.2f}, {to_float(ci['ci_high']):.2f}]" if ci else MISSING
        if model == BM3D:
            ms = 1e3 * to_float(r.get("seconds_per_image"))
        else:
            ms = to_float(t.get(twin_run(runs, model) if model in OFFICIAL_TWIN else model))
        row[f"ms {w}x{h}"] = f"{ms:,.0f}" if is_finite(ms) else MISSING
    table = pd.DataFrame.from_dict(cells, orient="index")
    sigmas = sorted({to_float(r["sigma"]) for r in rows})
    columns = [c for s in sigmas for c in (f"PSNR σ={s:g}", f"95% CI σ={s:g}")] + [f"ms {w}x{h}"]
    table = table[[c for c in columns if c in table]].fillna(MISSING)
    table.columns.name = f"{SET_TITLES.get(set_name, set_name)} ({n} images)"
    return table


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


def crops_caption(sigmas: Sequence[float]) -> str:
    """Caption of the crop figure of the evaluation stage, drawn at ``sigmas`` (``report.crops_sigma``)."""
    names = [f"{s:g}" for s in sigmas]
    listed = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    return f"Crops at σ = {listed} (PSNR of the whole image under each crop):"


# ----------------------------------------------------------------------------- figures

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

def bm3d_coverage(eval_json: Mapping[str, Any]) -> str:
    """Which images BM3D / CBM3D ran on, per set: every image at the sigmas of ``meta.bm3d_full_sigmas``,
    the first N images (``bm3d_subset``'s image count) at the others; for files without
    ``bm3d_full_sigmas``, the count of ``meta.bm3d_images``."""
    meta = eval_json.get("meta", {})
    full = {k: [to_float(x) for x in v] for k, v in (meta.get("bm3d_full_sigmas") or {}).items()}
    counts: dict[str, dict[float, int]] = {}
    for r in eval_json.get("bm3d_subset", []):
        if r["model"] == BM3D:
            counts.setdefault(r["set"], {})[to_float(r["sigma"])] = int(r["n_images"])
    parts = []
    for name, images in meta.get("bm3d_images", {}).items():
        title = ("CBM3D on " if name.startswith("c") else "BM3D on ") + SET_TITLES.get(name, name)
        sigmas = full.get(name, [])
        rest = sorted({n for sg, n in counts.get(name, {}).items() if sg not in sigmas})
        first = "/".join(str(n) for n in rest) or str(len(images))
        if sigmas:
            listed = ", ".join(f"{x:g}" for x in sigmas)
            parts.append(f"{title}: every image at σ={listed}" + (f", the first {first} at the other sigmas" if rest else ""))
        else:
            parts.append(f"{title}: the first {first} images")
    return "; ".join(parts)


def learning_rate_text(train: Mapping[str, Mapping[str, Any]]) -> str:
    """``"; Adam lr 0.001 (dncnn_color: 0.0001)"``: the learning rate most runs share (from each run's
    ``train_config``), and every run trained at another one; empty when no run records its rate."""
    lrs = {name: float(t["train_config"]["lr"]) for name, t in train.items() if "lr" in (t.get("train_config") or {})}
    if not lrs:
        return ""
    counts = pd.Series(list(lrs.values())).value_counts(sort=False)
    shared = float(counts.idxmax())
    others = [f"{name}: {lr:g}" for name, lr in lrs.items() if lr != shared]
    return f"; Adam lr {shared:g}" + (f" ({', '.join(others)})" if others else "")


def denoise_budget_caption(eval_json: Mapping[str, Any], train: Mapping[str, Mapping[str, Any]]) -> str:
    """The scale of the study's numbers: training budget per run, test images, BM3D's images, hardware."""
    meta = eval_json["meta"]
    runs = []
    for name, t in train.items():
        sides = sides_text(train_sides(t))
        pixels = t.get("pixel_samples")
        runs.append(f"{name} {t.get('steps')} steps x {t.get('batch_size')} patches of {sides} px"
                    + (f" = {pixels / 1e6:.0f} M pixel-samples" if pixels is not None else "")
                    + f" ({(t.get('train_seconds') or 0) / 60:.1f} min{', ' + t['precision'] if t.get('precision') else ''})")
    longer = [r for r in meta.get("longer_training") or [] if r in train]
    same = ("every run the same number of training pixel-samples"
            + (f" except the longer-training runs ({', '.join(longer)})" if longer else ""))
    hw = meta.get("hardware", {})
    images = ", ".join(f"{SET_TITLES.get(s, s)} {len(n)}" for s, n in meta.get("images", {}).items())
    bm3d = bm3d_coverage(eval_json)
    return (
        f"Scale: {meta.get('scale')}. Training (blind, sigma in {next(iter(train.values())).get('sigma_range') if train else '?'}, "
        f"Train400 gray / CBSD432 color; {same}{learning_rate_text(train)}): " + "; ".join(runs)
        + ". For comparison, DnCNN's own recipe is 50 epochs of 1,600 batches of 128 patches of 40 px (16.4 G "
        "pixel-samples), so our DnCNN rows show how far that budget is from the official weights. "
        f"Test images: {images}{'; ' + bm3d if bm3d else ''}. "
        f"Hardware: {hardware_text(hw)}, torch {hw.get('torch_version', '?')}, commit {meta.get('git_revision', '?')}."
    )
