"""The speed of the generators whose quality the report states: each study's trained generators, as the
timing stage timed them (:mod:`lib.translation.trained_timing`).

The timing stage times every study's evaluated generator at its study size (kind ``trained``) and the
same architecture at the paper's 256x512 (kind ``trained_resized``), fp32 and bf16, in one interleaved
run; the rows carry the study in ``dataset``. Timing files written before it recorded the study (no
``dataset`` column) hold ``trained`` fp32 rows of one study only: they are taken as the rows of the study
evaluated at their size. Every speed-up here divides two medians of that one run.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from lib.report.common import is_finite, to_float

__all__ = ["TRAINED_KINDS", "REFERENCE", "trained_rows", "study_timing", "trained_speedups", "quoted_speedup"]

TRAINED_KINDS = ("trained", "trained_resized")
REFERENCE = "asapnet"  # the model whose time divides the others'
QUOTED_SIZE = (256, 512)  # the size of the summary's speed-up: the paper's Cityscapes size


def _size_of(rows: pd.DataFrame) -> pd.Series:
    return rows["height"].astype(int).astype(str) + "x" + rows["width"].astype(int).astype(str)


def trained_rows(timing: pd.DataFrame, dataset: str, size: Any = None) -> pd.DataFrame:
    """The timing rows of study ``dataset``'s trained generators: kinds :data:`TRAINED_KINDS`, the
    all-cores setting (``threads_setting`` 0), TF32 off or not applicable; ordered by kind (the study
    size first), size, model and dtype as in the file (``dtype`` ``fp32`` where a file records none).

    Args:
        timing: ``translation_timing.csv`` as a frame.
        dataset: the study.
        size: the study's evaluated size ``[H, W]`` (``translation_eval.json``'s ``meta.size``): the
            rows of a file without ``dataset`` are this study's where they are ``trained`` rows of this
            size; without it such rows are not taken.
    """
    rows = timing[timing["kind"].isin(TRAINED_KINDS) & (timing["threads_setting"] == 0)
                  & timing["tf32"].astype(str).isin(["-", "off"])]
    study = rows["dataset"] if "dataset" in rows.columns else pd.Series(float("nan"), index=rows.index)
    named = study.notna() & (study.astype(str) != "")
    mine = named & (study.astype(str) == dataset)
    legacy = ~named & (rows["kind"] == "trained") & (size is not None)
    if size is not None:
        legacy &= (rows["height"] == int(size[0])) & (rows["width"] == int(size[-1]))
    out = rows[mine | legacy]
    out = out.assign(dtype=out["dtype"].fillna("fp32") if "dtype" in out.columns else "fp32")  # older files: fp32 only
    order = {k: i for i, k in enumerate(TRAINED_KINDS)}
    return out.assign(_k=out["kind"].map(order), _px=out["height"] * out["width"]).sort_values(
        ["_k", "_px"], kind="stable").drop(columns=["_k", "_px"])


def study_timing(timing: pd.DataFrame, dataset: str, size: Any = None) -> pd.DataFrame:
    """``timing`` as one study sees it: the paper-configuration rows, and of the trained generators only
    the study's fp32 rows at its evaluated size (kind ``trained``, :func:`trained_rows`). The functions of
    :mod:`lib.report.translation` that read "the generator as trained" take this frame (their ``ms /
    image`` column and time-vs-quality points are then the study's)."""
    mine = trained_rows(timing, dataset, size)
    mine = mine[(mine["kind"] == "trained") & (mine["dtype"] == "fp32")]
    return pd.concat([timing[~timing["kind"].isin(TRAINED_KINDS)], mine], ignore_index=True)


def trained_speedups(timing: pd.DataFrame, dataset: str, size: Any = None) -> pd.DataFrame:
    """:data:`REFERENCE`'s speed-up over each other trained generator of the study, per size and dtype:
    ``baseline median_ms / reference median_ms`` of the same run (only cells both timed).

    Returns:
        Columns ``kind``, ``size`` (``"HxW"``), ``height``, ``width``, ``dtype``, ``baseline``,
        ``reference_ms``, ``baseline_ms``, ``speedup``; the study size first, fp32 before bf16.
    """
    cols = ["kind", "size", "height", "width", "dtype", "baseline", "reference_ms", "baseline_ms", "speedup"]
    rows = trained_rows(timing, dataset, size)
    rows = rows[rows["status"] == "ok"]
    keys = ["kind", "height", "width", "dtype"]
    ref = rows[rows["model"] == REFERENCE][keys + ["median_ms"]].rename(columns={"median_ms": "reference_ms"})
    base = rows[rows["model"] != REFERENCE][keys + ["model", "median_ms"]].rename(
        columns={"model": "baseline", "median_ms": "baseline_ms"})
    if ref.empty or base.empty:
        return pd.DataFrame(columns=cols)
    out = base.merge(ref.drop_duplicates(keys), on=keys)
    out["speedup"] = out["baseline_ms"].astype(float) / out["reference_ms"].astype(float)
    out["size"] = _size_of(out)
    order = {"fp32": 0, "bf16": 1}
    out = out.assign(_k=out["kind"].map({k: i for i, k in enumerate(TRAINED_KINDS)}), _px=out["height"] * out["width"],
                     _d=out["dtype"].map(order).fillna(2))
    out = out.sort_values(["_k", "_px", "_d"], kind="stable")
    return out[cols].reset_index(drop=True)


def quoted_speedup(timing: pd.DataFrame | None, dataset: str, size: Any = None,
                   baseline: str = "pix2pixhd") -> dict[str, Any] | None:
    """The speed-up the summary quotes for the study: the trained generators' fp32 ratio at 256x512
    (:data:`QUOTED_SIZE`) where timed, else at the study size; with the bf16 ratio of the same size
    where timed. ``None`` without a timing of both trained generators.

    Returns:
        ``{"size": "HxW", "kind": ..., "fp32": ratio, "bf16": ratio or None, "reference_ms": ...,
        "baseline_ms": ...}`` (the fp32 medians).
    """
    if timing is None or timing.empty or "kind" not in timing:
        return None
    s = trained_speedups(timing, dataset, size)
    s = s[(s["baseline"] == baseline) & s["speedup"].map(is_finite)]
    fp32 = s[s["dtype"] == "fp32"]
    if fp32.empty:
        return None
    qh, qw = QUOTED_SIZE
    paper = fp32[(fp32["height"] == qh) & (fp32["width"] == qw)]
    pick = paper.iloc[0] if len(paper) else fp32.iloc[0]
    bf16 = s[(s["dtype"] == "bf16") & (s["size"] == pick["size"]) & (s["kind"] == pick["kind"])]
    return {"size": pick["size"], "kind": pick["kind"], "fp32": to_float(pick["speedup"]),
            "bf16": to_float(bf16["speedup"].iloc[0]) if len(bf16) else None,
            "reference_ms": to_float(pick["reference_ms"]), "baseline_ms": to_float(pick["baseline_ms"])}
