"""Training-step time of each translation model of one study, and the step counts that give every
model the same wall time: how the ``translation.per_dataset.<dataset>.train_translation.models``
budgets are set.

Usage::

    python benchmarks/translation_step_time.py --dataset camvid            # 2 rounds of 30 steps per model
    python benchmarks/translation_step_time.py --dataset mine --minutes 30 --steps 40 --rounds 3

Each model trains from scratch with its study's settings (``params.yaml`` through
:func:`lib.stages.load_stage`, the same data, size, batch, precision and threads the pipeline's
stage uses) into a temporary folder for ``--warmup + --steps`` steps. The rounds alternate the
models (A, B, A, B, ...), so load from other processes hits each model alike; a step's time is
the interval between two ``on_step`` calls, the warm-up steps left out. Prints the median seconds
per step of each model and, for ``--minutes`` of training each, the steps and the decay steps (the
last third, as the studies use) to write into ``params.yaml``. Step times measured on a CPU shared
with other work are too long and too noisy for a budget: measure on a quiet machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lib.data import translation_dataset  # noqa: E402
from lib.stages import load_stage, resolve  # noqa: E402
from lib.train import gan  # noqa: E402


def step_times(cfg: gan.GANTrainConfig, train_set, steps: int, warmup: int) -> list[float]:
    """Seconds of each training step after the first ``warmup`` of a fresh run of ``cfg``."""
    stamps: list[float] = []
    cfg = dataclasses.replace(cfg, max_steps=warmup + steps, checkpoint_every=0, sample_every=0,
                              log_every=max(warmup + steps, 1))
    with tempfile.TemporaryDirectory() as out:
        gan.train_gan(cfg, train_set, out, resume=False, progress=False,
                      on_step=lambda step, losses, models: stamps.append(time.perf_counter()))
    return list(np.diff(stamps[warmup:]))  # (steps - 1,) intervals between consecutive steps after the warm-up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="camvid", help="a study of translation.datasets")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per model and round")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps at the start of each round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=17.0, help="the training time to budget for each model")
    args = parser.parse_args(argv)
    _, stage = load_stage("train_translation", args.params, args.dataset)
    configs = {model: gan.gan_config(stage, model) for model in stage.models}
    size = next(iter(configs.values())).size
    train_set = translation_dataset(stage.paired(), resolve(stage.data_root), stage.train_split, size, seed=0)
    times: dict[str, list[float]] = {m: [] for m in configs}
    for r in range(args.rounds):
        for model, cfg in configs.items():
            t = step_times(cfg, train_set, args.steps, args.warmup)
            times[model] += t
            print(f"round {r + 1}/{args.rounds} {model}: median {np.median(t):.3f} s per step", flush=True)
    print(f"\n{args.dataset}: {len(train_set)} training pairs, size {size}; {args.minutes:g} min per model")
    print("| model | s per step (median) | interquartile range | steps | decay_steps |")
    print("|---|---|---|---|---|")
    for model, t in times.items():
        med = float(np.median(t))
        steps = int(round(args.minutes * 60 / med / 50) * 50)
        q25, q75 = np.percentile(t, [25, 75])
        print(f"| {model} | {med:.3f} | {q25:.3f}-{q75:.3f} | {steps} | {steps // 3} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
