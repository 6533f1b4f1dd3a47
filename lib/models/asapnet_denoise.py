"""ASAPNet adapted to Gaussian denoising: a config family whose flags are the ablation rows.

The ASAPNet idea (Shaham et al., CVPR 2021, sec. 3) is kept: a convolutional *low-res stream*
sees the (noisy) image, reduces it by the tile size ``k`` and predicts, for every k x k tile,
the parameters of a small MLP; the *high-res stream* applies to every pixel the MLP of its
tile. The building blocks are those of the translation model: the low-res stream and the tent
filter (:mod:`lib.models.lowres`), the cosine positional encoding and ``pixelwise_mlp``.

What changes for denoising, each a config flag (an ablation row, see :data:`VARIANTS`):

* ``residual``: the MLP predicts the noise and the output is ``noisy - mlp(...)`` (as DnCNN,
  sec. III-B of Zhang et al. 2017); otherwise the MLP predicts the clean pixel.
* ``context``: what the per-pixel MLP sees of the noisy image. ``"none"``: the noisy pixel
  alone (the plain transfer; it cannot average noise away). ``"patch3"``: its 3x3
  neighbourhood (``9 C`` channels, reflect-padded). ``"conv"``: the noisy pixel and the
  features of a light full-resolution conv front-end (``context_layers`` conv3x3 + ReLU of
  ``context_width`` channels, reflect padding).
* ``tile_size``: smaller tiles give more local MLPs (and a longer parameter map).
* ``noise_level_input``: non-blind; a constant ``sigma / 255`` channel is appended to the input
  of both streams.
* ``lr_padding`` / ``lr_norm``: the low-res stream's conv padding (zeros as in ASAPNet, or
  reflect) and normalisation (instance norm as in ASAPNet, a per-cell norm over the channels,
  or none). Instance norm averages over the whole grid of tiles and zero padding marks the
  grid's border, so on the small grids of training patches every cell's prediction depends on
  the grid size; reflect padding with a per-cell norm removes both dependences (the
  grid-size-robust row).
* ``final_activation``: ``"tanh"`` (translation) or ``"none"``.

Output mapping: residual -> ``noisy - m``; not residual with tanh -> ``(m + 1) / 2`` (tanh's
[-1, 1] onto the image range [0, 1]); not residual without tanh -> ``m``. ``m`` is the MLP
output. Outputs are not clipped.

Sizes: any H, W. The input is reflect-padded at the bottom and right to a multiple of ``k``
(each stride-2 conv of the low-res stream halves an even size exactly and the tent filter
divides a multiple of its stride exactly, so ``H' / k`` rows come out) and the output is
cropped back.

Interface (shared by the project's denoisers): ``model(noisy, sigma=None) -> denoised``, with
``noisy`` (B, C, H, W) in [0, 1] plus noise (not clipped) and ``sigma`` None or a (B,) tensor
of noise levels in 0..255 units (ignored by blind variants).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from lib.models.lowres import LOWRES_NORMS, LOWRES_PADDINGS, TileGeometry, lowres_stages, split_tile
from lib.models.pixelwise import is_power_of_two, mlp_channels, mlp_param_count, pe_channels, pixelwise_mlp
from lib.models.pixelwise import positional_encoding as tile_positional_encoding

__all__ = [
    "ASAPNetDenoiser",
    "ASAPNetDenoiseConfig",
    "VARIANTS",
    "variant_config",
    "complexity",
]

PATCH = 3  # side of the neighbourhood of the "patch3" context
PIXEL_RANGE = 255.0  # sigma is given in 0..255 units (docs/design.md#denoising-protocol)
CONTEXTS = ("none", "patch3", "conv")
FINAL_ACTIVATIONS = ("tanh", "none")


@dataclass(frozen=True)
class ASAPNetDenoiseConfig(TileGeometry):
    """ASAPNet denoiser; the defaults are the plain transfer (ablation row "plain").

    Paper values (ASAPNet Cityscapes setting, docs/design.md#models) are kept for ``tile_size`` (16),
    ``positional_encoding`` (cosine), ``final_activation`` (tanh) and ``init_gain`` (0.02). The
    widths and depths are ours, reduced so that a model trains on a 2-core CPU in about 15
    minutes: paper ``lr_width`` 64, ``lr_max_width`` 1024, ``lr_depth`` 7, ``hr_width`` 64,
    ``hr_depth`` 5.

    Attributes:
        in_channels: image channels, 1 gray or 3 color (also the output channels).
        tile_size: k, pixels per tile side; a power of two >= 2 (paper: 16 at 256 px height).
        learned_ds_factor: part of ``k`` done by learned stride-2 convs, a power of two dividing
            ``k``; the rest ``k / learned_ds_factor`` is the fixed tent filter (official:
            learned_ds_factor). ``None``: ``min(k, 16)`` (:func:`lib.models.lowres.split_tile`,
            the rule of the translation model): all of ``k`` for the tiles used here (the
            official Cityscapes setting, where learned_ds_factor = k = 16).
        lr_width: channels of the stem and the strided convs (ours; paper 64).
        lr_max_width: channels of the last strided conv and the plain blocks (ours; paper 1024).
        lr_depth: conv-IN-ReLU blocks at ``lr_max_width`` (ours; paper 7).
        hr_width: hidden width of the per-pixel MLP (ours; paper 64).
        hr_depth: linear layers of the per-pixel MLP (ours; paper 5).
        positional_encoding: append the cosine encoding of the position inside the tile
            (``4 log2 k`` channels) to the MLP input (paper: hr_coor=cosine).
        residual: predict the noise, ``out = noisy - mlp(...)``.
        context: MLP input from the noisy image: "none" (the pixel), "patch3" (its 3x3
            neighbourhood, ``9 C`` channels) or "conv" (the pixel + conv front-end features).
        context_width: channels of the "conv" front-end.
        context_layers: conv3x3 + ReLU layers of the "conv" front-end.
        noise_level_input: non-blind: a constant ``sigma / 255`` channel to both streams.
        final_activation: last MLP activation, "tanh" or "none".
        init_gain: xavier-normal gain of the low-res stream convs (official: init_variance).
        lr_padding: padding of the low-res stream's 3x3 convs, "zeros" (official) or "reflect".
        lr_norm: normalisation after each low-res conv: "instance" (official instanceaffine),
            "cell" (:class:`lib.models.lowres.CellNorm`: each cell over its channels, affine) or
            "none" (a per-channel scale and shift only, :class:`lib.models.lowres.ChannelAffine`).
    """

    in_channels: int = 1  # gray (DnCNN protocol); 3 for color
    tile_size: int = 16  # sec. 3: k = 16 (Cityscapes 256x512)
    learned_ds_factor: int | None = None  # official: learned_ds_factor = 16 = k; None: min(k, 16)
    lr_width: int = 32  # ours (official lr_width 64)
    lr_max_width: int = 128  # ours (official lr_max_width 1024)
    lr_depth: int = 3  # ours (official lr_depth 7)
    hr_width: int = 32  # ours (official hr_width 64)
    hr_depth: int = 3  # ours (official hr_depth 5)
    positional_encoding: bool = True  # sec. 3.1 (official hr_coor=cosine)
    residual: bool = False  # plain transfer predicts the image
    context: Literal["none", "patch3", "conv"] = "none"  # plain transfer: the pixel alone
    context_width: int = 16  # ours: a light front-end
    context_layers: int = 2  # ours: receptive field 5x5
    noise_level_input: bool = False  # blind (DnCNN-B protocol)
    final_activation: Literal["tanh", "none"] = "tanh"  # official: tanh on the MLP output
    init_gain: float = 0.02  # official: init_variance (xavier)
    lr_padding: Literal["zeros", "reflect"] = "zeros"  # official: zero padding
    lr_norm: Literal["instance", "cell", "none"] = "instance"  # official: norm_G instanceaffine

    def __post_init__(self) -> None:
        for name in ("in_channels", "lr_width", "lr_max_width", "hr_width", "hr_depth",
                     "context_width", "context_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.lr_depth < 0:
            raise ValueError(f"lr_depth={self.lr_depth} must be >= 0")
        if self.tile_size < 2 or not is_power_of_two(self.tile_size):
            raise ValueError(f"tile_size={self.tile_size} must be a power of two >= 2")
        split_tile(self.tile_size, self.learned_ds_factor)
        if self.context not in CONTEXTS:
            raise ValueError(f"context={self.context!r} must be one of {CONTEXTS}")
        if self.lr_padding not in LOWRES_PADDINGS:
            raise ValueError(f"lr_padding={self.lr_padding!r} must be one of {LOWRES_PADDINGS}")
        if self.lr_norm not in LOWRES_NORMS:
            raise ValueError(f"lr_norm={self.lr_norm!r} must be one of {LOWRES_NORMS}")
        if self.final_activation not in FINAL_ACTIVATIONS:
            raise ValueError(f"final_activation={self.final_activation!r} must be one of {FINAL_ACTIVATIONS}")
        if not (isinstance(self.init_gain, (int, float)) and self.init_gain > 0 and math.isfinite(self.init_gain)):
            raise ValueError(f"init_gain={self.init_gain} must be a finite number > 0")

    @property
    def lowres_in_channels(self) -> int:
        """Input channels of the low-res stream: image (+ noise level)."""
        return self.in_channels + int(self.noise_level_input)

    @property
    def pixel_channels(self) -> int:
        """Channels the MLP takes from the noisy image: C, 9 C (patch3) or C + context_width (conv)."""
        if self.context == "patch3":
            return PATCH * PATCH * self.in_channels
        if self.context == "conv":
            return self.in_channels + self.context_width
        return self.in_channels

    @property
    def mlp_in_channels(self) -> int:
        """Input channels of the per-pixel MLP: pixel features (+ noise level) (+ encoding)."""
        pe = pe_channels(self.tile_size) if self.positional_encoding else 0
        return self.pixel_channels + int(self.noise_level_input) + pe

    @property
    def mlp_channels(self) -> list[int]:
        """Layer widths of the per-pixel MLP, input first."""
        return mlp_channels(self.mlp_in_channels, self.hr_width, self.hr_depth, self.in_channels)

    @property
    def num_mlp_params(self) -> int:
        """Predicted parameters per tile."""
        return mlp_param_count(self.mlp_in_channels, self.hr_width, self.hr_depth, self.in_channels)


# Ablation rows, in order. Each value is the complete set of overrides of the row (not a
# delta), so a row can be built on its own; the main chain is
#   plain -> residual -> context_patch -> small_tiles -> noise_level
# and the side rows replace one change of the chain: context_conv (the conv front-end instead
# of the 3x3 neighbourhood), tiny_tiles (k = 4 instead of 8); grid_robust changes context_conv's
# low-res stream so that it does not depend on the size of the grid of tiles (and is meant to be
# trained on several patch sides, train_denoiser's patch_sizes).
_RESIDUAL = dict(residual=True, final_activation="none")
VARIANTS: dict[str, dict] = {
    "plain": dict(),  # the pixel + PE, direct output, tanh mapped to [0, 1]
    "residual": dict(_RESIDUAL),  # + predict the noise, no tanh
    "context_patch": dict(_RESIDUAL, context="patch3"),  # + 3x3 neighbourhood of the noisy pixel
    "context_conv": dict(_RESIDUAL, context="conv"),  # side row: 2-layer conv front-end instead
    "small_tiles": dict(_RESIDUAL, context="patch3", tile_size=8),  # + k = 8
    "tiny_tiles": dict(_RESIDUAL, context="patch3", tile_size=4),  # side row: k = 4
    "noise_level": dict(_RESIDUAL, context="patch3", tile_size=8, noise_level_input=True),  # + sigma input
    "grid_robust": dict(_RESIDUAL, context="conv", lr_padding="reflect", lr_norm="cell"),  # context_conv, grid-free
}


def variant_config(name: str, in_channels: int = 1, **overrides) -> ASAPNetDenoiseConfig:
    """The config of an ablation row of :data:`VARIANTS`.

    Args:
        name: a key of :data:`VARIANTS`.
        in_channels: 1 gray, 3 color.
        **overrides: further fields written over the row (e.g. smaller widths for tests).

    Raises:
        KeyError: unknown ``name`` (lists the known names).
        ValueError: an invalid field value (names the field).
    """
    if name not in VARIANTS:
        raise KeyError(f"unknown ASAPNet-denoise variant {name!r}; known: {', '.join(VARIANTS)}")
    return replace(ASAPNetDenoiseConfig(in_channels=in_channels), **{**VARIANTS[name], **overrides})


class ASAPNetDenoiser(nn.Module):
    """ASAPNet denoiser: per-tile MLP parameters predicted from the noisy image at low resolution.

    Args:
        cfg: the configuration (``None``: the defaults, row "plain").
    """

    def __init__(self, cfg: ASAPNetDenoiseConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or ASAPNetDenoiseConfig()
        self.cfg = cfg
        self.downsample, self.lowres = lowres_stages(cfg, padding=cfg.lr_padding, norm=cfg.lr_norm)
        if cfg.context == "conv":
            layers: list[nn.Module] = []
            c = cfg.in_channels
            for _ in range(cfg.context_layers):
                layers += [nn.Conv2d(c, cfg.context_width, 3, padding=1, padding_mode="reflect"), nn.ReLU()]
                c = cfg.context_width
            self.context = nn.Sequential(*layers)
            for m in self.context.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")  # He init, as DnCNN
                    nn.init.zeros_(m.bias)
        else:
            self.context = None

    def noise_level_map(self, sigma: Tensor | float | None, like: Tensor) -> Tensor | None:
        """The constant ``sigma / 255`` channel, (B, 1, H, W) like ``like``; None for blind models.

        Raises:
            ValueError: a non-blind model got no sigma, or sigma is not a scalar or (B,).
        """
        if not self.cfg.noise_level_input:
            return None
        if sigma is None:
            raise ValueError("this model has noise_level_input=True: pass sigma (B,) in 0..255 units")
        b, _, h, w = like.shape
        s = torch.as_tensor(sigma, device=like.device, dtype=like.dtype)
        if s.ndim == 0:
            s = s.expand(b)  # (B,)
        if s.shape != (b,):
            raise ValueError(f"sigma must be a scalar or of shape ({b},), got {tuple(s.shape)}")
        return (s / PIXEL_RANGE).view(b, 1, 1, 1).expand(b, 1, h, w)  # (B, 1, H, W)

    def pixel_features(self, x: Tensor) -> Tensor:
        """What the MLP sees of the (padded) noisy image, (B, C, H, W) -> (B, pixel_channels, H, W)."""
        b, c, h, w = x.shape
        if self.cfg.context == "patch3":
            r = PATCH // 2
            cols = F.unfold(F.pad(x, (r, r, r, r), mode="reflect"), PATCH)  # (B, C*9, H*W), channel-major
            return cols.view(b, c * PATCH * PATCH, h, w)  # (B, 9C, H, W)
        if self.cfg.context == "conv":
            return torch.cat([x, self.context(x)], dim=1)  # (B, C + context_width, H, W)
        return x

    def forward(self, noisy: Tensor, sigma: Tensor | float | None = None) -> Tensor:
        """Denoises a batch.

        Args:
            noisy: (B, C, H, W) images in [0, 1] plus noise (not clipped); any H, W.
            sigma: (B,) noise levels in 0..255 units (or a scalar); required when
                ``noise_level_input``, ignored otherwise (blind).

        Returns:
            (B, C, H, W) denoised images, not clipped.
        """
        cfg = self.cfg
        b, c, h, w = noisy.shape
        if c != cfg.in_channels:
            raise ValueError(f"input has {c} channels, the model was built with in_channels={cfg.in_channels}")
        k = cfg.tile_size
        x = _pad_to_multiple(noisy, k)  # (B, C, H', W'), H' and W' multiples of k
        hp, wp = x.shape[-2:]
        if cfg.lr_norm == "instance" and hp * wp == k * k:
            raise ValueError(
                f"input size {(h, w)} gives a single {k}x{k} tile; the low-res stream's instance norm "
                f"needs a grid of more than one tile (H * W > {k * k} after padding to multiples of {k})"
            )
        if cfg.lr_padding == "reflect" and min(hp, wp) < 2 * k:
            raise ValueError(
                f"input size {(h, w)} gives a grid of {hp // k}x{wp // k} tiles; reflect padding in the "
                f"low-res stream needs at least 2 tiles per side (H and W > {k})"
            )
        level = self.noise_level_map(sigma, x)  # (B, 1, H', W') or None
        extra = [] if level is None else [level]
        lowres_in = torch.cat([x, *extra], dim=1)  # (B, C (+1), H', W')
        params = self.lowres(self.downsample(lowres_in))  # (B, P, H'/k, W'/k)
        mlp_in = [self.pixel_features(x), *extra]
        if cfg.positional_encoding:
            pe = tile_positional_encoding(k, x.device, x.dtype)  # (C_pe, k, k)
            pe = pe.repeat(1, hp // k, wp // k)  # (C_pe, H', W')
            mlp_in.append(pe.expand(b, -1, -1, -1))  # (B, C_pe, H', W')
        out = pixelwise_mlp(
            torch.cat(mlp_in, dim=1),  # (B, mlp_in_channels, H', W')
            params,
            k,
            width=cfg.hr_width,
            depth=cfg.hr_depth,
            out_channels=c,
            final_activation=cfg.final_activation,
        )  # (B, C, H', W')
        out = out[..., :h, :w]  # (B, C, H, W)
        if cfg.residual:
            return noisy - out
        if cfg.final_activation == "tanh":
            return (out + 1) / 2  # tanh's [-1, 1] onto [0, 1]
        return out


def _pad_to_multiple(x: Tensor, m: int) -> Tensor:
    """Pads the bottom and right of (B, C, H, W) to multiples of ``m`` (reflect; replicate when
    the image is too small to reflect)."""
    h, w = x.shape[-2:]
    ph, pw = -h % m, -w % m
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)  # (B, C, H + ph, W + pw)


def complexity(cfg: ASAPNetDenoiseConfig, height: int, width: int) -> dict:
    """Parameter count and multiply-accumulates of one forward pass on a 1 x C x height x width image.

    MACs = FLOPs / 2, FLOPs counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix
    products and convolutions; element-wise ops, normalisation and activations are not
    counted). The model runs on the meta device: nothing is computed or allocated.

    Args:
        cfg: the configuration.
        height: image height (any, padding included in the count).
        width: image width.

    Returns:
        ``dict(params=int, gmacs=float)``.
    """
    with torch.device("meta"):
        model = ASAPNetDenoiser(cfg)
        x = torch.empty(1, cfg.in_channels, height, width)
        sigma = torch.full((1,), 25.0) if cfg.noise_level_input else None
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x, sigma)
    params = sum(p.numel() for p in model.parameters())
    return dict(params=int(params), gmacs=counter.get_total_flops() / 2 / 1e9)
