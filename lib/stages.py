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
    "TimeTranslationConfig",
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


@dataclass(frozen=True)
class TimeTranslationConfig:
    """``time_translation``: inference time of the label -> photo generators (DESIGN §5).

    A grid (:func:`lib.metrics.timing.timing_grid`): each model of ``models`` in its paper
    configuration (:func:`lib.metrics.timing.timing_config`, ``label_nc`` labels, random
    weights) at each size of ``sizes`` under each threads setting of ``settings`` (on CUDA once
    per TF32 flag of ``tf32``); with ``trained``, also each generator of ``train_translation``
    as trained (its config, image size and label count) at all threads.

    Attributes:
        seed: seeds the random weights and the example label map.
        models: timed generators (``asapnet``, ``pix2pixhd``, ``spade``).
        sizes: ``[height, width]`` pairs.
        settings: ``{threads: 0 (all cores) | n, max_forward_s: s (0 = no limit)}`` each
            (:class:`lib.metrics.timing.TimingSetting`): a cell predicted to need more than
            ``max_forward_s`` per forward is skipped and recorded with its predicted time.
        warmup: untimed forwards per cell (the first one also measures peak memory), >= 1.
        min_runs: fewest timed runs per cell.
        max_runs: most timed runs per cell.
        cell_budget_s: runs = clamp(ceil(cell_budget_s / first forward), min_runs, max_runs).
        end_to_end: also time read label PNG + one-hot + forward + write PNG ...
        end_to_end_sizes: ... at these sizes (each one of ``sizes``).
        impl: ASAPNet implementation, ``fast`` or ``reference``.
        label_nc: label channels of the paper-config models.
        dtype: ``fp32``, ``bf16`` or ``fp16`` (model and inputs).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda[:i]``.
        tf32: on CUDA, the TF32 flags timed (one row each); ignored on the CPU.
        trained: also time the generators as trained in ``train_translation``.
        model_overrides: model -> config keys applied over its paper config (smaller models).
    """

    seed: int = 0
    models: tuple[str, ...] = ("asapnet", "pix2pixhd", "spade")  # sec. 4 baselines (Fig. 1)
    sizes: tuple[tuple[int, int], ...] = ((256, 256), (256, 512), (512, 1024), (1024, 2048))  # sec. 4: 256x512 and up
    settings: tuple[dict[str, Any], ...] = field(
        default_factory=lambda: ({"threads": 0, "max_forward_s": 0.0}, {"threads": 1, "max_forward_s": 0.0})
    )  # DESIGN §5: CPU with all threads and with 1
    warmup: int = 3  # DESIGN §5: warm-up before timing
    min_runs: int = 10  # not from the paper: "many runs"
    max_runs: int = 100  # not from the paper
    cell_budget_s: float = 10.0  # not from the paper
    end_to_end: bool = True
    end_to_end_sizes: tuple[tuple[int, int], ...] = ((256, 512),)  # sec. 4: Cityscapes 256x512
    impl: str = "fast"
    label_nc: int = 35  # Cityscapes label ids (official: label_nc)
    dtype: str = "fp32"  # DESIGN §5: float32
    device: str = "auto"
    tf32: tuple[bool, ...] = (False, True)
    trained: bool = True
    model_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from lib.metrics.timing import DTYPES, check_sizes, timing_settings

        if not self.models or len(set(self.models)) != len(self.models):
            raise ValueError(f"models={list(self.models)}: expected distinct model names")
        if not self.sizes:
            raise ValueError("sizes: expected at least one [height, width]")
        if not self.settings:
            raise ValueError("settings: expected at least one {threads, max_forward_s}")
        timing_settings(self.settings, where="settings")
        check_sizes(self.models, self.sizes, self.label_nc, self.model_overrides)
        for i, hw in enumerate(self.end_to_end_sizes):
            if tuple(hw) not in {tuple(s) for s in self.sizes}:
                raise ValueError(f"end_to_end_sizes[{i}]={list(hw)} is not one of sizes")
        if self.warmup < 1:
            raise ValueError(f"warmup={self.warmup} must be >= 1 (the first forward measures peak memory)")
        if not 1 <= self.min_runs <= self.max_runs:
            raise ValueError(f"min_runs={self.min_runs}, max_runs={self.max_runs}: need 1 <= min_runs <= max_runs")
        if self.cell_budget_s < 0:
            raise ValueError(f"cell_budget_s={self.cell_budget_s} must be >= 0")
        if self.impl not in ("fast", "reference"):
            raise ValueError(f"impl={self.impl!r} is not 'fast' or 'reference'")
        if self.label_nc < 1:
            raise ValueError(f"label_nc={self.label_nc} must be >= 1")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r}; known: {', '.join(DTYPES)}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(f"device={self.device!r} is not 'auto', 'cpu' or 'cuda[:i]'")
        if not self.tf32:
            raise ValueError("tf32: expected at least one flag, e.g. [false]")


def _translation_eval_configs() -> dict[str, type]:
    from lib.evaluate_translation import TranslationEvalConfig
    from lib.train.segmenter import SegmenterTrainConfig

    return {"train_segmenter": SegmenterTrainConfig, "evaluate_translation": TranslationEvalConfig}


def _denoise_configs() -> dict[str, type]:
    from lib.denoise_study import TrainDenoiserStage
    from lib.evaluate_denoising import EvaluateDenoisingConfig

    return {"train_denoiser": TrainDenoiserStage, "evaluate_denoising": EvaluateDenoisingConfig}


STAGES: dict[str, type] = {
    "fetch": FetchConfig,
    "dncnn_official": DnCNNOfficialConfig,
    "train_translation": TranslationTrainStage,
    "time_translation": TimeTranslationConfig,
    "report": ReportConfig,
    **_translation_eval_configs(),
    **_denoise_configs(),
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
