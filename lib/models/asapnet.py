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
    "generator_input",
    "init_conv_xavier_",
]

LOWRES_ROWS = 16  # sec. 3: the low-res grid has 16 rows (official: crop_size // (16 * aspect_ratio))
OUT_CHANNELS = 3  # RGB output (official: output_nc)
MLP_NEGATIVE_SLOPE = 0.01  # official: leaky_relu(out, 0.01) between MLP layers
KERNEL = 3  # official: 3x3 convs in the low-res stream
PADDING = 1  # official: zero padding 1 (reflection_pad=False)


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

    def predict_params(self, label_onehot: Tensor, instance_edge: Tensor | None = None) -> Tensor:
        """Runs the low-res stream.

        Args:
            label_onehot: one-hot labels, (B, label_nc, H, W).
            instance_edge: instance edges, (B, 1, H, W), or None when the config has none.

        Returns:
            Per-tile MLP parameters, (B, P, H/k, W/k).
        """
        x = generator_input(label_onehot, instance_edge, self.cfg.use_instance_edge)
        k = self.cfg.tile_size
        if x.shape[-2] % k or x.shape[-1] % k:
            raise ValueError(f"input size {tuple(x.shape[-2:])} is not a multiple of the tile size k={k}")
        return self.lowres(self.downsample(x))  # (B, P, H/k, W/k)

    def mlp_input(self, label_onehot: Tensor) -> Tensor:
        """Labels and the tiled positional encoding: the pixelwise MLP input, (B, C, H, W)."""
        if self.cfg.hr_coor == "none":
            return label_onehot
        b, _, h, w = label_onehot.shape
        k = self.cfg.tile_size
        pe = positional_encoding(k, label_onehot.device, label_onehot.dtype)  # (C_pe, k, k)
        pe = pe.repeat(1, h // k, w // k)  # (C_pe, H, W)
        return torch.cat([label_onehot, pe.expand(b, -1, -1, -1)], dim=1)  # (B, label_nc + C_pe, H, W)

    def forward(self, label_onehot: Tensor, instance_edge: Tensor | None = None) -> Tensor:
        """Translates a label map to an image.

        Args:
            label_onehot: one-hot labels, (B, label_nc, H, W); H and W multiples of k.
            instance_edge: instance edges, (B, 1, H, W), or None when ``use_instance_edge`` is off.

        Returns:
            The image, (B, 3, H, W), in [-1, 1].
        """
        params = self.predict_params(label_onehot, instance_edge)  # (B, P, H/k, W/k)
        return pixelwise_mlp(
            self.mlp_input(label_onehot),
            params,
            self.cfg.tile_size,
            width=self.cfg.hr_width,
            depth=self.cfg.hr_depth,
            out_channels=OUT_CHANNELS,
        )


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

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H / learned_ds_factor, W / learned_ds_factor)."""
        return self.head(self.blocks(self.down(self.stem(x))))


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


def pixelwise_mlp(
    x: Tensor,
    params: Tensor,
    k: int,
    width: int = 64,
    depth: int = 5,
    out_channels: int = OUT_CHANNELS,
    final_activation: Literal["tanh", "none"] = "tanh",
    negative_slope: float = MLP_NEGATIVE_SLOPE,
) -> Tensor:
    """Applies to every pixel the MLP of its k x k tile (sec. 3.1).

    Tiles are the batch of small matmuls (``torch.baddbmm``): per-pixel weights are never
    materialised. Hidden layers use LeakyReLU(``negative_slope``); the last layer tanh (or none).

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


def generator_input(label_onehot: Tensor, instance_edge: Tensor | None, use_instance_edge: bool) -> Tensor:
    """Concatenates labels and the instance-edge channel (last), checking the config.

    Args:
        label_onehot: (B, label_nc, H, W).
        instance_edge: (B, 1, H, W) or None.
        use_instance_edge: whether the model expects the edge channel.

    Returns:
        (B, label_nc + use_instance_edge, H, W).
    """
    if use_instance_edge:
        if instance_edge is None:
            raise ValueError("the model was built with use_instance_edge=True but instance_edge is None")
        if instance_edge.shape[1] != 1 or instance_edge.shape[-2:] != label_onehot.shape[-2:]:
            raise ValueError(
                f"instance_edge shape {tuple(instance_edge.shape)} does not match labels "
                f"{tuple(label_onehot.shape)} with one channel"
            )
        return torch.cat([label_onehot, instance_edge.to(label_onehot.dtype)], dim=1)  # (B, label_nc+1, H, W)
    if instance_edge is not None:
        raise ValueError("the model was built with use_instance_edge=False but instance_edge was given")
    return label_onehot


def init_conv_xavier_(module: nn.Module, gain: float) -> nn.Module:
    """Xavier-normal init (``gain``) of every conv/linear weight, zero biases (official init_weights)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module
