"""Label -> photo inference: the one path from label ids to uint8 images for every generator.

Used by the batch translation CLI, the evaluation's generated test sets, the training sample
grids and the end-to-end timing, so they all produce the same pixels for the same weights. The
trainer, the timing grid and the timing workload fit a generator's config to the image height
with :func:`generator_overrides`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from lib.data import generator_geometry
from lib.data.transforms import one_hot
from lib.models import config_class, make_config

__all__ = ["GENERATORS", "generator_overrides", "size_multiple", "to_uint8", "generator_inputs", "generate",
           "generate_images"]

GENERATORS = ("asapnet", "pix2pixhd", "spade")  # registry names of the label -> photo generators


def to_uint8(images: Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8: ``round((x + 1) * 127.5)`` of the clipped values."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (B, 3, H, W)
    return x.permute(0, 2, 3, 1).numpy()  # (B, H, W, 3)


def generator_inputs(
    generator: nn.Module, label_ids: Tensor, instance_edge: Tensor | None = None, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor | None]:
    """The generator's inputs from label ids: ``(one-hot (B, label_nc, H, W), edge (B, 1, H, W) | None)``.

    ``generator.cfg.label_nc`` sets the channels; where ``cfg.use_instance_edge`` is set and no
    edge map is given, an all-zero edge map is used (a label map alone has no instances).
    """
    cfg = generator.cfg
    onehot = one_hot(label_ids, cfg.label_nc).to(dtype)  # (B, label_nc, H, W)
    edge = None
    if getattr(cfg, "use_instance_edge", False):
        if instance_edge is None:
            edge = torch.zeros(label_ids.shape[0], 1, *label_ids.shape[-2:], device=label_ids.device, dtype=dtype)
        else:
            edge = instance_edge.to(device=label_ids.device, dtype=dtype)
            if edge.dim() == 3:
                edge = edge.unsqueeze(1)  # (B, H, W) -> (B, 1, H, W)
    return onehot, edge


def generate(
    generator: nn.Module, label_ids: Tensor, instance_edge: Tensor | None = None, *, impl: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """One forward of a label -> photo generator from label ids ``(B, H, W)``: ``(B, 3, H, W)`` in [-1, 1].

    ASAPNet is given the label ids, which its fast path uses (``impl`` selects ``fast`` or
    ``reference``; other generators have one implementation and accept only ``None`` or
    ``"reference"``). Call it under ``torch.inference_mode()`` for inference.
    """
    onehot, edge = generator_inputs(generator, label_ids, instance_edge, dtype)
    if type(generator).__name__ == "ASAPNetGenerator":
        impl = impl or "fast"
        if impl == "fast":
            return generator(onehot, edge, label_ids=label_ids)
        return generator(onehot, edge, impl=impl)
    if impl not in (None, "reference"):
        raise ValueError(f"impl={impl!r} applies to ASAPNet only")
    return generator(onehot, edge)


def generate_images(generator: nn.Module, label_ids: Tensor, instance_edge: Tensor | None = None) -> np.ndarray:
    """Label ids ``(B, H, W)`` -> generated images ``(B, H, W, 3)`` uint8 (inference mode, the
    generator's device).

    Raises:
        ValueError: an image with NaN or infinite values (which would otherwise be written as
            black or white pixels); names its index in the batch.
    """
    device = next(generator.parameters()).device
    with torch.inference_mode():
        fake = generate(generator, label_ids.to(device), None if instance_edge is None else instance_edge.to(device))
        finite = torch.isfinite(fake).flatten(1).all(1)  # (B,)
    if not bool(finite.all()):
        bad = [int(i) for i in torch.nonzero(~finite).flatten().tolist()]
        raise ValueError(f"the generated image has NaN or infinite values (batch item(s) {bad}); "
                         "the generator's weights or inputs are not finite")
    return to_uint8(fake)


def generator_overrides(name: str, overrides: Mapping[str, Any], size: int) -> dict:
    """The config overrides of registered generator ``name`` for images of height ``size``:
    ``overrides`` with the geometry rule applied (:func:`lib.data.generator_geometry`: ``height =
    size`` where the config has a ``height`` field, i.e. ASAPNet).

    Raises:
        ValueError: ``overrides`` sets another ``height``.
    """
    fields = {f.name for f in dataclasses.fields(config_class(name))}
    return generator_geometry(overrides, fields, size)


def size_multiple(name: str, cfg: Any) -> tuple[int, int]:
    """``(mh, mw)``: image height and width of generator ``name`` with config ``cfg`` must be
    multiples of these. ASAPNet: the tile size k (the model is built for its height, k = H / 16);
    pix2pixHD: ``2 ** n_downsampling``; SPADE: ``2 ** num_upsamplings``."""
    c = make_config(name, cfg)
    if name == "asapnet":
        return c.tile_size, c.tile_size  # sec. 3: k x k tiles
    if name == "pix2pixhd":
        return 2**c.n_downsampling, 2**c.n_downsampling  # official: n_downsample_global stride-2 convs
    if name == "spade":
        return 2**c.num_upsamplings, 2**c.num_upsamplings  # official: latent grid = size / 2**num_up
    return 1, 1
