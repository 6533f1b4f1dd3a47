"""benchmarks/gpu_timing.py runs end to end on the CPU at smoke scale (no GPU needed)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import gpu_timing as gt  # noqa: E402


def _run(tmp_path, *extra):
    assert gt.main(["--device", "cpu", "--sizes", "64x64", "--runs", "1", "--out", str(tmp_path), *extra]) == 0
    data = json.loads((tmp_path / "gpu_timing_cpu_smoke.json").read_text())
    return data, (tmp_path / "gpu_timing_cpu_smoke.csv").read_text()


def test_smoke_one_model_all_precisions(tmp_path):
    data, text = _run(tmp_path, "--models", "asapnet")
    rows = data["rows"]
    assert [(r["precision"], r["variant"]) for r in rows] == [("fp32", "asapnet"), ("tf32", "asapnet"), ("bf16", "asapnet")]
    for r in rows:
        assert r["median_ms"] > 0 and r["runs"] == 1 and r["paper_fig1_ms"] is None  # 64^2 is not a Fig. 1 size
        assert r["time_vs_asapnet"] == pytest.approx(1.0)
    assert not any(r["variant"] == "asapnet+graph" for r in rows)  # CUDA graphs only on CUDA
    assert data["environment"]["device"] == "cpu" and data["args"]["warmup"] == 1
    assert text.splitlines()[0].split(",") == list(gt.CSV_COLUMNS) and len(text.splitlines()) == 4


@pytest.mark.slow
def test_smoke_command(tmp_path, capsys):
    """The documented smoke command: every model and precision."""
    data, _ = _run(tmp_path)
    got = {(r["precision"], r["variant"]) for r in data["rows"] if r.get("median_ms")}
    assert got == {(p, m) for p in gt.PRECISIONS for m in gt.MODELS}
    assert "pix2pixHD / ASAPNet" in capsys.readouterr().out


def test_paper_values_and_ratio_lines():
    assert [gt.PAPER_FIG1_MS[("asapnet", s)] for s in (256, 512, 1024, 2048)] == [9, 14, 35, 130]
    assert [gt.PAPER_FIG1_MS[("pix2pixhd", s)] for s in (256, 512, 1024, 2048)] == [20, 61, 166, 682]
    rows = [{"size": "256x256", "height": 256, "width": 256, "precision": "fp32", "variant": "asapnet", "median_ms": 10.0},
            {"size": "256x256", "height": 256, "width": 256, "precision": "fp32", "variant": "pix2pixhd", "median_ms": 25.0}]
    assert gt.paper_ratio_lines(rows) == ["256x256 fp32: pix2pixHD / ASAPNet = 2.50x (paper Fig. 1: 2.22x)"]
    table = gt.format_table([{**rows[0], "paper_fig1_ms": 9, "vs_paper": 10 / 9, "time_vs_asapnet": 1.0}])
    assert "1.11" in table and "9" in table.splitlines()[2]


def test_cuda_missing_is_a_clear_error(capsys):
    if gt.torch.cuda.is_available():
        pytest.skip("CUDA present")
    assert gt.main(["--sizes", "64x64"]) == 2
    assert "--device cpu" in capsys.readouterr().err


def test_rejects_bad_arguments():
    for argv in (["--sizes", "65x64"], ["--precisions", "fp8"], ["--models", "dncnn"], ["--runs", "0"]):
        with pytest.raises(SystemExit):
            gt.parse_args(argv)
