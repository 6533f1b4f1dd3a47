"""Segmenters on frozen ImageNet features: pytorch-fid's InceptionV3 as a fixed feature extractor
plus a light trainable decoder (the mIoU protocol's segmenter where a from-scratch network is too
weak to separate the generators, docs/design.md#models).

The only ImageNet-trained network available offline is the FID Inception (pytorch-fid's port of
TensorFlow's 2015 InceptionV3, the weights :mod:`lib.metrics.fid` reads). Its early and middle
layers describe local texture and object parts well enough for street-scene classes: a decoder
trained on four of its feature maps reached 0.51 mIoU on the CamVid test set after 3.6 minutes of
CPU training at 128x176 (0.44 without upsampling the photo first), where the U-Net trained from
scratch on a few hundred photos stays far lower.

Registered in :data:`lib.models.MODELS` as ``"inception_segmenter"``: :class:`InceptionSegmenter`
with :class:`InceptionSegmenterConfig`. ``forward(x)``: (B, 3, H, W) in ``[-1, 1]`` (the range the
FID Inception expects) -> logits (B, num_classes, H, W).

- **Backbone** (frozen: ``requires_grad`` off, always in eval mode, run without autograd): the
  photo resized by ``input_scale`` (bilinear; by more where its short side would stay below
  :data:`MIN_SIDE`, which the backbone's unpadded convolutions need), then the FID InceptionV3 up to ``Mixed_7c``; the
  feature maps of :data:`BACKBONE_LAYERS` (192, 288, 768, 2048 channels at strides of about 4,
  8, 16 and 32 of the resized photo).
- **Decoder** (trained): per feature map a 1x1 conv-BN-ReLU to ``decoder_width`` channels, all
  resized bilinearly to the first map's grid and concatenated, a 3x3 conv-BN-ReLU, then
  - ``arch = "inception"``: a 1x1 conv to the classes at that grid, logits resized bilinearly to
    (H, W);
  - ``arch = "inception_unet"``: the decoder features resized to (H, W) and concatenated with
    the last features of a U-Net trained from scratch on the photo (:class:`lib.models.segmentation.UNet`,
    base width ``width``: fine detail at full resolution), a 3x3 conv-BN-ReLU and the 1x1 head.

The backbone's weights are part of the module, so a checkpoint holds them and
:func:`lib.models.load_model` rebuilds the segmenter without the weights file; a new segmenter
gets them from the file with :func:`load_backbone` (the trainer does this).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lib.models.segmentation import UNet

__all__ = ["InceptionSegmenterConfig", "InceptionSegmenter", "InceptionBackbone", "load_backbone", "ARCHS",
           "BACKBONE_LAYERS", "LAYER_CHANNELS", "MIN_SIDE"]

ARCHS = ("inception", "inception_unet")
BACKBONE_LAYERS = ("Conv2d_4a_3x3", "Mixed_5d", "Mixed_6e", "Mixed_7c")  # torchvision InceptionV3 module names
LAYER_CHANNELS = (192, 288, 768, 2048)  # output channels of BACKBONE_LAYERS (Szegedy et al. 2016, Table 1)
MIN_SIDE = 80  # backbone input: InceptionV3's unpadded stride-2 convolutions need 75 px for a 1x1 Mixed_7c map
# the backbone's modules in forward order, cut after each of BACKBONE_LAYERS (pools between them in forward)
_STAGES = (
    ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"),
    ("Mixed_5b", "Mixed_5c", "Mixed_5d"),
    ("Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"),
    ("Mixed_7a", "Mixed_7b", "Mixed_7c"),
)


@dataclasses.dataclass(frozen=True)
class InceptionSegmenterConfig:
    """The network of a frozen-feature segmenter (stored as the checkpoint's ``config``).

    Attributes:
        arch: ``"inception"`` (decoder only) or ``"inception_unet"`` (decoder beside a U-Net).
        num_classes: output channels.
        input_scale: the photo is resized by this factor before the backbone (2: the calibration's).
        decoder_width: channels of each projected feature map and of the decoder.
        width: base width of the U-Net branch (``inception_unet``).
        depth: poolings of the U-Net branch (input sides must be multiples of ``2**depth``).
        label_set: name of the :class:`lib.data.labels.LabelSet` the classes come from.
    """

    arch: str = "inception"
    num_classes: int = 11  # CamVid (SegNet's 11 classes)
    input_scale: float = 2.0  # not from a paper: the calibration run's setting (module doc)
    decoder_width: int = 64  # not from a paper
    width: int = 16  # lib.models.segmentation.UNet's base width
    depth: int = 4  # U-Net (Ronneberger et al. 2015): 4 poolings
    label_set: str = "camvid"

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        for name in ("num_classes", "decoder_width", "width", "depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.25 <= self.input_scale <= 4:
            raise ValueError(f"input_scale must be in [0.25, 4], got {self.input_scale}")


def _fid_inception() -> nn.Module:
    """pytorch-fid's FID InceptionV3 (torchvision's with the TF-2015 blocks), random init, no download."""
    from pytorch_fid.inception import FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2, _inception_v3

    net = _inception_v3(num_classes=1008, aux_logits=False, weights=None)  # as pytorch_fid.inception.fid_inception_v3
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE_1(1280)
    net.Mixed_7c = FIDInceptionE_2(2048)
    return net


class InceptionBackbone(nn.Module):
    """The FID InceptionV3 up to ``Mixed_7c`` (module names as in the weights file), frozen.

    ``forward(x)``: (B, 3, h, w) in ``[-1, 1]`` -> the four maps of :data:`BACKBONE_LAYERS`,
    (B, 192, h/4-ish, w/4-ish), (B, 288, ...), (B, 768, ...), (B, 2048, h/32-ish, w/32-ish).
    """

    def __init__(self) -> None:
        super().__init__()
        net = _fid_inception()
        for names in _STAGES:
            for name in names:
                self.add_module(name, getattr(net, name))
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> "InceptionBackbone":
        """Stays in eval mode: the batch-norm statistics are ImageNet's."""
        return super().train(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for i, names in enumerate(_STAGES):
            if i in (1,):  # pytorch-fid: max pool after Conv2d_4a_3x3 (its block 1)
                x = F.max_pool2d(x, kernel_size=3, stride=2)
            for name in names:
                x = getattr(self, name)(x)
                if i == 0 and name == "Conv2d_2b_3x3":  # pytorch-fid block 0 ends with a max pool
                    x = F.max_pool2d(x, kernel_size=3, stride=2)
            out.append(x)  # (B, LAYER_CHANNELS[i], h_i, w_i)
        return out


def _conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class InceptionSegmenter(nn.Module):
    """Frozen FID-Inception features + a trained decoder (module doc); images in ``[-1, 1]``.

    ``forward(x)``: (B, 3, H, W) -> logits (B, num_classes, H, W).
    """

    def __init__(self, cfg: InceptionSegmenterConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.decoder_width
        self.backbone = InceptionBackbone()
        self.proj = nn.ModuleList(_conv_bn_relu(c, w, 1) for c in LAYER_CHANNELS)
        self.fuse = _conv_bn_relu(len(LAYER_CHANNELS) * w, w, 3)
        if cfg.arch == "inception_unet":
            self.unet = UNet(cfg.width, cfg.width, cfg.depth)  # its 1x1 head gives `width` feature channels
            self.mix = _conv_bn_relu(w + cfg.width, w, 3)
        self.head = nn.Conv2d(w, cfg.num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        scale = max(self.cfg.input_scale, MIN_SIDE / min(h, w))
        z = x
        if scale != 1:
            size = (round(h * scale), round(w * scale))
            z = F.interpolate(x, size=size, mode="bilinear", align_corners=False)  # (B, 3, sH, sW)
        with torch.no_grad():
            feats = self.backbone(z)
        grid = feats[0].shape[-2:]
        parts = [F.interpolate(p(f), size=grid, mode="bilinear", align_corners=False) if f.shape[-2:] != grid else p(f)
                 for p, f in zip(self.proj, feats)]  # each (B, w, h0, w0)
        y = self.fuse(torch.cat(parts, 1))  # (B, w, h0, w0)
        if self.cfg.arch == "inception_unet":
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)  # (B, w, H, W)
            y = self.mix(torch.cat([y, self.unet(x)], 1))  # (B, w, H, W)
            return self.head(y)  # (B, C, H, W)
        return F.interpolate(self.head(y), size=(h, w), mode="bilinear", align_corners=False)  # (B, C, H, W)


def load_backbone(model: InceptionSegmenter, weights_file: str | os.PathLike) -> InceptionSegmenter:
    """Loads the FID Inception weights (pytorch-fid's file, or the copy with its logits layer
    zeroed) into ``model``'s backbone, strictly: every backbone tensor must be in the file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a file that is not a state dict of the FID Inception (names it and the keys).
    """
    path = Path(weights_file)
    if not path.is_file():
        raise FileNotFoundError(f"FID Inception weights not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict of the FID Inception")
    own = dict(model.backbone.named_children())
    kept = {k: v for k, v in state.items() if k.split(".", 1)[0] in own}  # the layers up to Mixed_7c
    try:
        model.backbone.load_state_dict(kept, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: does not hold the FID Inception layers up to Mixed_7c: {e}") from e
    return model
