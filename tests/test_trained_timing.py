"""The generators as trained, timed in one interleaved run (lib/translation/trained_timing.py): which
cells, which weights, interleaving, the bf16 rows, the speed-ups (tiny generators)."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from conftest import TINY_GENERATORS as TINY
from lib.config import from_dict, to_dict
from lib.models import build, make_config
from lib.train.gan_outputs import EVAL_GENERATOR_NAME, write_generator
from lib.translation import trained_timing as tt
from lib.translation.timing import GRID_COLUMNS, TimeTranslationConfig

SIZES = {"facades": (32, 32), "camvid": (32, 44)}  # two studies of different aspect; ASAPNet tile k = 2
LABEL_NC = {"facades": 13, "camvid": 12}


def _cfg(**kw) -> TimeTranslationConfig:
    base = dict(sizes=[[32, 32]], settings=[{"threads": 1}], warmup=1, min_runs=1, max_runs=1, end_to_end_sizes=[],
                model_overrides=TINY, device="cpu", trained_sizes=[[64, 128]], trained_warmup=1, trained_rounds=3)
    base.update(kw)
    return from_dict(TimeTranslationConfig, base, where="time_translation")


@pytest.fixture()
def studies(tmp_path):
    """Tiny trained generators of two studies (random weights written as the evaluated ``generator.pt``)."""
    trained, dirs = [], {}
    for dataset, (h, w) in SIZES.items():
        for name in ("asapnet", "pix2pixhd"):
            over = {"label_nc": LABEL_NC[dataset], "use_instance_edge": False, **TINY[name]}
            if name == "asapnet":
                over.update(height=h, learned_ds_factor=2)
            cfg = make_config(name, over)
            torch.manual_seed(len(dirs))
            model = build(name, cfg)
            run = tmp_path / dataset / name
            write_generator(run / EVAL_GENERATOR_NAME, model, name, cfg, step=7, train_seconds=1.0, ema=True)
            dirs[(dataset, name)] = run
            trained.append({"dataset": dataset, "model": name, "generator": name, "config": to_dict(cfg),
                            "height": h, "width": w, "label_nc": LABEL_NC[dataset]})
    return trained, dirs


def test_every_study_and_size_in_both_precisions(studies):
    trained, dirs = studies
    frame = tt.time_trained(trained, dirs, _cfg(), device="cpu", progress=False)
    assert list(frame.columns) == list(GRID_COLUMNS)
    assert len(frame) == 4 * 2 * 2  # 4 generators x (study size, 64x128) x (fp32, bf16)
    study = frame[frame["kind"] == "trained"]
    assert {(r.dataset, r.height, r.width) for r in study.itertuples()} == {(d, *hw) for d, hw in SIZES.items()}
    resized = frame[frame["kind"] == "trained_resized"]
    assert set(zip(resized["height"], resized["width"])) == {(64, 128)}
    assert (frame["label_nc"] == frame["dataset"].map(LABEL_NC)).all()  # the trained label channels everywhere
    ok = frame[frame["status"] == "ok"]
    assert (ok["runs"] == 3).all() and (ok["median_ms"] > 0).all()
    assert ((ok["q25_ms"] <= ok["median_ms"]) & (ok["median_ms"] <= ok["q75_ms"])).all()
    # pix2pixHD keeps every trained tensor at 256x512-like sizes; ASAPNet's tile-dependent ones are new
    assert frame.loc[frame["model"] == "pix2pixhd", "weights"].str.startswith("trained").all()
    assert not frame.loc[frame["model"] == "pix2pixhd", "weights"].str.contains("except").any()
    assert resized.loc[resized["model"] == "asapnet", "weights"].str.contains("except").all()
    assert not study["weights"].str.contains("except").any()
    # the resized ASAPNet is the trained architecture: same low-res stream, built for its height
    a = resized[resized["model"] == "asapnet"]
    s = study[study["model"] == "asapnet"]
    assert (a["gmacs"].to_numpy() > s["gmacs"].to_numpy()).all()  # more pixels, more MACs


def test_bf16_rows_compare_with_fp32_or_say_why_not(studies, monkeypatch):
    trained, dirs = studies
    monkeypatch.setattr(tt, "bf16_autocast_recommended", lambda device: True)
    frame = tt.time_trained(trained[:1], dirs, _cfg(trained_sizes=[]), device="cpu", progress=False)
    bf16 = frame[frame["dtype"] == "bf16"].iloc[0]
    assert bf16["status"] == "ok" and 15 < bf16["psnr_vs_fp32_db"] < 200  # close to, not equal to, fp32
    assert frame[frame["dtype"] == "fp32"]["psnr_vs_fp32_db"].isna().all()
    monkeypatch.setattr(tt, "bf16_autocast_recommended", lambda device: False)
    frame = tt.time_trained(trained[:1], dirs, _cfg(trained_sizes=[]), device="cpu", progress=False)
    bf16 = frame[frame["dtype"] == "bf16"].iloc[0]
    assert bf16["status"] == "skipped" and "no native bf16" in bf16["note"] and pd.isna(bf16["median_ms"])


def test_rounds_interleave_every_cell(studies, monkeypatch):
    """Each round runs every timed cell once, the order rotated by one cell per round."""
    trained, dirs = studies
    monkeypatch.setattr(tt, "bf16_autocast_recommended", lambda device: False)
    calls = []
    real_load = tt.load_model

    def load(path, map_location="cpu"):
        model = real_load(path, map_location)
        model.register_forward_hook(lambda m, i, o: calls.append((path.parent.parent.name, m.cfg.__class__.__name__,
                                                                   int(o.shape[-2]))))
        return model

    monkeypatch.setattr(tt, "load_model", load)
    sub = [t for t in trained if t["model"] == "pix2pixhd"]  # one module per study at both sizes
    cfg = _cfg(trained_warmup=0, trained_rounds=3)
    tt.time_trained(sub, dirs, cfg, device="cpu", progress=False)
    cells = [("facades", "Pix2PixHDConfig", 32), ("facades", "Pix2PixHDConfig", 64),
             ("camvid", "Pix2PixHDConfig", 32), ("camvid", "Pix2PixHDConfig", 64)]
    timed = calls[-3 * len(cells):]  # the rounds (after the fp32 reference forwards)
    rounds = [timed[i * len(cells):(i + 1) * len(cells)] for i in range(3)]
    for r, got in enumerate(rounds):
        assert got == cells[r:] + cells[:r]


def test_resized_config_keeps_the_trained_convolutions():
    cfg = {"label_nc": 12, "height": 128, "learned_ds_factor": 8, "lr_max_width": 256}
    assert tt.resized_config("asapnet", cfg, 256) == {**cfg, "height": 256, "learned_ds_factor": 8}
    derived = tt.resized_config("asapnet", {"label_nc": 12, "height": 64, "learned_ds_factor": None}, 256)
    assert derived["learned_ds_factor"] == 4  # the trained model's min(k, 16) with k = 64 / 16
    assert tt.resized_config("pix2pixhd", {"ngf": 32}, 256) == {"ngf": 32}
    with pytest.raises(ValueError, match="height 64.*learned downsampling 8"):
        tt.resized_config("asapnet", cfg, 64)


def test_speedups_divide_two_medians_of_one_study():
    rows = []
    for dataset, a_ms, p_ms in (("facades", 10.0, 30.0), ("camvid", 20.0, 50.0)):
        for model, ms in (("asapnet", a_ms), ("pix2pixhd", p_ms)):
            rows.append({**{c: float("nan") for c in GRID_COLUMNS}, "kind": "trained_resized", "dataset": dataset,
                         "model": model, "height": 256, "width": 512, "dtype": "fp32", "status": "ok", "median_ms": ms})
    out = tt.speedups_trained(pd.DataFrame(rows, columns=list(GRID_COLUMNS)))
    assert dict(zip(out["dataset"], out["speedup"])) == {"facades": 3.0, "camvid": 2.5}
    assert set(out["size"]) == {"256x512"} and set(out["baseline"]) == {"pix2pixhd"}


def test_a_study_without_its_trained_generator_is_named(studies, tmp_path):
    trained, dirs = studies
    dirs = {**dirs, ("camvid", "asapnet"): tmp_path / "nowhere"}
    with pytest.raises(FileNotFoundError, match="nowhere"):
        tt.time_trained(trained, dirs, _cfg(), device="cpu", progress=False)
