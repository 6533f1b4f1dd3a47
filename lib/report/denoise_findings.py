"""The denoising study's answer in words: the findings paragraph of the report, every number read
from the metrics files (``denoise_eval.json``, ``denoise_timing.csv``, the training summaries and
loss CSVs)."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from lib.report import ReportConfig
from lib.report.common import to_float
from lib.report.denoise_front import SIZE, front_findings
from lib.report.denoise_grid import grid_findings
from lib.report.denoise_runs import (
    ASAPNET,
    BM3D,
    GROUPS,
    OFFICIAL_TWIN,
    SET_TITLES,
    ablation_deltas,
    ablation_parents,
    denoise_labels,
    longer_training,
    on_front,
    ordered_runs,
    psnr_intervals,
    psnr_time_points,
    reference_run,
    runs_on,
    twin_run,
)

__all__ = ["LOSS_TREND_FRACTION", "LOSS_STILL_FALLING", "TOP_CHANGES", "loss_trend", "loss_trend_text", "denoise_findings"]

HEADLINE_SIGMA = ReportConfig.headline_sigma  # the default of every ``sigma`` argument below
LOSS_TREND_FRACTION = 0.2  # the end of training a loss trend is read over: this fraction of the steps
LOSS_STILL_FALLING = 0.02  # "still falling": the fitted training loss drops by more than this fraction over that end
TOP_CHANGES = 3  # the largest gains and the largest losses of the ablation that the findings name
# our colour DnCNN-20 "trained much less well than its grey twin": its gap to the official weights of the same
# network exceeds the grey run's gap by more than this (dB); the comparisons against it then say little
TWIN_GAP_MARGIN = 1.0


# ----------------------------------------------------------------------------- training loss at the end

def loss_trend(frame: pd.DataFrame, fraction: float = LOSS_TREND_FRACTION) -> dict | None:
    """Is a run's training loss still falling at the end? A straight line fitted to the log loss against
    the step over the last ``fraction`` of the steps (from the first row at the final learning rate
    when the ``lr`` column changes inside that window, so a learning-rate drop is not read as a trend).

    Args:
        frame: a run's ``losses_denoise_<run>.csv`` (``step``, ``loss``: the mean since the row before;
            optionally ``lr``).

    Returns:
        ``dict(drop, se, first_step, last_step, n)``: the fitted relative drop of the loss from the
        window's first to its last step (``1 - exp(slope * span)``, positive: falling), its standard
        error (from the fit's residuals) and the window; None with fewer than 4 rows in it.
    """
    f = frame[frame["loss"] > 0].sort_values("step")
    if len(f) < 4:
        return None
    steps = f["step"].to_numpy(dtype=float)
    start = steps[-1] - fraction * (steps[-1] - steps[0])
    if "lr" in f:
        lr = f["lr"].to_numpy(dtype=float)
        changed = np.flatnonzero(lr[1:] != lr[:-1]) + 1  # rows where the learning rate differs from the row before
        if len(changed):
            start = max(start, steps[changed[-1]])
    keep = steps >= start
    x, y = steps[keep], np.log(f["loss"].to_numpy(dtype=float)[keep])  # (n,), (n,)
    if len(x) < 4:
        return None
    dx = x - x.mean()
    slope = float((dx * (y - y.mean())).sum() / (dx**2).sum())
    resid = y - y.mean() - slope * dx
    se_slope = float(np.sqrt((resid**2).sum() / (len(x) - 2) / (dx**2).sum()))
    span = x[-1] - x[0]
    drop = 1.0 - float(np.exp(slope * span))
    return {"drop": drop, "se": span * se_slope * float(np.exp(slope * span)), "first_step": int(x[0]),
            "last_step": int(x[-1]), "n": int(len(x))}


def loss_trend_text(frame: pd.DataFrame | None) -> str:
    """``still falling (-3.1% ± 0.4% over steps 640-782)``, ``flat (...)`` or ``no clear trend (...)``:
    falling when the fitted drop (:func:`loss_trend`) exceeds :data:`LOSS_STILL_FALLING` and twice its
    standard error, flat when it does not exceed the threshold; empty without a loss curve."""
    t = loss_trend(frame) if frame is not None else None
    if t is None:
        return ""
    numbers = f"{-100 * t['drop']:+.1f}% ± {100 * t['se']:.1f}% over steps {t['first_step']}-{t['last_step']}"
    if t["drop"] > LOSS_STILL_FALLING and t["drop"] > 2 * t["se"]:
        return f"still falling ({numbers})"
    if t["drop"] <= LOSS_STILL_FALLING:
        return f"flat ({numbers})"
    return f"no clear trend ({numbers})"


# ----------------------------------------------------------------------------- sentences

def _ms(timing: pd.DataFrame, size: tuple[int, int]) -> dict[str, float]:
    h, w = size
    t = timing[(timing["height"] == h) & (timing["width"] == w)]
    return {m: float(v) for m, v in zip(t["model"], t["median_ms"])}


def _ci(rec: Mapping[str, Any]) -> str:
    """``+0.21 dB [+0.12, +0.30]`` with ``(interval includes 0)`` when it does."""
    lo, hi = to_float(rec["ci_low"]), to_float(rec["ci_high"])
    return f"{to_float(rec['mean_diff']):+.2f} dB [{lo:+.2f}, {hi:+.2f}]" + (" (interval includes 0)" if lo <= 0 <= hi else "")


def _change_findings(eval_json: Mapping[str, Any], ms: Mapping[str, float], set_name: str, sigma: float,
                     size: tuple[int, int]) -> list[str]:
    """(a, b) What each ASAPNet change buys at ``sigma`` against the run it changes (``ablation_delta``):
    the largest gains and losses and every filter / hybrid row, each with its time and its parent's."""
    deltas = ablation_deltas(eval_json, set_name, sigma)
    longer = set(longer_training(eval_json))
    rows = [(g, r["run"]) for g, r in ordered_runs(eval_json, set_name)
            if r.get("model") == ASAPNET and r["run"] not in longer and r["run"] in deltas]
    if not rows:
        return []

    def item(run: str) -> str:
        rec = deltas[run]
        parent = rec["model_b"]
        times = f"; {ms[run]:.0f} ms vs {ms[parent]:.0f} ms" if run in ms and parent in ms else ""
        return f"{run} over {parent}: {_ci(rec)}{times}"

    ranked = sorted((run for _, run in rows), key=lambda r: to_float(deltas[r]["mean_diff"]))
    gains = [r for r in reversed(ranked) if to_float(deltas[r]["mean_diff"]) > 0][:TOP_CHANGES]
    losses = [r for r in ranked if to_float(deltas[r]["mean_diff"]) < 0][:TOP_CHANGES]
    rec = deltas[ranked[0]]
    h, w = size
    out = [f"**What each change buys** at σ={sigma:g} on {SET_TITLES.get(set_name, set_name)}: each row against the run it "
           f"changes, paired mean PSNR difference over {rec['n_images']} images with its {100 * to_float(rec['level']):.0f}% "
           f"bootstrap interval; then the row's and its parent's time per {w}x{h} image."]
    if gains:
        out.append("Largest gains: " + "; ".join(item(r) for r in gains) + ".")
    if losses:
        out.append("Largest losses: " + "; ".join(item(r) for r in losses) + ".")
    filters = [run for g, run in rows if g in (GROUPS[1], GROUPS[2])]
    rest = [r for r in filters if r not in gains and r not in losses]
    if rest:
        out.append(f"The {'other ' if len(rest) < len(filters) else ''}predicted-filter rows (a per-tile filter as in KPN / "
                   "MalleConv, sliced bilinearly or from a bilateral grid as in HDRNet) and hybrid rows (the plain CNN's "
                   "first layers as the front): " + "; ".join(item(r) for r in rest) + ".")
    return out


def _longer_findings(eval_json: Mapping[str, Any], timing: pd.DataFrame, losses: Mapping[str, pd.DataFrame],
                     set_name: str, size: tuple[int, int], sigma: float) -> list[str]:
    """(c) Does more training change the verdict? Each longer-training run against its shorter run (paired
    delta), whether it is on the Pareto front of every model where the shorter run was or was not (at
    equal budget), its loss trend at the end, and the gap between the best ASAPNet run and the plain CNN
    the verdict rests on when both were trained longer."""
    longer = [r for r in longer_training(eval_json) if r in {x["run"] for x in runs_on(eval_json, set_name)}]
    if not longer:
        return []
    parents, deltas = ablation_parents(eval_json), ablation_deltas(eval_json, set_name, sigma)
    change = {r["run"]: r.get("change", "") for r in eval_json.get("runs", [])}
    points = psnr_time_points(eval_json, timing, set_name, size)
    points = points[points["sigma"] == float(sigma)]
    short = points[~points["longer"]].copy()
    short["on_front"] = on_front(short)  # the front without the longer-training runs: equal budget
    front_all, front_short = dict(zip(points["model"], points["on_front"])), dict(zip(short["model"], short["on_front"]))
    psnr = dict(zip(points["model"], points["psnr"]))
    out = []
    for run in longer:
        parent = parents.get(run)
        text = f"{run} ({change.get(run) or 'longer training'})"
        if run in deltas:
            text += f": {_ci(deltas[run])} over {parent}"
        elif run in psnr and parent in psnr:
            text += f": {psnr[run] - psnr[parent]:+.2f} dB over {parent} (mean over the same images; no interval in the file)"
        if run in front_all and parent in front_short:
            was, now = front_short[parent], front_all[run]
            text += (f"; {parent} is {'on' if was else 'off'} the Pareto front of the equal-budget models, {run} "
                     f"{'on' if now else 'off'} that of all models")
            text += " (moves onto it)" if now and not was else " (moves off it)" if was and not now else ""
        trends = [f"{name} {loss_trend_text(losses.get(name))}" for name in (parent, run) if loss_trend_text(losses.get(name))]
        if trends:
            text += f"; training loss at the end: {'; '.join(trends)}"
        out.append(text)
    sentences = [f"**More training** (σ={sigma:g}): " + ". ".join(out) + "."]
    meta = eval_json.get("meta", {})
    best, rival = meta.get("best_variant"), meta.get("rival_cnn")
    best_long = next((r for r in longer if parents.get(r) == best), None)
    rival_long = next((r for r in longer if parents.get(r) == rival), None)
    if best_long and rival_long and all(m in psnr for m in (best, rival, best_long, rival_long)):
        before, after = psnr[best] - psnr[rival], psnr[best_long] - psnr[rival_long]
        flips = (before > 0) != (after > 0)
        sentences.append(f"The best ASAPNet run against the plain CNN the verdict rests on: {before:+.2f} dB ({best} vs {rival}) "
                         f"at the shared budget, {after:+.2f} dB ({best_long} vs {rival_long}) with both trained longer "
                         f"(means over the same images): more training {'changes' if flips else 'does not change'} "
                         "which of the two is better.")
    return sentences


def _twin_gap(eval_json: Mapping[str, Any], set_name: str, sigma: float) -> tuple[str, str, float] | None:
    """(our DnCNN-20 on ``set_name``, the official weights of its network, official minus ours in dB at
    ``sigma``), or None where either is missing."""
    psnr = {r["model"]: to_float(r["psnr"]) for r in eval_json.get("summary", [])
            if r["set"] == set_name and to_float(r["sigma"]) == float(sigma)}
    ours = reference_run(runs_on(eval_json, set_name))
    official = next((m for m in OFFICIAL_TWIN if m in psnr and twin_run(runs_on(eval_json, set_name), m) == ours), None)
    if ours not in psnr or official is None:
        return None
    return ours, official, psnr[official] - psnr[ours]


def _color_findings(eval_json: Mapping[str, Any], ms: Mapping[str, float], color_set: str, sigma: float,
                    gray_set: str = "bsd68") -> list[str]:
    """(e) The colour runs on ``color_set`` at ``sigma``: our CDnCNN-20, the ASAPNet-derived colour runs (each
    against CDnCNN-20 on the same images, with the time ratio), the official CDnCNN-B and CBM3D (on the
    images it ran on, with our runs on the same images where it did not run on all). Then how far our
    CDnCNN-20 is from the official weights of its network, beside the same gap of the grey run on
    ``gray_set``: a colour gap larger by more than :data:`TWIN_GAP_MARGIN` says the colour run trained
    much less well, and that the comparisons against it say little."""
    rows = [r for r in eval_json.get("summary", []) if r["set"] == color_set and to_float(r["sigma"]) == float(sigma)]
    if not rows:
        return []
    psnr = {r["model"]: to_float(r["psnr"]) for r in rows}
    runs = runs_on(eval_json, color_set)
    ref = reference_run(runs)
    labels, intervals = denoise_labels(eval_json), psnr_intervals(eval_json)
    n = max(int(r["n_images"]) for r in rows)

    def cell(model: str) -> str:
        ci = intervals.get((color_set, float(sigma), model), {})
        band = f" [{to_float(ci['ci_low']):.2f}, {to_float(ci['ci_high']):.2f}]" if ci else ""
        time = ms.get(twin_run(runs, model) if model in OFFICIAL_TWIN else model)
        return f"{labels.get(model, model)} {psnr[model]:.2f} dB{band}" + (f" in {time:.0f} ms" if time is not None else "")

    parts = []
    if ref in psnr:
        parts.append(cell(ref))
    for r in runs:
        run = r["run"]
        if r.get("model") != ASAPNET or run not in psnr:
            continue
        vs = ""
        if ref in psnr:
            vs = f", {psnr[run] - psnr[ref]:+.2f} dB vs {labels.get(ref, ref)}"
            if run in ms and ref in ms:
                vs += f" at {ms[ref] / ms[run]:.1f}x its speed"
        parts.append(f"{cell(run)}{vs}")
    official = next((m for m in OFFICIAL_TWIN if m in psnr and m.startswith("official_c")), None)
    if official:
        parts.append(f"the {cell(official)}")
    if BM3D in psnr:
        parts.append(f"CBM3D {psnr[BM3D]:.2f} dB")
    text = (f"**Colour** ({SET_TITLES.get(color_set, color_set)}, σ={sigma:g}, {n} images; in brackets the 95% bootstrap "
            f"interval of the mean): " + "; ".join(parts) + ".")
    subset = {r["model"]: r for r in eval_json.get("bm3d_subset", [])
              if r["set"] == color_set and to_float(r["sigma"]) == float(sigma)}
    if BM3D not in psnr and BM3D in subset:
        same = [f"{labels.get(m, m)} {to_float(subset[m]['psnr']):.2f} dB" for m in [ref, *(r["run"] for r in runs
                if r.get("model") == ASAPNET), official] if m in subset]
        text += (f" CBM3D ran on the first {subset[BM3D]['n_images']} images only: {to_float(subset[BM3D]['psnr']):.2f} dB, "
                 f"against {', '.join(same)} on the same images." if same else
                 f" CBM3D ran on the first {subset[BM3D]['n_images']} images only: {to_float(subset[BM3D]['psnr']):.2f} dB.")
    color_gap, gray_gap = _twin_gap(eval_json, color_set, sigma), _twin_gap(eval_json, gray_set, sigma)
    if color_gap:
        ours, official, gap = color_gap
        text += f" {labels.get(ours, ours)} is {gap:.2f} dB below the {labels.get(official, official)}, the same network"
        if gray_gap:
            text += (f" (grey: {labels.get(gray_gap[0], gray_gap[0])} {gray_gap[2]:.2f} dB below the "
                     f"{labels.get(gray_gap[1], gray_gap[1])})")
            if gap > gray_gap[2] + TWIN_GAP_MARGIN:
                text += (": it trained much less well than its grey twin (its training loss: the denoiser losses "
                         "figure), so the differences against it above say little about the colour designs")
        text += "."
    return [text]


def _transfer_findings(s: pd.DataFrame, eval_json: Mapping[str, Any], set_name: str, sigma: float) -> list[str]:
    """The plain transfer (and the residual row) against the noisy input at ``sigma``."""
    variant_run = {r.get("variant"): r["run"] for r in runs_on(eval_json, set_name)
                   if r.get("model") == ASAPNET and r["run"] not in longer_training(eval_json)}

    def psnr(model: str | None) -> float | None:
        v = s[(s["model"] == model) & (s["sigma"] == sigma)]["psnr"]
        return None if v.empty else float(v.iloc[0])

    plain, residual = psnr(variant_run.get("plain")), psnr(variant_run.get("residual"))
    noisy = s[s["sigma"] == sigma]["psnr_noisy"]
    noise_in = None if noisy.empty else float(noisy.iloc[0])
    if plain is None or noise_in is None:
        return []
    verdict = ("a per-pixel network that sees one noisy pixel does not average the noise away"
               if max(plain, residual if residual is not None else plain) < noise_in + 1.0
               else "more than 1 dB above the noisy input even without context")
    with_res = "" if residual is None else f", and with a residual output (predicting the noise) {residual:.2f} dB"
    return [f"the plain transfer of ASAPNet reaches {plain:.2f} dB at σ={sigma:g} against {noise_in:.2f} dB "
            f"for the noisy input itself{with_res}: {verdict}."]


def _best_findings(s: pd.DataFrame, eval_json: Mapping[str, Any], ms: Mapping[str, float], set_name: str,
                   sigma: float, size: tuple[int, int]) -> list[str]:
    """The best equal-budget ASAPNet run (``meta.best_variant``) against our DnCNN-20, the official DnCNN-B and
    the plain CNN the verdict rests on (``meta.rival_cnn``): PSNR per sigma, paired intervals, times."""
    meta = eval_json["meta"]
    best = meta.get("best_variant")
    if not best:
        return []
    runs = runs_on(eval_json, set_name)
    ours = meta.get("reference_cnn") if meta.get("reference_cnn") in {r["run"] for r in runs} else reference_run(runs)
    rival = meta.get("rival_cnn")
    official = next((m for m in OFFICIAL_TWIN if m in set(s["model"])), None)  # the official blind DnCNN

    def psnr(model: str | None, sig: float) -> float | None:
        v = s[(s["model"] == model) & (s["sigma"] == sig)]["psnr"]
        return None if v.empty else float(v.iloc[0])

    gaps = []
    for sig in sorted(s["sigma"].unique()):
        b, mine, off = psnr(best, sig), psnr(ours, sig), psnr(official, sig)
        if b is None:
            continue
        txt = f"σ={sig:g}: {b:.2f} dB"
        if mine is not None:
            txt += f" ({b - mine:+.2f} vs our DnCNN"
            txt += f", {b - off:+.2f} vs the official DnCNN-B)" if off is not None else ")"
        gaps.append(txt)
    out = [f"The best ASAPNet variant at the shared budget is **{best}** — " + "; ".join(gaps) + "."]
    for r in eval_json.get("paired_difference", []):
        if r["set"] == set_name and float(r["sigma"]) == float(sigma) and r["model_a"] == best:
            role = " (the plain CNN the verdict rests on)" if r["model_b"] == rival and rival != ours else ""
            out.append(f"Image by image at σ={sigma:g}, {best} minus {r['model_b']}{role}: {r['mean_diff']:+.2f} dB "
                       f"({100 * r['level']:.0f}% paired bootstrap interval [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}] over "
                       f"{r['n_images']} images; {best} is better on {r['wins_a']} of them).")
    h, w = size
    if best in ms and ours in ms:
        text = (f"It runs a {w}x{h} image in {ms[best]:.0f} ms against {ms[ours]:.0f} ms for DnCNN "
                f"({ms[ours] / ms[best]:.1f}x faster, same CPU, batch 1, fp32)")
        if rival in ms and rival != ours:
            text += f" and {ms[rival]:.0f} ms for {rival} ({ms[best] / ms[rival]:.2f}x its time)"
        out.append(text + ".")
    return out


def denoise_findings(eval_json: Mapping[str, Any], timing: pd.DataFrame, set_name: str = "bsd68",
                     size: tuple[int, int] = SIZE, train: Mapping[str, Mapping[str, Any]] | None = None,
                     sigma: float = HEADLINE_SIGMA, losses: Mapping[str, pd.DataFrame] | None = None,
                     color_set: str = "cbsd68") -> str:
    """The study's answer in a few paragraphs, every number read from the metrics files.

    In order: the plain transfer (and the residual row) against the noisy input at ``sigma``; the best
    equal-budget ASAPNet run (``meta.best_variant``) against our DnCNN-20, the official DnCNN-B and the
    plain CNN the verdict rests on (``meta.rival_cnn``), with the paired bootstrap intervals of
    ``paired_difference`` and the times; what each change buys (``ablation_delta``: the largest gains and
    losses and the filter / hybrid rows, with their times); whether more training changes the verdict
    (the longer-training runs: delta, Pareto front, loss trend at the end from ``losses``, the
    ``losses_denoise_<run>.csv`` frames); whether an ASAPNet-derived run is on the Pareto front of every
    model, and where each lies against the front of our plain CNNs; the colour runs on ``color_set``;
    the grid-size check (``grid_check``). Runs are found in the runs table by variant and model, not by name.
    """
    summary = pd.DataFrame(eval_json["summary"])
    s = summary[summary["set"] == set_name]
    ms = _ms(timing, size)
    n = int(s["n_images"].max()) if len(s) else 0
    head = [f"On {n} {SET_TITLES.get(set_name, set_name)} images:"] + _transfer_findings(s, eval_json, set_name, sigma)
    head += _best_findings(s, eval_json, ms, set_name, sigma, size)
    paragraphs = [" ".join(head)]
    paragraphs.append(" ".join(_change_findings(eval_json, ms, set_name, sigma, size)))
    paragraphs.append(" ".join(_longer_findings(eval_json, timing, losses or {}, set_name, size, sigma)))
    paragraphs.append(" ".join(front_findings(eval_json, timing, set_name, size, sigma)))
    paragraphs.append(" ".join(_color_findings(eval_json, ms, color_set, sigma, set_name)))
    paragraphs.append(" ".join(grid_findings(eval_json, train or {}, sigma)))
    return "\n\n".join(p for p in paragraphs if p)
