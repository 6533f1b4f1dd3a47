"""The denoising study's training runs: DnCNN-style CNNs and the ASAPNet-denoise ablation rows.

Does the ASAPNet idea give a fast denoiser, and what must change (docs/design.md#models)? The
``train_denoiser`` stage trains one run per entry of ``params.yaml: train_denoiser.runs``
(:class:`DenoiseRun`): our DnCNN-20 and smaller plain CNNs of the same design (the speed /
quality trade-off ASAPNet must beat), and ASAPNet-denoise ablation rows
(:data:`lib.models.asapnet_denoise.VARIANTS`), all with the DnCNN recipe of
:mod:`lib.train.denoise` (blind, sigma uniform in the configured range, fresh noise per
patch, dihedral augmentation, Adam with a step schedule) and the same budget of training
pixel-samples (``common.budget_pixels``; :func:`lib.train.denoise.budget_steps` turns it into
each run's steps). :mod:`lib.denoise.evaluate` scores them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lib.config import ConfigError, check_keys, deep_merge, from_dict
from lib.data import denoise as dn_data
from lib.models import make_config
from lib.models.asapnet_denoise import VARIANT_BASE, VARIANT_CHANGE, VARIANTS, variant_config
from lib.models.complexity import complexity
from lib.train.denoise import DenoiseTrainConfig, pixel_samples

__all__ = ["outputs", "run_summary",
    "DenoiseRun",
    "TrainDenoiserStage",
    "run_settings",
    "run_table",
    "training_images",
    "run_cost",
    "run_change",
    "run_parents",
    "TRAIN_SETS",
    "TEST_SETS_FOR",
    "VARIANT_CHANGES",
]

# training set -> image channels (DnCNN paper: Train400 gray, CBSD432 color)
TRAIN_SETS: dict[str, int] = {"train400": 1, "cbsd432": 3}
# image channels -> the test sets a model of that kind is evaluated on (DnCNN paper, Table II / color table)
TEST_SETS_FOR: dict[int, tuple[str, ...]] = {1: ("bsd68", "set12"), 3: ("cbsd68",)}
# what each ASAPNet-denoise ablation row changes (lib.models.asapnet_denoise.VARIANTS), from the variants' table
VARIANT_CHANGES: dict[str, str] = dict(VARIANT_CHANGE)


@dataclass(frozen=True)
class DenoiseRun:
    """One entry of ``train_denoiser.runs``: a model, its training set and its recipe.

    Attributes:
        model: registry name, ``dncnn`` or ``asapnet_denoise``.
        data: training set, a key of :data:`TRAIN_SETS` (sets the image channels).
        variant: ``asapnet_denoise`` only: the ablation row (a key of ``VARIANTS``).
        label: the name the report shows.
        model_cfg: model config keys over the defaults (``dncnn``) or over the variant.
        train: :class:`lib.train.denoise.DenoiseTrainConfig` keys over ``train_denoiser.common``.
    """

    model: str
    data: str
    variant: str | None = None
    label: str = ""
    model_cfg: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in ("dncnn", "asapnet_denoise"):
            raise ValueError(f"model={self.model!r} must be 'dncnn' or 'asapnet_denoise'")
        if self.data not in TRAIN_SETS:
            raise ValueError(f"data={self.data!r} must be one of {', '.join(TRAIN_SETS)}")
        if self.model == "asapnet_denoise" and self.variant not in VARIANTS:
            raise ValueError(f"variant={self.variant!r} must be one of {', '.join(VARIANTS)}")
        if self.model == "dncnn" and self.variant is not None:
            raise ValueError("variant applies to asapnet_denoise only")

    @property
    def channels(self) -> int:
        """Image channels (1 gray, 3 color)."""
        return TRAIN_SETS[self.data]


@dataclass(frozen=True)
class TrainDenoiserStage:
    """``train_denoiser``: the training runs of the study.

    ``common`` holds the :class:`lib.train.denoise.DenoiseTrainConfig` keys every run shares
    (seed, noise range, logging); ``runs.<name>`` is a :class:`DenoiseRun`.
    """

    data_root: str = "data/raw"
    common: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.runs:
            raise ValueError("runs: expected at least one training run")
        for name in self.runs:  # every run is checked when the section loads, key by key
            try:
                run_settings(self, name)
            except ConfigError as e:
                raise ConfigError(_blame_common(self, name, str(e))) from e


def _blame_common(stage: "TrainDenoiserStage", name: str, message: str) -> str:
    """``message`` about ``runs.<name>.train.<key>`` renamed ``common.<key>`` when the value
    came from ``common`` (the key the user wrote)."""
    prefix = f"train_denoiser.runs.{name}.train."
    m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", message[len(prefix):]) if message.startswith(prefix) else None
    run = stage.runs[name]
    train = run.get("train") if isinstance(run, dict) else None
    if m and m.group(0) not in (train if isinstance(train, dict) else {}) and m.group(0) in stage.common:
        return f"train_denoiser.common.{m.group(0)}{message[len(prefix) + m.end():]}"
    return message


def run_settings(stage: TrainDenoiserStage, name: str) -> tuple[DenoiseRun, Any, Any]:
    """The run ``name``: ``(DenoiseRun, model config instance, DenoiseTrainConfig)``.

    Raises:
        ConfigError: no such run (lists the known ones) or a bad key (named).
    """
    if name not in stage.runs:
        raise ConfigError(f"train_denoiser.runs has no {name!r}; known: {', '.join(stage.runs)}")
    where = f"train_denoiser.runs.{name}"
    run = from_dict(DenoiseRun, stage.runs[name], where=where)
    try:
        if run.model == "dncnn":
            model_cfg = make_config("dncnn", {"depth": 20, "in_channels": run.channels, **run.model_cfg})
        else:
            model_cfg = variant_config(run.variant, in_channels=run.channels, **run.model_cfg)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}.model_cfg: {e}") from e
    check_keys(DenoiseTrainConfig, stage.common, "train_denoiser.common")
    check_keys(DenoiseTrainConfig, run.train, f"{where}.train")
    train_cfg = from_dict(DenoiseTrainConfig, deep_merge(stage.common, run.train), where=f"{where}.train")
    return run, model_cfg, train_cfg


def training_images(run: DenoiseRun, raw_dir: str | Path) -> list[tuple[str, np.ndarray]]:
    """The training images of ``run`` (uint8, gray or RGB) from ``raw_dir/<run.data>``."""
    return dn_data.load_named_set(Path(raw_dir), run.data)


def run_cost(run: DenoiseRun, model_cfg: Any, height: int = 321, width: int = 481) -> dict:
    """Parameters and multiply-accumulates of one forward pass of ``run``'s model on a
    1 x C x ``height`` x ``width`` image at sigma 25 (:func:`lib.models.complexity.complexity`).

    Returns:
        ``dict(params=int, gmacs=float)``.
    """
    return complexity(run.model, model_cfg, [(1, run.channels, height, width)], sigma=torch.full((1,), 25.0))


def run_change(run: DenoiseRun, model_cfg: Any) -> str:
    """What a run is, in words: the ablation change of an ASAPNet variant, the shape of a CNN."""
    if run.model == "dncnn":
        return (f"DnCNN-style CNN (Zhang et al. 2017): {model_cfg.depth} conv layers of {model_cfg.channels} "
                f"channels{', BN' if model_cfg.batch_norm else ''}, residual, blind")
    return VARIANT_CHANGES[run.variant]


def run_parents(stage: TrainDenoiserStage) -> dict[str, tuple[str | None, str | None]]:
    """Run -> ``(the run it changes, the change in words when it is not the run's own)``: the row
    each ablation delta is taken against.

    - A run that repeats another run (same model, variant, model config and data) with more
      training pixel-samples: that run, "<x> the training budget" (the longer-training rows).
    - An ASAPNet-denoise run: the run of its variant's base row (:data:`VARIANT_BASE`) with the same
      data and budget, walking over base rows that were not trained; None at the chain's root.
    - A DnCNN-style run: the DnCNN-style run with the most MACs of the same data and budget (our
      DnCNN-20, the reference); None for the reference itself.
    """
    spec = {}
    for name in stage.runs:
        run, model_cfg, train_cfg = run_settings(stage, name)
        pixels = train_cfg.budget_pixels or pixel_samples(train_cfg, train_cfg.total_steps)  # the planned budget
        spec[name] = (run, repr(model_cfg), pixels, run_cost(run, model_cfg)["gmacs"])
    parents: dict[str, tuple[str | None, str | None]] = {}
    for name, (run, cfg, pixels, _) in spec.items():
        same = [n for n, (r, c, p, _) in spec.items()
                if n != name and (r.model, r.variant, r.data, c) == (run.model, run.variant, run.data, cfg) and p < pixels]
        if same:
            shorter = max(same, key=lambda n: spec[n][2])  # the longest of the shorter runs
            parents[name] = (shorter, f"{pixels / spec[shorter][2]:.3g}x the training budget of {shorter}")
            continue
        peers = {n: v for n, v in spec.items() if v[0].data == run.data and v[2] == pixels}
        if run.model == "dncnn":
            cnns = [n for n, v in peers.items() if v[0].model == "dncnn"]
            ref = max(cnns, key=lambda n: peers[n][3])
            parents[name] = (None if ref == name else ref, None)
            continue
        by_variant = {v[0].variant: n for n, v in peers.items() if v[0].model == run.model}
        base = VARIANT_BASE.get(run.variant)
        while base is not None and base not in by_variant:
            base = VARIANT_BASE.get(base)
        parents[name] = (by_variant.get(base) if base else None, None)
    return parents


def run_table(stage: TrainDenoiserStage, height: int = 321, width: int = 481) -> pd.DataFrame:
    """One row per run: label, model, variant, change, the run it changes (``parent``,
    :func:`run_parents`), data, params, GMACs at ``height x width``, and its planned training:
    steps, batch, patch sides and training pixel-samples."""
    rows = []
    parents = run_parents(stage)
    for name in stage.runs:
        run, model_cfg, train_cfg = run_settings(stage, name)
        c = run_cost(run, model_cfg, height, width)
        parent, change = parents[name]
        rows.append({
            "run": name,
            "label": run.label or name,
            "model": run.model,
            "variant": run.variant,
            "change": change or run_change(run, model_cfg),
            "parent": parent,
            "data": run.data,
            "params": c["params"],
            "gmacs": c["gmacs"],
            "steps": train_cfg.total_steps,
            "batch_size": train_cfg.batch_size,
            "patch_sizes": list(train_cfg.sizes),
            "pixel_samples": pixel_samples(train_cfg, train_cfg.total_steps),
        })
    return pd.DataFrame(rows)


def run_summary(run: str, spec: DenoiseRun, trained: dict, n_images: int, cost: dict, model_cfg: Any,
                train_cfg: Any, meta: dict) -> dict:
    """The ``train_denoiser@<run>`` metrics file (``reports/metrics/train_denoise_<run>.json``): the
    training loop's summary (``trained``, less its file paths), what the run is, its cost and its
    settings, and the provenance ``meta``."""
    from lib.config import to_dict

    return {
        **{k: v for k, v in trained.items() if k not in ("checkpoint", "losses_csv")},
        "run": run,
        "label": spec.label or run,
        "model": spec.model,
        "variant": spec.variant,
        "data": spec.data,
        "training_images": n_images,
        "params": cost["params"],
        "gmacs_481x321": cost["gmacs"],
        "patch_size": max(train_cfg.sizes),
        "patch_sizes": list(train_cfg.sizes),
        "batch_size": train_cfg.batch_size,
        "sigma_range": list(train_cfg.sigma_range),
        "model_config": to_dict(model_cfg),
        "train_config": to_dict(train_cfg),
        "meta": meta,
    }


def outputs(run: str) -> dict[str, str]:
    """The ``train_denoiser@<run>`` stage's outputs (project-relative; ``dvc.yaml`` declares the same paths
    from the same run list)."""
    return {"out_dir": f"data/processed/denoise/{run}",
            "summary_out": f"reports/metrics/train_denoise_{run}.json",
            "losses_out": f"reports/metrics/losses_denoise_{run}.csv"}
