"""The denoising study's runs as the report sees them: names and labels, the reference CNN, the
ablation chain, and the PSNR-vs-time points with the Pareto front of the plain CNNs."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from lib.report.common import to_float

__all__ = [
    "SET_TITLES",
    "OFFICIAL_LABELS",
    "OFFICIAL_TWIN",
    "BM3D",
    "CNN",
    "ABLATION_PARENT",
    "run_names",
    "runs_on",
    "reference_run",
    "twin_run",
    "ablation_parents",
    "denoise_labels",
    "pareto_front",
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
    "grid_robust": "context_conv",  # + reflect padding and a per-cell norm in the low-res stream
    "kernel": "residual",  # + a predicted per-tile filter on the noisy neighbourhood
    "kernel_only": "kernel",  # side row: the filter alone
    "kernel_bilinear": "kernel",  # + bilinear slicing of the filter weights
    "kernel_bilateral": "kernel_bilinear",  # + intensity bins (bilateral grid)
    "bilateral_only": "kernel_bilateral",  # side row: the bilateral-grid filter alone
    "hybrid": "context_conv",  # + the plain CNN's first layers as the front
    "hybrid_kernel": "kernel_bilateral",  # + the plain CNN's first layers as the MLP's front-end
}


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

    ASAPNet runs: the run of the nearest ancestor variant in :data:`ABLATION_PARENT` that was
    trained with the same model and training data (a skipped row is walked over). DnCNN-style
    runs: the reference CNN of their training data (:func:`reference_run`; the reference itself
    has none). Runs whose ancestors were not trained on their data have none.
    """
    runs = eval_json.get("runs", [])
    by_variant = {(r.get("model"), r.get("data"), r.get("variant")): r["run"] for r in runs}
    parents: dict[str, str | None] = {}
    for r in runs:
        if r.get("model") == CNN:
            ref = reference_run(runs, r.get("data"))
            parents[r["run"]] = ref if ref != r["run"] else None
            continue
        parent = ABLATION_PARENT.get(r.get("variant"))  # None: the chain's root or not in the chain
        while parent is not None and (r.get("model"), r.get("data"), parent) not in by_variant:
            parent = ABLATION_PARENT.get(parent)
        parents[r["run"]] = None if parent is None else by_variant[(r.get("model"), r.get("data"), parent)]
    return parents


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


def psnr_time_points(eval_json: Mapping[str, Any], timing: pd.DataFrame, per_image: pd.DataFrame | None,
                      set_name: str, size: tuple[int, int]) -> pd.DataFrame:
    """PSNR and time per model and sigma (see :func:`plot_psnr_vs_time`); ``cnn`` marks our DnCNN-style runs."""
    summary = pd.DataFrame(eval_json["summary"])
    labels = denoise_labels(eval_json)
    runs = runs_on(eval_json, set_name)
    cnns = {r["run"] for r in runs if r.get("model") == CNN}
    h, w = size
    t = timing[(timing["height"] == h) & (timing["width"] == w)].set_index("model")["median_ms"]
    points = []
    for _, r in summary[summary["set"] == set_name].iterrows():
        model = r["model"]
        ms = t.get(twin_run(runs, model) if model in OFFICIAL_TWIN else model)
        if ms is None or pd.isna(ms):
            continue
        points.append({"model": model, "label": labels.get(model, model), "sigma": r["sigma"], "ms": float(ms),
                       "psnr": r["psnr"], "n_images": r["n_images"], "cnn": model in cnns})
    if per_image is not None and len(per_image):
        bm3d = per_image[(per_image["model"] == BM3D) & (per_image["set"] == set_name)]
        for sigma, g in bm3d.groupby("sigma"):
            points.append({"model": BM3D, "label": f"BM3D ({g['name'].nunique()} images)", "sigma": sigma,
                           "ms": 1e3 * g["seconds"].mean(), "psnr": g["psnr"].mean(), "n_images": g["name"].nunique(),
                           "cnn": False})
    frame = pd.DataFrame(points, columns=["model", "label", "sigma", "ms", "psnr", "n_images", "cnn"])
    return frame.astype({"cnn": bool, "ms": float, "psnr": float})  # typed even when empty (boolean masks)
