"""Semantic segmentation network for the mIoU protocol, trained on the real training photos.

The paper measures how recognisable generated images are with a pretrained DRN-D-105 on
Cityscapes (19 trainIds). Those weights are not available offline, so (DESIGN sec. 5) a
compact segmentation network is trained here on the *real* training photos of the same
dataset; its mIoU on the real test photos is the ceiling that the generated test images are
compared against. Label sets (:data:`LABEL_SETS`): Facades ids 1..12 -> classes 0..11;
Cityscapes labelIds -> the 19 trainIds (255 = ignored).

Architectures (:data:`ARCHS`), all mapping images in ``[-1, 1]`` to logits ``(B, C, H, W)``:

- ``unet`` (default): a U-Net written here (Ronneberger et al. 2015 layout: two 3x3
  conv-BN-ReLU per level, 2x2 max-pool down, bilinear 2x up + skip concatenation, 1x1 head),
  base width 16 (widths 16-32-64-128-128), 4 poolings: 0.80 GMAC per 128x128 image, 1.2 M
  parameters, full-resolution output.
- ``lraspp_mobilenet_v3_large`` / ``deeplabv3_mobilenet_v3_large``: torchvision's
  architectures built with ``weights=None, weights_backbone=None`` (random init, nothing is
  downloaded); inputs are ImageNet-normalised inside :class:`SegmentationNet`.

Why the U-Net for the default scale (128x128, a 2-core CPU, minutes of training): per
128x128 image LR-ASPP-MobileNetV3 costs 0.12 GMAC and DeepLabV3-MobileNetV3 0.62 GMAC
(:func:`complexity`), but their depthwise convolutions run far below the dense-conv rate on a
CPU: one training step of 4 images took 1.7 s (U-Net), 0.62 s (LR-ASPP) and 1.37 s
(DeepLabV3) on one thread, so LR-ASPP's 6.4x fewer MACs buy only 2.7x the speed and
DeepLabV3 is as slow as the U-Net. Both MobileNet models are ImageNet-pretraining designs
that converge slowly from random init on a few hundred photos, and they predict at stride
8 / 16 (a 16x16 or 8x8 grid at 128 px), too coarse for windows, sills and doors; the U-Net
keeps full-resolution skips and trains from scratch in a few epochs. At about 25 GMAC/s
(DESIGN: 50 GFLOP/s for conv nets) and 3x the forward cost per training image, the U-Net
sees about 10 images/s: 8 epochs of Facades (318 photos) in about 5 minutes.

Training recipe (not from the paper; a standard from-scratch segmentation recipe): pixel-wise
cross-entropy with ``ignore_index = 255``, AdamW (lr 1e-3, weight decay 1e-4), "poly" learning
rate ``lr * (1 - step / total)^0.9`` (DeepLab, Chen et al. 2017), horizontal flips.

Determinism: as :mod:`lib.train.gan`: step ``s`` takes the items
:func:`lib.train.gan.batch_indices` gives it (a permutation per epoch seeded by ``(seed,
epoch)``) and flips decided by ``(seed, epoch, index)``; a killed and resumed run computes the
same steps as an uninterrupted one (bitwise on the CPU with the same thread count).

Outputs (rank 0) in ``out_dir``: ``checkpoint.pt`` (:func:`lib.train.common.save_training_checkpoint`;
``model = "segmenter"``, ``config`` = the :class:`SegmentationNetConfig`) and ``losses.csv``
(:data:`LOSS_COLUMNS`).

A DRN-D-105 (or any other) segmenter from elsewhere plugs in as a TorchScript file, see
:func:`load_torchscript_segmenter`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from lib.checkpoint import load_checkpoint
from lib.config import from_dict, to_dict
from lib.data.transforms import hflip, sample_rng
from lib.train.common import (
    all_reduce_mean,
    append_losses,
    barrier,
    check_batch,
    check_finite,
    check_finite_params,
    check_unflipped,
    cleanup,
    gather_rng_states,
    init_distributed,
    is_distributed,
    is_main,
    load_training_checkpoint,
    prepare_output,
    rank_seed,
    save_training_checkpoint,
    seed_everything,
    set_threads,
    wrap_ddp,
)
from lib.train.gan import StepBatches

__all__ = [
    "SegmenterTrainConfig",
    "SegmentationNetConfig",
    "SegmentationNet",
    "UNet",
    "LabelSet",
    "LABEL_SETS",
    "label_set",
    "train_segmenter",
    "load_segmenter",
    "load_torchscript_segmenter",
    "ScriptedSegmenter",
    "segment",
    "segmentation_grid",
    "complexity",
    "poly_factor",
    "ARCHS",
    "MODEL_NAME",
    "CHECKPOINT_NAME",
    "LOSSES_NAME",
    "LOSS_COLUMNS",
    "RESUME_KEYS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DRN_CITYSCAPES_MEAN",
    "DRN_CITYSCAPES_STD",
]

MODEL_NAME = "segmenter"  # ``model`` key of the checkpoints written here
CHECKPOINT_NAME = "checkpoint.pt"
LOSSES_NAME = "losses.csv"
LOSS_COLUMNS = ("step", "epoch", "loss", "pixel_accuracy", "lr", "seconds")
ARCHS = ("unet", "lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large")
IGNORE_INDEX = 255  # cityscapesScripts: trainId 255 = ignored
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision ImageNet normalisation
IMAGENET_STD = (0.229, 0.224, 0.225)  # torchvision ImageNet normalisation
DRN_CITYSCAPES_MEAN = (0.29010095242892997, 0.32808144844279574, 0.28696394422942517)  # fyu/drn cityscapes info.json
DRN_CITYSCAPES_STD = (0.1829540508368939, 0.18656561047509476, 0.18447508988480435)  # fyu/drn cityscapes info.json
POLY_POWER = 0.9  # DeepLab (Chen et al. 2017): poly learning-rate policy power

# Training settings that fix the trajectory: a checkpoint made with other values cannot be
# resumed into this run (run length, budget, logging, threads, device and workers may change).
RESUME_KEYS = ("seed", "arch", "width", "size", "batch_size", "epochs", "lr", "weight_decay", "flip")


# ----------------------------------------------------------------------------- label sets


@dataclasses.dataclass(frozen=True)
class LabelSet:
    """The classes a segmenter predicts for one dataset and how dataset label maps map to them.

    Attributes:
        name: dataset name (a key of :data:`lib.data.TRANSLATION_DATASETS`).
        num_classes: predicted classes ``C`` (class ids ``0 .. C-1``).
        class_names: one name per class id.
        ignore_index: target value of pixels left out of the loss and the scores.
    """

    name: str
    num_classes: int
    class_names: tuple[str, ...]
    ignore_index: int = IGNORE_INDEX

    def targets(self, labels: Tensor | np.ndarray) -> Tensor:
        """Dataset label ids -> class ids (int64 tensor, same shape; unmapped ids -> ``ignore_index``).

        Facades: ``id - 1`` for ids 1..12 (others ignored). Cityscapes: labelIds -> trainIds
        (:func:`lib.data.cityscapes.to_train_ids`).
        """
        lab = torch.as_tensor(np.asarray(labels) if not isinstance(labels, Tensor) else labels).long()
        if self.name == "facades":
            from lib.data.facades import MAX_ID, MIN_ID

            out = lab - MIN_ID
            return torch.where((lab >= MIN_ID) & (lab <= MAX_ID), out, torch.full_like(out, self.ignore_index))
        if self.name == "cityscapes":
            from lib.data.cityscapes import to_train_ids

            return to_train_ids(lab)
        raise KeyError(f"no target mapping for label set {self.name!r}")


def _facades_set() -> LabelSet:
    from lib.data.facades import CLASS_NAMES

    return LabelSet("facades", 12, tuple(CLASS_NAMES[1:]))  # CMP base set: 12 classes, ids 1..12


def _cityscapes_set() -> LabelSet:
    from lib.data.cityscapes import TRAIN_CLASSES

    return LabelSet("cityscapes", 19, tuple(TRAIN_CLASSES))  # cityscapesScripts: 19 trainIds


LABEL_SETS: dict[str, Callable[[], LabelSet]] = {"facades": _facades_set, "cityscapes": _cityscapes_set}


def label_set(name: str) -> LabelSet:
    """The :class:`LabelSet` of dataset ``name``.

    Raises:
        KeyError: unknown name (lists the known ones).
    """
    if name not in LABEL_SETS:
        raise KeyError(f"unknown label set {name!r}; known: {', '.join(LABEL_SETS)}")
    return LABEL_SETS[name]()


# ----------------------------------------------------------------------------- configs


@dataclasses.dataclass(frozen=True)
class SegmenterTrainConfig:
    """Segmenter training settings (``train_segmenter`` section of ``params.yaml``).

    Not from the paper (its segmenter is a pretrained DRN-D-105); the defaults are the
    default-scale run: about 5 minutes on a 2-core CPU at 128x128 on Facades.

    Attributes:
        seed: seeds the initial weights, the data order and the flips.
        arch: one of :data:`ARCHS`.
        width: U-Net base width (ignored by the torchvision architectures).
        size: image height the data must have (Facades: square; Cityscapes: width = 2 x height).
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
    size: int = 128  # the default-scale translation size
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
        for name in ("width", "size", "batch_size", "epochs", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_steps", "checkpoint_every", "threads", "workers"):
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


@dataclasses.dataclass(frozen=True)
class SegmentationNetConfig:
    """The network of a trained segmenter (stored as the checkpoint's ``config``).

    Attributes:
        arch: one of :data:`ARCHS`.
        num_classes: output channels.
        width: U-Net base width.
        depth: U-Net poolings (input sides must be multiples of ``2**depth``).
        label_set: name of the :class:`LabelSet` the classes come from.
    """

    arch: str = "unet"
    num_classes: int = 19  # cityscapesScripts: 19 trainIds
    width: int = 16
    depth: int = 4  # U-Net (Ronneberger et al. 2015): 4 poolings
    label_set: str = "cityscapes"


# ----------------------------------------------------------------------------- networks


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    """Two conv3x3 (no bias) - BatchNorm - ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net: widths ``w, 2w, 4w, 8w, 8w`` (capped at ``8w``), max-pool down, bilinear up.

    ``forward(x)``: ``x`` (B, 3, H, W) with H and W multiples of ``2**depth`` -> logits
    (B, num_classes, H, W).
    """

    def __init__(self, num_classes: int, width: int = 16, depth: int = 4, in_channels: int = 3) -> None:
        super().__init__()
        widths = [width * 2 ** min(i, 3) for i in range(depth + 1)]  # Ronneberger et al.: doubling per level
        self.depth = depth
        self.inc = _double_conv(in_channels, widths[0])
        self.down = nn.ModuleList(_double_conv(widths[i], widths[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(
            _double_conv(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        m = 2**self.depth
        if h % m or w % m:
            raise ValueError(f"UNet: input {h}x{w} must be a multiple of {m} on both sides")
        skips = [self.inc(x)]  # (B, w, H, W)
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))  # (B, w_i, H/2^i, W/2^i)
        y = skips.pop()
        for block in self.up:
            skip = skips.pop()
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)  # (B, C, h, w)
            y = block(torch.cat([y, skip], 1))  # (B, w_i, h, w)
        return self.head(y)  # (B, num_classes, H, W)


class SegmentationNet(nn.Module):
    """A segmenter of :data:`ARCHS` taking images in ``[-1, 1]``.

    ``forward(x)``: (B, 3, H, W) in ``[-1, 1]`` -> logits (B, num_classes, H, W). The
    torchvision architectures get ImageNet-normalised inputs (their convention) and their
    ``"out"`` head output, which torchvision already upsamples to the input size.
    """

    def __init__(self, cfg: SegmentationNetConfig) -> None:
        super().__init__()
        if cfg.arch not in ARCHS:
            raise ValueError(f"unknown segmenter arch {cfg.arch!r}; known: {', '.join(ARCHS)}")
        self.cfg = cfg
        if cfg.arch == "unet":
            self.net = UNet(cfg.num_classes, cfg.width, cfg.depth)
        else:
            from torchvision.models import segmentation as tvseg

            build = getattr(tvseg, cfg.arch)
            self.net = build(weights=None, weights_backbone=None, num_classes=cfg.num_classes)  # random init, no download
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)  # (1, 3, 1, 1)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)  # (1, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        if self.cfg.arch == "unet":
            return self.net(x)  # (B, C, H, W)
        x = ((x + 1) / 2 - self.mean) / self.std  # [-1, 1] -> ImageNet-normalised
        return self.net(x)["out"]  # (B, C, H, W)


class ScriptedSegmenter(nn.Module):
    """Wraps a TorchScript segmenter so it takes images in ``[-1, 1]`` like :class:`SegmentationNet`.

    ``forward(x)``: ``x`` (B, 3, H, W) in ``[-1, 1]`` -> ``[0, 1]`` -> ``(x - mean) / std`` ->
    (resized bilinearly to ``input_size`` when given) -> the scripted module -> its first
    output when it returns a tuple/list (DRN's ``DRNSeg`` returns ``(log_softmax, features)``),
    its ``"out"`` entry when it returns a dict -> logits resized bilinearly back to (H, W).
    Argmax over the channels is unchanged by a log-softmax, so scores or logits both work.
    """

    def __init__(
        self,
        module: nn.Module,
        num_classes: int,
        mean: Sequence[float] = DRN_CITYSCAPES_MEAN,
        std: Sequence[float] = DRN_CITYSCAPES_STD,
        input_size: Sequence[int] | None = None,
        source: str = "",
    ) -> None:
        super().__init__()
        self.module = module
        self.num_classes = int(num_classes)
        self.input_size = None if input_size is None else (int(input_size[0]), int(input_size[1]))
        self.source = source
        self.register_buffer("mean", torch.tensor([float(v) for v in mean]).view(1, 3, 1, 1), persistent=False)  # (1, 3, 1, 1)
        self.register_buffer("std", torch.tensor([float(v) for v in std]).view(1, 3, 1, 1), persistent=False)  # (1, 3, 1, 1)

    def train(self, mode: bool = True) -> "ScriptedSegmenter":
        """Sets the mode; an exported program (``.pt2``) keeps the mode it was exported in."""
        self.training = mode
        try:
            self.module.train(mode)
        except NotImplementedError:  # torch.export programs cannot switch modes
            pass
        return self

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = ((x + 1) / 2 - self.mean) / self.std  # [-1, 1] -> [0, 1] -> normalised
        if self.input_size is not None and self.input_size != (h, w):
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)  # (B, 3, h', w')
        out = self.module(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        elif isinstance(out, dict):
            out = out["out"]
        if out.dim() != 4 or out.shape[1] != self.num_classes:
            raise ValueError(
                f"scripted segmenter {self.source}: expected (B, {self.num_classes}, h, w) scores, got {tuple(out.shape)}"
            )
        if out.shape[-2:] != (h, w):
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)  # (B, C, H, W)
        return out


def load_torchscript_segmenter(
    path: str | os.PathLike,
    num_classes: int = 19,
    mean: Sequence[float] = DRN_CITYSCAPES_MEAN,
    std: Sequence[float] = DRN_CITYSCAPES_STD,
    input_size: Sequence[int] | None = None,
    map_location: str | torch.device = "cpu",
) -> ScriptedSegmenter:
    """Loads a TorchScript segmenter (``torch.jit.load``) for the mIoU protocol.

    This is how the paper's evaluator plugs in. DRN-D-105 (Yu et al. 2017; the model SPADE
    and ASAPNet report mIoU with) needs its own code; build it there and script it once::

        model = DRNSeg("drn_d_105", 19)          # from the DRN code base
        model.load_state_dict(torch.load("drn-d-105_ms_cityscapes.pth"))
        torch.jit.trace(model.eval(), torch.zeros(1, 3, 256, 512)).save("drn_d_105.pt")

    then set ``evaluate_translation.segmenter: drn_d_105.pt``. A ``torch.export`` program
    saved as ``.pt2`` (``torch.export.save``) is accepted too. The scripted module must map
    normalised images (B, 3, H, W) to (B, ``num_classes``, h, w) scores (or a tuple/dict
    holding them first / as ``"out"``); for Cityscapes the classes are the 19 trainIds.

    Args:
        path: the TorchScript file.
        num_classes: output channels (19 trainIds for Cityscapes).
        mean: per-channel mean of the ``[0, 1]`` input normalisation (default: DRN's
            Cityscapes statistics; use :data:`IMAGENET_MEAN` for ImageNet-normalised models).
        std: per-channel std of the normalisation.
        input_size: ``(H, W)`` the images are resized to before the forward (e.g. the
            full 1024x2048 some Cityscapes evaluations use), ``None`` keeps their size.
        map_location: device to load onto.

    Returns:
        A :class:`ScriptedSegmenter` in eval mode.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not TorchScript (e.g. a plain state dict; names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TorchScript segmenter not found: {path}")
    try:
        with warnings.catch_warnings():  # torch >= 2.10 marks torch.jit as deprecated; it still loads
            warnings.simplefilter("ignore", FutureWarning)
            if path.suffix == ".pt2":
                module = torch.export.load(str(path)).module()
            else:
                module = torch.jit.load(str(path), map_location=map_location)
    except (RuntimeError, ValueError) as e:
        raise ValueError(
            f"{path}: not a TorchScript file ({e}). A DRN state dict (.pth) must first be loaded into "
            "its model and saved with torch.jit.trace/script (see load_torchscript_segmenter)"
        ) from e
    wrapped = ScriptedSegmenter(module, num_classes, mean, std, input_size, source=str(path))
    return wrapped.to(map_location).eval()


def complexity(cfg: SegmentationNetConfig, height: int, width: int) -> dict:
    """Parameters and multiply-accumulates of one forward pass on a 1 x 3 x height x width image.

    MACs = FLOPs / 2 with FLOPs from ``torch.utils.flop_counter.FlopCounterMode``
    (convolutions and matrix products; normalisation, activations and interpolation are not
    counted). The network is built on the meta device: nothing is computed.

    Returns:
        ``dict(params=int, gmacs=float)``.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = SegmentationNet(cfg).eval()
        x = torch.empty(1, 3, height, width)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return dict(params=int(sum(p.numel() for p in model.parameters())), gmacs=counter.get_total_flops() / 2 / 1e9)


# ----------------------------------------------------------------------------- inference


def segment(model: Callable[[Tensor], Tensor], images: Tensor) -> Tensor:
    """Class ids predicted for images.

    Args:
        model: maps (B, 3, H, W) images in ``[-1, 1]`` to logits/scores (B, C, H, W), or
            directly to integer ids (B, H, W) (e.g. a reference function in tests). Modules
            are used as they are (put them in eval mode and on the images' device first).
        images: (B, 3, H, W) float in ``[-1, 1]``.

    Returns:
        int64 (B, H, W) on the images' device: ``argmax_c logits[:, c]``.

    Raises:
        ValueError: images or outputs of the wrong shape.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"segment: images must be (B, 3, H, W), got {tuple(images.shape)}")
    with torch.inference_mode():
        out = model(images)
    if not out.is_floating_point():
        ids = out.long()  # (B, H, W)
    elif out.dim() == 4:
        ids = out.argmax(1)  # (B, H, W)
    else:
        raise ValueError(f"segment: expected logits (B, C, H, W) or ids (B, H, W), got {out.dtype} {tuple(out.shape)}")
    if ids.shape != (images.shape[0], *images.shape[-2:]):
        raise ValueError(f"segment: predicted ids {tuple(ids.shape)} do not match images {tuple(images.shape)}")
    return ids


def load_segmenter(checkpoint: str | os.PathLike, map_location: str | torch.device = "cpu") -> SegmentationNet:
    """The trained segmenter of a checkpoint written by :func:`train_segmenter`, in eval mode.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a segmenter checkpoint, or weights that do not fit (names the file).
    """
    path = Path(checkpoint)
    ckpt = load_checkpoint(path, map_location="cpu")
    if ckpt["model"] != MODEL_NAME:
        raise ValueError(f"{path}: holds model {ckpt['model']!r}, not a {MODEL_NAME!r} checkpoint")
    cfg = from_dict(SegmentationNetConfig, ckpt["config"], where=f"{path}: config")
    model = SegmentationNet(cfg)
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit segmenter {cfg}: {e}") from e
    return model.to(map_location).eval()


def segmentation_grid(model: Callable[[Tensor], Tensor], dataset: Dataset, labels: LabelSet, n: int = 4) -> np.ndarray:
    """Rows ``photo | predicted classes | true classes`` for ``n`` items spread evenly over a dataset.

    Classes are coloured with :func:`lib.train.gan.label_colormap` (ignored pixels black);
    panels are 2 white pixels apart.

    Args:
        model: a segmenter (see :func:`segment`).
        dataset: items with ``image`` (3, H, W) in ``[-1, 1]`` and ``label`` (H, W).
        labels: the label set mapping ``label`` to class ids.
        n: rows (items ``round(linspace(0, len - 1, n))``, the same every run).

    Returns:
        uint8 (n*H + (n-1)*2, 3*W + 4, 3).
    """
    from lib.train.gan import label_colormap

    picks = sorted({int(round(x)) for x in np.linspace(0, len(dataset) - 1, min(n, len(dataset)))})
    items = [dataset[i] for i in picks]
    weights = list(model.parameters()) if isinstance(model, nn.Module) else []
    dev = weights[0].device if weights else torch.device("cpu")
    images = torch.stack([it["image"] for it in items])  # (n, 3, H, W)
    pred = segment(model, images.to(dev)).cpu()  # (n, H, W)
    true = torch.stack([labels.targets(it["label"]) for it in items])  # (n, H, W)
    n_col = labels.num_classes + 1  # colour index 0 = ignored / black
    true_col = torch.where(true == labels.ignore_index, torch.zeros_like(true), true + 1)
    photos = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (n, H, W, 3)
    panels = [photos, label_colormap(pred + 1, n_col), label_colormap(true_col, n_col)]
    rows, h, w, _ = photos.shape
    gap = 2  # pixels between panels
    grid = np.full((rows * h + (rows - 1) * gap, 3 * w + 2 * gap, 3), 255, dtype=np.uint8)
    for i in range(rows):
        for j, panel in enumerate(panels):
            grid[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = panel[i]
    return grid


# ----------------------------------------------------------------------------- training


def poly_factor(step: int, total: int, power: float = POLY_POWER) -> float:
    """Learning-rate multiplier of 0-based ``step``: ``(1 - step / total)^power`` (0 from ``total`` on)."""
    if total <= 0:
        return 1.0
    return max(0.0, 1.0 - step / total) ** power


class _TrainItems(Dataset):
    """Training pairs ``(image (3, H, W) in [-1, 1], target (H, W) int64)`` indexed by
    ``(epoch, index)``; flips decided by ``(seed, epoch, index)``; optionally cached as uint8."""

    def __init__(self, dataset: Dataset, labels: LabelSet, seed: int, flip: bool, cache: bool) -> None:
        self.dataset, self.labels, self.seed, self.flip = dataset, labels, seed, flip
        self.images: Tensor | None = None
        self.targets: Tensor | None = None
        if cache:
            imgs, tgts = [], []
            for i in range(len(dataset)):
                img, tgt = self._load(i)
                imgs.append(((img + 1) * 127.5).round().to(torch.uint8))  # (3, H, W): exact for photo_to_tensor inputs
                tgts.append(tgt.to(torch.uint8))  # (H, W): class ids < 255 and 255 = ignore
            self.images, self.targets = torch.stack(imgs), torch.stack(tgts)  # (N, 3, H, W), (N, H, W)

    def _load(self, index: int) -> tuple[Tensor, Tensor]:
        item = self.dataset[index]
        for key in ("image", "label"):
            if key not in item:
                raise KeyError(f"training item {index} ({item.get('path', '?')}) has no {key!r}")
        return item["image"], self.labels.targets(item["label"])

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        if self.images is not None:
            image = self.images[index].float() / 127.5 - 1.0  # as lib.data.transforms.photo_to_tensor
            target = self.targets[index].long()
        else:
            image, target = self._load(index)
        if self.flip and sample_rng(self.seed, epoch, index).random() < 0.5:
            image, target = hflip(image), hflip(target)
        return {"image": image, "target": target}


def _check_resume(path: Path, stored: Mapping[str, Any], cfg: SegmenterTrainConfig) -> None:
    now = to_dict(cfg)
    diff = [k for k in RESUME_KEYS if stored.get(k) != now[k]]
    if diff:
        pairs = ", ".join(f"{k}: checkpoint {stored.get(k)!r} vs requested {now[k]!r}" for k in diff)
        raise ValueError(f"{path}: cannot resume, training settings differ ({pairs}); use another out_dir or resume=False")


def train_segmenter(
    cfg: SegmenterTrainConfig | Mapping[str, Any],
    dataset: Dataset,
    out_dir: str | os.PathLike,
    resume: bool = True,
    *,
    labels: str | LabelSet = "facades",
    params: Mapping[str, Any] | None = None,
    progress: bool = True,
    on_step: Callable[[int, float, nn.Module], None] | None = None,
) -> dict:
    """Trains a segmenter on real photos with pixel-wise cross-entropy.

    Args:
        cfg: :class:`SegmenterTrainConfig` or a mapping for it (strict).
        dataset: training items ``dict(image (3, H, W) in [-1, 1], label (H, W), path)`` built
            without flips (e.g. :func:`lib.data.translation_dataset`); H must equal ``cfg.size``.
        out_dir: folder for ``checkpoint.pt`` and ``losses.csv``.
        resume: continue from ``out_dir/checkpoint.pt`` when it exists; ``False`` starts afresh.
        labels: the :class:`LabelSet` (or its name) mapping ``label`` to class ids.
        params: stage parameters recorded in the checkpoint (provenance).
        progress: show a tqdm bar (rank 0).
        on_step: called on every rank after each step as ``on_step(step, loss, model)``.

    Returns:
        ``dict(arch, label_set, num_classes, steps, start_step, steps_run, total_steps,
        steps_per_epoch, epochs, wall_seconds, train_seconds, final_loss,
        final_pixel_accuracy, stopped_by_budget, checkpoint, losses_csv, world_size, device)``;
        ``final_*`` are the means over the last 10% of the logged rows (training batches).

    Raises:
        ValueError: a dataset built with flips, items of another size, a checkpoint of other
            settings (:data:`RESUME_KEYS`), label set or training set size.
        FloatingPointError: a non-finite loss or weight (names the step and the last good checkpoint).
    """
    cfg = cfg if isinstance(cfg, SegmenterTrainConfig) else from_dict(SegmenterTrainConfig, cfg, where="train_segmenter")
    lset = labels if isinstance(labels, LabelSet) else label_set(labels)
    owns_group = not is_distributed()
    rank, world, device = init_distributed(device=cfg.device)
    try:
        plain = json.loads(json.dumps(dict(params or {}), default=str))
        return _train(cfg, lset, dataset, Path(out_dir), resume, plain, progress, on_step, rank, world, device)
    finally:
        if owns_group:
            cleanup()


def _train(
    cfg: SegmenterTrainConfig,
    lset: LabelSet,
    dataset: Dataset,
    out_dir: Path,
    resume: bool,
    params: dict,
    progress: bool,
    on_step: Callable[[int, float, nn.Module], None] | None,
    rank: int,
    world: int,
    device: torch.device,
) -> dict:
    from tqdm import tqdm

    t_start = time.perf_counter()
    set_threads(cfg.threads)
    check_unflipped(dataset, "SegmenterTrainConfig")
    n_items = len(dataset)
    spe = cfg.steps_per_epoch(n_items)
    check_batch(cfg.batch_size, world, n_items, spe)
    total = cfg.total_steps(n_items)
    full = cfg.epochs * spe  # the poly schedule always spans the whole run
    ckpt_path, csv_path = out_dir / CHECKPOINT_NAME, out_dir / LOSSES_NAME

    items = _TrainItems(dataset, lset, cfg.seed, cfg.flip, cfg.cache and cfg.workers == 0)
    h = int(items[(0, 0)]["image"].shape[-2])
    if h != cfg.size:
        raise ValueError(f"training images are {h} px high but size={cfg.size}")

    net_cfg = SegmentationNetConfig(arch=cfg.arch, num_classes=lset.num_classes, width=cfg.width, label_set=lset.name)
    seed_everything(cfg.seed)  # same initial weights on every rank
    net = SegmentationNet(net_cfg).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: poly_factor(s, full))
    models, optimizers, schedulers = {"segmenter": net}, {"adamw": optimizer}, {"poly": scheduler}
    seed_everything(rank_seed(cfg.seed, rank))

    start, seconds0 = 0, 0.0
    sums, count, last = [0.0, 0.0], 0, (math.nan, math.nan)
    if resume and ckpt_path.is_file():
        info = load_training_checkpoint(ckpt_path, models, optimizers, schedulers,
                                        model_name=MODEL_NAME, model_cfg=net_cfg, rank=rank)
        _check_resume(ckpt_path, info["params"], cfg)
        extra = info["extra"]
        if int(extra.get("num_items", n_items)) != n_items:
            raise ValueError(f"{ckpt_path}: trained on {extra['num_items']} items, the training set has {n_items}")
        start = info["step"]
        seconds0 = float(extra.get("seconds", 0.0))
        sums = [float(v) for v in extra.get("sums", sums)]
        count = int(extra.get("count", 0))
        last = tuple(float(v) for v in extra.get("last", last))
    last_good = prepare_output(out_dir, ckpt_path, csv_path, start, rank)

    model = wrap_ddp(net, world, device)
    model.train()
    loader = DataLoader(
        items,
        batch_sampler=StepBatches(start, total, n_items, cfg.batch_size, cfg.seed, rank, world),
        num_workers=cfg.workers,
        pin_memory=device.type == "cuda",
    )
    bar = tqdm(total=total, initial=start, disable=not (progress and is_main(rank)), desc=f"train {cfg.arch}", unit="step")
    t_loop = time.perf_counter()
    step, stopped = start, False

    def save(at: int) -> None:
        nonlocal last_good
        check_finite_params(models, at, last_good)
        rng = gather_rng_states()
        if is_main(rank):
            save_training_checkpoint(
                ckpt_path, model_name=MODEL_NAME, model_cfg=net_cfg, params=cfg, step=at, epoch=at // spe,
                models=models, optimizers=optimizers, schedulers=schedulers, rng=rng,
                extra=dict(seconds=seconds0 + time.perf_counter() - t_loop, world_size=world, num_items=n_items,
                           label_set=lset.name, sums=list(sums), count=count, last=list(last), stage_params=params),
            )
        last_good = ckpt_path

    for batch in loader:
        epoch = step // spe
        image = batch["image"].to(device, non_blocking=True)  # (B/world, 3, H, W)
        target = batch["target"].to(device, non_blocking=True)  # (B/world, H, W)
        logits = model(image)  # (B/world, C, H, W)
        loss = F.cross_entropy(logits, target, ignore_index=lset.ignore_index)
        with torch.no_grad():
            valid = target != lset.ignore_index
            acc = (logits.argmax(1) == target)[valid].float().mean() if bool(valid.any()) else loss.new_zeros(())
        red = all_reduce_mean(torch.stack([loss.detach(), acc]).float())  # (2,)
        check_finite({"loss": red[0]}, step + 1, last_good)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        lr = float(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        step += 1

        last = (float(red[0]), float(red[1]))
        sums, count = [sums[0] + last[0], sums[1] + last[1]], count + 1
        if cfg.time_budget_s > 0:
            over = torch.tensor([float(time.perf_counter() - t_start > cfg.time_budget_s)], device=device)
            stopped = bool(all_reduce_mean(over).item() > 0) and step < total  # any rank over: all stop
        end = step == total or stopped
        if step % cfg.log_every == 0 or end:
            if is_main(rank):
                row = dict(step=step, epoch=epoch, loss=sums[0] / count, pixel_accuracy=sums[1] / count, lr=lr,
                           seconds=round(seconds0 + time.perf_counter() - t_loop, 3))
                append_losses(csv_path, [row])
            sums, count = [0.0, 0.0], 0
        if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or end:
            save(step)
        bar.update(1)
        bar.set_postfix(loss=f"{last[0]:.3g}", acc=f"{last[1]:.3f}", lr=f"{lr:.2g}")
        if on_step is not None:
            on_step(step, last[0], net)
        if stopped:
            break
    bar.close()
    barrier()
    final = _final(csv_path) if is_main(rank) else {"loss": math.nan, "pixel_accuracy": math.nan}
    return {
        "arch": cfg.arch,
        "label_set": lset.name,
        "num_classes": lset.num_classes,
        "steps": step,
        "start_step": start,
        "steps_run": step - start,
        "total_steps": total,
        "steps_per_epoch": spe,
        "epochs": step / spe,
        "wall_seconds": time.perf_counter() - t_start,
        "train_seconds": seconds0 + (time.perf_counter() - t_loop if step > start else 0.0),
        "final_loss": final["loss"],
        "final_pixel_accuracy": final["pixel_accuracy"],
        "stopped_by_budget": stopped,
        "checkpoint": str(ckpt_path),
        "losses_csv": str(csv_path),
        "world_size": world,
        "device": str(device),
    }


def _final(csv_path: Path) -> dict:
    """Mean loss and pixel accuracy over the last 10% (at least one) of the logged rows."""
    from lib.train.common import read_losses

    rows = read_losses(csv_path)
    if not rows:
        return {"loss": math.nan, "pixel_accuracy": math.nan}
    tail = rows[-max(1, math.ceil(0.1 * len(rows))) :]
    return {k: float(np.mean([r[k] for r in tail])) for k in ("loss", "pixel_accuracy")}
