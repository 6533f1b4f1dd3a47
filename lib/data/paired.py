"""Paired label -> photo datasets described by a typed config: one loader for every dataset.

A :class:`PairedConfig` (a ``datasets.<name>`` entry of ``params.yaml``, or a built-in entry of
:mod:`lib.data.catalog`) says where the pairs of each split are and what the label maps hold:

* ``root``: the dataset folder (relative paths from the project root);
* ``splits.<split>``: a list file of ``photo label`` lines (paths relative to ``root``), or two
  folders whose files are matched by stem, optionally selected and ordered by an id file
  (:class:`SplitConfig`); an instance-map folder (or third list column) adds the pix2pixHD
  instance-edge channel;
* ``num_classes``: the label maps hold ids ``0 .. num_classes - 1``; ``ignore_id`` (or none) is
  the id of unlabelled pixels, allowed in the maps, an input channel of its own and left out of
  the scores;
* ``class_names``: a file of ``<id> <name>`` lines in ``root`` (ids it does not name must not
  occur), or the names inline, indexed by id (``null``: the id does not occur);
* ``eval_ids``: the label ids scored as classes ``0 .. K-1`` (Cityscapes: the 19 trainIds);
  default every named id but the ignore id;
* ``size``: the training size ``(H, W)``; a stage that gives only a height keeps this aspect;
* ``label_mode``: ``L`` (8-bit gray ids) or ``P`` (palette indices, as the CMP Facades maps).

Generator inputs have :func:`label_channels` one-hot channels: ``num_classes``, plus one when the
ignore id lies outside ``0 .. num_classes - 1`` (its pixels then carry id ``num_classes``, as
SPADE's "don't care" label). Bad data stop with one line naming the file and what was expected.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from lib.config import from_dict
from lib.data.images import read_image, read_label
from lib.data.transforms import hflip, instance_edges, photo_to_tensor, resize_label, resize_photo, sample_rng
from lib.io import read_text
from lib.paths import project_path

__all__ = [
    "SplitConfig",
    "PairedConfig",
    "Pair",
    "PairedDataset",
    "split_pairs",
    "class_names",
    "eval_ids",
    "label_channels",
    "training_size",
    "load_pair",
    "as_root",
]

_INSTANCE_MODES = ("L", "P", "I;16", "I;16B", "I;16L", "I")  # instance ids may need 16 bits (Cityscapes 26001)


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """Where the pairs of one split are: a list file, or two folders matched by file stem.

    Attributes:
        list: file of ``photo label`` lines (``photo label instance`` when instance maps are
            used), paths relative to the dataset root; blank lines and ``#`` comments skipped.
        photos: folder of photos (searched recursively), relative to the root.
        labels: folder of label maps (may be the photo folder when the suffixes differ).
        instances: folder of instance maps (gives items an ``instance_edge`` channel).
        photo_suffix: file-name ending of a photo; the stem is the path under ``photos`` without it.
        label_suffix: file-name ending of a label map.
        instance_suffix: file-name ending of an instance map.
        ids: file of stems, one a line: selects and orders the folder pairs (else every stem, sorted).
    """

    list: str | None = None
    photos: str | None = None
    labels: str | None = None
    instances: str | None = None
    photo_suffix: str = ".png"
    label_suffix: str = ".png"
    instance_suffix: str = ".png"
    ids: str | None = None

    def __post_init__(self) -> None:
        folders = self.photos is not None or self.labels is not None
        if (self.list is None) == (not folders):
            raise ValueError("list: give either a list file (list) or two folders (photos and labels), not both")
        if folders and (self.photos is None or self.labels is None):
            raise ValueError(f"{'labels' if self.labels is None else 'photos'}: missing; folder pairs need photos and labels")
        if self.list is not None and (self.ids is not None or self.instances is not None):
            raise ValueError(f"{'ids' if self.ids is not None else 'instances'}: only with folders; a list file "
                             "selects its pairs itself (instance maps: a third column)")
        for key in ("photo_suffix", "label_suffix", "instance_suffix"):
            if not getattr(self, key):
                raise ValueError(f"{key}: must not be empty")
        if folders and self.photos == self.labels and self.photo_suffix == self.label_suffix:
            raise ValueError(f"label_suffix: photos and labels share the folder {self.photos!r} and the suffix "
                             f"{self.photo_suffix!r}; give them different suffixes")


@dataclasses.dataclass(frozen=True)
class PairedConfig:
    """A paired dataset (see the module docstring for each key)."""

    root: str
    splits: dict[str, SplitConfig]
    num_classes: int
    class_names: str | tuple[str | None, ...]
    size: tuple[int, int]
    ignore_id: int | None = None
    eval_ids: tuple[int, ...] | None = None
    label_mode: Literal["L", "P"] = "L"
    name: str = ""  # the entry's key (filled in by lib.data.catalog)

    def __post_init__(self) -> None:
        if not self.splits:
            raise ValueError("splits: expected at least one split")
        splits = {}
        for key, value in self.splits.items():
            splits[key] = value if isinstance(value, SplitConfig) else from_dict(SplitConfig, value, where=f"splits.{key}")
        object.__setattr__(self, "splits", splits)
        if self.num_classes < 1:
            raise ValueError(f"num_classes={self.num_classes} must be >= 1")
        if self.ignore_id is not None and not 0 <= self.ignore_id <= 255:
            raise ValueError(f"ignore_id={self.ignore_id} must be in 0..255 or null")
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"size={list(self.size)} must be [height, width], both >= 1")
        if not isinstance(self.class_names, str):
            for i, n in enumerate(self.class_names):
                if n is not None and not _is_class_id(self, i):
                    raise ValueError(f"class_names[{i}] ({n!r}): id {i} >= num_classes={self.num_classes} "
                                     f"and not the ignore id ({self.ignore_id})")
        if self.eval_ids is not None:
            if not self.eval_ids or len(set(self.eval_ids)) != len(self.eval_ids):
                raise ValueError(f"eval_ids={list(self.eval_ids)} must be distinct label ids, at least one")
            for i in self.eval_ids:
                if not 0 <= i < self.num_classes or i == self.ignore_id:
                    raise ValueError(f"eval_ids: {i} is not a class id (0..{self.num_classes - 1}, not the ignore id)")

    def path(self, rel: str) -> Path:
        """A path of the config: relative to ``root`` (``root`` itself from the project root)."""
        return project_path(self.root) / rel


def _is_class_id(cfg: PairedConfig, i: int) -> bool:
    return 0 <= i < cfg.num_classes or i == cfg.ignore_id


def label_channels(cfg: PairedConfig) -> int:
    """One-hot channels of the generator input: ``num_classes``, plus one for an ignore id outside
    ``0 .. num_classes - 1`` (CamVid: 11 classes + Unlabelled = 12)."""
    return cfg.num_classes + int(cfg.ignore_id is not None and cfg.ignore_id >= cfg.num_classes)


def class_names(cfg: PairedConfig) -> dict[int, str]:
    """``{label id: name}`` of every id the label maps may hold (the ignore id included when named).

    Raises:
        FileNotFoundError: the class-names file is missing (named).
        ValueError: a malformed line, a repeated id or an id outside the classes (file and line named).
    """
    if not isinstance(cfg.class_names, str):
        return {i: n for i, n in enumerate(cfg.class_names) if n is not None}
    path = cfg.path(cfg.class_names)
    if not path.is_file():
        raise FileNotFoundError(f"class-names file not found: {path} (key class_names of dataset {cfg.name or cfg.root})")
    names: dict[int, str] = {}
    for no, line in enumerate(read_text(path).splitlines(), 1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        if len(parts) < 2 or not parts[0].isdigit():
            raise ValueError(f"{path}:{no}: expected '<id> <name>', got {line!r}")
        i = int(parts[0])
        if i in names:
            raise ValueError(f"{path}:{no}: id {i} named twice ({names[i]!r}, {parts[1]!r})")
        if not _is_class_id(cfg, i):
            raise ValueError(f"{path}:{no}: id {i} >= num_classes={cfg.num_classes} and not the ignore id ({cfg.ignore_id})")
        names[i] = parts[1]
    if not names:
        raise ValueError(f"{path}: no '<id> <name>' lines")
    return names


def eval_ids(cfg: PairedConfig, names: dict[int, str] | None = None) -> tuple[int, ...]:
    """The label ids scored as classes ``0 .. K-1``: ``cfg.eval_ids``, else every named id but the ignore id.

    Raises:
        ValueError: an evaluated id without a name.
    """
    names = class_names(cfg) if names is None else names
    ids = cfg.eval_ids if cfg.eval_ids is not None else tuple(i for i in sorted(names) if i != cfg.ignore_id)
    unnamed = [i for i in ids if i not in names]
    if unnamed:
        raise ValueError(f"eval_ids {unnamed} of dataset {cfg.name or cfg.root} have no class name")
    return tuple(ids)


def training_size(cfg: PairedConfig, size: int | Sequence[int] | None = None) -> tuple[int, int]:
    """``(H, W)`` of the items: ``cfg.size`` for ``None``, ``size`` itself for a pair, and for a
    height the width that keeps ``cfg.size``'s aspect (Facades square, Cityscapes 2 x height).

    Raises:
        ValueError: the height gives a fractional width (names the heights that work).
    """
    if size is None:
        return int(cfg.size[0]), int(cfg.size[1])
    if not isinstance(size, (int, np.integer)):
        h, w = size
        return int(h), int(w)
    h0, w0 = cfg.size
    if (int(size) * w0) % h0:
        step = h0 // np.gcd(h0, w0)
        raise ValueError(f"height {size} gives the fractional width {size * w0 / h0:g} for the {h0}x{w0} (H x W) "
                         f"aspect of dataset {cfg.name or cfg.root}; use a multiple of {step}")
    return int(size), int(size) * w0 // h0


# ----------------------------------------------------------------------------- listing the pairs


@dataclasses.dataclass(frozen=True)
class Pair:
    """The files of one item: photo, label map and, when used, the instance map."""

    photo: Path
    label: Path
    instance: Path | None = None

    def files(self) -> list[Path]:
        return [p for p in (self.photo, self.label, self.instance) if p is not None]


def _stems(folder: Path, suffix: str, what: str, split: str, others: Sequence[str]) -> dict[str, Path]:
    """``{stem: file}`` of the files under ``folder`` ending in ``suffix`` but not in a longer
    suffix of another kind in the same folder (``others``: ``x.lab.png`` is no ``.png`` photo)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"split {split!r}: {what} folder not found: {folder}")
    longer = [o for o in others if len(o) > len(suffix) and o.endswith(suffix)]
    found = {}
    for p in folder.rglob(f"*{suffix}"):
        if p.is_file() and not any(p.name.endswith(o) for o in longer):
            found[p.relative_to(folder).as_posix()[: -len(suffix)]] = p
    return found


def _folder_pairs(cfg: PairedConfig, split: str, sc: SplitConfig) -> list[Pair]:
    kinds = [("photo", sc.photos, sc.photo_suffix), ("label map", sc.labels, sc.label_suffix)]
    if sc.instances is not None:
        kinds.append(("instance map", sc.instances, sc.instance_suffix))
    found = {what: (cfg.path(folder), suffix) for what, folder, suffix in kinds}
    if sc.ids is not None:
        ids_file = cfg.path(sc.ids)
        if not ids_file.is_file():
            raise FileNotFoundError(f"split {split!r}: id list not found: {ids_file}")
        keys = [line.strip() for line in read_text(ids_file).splitlines() if line.strip()]
        if not keys:
            raise ValueError(f"split {split!r} is empty: the id list {ids_file} names no pair")
        pairs = []
        for key in keys:
            files = [folder / f"{key}{suffix}" for folder, suffix in found.values()]
            for (what, _), f in zip(found.items(), files):
                if not f.is_file():
                    raise FileNotFoundError(f"split {split!r}: id {key} (listed in {ids_file}) has no {what}: "
                                            f"missing file {f}")
            pairs.append(Pair(*files))
        return pairs
    stems = {what: _stems(folder, suffix, what, split, [x for w, (f, x) in found.items() if w != what and f == folder])
             for what, (folder, suffix) in found.items()}
    keys = sorted(set().union(*stems.values()))
    if not keys:
        photos, suffix = found["photo"]
        raise ValueError(f"split {split!r} is empty: no '*{suffix}' photos under {photos}")
    for key in keys:
        have = [what for what in stems if key in stems[what]]
        for what, (folder, suffix) in found.items():
            if key not in stems[what]:
                raise FileNotFoundError(f"split {split!r}: {have[0]} {stems[have[0]][key]} has no {what}: "
                                        f"expected {folder / (key + suffix)}")
    return [Pair(*(stems[what][key] for what in found)) for key in keys]


def _list_pairs(cfg: PairedConfig, split: str, sc: SplitConfig) -> list[Pair]:
    list_file = cfg.path(sc.list)
    if not list_file.is_file():
        raise FileNotFoundError(f"split {split!r}: list file not found: {list_file}")
    root, pairs = project_path(cfg.root), []
    for no, line in enumerate(read_text(list_file).splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) not in (2, 3):
            raise ValueError(f"{list_file}:{no}: expected 'photo label' (or 'photo label instance'), got "
                             f"{len(fields)} fields: {line.strip()!r}")
        files = [root / f for f in fields]
        for what, f in zip(("photo", "label map", "instance map"), files):
            if not f.is_file():
                raise FileNotFoundError(f"{list_file}:{no}: {what} {f} not found")
        pairs.append(Pair(*files))
    if not pairs:
        raise ValueError(f"split {split!r} is empty: {list_file} lists no pairs")
    if len({p.instance is None for p in pairs}) > 1:
        raise ValueError(f"{list_file}: some lines have an instance map (third column) and some not")
    return pairs


def split_pairs(cfg: PairedConfig, split: str) -> list[Pair]:
    """The pairs of ``split`` in order (the id or list file's order, else sorted by stem).

    Raises:
        KeyError: ``split`` is not a split of ``cfg`` (lists the splits).
        FileNotFoundError: a missing list, folder or partner file (named, with what was expected).
        ValueError: an empty split or a malformed list line (file and line named).
    """
    if split not in cfg.splits:
        raise KeyError(f"dataset {cfg.name or cfg.root} has no split {split!r}; splits: {', '.join(cfg.splits)}")
    sc = cfg.splits[split]
    return _list_pairs(cfg, split, sc) if sc.list is not None else _folder_pairs(cfg, split, sc)


# ----------------------------------------------------------------------------- loading one pair


def _valid_ids(cfg: PairedConfig, names: dict[int, str]) -> np.ndarray:
    """``valid[id]``: whether a label map may hold ``id`` (a named class id or the ignore id)."""
    valid = np.zeros(max(cfg.num_classes, (cfg.ignore_id or 0) + 1), dtype=bool)
    valid[[i for i in names]] = True
    if cfg.ignore_id is not None:
        valid[cfg.ignore_id] = True
    return valid


def _check_ids(label: np.ndarray, path: Path, cfg: PairedConfig, valid: np.ndarray) -> None:
    bad = (label < 0) | (label >= len(valid))
    bad |= ~valid[np.clip(label, 0, len(valid) - 1)]
    if not bad.any():
        return
    values = np.unique(label[bad]).tolist()
    ignore = "none" if cfg.ignore_id is None else cfg.ignore_id
    if any(v >= cfg.num_classes for v in values):
        raise ValueError(f"{path}: label ids {values[:10]} outside 0..{cfg.num_classes - 1} (num_classes="
                         f"{cfg.num_classes}) and not the ignore id ({ignore})")
    raise ValueError(f"{path}: label ids {values[:10]} are not classes of dataset {cfg.name or cfg.root} "
                     f"(class_names names {sorted(i for i in np.flatnonzero(valid).tolist())})")


def load_pair(cfg: PairedConfig, pair: Pair, size: Sequence[int] | None, valid: np.ndarray | None = None) -> dict:
    """Loads one pair resized to ``size = (H, W)`` (photo bicubic, maps nearest; ``None``: native).

    Returns:
        ``dict(label=LongTensor (H, W), image=FloatTensor (3, H, W) in [-1, 1], path=str (photo))``,
        plus ``instance_edge=FloatTensor (1, H, W)`` when the pair has an instance map (edges of
        the resized map, as pix2pixHD).

    Raises:
        ValueError: a label map of another mode (what was found is named), ids that are not
            classes, photo / label / instance sizes that differ, an unreadable file (named).
    """
    valid = _valid_ids(cfg, class_names(cfg)) if valid is None else valid
    photo = read_image(pair.photo, "RGB")
    label = read_label(pair.label, modes=(cfg.label_mode,), what="label map", hint=_label_hint(cfg.label_mode))
    if photo.shape[:2] != label.shape:
        raise ValueError(f"photo {pair.photo} is {photo.shape[1]}x{photo.shape[0]} but label {pair.label} is "
                         f"{label.shape[1]}x{label.shape[0]} (W x H)")
    _check_ids(label, pair.label, cfg, valid)
    if cfg.ignore_id is not None and cfg.ignore_id > cfg.num_classes:
        label = np.where(label == cfg.ignore_id, cfg.num_classes, label)  # the "don't care" channel
    out = {}
    if pair.instance is not None:
        inst = read_label(pair.instance, modes=_INSTANCE_MODES, what="instance map")
        if inst.shape != label.shape:
            raise ValueError(f"instance map {pair.instance} is {inst.shape[1]}x{inst.shape[0]} but label {pair.label} "
                             f"is {label.shape[1]}x{label.shape[0]} (W x H)")
        out["instance_edge"] = torch.from_numpy(instance_edges(resize_label(inst, size)))[None]  # (1, H, W)
    out["image"] = photo_to_tensor(resize_photo(photo, size))
    out["label"] = torch.from_numpy(np.ascontiguousarray(resize_label(label, size)))
    out["path"] = str(pair.photo)
    return out


def _label_hint(label_mode: str) -> Callable[[str], str]:
    """What a label map of ``label_mode`` is, and what to do about a map of the found mode."""
    expected = {"L": "8-bit gray ids (mode L)", "P": "palette indices as ids (mode P, label_mode: P)"}[label_mode]

    def hint(found: str) -> str:
        if found in ("RGB", "RGBA"):
            return f"{expected}: convert colour-coded labels to one id per pixel first"
        if found == "P":
            return f"{expected}, or set label_mode: P to read the palette indices as ids"
        if found == "L":
            return f"{expected}, or set label_mode: L for gray id maps"
        return expected

    return hint


class PairedDataset(Dataset):
    """The pairs of one split of a :class:`PairedConfig` as tensors (:func:`load_pair` items).

    With ``flip``, a pair is mirrored left-right with probability 1/2, decided by ``(seed, epoch,
    index)`` only (call :meth:`set_epoch` each epoch), so the data are the same whatever the
    worker count. The class names are read and the files listed when the dataset is built, so
    a missing file stops here and not in the middle of training.
    """

    def __init__(self, cfg: PairedConfig, split: str | Sequence[str], size: int | Sequence[int] | None = None,
                 flip: bool = False, seed: int = 0):
        """Args:
        cfg: the dataset.
        split: a key of ``cfg.splits``, or several: their pairs in that order (CamVid's train + val).
        size: item height (the width keeps ``cfg.size``'s aspect), ``(H, W)``, or ``None`` for ``cfg.size``.
        flip: random horizontal flips.
        seed: seed of the flip decisions.
        """
        self.cfg, self.split = cfg, split
        self.pairs = [p for name in ([split] if isinstance(split, str) else split) for p in split_pairs(cfg, name)]
        self.size = training_size(cfg, size)
        self.flip, self.seed, self.epoch = bool(flip), int(seed), 0
        self._valid = _valid_ids(cfg, class_names(cfg))

    def set_epoch(self, epoch: int) -> None:
        """Selects the flips of ``epoch``."""
        self.epoch = int(epoch)

    def fingerprint(self) -> str:
        """The identity of the data: :func:`lib.io.files_digest` of every file, in order, and the
        settings that shape the items (size, classes, ignore id, label mode)."""
        from lib.io import files_digest

        files = files_digest([f for pair in self.pairs for f in pair.files()])
        shape = f"size={self.size} classes={self.cfg.num_classes} ignore={self.cfg.ignore_id} mode={self.cfg.label_mode}"
        return hashlib.sha256(f"{files}\n{shape}".encode()).hexdigest()

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        out = load_pair(self.cfg, self.pairs[index], self.size, self._valid)
        if self.flip and sample_rng(self.seed, self.epoch, index).random() < 0.5:
            for key in ("label", "instance_edge", "image"):
                if key in out:
                    out[key] = hflip(out[key])
        return out


def as_root(cfg: PairedConfig, root: str | os.PathLike | None) -> PairedConfig:
    """``cfg`` with another root (``None``: unchanged)."""
    return cfg if root is None else dataclasses.replace(cfg, root=str(root))
