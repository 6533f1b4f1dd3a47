"""One resumable training loop for every trainer: step sampler, set-up, resume, saving, loss
CSV, NaN guard, DDP and progress.

A trainer (:mod:`lib.train.gan`, :mod:`lib.train.segmenter`, :mod:`lib.train.denoise`)
describes itself as a :class:`Trainer`: its frozen config, its items indexed by ``(epoch,
index)``, a ``build(device)`` returning its models and optimizers (:class:`Parts`) with one
``step(batch, step, nets) -> {loss: tensor}``, its loss columns and the settings a resume
must share. :func:`run` does the rest, identically for all (docs/design.md#training):

- Data order: step ``s`` (0-based) belongs to epoch ``e = s // steps_per_epoch`` (``steps_per_epoch
  = num_items // batch_size``; the incomplete last batch is dropped) and takes the items
  ``perm_e[k*B : (k+1)*B]`` (``k = s mod steps_per_epoch``; ``perm_e`` a permutation seeded
  by ``(seed, e)``, or the identity for items that are random themselves). Flips are decided
  by ``(seed, e, index)``. Under ``torchrun`` each rank takes a contiguous shard of every
  batch and DDP averages the gradients; rank 0 writes the outputs.
- Seeds: ``seed`` before ``build`` (same initial weights on every rank), then a per-rank seed.
- Resume: from ``out_dir/checkpoint.pt`` when it has the same model, config, ``resume_keys``
  (every setting that shapes the trajectory or the outputs), training data
  (:func:`lib.train.identity.data_fingerprint`), output identity (``Trainer.identity``) and
  a step not past the requested total; otherwise the run starts afresh and says why in one
  line. Restored: weights, optimizer / scheduler / scaler and RNG states, running loss sums;
  the loss CSV drops the rows after the checkpoint and ``Trainer.stale_on_resume`` names the
  files of the earlier run this one would not write (deleted). A killed and resumed run
  computes the same steps as an uninterrupted one (bitwise on the CPU with the same thread count).
- One writer: ``out_dir`` is locked for the run (:class:`lib.io.FolderLock`, rank 0); a second
  run on the same folder fails at once, naming the pid that holds it.
- Outputs: ``checkpoint.pt`` (every ``checkpoint_every`` steps and at the end, atomic;
  :func:`lib.train.state.save_training_checkpoint`, ``extra`` holding the trainer's entries,
  ``seconds``, ``world_size``, ``num_items``, ``loss_sums``, ``loss_count``, ``last_losses``,
  ``stage_params``, ``identity``) and ``losses.csv``: ``step, epoch, <loss terms>, <lr columns>, seconds``,
  one row every ``log_every`` steps and at the last, each loss the mean since the previous row.
- NaN guard: a non-finite loss (mean over ranks) or weight stops the run, naming the step and
  the last good checkpoint, which is never replaced by a bad state.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from lib.data.transforms import hflip, sample_rng
from lib.io import FolderBusyError, FolderLock
from lib.train.common import (
    all_reduce_mean,
    append_losses,
    barrier,
    broadcast,
    check_batch,
    check_finite,
    check_finite_params,
    cleanup,
    init_distributed,
    is_distributed,
    is_main,
    prepare_output,
    read_losses,
    set_threads,
    wrap_ddp,
)
from lib.train.identity import checkpoint_mismatch, data_fingerprint, resume_mismatch
from lib.train.state import (
    gather_rng_states,
    load_training_checkpoint,
    rank_seed,
    save_training_checkpoint,
    seed_everything,
)

__all__ = [
    "Trainer",
    "Parts",
    "run",
    "batch_indices",
    "StepSampler",
    "EpochItems",
    "resume_mismatch",
    "CHECKPOINT_NAME",
    "LOSSES_NAME",
]

CHECKPOINT_NAME = "checkpoint.pt"
LOSSES_NAME = "losses.csv"
_ORDER_STREAM = 1  # SeedSequence spawn key of the per-epoch data order (flips use sample_rng)


# ----------------------------------------------------------------------------- data order


def batch_indices(
    step: int, num_items: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True
) -> tuple[int, list[int]]:
    """The training items of step ``step`` (0-based) taken by ``rank``.

    Args:
        step: optimizer steps done before this one.
        num_items: items per epoch.
        batch_size: items per step over all ranks.
        seed: data-order seed.
        rank: this process's rank.
        world_size: number of ranks.
        shuffle: a permutation per epoch; ``False`` takes the items in order (for items that
            are random themselves, e.g. denoising patches).

    Returns:
        ``(epoch, indices)``: ``epoch = step // (num_items // batch_size)`` and the contiguous
        shard ``rank`` (``batch_size / world_size`` items) of ``perm[k*B : (k+1)*B]``, where
        ``perm`` is the permutation of epoch ``epoch`` seeded by ``(seed, epoch)``.

    Raises:
        ValueError: ``batch_size`` is not a multiple of ``world_size`` or exceeds ``num_items``.
    """
    check_batch(batch_size, world_size, num_items, num_items // batch_size)
    epoch, k = divmod(int(step), num_items // batch_size)
    shard = batch_size // world_size
    first = k * batch_size + rank * shard
    if not shuffle:
        return epoch, list(range(first, first + shard))
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, epoch], spawn_key=(_ORDER_STREAM,))
    perm = np.random.default_rng(ss).permutation(num_items)  # (num_items,)
    return epoch, [int(i) for i in perm[first : first + shard]]


class StepSampler(Sampler):
    """Per-step batch sampler: yields this rank's ``[(epoch, index), ...]`` (:func:`batch_indices`)
    for steps ``start .. total - 1``."""

    def __init__(self, start: int, total: int, num_items: int, batch_size: int, seed: int, rank: int = 0,
                 world: int = 1, shuffle: bool = True) -> None:
        self.start, self.total, self.n, self.batch, self.seed = start, total, num_items, batch_size, seed
        self.rank, self.world, self.shuffle = rank, world, shuffle

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.total):
            epoch, idx = batch_indices(step, self.n, self.batch, self.seed, self.rank, self.world, self.shuffle)
            yield [(epoch, i) for i in idx]

    def __len__(self) -> int:
        return max(0, self.total - self.start)


class EpochItems(Dataset):
    """A dataset indexed by ``(epoch, index)`` for :class:`StepSampler` (so worker processes
    need no ``set_epoch``).

    ``dataset.set_epoch(epoch)`` is called when it exists; ``prepare(item, index)``, when
    given, turns the item into the dict of tensors the step uses; with ``flip``, every tensor
    of that dict is mirrored when ``sample_rng(seed, epoch, index)`` draws below 0.5.
    """

    def __init__(self, dataset: Dataset, seed: int = 0, flip: bool = False,
                 prepare: Callable[[Any, int], dict] | None = None) -> None:
        self.dataset, self.seed, self.flip, self.prepare = dataset, seed, flip, prepare

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        item = self.dataset[index]
        if self.prepare is not None:
            item = self.prepare(item, index)
        if self.flip and sample_rng(self.seed, epoch, index).random() < 0.5:
            item = {k: hflip(v) for k, v in item.items()}
        return item


# ----------------------------------------------------------------------------- the loop


@dataclasses.dataclass
class Parts:
    """What a trainer's ``build(device)`` returns: its live objects and its step.

    Attributes:
        model_name: registry name of the primary model (the checkpoint's ``model``).
        model_cfg: its config (the checkpoint's ``config``; a resume must match it).
        models: ``{key: module}`` on the device, primary first (all wrapped in DDP under torchrun).
        optimizers: ``{key: optimizer}``.
        schedulers: ``{key: scheduler}``, each stepped once after every step, in this order.
        step: ``step(batch, step, nets) -> {loss term: scalar tensor}``: one training step
            (forward, backward, optimizer steps) on this rank's ``batch`` (from the DataLoader,
            on the CPU), ``step`` the steps done before it, ``nets`` the models as wrapped for
            DDP (same keys as ``models``). The loop averages the losses over ranks.
        scalers: ``{key: GradScaler}`` (checkpointed).
        extra: constant entries of the checkpoint's ``extra``.
        after_step: ``after_step(step, end, seconds)`` on rank 0 after each step's log row and
            before its checkpoint (e.g. sample grids); ``end`` is true at the last step of this
            call, ``seconds`` the training wall time so far (resumed runs included).
    """

    model_name: str
    model_cfg: Any
    models: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]
    step: Callable[[dict, int, dict[str, nn.Module]], Mapping[str, Tensor]]
    scalers: dict[str, Any] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    after_step: Callable[[int, bool, float], None] | None = None


@dataclasses.dataclass(frozen=True)
class Trainer:
    """A trainer as :func:`run` needs it.

    Attributes:
        name: label of the progress bar.
        cfg: the frozen training config (stored as the checkpoint's ``params``); read fields:
            ``seed``, ``batch_size``, ``log_every``, ``checkpoint_every``, ``threads``,
            ``device``, ``workers`` and, when it has one, ``time_budget_s``.
        items: the training items indexed by ``(epoch, index)`` (:class:`EpochItems`).
        num_items: items per epoch.
        total_steps: the step count to reach.
        build: ``build(device) -> Parts``, called after seeding with ``cfg.seed``.
        loss_terms: the loss columns of the CSV (keys of ``Parts.step``'s result).
        lr_columns: ``{csv column: optimizer key}``: the learning rate of each logged step.
        resume_keys: ``cfg`` fields a resumed checkpoint must share (:func:`resume_mismatch`); a run
            whose checkpoint differs in them starts afresh.
        shuffle: a permutation per epoch (else the items in order).
        stale: glob patterns under ``out_dir`` deleted on a fresh start (e.g. old samples).
        identity: further entries a resumed checkpoint must share (the output schedule, e.g.
            the steps of learning-curve snapshots); stored in its ``extra["identity"]`` with
            the data fingerprint.
        stale_on_resume: ``stale_on_resume(start)`` on resume: the files of the earlier run
            that this one would not write (deleted on rank 0 before the first step).
    """

    name: str
    cfg: Any
    items: Dataset
    num_items: int
    total_steps: int
    build: Callable[[torch.device], Parts]
    loss_terms: tuple[str, ...]
    lr_columns: Mapping[str, str]
    resume_keys: tuple[str, ...]
    shuffle: bool = True
    stale: tuple[str, ...] = ()
    identity: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    stale_on_resume: Callable[[int], Iterable[Path]] | None = None


def _writer_lock(out_dir: Path, rank: int) -> FolderLock | None:
    """Rank 0 takes ``out_dir``'s writer lock; every rank raises when it is held elsewhere."""
    lock, busy = None, None
    if is_main(rank):
        try:
            lock = FolderLock(out_dir, "training run").acquire()
        except (FolderBusyError, ValueError) as e:
            busy = str(e)
    busy = broadcast(busy)
    if busy:
        if lock is not None:
            lock.release()
        raise FolderBusyError(busy)
    return lock


def run(
    trainer: Trainer,
    out_dir: str | os.PathLike,
    *,
    resume: bool = True,
    params: Mapping[str, Any] | None = None,
    progress: bool = True,
    on_step: Callable[[int, dict, dict[str, nn.Module]], None] | None = None,
) -> dict:
    """Runs ``trainer`` to ``trainer.total_steps`` (or its time budget), resumably.

    Joins the ``torchrun`` process group when its variables are set (and leaves it when it
    created it).

    Args:
        trainer: the trainer.
        out_dir: folder for ``checkpoint.pt``, ``losses.csv`` and the trainer's own files.
        resume: continue from ``out_dir/checkpoint.pt`` when it exists; ``False`` starts afresh.
        params: stage parameters stored in the checkpoint's ``extra["stage_params"]`` (as JSON
            values; other objects such as paths as strings).
        progress: show a tqdm bar (rank 0).
        on_step: called on every rank after each step (its log row and checkpoint) as
            ``on_step(step, losses, models)``: steps done, the step's losses (means over
            ranks) and the unwrapped models.

    Returns:
        ``dict(steps, start_step, steps_run, total_steps, steps_per_epoch, epochs,
        wall_seconds, train_seconds, final_losses, last_losses, stopped_by_budget, checkpoint,
        losses_csv, world_size, device)``: ``final_losses`` the mean of each loss term over the
        last 10% (at least one) of the logged rows, ``last_losses`` those of the last step.

    Raises:
        ValueError: a batch that does not split over the ranks or exceeds the items.
        FolderBusyError: another run holds ``out_dir`` (names it and its pid).
        FloatingPointError: a non-finite loss or weight.
    """
    owns_group = not is_distributed()
    rank, world, device = init_distributed(device=trainer.cfg.device)
    try:
        lock = _writer_lock(Path(out_dir), rank)
        try:
            plain = json.loads(json.dumps(dict(params or {}), default=str))  # checkpoint-safe: paths -> str, tuples -> lists
            return _run(trainer, Path(out_dir), resume, plain, progress, on_step, rank, world, device)
        finally:
            if lock is not None:
                lock.release()
    finally:
        if owns_group:
            cleanup()


def _running(extra: Mapping[str, Any], terms: tuple[str, ...]) -> tuple[dict, int, dict]:
    """``(loss sums, count, last losses)`` from a checkpoint's ``extra``; also reads the keys
    of checkpoints written before the loop was shared (``sums``/``last`` lists, ``loss_sum``/
    ``last_loss`` floats)."""
    if "loss_sums" in extra:
        sums, last = dict(extra["loss_sums"]), dict(extra.get("last_losses", {}))
    elif "sums" in extra:
        sums, last = dict(zip(terms, extra["sums"])), dict(zip(terms, extra.get("last", [])))
    else:
        sums, last = {terms[0]: extra.get("loss_sum", 0.0)}, {terms[0]: extra.get("last_loss", math.nan)}
    count = int(extra.get("loss_count", extra.get("count", 0)))
    return ({k: float(sums.get(k, 0.0)) for k in terms}, count, {k: float(last.get(k, math.nan)) for k in terms})


def _tail_means(csv_path: Path, terms: tuple[str, ...]) -> dict:
    """Mean of each loss term over the last 10% (at least one) of the logged rows."""
    rows = read_losses(csv_path)
    if not rows:
        return {k: math.nan for k in terms}
    tail = rows[-max(1, math.ceil(0.1 * len(rows))) :]
    return {k: float(np.mean([r[k] for r in tail])) for k in terms}


def _run(trainer: Trainer, out_dir: Path, resume: bool, params: dict, progress: bool,
         on_step: Callable[[int, dict, dict[str, nn.Module]], None] | None,
         rank: int, world: int, device: torch.device) -> dict:
    from tqdm import tqdm

    t_start = time.perf_counter()
    cfg, terms, n = trainer.cfg, tuple(trainer.loss_terms), trainer.num_items
    set_threads(cfg.threads)
    spe = n // cfg.batch_size
    check_batch(cfg.batch_size, world, n, spe)
    total = trainer.total_steps
    ckpt_path, csv_path = out_dir / CHECKPOINT_NAME, out_dir / LOSSES_NAME
    budget = float(getattr(cfg, "time_budget_s", 0.0))

    seed_everything(cfg.seed)  # same initial weights on every rank
    parts = trainer.build(device)
    seed_everything(rank_seed(cfg.seed, rank))

    start, seconds0, count = 0, 0.0, 0
    sums, last = {k: 0.0 for k in terms}, {k: math.nan for k in terms}
    identity = {"data": data_fingerprint(trainer.items), **json.loads(json.dumps(dict(trainer.identity)))}
    if resume and ckpt_path.is_file():
        reason = checkpoint_mismatch(ckpt_path, parts.model_name, parts.model_cfg, cfg, trainer.resume_keys, n,
                                     identity, total)
        if reason:  # a changed param: this run cannot continue the old one, so it starts afresh
            if is_main(rank):
                print(f"{ckpt_path}: {reason}; starting afresh (the old checkpoint and loss log are replaced)",
                      file=sys.stderr)
            resume = False
    if resume and ckpt_path.is_file():
        info = load_training_checkpoint(ckpt_path, parts.models, parts.optimizers, parts.schedulers,
                                        scalers=parts.scalers, model_name=parts.model_name,
                                        model_cfg=parts.model_cfg, rank=rank)
        extra = info["extra"]  # settings, model and data were checked by _checkpoint_mismatch
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for net in parts.models.values() for m in net.modules())
        if has_bn and int(extra.get("world_size", world)) != world:
            warnings.warn(f"{ckpt_path}: saved with {extra.get('world_size')} ranks, resumed with {world}: "
                          "batch-norm statistics per rank change the trajectory")
        start, seconds0 = info["step"], float(extra.get("seconds", 0.0))
        sums, count, last = _running(extra, terms)
    stale = (p for pattern in trainer.stale for p in out_dir.glob(pattern))  # lazy: rank 0 only, after mkdir
    if start > 0 and trainer.stale_on_resume is not None and is_main(rank):
        for path in list(trainer.stale_on_resume(start)):  # outputs of the earlier run this one would not write
            path.unlink(missing_ok=True)
    last_good = prepare_output(out_dir, ckpt_path, csv_path, start, rank, stale=stale)

    nets = {k: wrap_ddp(m, world, device) for k, m in parts.models.items()}
    for m in parts.models.values():
        m.train()
    loader = DataLoader(
        trainer.items,
        batch_sampler=StepSampler(start, total, n, cfg.batch_size, cfg.seed, rank, world, trainer.shuffle),
        num_workers=cfg.workers,
        pin_memory=device.type == "cuda",
    )
    bar = tqdm(total=total, initial=start, disable=not (progress and is_main(rank)), desc=f"train {trainer.name}", unit="step")
    t_loop = time.perf_counter()
    step, stopped = start, False

    def save(at: int) -> None:
        nonlocal last_good
        check_finite_params(parts.models, at, last_good)
        rng = gather_rng_states()
        if is_main(rank):
            save_training_checkpoint(
                ckpt_path, model_name=parts.model_name, model_cfg=parts.model_cfg, params=cfg, step=at,
                epoch=at // spe, models=parts.models, optimizers=parts.optimizers, schedulers=parts.schedulers,
                scalers=parts.scalers, rng=rng,
                extra=dict(**parts.extra, seconds=seconds0 + time.perf_counter() - t_loop, world_size=world,
                           num_items=n, loss_sums=dict(sums), loss_count=count, last_losses=dict(last),
                           stage_params=params, identity=identity),
            )
        last_good = ckpt_path

    for batch in loader:
        epoch = step // spe
        losses = parts.step(batch, step, nets)
        red = all_reduce_mean(torch.stack([losses[k].detach().float() for k in terms]))  # (terms,) means over ranks
        check_finite(dict(zip(terms, red)), step + 1, last_good)
        lrs = {col: float(parts.optimizers[key].param_groups[0]["lr"]) for col, key in trainer.lr_columns.items()}
        for scheduler in parts.schedulers.values():
            scheduler.step()
        step += 1

        last = dict(zip(terms, (float(v) for v in red.tolist())))
        sums, count = {k: sums[k] + last[k] for k in terms}, count + 1
        if budget > 0:
            over = torch.tensor([float(time.perf_counter() - t_start > budget)], device=device)
            stopped = bool(all_reduce_mean(over).item() > 0) and step < total  # any rank over: all stop
        end = step == total or stopped
        if step % cfg.log_every == 0 or end:
            if is_main(rank):
                row = dict(step=step, epoch=epoch, **{k: sums[k] / count for k in terms}, **lrs,
                           seconds=round(seconds0 + time.perf_counter() - t_loop, 3))
                append_losses(csv_path, [row])
            sums, count = {k: 0.0 for k in terms}, 0
        if parts.after_step is not None and is_main(rank):
            parts.after_step(step, end, seconds0 + time.perf_counter() - t_loop)
        if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or end:
            save(step)
        bar.update(1)
        bar.set_postfix({**{k: f"{v:.3g}" for k, v in last.items()}, **{k: f"{v:.2g}" for k, v in lrs.items()}})
        if on_step is not None:
            on_step(step, dict(last), parts.models)
        if stopped:
            break
    bar.close()
    barrier()
    return {
        "steps": step,
        "start_step": start,
        "steps_run": step - start,
        "total_steps": total,
        "steps_per_epoch": spe,
        "epochs": step / spe,
        "wall_seconds": time.perf_counter() - t_start,
        "train_seconds": seconds0 + (time.perf_counter() - t_loop if step > start else 0.0),
        "final_losses": broadcast(_tail_means(csv_path, terms) if is_main(rank) else None),
        "last_losses": dict(last),
        "stopped_by_budget": stopped,
        "checkpoint": str(ckpt_path),
        "losses_csv": str(csv_path),
        "world_size": world,
        "device": str(device),
    }
