"""The denoising test protocol: test sets, test noise, the evaluation loop and published values.

The protocol (docs/design.md#denoising-protocol, the DnCNN test script): clean uint8 ->
[0, 1]; noise ``sigma/255 * N(0, 1)`` with a fixed seed per (image, sigma); the noisy input
is not clipped; the output is clipped to [0, 1] and rounded to uint8; PSNR and SSIM
(:mod:`lib.metrics.psnr_ssim`) on the full image; mean over images
(:func:`lib.metrics.psnr_ssim.summarize`). The official-weights stage
(:mod:`lib.denoise.official`) and the study's evaluation (:mod:`lib.denoise.evaluate`) both
run every denoiser through :func:`evaluate_denoiser`, and every network through
:func:`denoise` (numpy image in, numpy image out).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from lib.data import denoise as dn_data
from lib.metrics.psnr_ssim import denoise_scores, psnr, summarize, to_uint8

__all__ = [
    "PROTOCOL",
    "TEST_SETS",
    "PUBLISHED",
    "load_test_set",
    "noise_fn",
    "evaluate_denoiser",
    "denoise",
    "denoise_psnr",
    "summarize",
    "published_psnr",
]

PROTOCOL = (
    "noise sigma/255*N(0,1), fixed seed per image and sigma, noisy input not clipped; "
    "output clipped to [0,1] and rounded to uint8; PSNR/SSIM (scikit-image, data_range 255) "
    "on the full image; mean over images"
)

# test set -> (folder under data/raw, image mode)
TEST_SETS: dict[str, tuple[str, str]] = {
    "bsd68": ("bsd68", "L"),
    "set12": ("set12", "L"),
    "cbsd68": ("cbsd68", "RGB"),
}

# Published average PSNR (dB) by noise level sigma (on the 0..255 scale).
_PAPER = "Zhang et al., IEEE TIP 2017 (DnCNN)"
PUBLISHED: dict[str, dict] = {
    "dncnn_s": {
        "dataset": "BSD68",
        "psnr": {15: 31.73, 25: 29.23, 50: 26.23},
        "source": f"{_PAPER}, Table II (BSD68, gray)",
    },
    "dncnn_b": {
        "dataset": "BSD68",
        "psnr": {15: 31.61, 25: 29.16, 50: 26.23},
        "source": f"{_PAPER}, Table II (BSD68, gray)",
    },
    "bm3d": {
        "dataset": "BSD68",
        "psnr": {15: 31.07, 25: 28.57, 50: 25.62},
        "source": f"{_PAPER}, Table II (BSD68, gray)",
    },
    "cdncnn_b": {
        "dataset": "CBSD68",
        "psnr": {15: 33.89, 25: 31.23, 50: 27.92},
        "source": f"{_PAPER}, color denoising table (CBSD68)",
    },
    "cbm3d": {
        "dataset": "CBSD68",
        "psnr": {15: 33.52, 25: 30.71, 50: 27.38},
        "source": f"{_PAPER}, color denoising table (CBSD68)",
    },
}

# (test set, denoiser: an official model key of lib.denoise.official, or bm3d) -> key of PUBLISHED
_PUBLISHED_KEY = {
    ("bsd68", "dncnn_s"): "dncnn_s",
    ("bsd68", "dncnn_b_gray"): "dncnn_b",
    ("cbsd68", "cdncnn_b_color"): "cdncnn_b",
    ("bsd68", "bm3d"): "bm3d",
    ("cbsd68", "bm3d"): "cbm3d",
}


def load_test_set(name: str, raw_dir: str | Path, max_images: int = 0, crop: int = 0) -> list[tuple[str, np.ndarray]]:
    """Loads a test set as ``(name, uint8 image)`` pairs.

    Args:
        name: a key of :data:`TEST_SETS`.
        raw_dir: the ``data/raw`` folder.
        max_images: keep the first N images (0 = all).
        crop: centre-crop each image to ``crop`` x ``crop`` (0 = full image).
    """
    if name not in TEST_SETS:
        raise KeyError(f"unknown test set {name!r}; known: {', '.join(TEST_SETS)}")
    if max_images < 0 or crop < 0:
        raise ValueError(f"max_images={max_images} and crop={crop} must be >= 0 (0 = all images, full size)")
    folder, mode = TEST_SETS[name]
    images = dn_data.load_set(Path(raw_dir) / folder, mode)
    if max_images:
        images = images[:max_images]
    if crop:
        out = []
        for img_name, img in images:
            h, w = img.shape[:2]
            top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
            out.append((img_name, np.ascontiguousarray(img[top : top + crop, left : left + crop])))
        images = out
    return images


def noise_fn(seed: int) -> Callable[[np.ndarray, float, str], np.ndarray]:
    """The test-noise function of the protocol: one derived seed per (image name, sigma)."""

    def noisy(clean_u8: np.ndarray, sigma: float, name: str) -> np.ndarray:
        return dn_data.noisy_test_image(clean_u8, sigma, dn_data.test_noise_seed(seed, name, sigma))

    return noisy


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def evaluate_denoiser(
    denoise_fn: Callable[[np.ndarray], np.ndarray],
    images: Sequence[tuple[str, np.ndarray]],
    sigmas: Iterable[float],
    seed: int | None,
    noisy_fn: Callable[[np.ndarray, float, str], np.ndarray],
    *,
    progress: bool = True,
) -> pd.DataFrame:
    """Runs a denoiser over images x noise levels and scores every output.

    For each (image, sigma): ``noisy = noisy_fn(clean_u8, sigma, name)`` (float32, not clipped;
    the data layer makes it reproducible), ``out = denoise_fn(noisy)`` timed with
    ``time.perf_counter``, then :func:`lib.metrics.psnr_ssim.denoise_scores`. ``psnr_noisy`` is
    the PSNR of the noisy input after ``to_uint8`` (so clipped and rounded, like ``im2uint8``
    in DnCNN's test script).

    Args:
        denoise_fn: noisy float32 HxW[xC] -> float array (numpy or torch) of the same shape.
        images: ``(name, clean_u8)`` pairs.
        sigmas: noise levels on the 0-255 scale.
        seed: if not None, ``torch`` and ``numpy`` global RNGs are seeded with it once before
            the loop (for stochastic denoisers); the noise itself comes from ``noisy_fn``.
            Stored in ``df.attrs["seed"]``.
        noisy_fn: ``(clean_u8, sigma, name) -> float32 noisy image`` (:func:`noise_fn`).
        progress: show a tqdm bar.

    Returns:
        DataFrame, one row per (image, sigma), columns
        ``name, sigma, psnr, ssim, psnr_noisy, seconds``.

    Raises:
        ValueError: an output's shape differs from its input's (names the image and sigma).
    """
    from tqdm import tqdm

    sigmas = list(sigmas)
    if seed is not None:
        torch.manual_seed(seed)
        np.random.seed(seed)
    rows = []
    bar = tqdm(total=len(images) * len(sigmas), desc="denoise", disable=not progress)
    for name, clean_u8 in images:
        for sigma in sigmas:
            noisy = _to_numpy(noisy_fn(clean_u8, sigma, name))
            t0 = time.perf_counter()
            out = _to_numpy(denoise_fn(noisy))
            seconds = time.perf_counter() - t0
            if out.shape != noisy.shape:
                raise ValueError(
                    f"denoiser output shape {out.shape} differs from input {noisy.shape} "
                    f"(image {name}, sigma {sigma})"
                )
            scores = denoise_scores(clean_u8, out)
            rows.append(
                {
                    "name": name,
                    "sigma": sigma,
                    "psnr": scores["psnr"],
                    "ssim": scores["ssim"],
                    "psnr_noisy": psnr(clean_u8, to_uint8(noisy)),
                    "seconds": seconds,
                }
            )
            bar.update(1)
    bar.close()
    df = pd.DataFrame(rows, columns=["name", "sigma", "psnr", "ssim", "psnr_noisy", "seconds"])
    df.attrs["seed"] = seed
    return df


def denoise(model: nn.Module, noisy: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """Denoises one image with any denoiser (numpy in, numpy out) under ``torch.inference_mode``.

    Args:
        model: a denoiser taking (B, C, H, W) in [0, 1] (and ``sigma=`` when given); run on its
            own device, in its memory layout (channels-last models get a channels-last input)
            and in the mode it is in (call ``.eval()`` first for BN models).
        noisy: float (H, W) gray or (H, W, C) color image in [0, 1] plus noise, not clipped.
        sigma: the noise level (0..255), passed as ``model(x, sigma=(1,) tensor)``; None calls
            ``model(x)``. Blind models (DnCNN) ignore it.

    Returns:
        float32 array of the same shape, not clipped.

    Raises:
        ValueError: ``noisy`` is not a float array of 2 or 3 dimensions.
    """
    noisy = np.asarray(noisy)
    if not np.issubdtype(noisy.dtype, np.floating):
        raise ValueError(f"noisy must be a float image in [0, 1], got dtype {noisy.dtype}")
    if noisy.ndim not in (2, 3):
        raise ValueError(f"noisy must be (H, W) or (H, W, C), got shape {noisy.shape}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.from_numpy(np.ascontiguousarray(noisy, dtype=np.float32)).to(device)
    x = x[None, None] if noisy.ndim == 2 else x.permute(2, 0, 1)[None]  # (1, C, H, W)
    if param is not None and param.ndim == 4 and param.is_contiguous(memory_format=torch.channels_last):
        x = x.contiguous(memory_format=torch.channels_last)  # match a channels-last model (faster convs on CPU)
    with torch.inference_mode():
        if sigma is None:
            y = model(x)  # (1, C, H, W)
        else:
            y = model(x, sigma=torch.full((1,), float(sigma), device=device))  # (1, C, H, W)
    y = y[0, 0] if noisy.ndim == 2 else y[0].permute(1, 2, 0)  # (H, W) or (H, W, C)
    return y.float().cpu().numpy()


def denoise_psnr(clean_u8: np.ndarray, output: np.ndarray) -> float:
    """PSNR (dB) of a float output in [0, 1] after the protocol's clip and uint8 rounding."""
    return psnr(clean_u8, to_uint8(np.asarray(output)))


def published_psnr(set_name: str, denoiser: str, sigma: float) -> float | None:
    """The published mean PSNR of ``denoiser`` on the *whole* ``set_name`` at ``sigma`` (DnCNN
    paper), or None where the paper gives none.

    Args:
        set_name: a key of :data:`TEST_SETS`.
        denoiser: an official model key (``dncnn_s``, ``dncnn_b_gray``, ``cdncnn_b_color``) or
            ``bm3d`` (BM3D on gray sets, CBM3D on color ones).
        sigma: noise level (0..255).
    """
    key = _PUBLISHED_KEY.get((set_name, denoiser))
    return None if key is None else PUBLISHED[key]["psnr"].get(int(sigma))
