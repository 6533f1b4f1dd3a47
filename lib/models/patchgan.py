"""Multiscale PatchGAN discriminator (pix2pixHD sec. 3.2; SPADE appendix A), used by ASAPNet
(sec. 4) on the concatenation of the label map (+ instance edges) and the RGB image.

Each scale is an N-layer PatchGAN: conv4x4 stride 2 + LeakyReLU(0.2) (no norm), then
``n_layers - 1`` conv4x4 (+ spectral norm) + norm + LeakyReLU(0.2) doubling the width up to
``ndf_max`` with stride 2 except the last (stride 1), then conv4x4 stride 1 to one channel; zero
padding 2 throughout. Scales see the input average-pooled (3x3, stride 2, padding 1, padding not
counted) once more each. The forward returns, per scale, every block's output (the last is the
patch prediction) for feature matching.

Conventions: the official SPADE ``n_layers_D=4`` is ``n_layers=4`` here (64-128-256-512, strides
2,2,2,1). pix2pixHD's ``n_layers_D=3`` counts only its stride-2 layers and builds the same
64-128-256-512 network: here ``n_layers=4, spectral_norm=False`` (pix2pixHD also keeps the conv
biases in front of its norms, 896 parameters per scale that this module drops).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from lib.models.layers import init_conv_xavier_

__all__ = ["MultiscaleDiscriminator", "PatchGANConfig", "NLayerDiscriminator"]

KERNEL = 4  # official: kw = 4
PADDING = 2  # official: padw = ceil((kw - 1) / 2)
LRELU_SLOPE = 0.2  # official: LeakyReLU(0.2)


@dataclass(frozen=True)
class PatchGANConfig:
    """Multiscale discriminator; defaults are ASAPNet/SPADE on Cityscapes.

    Attributes:
        in_channels: input channels: labels (+1 instance edge) + 3 RGB (39 on Cityscapes).
        num_D: number of scales (official: num_D).
        n_layers: conv blocks before the prediction conv (official SPADE: n_layers_D).
        ndf: width of the first conv (official: ndf).
        ndf_max: width cap (official: ndf_max).
        spectral_norm: spectral norm on the normalised convs (official: norm_D spectralinstance).
        norm: "instance" (no affine), "batch" or "none" (official: norm_D).
        init_gain: xavier-normal gain of conv weights (official: init_variance, init_type xavier).
    """

    in_channels: int = 39  # 35 labels + 1 instance edge + 3 RGB (official: compute_D_input_nc)
    num_D: int = 2  # official: num_D
    n_layers: int = 4  # official SPADE: n_layers_D
    ndf: int = 64  # official: ndf
    ndf_max: int = 512  # official: ndf_max
    spectral_norm: bool = True  # official: norm_D = spectralinstance
    norm: Literal["instance", "batch", "none"] = "instance"  # official: norm_D = spectralinstance
    init_gain: float = 0.02  # official: init_variance

    def __post_init__(self) -> None:
        if self.num_D < 1 or self.n_layers < 1:
            raise ValueError(f"num_D={self.num_D} and n_layers={self.n_layers} must be >= 1")


def _norm(kind: str, channels: int) -> nn.Module | None:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)  # official get_nonspade_norm_layer('instance')
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True)
    if kind == "none":
        return None
    raise ValueError(f"unknown norm {kind!r}; known: instance, batch, none")


class NLayerDiscriminator(nn.Module):
    """One PatchGAN scale; ``forward`` returns the output of every block (last = prediction).

    Args:
        cfg: the discriminator config.
    """

    def __init__(self, cfg: PatchGANConfig) -> None:
        super().__init__()

        def conv(c_in: int, c_out: int, stride: int, normed: bool) -> nn.Module:
            layer = nn.Conv2d(c_in, c_out, KERNEL, stride=stride, padding=PADDING, bias=not normed or cfg.norm == "none")
            init_conv_xavier_(layer, cfg.init_gain)
            return _spectral_norm(layer) if normed and cfg.spectral_norm else layer

        nf = cfg.ndf
        blocks = [nn.Sequential(conv(cfg.in_channels, nf, 2, False), nn.LeakyReLU(LRELU_SLOPE))]
        for n in range(1, cfg.n_layers):
            nf_prev, nf = nf, min(2 * nf, cfg.ndf_max)
            stride = 1 if n == cfg.n_layers - 1 else 2  # official: last block stride 1
            layers = [conv(nf_prev, nf, stride, True)]
            norm = _norm(cfg.norm, nf)
            if norm is not None:
                layers.append(norm)
            layers.append(nn.LeakyReLU(LRELU_SLOPE))
            blocks.append(nn.Sequential(*layers))
        blocks.append(nn.Sequential(conv(nf, 1, 1, False)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, in_channels, H, W) -> [n_layers features..., prediction (B, 1, h, w)]."""
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats


class MultiscaleDiscriminator(nn.Module):
    """``num_D`` PatchGANs on successively average-pooled inputs.

    Args:
        cfg: the discriminator config.
    """

    def __init__(self, cfg: PatchGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.scales = nn.ModuleList([NLayerDiscriminator(cfg) for _ in range(cfg.num_D)])

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        """Discriminates a (labels, image) pair at every scale.

        Args:
            x: labels (+ edges) concatenated with the RGB image, (B, in_channels, H, W).

        Returns:
            Per scale (finest first), the list of ``n_layers + 1`` block outputs; the last is the
            patch prediction (B, 1, h, w).
        """
        out = []
        for i, d in enumerate(self.scales):
            out.append(d(x))
            if i < len(self.scales) - 1:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)  # (B, C, H/2, W/2)
        return out
