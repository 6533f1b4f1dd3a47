"""SPADE generator (Park, Liu, Wang, Zhu, "Semantic Image Synthesis with Spatially-Adaptive
Normalization", CVPR 2019, sec. 3 and appendix A), a baseline of ASAPNet sec. 4.

Without the VAE (official ``use_vae=False``): the label map (plus instance edges) is resized
(nearest) to the latent grid ``H / 2**n_up x W / 2**n_up`` and convolved to ``16 ngf``
channels; then SPADE residual blocks with nearest x2 upsampling between them:
head_0, G_middle_0, G_middle_1 at 16 ngf, up_0..up_3 to 8, 4, 2, 1 ngf (and up_4 to ngf/2 for
"most"), then LeakyReLU(0.2), conv3x3 to RGB and tanh. ``n_up`` is 5, 6 or 7 for
num_upsampling_layers "normal", "more" (Cityscapes), "most".

Each SPADE layer normalises with a parameter-free norm (the official synchronized batch norm is
plain ``BatchNorm2d(affine=False)`` here, or InstanceNorm) and modulates with
``1 + gamma(seg)`` and ``beta(seg)`` from a small conv net on the resized label map.
The residual blocks' convs carry spectral norm.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from lib.models.layers import generator_input, init_conv_xavier_

__all__ = ["SPADEGenerator", "SPADEConfig", "SPADE", "SPADEResnetBlock", "NUM_UPSAMPLINGS"]

NUM_UPSAMPLINGS = {"normal": 5, "more": 6, "most": 7}  # official compute_latent_vector_size
LRELU_SLOPE = 0.2  # official: F.leaky_relu(x, 2e-1)
LATENT_MULT = 16  # official: fc to 16 * ngf channels
OUT_CHANNELS = 3  # RGB (official: output_nc)


@dataclass(frozen=True)
class SPADEConfig:
    """SPADE generator; defaults are the official Cityscapes setting.

    Attributes:
        label_nc: one-hot label channels (official: label_nc).
        use_instance_edge: instance-edge channel concatenated to the labels (official: no_instance=False).
        ngf: base width (official: ngf).
        num_upsampling_layers: "normal" (5), "more" (6, Cityscapes), "most" (7).
        spade_hidden: hidden channels of each SPADE conv net (official: nhidden = 128).
        spade_kernel: kernel size of the SPADE convs (official: norm_G ...3x3).
        param_free_norm: "batch" (official syncbatch) or "instance".
        spectral_norm: spectral norm on the residual blocks' convs (official: norm_G spectral...).
        init_gain: xavier-normal gain of conv weights (official: init_variance, init_type xavier).
    """

    label_nc: int = 35  # Cityscapes label ids (official: label_nc)
    use_instance_edge: bool = True  # official: no_instance=False
    ngf: int = 64  # official: ngf
    num_upsampling_layers: Literal["normal", "more", "most"] = "more"  # official Cityscapes default
    spade_hidden: int = 128  # official: nhidden = 128
    spade_kernel: int = 3  # official: spadesyncbatch3x3
    param_free_norm: Literal["batch", "instance"] = "batch"  # official: syncbatch
    spectral_norm: bool = True  # official: norm_G = spectralspadesyncbatch3x3
    init_gain: float = 0.02  # official: init_variance

    def __post_init__(self) -> None:
        if self.spade_kernel % 2 == 0:
            raise ValueError(f"spade_kernel={self.spade_kernel} must be odd")
        if self.num_upsampling_layers == "most" and self.ngf < 2:
            raise ValueError("num_upsampling_layers='most' needs ngf >= 2 (up_4 has ngf // 2 channels)")

    @property
    def semantic_nc(self) -> int:
        """Channels of the segmentation input: labels (+ instance edge)."""
        return self.label_nc + int(self.use_instance_edge)

    @property
    def num_upsamplings(self) -> int:
        """Number of x2 upsamplings from the latent grid to the output."""
        return NUM_UPSAMPLINGS[self.num_upsampling_layers]


class SPADE(nn.Module):
    """Spatially-adaptive normalisation: ``norm(x) * (1 + gamma(seg)) + beta(seg)`` (sec. 3).

    Args:
        norm_nc: channels of x.
        label_nc: channels of seg.
        hidden: channels of the shared conv.
        kernel: conv kernel size.
        param_free_norm: "batch" or "instance" (no affine parameters).
    """

    def __init__(self, norm_nc: int, label_nc: int, hidden: int = 128, kernel: int = 3, param_free_norm: str = "batch") -> None:
        super().__init__()
        if param_free_norm == "batch":
            self.param_free_norm = nn.BatchNorm2d(norm_nc, affine=False)
        elif param_free_norm == "instance":
            self.param_free_norm = nn.InstanceNorm2d(norm_nc, affine=False)
        else:
            raise ValueError(f"unknown param_free_norm {param_free_norm!r}; known: batch, instance")
        pad = kernel // 2
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, kernel, padding=pad), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, kernel, padding=pad)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, kernel, padding=pad)

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        """x (B, C, h, w), seg (B, label_nc, H, W) -> (B, C, h, w)."""
        seg = F.interpolate(seg, size=x.shape[-2:], mode="nearest")  # (B, label_nc, h, w)
        actv = self.mlp_shared(seg)
        return self.param_free_norm(x) * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResnetBlock(nn.Module):
    """SPADE residual block: shortcut(x) + conv_1(act(norm_1(conv_0(act(norm_0(x)))))).

    The shortcut is learned (SPADE + conv1x1 without bias) when ``fin != fout``; the middle width
    is ``min(fin, fout)``; act is LeakyReLU(0.2).

    Args:
        fin: input channels.
        fout: output channels.
        cfg: the generator config (semantic_nc, SPADE and spectral-norm settings).
    """

    def __init__(self, fin: int, fout: int, cfg: SPADEConfig) -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        fmid = min(fin, fout)
        spade = dict(label_nc=cfg.semantic_nc, hidden=cfg.spade_hidden, kernel=cfg.spade_kernel, param_free_norm=cfg.param_free_norm)
        self.norm_0 = SPADE(fin, **spade)
        self.norm_1 = SPADE(fmid, **spade)
        self.conv_0 = self._conv(fin, fmid, 3, True, cfg)
        self.conv_1 = self._conv(fmid, fout, 3, True, cfg)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, **spade)
            self.conv_s = self._conv(fin, fout, 1, False, cfg)

    @staticmethod
    def _conv(c_in: int, c_out: int, kernel: int, bias: bool, cfg: SPADEConfig) -> nn.Module:
        conv = init_conv_xavier_(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=bias), cfg.init_gain)
        return _spectral_norm(conv) if cfg.spectral_norm else conv

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        """x (B, fin, h, w), seg (B, semantic_nc, H, W) -> (B, fout, h, w)."""
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), LRELU_SLOPE))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), LRELU_SLOPE))
        return x_s + dx


class SPADEGenerator(nn.Module):
    """SPADE generator without the VAE encoder.

    Args:
        cfg: the model configuration.
    """

    def __init__(self, cfg: SPADEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        nf = cfg.ngf
        top = LATENT_MULT * nf
        self.fc = nn.Conv2d(cfg.semantic_nc, top, 3, padding=1)
        self.head_0 = SPADEResnetBlock(top, top, cfg)
        self.G_middle_0 = SPADEResnetBlock(top, top, cfg)
        self.G_middle_1 = SPADEResnetBlock(top, top, cfg)
        self.up_0 = SPADEResnetBlock(16 * nf, 8 * nf, cfg)
        self.up_1 = SPADEResnetBlock(8 * nf, 4 * nf, cfg)
        self.up_2 = SPADEResnetBlock(4 * nf, 2 * nf, cfg)
        self.up_3 = SPADEResnetBlock(2 * nf, nf, cfg)
        final_nc = nf
        if cfg.num_upsampling_layers == "most":
            self.up_4 = SPADEResnetBlock(nf, nf // 2, cfg)
            final_nc = nf // 2
        self.conv_img = nn.Conv2d(final_nc, OUT_CHANNELS, 3, padding=1)
        # the residual blocks' convs were initialised before spectral norm wrapped them
        for m in (self.fc, self.conv_img, *[mod for mod in self.modules() if isinstance(mod, SPADE)]):
            init_conv_xavier_(m, cfg.init_gain)

    @staticmethod
    def _up(x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest")  # (B, C, 2h, 2w)

    def forward(self, label_onehot: Tensor, instance_edge: Tensor | None = None) -> Tensor:
        """Translates a label map to an image.

        Args:
            label_onehot: one-hot labels, (B, label_nc, H, W); H, W multiples of 2**n_up.
            instance_edge: instance edges, (B, 1, H, W), or None when ``use_instance_edge`` is off.

        Returns:
            The image, (B, 3, H, W), in [-1, 1].
        """
        seg = generator_input(label_onehot, instance_edge, self.cfg.use_instance_edge)
        n = self.cfg.num_upsamplings
        h, w = seg.shape[-2:]
        if h % 2**n or w % 2**n:
            raise ValueError(f"input size {(h, w)} is not a multiple of 2**{n}")
        x = F.interpolate(seg, size=(h >> n, w >> n), mode="nearest")  # (B, semantic_nc, H/2^n, W/2^n)
        x = self.head_0(self.fc(x), seg)
        x = self.G_middle_0(self._up(x), seg)
        if self.cfg.num_upsampling_layers in ("more", "most"):
            x = self._up(x)
        x = self.G_middle_1(x, seg)
        for block in (self.up_0, self.up_1, self.up_2, self.up_3):
            x = block(self._up(x), seg)
        if self.cfg.num_upsampling_layers == "most":
            x = self.up_4(self._up(x), seg)
        return torch.tanh(self.conv_img(F.leaky_relu(x, LRELU_SLOPE)))
