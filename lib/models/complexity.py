"""Model cost: parameter counts, multiply-accumulates (MACs) and tensor memory, the one counter every stage uses.

MACs are FLOPs / 2 as counted by ``torch.utils.flop_counter.FlopCounterMode``: convolutions
and matrix products; element-wise operations, normalisation, interpolation and gathers count
0. Counting on the meta device builds the model without memory and computes nothing.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

__all__ = ["count_params", "count_macs", "macs_on_meta", "params_on_meta", "complexity", "peak_tensor_bytes"]


def count_params(module: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``module``."""
    return int(sum(p.numel() for p in module.parameters()))


def count_macs(fn: Callable[[], object]) -> int:
    """MACs of one call of ``fn()`` (runs it once, under ``inference_mode``)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        fn()
    return int(counter.get_total_flops() // 2)


def _meta_cfg(name: str, cfg: Mapping[str, Any] | Any) -> Mapping[str, Any] | Any:
    # SPADE's spectral-norm parametrisation runs neither on meta nor under FlopCounterMode; in
    # eval mode it adds only a matrix-vector product per conv (not counted anyway)
    if name == "spade" and isinstance(cfg, Mapping):
        return {**cfg, "spectral_norm": False}
    return cfg


def params_on_meta(name: str, cfg: Mapping[str, Any] | Any = None, trainable_only: bool = False) -> int:
    """Parameters of registered model ``name`` with ``cfg``, built on the meta device (only those
    that train, ``requires_grad``, with ``trainable_only``: not a frozen backbone)."""
    from lib.models import build

    with torch.device("meta"):
        model = build(name, cfg)
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad)) if trainable_only else count_params(model)


def macs_on_meta(
    name: str, cfg: Mapping[str, Any] | Any, input_shapes: Sequence[Sequence[int] | None], **forward_kwargs: Any
) -> int | None:
    """MACs of one forward of registered model ``name`` on zero inputs of ``input_shapes``
    (``None`` passes ``None``), on the meta device; None where the forward needs real values
    (e.g. ASAPNet's fast path checks its label ids)."""
    from lib.models import build

    try:
        with torch.device("meta"):
            model = build(name, _meta_cfg(name, cfg)).eval()
            inputs = [None if s is None else torch.zeros(*s) for s in input_shapes]
        return count_macs(lambda: model(*inputs, **forward_kwargs))
    except (RuntimeError, NotImplementedError, TypeError, ValueError, AttributeError):
        return None


def complexity(
    name: str, cfg: Mapping[str, Any] | Any, input_shapes: Sequence[Sequence[int] | None], **forward_kwargs: Any
) -> dict:
    """``dict(params=int, gmacs=float | None)`` of registered model ``name`` for one forward on
    inputs of ``input_shapes`` (see :func:`macs_on_meta`)."""
    macs = macs_on_meta(name, cfg, input_shapes, **forward_kwargs)
    return {"params": params_on_meta(name, cfg), "gmacs": None if macs is None else macs / 1e9}


def peak_tensor_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes of the tensors created during one call of ``fn()`` and alive at once (under
    ``inference_mode``): a deterministic measure of a forward pass's working memory, without the
    allocator's caching. Storages shared by views count once; inputs and weights do not count.
    """
    import weakref

    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class _LiveBytes(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.holders: dict[int, int] = {}  # storage address -> live tensors seen holding it
            self.sizes: dict[int, int] = {}  # storage address -> bytes
            self.live = 0
            self.peak = 0

        def _release(self, key: int) -> None:
            self.holders[key] -= 1
            if self.holders[key] == 0:
                self.live -= self.sizes.pop(key)
                del self.holders[key]

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_flatten(out)[0]:
                if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                    continue
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key not in self.sizes:
                    self.sizes[key] = storage.nbytes()
                    self.holders[key] = 0
                    self.live += self.sizes[key]
                    self.peak = max(self.peak, self.live)
                self.holders[key] += 1
                weakref.finalize(t, self._release, key)
            return out

    tracker = _LiveBytes()
    with torch.inference_mode(), tracker:
        fn()
    return int(tracker.peak)
