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
* ``kernel_size`` (kernel prediction, KPCN / KPN, MalleConv): the low-res stream also predicts,
  per tile, the logits of an ``s x s`` filter (softmax over the taps; one filter for all
  channels or one per channel, ``kernel_channels``) that every pixel applies to its noisy
  ``s x s`` neighbourhood (:mod:`lib.models.tile_filter`): a spatially varying weighted average.
  The MLP then sees the filtered pixel too and, residual, corrects the filtered image; with
  ``mlp=False`` the filtered image is the output.
* ``slicing`` / ``intensity_bins`` / ``guide``: how the filter weights reach the pixels:
  constant per tile (``"nearest"``, ASAPNet) or interpolated bilinearly between tile centres;
  with ``intensity_bins`` the grid also has an intensity axis, a bilateral grid sliced
  trilinearly at the pixel's guide value (HDRNet): the noisy channel mean or a binomial blur of
  it. The MLP parameters stay constant per tile.

Output mapping (``m`` the MLP output, ``base`` the filtered image with a kernel, else the noisy
image): residual -> ``base - m``; not residual with tanh -> ``(m + 1) / 2`` (tanh's [-1, 1]
onto the image range [0, 1]); not residual without tanh -> ``m``; no MLP -> the filtered image.
Outputs are not clipped.

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
from lib.models.tile_filter import GUIDES, SLICINGS, apply_kernels, guide_map, normalize_kernels, slice_bilateral, slice_tiles

__all__ = [
    "ASAPNetDenoiser",
    "ASAPNetDenoiseConfig",
    "VARIANTS",
    "VARIANT_BASE",
    "VARIANT_CHANGE",
    "variant_config",
    "complexity",
]

PATCH = 3  # side of the neighbourhood of the "patch3" context
PIXEL_RANGE = 255.0  # sigma is given in 0..255 units (docs/design.md#denoising-protocol)
CONTEXTS = ("none", "patch3", "conv")
FINAL_ACTIVATIONS = ("tanh", "none")
KERNEL_CHANNELS = ("shared", "per_channel")


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
        kernel_size: s, side of the predicted per-tile filter (odd >= 3; KPN: 5); 0: none.
        kernel_channels: "shared" (one filter for every channel) or "per_channel" (color).
        mlp: the per-pixel MLP; False (with a kernel): the output is the filtered image.
        slicing: filter weights per pixel: "nearest" (the tile's) or "bilinear" (between tile centres).
        intensity_bins: D, bins of a bilateral grid of filters (bilinear slicing; HDRNet: 8); 0: none.
        guide: the bilateral grid's guide: "noisy" (channel mean) or "smooth" (it blurred).
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
    kernel_size: int = 0  # ASAPNet: no filter; KPN: 5 x 5
    kernel_channels: Literal["shared", "per_channel"] = "shared"
    mlp: bool = True  # ASAPNet's per-pixel MLP
    slicing: Literal["nearest", "bilinear"] = "nearest"  # ASAPNet: constant per tile
    intensity_bins: int = 0  # HDRNet: 8
    guide: Literal["noisy", "smooth"] = "smooth"

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
        for name, allowed in (("kernel_channels", KERNEL_CHANNELS), ("slicing", SLICINGS), ("guide", GUIDES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r} must be one of {allowed}")
        if self.kernel_size != 0 and (self.kernel_size < 3 or self.kernel_size % 2 == 0):
            raise ValueError(f"kernel_size={self.kernel_size} must be 0 (no filter) or odd >= 3")
        if self.intensity_bins == 1 or self.intensity_bins < 0:
            raise ValueError(f"intensity_bins={self.intensity_bins} must be 0 (no intensity axis) or >= 2")
        if self.intensity_bins and self.slicing != "bilinear":
            raise ValueError(f"intensity_bins={self.intensity_bins} needs slicing='bilinear' (trilinear slicing)")
        if not self.kernel_size and (not self.mlp or self.slicing != "nearest"):
            raise ValueError("kernel_size=0 (no filter) needs mlp=True and slicing='nearest'")

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
        """Input channels of the per-pixel MLP: pixel features (+ filtered pixel) (+ noise level) (+ encoding)."""
        pe = pe_channels(self.tile_size) if self.positional_encoding else 0
        filtered = self.in_channels if self.kernel_size else 0
        return self.pixel_channels + filtered + int(self.noise_level_input) + pe

    @property
    def mlp_channels(self) -> list[int]:
        """Layer widths of the per-pixel MLP, input first."""
        return mlp_channels(self.mlp_in_channels, self.hr_width, self.hr_depth, self.in_channels)

    @property
    def num_mlp_params(self) -> int:
        """Predicted MLP parameters per tile (0 without the MLP)."""
        return mlp_param_count(self.mlp_in_channels, self.hr_width, self.hr_depth, self.in_channels) if self.mlp else 0

    @property
    def kernel_groups(self) -> int:
        """G: filters per pixel, one per channel or one shared."""
        return self.in_channels if self.kernel_channels == "per_channel" else 1

    @property
    def num_filter_params(self) -> int:
        """Predicted filter logits per tile: G * s^2 * max(D, 1) (0 without a kernel)."""
        return self.kernel_groups * self.kernel_size**2 * max(self.intensity_bins, 1)

    @property
    def num_lowres_params(self) -> int:
        """Channels of the low-res stream's output: filter logits, then MLP parameters."""
        return self.num_filter_params + self.num_mlp_params


# Ablation rows, in order: (name, base row, overrides, change). The overrides are the complete
# set of the row (not a delta), so a row can be built on its own; each row keeps every override
# of its base row and adds one change (the report shows per-change deltas from the base). The
# main chain is
#   plain -> residual -> context_patch -> small_tiles -> noise_level
# and side rows replace one change of the chain: context_conv (a conv front-end instead of the
# 3x3 neighbourhood), tiny_tiles (k = 4 instead of 8); grid_robust makes context_conv's low-res
# stream independent of the grid size (and is meant to be trained on several patch sides,
# train_denoiser's patch_sizes). The filtering rows (docs/design.md#models) start from residual:
#   residual -> kernel -> kernel_bilinear -> kernel_bilateral -> hybrid_kernel
# with side rows kernel_only and bilateral_only (the filter alone) and hybrid (grid_robust with
# the plain CNN's first layers as its front: on context_conv's grid-dependent low-res stream the
# MLP output only works at the training grid, 18.7 dB on full BSD68 images at sigma 25).
_RESIDUAL = dict(residual=True, final_activation="none")
_KERNEL = dict(_RESIDUAL, kernel_size=5)  # KPN's 5 x 5
_BILATERAL = dict(_KERNEL, slicing="bilinear", intensity_bins=8)  # HDRNet's 8 intensity bins
_FRONT = dict(context="conv", context_layers=3, context_width=32)  # the first 3 layers of the plain CNN 8x32
_ROWS: list[tuple[str, str | None, dict, str]] = [
    ("plain", None, dict(), "plain transfer: MLP on the noisy pixel + positional encoding, tanh output"),
    ("residual", "plain", dict(_RESIDUAL), "+ residual output (predict the noise), no tanh"),
    ("context_patch", "residual", dict(_RESIDUAL, context="patch3"),
     "+ 3x3 neighbourhood of the noisy pixel as MLP input"),
    ("context_conv", "residual", dict(_RESIDUAL, context="conv"),
     "side row: a 2-layer full-resolution conv front-end instead of the 3x3 neighbourhood"),
    ("small_tiles", "context_patch", dict(_RESIDUAL, context="patch3", tile_size=8),
     "+ tiles of 8x8 pixels instead of 16x16"),
    ("tiny_tiles", "context_patch", dict(_RESIDUAL, context="patch3", tile_size=4), "side row: tiles of 4x4 pixels"),
    ("noise_level", "small_tiles", dict(_RESIDUAL, context="patch3", tile_size=8, noise_level_input=True),
     "+ noise level as an input (non-blind)"),
    ("grid_robust", "context_conv", dict(_RESIDUAL, context="conv", lr_padding="reflect", lr_norm="cell"),
     "conv front-end, low-res stream with reflect padding and a per-cell norm (no grid-size dependence)"),
    ("kernel", "residual", dict(_KERNEL),
     "+ a predicted 5x5 softmax filter per tile on the noisy neighbourhood (KPN / MalleConv); "
     "the residual MLP corrects the filtered image"),
    ("kernel_only", "kernel", dict(_KERNEL, mlp=False), "side row: the per-tile filter alone, no MLP"),
    ("kernel_bilinear", "kernel", dict(_KERNEL, slicing="bilinear"),
     "+ filter weights interpolated bilinearly between tile centres instead of constant per tile"),
    ("kernel_bilateral", "kernel_bilinear", dict(_BILATERAL),
     "+ a bilateral grid of filters: 8 intensity bins, trilinear slicing by a blurred guide (HDRNet)"),
    ("bilateral_only", "kernel_bilateral", dict(_BILATERAL, mlp=False),
     "side row: the bilateral-grid filter alone, no MLP"),
    ("hybrid", "grid_robust", dict(_RESIDUAL, lr_padding="reflect", lr_norm="cell", **_FRONT),
     "+ the plain CNN's first layers as the front (3 conv3x3 + ReLU of 32 channels instead of 2 of 16)"),
    ("hybrid_kernel", "kernel_bilateral", dict(_BILATERAL, **_FRONT),
     "+ the plain CNN's first 3 layers (32 channels) as the MLP's front-end"),
]
VARIANTS: dict[str, dict] = {name: overrides for name, _, overrides, _ in _ROWS}
VARIANT_BASE: dict[str, str | None] = {name: base for name, base, _, _ in _ROWS}  # the row each row changes
VARIANT_CHANGE: dict[str, str] = {name: change for name, _, _, change in _ROWS}  # what it changes, in words


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
    """ASAPNet denoiser: per-tile MLP parameters (and filters) predicted from the noisy image at low resolution.

    Args:
        cfg: the configuration (``None``: the defaults, row "plain").
    """

    def __init__(self, cfg: ASAPNetDenoiseConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or ASAPNetDenoiseConfig()
        self.cfg = cfg
        self.downsample, self.lowres = lowres_stages(cfg, padding=cfg.lr_padding, norm=cfg.lr_norm,
                                                     out_channels=cfg.num_lowres_params)
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

    def filtered(self, x: Tensor, logits: Tensor) -> Tensor:
        """The predicted filters applied to the (padded) noisy image: ``x`` (B, C, H', W'),
        ``logits`` (B, G*T*D, H'/k, W'/k) -> (B, C, H', W') (:mod:`lib.models.tile_filter`)."""
        cfg = self.cfg
        b, g, taps, bins, k = x.shape[0], cfg.kernel_groups, cfg.kernel_size**2, max(cfg.intensity_bins, 1), cfg.tile_size
        weights = normalize_kernels(logits, g, taps, bins)  # (B, G*T*D, h, w) float32, sums to 1 over T
        if cfg.intensity_bins:
            grid = weights.view(b, g * taps, bins, *weights.shape[-2:])  # (B, G*T, D, h, w)
            per_pixel = slice_bilateral(grid, guide_map(x, cfg.guide), k)  # (B, G*T, H', W')
        else:
            per_pixel = slice_tiles(weights, k, cfg.slicing)  # (B, G*T, H', W')
        return apply_kernels(x, per_pixel.view(b, g, taps, *x.shape[-2:]))  # (B, C, H', W')

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
        params = self.lowres(self.downsample(lowres_in))  # (B, P_filter + P_mlp, H'/k, W'/k)
        base, filtered = noisy, []
        if cfg.kernel_size:
            smooth = self.filtered(x, params[:, : cfg.num_filter_params])  # (B, C, H', W')
            base, filtered = smooth[..., :h, :w], [smooth.to(x.dtype)]
            if not cfg.mlp:
                return base  # (B, C, H, W)
            params = params[:, cfg.num_filter_params :]  # (B, P_mlp, H'/k, W'/k)
        mlp_in = [self.pixel_features(x), *filtered, *extra]
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
            return base - out
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
