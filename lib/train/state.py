"""Resumable training state: seeds, the RNG state of every rank, and training checkpoints.

A training checkpoint is a :mod:`lib.checkpoint` file (atomic, self-describing, loadable with
``torch.load(weights_only=True)``) holding, besides the required keys, every model,
optimizer, scheduler and grad-scaler state and the RNG state of every rank; its primary model
loads with :func:`lib.models.load_model`. Under ``torchrun`` only rank 0 writes files;
:func:`gather_rng_states` is a collective called by every rank.
"""
from __future__ import annotations

import os
import random
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from lib.checkpoint import load_checkpoint, save_checkpoint
from lib.config import to_dict

__all__ = [
    "seed_everything",
    "rank_seed",
    "rng_state",
    "set_rng_state",
    "gather_rng_states",
    "unwrap",
    "save_training_checkpoint",
    "load_training_checkpoint",
    "CHECKPOINT_FORMAT",
]

CHECKPOINT_FORMAT = 1  # version of the training-checkpoint layout below


def seed_everything(seed: int) -> None:
    """Seeds Python ``random``, the NumPy global generator and torch (CPU and every CUDA device).

    Args:
        seed: any integer (NumPy gets ``seed mod 2**32``).
    """
    random.seed(seed)
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rank_seed(seed: int, rank: int) -> int:
    """A per-rank seed derived from ``(seed, rank)`` by NumPy ``SeedSequence`` mixing.

    Rank 0 does not get ``seed`` itself: all ranks are treated alike. Use it for per-rank
    randomness (augmentation, noise); model initialisation should use ``seed`` on every rank.
    """
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(rank)]).generate_state(1)[0])


def rng_state() -> dict:
    """The RNG states of this process as tensors and plain values (``weights_only``-safe).

    Returns:
        ``dict(python=dict(version, state (625,) int64, gauss_next), numpy=dict(keys (624,)
        int64, pos, has_gauss, cached_gaussian), torch (N,) uint8, cuda=[(N,) uint8 per
        device])``; ``cuda`` is an empty list without CUDA.
    """
    version, internal, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    if name != "MT19937":  # np.random.get_state always reports the legacy MT19937 state
        raise RuntimeError(f"unexpected NumPy global generator {name!r}")
    return {
        "python": {
            "version": int(version),
            "state": torch.tensor(internal, dtype=torch.int64),  # (625,) 32-bit words + position
            "gauss_next": None if gauss_next is None else float(gauss_next),
        },
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),  # (624,) uint32 words
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restores states made by :func:`rng_state`.

    CUDA states are restored when CUDA is available: all devices when the device count
    matches, else the first saved state on the current device.
    """
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    npy = state["numpy"]
    keys = np.asarray(npy["keys"].tolist(), dtype=np.uint32)  # (624,)
    np.random.set_state(("MT19937", keys, int(npy["pos"]), int(npy["has_gauss"]), float(npy["cached_gaussian"])))
    torch.set_rng_state(state["torch"].cpu())
    cuda = list(state.get("cuda") or [])
    if cuda and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
        else:
            torch.cuda.set_rng_state(cuda[0].cpu())


def gather_rng_states() -> list[dict]:
    """The :func:`rng_state` of every rank, indexed by rank (a collective under DDP).

    Every rank must call it; without a process group it returns ``[rng_state()]``.
    """
    mine = rng_state()
    if not (dist.is_available() and dist.is_initialized()):
        return [mine]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, mine)
    return out


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module inside DDP / DataParallel / ``torch.compile`` wrappers."""
    while True:
        if isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            module = module.module
        elif hasattr(module, "_orig_mod") and isinstance(module._orig_mod, nn.Module):  # torch.compile
            module = module._orig_mod
        else:
            return module


def _config_dict(model_cfg: Any) -> dict:
    """A model config (dataclass or mapping) as a plain dict."""
    if model_cfg is None:
        return {}
    return dict(to_dict(model_cfg)) if not isinstance(model_cfg, Mapping) else dict(to_dict(dict(model_cfg)))


def save_training_checkpoint(
    path: str | os.PathLike,
    *,
    model_name: str,
    model_cfg: Any,
    params: Mapping[str, Any] | Any | None,
    step: int,
    epoch: int,
    models: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    schedulers: Mapping[str, Any],
    scalers: Mapping[str, Any] | None = None,
    rng: Sequence[Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Writes a resumable training checkpoint atomically (via :func:`lib.checkpoint.save_checkpoint`).

    Keys: ``model`` (registry name), ``config`` (model config dict), ``params`` (training
    config dict), ``state_dict`` (weights of the first entry of ``models``: the model registered
    as ``model_name``, e.g. the generator), ``primary`` (its key in ``models``),
    ``aux_state_dicts`` (``{key: state_dict}`` of the other models, e.g. the discriminator),
    ``step``, ``epoch``, ``optimizers`` / ``schedulers`` / ``scalers`` (``{key: state_dict}``),
    ``rng`` (list of :func:`rng_state` per rank), ``extra``, ``format``, ``git_revision``,
    ``torch_version``. DDP / compiled modules are unwrapped before saving.

    Args:
        path: destination file (replaced atomically; never left half written).
        model_name: registry name of the primary model.
        model_cfg: its config (dataclass instance or mapping).
        params: the training config (dataclass instance or mapping), for provenance and resume checks.
        step: optimizer steps done.
        epoch: the epoch of the next step.
        models: ``{key: module}``, primary model first.
        optimizers: ``{key: optimizer}``.
        schedulers: ``{key: lr scheduler}`` (anything with ``state_dict``).
        scalers: ``{key: torch.amp.GradScaler}``, optional.
        rng: RNG states per rank (:func:`gather_rng_states`); ``None`` stores this process's.
        extra: further plain values / tensors (elapsed seconds, running loss sums, ...).

    Returns:
        The path written.

    Raises:
        ValueError: ``models`` is empty.
    """
    if not models:
        raise ValueError(f"{path}: save_training_checkpoint needs at least one model")
    keys = list(models)
    primary = keys[0]
    states = {k: unwrap(m).state_dict() for k, m in models.items()}
    return save_checkpoint(
        path,
        model=model_name,
        config=_config_dict(model_cfg),
        state_dict=states[primary],
        step=int(step),
        params=_config_dict(params),
        epoch=int(epoch),
        primary=primary,
        aux_state_dicts={k: {n: t.detach().cpu() for n, t in states[k].items()} for k in keys[1:]},
        optimizers={k: o.state_dict() for k, o in optimizers.items()},
        schedulers={k: s.state_dict() for k, s in schedulers.items()},
        scalers={k: s.state_dict() for k, s in (scalers or {}).items()},
        rng=list(rng) if rng is not None else [rng_state()],
        extra=dict(extra or {}),
        format=CHECKPOINT_FORMAT,
    )


def _check_keys(path: Path, what: str, stored: Mapping, given: Mapping) -> None:
    if set(stored) != set(given):
        raise ValueError(f"{path}: checkpoint holds {what} {sorted(stored)}, the trainer passed {sorted(given)}")


def load_training_checkpoint(
    path: str | os.PathLike,
    models: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    schedulers: Mapping[str, Any] | None = None,
    *,
    scalers: Mapping[str, Any] | None = None,
    model_name: str | None = None,
    model_cfg: Any = None,
    rank: int = 0,
    restore_rng: bool = True,
) -> dict:
    """Restores a checkpoint written by :func:`save_training_checkpoint` into live objects.

    Weights are loaded strictly into the unwrapped modules; optimizer state moves to the
    devices of the parameters; rank ``rank`` gets its own saved RNG state (when the checkpoint
    holds one for it; otherwise a warning and the RNG is left alone).

    Args:
        path: the checkpoint.
        models: ``{key: module}`` with the same keys as at saving, primary first.
        optimizers: ``{key: optimizer}`` (same keys as saved), or ``None`` to skip.
        schedulers: ``{key: scheduler}`` (same keys as saved), or ``None`` to skip.
        scalers: ``{key: GradScaler}``, or ``None`` to skip.
        model_name: when given with ``model_cfg``, the checkpoint must hold this model ...
        model_cfg: ... with this config (dataclass or mapping); a difference raises.
        rank: this process's rank.
        restore_rng: restore the RNG state.

    Returns:
        ``dict(step, epoch, model, config, params, extra, git_revision, torch_version, path)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a training checkpoint, a different model/config, or different model /
            optimizer / scheduler keys (the message names the file and both sides).
    """
    path = Path(path)
    ckpt = load_checkpoint(path, map_location="cpu")
    if ckpt.get("format") != CHECKPOINT_FORMAT or "primary" not in ckpt:
        raise ValueError(f"{path}: not a training checkpoint (format {ckpt.get('format')!r}, expected {CHECKPOINT_FORMAT})")
    if model_name is not None:
        want_cfg = _config_dict(model_cfg)
        if ckpt["model"] != model_name or dict(ckpt["config"]) != want_cfg:
            raise ValueError(
                f"{path}: checkpoint holds model {ckpt['model']!r} with config {dict(ckpt['config'])}; "
                f"requested model {model_name!r} with config {want_cfg}"
            )
    stored_models = {ckpt["primary"]: ckpt["state_dict"], **ckpt["aux_state_dicts"]}
    _check_keys(path, "models", stored_models, models)
    for key, module in models.items():
        try:
            unwrap(module).load_state_dict(stored_models[key], strict=True)
        except RuntimeError as e:
            raise ValueError(f"{path}: weights of {key!r} do not fit the model: {e}") from e
    for what, live in (("optimizers", optimizers), ("schedulers", schedulers), ("scalers", scalers)):
        if live is None:
            continue
        _check_keys(path, what, ckpt[what], live)
        for key, obj in live.items():
            obj.load_state_dict(ckpt[what][key])
    if restore_rng:
        states = ckpt.get("rng") or []
        if rank < len(states):
            set_rng_state(states[rank])
        else:
            warnings.warn(f"{path}: no RNG state saved for rank {rank} ({len(states)} saved); RNG not restored")
    return {
        "step": int(ckpt["step"]),
        "epoch": int(ckpt["epoch"]),
        "model": ckpt["model"],
        "config": dict(ckpt["config"]),
        "params": dict(ckpt["params"]),
        "extra": dict(ckpt.get("extra") or {}),
        "git_revision": ckpt["git_revision"],
        "torch_version": ckpt["torch_version"],
        "path": path,
    }
