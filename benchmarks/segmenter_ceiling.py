"""The mIoU ceiling of a translation study's segmenter: how far longer training or another
recipe moves its mIoU on the real test photos, outside the pipeline.

Usage::

    python benchmarks/segmenter_ceiling.py --dataset camvid --set epochs=24          # train, then score
    python benchmarks/segmenter_ceiling.py --dataset camvid --checkpoint data/processed/segmenter/camvid/checkpoint.pt

With ``--set key=value`` (any field of the study's ``train_segmenter`` settings, values parsed as
YAML) a segmenter is trained with :func:`lib.train.segmenter.train_segmenter` from the study's
settings in ``params.yaml`` with those fields changed, into ``--work`` (a killed run resumes
there). With ``--checkpoint`` an existing segmenter is scored instead (its own recorded settings
are reported). Either way it is scored as the evaluation stage scores the real photos
(:func:`lib.translation.evaluate.evaluate_real` on the real test photos written by
:func:`lib.translation.image_sets.real_test_images`, the same bootstrap), and one row is
appended to ``benchmarks/results/segmenter_ceiling_<dataset>.csv``: the settings that differ
from ``params.yaml``, the steps and training seconds, mIoU with its interval, pixel accuracy,
per-class IoU, the machine and the commit. Scoring the pipeline's own checkpoint reproduces the
``real`` row of ``reports/metrics/translation/<dataset>/translation_eval.csv``.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
from pathlib import Path

import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lib.checkpoint import load_checkpoint  # noqa: E402
from lib.config import to_dict  # noqa: E402
from lib.data import translation_dataset  # noqa: E402
from lib.data.labels import label_set  # noqa: E402
from lib.io import write_csv  # noqa: E402
from lib.provenance import environment_info, git_revision  # noqa: E402
from lib.stages import load_stage, resolve  # noqa: E402
from lib.train import gan  # noqa: E402
from lib.train import segmenter as seg  # noqa: E402
from lib.translation import evaluate as ev  # noqa: E402
from lib.translation import image_sets  # noqa: E402
from lib.translation.segmentation_eval import test_targets  # noqa: E402


def parse_overrides(items: list[str], cfg: seg.SegmenterTrainConfig) -> dict:
    """``["epochs=24", ...]`` -> ``{"epochs": 24, ...}``, each key a field of ``cfg``."""
    fields = {f.name for f in dataclasses.fields(cfg)}
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            raise SystemExit(f"--set {item!r}: expected key=value with key one of {', '.join(sorted(fields))}")
        parsed = yaml.safe_load(value)
        out[key] = tuple(parsed) if isinstance(parsed, list) else parsed
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="camvid", help="a study of translation.datasets")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a train_segmenter setting to change (repeatable)")
    parser.add_argument("--checkpoint", type=Path, help="score this segmenter instead of training one")
    parser.add_argument("--work", type=Path, help="training folder (default data/processed/benchmarks/segmenter/<dataset>-<settings>)")
    parser.add_argument("--images", type=Path, help="folder for the real test photos (default data/processed/benchmarks/real/<dataset>)")
    parser.add_argument("--out", type=Path, help="results CSV (default benchmarks/results/segmenter_ceiling_<dataset>.csv)")
    args = parser.parse_args(argv)

    scale, base = load_stage("train_segmenter", args.params, args.dataset)
    _, data = load_stage("train_translation", args.params, args.dataset)
    _, eval_cfg = load_stage("evaluate_translation", args.params, args.dataset)
    base = seg.segmenter_config(base, data)
    labels = label_set(data.paired(), resolve(data.data_root))
    size = gan.translation_size(data)

    if args.checkpoint is not None:
        if args.set:
            raise SystemExit("--checkpoint scores an existing segmenter: --set does not apply")
        if not args.checkpoint.is_file():
            raise SystemExit(f"--checkpoint: no such file: {args.checkpoint}")
        ckpt = load_checkpoint(args.checkpoint)
        recorded = dict(ckpt.get("params") or {})
        changed = {k: v for k, v in recorded.items() if k in to_dict(base) and _plain(v) != _plain(to_dict(base)[k])}
        checkpoint, steps = args.checkpoint, int(ckpt["step"])
        seconds = float((ckpt.get("extra") or {}).get("seconds", float("nan")))
    else:
        changed = parse_overrides(args.set, base)
        cfg = dataclasses.replace(base, **changed)
        tag = "-".join(f"{k}{_plain(v)}" for k, v in sorted(changed.items())) or "params"
        work = args.work or ROOT / "data" / "processed" / "benchmarks" / "segmenter" / f"{args.dataset}-{tag}"
        train_set = translation_dataset(data.paired(), resolve(data.data_root), list(cfg.train_splits), cfg.size, seed=cfg.seed)
        print(f"training {cfg.arch} on {len(train_set)} photos, {cfg.total_steps(len(train_set))} steps, into {work}", flush=True)
        summary = seg.train_segmenter(cfg, train_set, work, resume=True, labels=labels, params=to_dict(cfg))
        checkpoint, steps, seconds = work / seg.CHECKPOINT_NAME, int(summary["steps"]), float(summary["train_seconds"])

    device = ev.prepare_device(eval_cfg)
    test_set = translation_dataset(data.paired(), resolve(data.data_root), data.test_split, size)
    images = args.images or ROOT / "data" / "processed" / "benchmarks" / "real" / args.dataset
    real_dir = images / "real"
    image_sets.real_test_images(test_set, real_dir)
    segmenter = ev.build_segmenter(eval_cfg, checkpoint, labels, device, size)
    scores = ev.evaluate_real(real_dir, labels, test_targets(test_set, labels), segmenter,
                              dataclasses.replace(eval_cfg, real_reference=False), device=device)  # mIoU only
    row = {
        "dataset": args.dataset,
        "changed": "; ".join(f"{k}={_plain(v)}" for k, v in sorted(changed.items())) or "(params.yaml)",
        "steps": steps,
        "train_seconds": seconds,
        "n": int(scores["n"]),
        **{k: float(scores[k]) for k in ("miou", "miou_boot_low", "miou_boot_high", "pixel_accuracy")},
        **{f"iou_{name}": float(v) for name, v in zip(labels.class_names, scores["per_class_iou"])},
        "segmenter": segmenter[1],
        "checkpoint": _where(Path(checkpoint)),
        "cpu": environment_info(device).get("cpu_model"),
        "threads": torch.get_num_threads(),
        "git_revision": git_revision(),
        "date": datetime.date.today().isoformat(),
    }
    out = args.out or ROOT / "benchmarks" / "results" / f"segmenter_ceiling_{args.dataset}.csv"
    table = pd.concat([pd.read_csv(out), pd.DataFrame([row])], ignore_index=True) if out.exists() else pd.DataFrame([row])
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(out, table)
    print(f"{args.dataset} segmenter ({row['changed']}, {steps} steps): mIoU {row['miou']:.4f} "
          f"[{row['miou_boot_low']:.4f}, {row['miou_boot_high']:.4f}], pixel accuracy {row['pixel_accuracy']:.4f}; appended to {out}")
    return 0


def _where(path: Path) -> str:
    """The checkpoint relative to the project; outside it, its last three path parts (no machine paths)."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else ".../" + "/".join(path.parts[-3:])


def _plain(value):
    """Lists and tuples alike, for comparing recorded JSON settings with the typed config."""
    return list(value) if isinstance(value, (list, tuple)) else value


if __name__ == "__main__":
    raise SystemExit(main())
