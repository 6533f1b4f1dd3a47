"""The label -> photo studies of the report: one per dataset of ``translation.datasets``, read from
``reports/metrics/translation/<dataset>/``.

:func:`load_study` reads the files a study's stages wrote (the evaluation's ``translation_eval.json``,
learning curves and per-class IoU; the training summaries and losses; the segmenter's summary); a
study without ``translation_eval.json`` has not been run, and the page says so in one line with the
command that runs it (:func:`not_run_text`) instead of a section. :func:`study_title` names a study on
the page; :func:`anchor` gives each section of a study its own HTML anchor.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from lib.io import read_json
from lib.translation.evaluate import outputs as eval_outputs

__all__ = ["Study", "STUDY_TITLES", "study_title", "load_study", "not_run_text", "anchor", "study_metas",
           "contents_line", "EVAL_FILE"]

EVAL_FILE = "translation_eval.json"  # a study has results once its evaluation stage wrote this file
STUDY_TITLES = {"facades": "Facades", "camvid": "Street scenes (CamVid)",
                "cityscapes": "Street scenes (Cityscapes)"}  # the built-in datasets' names on the page


@dataclass(frozen=True)
class Study:
    """One label -> photo study as the report reads it.

    Attributes:
        name: the dataset key (``translation.datasets``).
        title: its name on the page (:func:`study_title`).
        directory: ``reports/metrics/translation/<name>`` (as given to :func:`load_study`).
        eval_json: ``translation_eval.json``; ``None``: the study has not been evaluated.
        summaries: model -> ``train_<model>.json`` (the evaluated models whose file exists).
        losses: model -> ``losses_<model>.csv`` as a frame (those that exist).
        segmenter: ``train_segmenter.json`` or ``None``.
        curves: ``translation_curves.csv`` or ``None``.
        per_class: ``translation_per_class_iou.csv`` or ``None``.
    """

    name: str
    title: str
    directory: Path
    eval_json: Mapping[str, Any] | None = None
    summaries: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    losses: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    segmenter: Mapping[str, Any] | None = None
    curves: pd.DataFrame | None = None
    per_class: pd.DataFrame | None = None

    @property
    def has_results(self) -> bool:
        """Whether the evaluation stage has written the study's ``translation_eval.json``."""
        return self.eval_json is not None

    @property
    def models(self) -> list[str]:
        """The evaluated generators, in the order of ``translation_eval.json`` (empty without results)."""
        if self.eval_json is None:
            return []
        models = self.eval_json.get("meta", {}).get("models")
        return list(models) if models else [r["model"] for r in self.eval_json.get("rows", []) if r["model"] != "real"]


def study_title(name: str, entry: Any = None) -> str:
    """The study's name on the page: the ``display_name`` of its ``datasets.<name>`` entry (a mapping or a
    config object) where it has one, else the built-in dataset's name (:data:`STUDY_TITLES`), else the
    key title-cased (``my_scenes`` -> ``My Scenes``)."""
    given = entry.get("display_name") if isinstance(entry, Mapping) else getattr(entry, "display_name", None)
    if given:
        return str(given)
    return STUDY_TITLES.get(name) or name.replace("_", " ").title()


def _csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.exists() else None


def load_study(metrics_dir: str | Path, name: str, title: str | None = None) -> Study:
    """The study ``name`` from ``metrics_dir/translation/<name>/``: every file of it that exists.

    Without ``translation_eval.json`` the study has no results (:attr:`Study.has_results` false) and
    nothing else is read: a training run without its evaluation is not reported.
    """
    directory = Path(metrics_dir) / "translation" / name
    title = title or study_title(name)
    eval_path = directory / EVAL_FILE
    if not eval_path.exists():
        return Study(name, title, directory)
    ev = read_json(eval_path)
    probe = Study(name, title, directory, ev)
    summaries = {m: read_json(directory / f"train_{m}.json") for m in probe.models if (directory / f"train_{m}.json").exists()}
    losses = {m: pd.read_csv(directory / f"losses_{m}.csv") for m in probe.models if (directory / f"losses_{m}.csv").exists()}
    seg = directory / "train_segmenter.json"
    return Study(name, title, directory, ev, summaries, losses, read_json(seg) if seg.exists() else None,
                 _csv(directory / "translation_curves.csv"), _csv(directory / "translation_per_class_iou.csv"))


def not_run_text(study: Study) -> str:
    """The one line that stands for a study without results: the file its evaluation stage writes
    (:func:`lib.translation.evaluate.outputs`) and the command that runs the study
    (``dvc repro evaluate_translation@<name>``: its training runs, segmenter and evaluation)."""
    path = eval_outputs(study.name)["metrics_out"]
    return (f"*{study.title}: this study has not been run yet (no `{path}`). "
            f"`dvc repro evaluate_translation@{study.name}` runs it: its training runs, segmenter and evaluation.*")


def anchor(section: str, study: Study | str) -> str:
    """The HTML anchor of one section of a study: ``<section>-<dataset>`` (``quality-camvid``)."""
    return f"{section}-{study if isinstance(study, str) else study.name}"


def study_metas(study: Study, prefix: str = "reports/metrics") -> dict[str, Mapping[str, Any]]:
    """The provenance block of each of the study's JSON files, by repository path (the header's commits
    and the provenance table): the evaluation's meta, each training summary, the segmenter's summary."""
    if not study.has_results:
        return {}
    base = f"{prefix}/translation/{study.name}"
    out: dict[str, Mapping[str, Any]] = {f"{base}/{EVAL_FILE}": study.eval_json["meta"]}
    out.update({f"{base}/train_{m}.json": s for m, s in study.summaries.items()})
    if study.segmenter is not None:
        out[f"{base}/train_segmenter.json"] = study.segmenter
    return out


def contents_line(studies: Sequence[Study]) -> str:
    """The label -> photo entry of the page's contents: per study with results, links to its sections;
    a study without results by name, marked as not run yet."""
    parts = []
    for s in studies:
        if not s.has_results:
            parts.append(f"{s.title} (not run yet)")
            continue
        links = " · ".join(f"[{text}](#{anchor(key, s)})" for text, key in
                           (("quality", "quality"), ("learning curves and per-class IoU", "curves"),
                            ("test images", "samples")))
        parts.append(f"**{s.title}:** {links}")
    return "; ".join(parts)
