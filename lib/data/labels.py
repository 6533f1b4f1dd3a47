"""Label sets: the classes of each translation dataset, their targets and their colours.

A :class:`LabelSet` names the classes a segmenter predicts for one dataset and maps the
dataset's label ids to them (Facades ids 1..12 -> classes 0..11; Cityscapes labelIds -> the 19
trainIds, 255 = ignored). :func:`label_colormap` colours label or class maps (sample grids of
the trainers and the evaluation).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from lib.data import cityscapes, facades

__all__ = ["LabelSet", "LABEL_SETS", "label_set", "label_colormap", "IGNORE_INDEX"]

IGNORE_INDEX = 255  # cityscapesScripts: trainId 255 = ignored


@dataclasses.dataclass(frozen=True)
class LabelSet:
    """The classes a segmenter predicts for one dataset and how dataset label maps map to them.

    Attributes:
        name: dataset name (a key of :data:`lib.data.TRANSLATION_DATASETS`).
        num_classes: predicted classes ``C`` (class ids ``0 .. C-1``).
        class_names: one name per class id.
        ignore_index: target value of pixels left out of the loss and the scores.
    """

    name: str
    num_classes: int
    class_names: tuple[str, ...]
    ignore_index: int = IGNORE_INDEX

    def targets(self, labels: Tensor | np.ndarray) -> Tensor:
        """Dataset label ids -> class ids (int64 tensor, same shape; unmapped ids -> ``ignore_index``).

        Facades: ``id - 1`` for ids 1..12 (others ignored). Cityscapes: labelIds -> trainIds
        (:func:`lib.data.cityscapes.to_train_ids`).
        """
        lab = torch.as_tensor(np.asarray(labels) if not isinstance(labels, Tensor) else labels).long()
        if self.name == "facades":
            out = lab - facades.MIN_ID
            inside = (lab >= facades.MIN_ID) & (lab <= facades.MAX_ID)
            return torch.where(inside, out, torch.full_like(out, self.ignore_index))
        if self.name == "cityscapes":
            return cityscapes.to_train_ids(lab)
        raise KeyError(f"no target mapping for label set {self.name!r}")


def _facades_set() -> LabelSet:
    return LabelSet("facades", 12, tuple(facades.CLASS_NAMES[1:]))  # CMP base set: 12 classes, ids 1..12


def _cityscapes_set() -> LabelSet:
    return LabelSet("cityscapes", 19, tuple(cityscapes.TRAIN_CLASSES))  # cityscapesScripts: 19 trainIds


LABEL_SETS: dict[str, Callable[[], LabelSet]] = {"facades": _facades_set, "cityscapes": _cityscapes_set}


def label_set(name: str) -> LabelSet:
    """The :class:`LabelSet` of dataset ``name``.

    Raises:
        KeyError: unknown name (lists the known ones).
    """
    if name not in LABEL_SETS:
        raise KeyError(f"unknown label set {name!r}; known: {', '.join(LABEL_SETS)}")
    return LABEL_SETS[name]()


def label_colormap(labels: Tensor | np.ndarray, num_classes: int) -> np.ndarray:
    """Colours a label map with the PASCAL VOC palette (bits of the class id spread over R, G, B).

    Class ``c`` gets, for bit ``j`` = 0..7, ``bit 3j, 3j+1, 3j+2`` of ``c`` in bit ``7 - j`` of R,
    G, B; class 0 is black.

    Args:
        labels: integer ``(H, W)`` or ``(B, H, W)`` array/tensor with values in ``[0, num_classes)``.
        num_classes: number of classes.

    Returns:
        ``uint8`` ``(..., H, W, 3)``.

    Raises:
        ValueError: a label outside ``[0, num_classes)`` or a non-integer map.
    """
    arr = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"label_colormap: labels must be integers, got {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(f"label_colormap: labels in [{arr.min()}, {arr.max()}] outside [0, {num_classes})")
    palette = np.zeros((num_classes, 3), dtype=np.uint8)  # (C, 3)
    for c in range(num_classes):
        v, rgb = c, [0, 0, 0]
        for j in range(8):
            for ch in range(3):
                rgb[ch] |= ((v >> ch) & 1) << (7 - j)
            v >>= 3
        palette[c] = rgb
    return palette[arr]  # (..., H, W, 3)
