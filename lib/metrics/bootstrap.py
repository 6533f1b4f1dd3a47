"""Bootstrap percentile intervals of FID and KID over both image sets (docs/design.md#translation-protocol).

Both the real and the generated test images are samples of their distributions, so each
replicate resamples both, independently and with replacement, each at its own size; the
interval is the 2.5 / 97.5 percentile range of the replicates (:data:`BOOT_PERCENTILES`).
Holding the real set fixed (``resample_real=False``) gives the narrower spread over the
generated images alone.
"""
from __future__ import annotations

import numpy as np

from lib.metrics.fid import fid_from_features, mmd2_unbiased

__all__ = ["BOOT_PERCENTILES", "percentile_summary", "bootstrap_fid", "bootstrap_kid"]

BOOT_PERCENTILES = (2.5, 97.5)  # two-sided 95% percentile interval


def percentile_summary(values: np.ndarray, n_boot: int | None = None) -> dict:
    """``{"low", "high"}`` (:data:`BOOT_PERCENTILES`), ``"std"`` (ddof = 1), ``"mean"``, ``"n_boot"``
    and ``"n_finite"`` of bootstrap replicates. NaN replicates are left out; with fewer than 2
    finite ones (only tiny sets) the summary is NaN."""
    values = np.asarray(values, dtype=np.float64)
    n_boot = int(values.size if n_boot is None else n_boot)
    values = values[np.isfinite(values)]
    if values.size < 2:
        nan = float("nan")
        return {"low": nan, "high": nan, "std": nan, "mean": nan, "n_boot": n_boot, "n_finite": int(values.size)}
    low, high = np.percentile(values, BOOT_PERCENTILES)
    return {"low": float(low), "high": float(high), "std": float(values.std(ddof=1)), "mean": float(values.mean()),
            "n_boot": n_boot, "n_finite": int(values.size)}


def _features(f: np.ndarray, label: str) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"{label} features must be (N >= 2, D), got {f.shape}")
    return f


def _replicates(f_real: np.ndarray, f_fake: np.ndarray, n_boot: int, seed: int, resample_real: bool, stat) -> np.ndarray:
    """``stat(real indices, fake indices)`` for ``n_boot`` replicates, each drawing N_real real and
    N_fake generated rows with replacement (the real rows in order when ``resample_real`` is false);
    the features are already checked by :func:`_features`."""
    if f_real.shape[1] != f_fake.shape[1]:
        raise ValueError(f"feature sizes differ: {f_real.shape} vs {f_fake.shape}")
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot}")
    rng = np.random.default_rng(seed)
    n_real, n_fake = f_real.shape[0], f_fake.shape[0]
    values = np.empty(n_boot)
    for b in range(n_boot):
        i_real = rng.integers(0, n_real, n_real) if resample_real else np.arange(n_real)
        values[b] = stat(i_real, rng.integers(0, n_fake, n_fake))
    return values


def bootstrap_fid(f_real: np.ndarray, f_fake: np.ndarray, n_boot: int = 20, seed: int = 0, method: str = "svd",
                  resample_real: bool = True) -> dict:
    """Bootstrap percentile interval of FID, resampling the real and the generated images independently.

    Each replicate computes :func:`lib.metrics.fid.fid_from_features` (by default with the fast
    exact ``"svd"`` method) on a resample of each set. Duplicated rows lower the effective sample
    size and FID is biased upward at small N, so the replicates lie above the point estimate on
    average (``mean`` shows by how much): read the interval as the spread of FID at this N, not
    as a bias-corrected interval.

    Args:
        f_real: (N_real, D) features of real images.
        f_fake: (N_fake, D) features of generated images.
        n_boot: number of replicates (>= 2).
        seed: seed of the resampling (``np.random.default_rng``).
        method: see :func:`lib.metrics.fid.fid_from_features`.
        resample_real: resample the real set too (the protocol); ``False`` holds it fixed.

    Returns:
        :func:`percentile_summary` of the replicates.
    """
    f_real, f_fake = _features(f_real, "real"), _features(f_fake, "generated")
    values = _replicates(f_real, f_fake, n_boot, seed, resample_real,
                         lambda ir, i_f: fid_from_features(f_real[ir], f_fake[i_f], method))
    return percentile_summary(values, n_boot)


def bootstrap_kid(f_real: np.ndarray, f_fake: np.ndarray, n_boot: int = 20, seed: int = 0,
                  resample_real: bool = True) -> dict:
    """Bootstrap percentile interval of KID, resampling the real and the generated images independently.

    Each replicate computes the unbiased MMD^2 (the KID kernel) between the two whole resamples
    (:func:`lib.metrics.fid.mmd2_unbiased`). Resampled duplicates are handled as the U-statistic
    handles the diagonal: a within-set pair of a row with a copy of itself is left out. The
    expected replicate then equals the whole-set MMD^2_u of the original features, so the
    replicates are centred on the estimate (the plain ``(sum - trace) / (m (m - 1))`` would count
    ``k(x, x)`` for every duplicate and shift them up). The point estimate
    (:func:`lib.metrics.fid.kid_from_features`, a mean over random subsets) estimates the same
    quantity as the whole-set statistic. A replicate with fewer than 2 distinct rows on a side
    (possible only for tiny sets) is NaN and left out.

    Args:
        f_real: (N_real, D) features of real images.
        f_fake: (N_fake, D) features of generated images.
        n_boot: number of replicates (>= 2).
        seed: seed of the resampling (``np.random.default_rng``).
        resample_real: resample the real set too (the protocol); ``False`` holds it fixed.

    Returns:
        :func:`percentile_summary` of the replicates.
    """
    f_real, f_fake = _features(f_real, "real"), _features(f_fake, "generated")
    values = _replicates(f_real, f_fake, n_boot, seed, resample_real,
                         lambda ir, i_f: mmd2_unbiased(f_real, f_fake, ir, i_f))
    return percentile_summary(values, n_boot)
