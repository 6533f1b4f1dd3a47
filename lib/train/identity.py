"""What a training checkpoint must share with a run to be resumed by it: model and config, the
settings that shape the trajectory and the outputs, the identity of the training data (a
fingerprint) and of the outputs the run writes (:func:`checkpoint_mismatch`).

:func:`data_fingerprint` walks a dataset through its wrappers (``.dataset``; a ``Subset``'s
``indices`` count): a dataset with a ``fingerprint()`` method gives its own (the paired
label -> photo datasets hash their files' paths, sizes and contents, :func:`lib.io.files_digest`,
and the settings that shape the items; the denoising patches their images); any other dataset is hashed item by item, as loaded.
:func:`lib.train.loop.run` stores the fingerprint in the checkpoint and starts afresh when it
differs, so pointing a stage at other data with the same file names never resumes the old run.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from torch.utils.data import Dataset

from lib.checkpoint import check_finite_state, load_checkpoint
from lib.config import to_dict

__all__ = ["data_fingerprint", "identity_mismatch", "resume_mismatch", "checkpoint_mismatch"]


def _update(h: "hashlib._Hash", value: Any) -> None:
    """Feeds ``value`` (tensors, arrays, mappings, sequences, plain values) into ``h``."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        h.update(f"T{tuple(value.shape)}{value.dtype}".encode())
        h.update(np.ascontiguousarray((value.float() if value.dtype == torch.bfloat16 else value).numpy()).tobytes())
    elif isinstance(value, np.ndarray):
        h.update(f"A{value.shape}{value.dtype}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, Mapping):
        for key in sorted(value, key=str):
            h.update(f"K{key}".encode())
            _update(h, value[key])
    elif isinstance(value, (list, tuple)):
        h.update(f"L{len(value)}".encode())
        for v in value:
            _update(h, v)
    else:
        h.update(f"V{value!r}".encode())


def _items_digest(dataset: Dataset) -> str:
    """SHA-256 of every item of ``dataset`` as loaded at epoch 0."""
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(0)
    h = hashlib.sha256()
    for i in range(len(dataset)):
        _update(h, dataset[i])
    return h.hexdigest()


def data_fingerprint(dataset: Dataset) -> str:
    """A SHA-256 that changes whenever the training data do (see the module docstring)."""
    parts, node = [], dataset
    while True:
        indices = getattr(node, "indices", None)
        if indices is not None:
            parts.append("indices " + hashlib.sha256(repr([int(i) for i in indices]).encode()).hexdigest())
        own = getattr(node, "fingerprint", None)
        if callable(own):
            parts.append(f"{type(node).__name__} {own()}")
            break
        inner = getattr(node, "dataset", None)
        if isinstance(inner, Dataset):
            node = inner
            continue
        parts.append(f"{type(node).__name__} items {_items_digest(node)}")
        break
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def identity_mismatch(stored: Mapping[str, Any] | None, current: Mapping[str, Any]) -> str | None:
    """Why a checkpoint whose recorded identity is ``stored`` (``extra["identity"]``) cannot be
    resumed by a run whose identity is ``current``, or None when every entry matches.

    Entries: ``data`` (:func:`data_fingerprint`) and those a trainer adds (e.g. the steps of its
    learning-curve snapshots).
    """
    if stored is None:
        return "the checkpoint does not record the identity of its training data (written by an older version)"
    diff = [k for k in sorted(set(stored) | set(current)) if stored.get(k) != current.get(k)]
    if not diff:
        return None
    if "data" in diff:
        old, new = str(stored.get("data"))[:12], str(current.get("data"))[:12]
        return f"the training data changed (fingerprint {old}... -> {new}...)"

    def short(v: Any) -> str:
        text = repr(v)
        return text if len(text) <= 60 else text[:57] + "..."

    return "the outputs it writes changed (" + ", ".join(
        f"{k}: checkpoint {short(stored.get(k))} vs requested {short(current.get(k))}" for k in diff) + ")"


def _tensors(ckpt: Mapping[str, Any], keys: Iterable[str]) -> dict[str, torch.Tensor]:
    """Every tensor under ``ckpt[key]`` for ``keys`` (nested mappings and lists), by dotted name:
    the weights of every model and the optimizer moments a resume would continue from."""
    out: dict[str, torch.Tensor] = {}

    def walk(value: Any, name: str) -> None:
        if isinstance(value, torch.Tensor):
            out[name] = value
        elif isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, f"{name}.{k}")
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{name}.{i}")

    for key in keys:
        if key == "state_dict":
            out.update(ckpt.get(key) or {})
        else:
            walk(ckpt.get(key) or {}, key)
    return out


def resume_mismatch(stored: Mapping[str, Any], cfg: Any, keys: Iterable[str]) -> str | None:
    """Why a checkpoint with stage params ``stored`` cannot continue a run configured as ``cfg``
    (the settings ``keys`` differ), or None when it can."""
    now = to_dict(cfg)
    diff = [k for k in keys if stored.get(k) != now[k]]
    if not diff:
        return None
    return "training settings differ (" + ", ".join(f"{k}: checkpoint {stored.get(k)!r} vs requested {now[k]!r}" for k in diff) + ")"


def checkpoint_mismatch(path: Path, model_name: str, model_cfg: Any, cfg: Any, keys: Iterable[str], n: int,
                        identity: Mapping[str, Any], total: int) -> str | None:
    """Why the checkpoint at ``path`` cannot be resumed by a run of ``model_name`` / ``model_cfg``
    with training config ``cfg`` (its ``keys``), ``n`` items, ``identity`` and ``total`` steps:
    the model, its config, a setting, the data or the outputs differ, the checkpoint is past
    ``total``, or the file is unreadable or holds non-finite weights. None when it can."""
    try:
        ckpt = load_checkpoint(path, map_location="cpu")
        check_finite_state(path, _tensors(ckpt, ("state_dict", "aux_state_dicts", "optimizers", "scalers")))
    except ValueError as e:
        return f"unusable checkpoint ({e})"
    want_cfg = model_cfg if isinstance(model_cfg, Mapping) else to_dict(model_cfg)
    if ckpt["model"] != model_name or dict(ckpt["config"]) != dict(want_cfg):
        return f"the model or its config changed ({ckpt['model']!r} {dict(ckpt['config'])} -> {model_name!r} {dict(want_cfg)})"
    reason = resume_mismatch(ckpt.get("params") or {}, cfg, keys)
    if reason:
        return reason
    extra = ckpt.get("extra") or {}
    items = extra.get("num_items", n)
    if int(items) != n:
        return f"the training set changed ({int(items)} -> {n} items)"
    reason = identity_mismatch(extra.get("identity"), identity)
    if reason:
        return reason
    if int(ckpt["step"]) > total:
        return f"the checkpoint is at step {int(ckpt['step'])}, past the {total} steps requested"
    return None
