"""Batch label -> photo inference with a trained generator checkpoint.

Usage::

    python -m lib.translate --checkpoint CKPT --labels DIR --out DIR [--device cpu] [--batch 4]
                            [--instances DIR] [--threads N] [--pattern "*.png"]

Reads every label map in ``--labels`` (single-channel index PNGs, values = label ids in
``[0, label_nc)``), builds the generator recorded in the checkpoint
(:func:`lib.checkpoint.load_checkpoint`: ``model`` = registry name, ``config``, ``state_dict``)
and writes one RGB PNG per label map, same file name, into ``--out``. Label maps of the same
size are batched (``--batch``).

Instance edges: with ``--instances DIR`` the instance map of the same file name is read and
turned into an edge map (pix2pixHD ``get_edges``); without it a model built with
``use_instance_edge=True`` receives an all-zero edge map (no instance boundaries), which is
what a label map without instances means.

ASAPNet runs its fast path (:func:`lib.models.asapnet.pixelwise_mlp_fast`) and is given the
label ids directly (no one-hot detection). A file that cannot be read, has label ids outside
``[0, label_nc)``, a missing instance map or a size the model cannot take is named on stderr
and skipped; the others are still written, and the exit code is 1 at the end if any failed.
The summary line reports images/s over the whole run (reading, forward, writing) and over the
forward passes alone.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from lib.checkpoint import load_checkpoint
from lib.data.cityscapes import instance_edges
from lib.data.images import read_label, write_image
from lib.models import build

__all__ = ["load_generator", "translate_dir", "TranslateResult", "main"]

GENERATORS = ("asapnet", "pix2pixhd", "spade")  # registry names of label -> photo generators


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


def load_generator(checkpoint: str | Path, device: str | torch.device = "cpu") -> tuple[str, nn.Module]:
    """Builds the generator stored in a self-describing checkpoint, in eval mode on ``device``.

    Args:
        checkpoint: a :mod:`lib.checkpoint` file whose ``model`` is a label -> photo generator.
        device: where to put the model.

    Returns:
        ``(registry name, model)``.

    Raises:
        FileNotFoundError: no such checkpoint.
        ValueError: not a checkpoint, not a generator, or weights that do not fit the config
            (the checkpoint file is named).
    """
    ckpt = load_checkpoint(checkpoint)
    name = ckpt["model"]
    if name not in GENERATORS:
        raise ValueError(f"{checkpoint}: model {name!r} is not a label->photo generator ({', '.join(GENERATORS)})")
    model = build(name, ckpt["config"])
    state = ckpt["state_dict"]
    if state and all(k.startswith("module.") for k in state):  # saved from a DDP wrapper
        state = {k[len("module.") :]: v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{checkpoint}: state_dict does not fit {name} with its config: {e}") from e
    return name, model.to(device).eval()


@dataclass
class _Item:
    src: Path
    ids: np.ndarray  # (H, W) int64
    edge: np.ndarray | None  # (H, W) float32


def _read_item(path: Path, label_nc: int, instances: Path | None, use_edge: bool) -> _Item:
    ids = read_label(path)  # (H, W) int64; ValueError naming the file when unreadable
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= label_nc:
        raise ValueError(f"{path}: label ids span [{lo}, {hi}], outside [0, {label_nc}) of the model")
    edge = None
    if use_edge:
        if instances is None:
            edge = np.zeros(ids.shape, dtype=np.float32)  # no instance map: no instance boundaries
        else:
            inst = read_label(instances / path.name)  # FileNotFoundError / ValueError name the file
            if inst.shape != ids.shape:
                raise ValueError(f"{instances / path.name}: instance map size {inst.shape} != label map size {ids.shape}")
            edge = instance_edges(inst)  # (H, W) float32
    return _Item(path, ids, edge)


def _to_uint8(images: Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8: ``round((x + 1) * 127.5)``, clipped."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()  # (B, H, W, 3)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _forward(model: nn.Module, name: str, items: Sequence[_Item], label_nc: int, device: torch.device) -> Tensor:
    ids = torch.from_numpy(np.stack([it.ids for it in items])).to(device)  # (B, H, W)
    onehot = torch.zeros(ids.shape[0], label_nc, *ids.shape[1:], device=device)  # (B, label_nc, H, W)
    onehot.scatter_(1, ids.unsqueeze(1), 1.0)
    edge = None
    if items[0].edge is not None:
        edge = torch.from_numpy(np.stack([it.edge for it in items])).unsqueeze(1).to(device)  # (B, 1, H, W)
    if name == "asapnet":
        return model(onehot, edge, label_ids=ids)  # fast path, ids given
    return model(onehot, edge)


def translate_dir(
    model: nn.Module,
    name: str,
    labels: str | Path,
    out: str | Path,
    *,
    instances: str | Path | None = None,
    batch: int = 4,
    pattern: str = "*.png",
    progress: bool = True,
) -> TranslateResult:
    """Translates every label map in ``labels`` (matching ``pattern``, sorted) into ``out``.

    Files that fail (unreadable, ids outside ``[0, label_nc)``, missing instance map, a size
    the model rejects) are recorded in ``failed`` with a message naming them and printed to
    stderr; the others are written.

    Args:
        model: a generator in eval mode (see :func:`load_generator`).
        name: its registry name.
        labels: folder of label maps.
        out: output folder (created).
        instances: optional folder of instance maps with the same file names.
        batch: label maps per forward pass (maps of one size only are batched together).
        pattern: glob of the label files.
        progress: show a tqdm bar on stderr.

    Returns:
        A :class:`TranslateResult`.
    """
    from tqdm.auto import tqdm

    if batch < 1:
        raise ValueError(f"batch={batch} must be >= 1")
    labels, out = Path(labels), Path(out)
    if not labels.is_dir():
        raise FileNotFoundError(f"label folder not found: {labels}")
    inst_dir = Path(instances) if instances is not None else None
    if inst_dir is not None and not inst_dir.is_dir():
        raise FileNotFoundError(f"instance folder not found: {inst_dir}")
    files = sorted(p for p in labels.glob(pattern) if p.is_file())
    cfg = model.cfg
    label_nc, use_edge = cfg.label_nc, cfg.use_instance_edge
    device = next(model.parameters()).device
    out.mkdir(parents=True, exist_ok=True)
    result = TranslateResult()
    bar = tqdm(total=len(files), desc=f"translate {name}", unit="img", disable=not progress, file=sys.stderr)

    def fail(path: Path, err: Exception) -> None:
        msg = str(err) if str(path) in str(err) else f"{path}: {err}"
        result.failed.append((path, msg))
        print(f"error: {msg}", file=sys.stderr)

    def run(group: list[_Item]) -> None:
        if not group:
            return
        try:
            t0 = time.perf_counter()
            with torch.inference_mode():
                fake = _forward(model, name, group, label_nc, device)  # (B, 3, H, W)
            _sync(device)
            result.forward_seconds += time.perf_counter() - t0
        except (RuntimeError, ValueError) as e:
            if len(group) > 1:  # find which file(s) the model rejects
                for it in group:
                    run([it])
                return
            fail(group[0].src, e)
            bar.update(1)
            return
        for it, img in zip(group, _to_uint8(fake)):
            try:
                result.written.append(write_image(out / (it.src.stem + ".png"), img))
            except (OSError, ValueError) as e:
                fail(it.src, e)
        bar.update(len(group))

    t_start = time.perf_counter()
    pending: list[_Item] = []
    for path in files:
        try:
            item = _read_item(path, label_nc, inst_dir, use_edge)
        except (OSError, ValueError) as e:
            fail(path, e)
            bar.update(1)
            continue
        if pending and item.ids.shape != pending[0].ids.shape:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (1 if any file failed)."""
    ap = argparse.ArgumentParser(prog="python -m lib.translate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="generator checkpoint (lib.checkpoint format)")
    ap.add_argument("--labels", required=True, help="folder of label maps (index PNGs)")
    ap.add_argument("--out", required=True, help="output folder for the generated images")
    ap.add_argument("--instances", default=None, help="folder of instance maps with the same names (optional)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    ap.add_argument("--batch", type=int, default=4, help="label maps per forward pass")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--pattern", default="*.png", help="glob of the label files")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        name, model = load_generator(args.checkpoint, args.device)
        result = translate_dir(
            model,
            name,
            args.labels,
            args.out,
            instances=args.instances,
            batch=args.batch,
            progress=not args.no_progress,
            pattern=args.pattern,
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
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
