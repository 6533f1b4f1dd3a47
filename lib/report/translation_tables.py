"""The label -> photo tables as the report shows them: split to fit the page, rounded, no NaN cells,
each time with its run-to-run spread, and the captions that say where each number was measured.

Each function formats a table of :mod:`lib.report.translation` (which holds the numbers and is
tested on them) or a benchmark's results file for display: text cells, integers for milliseconds,
:data:`MISSING` with the reason in the cell or the caption where a value does not exist.
"""
from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from lib.report.common import MISSING, format_frame, format_number, hardware_text, is_finite, to_float
from lib.report.machines import NBSP, machine_text, run_times, spread, spread_note, time_cell, where_text
from lib.report.trained_speed import REFERENCE, study_timing, trained_rows, trained_speedups
from lib.report.translation import MODEL_LABELS, PAPER_SIZE, speedup_table, translation_table
from lib.translation.timing import speedups

__all__ = [
    "QUALITY_NOTE",
    "quality_table",
    "trained_time_display",
    "trained_time_caption",
    "timing_caption",
    "speed_table",
    "speed_caption",
    "asapnet_scaling_note",
    "speedup_display",
    "official_table",
    "official_display",
    "official_caption",
    "benchmark_pairs",
    "benchmark_caption",
]

QUALITY_NOTE = (
    "FID and KID intervals: 95% bootstrap percentile intervals, real and generated images resampled independently; "
    "mIoU intervals: over the test images. The intervals resample the test images, not training runs: each model was "
    "trained once, so they say how much a number moves with the test images drawn, not how much another training run "
    "(another seed) would move it. The `real photos` row: FID of as many real training photos against the real test "
    "photos (what a perfect generator scores at this N) and the segmenter's mIoU on the real test photos; it has no "
    "generator, hence no parameters or time (`–`). `params` and `ms / image`: the generator as trained here (batch 1, "
    "median, all cores, fp32, at the trained size).")  # below each study's quality table

OFFICIAL_MODELS = {"asapnet": "ASAPNet ours", "official-asapnet": "ASAPNet official", "pix2pixhd": "pix2pixHD ours",
                   "official-pix2pixhd": "pix2pixHD official"}  # the pairs compared (the file's SPADE rows: timing only)


def quality_table(eval_json: Mapping[str, Any], timing: pd.DataFrame, dataset: str | None = None) -> pd.DataFrame:
    """The quality half of :func:`translation_table`, for display: one row per evaluated generator
    and the real photos; N, FID, KID (final and smoothed), mIoU, pixel accuracy, and the generator as trained (params,
    median ms at the trained size). Text cells; :data:`MISSING` where a value does not exist. ``dataset``:
    the study whose trained generators' times fill the last columns (fp32, its evaluated size:
    :func:`lib.report.trained_speed.study_timing`); ``None``: every ``trained`` row of the file."""
    if dataset is not None:
        timing = study_timing(timing, dataset, eval_json.get("meta", {}).get("size"))
    full = translation_table(eval_json, timing)
    evaluated = [MODEL_LABELS.get(r["model"], r["model"]) for r in eval_json.get("rows", [])]
    t = full.loc[[i for i in full.index if i in evaluated]]
    size = next((s for s in t["trained size"] if s != MISSING), "?")
    cols = {"N": "N", "FID [95% CI]": "FID [95% CI]", "KID [95% CI]": "KID [95% CI]",
            "KID, smoothed final": "KID, last 3 curve points", "mIoU [95% CI]": "mIoU [95% CI]",
            "pixel accuracy": "pixel acc.", "params (M), as trained": "params (M)",
            "time as trained (ms)": f"ms / image ({size})"}
    out = format_frame(t[list(cols)].rename(columns=cols), {"N": 0, "KID": 4, "pixel": 3, "params": 2, "ms": 0})
    for c in [c for c in out.columns if "CI" in c]:  # a value and its interval stay on one line
        out[c] = [v.replace(" [", NBSP + "[").replace(", ", "," + NBSP) for v in out[c]]
    out.index.name = None
    return out


def trained_time_display(timing: pd.DataFrame, dataset: str, size: Any = None) -> pd.DataFrame:
    """The study's trained generators as the timing stage timed them, for display: one row per size and
    precision (the study size first, then the paper's 256x512), one column per generator (median ms with
    its spread, :func:`lib.report.machines.time_cell`; a cell not timed: ``– (reason)``) and the speed-up
    of ASAPNet over each other generator (two medians of the same interleaved run). Empty without rows
    of the study (:func:`lib.report.trained_speed.trained_rows`)."""
    rows = trained_rows(timing, dataset, size)
    if rows.empty:
        return pd.DataFrame()
    models = list(dict.fromkeys(rows["model"]))
    models = [m for m in models if m == REFERENCE] + [m for m in models if m != REFERENCE]
    ups = trained_speedups(timing, dataset, size)
    out = []
    for (kind, h, w, dtype), g in rows.groupby(["kind", "height", "width", "dtype"], sort=False):
        line: dict[str, Any] = {"size": f"{int(h)}x{int(w)}" + (" (as evaluated)" if kind == "trained" else ""),
                                "precision": dtype}
        cells = {r["model"]: r for _, r in g.iterrows()}
        for m in models:
            r = cells.get(m)
            line[f"{MODEL_LABELS.get(m, m)} (ms)"] = (MISSING if r is None else time_cell(r) if r["status"] == "ok"
                                                     else f"{MISSING} ({str(r['note']).split(':')[0]})")
        for m in models[1:]:
            u = ups[(ups["kind"] == kind) & (ups["height"] == h) & (ups["width"] == w) & (ups["dtype"] == dtype)
                    & (ups["baseline"] == m)]
            line[f"{MODEL_LABELS.get(m, m)} / {MODEL_LABELS.get(REFERENCE)}"] = (
                format_number(u["speedup"].iloc[0], 2) if len(u) else MISSING)
        out.append(line)
    return pd.DataFrame(out).set_index(["size", "precision"])


def trained_time_caption(timing_json: Mapping[str, Any], timing: pd.DataFrame, dataset: str, size: Any = None) -> str:
    """Where :func:`trained_time_display`'s times come from: the timing stage's trained-generator
    protocol, its machine and commit, and what the 256x512 rows' weights are."""
    meta = timing_json.get("meta", {})
    rows = trained_rows(timing, dataset, size)
    ok = rows[rows["status"] == "ok"]
    kinds = [spread(r)[0] for _, r in ok.iterrows()]
    runs = f"{int(ok['runs'].min())}-{int(ok['runs'].max())}" if len(ok) and ok["runs"].notna().all() else ""
    protocol = timing_json.get("trained_protocol") or (
        "the generators as trained, batch 1, all cores, the timing stage's protocol (this file predates the "
        "interleaved run of every study's generators).")
    resized = ("" if not (rows["kind"] == "trained_resized").any() else
               " At 256x512 the same architecture is rebuilt for that height (pix2pixHD keeps all its trained weights; "
               "ASAPNet the tensors whose shapes fit, the rest random: time does not depend on the values).")
    return (f"*Times: {protocol} Measured on {hardware_text(meta.get('hardware', {}))}, timing stage commit "
            f"{meta.get('git_revision', '?')}.{resized} Each speed-up divides two medians of this one run. "
            f"{spread_note(kinds, runs)}*")


def timing_caption(meta: Mapping[str, Any]) -> str:
    """One line stating where the timing stage's times come from: scale, machine (CPU model and
    features), threads settings, torch version, protocol settings and commit.

    Args:
        meta: the ``meta`` block of ``translation_timing.json``.
    """
    hw = meta.get("hardware", {})
    cfg = meta.get("config", {})
    threads = [int(s.get("threads", 0)) for s in cfg.get("settings", [])]
    cores = meta.get("cpu_cores", hw.get("cpu_count", "?"))
    settings = ", ".join(f"all cores ({cores} threads)" if not t else f"{t} thread{'s' if t > 1 else ''}" for t in threads)
    return (
        f"scale: {meta.get('scale')}; machine: {hardware_text(hw)}; threads settings: {settings or '?'}; "
        f"torch {hw.get('torch_version', '?')}; batch 1, {cfg.get('dtype', '?')}, random weights, warm-up {cfg.get('warmup', '?')}, "
        f"{cfg.get('min_runs', '?')}-{cfg.get('max_runs', '?')} timed runs per cell; commit {meta.get('git_revision', '?')}."
    )


def _all_cores(timing: pd.DataFrame) -> pd.DataFrame:
    """The paper-config rows of the all-cores setting (``threads_setting`` 0), TF32 off or not applicable."""
    return timing[(timing["kind"] == "paper_config") & (timing["threads_setting"] == 0) & timing["tf32"].isin(["-", "off"])]


def _time_cell(row: Mapping[str, Any]) -> str:
    """A timing-stage cell: the median with its spread (:func:`lib.report.machines.time_cell`), or
    ``– (pred. X s)`` for a skipped cell (the predicted time of one forward pass)."""
    if row["status"] == "ok":
        return time_cell(row)
    return f"{MISSING} (pred. {to_float(row['predicted_ms']) / 1e3:.3g} s)"


def speed_table(eval_json: Mapping[str, Any], timing: pd.DataFrame) -> pd.DataFrame:
    """The cost and speed half of :func:`translation_table`, for display: one row per paper-size
    generator; params and GMAC at 256x512 and, per timed size, the median ms of the all-cores setting
    with its spread (:func:`lib.report.machines.time_cell`). A skipped cell reads ``– (pred. X s)``."""
    full = translation_table(eval_json, timing)
    t = full.drop(index=[MODEL_LABELS["real"]], errors="ignore")
    ph, pw = PAPER_SIZE
    out = format_frame(t[["params (M), paper config", f"GMAC {ph}x{pw}, paper config"]], {"params": 1, "GMAC": 1})
    out.columns = ["params (M)", f"GMAC {ph}x{pw}"]
    cells = _all_cores(timing)
    sizes = sorted({(int(h), int(w)) for h, w in zip(cells["height"], cells["width"])}, key=lambda hw: (hw[0] * hw[1], hw))
    labels = {MODEL_LABELS.get(m, m): m for m in cells["model"].unique()}
    for h, w in sizes:
        column = []
        for name in out.index:
            r = cells[(cells["model"] == labels.get(name, name)) & (cells["height"] == h) & (cells["width"] == w)]
            column.append(_time_cell(r.iloc[0]) if len(r) else MISSING)
        out[f"{h}x{w} (ms)"] = column
    out.index.name = None
    return out


def speed_caption(meta: Mapping[str, Any], timing: pd.DataFrame) -> str:
    """What the speed table's times are: the setting they come from, the machine, and their spread."""
    cells = _all_cores(timing)
    ok = cells[cells["status"] == "ok"]
    threads = sorted({int(t) for t in ok["threads"]}) if len(ok) else []
    runs = f"{int(ok['runs'].min())}-{int(ok['runs'].max())}" if len(ok) and ok["runs"].notna().all() else ""
    kinds = [spread(r)[0] for _, r in ok.iterrows()]
    setting = f"the all-cores setting ({', '.join(str(t) for t in threads)} threads)" if threads else "the all-cores setting"
    return (f"*Times: median ms per forward of {setting} on {hardware_text(meta.get('hardware', {}))}; the 1-thread "
            f"setting is in the speed-up table and the figure. {spread_note(kinds, runs)}*")


def asapnet_scaling_note(timing: pd.DataFrame, model: str = "asapnet") -> str:
    """Why ASAPNet's time barely grows with the image size, with the MACs and times of the timing file.

    The architecture (:mod:`lib.models.asapnet`): the low-res stream predicts the MLP parameters on a
    grid of 16 tile rows (tile side = height / 16); a fixed tent filter first downsamples the input by
    tile side / 16 (the learned stride-2 convs do the remaining 16x), so from 256 px height up the
    convolutions see a 256 px-high input and cost the same at every size; only the per-pixel MLP (and
    the cheap tent filter) grows with the pixel count. Empty without two all-cores sizes of ``model``
    of the same aspect ratio, 256 px high or more.
    """
    rows = _all_cores(timing)
    rows = rows[(rows["model"] == model) & (rows["status"] == "ok") & (rows["height"] >= 256)]
    rows = rows.assign(aspect=rows["width"] / rows["height"]).sort_values("megapixels")
    rows = rows[rows["aspect"] == rows["aspect"].value_counts().idxmax()] if len(rows) else rows  # the most sizes
    if len(rows) < 2:
        return ""
    a, b = rows.iloc[0], rows.iloc[1]
    size = lambda r: f"{int(r['height'])}x{int(r['width'])}"  # noqa: E731
    (ka, la, ha), (kb, lb, hb) = spread(a), spread(b)
    overlap = ka is not None and kb is not None and la <= hb and lb <= ha
    what = "interquartile ranges" if ka == kb == "iqr" else "spreads"
    gmacs = ", ".join(f"{to_float(r['gmacs']):.1f} at {size(r)}" for _, r in rows.iterrows() if is_finite(r["gmacs"]))
    return (
        f"**Why ASAPNet's time barely grows with the image size.** Its low-res stream predicts the per-pixel MLPs "
        f"on a grid of 16 tile rows at every size (tile side = height / 16; `lib/models/asapnet.py`, "
        f"`lib/models/lowres.py`): from 256 px "
        f"height up, a fixed tent filter first downsamples the input by height / 256, so its convolutions, most of "
        f"the work, see the same 256 px-high input and cost the same at every size; only the per-pixel MLP grows "
        f"with the pixel count. Its multiply-accumulates grow accordingly ({gmacs} GMAC) while the pixels grow "
        f"{int(b['megapixels'] / a['megapixels'])}x from {size(a)} to {size(b)}, where its time changes by "
        f"x{to_float(b['median_ms']) / to_float(a['median_ms']):.2f} ({time_cell(a)} against {time_cell(b)} ms)"
        + (f"; the two {what} overlap, so the difference is run-to-run noise." if overlap else ".")
    )


def speedup_display(timing: pd.DataFrame) -> pd.DataFrame:
    """:func:`speedup_table` as text: 2 decimals; where the baseline was skipped, ``– (pred. X)``
    with the speed-up predicted from the baseline's predicted time (never a bare NaN)."""
    wide = speedup_table(timing)
    if wide.empty:
        return wide
    s = speedups(timing)
    index = list(wide.index.names)
    pred = s.pivot_table(index=index, columns="size", values="predicted_speedup", aggfunc="first", dropna=False)
    out = wide.astype(object).copy()
    for key in wide.index:
        for size in wide.columns:
            v = wide.loc[key, size]
            p = pred.loc[key, size] if key in pred.index and size in pred.columns else float("nan")
            out.loc[key, size] = (format_number(v, 2) if is_finite(v) else
                                  f"{MISSING} (pred. {to_float(p):.1f})" if is_finite(p) else MISSING)
    out.index = out.index.set_names(["baseline", "device", "threads", "TF32"])
    return out


def official_table(official: pd.DataFrame) -> pd.DataFrame:
    """Ours against the official code, timed interleaved in one process with the same weights
    (``benchmarks/results/against_official_cpu.csv``): one row per size and precision with
    the medians, our ASAPNet's time as a fraction of the official ASAPNet's, the official and our
    pix2pixHD's time over our ASAPNet's (each ratio: two medians of the same run), and the largest
    output difference to the official code."""
    by = {(r["size"], r["dtype"], r["model"]): r for _, r in official.iterrows()}
    rows = []
    for (size, dtype), _ in official.groupby(["size", "dtype"], sort=False):
        def ms(model: str) -> float:
            r = by.get((size, dtype, model))
            return float(r["median_ms"]) if r is not None and pd.notna(r["median_ms"]) else float("nan")

        ours, off = ms("asapnet"), ms("official-asapnet")
        p2p, off_p2p = ms("pix2pixhd"), ms("official-pix2pixhd")
        diff = by.get((size, dtype, "asapnet"))
        rows.append({
            "size": size, "precision": dtype,
            "ASAPNet ours (ms)": ours, "ASAPNet official (ms)": off, "ours / official": ours / off,
            "pix2pixHD ours (ms)": p2p, "pix2pixHD official (ms)": off_p2p,
            "official pix2pixHD / our ASAPNet": off_p2p / ours,
            "our pix2pixHD / our ASAPNet": p2p / ours,
            "max |ours - official| (ASAPNet)": float(diff["max_abs_diff_vs_pair"]) if diff is not None else float("nan"),
        })
    return pd.DataFrame(rows)


def official_display(official: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ours-vs-official results as two tables that fit the page: ``(times, ratios)``.

    ``times``: per size and precision, the median ms of each generator with the interquartile range
    of its timed runs (``times_ms``, :func:`lib.report.machines.time_cell`); ``ratios``: the ratios
    of :func:`official_table` (2 decimals) and the output difference (scientific notation)."""
    t = official_table(official)
    diff = "max |ours - official| (ASAPNet)"
    ratios = format_frame(t[["size", "precision", "ours / official", "our pix2pixHD / our ASAPNet",
                             "official pix2pixHD / our ASAPNet"]], {"/": 2})
    ratios[diff] = [f"{to_float(v):.1e}" if is_finite(v) else MISSING for v in t[diff]]
    ratios = ratios.rename(columns={"ours / official": "our ASAPNet / official ASAPNet"})
    models = [m for m in OFFICIAL_MODELS if m in set(official["model"])]
    rows = []
    for (size, dtype), g in official.groupby(["size", "dtype"], sort=False):
        cells = {r["model"]: r for _, r in g.iterrows()}
        row = {"size": size, "precision": dtype}
        for m in models:
            r = cells.get(m)
            row[f"{OFFICIAL_MODELS[m]} (ms)"] = MISSING if r is None else time_cell(r)
        rows.append(row)
    return pd.DataFrame(rows).set_index(["size", "precision"]), ratios.set_index(["size", "precision"])


def _commit_text(results: Mapping[str, Any], committed_in: str | None) -> str:
    if results.get("git_revision"):
        return f"commit {results['git_revision']}"
    return "commit not recorded in the file" + (f" (the file was committed in `{committed_in}`)" if committed_in else "")


def official_caption(results: Mapping[str, Any], reference_hw: Mapping[str, Any] | None = None,
                     committed_in: str | None = None) -> str:
    """Where the ours-vs-official numbers were measured: machine (CPU model and features, threads),
    torch, rounds, warm-up, precisions and commit, from the results JSON
    (``benchmarks/results/against_official_cpu.json``), and whether that is the timing stage's machine.
    ``committed_in``: the commit that added the file, named where the file records no commit."""
    from lib.report.machines import same_machine

    env, args = results.get("environment", {}), results.get("args", {})
    rows = results.get("rows", [])
    runs = sorted({int(r["runs"]) for r in rows if is_finite(r.get("runs"))})
    has_times = any(len(run_times(r.get("times_ms"))) >= 2 for r in rows)
    same = same_machine(env, reference_hw) if reference_hw else None
    commit = _commit_text(results, committed_in)
    return (
        f"*Measured on {machine_text(env)} ({'the timing stage’s CPU' if same else where_text(same)}), "
        f"torch {env.get('torch_version', '?')}, batch 1, {' and '.join(str(d) for d in args.get('dtype', [])) or '?'}, "
        f"{args.get('warmup', '?')} warm-up run{'' if str(args.get('warmup')) == '1' else 's'}, then "
        f"{'/'.join(str(r) for r in runs) or args.get('runs', '?')} rounds, each round timing every generator once in turn; "
        f"median of the rounds; {commit}. "
        + ("`[a–b]`: interquartile range of the rounds. " if has_times else "No per-round times are recorded, so no spread. ")
        + "Every ratio divides two medians of this one run.*"
    )


def benchmark_pairs(benchmark: pd.DataFrame, timing: pd.DataFrame) -> list[tuple[float, float]]:
    """(speed benchmark median, timing stage median) of every cell both timed in the same setting:
    model (fast path), size, fp32, threads (the evidence of :func:`lib.report.machines.benchmark_machine`)."""
    stage = timing[(timing["kind"] == "paper_config") & (timing["status"] == "ok") & (timing["dtype"] == "fp32")]
    pairs = []
    for _, b in benchmark[(benchmark["dtype"] == "fp32") & (benchmark["impl"].fillna("fast") != "reference")].iterrows():
        r = stage[(stage["model"] == b["model"]) & (stage["height"] == b["height"]) & (stage["width"] == b["width"])
                  & (stage["threads"] == b["threads"])]
        if len(r):
            pairs.append((to_float(b["median_ms"]), to_float(r["median_ms"].iloc[0])))
    return pairs


def benchmark_caption(results: Mapping[str, Any], benchmark: pd.DataFrame, timing: pd.DataFrame,
                      same: bool | None, committed_in: str | None = None) -> str:
    """Where the speed benchmark (``benchmarks/results/translation_speed_cpu.json``) was measured, how it
    compares with the timing stage on a cell both timed, and that it gives no number to the summary
    unless it is the timing stage's machine (``same``: :func:`lib.report.machines.benchmark_machine`)."""
    env = results.get("environment", {})
    pairs = benchmark_pairs(benchmark, timing)
    stage = timing[(timing["kind"] == "paper_config") & (timing["status"] == "ok")]
    evidence = ""
    for _, b in benchmark[(benchmark["dtype"] == "fp32") & (benchmark["impl"].fillna("fast") != "reference")].iterrows():
        r = stage[(stage["model"] == b["model"]) & (stage["height"] == b["height"]) & (stage["width"] == b["width"])
                  & (stage["threads"] == b["threads"])]
        if len(r) and pairs:
            evidence = (f" Its {MODEL_LABELS.get(b['model'], b['model'])} takes {to_float(b['median_ms']):,.0f} ms at "
                        f"{int(b['height'])}x{int(b['width'])} against {to_float(r['median_ms'].iloc[0]):,.0f} ms in the timing stage.")
            break
    use = ("It is the timing stage's machine." if same else
           "So its absolute times are not this page's machine's: the figure draws them for their trend with image size, "
           "and no number of the summary or of the headline metrics comes from it.")
    return (f"Dash-dotted in the figure: the speed benchmark (`benchmarks/translation_speed.py`: the same generators run in "
            f"turn, fp32, including the sizes the timing stage skips), measured on {machine_text(env)}, "
            f"{where_text(same)}; torch {env.get('torch_version', '?')}; {_commit_text(results, committed_in)}.{evidence} {use}")
