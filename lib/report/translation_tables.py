"""The label -> photo tables as the report shows them: split to fit the page, rounded, no NaN cells.

Each function formats a table of :mod:`lib.report.translation` (which holds the numbers and is
tested on them) for display: text cells, integers for milliseconds, :data:`MISSING` with the
reason in the cell or the caption where a value does not exist.
"""
from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from lib.report.common import MISSING, format_frame, format_number, is_finite, to_float
from lib.report.translation import MODEL_LABELS, PAPER_SIZE, official_table, speedup_table, translation_table
from lib.translation.timing import speedups

__all__ = ["quality_table", "speed_table", "speedup_display", "official_display"]


def quality_table(eval_json: Mapping[str, Any], timing: pd.DataFrame) -> pd.DataFrame:
    """The quality half of :func:`translation_table`, for display: one row per evaluated generator
    and the real photos; N, FID, KID (final and smoothed), mIoU, pixel accuracy, and the generator as trained (params,
    median ms at the trained size). Text cells; :data:`MISSING` where a value does not exist."""
    full = translation_table(eval_json, timing)
    evaluated = [MODEL_LABELS.get(r["model"], r["model"]) for r in eval_json.get("rows", [])]
    t = full.loc[[i for i in full.index if i in evaluated]]
    size = next((s for s in t["trained size"] if s != MISSING), "?")
    cols = {"N": "N", "FID [95% CI]": "FID [95% CI]", "KID [95% CI]": "KID [95% CI]",
            "KID, smoothed final": "KID, last 3 curve points", "mIoU [95% CI]": "mIoU [95% CI]",
            "pixel accuracy": "pixel acc.", "params (M), as trained": "params (M)",
            "time as trained (ms)": f"ms / image ({size})"}
    out = format_frame(t[list(cols)].rename(columns=cols), {"N": 0, "KID": 4, "pixel": 3, "params": 2, "ms": 0})
    out.index.name = None
    return out


def _time_cell(value: Any) -> str:
    """A time cell of :func:`translation_table` as text: integer ms, or ``– (pred. X s)`` for a skipped cell."""
    if isinstance(value, str) and value.startswith("skipped (predicted "):
        return f"{MISSING} (pred. {value.removeprefix('skipped (predicted ').rstrip(')')})"
    return format_number(value, 0)


def speed_table(eval_json: Mapping[str, Any], timing: pd.DataFrame) -> pd.DataFrame:
    """The cost and speed half of :func:`translation_table`, for display: one row per paper-size
    generator; params and GMAC at 256x512 and the median ms per timed size (all threads). A
    skipped cell reads ``– (pred. X s)`` (the predicted time of one forward pass)."""
    full = translation_table(eval_json, timing)
    t = full.drop(index=[MODEL_LABELS["real"]], errors="ignore")
    times = [c for c in t.columns if c.startswith("time ") and c != "time as trained (ms)"]
    ph, pw = PAPER_SIZE
    out = format_frame(t[["params (M), paper config", f"GMAC {ph}x{pw}, paper config"]], {"params": 1, "GMAC": 1})
    out.columns = ["params (M)", f"GMAC {ph}x{pw}"]
    for c in times:
        out[c.removeprefix("time ").removesuffix(" (ms)") + " (ms)"] = [_time_cell(v) for v in t[c]]
    out.index.name = None
    return out


def speedup_display(timing: pd.DataFrame) -> pd.DataFrame:
    """:func:`speedup_table` as text: 2 decimals; where the baseline was skipped, ``– (pred. X)``
    with the speed-up predicted from the baseline's predicted time (never a bare NaN)."""
    wide = speedup_table(timing)
    if wide.empty:
        return wide
    s = speedups(timing)
    index = list(wide.index.names)
    pred = s.pivot_table(index=index, columns="size", values="predicted_speedup", aggfunc="first", dropna=False)
    out = wide.astype(object).copy()
    for key in wide.index:
        for size in wide.columns:
            v = wide.loc[key, size]
            p = pred.loc[key, size] if key in pred.index and size in pred.columns else float("nan")
            out.loc[key, size] = (format_number(v, 2) if is_finite(v) else
                                  f"{MISSING} (pred. {to_float(p):.1f})" if is_finite(p) else MISSING)
    out.index = out.index.set_names(["baseline", "device", "threads", "TF32"])
    return out


def official_display(official: pd.DataFrame) -> pd.DataFrame:
    """:func:`official_table` as text: ms as integers, ratios with 2 decimals, the output difference in
    scientific notation."""
    t = official_table(official)
    diff = "max |ours - official| (ASAPNet)"
    out = format_frame(t.drop(columns=[diff]), {"(ms)": 0, "/": 2})
    out[diff] = [f"{to_float(v):.1e}" if is_finite(v) else MISSING for v in t[diff]]
    return out.set_index(["size", "precision"])
