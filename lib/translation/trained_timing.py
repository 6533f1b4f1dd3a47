"""The generators of the quality tables, timed against each other in one interleaved run.

The paper-configuration grid (:mod:`lib.translation.timing`) compares the architectures at the
paper's widths with random weights. The models whose quality the evaluation reports are other
ones: the reduced widths trained in each study. This module times those (docs/design.md#timing-protocol):

- each study's evaluated generator (``generator.pt`` of ``data/processed/translation/<dataset>/<model>``,
  the weights the quality table scores) at its study size (kind ``trained``);
- the same architecture (the trained widths and label channels) at each size of
  ``time_translation.trained_sizes``, the paper's 256x512 (kind ``trained_resized``). pix2pixHD is
  fully convolutional and keeps all its trained weights. ASAPNet is built for its image height
  (tile k = H / 16; its learned downsampling kept as trained): its positional encoding, and with
  it the MLP's parameter count, depend on k, so at another height it takes the trained tensors
  whose shapes still fit (the low-res convolutions) and random values for the rest; the row's
  ``weights`` says which (time does not depend on the values);
- every cell in fp32 and, where the device computes bf16 natively
  (:func:`lib.device.bf16_autocast_recommended`), in bf16 autocast (the training precision); the
  bf16 row records the PSNR of its output against the fp32 output. Elsewhere the bf16 cells are
  rows with status ``skipped`` and the reason.

Interleaved: after ``trained_warmup`` forwards of every cell, each of ``trained_rounds`` rounds
times one forward of every cell, in an order rotated by one cell per round, so a slow spell of a
shared machine falls on every cell alike. Batch 1, all cores, ``torch.inference_mode()``, the
example label map of the grid (random regions), inputs on the device; median, quartiles and
90th percentile over the rounds. Rows have the grid's :data:`lib.translation.timing.GRID_COLUMNS`.
"""
from __future__ import annotations

import math
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch

from lib.config import to_dict
from lib.device import all_cores, bf16_autocast_recommended, resolve_device, sync
from lib.models import build, load_model, make_config
from lib.models.complexity import count_macs, count_params
from lib.models.generate import size_multiple
from lib.translation.evaluate import eval_checkpoint
from lib.translation.timing import GRID_COLUMNS
from lib.translation.workload import example_inputs, example_label_ids, forward_kwargs

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TRAINED_PROTOCOL", "TRAINED_DTYPES", "resized_config", "plan_trained", "time_trained", "speedups_trained"]

TRAINED_DTYPES = ("fp32", "bf16")
LOWRES_ROWS = 16  # ASAPNet sec. 3: the low-res grid has 16 rows (k = H / 16)
TRAINED_PROTOCOL = (
    "Generators as trained: each study's evaluated generator (its trained weights) at its study size, and the "
    "same architecture (trained widths and label channels) at the trained_sizes (pix2pixHD with its trained "
    "weights; ASAPNet rebuilt for the height, its tile-size-dependent tensors random); batch 1, all cores, "
    "fp32 and bf16 autocast where the device computes bf16 natively; one interleaved run: warm-up forwards "
    "of every cell, then rounds that time one forward of every cell each (order rotated per round); median, "
    "quartiles and 90th percentile over the rounds; bf16 rows: PSNR of the output against fp32 (range [0, 1])."
)


def resized_config(generator: str, config: Mapping[str, Any], height: int) -> dict:
    """The trained architecture ``config`` of ``generator`` built for images of ``height`` rows:
    ASAPNet gets ``height`` (tile k = height / 16) and keeps its trained learned-downsampling
    factor (so its convolutions stay those trained); other generators are size-agnostic.

    Raises:
        ValueError: ASAPNet at a height whose tile is smaller than its learned downsampling.
    """
    cfg = dict(config)
    if generator != "asapnet":
        return cfg
    trained_k = int(cfg["height"]) // LOWRES_ROWS
    factor = cfg.get("learned_ds_factor") or min(trained_k, 16)  # lib.models.lowres: None means min(k, 16)
    if height // LOWRES_ROWS < factor:
        raise ValueError(f"asapnet at height {height}: tile {height // LOWRES_ROWS} is smaller than its learned "
                         f"downsampling {factor}; time it at {factor * LOWRES_ROWS} px or more")
    return {**cfg, "height": int(height), "learned_ds_factor": int(factor)}


def plan_trained(trained: Sequence[Mapping[str, Any]], sizes: Sequence[Sequence[int]],
                 dtypes: Sequence[str] = TRAINED_DTYPES) -> list[dict]:
    """The cells of :func:`time_trained`, in order: per generator of ``trained``
    (:func:`lib.translation.timing.trained_generators` of each study, with ``dataset``), its study
    size then each of ``sizes``, each in every dtype.

    Raises:
        ValueError: a size the generator cannot take (names it).
    """
    cells = []
    for t in trained:
        shapes = [("trained", int(t["height"]), int(t["width"]))]
        shapes += [("trained_resized", int(h), int(w)) for h, w in sizes if (int(h), int(w)) != (t["height"], t["width"])]
        for kind, h, w in shapes:
            cfg = resized_config(t["generator"], t["config"], h) if kind != "trained" else dict(t["config"])
            mh, mw = size_multiple(t["generator"], make_config(t["generator"], cfg))
            if h % mh or w % mw:
                raise ValueError(f"trained_sizes: {t['generator']} ({t['dataset']}) needs multiples of {mh}x{mw}, got {h}x{w}")
            for dtype in dtypes:
                cells.append({"kind": kind, "dataset": t["dataset"], "model": t["model"], "generator": t["generator"],
                              "config": cfg, "height": h, "width": w, "label_nc": int(t["label_nc"]), "dtype": dtype})
    return cells


def _load(cell: Mapping[str, Any], checkpoint: Path, trained: torch.nn.Module, dev: torch.device) -> tuple[torch.nn.Module, str]:
    """The module of a cell and what its weights are: the trained generator itself, or the
    architecture rebuilt for another height with every trained tensor whose shape still fits."""
    if cell["kind"] == "trained" or to_dict(trained.cfg) == dict(cell["config"]):
        return trained, f"trained ({checkpoint.parent.parent.name}/{checkpoint.parent.name}/{checkpoint.name})"
    torch.manual_seed(0)
    model = build(cell["generator"], cell["config"]).eval()
    own, state = model.state_dict(), trained.state_dict()
    fit = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fit, strict=False)
    random = len(own) - len(fit)
    note = "trained" if not random else f"trained except {random} of {len(own)} tensors (shapes depend on the tile size)"
    return model.to(dev), note


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) of two generator outputs in [-1, 1], on the [0, 1] scale."""
    mse = float((((a.float() - b.float()) / 2) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def time_trained(
    trained: Sequence[Mapping[str, Any]],
    run_dirs: Mapping[tuple[str, str], Path],
    cfg: Any,
    *,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> pd.DataFrame:
    """Times the trained generators in one interleaved run (module doc).

    Args:
        trained: :func:`lib.translation.timing.trained_generators` of each study (with ``dataset``).
        run_dirs: ``(dataset, model)`` -> the training run's folder (its ``generator.pt``).
        cfg: the ``time_translation`` settings (``seed``, ``trained_sizes``, ``trained_warmup``,
            ``trained_rounds``, ``impl``).
        device: where the generators run.
        progress: print one line per phase.

    Returns:
        One row per cell (:data:`lib.translation.timing.GRID_COLUMNS`), in :func:`plan_trained` order.

    Raises:
        FileNotFoundError: a study's model has no trained generator (names the folder).
    """
    import pandas as pd

    dev = resolve_device(device)
    bf16_ok = bf16_autocast_recommended(dev)
    cells = plan_trained(trained, cfg.trained_sizes)
    loaded: dict[tuple[str, str], tuple[torch.nn.Module, Path]] = {}
    for t in trained:
        ckpt = eval_checkpoint(run_dirs[(t["dataset"], t["model"])])
        loaded[(t["dataset"], t["model"])] = (load_model(ckpt, map_location=dev), ckpt)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(all_cores())
    nan = float("nan")
    rows, timed = [], []
    try:
        modules: dict[tuple, tuple[torch.nn.Module, str]] = {}
        for i, cell in enumerate(cells):
            key = (cell["dataset"], cell["model"])
            mkey = (*key, cell["height"])
            if mkey not in modules:
                modules[mkey] = _load(cell, loaded[key][1], loaded[key][0], dev)
            model, weights = modules[mkey]
            impl = cfg.impl if cell["generator"] == "asapnet" else None
            ids = example_label_ids(cell["height"], cell["width"], label_nc=cell["label_nc"], seed=cfg.seed)  # (1, H, W)
            onehot, edge = example_inputs(model, ids, device=dev)
            forward = partial(model, onehot, edge, **forward_kwargs(cell["generator"], impl))
            bf16 = cell["dtype"] == "bf16"
            row: dict[str, Any] = {c: nan for c in GRID_COLUMNS}
            row.update({
                "kind": cell["kind"], "model": cell["model"], "generator": cell["generator"], "impl": impl,
                "height": cell["height"], "width": cell["width"], "megapixels": cell["height"] * cell["width"] / 1e6,
                "label_nc": cell["label_nc"], "device": str(dev), "dtype": cell["dtype"], "tf32": "off" if dev.type == "cuda" else "-",
                "threads_setting": 0, "threads": torch.get_num_threads(), "max_forward_s": 0.0,
                "params": count_params(model), "status": "ok", "note": "", "runs": 0, "e2e_runs": 0,
                "warmup": int(cfg.trained_warmup), "timer": "perf_counter",  # around the forward and a device synchronize
                "peak_memory_kind": None, "macs_counted_on": str(dev), "torch_version": torch.__version__,
                "dataset": cell["dataset"], "weights": weights, "psnr_vs_fp32_db": nan,
            })
            if bf16 and not bf16_ok:
                row.update(status="skipped", note=f"bf16 not timed: {dev} has no native bf16 (slower than fp32 by emulation)")
                rows.append(row)
                continue

            def run(fn=forward, on=bf16) -> torch.Tensor:
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=on):
                    return fn()

            with torch.inference_mode():
                if not bf16:
                    row["gmacs"] = count_macs(forward) / 1e9
                    row["_out"] = run()
                else:
                    fp32 = next(r for r in reversed(rows) if (r["dataset"], r["model"], r["height"], r["dtype"])
                                == (cell["dataset"], cell["model"], cell["height"], "fp32"))
                    row["gmacs"] = fp32["gmacs"]
                    row["psnr_vs_fp32_db"] = _psnr(run(), fp32["_out"])
            rows.append(row)
            timed.append((len(rows) - 1, run))
        if progress:
            print(f"trained generators: {len(timed)} cells, {cfg.trained_warmup} warm-up forwards each, "
                  f"{cfg.trained_rounds} interleaved rounds", flush=True)
        times: dict[int, list[float]] = {i: [] for i, _ in timed}
        with torch.inference_mode():
            for _ in range(cfg.trained_warmup):
                for _, fn in timed:
                    fn()
            sync(dev)
            for r in range(cfg.trained_rounds):
                shift = r % max(1, len(timed))
                for i, fn in timed[shift:] + timed[:shift]:
                    t0 = time.perf_counter()
                    fn()
                    sync(dev)
                    times[i].append((time.perf_counter() - t0) * 1e3)
        for i, t in times.items():
            a = np.asarray(t)
            rows[i].update(median_ms=float(np.median(a)), q25_ms=float(np.percentile(a, 25)),
                           q75_ms=float(np.percentile(a, 75)), p90_ms=float(np.percentile(a, 90)),
                           min_ms=float(a.min()), mean_ms=float(a.mean()), runs=int(a.size), first_forward_ms=nan)
    finally:
        torch.set_num_threads(old_threads)
    for row in rows:
        row.pop("_out", None)
    return pd.DataFrame(rows, columns=list(GRID_COLUMNS))


def speedups_trained(frame: pd.DataFrame, reference: str = "asapnet") -> pd.DataFrame:
    """Speed-up of ``reference`` over each other trained model, per study, size and dtype:
    ``baseline median_ms / reference median_ms`` of the trained rows of one run.

    Returns:
        Columns ``dataset``, ``kind``, ``size`` (``"HxW"``), ``dtype``, ``baseline``,
        ``reference_ms``, ``baseline_ms``, ``speedup``.
    """
    import pandas as pd

    cols = ["dataset", "kind", "size", "dtype", "baseline", "reference_ms", "baseline_ms", "speedup"]
    rows = frame[frame["kind"].isin(["trained", "trained_resized"]) & (frame["status"] == "ok")]
    keys = ["dataset", "kind", "height", "width", "dtype"]
    ref = rows[rows["model"] == reference][keys + ["median_ms"]].rename(columns={"median_ms": "reference_ms"})
    base = rows[rows["model"] != reference][keys + ["model", "median_ms"]].rename(
        columns={"model": "baseline", "median_ms": "baseline_ms"})
    if ref.empty or base.empty:
        return pd.DataFrame(columns=cols)
    out = base.merge(ref, on=keys)
    out["speedup"] = out["baseline_ms"] / out["reference_ms"]
    out["size"] = out["height"].astype(int).astype(str) + "x" + out["width"].astype(int).astype(str)
    return out[cols].reset_index(drop=True)

