"""Shared training utilities: the loss CSV, non-finite checks, DistributedDataParallel, set-up
checks and mixed precision (the pieces :mod:`lib.train.loop` is built from).

Conventions: under ``torchrun`` only rank 0 writes files, collectives such as
:func:`all_reduce_mean` are called by every rank. A step count ``step`` is the number of
optimizer steps done; loss CSV rows carry the step they were logged at, and resuming from a
checkpoint at step ``s`` drops the rows after ``s`` (:func:`truncate_losses`) so the CSV
equals the one of an uninterrupted run.
"""
from __future__ import annotations

import contextlib
import csv
import math
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import nn

from lib.device import resolve_device
from lib.io import atomic_path
from lib.train.state import unwrap

__all__ = [
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
    "broadcast",
    "wrap_ddp",
    "set_threads",
    "check_unflipped",
    "check_batch",
    "prepare_output",
    "autocast",
]


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


def _complete_rows(csv_path: Path, step_key: str) -> tuple[str | None, list[tuple[str, dict]]]:
    """``(header line, [(line, row)])`` of a loss CSV: the complete rows as written and parsed
    (floats, ``step_key`` as int); partial or malformed lines (a write cut by a kill) are left out."""
    if not csv_path.is_file():
        return None, []
    text = csv_path.read_text(errors="replace")  # a damaged line is dropped below, not fatal
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]  # last line was cut short
    lines = [line for line in lines if line]
    if not lines:
        return None, []
    header = next(csv.reader([lines[0]]))
    if step_key not in header:
        raise ValueError(f"{csv_path}: no {step_key!r} column in {header}")
    out = []
    for line in lines[1:]:
        values = next(csv.reader([line]))
        if len(values) != len(header):
            continue
        try:
            row = {k: float(v) for k, v in zip(header, values)}
        except ValueError:
            continue
        row[step_key] = int(row[step_key])
        out.append((line, row))
    return lines[0], out


def read_losses(csv_path: str | os.PathLike, step_key: str = "step") -> list[dict]:
    """The complete rows of a loss CSV as dicts of floats (``step_key`` as int); partial or
    malformed lines (a write cut by a kill) are skipped. A missing file gives ``[]``."""
    return [row for _, row in _complete_rows(Path(csv_path), step_key)[1]]


def truncate_losses(csv_path: str | os.PathLike, step: int, step_key: str = "step") -> int:
    """Keeps the rows with ``step_key <= step`` (and drops partial lines), rewriting atomically.

    Called on resume from a checkpoint at ``step``, so the rows logged after it (which the
    resumed run logs again) appear once. The kept lines are copied as written (integer
    columns stay integers). ``step = 0`` empties the file (header kept).

    Returns:
        The number of rows kept (0 when the file does not exist).
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        return 0
    header, rows = _complete_rows(csv_path, step_key)
    kept = [line for line, row in rows if row[step_key] <= step]
    with atomic_path(csv_path) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in ([header] if header else []) + kept))
    return len(kept)


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


# ----------------------------------------------------------------------------- DDP


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
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` (see :func:`lib.device.resolve_device`).

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


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (the object itself without a process group)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


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
    if world <= 1 or not any(p.requires_grad for p in net.parameters()):
        return net  # one rank, or nothing to synchronise (e.g. a weight average)
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
