"""Spatially varying filters predicted on a grid of tiles and applied at full resolution: the
kernel-prediction head of the ASAPNet denoiser (:mod:`lib.models.asapnet_denoise`).

The low-res stream predicts, for every cell of its grid (one cell per k x k tile), the logits of
a ``s x s`` filter; :func:`normalize_kernels` turns them into weights that sum to one (softmax
over the taps, as KPCN, Bako et al. 2017, and KPN, Mildenhall et al. 2018), so the output is a
weighted average of the noisy neighbourhood and averages noise by construction. The weights
reach the pixels by *slicing* the grid (:func:`slice_tiles`): ``"nearest"`` gives every pixel its
tile's filter (ASAPNet's constant per-tile parameters); ``"bilinear"`` interpolates the weights
between tile centres (continuous across tile borders, as the upsampled kernels of MalleConv,
Jiang et al. 2022); with an intensity axis (:func:`slice_bilateral`) the grid is a bilateral
grid sliced trilinearly at (x, y, guide intensity), as HDRNet (Gharbi et al. 2017). Convex
combinations of normalised weights are normalised, so every slicing keeps the weights summing
to one. :func:`apply_kernels` runs the per-pixel filters.

Channel layout of a grid of ``G`` filter groups (1: one filter for every image channel, C: one
per channel), ``T = s * s`` taps (row-major in the s x s window) and ``D`` intensity bins
(1 without an intensity axis): channel ``(g T + t) D + d``.
"""
from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "SLICINGS",
    "GUIDES",
    "normalize_kernels",
    "slice_tiles",
    "slice_bilateral",
    "guide_map",
    "apply_kernels",
]

SLICINGS = ("nearest", "bilinear")  # how per-tile weights reach the pixels
GUIDES = ("noisy", "smooth")  # bilateral-grid guide: the channel mean of the noisy image, or it blurred
BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)  # the "smooth" guide's separable blur (/16): noise std x 0.27 in 2-D


def normalize_kernels(logits: Tensor, groups: int, taps: int, bins: int = 1) -> Tensor:
    """Softmax over the taps of every filter of a grid, in float32.

    Args:
        logits: (B, G*T*D, h, w), channel ``(g T + t) D + d``.
        groups: G.
        taps: T.
        bins: D.

    Returns:
        (B, G*T*D, h, w) float32 weights, summing to one over t for every (g, d, cell).
    """
    b, p, h, w = logits.shape
    if p != groups * taps * bins:
        raise ValueError(f"kernel logits have {p} channels; {groups} groups x {taps} taps x {bins} bins need "
                         f"{groups * taps * bins}")
    z = logits.float().view(b, groups, taps, bins, h, w)  # (B, G, T, D, h, w)
    return torch.softmax(z, dim=2).view(b, p, h, w)  # (B, G*T*D, h, w)


def slice_tiles(grid: Tensor, k: int, mode: str) -> Tensor:
    """Per-pixel values of a grid of k x k tiles: each tile's own (``"nearest"``) or interpolated
    bilinearly between tile centres (``"bilinear"``; at the image border the nearest centre's
    value is held), (B, P, h, w) -> (B, P, h k, w k).

    The bilinear value at pixel (y, x) is read at grid position ``((y + 0.5) / k - 0.5,
    (x + 0.5) / k - 0.5)``, the cell centres lying at integer positions: continuous in (y, x)
    except for the one pixel step, also across tile borders.
    """
    if mode not in SLICINGS:
        raise ValueError(f"slicing={mode!r} must be one of {SLICINGS}")
    if mode == "nearest":
        return grid.repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1)  # (B, P, h k, w k)
    return F.interpolate(grid, scale_factor=k, mode="bilinear", align_corners=False)  # (B, P, h k, w k)


def slice_bilateral(grid: Tensor, guide: Tensor, k: int) -> Tensor:
    """Trilinear slicing of a bilateral grid (HDRNet): bilinear between tile centres as
    :func:`slice_tiles`, linear between the intensity bins at the pixel's guide value.

    Bin ``d`` of ``D`` is centred on guide value ``(d + 0.5) / D``; guides outside
    ``[0.5 / D, 1 - 0.5 / D]`` read the first or last bin (as positions outside the grid).

    Args:
        grid: (B, P, D, h, w) (a :func:`normalize_kernels` output viewed with D split off).
        guide: (B, 1, h k, w k), intensities in about [0, 1].
        k: tile size.

    Returns:
        (B, P, h k, w k), in the grid's dtype (computed in float32).
    """
    b, p, d, h, w = grid.shape
    hh, ww = h * k, w * k
    if guide.shape != (b, 1, hh, ww):
        raise ValueError(f"guide shape {tuple(guide.shape)} is not ({b}, 1, {hh}, {ww})")
    dev = grid.device
    ys = (torch.arange(hh, device=dev, dtype=torch.float32) + 0.5) * (2.0 / hh) - 1  # (H,): row centres in [-1, 1]
    xs = (torch.arange(ww, device=dev, dtype=torch.float32) + 0.5) * (2.0 / ww) - 1  # (W,)
    zs = guide[:, 0].float() * 2 - 1  # (B, H, W): bin centres at (d + 0.5) / D
    coords = torch.stack([xs.view(1, 1, ww).expand(b, hh, ww), ys.view(1, hh, 1).expand(b, hh, ww), zs], dim=-1)
    # coordinates need float32 (bf16 cannot tell neighbouring pixels apart): no autocast here
    no_autocast = torch.autocast(dev.type, enabled=False) if dev.type in ("cpu", "cuda") else nullcontext()
    with no_autocast:
        out = F.grid_sample(grid.float(), coords.unsqueeze(1), mode="bilinear", padding_mode="border",
                            align_corners=False)  # (B, P, 1, H, W); coords (B, 1, H, W, 3) as (x, y, z)
    return out[:, :, 0].to(grid.dtype)  # (B, P, H, W)


def _pad(x: Tensor, r: int) -> Tensor:
    """Pads (B, C, H, W) by ``r`` on every side: reflect, replicate where the image is too small."""
    mode = "reflect" if r < min(x.shape[-2:]) else "replicate"
    return F.pad(x, (r, r, r, r), mode=mode)  # (B, C, H + 2r, W + 2r)


def guide_map(x: Tensor, kind: str) -> Tensor:
    """The bilateral-grid guide of a noisy image, (B, C, H, W) -> (B, 1, H, W): the channel mean
    (``"noisy"``), or the channel mean blurred by the separable binomial [1 4 6 4 1] / 16
    (``"smooth"``; reflect padding), which lowers the noise std about 3.7 times."""
    if kind not in GUIDES:
        raise ValueError(f"guide={kind!r} must be one of {GUIDES}")
    g = x.float().mean(dim=1, keepdim=True)  # (B, 1, H, W)
    if kind == "noisy":
        return g
    taps = torch.tensor(BINOMIAL, device=x.device) / sum(BINOMIAL)  # (5,)
    g = _pad(g, len(BINOMIAL) // 2)  # (B, 1, H + 4, W + 4)
    g = F.conv2d(g, taps.view(1, 1, 1, -1))  # (B, 1, H + 4, W)
    return F.conv2d(g, taps.view(1, 1, -1, 1))  # (B, 1, H, W)


def apply_kernels(x: Tensor, weights: Tensor) -> Tensor:
    """Per-pixel filtering: ``out[c, y, x] = sum_t w[g(c), t, y, x] * x_pad[c, y + dy_t, x + dx_t]``
    over the s x s window centred on the pixel (reflect padding), ``g(c) = c`` for per-channel
    filters, 0 for a shared one.

    A loop over the T shifted views of the padded input, accumulating ``weight * shift``: no
    unfolded (T x larger) copy of the image; in-place when autograd does not record.

    Args:
        x: (B, C, H, W).
        weights: (B, G, T, H, W), G = 1 or C, T = s * s with s odd.

    Returns:
        (B, C, H, W) in the promoted dtype of ``x`` and ``weights``.
    """
    b, c, h, w = x.shape
    _, g, taps, hw, ww = weights.shape
    s = int(round(taps**0.5))
    if s * s != taps or s % 2 == 0 or g not in (1, c) or (hw, ww) != (h, w) or weights.shape[0] != b:
        raise ValueError(f"weights shape {tuple(weights.shape)} is not ({b}, 1 or {c}, s*s with s odd, {h}, {w})")
    xp = _pad(x, s // 2)  # (B, C, H + s - 1, W + s - 1)
    record = torch.is_grad_enabled() and (x.requires_grad or weights.requires_grad)
    out = None if record else torch.zeros(b, c, h, w, device=x.device, dtype=torch.promote_types(x.dtype, weights.dtype))
    for t in range(taps):
        dy, dx = divmod(t, s)
        shifted = xp[:, :, dy : dy + h, dx : dx + w]  # (B, C, H, W) view: neighbour (dy - s//2, dx - s//2)
        wt = weights[:, :, t]  # (B, G, H, W), broadcast over C when G = 1
        if record:
            out = wt * shifted if out is None else out + wt * shifted
        else:
            out.addcmul_(wt, shifted)
    return out
