"""Array/tensor transforms shared by the loaders: one-hot, dihedral augmentation, resizing, instance edges.

Random decisions in the datasets come from :func:`sample_rng`, a NumPy generator seeded by
``(seed, epoch, index)``: a sample is the same whatever the worker count or data order.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

__all__ = [
    "one_hot",
    "augment",
    "augment_inverse",
    "NUM_AUGMENT_MODES",
    "sample_rng",
    "resize_photo",
    "resize_label",
    "photo_to_tensor",
    "hflip",
    "instance_edges",
]

NUM_AUGMENT_MODES = 8  # 4 rotations x 2 flips (dihedral group D4; DnCNN data augmentation)


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """One-hot encodes integer label maps along a new channel axis.

    ``out[..., c, h, w] = 1 if labels[..., h, w] == c else 0``.

    Args:
        labels: ``(B, H, W)`` (or ``(H, W)``) integer tensor with values in ``[0, num_classes)``.
        num_classes: number of channels ``C``.

    Returns:
        ``(B, C, H, W)`` (or ``(C, H, W)``) float tensor on the device of ``labels``.

    Raises:
        ValueError: a label is ``< 0`` or ``>= num_classes`` (the bad value is named).
    """
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"one_hot: labels must be an integer tensor, got {labels.dtype}")
    if labels.dim() not in (2, 3):
        raise ValueError(f"one_hot: labels must be (B, H, W) or (H, W), got shape {tuple(labels.shape)}")
    if labels.numel():
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0:
            raise ValueError(f"one_hot: label id {lo} < 0")
        if hi >= num_classes:
            raise ValueError(f"one_hot: label id {hi} >= num_classes={num_classes}")
    idx = labels.long().unsqueeze(-3)  # (B, 1, H, W)
    shape = list(idx.shape)
    shape[-3] = num_classes
    out = torch.zeros(shape, dtype=torch.float32, device=labels.device)  # (B, C, H, W)
    return out.scatter_(-3, idx, 1.0)


def _spatial_axes(x) -> tuple[int, int]:
    """NumPy arrays are ``(H, W[, C])``; tensors are ``(..., H, W)``."""
    if isinstance(x, torch.Tensor):
        if x.dim() < 2:
            raise ValueError(f"augment: need at least 2 dims, got {tuple(x.shape)}")
        return x.dim() - 2, x.dim() - 1
    if np.ndim(x) < 2:
        raise ValueError(f"augment: need at least 2 dims, got {np.shape(x)}")
    return 0, 1


def _check_mode(mode: int) -> tuple[int, bool]:
    if not 0 <= int(mode) < NUM_AUGMENT_MODES:
        raise ValueError(f"augment: mode must be in 0..{NUM_AUGMENT_MODES - 1}, got {mode}")
    return int(mode) % 4, int(mode) >= 4


def augment(x, mode: int):
    """One of the 8 dihedral transforms: rotate by ``(mode % 4) * 90`` degrees, then mirror
    left-right when ``mode >= 4``.

    Args:
        x: NumPy ``(H, W)``/``(H, W, C)`` or tensor ``(..., H, W)``.
        mode: 0..7 (0 is the identity).

    Returns:
        The transformed array/tensor (a copy for NumPy, contiguous).
    """
    k, flip = _check_mode(mode)
    ah, aw = _spatial_axes(x)
    if isinstance(x, torch.Tensor):
        y = torch.rot90(x, k, dims=(ah, aw))
        return (torch.flip(y, dims=(aw,)) if flip else y).contiguous()
    y = np.rot90(x, k, axes=(ah, aw))
    return np.ascontiguousarray(np.flip(y, axis=aw) if flip else y)


def augment_inverse(x, mode: int):
    """Undoes :func:`augment`: ``augment_inverse(augment(x, m), m) == x``."""
    k, flip = _check_mode(mode)
    ah, aw = _spatial_axes(x)
    if isinstance(x, torch.Tensor):
        y = torch.flip(x, dims=(aw,)) if flip else x
        return torch.rot90(y, -k, dims=(ah, aw)).contiguous()
    y = np.flip(x, axis=aw) if flip else x
    return np.ascontiguousarray(np.rot90(y, -k, axes=(ah, aw)))


def hflip(x):
    """Mirrors left-right (NumPy ``(H, W[, C])`` or tensor ``(..., H, W)``); equals ``augment(x, 4)``."""
    return augment(x, 4)


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """A generator determined by ``(seed, epoch, index)`` only (NumPy SeedSequence mixing,
    stable across platforms and independent of worker count or sampling order)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(index)])


def _size_hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def resize_photo(photo: np.ndarray, size: int | Sequence[int] | None) -> np.ndarray:
    """Bicubic resize of a ``uint8`` photo to ``size`` (``int`` = square, or ``(H, W)``);
    ``None`` keeps it. Pillow's bicubic clamps to 0..255."""
    if size is None:
        return photo
    h, w = _size_hw(size)
    if photo.shape[:2] == (h, w):
        return photo
    return np.array(Image.fromarray(photo).resize((w, h), Image.Resampling.BICUBIC))  # writable copy


def resize_label(label: np.ndarray, size: int | Sequence[int] | None) -> np.ndarray:
    """Nearest-neighbour resize of an integer ``(H, W)`` map (values kept exactly); ``None`` keeps it."""
    if size is None:
        return label
    h, w = _size_hw(size)
    if label.shape == (h, w):
        return label
    img = Image.fromarray(label.astype(np.int32))  # mode I (32-bit): keeps 16-bit instance ids
    return np.asarray(img.resize((w, h), Image.Resampling.NEAREST)).astype(np.int64)


def photo_to_tensor(photo: np.ndarray) -> torch.Tensor:
    """``uint8`` ``(H, W, 3)`` -> float ``(3, H, W)`` in ``[-1, 1]`` (``x / 127.5 - 1``, as the
    official Normalize((0.5,)*3, (0.5,)*3) after ToTensor)."""
    photo = np.ascontiguousarray(photo)
    if not photo.flags.writeable:
        photo = photo.copy()
    t = torch.from_numpy(photo).permute(2, 0, 1)  # (3, H, W)
    return t.float().div_(127.5).sub_(1.0)


def instance_edges(inst) -> torch.Tensor | np.ndarray:
    """Boundary map of an instance map (pix2pixHD ``get_edges``).

    ``edge[h, w] = 1`` if ``inst[h, w]`` differs from any of its 4 neighbours, else 0.

    Args:
        inst: ``(H, W)`` (or ``(..., H, W)``) integer array or tensor.

    Returns:
        Same shape, float32 in {0, 1}; same type (NumPy or torch) as the input.
    """
    if isinstance(inst, torch.Tensor):
        return _mark_edges(torch.zeros(inst.shape, dtype=torch.bool, device=inst.device), inst).float()
    inst = np.asarray(inst)
    return _mark_edges(np.zeros(inst.shape, dtype=bool), inst).astype(np.float32)


def _mark_edges(e: Any, inst: Any) -> Any:
    """Sets ``e`` (bool, the shape of ``inst``; NumPy or torch alike) where a pixel's instance id differs
    from a 4-neighbour's; returns ``e``."""
    dx = inst[..., :, 1:] != inst[..., :, :-1]  # (..., H, W-1)
    dy = inst[..., 1:, :] != inst[..., :-1, :]  # (..., H-1, W)
    e[..., :, 1:] |= dx
    e[..., :, :-1] |= dx
    e[..., 1:, :] |= dy
    e[..., :-1, :] |= dy
    return e
