"""The official DnCNN weights re-measured with our protocol: the ``dncnn_official`` stage.

Matching the published BSD68 / CBSD68 PSNR validates the test protocol
(:mod:`lib.denoise.protocol`) and the MatConvNet weight conversion
(:func:`lib.models.dncnn.load_official`) at once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import torch

from lib.denoise.protocol import (
    TEST_SETS,
    denoise,
    evaluate_denoiser,
    load_test_set,
    noise_fn,
    published_psnr,
    summarize,
)
from lib.models import dncnn

__all__ = ["outputs", "DnCNNOfficialConfig", "OFFICIAL", "official_weights_for", "evaluate_official_dncnn", "official_summary"]


@dataclass(frozen=True)
class DnCNNOfficialConfig:
    """``dncnn_official``: the official DnCNN weights re-measured with our protocol
    (docs/design.md#denoising-protocol)."""

    seed: int = 0  # base seed of the test noise (one derived seed per image and sigma)
    sigmas: tuple[float, ...] = (15.0, 25.0, 50.0)  # DnCNN paper, Table II
    # test set -> official models evaluated on it ("dncnn_s" = the sigma-specific model per sigma)
    sets: dict[str, Any] = field(
        default_factory=lambda: {
            "bsd68": ["dncnn_s", "dncnn_b_gray"],
            "set12": ["dncnn_s", "dncnn_b_gray"],
            "cbsd68": ["cdncnn_b_color"],
        }
    )
    max_images: int = 0  # 0 = every image of each set
    crop: int = 0  # 0 = full images; > 0 = centre crop of that size (smoke scale only)
    threads: int = 0  # torch threads; 0 = torch's default

    def __post_init__(self) -> None:
        for name in ("max_images", "crop", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0 (0 = {'all' if name != 'crop' else 'no crop'})")
        if 0 < self.crop < 8:
            raise ValueError(f"crop={self.crop} must be 0 (full images) or at least 8 pixels")
        if not self.sigmas or any(not 0 < s <= 255 for s in self.sigmas):
            raise ValueError(f"sigmas={list(self.sigmas)} must be noise levels in (0, 255]")
        if not self.sets:
            raise ValueError("sets: expected at least one test set with its official models")
        unknown_sets = sorted(set(self.sets) - set(TEST_SETS))
        if unknown_sets:
            raise ValueError(f"sets: unknown test set(s) {unknown_sets}; known: {', '.join(TEST_SETS)}")
        for name, models in self.sets.items():
            if not models:
                raise ValueError(f"sets.{name}: expected at least one official model")
            bad = sorted(set(models) - set(OFFICIAL))
            if bad:
                raise ValueError(f"sets.{name}: unknown official model(s) {bad}; known: {', '.join(OFFICIAL)}")


# model key in params -> official weights per sigma (a str: one blind model for all sigmas)
OFFICIAL: dict[str, Mapping[float, str] | str] = {
    "dncnn_s": {15.0: "dncnn_s15", 25.0: "dncnn_s25", 50.0: "dncnn_s50"},  # DnCNN-S, sec. 4.1
    "dncnn_b_gray": "dncnn_b_gray",  # DnCNN-B, blind sigma in [0, 55]
    "cdncnn_b_color": "cdncnn_b_color",  # CDnCNN-B, blind color
}


def official_weights_for(model_key: str, sigma: float) -> str:
    """The ``dncnn.OFFICIAL_MODELS`` name evaluated for ``model_key`` at ``sigma``."""
    if model_key not in OFFICIAL:
        raise KeyError(f"unknown official model {model_key!r}; known: {', '.join(OFFICIAL)}")
    entry = OFFICIAL[model_key]
    if isinstance(entry, str):
        return entry
    if float(sigma) not in entry:
        raise KeyError(f"{model_key} has no sigma-specific weights for sigma {sigma}; available: {sorted(entry)}")
    return entry[float(sigma)]


def evaluate_official_dncnn(cfg: DnCNNOfficialConfig, raw_dir: str | Path, progress: bool = True) -> pd.DataFrame:
    """Evaluates the official DnCNN weights on the configured test sets.

    Args:
        cfg: the stage config.
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
                    lambda noisy: denoise(model, noisy), images, sigmas, cfg.seed, noise_fn(cfg.seed),
                    progress=progress,
                )
                frames.append(frame.assign(set=set_name, model=model_key, weights=weights))
    cols = ["set", "model", "weights", "name", "sigma", "psnr", "ssim", "psnr_noisy", "seconds"]
    return pd.concat(frames, ignore_index=True)[cols]


def official_summary(per_image: pd.DataFrame) -> list[dict]:
    """Mean PSNR/SSIM per (set, model, sigma) (:func:`lib.metrics.psnr_ssim.summarize`) with
    the published PSNR beside it: the ``rows`` of ``dncnn_official.json``.

    Returns:
        Rows ``set, model, sigma, n_images, psnr, ssim, psnr_noisy, seconds_per_image,
        published_psnr`` (``None`` where the paper gives no number).
    """
    rows = []
    for r in summarize(per_image, by=("set", "model", "sigma")).itertuples(index=False):
        rows.append(
            {
                "set": r.set,
                "model": r.model,
                "sigma": float(r.sigma),
                "n_images": int(r.n_images),
                "psnr": float(r.psnr),
                "ssim": float(r.ssim),
                "psnr_noisy": float(r.psnr_noisy),
                "seconds_per_image": float(r.seconds_per_image),
                "published_psnr": published_psnr(r.set, r.model, r.sigma),
            }
        )
    return rows


def outputs() -> dict[str, str]:
    """The ``dncnn_official`` stage's outputs (project-relative; ``dvc.yaml`` declares the same paths)."""
    return {"out_metrics": "reports/metrics/dncnn_official.json",
            "out_per_image": "reports/metrics/dncnn_official_per_image.csv"}
