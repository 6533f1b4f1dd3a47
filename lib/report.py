"""Tables and figures for ``reports/index.html``, built only from committed metrics files.

The report notebook calls these functions; nothing here computes a metric. Every table comes
with a caption that states the scale (data, resolution, images, hardware) of its numbers.
"""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Mapping

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from lib.paths import git_revision

__all__ = [
    "run_header",
    "scale_caption",
    "dncnn_official_table",
    "plot_dncnn_per_image",
]

SCALE_TEXT = {
    "smoke": "SMOKE scale (a few cropped images: checks that the pipeline runs; numbers are not results)",
    "default": "default scale (real data at reduced size, trained on a 2-core CPU)",
    "paper": "paper scale",
}


def run_header(scale: str, title: str) -> str:
    """Markdown header: title, scale, code revision and render date."""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"# {title}\n\n"
        f"**Scale:** {SCALE_TEXT.get(scale, scale)}. **Code:** commit `{git_revision()}`. "
        f"**Rendered:** {when}.\n"
    )


def scale_caption(meta: Mapping[str, Any]) -> str:
    """One line stating where the numbers of a metrics file come from.

    Args:
        meta: the ``meta`` block of a metrics JSON (scale, hardware, threads, torch, protocol).
    """
    hw = meta.get("hardware", {})
    parts = [
        f"scale: {meta.get('scale')}",
        f"device: {hw.get('device', '?')} ({hw.get('cpu', '')}, {hw.get('threads', '?')} threads)".replace(" (, ", " ("),
        f"torch {hw.get('torch_version', '?')}",
        f"commit {meta.get('git_revision', '?')}",
    ]
    if meta.get("crop"):
        parts.insert(1, f"centre crops of {meta['crop']} px")
    if meta.get("max_images"):
        parts.insert(1, f"first {meta['max_images']} images per set")
    return "; ".join(parts) + "."


def dncnn_official_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Measured vs published PSNR (dB) and measured SSIM per test set, model and sigma.

    Args:
        metrics: the content of ``dncnn_official.json`` (``rows`` with set, model, sigma,
            n_images, psnr, ssim, psnr_noisy, published_psnr).

    Returns:
        A frame indexed by (test set, model, images) with, per sigma, the columns
        ``PSNR``, ``published``, ``diff`` (measured - published) and ``SSIM``.
    """
    rows = pd.DataFrame(metrics["rows"])
    rows["diff"] = rows["psnr"] - rows["published_psnr"]
    wide = rows.pivot_table(
        index=["set", "model", "n_images"], columns="sigma",
        values=["psnr", "published_psnr", "diff", "ssim"], aggfunc="first",
    )
    wide = wide.rename(columns={"psnr": "PSNR", "published_psnr": "published", "diff": "diff", "ssim": "SSIM"})
    wide = wide.swaplevel(0, 1, axis=1).sort_index(axis=1, level=0, sort_remaining=False)
    order = ["PSNR", "published", "diff", "SSIM"]
    sigmas = sorted({c[0] for c in wide.columns})
    wide = wide[[(s, m) for s in sigmas for m in order]]
    wide.columns = pd.MultiIndex.from_tuples([(f"sigma {s:g}", m) for s, m in wide.columns])
    wide.index = wide.index.set_names(["test set", "model", "images"])
    return wide.round(4)


def plot_dncnn_per_image(per_image: pd.DataFrame, out: str | Path | None = None) -> plt.Figure:
    """Per-image PSNR gain over the noisy input, per test set, model and sigma (box plot)."""
    frame = per_image.assign(gain=per_image["psnr"] - per_image["psnr_noisy"])
    grid = sns.catplot(
        data=frame, x="sigma", y="gain", hue="model", col="set", kind="box",
        height=3.2, aspect=1.1, sharey=False,
    )
    grid.set_axis_labels("noise sigma (0-255)", "PSNR gain over noisy input (dB)")
    grid.figure.suptitle("Official DnCNN weights: per-image PSNR gain", y=1.04)
    if out is not None:
        from lib.io import atomic_path

        out = Path(out)
        with atomic_path(out) as tmp:
            grid.figure.savefig(tmp, format=out.suffix.lstrip("."), bbox_inches="tight", dpi=110)
    return grid.figure
