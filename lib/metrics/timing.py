"""Timing protocol: how one forward pass is timed and its peak memory measured, the same for every model.

Protocol (docs/design.md#timing-protocol): forward only, inputs already on the device, eval
mode, ``torch.inference_mode()``, ``warmup`` untimed runs, then each run timed on its own (CUDA
events with a synchronize after each run on GPU, ``time.perf_counter`` on CPU); the median and
90th percentile are reported with batch, shape, dtype, threads, device and torch version.
The label -> photo workload timed with it is :mod:`lib.translation.workload`, the stage grid
:mod:`lib.translation.timing`.
"""
from __future__ import annotations

import math
import os
import resource
import threading
import time
from typing import Callable

import numpy as np
import torch

from lib.device import resolve_device, sync
from lib.models.complexity import count_params

__all__ = ["time_forward", "peak_memory", "time_model", "runs_for", "TIMING_PROTOCOL", "PAPER_FIG1_MS"]

# Paper Fig. 1 (GPU, digitised; docs/design.md#timing-protocol): generator time in ms at square sizes (side in px).
PAPER_FIG1_MS = {
    "asapnet": {256: 9, 512: 14, 1024: 35, 2048: 130},
    "pix2pixhd": {256: 20, 512: 61, 1024: 166, 2048: 682},
    "spade": {512: 94, 1024: 359},
}


TIMING_PROTOCOL = (
    "Generator only: batch 1, random weights (time does not depend on their values), a random label map "
    "with 8x8-pixel regions as one-hot input (+ its edge map where the model takes instance edges), "
    "inputs already on the device, eval mode, torch.inference_mode(); the first forward measures peak "
    "memory and counts as the first warm-up; then warm-up runs and `runs` timed runs, each timed on its "
    "own (CUDA events + synchronize on GPU, perf_counter on CPU); median and 90th percentile. "
    "runs = clamp(ceil(cell_budget_s / first forward), min_runs, max_runs). A cell whose forward is "
    "predicted to exceed its setting's max_forward_s (from its MACs and the same model's measured MAC "
    "rate at the next smaller size of the same setting), or whose first forward exceeds it, is skipped "
    "and recorded with the predicted time. End to end: read the label PNG, one-hot on the device, "
    "forward, copy back, write the PNG. CPU peak memory: resident-set increase during one forward "
    "(a lower bound in a process that ran larger models before)."
)


def time_forward(
    fn: Callable[[], object],
    *,
    device,
    warmup: int = 3,
    runs: int = 20,
    min_seconds: float = 0.0,
) -> dict:
    """Times ``fn()`` (one forward pass) repeatedly under ``torch.inference_mode()``.

    On CUDA each run is bracketed by ``torch.cuda.Event(enable_timing=True)`` records on the
    current stream and followed by a synchronize; elsewhere ``time.perf_counter`` is read
    around ``fn()`` (after a device synchronize for non-CPU backends). Runs continue past
    ``runs`` until the timed total reaches ``min_seconds``.

    Statistics over the per-run times t_i (ms): median, 25th, 75th and 90th percentiles (linear
    interpolation, ``np.percentile``), mean, std (ddof=0), min, max.

    Args:
        fn: a zero-argument callable running one forward pass.
        device: the device ``fn`` runs on (``str`` or ``torch.device``).
        warmup: untimed runs first.
        runs: timed runs, at least 1.
        min_seconds: keep timing until the timed total reaches this.

    Returns:
        ``{"median_ms", "q25_ms", "q75_ms", "p90_ms", "mean_ms", "std_ms", "min_ms", "max_ms": float,
        "runs": int, "warmup": int, "device": str, "timer": "cuda_event" | "perf_counter"}``.
    """
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    times_ms: list[float] = []
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        sync(dev)
        total = 0.0
        while len(times_ms) < runs or total < min_seconds * 1e3:
            if cuda:
                with torch.cuda.device(dev):
                    start = torch.cuda.Event(enable_timing=True)
                    end = torch.cuda.Event(enable_timing=True)
                    start.record()
                    fn()
                    end.record()
                    end.synchronize()
                    ms = float(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                sync(dev)
                ms = (time.perf_counter() - t0) * 1e3
            times_ms.append(ms)
            total += ms
    t = np.asarray(times_ms)
    return {
        "median_ms": float(np.median(t)),
        "q25_ms": float(np.percentile(t, 25)),  # interquartile range: the run-to-run spread
        "q75_ms": float(np.percentile(t, 75)),
        "p90_ms": float(np.percentile(t, 90)),
        "mean_ms": float(t.mean()),
        "std_ms": float(t.std()),
        "min_ms": float(t.min()),
        "max_ms": float(t.max()),
        "runs": int(t.size),
        "warmup": int(warmup),
        "device": str(dev),
        "timer": "cuda_event" if cuda else "perf_counter",
    }


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def peak_memory(fn: Callable[[], object], device, *, interval_s: float = 0.001) -> int | None:
    """Peak memory of one call of ``fn()`` (under ``torch.inference_mode()``), in bytes.

    CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``: the peak of
    tensor memory held by PyTorch's allocator during the call, in absolute terms (it includes
    the weights and inputs already on the device; allocator cache and CUDA context excluded).

    CPU: an approximate peak *increase* of the process resident set size over its value
    before the call, ``max(sampled - before, ru_maxrss_after - ru_maxrss_before)``, where
    ``sampled`` is read from ``/proc/self/statm`` every ``interval_s`` by a thread during the
    call (PyTorch releases the GIL in its kernels). Both are lower bounds: sampling can miss
    short spikes, and ``ru_maxrss`` is a process high-water mark that only grows, so it counts
    nothing below an earlier peak. Returns ``None`` where neither source exists.

    Args:
        fn: a zero-argument callable running one forward pass.
        device: the device ``fn`` runs on.
        interval_s: CPU sampling interval.

    Returns:
        Bytes, or ``None`` when it cannot be measured.
    """
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        with torch.inference_mode():
            fn()
        torch.cuda.synchronize(dev)
        return int(torch.cuda.max_memory_allocated(dev))
    if dev.type != "cpu":
        return None

    before = _rss_bytes()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    peak = [before or 0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss = _rss_bytes()
            if rss is not None and rss > peak[0]:
                peak[0] = rss
            stop.wait(interval_s)

    sampler = threading.Thread(target=sample, daemon=True) if before is not None else None
    if sampler is not None:
        sampler.start()
    try:
        with torch.inference_mode():
            fn()
    finally:
        stop.set()
        if sampler is not None:
            sampler.join()
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rusage_increase = (maxrss_after - maxrss_before) * 1024  # KiB -> bytes
    sampled_increase = peak[0] - before if before is not None else 0
    return int(max(rusage_increase, sampled_increase, 0))


def time_model(
    model: torch.nn.Module,
    inputs: tuple,
    device,
    warmup: int = 3,
    runs: int = 20,
    *,
    min_seconds: float = 0.0,
) -> dict:
    """Times ``model(*inputs)`` (generator forward only) by :func:`time_forward`.

    The model is put in eval mode for the timing and its previous mode restored afterwards.
    Inputs must already be on ``device`` (host-to-device copies are not timed).

    Args:
        model: the module to time.
        inputs: positional inputs of ``model``; tensors must be on ``device``.
        device: the device (``str`` or ``torch.device``).
        warmup: untimed runs.
        runs: timed runs.
        min_seconds: see :func:`time_forward`.

    Returns:
        The :func:`time_forward` dict plus ``model`` (class name), ``params`` (count),
        ``batch`` (first dim of the first tensor input), ``shape`` (its shape, list),
        ``dtype`` (its dtype, str), ``input_shapes`` (list of lists, ``None`` for non-tensors),
        ``threads``, ``torch_version``.

    Raises:
        ValueError: an input tensor or a parameter is not on ``device``.
    """
    dev = resolve_device(device)
    if not isinstance(inputs, tuple):
        raise TypeError(f"inputs must be a tuple, got {type(inputs).__name__}")
    tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
    for i, x in enumerate(inputs):
        if isinstance(x, torch.Tensor) and x.device.type != dev.type:
            raise ValueError(f"input {i} is on {x.device}, not on {dev}: move inputs before timing")
    for name, p in model.named_parameters():
        if p.device.type != dev.type:
            raise ValueError(f"parameter {name} is on {p.device}, not on {dev}")
    was_training = model.training
    model.eval()
    try:
        result = time_forward(lambda: model(*inputs), device=dev, warmup=warmup, runs=runs, min_seconds=min_seconds)
    finally:
        model.train(was_training)
    first = tensors[0] if tensors else None
    result.update(
        {
            "model": type(model).__name__,
            "params": count_params(model),
            "batch": int(first.shape[0]) if first is not None and first.ndim > 0 else None,
            "shape": list(first.shape) if first is not None else None,
            "dtype": str(first.dtype).replace("torch.", "") if first is not None else None,
            "input_shapes": [list(x.shape) if isinstance(x, torch.Tensor) else None for x in inputs],
            "threads": torch.get_num_threads(),
            "torch_version": torch.__version__,
        }
    )
    return result


def runs_for(first_ms: float, cell_budget_s: float, min_runs: int, max_runs: int) -> int:
    """Timed runs of a cell: ``clamp(ceil(cell_budget_s / first forward), min_runs, max_runs)``."""
    if first_ms <= 0:
        return max_runs
    return int(min(max(math.ceil(cell_budget_s * 1e3 / first_ms), min_runs), max_runs))
