"""Batch inference CLI: a tiny ASAPNet checkpoint, label PNGs and a corrupt file; the corrupt
and out-of-range files are named, the others written and equal to the model's output."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from lib.checkpoint import save_checkpoint
from lib.config import to_dict
from lib.data.images import read_image
from lib.models import build, load_model, make_config, model_name
from lib.paths import ROOT
from lib.translation.translate import main, translate_dir

LABEL_NC = 13  # Facades label ids
CFG = dict(label_nc=LABEL_NC, use_instance_edge=False, height=64, lr_width=8, lr_max_width=16, lr_depth=1,
           learned_ds_factor=4, hr_width=8, hr_depth=3)


@pytest.fixture()
def setup(tmp_path):
    torch.manual_seed(0)
    model = build("asapnet", CFG)
    with torch.no_grad():
        model.lowres.head.weight.mul_(50.0)  # outputs spread over the colour range
    ckpt = save_checkpoint(tmp_path / "g.pt", model="asapnet", config=to_dict(make_config("asapnet", CFG)),
                           state_dict=model.state_dict(), step=0)
    labels = tmp_path / "labels"
    labels.mkdir()
    rng = np.random.default_rng(0)
    ids = {}
    for i, size in enumerate([(64, 64), (64, 128), (64, 64)]):
        ids[f"im{i}"] = rng.integers(0, LABEL_NC, size=size).astype(np.uint8)
        Image.fromarray(ids[f"im{i}"], mode="L").save(labels / f"im{i}.png")
    (labels / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return model.eval(), ckpt, labels, ids


def _expected(model, ids: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(ids.astype(np.int64))[None]  # (1, H, W)
    onehot = torch.nn.functional.one_hot(t, LABEL_NC).permute(0, 3, 1, 2).float()  # (1, nc, H, W)
    with torch.no_grad():
        out = model(onehot, impl="reference")[0]  # (3, H, W)
    return ((out.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


@pytest.mark.slow  # a subprocess: imports torch again
def test_cli_writes_images_names_the_corrupt_file_and_exits_1(setup, tmp_path):
    model, ckpt, labels, ids = setup
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lib.translation.translate", "--checkpoint", str(ckpt), "--labels", str(labels),
           "--out", str(out), "--device", "cpu", "--batch", "2", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert proc.returncode == 1, proc.stderr
    assert "broken.png" in proc.stderr
    assert "images/s" in proc.stdout and "wrote 3 images" in proc.stdout and "fast path" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["im0.png", "im1.png", "im2.png"]
    for name, lab in ids.items():
        got = read_image(out / f"{name}.png")
        assert got.shape == (*lab.shape, 3)
        diff = np.abs(got.astype(int) - _expected(model, lab).astype(int))
        assert diff.max() <= 1  # fast path vs reference: rounding at most one level apart


def test_out_of_range_ids_missing_instances_and_bad_sizes_are_named(setup, tmp_path, capsys):
    model, ckpt, labels, _ = setup
    Image.fromarray(np.full((64, 64), LABEL_NC, np.uint8), mode="L").save(labels / "toolarge.png")
    Image.fromarray(np.zeros((62, 64), np.uint8), mode="L").save(labels / "oddsize.png")  # not a multiple of k = 4
    loaded = load_model(ckpt)
    assert model_name(loaded) == "asapnet"
    res = translate_dir(loaded, labels, tmp_path / "o", batch=4, progress=False)
    failed = {p.name: msg for p, msg in res.failed}
    assert set(failed) == {"broken.png", "toolarge.png", "oddsize.png"}
    assert f"outside [0, {LABEL_NC})" in failed["toolarge.png"] and "toolarge.png" in failed["toolarge.png"]
    assert "tile size" in failed["oddsize.png"]
    assert len(res.written) == 3 and res.images_per_second > 0
    # a model that uses instance edges: missing instance maps are named; without --instances, zeros
    cfg = {**CFG, "use_instance_edge": True}
    m2 = build("asapnet", cfg)
    ck2 = save_checkpoint(tmp_path / "g2.pt", model="asapnet", config=to_dict(make_config("asapnet", cfg)),
                          state_dict=m2.state_dict(), step=0)
    inst = tmp_path / "inst"
    inst.mkdir()
    Image.fromarray(np.zeros((64, 64), np.uint8), mode="L").save(inst / "im0.png")
    code = main(["--checkpoint", str(ck2), "--labels", str(labels), "--out", str(tmp_path / "o2"),
                 "--instances", str(inst), "--no-progress", "--pattern", "im*.png"])
    err = capsys.readouterr().err
    assert code == 1 and "im1.png" in err and "im2.png" in err and "im0.png" not in err
    assert main(["--checkpoint", str(ck2), "--labels", str(labels), "--out", str(tmp_path / "o3"),
                 "--no-progress", "--pattern", "im*.png"]) == 0


def test_not_a_generator_checkpoint_is_refused(tmp_path, capsys):
    m = build("dncnn", {})
    ck = save_checkpoint(tmp_path / "d.pt", model="dncnn", config={}, state_dict=m.state_dict(), step=0)
    (tmp_path / "labels").mkdir()
    assert main(["--checkpoint", str(ck), "--labels", str(tmp_path / "labels"), "--out", str(tmp_path / "o")]) == 2
    assert "not a label->photo generator" in capsys.readouterr().err
