"""Denoiser training (DnCNN recipe) with exact resume and optional DDP.

Recipe (Zhang et al., IEEE TIP 2017, sec. IV-A and the official training code): random
noisy/clean patches (:class:`lib.data.denoise.PatchDataset`), Adam, mini-batch 128, a
step-decay learning rate, MSE loss. DnCNN minimises ``1/(2N) sum_i ||R(y_i) - (y_i - x_i)||^2``
for the residual ``R``; for a residual net the output is ``y - R(y)``, so
``output - x = -(R(y) - (y - x))`` and the per-pixel MSE between output and clean image is
the same objective up to a constant factor (``1 / (2 N)`` of a sum vs a per-pixel mean).
That form also serves denoisers that are not residual.

Determinism: the batch of step ``s`` is fixed by ``(seed, s)``: epoch ``e = s //
steps_per_epoch``, sample indices ``k*B .. (k+1)*B - 1`` with ``k = s mod steps_per_epoch``
(each PatchDataset sample is already random given ``(seed, e, index)``, so no permutation
is needed). An interrupted and resumed run therefore computes the same steps as an
uninterrupted one. Under ``torchrun`` each rank takes a disjoint contiguous shard of that
batch; DDP averages the gradients, so without batch norm the update equals the
single-process one (batch-norm statistics are per rank).

Outputs (rank 0): ``out_dir/checkpoint.pt`` (latest, atomic, see
:func:`lib.train.common.save_training_checkpoint`) and ``out_dir/losses.csv`` with columns
``step, epoch, loss, lr, seconds``.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from lib.config import from_dict, to_dict
from lib.data.denoise import PatchDataset
from lib.models import build, make_config
from lib.train.common import (
    all_reduce_mean,
    append_losses,
    autocast,
    check_batch,
    check_finite,
    check_finite_params,
    cleanup,
    gather_rng_states,
    init_distributed,
    is_distributed,
    is_main,
    barrier,
    load_model,
    load_training_checkpoint,
    prepare_output,
    rank_seed,
    save_training_checkpoint,
    seed_everything,
    set_threads,
    wrap_ddp,
)

__all__ = [
    "DenoiseTrainConfig",
    "train_denoiser",
    "load_denoiser",
    "batch_indices",
    "CHECKPOINT_NAME",
    "LOSSES_NAME",
    "LOSS_COLUMNS",
    "RESUME_KEYS",
]

CHECKPOINT_NAME = "checkpoint.pt"
LOSSES_NAME = "losses.csv"
LOSS_COLUMNS = ("step", "epoch", "loss", "lr", "seconds")

# Training settings that fix the trajectory: a checkpoint made with other values cannot be
# resumed into this run (run length, logging, threads, device and workers may change).
RESUME_KEYS = (
    "seed",
    "patch_size",
    "batch_size",
    "patches_per_epoch",
    "lr",
    "milestones",
    "gamma",
    "sigma_range",
    "sigma_fixed",
    "grad_clip",
    "amp",
)


@dataclasses.dataclass(frozen=True)
class DenoiseTrainConfig:
    """Denoiser training settings; defaults follow DnCNN (sec. IV-A, official training code).

    Attributes:
        seed: seeds model initialisation and every training patch.
        patch_size: patch side P (40 for DnCNN-S; the paper uses 50 for blind DnCNN-B).
        batch_size: patches per optimizer step, summed over ranks.
        patches_per_epoch: training patches per epoch (DnCNN-S: 128 x 1600).
        epochs: epochs to run.
        lr: Adam learning rate.
        milestones: epochs after which the learning rate is multiplied by ``gamma``.
        gamma: step-decay factor.
        sigma_range: noise level range ``(lo, hi)`` in 0..255 units, drawn uniformly per patch
            (blind training), used when ``sigma_fixed`` is ``None``.
        sigma_fixed: one noise level for every patch (DnCNN-S), or ``None`` (blind).
        checkpoint_every: write ``checkpoint.pt`` every this many steps (0: only at the end).
        log_every: one ``losses.csv`` row (mean loss since the previous row) every this many
            steps, and one at the last step.
        grad_clip: clip the global gradient norm to this value, or ``None``.
        threads: torch CPU threads (0: leave torch's setting).
        max_steps: 0 runs ``epochs * steps_per_epoch`` steps; > 0 caps the run at this many
            (budgets, smoke runs).
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        workers: DataLoader worker processes for patch sampling (0: in the training process).
        amp: bf16 autocast on CUDA (ignored on the CPU).
    """

    seed: int = 0
    patch_size: int = 40  # DnCNN sec. IV-A: 40x40 for DnCNN-S (50x50 for DnCNN-B)
    batch_size: int = 128  # DnCNN sec. IV-A: mini-batch size 128
    patches_per_epoch: int = 128 * 1600  # DnCNN sec. IV-A: 128 x 1,600 patches (DnCNN-S)
    epochs: int = 50  # official Adam training code: 30 epochs at 1e-3 + 20 at 1e-4
    lr: float = 1e-3  # official Adam training code: learning rate 1e-3 ...
    milestones: tuple[int, ...] = (30,)  # ... then 1e-4 after epoch 30
    gamma: float = 0.1  # official Adam training code: 1e-3 -> 1e-4
    sigma_range: tuple[float, float] = (0.0, 55.0)  # DnCNN sec. IV-A: DnCNN-B noise levels in [0, 55]
    sigma_fixed: float | None = None  # DnCNN-S: 15, 25 or 50 (sec. IV-A); None = blind
    checkpoint_every: int = 500  # not from the paper: bounds the work lost to an interruption
    log_every: int = 50  # not from the paper
    grad_clip: float | None = None  # official Adam training code: no gradient clipping
    threads: int = 0
    max_steps: int = 0
    device: str = "auto"
    workers: int = 0
    amp: bool = False

    def __post_init__(self) -> None:
        for name in ("patch_size", "batch_size", "patches_per_epoch", "epochs", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("checkpoint_every", "threads", "max_steps", "workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.patches_per_epoch < self.batch_size:
            raise ValueError(
                f"patches_per_epoch ({self.patches_per_epoch}) must be >= batch_size ({self.batch_size})"
            )
        if not self.lr > 0 or not self.gamma > 0:
            raise ValueError(f"lr and gamma must be > 0, got lr={self.lr}, gamma={self.gamma}")
        if list(self.milestones) != sorted(set(self.milestones)) or any(m < 1 for m in self.milestones):
            raise ValueError(f"milestones must be increasing epochs >= 1, got {list(self.milestones)}")
        lo, hi = self.sigma_range
        if not 0 <= lo <= hi:
            raise ValueError(f"sigma_range must satisfy 0 <= lo <= hi, got {tuple(self.sigma_range)}")
        if self.sigma_fixed is not None and self.sigma_fixed < 0:
            raise ValueError(f"sigma_fixed must be >= 0, got {self.sigma_fixed}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or null, got {self.grad_clip}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:i]', got {self.device!r}")

    @property
    def steps_per_epoch(self) -> int:
        """``patches_per_epoch // batch_size`` (an incomplete last batch is dropped)."""
        return self.patches_per_epoch // self.batch_size

    @property
    def total_steps(self) -> int:
        """``epochs * steps_per_epoch``, capped by ``max_steps`` when it is > 0."""
        full = self.epochs * self.steps_per_epoch
        return min(full, self.max_steps) if self.max_steps else full


def batch_indices(step: int, steps_per_epoch: int, batch_size: int, rank: int = 0, world_size: int = 1) -> tuple[int, range]:
    """The patches of optimizer step ``step`` (0-based) taken by ``rank``.

    Returns:
        ``(epoch, indices)``: ``epoch = step // steps_per_epoch`` and the contiguous shard
        ``rank`` of ``k*B .. (k+1)*B - 1`` (``k = step mod steps_per_epoch``, ``B =
        batch_size``), of length ``B / world_size``.

    Raises:
        ValueError: ``batch_size`` is not a multiple of ``world_size``.
    """
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} is not divisible by the world size {world_size}")
    shard = batch_size // world_size
    epoch, k = divmod(int(step), int(steps_per_epoch))
    first = k * batch_size + rank * shard
    return epoch, range(first, first + shard)


class _EpochItems(Dataset):
    """Indexes a PatchDataset by ``(epoch, index)`` (so worker processes need no set_epoch)."""

    def __init__(self, dataset: PatchDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        self.dataset.set_epoch(epoch)
        return self.dataset[index]


class _StepBatches(Sampler):
    """Yields this rank's ``[(epoch, index), ...]`` for steps ``start .. total - 1``."""

    def __init__(self, start: int, total: int, steps_per_epoch: int, batch_size: int, rank: int, world: int) -> None:
        self.start, self.total = start, total
        self.spe, self.batch, self.rank, self.world = steps_per_epoch, batch_size, rank, world

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.total):
            epoch, idx = batch_indices(step, self.spe, self.batch, self.rank, self.world)
            yield [(epoch, i) for i in idx]

    def __len__(self) -> int:
        return max(0, self.total - self.start)


def _images(images: Sequence[Any]) -> list[np.ndarray]:
    """Accepts uint8 arrays or ``(name, array)`` pairs (as returned by ``load_set``)."""
    out = []
    for im in images:
        if isinstance(im, tuple) and len(im) == 2 and isinstance(im[0], str):
            im = im[1]
        out.append(np.asarray(im))
    return out


def _check_resume_params(path: Path, stored: Mapping[str, Any], cfg: DenoiseTrainConfig) -> None:
    now = to_dict(cfg)
    diff = [k for k in RESUME_KEYS if stored.get(k) != now[k]]
    if diff:
        pairs = ", ".join(f"{k}: checkpoint {stored.get(k)!r} vs requested {now[k]!r}" for k in diff)
        raise ValueError(f"{path}: cannot resume, training settings differ ({pairs}); use another out_dir or resume=False")


def train_denoiser(
    model_name: str,
    model_cfg: Mapping[str, Any] | Any | None,
    train_cfg: DenoiseTrainConfig | Mapping[str, Any] | None,
    images: Sequence[Any],
    out_dir: str | os.PathLike,
    resume: bool = True,
    *,
    progress: bool = True,
    on_step: Callable[[int, float, nn.Module], None] | None = None,
) -> dict:
    """Trains a denoiser from the model registry on noisy/clean patches.

    The model is called as ``model(noisy, sigma=sigma)`` with ``noisy`` (B, C, P, P) and
    ``sigma`` (B,) in 0..255 units (blind models ignore it); the loss is
    ``mean((model(noisy) - clean)^2)``. Under ``torchrun`` the model is wrapped in
    DistributedDataParallel, each rank takes a disjoint shard of every batch, and rank 0
    writes the outputs.

    Args:
        model_name: registry name (``lib.models.MODELS``).
        model_cfg: the model config (mapping, instance, or ``None`` for defaults).
        train_cfg: :class:`DenoiseTrainConfig` or a mapping for it (strict).
        images: training images, uint8 ``(H, W)`` or ``(H, W, 3)`` arrays (or ``(name,
            array)`` pairs).
        out_dir: folder for ``checkpoint.pt`` and ``losses.csv``.
        resume: continue from ``out_dir/checkpoint.pt`` when it exists (same data order,
            optimizer, scheduler and RNG state); ``False`` starts afresh and replaces it.
        progress: show a tqdm bar (rank 0).
        on_step: called on every rank after each step (and its log row / checkpoint) as
            ``on_step(step, loss, model)`` with the steps done, the step's loss (mean over
            ranks) and the unwrapped model.

    Returns:
        ``dict(model, steps, start_step, steps_run, wall_seconds, train_seconds, final_loss,
        checkpoint, losses_csv, world_size, device)``: ``steps`` is the total step count,
        ``wall_seconds`` this call's time, ``train_seconds`` the time summed over resumed
        runs, ``final_loss`` the last step's loss.

    Raises:
        ValueError: the checkpoint holds another model / config (both named) or other
            trajectory settings (:data:`RESUME_KEYS`); the batch does not split over ranks.
        FloatingPointError: a non-finite loss or weight (names the step and the last good
            checkpoint, which is left intact).
    """
    cfg = train_cfg if isinstance(train_cfg, DenoiseTrainConfig) else from_dict(DenoiseTrainConfig, train_cfg, where="train")
    owns_group = not is_distributed()
    rank, world, device = init_distributed(device=cfg.device)
    try:
        return _train(model_name, make_config(model_name, model_cfg), cfg, _images(images), Path(out_dir),
                      resume, progress, on_step, rank, world, device)
    finally:
        if owns_group:
            cleanup()


def _train(
    model_name: str,
    model_cfg: Any,
    cfg: DenoiseTrainConfig,
    images: list[np.ndarray],
    out_dir: Path,
    resume: bool,
    progress: bool,
    on_step: Callable[[int, float, nn.Module], None] | None,
    rank: int,
    world: int,
    device: torch.device,
) -> dict:
    from tqdm import tqdm

    t_start = time.perf_counter()
    set_threads(cfg.threads)
    check_batch(cfg.batch_size, world)
    ckpt_path, csv_path = out_dir / CHECKPOINT_NAME, out_dir / LOSSES_NAME
    spe, total = cfg.steps_per_epoch, cfg.total_steps
    sigma = cfg.sigma_fixed if cfg.sigma_fixed is not None else tuple(cfg.sigma_range)
    dataset = PatchDataset(images, cfg.patch_size, cfg.patches_per_epoch, sigma, cfg.seed)

    seed_everything(cfg.seed)  # same initial weights on every rank
    net = build(model_name, model_cfg).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)  # DnCNN official training code: Adam
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [m * spe for m in cfg.milestones], gamma=cfg.gamma)
    models, optimizers, schedulers = {"model": net}, {"adam": optimizer}, {"lr": scheduler}
    seed_everything(rank_seed(cfg.seed, rank))

    start, seconds0, loss_sum, loss_count, last_loss = 0, 0.0, 0.0, 0, math.nan
    if resume and ckpt_path.is_file():
        info = load_training_checkpoint(
            ckpt_path, models, optimizers, schedulers, model_name=model_name, model_cfg=model_cfg, rank=rank
        )
        _check_resume_params(ckpt_path, info["params"], cfg)
        extra = info["extra"]
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
        if has_bn and int(extra.get("world_size", world)) != world:
            warnings.warn(f"{ckpt_path}: saved with {extra.get('world_size')} ranks, resumed with {world}: "
                          "batch-norm statistics per rank change the trajectory")
        start = info["step"]
        seconds0 = float(extra.get("seconds", 0.0))
        loss_sum, loss_count = float(extra.get("loss_sum", 0.0)), int(extra.get("loss_count", 0))
        last_loss = float(extra.get("last_loss", math.nan))
    last_good = prepare_output(out_dir, ckpt_path, csv_path, start, rank)

    model = wrap_ddp(net, world, device)
    model.train()
    loader = DataLoader(
        _EpochItems(dataset),
        batch_sampler=_StepBatches(start, total, spe, cfg.batch_size, rank, world),
        num_workers=cfg.workers,
        pin_memory=device.type == "cuda",
    )
    bar = tqdm(total=total, initial=start, disable=not (progress and is_main(rank)), desc=f"train {model_name}", unit="step")
    t_loop = time.perf_counter()
    step = start
    for batch in loader:
        epoch = step // spe
        noisy = batch["noisy"].to(device, non_blocking=True)  # (B/world, C, P, P)
        clean = batch["clean"].to(device, non_blocking=True)  # (B/world, C, P, P)
        sigmas = batch["sigma"].to(device, non_blocking=True)  # (B/world,) in 0..255 units
        with autocast(device, cfg.amp):
            out = model(noisy, sigma=sigmas)  # (B/world, C, P, P)
        loss = F.mse_loss(out.float(), clean)
        mean_loss = all_reduce_mean(loss)
        check_finite({"loss": mean_loss}, step + 1, last_good)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        lr = float(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        step += 1

        last_loss = float(mean_loss)
        loss_sum, loss_count = loss_sum + last_loss, loss_count + 1
        seconds = seconds0 + time.perf_counter() - t_loop
        if step % cfg.log_every == 0 or step == total:
            if is_main(rank):
                row = dict(step=step, epoch=epoch, loss=loss_sum / loss_count, lr=lr, seconds=round(seconds, 3))
                append_losses(csv_path, [row])
            loss_sum, loss_count = 0.0, 0
        if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == total:
            check_finite_params(models, step, last_good)
            rng = gather_rng_states()
            if is_main(rank):
                save_training_checkpoint(
                    ckpt_path,
                    model_name=model_name,
                    model_cfg=model_cfg,
                    params=cfg,
                    step=step,
                    epoch=step // spe,
                    models=models,
                    optimizers=optimizers,
                    schedulers=schedulers,
                    rng=rng,
                    extra=dict(seconds=seconds, loss_sum=loss_sum, loss_count=loss_count, last_loss=last_loss,
                               world_size=world),
                )
            last_good = ckpt_path
        bar.update(1)
        bar.set_postfix(loss=f"{last_loss:.4g}", lr=f"{lr:.2g}")
        if on_step is not None:
            on_step(step, last_loss, net)
    bar.close()
    barrier()
    return {
        "model": model_name,
        "steps": step,
        "start_step": start,
        "steps_run": step - start,
        "wall_seconds": time.perf_counter() - t_start,
        "train_seconds": seconds0 + (time.perf_counter() - t_loop if step > start else 0.0),
        "final_loss": last_loss,
        "checkpoint": str(ckpt_path),
        "losses_csv": str(csv_path),
        "world_size": world,
        "device": str(device),
    }


def load_denoiser(checkpoint_path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """A trained denoiser in eval mode, built from the checkpoint's model name and config via
    the registry; call it as ``model(noisy, sigma=sigma)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a checkpoint of this project, or weights that do not fit (names the file).
    """
    return load_model(checkpoint_path, map_location)
