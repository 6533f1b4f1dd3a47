"""Segmentation networks for the mIoU protocol: the U-Net / torchvision segmenters trained here,
a TorchScript segmenter from elsewhere (DRN-D-105), and class-id prediction.

Registered in :data:`lib.models.MODELS` as ``"segmenter"`` (:class:`SegmentationNet` with
:class:`SegmentationNetConfig`), so :func:`lib.models.load_model` rebuilds a trained one from
its checkpoint. Architectures (:data:`ARCHS`), all mapping images in ``[-1, 1]`` to logits
``(B, C, H, W)``:

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
keeps full-resolution skips and trains from scratch in a few epochs.

A DRN-D-105 (or any other) segmenter from elsewhere plugs in as a TorchScript file, see
:func:`load_torchscript_segmenter`.
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from lib.data.labels import LabelSet, label_colormap
from lib.models import complexity as cost
from lib.models.generate import to_uint8

__all__ = [
    "SegmentationNetConfig",
    "SegmentationNet",
    "UNet",
    "ScriptedSegmenter",
    "load_torchscript_segmenter",
    "segment",
    "segmentation_grid",
    "complexity",
    "ARCHS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DRN_CITYSCAPES_MEAN",
    "DRN_CITYSCAPES_STD",
]

ARCHS = ("unet", "lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large")
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision ImageNet normalisation
IMAGENET_STD = (0.229, 0.224, 0.225)  # torchvision ImageNet normalisation
DRN_CITYSCAPES_MEAN = (0.29010095242892997, 0.32808144844279574, 0.28696394422942517)  # fyu/drn cityscapes info.json
DRN_CITYSCAPES_STD = (0.1829540508368939, 0.18656561047509476, 0.18447508988480435)  # fyu/drn cityscapes info.json


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
    """Parameters and multiply-accumulates of one forward pass on a 1 x 3 x height x width image
    (:func:`lib.models.complexity.complexity`: convolutions and matrix products, counted on
    the meta device).

    Returns:
        ``dict(params=int, gmacs=float)``.
    """
    return cost.complexity("segmenter", cfg, [(1, 3, height, width)])


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


def segmentation_grid(model: Callable[[Tensor], Tensor], dataset: Dataset, labels: LabelSet, n: int = 4) -> np.ndarray:
    """Rows ``photo | predicted classes | true classes`` for ``n`` items spread evenly over a dataset.

    Classes are coloured with :func:`lib.data.labels.label_colormap` (ignored pixels black);
    panels are 2 white pixels apart.

    Args:
        model: a segmenter (see :func:`segment`).
        dataset: items with ``image`` (3, H, W) in ``[-1, 1]`` and ``label`` (H, W).
        labels: the label set mapping ``label`` to class ids.
        n: rows (items ``round(linspace(0, len - 1, n))``, the same every run).

    Returns:
        uint8 (n*H + (n-1)*2, 3*W + 4, 3).
    """
    picks = sorted({int(round(x)) for x in np.linspace(0, len(dataset) - 1, min(n, len(dataset)))})
    items = [dataset[i] for i in picks]
    weights = list(model.parameters()) if isinstance(model, nn.Module) else []
    dev = weights[0].device if weights else torch.device("cpu")
    images = torch.stack([it["image"] for it in items])  # (n, 3, H, W)
    pred = segment(model, images.to(dev)).cpu()  # (n, H, W)
    true = torch.stack([labels.targets(it["label"]) for it in items])  # (n, H, W)
    n_col = labels.num_classes + 1  # colour index 0 = ignored / black
    true_col = torch.where(true == labels.ignore_index, torch.zeros_like(true), true + 1)
    photos = to_uint8(images)  # (n, H, W, 3)
    panels = [photos, label_colormap(pred + 1, n_col), label_colormap(true_col, n_col)]
    rows, h, w, _ = photos.shape
    gap = 2  # pixels between panels
    grid = np.full((rows * h + (rows - 1) * gap, 3 * w + 2 * gap, 3), 255, dtype=np.uint8)
    for i in range(rows):
        for j, panel in enumerate(panels):
            grid[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = panel[i]
    return grid
