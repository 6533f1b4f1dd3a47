"""Label -> photo evaluation: FID/KID against the real test photos and mIoU of a segmenter, one row per model.

Protocol (docs/design.md#translation-protocol), applied to every trained generator alike:

1. **Images** (:mod:`lib.translation.image_sets`). Each generator translates every test label
   map once (file ``<stem>.png``); the real test photos are written at the same resolution,
   uint8 PNG, under the same names.
2. **FID / KID** (:func:`fid_kid`): pytorch-fid's InceptionV3 pool3 features (2048-d) of
   both folders, computed once per folder; FID (Frechet distance of the fitted Gaussians)
   and KID (unbiased MMD^2, cubic polynomial kernel) from the same features; 95% bootstrap
   percentile intervals of FID and KID from ``n_boot`` replicates, each resampling the real
   and the generated images independently with replacement (:mod:`lib.metrics.bootstrap`;
   FID with the exact ``"svd"`` method). N (images per side) is recorded.
3. **mIoU** (:func:`lib.translation.segmentation_eval.segmentation_scores`): a segmenter
   predicts classes on the generated images; the confusion matrix against the test label maps
   (as class ids) is summed over images and gives mIoU, pixel accuracy and per-class IoU
   (:func:`lib.translation.segmentation_eval.per_class_frame`); a
   bootstrap over images gives the spread of mIoU. The same segmenter on the real test photos
   gives the ceiling (:func:`evaluate_real`). Which segmenter produced the numbers is recorded
   in every row: the U-Net trained here on the real training photos (:mod:`lib.train.segmenter`, :mod:`lib.models.segmentation`),
   or a TorchScript file such as a scripted DRN-D-105 (the paper's evaluator on Cityscapes,
   :func:`lib.models.segmentation.load_torchscript_segmenter`) (:func:`build_segmenter`).

:data:`FID_CAVEAT` states the small-N bias of FID; the report prints it beside the values.

The generator evaluated is ``generator.pt`` of the training run (the EMA weights where the run
keeps an average) and, for runs written before it existed, ``checkpoint.pt`` (:func:`eval_checkpoint`).

Outputs (:func:`write_results`): a JSON ``{"meta": {...}, "rows": [...]}`` with one row per
model plus ``"real"``, a CSV of the same rows (:data:`ROW_COLUMNS`) for the plots and a CSV of
the per-class IoU (one row per model and class).
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from lib.checkpoint import load_checkpoint
from lib.data.labels import LabelSet
from lib.device import check_device, resolve_device
from lib.io import write_csv, write_json
from lib.metrics import bootstrap
from lib.metrics import fid as fidlib
from lib.paths import project_path
from lib.models import SEGMENTERS, load_model, model_name
from lib.models.segmentation import DRN_CITYSCAPES_MEAN, DRN_CITYSCAPES_STD, load_torchscript_segmenter
from lib.translation.image_sets import generate_test_images, reference_images
from lib.train.gan_outputs import EVAL_GENERATOR_NAME
from lib.train.loop import CHECKPOINT_NAME
from lib.translation.segmentation_eval import per_class_frame, segmentation_scores, test_targets

__all__ = ["outputs",
    "TranslationEvalConfig",
    "prepare_device",
    "eval_checkpoint",
    "load_inception",
    "fid_kid",
    "build_segmenter",
    "evaluate_model",
    "evaluate_real",
    "write_results",
    "ROW_COLUMNS",
    "FID_CAVEAT",
    "PROTOCOL",
]

ROW_COLUMNS = (
    "model", "n", "fid", "fid_boot_low", "fid_boot_high", "fid_boot_std", "kid", "kid_std",
    "kid_boot_low", "kid_boot_high", "miou", "miou_boot_low", "miou_boot_high", "miou_boot_std", "pixel_accuracy",
    "mean_class_accuracy", "fid_between", "segmenter",
)
FID_CAVEAT = (
    "FID is biased upward at small N: its expected value falls as N grows, and with fewer "
    "images than the 2048 feature dimensions the covariances are rank-deficient (pytorch-fid "
    "warns against N < 2048). Values at this N compare models with each other at the same N "
    "only, not with published FIDs (computed on 500 Cityscapes val images or more); KID is "
    "unbiased and is the measure to compare at this N; the bootstrap intervals (real and generated "
    "images resampled) show the spread. Resampling with replacement duplicates images, which biases "
    "FID replicates upward, so the FID interval can sit above the estimate."
)
PROTOCOL = (
    "FID/KID: pytorch-fid InceptionV3 pool3 (2048-d) features of the generated test images vs "
    "the real test photos at the same resolution (uint8 PNG); KID = unbiased MMD^2 with "
    "k(x, y) = (x.y/d + 1)^3, mean over random subsets; FID and KID intervals: 2.5/97.5 percentiles "
    "of bootstrap replicates that resample the real and the generated images independently (FID: svd "
    "method; KID: whole-set unbiased MMD^2, pairs of an image with its own copy left out). mIoU: dataset-level confusion matrix "
    "of the segmenter's predictions vs the test label maps (class ids), bootstrap over images."
)


@dataclasses.dataclass(frozen=True)
class TranslationEvalConfig:
    """``evaluate_translation``: FID/KID and mIoU of the trained generators (docs/design.md#translation-protocol).

    Attributes:
        seed: seeds the KID subsets, the bootstraps and the reference-image pick.
        n_boot: bootstrap replicates for the FID, KID and mIoU intervals (>= 2).
        batch_size: images per forward (generator, Inception, segmenter).
        fid_weights: a local FID Inception weights file; ``None`` looks in the hub cache,
            ``$ASAPNET_WEIGHTS`` and ``data/raw/weights`` (:func:`lib.metrics.fid.ensure_inception_weights`).
        fid_method: point-estimate FID: ``"sqrtm"`` (pytorch-fid's own computation) or
            ``"svd"`` (exact, faster; equal up to sqrtm's round-off).
        kid_subsets: KID subset draws.
        kid_subset_size: images per KID subset (clipped to N). At or above N every subset is
            the whole set and ``kid_std`` is 0: for small test sets use about N / 2.
        segmenter: ``"trained"`` (the stage's own segmenter checkpoint) or the path (relative
            to the project root, or absolute) of a TorchScript segmenter, e.g. a scripted
            DRN-D-105 for Cityscapes, 19 trainIds (:func:`lib.models.segmentation.load_torchscript_segmenter`).
        segmenter_mean: input normalisation mean of a TorchScript segmenter ([0, 1] images).
        segmenter_std: input normalisation std of a TorchScript segmenter.
        segmenter_input_size: ``(H, W)`` the images are resized to for a TorchScript
            segmenter (``None``: the generated resolution).
        real_reference: also compute FID/KID between an equal number of real *training*
            photos and the real test photos: the value of a perfect generator at this N.
        max_images: 0 evaluates every test item; > 0 the first that many (smoke runs only).
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:i]"``.
        threads: torch CPU threads (0: leave torch's setting).
    """

    seed: int = 0
    n_boot: int = 200  # not from the paper: bootstrap replicates
    batch_size: int = 16
    fid_weights: str | None = None
    fid_method: str = "sqrtm"  # pytorch-fid: scipy.linalg.sqrtm
    kid_subsets: int = 100  # Binkowski et al. 2018 / torch-fidelity: 100 subsets ...
    kid_subset_size: int = 1000  # ... of 1000 images
    segmenter: str = "trained"
    segmenter_mean: tuple[float, float, float] = DRN_CITYSCAPES_MEAN  # fyu/drn cityscapes info.json
    segmenter_std: tuple[float, float, float] = DRN_CITYSCAPES_STD  # fyu/drn cityscapes info.json
    segmenter_input_size: tuple[int, int] | None = None
    real_reference: bool = True
    max_images: int = 0
    device: str = "auto"
    threads: int = 0

    def __post_init__(self) -> None:
        if self.n_boot < 2:
            raise ValueError(f"n_boot must be >= 2, got {self.n_boot}")
        for name in ("batch_size", "kid_subsets", "kid_subset_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_images", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.fid_method not in ("sqrtm", "svd"):
            raise ValueError(f"fid_method must be 'sqrtm' or 'svd', got {self.fid_method!r}")
        if not self.segmenter:
            raise ValueError("segmenter must be 'trained' or the path of a TorchScript file")
        if self.segmenter_input_size is not None and min(self.segmenter_input_size) < 1:
            raise ValueError(f"segmenter_input_size must be [height, width] > 0 or null, got {list(self.segmenter_input_size)}")
        check_device(self.device)


def prepare_device(cfg: TranslationEvalConfig) -> torch.device:
    """Applies ``cfg.threads`` and resolves ``cfg.device`` (:func:`lib.device.resolve_device`)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return resolve_device(cfg.device)


def eval_checkpoint(run_dir: str | os.PathLike) -> Path:
    """The generator to evaluate in a training run's folder: ``generator.pt`` (the evaluation
    generator, EMA weights where the run keeps an average) when it exists, else the training
    checkpoint ``checkpoint.pt`` (runs written before ``generator.pt`` existed).

    Raises:
        FileNotFoundError: neither file exists (names both).
    """
    run_dir = Path(run_dir)
    for name in (EVAL_GENERATOR_NAME, CHECKPOINT_NAME):
        if (run_dir / name).is_file():
            return run_dir / name
    raise FileNotFoundError(f"{run_dir}: no {EVAL_GENERATOR_NAME} or {CHECKPOINT_NAME} to evaluate (run the training stage)")


def load_inception(cfg: TranslationEvalConfig, device: str | torch.device = "cpu") -> nn.Module:
    """pytorch-fid's InceptionV3 (pool3) with ``cfg.fid_weights`` (relative to the project root)
    or the default weights lookup (:func:`lib.metrics.fid.ensure_inception_weights`)."""
    weights = None if cfg.fid_weights is None else project_path(cfg.fid_weights)
    return fidlib.inception_model(device, weights)


def fid_kid(
    real_dir: str | os.PathLike,
    fake_dir: str | os.PathLike,
    n_boot: int = 200,
    seed: int = 0,
    weights_file: str | os.PathLike | None = None,
    *,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    method: str = "sqrtm",
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    dims: int = fidlib.FEATURE_DIM,
    model: nn.Module | None = None,
    real_features: np.ndarray | None = None,
) -> dict:
    """FID and KID between two image folders, with bootstrap intervals of both.

    Features (:func:`lib.metrics.fid.activations`, read as pytorch-fid reads folders) are
    computed once per folder (``real_features`` reuses the real folder's). Then
    ``FID = ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))`` with ``method``;
    ``KID = mean over subsets of MMD^2_u`` with ``k(x, y) = (x.y / d + 1)^3``
    (:func:`lib.metrics.fid.kid_from_features`); the bootstrap recomputes FID (``"svd"``
    method) and KID on ``n_boot`` replicates that resample the real and the generated features
    independently with replacement (:mod:`lib.metrics.bootstrap`). FID is biased at small N
    (:data:`FID_CAVEAT`).

    Args:
        real_dir: folder of real images.
        fake_dir: folder of generated images.
        n_boot: bootstrap replicates (>= 2; 0: no intervals, their keys are NaN).
        seed: seed of the KID subsets and of the bootstrap.
        weights_file: FID Inception weights (see :func:`lib.metrics.fid.ensure_inception_weights`);
            ignored when ``model`` is given.
        batch_size: Inception batch size.
        device: where Inception runs.
        method: point-estimate FID method (``"sqrtm"`` or ``"svd"``).
        kid_subsets: KID subset draws.
        kid_subset_size: KID subset size (clipped to N; at N every subset is the whole set,
            so ``kid_std`` is 0).
        dims: Inception block (2048 = pool3, the protocol; smaller ones for quick checks).
        model: an Inception from :func:`lib.metrics.fid.inception_model` to reuse.
        real_features: precomputed features of ``real_dir`` (N_real, dims).

    Returns:
        ``dict(fid, fid_boot_low, fid_boot_high, fid_boot_std, fid_boot_mean, kid, kid_std,
        kid_boot_low, kid_boot_high, kid_boot_mean, n, n_real)``; ``n`` is the number of generated images.
    """
    fake_files = fidlib.list_images(fake_dir)
    if model is None:
        model = fidlib.inception_model(device, weights_file, dims)
    f_real = real_features if real_features is not None else fidlib.activations(real_dir, model, batch_size, device)
    f_fake = fidlib.activations(fake_files, model, batch_size, device)
    kid, kid_std = fidlib.kid_from_features(f_real, f_fake, kid_subsets, kid_subset_size, seed)
    nan = {"low": float("nan"), "high": float("nan"), "std": float("nan"), "mean": float("nan")}
    boot = bootstrap.bootstrap_fid(f_real, f_fake, n_boot, seed, method="svd") if n_boot else nan
    kboot = bootstrap.bootstrap_kid(f_real, f_fake, n_boot, seed) if n_boot else nan
    return {
        "fid": fidlib.fid_from_features(f_real, f_fake, method),
        **{f"fid_boot_{k}": boot[k] for k in ("low", "high", "std", "mean")},
        "kid": kid,
        "kid_std": kid_std,
        **{f"kid_boot_{k}": kboot[k] for k in ("low", "high", "mean")},
        "n": int(f_fake.shape[0]),
        "n_real": int(f_real.shape[0]),
    }


def build_segmenter(
    cfg: TranslationEvalConfig,
    checkpoint: str | os.PathLike | None,
    labels: LabelSet,
    device: str | torch.device = "cpu",
    size: int | None = None,
) -> tuple[nn.Module, str]:
    """The segmenter named by ``cfg.segmenter`` and a sentence saying what it is.

    Args:
        cfg: the evaluation settings.
        checkpoint: the trained segmenter (used when ``cfg.segmenter == "trained"``).
        labels: the label set evaluated (its class count must match the segmenter's).
        device: where the segmenter runs.
        size: the evaluation image height; a trained segmenter of another training size
            triggers a warning.

    Returns:
        ``(module in eval mode on device, description)``.

    Raises:
        ValueError: class counts or label sets that differ (named).
    """
    if cfg.segmenter == "trained":
        if checkpoint is None:
            raise ValueError("segmenter 'trained' needs the segmenter checkpoint")
        model = load_model(checkpoint, map_location=device)
        if model_name(model) not in SEGMENTERS:
            raise ValueError(f"{checkpoint}: holds model {model_name(model)!r}, not a segmenter ({', '.join(SEGMENTERS)})")
        net = model.cfg
        if net.label_set != labels.name or net.num_classes != labels.num_classes:
            raise ValueError(
                f"{checkpoint}: segmenter predicts {net.num_classes} {net.label_set} classes; the evaluation "
                f"needs {labels.num_classes} {labels.name} classes"
            )
        ck = load_checkpoint(checkpoint)
        trained = dict(ck.get("params") or {})
        if size is not None and trained.get("size") not in (None, size):
            warnings.warn(f"{checkpoint}: segmenter trained at {trained.get('size')} px, evaluated at {size} px")
        what = (f"{net.arch} (decoder width {net.decoder_width} on frozen ImageNet InceptionV3 features"
                + (f", U-Net width {net.width}" if net.arch == "inception_unet" else "") + ")"
                if model_name(model) == "inception_segmenter" else f"{net.arch} (width {net.width})")
        splits = "+".join(trained.get("train_splits") or ["train"])
        desc = (
            f"{what} trained in this project on the real {labels.name} {splits} photos "
            f"at {trained.get('size', '?')} px for {ck['step']} steps, {labels.num_classes} classes"
        )
        return model, desc
    model = load_torchscript_segmenter(
        project_path(cfg.segmenter), labels.num_classes, cfg.segmenter_mean, cfg.segmenter_std, cfg.segmenter_input_size, device
    )
    desc = f"TorchScript segmenter {Path(cfg.segmenter).name} ({labels.num_classes} classes; external weights)"
    return model, desc


def _check_names(real: Sequence[Path], fake: Sequence[Path], what: str) -> None:
    a, b = sorted(p.name for p in real), sorted(p.name for p in fake)
    if a != b:
        only_real, only_fake = sorted(set(a) - set(b))[:3], sorted(set(b) - set(a))[:3]
        raise ValueError(f"{what}: real and generated file names differ (real only: {only_real}, generated only: {only_fake})")


def evaluate_model(
    name: str,
    checkpoint: str | os.PathLike,
    dataset: Dataset,
    labels: LabelSet,
    real_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    segmenter: tuple[nn.Module, str],
    inception: nn.Module,
    cfg: TranslationEvalConfig,
    *,
    device: str | torch.device = "cpu",
    real_features: np.ndarray | None = None,
    targets: Mapping[str, Tensor] | None = None,
    intervals: bool = True,
) -> dict:
    """One result row for one generator: generate the test images, FID/KID, mIoU.

    Args:
        name: the model's name in the results (e.g. ``asapnet``).
        checkpoint: its generator checkpoint (:func:`eval_checkpoint`, or a learning-curve snapshot).
        dataset: the test items at the evaluation size.
        labels: the label set of the dataset.
        real_dir: the folder of :func:`lib.translation.image_sets.real_test_images` for the same dataset.
        out_dir: folder for the generated images.
        segmenter: ``(module, description)`` from :func:`build_segmenter`.
        inception: from :func:`lib.metrics.fid.inception_model`.
        cfg: the evaluation settings.
        device: where the networks run.
        real_features: Inception features of ``real_dir`` (computed once by the caller).
        targets: :func:`test_targets` of ``dataset`` (computed when ``None``).
        intervals: compute the bootstrap intervals (``False``: NaN, e.g. for learning-curve points).

    Returns:
        A row with the :data:`ROW_COLUMNS` keys plus ``per_class_iou``, ``n_real``,
        ``fid_boot_mean`` and ``kid_boot_mean``.
    """
    files = generate_test_images(checkpoint, dataset, out_dir, cfg.batch_size, device)
    _check_names(fidlib.list_images(real_dir), files, name)
    targets = test_targets(dataset, labels) if targets is None else targets
    n_boot = cfg.n_boot if intervals else 0
    scores = fid_kid(real_dir, out_dir, n_boot, cfg.seed, batch_size=cfg.batch_size, device=device,
                     method=cfg.fid_method, kid_subsets=cfg.kid_subsets, kid_subset_size=cfg.kid_subset_size,
                     model=inception, real_features=real_features)
    seg = segmentation_scores(segmenter[0], files, targets, labels.num_classes, labels.ignore_index,
                              batch_size=cfg.batch_size, device=device, n_boot=n_boot, seed=cfg.seed)
    return _row(name, scores, seg, "generated test images vs real test photos", segmenter[1])


def evaluate_real(
    real_dir: str | os.PathLike,
    labels: LabelSet,
    targets: Mapping[str, Tensor],
    segmenter: tuple[nn.Module, str],
    cfg: TranslationEvalConfig,
    *,
    inception: nn.Module | None = None,
    reference_set: Dataset | None = None,
    reference_dir: str | os.PathLike | None = None,
    real_features: np.ndarray | None = None,
    device: str | torch.device = "cpu",
) -> dict:
    """The ``"real"`` row: the segmenter on the real test photos (the mIoU ceiling) and,
    with ``cfg.real_reference``, FID/KID of as many real photos of ``reference_set`` (the
    training split, picked by ``cfg.seed``, written to ``reference_dir``) vs the real test
    photos: what a perfect generator scores at this N. Otherwise the FID/KID columns are NaN.

    Returns:
        A row like :func:`evaluate_model`'s, ``model = "real"``.

    Raises:
        ValueError: ``cfg.real_reference`` without ``reference_set``, ``reference_dir`` and ``inception``.
    """
    seg = segmentation_scores(segmenter[0], real_dir, targets, labels.num_classes, labels.ignore_index,
                              batch_size=cfg.batch_size, device=device, n_boot=cfg.n_boot, seed=cfg.seed)
    nan = float("nan")
    scores: dict[str, Any] = dict(fid=nan, fid_boot_low=nan, fid_boot_high=nan, fid_boot_std=nan, fid_boot_mean=nan,
                                  kid=nan, kid_std=nan, kid_boot_low=nan, kid_boot_high=nan, kid_boot_mean=nan,
                                  n=seg["n"], n_real=seg["n"])
    between = ""
    if cfg.real_reference:
        if reference_set is None or reference_dir is None or inception is None:
            raise ValueError("real_reference needs reference_set, reference_dir and the Inception model")
        reference_images(reference_set, seg["n"], cfg.seed, reference_dir)
        scores = fid_kid(real_dir, reference_dir, cfg.n_boot, cfg.seed, batch_size=cfg.batch_size, device=device,
                         method=cfg.fid_method, kid_subsets=cfg.kid_subsets, kid_subset_size=cfg.kid_subset_size,
                         model=inception, real_features=real_features)
        between = "real training photos vs real test photos (a perfect generator at the same N)"
    return _row("real", scores, seg, between, segmenter[1])


def _row(name: str, scores: Mapping[str, Any], seg: Mapping[str, Any], between: str, segmenter: str) -> dict:
    row = {
        "model": name,
        "n": int(scores["n"]),
        **{k: float(scores[k]) for k in ("fid", "fid_boot_low", "fid_boot_high", "fid_boot_std", "kid", "kid_std",
                                         "kid_boot_low", "kid_boot_high")},
        **{k: float(seg[k]) for k in ("miou", "miou_boot_low", "miou_boot_high", "miou_boot_std", "pixel_accuracy",
                                      "mean_class_accuracy")},
        "fid_between": between,
        "segmenter": segmenter,
    }
    row.update(per_class_iou=list(seg["per_class_iou"]), n_real=int(scores["n_real"]),
               fid_boot_mean=float(scores["fid_boot_mean"]), kid_boot_mean=float(scores["kid_boot_mean"]))
    return row


def write_results(
    rows: Sequence[Mapping[str, Any]],
    meta: Mapping[str, Any],
    json_path: str | os.PathLike,
    csv_path: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    per_class_path: str | os.PathLike | None = None,
    extra: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Writes the rows as JSON (``{"meta", "rows"}``, every key) and CSV (:data:`ROW_COLUMNS`), atomically.

    With ``class_names`` the JSON rows' ``per_class_iou`` becomes ``{class name: IoU}``, and
    ``per_class_path`` (if given) gets the long table of
    :func:`lib.translation.segmentation_eval.per_class_frame` (model, class_id, class, iou).
    ``extra``: more top-level JSON entries (e.g. the learning-curve summary).

    Raises:
        ValueError: a row without a :data:`ROW_COLUMNS` key (named); ``per_class_path`` without ``class_names``.
    """
    import pandas as pd

    out_rows = []
    for r in rows:
        missing = [c for c in ROW_COLUMNS if c not in r]
        if missing:
            raise ValueError(f"result row {r.get('model', '?')!r} lacks {missing}")
        r = dict(r)
        if class_names is not None and isinstance(r.get("per_class_iou"), (list, tuple)):
            if len(class_names) != len(r["per_class_iou"]):
                raise ValueError(f"{len(class_names)} class names for {len(r['per_class_iou'])} IoUs")
            r["per_class_iou"] = dict(zip(class_names, r["per_class_iou"]))
        out_rows.append(r)
    if per_class_path is not None:
        if class_names is None:
            raise ValueError("per_class_path needs class_names")
        write_csv(per_class_path, per_class_frame(rows, class_names))
    write_json(json_path, {"meta": dict(meta), "rows": out_rows, "fid_caveat": FID_CAVEAT, "protocol": PROTOCOL,
                           **dict(extra or {})})
    write_csv(csv_path, pd.DataFrame([{c: r[c] for c in ROW_COLUMNS} for r in rows], columns=list(ROW_COLUMNS)))
    return Path(json_path), Path(csv_path)


def outputs(dataset: str) -> dict[str, str]:
    """The ``evaluate_translation@<dataset>`` stage's outputs (project-relative; ``dvc.yaml`` declares the
    same paths from the same study list)."""
    return {"images_dir": f"data/processed/evaluation/{dataset}",
            "metrics_out": f"reports/metrics/translation/{dataset}/translation_eval.json",
            "table_out": f"reports/metrics/translation/{dataset}/translation_eval.csv",
            "per_class_out": f"reports/metrics/translation/{dataset}/translation_per_class_iou.csv",
            "curves_out": f"reports/metrics/translation/{dataset}/translation_curves.csv",
            "grid_out": f"reports/figures/stages/translation/{dataset}/translation_samples.png"}
