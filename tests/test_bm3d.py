"""BM3D / CBM3D wrapper: PSNR gain on small images (synthetic and a real BSD68 crop), shapes,
dtypes, input validation."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from lib.data.denoise import noisy_test_image
from lib.models.bm3d import bm3d_denoise

SIGMA = 25.0


def _smooth_u8(h: int = 48, w: int = 48, channels: int = 0) -> np.ndarray:
    """A smooth synthetic image (uint8): low-frequency sinusoids and a soft edge."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = 0.5 + 0.25 * np.sin(2 * np.pi * 1.5 * x) * np.cos(2 * np.pi * y) + 0.15 * np.tanh(8 * (x - y))
    if channels:
        base = np.stack([base, base[::-1], 1 - base], axis=-1)  # (H, W, 3), channels differ
    return np.round(np.clip(base, 0, 1) * 255).astype(np.uint8)


def _psnr(clean_u8: np.ndarray, img: np.ndarray) -> float:
    """Protocol (docs/design.md#denoising-protocol): clip to [0, 1], round to uint8, PSNR against the clean uint8 image."""
    out = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    return peak_signal_noise_ratio(clean_u8, out, data_range=255)


@pytest.mark.parametrize("channels", [0, 3])
def test_bm3d_improves_psnr_on_smooth_image(channels):
    clean = _smooth_u8(channels=channels)
    noisy = noisy_test_image(clean, SIGMA, seed=1)
    den = bm3d_denoise(noisy, SIGMA)
    assert den.shape == noisy.shape and den.dtype == np.float32 and np.isfinite(den).all()
    gain = _psnr(clean, den) - _psnr(clean, noisy)
    assert gain > 3.0, gain


def test_bm3d_real_bsd68_crop(data_mirror):
    clean = np.asarray(Image.open(data_mirror / "bsd68" / "test001.png").convert("L"))[100:164, 100:164]
    noisy = noisy_test_image(clean, SIGMA, seed=2)
    den = bm3d_denoise(noisy.astype(np.float64), SIGMA)  # float64 in, float32 out
    assert den.shape == clean.shape and den.dtype == np.float32
    assert _psnr(clean, den) - _psnr(clean, noisy) > 3.0


def test_bm3d_uses_the_given_sigma():
    """Non-blind: a much too small sigma leaves most of the noise in place."""
    clean = _smooth_u8()
    noisy = noisy_test_image(clean, SIGMA, seed=3)
    assert _psnr(clean, bm3d_denoise(noisy, SIGMA)) > _psnr(clean, bm3d_denoise(noisy, 2.0)) + 2.0


@pytest.mark.parametrize(
    "noisy,sigma,match",
    [
        (np.zeros((16, 16), np.uint8), 25.0, "dtype"),
        (np.zeros((16, 16, 4), np.float32), 25.0, "shape"),
        (np.zeros((2, 16, 16, 3), np.float32), 25.0, "shape"),
        (np.zeros((16, 16), np.float32), 0.0, "sigma"),
    ],
)
def test_bm3d_rejects_bad_input(noisy, sigma, match):
    with pytest.raises(ValueError, match=match):
        bm3d_denoise(noisy, sigma)
