"""One translation study at several training budgets, side by side: the learning curves and the
final scores of runs made with more (or fewer) steps than ``params.yaml`` gives.

Usage::

    python benchmarks/translation_budget.py --dataset camvid --run . --run ../camvid-2x

Each ``--run`` is a checkout of this project in which ``train_translation@<dataset>-*`` and
``evaluate_translation@<dataset>`` have run (``dvc repro -s``), with the steps of
``translation.per_dataset.<dataset>.train_translation.models`` changed in its ``params.yaml``
(benchmarks/NOTES.md: how the twice-the-budget CamVid run was made). Everything else must be the
same, the segmenter included, and is checked: the evaluation settings, the test set, the segmenter
description and each model's training settings other than the steps. The first run is the
reference: a run's budget factor is its steps over the reference's, per model.

Writes ``benchmarks/results/translation_budget_<dataset>.csv``: one row per model, run and
learning-curve snapshot (``final`` marks the evaluated end of the run, with its bootstrap
intervals), with the steps, the training seconds the run recorded, KID, FID, mIoU, the commit
each run's files name and its CPU.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lib.io import write_csv  # noqa: E402

COLUMNS = ("dataset", "run", "budget_factor", "model", "step", "total_steps", "decay_steps", "train_seconds",
           "final", "kid", "kid_boot_low", "kid_boot_high", "fid", "miou", "miou_boot_low", "miou_boot_high",
           "train_revision", "eval_revision", "cpu")
_SAME_EVAL = ("config", "dataset", "test_split", "size", "n_images", "segmenter", "class_names")


def _json(path: Path) -> dict:
    if not path.is_file():
        raise SystemExit(f"missing {path}: run `dvc repro -s` of the study's training and evaluation stages in that checkout")
    return json.loads(path.read_text())


def run_rows(run: Path, dataset: str) -> tuple[list[dict], dict, dict]:
    """The rows of one checkout, its evaluation meta block and each model's training config (steps left out)."""
    metrics = run / "reports" / "metrics" / "translation" / dataset
    evaluation = _json(metrics / "translation_eval.json")
    meta = evaluation["meta"]
    final = {r["model"]: r for r in evaluation["rows"]}
    curves = pd.read_csv(metrics / "translation_curves.csv")
    rows, recipes = [], {}
    for model in meta["models"]:
        train = _json(metrics / f"train_{model}.json")
        recipes[model] = {k: v for k, v in train["config"].items() if k not in ("epochs", "decay_epochs", "max_steps",
                                                                                 "steps", "decay_steps")}
        total = int(train["total_steps"])
        common = dict(dataset=dataset, model=model, total_steps=total, decay_steps=train["config"]["decay_steps"],
                      train_revision=train.get("git_revision"), eval_revision=meta.get("git_revision"),
                      cpu=meta["hardware"].get("cpu_model"))
        for c in curves[(curves["model"] == model) & (curves["step"] != total)].itertuples():  # the last: the final row
            rows.append(dict(common, step=int(c.step), train_seconds=float(c.train_seconds), final=False,
                             kid=float(c.kid), fid=float(c.fid), miou=float(c.miou)))
        f = final[model]
        rows.append(dict(common, step=total, train_seconds=float(train["train_seconds"]), final=True,
                         **{k: float(f[k]) for k in ("kid", "kid_boot_low", "kid_boot_high", "fid", "miou",
                                                      "miou_boot_low", "miou_boot_high")}))
    return rows, meta, recipes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="camvid")
    parser.add_argument("--run", type=Path, action="append", required=True,
                        help="a checkout whose study has been trained and evaluated (repeatable; the first is the reference)")
    parser.add_argument("--out", type=Path, help="default benchmarks/results/translation_budget_<dataset>.csv")
    parser.add_argument("--figure", type=Path, help="also draw KID and mIoU against training minutes (PNG)")
    args = parser.parse_args(argv)
    all_rows, reference = [], None
    for run in args.run:
        rows, meta, recipes = run_rows(run, args.dataset)
        if reference is None:
            reference = (meta, recipes, {r["model"]: r["total_steps"] for r in rows})
        else:
            ref_meta, ref_recipes, _ = reference
            for key in _SAME_EVAL:
                if meta.get(key) != ref_meta.get(key):
                    raise SystemExit(f"{run}: evaluation {key!r} differs from {args.run[0]}'s; runs must differ only in their steps")
            for model, recipe in recipes.items():
                if recipe != ref_recipes.get(model):
                    raise SystemExit(f"{run}: the training settings of {model} differ from {args.run[0]}'s beyond the steps")
        for r in rows:
            r["budget_factor"] = round(r["total_steps"] / reference[2][r["model"]], 3)
            r["run"] = f"{r['budget_factor']:g}x"
        all_rows += rows
    table = pd.DataFrame(all_rows)[list(COLUMNS)]
    out = args.out or ROOT / "benchmarks" / "results" / f"translation_budget_{args.dataset}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(out, table)
    if args.figure:
        figure(table, args.figure)
    finals = table[table["final"]]
    for r in finals.itertuples():
        print(f"{r.run:>5} {r.model:10s} {r.total_steps:6d} steps {r.train_seconds / 60:5.1f} min  KID {r.kid:.3f} "
              f"[{r.kid_boot_low:.3f}, {r.kid_boot_high:.3f}]  FID {r.fid:.1f}  mIoU {r.miou:.3f}")
    print(f"wrote {out}")
    return 0


def figure(table: pd.DataFrame, path: Path) -> None:
    """KID and mIoU of every snapshot against training minutes, one line per model and run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = table.assign(minutes=table["train_seconds"] / 60)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric, label in zip(axes, ("kid", "miou"), ("KID (lower is better)", "mIoU (higher is better)")):
        sns.lineplot(data=data, x="minutes", y=metric, hue="model", style="run", markers=True, dashes=True, ax=ax)
        ax.set(xlabel="training minutes (as recorded by each run)", ylabel=label)
    fig.suptitle(f"{table['dataset'].iloc[0]}: the study at {', '.join(sorted(table['run'].unique()))} its default steps")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
