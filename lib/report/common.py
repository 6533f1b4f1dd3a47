"""What both report sections share: number parsing and formatting, the missing-value marker,
captions, figure saving and embedding."""
from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd

from lib.io import atomic_path

__all__ = [
    "MISSING",
    "FEATURE_NAMES",
    "SCALE_TEXT",
    "to_float",
    "is_finite",
    "hardware_text",
    "run_header",
    "meta_block",
    "scale_caption",
    "save_figure",
    "format_number",
    "format_frame",
    "embed_image",
    "photo_grid",
    "committed_in",
    "provenance_table",
]

MISSING = "–"  # shown where a number was not measured
FEATURE_NAMES = {"avx2": "AVX2", "avx512f": "AVX\u2011512", "avx512_bf16": "AVX\u2011512\u00a0BF16", "amx_bf16": "AMX\u00a0BF16",
                 "amx_tile": "AMX"}  # lib.provenance's cpu_features as the page names them (no line break inside a name)
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
    """``device (cpu model with its speed-relevant features, N threads)`` from a metrics file's
    ``hardware`` block, e.g. ``cpu (AMD EPYC, AVX2/AVX-512/AVX-512 BF16, 2 threads)``; a CPU block
    without ``cpu_features`` says ``CPU features not recorded``."""
    parts = [hw.get("cpu_model") or hw.get("device_name") or ""]
    if str(hw.get("device", "cpu")) == "cpu":
        features = hw.get("cpu_features")
        parts.append("/".join(FEATURE_NAMES.get(f, f) for f in features) if features else "CPU features not recorded")
    parts.append(f"{hw.get('threads', '?')} threads")
    return f"{hw.get('device', '?')} ({', '.join(p for p in parts if p)})"


def run_header(scale: str, title: str, metas: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """Markdown header: title, scale and the code commits that made the numbers (the ``git_revision``
    of each metrics file's ``meta`` block, :func:`meta_block`, in first-seen order).

    Nothing in it depends on when or where the page is rendered, so rendering the same files
    again gives the same page.
    """
    commits = list(dict.fromkeys(str(meta_block(m).get("git_revision")) for m in (metas or {}).values()
                                 if meta_block(m).get("git_revision")))
    code = (f" **Numbers made by the code at commit{'s' if len(commits) > 1 else ''}** "
            + ", ".join(f"`{c}`" for c in commits) + " ([provenance](#provenance): which file each).") if commits else ""
    return f"# {title}\n\n**Scale:** {SCALE_TEXT.get(scale, scale)}.{code}\n"


def meta_block(summary: Mapping[str, Any]) -> Mapping[str, Any]:
    """The provenance block of a metrics file: its ``meta`` where it has one (evaluation files,
    denoiser training summaries), else the file's top level (translation training summaries)."""
    meta = summary.get("meta")
    return meta if isinstance(meta, Mapping) else summary


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
    """Writes ``fig`` to ``out`` atomically, in the format of its suffix (110 dpi, tight box, no date or
    software version in the file)."""
    out = Path(out)
    fmt = out.suffix.lstrip(".")
    # no software version or creation date in the file: the same figure gives the same bytes
    metadata = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None},
                "pdf": {"CreationDate": None, "Creator": None, "Producer": None}}.get(fmt)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=fmt, bbox_inches="tight", dpi=110, metadata=metadata)


def format_number(value: Any, digits: int = 2) -> str:
    """``value`` with ``digits`` decimals (thousands separated when ``digits`` is 0); text is kept as it
    is, numbers written as text too (a weight ``"0.999"`` stays ``0.999``, never ``1.00``); NaN, ``None``
    and ``"nan"`` become :data:`MISSING`; booleans read ``yes`` / ``no``."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
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


def _image_data(path: str | Path, photo: bool, quality: int = 82) -> tuple[str, str, int]:
    """``(mime type, base64 data, width in px)`` of an image file re-encoded for the page: JPEG for
    photos, an adaptive 256-colour palette PNG for line plots."""
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
    return mime, base64.b64encode(buf.getvalue()).decode("ascii"), width


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
    mime, data, width = _image_data(path, photo, quality)
    style = f"max-width:min(100%, {max_width or width}px)"
    return f'<img src="data:{mime};base64,{data}" alt="{html.escape(alt)}" style="{style}">'


def photo_grid(path: str | Path, alt: str, titles: Sequence[str], quality: int = 82) -> str:
    """A stage's photo grid (equal columns, as :func:`lib.translation.image_sets.sample_grid` draws
    them) inlined as JPEG under a row of column titles, one per column, as HTML text.

    Args:
        path: the grid image.
        alt: the alternative text.
        titles: the column titles, left to right (their number is the number of columns).
    """
    mime, data, width = _image_data(path, True, quality)
    cols = "".join(f"<span>{html.escape(t)}</span>" for t in titles)
    return (f'<figure class="photo-grid" style="max-width:min(100%, {width}px)">'
            f'<div class="grid-titles" style="grid-template-columns:repeat({len(titles)}, 1fr)">{cols}</div>'
            f'<img src="data:{mime};base64,{data}" alt="{html.escape(alt)}" style="width:100%"></figure>')


def committed_in(path: str | Path) -> str | None:
    """The 12-digit hash of the last commit that changed ``path`` (repository-relative), or None outside
    git or for an uncommitted file: the provenance of a results file that records no commit."""
    import subprocess

    from lib.paths import ROOT

    try:
        out = subprocess.run(["git", "log", "-1", "--format=%H", "--", str(path)], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return out[:12] or None  # a fixed length: git's own abbreviation grows with the repository


def provenance_table(metas: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per metrics file (repository-relative path -> its ``meta`` block or training
    summary, :func:`meta_block`): scale, commit, device and torch version; :data:`MISSING` where a
    file does not say."""
    rows = []
    for path, summary in metas.items():
        meta = meta_block(summary)
        hw = meta.get("hardware") or meta.get("environment") or {}
        rows.append({"metrics file": path, "scale": meta.get("scale") or MISSING,
                     "commit": meta.get("git_revision") or MISSING,
                     "device": hardware_text(hw) if hw else MISSING, "torch": hw.get("torch_version") or MISSING})
    return pd.DataFrame(rows).set_index("metrics file")
