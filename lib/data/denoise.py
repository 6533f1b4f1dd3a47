"""Denoising data: the BSD image sets, the fixed test noise and the training patch sampler.

Noise model (DnCNN; docs/design.md#denoising-protocol): clean ``uint8`` image ``x`` -> ``x / 255`` in [0, 1];
noisy ``y = x / 255 + sigma / 255 * n`` with ``n ~ N(0, 1)`` per pixel and channel, NOT
clipped. ``sigma`` is always given in 0..255 units.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from lib.data.images import list_images, read_image
from lib.data.transforms import NUM_AUGMENT_MODES, augment, sample_rng

__all__ = [
    "PatchDataset",
    "step_patch_size",
    "load_set",
    "load_named_set",
    "test_noise_seed",
    "noisy_test_image",
    "SETS",
]

# name -> (mode, role); DnCNN paper: Train400 / BSD68 / Set12 (gray), CBSD432 / CBSD68 (color)
SETS: dict[str, tuple[str, str]] = {
    "train400": ("L", "train"),
    "cbsd432": ("RGB", "train"),
    "bsd68": ("L", "test"),
    "set12": ("L", "test"),
    "cbsd68": ("RGB", "test"),
}
_SIZE_STREAM = 2  # SeedSequence spawn key of the per-step patch side (the loop's data order uses 1)


def load_set(root: str | os.PathLike, mode: str) -> list[tuple[str, np.ndarray]]:
    """Loads every image of a folder.

    Args:
        root: the folder.
        mode: ``"L"`` or ``"RGB"``.

    Returns:
        ``[(file name, uint8 array (H, W) or (H, W, 3)), ...]`` sorted by name.
    """
    return [(p.name, read_image(p, mode)) for p in list_images(root)]


def load_named_set(raw_root: str | os.PathLike, name: str) -> list[tuple[str, np.ndarray]]:
    """Loads ``<raw_root>/<name>`` with the mode of :data:`SETS` (e.g. ``bsd68`` gray)."""
    if name not in SETS:
        raise KeyError(f"unknown denoising set {name!r}; known: {', '.join(SETS)}")
    return load_set(Path(raw_root) / name, SETS[name][0])


def test_noise_seed(seed: int, name: str, sigma: float) -> int:
    """The noise seed of one test image: stable across runs, processes and platforms.

    ``int.from_bytes(sha256(f"{seed}/{name}/{float(sigma)!r}")[:8], "big")`` (sigma is
    normalised with ``float`` so ``25`` and ``25.0`` give the same seed).
    """
    text = f"{int(seed)}/{name}/{float(sigma)!r}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


test_noise_seed.__test__ = False  # not a pytest test when imported into a test module


def noisy_test_image(clean_u8: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Adds white Gaussian noise: ``clean / 255 + sigma / 255 * N(0, 1)``, not clipped.

    Noise is drawn in float64 by ``np.random.default_rng(seed).standard_normal(shape)``; the
    result is cast to float32.

    Args:
        clean_u8: ``uint8`` image (any shape).
        sigma: noise standard deviation in 0..255 units.
        seed: e.g. :func:`test_noise_seed`.

    Returns:
        float32 array of the input's shape (values may fall outside [0, 1]).
    """
    clean_u8 = np.asarray(clean_u8)
    if clean_u8.dtype != np.uint8:
        raise ValueError(f"noisy_test_image expects uint8, got {clean_u8.dtype}")
    noise = np.random.default_rng(seed).standard_normal(clean_u8.shape)
    return (clean_u8.astype(np.float64) / 255.0 + float(sigma) / 255.0 * noise).astype(np.float32)


def step_patch_size(sizes: Sequence[int], seed: int, step: int) -> int:
    """The patch side of training step ``step``: ``sizes[0]`` for one size, else one of ``sizes``
    drawn uniformly from ``(seed, step)`` (its own random stream), so every patch of a batch has
    the same side and a resumed run draws the same sides."""
    if len(sizes) == 1:
        return int(sizes[0])
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(step)], spawn_key=(_SIZE_STREAM,))
    return int(sizes[int(np.random.default_rng(ss).integers(len(sizes)))])


class PatchDataset(Dataset):
    """Random noisy/clean training patches.

    Sample ``i`` of epoch ``e`` is fixed by ``(seed, e, i)``: an image chosen uniformly, a
    random crop, one of the 8 dihedral modes, ``sigma ~ U[lo, hi]`` (or the fixed value), fresh
    noise ``sigma / 255 * N(0, 1)`` (not clipped). The crop side is ``patch_size``, or, with
    several sizes, that of the sample's training step (:func:`step_patch_size`; the items of
    step ``s`` are ``k*B .. (k+1)*B - 1`` of epoch ``s // (length // B)``, ``k = s mod (length
    // B)``, as :func:`lib.train.loop.batch_indices` takes them in order), so a batch shares one
    side.

    Item: ``dict(clean=FloatTensor (C, P, P) in [0, 1], noisy=FloatTensor (C, P, P),
    sigma=0-dim FloatTensor in 0..255 units)``.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        patch_size: int | Sequence[int] = 40,  # DnCNN paper: 40x40 patches for DnCNN-S
        patches_per_epoch: int = 128 * 1600,  # DnCNN paper: 128 x 1600 patches (DnCNN-S)
        sigma: float | Sequence[float] = 25.0,  # DnCNN-S sigma 25; blind: (0, 55)
        seed: int = 0,
        batch_size: int = 1,
    ):
        """Args:
        images: ``uint8`` arrays, all ``(H, W)`` or all ``(H, W, 3)``.
        patch_size: patch side ``P``, or several sides (one per training step, see above).
        patches_per_epoch: dataset length.
        sigma: fixed sigma or ``(lo, hi)`` (0..255 units).
        seed: base seed.
        batch_size: patches per training step (only used with several sides).
        """
        if not images:
            raise ValueError("PatchDataset: no images")
        sizes = (int(patch_size),) if isinstance(patch_size, (int, np.integer)) else tuple(int(p) for p in patch_size)
        if not sizes or min(sizes) < 1:
            raise ValueError(f"PatchDataset: patch sides must be >= 1, got {list(sizes)}")
        if batch_size < 1 or (len(sizes) > 1 and patches_per_epoch < batch_size):
            raise ValueError(f"PatchDataset: batch_size {batch_size} must be >= 1 and <= patches_per_epoch")
        self.images = [np.asarray(im) for im in images]
        nd = {im.ndim for im in self.images}
        if len(nd) != 1 or nd - {2, 3}:
            raise ValueError(f"PatchDataset: images must all be (H, W) or all (H, W, 3), got ndims {sorted(nd)}")
        for i, im in enumerate(self.images):
            if im.dtype != np.uint8:
                raise ValueError(f"PatchDataset: image {i} is {im.dtype}, expected uint8")
            if im.shape[0] < max(sizes) or im.shape[1] < max(sizes):
                raise ValueError(f"PatchDataset: image {i} of shape {im.shape} is smaller than patch {max(sizes)}")
        if isinstance(sigma, (int, float)):
            lo = hi = float(sigma)
        else:
            lo, hi = (float(s) for s in sigma)
        if not 0 <= lo <= hi:
            raise ValueError(f"PatchDataset: sigma range must satisfy 0 <= lo <= hi, got ({lo}, {hi})")
        self.sizes, self.length, self.batch_size = sizes, int(patches_per_epoch), int(batch_size)
        self.patch_size = max(sizes)
        self.sigma_range = (lo, hi)
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        """Selects the patches of ``epoch``."""
        self.epoch = int(epoch)

    def fingerprint(self) -> str:
        """The identity of the data: SHA-256 of the training images (shape, dtype, pixels), in order."""
        h = hashlib.sha256()
        for im in self.images:
            h.update(f"{im.shape}{im.dtype}".encode())
            h.update(np.ascontiguousarray(im).tobytes())
        return h.hexdigest()

    def __len__(self) -> int:
        return self.length

    def side(self, index: int) -> int:
        """The patch side of sample ``index`` of the current epoch."""
        if len(self.sizes) == 1:
            return self.sizes[0]
        per_epoch = self.length // self.batch_size
        return step_patch_size(self.sizes, self.seed, self.epoch * per_epoch + index // self.batch_size)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(f"PatchDataset index {index} out of range 0..{self.length - 1}")
        rng = sample_rng(self.seed, self.epoch, index)
        im = self.images[int(rng.integers(len(self.images)))]
        p = self.side(index)
        top = int(rng.integers(im.shape[0] - p + 1))
        left = int(rng.integers(im.shape[1] - p + 1))
        patch = augment(im[top : top + p, left : left + p], int(rng.integers(NUM_AUGMENT_MODES)))
        lo, hi = self.sigma_range
        sigma = lo if lo == hi else float(rng.uniform(lo, hi))
        clean = patch.astype(np.float32) / 255.0
        clean = clean[None] if clean.ndim == 2 else clean.transpose(2, 0, 1)  # (C, P, P)
        noise = rng.standard_normal(clean.shape).astype(np.float32)
        noisy = clean + np.float32(sigma / 255.0) * noise
        return dict(
            clean=torch.from_numpy(np.ascontiguousarray(clean)),
            noisy=torch.from_numpy(np.ascontiguousarray(noisy)),
            sigma=torch.tensor(sigma, dtype=torch.float32),
        )
