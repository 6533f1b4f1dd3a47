"""Official generator checkpoints -> this project's state-dict keys (ASAPNet sec. 4 compares
with the released models).

**ASAPNet** (tamarott/ASAPNet, ``netG`` = ``ASAPNetsGenerator``, default options: zero padding,
``norm_G=instanceaffine`` so the 3x3 convs have no bias). Only the low-res stream has
parameters; it is one ``nn.Sequential`` named ``lowres_stream.model``, whose entries alternate
``Sequential(conv, InstanceNorm)`` and ReLU, then ``ASAPNetsBlock``s, then the 1x1 conv:

==========================================  ==========================================
official                                    ours
==========================================  ==========================================
lowres_stream.model.0.0.weight              lowres.stem.conv.weight
lowres_stream.model.0.1.{weight,bias}       lowres.stem.norm.{weight,bias}
lowres_stream.model.{2+2i}.0.weight         lowres.down.{i}.conv.weight   (i < log2 S2)
lowres_stream.model.{2+2i}.1.{weight,bias}  lowres.down.{i}.norm.{weight,bias}
lowres_stream.model.{b+j}.conv_block.0.0.*  lowres.blocks.{j}.conv.*      (b = 2 + 2 log2 S2)
lowres_stream.model.{b+j}.conv_block.0.1.*  lowres.blocks.{j}.norm.*      (j < lr_depth)
lowres_stream.model.{b+lr_depth}.*          lowres.head.*
==========================================  ==========================================

**pix2pixHD** (NVIDIA/pix2pixHD, ``netG='global'`` = ``GlobalGenerator``): one
``nn.Sequential`` named ``model``: ``[pad, conv7, norm, ReLU]``, ``n_downsampling`` times
``[conv, norm, ReLU]``, ``n_blocks`` ``ResnetBlock`` (``conv_block`` = pad, conv, norm, ReLU,
pad, conv, norm), ``n_downsampling`` times ``[convT, norm, ReLU]``, ``[pad, conv7, tanh]``:

==================================  ==================================
official                            ours
==================================  ==================================
model.1.* / model.2.*               stem.1.* / stem.2.* (norm)
model.{4+3i}.* / model.{5+3i}.*     down.{i}.0.* / down.{i}.1.*
model.{b+j}.conv_block.{n}.*        blocks.{j}.body.{n}.*   (b = 4 + 3 n_downsampling)
model.{u+3i}.* / model.{u+3i+1}.*   up.{i}.0.* / up.{i}.1.* (u = b + n_blocks)
model.{u+3 n_downsampling+1}.*      head.1.*
==================================  ==================================

A leading ``module.`` (``DataParallel``) is removed. Keys that fit no row raise ``KeyError``.
"""
from __future__ import annotations

import re
from typing import Mapping

from torch import Tensor

__all__ = ["convert_official_asapnet", "convert_official_pix2pixhd"]

_ASAP_KEY = re.compile(r"^lowres_stream\.model\.(\d+)\.(.+)$")
_P2P_KEY = re.compile(r"^model\.(\d+)\.(.+)$")


def _strip_module(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state_dict.items()}


def convert_official_asapnet(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Maps an official ASAPNet generator state dict to :class:`~lib.models.asapnet.ASAPNetGenerator` keys.

    Args:
        state_dict: ``netG`` state dict saved by tamarott/ASAPNet (default padding and norm).

    Returns:
        A state dict for ``ASAPNetGenerator.load_state_dict(strict=True)`` (same tensors).

    Raises:
        KeyError: a key is not of the official low-res stream layout (the key is named).
    """
    sd = _strip_module(state_dict)
    parsed: dict[int, dict[str, Tensor]] = {}
    for key, value in sd.items():
        m = _ASAP_KEY.match(key)
        if m is None:
            raise KeyError(f"not an official ASAPNet generator key: {key!r}")
        parsed.setdefault(int(m.group(1)), {})[m.group(2)] = value
    if not parsed:
        raise KeyError("empty ASAPNet state dict")
    head = max(parsed)
    blocks = sorted(i for i, sub in parsed.items() if any(r.startswith("conv_block.") for r in sub))
    down = sorted(set(parsed) - set(blocks) - {0, head})
    if 0 not in parsed or down != list(range(2, 2 + 2 * len(down), 2)):
        raise KeyError(f"unexpected ASAPNet low-res layer indices {sorted(parsed)} (only zero padding is supported)")
    first_block = 2 + 2 * len(down)
    if blocks != list(range(first_block, first_block + len(blocks))) or head != first_block + len(blocks):
        raise KeyError(f"unexpected ASAPNet low-res layer indices {sorted(parsed)} (only zero padding is supported)")

    def conv_norm(idx: int, sub: Mapping[str, Tensor], ours: str, prefix: str = "") -> dict[str, Tensor]:
        out = {}
        for rest, v in sub.items():
            if rest.startswith(prefix + "0."):
                out[f"{ours}.conv.{rest[len(prefix) + 2:]}"] = v
            elif rest.startswith(prefix + "1."):
                out[f"{ours}.norm.{rest[len(prefix) + 2:]}"] = v
            else:
                raise KeyError(f"not an official ASAPNet generator key: 'lowres_stream.model.{idx}.{rest}'")
        return out

    out: dict[str, Tensor] = {}
    out.update(conv_norm(0, parsed[0], "lowres.stem"))
    for i, idx in enumerate(down):
        out.update(conv_norm(idx, parsed[idx], f"lowres.down.{i}"))
    for j, idx in enumerate(blocks):
        out.update(conv_norm(idx, parsed[idx], f"lowres.blocks.{j}", prefix="conv_block.0."))
    for rest, v in parsed[head].items():
        if rest not in ("weight", "bias"):
            raise KeyError(f"not an official ASAPNet generator key: 'lowres_stream.model.{head}.{rest}'")
        out[f"lowres.head.{rest}"] = v
    return out


def convert_official_pix2pixhd(
    state_dict: Mapping[str, Tensor], n_downsampling: int | None = None
) -> dict[str, Tensor]:
    """Maps an official pix2pixHD global generator state dict to :class:`~lib.models.pix2pixhd.GlobalGenerator` keys.

    Args:
        state_dict: ``netG`` state dict saved by NVIDIA/pix2pixHD with ``netG='global'``.
        n_downsampling: official ``n_downsample_global``; inferred from the first residual
            block's index when None (needs ``n_blocks_global >= 1``).

    Returns:
        A state dict for ``GlobalGenerator.load_state_dict(strict=True)`` (same tensors).

    Raises:
        KeyError: a key is not of the official global-generator layout (the key is named).
    """
    sd = _strip_module(state_dict)
    parsed: dict[int, dict[str, Tensor]] = {}
    for key, value in sd.items():
        m = _P2P_KEY.match(key)
        if m is None:
            raise KeyError(f"not an official pix2pixHD global generator key: {key!r}")
        parsed.setdefault(int(m.group(1)), {})[m.group(2)] = value
    blocks = sorted(i for i, sub in parsed.items() if any(r.startswith("conv_block.") for r in sub))
    if n_downsampling is None:
        if not blocks:
            raise KeyError("no residual block keys (model.N.conv_block.*): pass n_downsampling")
        if (blocks[0] - 4) % 3:
            raise KeyError(f"first residual block index {blocks[0]} does not fit 4 + 3 n_downsampling")
        n_downsampling = (blocks[0] - 4) // 3
    first_block = 4 + 3 * n_downsampling
    n_blocks = len(blocks)
    if blocks != list(range(first_block, first_block + n_blocks)):
        raise KeyError(f"residual block indices {blocks} are not contiguous from {first_block}")
    up0 = first_block + n_blocks
    index_map = {1: "stem.1", 2: "stem.2", up0 + 3 * n_downsampling + 1: "head.1"}
    for i in range(n_downsampling):
        index_map[4 + 3 * i] = f"down.{i}.0"
        index_map[5 + 3 * i] = f"down.{i}.1"
        index_map[up0 + 3 * i] = f"up.{i}.0"
        index_map[up0 + 3 * i + 1] = f"up.{i}.1"
    out: dict[str, Tensor] = {}
    for idx, sub in parsed.items():
        for rest, v in sub.items():
            if idx in blocks:
                if not rest.startswith("conv_block."):
                    raise KeyError(f"not an official pix2pixHD global generator key: 'model.{idx}.{rest}'")
                out[f"blocks.{idx - first_block}.body.{rest[len('conv_block.'):]}"] = v
            elif idx in index_map:
                out[f"{index_map[idx]}.{rest}"] = v
            else:
                raise KeyError(f"not an official pix2pixHD global generator key: 'model.{idx}.{rest}'")
    return out
