"""Datasets: fetching raw data, loaders returning tensors, and transforms."""
from __future__ import annotations

import os
from typing import Any, Collection, Mapping

from torch.utils.data import Dataset

__all__ = ["TRANSLATION_DATASETS", "translation_dataset", "image_size", "generator_geometry"]

# name -> label channels of its one-hot input (Facades: ids 1..12; Cityscapes: labelIds 0..33)
TRANSLATION_DATASETS = {"facades": 13, "cityscapes": 35}
_WIDTH_PER_HEIGHT = {"facades": 1, "cityscapes": 2}  # Facades square; Cityscapes H x 2H (ASAPNet sec. 4: 256x512)


def image_size(name: str, size: int) -> tuple[int, int]:
    """``(height, width)`` of the images of translation dataset ``name`` at height ``size``
    (Facades square, Cityscapes twice as wide as high).

    Raises:
        KeyError: unknown dataset (lists the known ones).
    """
    if name not in _WIDTH_PER_HEIGHT:
        raise KeyError(f"unknown translation dataset {name!r}; known: {', '.join(_WIDTH_PER_HEIGHT)}")
    return int(size), int(size) * _WIDTH_PER_HEIGHT[name]


def generator_geometry(overrides: Mapping[str, Any], config_fields: Collection[str], size: int) -> dict:
    """A generator's config overrides for images of height ``size``: the one geometry rule.

    A generator whose config has a ``height`` field (ASAPNet: its tile size is ``k = height /
    16``, docs/design.md#models) is built for the image height: ``height = size`` is filled in
    when not given. Other generators are size-agnostic and keep ``overrides`` as they are.

    Args:
        overrides: the generator config overrides (e.g. ``generator_cfg`` of a training config).
        config_fields: the field names of the generator's config class.
        size: the image height.

    Returns:
        A new dict of overrides.

    Raises:
        ValueError: ``overrides`` sets a ``height`` other than ``size``.
    """
    out = dict(overrides)
    if "height" in config_fields:
        if out.setdefault("height", int(size)) != size:
            raise ValueError(f"generator_cfg.height={out['height']} differs from size={size}")
    return out


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

        return CityscapesDataset(root, split, size=image_size(name, size), flip=False, seed=seed)
    raise KeyError(f"unknown translation dataset {name!r}; known: {', '.join(TRANSLATION_DATASETS)}")
