"""mIoU of the translation evaluation: a segmenter's predictions on image folders against the test label maps."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lib.data.images import read_image
from lib.data.labels import LabelSet
from lib.data.transforms import photo_to_tensor
from lib.metrics import fid as fidlib
from lib.metrics.bootstrap import BOOT_PERCENTILES, percentile_summary
from lib.metrics.miou import confusion_matrix, scores_from_confusion
from lib.models.segmentation import segment
from lib.translation.image_sets import item_stem

__all__ = ["test_targets", "segmentation_scores", "per_class_frame", "PER_CLASS_COLUMNS", "BOOT_PERCENTILES"]

PER_CLASS_COLUMNS = ("model", "class_id", "class", "iou")


def test_targets(dataset: Dataset, labels: LabelSet) -> dict[str, Tensor]:
    """``{stem: class ids (H, W) int64}`` of every test item (:meth:`LabelSet.targets`)."""
    out = {}
    for i in range(len(dataset)):
        item = dataset[i]
        out[item_stem(item)] = labels.targets(item["label"])
    return out


def _image_batches(images, batch_size: int):
    """Yields ``(names, (B, 3, H, W) in [-1, 1])`` from a folder, a list of files or a tensor."""
    if isinstance(images, Tensor):
        if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise ValueError(f"images must be a float tensor (N, 3, H, W) in [-1, 1], got {images.dtype} {tuple(images.shape)}")
        for lo in range(0, images.shape[0], batch_size):
            yield [None] * min(batch_size, images.shape[0] - lo), images[lo : lo + batch_size]
        return
    files = fidlib.list_images(images) if isinstance(images, (str, os.PathLike)) else [Path(p) for p in images]
    if not files:
        raise ValueError("segmentation_scores: no images")
    for lo in range(0, len(files), batch_size):
        chunk = files[lo : lo + batch_size]
        batch = [photo_to_tensor(read_image(p, "RGB")) for p in chunk]  # each (3, H, W)
        shapes = {tuple(t.shape) for t in batch}
        if len(shapes) > 1:
            raise ValueError(f"images of one batch differ in size {sorted(shapes)}: {chunk[0].parent}")
        yield [p.stem for p in chunk], torch.stack(batch)  # (B, 3, H, W)


def segmentation_scores(
    segmenter: Callable[[Tensor], Tensor],
    images,
    labels,
    num_classes: int,
    ignore_index: int | None = 255,
    *,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    n_boot: int = 0,
    seed: int = 0,
) -> dict:
    """mIoU, pixel accuracy and per-class IoU of a segmenter's predictions on images.

    Per image ``i`` the confusion matrix ``cm_i[t, p]`` counts pixels of true class ``t``
    predicted as ``p`` (pixels with target ``ignore_index`` left out); ``cm = sum_i cm_i``
    gives ``IoU_c = TP_c / (TP_c + FP_c + FN_c)``, ``mIoU = nanmean_c IoU_c`` (classes absent
    from both target and prediction excluded), ``pixel_accuracy = sum_c TP_c / sum(cm)``
    (:func:`lib.metrics.miou.scores_from_confusion`). The bootstrap draws N images with
    replacement ``n_boot`` times and recomputes mIoU from the summed matrices.

    Args:
        segmenter: maps (B, 3, H, W) in ``[-1, 1]`` to logits (B, C, H, W) or ids (B, H, W)
            (:func:`lib.models.segmentation.segment`); a module must already be on ``device``.
        images: a folder (its PNG/JPEG files, sorted), a list of image files, or a float
            tensor (N, 3, H, W) in ``[-1, 1]``.
        labels: true class ids: a mapping ``{file stem: (H, W)}`` (files are matched by
            stem), or a tensor (N, H, W) / sequence of (H, W) maps in image order.
        num_classes: C.
        ignore_index: target value to leave out (``None``: none).
        batch_size: images per forward.
        device: where the segmenter runs.
        n_boot: bootstrap replicates (0: none; the interval keys are then NaN).
        seed: bootstrap seed (``np.random.default_rng``).

    Returns:
        ``dict(miou, pixel_accuracy, mean_class_accuracy, per_class_iou (list of C), n,
        miou_boot_low, miou_boot_high, miou_boot_std)``.

    Raises:
        ValueError / KeyError: images and labels that do not pair up (count, size or a
            missing stem, named).
    """
    per_image: list[np.ndarray] = []
    k = 0
    for names, batch in _image_batches(images, batch_size):
        pred = segment(segmenter, batch.to(device)).cpu()  # (B, H, W)
        for j, name in enumerate(names):
            if isinstance(labels, Mapping):
                if name is None or name not in labels:
                    raise KeyError(f"no label map for image {name!r} (labels hold {len(labels)} stems)")
                target = labels[name]
            else:
                if k >= len(labels):
                    raise ValueError(f"more images than label maps ({len(labels)})")
                target = labels[k]
            target = torch.as_tensor(np.asarray(target) if not isinstance(target, Tensor) else target)
            if tuple(target.shape) != tuple(pred[j].shape):
                raise ValueError(f"image {name or k}: prediction {tuple(pred[j].shape)} vs label map {tuple(target.shape)}")
            per_image.append(confusion_matrix(pred[j], target.long(), num_classes, ignore_index))
            k += 1
    if not isinstance(labels, Mapping) and k != len(labels):
        raise ValueError(f"{k} images but {len(labels)} label maps")
    cms = np.stack(per_image)  # (N, C, C)
    scores = scores_from_confusion(cms.sum(0))
    out = {
        "miou": scores["miou"],
        "pixel_accuracy": scores["pixel_accuracy"],
        "mean_class_accuracy": scores["mean_class_accuracy"],
        "per_class_iou": scores["per_class_iou"],
        "n": int(cms.shape[0]),
        "miou_boot_low": float("nan"),
        "miou_boot_high": float("nan"),
        "miou_boot_std": float("nan"),
    }
    if n_boot:
        if n_boot < 2:
            raise ValueError(f"n_boot must be 0 or >= 2, got {n_boot}")
        rng = np.random.default_rng(seed)
        n = cms.shape[0]
        values = np.array([scores_from_confusion(cms[rng.integers(0, n, n)].sum(0))["miou"] for _ in range(n_boot)])
        boot = percentile_summary(values, n_boot)
        out.update(miou_boot_low=boot["low"], miou_boot_high=boot["high"], miou_boot_std=boot["std"])
    return out


def per_class_frame(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> pd.DataFrame:
    """The per-class IoU of evaluation rows as a long table (:data:`PER_CLASS_COLUMNS`): one row per
    model and class, in row and class-id order; NaN where the class is absent from both the label
    maps and the predictions.

    Args:
        rows: result rows with ``model`` and ``per_class_iou`` (a list in class-id order, or
            ``{class name: IoU}``).
        class_names: one name per class id (:attr:`lib.data.labels.LabelSet.class_names`).

    Raises:
        ValueError: a row whose IoU count differs from the number of class names (named).
    """
    out = []
    for r in rows:
        ious = r["per_class_iou"]
        ious = [ious.get(c, float("nan")) for c in class_names] if isinstance(ious, Mapping) else list(ious)
        if len(ious) != len(class_names):
            raise ValueError(f"row {r['model']!r}: {len(ious)} per-class IoUs for {len(class_names)} class names")
        out += [{"model": r["model"], "class_id": i, "class": c, "iou": float(v)} for i, (c, v) in enumerate(zip(class_names, ious))]
    return pd.DataFrame(out, columns=list(PER_CLASS_COLUMNS))
