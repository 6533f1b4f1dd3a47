"""ASAPNet generator: spatially-adaptive pixelwise MLPs (Shaham, Gharbi, Zhang, Shechtman,
Michaeli, "Spatially-Adaptive Pixelwise Networks for Fast Image Translation", CVPR 2021, sec. 3).

A convolutional *low-res stream* sees the input at full resolution, reduces it by the tile
size ``k = height / 16`` (a fixed tent-filter downsampling by ``k / learned_ds_factor``, then
``log2(learned_ds_factor)`` learned stride-2 convs) and predicts, for every cell of the low-res
grid, the parameters of a small MLP. The *high-res stream* applies, to every pixel, the MLP of
the tile that contains it (nearest "upsampling" of the parameters = tiling), with the one-hot
labels and a cosine positional encoding as input (sec. 3.1-3.2).

Parameter layout (official ``ASAPNetsHRStream``): for each layer, ``C_out`` biases then
``C_in * C_out`` weights, the weights read row-major as a ``(C_in, C_out)`` matrix, so a layer
computes ``y = x @ W + b`` with ``x`` a row of ``C_in`` features.

Two implementations of the forward pass compute the same function (``impl=`` argument):
``"reference"`` runs the modules as written and the per-tile batched-matmul MLP
:func:`pixelwise_mlp_reference` on the concatenated labels + positional encoding;
``"fast"`` (default) uses the label ids: the first MLP layer is a gather of weight rows plus a
separable positional-encoding term, the MLP runs in cache-sized chunks of tiles
(:func:`pixelwise_mlp_fast`), the tent downsampling of the one-hot map is a weighted
histogram of the ids (:meth:`TentDownsample.from_ids`) and, without a tent stage, the stem conv
is a sum of gathered weights (:func:`conv3x3_onehot`). ``benchmarks/NOTES.md`` records what
each step saves.

State-dict keys (see :mod:`lib.models.official` for the official ones)::

    lowres.stem.conv.weight, lowres.stem.norm.{weight,bias}
    lowres.down.{i}.conv.weight, lowres.down.{i}.norm.{weight,bias}
    lowres.blocks.{j}.conv.weight, lowres.blocks.{j}.norm.{weight,bias}
    lowres.head.{weight,bias}
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ASAPNetGenerator",
    "ASAPNetConfig",
    "LowResStream",
    "TentDownsample",
    "positional_encoding",
    "pe_channels",
    "mlp_channels",
    "mlp_param_count",
    "split_mlp_params",
    "pixelwise_mlp",
    "pixelwise_mlp_reference",
    "pixelwise_mlp_fast",
    "positional_encoding_factors",
    "onehot_to_ids",
    "conv3x3_onehot",
    "generator_input",
    "init_conv_xavier_",
]

LOWRES_ROWS = 16  # sec. 3: the low-res grid has 16 rows (official: crop_size // (16 * aspect_ratio))
OUT_CHANNELS = 3  # RGB output (official: output_nc)
MLP_NEGATIVE_SLOPE = 0.01  # official: leaky_relu(out, 0.01) between MLP layers
KERNEL = 3  # official: 3x3 convs in the low-res stream
PADDING = 1  # official: zero padding 1 (reflection_pad=False)
Impl = Literal["fast", "reference"]  # the two implementations of the generator's forward
CHUNK_PIXELS = 8192  # fast MLP: pixels per chunk, so a chunk's activations stay in the CPU cache (benchmarks/NOTES.md)


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


@dataclass(frozen=True)
class ASAPNetConfig:
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
            S2 in sec. 3.2); the rest ``k / learned_ds_factor`` is a fixed tent filter.
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
    learned_ds_factor: int = 16  # official: learned_ds_factor
    hr_width: int = 64  # official: hr_width
    hr_depth: int = 5  # official: hr_depth
    hr_coor: Literal["cosine", "none"] = "cosine"  # official: hr_coor
    init_gain: float = 0.02  # official: init_variance (xavier)

    def __post_init__(self) -> None:
        if self.height % LOWRES_ROWS:
            raise ValueError(f"height={self.height} must be a multiple of {LOWRES_ROWS}")
        k = self.height // LOWRES_ROWS
        if not _is_power_of_two(k):
            raise ValueError(f"height={self.height}: tile size k={k} must be a power of two")
        if not _is_power_of_two(self.learned_ds_factor) or k % self.learned_ds_factor:
            raise ValueError(
                f"learned_ds_factor={self.learned_ds_factor} must be a power of two dividing "
                f"the tile size k={k}"
            )
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
        fixed_factor = cfg.tile_size // cfg.learned_ds_factor  # S1 in sec. 3.2
        self.downsample = TentDownsample(fixed_factor) if fixed_factor > 1 else nn.Identity()
        self.lowres = LowResStream(
            cfg.lowres_in_channels,
            cfg.num_mlp_params,
            width=cfg.lr_width,
            max_width=cfg.lr_max_width,
            depth=cfg.lr_depth,
            learned_ds_factor=cfg.learned_ds_factor,
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
        _check_instance_edge(label_onehot, instance_edge, cfg.use_instance_edge)
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
        if not _is_power_of_two(learned_ds_factor):
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
        padded = ids[:, _reflect_index(hh, p, dev)][:, :, _reflect_index(ww, p, dev)]  # (B, H+s, W+s)
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


def _reflect_index(n: int, pad: int, device: torch.device | str | None = None) -> Tensor:
    """Indices of a reflect padding (edge not repeated) of a length-n axis by ``pad``: (n + 2 pad,)."""
    i = torch.arange(-pad, n + pad, device=device).abs()  # (n + 2 pad,)
    return torch.where(i > n - 1, 2 * (n - 1) - i, i)


def conv3x3_onehot(ids: Tensor, num_classes: int, weight: Tensor, extra: Tensor | None = None) -> Tensor:
    """A 3x3 convolution (zero padding 1, stride 1, no bias) of ``cat(one_hot(ids), extra)``
    without the one-hot map: per pixel, the sum of the 9 weight columns picked by the
    neighbours' ids (one ``F.embedding_bag``; outside the image a zero row), plus the extra
    channels' 3x3 neighbourhoods times their weights (a (B H W, 9) x (9, O) matmul each).

    Args:
        ids: integer label ids, (B, H, W), in [0, num_classes).
        num_classes: C.
        weight: conv weight, (O, C + E, 3, 3).
        extra: E further input channels, (B, E, H, W), or None (E = 0).

    Returns:
        (B, O, H, W), contiguous.
    """
    b, h, w = ids.shape
    o, c_total = weight.shape[:2]
    n_extra = 0 if extra is None else extra.shape[1]
    if weight.shape[2:] != (3, 3) or c_total != num_classes + n_extra:
        raise ValueError(f"weight shape {tuple(weight.shape)} does not fit {num_classes} classes + {n_extra} channels, 3x3")
    dev, dtype = weight.device, weight.dtype
    taps = weight.permute(2, 3, 1, 0).reshape(9, c_total, o)  # (9, C+E, O): tap = 3 dy + dx
    zero_row = 9 * num_classes
    table = torch.cat([taps[:, :num_classes].reshape(zero_row, o), taps.new_zeros(1, o)])  # (9 C + 1, O)
    ids_p = F.pad(ids, (1, 1, 1, 1), value=-1)  # (B, H+2, W+2): -1 outside the image
    win = ids_p.unfold(1, 3, 1).unfold(2, 3, 1).reshape(b * h * w, 9)  # (B*H*W, 9): neighbours' ids, tap-major
    offsets = torch.arange(9, device=dev) * num_classes  # (9,): first table row of each tap
    index = torch.where(win < 0, zero_row, win + offsets)  # (B*H*W, 9)
    out = F.embedding_bag(index, table, mode="sum")  # (B*H*W, O)
    for e in range(n_extra):
        vals = F.pad(extra[:, e].to(dtype), (1, 1, 1, 1)).unfold(1, 3, 1).unfold(2, 3, 1)  # (B, H, W, 3, 3)
        out = torch.addmm(out, vals.reshape(b * h * w, 9), taps[:, num_classes + e])  # + (B*H*W, 9) x (9, O)
    out = out.view(b, h * w, o)  # (B, H*W, O)
    res = torch.empty(b, o, h * w, device=dev, dtype=dtype)  # (B, O, H*W)
    for i in range(b):  # 2-D transposing copies (much faster than a 4-D permuted copy)
        res[i].copy_(out[i].t())
    return res.view(b, o, h, w)  # (B, O, H, W)


def pe_channels(k: int) -> int:
    """Channels of the cosine positional encoding for tile size k: 4 log2(k)."""
    return 4 * int(math.log2(k))


def positional_encoding(
    k: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> Tensor:
    """Cosine positional encoding of the pixel position inside a k x k tile (sec. 3.1).

    For the periods f = k, k/2, ..., 2 (in that order) four channels:
    ``cos(2 pi (x mod f) / f)``, ``sin(2 pi (x mod f) / f)``, ``cos(2 pi (y mod f) / f)``,
    ``sin(2 pi (y mod f) / f)``, with x the column and y the row. As f divides k, the encoding
    of a pixel depends only on its position inside its tile.

    Args:
        k: the tile size, a power of two.
        device: device of the result.
        dtype: dtype of the result (computed in float32, then cast).

    Returns:
        The encoding, (4 log2 k, k, k).
    """
    if not _is_power_of_two(k):
        raise ValueError(f"tile size k={k} must be a power of two")
    pos = torch.arange(k, device=device, dtype=torch.float32)  # (k,)
    chans = []
    f = k
    while f > 1:
        phase = 2 * math.pi * torch.remainder(pos, f) / f  # (k,)
        cx = torch.cos(phase).view(1, k).expand(k, k)  # (k, k): varies along columns
        sx = torch.sin(phase).view(1, k).expand(k, k)  # (k, k)
        cy = torch.cos(phase).view(k, 1).expand(k, k)  # (k, k): varies along rows
        sy = torch.sin(phase).view(k, 1).expand(k, k)  # (k, k)
        chans += [cx, sx, cy, sy]
        f //= 2
    if not chans:
        return torch.zeros(0, k, k, device=device, dtype=dtype or torch.float32)
    return torch.stack(chans).to(dtype or torch.float32)  # (4 log2 k, k, k)


def mlp_channels(in_channels: int, width: int, depth: int, out_channels: int) -> list[int]:
    """Layer widths of a ``depth``-layer MLP: [in, width, ..., width, out] (depth + 1 entries)."""
    if depth < 1:
        raise ValueError(f"MLP depth={depth} must be >= 1")
    return [in_channels] + [width] * (depth - 1) + [out_channels]


def mlp_param_count(in_channels: int, width: int, depth: int, out_channels: int) -> int:
    """Parameters of the MLP: sum over layers of C_out (biases) + C_in * C_out (weights).

    Cityscapes (51 inputs, width 64, depth 5, 3 outputs): 16,003.
    """
    ch = mlp_channels(in_channels, width, depth, out_channels)
    return sum(co + ci * co for ci, co in zip(ch[:-1], ch[1:]))


def split_mlp_params(params: Tensor, channels: Sequence[int]) -> list[tuple[Tensor, Tensor]]:
    """Splits per-tile MLP parameters into per-layer weights and biases.

    Layout per layer (official): C_out biases, then C_in * C_out weights read row-major as a
    (C_in, C_out) matrix.

    Args:
        params: (B, P, h, w), one parameter vector per low-res cell.
        channels: layer widths, input first (see :func:`mlp_channels`).

    Returns:
        One ``(weight, bias)`` per layer, weight (B*h*w, C_in, C_out) and bias (B*h*w, 1, C_out),
        cells ordered batch-major then row-major.
    """
    b, p, h, w = params.shape
    expected = sum(co + ci * co for ci, co in zip(channels[:-1], channels[1:]))
    if p != expected:
        raise ValueError(f"params have {p} channels; MLP {list(channels)} needs {expected}")
    flat = params.permute(0, 2, 3, 1).reshape(b * h * w, p)  # (N, P), N = B*h*w
    layers = []
    idx = 0
    for ci, co in zip(channels[:-1], channels[1:]):
        bias = flat[:, idx : idx + co].reshape(-1, 1, co)  # (N, 1, C_out)
        idx += co
        weight = flat[:, idx : idx + ci * co].reshape(-1, ci, co)  # (N, C_in, C_out)
        idx += ci * co
        layers.append((weight, bias))
    return layers


def pixelwise_mlp_reference(
    x: Tensor,
    params: Tensor,
    k: int,
    width: int = 64,
    depth: int = 5,
    out_channels: int = OUT_CHANNELS,
    final_activation: Literal["tanh", "none"] = "tanh",
    negative_slope: float = MLP_NEGATIVE_SLOPE,
) -> Tensor:
    """Applies to every pixel the MLP of its k x k tile (sec. 3.1): the reference implementation.

    Tiles are the batch of small matmuls (``torch.baddbmm``) over the whole image at once:
    per-pixel weights are never materialised. This straightforward form is what
    :func:`pixelwise_mlp_fast` is tested against; :func:`pixelwise_mlp` is the same function. Hidden layers use LeakyReLU(``negative_slope``); the last layer tanh (or none).

    Args:
        x: per-pixel MLP input, (B, C_in, H, W), H = h k, W = w k.
        params: per-tile parameters, (B, P, h, w), layout as :func:`split_mlp_params`.
        k: tile size.
        width: hidden width.
        depth: number of linear layers.
        out_channels: output channels.
        final_activation: "tanh" or "none".
        negative_slope: LeakyReLU slope of the hidden layers.

    Returns:
        (B, out_channels, H, W).
    """
    b, c, hh, ww = x.shape
    h, w = hh // k, ww // k
    if h * k != hh or w * k != ww:
        raise ValueError(f"input size {(hh, ww)} is not a multiple of the tile size k={k}")
    if params.shape[0] != b or tuple(params.shape[-2:]) != (h, w):
        raise ValueError(f"params shape {tuple(params.shape)} does not match a ({b}, P, {h}, {w}) grid")
    layers = split_mlp_params(params, mlp_channels(c, width, depth, out_channels))
    out = x.reshape(b, c, h, k, w, k)  # (B, C, h, k, w, k)
    out = out.permute(0, 2, 4, 3, 5, 1).reshape(b * h * w, k * k, c)  # (B*h*w, k*k, C): pixels row-major
    for i, (weight, bias) in enumerate(layers):
        out = torch.baddbmm(bias, out, weight)  # (B*h*w, k*k, C_out)
        if i < len(layers) - 1:
            out = F.leaky_relu(out, negative_slope)
        elif final_activation == "tanh":
            out = torch.tanh(out)
        elif final_activation != "none":
            raise ValueError(f"final_activation={final_activation!r} is not 'tanh' or 'none'")
    out = out.reshape(b, h, w, k, k, out_channels)  # (B, h, w, k, k, C_out)
    return out.permute(0, 5, 1, 3, 2, 4).reshape(b, out_channels, hh, ww)  # (B, C_out, H, W)


pixelwise_mlp = pixelwise_mlp_reference  # the name other modules call; same function


def positional_encoding_factors(
    k: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> tuple[Tensor, Tensor]:
    """The cosine positional encoding as a sum of a column term and a row term.

    Every channel of :func:`positional_encoding` depends on the column x only (cos and sin of
    x) or on the row y only, so ``pe[c, y, x] = pe_x[c, x] + pe_y[c, y]`` exactly, with the
    other factor zero on each channel. A linear layer on the encoding then splits into two
    k-long tables per tile (used by :func:`pixelwise_mlp_fast`).

    Args:
        k: the tile size, a power of two.
        device: device of the result.
        dtype: dtype of the result.

    Returns:
        ``(pe_x, pe_y)``, each (4 log2 k, k).
    """
    pe = positional_encoding(k, device, dtype)  # (C_pe, k, k)
    along_x = (torch.arange(pe.shape[0], device=pe.device) % 4 < 2).view(-1, 1)  # (C_pe, 1): cos x, sin x
    zero = torch.zeros((), device=pe.device, dtype=pe.dtype)
    pe_x = torch.where(along_x, pe[:, 0, :], zero)  # (C_pe, k): row 0 of the x channels
    pe_y = torch.where(along_x, zero, pe[:, :, 0])  # (C_pe, k): column 0 of the y channels
    return pe_x, pe_y


def onehot_to_ids(label_onehot: Tensor) -> Tensor | None:
    """Label ids of an exactly one-hot map, or None when it is not one-hot.

    Candidate ids are ``round(sum_c c x_c)`` (one channel-weighted sum, a matrix-vector product:
    much cheaper than a max over the strided channel axis). The map is one-hot exactly when
    ``x[id] = 1`` at every pixel and the tensor has ``B H W`` non-zeros in all: then every
    pixel has one non-zero, and it is the 1 at ``id``.

    Args:
        label_onehot: (B, C, H, W).

    Returns:
        ``argmax_c x``, (B, H, W) int64, or None.
    """
    if label_onehot.ndim != 4 or label_onehot.shape[1] == 0 or not label_onehot.is_floating_point():
        return None
    b, c, h, w = label_onehot.shape
    ramp = torch.arange(c, device=label_onehot.device, dtype=torch.float32)  # (C,)
    weighted = torch.einsum("bchw,c->bhw", label_onehot.float(), ramp)  # (B, H, W): the id if one-hot
    ids = weighted.nan_to_num_(0.0).round_().clamp_(0, c - 1).long()  # (B, H, W)
    hit = label_onehot.gather(1, ids.unsqueeze(1))  # (B, 1, H, W): x at the candidate id
    if not bool((hit == 1).all()) or int(torch.count_nonzero(label_onehot)) != ids.numel():
        return None
    return ids


def pixelwise_mlp_fast(
    labels: Tensor,
    params: Tensor,
    k: int,
    *,
    label_nc: int | None = None,
    pe_factors: tuple[Tensor, Tensor] | None = None,
    width: int = 64,
    depth: int = 5,
    out_channels: int = OUT_CHANNELS,
    final_activation: Literal["tanh", "none"] = "tanh",
    negative_slope: float = MLP_NEGATIVE_SLOPE,
    chunk_pixels: int | None = None,
) -> Tensor:
    """The per-tile pixelwise MLP of :func:`pixelwise_mlp_reference` on labels + positional
    encoding, computed without building its input.

    The MLP input of a pixel is ``[labels, pe]`` (labels first). Its first layer,
    ``y = labels @ W_lab + pe @ W_pe + b``, is computed per tile as

    - labels given as integer ids (one-hot): ``labels @ W_lab = W_lab[id]``, a gather of weight
      rows (no multiply); labels given as features: a per-tile matmul on the label channels;
    - ``pe @ W_pe = (pe_x @ W_pe)[x] + (pe_y @ W_pe)[y]`` with ``(pe_x, pe_y)`` from
      :func:`positional_encoding_factors`: two (k, C_pe) x (C_pe, width) products per tile, added
      by broadcasting (the bias folds into the row term);

    the other layers are ``baddbmm`` (bias folded in) with in-place activations. On the CPU
    tiles are processed a few at a time (about ``chunk_pixels`` pixels) into reused buffers, so
    activations stay in cache and their memory does not grow with the image; on other devices
    one chunk holds every tile (few, large kernels). When autograd records, every layer
    allocates its output (one chunk), so the function is differentiable.

    Args:
        labels: integer label ids (B, H, W) in [0, label_nc), or label features (B, C_lab, H, W).
        params: per-tile parameters, (B, P, h, w) with H = h k, W = w k; layout of
            :func:`split_mlp_params` for ``mlp_channels(C_lab + C_pe, width, depth, out_channels)``.
        k: tile size.
        label_nc: number of label channels; required with ids, checked against features.
        pe_factors: ``(pe_x, pe_y)``, each (C_pe, k), or None for no positional encoding.
        width: hidden width.
        depth: number of linear layers.
        out_channels: output channels.
        final_activation: "tanh" or "none".
        negative_slope: LeakyReLU slope of the hidden layers.
        chunk_pixels: about how many pixels one chunk holds (at least one tile); None:
            :data:`CHUNK_PIXELS` on the CPU, the whole batch elsewhere.

    Returns:
        (B, out_channels, H, W), equal to :func:`pixelwise_mlp_reference` on the one-hot labels
        concatenated with the tiled encoding (up to float rounding).

    Raises:
        ValueError: shapes do not match, ``label_nc`` is missing, or an id is outside [0, label_nc).
    """
    if final_activation not in ("tanh", "none"):
        raise ValueError(f"final_activation={final_activation!r} is not 'tanh' or 'none'")
    use_ids = not labels.is_floating_point()
    if use_ids:
        if labels.ndim != 3:
            raise ValueError(f"label ids must be (B, H, W), got shape {tuple(labels.shape)}")
        if label_nc is None:
            raise ValueError("label_nc is required when labels are given as ids")
        b, hh, ww = labels.shape
        c_lab = label_nc
    else:
        b, c_lab, hh, ww = labels.shape
        if label_nc is not None and label_nc != c_lab:
            raise ValueError(f"labels have {c_lab} channels, label_nc={label_nc}")
    h, w = hh // k, ww // k
    if h * k != hh or w * k != ww:
        raise ValueError(f"input size {(hh, ww)} is not a multiple of the tile size k={k}")
    if params.ndim != 4 or params.shape[0] != b or tuple(params.shape[-2:]) != (h, w):
        raise ValueError(f"params shape {tuple(params.shape)} does not match a ({b}, P, {h}, {w}) grid")
    c_pe = 0
    if pe_factors is not None:
        pe_x, pe_y = pe_factors
        c_pe = pe_x.shape[0]
        if pe_x.shape != (c_pe, k) or pe_y.shape != (c_pe, k):
            raise ValueError(f"pe_factors shapes {tuple(pe_x.shape)}, {tuple(pe_y.shape)} are not ({c_pe}, {k})")
        pe_x_t = pe_x.t().to(params.dtype)  # (k, C_pe): row x = encoding of column x
        pe_y_t = pe_y.t().to(params.dtype)  # (k, C_pe): row y = encoding of row y
    channels = mlp_channels(c_lab + c_pe, width, depth, out_channels)
    expected = sum(co + ci * co for ci, co in zip(channels[:-1], channels[1:]))
    if params.shape[1] != expected:
        raise ValueError(f"params have {params.shape[1]} channels; MLP {channels} needs {expected}")
    if use_ids and labels.numel():
        lo, hi = torch.aminmax(labels)
        if int(lo) < 0 or int(hi) >= c_lab:
            raise ValueError(f"label ids span [{int(lo)}, {int(hi)}], outside [0, {c_lab})")

    dev, dtype = params.device, params.dtype
    kk, n_tiles, n_layers = k * k, b * h * w, len(channels) - 1
    # autograd cannot record into preallocated buffers: when it records, one chunk holds every
    # tile and each layer allocates its output
    record = torch.is_grad_enabled() and (params.requires_grad or labels.requires_grad)
    if chunk_pixels is None:
        chunk_pixels = CHUNK_PIXELS if dev.type == "cpu" else n_tiles * kk
    per_chunk = n_tiles if record else max(1, min(n_tiles, chunk_pixels // kk))  # tiles per chunk
    flat = params.permute(0, 2, 3, 1).reshape(n_tiles, -1)  # (N, P), N = B*h*w: no copy when params are channels-last
    if use_ids:
        tiles = labels.reshape(b, h, k, w, k).permute(0, 1, 3, 2, 4).reshape(n_tiles, kk)  # (N, k*k): pixels row-major
        offsets = torch.arange(per_chunk, device=dev).view(-1, 1) * c_lab  # (n, 1): tile t's rows in the gather table
    else:
        tiles = labels.reshape(b, c_lab, h, k, w, k).permute(0, 2, 4, 3, 5, 1).reshape(n_tiles, kk, c_lab)  # (N, k*k, C_lab)
    if record:
        bufs: list[Tensor | None] = [None] * n_layers
        pieces: list[Tensor] = []
    else:
        out_tiles = torch.empty(n_tiles, out_channels, kk, device=dev, dtype=dtype)  # (N, C_out, k*k)
        # ping-pong activation buffers, reused by every chunk; the last layer writes into out_tiles
        hidden = [torch.empty(per_chunk, kk, width, device=dev, dtype=dtype) for _ in range(min(2, n_layers - 1))]
        bufs = [hidden[i % 2] for i in range(n_layers - 1)] + [None]
        if n_layers == 1:  # the first layer is the last: it writes (n, k*k, C_out), transposed after
            bufs = [torch.empty(per_chunk, kk, out_channels, device=dev, dtype=dtype)]

    for t0 in range(0, n_tiles, per_chunk):
        n = min(per_chunk, n_tiles - t0)
        vec = flat[t0 : t0 + n]  # (n, P)
        cur = None
        idx = 0
        for li, (ci, co) in enumerate(zip(channels[:-1], channels[1:])):
            bias = vec[:, idx : idx + co].unsqueeze(1)  # (n, 1, C_out)
            idx += co
            weight = vec[:, idx : idx + ci * co].reshape(n, ci, co)  # (n, C_in, C_out)
            idx += ci * co
            if record:
                dst = None  # allocate
            elif li == n_layers - 1 and li > 0:
                dst = out_tiles[t0 : t0 + n]  # (n, C_out, k*k): transposed, see below
            else:
                dst = bufs[li][:n]  # (n, k*k, C_out)
            if li == 0:
                w_lab = weight[:, :c_lab]  # (n, C_lab, C_out)
                if use_ids:
                    rows = (tiles[t0 : t0 + n] + offsets[:n]).view(-1)  # (n*k*k,): row of W_lab in the table
                    table = w_lab.reshape(n * c_lab, co)  # (n*C_lab, C_out)
                    if dst is None:
                        cur = torch.index_select(table, 0, rows).view(n, kk, co)  # (n, k*k, C_out)
                    else:
                        torch.index_select(table, 0, rows, out=dst.view(n * kk, co))
                        cur = dst
                else:
                    x = tiles[t0 : t0 + n]  # (n, k*k, C_lab)
                    cur = torch.bmm(x, w_lab) if dst is None else torch.bmm(x, w_lab, out=dst)
                if c_pe:
                    w_pe = weight[:, c_lab:]  # (n, C_pe, C_out)
                    col_term = torch.matmul(pe_x_t, w_pe)  # (n, k, C_out): by column x
                    row_term = torch.baddbmm(bias, pe_y_t.expand(n, k, c_pe), w_pe)  # (n, k, C_out): by row y, + b
                    terms = (col_term.unsqueeze(1), row_term.unsqueeze(2))  # (n, 1, k, C_out), (n, k, 1, C_out)
                    shape = (n, k, k, co)  # (n, y, x, C_out)
                else:
                    terms, shape = (bias,), (n, kk, co)
                if dst is None:
                    cur4 = cur.view(shape)
                    for term in terms:
                        cur4 = cur4 + term
                    cur = cur4.view(n, kk, co)  # (n, k*k, C_out)
                else:
                    cur4 = cur.view(shape)
                    for term in terms:
                        cur4.add_(term)
            elif li == n_layers - 1:  # (li > 0) few outputs: (W^T h^T) keeps the long pixel axis as the matmul's N
                args = (bias.transpose(1, 2), weight.transpose(1, 2), cur.transpose(1, 2))  # (n, C_out, 1), (n, C_out, C_in), (n, C_in, k*k)
                cur = torch.baddbmm(*args) if dst is None else torch.baddbmm(*args, out=dst)  # (n, C_out, k*k)
            else:
                cur = torch.baddbmm(bias, cur, weight) if dst is None else torch.baddbmm(bias, cur, weight, out=dst)
            if li < n_layers - 1:
                cur = F.leaky_relu(cur, negative_slope) if dst is None else F.leaky_relu_(cur, negative_slope)
            elif final_activation == "tanh":
                cur = torch.tanh(cur) if dst is None else cur.tanh_()
        if n_layers == 1:
            cur = cur.transpose(1, 2)  # (n, C_out, k*k)
            if not record:
                out_tiles[t0 : t0 + n].copy_(cur)
        if record:
            pieces.append(cur)
    if record:
        out_tiles = torch.cat(pieces) if len(pieces) > 1 else pieces[0]  # (N, C_out, k*k)
    out = out_tiles.view(b, h, w, out_channels, k, k)  # (B, h, w, C_out, k, k)
    return out.permute(0, 3, 1, 4, 2, 5).reshape(b, out_channels, hh, ww)  # (B, C_out, H, W)


def generator_input(label_onehot: Tensor, instance_edge: Tensor | None, use_instance_edge: bool) -> Tensor:
    """Concatenates labels and the instance-edge channel (last), checking the config.

    Args:
        label_onehot: (B, label_nc, H, W).
        instance_edge: (B, 1, H, W) or None.
        use_instance_edge: whether the model expects the edge channel.

    Returns:
        (B, label_nc + use_instance_edge, H, W).
    """
    _check_instance_edge(label_onehot, instance_edge, use_instance_edge)
    if use_instance_edge:
        return torch.cat([label_onehot, instance_edge.to(label_onehot.dtype)], dim=1)  # (B, label_nc+1, H, W)
    return label_onehot


def _check_instance_edge(label_onehot: Tensor, instance_edge: Tensor | None, use_instance_edge: bool) -> None:
    if use_instance_edge:
        if instance_edge is None:
            raise ValueError("the model was built with use_instance_edge=True but instance_edge is None")
        if instance_edge.shape[1] != 1 or instance_edge.shape[-2:] != label_onehot.shape[-2:]:
            raise ValueError(
                f"instance_edge shape {tuple(instance_edge.shape)} does not match labels "
                f"{tuple(label_onehot.shape)} with one channel"
            )
    elif instance_edge is not None:
        raise ValueError("the model was built with use_instance_edge=False but instance_edge was given")


def init_conv_xavier_(module: nn.Module, gain: float) -> nn.Module:
    """Xavier-normal init (``gain``) of every conv/linear weight, zero biases (official init_weights)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module
