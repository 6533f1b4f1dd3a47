"""Crops of denoised images for the report: which denoisers, the panels per sigma, the figure."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from lib.denoise.protocol import denoise, denoise_psnr, noise_fn
from lib.denoise.study import DenoiseRun
from lib.metrics.psnr_ssim import to_uint8
from lib.models import dncnn

__all__ = ["crop_denoisers", "crop_panels", "crops", "crops_figure"]

# A denoiser of the crop figure: (noisy float image, sigma) -> float output.
Denoiser = Callable[[np.ndarray, float], np.ndarray]


def crop_denoisers(models: Mapping[str, torch.nn.Module], runs: Mapping[str, DenoiseRun], best: str | None,
                   weights_dir: str | Path, cnns: Sequence[str | None] = ()) -> dict[str, Denoiser]:
    """The denoisers shown in the crop figure: the official DnCNN-B, our CNNs ``cnns`` (the
    reference DnCNN-20 and the plain CNN the verdict rests on) and the best ASAPNet-denoise variant
    (those that were trained).

    Args:
        models: run name -> trained model (:func:`lib.denoise.evaluate.load_trained`).
        runs: run name -> its settings.
        best: the best ASAPNet-denoise run (:func:`lib.denoise.compare.best_variant`) or None.
        weights_dir: the weights folder holding the official DnCNN files.
        cnns: our CNN runs to show (:func:`lib.denoise.compare.reference_cnn`,
            :func:`lib.denoise.compare.rival_cnn`; None entries are skipped).

    Returns:
        label -> ``(noisy, sigma) -> output``, in the figure's column order.
    """
    b_gray = dncnn.load_official(dncnn.official_path("dncnn_b_gray", weights_dir))
    denoisers: dict[str, Denoiser] = {"official DnCNN-B": lambda x, s: denoise(b_gray, x)}
    shown = [(runs[c].label or c, c) for c in dict.fromkeys(cnns) if c in runs]
    for label, run in [*shown, (f"ASAPNet {runs[best].variant if best else ''}", best)]:
        if run in models:
            denoisers[label] = lambda x, s, m=models[run]: denoise(m, x, sigma=s)
    return denoisers


def crop_panels(denoisers: Mapping[str, Denoiser], test_sets: Mapping[str, Sequence[tuple[str, np.ndarray]]],
                sigmas: Sequence[float], seed: int, size: int) -> tuple[dict, dict, str]:
    """Crops of the first BSD68 image (else of the first set) denoised at each sigma.

    The image is noised like the protocol (:func:`lib.denoise.protocol.noise_fn` with ``seed``).

    Returns:
        ``(panels, psnrs, title)`` for :func:`crops_figure`: sigma -> label -> uint8 crop
        (:func:`crops`), sigma -> label -> full-image PSNR (noisy input and each output), and
        a title naming the image and the crop size.
    """
    set_name = "bsd68" if "bsd68" in test_sets else next(iter(test_sets))
    name, clean = test_sets[set_name][0]
    panels, psnrs = {}, {}
    for sigma in sigmas:
        noisy = noise_fn(seed)(clean, sigma, name)
        outputs = {label: fn(noisy, sigma) for label, fn in denoisers.items()}
        panels[sigma] = crops(clean, noisy, outputs, size)
        psnrs[sigma] = {label: denoise_psnr(clean, out) for label, out in {"noisy": noisy, **outputs}.items()}
    return panels, psnrs, f"{set_name} {name}: centre crops of {size} px"


def crops(clean_u8: np.ndarray, noisy: np.ndarray, outputs: Mapping[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Centre crops of the clean image, the noisy input and each output, as uint8.

    Returns:
        ``{"clean": ..., "noisy": ..., **outputs}`` cropped to ``size`` x ``size`` (or the
        image when smaller), outputs clipped to [0, 1] and rounded like the protocol.
    """
    h, w = clean_u8.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)

    def cut(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a[top : top + size, left : left + size])

    out = {"clean": cut(clean_u8), "noisy": cut(to_uint8(noisy))}
    out.update({k: cut(to_uint8(v)) for k, v in outputs.items()})
    return out


def crops_figure(panels: Mapping[float, Mapping[str, np.ndarray]], psnrs: Mapping[float, Mapping[str, float]],
                 title: str, out: str | Path | None = None):
    """A grid of crops: one row per sigma, one column per image (clean, noisy, outputs).

    Args:
        panels: sigma -> label -> uint8 crop (:func:`crops`).
        psnrs: sigma -> label -> full-image PSNR, printed in the crop's lower left corner (missing: none shown).
        title: figure title (image name, crop position).
        out: write the figure there (PNG, atomically) when given.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    from lib.io import atomic_path

    sigmas = list(panels)
    labels = list(panels[sigmas[0]])
    fig, axes = plt.subplots(len(sigmas), len(labels), figsize=(2.1 * len(labels), 2.3 * len(sigmas)), squeeze=False)
    for i, sigma in enumerate(sigmas):
        for j, label in enumerate(labels):
            ax = axes[i, j]
            img = panels[sigma][label]
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            value = psnrs.get(sigma, {}).get(label)
            if value is not None:  # inside the panel, so no row of crops can cover it
                ax.text(0.03, 0.03, f"{value:.2f} dB", transform=ax.transAxes, fontsize=8, color="white",
                        va="bottom", ha="left", bbox={"facecolor": "black", "alpha": 0.65, "pad": 2, "linewidth": 0})
            if i == 0:
                ax.set_title(label, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"sigma {sigma:g}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if out is not None:
        with atomic_path(Path(out)) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    return fig
