"""CMP Facades (base set) with the split of the official ASAPNet code.

Layout of the dataset folder (``data/raw/facades``)::

    base/cmp_bNNNN.jpg            photo, RGB
    base/cmp_bNNNN.png            label map, palette image with indices 1..12
    label_names.txt               "<index> <name> <CMP order>" per class
    splits_asapnet/{train,test}_ids.txt   318 / 60 ids (cmp_b0061..0378 / cmp_b0001..0060)

Label ids: the 12 classes use indices 1..12 (1 = background, 2 = facade, ...); index 0 does
not occur in the base set (checked over all 378 maps) and is rejected, so one-hot channel 0
is always zero, as with the official ``label_nc 13`` for facades.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lib.data.images import read_image, read_label
from lib.io import read_text
from lib.data.transforms import hflip, photo_to_tensor, resize_label, resize_photo, sample_rng

__all__ = [
    "FacadesDataset",
    "facades_split",
    "load_facades_pair",
    "LABEL_NC",
    "CLASS_NAMES",
    "SPLITS",
]

LABEL_NC = 13  # official ASAPNet facades: --label_nc 13 (ids 1..12, channel 0 unused)
MIN_ID, MAX_ID = 1, 12  # CMP base set label indices
CLASS_NAMES = (  # index 1..12 as in label_names.txt; index 0 unused
    "unused", "background", "facade", "window", "door", "cornice", "sill",
    "balcony", "blind", "deco", "molding", "pillar", "shop",
)
SPLITS = ("train", "test")  # official ASAPNet lists facades_{train,test}_{img,label}.txt


def facades_split(root: str | os.PathLike, split: str) -> list[tuple[Path, Path]]:
    """The ``(photo, label)`` file pairs of a split, in list order.

    Args:
        root: the facades folder (holds ``base/`` and ``splits_asapnet/``).
        split: ``"train"`` (318 pairs) or ``"test"`` (60 pairs).

    Returns:
        ``[(base/cmp_bNNNN.jpg, base/cmp_bNNNN.png), ...]``.

    Raises:
        ValueError: unknown split, or an empty id list (file named).
        FileNotFoundError: the id list or a photo/label of a listed id is missing (named).
    """
    if split not in SPLITS:
        raise ValueError(f"facades split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    ids_file = root / "splits_asapnet" / f"{split}_ids.txt"
    if not ids_file.is_file():
        raise FileNotFoundError(f"facades split list not found: {ids_file}")
    ids = [line.strip() for line in read_text(ids_file).splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"facades split list is empty: {ids_file}")
    pairs = []
    for i in ids:
        photo, label = root / "base" / f"{i}.jpg", root / "base" / f"{i}.png"
        for p in (photo, label):
            if not p.is_file():
                raise FileNotFoundError(f"facades id {i} (listed in {ids_file}): missing file {p}")
        pairs.append((photo, label))
    return pairs


def _load_raw(photo_path: Path, label_path: Path) -> tuple[np.ndarray, np.ndarray]:
    photo = read_image(photo_path, "RGB")
    label = read_label(label_path)
    if photo.shape[:2] != label.shape:
        raise ValueError(
            f"photo {photo_path} is {photo.shape[1]}x{photo.shape[0]} but label {label_path} is "
            f"{label.shape[1]}x{label.shape[0]} (W x H)"
        )
    bad = np.unique(label[(label < MIN_ID) | (label > MAX_ID)])
    if bad.size:
        raise ValueError(f"{label_path}: label values {bad.tolist()[:10]} outside {MIN_ID}..{MAX_ID}")
    return photo, label


def load_facades_pair(
    photo_path: str | os.PathLike, label_path: str | os.PathLike, size: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loads one pair resized to a ``size`` x ``size`` square (photo bicubic, labels nearest).

    Args:
        photo_path: the ``.jpg`` photo.
        label_path: the ``.png`` label map.
        size: output side length; ``None`` keeps the native size.

    Returns:
        ``label`` LongTensor ``(H, W)`` with ids 1..12 and ``photo`` FloatTensor ``(3, H, W)``
        in ``[-1, 1]``.

    Raises:
        ValueError: photo and label sizes differ (both files named), label values outside
            1..12 (file and values named), or an unreadable file.
    """
    photo, label = _load_raw(Path(photo_path), Path(label_path))
    photo = resize_photo(photo, size)
    label = resize_label(label, size)
    return torch.from_numpy(np.ascontiguousarray(label)), photo_to_tensor(photo)


class FacadesDataset(Dataset):
    """Facades pairs as tensors.

    Item ``i``: ``dict(label=LongTensor (H, W), image=FloatTensor (3, H, W) in [-1, 1],
    path=str (photo file))``. With ``flip``, the pair is mirrored left-right with probability
    1/2, decided by ``(seed, epoch, i)`` only (call :meth:`set_epoch` each epoch), so data are
    the same whatever the worker count.
    """

    def __init__(self, root: str | os.PathLike, split: str, size: int | None, flip: bool = False, seed: int = 0):
        """Args:
        root: the facades folder.
        split: ``"train"`` or ``"test"``.
        size: square output side (``None``: native size, batch size 1 then).
        flip: random horizontal flips.
        seed: seed of the flip decisions.
        """
        self.pairs = facades_split(root, split)
        self.size, self.flip, self.seed, self.epoch = size, bool(flip), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        """Selects the flips of ``epoch``."""
        self.epoch = int(epoch)

    def fingerprint(self) -> str:
        """The identity of the data: :func:`lib.io.files_digest` of every photo and label file, in order."""
        from lib.io import files_digest

        return files_digest([p for pair in self.pairs for p in pair])

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        photo_path, label_path = self.pairs[index]
        label, image = load_facades_pair(photo_path, label_path, self.size)
        if self.flip and sample_rng(self.seed, self.epoch, index).random() < 0.5:
            label, image = hflip(label), hflip(image)
        return dict(label=label, image=image, path=str(photo_path))
