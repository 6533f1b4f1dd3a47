"""Evaluation of the denoising study: our runs, BM3D and the official DnCNN on the same images.

The ``evaluate_denoising`` stage scores every trained run of ``train_denoiser``
(:mod:`lib.denoise_study`), BM3D / CBM3D (on the first images of a set: it takes about 17 s
per gray and 60 s per color 481x321 image on 2 CPU cores) and the official DnCNN weights
(their per-image scores from the ``dncnn_official`` stage: the test noise is fixed by
``dncnn_official.seed``, the image name and sigma, so those rows are the same images under
the same noise) under the DnCNN protocol (:data:`lib.denoise.PROTOCOL`), and times the
models' forward pass (:func:`lib.metrics.timing.time_forward`).

Per-image rows share the columns :data:`PER_IMAGE_COLUMNS`; :func:`summarize` averages them
per (set, model, sigma) over the images every model of that set was run on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from lib.data import denoise as dn_data
from lib.denoise import load_test_set, noise_fn
from lib.denoise_study import TEST_SETS_FOR, DenoiseRun, TrainDenoiserStage
from lib.metrics.psnr_ssim import evaluate_denoiser
from lib.metrics.timing import time_forward
from lib.models import dncnn

__all__ = [
    "EvaluateDenoisingConfig",
    "load_test_sets",
    "load_trained",
    "evaluate_trained",
    "official_rows",
    "evaluate_bm3d",
    "summarize",
    "time_denoisers",
    "best_variant",
    "denoise_fn",
    "denoise_psnr",
    "crops",
    "crops_figure",
    "published_psnr",
    "with_published",
    "grid_size_check",
    "PER_IMAGE_COLUMNS",
]

PER_IMAGE_COLUMNS = ("set", "model", "kind", "name", "sigma", "psnr", "ssim", "psnr_noisy", "seconds")


@dataclass(frozen=True)
class EvaluateDenoisingConfig:
    """``evaluate_denoising``: test sets, noise levels, BM3D subset and timing sizes.

    The test noise seed and centre crop are those of ``dncnn_official`` (so the official rows
    are the same images under the same noise); they are not repeated here.
    """

    sigmas: tuple[float, ...] = (15.0, 25.0, 50.0)  # DnCNN paper, Table II
    sets: dict[str, int] = field(default_factory=lambda: {"bsd68": 0, "set12": 0, "cbsd68": 0})  # set -> first N images (0: all)
    bm3d_images: dict[str, int] = field(default_factory=lambda: {"bsd68": 0, "cbsd68": 0})  # set -> first N images with (C)BM3D
    timing_sizes: tuple[tuple[int, int], ...] = ((321, 481), (1024, 1024))  # (H, W): a BSD68 image; 1 megapixel
    timing_warmup: int = 1
    timing_runs: int = 5
    crop_size: int = 96  # side of the crops shown in the report
    grid_check_sizes: tuple[int, ...] = (64, 128, 176, 0)  # crop sides for grid_size_check (0: full image)
    grid_check_images: int = 3  # first N BSD68 images for grid_size_check
    threads: int = 0  # torch threads; 0 = torch's default

    def __post_init__(self) -> None:
        for name, n in {**self.sets, **self.bm3d_images}.items():
            if name not in dn_data.SETS or dn_data.SETS[name][1] != "test":
                raise ValueError(f"unknown test set {name!r}; known: bsd68, set12, cbsd68")
            if int(n) < 0:
                raise ValueError(f"image count for {name} must be >= 0, got {n}")
        if any(int(c) < 0 for c in self.grid_check_sizes) or self.grid_check_images < 0:
            raise ValueError("grid_check_sizes must be crop sides >= 0 (0: full image) and grid_check_images >= 0")
        if self.timing_runs < 1 or self.timing_warmup < 0:
            raise ValueError("timing_runs must be >= 1 and timing_warmup >= 0")
        for hw in self.timing_sizes:
            if len(hw) != 2 or min(hw) < 16:
                raise ValueError(f"timing_sizes entries must be [H, W] with H, W >= 16, got {list(hw)}")




def denoise_fn(model: torch.nn.Module, sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    """numpy (H, W[, C]) noisy -> numpy denoised, with the noise level passed to the model."""
    param = next(model.parameters())

    def fn(noisy: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(noisy, dtype=np.float32)).to(param.device)
        x = x[None, None] if noisy.ndim == 2 else x.permute(2, 0, 1)[None]  # (1, C, H, W)
        if param.ndim == 4 and param.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)  # a channels-last model (see load_trained)
        with torch.inference_mode():
            y = model(x, sigma=torch.full((1,), float(sigma), device=param.device))  # (1, C, H, W)
        y = y[0, 0] if noisy.ndim == 2 else y[0].permute(1, 2, 0)  # (H, W) or (H, W, C)
        return y.float().cpu().numpy()

    return fn


def load_test_sets(cfg: EvaluateDenoisingConfig, raw_dir: str | Path, crop: int = 0) -> dict[str, list]:
    """set name -> ``(name, clean uint8)`` images: the first ``cfg.sets[set]`` (0: all), centre
    crops of ``crop`` pixels when > 0 (the ``dncnn_official`` crop)."""
    return {name: load_test_set(name, Path(raw_dir), int(n), crop) for name, n in cfg.sets.items()}


def evaluate_trained(
    models: Mapping[str, torch.nn.Module],
    test_sets: Mapping[str, Sequence[tuple[str, np.ndarray]]],
    sigmas: Sequence[float],
    seed: int,
    *,
    progress: bool = True,
) -> pd.DataFrame:
    """Scores trained denoisers on the test sets of their kind (:data:`TEST_SETS_FOR`).

    Args:
        models: run name -> model in eval mode (called as ``model(noisy, sigma=...)``; the
            number of input channels picks the test sets).
        test_sets: set name -> ``(name, clean uint8)`` images (sets not listed are skipped).
        sigmas: noise levels (0..255).
        seed: the test-noise seed (``dncnn_official.seed``).
        progress: progress bars.

    Returns:
        Per-image rows (:data:`PER_IMAGE_COLUMNS`), ``kind = "ours"``.
    """
    frames = []
    for run_name, model in models.items():
        channels = _in_channels(model)
        for set_name in TEST_SETS_FOR[channels]:
            if set_name not in test_sets:
                continue
            if progress:
                print(f"{run_name} on {set_name}", flush=True)
            for sigma in sigmas:
                df = evaluate_denoiser(denoise_fn(model, sigma), test_sets[set_name], [sigma], seed,
                                       noise_fn(seed), progress=progress)
                frames.append(df.assign(set=set_name, model=run_name, kind="ours"))
    return _per_image(frames)


def denoise_psnr(clean_u8: np.ndarray, output: np.ndarray) -> float:
    """PSNR (dB) of a float output in [0, 1] after the protocol's clip and uint8 rounding."""
    from lib.metrics.psnr_ssim import psnr, to_uint8

    return psnr(clean_u8, to_uint8(np.asarray(output)))


def _in_channels(model: torch.nn.Module) -> int:
    cfg = getattr(model, "cfg", None)
    channels = getattr(cfg, "in_channels", None)
    if channels not in TEST_SETS_FOR:
        raise ValueError(f"cannot tell the image channels of {type(model).__name__} (cfg.in_channels={channels})")
    return int(channels)


def _per_image(frames: list[pd.DataFrame]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=list(PER_IMAGE_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(PER_IMAGE_COLUMNS)]


def official_rows(official_per_image: pd.DataFrame, test_sets: Mapping[str, Sequence[tuple[str, Any]]],
                  sigmas: Sequence[float]) -> pd.DataFrame:
    """The official models' per-image rows on exactly the evaluated images and sigmas.

    Args:
        official_per_image: the ``dncnn_official`` stage's per-image CSV (same seed and crop).
        test_sets: set name -> images evaluated here.
        sigmas: the evaluated noise levels.

    Returns:
        Per-image rows, ``model = "official_<model>"``, ``kind = "official"``.

    Raises:
        ValueError: an evaluated (set, image, sigma) has no official row for a model that the
            official stage ran on that set (names them): the two stages disagree on data.
    """
    frames = []
    for set_name, images in test_sets.items():
        names = [n for n, _ in images]
        rows = official_per_image[(official_per_image["set"] == set_name)
                                  & official_per_image["sigma"].isin([float(s) for s in sigmas])]
        for model_key, g in rows.groupby("model", sort=False):
            have = set(zip(g["name"], g["sigma"].astype(float)))
            missing = [(n, float(s)) for n in names for s in sigmas if (n, float(s)) not in have]
            if missing:
                raise ValueError(
                    f"dncnn_official has no {model_key} rows for {set_name} {missing[:3]}{'...' if len(missing) > 3 else ''}: "
                    "run both stages with the same params"
                )
            keep = g[g["name"].isin(names)]
            frames.append(keep.assign(model=f"official_{model_key}", kind="official"))
    return _per_image(frames)


def evaluate_bm3d(test_sets: Mapping[str, Sequence[tuple[str, np.ndarray]]], counts: Mapping[str, int],
                  sigmas: Sequence[float], seed: int, *, progress: bool = True) -> pd.DataFrame:
    """BM3D (gray) / CBM3D (color) at the true sigma on the first ``counts[set]`` images.

    Returns:
        Per-image rows, ``model = "bm3d"``, ``kind = "classical"``.
    """
    from lib.models.bm3d import bm3d_denoise

    frames = []
    for set_name, n in counts.items():
        if not n or set_name not in test_sets:
            continue
        images = list(test_sets[set_name])[: int(n)]
        for sigma in sigmas:
            df = evaluate_denoiser(lambda noisy, s=sigma: bm3d_denoise(noisy, s), images, [sigma], seed,
                                   noise_fn(seed), progress=progress)
            frames.append(df.assign(set=set_name, model="bm3d", kind="classical"))
    return _per_image(frames)


def summarize(per_image: pd.DataFrame, common_images: bool = True) -> pd.DataFrame:
    """Mean PSNR / SSIM per (set, model, sigma).

    Args:
        per_image: rows with :data:`PER_IMAGE_COLUMNS`.
        common_images: if True, each set's means are over the images that *every* model of
            that set was run on at that sigma (so the rows compare like with like); models run
            on fewer images (BM3D) are then left out of the set's table unless every model
            has those images.

    Returns:
        Columns ``set, model, kind, sigma, n_images, psnr, ssim, psnr_noisy, seconds_per_image``.
    """
    cols = ["set", "model", "kind", "sigma", "n_images", "psnr", "ssim", "psnr_noisy", "seconds_per_image"]
    if per_image.empty:
        return pd.DataFrame(columns=cols)
    frames = []
    for (set_name, sigma), g in per_image.groupby(["set", "sigma"], sort=False):
        if common_images:
            counts = g.groupby("model")["name"].nunique()
            full = counts[counts == counts.max()].index
            g = g[g["model"].isin(full)]
        frames.append(g)
    df = pd.concat(frames)
    out = (
        df.groupby(["set", "model", "kind", "sigma"], sort=False)
        .agg(n_images=("name", "nunique"), psnr=("psnr", "mean"), ssim=("ssim", "mean"),
             psnr_noisy=("psnr_noisy", "mean"), seconds_per_image=("seconds", "mean"))
        .reset_index()
    )
    return out[cols]


def time_denoisers(models: Mapping[str, torch.nn.Module], sizes: Sequence[Sequence[int]], *, warmup: int = 1,
                   runs: int = 5, progress: bool = True) -> pd.DataFrame:
    """Generator-only inference time of each denoiser (batch 1, fp32, eval, inference mode).

    Protocol of :func:`lib.metrics.timing.time_forward` (median and p90 over ``runs`` after
    ``warmup`` runs) on a random (1, C, H, W) input on the model's device.

    Returns:
        One row per (model, size): ``model, height, width, megapixels, median_ms, p90_ms,
        min_ms, runs, threads, device``.
    """
    from tqdm import tqdm

    rows = []
    cells = [(n, m, hw) for n, m in models.items() for hw in sizes]
    for run_name, model, (h, w) in tqdm(cells, desc="timing", disable=not progress):
        param = next(model.parameters())
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(1, _in_channels(model), int(h), int(w), generator=gen).to(param.device)
        sigma = torch.full((1,), 25.0, device=param.device)
        t = time_forward(lambda: model(x, sigma=sigma), device=param.device, warmup=warmup, runs=runs)
        rows.append({"model": run_name, "height": int(h), "width": int(w), "megapixels": h * w / 1e6,
                     "median_ms": t["median_ms"], "p90_ms": t["p90_ms"], "min_ms": t["min_ms"],
                     "runs": t["runs"], "threads": torch.get_num_threads(), "device": str(param.device)})
    return pd.DataFrame(rows)


def best_variant(summary: pd.DataFrame, runs: Mapping[str, DenoiseRun], set_name: str = "bsd68",
                 sigma: float = 25.0) -> str | None:
    """The ASAPNet-denoise run with the highest mean PSNR on ``set_name`` at ``sigma``."""
    asap = [n for n, r in runs.items() if r.model == "asapnet_denoise"]
    rows = summary[(summary["set"] == set_name) & (summary["sigma"] == float(sigma)) & summary["model"].isin(asap)]
    if rows.empty:
        return None
    return str(rows.sort_values("psnr", ascending=False)["model"].iloc[0])


def crops(clean_u8: np.ndarray, noisy: np.ndarray, outputs: Mapping[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Centre crops of the clean image, the noisy input and each output, as uint8.

    Returns:
        ``{"clean": ..., "noisy": ..., **outputs}`` cropped to ``size`` x ``size`` (or the
        image when smaller), outputs clipped to [0, 1] and rounded like the protocol.
    """
    from lib.metrics.psnr_ssim import to_uint8

    h, w = clean_u8.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)

    def cut(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a[top : top + size, left : left + size])

    out = {"clean": cut(clean_u8), "noisy": cut(to_uint8(noisy))}
    out.update({k: cut(to_uint8(v)) for k, v in outputs.items()})
    return out


def load_trained(stage: TrainDenoiserStage, models_dir: str | Path, names: Sequence[str] | None = None) -> dict[str, torch.nn.Module]:
    """The trained denoisers (eval mode, CPU) from ``models_dir/<run>/checkpoint.pt``.

    DnCNN models are put in the channels-last layout (same numbers, about 20% faster
    convolutions on the CPU).

    Raises:
        FileNotFoundError: a run has no checkpoint (names the file).
    """
    from lib.train.denoise import CHECKPOINT_NAME, load_denoiser

    models = {}
    for name in names or list(stage.runs):
        model = load_denoiser(Path(models_dir) / name / CHECKPOINT_NAME)
        if isinstance(model, dncnn.DnCNN):
            model = model.to(memory_format=torch.channels_last)
        models[name] = model
    return models


# (set, model of the per-image rows) -> key of lib.models.dncnn.PUBLISHED
_PUBLISHED = {
    ("bsd68", "official_dncnn_s"): "dncnn_s",
    ("bsd68", "official_dncnn_b_gray"): "dncnn_b",
    ("cbsd68", "official_cdncnn_b_color"): "cdncnn_b",
    ("bsd68", "bm3d"): "bm3d",
    ("cbsd68", "bm3d"): "cbm3d",
}


def published_psnr(set_name: str, model: str, sigma: float) -> float | None:
    """The published mean PSNR of ``model`` on the *whole* ``set_name`` at ``sigma`` (DnCNN
    paper), or None where the paper gives none (our models, Set12)."""
    key = _PUBLISHED.get((set_name, model))
    return None if key is None else dncnn.PUBLISHED[key]["psnr"].get(int(sigma))


def grid_size_check(models: Mapping[str, torch.nn.Module], images: Sequence[tuple[str, np.ndarray]],
                    sizes: Sequence[int], sigma: float, seed: int) -> pd.DataFrame:
    """PSNR gain over the noisy input on top-left crops of several sizes (0 = the full image).

    An ASAPNet-denoise model predicts one MLP per tile from a low-res grid of tiles; this
    shows whether what it learned on training patches (a grid of patch/k tiles) carries over
    to other grid sizes. Each crop is noised like the protocol (same seed per image name).

    Returns:
        Rows ``model, crop, n_images, gain_db`` (mean over images of PSNR(output) - PSNR(noisy)).
    """
    rows = []
    for run_name, model in models.items():
        for size in sizes:
            gains = []
            for name, clean in images:
                c = clean if not size else np.ascontiguousarray(clean[:size, :size])
                noisy = noise_fn(seed)(c, sigma, name)
                out = denoise_fn(model, sigma)(noisy)
                gains.append(denoise_psnr(c, out) - denoise_psnr(c, noisy))
            rows.append({"model": run_name, "crop": int(size), "n_images": len(images), "gain_db": float(np.mean(gains))})
    return pd.DataFrame(rows)


def with_published(summary: pd.DataFrame) -> pd.DataFrame:
    """``summary`` with a ``published_psnr`` column (:func:`published_psnr`; None where none)."""
    values = [published_psnr(s, m, sg) for s, m, sg in zip(summary["set"], summary["model"], summary["sigma"])]
    return summary.assign(published_psnr=pd.Series(values, index=summary.index, dtype=object))


def crops_figure(panels: Mapping[float, Mapping[str, np.ndarray]], psnrs: Mapping[float, Mapping[str, float]],
                 title: str, out: str | Path | None = None):
    """A grid of crops: one row per sigma, one column per image (clean, noisy, outputs).

    Args:
        panels: sigma -> label -> uint8 crop (:func:`crops`).
        psnrs: sigma -> label -> full-image PSNR shown under the crop (missing: none shown).
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
            ax.set_xlabel(f"{value:.2f} dB" if value is not None else "", fontsize=8)
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
