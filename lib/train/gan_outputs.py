"""What a label->photo training run writes besides its checkpoint: the weight average (EMA) of
the generator, the evaluation generator and learning-curve snapshots, sample grids, and the
PNGs of a trained generator.

The evaluation generator (``generator.pt``) and each snapshot (``snapshots/step_XXXXXX.pt``)
are self-describing checkpoints (:func:`lib.checkpoint.save_checkpoint`) that
:func:`lib.models.load_model` reads; they hold the averaged weights when the run keeps an
average (``ema_decay > 0``), else the generator's own, and carry ``train_seconds`` (training
wall time up to that step) and ``ema`` so a learning curve can put quality against time
(docs/design.md#training). ``generator.pt`` also names the snapshots of its run
(``snapshots``): :func:`list_snapshots` reads those only, so a snapshot left by an earlier run
with other settings is never evaluated, and :func:`stale_outputs` names the files a resumed
run would not write (deleted before it continues).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Collection, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from lib.checkpoint import load_checkpoint, save_checkpoint
from lib.config import to_dict
from lib.data.images import write_image
from lib.data.labels import label_colormap
from lib.models.generate import generate_images, to_uint8

__all__ = [
    "EVAL_GENERATOR_NAME",
    "SNAPSHOTS_DIR",
    "SAMPLES_DIR",
    "ema_update",
    "curve_steps",
    "write_generator",
    "list_snapshots",
    "snapshot_name",
    "stale_outputs",
    "sample_grid",
    "generate",
]

EVAL_GENERATOR_NAME = "generator.pt"
SNAPSHOTS_DIR = "snapshots"
SAMPLES_DIR = "samples"


@torch.no_grad()
def ema_update(average: nn.Module, model: nn.Module, decay: float) -> None:
    """``average <- decay * average + (1 - decay) * model`` for every floating parameter and
    buffer (others are copied); both modules have the same structure."""
    for a, m in zip(average.state_dict().values(), model.state_dict().values()):
        if a.dtype.is_floating_point:
            a.mul_(decay).add_(m.detach(), alpha=1.0 - decay)
        else:
            a.copy_(m)


def curve_steps(total: int, points: int) -> list[int]:
    """``points`` steps spread evenly over ``1 .. total``, the last being ``total`` (fewer when
    ``total < points``; none when ``points`` is 0)."""
    if points <= 0 or total <= 0:
        return []
    return sorted({max(1, int(round(total * (i + 1) / points))) for i in range(points)})


def snapshot_name(step: int) -> str:
    """The file name of the snapshot (and sample grid stem) of ``step``: ``step_XXXXXX.pt``."""
    return f"step_{int(step):06d}.pt"


def write_generator(path: str | os.PathLike, generator: nn.Module, model_name: str, model_cfg: Any, *,
                    step: int, train_seconds: float, ema: bool, params: Mapping[str, Any] | None = None,
                    snapshots: Sequence[str] | None = None) -> Path:
    """Writes ``generator``'s weights as a checkpoint :func:`lib.models.load_model` reads,
    with ``train_seconds``, ``ema`` and, for the evaluation generator, the file names of its
    run's ``snapshots`` (atomic)."""
    extra = {} if snapshots is None else {"snapshots": [str(n) for n in snapshots]}
    return save_checkpoint(path, model=model_name, config=to_dict(model_cfg), state_dict=generator.state_dict(),
                           step=step, params=to_dict(params) if params is not None else None,
                           train_seconds=float(train_seconds), ema=bool(ema), **extra)


def _step_of(path: Path) -> int | None:
    digits = path.name.split(".", 1)[0][len("step_"):]
    return int(digits) if digits.isdigit() else None


def stale_outputs(out_dir: str | os.PathLike, start: int, *, total: int, sample_every: int,
                  curve_steps: Collection[int]) -> Iterator[Path]:
    """The files of an earlier run in ``out_dir`` that a run resumed at step ``start`` towards
    ``total`` steps would not write: snapshots and sample grids at steps outside its schedule
    or past ``start`` (rewritten when reached), and ``generator.pt`` / ``samples/latest.png``
    when steps remain (rewritten at the end)."""
    out = Path(out_dir)
    samples = {s for s in range(1, total + 1) if sample_every and s % sample_every == 0} | {total}
    for folder, pattern, wanted in ((SNAPSHOTS_DIR, "step_*.pt", set(curve_steps)), (SAMPLES_DIR, "step_*.png", samples)):
        for path in sorted((out / folder).glob(pattern)):
            step = _step_of(path)
            if step is None or step not in wanted or step > start:
                yield path
    if start < total:
        yield out / EVAL_GENERATOR_NAME
        yield out / SAMPLES_DIR / "latest.png"


def _run_snapshots(out_dir: Path) -> list[Path]:
    """The snapshot files of the run in ``out_dir``: those its ``generator.pt`` names; for a run
    written before it named them, every ``snapshots/step_*.pt`` up to its step (all of them
    without a ``generator.pt``).

    Raises:
        FileNotFoundError: a snapshot that ``generator.pt`` names is missing (names both).
        ValueError: ``generator.pt`` names something other than a snapshot file.
    """
    found = sorted((out_dir / SNAPSHOTS_DIR).glob("step_*.pt"))
    gen_path = out_dir / EVAL_GENERATOR_NAME
    if not gen_path.is_file():
        return found
    gen = load_checkpoint(gen_path)
    names = gen.get("snapshots")
    if names is None:
        return [p for p in found if (_step_of(p) or 0) <= int(gen["step"])]
    paths = []
    for name in names:
        if not isinstance(name, str) or Path(name).name != name or _step_of(Path(name)) is None:
            raise ValueError(f"{gen_path}: {name!r} in its snapshot list is not a snapshot file name")
        path = out_dir / SNAPSHOTS_DIR / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: snapshot named by {gen_path} is missing (re-run the training stage)")
        paths.append(path)
    return paths


def list_snapshots(out_dir: str | os.PathLike) -> list[tuple[int, float, Path]]:
    """``(step, train_seconds, path)`` of the snapshots of the run in ``out_dir``, by step:
    those its ``generator.pt`` names (files left in ``snapshots/`` by an earlier run with
    other settings are ignored).

    Raises:
        FileNotFoundError: a named snapshot is missing (names it).
        ValueError: a snapshot without ``train_seconds`` (names the file).
    """
    rows = []
    for path in _run_snapshots(Path(out_dir)):
        ckpt = load_checkpoint(path)
        if "train_seconds" not in ckpt:
            raise ValueError(f"{path}: snapshot has no train_seconds (written by an older version?)")
        rows.append((int(ckpt["step"]), float(ckpt["train_seconds"]), path))
    return sorted(rows)


def sample_grid(generator: nn.Module, items: list[dict]) -> np.ndarray:
    """Rows ``label colours | generated | real`` for ``items``, separated by 2 white pixels."""
    labels = torch.stack([it["label"] for it in items])  # (N, H, W)
    edge = torch.stack([it["instance_edge"] for it in items]) if "instance_edge" in items[0] else None  # (N, 1, H, W)
    was_training = generator.training
    generator.eval()
    gen = generate_images(generator, labels, edge)  # (N, H, W, 3)
    generator.train(was_training)
    colours = label_colormap(labels, generator.cfg.label_nc)  # (N, H, W, 3)
    real = to_uint8(torch.stack([it["image"] for it in items]))  # (N, H, W, 3)
    gap = 2  # pixels between panels
    n, h, w, _ = colours.shape
    grid = np.full((n * h + (n - 1) * gap, 3 * w + 2 * gap, 3), 255, dtype=np.uint8)
    for i in range(n):
        y = i * (h + gap)
        for j, panel in enumerate((colours[i], gen[i], real[i])):
            grid[y : y + h, j * (w + gap) : j * (w + gap) + w] = panel
    return grid


def generate(generator: nn.Module, dataset: Dataset, out_dir: str | os.PathLike, batch_size: int = 1) -> list[Path]:
    """Writes the generator's image for every dataset item as a PNG, atomically.

    ``out_dir/<stem>.png`` takes the stem of the item's ``path`` (items ``dict(label (H, W)[,
    instance_edge (1, H, W)], path)``, in order, ``batch_size`` per forward); pixels come from
    :func:`lib.models.generate.generate_images`. Returns the written files, in dataset order.
    The generator (e.g. from :func:`lib.models.load_model`) is used as is (eval mode, its device).

    Raises:
        ValueError: two items with the same file stem, or ``batch_size < 1``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    use_edge = bool(getattr(generator.cfg, "use_instance_edge", False))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    seen: dict[str, str] = {}
    for lo in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(lo, min(lo + batch_size, len(dataset)))]
        names = []
        for it in items:
            stem = Path(it["path"]).stem
            if stem in seen:
                raise ValueError(f"items {seen[stem]} and {it['path']} would both be written as {stem}.png")
            seen[stem] = it["path"]
            names.append(stem)
        labels = torch.stack([it["label"] for it in items])  # (b, H, W)
        edge = torch.stack([it["instance_edge"] for it in items]) if use_edge else None  # (b, 1, H, W)
        try:
            images = generate_images(generator, labels, edge)  # (b, H, W, 3)
        except ValueError as e:  # a non-finite image: name the items
            raise ValueError(f"{', '.join(str(it['path']) for it in items)}: {e}") from e
        for name, img in zip(names, images):
            written.append(write_image(out_dir / f"{name}.png", img))
    return written
