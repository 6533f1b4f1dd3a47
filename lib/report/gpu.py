"""The GPU label -> photo run in the report: one table and its caption from the JSON that
``benchmarks/gpu_translation.py`` writes, or a sentence saying that it has not run.

That script trains ASAPNet and pix2pixHD at the paper's widths on one CUDA GPU, each within the
same wall-time budget, and evaluates them with the translation protocol
(docs/design.md#translation-protocol); nothing here computes a metric.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from lib.io import read_json
from lib.report.common import is_finite, to_float
from lib.report.translation import MODEL_LABELS

__all__ = ["RESULTS_FILE", "NOT_RUN", "DIGITS", "gpu_translation_section", "gpu_table", "gpu_caption"]

RESULTS_FILE = "benchmarks/results/gpu_translation.json"  # relative to the project root
NOT_RUN = (
    "**Label → photo training on a GPU: not run yet: no GPU was available.** "
    "`benchmarks/gpu_translation.py` is prepared for one CUDA GPU (about 10 minutes on an H200): it trains "
    "ASAPNet and pix2pixHD at the paper's widths on Facades 256x256, each within the same wall-time budget, "
    f"evaluates them with this page's protocol and writes `{RESULTS_FILE}`, which this section then shows."
)
DIGITS = {"params (M)": 1, "steps": 0, "train min": 1, "img/s": 0, "epochs": 1, "FID": 1, "KID": 3, "mIoU": 3,
          "pixel acc.": 3, "ms": 2}  # decimals for lib.report.common.format_frame


def gpu_table(data: Mapping[str, Any]) -> pd.DataFrame:
    """One row per trained model (in training order) and the real photos: size, steps and
    training time, quality (the smoothed final values where the run has learning curves; pixel
    accuracy of the last step), and the batch-1 inference time ``ms HxW precision`` at each timed
    size and precision. NaN where a value was not measured."""
    quality = {r["model"]: r for r in data.get("quality", [])}
    times: dict[str, dict[str, float]] = {}
    for r in data.get("timing", []):
        times.setdefault(r["model"], {})[f"ms {r['height']}x{r['width']} {r['precision']}"] = to_float(r.get("median_ms"))
    time_columns = list(dict.fromkeys(c for t in times.values() for c in t))
    models = data.get("models", {})
    rows = []
    for m in [*models, *(["real"] if "real" in quality else [])]:
        info, q = models.get(m, {}), quality.get(m, {})
        final = "_smoothed" if is_finite(q.get("kid_smoothed")) else ""
        rows.append({
            "model": MODEL_LABELS.get(m, m),
            "params (M)": to_float(info.get("params")) / 1e6,
            "steps": to_float(info.get("steps")),
            "train min": to_float(info.get("train_seconds")) / 60,
            "img/s": to_float(info.get("images_per_second")),
            "epochs": to_float(info.get("epochs")),
            "FID": to_float(q.get(f"fid{final}")),
            "KID": to_float(q.get(f"kid{final}")),
            "mIoU": to_float(q.get(f"miou{final}")),
            "pixel acc.": to_float(q.get("pixel_accuracy")),
            **times.get(m, {}),
        })
    columns = ["model", *(c for c in DIGITS if c != "ms"), *time_columns]
    return pd.DataFrame(rows, columns=columns).set_index("model")


def gpu_caption(data: Mapping[str, Any]) -> str:
    """Where the table's numbers come from: GPU, versions, data, batch, precision, budget, protocol."""
    env = data.get("environment", {})
    h, w = data.get("size", ["?", "?"])
    models = data.get("models", {})
    steps = ", ".join(f"{MODEL_LABELS.get(m, m)} {i.get('steps')} steps"
                      + (" (stopped by the budget)" if i.get("stopped_by_budget") else "") for m, i in models.items())
    ema = {i.get("recipe", {}).get("ema_decay") for i in models.values()}
    timing = (data.get("timing") or [{}])[0]
    parts = [
        f"**GPU run:** {env.get('device_name', '?')}, torch {env.get('torch_version', '?')}, "
        f"CUDA {env.get('cuda_version') or '–'}, cuDNN {env.get('cudnn_version') or '–'}.",
        f"CMP Facades {h}x{w}, {data.get('train_items', '?')} training / {data.get('test_items', '?')} test pairs, "
        f"batch {data.get('batch', '?')}, {data.get('precision', '?')} autocast, paper widths "
        f"(`benchmarks/gpu_translation.py`). Budget: {to_float(data.get('minutes_per_model')):g} min of wall time per "
        f"model ({data.get('budget_rule', '')}): {steps}; EMA decay {', '.join(str(e) for e in sorted(ema, key=str))}.",
        "FID/KID/mIoU: " + (f"smoothed final values ({data['smoothing']}); " if data.get("smoothing") else "last step; ")
        + "pixel acc.: last step; "
        + f"N = {data.get('n_test_images', '?')} test images; {data.get('segmenter', {}).get('description', '')}. "
        "Real photos: FID/KID of as many real training photos against the test photos, mIoU of the segmenter on the "
        f"test photos (the ceiling). ms: the trained generator, batch 1, median of {timing.get('runs', '?')} runs "
        f"({timing.get('timer', '?')}), fp32 with TF32 off and bf16 autocast. "
        f"Total run {to_float(data.get('wall_seconds')) / 60:.1f} min.",
    ]
    if data.get("fid_note"):
        parts.append(f"*{data['fid_note']}*")
    if not data.get("complete"):
        parts.insert(0, f"**Incomplete run** (last phase written: {data.get('phase', '?')}); missing values are `–`.")
    if data.get("smoke"):
        parts.insert(0, "**SMOKE run** (toy widths and sizes, a few images: checks that the script runs; the numbers "
                        "are not results).")
    return " ".join(parts)


def gpu_translation_section(path: str | os.PathLike) -> tuple[pd.DataFrame | None, str]:
    """``(table, caption)`` of the GPU run from its JSON, or ``(None, NOT_RUN)`` when the file does not exist."""
    if not Path(path).is_file():
        return None, NOT_RUN
    data = read_json(path)
    return gpu_table(data), gpu_caption(data)
