"""Denoiser training (DnCNN recipe): the config, the model and optimizer, and one step.

Recipe (Zhang et al., IEEE TIP 2017, sec. IV-A and the official training code): random
noisy/clean patches (:class:`lib.data.denoise.PatchDataset`), Adam, mini-batch 128, a
step-decay learning rate (held until a fraction of the run, then divided), MSE loss. A run's
length is an epoch count or a budget of training pixel-samples (:func:`budget_steps`, so
models trained on different patch sizes see the same number of pixels). Batch-norm running
statistics are re-estimated on training patches at the end (:func:`recalibrate_batch_norm`):
the running averages kept during training lag a fast-changing network.

DnCNN minimises ``1/(2N) sum_i ||R(y_i) - (y_i - x_i)||^2`` for the residual ``R``; for a
residual net the output is ``y - R(y)``, so ``output - x = -(R(y) - (y - x))`` and the
per-pixel MSE between output and clean image is the same objective up to a constant factor
(``1 / (2 N)`` of a sum vs a per-pixel mean). That form also serves denoisers that are not
residual.

The loop, resume, checkpoints, loss CSV and DDP are :func:`lib.train.loop.run`'s. Data order:
the batch of step ``s`` is the patches ``k*B .. (k+1)*B - 1`` of epoch ``s // steps_per_epoch``
(``k = s mod steps_per_epoch``) in order, without a permutation: each PatchDataset sample is
already random given ``(seed, epoch, index)``. Under ``torchrun`` DDP averages the shard
gradients, so without batch norm the update equals the single-process one (batch-norm
statistics are per rank).

Precision: ``precision: auto`` trains under bf16 autocast where
:func:`lib.device.bf16_autocast_recommended` says it pays off, else in fp32; the summary
records the choice.

Outputs (rank 0): ``out_dir/checkpoint.pt`` and ``out_dir/losses.csv`` (:data:`LOSS_COLUMNS`).
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lib.config import from_dict
from lib.data.denoise import PatchDataset, step_patch_size
from lib.device import autocast_dtype_name, check_device, check_precision
from lib.models import build, make_config
from lib.train.loop import CHECKPOINT_NAME, LOSSES_NAME, EpochItems, Parts, Trainer, run

__all__ = [
    "DenoiseTrainConfig",
    "train_denoiser",
    "budget_steps",
    "pixel_samples",
    "lr_milestones",
    "recalibrate_batch_norm",
    "CHECKPOINT_NAME",
    "LOSSES_NAME",
    "LOSS_COLUMNS",
    "RESUME_KEYS",
]

LOSS_COLUMNS = ("step", "epoch", "loss", "lr", "seconds")

# Training settings that fix the trajectory or the outputs: a checkpoint made with other values
# cannot be resumed into this run (run length, threads, device and workers may change).
RESUME_KEYS = (
    "seed",
    "log_every",
    "bn_recalibration_batches",
    "patch_size",
    "patch_sizes",
    "batch_size",
    "patches_per_epoch",
    "epochs",
    "budget_pixels",
    "lr",
    "lr_drop_at",
    "gamma",
    "sigma_range",
    "sigma_fixed",
    "grad_clip",
    "precision",
)
_CALIBRATION_STREAM = 3  # SeedSequence spawn key of the batch-norm re-estimation patches


@dataclasses.dataclass(frozen=True)
class DenoiseTrainConfig:
    """Denoiser training settings; defaults follow DnCNN (sec. IV-A, official training code).

    Attributes:
        seed: seeds model initialisation and every training patch.
        patch_size: patch side P (40 for DnCNN-S; the paper uses 50 for blind DnCNN-B).
        patch_sizes: several patch sides instead of ``patch_size``: each step draws one of them
            (:func:`lib.data.denoise.step_patch_size`; a batch shares one side). Empty: every
            patch is ``patch_size``.
        batch_size: patches per optimizer step, summed over ranks.
        patches_per_epoch: training patches per epoch (DnCNN-S: 128 x 1600).
        epochs: epochs to run (when ``budget_pixels`` is 0).
        budget_pixels: > 0: the run is this many training pixel-samples (patches x P^2 summed
            over the steps) instead of ``epochs`` (:func:`budget_steps`).
        lr: Adam learning rate.
        lr_drop_at: fractions of the planned steps (``epochs`` or ``budget_pixels``, before the
            ``max_steps`` cap) after which the learning rate is multiplied by ``gamma``.
        gamma: step-decay factor.
        sigma_range: noise level range ``(lo, hi)`` in 0..255 units, drawn uniformly per patch
            (blind training), used when ``sigma_fixed`` is ``None``.
        sigma_fixed: one noise level for every patch (DnCNN-S), or ``None`` (blind).
        checkpoint_every: write ``checkpoint.pt`` every this many steps (0: only at the end).
        log_every: one ``losses.csv`` row (mean loss since the previous row) every this many
            steps, and one at the last step.
        grad_clip: clip the global gradient norm to this value, or ``None``.
        threads: torch CPU threads (0: leave torch's setting).
        max_steps: 0 runs the planned steps; > 0 stops the run after this many (smoke runs);
            the learning-rate schedule stays that of the planned run.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        workers: DataLoader worker processes for patch sampling (0: in the training process).
        precision: ``"auto"`` (bf16 autocast where :func:`lib.device.bf16_autocast_recommended`,
            else fp32), ``"fp32"`` or ``"bf16"`` (autocast on the CPU or CUDA).
        bn_recalibration_batches: at the last step, re-estimate the batch-norm running
            statistics over this many batches of training patches (0: keep the running
            averages of training); no effect on models without batch norm.
    """

    seed: int = 0
    patch_size: int = 40  # DnCNN sec. IV-A: 40x40 for DnCNN-S (50x50 for DnCNN-B)
    patch_sizes: tuple[int, ...] = ()
    batch_size: int = 128  # DnCNN sec. IV-A: mini-batch size 128
    patches_per_epoch: int = 128 * 1600  # DnCNN sec. IV-A: 128 x 1,600 patches (DnCNN-S)
    epochs: int = 50  # official Adam training code: 30 epochs at 1e-3 + 20 at 1e-4
    budget_pixels: int = 0
    lr: float = 1e-3  # official Adam training code: learning rate 1e-3 ...
    lr_drop_at: tuple[float, ...] = (0.6,)  # ... then 1e-4 after epoch 30 of 50
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
    precision: Literal["auto", "fp32", "bf16"] = "fp32"  # the paper trains in fp32; params.yaml says auto
    bn_recalibration_batches: int = 20  # not from the paper: see the attribute's description

    def __post_init__(self) -> None:
        for name in ("patch_size", "batch_size", "patches_per_epoch", "epochs", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("checkpoint_every", "threads", "max_steps", "workers", "budget_pixels", "bn_recalibration_batches"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if any(p < 1 for p in self.patch_sizes):
            raise ValueError(f"patch_sizes must be sides >= 1, got {list(self.patch_sizes)}")
        if self.patches_per_epoch < self.batch_size:
            raise ValueError(
                f"patches_per_epoch ({self.patches_per_epoch}) must be >= batch_size ({self.batch_size})"
            )
        if not self.lr > 0 or not self.gamma > 0:
            raise ValueError(f"lr and gamma must be > 0, got lr={self.lr}, gamma={self.gamma}")
        drops = list(self.lr_drop_at)
        if drops != sorted(set(drops)) or any(not 0 < f < 1 for f in drops):
            raise ValueError(f"lr_drop_at must be increasing fractions of the run in (0, 1), got {drops}")
        lo, hi = self.sigma_range
        if not (0 <= lo <= hi <= 255 and hi > 0):
            raise ValueError(f"sigma_range must satisfy 0 <= lo <= hi <= 255 with hi > 0 (noise levels in 0..255 "
                             f"units), got {list(self.sigma_range)}")
        if self.sigma_fixed is not None and not 0 < self.sigma_fixed <= 255:
            raise ValueError(f"sigma_fixed must be a noise level in (0, 255] or null, got {self.sigma_fixed}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or null, got {self.grad_clip}")
        check_device(self.device)
        check_precision(self.precision)

    @property
    def sizes(self) -> tuple[int, ...]:
        """The patch sides a step draws from: ``patch_sizes``, or ``(patch_size,)``."""
        return tuple(self.patch_sizes) or (self.patch_size,)

    @property
    def steps_per_epoch(self) -> int:
        """``patches_per_epoch // batch_size`` (an incomplete last batch is dropped)."""
        return self.patches_per_epoch // self.batch_size

    @property
    def planned_steps(self) -> int:
        """The run's length before the ``max_steps`` cap: :func:`budget_steps` when
        ``budget_pixels`` > 0, else ``epochs * steps_per_epoch``."""
        if self.budget_pixels:
            return budget_steps(self.budget_pixels, self.batch_size, self.sizes, self.seed)
        return self.epochs * self.steps_per_epoch

    @property
    def total_steps(self) -> int:
        """The steps this run computes: ``planned_steps``, capped by ``max_steps`` when it is > 0."""
        full = self.planned_steps
        return min(full, self.max_steps) if self.max_steps else full


def budget_steps(budget_pixels: int, batch_size: int, sizes: Sequence[int], seed: int = 0) -> int:
    """The number of steps whose training pixel-samples (``batch_size * P_s^2`` summed over the
    steps ``s``) first reach ``budget_pixels``: the one place a budget becomes a step count.

    With one side P that is ``ceil(budget / (batch_size * P^2))``; with several, the sides of the
    steps as drawn by :func:`lib.data.denoise.step_patch_size` are added up, so runs with
    different patch sides see the same pixel count within one step.

    Raises:
        ValueError: a budget, batch or side < 1.
    """
    if budget_pixels < 1 or batch_size < 1 or not sizes or min(sizes) < 1:
        raise ValueError(f"budget_pixels ({budget_pixels}), batch_size ({batch_size}) and patch sides "
                         f"({list(sizes)}) must be >= 1")
    if len(sizes) == 1:
        return math.ceil(budget_pixels / (batch_size * int(sizes[0]) ** 2))
    steps, seen = 0, 0
    while seen < budget_pixels:
        seen += batch_size * step_patch_size(sizes, seed, steps) ** 2
        steps += 1
    return steps


def pixel_samples(cfg: DenoiseTrainConfig, steps: int) -> int:
    """Training pixel-samples of the first ``steps`` steps of a run (``batch_size * P_s^2`` summed)."""
    if len(cfg.sizes) == 1:
        return int(steps) * cfg.batch_size * cfg.sizes[0] ** 2
    return sum(cfg.batch_size * step_patch_size(cfg.sizes, cfg.seed, s) ** 2 for s in range(int(steps)))


def lr_milestones(cfg: DenoiseTrainConfig) -> list[int]:
    """The steps after which the learning rate drops: ``round(f * planned_steps)`` for each
    fraction ``f`` of ``lr_drop_at`` (at least step 1)."""
    return [max(1, round(f * cfg.planned_steps)) for f in cfg.lr_drop_at]


def recalibrate_batch_norm(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Re-estimates every batch-norm layer's running mean and variance as the plain average over
    ``batches`` (train-mode forwards without gradients, fp32, ``momentum=None``), so eval mode
    uses statistics of the final network rather than running averages that lag its training.

    Args:
        model: the network (its mode and the layers' momenta are restored afterwards).
        batches: its input batches, (B, C, H, W) each, on the model's device.

    Returns:
        The number of batches used (0 and nothing changed when the model has no batch norm).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    was_training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
    model.train()
    n = 0
    try:
        with torch.no_grad():
            for x in batches:
                model(x)
                n += 1
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return n


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
    ``mean((model(noisy) - clean)^2)`` in fp32 (the forward under bf16 autocast when the
    resolved precision is bf16). At the last step the batch-norm statistics are re-estimated
    (``bn_recalibration_batches``) before the final checkpoint is written.

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
        checkpoint, losses_csv, world_size, device, precision, planned_steps, pixel_samples,
        lr_milestones)``: ``steps`` is the total step count, ``wall_seconds`` this call's time,
        ``train_seconds`` the time summed over resumed runs, ``final_loss`` the last step's
        loss, ``precision`` the resolved one (``fp32``/``bf16``), ``pixel_samples`` the
        training pixel-samples of the ``steps`` steps.

    Raises:
        ValueError: the checkpoint holds another model / config (both named) or other
            trajectory settings (:data:`RESUME_KEYS`); the batch does not split over ranks.
        FloatingPointError: a non-finite loss or weight (names the step and the last good
            checkpoint, which is left intact).
    """
    cfg = train_cfg if isinstance(train_cfg, DenoiseTrainConfig) else from_dict(DenoiseTrainConfig, train_cfg, where="train")
    model_cfg = make_config(model_name, model_cfg)
    sigma = cfg.sigma_fixed if cfg.sigma_fixed is not None else tuple(cfg.sigma_range)
    images = _images(images)
    dataset = PatchDataset(images, cfg.sizes, cfg.patches_per_epoch, sigma, cfg.seed, cfg.batch_size)
    total, precision = cfg.total_steps, {}

    def build_parts(device: torch.device) -> Parts:
        net = build(model_name, model_cfg).to(device)
        optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)  # DnCNN official training code: Adam
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, lr_milestones(cfg), gamma=cfg.gamma)
        precision["name"] = autocast_dtype_name(cfg.precision, device)
        bf16 = precision["name"] == "bf16"

        def step(batch: dict, _step: int, nets: dict[str, nn.Module]) -> dict:
            model = nets["model"]
            noisy = batch["noisy"].to(device, non_blocking=True)  # (B/world, C, P, P)
            clean = batch["clean"].to(device, non_blocking=True)  # (B/world, C, P, P)
            sigmas = batch["sigma"].to(device, non_blocking=True)  # (B/world,) in 0..255 units
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                out = model(noisy, sigma=sigmas)  # (B/world, C, P, P)
            loss = F.mse_loss(out.float(), clean)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            return {"loss": loss}

        def after_step(done: int, _end: bool, _seconds: float) -> None:
            if done == total and cfg.bn_recalibration_batches:
                recalibrate_batch_norm(net, _calibration_batches(images, cfg, sigma, device))

        return Parts(model_name, model_cfg, {"model": net}, {"adam": optimizer}, {"lr": scheduler}, step,
                     extra={"precision": precision["name"]}, after_step=after_step)

    trainer = Trainer(name=model_name, cfg=cfg, items=EpochItems(dataset), num_items=cfg.patches_per_epoch,
                      total_steps=total, build=build_parts, loss_terms=("loss",),
                      lr_columns={"lr": "adam"}, resume_keys=RESUME_KEYS, shuffle=False)
    out = run(trainer, out_dir, resume=resume, progress=progress, on_step=on_step)
    out = {"model": model_name, **out, "final_loss": out["last_losses"]["loss"], "precision": precision["name"],
           "planned_steps": cfg.planned_steps, "pixel_samples": pixel_samples(cfg, out["steps"]),
           "lr_milestones": lr_milestones(cfg)}
    keys = ("model", "steps", "start_step", "steps_run", "wall_seconds", "train_seconds", "final_loss", "checkpoint",
            "losses_csv", "world_size", "device", "precision", "planned_steps", "pixel_samples", "lr_milestones")
    return {k: out[k] for k in keys}


def _calibration_batches(images: list[np.ndarray], cfg: DenoiseTrainConfig, sigma: Any,
                         device: torch.device) -> Iterable[torch.Tensor]:
    """``cfg.bn_recalibration_batches`` noisy batches of training patches, (B, C, P, P) each,
    drawn like the training patches but from their own seed (the training stream is untouched)."""
    seed = int(np.random.SeedSequence([cfg.seed & 0xFFFFFFFF], spawn_key=(_CALIBRATION_STREAM,)).generate_state(1)[0])
    n, b = cfg.bn_recalibration_batches, cfg.batch_size
    data = PatchDataset(images, cfg.sizes, n * b, sigma, seed, b)
    for k in range(n):
        yield torch.stack([data[i]["noisy"] for i in range(k * b, (k + 1) * b)]).to(device)  # (B, C, P, P)
