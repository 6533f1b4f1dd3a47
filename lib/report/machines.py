"""Where a measurement was made, and how much it varied: the machine of a results file and the
run-to-run spread of a timing.

A number on the page is compared with another only when both come from one machine. The machine
of a results file is its ``hardware`` / ``environment`` block (:func:`lib.provenance.environment_info`):
device, CPU model, CPU features and threads. :func:`same_machine` says whether two blocks name the
same machine (``None`` when a block lacks the CPU features, so it cannot tell); :func:`benchmark_machine`
adds the evidence of a timing both files measured. Timing cells carry their spread
(:func:`time_cell`): the interquartile range of the timed runs where the file records it (or the
per-run times), else the fastest and 90th-percentile runs, which older files record, and the
caption says which (docs/design.md#report).
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from lib.report.common import FEATURE_NAMES, MISSING, is_finite, to_float

__all__ = [
    "machine_text",
    "same_machine",
    "benchmark_machine",
    "where_text",
    "run_times",
    "spread",
    "time_cell",
    "SPREAD_IQR",
    "SPREAD_RANGE",
    "spread_note",
    "NBSP",
]

SPREAD_IQR = "iqr"  # the interquartile range of the timed runs
SPREAD_RANGE = "range"  # the fastest and the 90th-percentile run (files without the quartiles or the runs)
NBSP = "\u00a0"  # keeps a time and its spread on one line in a table cell
DASH = "\u2060–\u2060"  # an en dash with word joiners: no line break inside a range
DISAGREE = 1.5  # two runs of one timing cell this far apart were not made on one machine


def machine_text(hw: Mapping[str, Any] | None) -> str:
    """``AMD EPYC (AVX2/AVX-512/AVX-512 BF16), 2 threads`` from a ``hardware`` / ``environment`` block;
    ``CPU features not recorded`` where the block has none; a GPU by its name."""
    hw = hw or {}
    if str(hw.get("device", "cpu")).startswith("cuda"):
        return f"{hw.get('device_name') or 'GPU'} (CUDA)"
    name = hw.get("cpu_model") or hw.get("device_name") or "CPU model not recorded"
    features = hw.get("cpu_features")
    feats = "/".join(FEATURE_NAMES.get(f, f) for f in features) if features else ""
    threads = hw.get("threads")
    return (f"{name} ({feats or 'CPU features not recorded'})"
            + (f", {int(threads)} thread{'s' if int(threads) != 1 else ''}" if is_finite(threads) else ""))


def same_machine(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool | None:
    """Whether two ``hardware`` / ``environment`` blocks describe the same machine and thread count:
    device, CPU (or GPU) model, CPU features and threads equal. ``False`` when any recorded field
    differs; ``None`` when they agree but a block lacks the CPU features (one CPU model name covers
    CPUs of very different speed)."""
    a, b = a or {}, b or {}
    if not a or not b:
        return None
    for key in ("device", "cpu_model", "threads"):
        if a.get(key) is not None and b.get(key) is not None and str(a[key]) != str(b[key]):
            return False
    if str(a.get("device", "cpu")).startswith("cuda"):
        return a.get("device_name") == b.get("device_name") or False
    fa, fb = a.get("cpu_features"), b.get("cpu_features")
    if fa is None or fb is None:
        return None
    return sorted(fa) == sorted(fb)


def benchmark_machine(env: Mapping[str, Any] | None, reference_hw: Mapping[str, Any] | None,
                      pairs: Iterable[tuple[float, float]] = ()) -> bool | None:
    """:func:`same_machine`, with evidence where the blocks cannot tell: ``pairs`` are the median times
    (ms) of cells both files timed in the same setting (model, size, precision, threads); medians more
    than :data:`DISAGREE` times apart mean another machine (``False``)."""
    same = same_machine(env, reference_hw)
    if same is not None:
        return same
    for x, y in pairs:
        if is_finite(x) and is_finite(y) and min(x, y) > 0 and max(x, y) / min(x, y) > DISAGREE:
            return False
    return None


def where_text(same: bool | None) -> str:
    """``this CPU`` / ``another CPU`` / ``CPU not identified`` for :func:`same_machine`'s answer."""
    return {True: "this CPU", False: "another CPU"}.get(same, "CPU not identified")


def run_times(value: Any) -> list[float]:
    """The per-run times of a results cell: a list, or the space-separated text the benchmarks write."""
    if isinstance(value, (list, tuple)):
        return [to_float(v) for v in value if is_finite(v)]
    if isinstance(value, str):
        return [to_float(v) for v in value.split() if is_finite(v)]
    return []


def spread(row: Mapping[str, Any]) -> tuple[str | None, float, float]:
    """``(kind, low, high)`` of a timing row: ``q25_ms``/``q75_ms`` or the quartiles of its per-run
    times (``times_ms``) as :data:`SPREAD_IQR`; else ``min_ms``/``p90_ms`` as :data:`SPREAD_RANGE`;
    ``(None, nan, nan)`` without either."""
    nan = float("nan")
    if is_finite(row.get("q25_ms")) and is_finite(row.get("q75_ms")):
        return SPREAD_IQR, to_float(row["q25_ms"]), to_float(row["q75_ms"])
    times = run_times(row.get("times_ms"))
    if len(times) >= 2:
        q25, q75 = np.percentile(times, [25, 75])
        return SPREAD_IQR, float(q25), float(q75)
    if is_finite(row.get("min_ms")) and is_finite(row.get("p90_ms")):
        return SPREAD_RANGE, to_float(row["min_ms"]), to_float(row["p90_ms"])
    return None, nan, nan


def time_cell(row: Mapping[str, Any], digits: int = 0) -> str:
    """The median time of a timing row with its spread: ``475 [468–479]`` (interquartile range) or
    ``475 (463–479)`` (fastest and 90th-percentile run); :data:`MISSING` without a median."""
    if not is_finite(row.get("median_ms")):
        return MISSING
    fmt = f"{{:,.{digits}f}}"
    text = fmt.format(to_float(row["median_ms"]))
    kind, low, high = spread(row)
    if kind == SPREAD_IQR:
        text += f"{NBSP}[{fmt.format(low)}{DASH}{fmt.format(high)}]"
    elif kind == SPREAD_RANGE:
        text += f"{NBSP}({fmt.format(low)}{DASH}{fmt.format(high)})"
    return text


def spread_note(kinds: Iterable[str | None], runs: str = "") -> str:
    """The caption sentence that says which spread the cells of a table carry (``runs``: how many timed
    runs each cell has, e.g. ``3-30``)."""
    kinds = set(kinds) - {None}
    per = f" of the {runs} timed runs" if runs else " of the timed runs"
    parts = []
    if SPREAD_IQR in kinds:
        parts.append(f"`[a–b]`: interquartile range{per}")
    if SPREAD_RANGE in kinds:
        parts.append(f"`(a–b)`: fastest and 90th-percentile run{per}; this file records neither the quartiles "
                     "nor the per-run times, so no interquartile range (the timing code records it from the next run on)")
    return "; ".join(parts) + "." if parts else "No spread is recorded for these times."
