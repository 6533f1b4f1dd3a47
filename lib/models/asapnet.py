"""ASAPNet generator: spatially-adaptive pixelwise MLPs (Shaham, Gharbi, Zhang, Shechtman,
Michaeli, "Spatially-Adaptive Pixelwise Networks for Fast Image Translation", CVPR 2021, sec. 3).

A convolutional *low-res stream* sees the input at full resolution, reduces it by the tile
size ``k = height / 16`` (a fixed tent-filter downsampling by ``k / learned_ds_factor``, then
``log2(learned_ds_factor)`` learned stride-2 convs; :func:`split_tile` is the rule, shared with
the denoising family) and predicts, for every cell of the low-res grid, the parameters of a
small MLP. The *high-res stream* applies, to every pixel, the MLP of
the tile that contains it (nearest "upsampling" of the parameters = tiling), with the one-hot
labels and a cosine positional encoding as input (sec. 3.1-3.2).

State-dict keys (see :mod:`lib.models.official` for the official ones)::

    lowres.stem.conv.weight, lowres.stem.norm.{weight,bias}
    lowres.down.{i}.conv.weight, lowres.down.{i}.norm.{weight,bias}
    lowres.blocks.{j}.conv.weight, lowres.blocks.{j}.norm.{weight,bias}
    lowres.head.{weight,bias}
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lib.models.layers import check_instance_edge, generator_input, init_conv_xavier_
from lib.models.pixelwise import (
    OUT_CHANNELS,
    conv3x3_onehot,
    is_power_of_two,
    mlp_channels,
    mlp_param_count,
    onehot_to_ids,
    pe_channels,
    pixelwise_mlp_fast,
    pixelwise_mlp_reference,
    positional_encoding,
    positional_encoding_factors,
    reflect_index,
)

__all__ = ["ASAPNetGenerator", "ASAPNetConfig", "LowResStream", "TentDownsample", "TileGeometry", "split_tile",
           "LOWRES_ROWS", "LEARNED_DS_DEFAULT"]

LOWRES_ROWS = 16  # sec. 3: the low-res grid has 16 rows (official: crop_size // (16 * aspect_ratio))
KERNEL = 3  # official: 3x3 convs in the low-res stream
PADDING = 1  # official: zero padding 1 (reflection_pad=False)
LEARNED_DS_DEFAULT = 16  # official: learned_ds_factor = 16 (the whole tile at 256 px height, sec. 4)
Impl = Literal["fast", "reference"]  # the two implementations of the generator's forward


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


@dataclass(frozen=True)
class ASAPNetConfig(TileGeometry):
    """ASAPNet generator; defaults are the Cityscapes 256x512 setting of the paper.

    Attributes:
        label_nc: number of one-hot label channels (official: label_nc; 35 on Cityscapes).
        use_instance_edge: whether an instance-edge channel is given; it feeds the low-res
            stream only (official: no_instance_edge=False with lr_instance=True).
        height: image height the model is built for; tile size ``k = height / 16`` (sec. 3).
        lr_width: channels of the stem and the strided convs (official: lr_width).
        lr_max_width: channels of the last strided conv and the plain blocks (official: lr_max_width).
        lr_depth: number of conv-IN-ReLU blocks at ``lr_max_width`` (official: lr_depth).
        learned_ds_factor: part of ``k`` done by learned stride-2 convs (official: learned_ds_factor,
            S2 in sec. 3.2); the rest ``k / learned_ds_factor`` is a fixed tent filter. ``None``:
            ``min(k, 16)`` (:func:`split_tile`; the official default 16 at 256 px height and above).
        hr_width: hidden width of the pixelwise MLP (official: hr_width).
        hr_depth: number of linear layers of the MLP (official: hr_depth).
        hr_coor: positional encoding of the MLP input, "cosine" or "none" (official: hr_coor).
        init_gain: xavier-normal gain of the conv weights (official: init_variance with
            init_type=xavier).
    """

    label_nc: int = 35  # Cityscapes label ids (official: label_nc)
    use_instance_edge: bool = True  # official Cityscapes: lr_instance=True
    height: int = 256  # sec. 4: Cityscapes 256x512
    lr_width: int = 64  # official: lr_width
    lr_max_width: int = 1024  # official: lr_max_width
    lr_depth: int = 7  # official: lr_depth
    learned_ds_factor: int | None = None  # official: learned_ds_factor = 16; None: min(k, 16)
    hr_width: int = 64  # official: hr_width
    hr_depth: int = 5  # official: hr_depth
    hr_coor: Literal["cosine", "none"] = "cosine"  # official: hr_coor
    init_gain: float = 0.02  # official: init_variance (xavier)

    def __post_init__(self) -> None:
        if self.height % LOWRES_ROWS:
            raise ValueError(f"height={self.height} must be a multiple of {LOWRES_ROWS}")
        k = self.height // LOWRES_ROWS
        if not is_power_of_two(k):
            raise ValueError(f"height={self.height}: tile size k={k} must be a power of two")
        split_tile(k, self.learned_ds_factor)
        for name in ("label_nc", "lr_width", "lr_max_width", "hr_width", "hr_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.lr_depth < 0:
            raise ValueError(f"lr_depth={self.lr_depth} must be >= 0")

    @property
    def tile_size(self) -> int:
        """k: pixels per tile side (sec. 3)."""
        return self.height // LOWRES_ROWS

    @property
    def lowres_in_channels(self) -> int:
        """Input channels of the low-res stream: labels (+ instance edge)."""
        return self.label_nc + int(self.use_instance_edge)

    @property
    def mlp_in_channels(self) -> int:
        """Input channels of the pixelwise MLP: labels + positional encoding."""
        return self.label_nc + (pe_channels(self.tile_size) if self.hr_coor == "cosine" else 0)

    @property
    def mlp_channels(self) -> list[int]:
        """Layer widths of the pixelwise MLP, input first."""
        return mlp_channels(self.mlp_in_channels, self.hr_width, self.hr_depth, OUT_CHANNELS)

    @property
    def num_mlp_params(self) -> int:
        """Predicted parameters per tile (16,003 on Cityscapes)."""
        return mlp_param_count(self.mlp_in_channels, self.hr_width, self.hr_depth, OUT_CHANNELS)


class ASAPNetGenerator(nn.Module):
    """The ASAPNet generator (sec. 3): low-res parameter prediction + per-tile pixelwise MLPs.

    Args:
        cfg: the model configuration.
    """

    def __init__(self, cfg: ASAPNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.downsample = TentDownsample(cfg.fixed_factor) if cfg.fixed_factor > 1 else nn.Identity()
        self.lowres = LowResStream(
            cfg.lowres_in_channels,
            cfg.num_mlp_params,
            width=cfg.lr_width,
            max_width=cfg.lr_max_width,
            depth=cfg.lr_depth,
            learned_ds_factor=cfg.learned_factor,
            init_gain=cfg.init_gain,
        )

    def predict_params(
        self,
        label_onehot: Tensor,
        instance_edge: Tensor | None = None,
        *,
        label_ids: Tensor | None = None,
        impl: Impl = "fast",
    ) -> Tensor:
        """Runs the low-res stream.

        ``impl="reference"`` concatenates labels and edges at full resolution and runs the
        modules as they are. ``impl="fast"`` computes the same values with less work: the
        fixed tent downsampling and the concatenation happen per input (labels, edges), from
        the label ids when given (:meth:`TentDownsample.from_ids`: no pass over the one-hot
        map); without a tent stage the stem conv reads the ids (:func:`conv3x3_onehot`); the
        1x1 head is a matmul on (B, h, w, C) features, so the result is laid out channels-last
        (the layout the pixelwise MLP reads).

        Args:
            label_onehot: one-hot labels, (B, label_nc, H, W).
            instance_edge: instance edges, (B, 1, H, W), or None when the config has none.
            label_ids: optional label ids (B, H, W) equal to ``label_onehot.argmax(1)`` (fast path only).
            impl: "fast" or "reference".

        Returns:
            Per-tile MLP parameters, (B, P, H/k, W/k) (channels-last strides with ``impl="fast"``).
        """
        _check_impl(impl)
        cfg = self.cfg
        k = cfg.tile_size
        if label_onehot.shape[-2] % k or label_onehot.shape[-1] % k:
            raise ValueError(f"input size {tuple(label_onehot.shape[-2:])} is not a multiple of the tile size k={k}")
        if impl == "reference":
            x = generator_input(label_onehot, instance_edge, cfg.use_instance_edge)  # (B, C_in, H, W)
            return self.lowres(self.downsample(x))  # (B, P, H/k, W/k)
        check_instance_edge(label_onehot, instance_edge, cfg.use_instance_edge)
        edge = None if instance_edge is None else instance_edge.to(label_onehot.dtype)  # (B, 1, H, W)
        lr = self.lowres
        if isinstance(self.downsample, TentDownsample):  # per channel: downsample, then concatenate
            if label_ids is not None:
                parts = [self.downsample.from_ids(label_ids, cfg.label_nc, label_onehot.dtype)]  # (B, label_nc, H/S1, W/S1)
            else:
                parts = [self.downsample(label_onehot)]  # (B, label_nc, H/S1, W/S1)
            if edge is not None:
                parts.append(self.downsample(edge))  # (B, 1, H/S1, W/S1)
            x = lr.stem(torch.cat(parts, dim=1))  # (B, width, H/S1, W/S1)
        elif label_ids is not None:  # the stem conv on the one-hot map as a sum of gathered weights
            x = conv3x3_onehot(label_ids, cfg.label_nc, lr.stem.conv.weight, edge)  # (B, width, H, W)
            x = lr.stem.act(lr.stem.norm(x))
        else:
            x = lr.stem(generator_input(label_onehot, instance_edge, cfg.use_instance_edge))  # (B, width, H, W)
        feat = lr.blocks(lr.down(x))  # (B, C, H/k, W/k)
        head = lr.head
        weight = head.weight.view(head.out_channels, head.in_channels)  # (P, C): the 1x1 kernel
        params = F.linear(feat.permute(0, 2, 3, 1), weight, head.bias)  # (B, H/k, W/k, P)
        return params.permute(0, 3, 1, 2)  # (B, P, H/k, W/k), channels-last strides

    def mlp_input(self, label_onehot: Tensor) -> Tensor:
        """Labels and the tiled positional encoding: the pixelwise MLP input, (B, C, H, W)."""
        if self.cfg.hr_coor == "none":
            return label_onehot
        b, _, h, w = label_onehot.shape
        k = self.cfg.tile_size
        pe = positional_encoding(k, label_onehot.device, label_onehot.dtype)  # (C_pe, k, k)
        pe = pe.repeat(1, h // k, w // k)  # (C_pe, H, W)
        return torch.cat([label_onehot, pe.expand(b, -1, -1, -1)], dim=1)  # (B, label_nc + C_pe, H, W)

    def forward(
        self,
        label_onehot: Tensor,
        instance_edge: Tensor | None = None,
        *,
        label_ids: Tensor | None = None,
        impl: Impl = "fast",
    ) -> Tensor:
        """Translates a label map to an image.

        Two implementations of the same function. ``impl="reference"`` concatenates labels and
        the tiled positional encoding and runs :func:`pixelwise_mlp_reference` (per-tile
        batched matmuls over the whole image) after the plain low-res stream.
        ``impl="fast"`` (default) runs :meth:`predict_params` with ``impl="fast"`` and
        :func:`pixelwise_mlp_fast`: the first MLP layer becomes a gather of weight rows by label
        id plus a separable positional-encoding term, and the MLP runs in cache-sized chunks of
        tiles. The fast path uses label ids: ``label_ids`` when given (the caller vouches that
        they equal ``label_onehot.argmax(1)``), else :func:`onehot_to_ids` derives them when
        ``label_onehot`` is exactly one-hot; soft or otherwise non-one-hot labels take the fast
        path's dense first layer and the plain low-res stream.

        Args:
            label_onehot: one-hot labels, (B, label_nc, H, W); H and W multiples of k.
            instance_edge: instance edges, (B, 1, H, W), or None when ``use_instance_edge`` is off.
            label_ids: optional integer label ids, (B, H, W), equal to ``label_onehot.argmax(1)``.
            impl: "fast" or "reference".

        Returns:
            The image, (B, 3, H, W), in [-1, 1].
        """
        _check_impl(impl)
        cfg = self.cfg
        mlp_kw = dict(width=cfg.hr_width, depth=cfg.hr_depth, out_channels=OUT_CHANNELS)
        if impl == "reference":
            params = self.predict_params(label_onehot, instance_edge, impl="reference")  # (B, P, H/k, W/k)
            return pixelwise_mlp_reference(self.mlp_input(label_onehot), params, cfg.tile_size, **mlp_kw)
        if label_ids is not None:
            if label_ids.shape != (label_onehot.shape[0], *label_onehot.shape[-2:]):
                raise ValueError(
                    f"label_ids shape {tuple(label_ids.shape)} does not match labels {tuple(label_onehot.shape)}"
                )
            if label_ids.is_floating_point():
                raise ValueError(f"label_ids must be an integer tensor, got {label_ids.dtype}")
            lo, hi = torch.aminmax(label_ids)
            if int(lo) < 0 or int(hi) >= cfg.label_nc:
                raise ValueError(f"label ids span [{int(lo)}, {int(hi)}], outside [0, {cfg.label_nc})")
        else:
            label_ids = onehot_to_ids(label_onehot)  # (B, H, W) or None
        params = self.predict_params(label_onehot, instance_edge, label_ids=label_ids)  # (B, P, H/k, W/k)
        pe = None
        if cfg.hr_coor == "cosine":
            pe = positional_encoding_factors(cfg.tile_size, label_onehot.device, params.dtype)
        labels = label_onehot if label_ids is None else label_ids
        return pixelwise_mlp_fast(labels, params, cfg.tile_size, label_nc=cfg.label_nc, pe_factors=pe, **mlp_kw)


def _check_impl(impl: str) -> None:
    if impl not in ("fast", "reference"):
        raise ValueError(f"impl={impl!r} is not 'fast' or 'reference'")


class _ConvNormReLU(nn.Module):
    """conv3x3 (no bias: the norm removes it) -> InstanceNorm(affine) -> ReLU (official norm_G=instanceaffine)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, KERNEL, stride=stride, padding=PADDING, bias=False)
        self.norm = nn.InstanceNorm2d(c_out, affine=True)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


class LowResStream(nn.Module):
    """Convolutional low-res stream (sec. 3.2, official ``ASAPNetsLRStream``).

    conv3x3(in -> width) -> log2(learned_ds_factor) stride-2 conv3x3 (width, ..., width,
    max_width) -> ``depth`` plain conv3x3 blocks at max_width (not residual) -> conv1x1 to
    ``out_channels``. Each 3x3 conv is followed by InstanceNorm(affine) and ReLU.

    Args:
        in_channels: input channels.
        out_channels: predicted channels per low-res cell (the MLP parameter count).
        width: channels of the stem and the first strided convs.
        max_width: channels of the last strided conv and the plain blocks.
        depth: number of plain blocks.
        learned_ds_factor: total stride of the learned convs (a power of two).
        init_gain: xavier-normal gain of the conv weights (biases are zero).
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
    ) -> None:
        super().__init__()
        if not is_power_of_two(learned_ds_factor):
            raise ValueError(f"learned_ds_factor={learned_ds_factor} must be a power of two")
        n_down = int(math.log2(learned_ds_factor))
        self.stem = _ConvNormReLU(in_channels, width)
        down = []
        c = width
        for i in range(n_down):
            c_out = max_width if i == n_down - 1 else width  # official: only the last one widens
            down.append(_ConvNormReLU(c, c_out, stride=2))
            c = c_out
        self.down = nn.Sequential(*down)
        self.blocks = nn.Sequential(*[_ConvNormReLU(c, c) for _ in range(depth)])
        self.head = nn.Conv2d(c, out_channels, 1)
        init_conv_xavier_(self, init_gain)

    def features(self, x: Tensor) -> Tensor:
        """Everything but the 1x1 head: (B, C_in, H, W) -> (B, max_width, H / S2, W / S2)."""
        return self.blocks(self.down(self.stem(x)))

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H / learned_ds_factor, W / learned_ds_factor)."""
        return self.head(self.features(x))


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
