"""One report section per label -> photo study, on synthetic per-dataset metrics files: two studies, one
without results. The study with results gets its section, its headline rows and its trained generators'
speed-up (numbers from its files); the one without gets a line naming the command that runs it; timing
files written before the stage recorded the study still give the study its times."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # tests only

import pandas as pd
import pytest

from lib.io import write_csv, write_json
from lib.report import studies as ST
from lib.report import summary as S
from lib.report import trained_speed as TS
from lib.report import translation
from lib.report import translation_tables as tables
from lib.report.common import MISSING
from lib.translation.timing import GRID_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
FACADES = ROOT / "reports" / "metrics" / "translation" / "facades"  # the committed study: the files' schema
NAN = float("nan")
HW = {"device": "cpu", "cpu_model": "AMD EPYC", "cpu_features": ["avx2", "avx512f"], "threads": 2}
CAMVID_FID = {"asapnet": 123.46, "pix2pixhd": 141.23, "real": 61.5}  # distinct from every committed number
CAMVID_MIOU = {"asapnet": 0.4321, "pix2pixhd": 0.3876, "real": 0.5512}


def _camvid_study(directory: Path) -> None:
    """A CamVid study's files in ``directory``: the committed Facades files' schema, CamVid's numbers."""
    directory.mkdir(parents=True, exist_ok=True)
    ev = json.loads((FACADES / "translation_eval.json").read_text())
    ev["meta"].update(dataset="camvid", size=[128, 176], n_images=233, git_revision="c4m71d")
    for r in ev["rows"]:
        m = r["model"]
        r.update(fid=CAMVID_FID[m], fid_boot_low=CAMVID_FID[m] - 3, fid_boot_high=CAMVID_FID[m] + 4, miou=CAMVID_MIOU[m],
                 miou_boot_low=CAMVID_MIOU[m] - 0.01, miou_boot_high=CAMVID_MIOU[m] + 0.01, n=233)
        if m != "real":
            r["kid_smoothed"] = {"asapnet": 0.0432, "pix2pixhd": 0.0567}[m]
    write_json(directory / "translation_eval.json", ev)
    for name in ("train_asapnet.json", "train_pix2pixhd.json", "train_segmenter.json"):
        data = json.loads((FACADES / name).read_text())
        data.update(dataset="camvid", size=[128, 176] if "segmenter" in name else 128)
        write_json(directory / name, data)
    for name in ("losses_asapnet.csv", "losses_pix2pixhd.csv", "losses_segmenter.csv", "translation_curves.csv"):
        shutil.copyfile(FACADES / name, directory / name)
    write_csv(directory / "translation_per_class_iou.csv", pd.DataFrame(
        [{"model": m, "class_id": i, "class": c, "iou": 0.1 * (i + 1) if m != "real" else 0.9}
         for m in ("asapnet", "pix2pixhd", "real") for i, c in enumerate(("Sky", "Building", "Road"))]))


def _trained(model, kind, h, w, median, dtype="fp32", dataset="camvid", status="ok"):
    row = {c: NAN for c in GRID_COLUMNS}
    row.update(kind=kind, model=model, generator=model, height=h, width=w, megapixels=h * w / 1e6, device="cpu",
               dtype=dtype, tf32="-", threads_setting=0, threads=2, params=1e6, gmacs=1.0, status=status,
               median_ms=median if status == "ok" else NAN, q25_ms=median * 0.95, q75_ms=median * 1.05, runs=20,
               dataset=dataset, weights="trained", note="" if status == "ok" else "bf16 not timed: no native bf16")
    return row


CAMVID_TIMES = [  # (model, kind, h, w, median ms, dtype): ASAPNet 3.21x faster at 256x512 fp32, 2.50x in bf16
    ("asapnet", "trained", 128, 176, 40.0, "fp32"), ("pix2pixhd", "trained", 128, 176, 62.0, "fp32"),
    ("asapnet", "trained", 128, 176, 30.0, "bf16"), ("pix2pixhd", "trained", 128, 176, 45.0, "bf16"),
    ("asapnet", "trained_resized", 256, 512, 100.0, "fp32"), ("pix2pixhd", "trained_resized", 256, 512, 321.0, "fp32"),
    ("asapnet", "trained_resized", 256, 512, 80.0, "bf16"), ("pix2pixhd", "trained_resized", 256, 512, 200.0, "bf16"),
]


def _older_grid(committed: pd.DataFrame) -> pd.DataFrame:
    """A timing grid as the timing stage wrote it before it timed every study: the paper-size rows and
    Facades' trained generators at 128x128 in fp32, without a ``dataset`` column."""
    study = committed["dataset"] if "dataset" in committed else pd.Series("facades", index=committed.index)
    older = (committed["kind"] == "paper_config") | (
        (committed["kind"] == "trained") & (study.fillna("facades") == "facades") & (committed["dtype"] == "fp32"))
    return committed[older].drop(columns=["dataset"], errors="ignore").reset_index(drop=True)


def _timing_with_camvid(committed: pd.DataFrame) -> pd.DataFrame:
    """The committed timing grid as an older timing stage wrote it (:func:`_older_grid`) and the CamVid
    study's trained rows as the current timing stage writes them."""
    committed = _older_grid(committed)
    rows = pd.DataFrame([_trained(*t) for t in CAMVID_TIMES], columns=list(GRID_COLUMNS))
    return pd.concat([committed.reindex(columns=list(GRID_COLUMNS)), rows], ignore_index=True)


@pytest.fixture()
def metrics(tmp_path) -> Path:
    """``metrics/translation/camvid/``: a study with results; no Facades folder: a study not run."""
    _camvid_study(tmp_path / "metrics" / "translation" / "camvid")
    return tmp_path / "metrics"


def test_a_listed_study_without_results_is_one_line_naming_its_command(metrics):
    facades, camvid = (ST.load_study(metrics, d) for d in ("facades", "camvid"))
    assert not facades.has_results and facades.models == [] and camvid.has_results
    assert camvid.title == "Street scenes (CamVid)" and camvid.models == ["asapnet", "pix2pixhd"]
    assert set(camvid.summaries) == {"asapnet", "pix2pixhd"} and camvid.segmenter is not None
    assert list(camvid.per_class["class"].unique()) == ["Sky", "Building", "Road"]
    line = ST.not_run_text(facades)
    assert "Facades: this study has not been run yet" in line and "`dvc repro evaluate_translation@facades`" in line
    assert "reports/metrics/translation/facades/translation_eval.json" in line and "\n" not in line
    assert ST.study_metas(facades) == {} and "reports/metrics/translation/camvid/train_segmenter.json" in ST.study_metas(camvid)
    contents = ST.contents_line([facades, camvid])
    assert "Facades (not run yet)" in contents and "[quality](#quality-camvid)" in contents


def test_study_title_prefers_the_params_entry_then_the_built_in_name():
    assert ST.study_title("camvid") == "Street scenes (CamVid)" and ST.study_title("facades") == "Facades"
    assert ST.study_title("my_scenes") == "My Scenes"
    assert ST.study_title("camvid", {"display_name": "CamVid 11 classes"}) == "CamVid 11 classes"
    assert ST.study_title("camvid", object()) == "Street scenes (CamVid)"  # a config without the field


def test_trained_rows_are_the_studys_and_an_older_files_rows_at_its_size():
    committed = _older_grid(pd.read_csv(ROOT / "reports" / "metrics" / "translation_timing.csv"))
    timing = _timing_with_camvid(committed)
    camvid = TS.trained_rows(timing, "camvid", [128, 176])
    assert len(camvid) == len(CAMVID_TIMES) and set(camvid["dataset"]) == {"camvid"}
    assert list(camvid["kind"].unique()) == ["trained", "trained_resized"]  # the study size first
    facades = TS.trained_rows(timing, "facades", [128, 128])  # the older file's rows: no dataset recorded
    assert sorted(facades["model"]) == ["asapnet", "pix2pixhd"] and set(facades["height"]) == {128}
    assert TS.trained_rows(timing, "facades", None).empty  # without the study size nothing is guessed
    ups = TS.trained_speedups(timing, "camvid", [128, 176])
    assert ups[["size", "dtype"]].values.tolist() == [["128x176", "fp32"], ["128x176", "bf16"],
                                                      ["256x512", "fp32"], ["256x512", "bf16"]]
    assert ups["speedup"].tolist() == pytest.approx([62 / 40, 45 / 30, 3.21, 2.5])
    q = TS.quoted_speedup(timing, "camvid", [128, 176])  # the paper's size where timed
    assert q["size"] == "256x512" and q["fp32"] == pytest.approx(3.21) and q["bf16"] == pytest.approx(2.5)
    old = TS.quoted_speedup(committed, "facades", [128, 128])  # else the study size
    ms = committed[committed["kind"] == "trained"].set_index("model")["median_ms"]
    assert old["size"] == "128x128" and old["fp32"] == pytest.approx(ms["pix2pixhd"] / ms["asapnet"]) and old["bf16"] is None


def test_trained_time_table_shows_each_size_and_precision_with_the_ratio():
    timing = pd.DataFrame([_trained(*t) for t in CAMVID_TIMES[:4]]
                          + [_trained("asapnet", "trained_resized", 256, 512, 100.0),
                             _trained("pix2pixhd", "trained_resized", 256, 512, 321.0),
                             _trained("asapnet", "trained_resized", 256, 512, NAN, "bf16", status="skipped"),
                             _trained("pix2pixhd", "trained_resized", 256, 512, NAN, "bf16", status="skipped")],
                          columns=list(GRID_COLUMNS))
    table = tables.trained_time_display(timing, "camvid", [128, 176])
    assert list(table.columns) == ["ASAPNet (ms)", "pix2pixHD (ms)", "pix2pixHD / ASAPNet"]
    assert table.loc[("256x512", "fp32"), "pix2pixHD / ASAPNet"] == "3.21"
    assert table.loc[("128x176 (as evaluated)", "bf16"), "pix2pixHD / ASAPNet"] == "1.50"
    assert table.loc[("256x512", "bf16"), "ASAPNet (ms)"] == f"{MISSING} (bf16 not timed)"
    assert table.loc[("256x512", "bf16"), "pix2pixHD / ASAPNet"] == MISSING
    assert tables.trained_time_display(timing, "facades", [128, 128]).empty
    caption = tables.trained_time_caption({"meta": {"hardware": HW, "git_revision": "abc"}}, timing, "camvid", [128, 176])
    assert "rebuilt for that height" in caption and "commit abc" in caption


def test_time_vs_quality_uses_the_studys_fp32_times(metrics):
    committed = pd.read_csv(ROOT / "reports" / "metrics" / "translation_timing.csv")
    timing = _timing_with_camvid(committed)
    ev = ST.load_study(metrics, "camvid").eval_json
    pts = translation.time_quality_points(ev, TS.study_timing(timing, "camvid", [128, 176])).set_index("model")
    assert pts.loc["asapnet", "time_ms"] == 40.0 and pts.loc["pix2pixhd", "time_ms"] == 62.0  # 128x176 fp32
    assert pts.loc["asapnet", "fid"] == CAMVID_FID["asapnet"] and pts.loc["asapnet", "miou_low"] == pytest.approx(0.4221)
    quality = tables.quality_table(ev, timing, "camvid")
    assert quality.loc["ASAPNet", "ms / image (128x176)"] == "40" and "123.5" in quality.loc["ASAPNet", "FID [95% CI]"]


def _summary_inputs(metrics):
    studies = [ST.load_study(metrics, d) for d in ("facades", "camvid")]
    timing = _timing_with_camvid(pd.read_csv(ROOT / "reports" / "metrics" / "translation_timing.csv"))
    timing_json = {"meta": {"hardware": dict(HW)},
                   "speedups": [{"baseline": "pix2pixhd", "size": "256x512", "threads_setting": 0, "tf32": "-",
                                 "baseline_status": "ok", "speedup": 2.37}]}
    return studies, timing, timing_json


def test_summary_answers_per_study_with_its_trained_speedup(metrics):
    studies, timing, timing_json = _summary_inputs(metrics)
    text = S.summary_markdown(studies, timing_json, {"summary": [], "runs": []}, anchors={"quality": "quality", "times": "times"},
                              timing=timing)
    q1 = text.split("**2. ")[0]
    assert "**Architecture:** ASAPNet is faster than pix2pixHD: **2.37x** at 256x512 (timing stage)" in q1
    assert "paper-size generators (random weights)" in q1
    assert "**Street scenes (CamVid) — Yes: faster, and its quality is at least equal.**" in q1
    assert "**3.21x** at 256x512, the paper's size" in q1 and "bf16 autocast **2.50x**" in q1
    assert "100 ms against 321 ms" in q1 and "[times](#times-camvid)" in q1
    assert "FID 123.5 vs 141.2" in q1 and "mIoU 0.432 vs 0.388" in q1 and "[quality table](#quality-camvid)" in q1
    assert "Facades: this study has not been run yet" in q1 and "`dvc repro evaluate_translation@facades`" in q1
    assert q1.index("Facades: this study") < q1.index("Street scenes (CamVid) —")  # the params order
    slower = timing.copy()
    slower.loc[(slower["model"] == "asapnet") & (slower["dataset"] == "camvid"), "median_ms"] = 1000.0
    q1 = S.summary_markdown(studies, timing_json, {"summary": [], "runs": []}, timing=slower).split("**2. ")[0]
    assert "**Street scenes (CamVid) — No.**" in q1 and "not faster than pix2pixHD: **0.32x**" in q1


def test_headline_has_each_studys_rows_and_trained_speedups(metrics, tmp_path):
    studies, timing, timing_json = _summary_inputs(metrics)
    rows = S.headline({s.name: s.eval_json for s in studies if s.has_results}, timing_json, {"summary": []}, timing=timing)
    assert rows["translation_camvid_asapnet"] == {"fid": 123.5, "kid": pytest.approx(0.123), "miou": 0.432,
                                                  "kid_smoothed": 0.043}
    assert rows["translation_camvid_real_photos"]["miou"] == 0.551
    assert rows["speedup_trained_camvid_256x512"] == {"pix2pixhd": 3.21, "pix2pixhd_bf16": 2.5}
    assert rows["speedup_trained_camvid_128x176"] == {"pix2pixhd": 1.55, "pix2pixhd_bf16": 1.5}
    assert rows["speedup_256x512"] == {"pix2pixhd": 2.37}  # the architecture comparison stays
    assert not any(k.startswith("translation_facades") for k in rows)  # no study, no row
    S.write_headline(rows, tmp_path / "headline")
    data = json.loads((tmp_path / "headline" / "translation_camvid_pix2pixhd.json").read_text())
    assert data["fid"] == 141.2 and all(isinstance(v, float) and math.isfinite(v) for v in data.values())


def test_plot_tables_name_the_study_in_each_series(metrics):
    studies, timing, _ = _summary_inputs(metrics)
    twice = [*studies, ST.Study("facades", "Facades", FACADES, studies[1].eval_json, curves=studies[1].curves)]
    tables_ = S.plot_tables(twice, timing, {"summary": []}, {})
    quality = tables_["quality_vs_time"]
    assert quality["series"].tolist() == ["ASAPNet · Street scenes (CamVid)", "pix2pixHD · Street scenes (CamVid)",
                                          "ASAPNet · Facades", "pix2pixHD · Facades"]
    assert quality["fid"].tolist()[:2] == [123.5, 141.2] and quality["time_ms"].tolist()[:2] == [40.0, 62.0]
    curves = tables_["translation_curves"]
    assert {"ASAPNet · Facades", "ASAPNet · Street scenes (CamVid) (mean of last 3)"} <= set(curves["series"])


@pytest.mark.slow  # one notebook run: about 20 s
def test_the_page_has_a_section_per_study_and_a_line_for_the_one_not_run(tmp_path):
    """The report rendered from metrics with a CamVid study (new-schema timing rows) and no Facades study."""
    metrics = tmp_path / "metrics"
    shutil.copytree(ROOT / "reports" / "metrics", metrics)
    shutil.rmtree(metrics / "translation" / "facades")
    _camvid_study(metrics / "translation" / "camvid")
    write_csv(metrics / "translation_timing.csv", _timing_with_camvid(pd.read_csv(metrics / "translation_timing.csv")))
    shutil.copytree(ROOT / "reports" / "figures", tmp_path / "figures")
    from PIL import Image
    grid = tmp_path / "figures" / "stages" / "translation" / "camvid" / "translation_samples.png"
    grid.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4 * 178, 130), "gray").save(grid)
    cmd = [sys.executable, str(ROOT / "scripts" / "render_report.py"), "--out", str(tmp_path / "index.html"),
           "--metrics-dir", str(metrics), "--figures-dir", str(tmp_path / "figures"),
           "--headline-dir", str(tmp_path / "headline"), "--plots-dir", str(tmp_path / "plots")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = (tmp_path / "index.html").read_text()
    assert "Traceback" not in page and "vnd.jupyter.stderr" not in page  # no error, no warning printed
    assert 'id="quality-camvid"' in page and "Street scenes (CamVid)" in page
    assert "Facades: this study has not been run yet" in page and "dvc repro evaluate_translation@facades" in page
    assert 'id="quality-facades"' in page and "123.5" in page and "0.432" in page  # the study's numbers
    assert "3.21x" in page and "resample the test images, not training runs" in page
    assert page.count("<span>label map</span>") >= 1 and "<span>pix2pixHD</span>" in page  # the grid's column titles
    assert (tmp_path / "figures" / "translation" / "camvid" / "time_vs_quality.png").exists()
    assert (tmp_path / "figures" / "translation" / "camvid" / "curves.png").exists()
    headline = {p.stem for p in (tmp_path / "headline").glob("*.json")}
    assert {"translation_camvid_asapnet", "speedup_trained_camvid_256x512"} <= headline
    assert not any(h.startswith("translation_facades") for h in headline)
