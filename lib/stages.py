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

from lib.config import ConfigError, from_dict, load_params, section
from lib.data.fetch import FetchConfig
from lib.denoise.evaluate import EvaluateDenoisingConfig
from lib.denoise.official import DnCNNOfficialConfig
from lib.denoise.study import TrainDenoiserStage
from lib.paths import project_path
from lib.report import ReportConfig
from lib.train.gan import TranslationTrainStage
from lib.train.segmenter import SegmenterTrainConfig
from lib.translation.evaluate import TranslationEvalConfig
from lib.translation.timing import TimeTranslationConfig

__all__ = ["STAGES", "SCALES", "load_stage", "resolve"]

SCALES = ("smoke", "default", "paper")

# section of params.yaml -> its stage config (in pipeline order)
STAGES: dict[str, type] = {
    "fetch": FetchConfig,
    "dncnn_official": DnCNNOfficialConfig,
    "train_translation": TranslationTrainStage,
    "train_segmenter": SegmenterTrainConfig,
    "evaluate_translation": TranslationEvalConfig,
    "time_translation": TimeTranslationConfig,
    "train_denoiser": TrainDenoiserStage,
    "evaluate_denoising": EvaluateDenoisingConfig,
    "report": ReportConfig,
}


def resolve(path: str | Path) -> Path:
    """A params path: absolute as given, relative ones against the project root
    (:func:`lib.paths.project_path`)."""
    return project_path(path)


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
    return scale, from_dict(STAGES[name], section(params, name), where=name)
