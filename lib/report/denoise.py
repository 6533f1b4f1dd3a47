"""The denoising section of the report: official DnCNN, PSNR, ablation, time and grid-size tables and figures."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.ticker import NullFormatter

from lib.report import ReportConfig
from lib.report.common import MISSING, hardware_text, is_finite, save_figure, to_float

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
    "plot_denoise_losses",
    "denoise_findings",
    "denoise_budget_caption",
    "denoise_grid_table",
    "grid_sigma",
    "crops_caption",
]

HEADLINE_SIGMA = ReportConfig.headline_sigma  # the default of every ``sigma`` argument below
SET_TITLES = {"bsd68": "BSD68", "set12": "Set12", "cbsd68": "CBSD68"}
# the official DnCNN rows as the evaluation stage names them ("official_<model key>") -> the name shown
OFFICIAL_LABELS = {
    "official_dncnn_s": "DnCNN-S (official weights)",
    "official_dncnn_b_gray": "DnCNN-B (official weights)",
    "official_cdncnn_b_color": "CDnCNN-B (official weights)",
}
# official blind models -> the model of ours with the same network (so the same inference time)
OFFICIAL_TWIN = {"official_dncnn_b_gray": "dncnn", "official_cdncnn_b_color": "dncnn"}
BM3D = "bm3d"  # model key of the BM3D / CBM3D rows
# The ablation chain over lib.models.asapnet_denoise.VARIANTS: variant -> the variant it changes
# (its parent). Main rows add one change to their parent; side rows replace a change of the
# chain, so their parent is the row before that change.
ABLATION_PARENT: dict[str, str | None] = {
    "plain": None,
    "residual": "plain",
    "context_patch": "residual",
    "context_conv": "residual",  # side row: a conv front-end instead of the 3x3 neighbourhood
    "small_tiles": "context_patch",
    "tiny_tiles": "context_patch",  # side row: 4x4 tiles instead of 8x8
    "noise_level": "small_tiles",
}


# ----------------------------------------------------------------------------- official DnCNN weights

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
        save_figure(grid.figure, out)
    return grid.figure


# ----------------------------------------------------------------------------- runs and their ablation chain

def run_names(eval_json: Mapping[str, Any]) -> list[str]:
    """The trained denoisers, in the order of the runs table of ``denoise_eval.json``."""
    return [r["run"] for r in eval_json.get("runs", [])]


def _runs_on(eval_json: Mapping[str, Any], set_name: str) -> list[Mapping[str, Any]]:
    """The runs table's rows of the runs evaluated on ``set_name`` (runs order)."""
    evaluated = {r["model"] for r in eval_json.get("summary", []) if r["set"] == set_name}
    return [r for r in eval_json.get("runs", []) if r["run"] in evaluated]


def _twin_run(runs: Sequence[Mapping[str, Any]], official: str) -> str | None:
    """Our run with the network of the official model ``official`` (None if none)."""
    arch = OFFICIAL_TWIN.get(official)
    return next((r["run"] for r in runs if arch is not None and r.get("model") == arch), None)


def ablation_parents(eval_json: Mapping[str, Any]) -> dict[str, str | None]:
    """Run -> the run its ablation row changes (:data:`ABLATION_PARENT`), or None.

    The parent is the run of the parent variant with the same model and training data; runs
    outside the chain (DnCNN) and runs whose parent variant was not trained have none.
    """
    runs = eval_json.get("runs", [])
    by_variant = {(r.get("model"), r.get("data"), r.get("variant")): r["run"] for r in runs}
    parents: dict[str, str | None] = {}
    for r in runs:
        parent = ABLATION_PARENT.get(r.get("variant"))  # None: the chain's root or not in the chain
        parents[r["run"]] = None if parent is None else by_variant.get((r.get("model"), r.get("data"), parent))
    return parents


def denoise_labels(eval_json: Mapping[str, Any]) -> dict[str, str]:
    """Row model key -> the name the report shows (runs' labels, official and BM3D rows)."""
    labels = {r["run"]: r["label"] for r in eval_json.get("runs", [])}
    labels.update(OFFICIAL_LABELS)
    labels[BM3D] = "BM3D / CBM3D"
    return labels


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
    (481x321), time at each timed size (ms, median), training steps and minutes, PSNR on
    ``set_name`` per sigma and ``Δ σ=<sigma>`` (gain over the parent at ``sigma``, dB; NaN
    without a parent).
    """
    summary = pd.DataFrame(eval_json["summary"])
    parents = ablation_parents(eval_json)
    rows = []
    for r in _runs_on(eval_json, set_name):
        row = {"run": r["run"], "change": r["change"], "parent": parents.get(r["run"]) or MISSING,
               "params (M)": r["params"] / 1e6, "GMAC 481x321": r["gmacs"]}
        for (h, w), g in timing[timing["model"] == r["run"]].groupby(["height", "width"], sort=False):
            row[f"ms {w}x{h}"] = float(g["median_ms"].iloc[0])
        t = train.get(r["run"], {})
        row["steps"] = t.get("steps")
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
    table = grid.pivot_table(index="model", columns="crop", values="gain_db", sort=False)
    table.columns = [("full image" if c == 0 else f"{c}x{c} crop") for c in table.columns]
    info = pd.DataFrame({
        m: {"train patch": train.get(m, {}).get("patch_size"),
            "tile": train.get(m, {}).get("model_config", {}).get("tile_size")}
        for m in table.index
    }).T
    return pd.concat([info, table.round(2)], axis=1)


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
    """PSNR on ``set_name`` vs inference time per image at ``size`` (log x), one panel per sigma.

    Our models: generator-only median time (``denoise_timing.csv``). An official blind DnCNN
    has our DnCNN's network (:data:`OFFICIAL_TWIN`), so it gets our DnCNN's time. BM3D: its
    mean wall time per image from the evaluation (481x321 images, CPU), its PSNR on its own
    subset (marked).

    Returns:
        ``(figure, the plotted points)`` with columns ``model, label, sigma, ms, psnr, n_images``.
    """
    summary = pd.DataFrame(eval_json["summary"])
    labels = denoise_labels(eval_json)
    runs = _runs_on(eval_json, set_name)
    h, w = size
    t = timing[(timing["height"] == h) & (timing["width"] == w)].set_index("model")["median_ms"]
    points = []
    for _, r in summary[summary["set"] == set_name].iterrows():
        model = r["model"]
        ms = t.get(_twin_run(runs, model) if model in OFFICIAL_TWIN else model)
        if ms is None or pd.isna(ms):
            continue
        points.append({"model": model, "label": labels.get(model, model), "sigma": r["sigma"], "ms": float(ms),
                       "psnr": r["psnr"], "n_images": r["n_images"]})
    bm3d = per_image[(per_image["model"] == BM3D) & (per_image["set"] == set_name)]
    for sigma, g in bm3d.groupby("sigma"):
        points.append({"model": BM3D, "label": f"BM3D ({g['name'].nunique()} images)", "sigma": sigma,
                       "ms": 1e3 * g["seconds"].mean(), "psnr": g["psnr"].mean(), "n_images": g["name"].nunique()})
    data = pd.DataFrame(points)
    sigmas = sorted(data["sigma"].unique()) if len(data) else []
    fig, axes = plt.subplots(1, max(1, len(sigmas)), figsize=(4.6 * max(1, len(sigmas)), 3.8), squeeze=False)
    palette = dict(zip(data["label"].unique() if len(data) else [], sns.color_palette("tab10", 10) * 3))
    for ax, sigma in zip(axes[0], sigmas):
        d = data[data["sigma"] == sigma]
        for _, p in d.iterrows():
            marker = "s" if p["model"] in OFFICIAL_LABELS else ("^" if p["model"] == BM3D else "o")
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
        save_figure(fig, out)
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
        save_figure(fig, out)
    return fig


# ----------------------------------------------------------------------------- text

def denoise_findings(eval_json: Mapping[str, Any], timing: pd.DataFrame, set_name: str = "bsd68",
                     size: tuple[int, int] = (321, 481), train: Mapping[str, Mapping[str, Any]] | None = None,
                     sigma: float = HEADLINE_SIGMA) -> str:
    """The study's answer in a few sentences, every number read from the metrics files.

    States the plain transfer's PSNR (and the residual variant's) against the noisy input at
    ``sigma``, the best ASAPNet variant (``meta.best_variant``), its distance to our DnCNN and
    to the official blind DnCNN at each sigma, the time ratio, and the runs that only work at
    their training grid size (``grid_check``). Runs are found in the runs table by variant
    (:data:`ABLATION_PARENT`) and model, not by name.
    """
    summary = pd.DataFrame(eval_json["summary"])
    s = summary[summary["set"] == set_name]
    best = eval_json["meta"].get("best_variant")
    runs = _runs_on(eval_json, set_name)
    variant_run = {r.get("variant"): r["run"] for r in runs if r.get("variant") in ABLATION_PARENT}
    official = next((m for m in OFFICIAL_TWIN if m in set(s["model"])), None)  # the official blind DnCNN
    ours = next((r["run"] for r in runs if r.get("model") in OFFICIAL_TWIN.values()), None)  # our DnCNN

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
    parts = [f"On the first {n} {SET_TITLES.get(set_name, set_name)} images:"]
    plain, residual = psnr(variant_run.get("plain"), sigma), psnr(variant_run.get("residual"), sigma)
    noise_in = noisy(sigma)
    if plain is not None and residual is not None and noise_in is not None:
        verdict = (
            "a per-pixel network that sees one noisy pixel does not average the noise away"
            if max(plain, residual) < noise_in + 1.0
            else "more than 1 dB above the noisy input even without context"
        )
        parts.append(
            f"the plain transfer of ASAPNet reaches {plain:.2f} dB at σ={sigma:g} against {noise_in:.2f} dB for the "
            f"noisy input itself, and with a residual output (predicting the noise) {residual:.2f} dB: {verdict}."
        )
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
        if best in t and ours in t:
            parts.append(
                f"It runs a {w}x{h} image in {t[best]:.0f} ms against {t[ours]:.0f} ms for DnCNN "
                f"({t[ours] / t[best]:.1f}x faster, same CPU, batch 1, fp32)."
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
                + f" (grid-size check, σ={grid_sigma(eval_json, sigma):g}). Their low-res stream learned the "
                "statistics of a small grid of tiles."
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
        f"Hardware: {hardware_text(hw)}, torch {hw.get('torch_version', '?')}, commit {meta.get('git_revision', '?')}."
    )
