"""GPU timing of ASAPNet, pix2pixHD and SPADE at the paper's Fig. 1 sizes, beside the paper's values.

Usage::

    python benchmarks/gpu_timing.py                                   # CUDA: 256^2 ... 2048^2
    python benchmarks/gpu_timing.py --device cpu --sizes 64x64 --runs 1   # smoke run (the test does this)

Protocol (:func:`lib.metrics.timing.time_forward`, docs/design.md#timing-protocol): generator
forward only, batch 1, paper configurations (35 labels + instance edge; ASAPNet built for the
height, tile ``k = H / 16``), seeded random weights, a random label map with 8x8-pixel regions
and its edge map already on the device, eval mode, ``torch.inference_mode()``; CUDA events around
each run; ``torch.backends.cudnn.benchmark = True``. Precisions: ``fp32`` (TF32 off), ``tf32``
(TF32 on in matmuls and convolutions), ``bf16`` (``torch.autocast`` on the fp32 weights). At each
size and precision every model gets ``--warmup`` untimed forwards (models are built once per size) (cuDNN's algorithm search
happens there), then ``--runs`` rounds in which each runs once in turn. ASAPNet is also timed as
a replayed CUDA graph (``asapnet+graph``; its fast path is given the label ids so that nothing in
it waits for the GPU) where the capture works; a failed capture is recorded as a note. A model
whose first forward exceeds ``--limit-s`` or runs out of memory is not timed at that size or
larger ones in that precision.

Prints a table beside the paper's Fig. 1 (ASAPNet 9/14/35/130 ms, pix2pixHD 20/61/166/682 ms at
256^2/512^2/1024^2/2048^2; SPADE 94/359 ms at 512^2/1024^2) and writes ``{out}/{stem}.csv`` and
``.json`` (stem ``gpu_timing``; ``gpu_timing_cpu_smoke`` on the CPU).
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lib.device import resolve_device, sync  # noqa: E402
from lib.io import write_json, write_text  # noqa: E402
from lib.metrics.timing import PAPER_FIG1_MS as FIG1_BY_MODEL, time_forward  # noqa: E402
from lib.provenance import environment_info  # noqa: E402
from lib.translation.workload import build_timing_model, example_inputs, example_label_ids  # noqa: E402

MODELS = ("asapnet", "pix2pixhd", "spade")
PRECISIONS = ("fp32", "tf32", "bf16")
# the paper's Fig. 1 values keyed by (model, square side), as the rows look them up
PAPER_FIG1_MS = {(m, side): ms for m, sides in FIG1_BY_MODEL.items() for side, ms in sides.items()}
CSV_COLUMNS = ("size", "height", "width", "precision", "model", "variant", "median_ms", "p90_ms", "min_ms", "runs",
               "first_forward_ms", "paper_fig1_ms", "vs_paper", "time_vs_asapnet", "params", "note")


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not HxW") from None
    if h < 16 or h % 16 or w % 16:
        raise argparse.ArgumentTypeError(f"size {text!r}: height and width must be multiples of 16")
    return h, w


def _comma_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [t for t in text.split(",") if t]
        if not items or any(t not in choices for t in items):
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(choices)}")
        return list(dict.fromkeys(items))

    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--sizes", type=lambda s: [parse_size(t) for t in s.split(",") if t],
                    default="256x256,512x512,1024x1024,2048x2048", help="comma list of HxW")
    ap.add_argument("--precisions", type=_comma_list(PRECISIONS), default=",".join(PRECISIONS))
    ap.add_argument("--models", type=_comma_list(MODELS), default=",".join(MODELS))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=None, help="untimed forwards per model (default 5 on CUDA, 1 on the CPU)")
    ap.add_argument("--no-graphs", action="store_true", help="do not time ASAPNet as a CUDA graph")
    ap.add_argument("--limit-s", type=float, default=30.0, help="skip a model whose first forward exceeds this")
    ap.add_argument("--label-nc", type=int, default=35)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--stem", default=None, help="file stem (default gpu_timing; gpu_timing_cpu_smoke on the CPU)")
    args = ap.parse_args(argv)
    if args.runs < 1 or (args.warmup is not None and args.warmup < 1):
        ap.error("--runs and --warmup must be >= 1")
    args.sizes = sorted(set(args.sizes), key=lambda hw: hw[0] * hw[1])
    return args


@contextlib.contextmanager
def precision(name: str, device: torch.device):
    """TF32 flags for ``name`` (restored afterwards) and, for ``bf16``, autocast on ``device``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # newer torch may deprecate the allow_tf32 getters
        old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = name == "tf32"
    try:
        if name == "bf16":
            with torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False):  # graph-capture safe
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def in_precision(fn: Callable, name: str, device: torch.device) -> Callable:
    def run():
        with precision(name, device):
            return fn()

    return run


def capture_graph(fn: Callable, device: torch.device, warmup: int = 3) -> Callable:
    """``fn`` captured as a CUDA graph (side-stream warm-up first); returns its replay.

    Raises:
        RuntimeError: the capture failed (e.g. the forward synchronises).
    """
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def _units(models: dict, ids: torch.Tensor, dev: torch.device, prec: str, graphs: bool) -> tuple[dict, dict]:
    """{variant: forward} for one precision, and {variant: note} for ASAPNet graphs that did not capture."""
    fns, notes = {}, {}
    for name, (model, onehot, edge) in models.items():
        fns[name] = in_precision(lambda m=model, o=onehot, e=edge: m(o, e), prec, dev)
        if name == "asapnet" and graphs:
            forward = in_precision(lambda m=model, o=onehot, e=edge: m(o, e, label_ids=ids), prec, dev)
            try:
                with torch.inference_mode():
                    fns["asapnet+graph"] = capture_graph(forward, dev)
            except Exception as e:  # noqa: BLE001 - any capture failure is reported, not fatal
                notes["asapnet+graph"] = f"CUDA graph capture failed: {type(e).__name__}: {str(e)[:200]}"
                torch.cuda.synchronize(dev)
    return fns, notes


def build_models(args, h: int, w: int, dev: torch.device) -> tuple[dict, torch.Tensor]:
    """{name: (model, onehot, edge)} for one size (seeded random weights, on ``dev``) and the label ids."""
    ids = example_label_ids(h, w, label_nc=args.label_nc).to(dev)  # (1, H, W)
    models = {}
    for name in args.models:
        model = build_timing_model(name, h, label_nc=args.label_nc, device=dev)
        models[name] = (model, *example_inputs(model, ids, device=dev))
    return models, ids


def run_precision(args, models: dict, ids: torch.Tensor, prec: str, skipped: dict) -> list[dict]:
    """Times every model at one size and precision, interleaved; one row per variant.

    ``skipped[(model, precision)]`` holds the notes of models not timed any more (updated).
    """
    dev = ids.device
    h, w = ids.shape[-2:]
    active = {n: v for n, v in models.items() if (n, prec) not in skipped}
    graphs = dev.type == "cuda" and not args.no_graphs and "asapnet" in active
    fns, notes = _units(active, ids, dev, prec, graphs)
    rows: dict[str, dict] = {}
    for variant in [*models, *(["asapnet+graph"] if graphs else [])]:
        base = variant.split("+")[0]
        row = rows[variant] = {"size": f"{h}x{w}", "height": h, "width": w, "precision": prec, "model": base,
                               "variant": variant, "paper_fig1_ms": PAPER_FIG1_MS.get((base, h)) if h == w else None,
                               "params": int(sum(p.numel() for p in models[base][0].parameters()))}
        note = skipped.get((base, prec)) or notes.get(variant)
        if note:
            row["note"] = note
            fns.pop(variant, None)
            continue
        try:
            with torch.inference_mode():
                sync(dev)
                t0 = time.perf_counter()
                fns[variant]()
                sync(dev)
            row["first_forward_ms"] = (time.perf_counter() - t0) * 1e3
            for _ in range(args.warmup - 1):
                time_forward(fns[variant], device=dev, warmup=0, runs=1)
        except torch.cuda.OutOfMemoryError:
            row["note"] = skipped[(base, prec)] = f"out of memory at {h}x{w}"
            fns.pop(variant)
            torch.cuda.empty_cache()
            continue
        if row["first_forward_ms"] / 1e3 > args.limit_s:
            row["note"] = skipped[(base, prec)] = f"skipped: first forward {row['first_forward_ms'] / 1e3:.1f} s > --limit-s"
            fns.pop(variant)
    times: dict[str, list[float]] = {v: [] for v in fns}
    for _ in range(args.runs):
        for variant, fn in fns.items():  # interleaved
            times[variant].append(time_forward(fn, device=dev, warmup=0, runs=1)["median_ms"])
    for variant, t in times.items():
        row = rows[variant]
        row.update({"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)), "min_ms": float(min(t)),
                    "runs": len(t)})
        if row["paper_fig1_ms"]:
            row["vs_paper"] = row["median_ms"] / row["paper_fig1_ms"]
    asap = rows.get("asapnet", {}).get("median_ms")
    for row in rows.values():
        if asap and row.get("median_ms"):
            row["time_vs_asapnet"] = row["median_ms"] / asap
    return list(rows.values())


def format_table(rows: list[dict]) -> str:
    """Plain-text table: medians beside the paper's Fig. 1 values."""
    head = (f"{'size':>10} {'precision':>9} {'variant':>14} {'median ms':>10} {'p90 ms':>9} {'paper ms':>8} "
            f"{'/ paper':>8} {'/ ASAPNet':>9}")
    out = [head, "-" * len(head)]
    f = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    for r in rows:
        out.append(f"{r['size']:>10} {r['precision']:>9} {r['variant']:>14} {f(r.get('median_ms'), '.2f'):>10} "
                   f"{f(r.get('p90_ms'), '.2f'):>9} {f(r.get('paper_fig1_ms'), 'd'):>8} {f(r.get('vs_paper'), '.2f'):>8} "
                   f"{f(r.get('time_vs_asapnet'), '.2f'):>9}" + (f"   {r['note']}" if r.get("note") else ""))
    return "\n".join(out)


def paper_ratio_lines(rows: list[dict]) -> list[str]:
    """pix2pixHD / ASAPNet per size and precision, beside the paper's ratio."""
    by = {(r["size"], r["precision"], r["variant"]): r for r in rows}
    lines = []
    for (size, prec, variant), r in by.items():
        p2p = by.get((size, prec, "pix2pixhd"), {}).get("median_ms")
        if variant != "asapnet" or not r.get("median_ms") or not p2p:
            continue
        h = r["height"]
        paper = (PAPER_FIG1_MS[("pix2pixhd", h)] / PAPER_FIG1_MS[("asapnet", h)]
                 if ("asapnet", h) in PAPER_FIG1_MS and r["height"] == r["width"] else None)
        lines.append(f"{size} {prec}: pix2pixHD / ASAPNet = {p2p / r['median_ms']:.2f}x"
                     + (f" (paper Fig. 1: {paper:.2f}x)" if paper else ""))
    return lines


def csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        dev = resolve_device(args.device)
    except ValueError as e:
        print(f"error: {e} (use --device cpu for a smoke run)", file=sys.stderr)
        return 2
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if args.warmup is None:
        args.warmup = 5 if dev.type == "cuda" else 1
    rows: list[dict] = []
    skipped: dict = {}
    for h, w in args.sizes:
        t0 = time.perf_counter()
        models, ids = build_models(args, h, w, dev)
        new = [row for prec in args.precisions for row in run_precision(args, models, ids, prec, skipped)]
        rows += new
        del models
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        print(format_table(new), f"\n({h}x{w}: {time.perf_counter() - t0:.0f} s)\n", flush=True)
    ratios = paper_ratio_lines(rows)
    print(format_table(rows), "\n\n" + "\n".join(ratios))
    stem = args.stem or ("gpu_timing" if dev.type == "cuda" else f"gpu_timing_{dev.type}_smoke")
    out = Path(args.out)
    write_text(out / f"{stem}.csv", csv_text(rows))
    write_json(out / f"{stem}.json", {"rows": rows, "paper_ratios": ratios, "environment": environment_info(dev),
                                      "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
                                      "args": vars(args) | {"device": str(dev)}})
    print(f"\nwrote {out / (stem + '.csv')} and {out / (stem + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
