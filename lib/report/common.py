"""What both report sections share: number parsing and formatting, the missing-value marker,
captions, figure saving and embedding."""
from __future__ import annotations

import base64
import datetime
import html
import io
import math
from pathlib import Path
from typing import Any, Mapping

import matplotlib.pyplot as plt
import pandas as pd

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
    "format_number",
    "format_frame",
    "embed_image",
    "provenance_table",
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


def format_number(value: Any, digits: int = 2) -> str:
    """``value`` with ``digits`` decimals (thousands separated when ``digits`` is 0); text is kept;
    NaN, ``None`` and ``"nan"`` become :data:`MISSING`; booleans read ``yes`` / ``no``."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and not is_finite(value):
        return MISSING if value.strip().lower() in ("", "nan", "none") else value
    if not is_finite(value):
        return MISSING
    return f"{to_float(value):,.0f}" if digits == 0 else f"{to_float(value):.{digits}f}"


def format_frame(frame: pd.DataFrame, digits: Mapping[str, int] | None = None, default: int = 2) -> pd.DataFrame:
    """A copy of ``frame`` as text for display: every number rounded (no NaN cells, :data:`MISSING` instead).

    Args:
        frame: a table; its column labels may be tuples (a MultiIndex).
        digits: decimals by column: the first key that equals, or is contained in, any level of
            the column label wins (e.g. ``{"ms": 0, "PSNR": 2, "SSIM": 4}``).
        default: decimals of the other numeric columns.
    """
    digits = digits or {}

    def decimals(col: Any) -> int:
        levels = [str(x) for x in (col if isinstance(col, tuple) else (col,))]
        for key, n in digits.items():
            if any(key == lv or key in lv for lv in levels):
                return n
        return default

    out = frame.copy().astype(object)
    for col in frame.columns:
        n = decimals(col)
        out[col] = [format_number(v, n) for v in frame[col]]
    return out


def embed_image(path: str | Path, alt: str, photo: bool = False, max_width: int | None = None, quality: int = 82) -> str:
    """An ``<img>`` tag with the image inlined, for the self-contained HTML report.

    Photos (sample grids, crops) are re-encoded as JPEG (``quality``); line plots stay PNG,
    reduced to an adaptive 256-colour palette. The file itself is not changed.

    Args:
        path: the image file (PNG as written by the stages).
        alt: the alternative text (what the image shows).
        photo: JPEG instead of palette PNG.
        max_width: CSS maximum width in pixels (default: the image's own width).
    """
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        buf = io.BytesIO()
        if photo:
            im.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=True, progressive=True)
            mime = "image/jpeg"
        else:
            im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
            mime = "image/png"
        width = im.width
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    style = f"max-width:min(100%, {max_width or width}px)"
    return f'<img src="data:{mime};base64,{data}" alt="{html.escape(alt)}" style="{style}">'


def provenance_table(metas: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per metrics file (repository-relative path -> its ``meta`` block or training
    summary): scale, commit, device and torch version; :data:`MISSING` where a file does not say."""
    rows = []
    for path, meta in metas.items():
        hw = meta.get("hardware", {})
        rows.append({"metrics file": path, "scale": meta.get("scale") or MISSING,
                     "commit": meta.get("git_revision") or MISSING,
                     "device": hardware_text(hw) if hw else MISSING, "torch": hw.get("torch_version") or MISSING})
    return pd.DataFrame(rows).set_index("metrics file")
