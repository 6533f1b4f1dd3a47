"""The built-in paired datasets, written as ``datasets.<name>`` entries of ``params.yaml`` would be.

Each entry is plain data for :class:`lib.data.paired.PairedConfig`; what sets a dataset apart
(Facades' palette maps and ASAPNet id lists, Cityscapes' instance maps and 19 evaluated
trainIds, CamVid's list files and ignored Unlabelled id) is a setting or a small table here, not
a loader of its own. :func:`load_datasets` builds a ``datasets`` section of ``params.yaml``: its
entries replace the built-in ones of the same name and add new ones.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from lib.config import ConfigError, from_dict
from lib.data.paired import PairedConfig, as_root, label_channels

__all__ = ["BUILTIN", "load_datasets", "dataset_config", "BUILTIN_LABEL_CHANNELS"]

# CMP Facades base set with the official ASAPNet split (ids listed in splits_asapnet/*_ids.txt).
# Label maps are palette images with indices 1..12 (index 0 never occurs, checked over all 378);
# one-hot channel 0 stays zero, as the official --label_nc 13. Names as in label_names.txt.
FACADES: dict[str, Any] = {
    "root": "data/raw/facades",
    "splits": {
        split: {"photos": "base", "labels": "base", "photo_suffix": ".jpg", "label_suffix": ".png",
                "ids": f"splits_asapnet/{split}_ids.txt"}
        for split in ("train", "test")
    },
    "num_classes": 13,
    "ignore_id": None,
    "class_names": [None, "background", "facade", "window", "door", "cornice", "sill", "balcony", "blind",
                    "deco", "molding", "pillar", "shop"],
    "label_mode": "P",
    "size": [128, 128],
}

# Cityscapes in its official layout (leftImg8bit/, gtFine/): labelIds 0..33 as 35 one-hot channels
# (SPADE/ASAPNet --label_nc 35; id 34 is a spare), instance edges from *_instanceIds.png, scores
# over the 19 trainIds of cityscapesScripts (eval_ids: the labelId of trainId 0, 1, ..., 18).
_CITYSCAPES_NAMES = [
    "unlabeled", "ego vehicle", "rectification border", "out of roi", "static", "dynamic", "ground", "road",
    "sidewalk", "parking", "rail track", "building", "wall", "fence", "guard rail", "bridge", "tunnel", "pole",
    "polegroup", "traffic light", "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
    "truck", "bus", "caravan", "trailer", "train", "motorcycle", "bicycle",
]
CITYSCAPES: dict[str, Any] = {
    "root": "data/cityscapes",
    "splits": {
        split: {"photos": f"leftImg8bit/{split}", "labels": f"gtFine/{split}", "instances": f"gtFine/{split}",
                "photo_suffix": "_leftImg8bit.png", "label_suffix": "_gtFine_labelIds.png",
                "instance_suffix": "_gtFine_instanceIds.png"}
        for split in ("train", "val", "test")
    },
    "num_classes": 35,
    "ignore_id": None,
    "class_names": _CITYSCAPES_NAMES,
    "eval_ids": [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33],
    "label_mode": "L",
    "size": [256, 512],  # ASAPNet sec. 4: 256x512
}

# CamVid, SegNet's 11-class version (367 / 101 / 233 pairs), the 240x180 copy of the fetch stage:
# ids 0..10 are the classes, 11 (Unlabelled) is ignored in the scores (SegNet ignore_label 11)
# and is the 12th input channel. Trained at 128x176 (the 180x240 frames resized).
CAMVID: dict[str, Any] = {
    "root": "data/raw/camvid",
    "splits": {split: {"list": f"{split}.txt"} for split in ("train", "val", "test")},
    "num_classes": 11,
    "ignore_id": 11,
    "class_names": "class_names.txt",
    "label_mode": "L",
    "size": [128, 176],
}

BUILTIN: dict[str, dict[str, Any]] = {"facades": FACADES, "cityscapes": CITYSCAPES, "camvid": CAMVID}


def _build(name: str, entry: Mapping[str, Any], where: str) -> PairedConfig:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {entry!r}")
    if entry.get("name", name) != name:
        raise ConfigError(f"{where}.name: {entry['name']!r} differs from the entry's key {name!r}; leave it out")
    return from_dict(PairedConfig, {**entry, "name": name}, where=where)


def load_datasets(section: Mapping[str, Any] | None = None, where: str = "datasets") -> dict[str, PairedConfig]:
    """The paired datasets: the built-in ones, with the entries of ``section`` (a ``datasets``
    section of ``params.yaml``) replacing those of the same name and adding new ones.

    Raises:
        ConfigError: a bad entry, named by its key (``datasets.camvid.splits.train.list: ...``).
    """
    if section is not None and not isinstance(section, Mapping):
        raise ConfigError(f"{where}: expected a mapping of dataset name -> entry, got {section!r}")
    entries = {**BUILTIN, **(section or {})}
    return {name: _build(name, entry, f"{where}.{name}") for name, entry in entries.items()}


def dataset_config(dataset: str | PairedConfig, root: str | os.PathLike | None = None,
                   section: Mapping[str, Any] | None = None) -> PairedConfig:
    """The config of ``dataset`` (a name, looked up in ``section`` then the built-ins, or a config),
    with its root replaced by ``root`` when given.

    Raises:
        KeyError: an unknown name (lists the known ones).
    """
    if isinstance(dataset, PairedConfig):
        return as_root(dataset, root)
    entries = {**BUILTIN, **(section or {})}
    if dataset not in entries:
        raise KeyError(f"unknown dataset {dataset!r}; known: {', '.join(entries)}")
    return as_root(_build(dataset, entries[dataset], f"datasets.{dataset}"), root)


# name -> one-hot label channels of the generator input (Facades 13, Cityscapes 35, CamVid 12)
BUILTIN_LABEL_CHANNELS: dict[str, int] = {name: label_channels(dataset_config(name)) for name in BUILTIN}
