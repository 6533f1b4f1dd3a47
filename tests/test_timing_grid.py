"""The ``time_translation`` timing grid: row fields, skip predictions, run counts, speed-ups,
trained generators and config errors (tiny models and sizes)."""
from __future__ import annotations

import dataclasses
import json
import math
import types

import pandas as pd
import pytest
import torch

from conftest import TINY_GENERATORS as TINY
from lib.config import ConfigError, from_dict
from lib.metrics.timing import runs_for
from lib.train.gan import TranslationTrainStage
from lib.translation import timing
from lib.translation.timing import (
    GRID_COLUMNS,
    TimeTranslationConfig,
    plan_grid,
    speedups,
    timing_grid,
    trained_generators,
    write_timing,
)
from lib.translation.workload import build_timing_model


def _cfg(**kw) -> TimeTranslationConfig:
    base = dict(
        sizes=[[32, 32], [32, 64]], settings=[{"threads": 1, "max_forward_s": 0}], warmup=1, min_runs=2, max_runs=2,
        cell_budget_s=0.0, end_to_end_sizes=[[32, 64]], label_nc=5, model_overrides=TINY, device="cpu", trained=False,
    )
    base.update(kw)
    return from_dict(TimeTranslationConfig, base, where="time_translation")


def test_grid_rows_fields_and_values():
    threads_before = torch.get_num_threads()
    frame = timing_grid(_cfg(), progress=False)
    assert torch.get_num_threads() == threads_before  # restored
    assert list(frame.columns) == list(GRID_COLUMNS) and len(frame) == 3 * 2
    assert (frame["kind"] == "paper_config").all() and (frame["weights"] == "random (seeded)").all()
    assert (frame["status"] == "ok").all() and (frame["runs"] == 2).all()
    assert (frame["median_ms"] > 0).all() and (frame["median_ms"] <= frame["p90_ms"] + 1e-9).all()
    assert (frame["min_ms"] <= frame["median_ms"]).all() and (frame["device"] == "cpu").all()
    assert ((frame["q25_ms"] <= frame["median_ms"]) & (frame["median_ms"] <= frame["q75_ms"])).all()  # the spread
    assert (frame["tf32"] == "-").all() and (frame["dtype"] == "fp32").all()
    assert frame["megapixels"].tolist() == [h * w / 1e6 for h, w in zip(frame["height"], frame["width"])]
    paper = frame[frame["kind"] == "paper_config"]
    assert (paper["threads"] == 1).all() and paper["model"].tolist() == ["asapnet"] * 2 + ["pix2pixhd"] * 2 + ["spade"] * 2
    # end to end only at the configured size
    assert paper["e2e_median_ms"].notna().tolist() == [False, True] * 3
    assert (paper.loc[paper["e2e_median_ms"].notna(), "e2e_runs"] == 2).all()
    # params are the built model's; convolution MACs scale with the pixel count
    for name in ("pix2pixhd", "spade", "asapnet"):
        rows = paper[paper["model"] == name]
        model = build_timing_model(name, 32, label_nc=5, overrides=TINY[name])
        assert rows["params"].iloc[0] == sum(p.numel() for p in model.parameters())
        assert rows["gmacs"].iloc[0] > 0
    p2p = paper[paper["model"] == "pix2pixhd"]["gmacs"].tolist()
    assert p2p[1] == pytest.approx(2 * p2p[0], rel=1e-12)
    assert paper.loc[paper["model"] == "asapnet", "macs_counted_on"].tolist() == ["cpu", "cpu"]  # fast path: not on meta


class _FakeClock:
    """perf_counter advancing 5 ms per call: every first forward takes 5 ms."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 0.005
        return self.now


def test_skip_predicted_from_the_measured_mac_rate(monkeypatch):
    forwards: list[tuple] = []  # output size of each first forward
    timed_runs = []

    def recording_peak_memory(fn, device):
        forwards.append(tuple(fn().shape[-2:]))
        return 0

    def fake_time_forward(fn, *, device, warmup=3, runs=20, min_seconds=0.0):
        timed_runs.append(runs)
        fn()
        return {"median_ms": 10.0, "q25_ms": 9.5, "q75_ms": 10.5, "p90_ms": 11.0, "min_ms": 9.0, "mean_ms": 10.0, "runs": runs, "timer": "fake"}

    monkeypatch.setattr(timing, "peak_memory", recording_peak_memory)
    monkeypatch.setattr(timing, "time_forward", fake_time_forward)
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=_FakeClock().perf_counter))
    cfg = _cfg(models=["pix2pixhd"], sizes=[[32, 32], [32, 64], [64, 128]], settings=[{"threads": 1, "max_forward_s": 0.03}],
               end_to_end=False, min_runs=2, max_runs=3, cell_budget_s=0.02)
    frame = timing_grid(cfg, progress=False)
    assert frame["status"].tolist() == ["ok", "ok", "skipped"]
    # 32x64: 2x the MACs of 32x32 at its rate (10 ms) -> 20 ms <= 30 ms; 64x128: 4x the MACs of 32x64 -> 40 ms
    assert frame["predicted_ms"].iloc[1] == pytest.approx(20.0)
    skipped = frame.iloc[2]
    assert skipped["predicted_ms"] == pytest.approx(40.0) and skipped["predicted_ms"] > 30.0
    assert math.isnan(skipped["median_ms"]) and skipped["runs"] == 0 and "predicted 0.04 s" in skipped["note"]
    assert forwards == [(32, 32), (32, 64)]  # nothing ran for the skipped cell
    # runs = clamp(ceil(20 ms / 5 ms), 2, 3) = 3
    assert timed_runs == [3, 3]


def test_skip_when_the_first_forward_alone_exceeds_the_limit():
    cfg = _cfg(models=["pix2pixhd"], settings=[{"threads": 1, "max_forward_s": 1e-9}], end_to_end=False)
    frame = timing_grid(cfg, progress=False)
    assert frame["status"].tolist() == ["skipped", "skipped"]
    first, second = frame.iloc[0], frame.iloc[1]
    assert "first forward took" in first["note"] and first["predicted_ms"] == first["first_forward_ms"]
    assert math.isnan(second["first_forward_ms"]) and "predicted" in second["note"]
    assert second["predicted_ms"] == pytest.approx(2 * first["predicted_ms"])  # twice the MACs at the same rate


def test_runs_for_clamps():
    assert runs_for(1000.0, 5.0, 3, 20) == 5
    assert runs_for(2400.0, 5.0, 3, 20) == 3  # ceil(2.08) = 3
    assert runs_for(4000.0, 5.0, 3, 20) == 3  # ceil(1.25) = 2 -> min_runs
    assert runs_for(100.0, 5.0, 3, 20) == 20  # 50 -> max_runs
    assert runs_for(0.0, 5.0, 3, 20) == 20


def test_speedups_arithmetic(tmp_path):
    def row(model, h, w, median, status="ok", predicted=float("nan"), threads=2):
        r = {c: float("nan") for c in GRID_COLUMNS}
        r.update(kind="paper_config", model=model, height=h, width=w, device="cpu", dtype="fp32", tf32="-",
                 threads_setting=0 if threads == 2 else threads, threads=threads, status=status, median_ms=median,
                 predicted_ms=predicted, note="")
        return r

    frame = pd.DataFrame([
        row("asapnet", 256, 512, 1300.0), row("pix2pixhd", 256, 512, 3600.0), row("spade", 256, 512, 9100.0),
        row("asapnet", 1024, 2048, 2500.0), row("pix2pixhd", 1024, 2048, float("nan"), "skipped", 56000.0),
        row("asapnet", 256, 512, 2600.0, threads=1), row("pix2pixhd", 256, 512, 7800.0, threads=1),
    ], columns=list(GRID_COLUMNS))
    s = speedups(frame).set_index(["baseline", "size", "threads"])
    assert s.loc[("pix2pixhd", "256x512", 2), "speedup"] == pytest.approx(3600 / 1300)
    assert s.loc[("spade", "256x512", 2), "speedup"] == pytest.approx(7.0)
    assert s.loc[("pix2pixhd", "256x512", 1), "speedup"] == pytest.approx(3.0)
    big = s.loc[("pix2pixhd", "1024x2048", 2)]
    assert math.isnan(big["speedup"]) and big["predicted_speedup"] == pytest.approx(22.4)
    assert big["baseline_status"] == "skipped" and len(s) == 4
    write_timing(frame, tmp_path / "t.csv", tmp_path / "t.json", {"scale": "smoke"})
    assert list(pd.read_csv(tmp_path / "t.csv").columns) == list(GRID_COLUMNS)
    written = json.loads((tmp_path / "t.json").read_text())
    assert written["meta"] == {"scale": "smoke"} and len(written["speedups"]) == 4 and len(written["skipped"]) == 1


def test_plan_on_cuda_has_both_tf32_flags_and_ascending_sizes():
    cfg = _cfg(models=["pix2pixhd"], sizes=[[64, 128], [32, 32]], settings=[{"threads": 0}, {"threads": 1}], tf32=[False, True],
               end_to_end_sizes=[[64, 128]])
    cells = plan_grid(cfg, device="cuda")  # planning builds nothing, so no GPU is needed
    assert [(c["height"], c["threads_setting"], c["tf32"]) for c in cells] == [
        (32, 0, "off"), (32, 0, "on"), (32, 1, "off"), (32, 1, "on"),
        (64, 0, "off"), (64, 0, "on"), (64, 1, "off"), (64, 1, "on"),
    ]
    assert [c["end_to_end"] for c in cells] == [False] * 4 + [True] * 4
    assert {c["tf32"] for c in plan_grid(cfg, device="cpu")} == {"-"}


def test_trained_generators_follow_the_training_stage():
    stage = from_dict(TranslationTrainStage, {
        "dataset": "cityscapes",
        "common": {"size": 64},
        "models": {"asapnet": {"generator": "asapnet", "generator_cfg": {"label_nc": 35, "learned_ds_factor": 4}},
                   "pix2pixhd": {"generator": "pix2pixhd", "generator_cfg": {"label_nc": 35, "ngf": 8}}},
    }, where="train_translation")
    specs = {s["model"]: s for s in trained_generators(stage)}
    a, p = specs["asapnet"], specs["pix2pixhd"]
    assert a["dataset"] == p["dataset"] == "cityscapes"
    assert (a["height"], a["width"], a["label_nc"]) == (64, 128, 35) and a["config"]["height"] == 64
    assert a["config"]["learned_ds_factor"] == 4 and p["config"]["ngf"] == 8 and "height" not in p["config"]
    with pytest.raises(ConfigError, match="train_translation.dataset='ade20k'"):
        from_dict(TranslationTrainStage, {**dataclasses.asdict(stage), "dataset": "ade20k"}, where="train_translation")


@pytest.mark.parametrize("override, key", [
    ({"models": ["asapnet", "unet"]}, "models[1]"),
    ({"sizes": [[32, 32], [0, 64]]}, "sizes[1]"),
    ({"sizes": [[32, 32], [48, 64]]}, "sizes[1]"),  # ASAPNet: tile size 3 is not a power of two
    ({"sizes": [[32, 48]]}, "sizes[0]"),  # SPADE (5 upsamplings) needs multiples of 32
    ({"sizes": [[32]]}, "sizes[0]"),
    ({"settings": [{"threads": 1, "limit": 3}]}, "settings[0]"),
    ({"settings": [{"threads": -2}]}, "settings[0]"),
    ({"model_overrides": {"pix2pixhd": {"ngff": 2}}}, "model_overrides.pix2pixhd"),
    ({"model_overrides": {**TINY, "unet": {}}}, "model_overrides.unet"),
    ({"end_to_end_sizes": [[64, 64]]}, "end_to_end_sizes[0]"),
    ({"min_runs": 5, "max_runs": 2}, "min_runs"),
    ({"warmup": 0}, "warmup"),
    ({"device": "tpu"}, "device"),
    ({"dtype": "fp8"}, "dtype"),
    ({"no_such_key": 1}, "no_such_key"),
])
def test_config_errors_name_the_key(override, key):
    with pytest.raises(ConfigError) as e:
        _cfg(**override)
    assert key in str(e.value) and "time_translation" in str(e.value)
