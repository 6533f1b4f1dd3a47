"""Segmenter training for the mIoU protocol: the config, the network and optimizer, and one step.

The paper measures how recognisable generated images are with a pretrained DRN-D-105 on
Cityscapes (19 trainIds). Those weights are not available offline, so (docs/design.md#translation-protocol)
a compact segmentation network (:mod:`lib.models.segmentation`) is trained here on the *real*
training photos of the same dataset, at the translation models' image size
(:func:`segmenter_config`); its mIoU on the real test photos is the ceiling that the
generated test images are compared against. Targets come from the dataset's
:class:`lib.data.labels.LabelSet`.

Networks (:func:`network_config`): the U-Net trained from scratch (or a torchvision architecture,
:mod:`lib.models.segmentation`), or a light decoder on frozen ImageNet features of pytorch-fid's
InceptionV3 (``arch: inception``, optionally beside the U-Net: ``inception_unet``;
:mod:`lib.models.inception_segmenter`), whose backbone is read from the FID Inception weights
(:func:`lib.metrics.fid.ensure_inception_weights`) and never trained. The photos may come from
several splits of the dataset (``train_splits``: CamVid's train + val).

Training recipe (not from the paper; a standard from-scratch segmentation recipe): pixel-wise
cross-entropy with ``ignore_index = 255`` (optionally class-weighted, :func:`class_weights`),
AdamW, "poly" learning rate ``lr * (1 - step / total)^0.9`` (DeepLab, Chen et al. 2017),
horizontal flips decided by ``(seed, epoch, index)``, random zoom-and-crop and colour jitter
(:func:`augment_item`, drawn from ``(seed, epoch, index)`` too), bf16 autocast where the CPU
computes in bf16 natively (``precision: auto``). The config's defaults are the plain recipe
(fp32, no zoom, no jitter, unweighted); ``params.yaml`` holds the default-scale one, whose
measured effects on the real-photo mIoU are in ``benchmarks/NOTES.md``. The loop, data order,
resume, checkpoints, loss CSV and DDP are :func:`lib.train.loop.run`'s.

Outputs (rank 0) in ``out_dir``: ``checkpoint.pt`` (``model`` = the family's registry name,
``segmenter`` or ``inception_segmenter``, ``config`` = its network config; loads with
:func:`lib.models.load_model`) and ``losses.csv`` (:data:`LOSS_COLUMNS`).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from lib.config import ConfigError, from_dict
from lib.data.labels import LabelSet, label_set
from lib.device import autocast_dtype_name, check_device, check_precision
from lib.models import build, make_config
from lib.models.inception_segmenter import ARCHS as FEATURE_ARCHS
from lib.models.inception_segmenter import load_backbone
from lib.models.segmentation import ARCHS as NET_ARCHS
from lib.train.common import check_unflipped
from lib.train.gan import TranslationTrainStage, translation_size
from lib.train.loop import CHECKPOINT_NAME, LOSSES_NAME, EpochItems, Parts, Trainer, run

__all__ = ["outputs",
    "SegmenterTrainConfig",
    "segmenter_config",
    "network_config",
    "ARCHS",
    "train_segmenter",
    "poly_factor",
    "augment_item",
    "class_weights",
    "CLASS_WEIGHTINGS",
    "MODEL_NAME",
    "CHECKPOINT_NAME",
    "LOSSES_NAME",
    "LOSS_COLUMNS",
    "RESUME_KEYS",
]

MODEL_NAME = "segmenter"  # registry name of the from-scratch family (the feature family: inception_segmenter)
ARCHS = NET_ARCHS + FEATURE_ARCHS  # every network the stage trains
LOSS_COLUMNS = ("step", "epoch", "loss", "pixel_accuracy", "lr", "seconds")
POLY_POWER = 0.9  # DeepLab (Chen et al. 2017): poly learning-rate policy power

# Training settings that fix the trajectory or the outputs: a checkpoint made with other values
# cannot be resumed into this run (run length, budget, threads, device and workers may change).
RESUME_KEYS = ("seed", "arch", "width", "input_scale", "decoder_width", "size", "batch_size", "epochs", "lr",
               "weight_decay", "flip", "scale_range", "color_jitter", "class_weights", "precision", "log_every",
               "train_splits")
_AUGMENT_STREAM = 4  # SeedSequence spawn key of the scale/crop/colour draws (flips use sample_rng)
CLASS_WEIGHTINGS = ("none", "inverse_sqrt")


@dataclasses.dataclass(frozen=True)
class SegmenterTrainConfig:
    """Segmenter training settings (``train_segmenter`` section of ``params.yaml``).

    Not from the paper (its segmenter is a pretrained DRN-D-105); the defaults are the plain
    recipe (module doc), ``params.yaml`` the default-scale run.

    Attributes:
        seed: seeds the initial weights, the data order and the flips.
        arch: one of :data:`ARCHS`: ``unet`` (from scratch), ``inception`` (a decoder on frozen
            InceptionV3 features), ``inception_unet`` (both), or a torchvision architecture.
        width: U-Net base width (``unet``, ``inception_unet``; ignored by the others).
        input_scale: ``inception*``: the photo is resized by this factor before the backbone.
        decoder_width: ``inception*``: channels of the decoder.
        train_splits: the dataset splits whose photos train the segmenter (CamVid: train and val).
        fid_weights: ``inception*``: the FID Inception weights file (``None``: the lookup of
            :func:`lib.metrics.fid.ensure_inception_weights`).
        size: image height the data must have (Facades: square; Cityscapes: width = 2 x height);
            0 takes the translation models' size (:func:`segmenter_config`), which it must equal.
        batch_size: items per step, summed over ranks.
        epochs: passes over the training set (the incomplete last batch of each is dropped).
        lr: AdamW peak learning rate (decays by the poly rule to 0 at the end of ``epochs``).
        weight_decay: AdamW weight decay.
        flip: random horizontal flips, decided by ``(seed, epoch, index)``.
        scale_range: ``(low, high)``: each training item is zoomed by a factor drawn
            uniformly from this range and cropped (zoom > 1) or padded (zoom < 1, padding
            ignored by the loss) back to its size at a random offset (:func:`augment_item`);
            ``(1, 1)`` leaves the geometry unchanged.
        color_jitter: strength ``j`` of random brightness, contrast and saturation factors
            drawn uniformly from ``[1 - j, 1 + j]`` (0: none).
        class_weights: ``"none"`` or ``"inverse_sqrt"``: cross-entropy weight of class ``c``
            proportional to ``1 / sqrt(f_c)``, ``f_c`` its pixel share in the training set
            (:func:`class_weights`).
        precision: ``"auto"`` (bf16 autocast where :func:`lib.device.bf16_autocast_recommended`,
            else fp32), ``"fp32"`` or ``"bf16"``; the loss is computed in fp32.
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
    input_scale: float = 2.0  # not from the paper: lib.models.inception_segmenter's calibration
    decoder_width: int = 64  # not from the paper
    train_splits: tuple[str, ...] = ("train",)
    fid_weights: str | None = None
    size: int = 0  # 0: train_translation's size (segmenter_config)
    batch_size: int = 8  # not from the paper
    epochs: int = 8  # not from the paper
    lr: float = 1e-3  # not from the paper: AdamW default-range rate for a from-scratch U-Net
    weight_decay: float = 1e-4  # not from the paper
    flip: bool = True
    scale_range: tuple[float, float] = (1.0, 1.0)  # not from the paper; (1, 1): no zoom
    color_jitter: float = 0.0  # not from the paper
    class_weights: str = "none"
    precision: str = "fp32"  # params.yaml says auto
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
        if not self.train_splits or len(set(self.train_splits)) != len(self.train_splits):
            raise ValueError(f"train_splits must be distinct split names, at least one, got {list(self.train_splits)}")
        if not 0.25 <= self.input_scale <= 4:
            raise ValueError(f"input_scale must be in [0.25, 4], got {self.input_scale}")
        for name in ("width", "decoder_width", "batch_size", "epochs", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("size", "max_steps", "checkpoint_every", "threads", "workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")
        if self.time_budget_s < 0:
            raise ValueError(f"time_budget_s must be >= 0, got {self.time_budget_s}")
        lo, hi = (float(v) for v in self.scale_range)
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {self.scale_range}")
        if not 0 <= self.color_jitter < 1:
            raise ValueError(f"color_jitter must be in [0, 1), got {self.color_jitter}")
        if self.class_weights not in CLASS_WEIGHTINGS:
            raise ValueError(f"class_weights must be one of {CLASS_WEIGHTINGS}, got {self.class_weights!r}")
        check_precision(self.precision)
        check_device(self.device)

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


def network_config(cfg: SegmenterTrainConfig, labels: LabelSet) -> tuple[str, Any]:
    """The registry name and network config of the segmenter ``cfg`` trains for ``labels``:
    ``inception_segmenter`` for the frozen-feature architectures, else ``segmenter``."""
    if cfg.arch in FEATURE_ARCHS:
        return "inception_segmenter", make_config("inception_segmenter", {
            "arch": cfg.arch, "num_classes": labels.num_classes, "input_scale": cfg.input_scale,
            "decoder_width": cfg.decoder_width, "width": cfg.width, "label_set": labels.name})
    return MODEL_NAME, make_config(MODEL_NAME, {"arch": cfg.arch, "num_classes": labels.num_classes, "width": cfg.width,
                                                "label_set": labels.name})


def poly_factor(step: int, total: int, power: float = POLY_POWER) -> float:
    """Learning-rate multiplier of 0-based ``step``: ``(1 - step / total)^power`` (0 from ``total`` on)."""
    if total <= 0:
        return 1.0
    return max(0.0, 1.0 - step / total) ** power


def augment_item(image: Tensor, target: Tensor, rng: np.random.Generator, scale_range: tuple[float, float],
                 color_jitter: float, ignore_index: int) -> tuple[Tensor, Tensor]:
    """Random zoom-and-crop and colour jitter of one training pair (sizes unchanged).

    Zoom: a factor ``s ~ U(scale_range)``; the output samples the window of side ``1/s`` of
    the image (in normalised coordinates) centred at an offset ``t ~ U(-|1 - 1/s|, |1 - 1/s|)``
    per axis, so for ``s >= 1`` the window lies inside the image (a crop of the zoomed image)
    and for ``s < 1`` the image lies inside the window (the rest is padding: 0 in the image,
    ``ignore_index`` in the target). Image bilinear, target nearest (:func:`F.grid_sample`).
    Colour: brightness, contrast (about the image mean) and saturation (about the grey value)
    factors each ``~ U(1 - j, 1 + j)``, applied in ``[0, 1]`` and clipped.

    Args:
        image: (3, H, W) in ``[-1, 1]``.
        target: (H, W) int64 class ids (``ignore_index`` for ignored pixels).
        rng: the draws' generator.
        scale_range: ``(low, high)`` zoom factors.
        color_jitter: ``j`` (0: no colour change).
        ignore_index: target value of padding.

    Returns:
        ``(image (3, H, W), target (H, W) int64)``.
    """
    lo, hi = scale_range
    if (lo, hi) != (1.0, 1.0):
        s = float(rng.uniform(lo, hi))
        span = abs(1.0 - 1.0 / s)
        tx, ty = (float(v) for v in rng.uniform(-span, span, size=2))
        theta = torch.tensor([[[1.0 / s, 0.0, tx], [0.0, 1.0 / s, ty]]])  # (1, 2, 3): output -> input coordinates
        grid = F.affine_grid(theta, [1, 1, *image.shape[-2:]], align_corners=False)  # (1, H, W, 2)
        image = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]  # (3, H, W)
        shifted = (target + 1).float()[None, None]  # (1, 1, H, W): 0 marks padding after sampling
        ids = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False)[0, 0].long() - 1  # (H, W)
        target = torch.where(ids < 0, torch.full_like(ids, ignore_index), ids)
    if color_jitter > 0:
        b, c, sat = (float(v) for v in rng.uniform(1 - color_jitter, 1 + color_jitter, size=3))
        x = (image + 1) / 2 * b  # [0, 1] scale, brightness
        x = (x - x.mean()) * c + x.mean()
        grey = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None]  # (1, H, W): ITU-R BT.601 luma
        x = ((x - grey) * sat + grey).clamp(0, 1)
        image = x * 2 - 1
    return image, target


def class_weights(counts: Tensor) -> Tensor:
    """Cross-entropy class weights ``w_c = f_c^(-1/2)`` from pixel counts (``f_c`` the share),
    scaled so that ``sum_c f_c w_c = 1`` (the weighted loss of the training pixels keeps the
    unweighted loss's scale); classes without pixels get weight 0."""
    counts = counts.double()
    share = counts / counts.sum()
    w = torch.where(share > 0, share.clamp_min(1e-12).rsqrt(), torch.zeros_like(share))
    return (w / (share * w).sum()).float()


class _Targets(Dataset):
    """Training pairs ``dict(image (3, H, W) in [-1, 1], target (H, W) int64)`` of a dataset,
    optionally decoded once and cached as uint8, with the random zoom/crop and colour
    jitter of :func:`augment_item` drawn from ``(seed, epoch, index)`` (the epoch is set by
    :class:`lib.train.loop.EpochItems` before each item)."""

    def __init__(self, dataset: Dataset, labels: LabelSet, cfg: SegmenterTrainConfig, cache: bool) -> None:
        self.dataset, self.labels, self.cfg = dataset, labels, cfg
        self.epoch = 0
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

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def pixel_counts(self) -> Tensor:
        """(num_classes,) int64 training pixels per class (ignored pixels left out)."""
        counts = torch.zeros(self.labels.num_classes, dtype=torch.int64)
        for i in range(len(self)):
            t = self.targets[i].long() if self.targets is not None else self._load(i)["target"]  # (H, W)
            t = t[t != self.labels.ignore_index]
            counts += torch.bincount(t.flatten(), minlength=self.labels.num_classes)  # (C,)
        return counts

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        if self.images is None:
            item = self._load(index)
        else:
            image = self.images[index].float() / 127.5 - 1.0  # as lib.data.transforms.photo_to_tensor
            item = {"image": image, "target": self.targets[index].long()}
        cfg = self.cfg
        if tuple(cfg.scale_range) == (1.0, 1.0) and cfg.color_jitter == 0:
            return item
        ss = np.random.SeedSequence([int(cfg.seed) & 0xFFFFFFFF, self.epoch, int(index)], spawn_key=(_AUGMENT_STREAM,))
        image, target = augment_item(item["image"], item["target"], np.random.default_rng(ss),
                                     tuple(cfg.scale_range), cfg.color_jitter, self.labels.ignore_index)
        return {"image": image, "target": target}


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
    targets = _Targets(dataset, lset, cfg, cfg.cache and cfg.workers == 0)
    h = int(targets[0]["image"].shape[-2])
    if h != cfg.size:
        raise ValueError(f"training images are {h} px high but size={cfg.size}")
    n_items = len(dataset)
    full = cfg.epochs * cfg.steps_per_epoch(n_items)  # the poly schedule always spans the whole run
    net_name, net_cfg = network_config(cfg, lset)
    backbone = None
    if cfg.arch in FEATURE_ARCHS:  # the frozen ImageNet features: checked and found before anything is trained
        from lib.metrics.fid import ensure_inception_weights
        from lib.paths import project_path

        given = None if cfg.fid_weights is None else project_path(cfg.fid_weights)
        if given is not None and not given.is_file():
            raise FileNotFoundError(f"FID Inception weights not found: {given} (params key train_segmenter.fid_weights)")
        backbone = ensure_inception_weights(given)
    weights = class_weights(targets.pixel_counts()) if cfg.class_weights == "inverse_sqrt" else None
    precision = {}

    def build_parts(device: torch.device) -> Parts:
        net = build(net_name, net_cfg)
        if backbone is not None:
            load_backbone(net, backbone)
        net = net.to(device)
        precision["name"] = autocast_dtype_name(cfg.precision, device)
        bf16 = precision["name"] == "bf16"
        weight = None if weights is None else weights.to(device)
        trained = [p for p in net.parameters() if p.requires_grad]  # not the frozen backbone
        optimizer = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: poly_factor(s, full))

        def step(batch: dict, _step: int, nets: dict[str, nn.Module]) -> dict:
            image = batch["image"].to(device, non_blocking=True)  # (B/world, 3, H, W)
            target = batch["target"].to(device, non_blocking=True)  # (B/world, H, W)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = nets["segmenter"](image)  # (B/world, C, H, W)
            logits = logits.float()
            loss = F.cross_entropy(logits, target, weight=weight, ignore_index=lset.ignore_index)
            with torch.no_grad():
                valid = target != lset.ignore_index
                acc = (logits.argmax(1) == target)[valid].float().mean() if bool(valid.any()) else loss.new_zeros(())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return {"loss": loss, "pixel_accuracy": acc}

        return Parts(net_name, net_cfg, {"segmenter": net}, {"adamw": optimizer}, {"poly": scheduler}, step,
                     extra={"label_set": lset.name, "precision": precision["name"]})

    trainer = Trainer(name=cfg.arch, cfg=cfg, items=EpochItems(targets, cfg.seed, cfg.flip), num_items=n_items,
                      total_steps=cfg.total_steps(n_items), build=build_parts, loss_terms=("loss", "pixel_accuracy"),
                      lr_columns={"lr": "adamw"}, resume_keys=RESUME_KEYS)
    out = run(trainer, out_dir, resume=resume, params=params, progress=progress, on_step=on_step)
    final = out.pop("final_losses")
    out.pop("last_losses")
    head = {"arch": cfg.arch, "label_set": lset.name, "num_classes": lset.num_classes, "precision": precision["name"]}
    tail = ("stopped_by_budget", "checkpoint", "losses_csv", "world_size", "device")
    return {**head, **{k: v for k, v in out.items() if k not in tail}, "final_loss": final["loss"],
            "final_pixel_accuracy": final["pixel_accuracy"], **{k: out[k] for k in tail}}


def outputs(dataset: str) -> dict[str, str]:
    """The ``train_segmenter@<dataset>`` stage's outputs (project-relative; ``dvc.yaml`` declares the same
    paths from the same study list)."""
    return {"out_dir": f"data/processed/segmenter/{dataset}",
            "summary_out": f"reports/metrics/translation/{dataset}/train_segmenter.json",
            "losses_out": f"reports/metrics/translation/{dataset}/losses_segmenter.csv",
            "grid_out": f"reports/figures/stages/translation/{dataset}/segmenter_test_samples.png"}
