"""Generator-only speed of ASAPNet (fast and reference paths), pix2pixHD and SPADE, interleaved.

Usage::

    python benchmarks/translation_speed.py                       # CPU, 256x512 and 1024x2048
    python benchmarks/translation_speed.py --device cuda --dtype fp32,bf16 \\
        --sizes 256x256,512x512,1024x1024,2048x2048 --models asapnet,asapnet-reference,pix2pixhd,spade

Protocol (lib/metrics/timing.py, docs/design.md#timing-protocol): batch 1, random weights, a random label map
with regions (``example_label_ids``), inputs already on the device, eval mode,
``torch.inference_mode()``. At each size every model is warmed up, then the timed runs are
interleaved (one run of each model in turn, ``--runs`` rounds), so load from other processes
hits all models alike. A model whose first forward at a size takes longer than ``--limit-s``
is not timed further at that size or larger ones (the row says so). Peak memory = weights +
inputs + the peak increase during one forward: on CUDA from ``max_memory_allocated``; on the
CPU the resident-set increase of one forward in a fresh process (``--memory subprocess``),
because freed memory kept by the allocator makes in-process readings of later models too low.

Prints a table and the issue's targets (CPU: pix2pixHD / ASAPNet >= 2.5x at 256x512 and
>= 10x at 1024x2048, ASAPNet reference / fast >= 2x at 1024x2048, ASAPNet's peak memory below
pix2pixHD's; GPU: next to the paper's Fig. 1), and writes ``{out}/{tag}.csv`` and ``.json``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lib.device import sync as _sync  # noqa: E402
from lib.io import write_csv, write_json, write_text  # noqa: E402
from lib.metrics.timing import PAPER_FIG1_MS as FIG1_BY_MODEL, peak_memory, time_forward  # noqa: E402
from lib.models.complexity import count_macs  # noqa: E402
from lib.paths import git_revision  # noqa: E402
from lib.provenance import environment_info  # noqa: E402
from lib.translation.workload import (  # noqa: E402
    DTYPES,
    build_timing_model,
    example_inputs,
    example_label_ids,
    timing_config,
)
from lib.translation.workload import meta_macs as _macs_on_meta  # noqa: E402

# the paper's Fig. 1 values keyed by (model, square side), as the rows look them up
PAPER_FIG1_MS = {(m, side): ms for m, sides in FIG1_BY_MODEL.items() for side, ms in sides.items()}
# Official implementations on the 2-core CPU (issue 6, fp32, batch 1, 2 threads): seconds.
OFFICIAL_CPU_S = {
    ("asapnet", 256, 512): 0.91, ("asapnet", 1024, 2048): 5.17,
    ("pix2pixhd", 256, 512): 1.99, ("pix2pixhd", 1024, 2048): 31.5,
}
CPU_TARGETS = {(256, 512): 2.5, (1024, 2048): 10.0}  # issue 6: pix2pixHD / ASAPNet time
REFERENCE_TARGET = 2.0  # issue 6: ASAPNet reference / fast at 1024x2048


def _variant(name: str) -> tuple[str, str | None]:
    """``asapnet-reference`` -> (``asapnet``, ``reference``); ``asapnet`` -> (``asapnet``, ``fast``)."""
    if name == "asapnet-reference":
        return "asapnet", "reference"
    if name == "asapnet":
        return "asapnet", "fast"
    return name, None


def _forward(model, impl, onehot, edge):
    if impl is None:
        return lambda: model(onehot, edge)
    return lambda: model(onehot, edge, impl=impl)


def _memory_probe(spec: str) -> None:
    """Child process: prints the RSS increase of one forward (``name,h,w,dtype,label_nc,threads``)."""
    name, h, w, dtype, label_nc, threads = spec.split(",")
    torch.set_num_threads(int(threads))
    base, impl = _variant(name)
    model = build_timing_model(base, int(h), label_nc=int(label_nc), dtype=DTYPES[dtype])
    onehot, edge = example_inputs(model, example_label_ids(int(h), int(w), label_nc=int(label_nc)), dtype=DTYPES[dtype])
    print(json.dumps({"peak_memory_bytes": peak_memory(_forward(model, impl, onehot, edge), "cpu")}))


def _memory_subprocess(name: str, h: int, w: int, dtype: str, label_nc: int, threads: int) -> int | None:
    spec = f"{name},{h},{w},{dtype},{label_nc},{threads}"
    proc = subprocess.run(
        [sys.executable, __file__, "--memory-probe", spec], capture_output=True, text=True, cwd=ROOT, timeout=3600
    )
    if proc.returncode != 0:
        print(f"memory probe {spec} failed: {proc.stderr[-500:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_memory_bytes"]


def run_size(
    names: list[str], h: int, w: int, args, dtype: str, skipped: dict[str, str]
) -> list[dict]:
    """Times every model of ``names`` at one size, interleaved; returns one row per model."""
    dev = torch.device(args.device)
    tdtype = DTYPES[dtype]
    ids = example_label_ids(h, w, label_nc=args.label_nc)
    models, fns, rows = {}, {}, {}
    for name in names:
        base, impl = _variant(name)
        row = {"device": args.device, "dtype": dtype, "height": h, "width": w, "model": base, "impl": impl,
               "variant": name, "threads": torch.get_num_threads(), "paper_fig1_ms": None, "official_cpu_ms": None}
        if h == w:
            row["paper_fig1_ms"] = PAPER_FIG1_MS.get((base, h)) if impl != "reference" else None
        if dev.type == "cpu" and impl != "reference" and (base, h, w) in OFFICIAL_CPU_S:
            row["official_cpu_ms"] = OFFICIAL_CPU_S[(base, h, w)] * 1e3
        rows[name] = row
        if name in skipped:
            row["note"] = skipped[name]
            continue
        if base not in models:
            models[base] = build_timing_model(base, h, label_nc=args.label_nc, device=dev, dtype=tdtype)
        model = models[base]
        onehot, edge = example_inputs(model, ids, device=dev, dtype=tdtype)
        fns[name] = _forward(model, impl, onehot, edge)
        row["params"] = int(sum(p.numel() for p in model.parameters()))
        cfg = timing_config(base, h, args.label_nc)
        macs = _macs_on_meta(base, cfg, [list(onehot.shape), None if edge is None else list(edge.shape)], impl)
        row["macs_counted_on"] = "meta" if macs is not None else str(dev)
        if macs is None:
            macs = count_macs(fns[name])
        row["gmacs"] = macs / 1e9
        # first forward: warm-up, and the check against the time limit
        with torch.inference_mode():
            _sync(dev)
            t0 = time.perf_counter()
            fns[name]()
            _sync(dev)
            first = time.perf_counter() - t0
        row["first_forward_s"] = first
        if first > args.limit_s:
            note = f"skipped: first forward {first:.1f} s > limit {args.limit_s} s at {h}x{w}"
            skipped[name] = note
            row["note"] = note
            del fns[name]
            continue
        row["weights_bytes"] = int(sum(p.numel() * p.element_size() for p in model.parameters()))
        row["inputs_bytes"] = int(sum(t.numel() * t.element_size() for t in (onehot, edge) if t is not None))
        if dev.type == "cuda":  # the increase over what is allocated (other models' weights too)
            before = torch.cuda.memory_allocated(dev)
            row["forward_peak_bytes"] = peak_memory(fns[name], dev) - before
        for _ in range(max(0, args.warmup - 1)):
            with torch.inference_mode():
                fns[name]()
    times: dict[str, list[float]] = {n: [] for n in fns}
    for _ in range(args.runs):
        for name, fn in fns.items():  # interleaved: one run of each model in turn
            times[name].append(time_forward(fn, device=dev, warmup=0, runs=1)["median_ms"])
    for name, t in times.items():
        a = np.asarray(t)
        row = rows[name]
        row.update({"median_ms": float(np.median(a)), "p90_ms": float(np.percentile(a, 90)), "min_ms": float(a.min()),
                    "runs": int(a.size), "times_ms": [round(x, 3) for x in t]})
        row["gmac_per_s"] = row["gmacs"] / (row["median_ms"] / 1e3)
    if dev.type == "cpu" and args.memory == "subprocess":
        for name in fns:
            rows[name]["forward_peak_bytes"] = _memory_subprocess(name, h, w, dtype, args.label_nc, torch.get_num_threads())
    elif dev.type == "cpu" and args.memory == "inprocess":
        for name, fn in fns.items():
            rows[name]["forward_peak_bytes"] = peak_memory(fn, dev)
    base_ms = rows.get("asapnet", {}).get("median_ms")
    for row in rows.values():
        if row.get("forward_peak_bytes") is not None:  # weights + inputs + the forward's peak increase
            row["peak_memory_bytes"] = row["weights_bytes"] + row["inputs_bytes"] + row["forward_peak_bytes"]
            row["peak_memory_mib"] = row["peak_memory_bytes"] / 2**20
        if base_ms and row.get("median_ms"):
            row["time_vs_asapnet"] = row["median_ms"] / base_ms
    del models, fns
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return list(rows.values())


def _fmt(v, spec: str) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-".rjust(int(spec.split(".")[0]))
    return format(v, spec)


def print_table(rows: list[dict]) -> None:
    head = f"{'size':>10} {'dtype':>5} {'model':>18} {'median ms':>10} {'p90 ms':>9} {'GMAC':>7} {'GMAC/s':>7} " \
           f"{'peak MiB':>9} {'x ASAPNet':>9} {'paper ms':>8} {'official ms':>11}"
    print(head)
    print("-" * len(head))
    for r in rows:
        size = f"{r['height']}x{r['width']}"
        print(f"{size:>10} {r['dtype']:>5} {r['variant']:>18} {_fmt(r.get('median_ms'), '10.1f')} "
              f"{_fmt(r.get('p90_ms'), '9.1f')} {_fmt(r.get('gmacs'), '7.1f')} {_fmt(r.get('gmac_per_s'), '7.1f')} "
              f"{_fmt(r.get('peak_memory_mib'), '9.0f')} {_fmt(r.get('time_vs_asapnet'), '9.2f')} "
              f"{_fmt(r.get('paper_fig1_ms'), '8.0f')} {_fmt(r.get('official_cpu_ms'), '11.0f')}"
              + (f"   {r['note']}" if r.get("note") else ""))


def check_targets(rows: list[dict]) -> list[str]:
    """Lines stating each issue-6 target that the rows allow to check, with PASS / MISS."""
    lines = []
    by = {(r["dtype"], r["height"], r["width"], r["variant"]): r for r in rows}
    for (dt, h, w, v), r in sorted(by.items()):
        if v != "asapnet" or r.get("median_ms") is None:
            continue
        p2p = by.get((dt, h, w, "pix2pixhd"), {})
        ref = by.get((dt, h, w, "asapnet-reference"), {})
        if r["device"] == "cpu" and (h, w) in CPU_TARGETS and p2p.get("median_ms"):
            ratio, target = p2p["median_ms"] / r["median_ms"], CPU_TARGETS[(h, w)]
            lines.append(f"{h}x{w} {dt}: pix2pixHD / ASAPNet = {ratio:.2f}x (target >= {target}x): "
                         f"{'PASS' if ratio >= target else 'MISS'}")
        if (h, w) == (1024, 2048) and ref.get("median_ms"):
            ratio = ref["median_ms"] / r["median_ms"]
            lines.append(f"{h}x{w} {dt}: ASAPNet reference / fast = {ratio:.2f}x (target >= {REFERENCE_TARGET}x): "
                         f"{'PASS' if ratio >= REFERENCE_TARGET else 'MISS'}")
        if r.get("peak_memory_bytes") and p2p.get("peak_memory_bytes"):
            ok = r["peak_memory_bytes"] < p2p["peak_memory_bytes"]
            lines.append(f"{h}x{w} {dt}: peak memory ASAPNet {r['peak_memory_mib']:.0f} MiB vs pix2pixHD "
                         f"{p2p['peak_memory_mib']:.0f} MiB (target: below): {'PASS' if ok else 'MISS'}")
        if r.get("paper_fig1_ms"):
            lines.append(f"{h}x{w} {dt}: ASAPNet {r['median_ms']:.1f} ms vs paper Fig. 1 {r['paper_fig1_ms']} ms"
                         + (f"; pix2pixHD {p2p['median_ms']:.1f} ms vs {p2p.get('paper_fig1_ms')} ms" if p2p.get("median_ms") else ""))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", help="comma list of fp32, bf16, fp16")
    ap.add_argument("--sizes", default="256x512,1024x2048", help="comma list of HxW")
    ap.add_argument("--models", default="asapnet,asapnet-reference,pix2pixhd",
                    help="comma list of asapnet, asapnet-reference, pix2pixhd, spade")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs per model and size (the first is the limit check)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--limit-s", type=float, default=120.0, help="skip a model whose first forward exceeds this")
    ap.add_argument("--label-nc", type=int, default=35)
    ap.add_argument("--memory", default="subprocess", choices=["subprocess", "inprocess", "off"], help="CPU peak memory")
    ap.add_argument("--tf32", action="store_true", help="CUDA: allow TF32 (default off: true fp32)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="output folder")
    ap.add_argument("--tag", default=None, help="output file stem (default translation_speed_<device>)")
    ap.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.memory_probe:
        _memory_probe(args.memory_probe)
        return 0
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    sizes.sort(key=lambda hw: hw[0] * hw[1])
    names = args.models.split(",")
    for n in names:
        if n not in ("asapnet", "asapnet-reference", "pix2pixhd", "spade"):
            raise SystemExit(f"unknown model {n!r}; known: asapnet, asapnet-reference, pix2pixhd, spade")
    dtypes = args.dtype.split(",")
    for dt in dtypes:
        if dt not in DTYPES:
            raise SystemExit(f"unknown dtype {dt!r}; known: {', '.join(DTYPES)}")
    rows: list[dict] = []
    for dt in dtypes:
        skipped: dict[str, str] = {}
        for h, w in sizes:
            t0 = time.perf_counter()
            new = run_size(names, h, w, args, dt, skipped)
            rows += new
            print_table(new)
            print(f"({h}x{w} {dt}: {time.perf_counter() - t0:.0f} s)\n", flush=True)
    print_table(rows)
    lines = check_targets(rows)
    print("\n".join(["", "targets (issue 6):"] + lines))
    tag = args.tag or f"translation_speed_{torch.device(args.device).type}"
    out = Path(args.out)
    flat = [{k: v for k, v in r.items() if k != "times_ms"} | {"times_ms": " ".join(map(str, r.get("times_ms", [])))}
            for r in rows]
    try:
        import pandas as pd

        write_csv(out / f"{tag}.csv", pd.DataFrame(flat))
    except ImportError:  # a bare machine: the csv module
        import csv
        import io

        cols = list(dict.fromkeys(k for r in flat for k in r))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=cols)
        writer.writeheader()
        writer.writerows(flat)
        write_text(out / f"{tag}.csv", buf.getvalue())
    write_json(out / f"{tag}.json", {"rows": rows, "targets": lines, "environment": environment_info(args.device),
                                     "git_revision": git_revision(),
                                     "args": {k: v for k, v in vars(args).items() if k != "memory_probe"}})
    print(f"\nwrote {out / (tag + '.csv')} and {out / (tag + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
