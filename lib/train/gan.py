"""Label->photo GAN training: the config, generator + discriminator, one step, sample grids.

Recipe (ASAPNet sec. 4, following SPADE): a generator from the registry maps one-hot labels
(+ an instance-edge channel) to an image; a multiscale PatchGAN sees the labels (+ edges)
concatenated with a real or generated image. Every step first updates the discriminator on
``(real, fake.detach())``, then the generator on ``gan + lambda_feat * feature matching +
lambda_vgg * VGG + lambda_l1 * L1`` (VGG only when a VGG19 weights file is given; L1 off in
the paper's recipe). Adam with betas (0, 0.9) and the two-time-scale learning rates G 1e-4 /
D 4e-4; the learning rates stay constant for ``epochs`` epochs and then decay linearly over
``decay_epochs`` epochs (official ``update_learning_rate``: at the end of every epoch past
``niter`` the rate drops by ``lr / niter_decay``), or, with ``steps > 0``, stay constant for
``steps - decay_steps`` steps and then fall linearly towards 0 step by step. With
``ema_decay > 0`` an exponential moving average of the generator's weights is kept (updated
after every generator step) and is the generator evaluated. Other recipes are other config
values only, e.g. pix2pixHD::

    GANTrainConfig(generator="pix2pixhd", loss=LossConfig(gan_mode="lsgan"), lr_g=2e-4,
                   lr_d=2e-4, beta1=0.5, beta2=0.999,
                   discriminator_cfg={"spectral_norm": False})

The loop, data order, resume, checkpoints, loss CSV and DDP are :func:`lib.train.loop.run`'s;
horizontal flips are decided by ``(seed, epoch, index)`` there, so build the dataset with
``flip=False``. The generator is built for the image height
(:func:`lib.models.generate.generator_overrides`).

Outputs (rank 0) in ``out_dir``:

- ``checkpoint.pt`` (:func:`lib.train.loop.run`): ``model`` = generator name, the
  discriminator in ``aux_state_dicts``, optimizers / schedulers keyed ``generator`` and
  ``discriminator`` (no grad scalers: bf16 needs no loss scaling), ``extra`` with ``vgg_used``,
  the precision and the discriminator's name + config.
- ``losses.csv``: :data:`LOSS_COLUMNS`; ``g_feat``, ``g_vgg`` and ``g_l1`` are weighted by their
  lambdas (0 when off); ``lr_g`` / ``lr_d`` are the rates of the logged step.
- ``generator.pt`` and ``snapshots/step_{step:06d}.pt`` (:mod:`lib.train.gan_outputs`): the
  evaluation generator at the end and at ``curve_points`` steps spread over the run.
- ``samples/step_{step:06d}.png`` and ``samples/latest.png``: one row per fixed training item
  (4 items spread over the set, unflipped): label colours | generated (evaluation weights) | real.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from lib.config import ConfigError, check_keys, deep_merge, from_dict, to_dict
from lib.data.catalog import dataset_config
from lib.data.images import write_image
from lib.data.paired import PairedConfig
from lib.data.transforms import one_hot
from lib.device import autocast_dtype_name, check_device, check_precision
from lib.models import build, make_config
from lib.models.generate import generator_overrides
from lib.models.losses import LossConfig, d_loss_terms, feature_matching_loss, gan_g_loss, vgg19_features, vgg_loss
from lib.train.common import check_unflipped
from lib.train.gan_outputs import (EVAL_GENERATOR_NAME, SAMPLES_DIR, SNAPSHOTS_DIR, curve_steps, ema_update, generate,
                                   list_snapshots, sample_grid, snapshot_name, stale_outputs, write_generator)
from lib.train.loop import CHECKPOINT_NAME, LOSSES_NAME, EpochItems, Parts, Trainer, run

__all__ = ["outputs",
    "GANTrainConfig",
    "TranslationTrainStage",
    "gan_config",
    "translation_size",
    "train_gan",
    "generate",
    "list_snapshots",
    "lr_factor",
    "step_lr_factor",
    "d_loss_terms",
    "CHECKPOINT_NAME",
    "LOSSES_NAME",
    "SAMPLES_DIR",
    "SNAPSHOTS_DIR",
    "EVAL_GENERATOR_NAME",
    "LOSS_COLUMNS",
    "RESUME_KEYS",
    "NUM_SAMPLE_ITEMS",
]

LOSS_COLUMNS = ("step", "epoch", "d_real", "d_fake", "g_gan", "g_feat", "g_vgg", "g_l1", "lr_g", "lr_d", "seconds")
LOSS_TERMS = LOSS_COLUMNS[2:8]
NUM_SAMPLE_ITEMS = 4  # training items shown in each sample grid
DISCRIMINATOR = "patchgan"  # registry name of the discriminator

# Training settings that fix the trajectory or the outputs: a checkpoint made with other values
# cannot be resumed into this run (run length, budget, threads, device and workers may change;
# the snapshot steps are compared as the loop's output identity).
RESUME_KEYS = (
    "seed", "generator", "generator_cfg", "discriminator_cfg", "loss", "lr_g", "lr_d", "beta1",
    "beta2", "epochs", "decay_epochs", "steps", "decay_steps", "batch_size", "size", "flip", "precision", "ema_decay",
    "sample_every", "log_every",
)


@dataclasses.dataclass(frozen=True)
class GANTrainConfig:
    """GAN training settings; defaults are ASAPNet's recipe on Cityscapes (sec. 4).

    Attributes:
        seed: seeds the initial weights, the data order and the flips.
        generator: registry name of the generator (``asapnet``, ``pix2pixhd``, ``spade``).
        generator_cfg: overrides of its registry config (e.g. ``label_nc``,
            ``use_instance_edge``); a ``height`` field, when the config has one and it is not
            given, is set to ``size``.
        discriminator_cfg: overrides of :class:`lib.models.patchgan.PatchGANConfig`;
            ``in_channels`` defaults to ``label_nc + use_instance_edge + 3``.
        loss: adversarial mode, feature-matching and VGG weights, VGG19 weights file (VGG off
            when ``None``).
        lr_g: generator Adam learning rate.
        lr_d: discriminator Adam learning rate.
        beta1: Adam beta1 (both networks).
        beta2: Adam beta2 (both networks).
        epochs: epochs at constant learning rates.
        decay_epochs: further epochs with linearly decaying rates.
        steps: 0 for the epoch schedule above; > 0: the run is this many steps (a budget
            independent of the training-set size), the learning rates constant for
            ``steps - decay_steps`` steps and then falling linearly to ``1 / decay_steps`` of
            their value at the last step (:func:`step_lr_factor`).
        decay_steps: the steps of linear decay at the end of a ``steps`` schedule.
        batch_size: items per step, summed over ranks.
        size: image height the data must have (Facades: square; Cityscapes: width = 2 x height).
        flip: random horizontal flips, done by the trainer.
        max_steps: 0 runs the whole schedule; > 0 stops after this many steps (budgets, smoke
            runs; the learning-rate schedule still follows ``epochs`` / ``decay_epochs``).
        time_budget_s: 0 for none; else the run stops after the first step that ends past this
            many seconds of this call, writing a checkpoint there. The step count reached is
            returned (``steps``, ``stopped_by_budget``) and stored in the checkpoint;
            resuming continues the same schedule.
        checkpoint_every: write ``checkpoint.pt`` every this many steps (0: only at the end).
        sample_every: write a sample grid every this many steps (0: only at the end).
        log_every: one ``losses.csv`` row every this many steps, and one at the last step.
        threads: torch CPU threads (0: leave torch's setting).
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:i]"``.
        workers: DataLoader worker processes (0: load in the training process).
        precision: ``"auto"`` (bf16 autocast where :func:`lib.device.bf16_autocast_recommended`:
            CUDA with bf16, CPUs with AMX or AVX-512 BF16), ``"bf16"`` or ``"fp32"``.
        ema_decay: 0 for none; else the decay of an exponential moving average of the
            generator's weights, which is then the evaluated generator (sample grids,
            ``generator.pt``, snapshots).
        curve_points: learning-curve snapshots of the evaluated generator, spread evenly over
            the run (:func:`lib.train.gan_outputs.curve_steps`); 0 for none.
    """

    seed: int = 0
    generator: str = "asapnet"
    generator_cfg: dict[str, Any] = dataclasses.field(default_factory=dict)
    discriminator_cfg: dict[str, Any] = dataclasses.field(default_factory=dict)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)  # sec. 4: hinge + FM x10 (+ VGG x10)
    lr_g: float = 1e-4  # sec. 4 / official TTUR: lr 2e-4 halved for G
    lr_d: float = 4e-4  # sec. 4 / official TTUR: lr 2e-4 doubled for D
    beta1: float = 0.0  # sec. 4 / official TTUR: Adam beta1 = 0
    beta2: float = 0.9  # sec. 4 / official TTUR: Adam beta2 = 0.9
    epochs: int = 200  # sec. 4: Cityscapes, 200 epochs (official: niter)
    decay_epochs: int = 100  # sec. 4: + 100 epochs of linear decay (official: niter_decay)
    batch_size: int = 32  # sec. 4: batch 32 on Cityscapes
    size: int = 256  # sec. 4: Cityscapes 256x512
    flip: bool = True  # official: no_flip=False
    max_steps: int = 0
    time_budget_s: float = 0.0
    checkpoint_every: int = 500  # not from the paper: bounds the work lost to an interruption
    sample_every: int = 500  # not from the paper
    log_every: int = 10  # not from the paper
    threads: int = 0
    device: str = "auto"
    workers: int = 0
    precision: str = "fp32"  # the paper trains in fp32; params.yaml says auto
    steps: int = 0
    decay_steps: int = 0
    ema_decay: float = 0.0  # not in the paper
    curve_points: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("epochs", "decay_epochs", "max_steps", "checkpoint_every", "sample_every", "threads", "workers",
                     "steps", "decay_steps", "curve_points"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.epochs + self.decay_epochs < 1:
            raise ValueError(f"epochs + decay_epochs must be >= 1, got {self.epochs} + {self.decay_epochs}")
        if not (self.lr_g > 0 and self.lr_d > 0):
            raise ValueError(f"lr_g and lr_d must be > 0, got {self.lr_g}, {self.lr_d}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"beta1 and beta2 must be in [0, 1), got {self.beta1}, {self.beta2}")
        if self.time_budget_s < 0:
            raise ValueError(f"time_budget_s must be >= 0, got {self.time_budget_s}")
        if self.decay_steps > self.steps:
            raise ValueError(f"decay_steps must be <= steps, got {self.decay_steps} > {self.steps}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        check_precision(self.precision)
        check_device(self.device)

    def steps_per_epoch(self, num_items: int) -> int:
        """``num_items // batch_size`` (the incomplete last batch is dropped)."""
        return num_items // self.batch_size

    def total_steps(self, num_items: int) -> int:
        """``steps`` when > 0, else ``(epochs + decay_epochs) * steps_per_epoch``; capped by
        ``max_steps`` when > 0."""
        full = self.steps or (self.epochs + self.decay_epochs) * self.steps_per_epoch(num_items)
        return min(full, self.max_steps) if self.max_steps else full


@dataclasses.dataclass(frozen=True)
class TranslationTrainStage:
    """``train_translation``: label -> photo GAN training of one study, one run per model, same data and budget.

    ``common`` holds the settings every model shares (data size, epochs, batch, logging);
    ``models.<name>`` each model's recipe. Both merge into a :class:`GANTrainConfig` (see
    :func:`gan_config`). ``dataset`` and ``data`` are the study's (filled in by
    :func:`lib.stages.load_stage` from ``translation.datasets`` and the ``datasets`` section, with
    the study's ``translation.per_dataset.<dataset>.train_translation`` settings merged over the
    section); not written in ``params.yaml``.
    """

    dataset: str = "facades"  # the study; a built-in entry of lib.data.catalog when ``data`` is None
    data: PairedConfig | None = None  # the study's paired dataset (root, classes, aspect)
    train_split: str = "train"
    test_split: str = "test"
    common: dict[str, Any] = dataclasses.field(default_factory=dict)
    models: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        from lib.train.gan_checks import check_stage

        check_stage(self)  # the study's dataset and splits, every recipe and the configs it derives
        translation_size(self)

    def paired(self) -> PairedConfig:
        """The study's dataset: ``data``, else the built-in entry named ``dataset``."""
        return self.data if self.data is not None else dataset_config(self.dataset)

    @property
    def data_root(self) -> str:
        """The study's dataset folder (relative paths: from the project root)."""
        return self.paired().root


def gan_config(stage: TranslationTrainStage, model: str) -> GANTrainConfig:
    """The :class:`GANTrainConfig` of ``model``: ``common`` with ``models.<model>`` over it."""
    if model not in stage.models:
        raise ConfigError(f"train_translation.models has no {model!r}; known: {', '.join(stage.models)}")
    check_keys(GANTrainConfig, stage.common, "train_translation.common")
    check_keys(GANTrainConfig, stage.models[model], f"train_translation.models.{model}")
    merged = deep_merge(stage.common, stage.models[model])
    return from_dict(GANTrainConfig, merged, where=f"train_translation.models.{model}")


def translation_size(stage: TranslationTrainStage) -> int:
    """The image height every model of ``train_translation`` trains at (the evaluation and the
    segmenter use the same).

    Raises:
        ConfigError: no models, or models of different sizes (named).
    """
    sizes = {m: gan_config(stage, m).size for m in stage.models}
    if len(set(sizes.values())) != 1:
        raise ConfigError(f"train_translation.models must share one size, got {sizes or 'no models'}")
    return next(iter(sizes.values()))


# ----------------------------------------------------------------------------- schedule and losses


def lr_factor(epoch: int, epochs: int, decay_epochs: int) -> float:
    """Learning-rate multiplier during 0-based ``epoch``: ``1 - max(0, epoch - epochs) / decay_epochs``.

    Equals the official schedule (the rate drops by ``lr / decay_epochs`` at the end of every
    1-based epoch ``> epochs``): 1 for epochs ``0 .. epochs``, then ``1 - 1/D, ..., 1/D`` for
    the last ``D - 1`` epochs (``D = decay_epochs``); 1 throughout when ``D = 0``.
    """
    if decay_epochs <= 0:
        return 1.0
    return max(0.0, 1.0 - max(0, epoch - epochs) / decay_epochs)


def step_lr_factor(step: int, steps: int, decay_steps: int) -> float:
    """Learning-rate multiplier of 0-based ``step`` of a ``steps`` schedule: 1 for the first
    ``steps - decay_steps`` steps, then ``(steps - step) / decay_steps`` (``1, ..., 1/D``)."""
    if decay_steps <= 0:
        return 1.0
    return min(1.0, max(0.0, (steps - step) / decay_steps))


def _split_batch(feats: list[list[Tensor]], n: int) -> tuple[list[list[Tensor]], list[list[Tensor]]]:
    """Splits discriminator outputs on ``cat([first (n items), second], 0)`` into the two halves."""
    first = [[f[:n] for f in scale] for scale in feats]  # per scale: (n, C, h, w)
    second = [[f[n:] for f in scale] for scale in feats]
    return first, second


# ----------------------------------------------------------------------------- set-up and images


def _conditioning(g_cfg: Any) -> tuple[int, bool]:
    """``(label_nc, use_instance_edge)`` of a generator config."""
    if not hasattr(g_cfg, "label_nc"):
        raise ValueError(f"generator config {type(g_cfg).__name__} has no label_nc: not a label->photo generator")
    return int(g_cfg.label_nc), bool(getattr(g_cfg, "use_instance_edge", False))


def _discriminator_config(cfg: GANTrainConfig, label_nc: int, use_edge: bool) -> Any:
    overrides = dict(cfg.discriminator_cfg)
    overrides.setdefault("in_channels", label_nc + int(use_edge) + 3)  # labels (+ edge) + RGB
    return make_config(DISCRIMINATOR, overrides)


def _prepare(item: Mapping[str, Any], index: int, use_edge: bool) -> dict:
    """The tensors the trainer needs from a dataset item."""
    for key in ("label", "image") + (("instance_edge",) if use_edge else ()):
        if key not in item:
            raise KeyError(f"training item {index} has no {key!r} (keys: {sorted(item)})")
    return {k: item[k] for k in ("label", "image") + (("instance_edge",) if use_edge else ())}


# ----------------------------------------------------------------------------- training


def train_gan(
    cfg: GANTrainConfig | Mapping[str, Any] | None,
    train_set: Dataset,
    out_dir: str | os.PathLike,
    resume: bool = True,
    params: Mapping[str, Any] | None = None,
    progress: bool = True,
    *,
    on_step: Callable[[int, dict, dict[str, nn.Module]], None] | None = None,
) -> dict:
    """Trains a label->photo generator against a multiscale PatchGAN.

    Each step: ``fake = G(onehot, edge)``; discriminator step on ``D(cond, real)`` vs
    ``D(cond, fake.detach())`` (one forward on both, concatenated along the batch); generator
    step on ``gan_g(D(cond, fake)) + lambda_feat * FM + lambda_vgg * VGG`` with the updated
    discriminator (its parameters frozen). Under ``torchrun`` both networks are wrapped in
    DistributedDataParallel (gloo on the CPU, NCCL on CUDA).

    Args:
        cfg: :class:`GANTrainConfig` or a mapping for it (strict; ``None`` for defaults).
        train_set: a dataset of ``dict(label (H, W) long, image (3, H, W) in [-1, 1][,
            instance_edge (1, H, W)])`` with ``H = cfg.size``, built without flips (the trainer
            flips); ``set_epoch`` is called when it exists.
        out_dir: folder for ``checkpoint.pt``, ``losses.csv`` and ``samples/``.
        resume: continue from ``out_dir/checkpoint.pt`` when it exists; ``False`` starts afresh.
        params: the stage's parameters, stored for provenance in the checkpoint's
            ``extra["stage_params"]``.
        progress: show a tqdm bar (rank 0).
        on_step: ``on_step(step, losses, models)`` after each step (:func:`lib.train.loop.run`;
            models ``generator`` and ``discriminator``).

    Returns:
        ``dict(generator, steps, start_step, steps_run, total_steps, steps_per_epoch, epochs,
        wall_seconds, train_seconds, final_losses, vgg_used, stopped_by_budget, checkpoint,
        losses_csv, samples, world_size, device)``: ``final_losses`` the mean of each loss
        column over the last 10% of the logged rows.

    Raises:
        ValueError: a dataset built with flips, items of another size, a checkpoint of
            another model / config / schedule (:data:`RESUME_KEYS`) or training set size, or a
            batch that does not split over the ranks.
        FloatingPointError: a non-finite loss or weight (names the loss, the step and the last
            good checkpoint, which is left intact).
    """
    cfg = cfg if isinstance(cfg, GANTrainConfig) else from_dict(GANTrainConfig, cfg, where="train")
    check_unflipped(train_set, "GANTrainConfig")
    n_items = len(train_set)
    g_cfg = make_config(cfg.generator, generator_overrides(cfg.generator, cfg.generator_cfg, cfg.size))
    label_nc, use_edge = _conditioning(g_cfg)
    d_cfg = _discriminator_config(cfg, label_nc, use_edge)
    first = train_set[0]
    if tuple(first["label"].shape[-2:])[0] != cfg.size:
        raise ValueError(f"training items are {tuple(first['label'].shape[-2:])} (H, W) but size={cfg.size}")
    vgg_used = cfg.loss.use_vgg and cfg.loss.lambda_vgg > 0
    spe = cfg.steps_per_epoch(n_items)
    picks = sorted({int(round(x)) for x in np.linspace(0, n_items - 1, min(NUM_SAMPLE_ITEMS, n_items))})
    samples_dir = Path(out_dir) / SAMPLES_DIR
    total = cfg.total_steps(n_items)
    curve_at = set(curve_steps(total, cfg.curve_points))

    def build_parts(device: torch.device) -> Parts:
        gen = build(cfg.generator, g_cfg).to(device)
        disc = build(DISCRIMINATOR, d_cfg).to(device)
        ema = build(cfg.generator, g_cfg).to(device).requires_grad_(False) if cfg.ema_decay > 0 else None
        if ema is not None:
            ema.load_state_dict(gen.state_dict())
        evaluated = ema if ema is not None else gen
        vgg = vgg19_features(cfg.loss.vgg_weights).to(device) if vgg_used else None
        opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
        opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
        if cfg.steps:
            factor = functools.partial(step_lr_factor, steps=cfg.steps, decay_steps=cfg.decay_steps)
        else:
            factor = lambda s: lr_factor(s // spe, cfg.epochs, cfg.decay_epochs)  # noqa: E731  (per step -> epoch)
        sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, factor)
        sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, factor)
        precision = autocast_dtype_name(cfg.precision, device)  # bf16 needs no loss scaling: no grad scalers
        bf16 = precision == "bf16"
        mode, lam_feat, lam_vgg, lam_l1 = cfg.loss.gan_mode, cfg.loss.lambda_feat, cfg.loss.lambda_vgg, cfg.loss.lambda_l1

        def autocast() -> Any:
            return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

        def step(batch: dict, done: int, nets: dict[str, nn.Module]) -> dict:
            labels = batch["label"].to(device, non_blocking=True)  # (B/world, H, W)
            real = batch["image"].to(device, non_blocking=True)  # (B/world, 3, H, W)
            edge = batch["instance_edge"].to(device, non_blocking=True) if use_edge else None  # (B/world, 1, H, W)
            onehot = one_hot(labels, label_nc)  # (B/world, label_nc, H, W)
            cond = onehot if edge is None else torch.cat([onehot, edge], 1)  # (B/world, label_nc (+1), H, W)
            n = labels.shape[0]
            with autocast():
                fake = nets["generator"](onehot, edge)  # (B/world, 3, H, W)
            # discriminator step: fake pairs first, real pairs second, in one forward
            with autocast():
                pairs = torch.cat([torch.cat([cond, fake.detach()], 1), torch.cat([cond, real], 1)], 0)  # (2B/world, C+3, H, W)
                fake_feats, real_feats = _split_batch(nets["discriminator"](pairs), n)
                d_real, d_fake = d_loss_terms(mode, real_feats, fake_feats)
            opt_d.zero_grad(set_to_none=True)
            (d_real + d_fake).backward()
            opt_d.step()
            # generator step against the updated discriminator (frozen; plain module, no DDP hooks)
            disc.requires_grad_(False)
            with autocast():
                pairs = torch.cat([torch.cat([cond, fake], 1), torch.cat([cond, real], 1)], 0)  # (2B/world, C+3, H, W)
                fake_feats, real_feats = _split_batch(disc(pairs), n)
                g_gan = gan_g_loss(mode, fake_feats)
                g_feat = lam_feat * feature_matching_loss(real_feats, fake_feats) if lam_feat > 0 else g_gan.new_zeros(())
                g_vgg = lam_vgg * vgg_loss(vgg, fake.float(), real) if vgg is not None else g_gan.new_zeros(())
            g_l1 = lam_l1 * (fake.float() - real).abs().mean() if lam_l1 > 0 else g_gan.new_zeros(())
            opt_g.zero_grad(set_to_none=True)
            (g_gan + g_feat + g_vgg + g_l1).backward()
            disc.requires_grad_(True)
            opt_g.step()
            if ema is not None:  # warm-up: the average forgets the random initial weights quickly
                ema_update(ema, gen, min(cfg.ema_decay, (1 + done) / (10 + done)))
            return {"d_real": d_real, "d_fake": d_fake, "g_gan": g_gan, "g_feat": g_feat, "g_vgg": g_vgg, "g_l1": g_l1}

        sample_items = [_prepare(train_set[i], i, use_edge) for i in picks]

        def after_step(at: int, end: bool, seconds: float) -> None:
            if (cfg.sample_every and at % cfg.sample_every == 0) or end:
                grid = sample_grid(evaluated, sample_items)
                write_image(samples_dir / f"step_{at:06d}.png", grid)
                write_image(samples_dir / "latest.png", grid)
            kwargs = dict(step=at, train_seconds=seconds, ema=ema is not None, params=cfg)
            if at in curve_at:
                write_generator(Path(out_dir) / SNAPSHOTS_DIR / f"step_{at:06d}.pt", evaluated, cfg.generator, g_cfg, **kwargs)
            if end:  # names the snapshots of this run (the evaluation reads those only)
                write_generator(Path(out_dir) / EVAL_GENERATOR_NAME, evaluated, cfg.generator, g_cfg, **kwargs,
                                snapshots=[snapshot_name(s) for s in sorted(curve_at) if s <= at])

        nets = {"generator": gen, "discriminator": disc, **({"generator_ema": ema} if ema is not None else {})}
        return Parts(
            cfg.generator, g_cfg, nets,
            {"generator": opt_g, "discriminator": opt_d}, {"generator": sched_g, "discriminator": sched_d}, step,
            extra={"vgg_used": vgg_used, "precision": precision,
                   "discriminator": {"model": DISCRIMINATOR, "config": to_dict(d_cfg)}},
            after_step=after_step,
        )

    trainer = Trainer(
        name=cfg.generator, cfg=cfg, items=EpochItems(train_set, cfg.seed, cfg.flip, functools.partial(_prepare, use_edge=use_edge)),
        num_items=n_items, total_steps=total, build=build_parts, loss_terms=LOSS_TERMS,
        lr_columns={"lr_g": "generator", "lr_d": "discriminator"}, resume_keys=RESUME_KEYS,
        stale=(f"{SAMPLES_DIR}/*.png", f"{SNAPSHOTS_DIR}/*.pt", EVAL_GENERATOR_NAME),
        identity={"curve_steps": sorted(curve_at)},
        stale_on_resume=functools.partial(stale_outputs, out_dir, total=total, sample_every=cfg.sample_every,
                                          curve_steps=curve_at),
    )
    out = run(trainer, out_dir, resume=resume, params=params, progress=progress, on_step=on_step)
    out = {"generator": cfg.generator, **out, "vgg_used": vgg_used, "samples": str(samples_dir / "latest.png"),
           "precision": autocast_dtype_name(cfg.precision, out["device"]), "ema": cfg.ema_decay > 0,
           "eval_generator": str(Path(out_dir) / EVAL_GENERATOR_NAME), "curve_steps": sorted(curve_at)}
    keys = ("generator", "steps", "start_step", "steps_run", "total_steps", "steps_per_epoch", "epochs", "wall_seconds",
            "train_seconds", "final_losses", "vgg_used", "stopped_by_budget", "checkpoint", "losses_csv", "samples",
            "world_size", "device", "precision", "ema", "eval_generator", "curve_steps")
    return {k: out[k] for k in keys}


def outputs(dataset: str, model: str) -> dict[str, str]:
    """The ``train_translation@<dataset>-<model>`` stage's outputs (project-relative; ``dvc.yaml`` declares
    the same paths from the same study and model lists)."""
    return {"out_dir": f"data/processed/translation/{dataset}/{model}",
            "summary_out": f"reports/metrics/translation/{dataset}/train_{model}.json",
            "losses_out": f"reports/metrics/translation/{dataset}/losses_{model}.csv",
            "samples_out": f"reports/figures/stages/translation/{dataset}/samples_{model}.png"}
