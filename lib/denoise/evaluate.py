"""Evaluation of the denoising study: our runs, BM3D and the official DnCNN on the same images.

The ``evaluate_denoising`` stage scores every trained run of ``train_denoiser``
(:mod:`lib.denoise.study`), BM3D / CBM3D (every image at the headline sigma, the first images
at the others: about 3 s per gray and 7 s per color 481x321 image on 2 CPU cores) and the official DnCNN weights
(their per-image scores from the ``dncnn_official`` stage: the test noise is fixed by
``dncnn_official.seed``, the image name and sigma, so those rows are the same images under
the same noise) under the DnCNN protocol (:mod:`lib.denoise.protocol`), and times the
models' forward pass (:func:`lib.metrics.timing.time_forward`).

Per-image rows share the columns :data:`PER_IMAGE_COLUMNS`; :func:`summarize_common_images`
averages them per (set, model, sigma) over the images every model of that set was run on;
:mod:`lib.denoise.compare` chooses the runs to compare and puts paired per-image bootstrap
intervals on their PSNR differences.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from lib.data import denoise as dn_data
from lib.denoise.protocol import (
    denoise,
    denoise_psnr,
    evaluate_denoiser,
    load_test_set,
    noise_fn,
    published_psnr,
    summarize,
)
from lib.denoise.study import TEST_SETS_FOR, TrainDenoiserStage
from lib.metrics.timing import time_forward
from lib.models import dncnn, load_model
from lib.train.denoise import CHECKPOINT_NAME

__all__ = ["outputs", "metrics_document", "bm3d_workers",
    "EvaluateDenoisingConfig",
    "load_test_sets",
    "load_trained",
    "evaluate_trained",
    "official_rows",
    "evaluate_bm3d",
    "bm3d_subset",
    "images_by_set",
    "summarize_common_images",
    "with_published",
    "time_denoisers",
    "grid_size_check",
    "grid_size_checks",
    "in_channels",
    "PER_IMAGE_COLUMNS",
    "OFFICIAL_PREFIX",
]

PER_IMAGE_COLUMNS = ("set", "model", "kind", "name", "sigma", "psnr", "ssim", "psnr_noisy", "seconds")
OFFICIAL_PREFIX = "official_"  # per-image rows of an official model are named official_<model key>


@dataclass(frozen=True)
class EvaluateDenoisingConfig:
    """``evaluate_denoising``: test sets, noise levels, BM3D subset and timing sizes.

    The test noise seed and centre crop are those of ``dncnn_official`` (so the official rows
    are the same images under the same noise); they are not repeated here.
    """

    sigmas: tuple[float, ...] = (15.0, 25.0, 50.0)  # DnCNN paper, Table II
    sets: dict[str, int] = field(default_factory=lambda: {"bsd68": 0, "set12": 0, "cbsd68": 0})  # set -> first N images (0: all)
    bm3d_images: dict[str, int] = field(default_factory=lambda: {"bsd68": 0, "cbsd68": 0})  # set -> first N images with (C)BM3D (0: none)
    bm3d_full_sigmas: dict[str, tuple[float, ...]] = field(default_factory=dict)  # set -> sigmas with (C)BM3D on every image
    timing_sizes: tuple[tuple[int, int], ...] = ((321, 481), (1024, 1024))  # (H, W): a BSD68 image; 1 megapixel
    timing_warmup: int = 1
    timing_runs: int = 5
    crop_size: int = 96  # side of the crops shown in the report
    grid_check_sizes: tuple[int, ...] = (64, 128, 176, 0)  # crop sides for grid_size_check (0: full image)
    grid_check_images: int = 3  # first N images of each run's test set (grey BSD68, colour CBSD68) for grid_size_checks
    grid_check_sigma: float = 25.0  # noise level of grid_size_check
    bootstrap_samples: int = 2000  # resamples of the paired per-image bootstrap (paired_differences)
    threads: int = 0  # torch threads; 0 = torch's default
    bm3d_workers: int = 0  # processes running (C)BM3D side by side (it is single-threaded); 0 = one per CPU core

    def __post_init__(self) -> None:
        if not self.sigmas or any(not 0 < s <= 255 for s in self.sigmas):
            raise ValueError(f"sigmas={list(self.sigmas)} must be one or more noise levels in (0, 255]")
        if not self.sets:
            raise ValueError("sets: expected at least one test set")
        skipped = sorted(set(self.bm3d_images) - set(self.sets))
        if skipped:
            raise ValueError(f"bm3d_images: set(s) {skipped} are not evaluated (not in sets: {', '.join(self.sets)})")
        for name, full in self.bm3d_full_sigmas.items():
            if name not in self.bm3d_images:
                raise ValueError(f"bm3d_full_sigmas: set {name!r} is not in bm3d_images ({', '.join(self.bm3d_images)})")
            if any(float(s) not in {float(x) for x in self.sigmas} for s in full):
                raise ValueError(f"bm3d_full_sigmas.{name}={list(full)} must be among sigmas={list(self.sigmas)}")
        if not self.timing_sizes:
            raise ValueError("timing_sizes: expected at least one [H, W]")
        if not 0 < self.grid_check_sigma <= 255:
            raise ValueError(f"grid_check_sigma={self.grid_check_sigma} must be a noise level in (0, 255]")
        for name, n in {**self.sets, **self.bm3d_images}.items():
            if name not in dn_data.SETS or dn_data.SETS[name][1] != "test":
                raise ValueError(f"unknown test set {name!r}; known: bsd68, set12, cbsd68")
            if int(n) < 0:
                raise ValueError(f"image count for {name} must be >= 0, got {n}")
        if any(int(c) < 0 for c in self.grid_check_sizes) or self.grid_check_images < 0:
            raise ValueError("grid_check_sizes must be crop sides >= 0 (0: full image) and grid_check_images >= 0")
        if self.bootstrap_samples < 1 or self.grid_check_sigma < 0:
            raise ValueError("bootstrap_samples must be >= 1 and grid_check_sigma >= 0")
        if self.bm3d_workers < 0:
            raise ValueError(f"bm3d_workers={self.bm3d_workers} must be >= 0 (0: one per CPU core)")
        if self.timing_runs < 1 or self.timing_warmup < 0:
            raise ValueError("timing_runs must be >= 1 and timing_warmup >= 0")
        for hw in self.timing_sizes:
            if len(hw) != 2 or min(hw) < 16:
                raise ValueError(f"timing_sizes entries must be [H, W] with H, W >= 16, got {list(hw)}")


def load_test_sets(cfg: EvaluateDenoisingConfig, raw_dir: str | Path, crop: int = 0) -> dict[str, list]:
    """set name -> ``(name, clean uint8)`` images: the first ``cfg.sets[set]`` (0: all), centre
    crops of ``crop`` pixels when > 0 (the ``dncnn_official`` crop)."""
    return {name: load_test_set(name, Path(raw_dir), int(n), crop) for name, n in cfg.sets.items()}


def load_trained(stage: TrainDenoiserStage, models_dir: str | Path, names: Sequence[str] | None = None) -> dict[str, torch.nn.Module]:
    """The trained denoisers (eval mode, CPU) from ``models_dir/<run>/checkpoint.pt``
    (:func:`lib.models.load_model`).

    DnCNN models are put in the channels-last layout (same numbers, about 20% faster
    convolutions on the CPU).

    Raises:
        FileNotFoundError: a run has no checkpoint (names the file).
    """
    models = {}
    for name in names or list(stage.runs):
        model = load_model(Path(models_dir) / name / CHECKPOINT_NAME)
        if isinstance(model, dncnn.DnCNN):
            model = model.to(memory_format=torch.channels_last)
        models[name] = model
    return models


def in_channels(model: torch.nn.Module) -> int:
    """Image channels of a trained denoiser (``model.cfg.in_channels``: 1 gray, 3 color).

    Raises:
        ValueError: the model has no such config value, or one without test sets.
    """
    cfg = getattr(model, "cfg", None)
    channels = getattr(cfg, "in_channels", None)
    if channels not in TEST_SETS_FOR:
        raise ValueError(f"cannot tell the image channels of {type(model).__name__} (cfg.in_channels={channels})")
    return int(channels)


def _per_image(frames: list[pd.DataFrame]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=list(PER_IMAGE_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(PER_IMAGE_COLUMNS)]


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
        for set_name in TEST_SETS_FOR[in_channels(model)]:
            if set_name not in test_sets:
                continue
            if progress:
                print(f"{run_name} on {set_name}", flush=True)
            for sigma in sigmas:
                df = evaluate_denoiser(lambda noisy, s=sigma: denoise(model, noisy, sigma=s), test_sets[set_name],
                                       [sigma], seed, noise_fn(seed), progress=progress)
                frames.append(df.assign(set=set_name, model=run_name, kind="ours"))
    return _per_image(frames)


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
            frames.append(keep.assign(model=f"{OFFICIAL_PREFIX}{model_key}", kind="official"))
    return _per_image(frames)


def bm3d_workers(setting: int) -> int:
    """The processes :func:`evaluate_bm3d` uses for the ``bm3d_workers`` setting (0: one per CPU core)."""
    return int(setting) if setting > 0 else max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                                 else os.cpu_count() or 1)


def _bm3d_one(task: tuple[str, np.ndarray, float, int]) -> pd.DataFrame:
    """One image at one sigma through BM3D (a worker's task of :func:`evaluate_bm3d`)."""
    from lib.models.bm3d import bm3d_denoise

    name, clean, sigma, seed = task
    return evaluate_denoiser(lambda noisy: bm3d_denoise(noisy, sigma), [(name, clean)], [sigma], seed,
                             noise_fn(seed), progress=False)


def evaluate_bm3d(test_sets: Mapping[str, Sequence[tuple[str, np.ndarray]]], counts: Mapping[str, int],
                  sigmas: Sequence[float], seed: int, *, full_sigmas: Mapping[str, Sequence[float]] | None = None,
                  progress: bool = True, workers: int = 1) -> pd.DataFrame:
    """BM3D (gray) / CBM3D (color) at the true sigma on the first ``counts[set]`` images of each
    set listed in ``counts`` (0: none), and on every image at the sigmas ``full_sigmas[set]``.

    The ``bm3d`` package runs on one core; ``workers > 1`` runs that many images at once in
    separate processes. The rows are the same either way (the noise of an image depends on its
    name and sigma only); ``seconds`` stays the wall time of one image's call, measured while
    the other workers run.

    Returns:
        Per-image rows, ``model = "bm3d"``, ``kind = "classical"``.
    """
    jobs = []  # (set, sigma, images) in the order the rows are returned
    for set_name, n in counts.items():
        if set_name not in test_sets:
            continue
        full = {float(x) for x in (full_sigmas or {}).get(set_name, ())}
        for sigma in sigmas:
            images = list(test_sets[set_name])[: None if float(sigma) in full else int(n)]
            if images:
                jobs.append((set_name, sigma, images))
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    tasks = [(name, clean, sigma, seed) for _, sigma, images in jobs for name, clean in images]
    if workers <= 1:
        done = list(tqdm(map(_bm3d_one, tasks), total=len(tasks), desc="bm3d", disable=not progress))
    else:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            done = list(tqdm(pool.map(_bm3d_one, tasks), total=len(tasks), desc="bm3d", disable=not progress))
    frames, i = [], 0
    for set_name, _, images in jobs:
        frames.append(pd.concat(done[i:i + len(images)], ignore_index=True).assign(set=set_name, model="bm3d", kind="classical"))
        i += len(images)
    return _per_image(frames)


def bm3d_subset(per_image: pd.DataFrame, bm3d: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``per_image`` on the (set, image, sigma) triples BM3D ran on: the like-for-like table."""
    done = set(zip(bm3d["set"], bm3d["name"], bm3d["sigma"].astype(float)))
    keys = zip(per_image["set"], per_image["name"], per_image["sigma"].astype(float))
    return per_image[[k in done for k in keys]]


def images_by_set(per_image: pd.DataFrame) -> dict[str, list[str]]:
    """set -> sorted distinct image names of per-image rows (sets in order of appearance)."""
    return {s: sorted(set(g["name"])) for s, g in per_image.groupby("set", sort=False)}


def summarize_common_images(per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean PSNR / SSIM per (set, model, sigma) over the images *every* model of that set was
    run on at that sigma, so that the rows compare like with like: a model run on fewer images
    (BM3D) is left out of its set's table unless every model has those images.

    Args:
        per_image: rows with :data:`PER_IMAGE_COLUMNS`.

    Returns:
        Columns ``set, model, kind, sigma, n_images, psnr, ssim, psnr_noisy, seconds_per_image``
        (:func:`lib.metrics.psnr_ssim.summarize`).
    """
    by = ("set", "model", "kind", "sigma")
    if per_image.empty:
        return summarize(per_image, by=by)
    frames = []
    for _, g in per_image.groupby(["set", "sigma"], sort=False):
        counts = g.groupby("model")["name"].nunique()
        full = counts[counts == counts.max()].index
        frames.append(g[g["model"].isin(full)])
    return summarize(pd.concat(frames), by=by)


def with_published(summary: pd.DataFrame) -> pd.DataFrame:
    """``summary`` with a ``published_psnr`` column: the DnCNN paper's value on the whole set
    for the official models and BM3D (:func:`lib.denoise.protocol.published_psnr`), None for
    our runs and where the paper gives none."""
    values = [
        None if kind == "ours" else published_psnr(s, m.removeprefix(OFFICIAL_PREFIX), sg)
        for s, m, kind, sg in zip(summary["set"], summary["model"], summary["kind"], summary["sigma"])
    ]
    return summary.assign(published_psnr=pd.Series(values, index=summary.index, dtype=object))


def time_denoisers(models: Mapping[str, torch.nn.Module], sizes: Sequence[Sequence[int]], *, warmup: int = 1,
                   runs: int = 5, progress: bool = True) -> pd.DataFrame:
    """Generator-only inference time of each denoiser (batch 1, fp32, eval, inference mode).

    Protocol of :func:`lib.metrics.timing.time_forward` (median and p90 over ``runs`` after
    ``warmup`` runs) on a random (1, C, H, W) input on the model's device.

    Returns:
        One row per (model, size): ``model, height, width, megapixels, median_ms, q25_ms, q75_ms,
        p90_ms, min_ms, runs, threads, device``.
    """
    from tqdm import tqdm

    rows = []
    cells = [(n, m, hw) for n, m in models.items() for hw in sizes]
    for run_name, model, (h, w) in tqdm(cells, desc="timing", disable=not progress):
        param = next(model.parameters())
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(1, in_channels(model), int(h), int(w), generator=gen).to(param.device)
        sigma = torch.full((1,), 25.0, device=param.device)
        t = time_forward(lambda: model(x, sigma=sigma), device=param.device, warmup=warmup, runs=runs)
        rows.append({"model": run_name, "height": int(h), "width": int(w), "megapixels": h * w / 1e6,
                     "median_ms": t["median_ms"], "q25_ms": t["q25_ms"], "q75_ms": t["q75_ms"],
                     "p90_ms": t["p90_ms"], "min_ms": t["min_ms"],
                     "runs": t["runs"], "threads": torch.get_num_threads(), "device": str(param.device)})
    return pd.DataFrame(rows)


def grid_size_check(models: Mapping[str, torch.nn.Module], images: Sequence[tuple[str, np.ndarray]],
                    sizes: Sequence[int], sigma: float, seed: int, progress: bool = False) -> pd.DataFrame:
    """Does a model denoise a crop as well as the same pixels of the full image? Both scored on
    identical pixels, so the crops' content cannot confound the comparison.

    An ASAPNet-denoise model predicts one MLP (or filter) per tile from a low-res grid of tiles;
    this shows whether what it learned on training patches (a grid of patch/k tiles) carries over
    to other grid sizes. Each image is noised once (the protocol's noise, seeded by its name) and
    denoised once whole. For a crop side ``s`` the noisy image is cut into the grid of
    non-overlapping windows of ``min(s, H) x min(s, W)`` pixels from the top-left corner
    (``floor(H / s) x floor(W / s)`` of them, ``s = 0``: the one window of the whole image), each
    window is denoised on its own, and on the union ``R`` of the windows three PSNRs are taken (the
    protocol's clip and uint8 rounding): of the window outputs, of the full-image output and of the
    noisy input.

    Returns:
        Rows ``model, crop, n_images, n_windows, sigma, gain_db, gain_full_db, crop_minus_full_db``,
        means over images of ``PSNR(window outputs) - PSNR(noisy)`` (``gain_db``: the model run on
        crops of that side), ``PSNR(full-image output) - PSNR(noisy)`` (``gain_full_db``: run on the
        full image, scored on the same pixels) and of their difference (``crop_minus_full_db``:
        positive when the model does better on crops); ``n_windows``: windows over all images.
    """
    from tqdm import tqdm

    noisy_images = [(name, clean, noise_fn(seed)(clean, sigma, name)) for name, clean in images]
    rows = []
    for run_name, model in tqdm(models.items(), desc="grid check", unit="model", disable=not progress):
        full_outputs = [denoise(model, noisy, sigma=sigma) for _, _, noisy in noisy_images]
        for size in sizes:
            crop_gain, full_gain, n_windows = [], [], 0
            for (_, clean, noisy), full in zip(noisy_images, full_outputs):
                hh, ww = noisy.shape[:2]
                sh, sw = (hh, ww) if not size else (min(int(size), hh), min(int(size), ww))  # window sides
                rh, rw = hh // sh * sh, ww // sw * sw  # R: the rows and columns the windows cover
                stitched = full if (sh, sw) == (hh, ww) else np.empty_like(full[:rh, :rw])  # (rh, rw[, C])
                for y in range(0, rh, sh):
                    for x in range(0, rw, sw):
                        n_windows += 1
                        if stitched is not full:  # one window is the whole image: its output is full's
                            window = np.ascontiguousarray(noisy[y : y + sh, x : x + sw])
                            stitched[y : y + sh, x : x + sw] = denoise(model, window, sigma=sigma)
                ref = denoise_psnr(clean[:rh, :rw], noisy[:rh, :rw])
                crop_gain.append(denoise_psnr(clean[:rh, :rw], stitched) - ref)
                full_gain.append(denoise_psnr(clean[:rh, :rw], full[:rh, :rw]) - ref)
            rows.append({"model": run_name, "crop": int(size), "n_images": len(images), "n_windows": n_windows,
                         "sigma": float(sigma), "gain_db": float(np.mean(crop_gain)),
                         "gain_full_db": float(np.mean(full_gain)),
                         "crop_minus_full_db": float(np.mean(np.subtract(crop_gain, full_gain)))})
    return pd.DataFrame(rows)


def grid_size_checks(models: Mapping[str, torch.nn.Module], channels: Mapping[str, int],
                     test_sets: Mapping[str, Sequence[tuple[str, np.ndarray]]], n_images: int, sizes: Sequence[int],
                     sigma: float, seed: int, progress: bool = True) -> pd.DataFrame:
    """:func:`grid_size_check` of every model on the first ``n_images`` (0: all) of its own test set: the
    first set of :data:`lib.denoise.study.TEST_SETS_FOR` for its channel count (grey BSD68, colour
    CBSD68) among ``test_sets``. Models whose set is not there are left out.

    Returns:
        :func:`grid_size_check`'s rows, with the column ``set``, one block per test set.
    """
    by_set: dict[str, dict[str, torch.nn.Module]] = {}
    for name, model in models.items():
        test_set = next((t for t in TEST_SETS_FOR.get(int(channels[name]), ()) if t in test_sets), None)
        if test_set is not None:
            by_set.setdefault(test_set, {})[name] = model
    frames = [grid_size_check(group, test_sets[s][: n_images or None], sizes, sigma, seed, progress).assign(set=s)
              for s, group in by_set.items()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def metrics_document(meta: dict, run_table: pd.DataFrame, summary: pd.DataFrame, bm3d_summary: pd.DataFrame,
                     grid: pd.DataFrame, paired: list, ablation: list | None = None,
                     intervals: pd.DataFrame | None = None) -> dict:
    """The ``evaluate_denoising`` metrics file (``reports/metrics/denoise_eval.json``): provenance, the
    runs, the PSNR/SSIM summary on common images, the BM3D subset, the tile-grid check, the paired
    bootstrap differences (best ASAPNet run against the CNNs; every run against the run it changes)
    and the bootstrap intervals of every model's mean PSNR."""
    return {
        "meta": meta,
        "runs": run_table.to_dict(orient="records"),
        "summary": summary.to_dict(orient="records"),
        "bm3d_subset": bm3d_summary.to_dict(orient="records"),
        "grid_check": grid.to_dict(orient="records"),
        "paired_difference": paired,
        "ablation_delta": list(ablation or []),
        "psnr_interval": [] if intervals is None else intervals.to_dict(orient="records"),
    }


def outputs() -> dict[str, str]:
    """The ``evaluate_denoising`` stage's outputs (project-relative; ``dvc.yaml`` declares the same paths)."""
    return {"per_image_out": "reports/metrics/denoise_per_image.csv",
            "metrics_out": "reports/metrics/denoise_eval.json",
            "timing_out": "reports/metrics/denoise_timing.csv",
            "crops_out": "reports/figures/stages/denoise_crops.png"}
