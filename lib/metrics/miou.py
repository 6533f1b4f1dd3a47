"""Segmentation scores from a confusion matrix: IoU per class, mIoU, pixel accuracies.

Accumulate :func:`confusion_matrix` over images (matrices add), then call
:func:`scores_from_confusion` once: mIoU is computed on the dataset-level matrix, as the
Cityscapes benchmark does, not averaged per image.
"""
from __future__ import annotations

import numpy as np

__all__ = ["confusion_matrix", "scores_from_confusion"]

IGNORE_INDEX = 255  # Cityscapes trainId convention for "void"


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def confusion_matrix(pred, target, num_classes: int, ignore_index: int | None = IGNORE_INDEX) -> np.ndarray:
    """Counts pixels by (true class, predicted class).

    ``cm[t, p]`` = number of pixels with target ``t`` and prediction ``p``; pixels whose target
    equals ``ignore_index`` are left out.

    Args:
        pred: predicted class ids, integer array or tensor of any shape.
        target: true class ids, same shape.
        num_classes: C.
        ignore_index: target value to skip (``None``: skip nothing).

    Returns:
        int64 array (C, C): rows = target, columns = prediction.

    Raises:
        ValueError: shapes differ, or a kept pixel has a target or prediction outside [0, C).
    """
    pred, target = _to_numpy(pred), _to_numpy(target)
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch: pred {pred.shape} vs target {target.shape}")
    for label, a in (("pred", pred), ("target", target)):
        if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
            raise TypeError(f"{label} must hold integer class ids, got {a.dtype}")
    pred = pred.reshape(-1).astype(np.int64)  # (N,)
    target = target.reshape(-1).astype(np.int64)  # (N,)
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    for label, a in (("target", target), ("pred", pred)):
        bad = (a < 0) | (a >= num_classes)
        if bad.any():
            raise ValueError(
                f"{label} holds class ids outside [0, {num_classes}) (e.g. {int(a[bad][0])}) "
                f"at {int(bad.sum())} kept pixels"
            )
    counts = np.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)  # (C, C)


def scores_from_confusion(cm: np.ndarray) -> dict:
    """IoU per class, mIoU, pixel accuracy and mean class accuracy of a confusion matrix.

    With ``TP_c = cm[c, c]``, ``FP_c = sum_t cm[t, c] - TP_c``, ``FN_c = sum_p cm[c, p] - TP_c``:
    ``IoU_c = TP_c / (TP_c + FP_c + FN_c)`` (NaN when class c is absent from both target and
    prediction), ``mIoU = nanmean_c IoU_c``, ``pixel_accuracy = sum_c TP_c / sum(cm)``,
    ``mean_class_accuracy = nanmean_c TP_c / sum_p cm[c, p]`` (NaN for classes absent from the
    target).

    Args:
        cm: (C, C) counts, rows = target, columns = prediction.

    Returns:
        ``{"miou": float, "per_class_iou": list[float], "pixel_accuracy": float,
        "mean_class_accuracy": float}`` (NaN where undefined).
    """
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square (C, C), got {cm.shape}")
    tp = np.diag(cm)
    row = cm.sum(axis=1)  # target count per class
    col = cm.sum(axis=0)  # prediction count per class
    union = row + col - tp  # TP + FP + FN
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(row > 0, tp / row, np.nan)
    total = cm.sum()
    return {
        "miou": _nanmean(iou),
        "per_class_iou": [float(v) for v in iou],
        "pixel_accuracy": float(tp.sum() / total) if total > 0 else float("nan"),
        "mean_class_accuracy": _nanmean(acc),
    }


def _nanmean(x: np.ndarray) -> float:
    valid = ~np.isnan(x)
    return float(x[valid].mean()) if valid.any() else float("nan")
