"""The denoising section's tile-grid-size check: does an ASAPNet run work at other grid sizes than
the one it was trained on (``grid_check`` of ``denoise_eval.json``)? Its table, caption and findings."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd

from lib.report import ReportConfig
from lib.report.common import is_finite, to_float
from lib.report.denoise_runs import SET_TITLES

__all__ = [
    "GRID_ROBUST_DB",
    "GRID_LOST_DB",
    "denoise_grid_table",
    "train_sides",
    "sides_text",
    "grid_caption",
    "grid_sigma",
    "grid_findings",
]

HEADLINE_SIGMA = ReportConfig.headline_sigma  # the default of every ``sigma`` argument below
GRID_ROBUST_DB = 0.3  # a run is grid-size robust when its full-image gain is within this of its training-size gain
GRID_LOST_DB = 3.0  # a run "only works at its training grid" when it loses more than this on full images


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
        m: {"train patch": sides_text(train_sides(train.get(m, {}))),
            "tile": train.get(m, {}).get("model_config", {}).get("tile_size")}
        for m in table.index
    }).T
    return pd.concat([info, table.round(2)], axis=1)


def train_sides(summary: Mapping[str, Any]) -> list[int]:
    """The training patch sides of a run's summary (``patch_sizes``, else ``patch_size``)."""
    sides = summary.get("patch_sizes") or ([summary["patch_size"]] if summary.get("patch_size") else [])
    return [int(p) for p in sides]


def sides_text(sides: Sequence[int]) -> int | str | None:
    """One side as itself, several as ``"64/96/128"``, none as None."""
    if not sides:
        return None
    return sides[0] if len(sides) == 1 else "/".join(str(p) for p in sides)


def _images_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """How many images of which test set the grid-check rows average: "68 BSD68 images" or, with colour
    runs (rows with ``set``), "68 BSD68 images (grey runs), 68 CBSD68 images (colour runs)"."""
    counts: dict[str, set[int]] = {}
    for r in rows:
        if is_finite(r.get("n_images")):
            counts.setdefault(str(r.get("set", "bsd68")), set()).add(int(r["n_images"]))
    kinds = {"bsd68": "grey runs", "cbsd68": "colour runs"}
    parts = [f"{'/'.join(str(c) for c in sorted(ns))} {SET_TITLES.get(s, s)} image{'s' if ns != {1} else ''}"
             + (f" ({kinds.get(s, s)})" if len(counts) > 1 else "") for s, ns in counts.items()]
    return ", ".join(parts) or "? BSD68 images"


def grid_caption(eval_json: Mapping[str, Any], sigma: float = HEADLINE_SIGMA) -> str:
    """The grid-size table's caption: its noise level and how many images (of which test set) each of
    its numbers averages."""
    counts = sorted({int(r["n_images"]) for r in eval_json.get("grid_check", []) if is_finite(r.get("n_images"))})
    n = "/".join(str(c) for c in counts) or "?"
    if any("crop_minus_full_db" in r for r in eval_json.get("grid_check", [])):
        return (f"*σ = {grid_sigma(eval_json, sigma):g}; {_images_text(eval_json['grid_check'])}; each cell: the PSNR "
                f"(dB) of the image denoised as a grid of crop-side windows, each window alone, minus that of the whole "
                f"image denoised once, on the same pixels (so crop content cannot confound it). Near 0 (slightly "
                f"negative from window borders): the run works at any grid size; large and positive: it only works at "
                f"its training grid.*")
    return (f"*σ = {grid_sigma(eval_json, sigma):g}; each cell: the mean gain over the first {n} BSD68 image"
            f"{'s' if n != '1' else ''} only (the check is costly; crops and full images are different pixels), so it "
            f"shows large effects (a run that fails on full images), not differences of a few tenths of a dB.*")


def grid_sigma(eval_json: Mapping[str, Any], default: float = HEADLINE_SIGMA) -> float:
    """The noise level of the grid-size check: its rows' ``sigma`` where written, else ``default``."""
    sigmas = {to_float(r["sigma"]) for r in eval_json.get("grid_check", []) if is_finite(r.get("sigma"))}
    return sigmas.pop() if len(sigmas) == 1 else default


def grid_findings(eval_json: Mapping[str, Any], train: Mapping[str, Mapping[str, Any]], sigma: float) -> list[str]:
    """Sentences on the grid-size check: runs that only work at their training grid, runs that
    are grid-size robust (full-image gain within :data:`GRID_ROBUST_DB` of the gain at their
    largest training side among the checked crops)."""
    grid = pd.DataFrame(eval_json.get("grid_check", []))
    if grid.empty:
        return []
    lost, robust = [], []
    for model, g in grid.groupby("model", sort=False):
        sides = [p for p in train_sides(train.get(model, {})) if p in set(g["crop"])]
        full = g[g["crop"] == 0]["gain_db"]
        if not sides or full.empty:
            continue
        side = max(sides)
        at_train, at_full = float(g[g["crop"] == side]["gain_db"].iloc[0]), float(full.iloc[0])
        if "crop_minus_full_db" in g:  # identical pixels: the full image's gain on the windows' pixels
            at_full = at_train - float(g[g["crop"] == side]["crop_minus_full_db"].iloc[0])
        where = (f"{at_train:+.1f} dB on {side}-px crops, {'its largest training side' if len(train_sides(train[model])) > 1 else 'its training patch size'}, "
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
