"""The denoising study's runs as the report sees them: names, labels and groups, the reference CNN,
the run each row changes with its paired delta, the bootstrap intervals of the mean PSNRs, and the
PSNR-vs-time points with their Pareto fronts."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from lib.models.asapnet_denoise import VARIANT_BASE, VARIANTS
from lib.report.common import to_float

__all__ = [
    "SET_TITLES",
    "OFFICIAL_LABELS",
    "OFFICIAL_TWIN",
    "BM3D",
    "CNN",
    "ASAPNET",
    "GROUPS",
    "FAMILIES",
    "run_names",
    "runs_on",
    "reference_run",
    "twin_run",
    "ablation_parents",
    "longer_training",
    "run_group",
    "ordered_runs",
    "ablation_deltas",
    "psnr_intervals",
    "denoise_labels",
    "pareto_front",
    "on_front",
    "front_verdict",
    "psnr_time_points",
]

SET_TITLES = {"bsd68": "BSD68", "set12": "Set12", "cbsd68": "CBSD68"}
# the official DnCNN rows as the evaluation stage names them ("official_<model key>") -> the name shown
OFFICIAL_LABELS = {
    "official_dncnn_s": "DnCNN-S (official weights)",
    "official_dncnn_b_gray": "DnCNN-B (official weights)",
    "official_cdncnn_b_color": "CDnCNN-B (official weights)",
}
# official blind models -> the model of ours with the same network (our largest DnCNN-style run of
# that image kind: DnCNN-20, 64 channels), so the same inference time
OFFICIAL_TWIN = {"official_dncnn_b_gray": "dncnn", "official_cdncnn_b_color": "dncnn"}
CNN = "dncnn"  # model key of the DnCNN-style runs (DnCNN-20 and the plain CNNs)
ASAPNET = "asapnet_denoise"  # model key of the ASAPNet-derived runs
BM3D = "bm3d"  # model key of the BM3D / CBM3D rows
# the ablation table's row groups, in display order (:func:`run_group`)
GROUPS = ("ASAPNet rows", "filter rows", "hybrid rows", "plain CNNs", "longer training")
# the PSNR-vs-time points' families (:func:`psnr_time_points`), in legend order
FAMILIES = ("ASAPNet-derived (ours)", "plain CNN (ours)", "DnCNN-20 (ours)", "official DnCNN", "BM3D")


def run_names(eval_json: Mapping[str, Any]) -> list[str]:
    """The trained denoisers, in the order of the runs table of ``denoise_eval.json``."""
    return [r["run"] for r in eval_json.get("runs", [])]


def runs_on(eval_json: Mapping[str, Any], set_name: str) -> list[Mapping[str, Any]]:
    """The runs table's rows of the runs evaluated on ``set_name`` (runs order)."""
    evaluated = {r["model"] for r in eval_json.get("summary", []) if r["set"] == set_name}
    return [r for r in eval_json.get("runs", []) if r["run"] in evaluated]


def reference_run(runs: Sequence[Mapping[str, Any]], data: str | None = None) -> str | None:
    """Our reference CNN among ``runs`` (rows of the runs table): the DnCNN-style run with the most
    MACs (DnCNN-20), of training set ``data`` when given; None without one."""
    cnns = [r for r in runs if r.get("model") == CNN and (data is None or r.get("data") == data)]
    return max(cnns, key=lambda r: to_float(r.get("gmacs")))["run"] if cnns else None


def twin_run(runs: Sequence[Mapping[str, Any]], official: str) -> str | None:
    """Our run with the network of the official model ``official`` (None if none)."""
    return reference_run(runs) if OFFICIAL_TWIN.get(official) == CNN else None


def ablation_parents(eval_json: Mapping[str, Any]) -> dict[str, str | None]:
    """Run -> the run its ablation row changes, or None.

    The runs table's ``parent`` (:func:`lib.denoise.study.run_parents`) where the file has it. Files
    written before it: ASAPNet runs get the run of the nearest ancestor variant in
    :data:`lib.models.asapnet_denoise.VARIANT_BASE` trained with the same model and training data
    (a skipped row is walked over); DnCNN-style runs the reference CNN of their training data
    (:func:`reference_run`; the reference itself has none). Runs whose ancestors were not trained
    on their data have none.
    """
    runs = eval_json.get("runs", [])
    names = {r["run"] for r in runs}
    if runs and all("parent" in r for r in runs):
        return {r["run"]: r["parent"] if r["parent"] in names and r["parent"] != r["run"] else None for r in runs}
    by_variant = {(r.get("model"), r.get("data"), r.get("variant")): r["run"] for r in runs}
    parents: dict[str, str | None] = {}
    for r in runs:
        if r.get("model") == CNN:
            ref = reference_run(runs, r.get("data"))
            parents[r["run"]] = ref if ref != r["run"] else None
            continue
        parent = VARIANT_BASE.get(r.get("variant"))  # None: the chain's root or not in the chain
        while parent is not None and (r.get("model"), r.get("data"), parent) not in by_variant:
            parent = VARIANT_BASE.get(parent)
        parents[r["run"]] = None if parent is None else by_variant[(r.get("model"), r.get("data"), parent)]
    return parents


def longer_training(eval_json: Mapping[str, Any]) -> list[str]:
    """The longer-training runs (a run repeated with a larger pixel budget; its parent is the shorter
    run): ``meta.longer_training``, else the runs whose change names the training budget of their parent."""
    names = run_names(eval_json)
    listed = eval_json.get("meta", {}).get("longer_training")
    if listed is not None:
        return [r for r in listed if r in names]
    parents = ablation_parents(eval_json)
    return [r["run"] for r in eval_json.get("runs", []) if parents.get(r["run"]) and "training budget" in str(r.get("change"))]


def run_group(row: Mapping[str, Any], longer: Sequence[str] = ()) -> str:
    """The ablation table's group of a runs-table row (:data:`GROUPS`): a longer-training run; a plain
    CNN (DnCNN-style); an ASAPNet row with the plain CNN's first layers as its front (hybrid), with a
    predicted filter (filter), or of the main ASAPNet chain."""
    if row["run"] in longer:
        return GROUPS[4]
    if row.get("model") == CNN:
        return GROUPS[3]
    overrides = VARIANTS.get(row.get("variant"), {})
    if overrides.get("context_layers"):  # the plain CNN's first layers as the front
        return GROUPS[2]
    return GROUPS[1] if overrides.get("kernel_size") else GROUPS[0]


def ordered_runs(eval_json: Mapping[str, Any], set_name: str) -> list[tuple[str, Mapping[str, Any]]]:
    """``(group, runs-table row)`` of the runs evaluated on ``set_name`` in display order: by
    :data:`GROUPS`, ASAPNet rows in the order of the variants' table, plain CNNs from the most MACs
    down, longer-training rows in runs order."""
    longer = longer_training(eval_json)
    variants = list(VARIANTS)
    out = []
    for i, r in enumerate(runs_on(eval_json, set_name)):
        group = run_group(r, longer)
        if group == GROUPS[3]:
            key: tuple = (-to_float(r.get("gmacs")), i)
        elif group == GROUPS[4]:
            key = (i,)
        else:
            key = (variants.index(r["variant"]) if r.get("variant") in variants else len(variants), i)
        out.append(((GROUPS.index(group), *key), group, r))
    return [(g, r) for _, g, r in sorted(out, key=lambda t: t[0])]


def ablation_deltas(eval_json: Mapping[str, Any], set_name: str, sigma: float) -> dict[str, Mapping[str, Any]]:
    """Run -> its ``ablation_delta`` record on ``set_name`` at ``sigma``: the paired bootstrap of the run
    (``model_a``) against the run it changes (``model_b``); empty for files written before it."""
    return {r["model_a"]: r for r in eval_json.get("ablation_delta", [])
            if r["set"] == set_name and to_float(r["sigma"]) == float(sigma)}


def psnr_intervals(eval_json: Mapping[str, Any]) -> dict[tuple[str, float, str], Mapping[str, Any]]:
    """``(set, sigma, model)`` -> its ``psnr_interval`` record (bootstrap interval of the mean PSNR)."""
    return {(r["set"], to_float(r["sigma"]), r["model"]): r for r in eval_json.get("psnr_interval", [])}


def denoise_labels(eval_json: Mapping[str, Any]) -> dict[str, str]:
    """Row model key -> the name the report shows (runs' labels, official and BM3D rows)."""
    labels = {r["run"]: r["label"] for r in eval_json.get("runs", [])}
    labels.update(OFFICIAL_LABELS)
    labels[BM3D] = "BM3D / CBM3D"
    return labels


def pareto_front(points: pd.DataFrame) -> pd.DataFrame:
    """The non-dominated points of ``points`` (columns ``ms``, ``psnr``): those no other point
    beats on both time and PSNR, sorted by time (each is better than every faster one)."""
    front, best = [], float("-inf")
    for _, p in points.sort_values(["ms", "psnr"], ascending=[True, False]).iterrows():
        if p["psnr"] > best:
            front.append(p)
            best = p["psnr"]
    return pd.DataFrame(front, columns=points.columns)


def on_front(points: pd.DataFrame) -> pd.Series:
    """Whether each point of ``points`` (columns ``ms``, ``psnr``) is on their Pareto front (:func:`pareto_front`)."""
    return pd.Series(points.index.isin(pareto_front(points).index), index=points.index, dtype=bool)


def front_verdict(front: pd.DataFrame, ms: float, psnr: float) -> dict:
    """Where a point (``ms``, ``psnr``) lies against a front of CNN points (:func:`pareto_front`).

    Returns:
        ``dict(dominated_by, margin_db)``: ``dominated_by`` the fastest front point that is at
        least as fast and at least as good (None if none); ``margin_db`` the point's PSNR minus
        the front's at the same time, linear in log time between front points (None outside
        the front's time range).
    """
    dominating = front[(front["ms"] <= ms) & (front["psnr"] >= psnr)]
    by = None if dominating.empty else dominating.iloc[0]
    margin = None
    if len(front) and front["ms"].min() <= ms <= front["ms"].max():
        x, y = np.log10(front["ms"].to_numpy(dtype=float)), front["psnr"].to_numpy(dtype=float)
        margin = float(psnr - np.interp(np.log10(ms), x, y))
    return {"dominated_by": None if by is None else by.to_dict(), "margin_db": margin}


def _family(model: str, cnns: set[str], reference: str | None) -> str:
    """The :data:`FAMILIES` entry of a point's model."""
    if model in OFFICIAL_LABELS:
        return FAMILIES[3]
    if model == BM3D:
        return FAMILIES[4]
    if model == reference:
        return FAMILIES[2]
    return FAMILIES[1] if model in cnns else FAMILIES[0]


def psnr_time_points(eval_json: Mapping[str, Any], timing: pd.DataFrame, set_name: str,
                     size: tuple[int, int]) -> pd.DataFrame:
    """PSNR and time per model and sigma on ``set_name`` (the points of
    :func:`lib.report.denoise_front.plot_psnr_vs_time`).

    Our models: generator-only median time at ``size`` (``denoise_timing.csv``); an official blind
    DnCNN gets the time of our run with its network (:data:`OFFICIAL_TWIN`). BM3D: its mean wall time
    per image in the evaluation (``seconds_per_image``); where the summary has no BM3D row (BM3D ran
    on the first images only) its mean PSNR on those images (``bm3d_subset``; ``n_images`` says how many).

    Returns:
        Columns ``model, label, sigma, ms, psnr, n_images, cnn`` (our DnCNN-style runs), ``family``
        (:data:`FAMILIES`), ``longer`` (a longer-training run), ``ci_low, ci_high`` (the bootstrap
        interval of the mean PSNR, ``psnr_interval``; NaN without one) and ``on_front`` (on the
        Pareto front of every point at that sigma).
    """
    labels = denoise_labels(eval_json)
    runs = runs_on(eval_json, set_name)
    cnns = {r["run"] for r in runs if r.get("model") == CNN}
    reference = reference_run(runs)
    longer = set(longer_training(eval_json))
    intervals = psnr_intervals(eval_json)
    h, w = size
    t = timing[(timing["height"] == h) & (timing["width"] == w)].set_index("model")["median_ms"]
    rows = [r for r in eval_json.get("summary", []) if r["set"] == set_name]
    full = {to_float(r["sigma"]) for r in rows if r["model"] == BM3D}
    rows += [r for r in eval_json.get("bm3d_subset", [])  # BM3D on the first images only at these sigmas
             if r["set"] == set_name and r["model"] == BM3D and to_float(r["sigma"]) not in full]
    points = []
    for r in rows:
        model, sigma = r["model"], to_float(r["sigma"])
        if model == BM3D:
            ms = 1e3 * to_float(r.get("seconds_per_image"))
        else:
            ms = to_float(t.get(twin_run(runs, model) if model in OFFICIAL_TWIN else model))
        if not np.isfinite(ms):
            continue
        label = labels.get(model, model)
        if model == BM3D and sigma not in full:
            label = f"BM3D ({r['n_images']} images)"
        ci = intervals.get((set_name, sigma, model), {})
        points.append({"model": model, "label": label, "sigma": sigma, "ms": ms, "psnr": to_float(r["psnr"]),
                       "n_images": r["n_images"], "cnn": model in cnns, "family": _family(model, cnns, reference),
                       "longer": model in longer, "ci_low": to_float(ci.get("ci_low")),
                       "ci_high": to_float(ci.get("ci_high"))})
    columns = ["model", "label", "sigma", "ms", "psnr", "n_images", "cnn", "family", "longer", "ci_low", "ci_high"]
    frame = pd.DataFrame(points, columns=columns).astype({"cnn": bool, "longer": bool, "ms": float, "psnr": float})
    frame["on_front"] = False  # typed even when empty (boolean masks)
    for _, g in frame.groupby("sigma"):
        frame.loc[g.index, "on_front"] = on_front(g)
    return frame.astype({"on_front": bool})
