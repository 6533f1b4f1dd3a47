"""Self-describing checkpoints, written atomically and loaded with ``weights_only=True``.

A checkpoint is a dict of tensors and plain Python values only (no pickled classes):
``model`` (name), ``config`` (the model config as a dict), ``params`` (the stage params),
``step``, ``git_revision``, ``torch_version``, ``state_dict`` and any extra training state
(optimizer, scheduler, RNG states).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch

from lib.io import atomic_path
from lib.paths import git_revision

__all__ = ["save_checkpoint", "load_checkpoint", "check_finite_state", "REQUIRED_KEYS"]

REQUIRED_KEYS = ("model", "config", "state_dict", "step", "git_revision", "torch_version")


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: str,
    config: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    step: int,
    params: Mapping[str, Any] | None = None,
    **extra: Any,
) -> Path:
    """Writes a self-describing checkpoint atomically.

    Args:
        path: destination file.
        model: registry name of the model.
        config: the model config as a plain dict (``lib.config.to_dict``).
        state_dict: the model weights.
        step: the training step (iterations done).
        params: the stage's params section, recorded for provenance.
        **extra: further plain/tensor entries (optimizer state, RNG states, ...).

    Returns:
        The path written.
    """
    payload = {
        "model": model,
        "config": dict(config),
        "params": dict(params or {}),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "step": int(step),
        "git_revision": git_revision(),
        "torch_version": str(torch.__version__),
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Loads a checkpoint with ``weights_only=True`` and checks it is self-describing.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a checkpoint of this project (names the missing keys, or
            the entry of the wrong kind: ``model`` a string, ``config`` a mapping,
            ``state_dict`` a mapping of names to tensors, ``step`` an integer).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt or truncated file
        raise ValueError(f"{path}: cannot be loaded as a checkpoint: {e}") from e
    missing = [k for k in REQUIRED_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ValueError(f"{path}: not a self-describing checkpoint, missing {missing}")
    kinds = {"model": (str,), "config": (dict,), "state_dict": (dict,), "step": (int,)}
    for key, types in kinds.items():
        if not isinstance(ckpt[key], types) or isinstance(ckpt[key], bool):
            raise ValueError(f"{path}: checkpoint entry {key!r} is a {type(ckpt[key]).__name__}, "
                             f"expected a {types[0].__name__}")
    for name, tensor in ckpt["state_dict"].items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise ValueError(f"{path}: state_dict entry {name!r} is a {type(tensor).__name__}, expected a tensor")
    return ckpt


def check_finite_state(path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Raises if a floating tensor of ``state_dict`` (read from ``path``) holds NaN or infinity.

    Raises:
        ValueError: names the file, the tensor and how many values are not finite.
    """
    for name, tensor in state_dict.items():
        if isinstance(tensor, torch.Tensor) and (tensor.is_floating_point() or tensor.is_complex()):
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise ValueError(f"{path}: tensor {name!r} holds {bad} non-finite value(s) (NaN or inf) "
                                 f"of {tensor.numel()}; the checkpoint cannot be used")
