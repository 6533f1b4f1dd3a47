"""Selecting a scale edits only the values it names and comes back byte for byte (lib/scales.py)."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from lib import config, scales, stages
from lib.paths import ROOT

SCALES = sorted(scales.scale_files(ROOT / "scales"))


@pytest.fixture()
def params(tmp_path):
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    return path


def _expected(name: str) -> dict:
    """The scale by plain deep merge of its overlays (what the text edit must mean)."""
    merged = yaml.safe_load((ROOT / "params.yaml").read_text())
    for file in scales.overlay_chain(name, ROOT / "scales"):
        merged = config.deep_merge(merged, yaml.safe_load(file.read_text()))
    return merged


def test_committed_params_are_the_default_scale():
    assert yaml.safe_load((ROOT / "params.yaml").read_text())["scale"] == "default"


@pytest.mark.parametrize("name", SCALES)
def test_select_means_the_merged_overlays_and_returns_byte_identical(params, name):
    original = params.read_text()
    text = scales.select(name, params, ROOT / "scales")
    assert yaml.safe_load(text) == _expected(name)
    # every comment line survives; only value lines differ
    comments = [line for line in original.splitlines() if line.lstrip().startswith("#")]
    assert [line for line in text.splitlines() if line.lstrip().startswith("#")] == comments
    for stage in stages.STAGES:  # the result is a valid set of params
        stages.load_stage(stage, params)
    scales.select("default", params, ROOT / "scales")
    assert params.read_text() == original
    assert not any(p.name.endswith("default-values.yaml") for p in params.parent.iterdir())


def test_switching_between_scales_passes_through_the_default(params):
    original = params.read_text()
    scales.select("smoke", params, ROOT / "scales")
    scales.select("paper-smoke", params, ROOT / "scales")
    assert yaml.safe_load(params.read_text()) == _expected("paper-smoke")
    scales.select("default", params, ROOT / "scales")
    assert params.read_text() == original


def test_edited_default_is_what_you_come_back_to(params):
    params.write_text(params.read_text().replace("size: 128 ", "size: 96  "))
    edited = params.read_text()
    scales.select("smoke", params, ROOT / "scales")
    scales.select("default", params, ROOT / "scales")
    assert params.read_text() == edited


def test_typos_and_unknown_scales_are_refused_without_writing(params, tmp_path):
    original = params.read_text()
    with pytest.raises(config.ConfigError, match="unknown scale 'smok'"):
        scales.select("smok", params, ROOT / "scales")
    bad_dir = tmp_path / "scales"
    bad_dir.mkdir()
    (bad_dir / "bad.yaml").write_text("scale: smoke\ndncnn_oficial:\n  max_images: 1\n")
    with pytest.raises(config.ConfigError, match="dncnn_oficial"):
        scales.select("bad", params, bad_dir)
    (bad_dir / "bad.yaml").write_text("scale: smoke\ntrain_translation:\n  comon:\n    size: 1\n")
    with pytest.raises(config.ConfigError, match="train_translation.comon does not exist"):
        scales.select("bad", params, bad_dir)
    assert params.read_text() == original


def test_cli_one_line_errors(params):
    out = subprocess.run([sys.executable, "-m", "lib.scales", "select", "nope", "--params", str(params)],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and out.stderr.startswith("error: unknown scale 'nope'")
    assert "Traceback" not in out.stderr
