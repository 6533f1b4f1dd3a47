"""Explicit model registry: ``build(name, cfg)`` returns an ``nn.Module``.

Each entry names the module, the ``nn.Module`` class and its frozen config dataclass (paper
values as defaults). Modules are imported on first use, so importing one model family does
not import the others. A name that is not registered raises and lists the known names.
"""
from __future__ import annotations

import importlib
from typing import Any, Mapping

import os

import torch
from torch import nn

from lib.checkpoint import check_finite_state, load_checkpoint
from lib.config import from_dict

__all__ = ["MODELS", "SEGMENTERS", "build", "config_class", "model_class", "make_config", "load_model", "model_name"]

# name -> (module, model class, config class)
MODELS: dict[str, tuple[str, str, str]] = {
    "asapnet": ("lib.models.asapnet", "ASAPNetGenerator", "ASAPNetConfig"),
    "pix2pixhd": ("lib.models.pix2pixhd", "GlobalGenerator", "Pix2PixHDConfig"),
    "spade": ("lib.models.spade", "SPADEGenerator", "SPADEConfig"),
    "patchgan": ("lib.models.patchgan", "MultiscaleDiscriminator", "PatchGANConfig"),
    "dncnn": ("lib.models.dncnn", "DnCNN", "DnCNNConfig"),
    "asapnet_denoise": ("lib.models.asapnet_denoise", "ASAPNetDenoiser", "ASAPNetDenoiseConfig"),
    "segmenter": ("lib.models.segmentation", "SegmentationNet", "SegmentationNetConfig"),
    "inception_segmenter": ("lib.models.inception_segmenter", "InceptionSegmenter", "InceptionSegmenterConfig"),
}
SEGMENTERS = ("segmenter", "inception_segmenter")  # the registered segmentation families (the mIoU protocol)


def _entry(name: str) -> tuple[Any, Any]:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    module_name, model_name, config_name = MODELS[name]
    module = importlib.import_module(module_name)
    return getattr(module, model_name), getattr(module, config_name)


def model_class(name: str) -> type[nn.Module]:
    """The ``nn.Module`` class registered as ``name``."""
    return _entry(name)[0]


def config_class(name: str) -> type:
    """The frozen config dataclass of the model registered as ``name``."""
    return _entry(name)[1]


def make_config(name: str, cfg: Mapping[str, Any] | Any | None = None) -> Any:
    """A config instance for ``name`` from a mapping (strict) or an existing instance."""
    cls = config_class(name)
    if isinstance(cfg, cls):
        return cfg
    return from_dict(cls, cfg, where=f"models.{name}")


def build(name: str, cfg: Mapping[str, Any] | Any | None = None) -> nn.Module:
    """Builds the model ``name`` with ``cfg`` (a mapping, a config instance, or defaults).

    Raises:
        KeyError: ``name`` is not registered (the message lists the known names).
        lib.config.ConfigError: ``cfg`` has unknown keys or wrongly typed values.
    """
    return model_class(name)(make_config(name, cfg))


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """The one checkpoint loader: rebuilds the checkpoint's model from the registry (its
    ``model`` name and ``config``), loads its weights strictly, and returns it in eval mode
    on ``map_location``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a checkpoint of this project, an unregistered model, weights that
            do not fit the built model, or weights with NaN / infinite values (each names the
            file; the last also the tensor).
    """
    ckpt = load_checkpoint(path, map_location="cpu")
    check_finite_state(path, ckpt["state_dict"])
    try:
        model = build(ckpt["model"], ckpt["config"])
    except KeyError as e:
        raise ValueError(f"{path}: {e.args[0]}") from e
    except (TypeError, ValueError) as e:  # a config the model's config class rejects
        raise ValueError(f"{path}: the checkpoint's config does not build {ckpt['model']!r}: {e}") from e
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit model {ckpt['model']!r}: {e}") from e
    return model.to(map_location).eval()


def model_name(model: nn.Module) -> str:
    """The registry name of ``model``'s class (the ``model`` key its checkpoints carry).

    Raises:
        KeyError: the class is not registered (names it and the known models).
    """
    cls = type(model)
    for name, (_, class_name, _) in MODELS.items():
        if cls.__name__ == class_name and model_class(name) is cls:  # imports only the candidates
            return name
    raise KeyError(f"{cls.__module__}.{cls.__name__} is not a registered model; known models: {', '.join(sorted(MODELS))}")
