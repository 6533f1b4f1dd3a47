"""The image folders of the translation evaluation: generated and real test images, the FID reference, the sample grid.

Every folder holds uint8 PNGs named ``<stem>.png`` after the test item's file, so generated and
real images pair up by name; the generated ones come from the one label -> photo inference path
(:func:`lib.models.generate.generate_images`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from lib.data.images import read_image, write_image
from lib.data.labels import label_colormap
from lib.models import load_model
from lib.models.generate import to_uint8
from lib.train import gan

__all__ = ["first_items", "generate_test_images", "real_test_images", "reference_images", "sample_grid", "item_stem"]


def first_items(dataset: Dataset, n: int) -> Dataset:
    """The first ``n`` items of ``dataset`` (all of them when ``n`` is 0 or exceeds its length)."""
    if n <= 0 or n >= len(dataset):
        return dataset
    return Subset(dataset, range(n))


def item_stem(item: Mapping[str, Any]) -> str:
    """The file stem a test item's images are written under (that of its ``path``)."""
    return Path(item["path"]).stem


def _new_stem(item: Mapping[str, Any], seen: dict[str, str]) -> str:
    """The item's stem, checked against those already written (``seen``: stem -> path)."""
    stem = item_stem(item)
    if stem in seen:
        raise ValueError(f"items {seen[stem]} and {item['path']} would both be written as {stem}.png")
    seen[stem] = item["path"]
    return stem


def _remove_stale(out_dir: Path, keep: Sequence[Path]) -> None:
    """Deletes the PNGs in ``out_dir`` that are not in ``keep`` (left by an earlier run)."""
    names = {p.name for p in keep}
    for p in out_dir.glob("*.png"):
        if p.name not in names:
            p.unlink()


def generate_test_images(
    checkpoint: str | os.PathLike,
    dataset: Dataset,
    out_dir: str | os.PathLike,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
) -> list[Path]:
    """Writes the generator's image for every test item as ``out_dir/<stem>.png``.

    The generator is rebuilt from its checkpoint (:func:`lib.models.load_model`) and run by
    :func:`lib.models.generate.generate_images` (uint8 ``round((x + 1) * 127.5)``); its
    ``cfg.use_instance_edge`` decides whether the items' instance edges are passed. PNGs in
    ``out_dir`` that belong to no test item are removed.

    Args:
        checkpoint: a generator checkpoint of :func:`lib.train.gan.train_gan`.
        dataset: test items ``dict(label (H, W)[, instance_edge (1, H, W)], path)`` at the evaluation size.
        out_dir: destination folder.
        batch_size: items per forward.
        device: where the generator runs.

    Returns:
        The written files, in dataset order.

    Raises:
        ValueError: two items with the same file stem, or ``batch_size < 1``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    generator = load_model(checkpoint, map_location=device)
    written = gan.generate(generator, dataset, out_dir, batch_size)
    _remove_stale(Path(out_dir), written)
    return written


def _write_photos(dataset: Dataset, indices: Sequence[int], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    seen: dict[str, str] = {}
    for i in indices:
        item = dataset[i]
        if "image" not in item:
            raise ValueError(f"item {i} ({item.get('path', '?')}) has no photo: the real-image set needs photos")
        stem = _new_stem(item, seen)
        written.append(write_image(out_dir / f"{stem}.png", to_uint8(item["image"][None])[0]))  # (3, H, W) -> (H, W, 3)
    _remove_stale(out_dir, written)
    return written


def real_test_images(dataset: Dataset, out_dir: str | os.PathLike) -> list[Path]:
    """Writes the real photo of every test item as ``out_dir/<stem>.png`` (uint8 PNG).

    The photos are the dataset's own (resized to the evaluation size exactly as the
    generators' training photos: bicubic, uint8), so ``round((x + 1) * 127.5)`` gives back the
    resized uint8 pixels; the names equal those of :func:`generate_test_images` for the
    same dataset. Stale PNGs in ``out_dir`` are removed.

    Returns:
        The written files, in dataset order.

    Raises:
        ValueError: an item without a photo, or two items with the same file stem.
    """
    return _write_photos(dataset, range(len(dataset)), Path(out_dir))


def reference_images(dataset: Dataset, n: int, seed: int, out_dir: str | os.PathLike) -> list[Path]:
    """Writes ``n`` real photos of another split (e.g. training), picked by a seeded
    permutation, as a FID reference: real vs real at the same N.

    Returns:
        The written files.
    """
    if not 1 <= n <= len(dataset):
        raise ValueError(f"reference set: n={n} must be in 1..{len(dataset)}")
    pick = np.random.default_rng(seed).permutation(len(dataset))[:n]  # (n,)
    return _write_photos(dataset, sorted(int(i) for i in pick), Path(out_dir))


def sample_grid(
    dataset: Dataset,
    columns: Mapping[str, str | os.PathLike],
    label_nc: int,
    n: int = 4,
) -> tuple[np.ndarray, list[str]]:
    """A figure of fixed test items: label colours | one column per image folder (2 px apart).

    Items are ``n`` indices spread evenly over the dataset (the same every run); each column
    shows ``<folder>/<stem>.png`` (e.g. ``{"asapnet": ..., "pix2pixhd": ..., "real": ...}``).

    Returns:
        ``(uint8 image (n*H + (n-1)*2, (1+k)*W + k*2, 3), the stems shown)``.

    Raises:
        FileNotFoundError: a column lacks an item's image (named).
    """
    picks = sorted({int(round(x)) for x in np.linspace(0, len(dataset) - 1, min(n, len(dataset)))})
    items = [dataset[i] for i in picks]
    stems = [item_stem(it) for it in items]
    colours = label_colormap(torch.stack([it["label"] for it in items]), label_nc)  # (n, H, W, 3)
    panels = [list(colours)]
    for folder in columns.values():
        col = []
        for stem in stems:
            p = Path(folder) / f"{stem}.png"
            if not p.is_file():
                raise FileNotFoundError(f"sample grid: missing {p}")
            col.append(read_image(p, "RGB"))
        panels.append(col)
    h, w = colours.shape[1:3]
    gap = 2  # pixels between panels
    grid = np.full((len(items) * h + (len(items) - 1) * gap, len(panels) * w + (len(panels) - 1) * gap, 3), 255, np.uint8)
    for i in range(len(items)):
        for j, col in enumerate(panels):
            if col[i].shape[:2] != (h, w):
                raise ValueError(f"sample grid: {list(columns)[j - 1]} image {stems[i]} is {col[i].shape[:2]}, labels {(h, w)}")
            grid[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = col[i]
    return grid, stems
