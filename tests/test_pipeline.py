"""Whole-pipeline smoke test: the real `dvc repro` at the smoke scale in a copy of the repo.

Checks that every stage and notebook runs, that the report is rendered from the metrics,
that a second `dvc repro` does nothing, and that changing one param re-runs only the stages
that read it.
"""
from __future__ import annotations

import json
import sys

import pytest
from conftest import project_copy
from conftest import run_checked as _run

from lib import config

pytestmark = pytest.mark.slow  # the whole pipeline at the smoke scale: several minutes


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory, data_mirror, weights_mirror):
    """A copy of the tracked and untracked-not-ignored files, as a fresh git repo at the smoke scale."""
    dest = tmp_path_factory.mktemp("smoke") / "repo"
    env = project_copy(dest, data_mirror, weights_mirror, "smoke")
    log = _run([sys.executable, "-m", "dvc", "repro"], dest, env)
    return dest, env, log


def test_repro_builds_report_from_metrics(smoke_repo):
    dest, _, log = smoke_repo
    html = (dest / "reports" / "index.html").read_text()
    metrics = json.loads((dest / "reports" / "metrics" / "dncnn_official.json").read_text())
    assert metrics["meta"]["scale"] == "smoke"
    rows = metrics["rows"]
    assert {r["set"] for r in rows} == {"bsd68", "set12", "cbsd68"}
    assert all(r["psnr"] > r["psnr_noisy"] for r in rows), "official DnCNN must denoise"
    assert "DnCNN" in html and "smoke" in html
    # a measured value from the metrics file is printed in the report
    assert f"{rows[0]['psnr']:.2f}" in html
    # every section's metrics come from this run, at the smoke scale
    metrics_dir = dest / "reports" / "metrics"
    for study, size in (("facades", [64, 64]), ("camvid", [64, 88])):  # both studies, tiny
        meta = json.loads((metrics_dir / "translation" / study / "translation_eval.json").read_text())["meta"]
        assert (meta["scale"], meta["dataset"], meta["size"]) == ("smoke", study, size)
    timing = json.loads((metrics_dir / "translation_timing.json").read_text())
    assert timing["meta"]["scale"] == "smoke" and {t["dataset"] for t in timing["meta"]["trained"]} == {"facades", "camvid"}
    denoise = json.loads((metrics_dir / "denoise_eval.json").read_text())
    assert denoise["meta"]["scale"] == "smoke" and denoise["summary"]
    assert "Like for like with BM3D" in html and "speed and image size" in html


def test_second_repro_does_nothing(smoke_repo):
    dest, env, _ = smoke_repo
    out = _run([sys.executable, "-m", "dvc", "repro"], dest, env)
    assert "Running stage" not in out, out


def test_param_change_reruns_only_its_stages(smoke_repo):
    dest, env, _ = smoke_repo
    params = config.load_params(dest / "params.yaml")
    params["dncnn_official"]["seed"] = 1
    import yaml

    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run([sys.executable, "-m", "dvc", "repro"], dest, env)
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    # the denoising evaluation reads the official rows and the noise seed: it re-runs too
    assert ran == {"dncnn_official", "evaluate_denoising", "report"}, out


# training stage -> (a params path of a trajectory setting, its new value, how the summary shows it)
CHANGED_TRAINING_PARAM = {
    "train_translation@facades-asapnet": (("train_translation", "models", "asapnet", "lr_g"), 2.0e-4,
                                          lambda m: m["config"]["lr_g"]),
    "train_segmenter@facades": (("train_segmenter", "lr"), 3.0e-3, lambda m: m["config"]["lr"]),
    "train_denoiser@asapnet_plain": (("train_denoiser", "common", "seed"), 7, lambda m: m["train_config"]["seed"]),
}
SUMMARY = {
    "train_translation@facades-asapnet": "translation/facades/train_asapnet.json",
    "train_segmenter@facades": "translation/facades/train_segmenter.json",
    "train_denoiser@asapnet_plain": "train_denoise_asapnet_plain.json",
}


@pytest.mark.parametrize("stage", sorted(CHANGED_TRAINING_PARAM))
def test_changed_training_param_reruns_from_scratch(smoke_repo, stage):
    """The user's sequence: `dvc repro -s STAGE`, change a training param, run it again: the stage
    succeeds (the old checkpoint cannot be continued, so training starts afresh) and its
    summary reflects the new value."""
    import yaml

    dest, env, _ = smoke_repo
    keys, value, shown = CHANGED_TRAINING_PARAM[stage]
    params = config.load_params(dest / "params.yaml")
    node = params
    for k in keys[:-1]:
        node = node[k]
    assert node[keys[-1]] != value
    node[keys[-1]] = value
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run([sys.executable, "-m", "dvc", "repro", "-s", stage], dest, env)
    assert "starting afresh" in out, out
    summary = json.loads((dest / "reports" / "metrics" / SUMMARY[stage]).read_text())
    assert shown(summary) == value and summary["start_step"] == 0
