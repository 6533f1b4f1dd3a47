"""Whole-pipeline smoke test: the real `dvc repro` at the smoke scale in a copy of the repo.

Checks that every stage and notebook runs, that the report is rendered from the metrics,
that a second `dvc repro` does nothing, and that changing one param re-runs only the stages
that read it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lib import config
from lib.paths import ROOT

VENV_BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow  # the whole pipeline at the smoke scale: several minutes


def _run(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory, data_mirror, weights_mirror):
    """A copy of the tracked and untracked-not-ignored files, as a fresh git repo at the smoke scale."""
    dest = tmp_path_factory.mktemp("smoke") / "repo"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
        capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    # Results committed from the default scale are removed so the smoke run rebuilds them.
    for rel in ("reports/index.html", "dvc.lock"):
        (dest / rel).unlink(missing_ok=True)
    shutil.rmtree(dest / "reports" / "metrics", ignore_errors=True)
    config.apply_overlay(dest / "scales" / "smoke.yaml", dest / "params.yaml")
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ASAPNET_DATA": str(data_mirror),
        "ASAPNET_WEIGHTS": str(weights_mirror),
        "TORCH_HOME": str(dest / ".cache" / "torch"),
        "MPLCONFIGDIR": str(dest / ".cache" / "mpl"),
        "DVC_SITE_CACHE_DIR": str(dest / ".cache" / "dvc-site"),
        "DVC_NO_ANALYTICS": "1",
        "PYTHONPATH": str(dest),  # the copy's lib/, not the checkout's
    }
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "smoke"]):
        _run(cmd, dest, env)
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
    assert json.loads((metrics_dir / "translation_eval.json").read_text())["meta"]["scale"] == "smoke"
    assert json.loads((metrics_dir / "translation_timing.json").read_text())["meta"]["scale"] == "smoke"
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
    "train_translation@asapnet": (("train_translation", "models", "asapnet", "lr_g"), 2.0e-4,
                                  lambda m: m["config"]["lr_g"]),
    "train_segmenter": (("train_segmenter", "lr"), 2.0e-3, lambda m: m["config"]["lr"]),
    "train_denoiser@asapnet_plain": (("train_denoiser", "common", "seed"), 7, lambda m: m["train_config"]["seed"]),
}
SUMMARY = {
    "train_translation@asapnet": "train_asapnet.json",
    "train_segmenter": "train_segmenter.json",
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
