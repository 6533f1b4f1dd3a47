"""The ``time_translation`` stage: its config, the grid of timed cells, and the result tables.

Every model of the stage in its paper configuration (:func:`lib.translation.workload.timing_config`,
random weights: the architecture comparison) at every size under every threads setting, one row
per cell, timed by the protocol of :mod:`lib.metrics.timing`, with budget controls: a
per-setting limit on one forward (cells predicted to exceed it are skipped and recorded), and
the number of runs chosen from a time budget per cell (docs/design.md#timing-protocol). The
generators as trained in each study (trained weights, study size and 256x512, fp32 and bf16)
are timed in one interleaved run by :mod:`lib.translation.trained_timing`; their rows join the
grid's in the stage's results (:func:`trained_generators` lists them).
"""
from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import torch

from lib.config import from_dict, to_dict
from lib.data import image_size
from lib.data.images import write_image
from lib.device import all_cores, check_device, resolve_device
from lib.io import write_csv, write_json
from lib.metrics.timing import TIMING_PROTOCOL, peak_memory, runs_for, time_forward
from lib.models import build, make_config
from lib.models.complexity import count_macs, params_on_meta
from lib.models.generate import generator_overrides
from lib.train.gan import TranslationTrainStage, gan_config
from lib.translation.workload import (
    DTYPES,
    check_sizes,
    end_to_end_fn,
    example_inputs,
    example_label_ids,
    forward_kwargs,
    meta_macs,
    timing_config,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["outputs",
    "TimeTranslationConfig",
    "TimingSetting",
    "timing_settings",
    "trained_generators",
    "plan_grid",
    "timing_grid",
    "speedups",
    "write_timing",
    "GRID_COLUMNS",
    "SPEEDUP_KEYS",
]

GRID_COLUMNS = (
    "kind", "model", "generator", "impl", "height", "width", "megapixels", "label_nc", "device", "dtype", "tf32",
    "threads_setting", "threads", "max_forward_s", "params", "gmacs", "macs_counted_on", "status", "predicted_ms",
    "first_forward_ms", "median_ms", "q25_ms", "q75_ms", "p90_ms", "min_ms", "mean_ms", "runs", "warmup", "timer",
    "peak_memory_mib", "peak_memory_kind", "e2e_median_ms", "e2e_p90_ms", "e2e_runs", "note", "torch_version",
    "dataset", "weights", "psnr_vs_fp32_db",  # the generators as trained (lib.translation.trained_timing)
)


@dataclass(frozen=True)
class TimingSetting:
    """One threads setting of the timing grid.

    Attributes:
        threads: torch intra-op threads; 0 = every core this process may use.
        max_forward_s: a cell whose forward is predicted (or first measured) to take longer is
            skipped and recorded with its predicted time; 0 = no limit.
    """

    threads: int = 0  # docs/design.md#timing-protocol: CPU with all threads (and with 1)
    max_forward_s: float = 0.0  # not from the paper: a budget control; 0 = no limit

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ValueError(f"threads={self.threads} must be >= 0 (0 = all cores)")
        if self.max_forward_s < 0:
            raise ValueError(f"max_forward_s={self.max_forward_s} must be >= 0 (0 = no limit)")


def timing_settings(settings: Iterable[Mapping[str, Any]], where: str = "time_translation.settings") -> tuple[TimingSetting, ...]:
    """Typed :class:`TimingSetting` from the ``settings`` list of ``params.yaml`` (strict keys).

    Raises:
        lib.config.ConfigError: an unknown key or a bad value, named as ``where[i].key``.
    """
    return tuple(from_dict(TimingSetting, s, where=f"{where}[{i}]") for i, s in enumerate(settings))


@dataclass(frozen=True)
class TimeTranslationConfig:
    """``time_translation``: inference time of the label -> photo generators (docs/design.md#timing-protocol).

    A grid (:func:`timing_grid`): each model of ``models`` in its paper
    configuration (:func:`lib.translation.workload.timing_config`, ``label_nc`` labels, random
    weights) at each size of ``sizes`` under each threads setting of ``settings`` (on CUDA once
    per TF32 flag of ``tf32``); with ``trained``, also each generator as trained in each study
    (:mod:`lib.translation.trained_timing`: its trained weights at its study size and, with its
    trained widths, at ``trained_sizes``; fp32 and bf16; one interleaved run).

    Attributes:
        seed: seeds the random weights and the example label map.
        models: timed generators (``asapnet``, ``pix2pixhd``, ``spade``).
        sizes: ``[height, width]`` pairs.
        settings: ``{threads: 0 (all cores) | n, max_forward_s: s (0 = no limit)}`` each
            (:class:`TimingSetting`): a cell predicted to need more than
            ``max_forward_s`` per forward is skipped and recorded with its predicted time.
        warmup: untimed forwards per cell (the first one also measures peak memory), >= 1.
        min_runs: fewest timed runs per cell.
        max_runs: most timed runs per cell.
        cell_budget_s: runs = clamp(ceil(cell_budget_s / first forward), min_runs, max_runs).
        end_to_end: also time read label PNG + one-hot + forward + write PNG ...
        end_to_end_sizes: ... at these sizes (each one of ``sizes``).
        impl: ASAPNet implementation, ``fast`` or ``reference``.
        label_nc: label channels of the paper-config models.
        dtype: ``fp32``, ``bf16`` or ``fp16`` (model and inputs).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda[:i]``.
        tf32: on CUDA, the TF32 flags timed (one row each); ignored on the CPU.
        trained: also time the generators as trained (each study's ``train_translation``).
        trained_sizes: ``[height, width]`` sizes the trained architectures are also timed at.
        trained_warmup: untimed forwards of every trained cell before the interleaved rounds.
        trained_rounds: interleaved rounds; each times one forward of every trained cell.
        model_overrides: model -> config keys applied over its paper config (smaller models).
    """

    seed: int = 0
    models: tuple[str, ...] = ("asapnet", "pix2pixhd", "spade")  # sec. 4 baselines (Fig. 1)
    sizes: tuple[tuple[int, int], ...] = ((256, 256), (256, 512), (512, 1024), (1024, 2048))  # sec. 4: 256x512 and up
    settings: tuple[dict[str, Any], ...] = field(
        default_factory=lambda: ({"threads": 0, "max_forward_s": 0.0}, {"threads": 1, "max_forward_s": 0.0})
    )  # docs/design.md#timing-protocol: CPU with all threads and with 1
    warmup: int = 3  # docs/design.md#timing-protocol: warm-up before timing
    min_runs: int = 10  # not from the paper: "many runs"
    max_runs: int = 100  # not from the paper
    cell_budget_s: float = 10.0  # not from the paper
    end_to_end: bool = True
    end_to_end_sizes: tuple[tuple[int, int], ...] = ((256, 512),)  # sec. 4: Cityscapes 256x512
    impl: str = "fast"
    label_nc: int = 35  # Cityscapes label ids (official: label_nc)
    dtype: str = "fp32"  # docs/design.md#timing-protocol: float32
    device: str = "auto"
    tf32: tuple[bool, ...] = (False, True)
    trained: bool = True
    trained_sizes: tuple[tuple[int, int], ...] = ((256, 512),)  # sec. 4: Cityscapes 256x512
    trained_warmup: int = 2
    trained_rounds: int = 15  # not from the paper
    model_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.models or len(set(self.models)) != len(self.models):
            raise ValueError(f"models={list(self.models)}: expected distinct model names")
        if not self.sizes:
            raise ValueError("sizes: expected at least one [height, width]")
        if not self.settings:
            raise ValueError("settings: expected at least one {threads, max_forward_s}")
        timing_settings(self.settings, where="settings")
        check_sizes(self.models, self.sizes, self.label_nc, self.model_overrides)
        for i, hw in enumerate(self.end_to_end_sizes):
            if tuple(hw) not in {tuple(s) for s in self.sizes}:
                raise ValueError(f"end_to_end_sizes[{i}]={list(hw)} is not one of sizes")
        if self.warmup < 1:
            raise ValueError(f"warmup={self.warmup} must be >= 1 (the first forward measures peak memory)")
        if not 1 <= self.min_runs <= self.max_runs:
            raise ValueError(f"min_runs={self.min_runs}, max_runs={self.max_runs}: need 1 <= min_runs <= max_runs")
        if self.cell_budget_s < 0:
            raise ValueError(f"cell_budget_s={self.cell_budget_s} must be >= 0")
        if self.impl not in ("fast", "reference"):
            raise ValueError(f"impl={self.impl!r} is not 'fast' or 'reference'")
        if self.label_nc < 1:
            raise ValueError(f"label_nc={self.label_nc} must be >= 1")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r}; known: {', '.join(DTYPES)}")
        check_device(self.device)
        if not self.tf32:
            raise ValueError("tf32: expected at least one flag, e.g. [false]")
        for i, hw in enumerate(self.trained_sizes):
            if len(hw) != 2 or min(int(v) for v in hw) < 1:
                raise ValueError(f"trained_sizes[{i}]={list(hw)}: expected [height, width], both > 0")
        if self.trained_warmup < 0 or self.trained_rounds < 1:
            raise ValueError(f"trained_warmup={self.trained_warmup} must be >= 0 and trained_rounds={self.trained_rounds} >= 1")


def trained_generators(stage: TranslationTrainStage) -> list[dict]:
    """Each generator of a study's ``train_translation`` stage as trained: its registry name and
    full config (``height`` = ``size`` where the config has one), image size and label count.

    Returns:
        ``[{"dataset": the study, "model": key of train_translation.models, "generator", "config",
        "height", "width", "label_nc"}, ...]``.
    """
    out = []
    for key in stage.models:
        gc = gan_config(stage, key)
        height, width = image_size(stage.paired(), gc.size)
        cfg = make_config(gc.generator, generator_overrides(gc.generator, gc.generator_cfg, gc.size))  # as lib.train.gan
        out.append({
            "dataset": stage.dataset,
            "model": key,
            "generator": gc.generator,
            "config": to_dict(cfg),
            "height": height,
            "width": width,
            "label_nc": int(cfg.label_nc),
        })
    return out


def plan_grid(cfg: Any, device: str | torch.device = "cpu") -> list[dict]:
    """The cells :func:`timing_grid` runs, in order (nothing is built or timed).

    Paper-config cells: for each model, the sizes in ascending pixel count, and at each size
    every threads setting and (CUDA only) TF32 flag; so a model is built once per size, and
    each cell's prediction comes from a smaller size of the same setting.

    Args:
        cfg: the ``time_translation`` config (:class:`TimeTranslationConfig`).
        device: the device timed (decides whether TF32 variants exist).

    Returns:
        Dicts with ``kind``, ``model``, ``generator``, ``config``, ``height``, ``width``,
        ``label_nc``, ``setting`` (index), ``threads_setting``, ``max_forward_s``, ``tf32``
        (``"off"`` / ``"on"`` on CUDA, ``"-"`` elsewhere), ``end_to_end``, ``allow_skip``.
    """
    dev = torch.device(device)  # only its type matters: planning builds nothing
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
    return cells


class _GridState:
    """What the cells of one grid share: MAC counts, measured MAC rates, the last built model."""

    def __init__(self) -> None:
        self.macs: dict[tuple, tuple[int | None, int | None, str | None]] = {}
        self.rates: dict[tuple, tuple[float, int, int]] = {}  # key -> (MACs per ms, height, width)
        self.model_key: tuple | None = None
        self.model: torch.nn.Module | None = None


def _run_cell(cell: Mapping[str, Any], cfg: Any, dev: torch.device, state: _GridState) -> dict:
    name, conf = cell["generator"], cell["config"]
    h, w, label_nc = cell["height"], cell["width"], cell["label_nc"]
    tdtype = DTYPES[cfg.dtype]
    impl = cfg.impl if name == "asapnet" else None
    use_edge = bool(getattr(make_config(name, conf), "use_instance_edge", False))
    shapes = [[1, label_nc, h, w], [1, 1, h, w] if use_edge else None]
    conf_key = json.dumps(conf, sort_keys=True)
    mkey = (name, conf_key, h, w, impl)
    if mkey not in state.macs:
        counted = meta_macs(name, conf, shapes, impl)
        if counted is not None:
            state.macs[mkey] = (counted, counted, "meta")
        else:  # ASAPNet's fast path checks its label ids: not on meta. Predict from the reference path's MACs
            state.macs[mkey] = (meta_macs(name, conf, shapes, "reference"), None, None)
    pred_macs, macs, counted_on = state.macs[mkey]
    nan = float("nan")
    row: dict[str, Any] = {c: nan for c in GRID_COLUMNS}
    row.update({
        "kind": cell["kind"], "model": cell["model"], "generator": name, "impl": impl,
        "height": h, "width": w, "megapixels": h * w / 1e6, "label_nc": label_nc, "device": str(dev),
        "dtype": cfg.dtype, "tf32": cell["tf32"], "threads_setting": cell["threads_setting"],
        "threads": torch.get_num_threads(), "max_forward_s": cell["max_forward_s"],
        "params": params_on_meta(name, conf), "peak_memory_kind": None, "timer": None,
        "macs_counted_on": counted_on, "gmacs": nan if macs is None else macs / 1e9,
        "status": "ok", "note": "", "runs": 0, "e2e_runs": 0, "warmup": int(cfg.warmup),
        "torch_version": torch.__version__, "dataset": "", "weights": "random (seeded)",
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
    fn = partial(model, onehot, edge, **forward_kwargs(name, impl))  # the generator forward alone
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
    row.update({k: t[k] for k in ("median_ms", "q25_ms", "q75_ms", "p90_ms", "min_ms", "mean_ms", "runs", "timer")})
    if pred_macs:
        state.rates[rkey] = (pred_macs / t["median_ms"], h, w)
    del onehot, edge, fn
    if cell["end_to_end"]:
        if label_nc > 256:
            row["note"] = "end to end not timed: label ids above 255 do not fit an 8-bit PNG"
        else:
            with tempfile.TemporaryDirectory(prefix="timing_e2e_") as tmp:
                label_path = Path(tmp) / "labels.png"
                write_image(label_path, ids[0].to(torch.uint8).numpy())  # (H, W)
                e2e = end_to_end_fn(model, label_path, Path(tmp) / "out.png", device=dev, dtype=tdtype, impl=impl)
                te = time_forward(e2e, device=dev, warmup=1, runs=runs)
            row.update(e2e_median_ms=te["median_ms"], e2e_p90_ms=te["p90_ms"], e2e_runs=te["runs"])
    return row


def timing_grid(
    cfg: Any,
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
        cfg: the ``time_translation`` config (:class:`TimeTranslationConfig`).
        progress: show a tqdm progress bar.
        device: overrides ``cfg.device`` (``"auto"``: CUDA when available).

    Returns:
        A ``pandas.DataFrame`` with :data:`GRID_COLUMNS`, one row per cell, in plan order.
        ``status`` is ``"ok"`` or ``"skipped"``; a skipped row has ``predicted_ms`` and a
        ``note`` and no times.
    """
    import pandas as pd
    from tqdm import tqdm

    dev = resolve_device(device if device is not None else cfg.device)
    cells = plan_grid(cfg, dev)
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
    frame: pd.DataFrame, csv_path: str | os.PathLike, json_path: str | os.PathLike, meta: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Writes the grid as CSV (:data:`GRID_COLUMNS`) and a JSON summary, atomically.

    JSON: ``{"meta": meta, "protocol": TIMING_PROTOCOL, "speedups": [...] (:func:`speedups`),
    "skipped": [{model, kind, height, width, threads_setting, predicted_ms, note}, ...], **extra}``
    (``extra``: e.g. the trained generators' speed-ups and protocol).
    """
    skipped = frame[frame["status"] == "skipped"]
    cols = ["model", "kind", "height", "width", "threads_setting", "tf32", "predicted_ms", "note"]
    write_csv(csv_path, frame[list(GRID_COLUMNS)])
    write_json(json_path, {
        "meta": dict(meta),
        "protocol": TIMING_PROTOCOL,
        "speedups": speedups(frame).to_dict(orient="records"),
        "skipped": skipped[cols].to_dict(orient="records"),
        **dict(extra or {}),
    })


def outputs() -> dict[str, str]:
    """The ``time_translation`` stage's outputs (project-relative; ``dvc.yaml`` declares the same paths)."""
    return {"out_csv": "reports/metrics/translation_timing.csv", "out_json": "reports/metrics/translation_timing.json"}
