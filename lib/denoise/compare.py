"""Comparisons of the denoising study: which runs are compared, and paired bootstrap intervals.

The best ASAPNet-derived run at the shared budget (:func:`best_variant`), our reference CNN
(DnCNN-20, :func:`reference_cnn`) and the plain CNN the verdict rests on (:func:`rival_cnn`);
the paired per-image bootstrap of a PSNR difference (:func:`paired_bootstrap`) for the best run
against a CNN and for every run against the run it changes (:func:`ablation_deltas`); and
intervals for every model's mean PSNR from one shared image resample (:func:`psnr_intervals`).
:mod:`lib.denoise.evaluate` produces the per-image rows these read.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from lib.denoise.study import TEST_SETS_FOR, DenoiseRun

__all__ = ["best_variant", "reference_cnn", "rival_cnn", "paired_bootstrap", "paired_differences",
           "ablation_deltas", "psnr_intervals"]


def best_variant(summary: pd.DataFrame, runs: Mapping[str, DenoiseRun], set_name: str = "bsd68",
                 sigma: float = 25.0, exclude: Sequence[str] = ()) -> str | None:
    """The ASAPNet-denoise run with the highest mean PSNR on ``set_name`` at ``sigma``, runs in
    ``exclude`` left out (the longer-training rows, so that the choice is made at equal budget)."""
    asap = [n for n, r in runs.items() if r.model == "asapnet_denoise" and n not in exclude]
    rows = summary[(summary["set"] == set_name) & (summary["sigma"] == float(sigma)) & summary["model"].isin(asap)]
    if rows.empty:
        return None
    return str(rows.sort_values("psnr", ascending=False)["model"].iloc[0])


def reference_cnn(runs: Mapping[str, DenoiseRun], costs: Mapping[str, float]) -> str | None:
    """The reference CNN: of the gray DnCNN-style runs, the one with the most MACs (``costs``:
    run -> GMAC per image), i.e. our DnCNN-20 when it was trained; None without such a run."""
    cnns = [n for n, r in runs.items() if r.model == "dncnn" and r.channels == 1 and n in costs]
    return max(cnns, key=lambda n: costs[n]) if cnns else None


def paired_bootstrap(per_image: pd.DataFrame, model_a: str, model_b: str, set_name: str, sigma: float,
                     n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict | None:
    """Mean PSNR difference ``a - b`` over the images both models were scored on, with a paired
    percentile bootstrap interval: the images are resampled with replacement ``n_boot`` times
    and the mean of the per-image differences is taken each time.

    Returns:
        ``dict(set, sigma, model_a, model_b, n_images, mean_diff, ci_low, ci_high, level,
        n_boot, wins_a)`` (``wins_a``: images where ``a`` is better), or None when the two
        share no image.
    """
    rows = per_image[(per_image["set"] == set_name) & (per_image["sigma"] == float(sigma))]
    a = rows[rows["model"] == model_a].set_index("name")["psnr"]
    b = rows[rows["model"] == model_b].set_index("name")["psnr"]
    names = sorted(set(a.index) & set(b.index))
    if not names:
        return None
    diff = a.loc[names].to_numpy(dtype=float) - b.loc[names].to_numpy(dtype=float)  # (N,)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(n_boot, len(diff)))  # (n_boot, N) resampled image indices
    means = diff[idx].mean(axis=1)  # (n_boot,)
    tail = (1.0 - level) / 2
    return {"set": set_name, "sigma": float(sigma), "model_a": model_a, "model_b": model_b, "n_images": len(names),
            "mean_diff": float(diff.mean()), "ci_low": float(np.quantile(means, tail)),
            "ci_high": float(np.quantile(means, 1 - tail)), "level": level, "n_boot": int(n_boot),
            "wins_a": int((diff > 0).sum())}


def paired_differences(per_image: pd.DataFrame, best: str | None, reference: str | None, sigmas: Sequence[float],
                       n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """:func:`paired_bootstrap` of the best ASAPNet variant against a CNN (``reference``) on every
    gray test set and sigma they were both scored on (empty when either is missing)."""
    if not best or not reference:
        return []
    out = []
    for set_name in TEST_SETS_FOR[1]:
        for sigma in sigmas:
            r = paired_bootstrap(per_image, best, reference, set_name, sigma, n_boot, seed)
            if r is not None:
                out.append(r)
    return out


def ablation_deltas(per_image: pd.DataFrame, parents: Mapping[str, str | None], sigmas: Sequence[float],
                    n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """:func:`paired_bootstrap` of every run against the run it changes (``parents``: run -> that run,
    :func:`lib.denoise.study.run_parents`) on every test set and sigma both were scored on: the
    ablation's per-change deltas with their intervals."""
    out = []
    sets = list(dict.fromkeys(per_image["set"])) if len(per_image) else []
    for run, parent in parents.items():
        if not parent:
            continue
        for set_name in sets:
            for sigma in sigmas:
                r = paired_bootstrap(per_image, run, parent, set_name, sigma, n_boot, seed)
                if r is not None:
                    out.append(r)
    return out


def psnr_intervals(per_image: pd.DataFrame, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Mean PSNR of every model per (set, sigma) with a paired percentile bootstrap interval: the images
    every model of that (set, sigma) was scored on are resampled once per replicate and the same
    resample is used for every model, so the intervals of two models move together as a paired
    comparison would (a model scored on fewer images, BM3D on a subset, gets its own resample).

    Returns:
        Rows ``set, sigma, model, n_images, psnr, ci_low, ci_high, level, n_boot``.
    """
    rows = []
    tail = (1.0 - level) / 2
    for (set_name, sigma), g in per_image.groupby(["set", "sigma"], sort=False):
        table = g.pivot_table(index="name", columns="model", values="psnr", sort=False)  # (images, models)
        groups: dict[tuple, list[str]] = {}
        for model in table.columns:
            names = tuple(sorted(table.index[table[model].notna()]))
            groups.setdefault(names, []).append(model)
        for names, models in groups.items():
            values = table.loc[list(names), models].to_numpy(dtype=float)  # (N, M)
            rng = np.random.default_rng(seed)
            idx = rng.integers(0, len(names), size=(n_boot, len(names)))  # (n_boot, N) shared by the M models
            means = values[idx].mean(axis=1)  # (n_boot, M)
            low, high = np.quantile(means, tail, axis=0), np.quantile(means, 1 - tail, axis=0)
            for j, model in enumerate(models):
                rows.append({"set": set_name, "sigma": float(sigma), "model": model, "n_images": len(names),
                             "psnr": float(values[:, j].mean()), "ci_low": float(low[j]), "ci_high": float(high[j]),
                             "level": level, "n_boot": int(n_boot)})
    return pd.DataFrame(rows, columns=["set", "sigma", "model", "n_images", "psnr", "ci_low", "ci_high", "level", "n_boot"])


def rival_cnn(summary: pd.DataFrame, timing: pd.DataFrame, runs: Mapping[str, DenoiseRun], best: str | None,
              reference: str | None, set_name: str = "bsd68", sigma: float = 25.0,
              size: Sequence[int] = (321, 481), exclude: Sequence[str] = ()) -> str | None:
    """The plain CNN the verdict on ``best`` rests on: of our DnCNN-style runs of ``best``'s data
    other than the ``reference`` (DnCNN-20) and the runs in ``exclude`` (the longer-training rows:
    the verdict is taken at equal budget, and a longer run of the same network ties on time), the
    fastest one at ``size`` that is at least as good as ``best`` at ``sigma`` on ``set_name``; when
    none is, the one nearest to ``best`` in log time."""
    if best is None or best not in runs:
        return None
    t = timing[(timing["height"] == size[0]) & (timing["width"] == size[1])].set_index("model")["median_ms"]
    rows = summary[(summary["set"] == set_name) & (summary["sigma"] == float(sigma))].set_index("model")["psnr"]
    cnns = [n for n, r in runs.items() if r.model == "dncnn" and r.data == runs[best].data and n != reference
            and n not in exclude and n in t.index and n in rows.index]
    if not cnns or best not in t.index or best not in rows.index:
        return None
    good = [n for n in cnns if rows[n] >= rows[best]]
    if good:
        return min(good, key=lambda n: t[n])
    return min(cnns, key=lambda n: abs(np.log(t[n] / t[best])))
