"""Stage registry: each ``params.yaml`` section name -> the typed config class of its stage, and the loader.

Each stage's config is a frozen dataclass next to the code that uses it (paper values as
defaults). A notebook's ``parameters`` cell holds only selectors (which params file, which
dataset, model or run, output paths); every setting comes from :func:`load_stage`, and the next
cell prints the resolved config. An unknown stage, an unknown top-level section, or a section
with an unknown key or a bad value is an error that names it.

Two sections are not stages. ``datasets`` holds the paired label -> photo datasets
(:func:`lib.data.catalog.load_datasets`; README "Bring your own paired dataset"). ``translation``
says which of them the translation study runs on (``datasets``: one study per entry, every
translation stage once per study) and, per dataset, where a study differs from the shared
settings (``per_dataset.<dataset>.<stage section>``: keys merged over that stage's section,
:data:`STUDY_STAGES`), so everything that sets two studies apart is in one place.
"""
from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path
from typing import Any, Mapping

from lib.config import ConfigError, deep_merge, from_dict, load_params, section
from lib.paths import project_path

__all__ = ["STAGES", "SCALES", "SECTIONS", "STUDY_STAGES", "TranslationStudies", "config_class", "load_stage",
           "load_studies", "load_paired", "check_params", "resolve", "outputs_under", "study_data_dir"]

SCALES = ("smoke", "default", "paper")
SECTIONS = ("scale", "datasets", "translation")  # top-level sections that are not stages
# stages that run once per study dataset (translation.datasets), reading translation.per_dataset.<dataset>.<stage>
STUDY_STAGES = ("train_translation", "train_segmenter", "evaluate_translation")
STUDY_DATA_DIR = "data/raw"  # dvc.yaml: a study's stages depend on data/raw/<dataset>

# section of params.yaml -> "module:ConfigClass" of its stage (in pipeline order). Imported on
# first use, as the model registry does, so a notebook runs (and its DVC stage depends on) only
# the code of the stages it loads.
STAGES: dict[str, str] = {
    "fetch": "lib.data.fetch:FetchConfig",
    "dncnn_official": "lib.denoise.official:DnCNNOfficialConfig",
    "train_translation": "lib.train.gan:TranslationTrainStage",
    "train_segmenter": "lib.train.segmenter:SegmenterTrainConfig",
    "evaluate_translation": "lib.translation.evaluate:TranslationEvalConfig",
    "time_translation": "lib.translation.timing:TimeTranslationConfig",
    "train_denoiser": "lib.denoise.study:TrainDenoiserStage",
    "evaluate_denoising": "lib.denoise.evaluate:EvaluateDenoisingConfig",
    "report": "lib.report:ReportConfig",
}


def config_class(name: str) -> type:
    """The config class of stage ``name`` (imports its module)."""
    if name not in STAGES:
        raise ConfigError(f"unknown stage {name!r}; known stages: {', '.join(sorted(STAGES))}")
    module, cls = STAGES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def resolve(path: str | Path) -> Path:
    """A params path: absolute as given, relative ones against the project root
    (:func:`lib.paths.project_path`)."""
    return project_path(path)


def outputs_under(root: str | Path, outputs: dict[str, str]) -> dict[str, str]:
    """A stage's output paths (named in its lib module) placed under ``root``: ``"."`` (the pipeline)
    keeps them project-relative; another folder (a notebook run by hand, a test) collects them there."""
    if Path(root) == Path("."):
        return dict(outputs)
    return {key: (Path(root) / path).as_posix() for key, path in outputs.items()}


@dataclasses.dataclass(frozen=True)
class TranslationStudies:
    """``translation``: the label -> photo studies (docs/design.md#pipeline).

    Attributes:
        datasets: the study datasets, entries of the ``datasets`` section; every translation
            stage runs once per entry (``dvc.yaml``: ``foreach`` / ``matrix`` over this list).
        per_dataset: ``{dataset: {stage section: settings}}``: what one study changes in the
            sections of :data:`STUDY_STAGES` (merged over the section, key by key). Every study
            dataset has an entry with every stage section (``{}``: the shared settings), since
            ``dvc.yaml`` tracks each of them.
    """

    datasets: tuple[str, ...] = ("facades",)
    per_dataset: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.datasets or len(set(self.datasets)) != len(self.datasets):
            raise ValueError(f"datasets={list(self.datasets)}: expected distinct dataset names, at least one")
        for name, block in self.per_dataset.items():
            if not isinstance(block, Mapping):
                raise ValueError(f"per_dataset.{name}: expected a mapping of stage section -> settings, got {block!r}")
            for stage, settings in block.items():
                if stage not in STUDY_STAGES:
                    raise ValueError(f"per_dataset.{name}.{stage}: not a study stage; known: {', '.join(STUDY_STAGES)}")
                if settings is not None and not isinstance(settings, Mapping):
                    raise ValueError(f"per_dataset.{name}.{stage}: expected a mapping of settings, got {settings!r}")

    def overrides(self, dataset: str, stage: str) -> dict:
        """The settings study ``dataset`` changes in section ``stage`` (empty when none)."""
        return dict((self.per_dataset.get(dataset) or {}).get(stage) or {})


def _checked_params(params_file: str | Path) -> tuple[dict, str]:
    params = load_params(resolve(params_file))
    unknown = sorted(set(params) - set(STAGES) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            f"{params_file}: unknown top-level section(s) {unknown}; known: {', '.join(SECTIONS)}, {', '.join(sorted(STAGES))}"
        )
    scale = section(params, "scale")
    if scale not in SCALES:
        raise ConfigError(f"params key scale: {scale!r} is not one of {list(SCALES)}")
    return params, scale


def _datasets(params: Mapping[str, Any]) -> dict:
    from lib.data.catalog import load_datasets

    return load_datasets(params.get("datasets"))


def _studies(params: Mapping[str, Any]) -> TranslationStudies:
    studies = from_dict(TranslationStudies, params.get("translation"), where="translation")
    known = _datasets(params)
    for i, name in enumerate(studies.datasets):
        if name not in known:
            raise ConfigError(f"translation.datasets[{i}]: unknown dataset {name!r}; known: {', '.join(known)} "
                              "(add an entry to the datasets section)")
    for name in studies.per_dataset:
        if name not in known:
            raise ConfigError(f"translation.per_dataset.{name}: unknown dataset; known: {', '.join(known)}")
    return studies


def load_studies(params_file: str | Path = "params.yaml") -> TranslationStudies:
    """The ``translation`` section: the study datasets and their per-dataset settings.

    Raises:
        ConfigError: a study dataset with no entry in ``datasets`` (built in or in the section), a
            per-dataset block of an unknown dataset or stage (each named).
    """
    params, _ = _checked_params(params_file)
    return _studies(params)


def load_paired(params_file: str | Path = "params.yaml") -> dict:
    """The paired datasets: the built-in entries with the ``datasets`` section over them
    (:func:`lib.data.catalog.load_datasets`), ``{name: PairedConfig}``."""
    params, _ = _checked_params(params_file)
    return _datasets(params)


def study_data_dir(dataset: str) -> str:
    """The folder ``dvc.yaml`` tracks as study ``dataset``'s data: ``data/raw/<dataset>``."""
    return f"{STUDY_DATA_DIR}/{dataset}"


def _blame(error: ConfigError, name: str, override: Mapping[str, Any], dataset: str) -> ConfigError:
    """``error`` with its key named as written: under ``translation.per_dataset.<dataset>.<name>``
    when the study's override set it (the longest ``<name>.`` key of the message), else unchanged."""
    text = str(error)
    keys = [k.rstrip(".") for k in re.findall(rf"(?<![\w.]){re.escape(name)}\.[A-Za-z_][\w.]*", text)]
    if not keys:
        return error
    blamed = max(keys, key=len)
    node: Any = override
    for key in blamed.split(".")[1:]:
        if not isinstance(node, Mapping) or key not in node:
            return error
        node = node[key]
    prefix = f"translation.per_dataset.{dataset}."

    def rename(m: re.Match) -> str:
        key = m.group(0).rstrip(".")
        return prefix + m.group(0) if blamed == key or blamed.startswith(key + ".") else m.group(0)

    return ConfigError(re.sub(rf"(?<![\w.]){re.escape(name)}\.[A-Za-z_][\w.]*", rename, text))


def load_stage(name: str, params_file: str | Path = "params.yaml", dataset: str | None = None) -> tuple[str, Any]:
    """Loads the settings of stage ``name``.

    Args:
        name: a key of :data:`STAGES` (and the ``params.yaml`` section it reads).
        params_file: the parameter file (relative paths are taken from the project root).
        dataset: for a stage of :data:`STUDY_STAGES`, the study (an entry of
            ``translation.datasets``; ``None``: the first): its ``translation.per_dataset``
            settings are merged over the section, and a stage config with ``dataset`` / ``data``
            fields gets the study's name and :class:`lib.data.paired.PairedConfig`. Ignored by
            the other stages.

    Returns:
        ``(scale, config)``: the scale label (smoke/default/paper) and the typed config.

    Raises:
        ConfigError: unknown stage or study, missing section, unknown key or wrong type (named
            as written: a per-dataset value under ``translation.per_dataset.<dataset>``).
    """
    if name not in STAGES:
        raise ConfigError(f"unknown stage {name!r}; known stages: {', '.join(sorted(STAGES))}")
    params, scale = _checked_params(params_file)
    data = section(params, name)
    cls = config_class(name)
    if name not in STUDY_STAGES:
        return scale, from_dict(cls, data, where=name)
    studies = _studies(params)
    dataset = studies.datasets[0] if dataset is None else dataset
    if dataset not in studies.datasets:
        raise ConfigError(f"dataset {dataset!r} is not a study of translation.datasets {list(studies.datasets)}")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{name}: expected a mapping, got {data!r}")
    override = studies.overrides(dataset, name)
    fields = {f.name for f in dataclasses.fields(cls)}
    injected = {"dataset": dataset, "data": _datasets(params)[dataset]} if "data" in fields else {}
    for key in injected:
        for where, block in ((name, data), (f"translation.per_dataset.{dataset}.{name}", override)):
            if key in block:
                raise ConfigError(f"{where}.{key}: set by translation.datasets (the study); remove it")
    try:
        return scale, from_dict(cls, {**deep_merge(data, override), **injected}, where=name)
    except ConfigError as e:
        raise _blame(e, name, override, dataset) from e


def check_params(params_file: str | Path = "params.yaml") -> str:
    """Loads every stage's section of ``params_file`` (imports every stage's module), the study
    stages once per study dataset, so a bad value anywhere, derived values included, is reported
    before any stage starts (``scripts/run_notebook.py`` calls it before each notebook). Also
    checks what ``dvc.yaml`` relies on: each study dataset has its own ``datasets`` entry, its
    data in ``data/raw/<dataset>`` and a ``translation.per_dataset`` block for every study stage.
    Returns the scale.

    Raises:
        ConfigError: the first bad section, key or value (named).
    """
    params, scale = _checked_params(params_file)
    studies = _studies(params)
    written = params.get("datasets") or {}
    paired = _datasets(params)
    for i, dataset in enumerate(studies.datasets):
        if dataset not in written:
            raise ConfigError(f"translation.datasets[{i}]: {dataset!r} has no entry in the datasets section of "
                              f"{params_file} (dvc.yaml tracks datasets.{dataset}); write its entry there")
        root = Path(paired[dataset].root)
        if root.as_posix() != study_data_dir(dataset):
            raise ConfigError(f"datasets.{dataset}.root: {str(root)!r}; the pipeline tracks a study's data at "
                              f"{study_data_dir(dataset)} (dvc.yaml deps): put the dataset (or a link to it) there")
        for stage in STUDY_STAGES:
            if stage not in (studies.per_dataset.get(dataset) or {}):
                raise ConfigError(f"translation.per_dataset.{dataset}.{stage}: missing (dvc.yaml tracks it); "
                                  f"write {{}} to use the shared {stage} settings")
    for name in STAGES:
        for dataset in studies.datasets if name in STUDY_STAGES else [None]:
            load_stage(name, params_file, dataset)
    return scale
