"""Datasets: fetching raw data, loaders returning tensors, and transforms."""
from __future__ import annotations

import os

from torch.utils.data import Dataset

__all__ = ["TRANSLATION_DATASETS", "translation_dataset"]

# name -> label channels of its one-hot input (Facades: ids 1..12; Cityscapes: labelIds 0..33)
TRANSLATION_DATASETS = {"facades": 13, "cityscapes": 35}


def translation_dataset(name: str, root: str | os.PathLike, split: str, size: int, seed: int = 0) -> Dataset:
    """A label -> photo dataset by name, unflipped (the GAN trainer flips).

    Args:
        name: ``facades`` (square ``size`` x ``size``) or ``cityscapes`` (``size`` x 2 ``size``).
        root: the dataset folder (official layout).
        split: ``train`` or ``test`` (Facades) / ``train`` or ``val`` (Cityscapes).
        size: image height.
        seed: sampling seed of the dataset.
    """
    if name == "facades":
        from lib.data.facades import FacadesDataset

        return FacadesDataset(root, split, size, flip=False, seed=seed)
    if name == "cityscapes":
        from lib.data.cityscapes import CityscapesDataset

        return CityscapesDataset(root, split, size=(size, 2 * size), flip=False, seed=seed)
    raise KeyError(f"unknown translation dataset {name!r}; known: {', '.join(TRANSLATION_DATASETS)}")
