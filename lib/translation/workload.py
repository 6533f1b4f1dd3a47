"""The translation timing workload: paper-config generators on example label maps, timed by the protocol.

:func:`measure` times one label -> photo generator (random weights, a random label map with
regions) under :mod:`lib.metrics.timing`, optionally end to end (read the label PNG, generate
through :func:`lib.models.generate.generate`, write the PNG). The ``time_translation`` stage
grid (:mod:`lib.translation.timing`) builds its cells from the same pieces.

Command line (prints JSON, see :func:`measure`)::

    python -m lib.translation.workload --model asapnet --height 256 --width 512 --device cpu [--threads N]
        [--runs R] [--warmup W] [--dtype fp32|bf16] [--label-nc 35] [--end-to-end] [--impl fast|reference]
"""
from __future__ import annotations

import os
import tempfile
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from lib.data.transforms import instance_edges
from lib.data.images import read_label, write_image
from lib.data.transforms import one_hot
from lib.device import resolve_device
from lib.metrics.timing import peak_memory, time_forward
from lib.models import build, make_config
from lib.models.complexity import count_macs, count_params, macs_on_meta
from lib.models.generate import GENERATORS, generate, generator_overrides, size_multiple, to_uint8
from lib.provenance import environment_info

__all__ = [
    "TIMED_MODELS",
    "DTYPES",
    "timing_config",
    "build_timing_model",
    "example_label_ids",
    "example_inputs",
    "check_sizes",
    "forward_kwargs",
    "meta_macs",
    "end_to_end_fn",
    "measure",
]

TIMED_MODELS = GENERATORS  # label -> photo generators the workload can build
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
LABEL_CELL = 8  # example label maps: random ids on cells of 8 x 8 pixels (regions, not noise)


def timing_config(name: str, height: int, label_nc: int = 35, overrides: dict | None = None) -> dict:
    """The generator config timed for ``name``: the registry defaults (paper values, instance
    edges on) with ``label_nc``; ASAPNet is built for ``height`` (tile size ``k = height / 16``;
    its learned part derived, :func:`lib.models.lowres.split_tile`: all of k below 256 pixels,
    16 from there). ``overrides`` (config keys -> values) are applied last.

    Raises:
        KeyError: ``name`` is not one of :data:`TIMED_MODELS` (the known names are listed).
    """
    if name not in TIMED_MODELS:
        raise KeyError(f"unknown model {name!r} for timing; known: {', '.join(TIMED_MODELS)}")
    cfg = generator_overrides(name, {"label_nc": int(label_nc)}, int(height))  # ASAPNet: height = image height
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
    torch.manual_seed(seed)
    with torch.device(resolve_device(device)):  # initialise on the device (fast on a GPU)
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
    cfg = model.cfg
    dev = resolve_device(device)
    onehot = one_hot(ids, cfg.label_nc).to(device=dev, dtype=dtype)  # (B, label_nc, H, W)
    edge = None
    if cfg.use_instance_edge:
        edge = instance_edges(ids).unsqueeze(1).to(device=dev, dtype=dtype)  # (B, H, W) -> (B, 1, H, W)
    return onehot, edge


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


def forward_kwargs(name: str, impl: str | None) -> dict:
    """Keyword arguments of a generator-only forward ``model(onehot, edge, **kwargs)``: ASAPNet's
    ``impl`` (default ``fast``: the ids are derived from the one-hot input); none for the others.

    Raises:
        ValueError: ``impl`` other than ``None``/``reference`` for a model other than ASAPNet.
    """
    if name == "asapnet":
        return {"impl": impl or "fast"}
    if impl not in (None, "reference"):
        raise ValueError(f"impl={impl!r} applies to asapnet only")
    return {}


def meta_macs(name: str, cfg: dict, shapes: list, impl: str | None) -> int | None:
    """MACs of one generator-only forward of ``name`` (:func:`forward_kwargs`) on inputs of
    ``shapes``, counted on the meta device; None where the forward needs real values (ASAPNet's
    fast path checks its label ids)."""
    return macs_on_meta(name, cfg, shapes, **({"impl": impl} if impl else {}))


def end_to_end_fn(
    model: torch.nn.Module,
    label_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    impl: str | None = None,
) -> Callable[[], None]:
    """One end-to-end translation: read the label PNG, generate on the device
    (:func:`lib.models.generate.generate`: one-hot, all-zero instance edges where the model
    takes them, ASAPNet's fast path given the label ids), copy back as uint8, write the RGB PNG."""
    dev = resolve_device(device)

    def run() -> None:
        ids = torch.from_numpy(read_label(label_path)).unsqueeze(0).to(dev)  # (H, W) -> (1, H, W)
        fake = generate(model, ids, impl=impl, dtype=dtype)  # (1, 3, H, W)
        write_image(out_path, to_uint8(fake)[0])  # (H, W, 3)

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
    """Times one generator under the protocol of :func:`lib.metrics.timing.time_forward` and describes the run.

    Order: one forward measured by :func:`lib.metrics.timing.peak_memory` (it also serves as
    the first warm-up), the MAC count (on the meta device where possible, else one more
    forward), ``warmup - 1`` further warm-ups and ``runs`` timed runs; then, with
    ``end_to_end``, the end-to-end pipeline of :func:`end_to_end_fn` (batch 1, same warm-up and runs).

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
        ``label_nc``, the :func:`lib.metrics.timing.time_forward` fields (``median_ms``,
        ``p90_ms``, ...), ``params``, ``macs``, ``gmacs``, ``macs_counted_on``,
        ``peak_memory_bytes``, ``peak_memory_mib``, ``end_to_end`` (timing dict or None),
        ``config``, ``environment``.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}; known: {', '.join(DTYPES)}")
    if name != "asapnet" and impl not in (None, "reference"):
        raise ValueError(f"--impl {impl} applies to asapnet only")
    tdtype = DTYPES[dtype]
    dev = resolve_device(device)
    cfg = timing_config(name, height, label_nc, overrides)
    model = build_timing_model(name, height, label_nc=label_nc, device=dev, dtype=tdtype, seed=seed, overrides=overrides)
    ids = example_label_ids(height, width, batch=batch, label_nc=label_nc, seed=seed)
    onehot, edge = example_inputs(model, ids, device=dev, dtype=tdtype)
    fn = partial(model, onehot, edge, **forward_kwargs(name, impl))  # the generator forward alone
    peak = peak_memory(fn, dev) if memory else None
    n_macs, counted_on = None, None
    if macs:
        shapes = [list(onehot.shape), None if edge is None else list(edge.shape)]
        n_macs, counted_on = meta_macs(name, cfg, shapes, impl if name == "asapnet" else None), "meta"
        if n_macs is None:
            n_macs, counted_on = count_macs(fn), str(dev)
    warm = max(0, warmup - 1) if memory else warmup
    result: dict[str, Any] = {
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
            "params": count_params(model),
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
        with tempfile.TemporaryDirectory(prefix="timing_e2e_") as tmp:
            random_map = Path(tmp) / "labels.png"
            if label_map is None:
                label_map = random_map
                write_image(label_map, example_label_ids(height, width, label_nc=label_nc, seed=seed)[0].to(torch.uint8).numpy())
            e2e = end_to_end_fn(model, label_map, Path(tmp) / "out.png", device=dev, dtype=tdtype, impl=impl)
            result["end_to_end"] = time_forward(e2e, device=dev, warmup=warmup, runs=runs)
            result["end_to_end"]["label_map"] = "random" if label_map == random_map else str(label_map)
    result["config"] = cfg
    result["environment"] = environment_info(dev)
    return result


def _main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    import sys

    ap = argparse.ArgumentParser(
        prog="python -m lib.translation.workload",
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
            args.model, args.height, args.width, device=args.device, dtype=args.dtype, runs=args.runs,
            warmup=args.warmup, label_nc=args.label_nc, batch=args.batch, impl=args.impl,
            end_to_end=args.end_to_end, label_map=args.label_map, macs=not args.no_macs, overrides=overrides,
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
