"""Segmenter training for the mIoU protocol: the config, the network and optimizer, and one step.

The paper measures how recognisable generated images are with a pretrained DRN-D-105 on
Cityscapes (19 trainIds). Those weights are not available offline, so (docs/design.md#translation-protocol)
a compact segmentation network (:mod:`lib.models.segmentation`) is trained here on the *real*
training photos of the same dataset, at the translation models' image size
(:func:`segmenter_config`); its mIoU on the real test photos is the ceiling that the
generated test images are compared against. Targets come from the dataset's
:class:`lib.data.labels.LabelSet`. At about 25 GMAC/s and 3x the forward cost per training
image, the default U-Net sees about 10 images/s: 8 epochs of Facades (318 photos) in about
5 minutes on a 2-core CPU.

Training recipe (not from the paper; a standard from-scratch segmentation recipe): pixel-wise
cross-entropy with ``ignore_index = 255``, AdamW (lr 1e-3, weight decay 1e-4), "poly" learning
rate ``lr * (1 - step / total)^0.9`` (DeepLab, Chen et al. 2017), horizontal flips decided by
``(seed, epoch, index)``. The loop, data order, resume, checkpoints, loss CSV and DDP are
:func:`lib.train.loop.run`'s.

Outputs (rank 0) in ``out_dir``: ``checkpoint.pt`` (``model = "segmenter"``, ``config`` = the
:class:`lib.models.segmentation.SegmentationNetConfig`; loads with
:func:`lib.models.load_model`) and ``losses.csv`` (:data:`LOSS_COLUMNS`).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from lib.config import ConfigError, from_dict
from lib.data.labels import LabelSet, label_set
from lib.models.segmentation import ARCHS, SegmentationNet, SegmentationNetConfig
from lib.train.common import check_unflipped
from lib.train.gan import TranslationTrainStage, translation_size
from lib.train.loop import CHECKPOINT_NAME, LOSSES_NAME, EpochItems, Parts, Trainer, run

__all__ = [
    "SegmenterTrainConfig",
    "segmenter_config",
    "train_segmenter",
    "poly_factor",
    "MODEL_NAME",
    "CHECKPOINT_NAME",
    "LOSSES_NAME",
    "LOSS_COLUMNS",
    "RESUME_KEYS",
]

MODEL_NAME = "segmenter"  # registry name: the ``model`` key of the checkpoints written here
LOSS_COLUMNS = ("step", "epoch", "loss", "pixel_accuracy", "lr", "seconds")
POLY_POWER = 0.9  # DeepLab (Chen et al. 2017): poly learning-rate policy power

# Training settings that fix the trajectory: a checkpoint made with other values cannot be
# resumed into this run (run length, budget, logging, threads, device and workers may change).
RESUME_KEYS = ("seed", "arch", "width", "size", "batch_size", "epochs", "lr", "weight_decay", "flip")


@dataclasses.dataclass(frozen=True)
class SegmenterTrainConfig:
    """Segmenter training settings (``train_segmenter`` section of ``params.yaml``).

    Not from the paper (its segmenter is a pretrained DRN-D-105); the defaults are the
    default-scale run: about 5 minutes on a 2-core CPU at 128x128 on Facades.

    Attributes:
        seed: seeds the initial weights, the data order and the flips.
        arch: one of :data:`ARCHS`.
        width: U-Net base width (ignored by the torchvision architectures).
        size: image height the data must have (Facades: square; Cityscapes: width = 2 x height);
            0 takes the translation models' size (:func:`segmenter_config`), which it must equal.
        batch_size: items per step, summed over ranks.
        epochs: passes over the training set (the incomplete last batch of each is dropped).
        lr: AdamW peak learning rate (decays by the poly rule to 0 at the end of ``epochs``).
        weight_decay: AdamW weight decay.
        flip: random horizontal flips, decided by ``(seed, epoch, index)``.
        cache: decode the training set once and keep it in memory as uint8 (fast for small
            sets; turn off for the full Cityscapes and use ``workers``; ignored when
            ``workers > 0``).
        max_steps: 0 runs the whole schedule; > 0 stops after this many steps (the schedule
            still follows ``epochs``).
        time_budget_s: 0 for none; else stop after the first step that ends past this many
            seconds of this call (a checkpoint is written there; resuming continues).
        checkpoint_every: write ``checkpoint.pt`` every this many steps (0: only at the end).
        log_every: one ``losses.csv`` row every this many steps, and one at the last step.
        threads: torch CPU threads (0: leave torch's setting).
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:i]"``.
        workers: DataLoader worker processes (0: load in the training process).
    """

    seed: int = 0
    arch: str = "unet"
    width: int = 16  # not from the paper: 0.80 GMAC per 128x128 image (module doc)
    size: int = 0  # 0: train_translation's size (segmenter_config)
    batch_size: int = 8  # not from the paper
    epochs: int = 8  # not from the paper: about 5 minutes on a 2-core CPU at 128x128
    lr: float = 1e-3  # not from the paper: AdamW default-range rate for a from-scratch U-Net
    weight_decay: float = 1e-4  # not from the paper
    flip: bool = True
    cache: bool = True
    max_steps: int = 0
    time_budget_s: float = 0.0
    checkpoint_every: int = 100  # not from the paper: bounds the work lost to an interruption
    log_every: int = 10
    threads: int = 0
    device: str = "auto"
    workers: int = 0

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        for name in ("width", "batch_size", "epochs", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("size", "max_steps", "checkpoint_every", "threads", "workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")
        if self.time_budget_s < 0:
            raise ValueError(f"time_budget_s must be >= 0, got {self.time_budget_s}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:i]', got {self.device!r}")

    def steps_per_epoch(self, num_items: int) -> int:
        """``num_items // batch_size``."""
        return num_items // self.batch_size

    def total_steps(self, num_items: int) -> int:
        """``epochs * steps_per_epoch``, capped by ``max_steps`` when > 0."""
        full = self.epochs * self.steps_per_epoch(num_items)
        return min(full, self.max_steps) if self.max_steps else full


def segmenter_config(cfg: SegmenterTrainConfig, stage: TranslationTrainStage) -> SegmenterTrainConfig:
    """``cfg`` with ``size`` = the translation models' image size (:func:`lib.train.gan.translation_size`):
    the segmenter sees the photos at the size the generators produce.

    Raises:
        ConfigError: ``cfg.size`` is set (not 0) and differs from it.
    """
    size = translation_size(stage)
    if cfg.size not in (0, size):
        raise ConfigError(f"train_segmenter.size={cfg.size} differs from the translation size {size} "
                          "(train_translation); leave it out or set it equal")
    return dataclasses.replace(cfg, size=size)


def poly_factor(step: int, total: int, power: float = POLY_POWER) -> float:
    """Learning-rate multiplier of 0-based ``step``: ``(1 - step / total)^power`` (0 from ``total`` on)."""
    if total <= 0:
        return 1.0
    return max(0.0, 1.0 - step / total) ** power


class _Targets(Dataset):
    """Training pairs ``dict(image (3, H, W) in [-1, 1], target (H, W) int64)`` of a dataset,
    optionally decoded once and cached as uint8."""

    def __init__(self, dataset: Dataset, labels: LabelSet, cache: bool) -> None:
        self.dataset, self.labels = dataset, labels
        self.images: Tensor | None = None
        self.targets: Tensor | None = None
        if cache:
            imgs, tgts = [], []
            for i in range(len(dataset)):
                item = self._load(i)
                imgs.append(((item["image"] + 1) * 127.5).round().to(torch.uint8))  # (3, H, W): exact for photo_to_tensor inputs
                tgts.append(item["target"].to(torch.uint8))  # (H, W): class ids < 255 and 255 = ignore
            self.images, self.targets = torch.stack(imgs), torch.stack(tgts)  # (N, 3, H, W), (N, H, W)

    def _load(self, index: int) -> dict:
        item = self.dataset[index]
        for key in ("image", "label"):
            if key not in item:
                raise KeyError(f"training item {index} ({item.get('path', '?')}) has no {key!r}")
        return {"image": item["image"], "target": self.labels.targets(item["label"])}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        if self.images is None:
            return self._load(index)
        image = self.images[index].float() / 127.5 - 1.0  # as lib.data.transforms.photo_to_tensor
        return {"image": image, "target": self.targets[index].long()}


def train_segmenter(
    cfg: SegmenterTrainConfig | Mapping[str, Any],
    dataset: Dataset,
    out_dir: str | os.PathLike,
    resume: bool = True,
    *,
    labels: str | LabelSet = "facades",
    params: Mapping[str, Any] | None = None,
    progress: bool = True,
    on_step: Callable[[int, dict, dict[str, nn.Module]], None] | None = None,
) -> dict:
    """Trains a segmenter on real photos with pixel-wise cross-entropy.

    Args:
        cfg: :class:`SegmenterTrainConfig` or a mapping for it (strict), ``size`` filled in
            (:func:`segmenter_config`).
        dataset: training items ``dict(image (3, H, W) in [-1, 1], label (H, W), path)`` built
            without flips (e.g. :func:`lib.data.translation_dataset`); H must equal ``cfg.size``.
        out_dir: folder for ``checkpoint.pt`` and ``losses.csv``.
        resume: continue from ``out_dir/checkpoint.pt`` when it exists; ``False`` starts afresh.
        labels: the :class:`LabelSet` (or its name) mapping ``label`` to class ids.
        params: stage parameters recorded in the checkpoint (provenance; JSON values).
        progress: show a tqdm bar (rank 0).
        on_step: ``on_step(step, losses, models)`` after each step (:func:`lib.train.loop.run`).

    Returns:
        ``dict(arch, label_set, num_classes, steps, start_step, steps_run, total_steps,
        steps_per_epoch, epochs, wall_seconds, train_seconds, final_loss,
        final_pixel_accuracy, stopped_by_budget, checkpoint, losses_csv, world_size, device)``;
        ``final_*`` are the means over the last 10% of the logged rows (training batches).

    Raises:
        ValueError: ``size`` 0, a dataset built with flips, items of another size, a
            checkpoint of other settings (:data:`RESUME_KEYS`), label set or training set size.
        FloatingPointError: a non-finite loss or weight (names the step and the last good checkpoint).
    """
    cfg = cfg if isinstance(cfg, SegmenterTrainConfig) else from_dict(SegmenterTrainConfig, cfg, where="train_segmenter")
    if cfg.size < 1:
        raise ValueError("train_segmenter: size=0; fill in the translation size with segmenter_config")
    lset = labels if isinstance(labels, LabelSet) else label_set(labels)
    check_unflipped(dataset, "SegmenterTrainConfig")
    targets = _Targets(dataset, lset, cfg.cache and cfg.workers == 0)
    h = int(targets[0]["image"].shape[-2])
    if h != cfg.size:
        raise ValueError(f"training images are {h} px high but size={cfg.size}")
    n_items = len(dataset)
    full = cfg.epochs * cfg.steps_per_epoch(n_items)  # the poly schedule always spans the whole run
    net_cfg = SegmentationNetConfig(arch=cfg.arch, num_classes=lset.num_classes, width=cfg.width, label_set=lset.name)

    def build_parts(device: torch.device) -> Parts:
        net = SegmentationNet(net_cfg).to(device)
        optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: poly_factor(s, full))

        def step(batch: dict, _step: int, nets: dict[str, nn.Module]) -> dict:
            image = batch["image"].to(device, non_blocking=True)  # (B/world, 3, H, W)
            target = batch["target"].to(device, non_blocking=True)  # (B/world, H, W)
            logits = nets["segmenter"](image)  # (B/world, C, H, W)
            loss = F.cross_entropy(logits, target, ignore_index=lset.ignore_index)
            with torch.no_grad():
                valid = target != lset.ignore_index
                acc = (logits.argmax(1) == target)[valid].float().mean() if bool(valid.any()) else loss.new_zeros(())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return {"loss": loss, "pixel_accuracy": acc}

        return Parts(MODEL_NAME, net_cfg, {"segmenter": net}, {"adamw": optimizer}, {"poly": scheduler}, step,
                     extra={"label_set": lset.name})

    trainer = Trainer(name=cfg.arch, cfg=cfg, items=EpochItems(targets, cfg.seed, cfg.flip), num_items=n_items,
                      total_steps=cfg.total_steps(n_items), build=build_parts, loss_terms=("loss", "pixel_accuracy"),
                      lr_columns={"lr": "adamw"}, resume_keys=RESUME_KEYS)
    out = run(trainer, out_dir, resume=resume, params=params, progress=progress, on_step=on_step)
    final = out.pop("final_losses")
    out.pop("last_losses")
    head = {"arch": cfg.arch, "label_set": lset.name, "num_classes": lset.num_classes}
    tail = ("stopped_by_budget", "checkpoint", "losses_csv", "world_size", "device")
    return {**head, **{k: v for k, v in out.items() if k not in tail}, "final_loss": final["loss"],
            "final_pixel_accuracy": final["pixel_accuracy"], **{k: out[k] for k in tail}}
