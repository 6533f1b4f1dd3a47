"""Label sets: the classes of each translation dataset, their targets and their colours.

A :class:`LabelSet` names the classes a segmenter predicts for one dataset and maps the
dataset's label ids to them, from the dataset's settings (:mod:`lib.data.paired`): class ``k``
is label id ``eval_ids[k]`` (Facades ids 1..12 -> classes 0..11; Cityscapes labelIds -> the 19
trainIds; CamVid ids 0..10, Unlabelled ignored); every other id is ignored (255).
:func:`label_colormap` colours label or class maps (sample grids of the trainers and the evaluation).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from lib.data.catalog import dataset_config
from lib.data.paired import class_names, eval_ids

__all__ = ["LabelSet", "label_set", "label_colormap", "IGNORE_INDEX"]

IGNORE_INDEX = 255  # cityscapesScripts: trainId 255 = ignored


@dataclasses.dataclass(frozen=True)
class LabelSet:
    """The classes a segmenter predicts for one dataset and how dataset label maps map to them.

    Attributes:
        name: dataset name (a built-in dataset or a ``datasets`` entry of ``params.yaml``).
        num_classes: predicted classes ``C`` (class ids ``0 .. C-1``).
        class_names: one name per class id.
        ignore_index: target value of pixels left out of the loss and the scores.
        label_ids: the dataset label id of each class (class ``k`` <- label id ``label_ids[k]``).
    """

    name: str
    num_classes: int
    class_names: tuple[str, ...]
    ignore_index: int = IGNORE_INDEX
    label_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(self.class_names) != self.num_classes or len(self.label_ids) != self.num_classes:
            raise ValueError(f"label set {self.name!r}: {self.num_classes} classes need as many names and label ids, "
                             f"got {len(self.class_names)} and {len(self.label_ids)}")

    def targets(self, labels: Tensor | np.ndarray) -> Tensor:
        """Dataset label ids -> class ids (int64 tensor, same shape; other ids -> ``ignore_index``)."""
        lab = torch.as_tensor(np.asarray(labels) if not isinstance(labels, Tensor) else labels).long()
        size = max(self.label_ids) + 1
        lut = torch.full((size,), self.ignore_index, dtype=torch.long, device=lab.device)
        lut[list(self.label_ids)] = torch.arange(self.num_classes, device=lab.device)
        out = lut[lab.clamp(0, size - 1)]
        return torch.where((lab < 0) | (lab >= size), torch.full_like(out, self.ignore_index), out)


def label_set(dataset: Any, root: str | os.PathLike | None = None, section: Mapping[str, Any] | None = None) -> LabelSet:
    """The :class:`LabelSet` of ``dataset`` (a name or a :class:`lib.data.paired.PairedConfig`,
    as :func:`lib.data.translation_dataset`; ``root`` replaces its root, where a class-names file is read).

    Raises:
        KeyError: unknown name (lists the known ones).
        FileNotFoundError, ValueError: a missing or malformed class-names file (named).
    """
    cfg = dataset_config(dataset, root, section)
    names = class_names(cfg)
    ids = eval_ids(cfg, names)
    return LabelSet(cfg.name, len(ids), tuple(names[i] for i in ids), IGNORE_INDEX, ids)


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
