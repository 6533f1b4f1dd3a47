"""Label -> photo training of ASAPNet and pix2pixHD on one GPU, within equal wall-time budgets,
evaluated by the pipeline's protocol.

Usage::

    python benchmarks/gpu_translation.py                  # one CUDA GPU: about 10 min on an H200
    python benchmarks/gpu_translation.py --dataset camvid # CamVid street scenes at 256x352: about 10 min too
    python benchmarks/gpu_translation.py --device cpu --smoke --out /tmp/g.json --work /tmp/g   # smoke run (the test)

What it runs (docs/design.md#translation-protocol for the evaluation):

1. **Data.** A study dataset of ``params.yaml`` (``--dataset``: ``facades``, default, or ``camvid``;
   its ``datasets`` entry, read from ``--data-root``, default the entry's root): CMP Facades, 318
   training / 60 test pairs at 256x256, or CamVid, 367 training / 233 test pairs of the 180x240
   mirror copy at 256x352 (the height the paper's ASAPNet is built for, tile k = 16; the photos
   upsampled from 180 px); decoded once into memory.
2. **Training** (:func:`lib.train.gan.train_gan`, the project's one trainer), one model after the
   other, each with the recipe of ``params.yaml`` (``train_translation.models.<model>``: losses,
   optimizer, ``loss.lambda_l1``, ``ema_decay``, discriminator) at the paper's generator widths
   (``scales/paper.yaml``: ASAPNet ``lr_max_width`` 1024 and ``learned_ds_factor`` 16, pix2pixHD
   ``ngf`` 64; every other generator key at its registry default, i.e. the paper value; ASAPNet
   built for the image height, :func:`lib.translation.workload.timing_config`; the label channels
   of the study, ``translation.per_dataset``), batch 16, bf16
   autocast (``precision: bf16``). **Budget:** each model gets the same wall time,
   ``--minutes`` (default 4), counted from the start of its phase. A short warm-up run
   (``--warmup-steps`` steps, discarded) measures the step time; the run is then
   ``steps = floor(0.9 x remaining budget / step time)`` steps (a step schedule: lr constant,
   then linear decay over the last third, the paper's 200 + 100 epochs ratio), with
   ``time_budget_s`` = the remaining budget as a hard stop (recorded as ``stopped_by_budget``),
   and ``curve_points`` learning-curve snapshots of the evaluated generator (EMA weights when
   ``ema_decay > 0``).
3. **Inference time** of each trained generator at the training size and at the paper's width
   (H x 2H: 256x512), batch 1, fp32 (TF32 off) and bf16 autocast
   (:func:`lib.metrics.timing.time_forward`: CUDA events, median).
4. **Segmenter** for mIoU: ``--segmenter-dir`` (default ``data/processed/segmenter/<dataset>``,
   the pipeline's) when its checkpoint was trained at this size; else one trained here
   (:func:`lib.train.segmenter.train_segmenter`, the study's ``train_segmenter`` recipe of
   ``params.yaml``, on its ``train_splits``, ``--segmenter-epochs``, at most ``--segmenter-seconds``).
5. **Quality** (:mod:`lib.translation.evaluate`): FID/KID (pytorch-fid Inception features) and
   mIoU of each final generator on the test set and the ``real`` row; then every learning-curve
   snapshot without intervals (:func:`lib.translation.curves.evaluate_snapshots`) and the
   smoothed final values (:func:`lib.translation.curves.add_smoothed`). Without the FID Inception
   weights (or pytorch-fid), FID/KID and the curves are left out with the reason, and mIoU of the
   final generators is still computed.

Writes one JSON (``--out``, default ``benchmarks/results/gpu_translation.json`` for Facades, which
:mod:`lib.report.gpu` shows in the report, ``..._camvid.json`` for CamVid) after every phase
(``complete`` is false until the end), labelled with the GPU name, torch / CUDA versions, steps,
wall times, batch and precision. Working files (checkpoints, images) go under ``--work`` (default
``data/processed/gpu_translation[_camvid]``).
``--smoke`` runs the same code at toy scale (``scales/smoke.yaml`` widths, 32x32, a few images,
2-3 steps; default outputs ``..._smoke``, which the report does not read): it checks that the
script runs; its numbers are not results.

Run time on an H200 (estimated, not yet measured): start-up under 30 s, 2 x ``--minutes`` of
training, about 10 s of timing, under 1 min for the segmenter and 1 min for the evaluation and
the curves: about 10 min at the default 4 min per model (``--minutes 3.5`` keeps it under 9.5).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.gpu_timing import precision as timing_precision  # noqa: E402
from lib.checkpoint import load_checkpoint  # noqa: E402
from lib.config import deep_merge, load_params, to_dict  # noqa: E402
from lib.data import image_size, translation_dataset  # noqa: E402
from lib.data.labels import label_set  # noqa: E402
from lib.device import resolve_device, sync  # noqa: E402
from lib.io import write_json  # noqa: E402
from lib.metrics import fid as fidlib  # noqa: E402
from lib.metrics.timing import time_forward  # noqa: E402
from lib.models import load_model  # noqa: E402
from lib.models.asapnet import LOWRES_ROWS  # noqa: E402
from lib.models.complexity import count_params  # noqa: E402
from lib.provenance import environment_info  # noqa: E402
from lib.stages import load_stage, resolve  # noqa: E402
from lib.train import gan  # noqa: E402
from lib.train import segmenter as seg  # noqa: E402
from lib.translation import curves  # noqa: E402
from lib.translation import evaluate as ev  # noqa: E402
from lib.translation import image_sets  # noqa: E402
from lib.translation.segmentation_eval import segmentation_scores, test_targets  # noqa: E402
from lib.translation.workload import example_inputs, example_label_ids, forward_kwargs, timing_config  # noqa: E402

MODELS = ("asapnet", "pix2pixhd")
DATASETS = ("facades", "camvid")  # study datasets of params.yaml this script runs
SIZES = {"facades": 256, "camvid": 256}  # image height: Facades 256x256, CamVid 256x352 (the paper's ASAPNet, k = 16)
PAPER_WIDTH_KEYS = {"asapnet": ("lr_max_width", "learned_ds_factor"), "pix2pixhd": ("ngf",)}  # scales/paper.yaml keys used
STEP_SAFETY = 0.9  # planned steps fill this share of the remaining budget (snapshots, samples, checkpoint)
DECAY_SHARE = 1 / 3  # the paper's 200 + 100 epochs: the last third decays
TIMING_PRECISIONS = ("fp32", "bf16")
FULL = dict(size=None, batch=16, minutes=4.0, warmup_steps=12, max_steps=0, train_items=0, timing_sizes=None,
            timing_warmup=10, timing_runs=50, segmenter_seconds=45.0, segmenter_epochs=40,
            out=None, work=None)
SMOKE = dict(size=32, batch=4, minutes=0.25, warmup_steps=2, max_steps=3, train_items=8, timing_sizes=None,
             timing_warmup=1, timing_runs=2, segmenter_seconds=20.0, segmenter_epochs=1,
             out=None, work=None)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dataset", choices=DATASETS, default="facades", help="the study dataset (params.yaml datasets entry)")
    ap.add_argument("--smoke", action="store_true", help="toy scale on any device (scales/smoke.yaml widths, 32x32, few images)")
    ap.add_argument("--minutes", type=float, default=None, help="wall budget per model, warm-up included (default 4; smoke 0.25)")
    ap.add_argument("--size", type=int, default=None, help="image height (default 256; smoke 32); the width keeps the dataset's aspect")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default 16; smoke 4)")
    ap.add_argument("--precision", choices=("bf16", "fp32", "auto"), default="bf16")
    ap.add_argument("--warmup-steps", type=int, default=None, help="steps of the step-time warm-up (default 12; smoke 2)")
    ap.add_argument("--max-steps", type=int, default=None, help="cap on the planned steps, 0 none (default 0; smoke 3)")
    ap.add_argument("--curve-points", type=int, default=6, help="learning-curve snapshots per model")
    ap.add_argument("--ema-decay", type=float, default=None, help="default: the recipe's (params.yaml)")
    ap.add_argument("--lambda-l1", type=float, default=None, help="default: the recipe's (params.yaml)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma list of " + ", ".join(MODELS))
    ap.add_argument("--segmenter-dir", default=None, help="reused when trained at --size (default data/processed/segmenter/<dataset>)")
    ap.add_argument("--segmenter-seconds", type=float, default=None, help="budget of a segmenter trained here (default 45)")
    ap.add_argument("--segmenter-epochs", type=int, default=None, help="epochs of a segmenter trained here (default 40)")
    ap.add_argument("--no-curve-eval", action="store_true", help="do not evaluate the learning-curve snapshots")
    ap.add_argument("--data-root", default=None, help="the dataset folder (default: its params.yaml entry's root)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--work", default=None, help="checkpoints and images (default data/processed/gpu_translation[_smoke])")
    ap.add_argument("--out", default=None, help="results JSON (default benchmarks/results/gpu_translation[_smoke].json)")
    args = ap.parse_args(argv)
    for key, value in (SMOKE if args.smoke else FULL).items():
        if getattr(args, key, None) is None or key not in vars(args):
            setattr(args, key, value)
    suffix = "" if args.dataset == "facades" else f"_{args.dataset}"  # the report reads the Facades file
    args.size = args.size or SIZES[args.dataset]
    args.out = args.out or (f"benchmarks/results/gpu_translation{suffix}" + ("_smoke" if args.smoke else "") + ".json")
    args.work = args.work or (f"data/processed/gpu_translation{suffix}" + ("_smoke" if args.smoke else ""))
    args.segmenter_dir = args.segmenter_dir or f"data/processed/segmenter/{args.dataset}"
    args.models = [m for m in args.models.split(",") if m]
    if not args.models or any(m not in MODELS for m in args.models):
        ap.error(f"--models: choose from {', '.join(MODELS)}")
    if args.minutes <= 0 or args.batch < 1 or args.warmup_steps < 2 or args.curve_points < 0:
        ap.error("--minutes must be > 0, --batch >= 1, --warmup-steps >= 2, --curve-points >= 0")
    if args.size % LOWRES_ROWS:
        ap.error(f"--size must be a multiple of {LOWRES_ROWS} (ASAPNet's low-res grid)")
    try:
        h, w = image_size(args.dataset, args.size)
    except ValueError as e:
        ap.error(f"--size: {e}")
    args.timing_sizes = args.timing_sizes or tuple(dict.fromkeys([(h, w), (h, 2 * h)]))  # as trained; the paper's H x 2H
    return args


def log(t0: float, text: str) -> None:
    print(f"[{time.perf_counter() - t0:7.1f} s] {text}", flush=True)


# ----------------------------------------------------------------------------- settings


def load_settings(args) -> dict:
    """Typed stage settings of the study ``--dataset`` from ``--params`` (with ``scales/smoke.yaml``
    merged in for ``--smoke``): its ``translation.per_dataset`` values over the shared sections."""
    import tempfile

    import yaml

    params = load_params(resolve(args.params))
    if args.smoke:
        params = deep_merge(params, load_params(ROOT / "scales" / "smoke.yaml"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "params.yaml"
        path.write_text(yaml.safe_dump(params, sort_keys=False))
        return {name: load_stage(name, path, args.dataset)[1]
                for name in ("train_translation", "train_segmenter", "evaluate_translation")}


def generator_config(name: str, recipe: dict, size: int, smoke: bool) -> dict:
    """The generator config trained: the paper configuration (:func:`timing_config`: registry
    defaults, built for ``size``) with the recipe's conditioning and the paper's widths
    (``scales/paper.yaml``); at smoke scale the recipe's (smoke) widths instead."""
    over = dict(recipe)
    if not smoke:
        paper = load_params(ROOT / "scales" / "paper.yaml")["train_translation"]["models"][name]["generator_cfg"]
        over.update({k: paper[k] for k in PAPER_WIDTH_KEYS[name] if k in paper})
    if over.get("learned_ds_factor", 0) > size // LOWRES_ROWS:
        over.pop("learned_ds_factor")  # a tile smaller than the paper's: the config derives it (split_tile)
    over.pop("height", None)
    return timing_config(name, size, over.pop("label_nc"), over)


class InMemory(Dataset):
    """The items of a dataset, decoded once (threads) and kept in memory; unflipped like it."""

    def __init__(self, dataset: Dataset) -> None:
        with ThreadPoolExecutor() as pool:
            self.items = list(pool.map(dataset.__getitem__, range(len(dataset))))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


# ----------------------------------------------------------------------------- training


def plan_steps(remaining_s: float, step_s: float, max_steps: int = 0) -> tuple[int, int]:
    """``(steps, decay_steps)`` of a run with ``remaining_s`` seconds at ``step_s`` per step:
    ``steps = max(2, floor(STEP_SAFETY * remaining_s / step_s))`` (capped by ``max_steps`` when > 0),
    the last ``round(DECAY_SHARE * steps)`` (at least 1) decaying."""
    steps = max(2, int(STEP_SAFETY * remaining_s / step_s))
    if max_steps:
        steps = max(2, min(steps, max_steps))
    return steps, max(1, round(steps * DECAY_SHARE))


def train_model(name: str, base: gan.GANTrainConfig, train_set: Dataset, work: Path, args, dev: torch.device, t0: float) -> dict:
    """One model's phase: warm-up to measure the step time, then the budgeted run."""
    budget = args.minutes * 60.0
    start = time.perf_counter()
    stamps: list[float] = []

    def stamp(_step: int, _losses: dict, _nets: dict) -> None:
        sync(dev)
        stamps.append(time.perf_counter())

    warm_cfg = dataclasses.replace(base, steps=args.warmup_steps, decay_steps=0, curve_points=0, time_budget_s=0.0)
    warm_dir = work / f"{name}_warmup"
    gan.train_gan(warm_cfg, train_set, warm_dir, resume=False, progress=False, on_step=stamp)
    shutil.rmtree(warm_dir, ignore_errors=True)
    deltas = np.diff(stamps)[len(stamps) // 2 - 1:]  # the later steps: after cuDNN's algorithm search
    step_s = float(np.median(deltas))
    remaining = budget - (time.perf_counter() - start)
    if remaining <= step_s:
        raise RuntimeError(f"{name}: the warm-up used the whole budget of {budget:.0f} s; raise --minutes")
    steps, decay = plan_steps(remaining, step_s, args.max_steps)
    cfg = dataclasses.replace(base, steps=steps, decay_steps=decay, time_budget_s=remaining)
    log(t0, f"{name}: warm-up {len(stamps)} steps, {step_s * 1e3:.0f} ms/step -> {steps} steps planned in {remaining:.0f} s")
    every = max(1, steps // 10)

    def progress(step: int, losses: dict, _nets: dict) -> None:
        if step % every == 0 or step == steps:
            terms = ", ".join(f"{k} {float(v):.3f}" for k, v in losses.items())
            log(t0, f"{name}: step {step}/{steps} ({terms})")

    out_dir = work / name
    summary = gan.train_gan(cfg, train_set, out_dir, resume=False, progress=False, on_step=progress, params=to_dict(cfg))
    final = load_checkpoint(out_dir / gan.EVAL_GENERATOR_NAME)
    g = load_model(out_dir / gan.EVAL_GENERATOR_NAME)
    return {
        "generator": name, "params": count_params(g), "generator_cfg": to_dict(g.cfg),
        "recipe": {k: v for k, v in to_dict(cfg).items() if k in ("loss", "lr_g", "lr_d", "beta1", "beta2", "ema_decay",
                                                                   "discriminator_cfg", "precision", "seed", "flip")},
        "warmup_steps": len(stamps), "warmup_step_ms": step_s * 1e3, "planned_steps": steps, "decay_steps": cfg.decay_steps,
        "steps": int(summary["steps"]), "stopped_by_budget": bool(summary["stopped_by_budget"]),
        "train_seconds": float(summary["train_seconds"]), "phase_seconds": time.perf_counter() - start, "budget_seconds": budget,
        "images_per_second": int(summary["steps"]) * cfg.batch_size / max(float(summary["train_seconds"]), 1e-9),
        "epochs": int(summary["steps"]) * cfg.batch_size / len(train_set), "final_losses": summary["final_losses"],
        "precision": summary["precision"], "ema": bool(final.get("ema")), "eval_step": int(final["step"]),
        "eval_train_seconds": float(final["train_seconds"]),
    }


# ----------------------------------------------------------------------------- timing, segmenter, quality


def time_generators(work: Path, models: Sequence[str], args, dev: torch.device) -> list[dict]:
    """Batch-1 forward time of each trained generator at each timing size and precision."""
    rows = []
    for name in models:
        model = load_model(work / name / gan.EVAL_GENERATOR_NAME, map_location=dev)
        for h, w in args.timing_sizes:
            ids = example_label_ids(h, w, label_nc=model.cfg.label_nc).to(dev)  # (1, H, W)
            onehot, edge = example_inputs(model, ids, device=dev)
            kwargs = forward_kwargs(name, None)
            for prec in TIMING_PRECISIONS:
                def forward(m=model, o=onehot, e=edge, p=prec):
                    with timing_precision(p, dev):
                        return m(o, e, **kwargs)

                t = time_forward(forward, device=dev, warmup=args.timing_warmup, runs=args.timing_runs)
                rows.append({"model": name, "height": h, "width": w, "precision": prec, **t})
        del model
    return rows


def segmenter_for(settings: dict, data_root: Path, labels, work: Path, args, dev: torch.device) -> tuple[Path, dict]:
    """The pipeline's segmenter when it was trained at ``--size``, else one trained here on the
    photos of the study recipe's ``train_splits``."""
    reuse = resolve(args.segmenter_dir) / seg.CHECKPOINT_NAME
    if reuse.is_file() and (load_checkpoint(reuse).get("params") or {}).get("size") == args.size:
        return reuse, {"source": f"reused {args.segmenter_dir}", "seconds": 0.0}
    recipe = settings["train_segmenter"]
    train_set = InMemory(image_sets.first_items(translation_dataset(
        settings["train_translation"].paired(), data_root, list(recipe.train_splits), args.size), args.train_items))
    cfg = dataclasses.replace(recipe, size=args.size, batch_size=min(args.batch, len(train_set)),
                              epochs=args.segmenter_epochs, time_budget_s=args.segmenter_seconds, max_steps=0,
                              device=str(dev), workers=0, checkpoint_every=0, precision=args.precision)
    out = seg.train_segmenter(cfg, train_set, work / "segmenter", resume=False, labels=labels, params=to_dict(cfg), progress=False)
    return work / "segmenter" / seg.CHECKPOINT_NAME, {
        "source": "trained here", "seconds": float(out["train_seconds"]), "steps": int(out["steps"]),
        "stopped_by_budget": bool(out["stopped_by_budget"]), "final_pixel_accuracy": float(out["final_pixel_accuracy"])}


def inception_or_reason(cfg: ev.TranslationEvalConfig, dev: torch.device):
    """pytorch-fid's Inception, or ``(None, reason)`` when it or its weights are missing."""
    try:
        return ev.load_inception(cfg, dev), None
    except (ImportError, FileNotFoundError) as e:
        return None, f"FID/KID not computed: {type(e).__name__}: {e}"


def miou_row(name: str, files: Sequence[Path], ctx: dict, cfg: ev.TranslationEvalConfig) -> dict:
    """A result row with the segmenter's scores on ``files`` and NaN FID/KID (no Inception)."""
    s = segmentation_scores(ctx["segmenter"][0], files, ctx["targets"], ctx["labels"].num_classes, ctx["labels"].ignore_index,
                            batch_size=cfg.batch_size, device=ctx["device"], n_boot=cfg.n_boot, seed=cfg.seed)
    keys = ("miou", "miou_boot_low", "miou_boot_high", "miou_boot_std", "pixel_accuracy", "mean_class_accuracy")
    return {**{k: math.nan for k in ev.ROW_COLUMNS}, "model": name, "n": int(s["n"]), **{k: float(s[k]) for k in keys},
            "fid_between": "", "segmenter": ctx["segmenter"][1], "per_class_iou": list(s["per_class_iou"])}


def quality_row(name: str, ckpt: Path, ctx: dict, cfg: ev.TranslationEvalConfig, out_dir: Path) -> dict:
    """:func:`lib.translation.evaluate.evaluate_model`'s row; mIoU alone when there is no Inception."""
    if ctx["inception"] is not None:
        return ev.evaluate_model(name, ckpt, ctx["test_set"], ctx["labels"], ctx["real_dir"], out_dir, ctx["segmenter"],
                                 ctx["inception"], cfg, device=ctx["device"], real_features=ctx["real_features"],
                                 targets=ctx["targets"])
    files = image_sets.generate_test_images(ckpt, ctx["test_set"], out_dir, cfg.batch_size, ctx["device"])
    return miou_row(name, files, ctx, cfg)


# ----------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    try:
        dev = resolve_device(args.device)
    except ValueError as e:
        print(f"error: {e} (use --device cpu --smoke for a smoke run)", file=sys.stderr)
        return 2
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    settings = load_settings(args)
    stage = settings["train_translation"]
    entry = stage.paired()
    data_root = resolve(args.data_root or entry.root)
    labels = label_set(entry, data_root)
    height, width = image_size(entry, args.size)
    work, out_path = resolve(args.work), resolve(args.out)
    env = environment_info(dev)
    result: dict[str, Any] = {
        "label": f"{env['device_name']}, torch {env['torch_version']}, CUDA {env['cuda_version']}",
        "environment": env, "smoke": args.smoke, "complete": False, "phase": "start", "dataset": args.dataset,
        "size": [height, width], "batch": args.batch, "precision": args.precision, "minutes_per_model": args.minutes,
        "budget_rule": (f"per model: wall budget --minutes from the start of its phase; a {args.warmup_steps}-step warm-up "
                        f"measures the step time; steps = floor({STEP_SAFETY} x remaining / step time), lr constant then "
                        f"linear decay over the last {DECAY_SHARE:.2f} of the steps; time_budget_s = remaining as a hard stop"),
        "args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()} | {"device": str(dev)},
        "models": {}, "timing": [], "quality": [], "curve": [],
    }

    def save(phase: str) -> None:
        result.update(phase=phase, wall_seconds=time.perf_counter() - t0)
        write_json(out_path, result)

    log(t0, f"{result['label']}; {args.dataset} {height}x{width}, batch {args.batch}, {args.precision}, "
            f"{args.minutes:g} min per model; writing {out_path}")
    train_full = translation_dataset(entry, data_root, stage.train_split, args.size)
    train_set = InMemory(image_sets.first_items(train_full, args.train_items))
    test_set = image_sets.first_items(translation_dataset(entry, data_root, stage.test_split, args.size),
                                      settings["evaluate_translation"].max_images)
    log(t0, f"data: {len(train_set)} training / {len(test_set)} test pairs in memory")
    result.update(train_items=len(train_set), test_items=len(test_set))

    for name in args.models:
        base = gan.gan_config(stage, name)
        recipe = dict(base.generator_cfg)
        base = dataclasses.replace(
            base, generator_cfg=generator_config(name, recipe, args.size, args.smoke), size=args.size,
            batch_size=args.batch, precision=args.precision, curve_points=args.curve_points, max_steps=0,
            checkpoint_every=0, sample_every=0, log_every=10, threads=0, device=str(dev), workers=0,
            ema_decay=base.ema_decay if args.ema_decay is None else args.ema_decay,
            loss=base.loss if args.lambda_l1 is None else dataclasses.replace(base.loss, lambda_l1=args.lambda_l1))
        result["models"][name] = train_model(name, base, train_set, work, args, dev, t0)
        m = result["models"][name]
        log(t0, f"{name}: {m['steps']} steps in {m['train_seconds']:.0f} s ({m['images_per_second']:.0f} img/s, "
                f"{m['epochs']:.1f} epochs), {m['params'] / 1e6:.1f} M params")
        save(f"trained {name}")
        if dev.type == "cuda":
            torch.cuda.empty_cache()

    result["timing"] = time_generators(work, args.models, args, dev)
    for r in result["timing"]:
        log(t0, f"time {r['model']} {r['height']}x{r['width']} {r['precision']}: {r['median_ms']:.2f} ms")
    save("timed")

    seg_ckpt, result["segmenter"] = segmenter_for(settings, data_root, labels, work, args, dev)
    eval_cfg = dataclasses.replace(settings["evaluate_translation"], device=str(dev))
    inception, fid_note = inception_or_reason(eval_cfg, dev)
    if fid_note:
        log(t0, fid_note)
    images = work / "evaluation"
    real_files = image_sets.real_test_images(test_set, images / "real")
    ctx = {"test_set": test_set, "labels": labels, "real_dir": images / "real", "device": dev, "inception": inception,
           "targets": test_targets(test_set, labels), "segmenter": ev.build_segmenter(eval_cfg, seg_ckpt, labels, dev, args.size),
           "real_features": None if inception is None else fidlib.activations(images / "real", inception, eval_cfg.batch_size, dev)}
    result["segmenter"]["description"] = ctx["segmenter"][1]
    result.update(fid_note=fid_note, n_test_images=len(real_files), fid_caveat=ev.FID_CAVEAT, protocol=ev.PROTOCOL)
    log(t0, f"segmenter: {ctx['segmenter'][1]}")
    for name in args.models:
        row = quality_row(name, ev.eval_checkpoint(work / name), ctx, eval_cfg, images / name)
        result["quality"].append(row)
        log(t0, f"{name}: FID {row['fid']:.1f}, KID {row['kid']:.3f}, mIoU {row['miou']:.3f}")
    if inception is None:  # the segmenter on the real photos only (no pytorch-fid needed)
        real = miou_row("real", real_files, ctx, eval_cfg)
    else:
        real = ev.evaluate_real(images / "real", labels, ctx["targets"], ctx["segmenter"], eval_cfg, inception=inception,
                                reference_set=train_full, reference_dir=images / "reference",
                                real_features=ctx["real_features"], device=dev)
    result["quality"].append(real)
    log(t0, f"real photos: FID {real['fid']:.1f}, mIoU {real['miou']:.3f}")
    save("evaluated")

    if inception is not None and not args.no_curve_eval:
        frames = []
        for name in args.models:
            frame, per_point = curves.evaluate_snapshots(
                name, work / name, test_set, labels, images / "real", images / f"curve_{name}", ctx["segmenter"], inception,
                eval_cfg, device=dev, real_features=ctx["real_features"], targets=ctx["targets"])
            frames.append(frame)
            log(t0, f"curve {name}: {len(frame)} snapshots, {per_point:.1f} s each; "
                    + ", ".join(f"step {r.step}: KID {r.kid:.3f} mIoU {r.miou:.3f}" for r in frame.itertuples()))
        curve = pd.concat(frames, ignore_index=True)
        result.update(curve=curve.to_dict("records"), quality=curves.add_smoothed(result["quality"], curve),
                      smoothing=curves.SMOOTHING)
        save("curves")
    result["complete"] = True
    save("done")
    log(t0, f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
