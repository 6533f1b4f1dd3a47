"""ASAPNet generator: spatially-adaptive pixelwise MLPs (Shaham, Gharbi, Zhang, Shechtman,
Michaeli, "Spatially-Adaptive Pixelwise Networks for Fast Image Translation", CVPR 2021, sec. 3).

A convolutional *low-res stream* sees the input at full resolution, reduces it by the tile
size ``k = height / 16`` (a fixed tent-filter downsampling by ``k / learned_ds_factor``, then
``log2(learned_ds_factor)`` learned stride-2 convs; :mod:`lib.models.lowres`, shared with the
denoising family) and predicts, for every cell of the low-res grid, the parameters of a small
MLP. The *high-res stream* applies, to every pixel, the MLP of the tile that contains it (nearest "upsampling" of the parameters = tiling), with the one-hot
labels and a cosine positional encoding as input (sec. 3.1-3.2).

State-dict keys (see :mod:`lib.models.official` for the official ones)::

    lowres.stem.conv.weight, lowres.stem.norm.{weight,bias}
    lowres.down.{i}.conv.weight, lowres.down.{i}.norm.{weight,bias}
    lowres.blocks.{j}.conv.weight, lowres.blocks.{j}.norm.{weight,bias}
    lowres.head.{weight,bias}
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lib.models.layers import check_instance_edge, generator_input
from lib.models.lowres import TentDownsample, TileGeometry, lowres_stages, split_tile
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
)

__all__ = ["ASAPNetGenerator", "ASAPNetConfig", "LOWRES_ROWS"]

LOWRES_ROWS = 16  # sec. 3: the low-res grid has 16 rows (official: crop_size // (16 * aspect_ratio))
Impl = Literal["fast", "reference"]  # the two implementations of the generator's forward


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
            ``min(k, 16)`` (:func:`lib.models.lowres.split_tile`; the official default 16 at 256 px
            height and above).
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
        self.downsample, self.lowres = lowres_stages(cfg)  # zero padding, instance norm (official)

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
