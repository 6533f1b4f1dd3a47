"""BM3D / CBM3D, the classical denoising baseline, through the ``bm3d`` package.

BM3D (Dabov, Foi, Katkovnik, Egiazarian, IEEE TIP 2007) groups similar blocks, filters each
3-D group by collaborative hard thresholding and then Wiener filtering. CBM3D (ICIP 2007)
matches blocks on the luminance of an opponent colour transform and filters every channel.
Both are run *non-blind*, at the true noise level: this is the protocol of the published
baseline rows (DnCNN paper, Table II and the CBSD68 table), unlike the blind DnCNN-B.

The ``bm3d`` package (Makinen, Azzari, Foi 2020 implementation) takes images in the units of
``sigma_psd``; here images are in [0, 1] (noise not clipped), so ``sigma_psd = sigma / 255``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["bm3d_denoise"]

PIXEL_RANGE = 255.0  # sigma is given in 0..255 units (docs/design.md#denoising-protocol)


def bm3d_denoise(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """Denoises one image with BM3D (gray) or CBM3D (color) at the true noise level.

    Gray: ``bm3d.bm3d(noisy, sigma_psd=sigma / 255)``; color: ``bm3d.bm3d_rgb(noisy,
    sigma / 255)`` (opponent colour transform, the package default). Both use the package's
    default ("np", normal) profile and both stages (hard thresholding, then Wiener).

    Args:
        noisy: float image (H, W) or (H, W, 3), in [0, 1] plus white Gaussian noise, not
            clipped.
        sigma: the noise standard deviation in 0..255 units (> 0).

    Returns:
        The denoised image, float32, same shape as ``noisy``, not clipped.

    Raises:
        ValueError: ``noisy`` is not a float (H, W) or (H, W, 3) array, or ``sigma <= 0``.
    """
    import bm3d  # imported here: the package is slow to import and only this baseline needs it

    noisy = np.asarray(noisy)
    if not np.issubdtype(noisy.dtype, np.floating):
        raise ValueError(f"noisy must be a float image in [0, 1], got dtype {noisy.dtype}")
    if not (noisy.ndim == 2 or (noisy.ndim == 3 and noisy.shape[2] == 3)):
        raise ValueError(f"noisy must be (H, W) or (H, W, 3), got shape {noisy.shape}")
    sigma = float(sigma)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 (0..255 units), got {sigma}")
    z = np.ascontiguousarray(noisy, dtype=np.float64)
    if z.ndim == 2:
        out = bm3d.bm3d(z, sigma_psd=sigma / PIXEL_RANGE)  # (H, W)
    else:
        out = bm3d.bm3d_rgb(z, sigma / PIXEL_RANGE)  # (H, W, 3)
    return np.asarray(out, dtype=np.float32).reshape(noisy.shape)
