"""What both report sections share: number parsing, the missing-value marker, captions, figure saving."""
from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import Any, Mapping

import matplotlib.pyplot as plt

from lib.io import atomic_path
from lib.paths import git_revision

__all__ = [
    "MISSING",
    "SCALE_TEXT",
    "to_float",
    "is_finite",
    "hardware_text",
    "run_header",
    "scale_caption",
    "save_figure",
]

MISSING = "–"  # shown where a number was not measured
SCALE_TEXT = {
    "smoke": "SMOKE scale (a few cropped images: checks that the pipeline runs; numbers are not results)",
    "default": "default scale (real data at reduced size, trained on a 2-core CPU)",
    "paper": "paper scale",
}


def to_float(value: Any) -> float:
    """A metrics-file value as float; NaN for missing values and NaN written as a string."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def is_finite(value: Any) -> bool:
    """Whether a metrics-file value is a finite number (``None``, ``"nan"`` and text are not)."""
    return math.isfinite(to_float(value))


def hardware_text(hw: Mapping[str, Any]) -> str:
    """``device (cpu model, N threads)`` from a metrics file's ``hardware`` block."""
    return f"{hw.get('device', '?')} ({hw.get('cpu_model', '')}, {hw.get('threads', '?')} threads)".replace(" (, ", " (")


def run_header(scale: str, title: str) -> str:
    """Markdown header: title, scale, code revision and render date."""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"# {title}\n\n"
        f"**Scale:** {SCALE_TEXT.get(scale, scale)}. **Code:** commit `{git_revision()}`. "
        f"**Rendered:** {when}.\n"
    )


def scale_caption(meta: Mapping[str, Any]) -> str:
    """One line stating where the numbers of a metrics file come from (their provenance).

    Args:
        meta: the ``meta`` block of a metrics JSON (scale, hardware, threads, torch, protocol).
    """
    hw = meta.get("hardware", {})
    parts = [
        f"scale: {meta.get('scale')}",
        f"device: {hardware_text(hw)}",
        f"torch {hw.get('torch_version', '?')}",
        f"commit {meta.get('git_revision', '?')}",
    ]
    if meta.get("crop"):
        parts.insert(1, f"centre crops of {meta['crop']} px")
    if meta.get("max_images"):
        parts.insert(1, f"first {meta['max_images']} images per set")
    return "; ".join(parts) + "."


def save_figure(fig: plt.Figure, out: str | Path) -> None:
    """Writes ``fig`` to ``out`` atomically, in the format of its suffix (110 dpi, tight box)."""
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip("."), bbox_inches="tight", dpi=110)
