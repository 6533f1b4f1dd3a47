"""Datasets: fetching raw data, the paired label -> photo datasets (one loader, :mod:`lib.data.paired`,
configured by entries such as those of :mod:`lib.data.catalog`), image I/O and transforms."""
from __future__ import annotations

import os
from typing import Any, Collection, Mapping, Sequence

from torch.utils.data import Dataset

from lib.data.catalog import BUILTIN_LABEL_CHANNELS, dataset_config

__all__ = ["TRANSLATION_DATASETS", "translation_dataset", "image_size", "generator_geometry", "dataset_config"]

# name -> label channels of its one-hot input (Facades: ids 1..12; Cityscapes: labelIds 0..33; CamVid: 11 + Unlabelled)
TRANSLATION_DATASETS = dict(BUILTIN_LABEL_CHANNELS)


def image_size(dataset: Any, size: int, section: Mapping[str, Any] | None = None) -> tuple[int, int]:
    """``(height, width)`` of the images of translation dataset ``dataset`` (a name or a
    :class:`lib.data.paired.PairedConfig`; names as :func:`translation_dataset`) at height ``size``:
    the aspect of its ``size`` setting (Facades square, Cityscapes twice as wide as high, CamVid 128x176).

    Raises:
        KeyError: unknown dataset (lists the known ones).
        ValueError: a height that gives a fractional width.
    """
    from lib.data.paired import training_size

    return training_size(dataset_config(dataset, section=section), int(size))


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


def translation_dataset(dataset: Any, root: str | os.PathLike | None, split: str | Sequence[str], size: int | None = None,
                        seed: int = 0, section: Mapping[str, Any] | None = None) -> Dataset:
    """A label -> photo dataset, unflipped (the GAN trainer flips): :class:`lib.data.paired.PairedDataset`.

    Args:
        dataset: a name (an entry of ``section``, else built in: ``facades``, ``cityscapes``,
            ``camvid``) or a :class:`lib.data.paired.PairedConfig`.
        root: the dataset folder, replacing the entry's ``root`` (``None``: keep it).
        split: a split of the entry (Facades ``train`` / ``test``, Cityscapes and CamVid ``train`` /
            ``val`` / ``test``), or a list of splits (their pairs in order).
        size: image height (the width keeps the entry's aspect); ``None``: the entry's ``size``.
        seed: sampling seed of the dataset.
        section: the ``datasets`` section of ``params.yaml``, when there is one.
    """
    from lib.data.paired import PairedDataset

    return PairedDataset(dataset_config(dataset, root, section), split, size, flip=False, seed=seed)
