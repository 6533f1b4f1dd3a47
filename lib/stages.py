"""Stage settings: one frozen dataclass per ``params.yaml`` section, one loader.

Each notebook's ``parameters`` cell holds selectors (which params file, which model or
dataset, output paths); every setting comes from :func:`load_stage`, and the next cell
prints the resolved config. A section with an unknown key, or a stage name that is not
registered, is an error that names it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.config import ConfigError, from_dict, load_params, section
from lib.paths import ROOT

__all__ = [
    "FetchConfig",
    "DnCNNOfficialConfig",
    "ReportConfig",
    "TranslationTrainStage",
    "gan_config",
    "STAGES",
    "SCALES",
    "load_stage",
    "resolve",
]

SCALES = ("smoke", "default", "paper")


@dataclass(frozen=True)
class FetchConfig:
    """``fetch``: where raw data and weights come from (never the network unless asked)."""

    data_mirror: str | None = None  # folder laid out like the data mirror; None -> $ASAPNET_DATA
    weights_mirror: str | None = None  # None -> $ASAPNET_WEIGHTS
    download: bool = False  # True: fetch missing files from the official locations
    datasets: tuple[str, ...] = ("bsd68", "set12", "cbsd68", "train400", "cbsd432", "facades", "cityscapes_subset")
    weights: tuple[str, ...] = ("fid_inception", "dncnn_official")


@dataclass(frozen=True)
class DnCNNOfficialConfig:
    """``dncnn_official``: the official DnCNN weights re-measured with our protocol (DESIGN §5)."""

    seed: int = 0  # base seed of the test noise (one derived seed per image and sigma)
    sigmas: tuple[float, ...] = (15.0, 25.0, 50.0)  # DnCNN paper, Table II
    # test set -> official models evaluated on it ("dncnn_s" = the sigma-specific model per sigma)
    sets: dict[str, Any] = field(
        default_factory=lambda: {
            "bsd68": ["dncnn_s", "dncnn_b_gray"],
            "set12": ["dncnn_s", "dncnn_b_gray"],
            "cbsd68": ["cdncnn_b_color"],
        }
    )
    max_images: int = 0  # 0 = every image of each set
    crop: int = 0  # 0 = full images; > 0 = centre crop of that size (smoke scale only)
    threads: int = 0  # torch threads; 0 = torch's default


@dataclass(frozen=True)
class ReportConfig:
    """``report``: what the HTML report shows."""

    title: str = "ASAPNet reproduction"
    crops_sigma: tuple[float, ...] = (25.0, 50.0)


@dataclass(frozen=True)
class TranslationTrainStage:
    """``train_translation``: label -> photo GAN training, one run per model, same data and budget.

    ``common`` holds the settings every model shares (data size, epochs, batch, logging);
    ``models.<name>`` each model's recipe. Both merge into a
    :class:`lib.train.gan.GANTrainConfig` (see :func:`gan_config`).
    """

    dataset: str = "facades"  # a key of lib.data.TRANSLATION_DATASETS
    data_root: str = "data/raw/facades"
    train_split: str = "train"
    test_split: str = "test"
    common: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)


def gan_config(stage: TranslationTrainStage, model: str) -> Any:
    """The :class:`lib.train.gan.GANTrainConfig` of ``model``: ``common`` with ``models.<model>`` over it."""
    from lib.config import deep_merge
    from lib.train.gan import GANTrainConfig

    if model not in stage.models:
        raise ConfigError(f"train_translation.models has no {model!r}; known: {', '.join(stage.models)}")
    merged = deep_merge(stage.common, stage.models[model])
    return from_dict(GANTrainConfig, merged, where=f"train_translation.models.{model}")


def _translation_eval_configs() -> dict[str, type]:
    from lib.evaluate_translation import TranslationEvalConfig
    from lib.train.segmenter import SegmenterTrainConfig

    return {"train_segmenter": SegmenterTrainConfig, "evaluate_translation": TranslationEvalConfig}


STAGES: dict[str, type] = {
    "fetch": FetchConfig,
    "dncnn_official": DnCNNOfficialConfig,
    "train_translation": TranslationTrainStage,
    "report": ReportConfig,
    **_translation_eval_configs(),
}


def resolve(path: str | Path) -> Path:
    """A params path: absolute as given, relative ones against the project root."""
    path = Path(path)
    return path if path.is_absolute() else ROOT / path


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
    scale = section(params, "scale")
    if scale not in SCALES:
        raise ConfigError(f"params key scale: {scale!r} is not one of {list(SCALES)}")
    return scale, from_dict(STAGES[name], section(params, name), where=name)
