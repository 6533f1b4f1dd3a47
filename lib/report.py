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
    "plot_gan_losses",
    "training_table",
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
        _save(grid.figure, out)
    return grid.figure


def plot_gan_losses(losses: Mapping[str, pd.DataFrame], out: str | Path | None = None) -> plt.Figure:
    """GAN loss curves per model (one column per model; D real/fake and G terms per row).

    Args:
        losses: model name -> the trainer's ``losses.csv`` as a frame.
        out: optional image file to write (atomically).
    """
    terms = [("d_real", "D real"), ("d_fake", "D fake"), ("g_gan", "G adversarial"), ("g_feat", "G feature matching")]
    fig, axes = plt.subplots(1, len(losses), figsize=(5.5 * len(losses), 3.4), squeeze=False)
    for ax, (name, frame) in zip(axes[0], losses.items()):
        for col, label in terms:
            if col in frame and frame[col].notna().any():
                smooth = frame[col].rolling(10, min_periods=1).mean()
                ax.plot(frame["step"], smooth, label=label)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_ylabel("loss (rolling mean of 10 logged points)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    if out is not None:
        _save(fig, out)
    return fig


def _save(fig: plt.Figure, out: str | Path) -> None:
    from lib.io import atomic_path

    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip("."), bbox_inches="tight", dpi=110)


def training_table(summaries: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per trained model: steps, epochs, wall time, final losses, VGG used, hardware."""
    rows = []
    for name, s in summaries.items():
        hw = s.get("hardware", {})
        row = {
            "model": name,
            "params (M)": round(s.get("generator_params", float("nan")) / 1e6, 2),
            "steps": s.get("steps"),
            "epochs": s.get("epochs"),
            "wall (min)": round(s.get("wall_seconds", float("nan")) / 60, 1),
            "VGG loss": s.get("vgg_used"),
            "device": f"{hw.get('device', '?')} x{hw.get('threads', '?')}",
        }
        row.update({f"final {k}": round(v, 4) for k, v in s.get("final_losses", {}).items()})
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")
