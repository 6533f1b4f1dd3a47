"""Inference timing and memory under one fixed protocol (DESIGN sec. 5).

Protocol: generator forward only, inputs already on the device, eval mode,
``torch.inference_mode()``, ``warmup`` untimed runs, then each run timed on its own (CUDA
events with a synchronize after each run on GPU, ``time.perf_counter`` on CPU); we report
the median and 90th percentile with batch, shape, dtype, threads, device and torch version.

:func:`timing_grid` applies the protocol to the grid of the ``time_translation`` stage (models x
sizes x threads settings, plus the generators as trained), with budget controls: a per-setting
limit on one forward (cells predicted to exceed it are skipped and recorded), and the number of
runs chosen from a time budget per cell.

Command line (prints JSON, see :func:`measure`)::

    python -m lib.metrics.timing --model asapnet --height 256 --width 512 --device cpu [--threads N]
        [--runs R] [--warmup W] [--dtype fp32|bf16] [--label-nc 35] [--end-to-end] [--impl fast|reference]
"""
from __future__ import annotations

import json
import math
import os
import platform
import resource
import threading
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "time_forward",
    "time_model",
    "environment_info",
    "peak_memory",
    "measure",
    "timing_config",
    "build_timing_model",
    "example_label_ids",
    "example_inputs",
    "count_macs",
    "end_to_end_fn",
    "TIMED_MODELS",
    "timing_grid",
    "plan_grid",
    "TimingSetting",
    "timing_settings",
    "check_sizes",
    "size_multiple",
    "trained_generators",
    "runs_for",
    "speedups",
    "write_timing",
    "all_cores",
    "GRID_COLUMNS",
    "TIMING_PROTOCOL",
]


def _device(device) -> torch.device:
    return device if isinstance(device, torch.device) else torch.device(device)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type != "cpu":
        backend = getattr(torch, dev.type, None)
        if backend is not None and hasattr(backend, "synchronize"):
            backend.synchronize()


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

    Statistics over the per-run times t_i (ms): median, 90th percentile (linear
    interpolation, ``np.percentile``), mean, std (ddof=0), min, max.

    Args:
        fn: a zero-argument callable running one forward pass.
        device: the device ``fn`` runs on (``str`` or ``torch.device``).
        warmup: untimed runs first.
        runs: timed runs, at least 1.
        min_seconds: keep timing until the timed total reaches this.

    Returns:
        ``{"median_ms", "p90_ms", "mean_ms", "std_ms", "min_ms", "max_ms": float,
        "runs": int, "warmup": int, "device": str, "timer": "cuda_event" | "perf_counter"}``.
    """
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    dev = _device(device)
    cuda = dev.type == "cuda"
    times_ms: list[float] = []
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        _sync(dev)
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
                _sync(dev)
                ms = (time.perf_counter() - t0) * 1e3
            times_ms.append(ms)
            total += ms
    t = np.asarray(times_ms)
    return {
        "median_ms": float(np.median(t)),
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


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment_info(device) -> dict:
    """What a timing depends on: device, library versions, threads, TF32 flags, CPU model.

    Args:
        device: the device timed (``str`` or ``torch.device``).

    Returns:
        Dict with ``device``, ``device_name`` (GPU name, or CPU model), ``torch_version``,
        ``threads`` (``torch.get_num_threads()``), ``interop_threads``, ``cpu_count``
        (CPUs this process may use), ``cpu_model``, ``cuda_available``, ``cuda_version``,
        ``cudnn_version``, ``tf32_matmul``, ``tf32_cudnn``, ``float32_matmul_precision``,
        ``python_version``, ``platform``. Unknown values are ``None``.
    """
    dev = _device(device)
    cpu_model = _cpu_model()
    try:
        cpu_count = len(os.sched_getaffinity(0))
    except AttributeError:
        cpu_count = os.cpu_count()
    cuda_available = torch.cuda.is_available()
    device_name = cpu_model
    if dev.type == "cuda" and cuda_available:
        device_name = torch.cuda.get_device_name(dev)
    try:
        cudnn_version = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except RuntimeError:
        cudnn_version = None
    with warnings.catch_warnings():  # newer torch may deprecate the allow_tf32 getters
        warnings.simplefilter("ignore")
        tf32_matmul = bool(torch.backends.cuda.matmul.allow_tf32)
        tf32_cudnn = bool(torch.backends.cudnn.allow_tf32)
    return {
        "device": str(dev),
        "device_name": device_name,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_count": cpu_count,
        "cpu_model": cpu_model,
        "cuda_available": cuda_available,
        "cuda_version": torch.version.cuda,
        "cudnn_version": cudnn_version,
        "tf32_matmul": tf32_matmul,
        "tf32_cudnn": tf32_cudnn,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
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
    dev = _device(device)
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
    dev = _device(device)
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
            "params": int(sum(p.numel() for p in model.parameters())),
            "batch": int(first.shape[0]) if first is not None and first.ndim > 0 else None,
            "shape": list(first.shape) if first is not None else None,
            "dtype": str(first.dtype).replace("torch.", "") if first is not None else None,
            "input_shapes": [list(x.shape) if isinstance(x, torch.Tensor) else None for x in inputs],
            "threads": torch.get_num_threads(),
            "torch_version": torch.__version__,
        }
    )
    return result


# ----------------------------------------------------------------------------- command line
#
# python -m lib.metrics.timing --model NAME --height H --width W --device cpu [--threads N]
#     [--runs R] [--warmup W] [--dtype fp32|bf16] [--label-nc 35] [--end-to-end] [--impl fast]
#
# prints one JSON object (see ``measure``).

TIMED_MODELS = ("asapnet", "pix2pixhd", "spade")  # label -> photo generators the CLI can build
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
LABEL_CELL = 8  # example label maps: random ids on cells of 8 x 8 pixels (regions, not noise)


def timing_config(name: str, height: int, label_nc: int = 35, overrides: dict | None = None) -> dict:
    """The generator config timed for ``name``: the registry defaults (paper values, instance
    edges on) with ``label_nc``; ASAPNet is built for ``height`` (tile size ``k = height / 16``,
    and ``learned_ds_factor = k`` when k < 16, i.e. below 256 pixels). ``overrides`` (config
    keys -> values) are applied last.

    Raises:
        KeyError: ``name`` is not one of :data:`TIMED_MODELS` (the known names are listed).
    """
    if name not in TIMED_MODELS:
        raise KeyError(f"unknown model {name!r} for timing; known: {', '.join(TIMED_MODELS)}")
    cfg: dict = {"label_nc": int(label_nc)}
    if name == "asapnet":
        cfg["height"] = int(height)
        k = int(height) // 16  # tile size (ASAPNet sec. 3)
        if 1 <= k < 16:  # below 256 px the learned part of the downsampling is the whole tile (official default 16)
            cfg["learned_ds_factor"] = k
    cfg.update(overrides or {})
    return cfg


def build_timing_model(
    name: str,
    height: int,
    *,
    label_nc: int = 35,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    overrides: dict | None = None,
) -> torch.nn.Module:
    """Builds ``name`` with :func:`timing_config` (random init, seeded), in eval mode on ``device``."""
    from lib.models import build

    torch.manual_seed(seed)
    with torch.device(_device(device)):  # initialise on the device (fast on a GPU)
        model = build(name, timing_config(name, height, label_nc, overrides))
    return model.to(dtype=dtype).eval()


def example_label_ids(height: int, width: int, *, batch: int = 1, label_nc: int = 35, seed: int = 0) -> torch.Tensor:
    """A random label map with regions: uniform ids on cells of :data:`LABEL_CELL` pixels, (B, H, W) int64."""
    g = torch.Generator().manual_seed(seed)
    c = LABEL_CELL
    coarse = torch.randint(0, label_nc, (batch, -(-height // c), -(-width // c)), generator=g)  # (B, H/c, W/c)
    ids = coarse.repeat_interleave(c, 1).repeat_interleave(c, 2)  # (B, >=H, >=W)
    return ids[:, :height, :width].contiguous()  # (B, H, W)


def example_inputs(
    model: torch.nn.Module,
    ids: torch.Tensor,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One-hot labels (B, label_nc, H, W) and, when the model uses them, instance edges
    (B, 1, H, W) taken from the label map's region boundaries, on ``device`` in ``dtype``."""
    from lib.data.cityscapes import instance_edges
    from lib.data.transforms import one_hot

    cfg = model.cfg
    dev = _device(device)
    onehot = one_hot(ids, cfg.label_nc).to(device=dev, dtype=dtype)  # (B, label_nc, H, W)
    edge = None
    if cfg.use_instance_edge:
        edge = instance_edges(ids).unsqueeze(1).to(device=dev, dtype=dtype)  # (B, 1, H, W)
    return onehot, edge


def count_macs(fn: Callable[[], object]) -> int:
    """Multiply-accumulates of one call of ``fn()``: ``torch.utils.flop_counter.FlopCounterMode``
    total FLOPs / 2 (convolutions, matmuls; a gather counts 0). Runs ``fn`` once."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        fn()
    return int(counter.get_total_flops() // 2)


def _macs_on_meta(name: str, cfg: dict, shapes: list, impl: str | None) -> int | None:
    """MACs counted on the meta device (no arithmetic runs), or None where the forward needs
    real values (the ASAPNet fast path checks its label ids)."""
    from lib.models import build

    if name == "spade":  # the spectral-norm parametrisation runs neither on meta nor under
        # FlopCounterMode; in eval mode it adds only a matrix-vector product per conv (not counted)
        cfg = {**cfg, "spectral_norm": False}
    try:
        with torch.device("meta"):
            model = build(name, cfg).eval()
            inputs = [None if s is None else torch.zeros(s) for s in shapes]
        kwargs = {"impl": impl} if impl else {}
        return count_macs(lambda: model(*inputs, **kwargs))
    except (RuntimeError, NotImplementedError, TypeError, ValueError, AttributeError):
        return None


def _forward_fn(model, name: str, impl: str | None, onehot, edge, ids=None) -> Callable[[], torch.Tensor]:
    if name == "asapnet":
        impl = impl or "fast"
        if impl == "fast" and ids is not None:
            return lambda: model(onehot, edge, label_ids=ids)
        return lambda: model(onehot, edge, impl=impl)
    if impl not in (None, "reference"):
        raise ValueError(f"impl={impl!r} applies to asapnet only")
    return lambda: model(onehot, edge)


def end_to_end_fn(
    model: torch.nn.Module,
    name: str,
    label_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    impl: str | None = None,
) -> Callable[[], None]:
    """One end-to-end translation: read the label PNG, one-hot on the device, forward, copy
    back, write the RGB PNG. Instance edges, when the model uses them, are an all-zero map
    (a label map has no instances). ASAPNet's fast path is given the label ids."""
    from lib.data.images import read_label, write_image
    from lib.data.transforms import one_hot

    dev = _device(device)
    cfg = model.cfg

    def run() -> None:
        ids = torch.from_numpy(read_label(label_path)).unsqueeze(0).to(dev)  # (1, H, W)
        onehot = one_hot(ids, cfg.label_nc).to(dtype)  # (1, label_nc, H, W)
        edge = torch.zeros(1, 1, *ids.shape[-2:], device=dev, dtype=dtype) if cfg.use_instance_edge else None
        fake = _forward_fn(model, name, impl, onehot, edge, ids)()  # (1, 3, H, W)
        img = ((fake[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (3, H, W)
        write_image(out_path, img.permute(1, 2, 0).cpu().numpy())  # (H, W, 3)

    return run


def measure(
    name: str,
    height: int,
    width: int,
    *,
    device: str | torch.device = "cpu",
    dtype: str = "fp32",
    runs: int = 20,
    warmup: int = 3,
    label_nc: int = 35,
    batch: int = 1,
    impl: str | None = None,
    end_to_end: bool = False,
    label_map: str | os.PathLike | None = None,
    macs: bool = True,
    memory: bool = True,
    seed: int = 0,
    overrides: dict | None = None,
) -> dict:
    """Times one generator under the protocol of :func:`time_forward` and describes the run.

    Order: one forward measured by :func:`peak_memory` (it also serves as the first warm-up),
    the MAC count (on the meta device where possible, else one more forward), ``warmup - 1``
    further warm-ups and ``runs`` timed runs; then, with ``end_to_end``, the end-to-end
    pipeline of :func:`end_to_end_fn` (batch 1, same warm-up and runs).

    Args:
        name: ``asapnet``, ``pix2pixhd`` or ``spade`` (:func:`timing_config`).
        height, width: image size.
        device: ``cpu``, ``cuda``, ...
        dtype: ``fp32``, ``bf16`` or ``fp16`` (model and inputs).
        runs, warmup: timed and untimed runs.
        label_nc: label channels.
        batch: images per forward (generator-only timing).
        impl: ASAPNet implementation, ``fast`` (default) or ``reference``.
        end_to_end: also time read + one-hot + forward + write.
        label_map: label PNG for the end-to-end timing (default: a random one of the size).
        macs: count MACs.
        memory: measure peak memory.
        seed: seed of the weights and of the example label map.
        overrides: config keys -> values applied over :func:`timing_config`.

    Returns:
        JSON-ready dict: ``model``, ``impl``, ``height``, ``width``, ``batch``, ``dtype``,
        ``label_nc``, the :func:`time_forward` fields (``median_ms``, ``p90_ms``, ...),
        ``params``, ``macs``, ``gmacs``, ``macs_counted_on``, ``peak_memory_bytes``,
        ``peak_memory_mib``, ``end_to_end`` (timing dict or None), ``config``, ``environment``.
    """
    import tempfile
    from pathlib import Path

    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}; known: {', '.join(DTYPES)}")
    if name != "asapnet" and impl not in (None, "reference"):
        raise ValueError(f"--impl {impl} applies to asapnet only")
    tdtype = DTYPES[dtype]
    dev = _device(device)
    cfg = timing_config(name, height, label_nc, overrides)
    model = build_timing_model(name, height, label_nc=label_nc, device=dev, dtype=tdtype, seed=seed, overrides=overrides)
    ids = example_label_ids(height, width, batch=batch, label_nc=label_nc, seed=seed)
    onehot, edge = example_inputs(model, ids, device=dev, dtype=tdtype)
    fn = _forward_fn(model, name, impl, onehot, edge)
    peak = peak_memory(fn, dev) if memory else None
    n_macs, counted_on = None, None
    if macs:
        shapes = [list(onehot.shape), None if edge is None else list(edge.shape)]
        n_macs, counted_on = _macs_on_meta(name, cfg, shapes, impl if name == "asapnet" else None), "meta"
        if n_macs is None:
            n_macs, counted_on = count_macs(fn), str(dev)
    warm = max(0, warmup - 1) if memory else warmup
    result: dict = {
        "model": name,
        "impl": (impl or "fast") if name == "asapnet" else None,
        "height": int(height),
        "width": int(width),
        "batch": int(batch),
        "dtype": dtype,
        "label_nc": int(label_nc),
    }
    result.update(time_forward(fn, device=dev, warmup=warm, runs=runs))
    result["warmup"] = int(warmup)
    result.update(
        {
            "params": int(sum(p.numel() for p in model.parameters())),
            "macs": n_macs,
            "gmacs": None if n_macs is None else n_macs / 1e9,
            "macs_counted_on": counted_on,
            "peak_memory_bytes": peak,
            "peak_memory_mib": None if peak is None else peak / 2**20,
            "peak_memory_kind": None if peak is None else ("cuda_max_allocated" if dev.type == "cuda" else "rss_increase"),
            "end_to_end": None,
        }
    )
    del onehot, edge, fn
    if end_to_end:
        from lib.data.images import write_image

        with tempfile.TemporaryDirectory(prefix="timing_e2e_") as tmp:
            if label_map is None:
                label_map = Path(tmp) / "labels.png"
                write_image(label_map, example_label_ids(height, width, label_nc=label_nc, seed=seed)[0].to(torch.uint8).numpy())
            e2e = end_to_end_fn(model, name, label_map, Path(tmp) / "out.png", device=dev, dtype=tdtype, impl=impl)
            result["end_to_end"] = time_forward(e2e, device=dev, warmup=warmup, runs=runs)
            result["end_to_end"]["label_map"] = str(label_map) if label_map != Path(tmp) / "labels.png" else "random"
    result["config"] = cfg
    result["environment"] = environment_info(dev)
    return result


# ----------------------------------------------------------------------------- timing grid
#
# The ``time_translation`` stage: every model at every size under every threads setting, one
# row per cell, with budget controls (a per-setting limit on one forward, runs chosen from a
# time budget per cell).

GRID_COLUMNS = (
    "kind", "model", "generator", "impl", "height", "width", "megapixels", "label_nc", "device", "dtype", "tf32",
    "threads_setting", "threads", "max_forward_s", "params", "gmacs", "macs_counted_on", "status", "predicted_ms",
    "first_forward_ms", "median_ms", "p90_ms", "min_ms", "mean_ms", "runs", "warmup", "timer", "peak_memory_mib",
    "peak_memory_kind", "e2e_median_ms", "e2e_p90_ms", "e2e_runs", "note", "torch_version",
)
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
DATASET_WIDTH_FACTOR = {"facades": 1, "cityscapes": 2}  # lib.data.translation_dataset: Facades square, Cityscapes H x 2H


@dataclass(frozen=True)
class TimingSetting:
    """One threads setting of the timing grid.

    Attributes:
        threads: torch intra-op threads; 0 = every core this process may use.
        max_forward_s: a cell whose forward is predicted (or first measured) to take longer is
            skipped and recorded with its predicted time; 0 = no limit.
    """

    threads: int = 0  # DESIGN sec. 5: CPU with all threads (and with 1)
    max_forward_s: float = 0.0  # not from the paper: a budget control; 0 = no limit

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ValueError(f"threads={self.threads} must be >= 0 (0 = all cores)")
        if self.max_forward_s < 0:
            raise ValueError(f"max_forward_s={self.max_forward_s} must be >= 0 (0 = no limit)")


def all_cores() -> int:
    """CPUs this process may run on (the ``threads: 0`` setting)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def timing_settings(settings: Iterable[Mapping[str, Any]], where: str = "time_translation.settings") -> tuple[TimingSetting, ...]:
    """Typed :class:`TimingSetting` from the ``settings`` list of ``params.yaml`` (strict keys).

    Raises:
        lib.config.ConfigError: an unknown key or a bad value, named as ``where[i].key``.
    """
    from lib.config import from_dict

    return tuple(from_dict(TimingSetting, s, where=f"{where}[{i}]") for i, s in enumerate(settings))


def size_multiple(name: str, cfg: Any) -> tuple[int, int]:
    """``(mh, mw)``: image height and width of generator ``name`` with config ``cfg`` must be
    multiples of these. ASAPNet: the tile size k (the model is built for its height, k = H / 16);
    pix2pixHD: ``2 ** n_downsampling``; SPADE: ``2 ** num_upsamplings``."""
    from lib.models import make_config

    c = make_config(name, cfg)
    if name == "asapnet":
        return c.tile_size, c.tile_size  # sec. 3: k x k tiles
    if name == "pix2pixhd":
        return 2**c.n_downsampling, 2**c.n_downsampling  # official: n_downsample_global stride-2 convs
    if name == "spade":
        return 2**c.num_upsamplings, 2**c.num_upsamplings  # official: latent grid = size / 2**num_up
    return 1, 1


def check_sizes(
    models: Sequence[str],
    sizes: Sequence[Sequence[int]],
    label_nc: int = 35,
    model_overrides: Mapping[str, Any] | None = None,
) -> None:
    """Checks that every model can be built and run at every size of the grid.

    Raises:
        ValueError: naming the key: ``models[i]`` (unknown model), ``model_overrides.<name>``
            (unknown or bad config key), ``sizes[i]`` (non-positive, or not a multiple of what a
            model needs, :func:`size_multiple`).
    """
    from lib.models import make_config

    overrides = dict(model_overrides or {})
    for i, name in enumerate(models):
        if name not in TIMED_MODELS:
            raise ValueError(f"models[{i}]={name!r} is not a timed model; known: {', '.join(TIMED_MODELS)}")
    for name, over in overrides.items():
        if name not in TIMED_MODELS:  # overrides of a known model not in ``models`` are unused
            raise ValueError(f"model_overrides.{name}: {name!r} is not a timed model; known: {', '.join(TIMED_MODELS)}")
        if not isinstance(over, Mapping):
            raise ValueError(f"model_overrides.{name}: expected a mapping, got {over!r}")
    for i, hw in enumerate(sizes):
        if len(hw) != 2 or any(int(v) <= 0 for v in hw):
            raise ValueError(f"sizes[{i}]={list(hw)}: expected [height, width], both > 0")
    for name in models:
        for i, (h, w) in enumerate(sizes):
            try:
                cfg = make_config(name, timing_config(name, h, label_nc, overrides.get(name)))
            except ValueError as e:  # lib.config.ConfigError is a ValueError
                where = f"model_overrides.{name}" if "unknown key" in str(e) else f"sizes[{i}]={[h, w]} ({name})"
                raise ValueError(f"{where}: {e}") from e
            mh, mw = size_multiple(name, cfg)
            if h % mh or w % mw:
                raise ValueError(f"sizes[{i}]={[h, w]}: {name} needs a height multiple of {mh} and a width multiple of {mw}")


def trained_generators(stage: Any) -> list[dict]:
    """Each generator of the ``train_translation`` stage as trained: its registry name and full
    config (``height`` = ``size`` where the config has one), image size and label count.

    Args:
        stage: the :class:`lib.stages.TranslationTrainStage`.

    Returns:
        ``[{"model": key of train_translation.models, "generator", "config", "height", "width",
        "label_nc"}, ...]``.

    Raises:
        lib.config.ConfigError: an unknown ``train_translation.dataset``.
    """
    import dataclasses

    from lib.config import ConfigError, to_dict
    from lib.models import config_class, make_config
    from lib.stages import gan_config

    if stage.dataset not in DATASET_WIDTH_FACTOR:
        raise ConfigError(f"train_translation.dataset: {stage.dataset!r} has no known image width; known: {', '.join(DATASET_WIDTH_FACTOR)}")
    out = []
    for key in stage.models:
        gc = gan_config(stage, key)
        over = dict(gc.generator_cfg)
        if "height" in {f.name for f in dataclasses.fields(config_class(gc.generator))}:
            over.setdefault("height", gc.size)  # as lib.train.gan builds it
        cfg = make_config(gc.generator, over)
        out.append({
            "model": key,
            "generator": gc.generator,
            "config": to_dict(cfg),
            "height": int(gc.size),
            "width": int(gc.size) * DATASET_WIDTH_FACTOR[stage.dataset],
            "label_nc": int(cfg.label_nc),
        })
    return out


def runs_for(first_ms: float, cell_budget_s: float, min_runs: int, max_runs: int) -> int:
    """Timed runs of a cell: ``clamp(ceil(cell_budget_s / first forward), min_runs, max_runs)``."""
    if first_ms <= 0:
        return max_runs
    return int(min(max(math.ceil(cell_budget_s * 1e3 / first_ms), min_runs), max_runs))


def _resolve_device(device: str | torch.device) -> torch.device:
    name = str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


def plan_grid(cfg: Any, trained: Sequence[Mapping[str, Any]] = (), device: str | torch.device = "cpu") -> list[dict]:
    """The cells :func:`timing_grid` runs, in order (nothing is built or timed).

    Paper-config cells: for each model, the sizes in ascending pixel count, and at each size
    every threads setting and (CUDA only) TF32 flag; so a model is built once per size, and
    each cell's prediction comes from a smaller size of the same setting. Then
    one cell per ``trained`` generator at all threads (never skipped; TF32 off on CUDA).

    Args:
        cfg: the ``time_translation`` config (:class:`lib.stages.TimeTranslationConfig`).
        trained: :func:`trained_generators` output (empty: no trained cells).
        device: the device timed (decides whether TF32 variants exist).

    Returns:
        Dicts with ``kind``, ``model``, ``generator``, ``config``, ``height``, ``width``,
        ``label_nc``, ``setting`` (index), ``threads_setting``, ``max_forward_s``, ``tf32``
        (``"off"`` / ``"on"`` on CUDA, ``"-"`` elsewhere), ``end_to_end``, ``allow_skip``.
    """
    dev = _device(device)
    settings = timing_settings(cfg.settings)
    flags = ["on" if t else "off" for t in dict.fromkeys(cfg.tf32)] if dev.type == "cuda" else ["-"]
    sizes = sorted((tuple(int(v) for v in hw) for hw in cfg.sizes), key=lambda hw: (hw[0] * hw[1], hw))
    e2e_sizes = {tuple(int(v) for v in hw) for hw in cfg.end_to_end_sizes}
    overrides = dict(cfg.model_overrides)
    cells = []
    for name in cfg.models:
        for h, w in sizes:
            for si, setting in enumerate(settings):
                for flag in flags:
                    cells.append({
                        "kind": "paper_config", "model": name, "generator": name,
                        "config": timing_config(name, h, cfg.label_nc, overrides.get(name)),
                        "height": h, "width": w, "label_nc": int(cfg.label_nc),
                        "setting": si, "threads_setting": setting.threads, "max_forward_s": setting.max_forward_s,
                        "tf32": flag, "end_to_end": bool(cfg.end_to_end and (h, w) in e2e_sizes), "allow_skip": True,
                    })
    for t in trained:
        cells.append({
            "kind": "trained", "model": t["model"], "generator": t["generator"], "config": dict(t["config"]),
            "height": int(t["height"]), "width": int(t["width"]), "label_nc": int(t["label_nc"]),
            "setting": -1, "threads_setting": 0, "max_forward_s": 0.0,
            "tf32": "off" if dev.type == "cuda" else "-", "end_to_end": False, "allow_skip": False,
        })
    return cells


def _params_on_meta(name: str, cfg: Mapping[str, Any]) -> int:
    from lib.models import build

    with torch.device("meta"):
        return int(sum(p.numel() for p in build(name, cfg).parameters()))


class _GridState:
    """What the cells of one grid share: MAC counts, measured MAC rates, the last built model."""

    def __init__(self) -> None:
        self.macs: dict[tuple, tuple[int | None, int | None, str | None]] = {}
        self.rates: dict[tuple, tuple[float, int, int]] = {}  # key -> (MACs per ms, height, width)
        self.model_key: tuple | None = None
        self.model: torch.nn.Module | None = None


def _run_cell(cell: Mapping[str, Any], cfg: Any, dev: torch.device, state: _GridState) -> dict:
    import tempfile
    from pathlib import Path

    from lib.models import build, make_config

    name, conf = cell["generator"], cell["config"]
    h, w, label_nc = cell["height"], cell["width"], cell["label_nc"]
    tdtype = DTYPES[cfg.dtype]
    impl = cfg.impl if name == "asapnet" else None
    use_edge = bool(getattr(make_config(name, conf), "use_instance_edge", False))
    shapes = [[1, label_nc, h, w], [1, 1, h, w] if use_edge else None]
    conf_key = json.dumps(conf, sort_keys=True)
    mkey = (name, conf_key, h, w, impl)
    if mkey not in state.macs:
        counted = _macs_on_meta(name, conf, shapes, impl)
        if counted is not None:
            state.macs[mkey] = (counted, counted, "meta")
        else:  # ASAPNet's fast path checks its label ids: not on meta. Predict from the reference path's MACs
            state.macs[mkey] = (_macs_on_meta(name, conf, shapes, "reference"), None, None)
    pred_macs, macs, counted_on = state.macs[mkey]
    nan = float("nan")
    row: dict[str, Any] = {c: nan for c in GRID_COLUMNS}
    row.update({
        "kind": cell["kind"], "model": cell["model"], "generator": name, "impl": impl,
        "height": h, "width": w, "megapixels": h * w / 1e6, "label_nc": label_nc, "device": str(dev),
        "dtype": cfg.dtype, "tf32": cell["tf32"], "threads_setting": cell["threads_setting"],
        "threads": torch.get_num_threads(), "max_forward_s": cell["max_forward_s"],
        "params": _params_on_meta(name, conf), "peak_memory_kind": None, "timer": None,
        "macs_counted_on": counted_on, "gmacs": nan if macs is None else macs / 1e9,
        "status": "ok", "note": "", "runs": 0, "e2e_runs": 0, "warmup": int(cfg.warmup),
        "torch_version": torch.__version__,
    })
    rkey = (cell["model"], cell["kind"], cell["setting"], cell["tf32"])
    limit_ms = cell["max_forward_s"] * 1e3
    if cell["allow_skip"] and limit_ms > 0 and rkey in state.rates and pred_macs:
        rate, rh, rw = state.rates[rkey]
        row["predicted_ms"] = pred_macs / rate
        if row["predicted_ms"] > limit_ms:
            row["status"] = "skipped"
            row["note"] = (
                f"skipped: predicted {row['predicted_ms'] / 1e3:.3g} s per forward > max_forward_s "
                f"{cell['max_forward_s']:g} s ({rate / 1e6:.3g} GMAC/s measured at {rh}x{rw})"
            )
            return row

    key = (name, conf_key, cfg.dtype, str(dev))
    if state.model_key != key:
        state.model, state.model_key = None, None  # free the previous model first
        torch.manual_seed(cfg.seed)
        with torch.device(dev):
            state.model = build(name, conf).to(dtype=tdtype).eval()
        state.model_key = key
    model = state.model
    ids = example_label_ids(h, w, label_nc=label_nc, seed=cfg.seed)  # (1, H, W)
    onehot, edge = example_inputs(model, ids, device=dev, dtype=tdtype)
    fn = _forward_fn(model, name, impl, onehot, edge)
    t0 = time.perf_counter()
    peak = peak_memory(fn, dev)  # the first forward: peak memory, first warm-up, runs estimate
    first_ms = (time.perf_counter() - t0) * 1e3
    row["first_forward_ms"] = first_ms
    row["peak_memory_mib"] = nan if peak is None else peak / 2**20
    row["peak_memory_kind"] = None if peak is None else ("cuda_max_allocated" if dev.type == "cuda" else "rss_increase")
    if cell["allow_skip"] and limit_ms > 0 and first_ms > limit_ms:
        if pred_macs:
            state.rates[rkey] = (pred_macs / first_ms, h, w)
        row.update(status="skipped", predicted_ms=first_ms,
                   note=f"skipped: first forward took {first_ms / 1e3:.3g} s > max_forward_s {cell['max_forward_s']:g} s")
        return row
    if macs is None:
        macs, counted_on = count_macs(fn), str(dev)
        state.macs[mkey] = (pred_macs, macs, counted_on)
        row.update(gmacs=macs / 1e9, macs_counted_on=counted_on)
    runs = runs_for(first_ms, cfg.cell_budget_s, cfg.min_runs, cfg.max_runs)
    t = time_forward(fn, device=dev, warmup=max(0, cfg.warmup - 1), runs=runs)
    row.update({k: t[k] for k in ("median_ms", "p90_ms", "min_ms", "mean_ms", "runs", "timer")})
    if pred_macs:
        state.rates[rkey] = (pred_macs / t["median_ms"], h, w)
    del onehot, edge, fn
    if cell["end_to_end"]:
        from lib.data.images import write_image

        if label_nc > 256:
            row["note"] = "end to end not timed: label ids above 255 do not fit an 8-bit PNG"
        else:
            with tempfile.TemporaryDirectory(prefix="timing_e2e_") as tmp:
                label_path = Path(tmp) / "labels.png"
                write_image(label_path, ids[0].to(torch.uint8).numpy())  # (H, W)
                e2e = end_to_end_fn(model, name, label_path, Path(tmp) / "out.png", device=dev, dtype=tdtype, impl=impl)
                te = time_forward(e2e, device=dev, warmup=1, runs=runs)
            row.update(e2e_median_ms=te["median_ms"], e2e_p90_ms=te["p90_ms"], e2e_runs=te["runs"])
    return row


def timing_grid(
    cfg: Any,
    trained: Sequence[Mapping[str, Any]] | None = None,
    *,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> pd.DataFrame:
    """Times every cell of the ``time_translation`` grid (:func:`plan_grid`); one row per cell.

    Per cell (protocol :data:`TIMING_PROTOCOL`): MACs counted on the meta device (free; where
    a forward cannot run on meta, ASAPNet's fast path, the reference path's MACs serve the
    prediction and the timed path's MACs are counted after the first forward); a skip check,
    ``predicted = MACs / rate`` with ``rate`` = MACs / median time of the same model at the
    largest smaller size already measured under the same setting, skipped when
    ``predicted > max_forward_s`` (no forward runs); else the first forward (peak memory,
    :func:`peak_memory`; skipped if it alone exceeds the limit), ``warmup - 1`` warm-ups and
    :func:`runs_for` timed runs (:func:`time_forward`); with ``end_to_end`` at those sizes,
    the :func:`end_to_end_fn` pipeline with 1 warm-up and the same number of runs.

    Threads are set per setting with ``torch.set_num_threads`` (0 = :func:`all_cores`) and the
    TF32 flags per cell on CUDA; both are restored afterwards. Models are rebuilt only when
    the config changes (seeded random weights).

    Args:
        cfg: the ``time_translation`` config (:class:`lib.stages.TimeTranslationConfig`).
        trained: :func:`trained_generators` output; ``None`` or empty: no trained cells.
        progress: show a tqdm progress bar.
        device: overrides ``cfg.device`` (``"auto"``: CUDA when available).

    Returns:
        A ``pandas.DataFrame`` with :data:`GRID_COLUMNS`, one row per cell, in plan order.
        ``status`` is ``"ok"`` or ``"skipped"``; a skipped row has ``predicted_ms`` and a
        ``note`` and no times.
    """
    import pandas as pd
    from tqdm import tqdm

    dev = _resolve_device(device if device is not None else cfg.device)
    cells = plan_grid(cfg, trained or (), dev)
    state = _GridState()
    rows = []
    old_threads = torch.get_num_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old_tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        bar = tqdm(cells, desc="timing", unit="cell", disable=not progress)
        for cell in bar:
            bar.set_postfix_str(f"{cell['kind']} {cell['model']} {cell['height']}x{cell['width']} threads={cell['threads_setting']}")
            torch.set_num_threads(cell["threads_setting"] or all_cores())
            if dev.type == "cuda":
                torch.backends.cuda.matmul.allow_tf32 = cell["tf32"] == "on"
                torch.backends.cudnn.allow_tf32 = cell["tf32"] == "on"
            rows.append(_run_cell(cell, cfg, dev, state))
    finally:
        state.model = None
        torch.set_num_threads(old_threads)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old_tf32
    return pd.DataFrame(rows, columns=list(GRID_COLUMNS))


SPEEDUP_KEYS = ("device", "dtype", "tf32", "threads_setting", "threads", "height", "width")


def speedups(frame: pd.DataFrame, reference: str = "asapnet") -> pd.DataFrame:
    """Speed-up of ``reference`` over each baseline, per size and setting (paper-config cells).

    ``speedup = baseline median_ms / reference median_ms`` where both were timed;
    ``predicted_speedup = baseline predicted_ms / reference median_ms`` where the baseline was
    skipped; NaN where the reference was not timed.

    Args:
        frame: :func:`timing_grid` rows.
        reference: the model whose time divides the others'.

    Returns:
        Columns ``baseline``, ``size`` (``"HxW"``), :data:`SPEEDUP_KEYS`, ``reference_ms``,
        ``baseline_ms``, ``baseline_status``, ``speedup``, ``predicted_speedup``.
    """
    import pandas as pd

    keys = list(SPEEDUP_KEYS)
    cols = ["baseline", "size", *keys, "reference_ms", "baseline_ms", "baseline_status", "speedup", "predicted_speedup"]
    paper = frame[frame["kind"] == "paper_config"]
    ref = paper[(paper["model"] == reference) & (paper["status"] == "ok")][keys + ["median_ms"]]
    ref = ref.rename(columns={"median_ms": "reference_ms"})
    base = paper[paper["model"] != reference][keys + ["model", "median_ms", "predicted_ms", "status"]]
    if base.empty:
        return pd.DataFrame(columns=cols)
    out = base.merge(ref, on=keys, how="left")
    out = out.rename(columns={"model": "baseline", "median_ms": "baseline_ms", "status": "baseline_status"})
    ok = out["baseline_status"] == "ok"
    out["speedup"] = (out["baseline_ms"] / out["reference_ms"]).where(ok)
    out["predicted_speedup"] = (out["predicted_ms"] / out["reference_ms"]).where(~ok)
    out["size"] = out["height"].astype(int).astype(str) + "x" + out["width"].astype(int).astype(str)
    return out[cols].reset_index(drop=True)


def write_timing(
    frame: pd.DataFrame, csv_path: str | os.PathLike, json_path: str | os.PathLike, meta: Mapping[str, Any]
) -> None:
    """Writes the grid as CSV (:data:`GRID_COLUMNS`) and a JSON summary, atomically.

    JSON: ``{"meta": meta, "protocol": TIMING_PROTOCOL, "speedups": [...] (:func:`speedups`),
    "skipped": [{model, kind, height, width, threads_setting, predicted_ms, note}, ...]}``.
    """
    from lib.io import write_csv, write_json

    skipped = frame[frame["status"] == "skipped"]
    cols = ["model", "kind", "height", "width", "threads_setting", "tf32", "predicted_ms", "note"]
    write_csv(csv_path, frame[list(GRID_COLUMNS)])
    write_json(json_path, {
        "meta": dict(meta),
        "protocol": TIMING_PROTOCOL,
        "speedups": speedups(frame).to_dict(orient="records"),
        "skipped": skipped[cols].to_dict(orient="records"),
    })


def _main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    import sys

    ap = argparse.ArgumentParser(
        prog="python -m lib.metrics.timing",
        description="Time one label->photo generator (generator forward only, optionally end to end); prints JSON.",
    )
    ap.add_argument("--model", required=True, choices=TIMED_MODELS)
    ap.add_argument("--height", type=int, required=True)
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    ap.add_argument("--label-nc", type=int, default=35, help="label channels (35: Cityscapes)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--impl", default=None, choices=["fast", "reference"], help="ASAPNet implementation (default fast)")
    ap.add_argument("--end-to-end", action="store_true", help="also time read PNG + one-hot + forward + write PNG")
    ap.add_argument("--label-map", default=None, help="label PNG for --end-to-end (default: a random map)")
    ap.add_argument("--tf32", action="store_true", help="CUDA: allow TF32 in matmuls and convolutions (default off)")
    ap.add_argument("--config", default=None, help='model config overrides as JSON, e.g. \'{"lr_max_width": 256}\'')
    ap.add_argument("--no-macs", action="store_true", help="skip the MAC count")
    ap.add_argument("--out", default=None, help="also write the JSON to this file")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    try:
        overrides = json.loads(args.config) if args.config else None
        if overrides is not None and not isinstance(overrides, dict):
            raise ValueError(f"--config must be a JSON object, got {args.config!r}")
        result = measure(
            args.model,
            args.height,
            args.width,
            device=args.device,
            dtype=args.dtype,
            runs=args.runs,
            warmup=args.warmup,
            label_nc=args.label_nc,
            batch=args.batch,
            impl=args.impl,
            end_to_end=args.end_to_end,
            label_map=args.label_map,
            macs=not args.no_macs,
            overrides=overrides,
        )
    except (KeyError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    if args.out:
        from lib.io import write_json

        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
