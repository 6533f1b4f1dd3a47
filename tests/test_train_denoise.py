"""Denoiser training: learning, exact resume after SIGKILL, NaN stop, checkpoint contents, DDP."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lib.checkpoint import load_checkpoint
from lib.config import ConfigError
from lib.train.common import read_losses
from lib.train.denoise import (
    LOSS_COLUMNS,
    DenoiseTrainConfig,
    batch_indices,
    load_denoiser,
    train_denoiser,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = {"depth": 3, "channels": 8}  # tiny DnCNN (BN on the middle layer)
TINY_NO_BN = {"depth": 3, "channels": 8, "batch_norm": False}


def _images(n: int = 4, size: int = 40, seed: int = 0) -> list[np.ndarray]:
    """Piecewise-constant gray images (5x5 random blocks of 8 px): easy to denoise."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(30, 226, size=(n, size // 8, size // 8))
    return list(np.kron(blocks, np.ones((8, 8))).astype(np.uint8))  # (n, size, size)


def _cfg(**kw) -> DenoiseTrainConfig:
    base = dict(patch_size=16, batch_size=8, patches_per_epoch=32, epochs=100, sigma_fixed=25.0,
                checkpoint_every=2, log_every=1, threads=1, device="cpu")
    return DenoiseTrainConfig(**{**base, **kw})


def _state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def test_config_defaults_and_strictness():
    cfg = DenoiseTrainConfig()
    assert (cfg.patch_size, cfg.batch_size, cfg.patches_per_epoch) == (40, 128, 128 * 1600)
    assert cfg.steps_per_epoch == 1600 and cfg.total_steps == 50 * 1600
    assert DenoiseTrainConfig(max_steps=7).total_steps == 7
    with pytest.raises(ValueError, match="patches_per_epoch"):
        DenoiseTrainConfig(batch_size=16, patches_per_epoch=8)
    with pytest.raises(ConfigError, match="learning_rate"):
        train_denoiser("dncnn", TINY, {"learning_rate": 1.0}, _images(), "unused")


def test_batch_indices_shard_each_step_disjointly():
    _, whole = batch_indices(5, steps_per_epoch=3, batch_size=8)
    assert list(whole) == list(range(16, 24))
    shards = [batch_indices(5, 3, 8, rank=r, world_size=2) for r in range(2)]
    assert [e for e, _ in shards] == [1, 1]
    assert sorted(list(shards[0][1]) + list(shards[1][1])) == list(whole)
    with pytest.raises(ValueError, match="world size 3"):
        batch_indices(0, 3, 8, world_size=3)


def test_loss_decreases_and_outputs(tmp_path):
    out = tmp_path / "run"
    summary = train_denoiser("dncnn", TINY, _cfg(max_steps=30, log_every=5, checkpoint_every=10), _images(), out,
                             progress=False)
    assert summary["steps"] == 30 and summary["steps_run"] == 30 and summary["world_size"] == 1
    rows = read_losses(out / "losses.csv")
    assert list(rows[0]) == list(LOSS_COLUMNS)
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 6, 7]  # 4 steps per epoch; epoch of the logged step
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"], [r["loss"] for r in rows]
    # the returned model denoises like the trained one and takes the shared interface
    model = load_denoiser(out / "checkpoint.pt")
    assert not model.training
    noisy = torch.rand(2, 1, 16, 16)
    assert model(noisy, sigma=torch.full((2,), 25.0)).shape == (2, 1, 16, 16)


def test_checkpoint_contents_weights_only(tmp_path):
    cfg = _cfg(max_steps=2, sigma_fixed=None, sigma_range=(5.0, 30.0))
    train_denoiser("dncnn", TINY, cfg, _images(), tmp_path, progress=False)
    raw = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert raw["model"] == "dncnn" and raw["step"] == 2 and raw["epoch"] == 0
    assert raw["config"] == {"depth": 3, "channels": 8, "in_channels": 1, "batch_norm": True, "residual": True}
    assert raw["params"]["sigma_range"] == [5.0, 30.0] and raw["params"]["seed"] == 0
    assert raw["torch_version"] == torch.__version__ and raw["git_revision"]
    assert raw["optimizers"]["adam"]["state"][0]["step"] == 2
    assert raw["schedulers"]["lr"]["last_epoch"] == 2
    assert {"python", "numpy", "torch", "cuda"} <= set(raw["rng"][0])
    assert raw["state_dict"]["body.0.weight"].shape == (8, 1, 3, 3)
    load_checkpoint(tmp_path / "checkpoint.pt")  # the project's own loader accepts it


def test_resume_after_sigkill_is_bitwise_identical(tmp_path):
    images = np.stack(_images())  # (n, H, W)
    np.save(tmp_path / "images.npy", images)
    cfg = dict(patch_size=16, batch_size=8, patches_per_epoch=24, epochs=100, sigma_fixed=None,
               checkpoint_every=2, log_every=1, threads=1, device="cpu", max_steps=8)
    killed = tmp_path / "killed"
    code = (
        "import json, os, signal, sys\n"
        "import numpy as np\n"
        "from lib.train.denoise import train_denoiser\n"
        "a = json.loads(sys.argv[1])\n"
        "def hook(step, loss, model):\n"
        "    if step == a['kill_at']:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "train_denoiser('dncnn', a['model'], a['train'], list(np.load(a['images'])), a['out'],"
        " progress=False, on_step=hook)\n"
    )
    args = dict(model=TINY, train=cfg, images=str(tmp_path / "images.npy"), out=str(killed), kill_at=5)
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert load_checkpoint(killed / "checkpoint.pt")["step"] == 4
    assert [r["step"] for r in read_losses(killed / "losses.csv")] == [1, 2, 3, 4, 5]  # row 5 is past the checkpoint

    resumed = train_denoiser("dncnn", TINY, cfg, list(images), killed, progress=False)
    assert (resumed["start_step"], resumed["steps"]) == (4, 8)
    straight = train_denoiser("dncnn", TINY, cfg, list(images), tmp_path / "straight", progress=False)
    assert straight["steps"] == 8

    a = torch.load(killed / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 8
    assert _state_equal(a["state_dict"], b["state_dict"])  # weights and BN statistics, bitwise
    assert _state_equal(a["optimizers"]["adam"]["state"][0], b["optimizers"]["adam"]["state"][0])
    rows_a, rows_b = read_losses(killed / "losses.csv"), read_losses(tmp_path / "straight" / "losses.csv")
    assert [r["step"] for r in rows_a] == list(range(1, 9))  # exactly one row per logged step
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(rows_a) == drop(rows_b)
    assert resumed["final_loss"] == straight["final_loss"]
    # a finished run resumes to nothing
    again = train_denoiser("dncnn", TINY, cfg, list(images), killed, progress=False)
    assert again["steps_run"] == 0 and again["final_loss"] == straight["final_loss"]


def test_resume_refuses_other_model_or_settings(tmp_path):
    train_denoiser("dncnn", TINY, _cfg(max_steps=2), _images(), tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"checkpoint holds model 'dncnn' with config .*'channels': 8.*"
                                         r"requested model 'dncnn' with config .*'channels': 4"):
        train_denoiser("dncnn", {"depth": 3, "channels": 4}, _cfg(max_steps=4), _images(), tmp_path, progress=False)
    with pytest.raises(ValueError, match="lr: checkpoint 0.001 vs requested 0.01"):
        train_denoiser("dncnn", TINY, _cfg(max_steps=4, lr=1e-2), _images(), tmp_path, progress=False)
    # resume=False starts afresh
    assert train_denoiser("dncnn", {"depth": 3, "channels": 4}, _cfg(max_steps=2), _images(), tmp_path,
                          resume=False, progress=False)["start_step"] == 0


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    # 2 steps per epoch; after epoch 2 (step 4) the learning rate jumps to 1e27 and step 5
    # blows the weights up: step 6 computes a non-finite loss.
    cfg = _cfg(patches_per_epoch=16, milestones=(2,), gamma=1e30)
    with pytest.raises(FloatingPointError, match=r"'loss' = (nan|inf) at step 6; last good checkpoint: .*checkpoint\.pt"):
        train_denoiser("dncnn", TINY, cfg, _images(), tmp_path, progress=False)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 4
    assert all(torch.isfinite(t).all() for t in ckpt["state_dict"].values())
    model = load_denoiser(tmp_path / "checkpoint.pt")
    assert torch.isfinite(model(torch.rand(1, 1, 16, 16))).all()


_DDP_SCRIPT = """
import json, os, sys
import numpy as np, torch
from lib.train.denoise import train_denoiser
a = json.loads(sys.argv[1])
rank = int(os.environ["RANK"])
def dump(step, loss, model):
    if step == a["train"]["max_steps"]:
        torch.save(model.state_dict(), os.path.join(a["dump"], f"rank{rank}.pt"))
s = train_denoiser("dncnn", a["model"], a["train"], list(np.load(a["images"])), a["out"], progress=False, on_step=dump)
assert s["world_size"] == 2, s
"""


def test_ddp_two_processes_on_cpu_match_single_process(tmp_path):
    images = np.stack(_images())
    np.save(tmp_path / "images.npy", images)
    (tmp_path / "ddp.py").write_text(_DDP_SCRIPT)
    cfg = dict(patch_size=16, batch_size=8, patches_per_epoch=32, epochs=10, sigma_fixed=25.0,
               checkpoint_every=2, log_every=1, threads=1, device="cpu", max_steps=4)
    args = dict(model=TINY_NO_BN, train=cfg, images=str(tmp_path / "images.npy"), out=str(tmp_path / "ddp"),
                dump=str(tmp_path))
    torchrun = Path(sys.executable).parent / "torchrun"
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", str(tmp_path / "ddp.py"), json.dumps(args)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert _state_equal(r0, r1)  # DDP keeps the replicas identical
    ddp_ckpt = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt")
    assert ddp_ckpt["step"] == 4 and len(ddp_ckpt["rng"]) == 2 and ddp_ckpt["extra"]["world_size"] == 2
    assert _state_equal(ddp_ckpt["state_dict"], r0)

    # without batch norm, the averaged shard gradients equal the full-batch gradient
    single = tmp_path / "single"
    train_denoiser("dncnn", TINY_NO_BN, cfg, list(images), single, progress=False)
    one = load_checkpoint(single / "checkpoint.pt")["state_dict"]
    for k in one:
        assert torch.allclose(one[k], r0[k], rtol=1e-4, atol=1e-6), k
    ddp_rows, one_rows = read_losses(tmp_path / "ddp" / "losses.csv"), read_losses(single / "losses.csv")
    assert [r["step"] for r in ddp_rows] == [1, 2, 3, 4]
    assert np.allclose([r["loss"] for r in ddp_rows], [r["loss"] for r in one_rows], rtol=1e-5)
