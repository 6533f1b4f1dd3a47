"""Stage registry: each ``params.yaml`` section name -> the typed config class of its stage, and the loader.

Each stage's config is a frozen dataclass next to the code that uses it (paper values as
defaults). A notebook's ``parameters`` cell holds only selectors (which params file, which
model or run, output paths); every setting comes from :func:`load_stage`, and the next cell
prints the resolved config. An unknown stage, an unknown top-level section, or a section with
an unknown key or a bad value is an error that names it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import importlib

from lib.config import ConfigError, from_dict, load_params, section
from lib.paths import project_path

__all__ = ["STAGES", "SCALES", "config_class", "load_stage", "check_params", "resolve", "outputs_under"]

SCALES = ("smoke", "default", "paper")

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


def load_stage(name: str, params_file: str | Path = "params.yaml") -> tuple[str, Any]:
    """Loads the settings of stage ``name``.

    Args:
        name: a key of :data:`STAGES` (and the ``params.yaml`` section it reads).
        params_file: the parameter file (relative paths are taken from the project root).

    Returns:
        ``(scale, config)``: the scale label (smoke/default/paper) and the typed config.

    Raises:
        ConfigError: unknown stage, missing section, unknown key or wrong type (named).
    """
    if name not in STAGES:
        raise ConfigError(f"unknown stage {name!r}; known stages: {', '.join(sorted(STAGES))}")
    params = load_params(resolve(params_file))
    unknown = sorted(set(params) - set(STAGES) - {"scale"})
    if unknown:
        raise ConfigError(
            f"{params_file}: unknown top-level section(s) {unknown}; known: scale, {', '.join(sorted(STAGES))}"
        )
    scale = section(params, "scale")
    if scale not in SCALES:
        raise ConfigError(f"params key scale: {scale!r} is not one of {list(SCALES)}")
    return scale, from_dict(config_class(name), section(params, name), where=name)


def check_params(params_file: str | Path = "params.yaml") -> str:
    """Loads every stage's section of ``params_file`` (imports every stage's module), so a bad
    value anywhere, derived values included, is reported before any stage starts
    (``scripts/run_notebook.py`` calls it before each notebook). Returns the scale.

    Raises:
        ConfigError: the first bad section, key or value (named).
    """
    scale = ""
    for name in STAGES:
        scale, _ = load_stage(name, params_file)
    return scale
