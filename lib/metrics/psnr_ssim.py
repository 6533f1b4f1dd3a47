"""PSNR and SSIM of denoised images and their mean over images (docs/design.md#denoising-protocol).

Protocol: the clean image is uint8; the noisy input is ``clean/255 + sigma/255 * N(0, 1)``
(made by the data layer, NOT clipped); the denoiser's float output is clipped to [0, 1],
scaled by 255 and rounded to uint8; PSNR and SSIM are computed by scikit-image on the full
uint8 images (no border crop) with ``data_range=255``; scores are averaged over images.

Rounding: :func:`to_uint8` rounds half to even (``np.round``), as PyTorch re-implementations
(e.g. KAIR) do. DnCNN's MATLAB test script uses ``im2uint8``, which rounds half away from zero;
the two differ only on values exactly halfway between grey levels, which a float network
output practically never hits.

SSIM uses the scikit-image defaults: a 7x7 uniform window (``gaussian_weights=False``),
sample covariance, K1=0.01, K2=0.03. This is NOT MATLAB's ``ssim`` (11x11 Gaussian window,
sigma 1.5), so our SSIM is not strictly comparable with published MATLAB values.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

__all__ = ["to_uint8", "psnr", "ssim", "denoise_scores", "summarize"]

DATA_RANGE = 255  # uint8 images: MAX_I = 255 (docs/design.md#denoising-protocol)


def to_uint8(x_float01: np.ndarray) -> np.ndarray:
    """Converts a float image in [0, 1] to uint8: ``round(255 * clip(x, 0, 1))``.

    Rounding is half to even (``np.round``); MATLAB's ``im2uint8`` rounds half away from zero.

    Args:
        x_float01: float array of any shape (values outside [0, 1] are clipped).

    Returns:
        uint8 array of the same shape.

    Raises:
        ValueError: the input holds NaN.
    """
    x = np.asarray(x_float01, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError(f"to_uint8: input of shape {x.shape} holds NaN")
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _check_pair(clean_u8: np.ndarray, test_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    clean_u8, test_u8 = np.asarray(clean_u8), np.asarray(test_u8)
    if clean_u8.shape != test_u8.shape:
        raise ValueError(f"shape mismatch: clean {clean_u8.shape} vs test {test_u8.shape}")
    for label, a in (("clean", clean_u8), ("test", test_u8)):
        if a.dtype != np.uint8:
            raise TypeError(f"{label} image must be uint8 (use to_uint8), got {a.dtype}")
    return clean_u8, test_u8


def psnr(clean_u8: np.ndarray, test_u8: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images (scikit-image, ``data_range=255``).

    ``PSNR = 10 * log10(255^2 / MSE)`` with ``MSE = mean((clean - test)^2)`` over all pixels
    and channels; ``inf`` for identical images.

    Args:
        clean_u8: reference image, uint8, HxW or HxWxC.
        test_u8: image to score, uint8, same shape.

    Returns:
        PSNR in dB.

    Raises:
        ValueError: the shapes differ (both are named).
        TypeError: an image is not uint8.
    """
    clean_u8, test_u8 = _check_pair(clean_u8, test_u8)
    if np.array_equal(clean_u8, test_u8):
        return float("inf")  # MSE = 0; skimage would return inf with a divide warning
    return float(peak_signal_noise_ratio(clean_u8, test_u8, data_range=DATA_RANGE))


def ssim(clean_u8: np.ndarray, test_u8: np.ndarray) -> float:
    """Structural similarity of two uint8 images (scikit-image defaults, ``data_range=255``).

    Mean over 7x7 uniform windows of
    ``(2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))`` with
    ``C1 = (0.01 * 255)^2``, ``C2 = (0.03 * 255)^2``; for HxWxC images the mean over channels
    (``channel_axis=-1``).

    Args:
        clean_u8: reference image, uint8, HxW or HxWxC (each side at least 7).
        test_u8: image to score, uint8, same shape.

    Returns:
        SSIM in [-1, 1]; 1 for identical images.

    Raises:
        ValueError: the shapes differ (both are named).
        TypeError: an image is not uint8.
    """
    clean_u8, test_u8 = _check_pair(clean_u8, test_u8)
    channel_axis = -1 if clean_u8.ndim == 3 else None
    return float(structural_similarity(clean_u8, test_u8, data_range=DATA_RANGE, channel_axis=channel_axis))


def denoise_scores(clean_u8: np.ndarray, output_float01: np.ndarray) -> dict:
    """Scores a denoiser output by the protocol: clip, round to uint8, then PSNR and SSIM.

    Args:
        clean_u8: clean image, uint8, HxW or HxWxC.
        output_float01: denoiser output in [0, 1] (float, same shape; clipped here).

    Returns:
        ``{"psnr": float, "ssim": float}``.
    """
    test_u8 = to_uint8(output_float01)
    return {"psnr": psnr(clean_u8, test_u8), "ssim": ssim(clean_u8, test_u8)}


def summarize(per_image: pd.DataFrame, by: Sequence[str] = ("sigma",)) -> pd.DataFrame:
    """Mean scores over images per group of per-image rows (the protocol's "mean over images").

    Args:
        per_image: one row per (image, ...) with columns ``name, psnr, ssim, psnr_noisy,
            seconds`` and those of ``by``.
        by: the grouping columns; groups keep the order in which they first appear.

    Returns:
        Columns ``*by, n_images, psnr, ssim, psnr_noisy, seconds_per_image``: ``n_images`` the
        number of distinct image names, the others arithmetic means.

    Raises:
        KeyError: ``per_image`` lacks a needed column (named).
    """
    scores = ["psnr", "ssim", "psnr_noisy", "seconds"]
    cols = [*by, "n_images", "psnr", "ssim", "psnr_noisy", "seconds_per_image"]
    missing = [c for c in [*by, "name", *scores] if c not in per_image.columns]
    if missing:
        raise KeyError(f"summarize: missing columns {missing}")
    if per_image.empty:
        return pd.DataFrame(columns=cols)
    out = (
        per_image.groupby(list(by), sort=False)
        .agg(n_images=("name", "nunique"), psnr=("psnr", "mean"), ssim=("ssim", "mean"),
             psnr_noisy=("psnr_noisy", "mean"), seconds_per_image=("seconds", "mean"))
        .reset_index()
    )
    return out[cols]
