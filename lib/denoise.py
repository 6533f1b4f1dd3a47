"""Denoising evaluation: run denoisers over the test sets and tabulate PSNR/SSIM.

The protocol (DESIGN §5, the DnCNN test script): clean uint8 -> [0, 1]; noise
``sigma/255 * N(0, 1)`` with a fixed seed per (image, sigma); the noisy input is not clipped;
the output is clipped to [0, 1] and rounded to uint8; PSNR and SSIM (scikit-image) on the full
image; mean over images. Used by the official-weights stage and by the denoising study.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch

from lib.data import denoise as dn_data
from lib.metrics.psnr_ssim import evaluate_denoiser
from lib.models import dncnn

__all__ = [
    "PROTOCOL",
    "TEST_SETS",
    "load_test_set",
    "noise_fn",
    "official_weights_for",
    "evaluate_official_dncnn",
    "summarize_official",
]

PROTOCOL = (
    "noise sigma/255*N(0,1), fixed seed per image and sigma, noisy input not clipped; "
    "output clipped to [0,1] and rounded to uint8; PSNR/SSIM (scikit-image, data_range 255) "
    "on the full image; mean over images"
)

# test set -> (folder under data/raw, image mode, published-table key suffix)
TEST_SETS: dict[str, tuple[str, str]] = {
    "bsd68": ("bsd68", "L"),
    "set12": ("set12", "L"),
    "cbsd68": ("cbsd68", "RGB"),
}

# model key in params -> official weights per sigma (None: one blind model for all sigmas)
_OFFICIAL: dict[str, Mapping[float, str] | str] = {
    "dncnn_s": {15.0: "dncnn_s15", 25.0: "dncnn_s25", 50.0: "dncnn_s50"},  # DnCNN-S, sec. 4.1
    "dncnn_b_gray": "dncnn_b_gray",  # DnCNN-B, blind sigma in [0, 55]
    "cdncnn_b_color": "cdncnn_b_color",  # CDnCNN-B, blind color
}

# model key -> key of dncnn.PUBLISHED, per test set (published numbers exist for BSD68/CBSD68)
_PUBLISHED_KEY = {
    ("bsd68", "dncnn_s"): "dncnn_s",
    ("bsd68", "dncnn_b_gray"): "dncnn_b",
    ("cbsd68", "cdncnn_b_color"): "cdncnn_b",
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


def official_weights_for(model_key: str, sigma: float) -> str:
    """The ``dncnn.OFFICIAL_MODELS`` name evaluated for ``model_key`` at ``sigma``."""
    if model_key not in _OFFICIAL:
        raise KeyError(f"unknown official model {model_key!r}; known: {', '.join(_OFFICIAL)}")
    entry = _OFFICIAL[model_key]
    if isinstance(entry, str):
        return entry
    if float(sigma) not in entry:
        raise KeyError(f"{model_key} has no sigma-specific weights for sigma {sigma}; available: {sorted(entry)}")
    return entry[float(sigma)]


def evaluate_official_dncnn(cfg: Any, raw_dir: str | Path, progress: bool = True) -> pd.DataFrame:
    """Evaluates the official DnCNN weights on the configured test sets.

    Args:
        cfg: a :class:`lib.stages.DnCNNOfficialConfig`.
        raw_dir: the ``data/raw`` folder (weights under ``raw_dir/weights``).
        progress: show progress bars.

    Returns:
        One row per (set, model, sigma, image): ``set, model, weights, name, sigma, psnr,
        ssim, psnr_noisy, seconds``.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    raw_dir = Path(raw_dir)
    frames = []
    for set_name, model_keys in cfg.sets.items():
        images = load_test_set(set_name, raw_dir, cfg.max_images, cfg.crop)
        for model_key in model_keys:
            # group sigmas by weights file so each model is loaded once
            by_weights: dict[str, list[float]] = {}
            for sigma in cfg.sigmas:
                by_weights.setdefault(official_weights_for(model_key, sigma), []).append(sigma)
            for weights, sigmas in by_weights.items():
                model = dncnn.load_official(dncnn.official_path(weights, raw_dir / "weights"))
                model = model.to(memory_format=torch.channels_last)  # about 20% faster on CPU
                if progress:
                    print(f"{set_name}: {model_key} ({weights}) at sigma {sigmas}", flush=True)
                frame = evaluate_denoiser(
                    lambda noisy: dncnn.denoise(model, noisy), images, sigmas, cfg.seed, noise_fn(cfg.seed),
                    progress=progress,
                )
                frames.append(frame.assign(set=set_name, model=model_key, weights=weights))
    cols = ["set", "model", "weights", "name", "sigma", "psnr", "ssim", "psnr_noisy", "seconds"]
    return pd.concat(frames, ignore_index=True)[cols]


def summarize_official(per_image: pd.DataFrame) -> list[dict]:
    """Mean PSNR/SSIM per (set, model, sigma) with the published PSNR beside it.

    Returns:
        Rows ``set, model, sigma, n_images, psnr, ssim, psnr_noisy, seconds_per_image,
        published_psnr`` (``None`` where the paper gives no number).
    """
    rows = []
    for (set_name, model_key, sigma), g in per_image.groupby(["set", "model", "sigma"], sort=False):
        pub_key = _PUBLISHED_KEY.get((set_name, model_key))
        published = dncnn.PUBLISHED[pub_key]["psnr"].get(int(sigma)) if pub_key else None
        rows.append(
            {
                "set": set_name,
                "model": model_key,
                "sigma": float(sigma),
                "n_images": int(len(g)),
                "psnr": float(g["psnr"].mean()),
                "ssim": float(g["ssim"].mean()),
                "psnr_noisy": float(g["psnr_noisy"].mean()),
                "seconds_per_image": float(g["seconds"].mean()),
                "published_psnr": published,
            }
        )
    return rows
