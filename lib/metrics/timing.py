"""Inference timing and memory under one fixed protocol (DESIGN sec. 5).

Protocol: generator forward only, inputs already on the device, eval mode,
``torch.inference_mode()``, ``warmup`` untimed runs, then each run timed on its own (CUDA
events with a synchronize after each run on GPU, ``time.perf_counter`` on CPU); we report
the median and 90th percentile with batch, shape, dtype, threads, device and torch version.

Command line (prints JSON, see :func:`measure`)::

    python -m lib.metrics.timing --model asapnet --height 256 --width 512 --device cpu [--threads N]
        [--runs R] [--warmup W] [--dtype fp32|bf16] [--label-nc 35] [--end-to-end] [--impl fast|reference]
"""
from __future__ import annotations

import os
import platform
import resource
import threading
import time
import warnings
from typing import Callable

import numpy as np
import torch

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
