"""Learning curves of the label -> photo generators: KID, FID and mIoU of every training snapshot.

A training run writes snapshots of its evaluation generator at evenly spread steps
(``snapshots/step_XXXXXX.pt``, :func:`lib.train.gan_outputs.list_snapshots`), each with the
training wall time up to that step. Every snapshot is evaluated with the protocol of the final
evaluation (:func:`lib.translation.evaluate.evaluate_model`: the same test images, real-image
Inception features computed once, segmenter, KID subsets and FID method) without the bootstrap
intervals, which the curve does not need. One curve point costs one generation of the test
set, one Inception pass over it and one segmenter pass (docs/design.md#translation-protocol).

A single evaluation of the last step carries the step-to-step noise of GAN training; the
**smoothed final value** (:func:`smoothed_final`) is the mean of the last :data:`SMOOTH_POINTS`
curve points, i.e. the end of the trailing moving average drawn through the curve
(:func:`smoothed_curve`). The report compares models by it.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from lib.data.labels import LabelSet
from lib.io import write_csv
from lib.train.gan_outputs import list_snapshots
from lib.translation.evaluate import TranslationEvalConfig, evaluate_model

__all__ = [
    "CURVE_COLUMNS",
    "CURVE_METRICS",
    "SMOOTH_POINTS",
    "SMOOTHING",
    "evaluate_snapshots",
    "smoothed_curve",
    "smoothed_final",
    "add_smoothed",
    "write_curves",
]

CURVE_COLUMNS = ("model", "step", "train_seconds", "kid", "fid", "miou")
CURVE_METRICS = ("kid", "fid", "miou")
SMOOTH_POINTS = 3  # curve points averaged into the smoothed final value
SMOOTHING = (f"mean of the last {SMOOTH_POINTS} learning-curve points (snapshots evaluated with the same "
             "protocol), the end of the trailing moving average through the curve")


def evaluate_snapshots(
    name: str,
    run_dir: str | os.PathLike,
    dataset: Dataset,
    labels: LabelSet,
    real_dir: str | os.PathLike,
    work_dir: str | os.PathLike,
    segmenter: tuple[nn.Module, str],
    inception: nn.Module,
    cfg: TranslationEvalConfig,
    *,
    device: str | torch.device = "cpu",
    real_features: np.ndarray | None = None,
    targets: Mapping[str, Tensor] | None = None,
) -> tuple[pd.DataFrame, float]:
    """KID, FID and mIoU of every snapshot of one training run, by step.

    Args:
        name: the model's name (the ``model`` column).
        run_dir: the training run's folder (its ``snapshots/``).
        dataset, labels, real_dir, segmenter, inception, cfg, device, real_features, targets:
            as for :func:`lib.translation.evaluate.evaluate_model`; pass ``real_features`` and
            ``targets`` so they are computed once for all snapshots.
        work_dir: folder the snapshots' test images are written to (overwritten per snapshot).

    Returns:
        ``(frame with the :data:`CURVE_COLUMNS`, mean evaluation seconds per snapshot)``; an
        empty frame (and NaN) for a run without snapshots.
    """
    rows, seconds = [], []
    for step, train_seconds, path in list_snapshots(run_dir):
        start = time.perf_counter()
        r = evaluate_model(name, path, dataset, labels, real_dir, work_dir, segmenter, inception, cfg, device=device,
                           real_features=real_features, targets=targets, intervals=False)
        seconds.append(time.perf_counter() - start)
        rows.append({"model": name, "step": step, "train_seconds": train_seconds, **{k: r[k] for k in CURVE_METRICS}})
    frame = pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
    return frame, float(np.mean(seconds)) if seconds else float("nan")


def _by_model(curves: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {m: g.sort_values("step") for m, g in curves.groupby("model", sort=False)}


def smoothed_curve(curves: pd.DataFrame, points: int = SMOOTH_POINTS) -> pd.DataFrame:
    """The trailing moving average of each model's curve over ``points`` curve points (fewer at the start).

    Returns:
        The same columns and rows (by model, then step), the metrics replaced by their moving
        average; the last row of a model holds :func:`smoothed_final`.
    """
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    parts = []
    for g in _by_model(curves).values():
        g = g.copy()
        g[list(CURVE_METRICS)] = g[list(CURVE_METRICS)].astype(float).rolling(points, min_periods=1).mean()
        parts.append(g)
    return pd.concat(parts, ignore_index=True) if parts else curves.iloc[0:0].copy()


def smoothed_final(curves: pd.DataFrame, points: int = SMOOTH_POINTS) -> dict[str, dict[str, Any]]:
    """Per model: the mean of each metric over its last ``points`` curve points (by step).

    Returns:
        ``{model: {"kid": ..., "fid": ..., "miou": ..., "points": number averaged, "steps": [those steps]}}``.
    """
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    out = {}
    for m, g in _by_model(curves).items():
        tail = g.tail(points)
        out[m] = {**{k: float(tail[k].astype(float).mean()) for k in CURVE_METRICS}, "points": int(len(tail)),
                  "steps": [int(s) for s in tail["step"]]}
    return out


def add_smoothed(rows: Sequence[Mapping[str, Any]], curves: pd.DataFrame, points: int = SMOOTH_POINTS) -> list[dict]:
    """The evaluation rows with ``kid_smoothed``, ``fid_smoothed``, ``miou_smoothed`` (and
    ``smoothed_points``) added to each model that has a curve; other rows (the real photos, a run
    without snapshots) are returned unchanged."""
    final = smoothed_final(curves, points)
    out = []
    for r in rows:
        r = dict(r)
        s = final.get(r["model"])
        if s is not None:
            r.update({f"{k}_smoothed": s[k] for k in CURVE_METRICS}, smoothed_points=s["points"])
        out.append(r)
    return out


def write_curves(curves: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Writes the curve points (:data:`CURVE_COLUMNS`, by model then step) as CSV, atomically.

    Raises:
        ValueError: a missing column (named).
    """
    missing = [c for c in CURVE_COLUMNS if c not in curves]
    if missing:
        raise ValueError(f"learning curve lacks columns {missing}")
    frame = pd.concat(list(_by_model(curves).values()), ignore_index=True) if len(curves) else curves
    return write_csv(path, frame[list(CURVE_COLUMNS)])
