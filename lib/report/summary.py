"""The report's answers first: the headline numbers (flat DVC metrics files) and the summary text.

:func:`headline` reads the stages' metrics files and keeps only the numbers that answer the two
questions (the translation numbers once per study: ``translation_<dataset>_<model>``); :func:`write_headline` writes them as one small flat JSON per table row, so that
``dvc metrics show`` prints them as one short table (rows: files, columns: the keys they share)
and ``dvc metrics diff`` / ``dvc exp show`` compare them. :func:`summary_markdown` turns the
same numbers into the few sentences at the top of ``reports/index.html`` (docs/design.md#report).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from lib.io import write_json
from lib.report.common import is_finite, to_float
from lib.report.denoise_runs import CNN, FAMILIES, denoise_labels, longer_training, psnr_time_points, reference_run, runs_on
from lib.report.machines import machine_text, same_machine
from lib.report.studies import Study, anchor, not_run_text
from lib.report.trained_speed import quoted_speedup, study_timing, trained_speedups
from lib.report.translation import runtime_series, time_quality_points
from lib.report.translation_curves import curve_plot_table

__all__ = [
    "HEADLINE_SIZES",
    "headline",
    "write_headline",
    "summary_markdown",
    "plot_tables",
]

HEADLINE_SIZES = ((256, 512), (1024, 2048))  # speed-up sizes: the paper's Cityscapes size and its largest
ASAPNET_DENOISE = "asapnet_denoise"  # model key of the ASAPNet denoising runs
DENOISE_SIZE = (321, 481)  # BSD68 image size (h, w) of the denoisers' headline time
MODEL_LABELS = {"asapnet": "ASAPNet", "pix2pixhd": "pix2pixHD", "spade": "SPADE"}
OFFICIAL_SOURCE = "ours-vs-official run: our two generators; the timing stage skipped this cell"  # benchmarks/against_official.py


def _round(value: Any, digits: int) -> float | None:
    return round(to_float(value), digits) if is_finite(value) else None


def _psnr_row_name(model: str) -> str:
    """``official_dncnn_b_gray`` -> ``dncnn_b_official``; our runs keep their name."""
    if model.startswith("official_"):
        return model.removeprefix("official_").removesuffix("_gray") + "_official"
    return model


def _speedups(timing_json: Mapping[str, Any], official: Mapping[str, Any] | None = None
              ) -> dict[tuple[str, str], tuple[float, str]]:
    """(baseline, "HxW") -> (speed-up of ASAPNet, source) at :data:`HEADLINE_SIZES`, each the ratio of two
    medians of one run on one machine: the timing stage's (all cores, fp32, TF32 off or n/a), else, for
    a size it skipped, the ours-vs-official benchmark's (our generators, fp32) when its results file
    names the timing stage's machine (:func:`lib.report.machines.same_machine`). A benchmark of
    another or an unidentified machine never gives a headline number."""
    sizes = {f"{h}x{w}" for h, w in HEADLINE_SIZES}
    out: dict[tuple[str, str], tuple[float, str]] = {}
    for s in timing_json.get("speedups", []):
        if (s["size"] in sizes and int(s["threads_setting"]) == 0 and str(s.get("tf32")) in ("-", "off")
                and s.get("baseline_status") == "ok" and is_finite(s.get("speedup"))):
            out[(s["baseline"], s["size"])] = (to_float(s["speedup"]), "timing stage")
    hw = timing_json.get("meta", {}).get("hardware")
    if official and same_machine(official.get("environment"), hw):
        ours = {(r["model"], r["size"]): to_float(r.get("median_ms")) for r in official.get("rows", [])
                if r.get("dtype") == "fp32" and r.get("code", "ours") == "ours"}
        for (model, size), ms in sorted(ours.items()):
            ref = ours.get(("asapnet", size), float("nan"))
            if model != "asapnet" and size in sizes and (model, size) not in out and is_finite(ms) and is_finite(ref):
                out[(model, size)] = (ms / ref, OFFICIAL_SOURCE)
    return out


def headline(evals: Mapping[str, Mapping[str, Any]], timing_json: Mapping[str, Any], denoise_eval: Mapping[str, Any],
             official: Mapping[str, Any] | None = None, set_name: str = "bsd68",
             timing: pd.DataFrame | None = None) -> dict[str, dict[str, float]]:
    """The headline numbers, as file stem -> flat ``{key: number}`` (one row of ``dvc metrics show``).

    Rows: ``translation_<dataset>_<model>`` per study with results (``fid``, ``kid``, ``miou`` of each
    evaluated generator and of the real photos: ``translation_<dataset>_real_photos``, FID only where the
    real-vs-real FID was computed);
    ``speedup_<H>x<W>`` for :data:`HEADLINE_SIZES` (``<baseline>``: baseline time / ASAPNet time of the
    paper-size generators, random weights: the architecture comparison; from the timing stage where it
    measured both, else from the ours-vs-official benchmark of the same machine, :func:`_speedups`);
    ``speedup_trained_<dataset>_<H>x<W>`` per study and size its trained generators were timed at
    (``<baseline>``: fp32, ``<baseline>_bf16``: bf16 autocast; from ``timing``, the generators whose
    quality the rows above report);
    ``psnr_<model>`` (``s<sigma>``, e.g. ``s25``: mean PSNR in dB on ``set_name`` per noise level, every
    denoiser of ``denoise_eval.json``'s summary; official weights as ``<model>_official``).
    ``kid_smoothed``: KID as the mean of the last learning-curve points (:mod:`lib.translation.curves`).
    Values are rounded (FID 1 decimal, KID and mIoU 3, speed-ups and dB 2); missing ones are left out.

    Args:
        evals: dataset -> its ``translation_eval.json``, the studies with results in page order.
        timing_json: ``translation_timing.json`` (its ``speedups``).
        denoise_eval: ``denoise_eval.json``.
        official: ``benchmarks/results/against_official_cpu.json`` (its ``rows`` and ``environment``; optional).
        set_name: the denoising test set of the PSNR rows.
        timing: ``translation_timing.csv`` as a frame (the trained generators' rows; optional).
    """
    rows: dict[str, dict[str, float]] = {}
    for dataset, eval_json in evals.items():
        for r in eval_json.get("rows", []):
            real = r["model"] == "real"
            has_fid = not real or bool(r.get("fid_between"))
            values = {"fid": _round(r.get("fid"), 1) if has_fid else None,
                      "kid": _round(r.get("kid"), 3) if has_fid else None,
                      "miou": _round(r.get("miou"), 3), "kid_smoothed": _round(r.get("kid_smoothed"), 3)}
            name = f"translation_{dataset}_" + ("real_photos" if real else r["model"])
            rows[name] = {k: v for k, v in values.items() if v is not None}
    speed = _speedups(timing_json, official)
    for h, w in HEADLINE_SIZES:
        size = f"{h}x{w}"
        values = {b: round(v, 2) for (b, s), (v, _) in sorted(speed.items()) if s == size}
        if values:
            rows[f"speedup_{size}"] = values
    for dataset, eval_json in evals.items():
        if timing is None or timing.empty:
            break
        ups = trained_speedups(timing, dataset, eval_json.get("meta", {}).get("size"))
        for _, u in ups[ups["speedup"].map(is_finite)].iterrows():
            key = u["baseline"] + ("" if u["dtype"] == "fp32" else f"_{u['dtype']}")
            rows.setdefault(f"speedup_trained_{dataset}_{u['size']}", {})[key] = round(to_float(u["speedup"]), 2)
    for r in denoise_eval.get("summary", []):
        if r["set"] == set_name and is_finite(r.get("psnr")):
            rows.setdefault(f"psnr_{_psnr_row_name(r['model'])}", {})[f"s{to_float(r['sigma']):g}"] = round(to_float(r["psnr"]), 2)
    return {k: v for k, v in rows.items() if v}


def write_headline(rows: Mapping[str, Mapping[str, float]], out_dir: str | Path) -> list[Path]:
    """Writes each row of :func:`headline` to ``out_dir/<row>.json`` (atomically) and removes the
    JSON files of rows that no longer exist (a run dropped from ``params.yaml``). Returns the files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_json(out_dir / f"{name}.json", dict(values)) for name, values in rows.items()]
    for stale in set(out_dir.glob("*.json")) - set(written):
        stale.unlink()
    return written


# ----------------------------------------------------------------------------- summary text

def _link(text: str, target: str | None) -> str:
    return f"[{text}](#{target})" if target else text


def _count(n: int) -> str:
    return {1: "the one measure", 2: "both measures", 3: "all three measures"}.get(n, f"all {n} measures")


def _quality_measures(a: Mapping[str, float], p: Mapping[str, float]) -> list[tuple[str, str, float, float, bool, str | None]]:
    """The measures the summary compares: ``(name, text, ASAPNet, pix2pixHD, lower is better, interval key)``:
    KID (the smoothed final value where both have learning curves, else the final KID), FID, mIoU."""
    out = []
    if "kid_smoothed" in a and "kid_smoothed" in p:  # the small-N measure, smoothed over the last curve points
        out.append(("KID", "KID (mean of the last learning-curve points)", a["kid_smoothed"], p["kid_smoothed"], True, None))
    elif "kid" in a and "kid" in p:
        out.append(("KID", "KID", a["kid"], p["kid"], True, "kid"))
    out.append(("FID", "FID", a["fid"], p["fid"], True, "fid"))
    out.append(("mIoU", "mIoU", a["miou"], p["miou"], False, "miou"))
    return out


def _architecture_answer(speed: Mapping[tuple[str, str], tuple[float, str]], anchors: Mapping[str, str],
                         machine: str = "") -> tuple[str, bool | None]:
    """The architecture comparison (paper-size generators, random weights) and whether ASAPNet is faster
    at every size it quotes (``None``: no speed-up over pix2pixHD measured)."""
    ups = [(size, v, src) for (b, size), (v, src) in speed.items() if b == "pix2pixhd"]
    ups.sort(key=lambda t: [int(x) for x in t[0].split("x")])
    if not ups:
        return "", None
    faster = all(v > 1 for _, v, _ in ups)
    where = ", ".join(f"**{v:.2f}x** at {size} ({src})" for size, v, src in ups)
    return (f"**Architecture:** ASAPNet is {'faster' if faster else 'not always faster'} than pix2pixHD: {where}; "
            f"paper-size generators (random weights), batch 1, fp32{', ' + machine if machine else ''}; each ratio "
            f"divides two medians of one run ({_link('speed-ups', anchors.get('speed'))})."), faster


def _trained_speed(study: Study, timing: pd.DataFrame | None, anchors: Mapping[str, str],
                   machine: str) -> tuple[str, bool | None]:
    """The speed of the study's evaluated generators (:func:`lib.report.trained_speed.quoted_speedup`) and
    whether ASAPNet is the faster (``None``: not timed)."""
    q = quoted_speedup(timing, study.name, study.eval_json.get("meta", {}).get("size"))
    link = _link("times", anchor(anchors["times"], study) if anchors.get("times") else None)
    if q is None:
        return ("**Speed of the evaluated generators:** not timed (the timing results hold no row of this study's "
                "trained generators); the verdict's speed is the architecture comparison's."), None
    where = (f"at {q['size']}, the paper's size (the trained architecture rebuilt for that height)"
             if q["kind"] == "trained_resized" else f"at {q['size']}, the size they were trained and evaluated at")
    bf16 = f"; bf16 autocast **{q['bf16']:.2f}x**" if q["bf16"] is not None else ""
    faster = q["fp32"] > 1
    return (f"**Speed of the evaluated generators:** ASAPNet is {'faster' if faster else 'not faster'} than pix2pixHD: "
            f"**{q['fp32']:.2f}x** {where} (fp32, {q['reference_ms']:,.0f} ms against {q['baseline_ms']:,.0f} ms{bf16}; "
            f"trained widths, batch 1{', ' + machine if machine else ''}; two medians of one run of the timing stage; "
            f"{link})."), faster


def _study_answer(study: Study, rows: Mapping[str, Mapping[str, float]], arch_faster: bool | None,
                  timing: pd.DataFrame | None, anchors: Mapping[str, str], machine: str = "") -> str:
    """One study's answer: the verdict, the speed of its evaluated generators, their quality, a caveat."""
    eval_json = study.eval_json or {}
    evals = {r["model"]: r for r in eval_json.get("rows", [])}
    key = f"translation_{study.name}_"
    a, p = rows.get(key + "asapnet", {}), rows.get(key + "pix2pixhd", {})
    real = rows.get(key + "real_photos", {})
    speed_text, faster = _trained_speed(study, timing, anchors, machine)
    faster = arch_faster if faster is None else faster
    parts = [speed_text]
    worse: list[str] = []
    better: list[str] = []
    if "fid" in a and "fid" in p and "miou" in a and "miou" in p:
        ea, ep = evals.get("asapnet", {}), evals.get("pix2pixhd", {})

        def apart(key: str) -> bool:  # the 95% bootstrap intervals do not overlap
            lo, hi = f"{key}_boot_low", f"{key}_boot_high"
            if not all(is_finite(e.get(k)) for e in (ea, ep) for k in (lo, hi)):
                return False
            return to_float(ea[hi]) < to_float(ep[lo]) or to_float(ep[hi]) < to_float(ea[lo])

        measures = _quality_measures(a, p)
        better = [name for name, _, x, y, lower, _ in measures if (x < y if lower else x > y)]
        worse = [name for name, _, x, y, lower, _ in measures if name not in better]
        if not worse:
            verdict = f"better than pix2pixHD on {_count(len(measures))}"
        elif not better:
            verdict = f"worse than pix2pixHD on {_count(len(measures))}"
        else:
            verdict = f"mixed against pix2pixHD (better on {' and '.join(better)}, worse on {' and '.join(worse)})"
        checked = [(name, key) for name, _, _, _, _, key in measures  # the measures whose files hold intervals
                   if key and all(is_finite(e.get(f"{key}_boot_{b}")) for e in (ea, ep) for b in ("low", "high"))]
        clear = (f" (95% bootstrap intervals of {' and '.join(n for n, _ in checked)} apart)"
                 if checked and all(apart(k) for _, k in checked) else "")
        real_text = {"FID": f"; real photos {real['fid']:.1f}" if "fid" in real else "",
                     "mIoU": f"; real photos {real['miou']:.3f}" if "miou" in real else "", "KID": ""}
        listed = ", ".join(f"{text} {x:.{1 if name == 'FID' else 3}f} vs {y:.{1 if name == 'FID' else 3}f} "
                           f"({'lower' if lower else 'higher'} is better{real_text[name]})"
                           for name, text, x, y, lower, _ in measures)
        quality = _link("quality table", anchor(anchors["quality"], study) if anchors.get("quality") else None)
        parts.append(f"**Quality:** ASAPNet is {verdict}{clear}: {listed}; {quality}.")
        meta = eval_json.get("meta", {})
        if "fid" in real and min(a["fid"], p["fid"]) > 1.3 * real["fid"]:
            parts.append(f"**Caveat:** neither model produces realistic images at the {meta.get('scale', '?')} scale "
                         f"({meta.get('dataset', '?')}, {meta.get('n_images', '?')} test images): the comparison "
                         "is between two under-trained models.")
    head = f"**{study.title}.**"
    if faster is not None and (better or worse):
        answer = ("yes: faster, and its quality is at least equal" if faster and not worse else
                  "faster, but not at equal quality" if faster and not better else
                  "faster; quality mixed" if faster else "no")
        head = f"**{study.title} — {answer[0].upper() + answer[1:]}.**"
    return head + "\n\n" + "\n".join(f"- {x}" for x in parts)


def _rival(runs: list, psnr: Mapping[str, float], ms: Mapping[str, float], best: str, ref: str | None) -> str | None:
    """The plain CNN the verdict rests on, for files without ``meta.rival_cnn`` (the evaluation's rule,
    :func:`lib.denoise.compare.rival_cnn`): the fastest of our plain CNNs (not the reference) at least as good
    as ``best``, else the one nearest to it in log time."""
    cnns = [r["run"] for r in runs if r.get("model") == CNN and r["run"] != ref and r["run"] in psnr and r["run"] in ms]
    if not cnns or best not in ms:
        return None
    good = [r for r in cnns if psnr[r] >= psnr[best]]
    return min(good, key=lambda r: ms[r]) if good else min(cnns, key=lambda r: abs(math.log(ms[r] / ms[best])))


def _front_sentence(denoise_eval: Mapping[str, Any], timing: pd.DataFrame, sigma: float, set_name: str) -> str:
    """Whether an ASAPNet-derived run is on the PSNR-vs-time Pareto front of every model at ``sigma``."""
    points = psnr_time_points(denoise_eval, timing, set_name, DENOISE_SIZE)
    points = points[points["sigma"] == float(sigma)]
    if points.empty:
        return ""
    asap = points[points["on_front"] & (points["family"] == FAMILIES[0])]
    kinds = ", ".join(["ours"] + [k for k, f in (("the official DnCNN", FAMILIES[3]), ("BM3D", FAMILIES[4]))
                                  if (points["family"] == f).any()])
    where = f"of all {len(points)} models ({kinds}; σ={sigma:g})"
    if asap.empty:
        return f"**Pareto front:** no ASAPNet-derived design is on the PSNR-vs-time Pareto front {where}."
    fastest = points["ms"].min()
    named = [f"{p['label']} ({p['psnr']:.2f} dB, {p['ms']:.0f} ms{', the fastest model, so on it by speed alone' if p['ms'] <= fastest else ''})"
             for _, p in asap.iterrows()]
    return f"**Pareto front:** on the PSNR-vs-time Pareto front {where}: " + "; ".join(named) + "."


def _denoise_answer(denoise_eval: Mapping[str, Any], timing: pd.DataFrame | None, sigma: float,
                    anchors: Mapping[str, str], set_name: str) -> str:
    summary = pd.DataFrame(denoise_eval.get("summary", []))
    if summary.empty:
        return ""
    s = summary[(summary["set"] == set_name) & (summary["sigma"].astype(float) == float(sigma))]
    psnr = {m: float(v) for m, v in zip(s["model"], s["psnr"])}
    runs = runs_on(denoise_eval, set_name)
    labels = denoise_labels(denoise_eval)
    meta = denoise_eval.get("meta", {})
    ms: dict[str, float] = {}
    if timing is not None and len(timing):
        h, w = DENOISE_SIZE
        t = timing[(timing["height"] == h) & (timing["width"] == w)]
        ms = {m: float(v) for m, v in zip(t["model"], t["median_ms"])}
    longer = set(longer_training(denoise_eval))
    asap = [r["run"] for r in runs if r.get("model") == ASAPNET_DENOISE and r["run"] in psnr and r["run"] not in longer]
    if not asap:
        return ""
    best = meta.get("best_variant") if meta.get("best_variant") in asap else max(asap, key=lambda r: psnr[r])
    noisy = float(s["psnr_noisy"].iloc[0]) if len(s) else float("nan")
    n = int(s["n_images"].max()) if len(s) else 0
    where = f"σ={sigma:g}, {n} BSD68 images" if set_name == "bsd68" else f"σ={sigma:g}, {n} {set_name} images"

    def time_of(model: str) -> str:
        return f" in {ms[model]:.0f} ms" if model in ms else ""

    hw = meta.get("hardware")
    machine = f"; times: batch 1, fp32, one run of the evaluation stage on {machine_text(hw)}" if hw and ms else ""
    parts = [f"**ASAPNet:** the best variant at the shared training budget, {labels.get(best, best)}, reaches "
             f"**{psnr[best]:.2f} dB**{time_of(best)} per {DENOISE_SIZE[1]}x{DENOISE_SIZE[0]} image ({where}; noisy input "
             f"{noisy:.2f} dB{machine})."]
    official = next((m for m in ("official_dncnn_b_gray", "official_dncnn_s") if m in psnr), None)
    ref = meta.get("reference_cnn") if meta.get("reference_cnn") in psnr else reference_run(runs)
    if official:
        twin = f" and {ms[ref]:.0f} ms (our DnCNN-20, the same network)" if ref in ms else ""
        parts.append(f"**Against DnCNN:** the fully trained DnCNN-B (official weights) reaches {psnr[official]:.2f} dB{twin}: "
                     f"ASAPNet is {psnr[official] - psnr[best]:.2f} dB behind"
                     + (f" and {ms[ref] / ms[best]:.1f}x faster." if ref in ms and best in ms else "."))
    rival = meta.get("rival_cnn") if "rival_cnn" in meta else _rival(runs, psnr, ms, best, ref)
    if rival not in psnr or rival not in ms or best not in ms:
        rival = None
    gain = psnr[best] - noisy
    diff = psnr[best] - psnr[rival] if rival else float("nan")
    as_fast = rival is not None and ms[rival] <= ms[best] * 1.1  # the plain CNN is at most 10% slower
    if rival is not None and diff <= 0.1 and as_fast:
        answer = "Not at this budget: a plain CNN as fast denoises as well or better"
    elif gain < 1.0:
        answer = "No: it barely improves on the noisy input"
    elif rival is not None and diff > 0.1 and ms[best] <= ms[rival] * 1.1:
        answer = "Partly: it beats a plain CNN as fast, but not the fully trained DnCNN"
    elif rival is not None and diff <= 0.1:
        answer = f"Mixed: faster than the plain CNN nearest in time, but {-diff:.2f} dB behind it"
    elif rival is not None:
        answer = "Partly: better than the plain CNN nearest in time, but slower"
    else:
        behind = "close to" if official and psnr[official] - psnr[best] < 1.0 else "well behind"
        answer = f"Partly: a fast denoiser, but {behind} the fully trained DnCNN"
    if official and gain >= 1.0 and psnr[official] - psnr[best] < 0.1:
        answer = "Yes: as good as the fully trained DnCNN"
    if rival is not None:
        paired = next((r for r in denoise_eval.get("paired_difference", []) if r["set"] == set_name
                       and float(r["sigma"]) == float(sigma) and r["model_a"] == best and r["model_b"] == rival), None)
        interval = (f", {100 * to_float(paired['level']):.0f}% paired bootstrap interval [{to_float(paired['ci_low']):+.2f}, "
                    f"{to_float(paired['ci_high']):+.2f}] over {paired['n_images']} images" if paired else "")
        verdict = ("so at this cost the ASAPNet design beats a plain CNN" if diff > 0.1 and ms[best] <= ms[rival] * 1.1
                   else "so at this cost the ASAPNet design does not beat a plain CNN" if diff <= 0.1 and as_fast
                   else "but it is slower" if diff > 0.1 else "but it is faster")
        parts.append(f"**Against the plain CNN the verdict rests on:** {labels.get(rival, rival)}, trained on the same budget, "
                     f"reaches {psnr[rival]:.2f} dB in {ms[rival]:.0f} ms; ASAPNet takes {ms[best] / ms[rival]:.2f}x its time "
                     f"and scores {diff:+.2f} dB against it{interval}, {verdict}.")
    if timing is not None and len(timing):
        parts.append(_front_sentence(denoise_eval, timing, sigma, set_name))
    if ref in psnr:
        parts.append(f"**Our DnCNN-20 at the same budget:** {psnr[ref]:.2f} dB.")
    links = [_link(t, anchors.get(k)) for t, k in (("findings", "denoise-findings"), ("ablation", "ablation"))
             if anchors.get(k)]
    if links:
        parts.append("**Details:** " + ", ".join(links) + ".")
    return f"**{answer}.**\n\n" + "\n".join(f"- {p}" for p in parts if p)


def summary_markdown(studies: Sequence[Study], timing_json: Mapping[str, Any], denoise_eval: Mapping[str, Any],
                     denoise_timing: pd.DataFrame | None = None, official: Mapping[str, Any] | None = None,
                     sigma: float = 25.0, anchors: Mapping[str, str] | None = None, set_name: str = "bsd68",
                     timing: pd.DataFrame | None = None) -> str:
    """The summary at the top of the report: both questions answered in a few sentences with the
    key numbers (all read from the metrics files; every ratio from two measurements of one run on
    one machine, named) and links to the sections that hold them.

    The translation question: first the architecture comparison (paper-size generators, random weights),
    then per study with results its verdict, the speed-up of the generators whose quality it reports (the
    trained generators at 256x512 where timed, else at the study size) and their quality; a study
    without results: the line of :func:`lib.report.studies.not_run_text`.

    Args:
        studies: the studies of ``translation.datasets``, in page order (:func:`lib.report.studies.load_study`).
        timing_json, denoise_eval, official: as for :func:`headline`.
        denoise_timing: ``denoise_timing.csv`` as a frame (the denoisers' time per image).
        sigma: the noise level of the denoising sentences (``report.headline_sigma``).
        anchors: section key -> HTML anchor: ``speed``, ``denoise-findings``, ``ablation``; ``quality`` and
            ``times``: the prefix of each study's anchor (``<prefix>-<dataset>``).
        timing: ``translation_timing.csv`` as a frame (the trained generators' times).
    """
    anchors = anchors or {}
    done = [s for s in studies if s.has_results]
    rows = headline({s.name: s.eval_json for s in done}, timing_json, denoise_eval, official, set_name, timing)
    hw = timing_json.get("meta", {}).get("hardware")
    machine = machine_text(hw) if hw else ""
    arch, arch_faster = _architecture_answer(_speedups(timing_json, official), anchors, machine)
    blocks = [_study_answer(s, rows, arch_faster, timing, anchors, machine) if s.has_results else not_run_text(s)
              for s in studies]
    q1 = "\n\n".join(b for b in [arch, *blocks] if b) if done else ""
    if not done and blocks:
        q1 = "\n\n".join(b for b in [arch, "No translation metrics yet.", *blocks] if b)
    q2 = _denoise_answer(denoise_eval, denoise_timing, sigma, anchors, set_name)
    out = ["**1. Is ASAPNet faster than pix2pixHD at equal quality?** " + (q1 or "No translation metrics yet.")]
    out.append("**2. Does its idea carry over to denoising?** " + (q2 or "No denoising metrics yet."))
    return "\n\n".join(out)


def plot_tables(studies: Sequence[Study], timing: pd.DataFrame, denoise_eval: Mapping[str, Any],
                denoise_losses: Mapping[str, pd.DataFrame], benchmark: pd.DataFrame | None = None,
                set_name: str = "bsd68", official: pd.DataFrame | None = None,
                where: Mapping[str, str] | None = None) -> dict[str, pd.DataFrame]:
    """The small tidy CSVs of the ``dvc plots`` views (``dvc.yaml``, top-level ``plots``), by file stem.

    Every table has a ``series`` column (the legend: the repository's templates in
    ``reports/templates/dvc/`` colour by it). ``runtime_vs_size``: series, megapixels, size, ms
    (the lines of :func:`lib.report.translation.runtime_series`: this run, the speed benchmark,
    the paper's Fig. 1 GPU values, the official code, each benchmark's machine named as ``where``
    says); ``quality_vs_time``: one row per evaluated generator of every study with results (series
    ``<model> · <study>``; its time as trained, fp32, KID, FID, mIoU); ``psnr_vs_sigma``: series, sigma,
    psnr (mean PSNR on ``set_name`` per denoiser); ``denoise_losses``: series, step, loss (each run's
    training loss); where a study has learning curves, ``translation_curves``: series, step, minutes,
    kid, fid, miou of every such study (:func:`lib.report.translation_curves.curve_plot_table`).
    """
    runtime = runtime_series(timing, benchmark, official, where)
    runtime = runtime.assign(size=runtime["height"].astype(str) + "x" + runtime["width"].astype(str), ms=runtime["ms"].round(1))
    runtime = runtime[["series", "megapixels", "size", "ms"]]
    done = [s for s in studies if s.has_results]
    parts = []
    for st in done:
        points = time_quality_points(st.eval_json, study_timing(timing, st.name, st.eval_json.get("meta", {}).get("size")))
        q = points[["model", "time_ms", "kid", "fid", "miou"]].round(
            {"time_ms": 1, "kid": 4, "fid": 1, "miou": 3})
        q.insert(0, "series", [f"{MODEL_LABELS.get(m, m)} · {st.title}" for m in q.pop("model")])
        parts.append(q)
    quality = (pd.concat(parts, ignore_index=True) if parts
               else pd.DataFrame(columns=["series", "time_ms", "kid", "fid", "miou"]))
    summary = pd.DataFrame(denoise_eval.get("summary", []))
    psnr = pd.DataFrame(columns=["series", "sigma", "psnr"])
    if not summary.empty:
        s = summary[summary["set"] == set_name]
        psnr = pd.DataFrame({"series": [_psnr_row_name(m) for m in s["model"]], "sigma": s["sigma"].astype(float),
                             "psnr": s["psnr"].astype(float).round(2)})
    losses = [pd.DataFrame({"series": run, "step": f["step"], "loss": f["loss"].astype(float).map(lambda v: float(f"{v:.5g}"))})
              for run, f in denoise_losses.items()]
    loss = pd.concat(losses, ignore_index=True) if losses else pd.DataFrame(columns=["series", "step", "loss"])
    tables = {"runtime_vs_size": runtime.reset_index(drop=True), "quality_vs_time": quality,
              "psnr_vs_sigma": psnr.reset_index(drop=True), "denoise_losses": loss}
    curves = [curve_plot_table(st.curves, st.title) for st in done if st.curves is not None and len(st.curves)]
    if curves:
        tables["translation_curves"] = pd.concat(curves, ignore_index=True)
    return tables
