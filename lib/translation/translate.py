"""Batch label -> photo inference with a trained generator checkpoint.

Usage::

    python -m lib.translation.translate --checkpoint CKPT --labels DIR --out DIR [--device cpu] [--batch 4]
                                        [--instances DIR] [--threads N] [--pattern "*.png"] [--overwrite]

Reads every label map in ``--labels`` matching ``--pattern`` (single-channel index PNGs,
values = label ids in ``[0, label_nc)``), rebuilds the generator recorded in the checkpoint
(:func:`lib.models.load_model`), generates through :func:`lib.models.generate.generate_images`
and writes one RGB PNG per label map into ``--out``, at the label map's path relative to
``--labels`` with the suffix ``.png`` (``a/b.png`` for ``a/b.png`` under a ``**/*.png``
pattern). Label maps of the same size are batched (``--batch``).

Nothing is lost: an ``--out`` that is (or resolves to) the label or instance folder, or lies
inside one, is refused; so is a run in which two inputs would give one output (``x.png`` and
``x.jpg``; the colliding inputs are listed) or an output would land on an input. A file
already in ``--out`` is never replaced unless ``--overwrite`` is given (the run is refused
before anything is written, naming the files). The output folder is locked for the run
(:class:`lib.io.FolderLock`): a second run writing to it fails at once. The printed count is
the number of files written.

Instance edges: with ``--instances DIR`` the instance map of the same file name is read and
turned into an edge map (pix2pixHD ``get_edges``); without it a model built with
``use_instance_edge=True`` receives an all-zero edge map (no instance boundaries), which is
what a label map without instances means.

ASAPNet runs its fast path (:func:`lib.models.asapnet.pixelwise_mlp_fast`) and is given the
label ids directly (no one-hot detection). A file that cannot be read, has label ids outside
``[0, label_nc)``, a missing instance map, a size the model cannot take or a generated image
with NaN / infinite values is named on stderr and skipped; the others are still written, and
the exit code is 1 at the end if any failed (2 for a run refused before it started).
The summary line reports images/s over the whole run (reading, forward, writing) and over the
forward passes alone.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from lib.data.transforms import instance_edges
from lib.data.images import read_label, write_image
from lib.device import resolve_device, sync
from lib.io import FolderBusyError, FolderLock
from lib.models import load_model, model_name
from lib.models.complexity import peak_tensor_bytes
from lib.models.generate import GENERATORS, generate_images, size_multiple

__all__ = ["GENERATORS", "translate_dir", "TranslateResult", "MemoryModel", "available_memory", "main"]

CALIBRATION_SIDE = 128  # memory model: forwards at about this side and twice it (pixels)
MEMORY_MARGIN = 1.25  # the estimate is multiplied by this before it is compared with the limit


def available_memory(device: torch.device) -> int | None:
    """Bytes a forward pass may use on ``device``: free GPU memory, or the CPU's ``MemAvailable``."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@dataclass
class MemoryModel:
    """Working memory of one forward pass as ``fixed + per_pixel * H * W`` bytes, fitted to the
    peak tensor bytes (:func:`lib.models.complexity.peak_tensor_bytes`) of two small forwards.

    Attributes:
        fixed: bytes that do not grow with the image.
        per_pixel: bytes per pixel of the label map.
    """

    fixed: float
    per_pixel: float

    @classmethod
    def calibrate(cls, model: nn.Module) -> "MemoryModel":
        """Fits the model on forwards at about :data:`CALIBRATION_SIDE` and twice that side."""
        mh, mw = size_multiple(model_name(model), model.cfg)
        device = next(model.parameters()).device
        points = []
        for scale in (1, 2):
            h = max(mh, (scale * CALIBRATION_SIDE) // mh * mh)
            w = max(mw, (scale * CALIBRATION_SIDE) // mw * mw)
            ids = torch.zeros(1, h, w, dtype=torch.long, device=device)  # (1, H, W)
            points.append((h * w, peak_tensor_bytes(lambda: generate_images(model, ids))))
        (p1, b1), (p2, b2) = points
        per_pixel = max(0.0, (b2 - b1) / (p2 - p1))
        return cls(fixed=max(0.0, b1 - per_pixel * p1), per_pixel=per_pixel)

    def bytes_for(self, height: int, width: int, batch: int = 1) -> int:
        """The estimated peak bytes of a forward on ``batch`` label maps of ``height x width``, margin included."""
        return int(MEMORY_MARGIN * (self.fixed + self.per_pixel * height * width * batch))


@dataclass
class TranslateResult:
    """What :func:`translate_dir` did.

    Attributes:
        written: output files written, in input order.
        failed: ``(input file, error message)`` per file that was skipped.
        seconds: wall time of the whole run (reading, forward, writing).
        forward_seconds: time spent in generator forward passes (synchronised).
    """

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0
    forward_seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        """Written images per second of wall time."""
        return len(self.written) / self.seconds if self.seconds > 0 else float("nan")

    @property
    def forward_images_per_second(self) -> float:
        """Written images per second of forward time."""
        return len(self.written) / self.forward_seconds if self.forward_seconds > 0 else float("nan")


@dataclass
class _Item:
    src: Path
    dest: Path
    ids: np.ndarray  # (H, W) int64
    edge: np.ndarray | None  # (H, W) float32


def _read_item(path: Path, dest: Path, rel: Path, label_nc: int, instances: Path | None, use_edge: bool) -> _Item:
    ids = read_label(path)  # (H, W) int64; ValueError naming the file when unreadable
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= label_nc:
        raise ValueError(f"{path}: label ids span [{lo}, {hi}], outside [0, {label_nc}) of the model")
    edge = None
    if use_edge:
        if instances is None:
            edge = np.zeros(ids.shape, dtype=np.float32)  # no instance map: no instance boundaries
        else:
            inst = read_label(instances / rel)  # FileNotFoundError / ValueError name the file
            if inst.shape != ids.shape:
                raise ValueError(f"{instances / rel}: instance map size {inst.shape} != label map size {ids.shape}")
            edge = instance_edges(inst)  # (H, W) float32
    return _Item(path, dest, ids, edge)


def _writable_folder(out: Path) -> None:
    """Creates ``out`` if needed and checks that files can be written into it.

    Raises:
        ValueError: ``out`` is a file, cannot be created, or is not writable (names it and why).
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: output path exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{out}: cannot create the output folder ({e.strerror or e})") from e
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"{out}: output folder is not writable")


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (both already resolved)."""
    return path == folder or folder in path.parents


def _label_files(labels: Path, pattern: str) -> list[Path]:
    """The files under ``labels`` matching ``pattern``, sorted.

    Raises:
        ValueError: a pattern that is absolute or climbs out of the folder (``..``).
    """
    if not pattern or Path(pattern).is_absolute() or ".." in Path(pattern).parts:
        raise ValueError(f"--pattern {pattern!r}: must be a relative glob inside the label folder (no '..')")
    try:
        return sorted(p for p in labels.glob(pattern) if p.is_file())
    except (ValueError, NotImplementedError) as e:
        raise ValueError(f"--pattern {pattern!r}: {e}") from e


def _plan_outputs(files: Sequence[Path], labels: Path, out: Path, inputs: Iterable[Path],
                  keep: Iterable[Path]) -> dict[Path, Path]:
    """``{input file: output file}``: ``out / <path relative to labels>`` with suffix ``.png``.

    Raises:
        ValueError: ``out`` is or lies inside an input folder (``inputs``), two inputs map to
            one output (lists them), or an output would land inside an input folder or on a
            file of ``keep`` (e.g. the checkpoint).
    """
    out_real = out.resolve()
    folders = [Path(f).resolve() for f in inputs]
    for folder in folders:
        if _inside(out_real, folder):
            raise ValueError(f"{out}: the output folder is (or lies inside) the input folder {folder}; "
                             "choose an output folder outside it")
    plan = {f: out / f.relative_to(labels).with_suffix(".png") for f in files}
    by_dest: dict[Path, list[Path]] = {}
    for src, dest in plan.items():
        by_dest.setdefault(dest, []).append(src)
    clashes = {d: srcs for d, srcs in by_dest.items() if len(srcs) > 1}
    if clashes:
        listed = "; ".join(f"{', '.join(map(str, srcs))} -> {d}" for d, srcs in list(clashes.items())[:5])
        more = f" (and {len(clashes) - 5} more)" if len(clashes) > 5 else ""
        raise ValueError(f"{len(clashes)} output name(s) would be written by more than one input: {listed}{more}; "
                         "rename the inputs or narrow --pattern")
    kept = {Path(k).resolve() for k in keep}
    for src, dest in plan.items():
        real = dest.parent.resolve() / dest.name  # a symlinked subfolder of out counts where it points
        if any(_inside(real, folder) for folder in folders) or real in kept or dest.resolve() in kept:
            raise ValueError(f"{dest}: the output for {src} would overwrite an input; choose another output folder")
    return plan


def _generate(model: nn.Module, items: Sequence[_Item]) -> np.ndarray:
    """The images of a group of label maps of one size: (B, H, W, 3) uint8."""
    ids = torch.from_numpy(np.stack([it.ids for it in items]))  # (B, H, W)
    edge = None
    if items[0].edge is not None:
        edge = torch.from_numpy(np.stack([it.edge for it in items])).unsqueeze(1)  # (B, H, W) -> (B, 1, H, W)
    return generate_images(model, ids, edge)


def translate_dir(
    model: nn.Module,
    labels: str | Path,
    out: str | Path,
    *,
    instances: str | Path | None = None,
    batch: int = 4,
    pattern: str = "*.png",
    progress: bool = True,
    max_memory: int | None = None,
    overwrite: bool = False,
    keep: Iterable[str | Path] = (),
) -> TranslateResult:
    """Translates every label map in ``labels`` (matching ``pattern``, sorted) into ``out``.

    Output ``i`` is ``out / <input i relative to labels>`` with the suffix ``.png``. Files
    that fail (unreadable, ids outside ``[0, label_nc)``, missing instance map, a size the
    model rejects, a non-finite generated image) are recorded in ``failed`` with a message
    naming them and printed to stderr; the others are written. ``out`` is locked for the
    run (:class:`lib.io.FolderLock`).

    Args:
        model: a generator in eval mode (see :func:`lib.models.load_model`).
        labels: folder of label maps.
        out: output folder (created).
        instances: optional folder of instance maps with the same file names.
        batch: label maps per forward pass (maps of one size only are batched together).
        pattern: glob of the label files.
        progress: show a tqdm bar on stderr.
        max_memory: bytes a forward pass may use; None: what the device has free
            (:func:`available_memory`). A label map whose estimated need (:class:`MemoryModel`)
            exceeds it is refused with a message naming its size, the estimate and the limit.
        overwrite: replace output files that exist before the run (else the run is refused).
        keep: further files never to write over (e.g. the checkpoint).

    Returns:
        A :class:`TranslateResult`.

    Raises:
        FileNotFoundError: no label folder, or no file in it matches ``pattern``.
        FileExistsError: outputs exist already and ``overwrite`` is false (names them).
        FolderBusyError: another run holds ``out``.
        ValueError: ``batch < 1``, ``max_memory <= 0``, a bad ``pattern``, ``out`` that cannot
            be a writable folder, is inside an input folder, or two inputs mapping to one
            output (each names the path and why).
    """
    if batch < 1:
        raise ValueError(f"batch={batch} must be >= 1")
    if max_memory is not None and not max_memory > 0:
        raise ValueError(f"max_memory={max_memory} must be > 0 bytes")
    labels, out = Path(labels), Path(out)
    if labels.exists() and not labels.is_dir():
        raise ValueError(f"{labels}: the label path is a file, expected a folder (select files with --pattern)")
    if not labels.is_dir():
        raise FileNotFoundError(f"label folder not found: {labels}")
    inst_dir = Path(instances) if instances is not None else None
    if inst_dir is not None and not inst_dir.is_dir():
        raise FileNotFoundError(f"instance folder not found: {inst_dir}")
    files = _label_files(labels, pattern)
    if not files:
        raise FileNotFoundError(f"no label maps matching {pattern!r} in {labels}")
    plan = _plan_outputs(files, labels, out, [labels] + ([inst_dir] if inst_dir is not None else []), keep)
    _writable_folder(out)
    with FolderLock(out, "translate run"):
        existing = [d for d in plan.values() if os.path.lexists(d)]
        if existing and not overwrite:
            shown = ", ".join(str(d) for d in existing[:3]) + (f" (and {len(existing) - 3} more)" if len(existing) > 3 else "")
            raise FileExistsError(f"{out}: {len(existing)} output file(s) exist already and would be replaced: {shown}; "
                                  "pass --overwrite to replace them, or choose an empty output folder")
        return _translate(model, labels, plan, inst_dir, batch, progress, max_memory, overwrite)


def _translate(model: nn.Module, labels: Path, plan: dict[Path, Path], inst_dir: Path | None, batch: int,
               progress: bool, max_memory: int | None, overwrite: bool) -> TranslateResult:
    """:func:`translate_dir` once its inputs and outputs are checked and ``out`` is locked."""
    from tqdm.auto import tqdm

    files = list(plan)
    cfg = model.cfg
    label_nc, use_edge = cfg.label_nc, cfg.use_instance_edge
    name = model_name(model)
    device = next(model.parameters()).device
    limit = max_memory if max_memory is not None else available_memory(device)
    memory: list[MemoryModel] = []  # calibrated on the first label map larger than the calibration
    result = TranslateResult()
    bar = tqdm(total=len(files), desc=f"translate {name}", unit="img", disable=not progress, file=sys.stderr)

    def _human(nbytes: float) -> str:  # GiB, or MiB below 1 GiB (a small limit does not read "0.0 GiB")
        return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"

    def fail(path: Path, err: Exception) -> None:
        msg = str(err) if str(path) in str(err) else f"{path}: {err}"
        result.failed.append((path, msg))
        print(f"error: {msg}", file=sys.stderr)

    def run(group: list[_Item]) -> None:
        if not group:
            return
        try:
            t0 = time.perf_counter()
            images = _generate(model, group)  # (B, H, W, 3) uint8
            sync(device)
            result.forward_seconds += time.perf_counter() - t0
        except (RuntimeError, ValueError) as e:
            if len(group) > 1:  # find which file(s) the model rejects
                for it in group:
                    run([it])
                return
            fail(group[0].src, e)
            bar.update(1)
            return
        for it, img in zip(group, images):
            try:
                result.written.append(write_image(it.dest, img, overwrite=overwrite))
            except (OSError, ValueError) as e:
                fail(it.src, e)
        bar.update(len(group))

    t_start = time.perf_counter()
    pending: list[_Item] = []
    for path in files:
        try:
            item = _read_item(path, plan[path], path.relative_to(labels), label_nc, inst_dir, use_edge)
            h, w = item.ids.shape
            if limit is not None and h * w > (2 * CALIBRATION_SIDE) ** 2:
                if not memory:
                    memory.append(MemoryModel.calibrate(model))
                need = memory[0].bytes_for(h, w)
                if need > limit:
                    raise MemoryError(
                        f"{path}: a {h}x{w} label map needs about {_human(need)} for the forward pass, "
                        f"more than the {_human(limit)} available; use a smaller map (or tiles of it), "
                        f"another device, or raise the limit (--max-memory-gb)"
                    )
        except (OSError, ValueError, MemoryError) as e:
            fail(path, e)
            bar.update(1)
            continue
        if pending and (item.ids.shape != pending[0].ids.shape
                        or (memory and limit is not None and memory[0].bytes_for(h, w, len(pending) + 1) > limit)):
            run(pending)
            pending = []
        pending.append(item)
        if len(pending) == batch:
            run(pending)
            pending = []
    run(pending)
    bar.close()
    result.seconds = time.perf_counter() - t_start
    return result


def _device(name: str) -> torch.device:
    """``--device`` as a torch device that exists here.

    Raises:
        ValueError: an unknown device name, CUDA missing, or a CUDA index past the device count.
    """
    try:
        device = resolve_device(name)
    except ValueError as e:
        raise ValueError(f"--device: {e}") from e
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name!r}: expected cpu, cuda or cuda:<index>")
    return device


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (1 if any file failed, 2 if the run was refused)."""
    ap = argparse.ArgumentParser(prog="python -m lib.translation.translate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="generator checkpoint (lib.checkpoint format)")
    ap.add_argument("--labels", required=True, help="folder of label maps (index PNGs)")
    ap.add_argument("--out", required=True, help="output folder for the generated images (not inside --labels)")
    ap.add_argument("--instances", default=None, help="folder of instance maps with the same names (optional)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    ap.add_argument("--batch", type=int, default=4, help="label maps per forward pass")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--pattern", default="*.png", help="glob of the label files, relative to --labels (e.g. '**/*.png')")
    ap.add_argument("--overwrite", action="store_true", help="replace output files that exist before the run")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--max-memory-gb", type=float, default=None,
                    help="memory a forward pass may use (default: what the device has free)")
    args = ap.parse_args(argv)
    try:
        if args.threads < 0:
            raise ValueError(f"--threads {args.threads}: must be >= 0")
        if args.batch < 1:
            raise ValueError(f"--batch {args.batch}: must be >= 1")
        if args.max_memory_gb is not None and not (math.isfinite(args.max_memory_gb) and args.max_memory_gb > 0):
            raise ValueError(f"--max-memory-gb {args.max_memory_gb}: must be a number > 0")
        if args.threads > 0:
            torch.set_num_threads(args.threads)
        model = load_model(args.checkpoint, _device(args.device))
        name = model_name(model)
        if name not in GENERATORS:
            raise ValueError(f"{args.checkpoint}: model {name!r} is not a label->photo generator ({', '.join(GENERATORS)})")
        result = translate_dir(
            model,
            args.labels,
            args.out,
            instances=args.instances,
            batch=args.batch,
            progress=not args.no_progress,
            pattern=args.pattern,
            max_memory=None if args.max_memory_gb is None else max(1, int(args.max_memory_gb * 2**30)),
            overwrite=args.overwrite,
            keep=[args.checkpoint],
        )
    except (OSError, ValueError, KeyError, FolderBusyError) as e:  # FileNotFoundError, FileExistsError: OSError
        print(f"error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 2
    path = " (ASAPNet fast path)" if name == "asapnet" else ""
    print(
        f"{name}{path}: wrote {len(result.written)} images to {args.out} in {result.seconds:.2f} s: "
        f"{result.images_per_second:.2f} images/s overall, {result.forward_images_per_second:.2f} images/s "
        f"in the forward passes (device {args.device}, batch {args.batch}, {torch.get_num_threads()} threads)"
    )
    if result.failed:
        print(f"{len(result.failed)} file(s) failed:", file=sys.stderr)
        for _, msg in result.failed:
            print(f"  {msg}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
