"""benchmarks/translation_budget.py and benchmarks/segmenter_ceiling.py: their checks, and their
committed results agree with the pipeline's committed results they extend."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import segmenter_ceiling as sc  # noqa: E402
from benchmarks import translation_budget as tb  # noqa: E402
from lib.train.segmenter import SegmenterTrainConfig  # noqa: E402

CAMVID = ROOT / "reports" / "metrics" / "translation" / "camvid"
BUDGET = ROOT / "benchmarks" / "results" / "translation_budget_camvid.csv"
CEILING = ROOT / "benchmarks" / "results" / "segmenter_ceiling_camvid.csv"


def test_budget_rows_of_the_pipeline_run():
    rows, meta, recipes = tb.run_rows(ROOT, "camvid")
    table = pd.DataFrame(rows)
    curves = pd.read_csv(CAMVID / "translation_curves.csv")
    evaluation = {r["model"]: r for r in json.loads((CAMVID / "translation_eval.json").read_text())["rows"]}
    assert set(table["model"]) == set(meta["models"]) == set(recipes)
    for model in meta["models"]:
        mine = table[table["model"] == model].sort_values("step")
        final = mine[mine["final"]]
        assert len(final) == 1 and final["kid"].iloc[0] == evaluation[model]["kid"]
        assert final["step"].iloc[0] == mine["total_steps"].iloc[0] == mine["step"].max()
        # every snapshot but the last is a curve row; the last is the final row
        snaps = curves[curves["model"] == model].sort_values("step")
        assert list(mine["step"]) == list(snaps["step"])
        assert list(mine["miou"].iloc[:-1]) == list(snaps["miou"].iloc[:-1])


def test_budget_refuses_runs_that_differ_beyond_the_steps(tmp_path):
    other = tmp_path / "other" / "reports" / "metrics" / "translation" / "camvid"
    shutil.copytree(CAMVID, other, ignore=shutil.ignore_patterns("losses_*"))
    train = json.loads((other / "train_asapnet.json").read_text())
    train["config"]["lr_g"] *= 2
    (other / "train_asapnet.json").write_text(json.dumps(train))
    with pytest.raises(SystemExit, match="training settings of asapnet differ"):
        tb.main(["--dataset", "camvid", "--run", str(ROOT), "--run", str(tmp_path / "other"), "--out", str(tmp_path / "t.csv")])
    assert not (tmp_path / "t.csv").exists()
    with pytest.raises(SystemExit, match="missing .*translation_eval.json"):
        tb.main(["--dataset", "camvid", "--run", str(tmp_path), "--out", str(tmp_path / "t.csv")])


def test_budget_results_extend_the_pipeline_run():
    """The committed comparison's 1x rows are the pipeline's committed CamVid results: a re-run
    of the study without re-running the comparison fails here."""
    table = pd.read_csv(BUDGET)
    assert set(table["run"]) >= {"1x", "2x"}
    base = pd.DataFrame(tb.run_rows(ROOT, "camvid")[0])
    committed = table[table["run"] == "1x"].reset_index(drop=True)
    for column in ("model", "step", "total_steps", "final"):
        assert list(committed[column]) == list(base[column])
    for column in ("kid", "fid", "miou"):
        assert committed[column].to_numpy() == pytest.approx(base[column].to_numpy(), rel=1e-9)
    double = table[table["run"] == "2x"]
    for model, steps in base[base["final"]].set_index("model")["total_steps"].items():
        assert double[(double["model"] == model) & double["final"]]["total_steps"].iloc[0] == 2 * steps


def test_segmenter_overrides_are_checked():
    cfg = SegmenterTrainConfig()
    assert sc.parse_overrides(["epochs=24", "scale_range=[0.5, 2]", "arch=inception"], cfg) == {
        "epochs": 24, "scale_range": (0.5, 2), "arch": "inception"}
    with pytest.raises(SystemExit, match="key one of"):
        sc.parse_overrides(["epoch=24"], cfg)
    with pytest.raises(SystemExit, match="expected key=value"):
        sc.parse_overrides(["epochs"], cfg)


def test_segmenter_ceiling_reproduces_the_pipeline_ceiling():
    """The committed row of the pipeline's own segmenter gives the evaluation stage's ceiling."""
    table = pd.read_csv(CEILING)
    real = pd.read_csv(CAMVID / "translation_eval.csv").set_index("model").loc["real"]
    base = table[table["changed"] == "(params.yaml)"]
    assert len(base) >= 1
    assert base["miou"].iloc[-1] == pytest.approx(real["miou"], abs=1e-4)
    assert base["steps"].iloc[-1] == json.loads((CAMVID / "train_segmenter.json").read_text())["steps"]
    assert (table["miou"].between(0, 1)).all() and (table["miou_boot_low"] <= table["miou"]).all()


def test_budget_runs_agree_before_the_decay():
    """Training is deterministic: a longer run's snapshots before the default run's learning rates start
    to decay equal the default run's at the same step (what the README says of them)."""
    table = pd.read_csv(BUDGET)
    compared = 0
    for model, g in table.groupby("model"):
        base = g[g["run"] == "1x"].set_index("step")
        decay_start = int(base["total_steps"].iloc[0] - base["decay_steps"].iloc[0])
        for row in g[(g["run"] == "2x") & (g["step"] <= decay_start)].itertuples():
            if row.step in base.index:
                assert row.kid == pytest.approx(base.loc[row.step, "kid"], rel=1e-9)
                assert row.miou == pytest.approx(base.loc[row.step, "miou"], rel=1e-9)
                compared += 1
    assert compared >= 2
