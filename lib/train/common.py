"""Shared training machinery: seeding and RNG state, resumable checkpoints, loss CSVs,
non-finite checks, DistributedDataParallel set-up and mixed precision.

Used by every trainer (one model + one optimizer for denoising; generator + discriminator,
two optimizers and DDP for label->photo translation). Conventions:

- A training checkpoint is a :mod:`lib.checkpoint` file (atomic, self-describing, loadable
  with ``torch.load(weights_only=True)``) holding, besides the required keys, every model,
  optimizer, scheduler and grad-scaler state and the RNG state of every rank.
- Under ``torchrun`` only rank 0 writes files (checkpoints, CSVs); collectives such as
  :func:`gather_rng_states` are called by every rank.
- A step count ``step`` is the number of optimizer steps done; loss CSV rows carry the step
  they were logged at, and resuming from a checkpoint at step ``s`` drops the rows after ``s``
  so the CSV equals the one of an uninterrupted run.
"""
from __future__ import annotations

import contextlib
import csv
import math
import os
import random
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from lib.checkpoint import load_checkpoint, save_checkpoint
from lib.config import to_dict
from lib.io import atomic_path

__all__ = [
    "seed_everything",
    "rank_seed",
    "rng_state",
    "set_rng_state",
    "gather_rng_states",
    "save_training_checkpoint",
    "load_training_checkpoint",
    "load_model",
    "unwrap",
    "append_losses",
    "truncate_losses",
    "read_losses",
    "check_finite",
    "check_finite_params",
    "init_distributed",
    "is_main",
    "is_distributed",
    "barrier",
    "cleanup",
    "all_reduce_mean",
    "wrap_ddp",
    "resolve_device",
    "set_threads",
    "check_unflipped",
    "check_batch",
    "prepare_output",
    "autocast",
    "grad_scaler",
    "CHECKPOINT_FORMAT",
]

CHECKPOINT_FORMAT = 1  # version of the training-checkpoint layout below


# ----------------------------------------------------------------------------- seeds and RNG


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
    if not is_distributed():
        return [mine]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, mine)
    return out


# ----------------------------------------------------------------------------- checkpoints


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


def load_model(checkpoint_path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Builds the checkpoint's primary model from the registry (its name + config) with its
    weights, in eval mode.

    Raises:
        FileNotFoundError / ValueError: as :func:`lib.checkpoint.load_checkpoint`; weights that
            do not fit the built model (names the file).
    """
    from lib.models import build

    path = Path(checkpoint_path)
    ckpt = load_checkpoint(path, map_location="cpu")
    model = build(ckpt["model"], ckpt["config"])
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit model {ckpt['model']!r}: {e}") from e
    return model.to(map_location).eval()


# ----------------------------------------------------------------------------- loss CSV


def append_losses(csv_path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> None:
    """Appends rows to a CSV (header written when the file is new or empty).

    Columns are the keys of the first row; an existing header must match them. Floats are
    written with full precision. A write cut short by a kill leaves at most a partial last
    line, which :func:`truncate_losses` removes on resume.

    Raises:
        ValueError: the rows' keys differ from each other or from the file's header (names the file).
    """
    if not rows:
        return
    csv_path = Path(csv_path)
    columns = list(rows[0])
    for r in rows:
        if list(r) != columns:
            raise ValueError(f"{csv_path}: rows have different columns: {list(r)} vs {columns}")
    new = not csv_path.is_file() or csv_path.stat().st_size == 0
    if not new:
        with csv_path.open(newline="") as f:
            header = next(csv.reader(f), None)
        if header != columns:
            raise ValueError(f"{csv_path}: existing columns {header} differ from {columns}")
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("a", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        if new:
            w.writerow(columns)
        for r in rows:
            w.writerow([repr(v) if isinstance(v, float) else v for v in r.values()])


def read_losses(csv_path: str | os.PathLike, step_key: str = "step") -> list[dict]:
    """The complete rows of a loss CSV as dicts of floats (``step_key`` as int); partial or
    malformed lines (a write cut by a kill) are skipped. A missing file gives ``[]``."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        return []
    with csv_path.open(newline="") as f:
        text = f.read()
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]  # last line was cut short
    reader = csv.reader(line for line in lines if line)
    header = next(reader, None)
    if header is None:
        return []
    if step_key not in header:
        raise ValueError(f"{csv_path}: no {step_key!r} column in {header}")
    out = []
    for values in reader:
        if len(values) != len(header):
            continue
        try:
            row = {k: float(v) for k, v in zip(header, values)}
        except ValueError:
            continue
        row[step_key] = int(row[step_key])
        out.append(row)
    return out


def truncate_losses(csv_path: str | os.PathLike, step: int, step_key: str = "step") -> int:
    """Keeps the rows with ``step_key <= step`` (and drops partial lines), rewriting atomically.

    Called on resume from a checkpoint at ``step``, so the rows logged after it (which the
    resumed run logs again) appear once. ``step = 0`` empties the file (header kept).

    Returns:
        The number of rows kept (0 when the file does not exist).
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        return 0
    with csv_path.open(newline="") as f:
        header = next(csv.reader(f), None)
    rows = [r for r in read_losses(csv_path, step_key) if r[step_key] <= step]
    with atomic_path(csv_path) as tmp:
        with tmp.open("w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            if header:
                w.writerow(header)
            for r in rows:
                w.writerow([repr(v) if isinstance(v, float) else v for v in r.values()])
    return len(rows)


# ----------------------------------------------------------------------------- non-finite checks


def check_finite(losses: Mapping[str, Any], step: int, last_good_ckpt: str | os.PathLike | None) -> None:
    """Raises if any loss is NaN or infinite.

    Args:
        losses: ``{name: scalar tensor or float}``.
        step: the step being computed (1-based: the step that would be done next).
        last_good_ckpt: the latest checkpoint written (never overwritten by the bad state), or
            ``None`` when none was written yet.

    Raises:
        FloatingPointError: names each non-finite loss, the step and the last good checkpoint.
    """
    bad = []
    for name, value in losses.items():
        v = float(value.detach().float().item()) if isinstance(value, torch.Tensor) else float(value)
        if not math.isfinite(v):
            bad.append(f"{name!r} = {v}")
    if bad:
        where = f"last good checkpoint: {last_good_ckpt}" if last_good_ckpt else "no checkpoint was written yet"
        raise FloatingPointError(f"non-finite loss {', '.join(bad)} at step {step}; {where}")


def check_finite_params(models: Mapping[str, nn.Module], step: int, last_good_ckpt: str | os.PathLike | None) -> None:
    """Raises if any parameter or buffer is NaN/inf (run before saving so a bad state never
    replaces a good checkpoint).

    Raises:
        FloatingPointError: names the model key, the tensor, the step and the last good checkpoint.
    """
    for key, model in models.items():
        for name, t in unwrap(model).state_dict().items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                where = f"last good checkpoint: {last_good_ckpt}" if last_good_ckpt else "no checkpoint was written yet"
                raise FloatingPointError(f"non-finite values in {key}.{name} after step {step}; {where}")


# ----------------------------------------------------------------------------- devices and DDP


def resolve_device(name: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``; ``"cuda"``
    -> ``cuda:<local_rank>``; anything else as given.

    Raises:
        ValueError: CUDA requested but not available.
    """
    name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    return torch.device(name)


def is_distributed() -> bool:
    """Whether a torch.distributed process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def init_distributed(backend: str | None = None, device: str = "auto") -> tuple[int, int, torch.device]:
    """Joins the ``torchrun`` process group when its variables are set.

    Reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (set by ``torchrun``). Without them (or
    when a group already exists) nothing is initialised. Backend: ``backend`` if given, else
    ``nccl`` on CUDA and ``gloo`` on the CPU. On CUDA the process uses ``cuda:LOCAL_RANK``.

    Args:
        backend: ``"gloo"`` / ``"nccl"`` / ``None`` (by device).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` (see :func:`resolve_device`).

    Returns:
        ``(rank, world_size, device)``; ``(0, 1, device)`` for a single process.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if is_distributed():
        return dist.get_rank(), dist.get_world_size(), dev
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, dev
    backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
    dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), dev


def is_main(rank: int) -> bool:
    """Rank 0 writes checkpoints, CSVs and progress bars."""
    return rank == 0


def barrier() -> None:
    """Waits for every rank (no-op without a process group)."""
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    """Leaves the process group (no-op without one)."""
    if is_distributed():
        dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over ranks (a detached copy; the value itself without a process group).

    Every rank must call it.
    """
    out = value.detach().clone()
    if is_distributed():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        out /= dist.get_world_size()
    return out


def wrap_ddp(net: nn.Module, world: int, device: torch.device) -> nn.Module:
    """``net`` wrapped in DistributedDataParallel when ``world > 1``, else ``net`` itself.

    Every rank must call it (the wrapper broadcasts rank 0's weights and buffers).

    Args:
        net: the module, already on ``device``.
        world: the world size.
        device: this rank's device (``device_ids=[device.index]`` on CUDA, none on the CPU).

    Returns:
        The module to call in the training loop (its parameters are those of ``net``).
    """
    if world <= 1:
        return net
    return nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)


# ----------------------------------------------------------------------------- trainer set-up


def set_threads(threads: int) -> None:
    """Sets torch's intra-op CPU thread count; ``0`` leaves torch's default."""
    if threads:
        torch.set_num_threads(threads)


def check_unflipped(dataset: Any, config_name: str) -> None:
    """Rejects a training set that flips its items itself (the trainer does the flips).

    Args:
        dataset: the training set (its ``flip`` attribute, when present, must be false).
        config_name: the trainer's config class, named in the message (its ``flip`` field).

    Raises:
        ValueError: the dataset was built with ``flip=True``.
    """
    if getattr(dataset, "flip", False):
        raise ValueError("the training set was built with flip=True: flips are done by the trainer "
                         f"({config_name}.flip); build the dataset with flip=False")


def check_batch(batch_size: int, world: int, n_items: int | None = None, steps_per_epoch: int | None = None) -> None:
    """Checks that the batch splits over the ranks and, when given, that an epoch has a step.

    Args:
        batch_size: the global batch size (summed over ranks).
        world: the world size.
        n_items: the training set size (named in the message) ...
        steps_per_epoch: ... and the steps per epoch it gives, which must be >= 1
            (both or neither given).

    Raises:
        ValueError: ``batch_size`` is not divisible by ``world``, or exceeds ``n_items``.
    """
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} is not divisible by the world size {world}")
    if steps_per_epoch is not None and steps_per_epoch < 1:
        raise ValueError(f"batch_size {batch_size} exceeds the {n_items} training items")


def prepare_output(
    out_dir: Path,
    ckpt_path: Path,
    csv_path: Path,
    start: int,
    rank: int,
    stale: Iterable[Path] = (),
) -> Path | None:
    """Readies the output folder for a run starting at step ``start``, then waits for every rank.

    Rank 0 creates ``out_dir``; from step 0 it deletes a stale checkpoint, loss CSV and the
    files of ``stale``; on resume it drops the CSV rows after ``start``
    (:func:`truncate_losses`). Every rank must call it (it ends with a :func:`barrier`).

    Args:
        out_dir: the output folder.
        ckpt_path: the training checkpoint.
        csv_path: the loss CSV.
        start: the step the run starts from (0, or the step of the resumed checkpoint).
        rank: this process's rank.
        stale: further files to delete when starting from step 0 (iterated on rank 0 only,
            after ``out_dir`` is created; a lazy ``Path.glob`` works).

    Returns:
        The last good checkpoint: ``ckpt_path`` when resuming, else ``None``.
    """
    if is_main(rank):
        out_dir.mkdir(parents=True, exist_ok=True)
        if start == 0:
            for path in (ckpt_path, csv_path, *stale):
                path.unlink(missing_ok=True)
        else:
            truncate_losses(csv_path, start)
    barrier()
    return ckpt_path if start > 0 else None


# ----------------------------------------------------------------------------- mixed precision


@contextlib.contextmanager
def autocast(device: torch.device | str, enabled: bool = True, dtype: torch.dtype = torch.bfloat16) -> Iterator[None]:
    """Mixed precision (``dtype``: bf16 or fp16) on CUDA; a no-op on the CPU or when disabled."""
    device = torch.device(device)
    if enabled and device.type == "cuda":
        with torch.autocast(device_type="cuda", dtype=dtype):
            yield
    else:
        yield


def grad_scaler(device: torch.device | str, enabled: bool = True, dtype: torch.dtype = torch.bfloat16) -> torch.amp.GradScaler:
    """A GradScaler, active only for fp16 autocast on CUDA (bf16 needs none); its state goes in
    ``scalers`` of :func:`save_training_checkpoint`."""
    device = torch.device(device)
    active = bool(enabled and device.type == "cuda" and dtype == torch.float16)
    return torch.amp.GradScaler(device.type, enabled=active)
