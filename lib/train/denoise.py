"""Denoiser training (DnCNN recipe): the config, the model and optimizer, and one step.

Recipe (Zhang et al., IEEE TIP 2017, sec. IV-A and the official training code): random
noisy/clean patches (:class:`lib.data.denoise.PatchDataset`), Adam, mini-batch 128, a
step-decay learning rate, MSE loss. DnCNN minimises ``1/(2N) sum_i ||R(y_i) - (y_i - x_i)||^2``
for the residual ``R``; for a residual net the output is ``y - R(y)``, so
``output - x = -(R(y) - (y - x))`` and the per-pixel MSE between output and clean image is
the same objective up to a constant factor (``1 / (2 N)`` of a sum vs a per-pixel mean).
That form also serves denoisers that are not residual.

The loop, resume, checkpoints, loss CSV and DDP are :func:`lib.train.loop.run`'s. Data order:
the batch of step ``s`` is the patches ``k*B .. (k+1)*B - 1`` of epoch ``s // steps_per_epoch``
(``k = s mod steps_per_epoch``) in order, without a permutation: each PatchDataset sample is
already random given ``(seed, epoch, index)``. Under ``torchrun`` DDP averages the shard
gradients, so without batch norm the update equals the single-process one (batch-norm
statistics are per rank).

Outputs (rank 0): ``out_dir/checkpoint.pt`` and ``out_dir/losses.csv`` (:data:`LOSS_COLUMNS`).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lib.config import from_dict
from lib.data.denoise import PatchDataset
from lib.models import build, make_config
from lib.train.common import autocast
from lib.train.loop import CHECKPOINT_NAME, LOSSES_NAME, EpochItems, Parts, Trainer, run

__all__ = [
    "DenoiseTrainConfig",
    "train_denoiser",
    "CHECKPOINT_NAME",
    "LOSSES_NAME",
    "LOSS_COLUMNS",
    "RESUME_KEYS",
]

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


def _images(images: Sequence[Any]) -> list[np.ndarray]:
    """Accepts uint8 arrays or ``(name, array)`` pairs (as returned by ``load_set``)."""
    out = []
    for im in images:
        if isinstance(im, tuple) and len(im) == 2 and isinstance(im[0], str):
            im = im[1]
        out.append(np.asarray(im))
    return out


def train_denoiser(
    model_name: str,
    model_cfg: Mapping[str, Any] | Any | None,
    train_cfg: DenoiseTrainConfig | Mapping[str, Any] | None,
    images: Sequence[Any],
    out_dir: str | os.PathLike,
    resume: bool = True,
    *,
    progress: bool = True,
    on_step: Callable[[int, dict, dict[str, nn.Module]], None] | None = None,
) -> dict:
    """Trains a denoiser from the model registry on noisy/clean patches.

    The model is called as ``model(noisy, sigma=sigma)`` with ``noisy`` (B, C, P, P) and
    ``sigma`` (B,) in 0..255 units (blind models ignore it); the loss is
    ``mean((model(noisy) - clean)^2)``.

    Args:
        model_name: registry name (``lib.models.MODELS``).
        model_cfg: the model config (mapping, instance, or ``None`` for defaults).
        train_cfg: :class:`DenoiseTrainConfig` or a mapping for it (strict).
        images: training images, uint8 ``(H, W)`` or ``(H, W, 3)`` arrays (or ``(name,
            array)`` pairs).
        out_dir: folder for ``checkpoint.pt`` and ``losses.csv``.
        resume: continue from ``out_dir/checkpoint.pt`` when it exists; ``False`` starts afresh.
        progress: show a tqdm bar (rank 0).
        on_step: ``on_step(step, losses, models)`` after each step (:func:`lib.train.loop.run`).

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
    model_cfg = make_config(model_name, model_cfg)
    sigma = cfg.sigma_fixed if cfg.sigma_fixed is not None else tuple(cfg.sigma_range)
    dataset = PatchDataset(_images(images), cfg.patch_size, cfg.patches_per_epoch, sigma, cfg.seed)

    def build_parts(device: torch.device) -> Parts:
        net = build(model_name, model_cfg).to(device)
        optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)  # DnCNN official training code: Adam
        milestones = [m * cfg.steps_per_epoch for m in cfg.milestones]
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=cfg.gamma)

        def step(batch: dict, _step: int, nets: dict[str, nn.Module]) -> dict:
            model = nets["model"]
            noisy = batch["noisy"].to(device, non_blocking=True)  # (B/world, C, P, P)
            clean = batch["clean"].to(device, non_blocking=True)  # (B/world, C, P, P)
            sigmas = batch["sigma"].to(device, non_blocking=True)  # (B/world,) in 0..255 units
            with autocast(device, cfg.amp):
                out = model(noisy, sigma=sigmas)  # (B/world, C, P, P)
            loss = F.mse_loss(out.float(), clean)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            return {"loss": loss}

        return Parts(model_name, model_cfg, {"model": net}, {"adam": optimizer}, {"lr": scheduler}, step)

    trainer = Trainer(name=model_name, cfg=cfg, items=EpochItems(dataset), num_items=cfg.patches_per_epoch,
                      total_steps=cfg.total_steps, build=build_parts, loss_terms=("loss",),
                      lr_columns={"lr": "adam"}, resume_keys=RESUME_KEYS, shuffle=False)
    out = run(trainer, out_dir, resume=resume, progress=progress, on_step=on_step)
    out = {"model": model_name, **out, "final_loss": out["last_losses"]["loss"]}
    keys = ("model", "steps", "start_step", "steps_run", "wall_seconds", "train_seconds", "final_loss", "checkpoint",
            "losses_csv", "world_size", "device")
    return {k: out[k] for k in keys}
