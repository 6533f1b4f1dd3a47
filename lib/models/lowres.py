"""The low-res stream of ASAPNet (Shaham et al., CVPR 2021, sec. 3.2), shared by the translation
generator (:mod:`lib.models.asapnet`) and the denoiser (:mod:`lib.models.asapnet_denoise`).

The tile size ``k = S2 * S1`` is reduced in two parts (:func:`split_tile`): a fixed tent filter by
``S1`` (:class:`TentDownsample`, official ``MySeparableBilinearDownsample``), then ``log2(S2)``
learned stride-2 convs in :class:`LowResStream` (official ``ASAPNetsLRStream``), which ends in a
1x1 conv predicting the per-tile MLP parameters. :func:`lowres_stages` builds both from a config.
The stream's padding and norm are constructor arguments: zero padding and instance norm are
ASAPNet's; reflect padding and a per-cell norm (:class:`CellNorm`) make a cell's prediction
independent of the size of the grid (the denoising study's grid-robust variant).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lib.models.layers import init_conv_xavier_
from lib.models.pixelwise import is_power_of_two, reflect_index

__all__ = [
    "LowResStream",
    "TentDownsample",
    "CellNorm",
    "ChannelAffine",
    "TileGeometry",
    "split_tile",
    "lowres_stages",
    "LEARNED_DS_DEFAULT",
    "LOWRES_PADDINGS",
    "LOWRES_NORMS",
]

KERNEL = 3  # official: 3x3 convs in the low-res stream
PADDING = 1  # official: padding 1 (zeros; reflection_pad=False)
LEARNED_DS_DEFAULT = 16  # official: learned_ds_factor = 16 (the whole tile at 256 px height, sec. 4)
LOWRES_PADDINGS = ("zeros", "reflect")  # padding of the 3x3 convs; official: zeros
LOWRES_NORMS = ("instance", "cell", "none")  # norm after each 3x3 conv; official: instance (instanceaffine)
CELL_NORM_EPS = 1e-5  # as InstanceNorm2d's default eps


def split_tile(tile_size: int, learned_ds_factor: int | None = None) -> tuple[int, int]:
    """The two parts of the tile size ``k = S2 * S1`` (sec. 3.2): ``(S2, S1)``, S2 done by the
    learned stride-2 convs, S1 by the fixed tent filter (1: none).

    Args:
        tile_size: k, a power of two.
        learned_ds_factor: S2; ``None`` derives ``min(k, 16)`` (the official default 16, all of a
            smaller tile).

    Raises:
        ValueError: ``learned_ds_factor`` is not a power of two dividing k (names it).
    """
    learned = min(tile_size, LEARNED_DS_DEFAULT) if learned_ds_factor is None else learned_ds_factor
    if not is_power_of_two(learned) or tile_size % learned:
        raise ValueError(
            f"learned_ds_factor={learned_ds_factor} must be a power of two dividing the tile size k={tile_size}"
        )
    return learned, tile_size // learned


class TileGeometry:
    """The tile split of an ASAPNet config (translation and denoising): needs the config's
    ``tile_size`` and ``learned_ds_factor`` (``None``: derived, :func:`split_tile`)."""

    tile_size: int
    learned_ds_factor: int | None

    @property
    def learned_factor(self) -> int:
        """S2: downsampling done by learned stride-2 convs (sec. 3.2)."""
        return split_tile(self.tile_size, self.learned_ds_factor)[0]

    @property
    def fixed_factor(self) -> int:
        """S1: downsampling done by the fixed tent filter (sec. 3.2); 1 for none."""
        return split_tile(self.tile_size, self.learned_ds_factor)[1]


class _ConvNormReLU(nn.Module):
    """conv3x3 (no bias: the norm removes it) -> norm -> ReLU (official: zero padding, norm_G=instanceaffine)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, padding: str = "zeros", norm: str = "instance") -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, KERNEL, stride=stride, padding=PADDING, padding_mode=padding, bias=False)
        self.norm = _norm(norm, c_out)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


def _norm(kind: str, channels: int) -> nn.Module:
    """A low-res norm by name (:data:`LOWRES_NORMS`); each has ``weight`` and ``bias`` of shape
    (C,), so the state-dict layout is the same for every choice."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return CellNorm(channels) if kind == "cell" else ChannelAffine(channels)


class LowResStream(nn.Module):
    """Convolutional low-res stream (sec. 3.2, official ``ASAPNetsLRStream``).

    conv3x3(in -> width) -> log2(learned_ds_factor) stride-2 conv3x3 (width, ..., width,
    max_width) -> ``depth`` plain conv3x3 blocks at max_width (not residual) -> conv1x1 to
    ``out_channels``. Each 3x3 conv is followed by ``norm`` and ReLU.

    Args:
        in_channels: input channels.
        out_channels: predicted channels per low-res cell (the MLP parameter count).
        width: channels of the stem and the first strided convs.
        max_width: channels of the last strided conv and the plain blocks.
        depth: number of plain blocks.
        learned_ds_factor: total stride of the learned convs (a power of two).
        init_gain: xavier-normal gain of the conv weights (biases are zero).
        padding: padding mode of the 3x3 convs, "zeros" (official) or "reflect".
        norm: norm after each 3x3 conv: "instance" (official InstanceNorm2d(affine)), "cell"
            (:class:`CellNorm`) or "none" (:class:`ChannelAffine`: a scale and shift only).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int = 64,
        max_width: int = 1024,
        depth: int = 7,
        learned_ds_factor: int = 16,
        init_gain: float = 0.02,
        padding: str = "zeros",
        norm: str = "instance",
    ) -> None:
        super().__init__()
        if not is_power_of_two(learned_ds_factor):
            raise ValueError(f"learned_ds_factor={learned_ds_factor} must be a power of two")
        if padding not in LOWRES_PADDINGS:
            raise ValueError(f"padding={padding!r} must be one of {LOWRES_PADDINGS}")
        if norm not in LOWRES_NORMS:
            raise ValueError(f"norm={norm!r} must be one of {LOWRES_NORMS}")
        n_down = int(math.log2(learned_ds_factor))
        layer = dict(padding=padding, norm=norm)
        self.stem = _ConvNormReLU(in_channels, width, **layer)
        down = []
        c = width
        for i in range(n_down):
            c_out = max_width if i == n_down - 1 else width  # official: only the last one widens
            down.append(_ConvNormReLU(c, c_out, stride=2, **layer))
            c = c_out
        self.down = nn.Sequential(*down)
        self.blocks = nn.Sequential(*[_ConvNormReLU(c, c, **layer) for _ in range(depth)])
        self.head = nn.Conv2d(c, out_channels, 1)
        init_conv_xavier_(self, init_gain)

    def features(self, x: Tensor) -> Tensor:
        """Everything but the 1x1 head: (B, C_in, H, W) -> (B, max_width, H / S2, W / S2)."""
        return self.blocks(self.down(self.stem(x)))

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H / learned_ds_factor, W / learned_ds_factor)."""
        return self.head(self.features(x))


def lowres_stages(
    cfg: Any, padding: str = "zeros", norm: str = "instance", out_channels: int | None = None
) -> tuple[nn.Module, LowResStream]:
    """The fixed tent stage (``nn.Identity`` when S1 = 1) and the low-res stream of an ASAPNet
    config, translation or denoising: a :class:`TileGeometry` with ``lowres_in_channels``,
    ``num_mlp_params``, ``lr_width``, ``lr_max_width``, ``lr_depth`` and ``init_gain``.

    Args:
        cfg: the model config.
        padding: the stream's conv padding (:data:`LOWRES_PADDINGS`).
        norm: the stream's norm (:data:`LOWRES_NORMS`).
        out_channels: parameters predicted per cell; ``None``: ``cfg.num_mlp_params`` (the MLP's
            alone; the denoiser's kernel-prediction head predicts filter weights too).

    Returns:
        ``(downsample, lowres)``: (B, C_in, H, W) -> (B, C_in, H / S1, W / S1) -> (B, P, H / k, W / k).
    """
    downsample = TentDownsample(cfg.fixed_factor) if cfg.fixed_factor > 1 else nn.Identity()
    lowres = LowResStream(
        cfg.lowres_in_channels,
        cfg.num_mlp_params if out_channels is None else out_channels,
        width=cfg.lr_width,
        max_width=cfg.lr_max_width,
        depth=cfg.lr_depth,
        learned_ds_factor=cfg.learned_factor,
        init_gain=cfg.init_gain,
        padding=padding,
        norm=norm,
    )
    return downsample, lowres


class CellNorm(nn.Module):
    """Normalises each cell (pixel of the low-res grid) over its channels, then a per-channel
    scale and shift: nothing is averaged over the grid, so a cell's output does not depend on
    the grid's size. (B, C, H, W) -> (B, C, H, W).

    Args:
        channels: C.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))  # same names and shapes as InstanceNorm2d(affine)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, CELL_NORM_EPS)  # (B, H, W, C)
        return y.permute(0, 3, 1, 2)  # (B, C, H, W), channels-last in memory


class ChannelAffine(nn.Module):
    """A per-channel scale and shift, no normalisation (the low-res convs have no bias, so this
    gives them one). (B, C, H, W) -> (B, C, H, W).

    Args:
        channels: C.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)  # (1, C, 1, 1) broadcast


class TentDownsample(nn.Module):
    """Fixed separable bilinear (tent) downsampling by an integer ``stride`` (official
    ``MySeparableBilinearDownsample``).

    The 1-D kernel is ``[1, 3, ..., 2s-1, 2s-1, ..., 3, 1] / (2 s^2)`` (length 2s, sum 1);
    the input is reflect-padded by ``s // 2`` and filtered along x then y with stride s.

    Args:
        stride: the downsampling factor s >= 2.
    """

    def __init__(self, stride: int) -> None:
        super().__init__()
        if stride < 2:
            raise ValueError(f"stride={stride} must be >= 2")
        self.stride = stride
        ramp = torch.arange(1, 2 * stride, 2, dtype=torch.float32)  # (s,): 1, 3, ..., 2s-1
        kernel = torch.cat([ramp, ramp.flip(0)])  # (2s,)
        self.register_buffer("kernel", kernel / kernel.sum(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H/s, W/s)."""
        c = x.shape[1]
        s = self.stride
        k = self.kernel.to(x.dtype)
        kx = k.view(1, 1, 1, 2 * s).expand(c, 1, 1, 2 * s).contiguous()  # (C, 1, 1, 2s)
        ky = k.view(1, 1, 2 * s, 1).expand(c, 1, 2 * s, 1).contiguous()  # (C, 1, 2s, 1)
        p = s // 2  # official: ReflectionPad2d(int(stride / 2))
        x = F.pad(x, (p, p, p, p), mode="reflect")
        x = F.conv2d(x, kx, stride=(1, s), groups=c)
        return F.conv2d(x, ky, stride=(s, 1), groups=c)

    def from_ids(self, ids: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """``forward(one_hot(ids))`` without building the one-hot map: a weighted histogram.

        After reflect padding by ``p = s/2`` the padded map splits into blocks of s x s pixels;
        output cell (i, j) sees the blocks (i, j), (i+1, j), (i, j+1), (i+1, j+1), a block pixel
        at offset (q, r) with weight ``k[dy s + q] k[dx s + r]`` (dy, dx = 0 for block i, 1 for
        i+1). So each of the four block shifts adds its weights at (class, i, j) with one
        ``scatter_add_``. The weights are dyadic rationals: the sums are exact, in any order.

        Args:
            ids: integer label ids, (B, H, W), in [0, num_classes); H, W multiples of s.
            num_classes: C.
            dtype: dtype of the result (accumulated in float32).

        Returns:
            (B, C, H/s, W/s).
        """
        b, hh, ww = ids.shape
        s, p = self.stride, self.stride // 2
        ho, wo = hh // s, ww // s
        if ho * s != hh or wo * s != ww:
            raise ValueError(f"label map size {(hh, ww)} is not a multiple of the stride {s}")
        dev = ids.device
        padded = ids[:, reflect_index(hh, p, dev)][:, :, reflect_index(ww, p, dev)]  # (B, H+s, W+s)
        cell = (
            torch.arange(b, device=dev).view(b, 1, 1) * (num_classes * ho * wo)
            + torch.arange(ho, device=dev).repeat_interleave(s).view(1, hh, 1) * wo
            + torch.arange(wo, device=dev).repeat_interleave(s).view(1, 1, ww)
        )  # (B, H, W): flat index of the pixel's cell at class 0
        kernel = self.kernel.float()
        out = torch.zeros(b * num_classes * ho * wo, device=dev, dtype=torch.float32)
        for dy in (0, 1):
            ky = kernel[dy * s : (dy + 1) * s].repeat(ho).view(1, hh, 1)  # (1, H, 1): row weights
            for dx in (0, 1):
                kx = kernel[dx * s : (dx + 1) * s].repeat(wo).view(1, 1, ww)  # (1, 1, W): column weights
                shifted = padded[:, dy * s : dy * s + hh, dx * s : dx * s + ww]  # (B, H, W)
                index = cell + shifted * (ho * wo)  # (B, H, W): flat index of (b, class, i, j)
                out.scatter_add_(0, index.reshape(-1), (ky * kx).expand(b, hh, ww).reshape(-1))
        return out.view(b, num_classes, ho, wo).to(dtype)  # (B, C, H/s, W/s)
