"""Cityscapes in its official layout (full download or a small subset).

Layout under ``root``::

    leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png         photo, RGB
    gtFine/<split>/<city>/<stem>_gtFine_labelIds.png          labelIds 0..33, 8-bit
    gtFine/<split>/<city>/<stem>_gtFine_instanceIds.png       16-bit; class*1000+k for instances

Generator inputs follow SPADE/pix2pixHD: 35 one-hot label channels (labelIds; id -1, the
licence plate, never occurs in ``*_labelIds.png``) plus an instance-edge map. Evaluation uses
the 19 trainIds (:data:`LABEL_TO_TRAIN`, 255 = ignore).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from lib.data.images import read_image, read_label
from lib.data.transforms import hflip, photo_to_tensor, resize_label, resize_photo, sample_rng

__all__ = [
    "CityscapesDataset",
    "cityscapes_split",
    "load_cityscapes_item",
    "instance_edges",
    "to_train_ids",
    "LABEL_NC",
    "LABEL_TO_TRAIN",
    "TRAIN_CLASSES",
    "IGNORE_ID",
]

LABEL_NC = 35  # SPADE/ASAPNet cityscapes: --label_nc 35 (labelIds 0..33, plus one spare)
IGNORE_ID = 255  # cityscapesScripts: trainId 255 = ignored in evaluation

# cityscapesScripts labels.py: labelId -> trainId (19 evaluated classes, 255 = ignore).
LABEL_TO_TRAIN: dict[int, int] = {
    0: 255, 1: 255, 2: 255, 3: 255, 4: 255, 5: 255, 6: 255,  # unlabeled .. ground
    7: 0,  # road
    8: 1,  # sidewalk
    9: 255, 10: 255,  # parking, rail track
    11: 2,  # building
    12: 3,  # wall
    13: 4,  # fence
    14: 255, 15: 255, 16: 255,  # guard rail, bridge, tunnel
    17: 5,  # pole
    18: 255,  # polegroup
    19: 6,  # traffic light
    20: 7,  # traffic sign
    21: 8,  # vegetation
    22: 9,  # terrain
    23: 10,  # sky
    24: 11,  # person
    25: 12,  # rider
    26: 13,  # car
    27: 14,  # truck
    28: 15,  # bus
    29: 255, 30: 255,  # caravan, trailer
    31: 16,  # train
    32: 17,  # motorcycle
    33: 18,  # bicycle
    -1: 255,  # license plate
}
TRAIN_CLASSES = (  # trainId 0..18 (cityscapesScripts)
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
_LUT = np.full(256, IGNORE_ID, dtype=np.int64)  # labelId 0..255 -> trainId; unknown ids -> ignore
for _k, _v in LABEL_TO_TRAIN.items():
    if _k >= 0:
        _LUT[_k] = _v


def cityscapes_split(root: str | os.PathLike, split: str, require_photos: bool = True) -> list[dict]:
    """Lists the items of a split, sorted by file name.

    Args:
        root: the Cityscapes root (holds ``gtFine/`` and ``leftImg8bit/``).
        split: ``"train"``, ``"val"`` or ``"test"``.
        require_photos: when True, a label map without its photo is an error; when False,
            such items get ``image=None`` (e.g. the subset's label-only val maps).

    Returns:
        ``[dict(name=<stem>, city=str, label=Path, instance=Path, image=Path | None), ...]``.

    Raises:
        FileNotFoundError: no split folder, no label maps, a missing instance map or photo (named).
    """
    root = Path(root)
    gt = root / "gtFine" / split
    if not gt.is_dir():
        raise FileNotFoundError(f"Cityscapes split folder not found: {gt}")
    labels = sorted(gt.glob("*/*_gtFine_labelIds.png"))
    if not labels:
        raise FileNotFoundError(f"no *_gtFine_labelIds.png files under {gt}")
    items = []
    for lab in labels:
        stem = lab.name[: -len("_gtFine_labelIds.png")]
        city = lab.parent.name
        inst = lab.with_name(f"{stem}_gtFine_instanceIds.png")
        if not inst.is_file():
            raise FileNotFoundError(f"instance map missing for {lab}: {inst}")
        photo = root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"
        if not photo.is_file():
            if require_photos:
                raise FileNotFoundError(f"photo missing for {lab}: {photo}")
            photo = None
        items.append(dict(name=stem, city=city, label=lab, instance=inst, image=photo))
    return items


def instance_edges(inst) -> torch.Tensor | np.ndarray:
    """Boundary map of an instance map (pix2pixHD ``get_edges``).

    ``edge[h, w] = 1`` if ``inst[h, w]`` differs from any of its 4 neighbours, else 0.

    Args:
        inst: ``(H, W)`` (or ``(..., H, W)``) integer array or tensor.

    Returns:
        Same shape, float32 in {0, 1}; same type (NumPy or torch) as the input.
    """
    if isinstance(inst, torch.Tensor):
        e = torch.zeros(inst.shape, dtype=torch.bool, device=inst.device)
        dx = inst[..., :, 1:] != inst[..., :, :-1]  # (..., H, W-1)
        dy = inst[..., 1:, :] != inst[..., :-1, :]  # (..., H-1, W)
        e[..., :, 1:] |= dx
        e[..., :, :-1] |= dx
        e[..., 1:, :] |= dy
        e[..., :-1, :] |= dy
        return e.float()
    inst = np.asarray(inst)
    e = np.zeros(inst.shape, dtype=bool)
    dx = inst[..., :, 1:] != inst[..., :, :-1]
    dy = inst[..., 1:, :] != inst[..., :-1, :]
    e[..., :, 1:] |= dx
    e[..., :, :-1] |= dx
    e[..., 1:, :] |= dy
    e[..., :-1, :] |= dy
    return e.astype(np.float32)


def to_train_ids(labels):
    """Maps labelIds to trainIds with :data:`LABEL_TO_TRAIN` (ids without a trainId -> 255).

    Args:
        labels: integer NumPy array or tensor of labelIds (-1..33; -1 -> 255).

    Returns:
        Same type and shape, int64.
    """
    if isinstance(labels, torch.Tensor):
        lut = torch.as_tensor(_LUT, device=labels.device)
        lab = labels.long()
        out = lut[lab.clamp(0, 255)]
        return torch.where((lab < 0) | (lab > 255), torch.full_like(out, IGNORE_ID), out)
    lab = np.asarray(labels).astype(np.int64)
    out = _LUT[np.clip(lab, 0, 255)]
    return np.where((lab < 0) | (lab > 255), IGNORE_ID, out)


def load_cityscapes_item(item: dict, size: Sequence[int] | None) -> dict:
    """Loads one item of :func:`cityscapes_split` resized to ``size = (H, W)``.

    Labels and instances are resized nearest, the photo bicubic; edges are computed on the
    resized instance map (as pix2pixHD).

    Returns:
        ``dict(label=LongTensor (H, W), instance_edge=FloatTensor (1, H, W),
        image=FloatTensor (3, H, W) in [-1, 1] (absent when the item has no photo), path=str)``.

    Raises:
        ValueError: label ids outside ``0..LABEL_NC-1`` or sizes that differ (files named).
    """
    label = read_label(item["label"])
    inst = read_label(item["instance"])
    if inst.shape != label.shape:
        raise ValueError(f"size mismatch: {item['label']} is {label.shape}, {item['instance']} is {inst.shape} (H, W)")
    bad = np.unique(label[(label < 0) | (label >= LABEL_NC)])
    if bad.size:
        raise ValueError(f"{item['label']}: label ids {bad.tolist()[:10]} outside 0..{LABEL_NC - 1}")
    out = {}
    if item.get("image") is not None:
        photo = read_image(item["image"], "RGB")
        if photo.shape[:2] != label.shape:
            raise ValueError(
                f"size mismatch: photo {item['image']} is {photo.shape[:2]}, label {item['label']} is {label.shape} (H, W)"
            )
        out["image"] = photo_to_tensor(resize_photo(photo, size))
    label, inst = resize_label(label, size), resize_label(inst, size)
    out["label"] = torch.from_numpy(np.ascontiguousarray(label))
    out["instance_edge"] = torch.from_numpy(instance_edges(inst))[None]  # (1, H, W)
    out["path"] = str(item["image"] if item.get("image") is not None else item["label"])
    return out


class CityscapesDataset(Dataset):
    """Cityscapes items as tensors: ``dict(label, instance_edge, image, path)``.

    ``label`` LongTensor ``(H, W)`` of labelIds, ``instance_edge`` FloatTensor ``(1, H, W)``,
    ``image`` FloatTensor ``(3, H, W)`` in ``[-1, 1]`` (absent for label-only items when
    ``require_photos=False``), ``path`` the photo (or label) file. Flips as
    :class:`lib.data.facades.FacadesDataset`: decided by ``(seed, epoch, index)``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        size: Sequence[int] | None = (256, 512),  # paper: Cityscapes at 256x512 (H, W)
        flip: bool = False,
        seed: int = 0,
        require_photos: bool = True,
    ):
        """Args:
        root: the Cityscapes root.
        split: ``"train"``, ``"val"`` or ``"test"``.
        size: ``(H, W)`` output size, ``None`` for native.
        flip: random horizontal flips.
        seed: seed of the flip decisions.
        require_photos: see :func:`cityscapes_split`.
        """
        self.items = cityscapes_split(root, split, require_photos=require_photos)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.flip, self.seed, self.epoch = bool(flip), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        """Selects the flips of ``epoch``."""
        self.epoch = int(epoch)

    def fingerprint(self) -> str:
        """The identity of the data: :func:`lib.io.files_digest` of every label, instance and photo file, in order."""
        from lib.io import files_digest

        return files_digest([it[k] for it in self.items for k in ("label", "instance", "image") if it.get(k) is not None])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        out = load_cityscapes_item(self.items[index], self.size)
        if self.flip and sample_rng(self.seed, self.epoch, index).random() < 0.5:
            for key in ("label", "instance_edge", "image"):
                if key in out:
                    out[key] = hflip(out[key])
        return out
