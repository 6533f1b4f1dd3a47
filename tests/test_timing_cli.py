"""The timing command line: valid JSON with the protocol's fields; MAC counts that match
closed forms and agree between the meta device and a real forward."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import TINY_GENERATORS as TINY
from lib.models import make_config
from lib.models.complexity import count_macs
from lib.paths import ROOT
from lib.translation.workload import (
    _main,
    build_timing_model,
    example_inputs,
    example_label_ids,
    meta_macs,
    measure,
    timing_config,
)
FIELDS = {
    "model", "impl", "height", "width", "batch", "dtype", "label_nc", "median_ms", "p90_ms", "runs", "warmup",
    "device", "timer", "params", "macs", "gmacs", "macs_counted_on", "peak_memory_bytes", "end_to_end",
    "config", "environment",
}


@pytest.mark.slow
def test_cli_prints_json_with_the_protocol_fields(tmp_path):
    out = tmp_path / "t.json"
    cmd = [
        sys.executable, "-m", "lib.translation.workload", "--model", "asapnet", "--height", "64", "--width", "128",
        "--device", "cpu", "--threads", "1", "--runs", "2", "--warmup", "1", "--label-nc", "5", "--end-to-end",
        "--config", json.dumps(TINY["asapnet"]), "--out", str(out),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert FIELDS <= set(res)
    assert json.loads(out.read_text()) == res
    assert res["model"] == "asapnet" and res["impl"] == "fast" and res["runs"] == 2
    assert 0 < res["median_ms"] <= res["p90_ms"] + 1e-9
    assert res["gmacs"] == pytest.approx(res["macs"] / 1e9) and res["macs"] > 0
    assert res["environment"]["threads"] == 1 and res["environment"]["torch_version"] == torch.__version__
    assert res["config"] == {"label_nc": 5, "height": 64, **TINY["asapnet"]}
    assert make_config("asapnet", res["config"]).learned_factor == 64 // 16  # derived: all of the tile k = 4
    e2e = res["end_to_end"]
    assert e2e["runs"] == 2 and e2e["median_ms"] > 0 and e2e["label_map"] == "random"
    # the parameter count is the model's
    model = build_timing_model("asapnet", 64, label_nc=5, overrides=TINY["asapnet"])
    assert res["params"] == sum(p.numel() for p in model.parameters())


def test_cli_names_an_unknown_model_and_bad_config(capsys):
    base = ["--height", "64", "--width", "64", "--runs", "1"]
    with pytest.raises(SystemExit) as e:
        _main(base + ["--model", "unet"])
    assert e.value.code != 0 and "unet" in capsys.readouterr().err
    assert _main(base + ["--model", "pix2pixhd", "--config", '{"no_such_key": 1}']) == 2
    assert "no_such_key" in capsys.readouterr().err
    assert _main(base + ["--model", "pix2pixhd", "--impl", "fast"]) == 2
    assert "asapnet only" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["pix2pixhd", "spade", "asapnet"])
def test_macs_on_meta_equal_a_real_forward(name):
    torch.manual_seed(0)
    h, w = 64, 64
    tiny = {**TINY[name], "spectral_norm": False} if name == "spade" else TINY[name]  # see lib.models.complexity.macs_on_meta
    cfg = timing_config(name, h, 5, tiny)
    model = build_timing_model(name, h, label_nc=5, overrides=tiny)
    onehot, edge = example_inputs(model, example_label_ids(h, w, label_nc=5))
    impl = "reference" if name == "asapnet" else None
    kw = {"impl": impl} if impl else {}
    real = count_macs(lambda: model(onehot, edge, **kw))
    assert meta_macs(name, cfg, [list(onehot.shape), list(edge.shape)], impl) == real


def test_mac_count_closed_form_for_one_conv():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    x = torch.zeros(2, 3, 10, 12)
    assert count_macs(lambda: conv(x)) == 2 * 10 * 12 * 8 * 3 * 9  # B H W C_out C_in k^2


def test_fast_asapnet_counts_fewer_macs_than_the_reference():
    """Closed form of the difference. MLP layer 1: the gather replaces label_nc * width MACs per
    pixel, the separable encoding C_pe * width per pixel by 2 k C_pe * width per tile. Stem (k =
    learned_ds_factor: no tent stage): the 3x3 conv's label part, label_nc * 9 * lr_width per
    pixel, becomes a gather. Deriving the ids costs label_nc per pixel (a weighted sum)."""
    h, w, nc = 64, 128, 5
    res = {impl: measure("asapnet", h, w, label_nc=nc, impl=impl, runs=1, warmup=0, memory=False,
                         overrides=TINY["asapnet"]) for impl in ("fast", "reference")}
    width, lr_width, k = TINY["asapnet"]["hr_width"], TINY["asapnet"]["lr_width"], h // 16
    assert make_config("asapnet", res["reference"]["config"]).learned_factor == k
    c_pe, tiles, hw = 4 * 2, (h // k) * (w // k), h * w  # 4 log2 k encoding channels
    saved = hw * nc * width + c_pe * width * (hw - 2 * k * tiles) + hw * nc * 9 * lr_width - hw * nc
    assert res["reference"]["macs"] - res["fast"]["macs"] == saved
    assert res["fast"]["macs_counted_on"] == "cpu" and res["reference"]["macs_counted_on"] == "meta"


def test_example_labels_have_regions_and_edges():
    ids = example_label_ids(32, 48, batch=2, label_nc=7, seed=1)
    assert ids.shape == (2, 32, 48) and ids.min() >= 0 and ids.max() < 7
    assert torch.equal(ids[:, ::8, ::8].repeat_interleave(8, 1).repeat_interleave(8, 2), ids)
    model = build_timing_model("pix2pixhd", 32, label_nc=7, overrides=TINY["pix2pixhd"])
    onehot, edge = example_inputs(model, ids)
    assert torch.equal(onehot.argmax(1), ids) and onehot.sum(1).eq(1).all()
    assert edge.shape == (2, 1, 32, 48) and set(edge.unique().tolist()) <= {0.0, 1.0}
