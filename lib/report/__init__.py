"""Tables, figures and captions of ``reports/index.html``, built only from committed metrics files.

The report notebook (``notebooks/99-render-report.ipynb``) calls these functions; nothing here
computes a metric. :mod:`lib.report.common` holds what both studies share (number formatting,
captions, figure saving and embedding), :mod:`lib.report.summary` the answers at the top of the
page and the headline files of ``dvc metrics show``, :mod:`lib.report.translation` (numbers) and
:mod:`lib.report.translation_tables` (their display) the label -> photo study and
:mod:`lib.report.denoise` the denoising study (its runs and fronts in :mod:`lib.report.denoise_runs`,
the PSNR-vs-time figure in :mod:`lib.report.denoise_front`, the findings in :mod:`lib.report.denoise_findings`,
the grid-size check in :mod:`lib.report.denoise_grid`); :mod:`lib.report.machines` says where a number
was measured (the machine of a results file, whether two files share one) and how much a time varied.
Every table comes with a caption that states the scale (data, resolution, images, machine, commit)
of its numbers (docs/design.md#report), and rendering the same files gives the same page
(``scripts/render_report.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ReportConfig"]


@dataclass(frozen=True)
class ReportConfig:
    """``report``: what the HTML report shows."""

    title: str = "ASAPNet reproduction"
    crops_sigma: tuple[float, ...] = (25.0, 50.0)  # noise levels of the denoising crop figure (stage 08)
    # noise level (0..255) of the single-sigma numbers: the ablation's gain column and the findings
    headline_sigma: float = 25.0

    def __post_init__(self) -> None:
        if not self.crops_sigma or any(not 0 < x <= 255 for x in self.crops_sigma):
            raise ValueError(f"crops_sigma={list(self.crops_sigma)} must be noise levels in (0, 255]")
        if not 0 < self.headline_sigma <= 255:
            raise ValueError(f"headline_sigma={self.headline_sigma} must be a noise level in (0, 255]")
