"""Our ASAPNet and pix2pixHD against the official code: same weights, output difference, times interleaved.

Usage (local checkouts of the official code, never copied into this project; see
``benchmarks/official_code.py``)::

    export ASAPNET_OFFICIAL_REPO=/path/to/ASAPNet PIX2PIXHD_OFFICIAL_REPO=/path/to/pix2pixHD \\
           SYNC_BN_REPO=/path/to/Synchronized-BatchNorm-PyTorch
    python benchmarks/against_official.py --sizes 256x256,256x512,512x1024,1024x2048 --runs 5 \\
        --threads 2 --dtype fp32,bf16 --models asapnet,official-asapnet,pix2pixhd,official-pix2pixhd,spade \\
        --update-notes

At each size the official generators are built by their own option parsers (Cityscapes: 35
labels + instance edge, paper widths; ``official_code.asapnet_argv`` / ``pix2pixhd_argv``) and
initialised by their own code (ASAPNet with ``--init_variance 0.5``), every 1-D parameter is
shifted by 0.1 N(0, 1) (so outputs are neither near 0 nor alike by accident), and the same
tensors are loaded into ours through :mod:`lib.models.official`. SPADE (ours only) gets xavier
gain 1.0 and the same shift. Inputs: a random label map with 8x8-pixel regions and its edge
map, batch 1, on the CPU; the official generators get ``cat([one-hot, edge], 1)`` as their
test scripts build it, ours the two tensors (ours derives the label ids itself).

Protocol (:func:`lib.metrics.timing.time_forward`, docs/design.md#timing-protocol): generator
forward only, eval mode, ``torch.inference_mode()``; per model and dtype one first forward
(its output is kept), ``--warmup - 1`` more, then ``--runs`` rounds in which every (model,
dtype) runs once in turn (A, B, C, D, A, B, ...), so load from other processes hits all alike;
median and 90th percentile per model. bf16 = ``torch.autocast("cpu", dtype=torch.bfloat16)``
on the fp32 weights, only on CPUs with AVX-512 BF16 or AMX (``lib.device.cpu_bf16_flags``),
else skipped with a note. A model whose time predicted from the previous size (times the pixel
ratio) or whose first forward exceeds its ``--limit-s`` (default 150 s, SPADE 40 s) is not timed
at that size or larger ones.

Reported beside the times: max |ours - official| of the outputs (same dtype), the output
standard deviation, and for bf16 the PSNR of each model's bf16 output against its fp32 output
(images in [-1, 1] mapped to [0, 1]). Writes ``{out}/{stem}.csv`` and ``.json`` (with the
environment: CPU model, flags, threads, torch version) and, with ``--update-notes``, the table
in ``benchmarks/NOTES.md`` between its ``against_official`` markers.
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.official_code import (  # noqa: E402
    OfficialCode,
    OfficialCodeMissing,
    asapnet_argv,
    pix2pixhd_argv,
    randomise_,
    resolve_repos,
)
from lib.data.transforms import instance_edges  # noqa: E402
from lib.data.transforms import one_hot  # noqa: E402
from lib.device import cpu_bf16_flags  # noqa: E402
from lib.io import write_json, write_text  # noqa: E402
from lib.metrics.timing import time_forward  # noqa: E402
from lib.models import build  # noqa: E402
from lib.models.official import convert_official_asapnet, convert_official_pix2pixhd  # noqa: E402
from lib.paths import git_revision  # noqa: E402
from lib.provenance import environment_info  # noqa: E402
from lib.translation.workload import example_label_ids, timing_config  # noqa: E402

MODELS = ("asapnet", "official-asapnet", "pix2pixhd", "official-pix2pixhd", "spade")  # round order
DEFAULT_MODELS = MODELS[:4]
DTYPES = ("fp32", "bf16")
PAIRS = {"asapnet": "official-asapnet", "pix2pixhd": "official-pix2pixhd"}  # ours -> official, same weights
OFFICIAL_INIT_VARIANCE = 0.5  # official ASAPNet --init_variance (xavier gain), as the golden files
SPADE_INIT_GAIN = 1.0  # SPADE's output std is about 0.2 with it (0.02, its default, gives ~0)
SHIFT = 0.1  # 1-D parameters += SHIFT * N(0, 1)
# Targets (fp32): official pix2pixHD / our ASAPNet >= x; our ASAPNet / official ASAPNet <= y.
TARGETS = {(256, 512): (3.0, 0.7), (1024, 2048): (15.0, 0.35)}
NOTES = ROOT / "benchmarks" / "NOTES.md"
NOTES_BEGIN, NOTES_END = "<!-- against_official:begin -->", "<!-- against_official:end -->"


# ----------------------------------------------------------------------------- arguments


def parse_size(text: str) -> tuple[int, int]:
    """``"256x512"`` -> (256, 512); the height must be 16 k with k a power of two, the width a multiple of k."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not HxW") from None
    k = h // 16
    if h % 16 or k < 1 or k & (k - 1) or w % k or w < h:
        raise argparse.ArgumentTypeError(
            f"size {text!r}: height must be 16 k (k a power of two), width >= height and a multiple of k")
    return h, w


def _comma_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [t for t in text.split(",") if t]
        bad = [t for t in items if t not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(choices)}")
        return list(dict.fromkeys(items))

    return parse


def parse_limits(text: str) -> dict[str | None, float]:
    """``"150,spade=40"`` -> ``{None: 150.0, "spade": 40.0}`` (None: every other model; default 150)."""
    out: dict[str | None, float] = {None: 150.0}
    for item in (t for t in text.split(",") if t):
        name, _, value = item.rpartition("=")
        if name and name not in MODELS:
            raise argparse.ArgumentTypeError(f"--limit-s: unknown model {name!r}; known: {', '.join(MODELS)}")
        try:
            out[name or None] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--limit-s: {item!r} is not SECONDS or MODEL=SECONDS") from None
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--sizes", type=lambda s: [parse_size(t) for t in s.split(",") if t],
                    default="256x256,256x512,512x1024,1024x2048", help="comma list of HxW")
    ap.add_argument("--runs", type=int, default=5, help="timed rounds")
    ap.add_argument("--warmup", type=int, default=1, help="untimed forwards per model (the first keeps the output)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--dtype", type=_comma_list(DTYPES), default="fp32", help="comma list of fp32, bf16")
    ap.add_argument("--models", type=_comma_list(MODELS), default=",".join(DEFAULT_MODELS),
                    help="comma list (timed in this order each round)")
    ap.add_argument("--limit-s", type=parse_limits, default="150,spade=40",
                    help="seconds per forward above which a model is not timed (predicted or first forward); "
                         "MODEL=SECONDS for one model")
    ap.add_argument("--label-nc", type=int, default=35)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--asapnet-repo", default=None, help="official ASAPNet checkout ($ASAPNET_OFFICIAL_REPO)")
    ap.add_argument("--pix2pixhd-repo", default=None, help="official pix2pixHD checkout ($PIX2PIXHD_OFFICIAL_REPO)")
    ap.add_argument("--sync-bn-repo", default=None, help="Synchronized-BatchNorm-PyTorch checkout ($SYNC_BN_REPO)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="output folder")
    ap.add_argument("--stem", default="against_official_cpu", help="output file stem")
    ap.add_argument("--update-notes", action="store_true", help="rewrite the table in benchmarks/NOTES.md")
    return ap


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.runs < 1 or args.warmup < 1:
        ap.error("--runs and --warmup must be >= 1")
    args.sizes = sorted(set(args.sizes), key=lambda hw: hw[0] * hw[1])
    return args


# ----------------------------------------------------------------------------- models


def build_models(
    code: OfficialCode | None,
    names: Sequence[str],
    height: int,
    width: int,
    *,
    label_nc: int = 35,
    seed: int = 0,
    overrides: dict[str, dict] | None = None,
) -> tuple[dict[str, torch.nn.Module], dict[str, list[str]]]:
    """The generators of ``names`` for one size; ours hold the official generators' weights.

    Args:
        code: the official code (needed for any name but ``spade``).
        names: a subset of :data:`MODELS`.
        overrides: per our model name, config fields over :func:`timing_config` (the official
            options follow them), e.g. narrower widths for a quick test.

    Returns:
        ``({name: module in eval mode}, {official name: the argv given to its option parser})``.
    """
    overrides = overrides or {}
    models: dict[str, torch.nn.Module] = {}
    argvs: dict[str, list[str]] = {}
    for ours, official in PAIRS.items():
        if ours not in names and official not in names:
            continue
        if code is None:
            raise OfficialCodeMissing(f"{ours} and {official} need the official code")
        cfg = timing_config(ours, height, label_nc, overrides.get(ours))
        if ours == "asapnet":
            argv = asapnet_argv(cfg, width, init_variance=OFFICIAL_INIT_VARIANCE)
            net = code.asapnet(argv, seed=seed)
            convert = convert_official_asapnet
        else:
            argv = pix2pixhd_argv(cfg)
            net = code.pix2pixhd(argv, seed=seed)
            convert = convert_official_pix2pixhd
        randomise_(net, seed=seed, shift=SHIFT)
        model = build(ours, cfg).eval()
        model.load_state_dict(convert(net.state_dict()), strict=True)
        if official in names:
            models[official], argvs[official] = net, argv
        if ours in names:
            models[ours] = model
    if "spade" in names:
        torch.manual_seed(seed)
        spade_cfg = timing_config("spade", height, label_nc, {"init_gain": SPADE_INIT_GAIN, **overrides.get("spade", {})})
        models["spade"] = randomise_(build("spade", spade_cfg).eval(), seed=seed, shift=SHIFT)
    return {n: models[n] for n in names if n in models}, argvs


def forward_fns(models: dict[str, torch.nn.Module], onehot: torch.Tensor, edge: torch.Tensor | None) -> dict[str, Callable]:
    """Zero-argument forwards returning the image: ours ``model(onehot, edge)``; the official
    ones on ``cat([onehot, edge], 1)`` (ASAPNet's returns ``(image, params)``: the image)."""
    x = onehot if edge is None else torch.cat([onehot, edge], 1)  # (1, label_nc + 1, H, W)
    fns = {}
    for name, m in models.items():
        if name == "official-asapnet":
            fns[name] = lambda m=m: m(x)[0]
        elif name.startswith("official-"):
            fns[name] = lambda m=m: m(x)
        else:
            fns[name] = lambda m=m: m(onehot, edge)
    return fns


def with_dtype(fn: Callable, dtype: str) -> Callable:
    """``fn`` under bf16 CPU autocast for ``"bf16"``; as is for ``"fp32"``."""
    if dtype == "fp32":
        return fn

    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fn()

    return run


def psnr01(test: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR (dB) of ``test`` against ``reference``, both in [-1, 1] mapped to [0, 1] (peak 1)."""
    mse = float((((test.float() - reference.float()) / 2) ** 2).mean())  # (x + 1) / 2 differences
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


# ----------------------------------------------------------------------------- measurement


def bf16_note() -> str | None:
    """None when bf16 can be timed on this CPU, else why not."""
    if cpu_bf16_flags():
        return None
    return "bf16 skipped: the CPU has neither avx512_bf16 nor amx_bf16 (/proc/cpuinfo), so bf16 runs emulated"


def run_size(code, args, h: int, w: int, dtypes: list[str], history: dict, skipped: dict) -> list[dict]:
    """Times every (model, dtype) at one size, interleaved; one row each (see module docstring).

    ``history[(name, dtype)]`` = (pixels, median ms) of the last size timed; ``skipped`` holds
    the notes of units not timed any more (both are updated).
    """
    names = list(args.models)
    models, argvs = build_models(code, names, h, w, label_nc=args.label_nc, seed=args.seed)
    ids = example_label_ids(h, w, label_nc=args.label_nc, seed=args.seed)
    onehot = one_hot(ids, args.label_nc)  # (1, label_nc, H, W)
    edge = instance_edges(ids).unsqueeze(1)  # (1, H, W) -> (1, 1, H, W): every model here takes edges
    fns = forward_fns(models, onehot, edge)
    rows: dict[tuple[str, str], dict] = {}
    outputs: dict[tuple[str, str], torch.Tensor] = {}
    timed: dict[tuple[str, str], Callable] = {}
    for dtype in dtypes:
        for name in names:
            unit = (name, dtype)
            row = rows[unit] = {"height": h, "width": w, "size": f"{h}x{w}", "dtype": dtype, "model": name,
                                "code": "official" if name.startswith("official-") else "ours",
                                "threads": torch.get_num_threads(),
                                "params": int(sum(p.numel() for p in models[name].parameters())),
                                "official_argv": " ".join(argvs.get(name, []))}
            if unit in skipped:
                row["note"] = skipped[unit]
                continue
            limit = args.limit_s.get(name, args.limit_s[None])
            if unit in history:
                pixels, ms = history[unit]
                predicted = ms / 1e3 * h * w / pixels
                if predicted > limit:
                    row["note"] = skipped[unit] = f"skipped: predicted {predicted:.0f} s > limit {limit:g} s"
                    continue
            fn = with_dtype(fns[name], dtype)
            with torch.inference_mode():
                t0 = time.perf_counter()
                outputs[unit] = fn().float()
                row["first_forward_ms"] = (time.perf_counter() - t0) * 1e3
            if row["first_forward_ms"] / 1e3 > limit:
                row["note"] = skipped[unit] = f"skipped: first forward {row['first_forward_ms'] / 1e3:.0f} s > limit {limit:g} s"
                continue
            timed[unit] = fn
            for _ in range(args.warmup - 1):
                time_forward(fn, device="cpu", warmup=0, runs=1)
    times: dict[tuple[str, str], list[float]] = {u: [] for u in timed}
    for _ in range(args.runs):
        for unit, fn in timed.items():  # interleaved: every (model, dtype) once per round
            times[unit].append(time_forward(fn, device="cpu", warmup=0, runs=1)["median_ms"])
    for unit, t in times.items():
        rows[unit].update({"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)),
                           "min_ms": float(min(t)), "runs": len(t), "times_ms": " ".join(f"{v:.1f}" for v in t)})
        history[unit] = (h * w, rows[unit]["median_ms"])
    for (name, dtype), row in rows.items():
        out = outputs.get((name, dtype))
        if out is None:
            continue
        row["output_std"] = float(out.std())
        pair = PAIRS.get(name) or next((o for o, f in PAIRS.items() if f == name), None)
        if pair is not None and (pair, dtype) in outputs:
            row["max_abs_diff_vs_pair"] = float((out - outputs[(pair, dtype)]).abs().max())
        if dtype != "fp32":
            ref = outputs.get((name, "fp32"))
            if ref is None and "fp32" not in dtypes:  # bf16 only: the fp32 output for the PSNR, untimed
                with torch.inference_mode():
                    ref = fns[name]().float()
            if ref is not None:  # None: fp32 was over its time limit here
                row["psnr_vs_fp32_db"] = psnr01(out, ref)
    return list(rows.values())


# ----------------------------------------------------------------------------- results


def add_ratios(rows: list[dict]) -> list[dict]:
    """Adds ``time_vs_official`` (ours / official of the same architecture) and
    ``speedup_vs_official_pix2pixhd`` (official pix2pixHD / this) per size and dtype."""
    by = {(r["size"], r["dtype"], r["model"]): r for r in rows}
    for r in rows:
        ms = r.get("median_ms")
        if not ms:
            continue
        official = by.get((r["size"], r["dtype"], PAIRS.get(r["model"], "")), {}).get("median_ms")
        if official:
            r["time_vs_official"] = ms / official
        p2p = by.get((r["size"], r["dtype"], "official-pix2pixhd"), {}).get("median_ms")
        if p2p:
            r["speedup_vs_official_pix2pixhd"] = p2p / ms
    return rows


def check_targets(rows: list[dict]) -> list[str]:
    """One line per target that the fp32 rows allow to check, ending in PASS or MISS."""
    by = {(r["height"], r["width"], r["model"]): r for r in rows if r["dtype"] == "fp32"}
    lines = []
    for (h, w), (speedup, ratio) in TARGETS.items():
        ours = by.get((h, w, "asapnet"), {})
        if ours.get("speedup_vs_official_pix2pixhd") is not None:
            v = ours["speedup_vs_official_pix2pixhd"]
            lines.append(f"{h}x{w}: official pix2pixHD / our ASAPNet = {v:.2f}x (target >= {speedup}x): "
                         f"{'PASS' if v >= speedup else 'MISS'}")
        if ours.get("time_vs_official") is not None:
            v = ours["time_vs_official"]
            lines.append(f"{h}x{w}: our ASAPNet / official ASAPNet = {v:.2f}x (target <= {ratio}x): "
                         f"{'PASS' if v <= ratio else 'MISS'}")
    return lines


def _fmt_ms(v) -> str:
    return "-" if v is None else (f"{v / 1e3:.2f} s" if v >= 1e3 else f"{v:.0f} ms")


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def markdown_table(rows: list[dict]) -> str:
    """One table row per size and dtype: medians, the ratios of the targets, output differences, bf16 PSNR."""
    by = {(r["size"], r["dtype"], r["model"]): r for r in rows}
    keys = list(dict.fromkeys((r["size"], r["dtype"]) for r in rows))
    head = ("| size | dtype | ASAPNet ours | ASAPNet official | ours / official | pix2pixHD ours | pix2pixHD official "
            "| official pix2pixHD / our ASAPNet | SPADE ours | max abs diff ASAPNet, pix2pixHD | PSNR vs fp32 (dB) |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for size, dtype in keys:
        g = lambda m, k: by.get((size, dtype, m), {}).get(k)  # noqa: E731
        psnr = ", ".join(f"{m.replace('official-', 'off. ')} {g(m, 'psnr_vs_fp32_db'):.1f}" for m in MODELS
                         if g(m, "psnr_vs_fp32_db") is not None) or "-"
        lines.append(
            f"| {size} | {dtype} | {_fmt_ms(g('asapnet', 'median_ms'))} | {_fmt_ms(g('official-asapnet', 'median_ms'))} "
            f"| {_fmt(g('asapnet', 'time_vs_official'), '.2f')} | {_fmt_ms(g('pix2pixhd', 'median_ms'))} "
            f"| {_fmt_ms(g('official-pix2pixhd', 'median_ms'))} | {_fmt(g('asapnet', 'speedup_vs_official_pix2pixhd'), '.2f')} "
            f"| {_fmt_ms(g('spade', 'median_ms'))} | {_fmt(g('asapnet', 'max_abs_diff_vs_pair'), '.1e')}, "
            f"{_fmt(g('pix2pixhd', 'max_abs_diff_vs_pair'), '.1e')} | {psnr} |")
    notes = sorted({f"{r['model']} {r['dtype']} {r['size']}: {r['note']}" for r in rows if r.get("note")})
    return "\n".join(lines + [f"- {n}" for n in notes])


CSV_COLUMNS = ("size", "height", "width", "dtype", "model", "code", "threads", "median_ms", "p90_ms", "min_ms", "runs",
               "first_forward_ms", "time_vs_official", "speedup_vs_official_pix2pixhd", "max_abs_diff_vs_pair",
               "output_std", "psnr_vs_fp32_db", "params", "times_ms", "official_argv", "note")


def csv_text(rows: list[dict]) -> str:
    """The rows as CSV, columns :data:`CSV_COLUMNS` (empty where a value does not apply)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def replace_notes_block(text: str, block: str) -> str:
    """``text`` with everything between the ``against_official`` markers replaced by ``block``.

    Raises:
        ValueError: the markers are missing (both are named).
    """
    i, j = text.find(NOTES_BEGIN), text.find(NOTES_END)
    if i < 0 or j < i:
        raise ValueError(f"benchmarks/NOTES.md has no {NOTES_BEGIN} ... {NOTES_END} block")
    return text[: i + len(NOTES_BEGIN)] + "\n" + block.strip() + "\n" + text[j:]


def _git_commit(path: Path | None) -> str | None:
    if path is None:
        return None
    proc = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
    return (proc.stdout.strip() or None) if proc.returncode == 0 else None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        repos = resolve_repos(args.asapnet_repo, args.pix2pixhd_repo, args.sync_bn_repo)
    except OfficialCodeMissing as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dtypes = list(args.dtype)
    skip_note = bf16_note() if "bf16" in dtypes else None
    if skip_note:
        dtypes.remove("bf16")
        print(skip_note)
    code = OfficialCode(repos)
    rows: list[dict] = []
    history: dict = {}
    skipped: dict = {}
    for h, w in args.sizes:
        t0 = time.perf_counter()
        new = add_ratios(run_size(code, args, h, w, dtypes, history, skipped))
        rows += new
        print(markdown_table(new), f"\n({h}x{w}: {time.perf_counter() - t0:.0f} s)\n", flush=True)
    targets = check_targets(rows)
    table = markdown_table(rows)
    print(table, "\n\ntargets:\n" + "\n".join(targets))
    env = environment_info("cpu") | {"bf16_cpu_flags": sorted(cpu_bf16_flags())}
    meta = {"environment": env, "git_revision": git_revision(), "args": {k: v for k, v in vars(args).items()},
            "official": {"asapnet": str(repos.asapnet), "asapnet_commit": _git_commit(repos.asapnet),
                         "pix2pixhd": str(repos.pix2pixhd), "pix2pixhd_commit": _git_commit(repos.pix2pixhd),
                         "sync_bn": str(repos.sync_bn) if repos.sync_bn else None},
            "bf16_note": skip_note}
    out = Path(args.out)
    write_text(out / f"{args.stem}.csv", csv_text(rows))
    write_json(out / f"{args.stem}.json", {"rows": rows, "targets": targets, "table": table, **meta})
    print(f"\nwrote {out / (args.stem + '.csv')} and {out / (args.stem + '.json')}")
    if args.update_notes:
        env_line = (f"{env.get('cpu_model')}, {env['threads']} threads, torch {env['torch_version']}, "
                    f"CPU flags: {', '.join(env.get('cpu_features') or []) or 'none of note'}; "
                    f"`{' '.join(['python benchmarks/against_official.py', *(argv if argv is not None else sys.argv[1:])])}`")
        write_text(NOTES, replace_notes_block(NOTES.read_text(), f"{env_line}\n\n{table}\n\n" + "\n".join(f"- {t}" for t in targets)))
        print(f"updated {NOTES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
