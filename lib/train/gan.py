"""Label->photo GAN training (ASAPNet recipe by default; pix2pixHD and SPADE by config).

Recipe (ASAPNet sec. 4, following SPADE): a generator from the registry maps one-hot labels
(+ an instance-edge channel) to an image; a multiscale PatchGAN sees the labels (+ edges)
concatenated with a real or generated image. Every step first updates the discriminator on
``(real, fake.detach())``, then the generator on ``gan + lambda_feat * feature matching +
lambda_vgg * VGG`` (VGG only when a VGG19 weights file is given). Adam with betas (0, 0.9)
and the two-time-scale learning rates G 1e-4 / D 4e-4; the learning rates stay constant for
``epochs`` epochs and then decay linearly over ``decay_epochs`` epochs (official
``update_learning_rate``: at the end of every epoch past ``niter`` the rate drops by
``lr / niter_decay``). Other recipes are other config values only, e.g. pix2pixHD::

    GANTrainConfig(generator="pix2pixhd", loss=LossConfig(gan_mode="lsgan"), lr_g=2e-4,
                   lr_d=2e-4, beta1=0.5, beta2=0.999,
                   discriminator_cfg={"spectral_norm": False})

Determinism: step ``s`` (0-based) belongs to epoch ``e = s // steps_per_epoch`` and takes the
items ``perm_e[k*B : (k+1)*B]`` (``k = s mod steps_per_epoch``; ``perm_e`` a permutation of the
training items seeded by ``(seed, e)``; the incomplete last batch of an epoch is dropped).
Horizontal flips are decided by ``(seed, e, index)`` (:func:`lib.data.transforms.sample_rng`),
by the trainer: build the dataset with ``flip=False``. Nothing else draws random numbers, so
a run killed and resumed from its checkpoint computes the same steps as an uninterrupted one
(bitwise on the CPU with the same thread count). Under ``torchrun`` each rank takes a
contiguous shard of every batch; DDP averages the gradients.

Outputs (rank 0) in ``out_dir``:

- ``checkpoint.pt``: the latest training checkpoint (atomic;
  :func:`lib.train.common.save_training_checkpoint`): ``model`` = generator name, ``config``
  = its config, ``state_dict`` = its weights, ``aux_state_dicts["discriminator"]``,
  ``optimizers`` / ``schedulers`` / ``scalers`` keyed ``generator`` and ``discriminator``,
  ``rng`` per rank, ``step``, ``epoch``, ``params`` (this config) and ``extra`` (``vgg_used``,
  ``discriminator`` name + config, ``seconds``, ``world_size``, ``num_items``,
  ``stage_params``, running loss sums).
- ``losses.csv``: :data:`LOSS_COLUMNS`; each row is the mean over the steps since the previous
  row; ``g_feat`` and ``g_vgg`` are weighted by their lambdas (``g_vgg`` is 0 when VGG is off);
  ``lr_g`` / ``lr_d`` are the rates of the logged step; ``seconds`` is training time summed
  over resumed runs.
- ``samples/step_{step:06d}.png`` and ``samples/latest.png``: one row per fixed training item
  (4 items spread over the set, unflipped): label colours | generated | real.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from lib.config import from_dict, to_dict
from lib.data.images import write_image
from lib.data.transforms import hflip, one_hot, sample_rng
from lib.models import build, config_class, make_config
from lib.models.losses import LossConfig, feature_matching_loss, gan_g_loss, vgg19_features, vgg_loss
from lib.train.common import (
    all_reduce_mean,
    append_losses,
    autocast,
    barrier,
    check_batch,
    check_finite,
    check_finite_params,
    check_unflipped,
    cleanup,
    gather_rng_states,
    grad_scaler,
    init_distributed,
    is_distributed,
    is_main,
    load_model,
    load_training_checkpoint,
    prepare_output,
    rank_seed,
    read_losses,
    save_training_checkpoint,
    seed_everything,
    set_threads,
    unwrap,
    wrap_ddp,
)

__all__ = [
    "GANTrainConfig",
    "train_gan",
    "load_generator",
    "generate",
    "label_colormap",
    "batch_indices",
    "StepBatches",
    "lr_factor",
    "d_loss_terms",
    "CHECKPOINT_NAME",
    "LOSSES_NAME",
    "SAMPLES_DIR",
    "LOSS_COLUMNS",
    "RESUME_KEYS",
    "NUM_SAMPLE_ITEMS",
]

CHECKPOINT_NAME = "checkpoint.pt"
LOSSES_NAME = "losses.csv"
SAMPLES_DIR = "samples"
LOSS_COLUMNS = ("step", "epoch", "d_real", "d_fake", "g_gan", "g_feat", "g_vgg", "lr_g", "lr_d", "seconds")
LOSS_TERMS = LOSS_COLUMNS[2:7]
NUM_SAMPLE_ITEMS = 4  # training items shown in each sample grid
DISCRIMINATOR = "patchgan"  # registry name of the discriminator
_ORDER_STREAM = 1  # SeedSequence spawn key of the per-epoch data order (flips use sample_rng)

# Training settings that fix the trajectory: a checkpoint made with other values cannot be
# resumed into this run (run length, budget, logging, threads, device and workers may change).
RESUME_KEYS = (
    "seed", "generator", "generator_cfg", "discriminator_cfg", "loss", "lr_g", "lr_d", "beta1",
    "beta2", "epochs", "decay_epochs", "batch_size", "size", "flip", "amp",
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
        amp: bf16 autocast on CUDA (ignored on the CPU).
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
    amp: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("epochs", "decay_epochs", "max_steps", "checkpoint_every", "sample_every", "threads", "workers"):
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
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:i]', got {self.device!r}")

    def steps_per_epoch(self, num_items: int) -> int:
        """``num_items // batch_size`` (the incomplete last batch is dropped)."""
        return num_items // self.batch_size

    def total_steps(self, num_items: int) -> int:
        """``(epochs + decay_epochs) * steps_per_epoch``, capped by ``max_steps`` when > 0."""
        full = (self.epochs + self.decay_epochs) * self.steps_per_epoch(num_items)
        return min(full, self.max_steps) if self.max_steps else full


# ----------------------------------------------------------------------------- schedule and data order


def lr_factor(epoch: int, epochs: int, decay_epochs: int) -> float:
    """Learning-rate multiplier during 0-based ``epoch``: ``1 - max(0, epoch - epochs) / decay_epochs``.

    Equals the official schedule (the rate drops by ``lr / decay_epochs`` at the end of every
    1-based epoch ``> epochs``): 1 for epochs ``0 .. epochs``, then ``1 - 1/D, ..., 1/D`` for
    the last ``D - 1`` epochs (``D = decay_epochs``); 1 throughout when ``D = 0``.
    """
    if decay_epochs <= 0:
        return 1.0
    return max(0.0, 1.0 - max(0, epoch - epochs) / decay_epochs)


def batch_indices(
    step: int, num_items: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
) -> tuple[int, list[int]]:
    """The training items of step ``step`` (0-based) taken by ``rank``.

    Args:
        step: optimizer steps done before this one.
        num_items: training set size.
        batch_size: items per step over all ranks.
        seed: data-order seed.
        rank: this process's rank.
        world_size: number of ranks.

    Returns:
        ``(epoch, indices)``: ``epoch = step // (num_items // batch_size)`` and the contiguous
        shard ``rank`` (``batch_size / world_size`` items) of ``perm[k*B : (k+1)*B]``, where
        ``perm`` is the permutation of epoch ``epoch`` seeded by ``(seed, epoch)``.

    Raises:
        ValueError: ``batch_size`` is not a multiple of ``world_size`` or exceeds ``num_items``.
    """
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} is not divisible by the world size {world_size}")
    spe = num_items // batch_size
    if spe < 1:
        raise ValueError(f"batch_size {batch_size} exceeds the {num_items} training items")
    epoch, k = divmod(int(step), spe)
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, epoch], spawn_key=(_ORDER_STREAM,))
    perm = np.random.default_rng(ss).permutation(num_items)  # (num_items,)
    shard = batch_size // world_size
    first = k * batch_size + rank * shard
    return epoch, [int(i) for i in perm[first : first + shard]]


class _StepItems(Dataset):
    """Indexes a dataset by ``(epoch, index)``: selects the epoch (``set_epoch`` when the
    dataset has it) and applies the trainer's flip decided by ``(seed, epoch, index)``."""

    def __init__(self, dataset: Dataset, seed: int, flip: bool, use_edge: bool) -> None:
        self.dataset, self.seed, self.flip, self.use_edge = dataset, seed, flip, use_edge

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return _prepare(self.dataset[index], index, self.use_edge,
                        self.flip and sample_rng(self.seed, epoch, index).random() < 0.5)


def _prepare(item: Mapping[str, Any], index: int, use_edge: bool, flip: bool) -> dict:
    """The tensors the trainer needs from a dataset item, optionally mirrored."""
    for key in ("label", "image") + (("instance_edge",) if use_edge else ()):
        if key not in item:
            raise KeyError(f"training item {index} has no {key!r} (keys: {sorted(item)})")
    out = {"label": item["label"], "image": item["image"]}
    if use_edge:
        out["instance_edge"] = item["instance_edge"]
    if flip:
        out = {k: hflip(v) for k, v in out.items()}
    return out


class StepBatches(Sampler):
    """Per-step batch sampler (also used by the segmenter trainer): yields this rank's ``[(epoch, index), ...]`` for steps ``start .. total - 1``."""

    def __init__(self, start: int, total: int, num_items: int, batch_size: int, seed: int, rank: int, world: int) -> None:
        self.start, self.total, self.n, self.batch, self.seed = start, total, num_items, batch_size, seed
        self.rank, self.world = rank, world

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.total):
            epoch, idx = batch_indices(step, self.n, self.batch, self.seed, self.rank, self.world)
            yield [(epoch, i) for i in idx]

    def __len__(self) -> int:
        return max(0, self.total - self.start)


# ----------------------------------------------------------------------------- losses


def _split_batch(feats: list[list[Tensor]], n: int) -> tuple[list[list[Tensor]], list[list[Tensor]]]:
    """Splits discriminator outputs on ``cat([first (n items), second], 0)`` into the two halves."""
    first = [[f[:n] for f in scale] for scale in feats]  # per scale: (n, C, h, w)
    second = [[f[n:] for f in scale] for scale in feats]
    return first, second


def d_loss_terms(mode: str, real_feats: Sequence[Sequence[Tensor]], fake_feats: Sequence[Sequence[Tensor]]) -> tuple[Tensor, Tensor]:
    """The real and fake parts of the discriminator loss; their sum is
    :func:`lib.models.losses.gan_d_loss` (mean over scales).

    hinge: ``d_real = mean_s E[relu(1 - D_s(real))]``, ``d_fake = mean_s E[relu(1 + D_s(fake))]``;
    lsgan: ``d_real = mean_s E[(D_s(real) - 1)^2]``, ``d_fake = mean_s E[D_s(fake)^2]``.

    Args:
        mode: ``"hinge"`` or ``"lsgan"``.
        real_feats: per scale, the discriminator features on real pairs (last = prediction).
        fake_feats: the same on generated pairs.

    Returns:
        ``(d_real, d_fake)`` scalars.
    """
    real = [s[-1] for s in real_feats]
    fake = [s[-1] for s in fake_feats]
    if mode == "hinge":
        r = [torch.relu(1 - p).mean() for p in real]
        f = [torch.relu(1 + p).mean() for p in fake]
    elif mode == "lsgan":
        r = [((p - 1) ** 2).mean() for p in real]
        f = [(p**2).mean() for p in fake]
    else:
        raise ValueError(f"unknown gan_mode {mode!r}; known: hinge, lsgan")
    return torch.stack(r).mean(), torch.stack(f).mean()


# ----------------------------------------------------------------------------- images


def label_colormap(labels: Tensor | np.ndarray, num_classes: int) -> np.ndarray:
    """Colours a label map with the PASCAL VOC palette (bits of the class id spread over R, G, B).

    Class ``c`` gets, for bit ``j`` = 0..7, ``bit 3j, 3j+1, 3j+2`` of ``c`` in bit ``7 - j`` of R,
    G, B; class 0 is black.

    Args:
        labels: integer ``(H, W)`` or ``(B, H, W)`` array/tensor with values in ``[0, num_classes)``.
        num_classes: number of classes.

    Returns:
        ``uint8`` ``(..., H, W, 3)``.

    Raises:
        ValueError: a label outside ``[0, num_classes)`` or a non-integer map.
    """
    arr = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"label_colormap: labels must be integers, got {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(f"label_colormap: labels in [{arr.min()}, {arr.max()}] outside [0, {num_classes})")
    palette = np.zeros((num_classes, 3), dtype=np.uint8)  # (C, 3)
    for c in range(num_classes):
        v, rgb = c, [0, 0, 0]
        for j in range(8):
            for ch in range(3):
                rgb[ch] |= ((v >> ch) & 1) << (7 - j)
            v >>= 3
        palette[c] = rgb
    return palette[arr]  # (..., H, W, 3)


def _to_uint8(images: Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8: ``round((x + 1) * 127.5)`` clipped."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()  # (B, H, W, 3)


def _sample_grid(generator: nn.Module, items: list[dict], label_nc: int, use_edge: bool, device: torch.device) -> np.ndarray:
    """Rows ``label colours | generated | real`` for ``items``, separated by 2 white pixels."""
    labels = torch.stack([it["label"] for it in items]).to(device)  # (N, H, W)
    edge = torch.stack([it["instance_edge"] for it in items]).to(device) if use_edge else None  # (N, 1, H, W)
    was_training = generator.training
    generator.eval()
    with torch.no_grad():
        fake = generator(one_hot(labels, label_nc), edge)  # (N, 3, H, W)
    generator.train(was_training)
    colours = label_colormap(labels, label_nc)  # (N, H, W, 3)
    gen = _to_uint8(fake)
    real = _to_uint8(torch.stack([it["image"] for it in items]))
    gap = 2  # pixels between panels
    n, h, w, _ = colours.shape
    grid = np.full((n * h + (n - 1) * gap, 3 * w + 2 * gap, 3), 255, dtype=np.uint8)
    for i in range(n):
        y = i * (h + gap)
        for j, panel in enumerate((colours[i], gen[i], real[i])):
            grid[y : y + h, j * (w + gap) : j * (w + gap) + w] = panel
    return grid


# ----------------------------------------------------------------------------- set-up helpers


def _generator_config(cfg: GANTrainConfig) -> Any:
    """The generator's registry config: ``generator_cfg`` with ``height = size`` filled in when
    the config class has a ``height`` field (the ASAPNet tile size follows it)."""
    overrides = dict(cfg.generator_cfg)
    fields = {f.name for f in dataclasses.fields(config_class(cfg.generator))}
    if "height" in fields:
        if "height" not in overrides:
            overrides["height"] = cfg.size
        elif overrides["height"] != cfg.size:
            raise ValueError(f"generator_cfg.height={overrides['height']} differs from size={cfg.size}")
    return make_config(cfg.generator, overrides)


def _conditioning(g_cfg: Any) -> tuple[int, bool]:
    """``(label_nc, use_instance_edge)`` of a generator config."""
    if not hasattr(g_cfg, "label_nc"):
        raise ValueError(f"generator config {type(g_cfg).__name__} has no label_nc: not a label->photo generator")
    return int(g_cfg.label_nc), bool(getattr(g_cfg, "use_instance_edge", False))


def _discriminator_config(cfg: GANTrainConfig, label_nc: int, use_edge: bool) -> Any:
    overrides = dict(cfg.discriminator_cfg)
    overrides.setdefault("in_channels", label_nc + int(use_edge) + 3)  # labels (+ edge) + RGB
    return make_config(DISCRIMINATOR, overrides)


def _check_resume_params(path: Path, stored: Mapping[str, Any], cfg: GANTrainConfig) -> None:
    now = to_dict(cfg)
    diff = [k for k in RESUME_KEYS if stored.get(k) != now[k]]
    if diff:
        pairs = ", ".join(f"{k}: checkpoint {stored.get(k)!r} vs requested {now[k]!r}" for k in diff)
        raise ValueError(f"{path}: cannot resume, training settings differ ({pairs}); use another out_dir or resume=False")


def _final_losses(csv_path: Path) -> dict:
    """Mean of each loss term over the last 10% (at least one) of the logged rows."""
    rows = read_losses(csv_path)
    if not rows:
        return {k: math.nan for k in LOSS_TERMS}
    tail = rows[-max(1, math.ceil(0.1 * len(rows))) :]
    return {k: float(np.mean([r[k] for r in tail])) for k in LOSS_TERMS}


def _broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (the object itself without a process group)."""
    if not is_distributed():
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


# ----------------------------------------------------------------------------- training


def train_gan(
    cfg: GANTrainConfig | Mapping[str, Any] | None,
    train_set: Dataset,
    out_dir: str | os.PathLike,
    resume: bool = True,
    params: Mapping[str, Any] | None = None,
    progress: bool = True,
    *,
    on_step: Callable[[int, dict, nn.Module, nn.Module], None] | None = None,
) -> dict:
    """Trains a label->photo generator against a multiscale PatchGAN.

    Each step: ``fake = G(onehot, edge)``; discriminator step on ``D(cond, real)`` vs
    ``D(cond, fake.detach())`` (one forward on both, concatenated along the batch); generator
    step on ``gan_g(D(cond, fake)) + lambda_feat * FM + lambda_vgg * VGG`` with the updated
    discriminator (its parameters frozen). Under ``torchrun`` both networks are wrapped in
    DistributedDataParallel (gloo on the CPU, NCCL on CUDA), each rank takes a shard of every
    batch and rank 0 writes the outputs.

    Args:
        cfg: :class:`GANTrainConfig` or a mapping for it (strict; ``None`` for defaults).
        train_set: a dataset of ``dict(label (H, W) long, image (3, H, W) in [-1, 1][,
            instance_edge (1, H, W)])`` with ``H = cfg.size``, built without flips (the trainer
            flips); ``set_epoch`` is called when it exists.
        out_dir: folder for ``checkpoint.pt``, ``losses.csv`` and ``samples/``.
        resume: continue from ``out_dir/checkpoint.pt`` when it exists (weights, optimizer,
            scheduler and RNG states, data position); ``False`` starts afresh and replaces it.
        params: the stage's parameters, stored for provenance in the checkpoint's
            ``extra["stage_params"]`` (as JSON values; other objects such as paths as strings).
        progress: show a tqdm bar (rank 0).
        on_step: called on every rank after each step (and its log row / checkpoint / sample)
            as ``on_step(step, losses, generator, discriminator)`` with the steps done, the
            step's losses (means over ranks) and the unwrapped networks.

    Returns:
        ``dict(generator, steps, start_step, steps_run, total_steps, steps_per_epoch, epochs,
        wall_seconds, train_seconds, final_losses, vgg_used, stopped_by_budget, checkpoint,
        losses_csv, samples, world_size, device)``: ``steps`` is the step count reached,
        ``epochs`` = ``steps / steps_per_epoch``, ``wall_seconds`` this call's time,
        ``train_seconds`` the training time over resumed runs, ``final_losses`` the mean of
        each loss column over the last 10% of the logged rows.

    Raises:
        ValueError: a dataset built with flips, items of another size, a checkpoint of
            another model / config / schedule (:data:`RESUME_KEYS`) or training set size, or a
            batch that does not split over the ranks.
        FloatingPointError: a non-finite loss or weight (names the loss, the step and the last
            good checkpoint, which is left intact).
    """
    cfg = cfg if isinstance(cfg, GANTrainConfig) else from_dict(GANTrainConfig, cfg, where="train")
    owns_group = not is_distributed()
    rank, world, device = init_distributed(device=cfg.device)
    try:
        plain = json.loads(json.dumps(dict(params or {}), default=str))  # checkpoint-safe: paths -> str, tuples -> lists
        return _train(cfg, train_set, Path(out_dir), resume, plain, progress, on_step, rank, world, device)
    finally:
        if owns_group:
            cleanup()


def _train(
    cfg: GANTrainConfig,
    train_set: Dataset,
    out_dir: Path,
    resume: bool,
    params: dict,
    progress: bool,
    on_step: Callable[[int, dict, nn.Module, nn.Module], None] | None,
    rank: int,
    world: int,
    device: torch.device,
) -> dict:
    from tqdm import tqdm

    t_start = time.perf_counter()
    set_threads(cfg.threads)
    check_unflipped(train_set, "GANTrainConfig")
    n_items = len(train_set)
    spe = cfg.steps_per_epoch(n_items)
    check_batch(cfg.batch_size, world, n_items, spe)
    total = cfg.total_steps(n_items)
    ckpt_path, csv_path, samples_dir = out_dir / CHECKPOINT_NAME, out_dir / LOSSES_NAME, out_dir / SAMPLES_DIR

    g_cfg = _generator_config(cfg)
    label_nc, use_edge = _conditioning(g_cfg)
    d_cfg = _discriminator_config(cfg, label_nc, use_edge)
    first = train_set[0]
    if tuple(first["label"].shape[-2:])[0] != cfg.size:
        raise ValueError(f"training items are {tuple(first['label'].shape[-2:])} (H, W) but size={cfg.size}")

    seed_everything(cfg.seed)  # same initial weights on every rank
    gen = build(cfg.generator, g_cfg).to(device)
    disc = build(DISCRIMINATOR, d_cfg).to(device)
    vgg_used = cfg.loss.use_vgg and cfg.loss.lambda_vgg > 0
    vgg = vgg19_features(cfg.loss.vgg_weights).to(device) if vgg_used else None
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    factor = lambda s: lr_factor(s // spe, cfg.epochs, cfg.decay_epochs)  # noqa: E731  (per step -> epoch)
    sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, factor)
    sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, factor)
    scaler_g, scaler_d = grad_scaler(device, cfg.amp), grad_scaler(device, cfg.amp)
    models = {"generator": gen, "discriminator": disc}
    optimizers = {"generator": opt_g, "discriminator": opt_d}
    schedulers = {"generator": sched_g, "discriminator": sched_d}
    scalers = {"generator": scaler_g, "discriminator": scaler_d}
    seed_everything(rank_seed(cfg.seed, rank))

    start, seconds0 = 0, 0.0
    sums, count = {k: 0.0 for k in LOSS_TERMS}, 0
    last: dict[str, float] = {k: math.nan for k in LOSS_TERMS}
    if resume and ckpt_path.is_file():
        info = load_training_checkpoint(ckpt_path, models, optimizers, schedulers, scalers=scalers,
                                        model_name=cfg.generator, model_cfg=g_cfg, rank=rank)
        _check_resume_params(ckpt_path, info["params"], cfg)
        extra = info["extra"]
        if int(extra.get("num_items", n_items)) != n_items:
            raise ValueError(f"{ckpt_path}: trained on {extra['num_items']} items, the training set has {n_items}")
        start = info["step"]
        seconds0 = float(extra.get("seconds", 0.0))
        sums = {k: float(v) for k, v in dict(extra.get("loss_sums", sums)).items()}
        count = int(extra.get("loss_count", 0))
        last = {k: float(v) for k, v in dict(extra.get("last_losses", last)).items()}
    last_good = prepare_output(out_dir, ckpt_path, csv_path, start, rank, stale=samples_dir.glob("*.png"))

    sample_items = []
    if is_main(rank):
        picks = sorted({int(round(x)) for x in np.linspace(0, n_items - 1, min(NUM_SAMPLE_ITEMS, n_items))})
        sample_items = [_prepare(train_set[i], i, use_edge, False) for i in picks]

    g_model = wrap_ddp(gen, world, device)
    d_model = wrap_ddp(disc, world, device)
    gen.train()
    disc.train()
    loader = DataLoader(
        _StepItems(train_set, cfg.seed, cfg.flip, use_edge),
        batch_sampler=StepBatches(start, total, n_items, cfg.batch_size, cfg.seed, rank, world),
        num_workers=cfg.workers,
        pin_memory=device.type == "cuda",
    )
    bar = tqdm(total=total, initial=start, disable=not (progress and is_main(rank)), desc=f"train {cfg.generator}", unit="step")
    mode, lam_feat, lam_vgg = cfg.loss.gan_mode, cfg.loss.lambda_feat, cfg.loss.lambda_vgg
    t_loop = time.perf_counter()
    step, stopped = start, False

    def save(at: int) -> None:
        nonlocal last_good
        check_finite_params(models, at, last_good)
        rng = gather_rng_states()
        if is_main(rank):
            save_training_checkpoint(
                ckpt_path, model_name=cfg.generator, model_cfg=g_cfg, params=cfg, step=at, epoch=at // spe,
                models=models, optimizers=optimizers, schedulers=schedulers, scalers=scalers, rng=rng,
                extra=dict(
                    vgg_used=vgg_used, discriminator={"model": DISCRIMINATOR, "config": to_dict(d_cfg)},
                    seconds=seconds0 + time.perf_counter() - t_loop, world_size=world, num_items=n_items,
                    loss_sums=dict(sums), loss_count=count, last_losses=dict(last), stage_params=params,
                ),
            )
        last_good = ckpt_path

    for batch in loader:
        epoch = step // spe
        labels = batch["label"].to(device, non_blocking=True)  # (B/world, H, W)
        real = batch["image"].to(device, non_blocking=True)  # (B/world, 3, H, W)
        edge = batch["instance_edge"].to(device, non_blocking=True) if use_edge else None  # (B/world, 1, H, W)
        onehot = one_hot(labels, label_nc)  # (B/world, label_nc, H, W)
        cond = onehot if edge is None else torch.cat([onehot, edge], 1)  # (B/world, label_nc (+1), H, W)
        n = labels.shape[0]
        with autocast(device, cfg.amp):
            fake = g_model(onehot, edge)  # (B/world, 3, H, W)

        # discriminator step: fake pairs first, real pairs second, in one forward
        with autocast(device, cfg.amp):
            pairs = torch.cat([torch.cat([cond, fake.detach()], 1), torch.cat([cond, real], 1)], 0)  # (2B/world, C+3, H, W)
            fake_feats, real_feats = _split_batch(d_model(pairs), n)
            d_real, d_fake = d_loss_terms(mode, real_feats, fake_feats)
        d_red = all_reduce_mean(torch.stack([d_real, d_fake]).float())  # (2,)
        check_finite({"d_real": d_red[0], "d_fake": d_red[1]}, step + 1, last_good)
        opt_d.zero_grad(set_to_none=True)
        scaler_d.scale(d_real + d_fake).backward()
        scaler_d.step(opt_d)
        scaler_d.update()

        # generator step against the updated discriminator (frozen; plain module, no DDP hooks)
        d_plain = unwrap(disc)
        d_plain.requires_grad_(False)
        with autocast(device, cfg.amp):
            pairs = torch.cat([torch.cat([cond, fake], 1), torch.cat([cond, real], 1)], 0)  # (2B/world, C+3, H, W)
            fake_feats, real_feats = _split_batch(d_plain(pairs), n)
            g_gan = gan_g_loss(mode, fake_feats)
            g_feat = lam_feat * feature_matching_loss(real_feats, fake_feats) if lam_feat > 0 else g_gan.new_zeros(())
            g_vgg = lam_vgg * vgg_loss(vgg, fake.float(), real) if vgg is not None else g_gan.new_zeros(())
        g_red = all_reduce_mean(torch.stack([g_gan, g_feat, g_vgg]).float())  # (3,)
        check_finite({"g_gan": g_red[0], "g_feat": g_red[1], "g_vgg": g_red[2]}, step + 1, last_good)
        opt_g.zero_grad(set_to_none=True)
        scaler_g.scale(g_gan + g_feat + g_vgg).backward()
        d_plain.requires_grad_(True)
        scaler_g.step(opt_g)
        scaler_g.update()

        lr_g, lr_d = float(opt_g.param_groups[0]["lr"]), float(opt_d.param_groups[0]["lr"])
        sched_g.step()
        sched_d.step()
        step += 1

        last = dict(zip(LOSS_TERMS, [float(v) for v in torch.cat([d_red, g_red]).tolist()]))
        sums = {k: sums[k] + last[k] for k in LOSS_TERMS}
        count += 1
        if cfg.time_budget_s > 0:
            over = torch.tensor([float(time.perf_counter() - t_start > cfg.time_budget_s)], device=device)
            stopped = bool(all_reduce_mean(over).item() > 0) and step < total  # any rank over: all stop
        end = step == total or stopped
        if step % cfg.log_every == 0 or end:
            if is_main(rank):
                row = dict(step=step, epoch=epoch, **{k: sums[k] / count for k in LOSS_TERMS}, lr_g=lr_g, lr_d=lr_d,
                           seconds=round(seconds0 + time.perf_counter() - t_loop, 3))
                append_losses(csv_path, [row])
            sums, count = {k: 0.0 for k in LOSS_TERMS}, 0
        if (cfg.sample_every and step % cfg.sample_every == 0) or end:
            if is_main(rank):
                grid = _sample_grid(gen, sample_items, label_nc, use_edge, device)
                write_image(samples_dir / f"step_{step:06d}.png", grid)
                write_image(samples_dir / "latest.png", grid)
        if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or end:
            save(step)
        bar.update(1)
        bar.set_postfix(d=f"{last['d_real'] + last['d_fake']:.3g}", g=f"{last['g_gan']:.3g}", lr_g=f"{lr_g:.2g}")
        if on_step is not None:
            on_step(step, dict(last), gen, disc)
        if stopped:
            break
    bar.close()
    barrier()
    final = _broadcast(_final_losses(csv_path) if is_main(rank) else None)
    return {
        "generator": cfg.generator,
        "steps": step,
        "start_step": start,
        "steps_run": step - start,
        "total_steps": total,
        "steps_per_epoch": spe,
        "epochs": step / spe,
        "wall_seconds": time.perf_counter() - t_start,
        "train_seconds": seconds0 + (time.perf_counter() - t_loop if step > start else 0.0),
        "final_losses": final,
        "vgg_used": vgg_used,
        "stopped_by_budget": stopped,
        "checkpoint": str(ckpt_path),
        "losses_csv": str(csv_path),
        "samples": str(samples_dir / "latest.png"),
        "world_size": world,
        "device": str(device),
    }


# ----------------------------------------------------------------------------- inference


def load_generator(checkpoint: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """The trained generator in eval mode, rebuilt from the checkpoint's ``model`` name and
    ``config`` via the registry; call it as ``generator(onehot, instance_edge)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a checkpoint of this project, or weights that do not fit (names the file).
    """
    return load_model(checkpoint, map_location)


def generate(generator: nn.Module, dataset: Dataset, out_dir: str | os.PathLike, batch_size: int = 1) -> list[Path]:
    """Writes the generator's image for every dataset item as a PNG, atomically.

    Items are read in the dataset's order; file ``out_dir/<stem>.png`` takes the stem of the
    item's ``path`` (for Facades the photo and label files share their stem). Pixels are
    ``round((x + 1) * 127.5)`` of the output clipped to ``[-1, 1]``. The generator's
    ``cfg.label_nc`` and ``cfg.use_instance_edge`` select the inputs.

    Args:
        generator: a label->photo generator (e.g. from :func:`load_generator`), used as is
            (put it in eval mode and on its device first).
        dataset: items ``dict(label (H, W)[, instance_edge (1, H, W)], path)``.
        out_dir: destination folder.
        batch_size: items per forward.

    Returns:
        The written files, in dataset order.

    Raises:
        ValueError: two items with the same file stem, or ``batch_size < 1``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    label_nc, use_edge = _conditioning(generator.cfg)
    device = next(generator.parameters()).device
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    seen: dict[str, str] = {}
    for lo in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(lo, min(lo + batch_size, len(dataset)))]
        names = []
        for it in items:
            stem = Path(it["path"]).stem
            if stem in seen:
                raise ValueError(f"items {seen[stem]} and {it['path']} would both be written as {stem}.png")
            seen[stem] = it["path"]
            names.append(stem)
        labels = torch.stack([it["label"] for it in items]).to(device)  # (b, H, W)
        edge = torch.stack([it["instance_edge"] for it in items]).to(device) if use_edge else None  # (b, 1, H, W)
        with torch.inference_mode():
            fake = generator(one_hot(labels, label_nc), edge)  # (b, 3, H, W)
        for name, img in zip(names, _to_uint8(fake)):
            written.append(write_image(out_dir / f"{name}.png", img))
    return written
