"""Shared training machinery: RNG state and training checkpoints (weights_only), loss CSV, finite
checks, set-up checks, AMP."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from lib.models import load_model
from lib.train.common import (
    append_losses,
    autocast,
    check_batch,
    check_finite,
    check_finite_params,
    check_unflipped,
    init_distributed,
    prepare_output,
    read_losses,
    truncate_losses,
    wrap_ddp,
)
from lib.train.state import (
    load_training_checkpoint,
    rank_seed,
    rng_state,
    save_training_checkpoint,
    seed_everything,
    set_rng_state,
    unwrap,
)


def _draws() -> tuple:
    return (
        [random.random() for _ in range(3)],
        random.gauss(0, 1),
        np.random.rand(3).tolist(),
        np.random.randn(3).tolist(),  # exercises NumPy's cached gaussian
        torch.rand(3).tolist(),
    )


def test_rng_state_roundtrip_through_weights_only_load(tmp_path):
    seed_everything(3)
    random.gauss(0, 1)  # leaves a cached gauss_next in Python's state
    np.random.randn(1)  # leaves a cached gaussian in NumPy's state
    state = rng_state()
    torch.save(state, tmp_path / "rng.pt")
    want = _draws()
    seed_everything(99)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert _draws() == want


def test_seed_everything_and_rank_seed_are_deterministic():
    seed_everything(5)
    a = _draws()
    seed_everything(5)
    assert _draws() == a
    assert rank_seed(0, 1) == rank_seed(0, 1)
    assert len({rank_seed(0, r) for r in range(8)} | {rank_seed(1, 0)}) == 9


class _Gen(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))  # (B, 3, H-2, W-2)


def _gan_like(seed: int):
    """Two models, two optimizers, two schedulers, stepped once (as a GAN trainer holds them)."""
    torch.manual_seed(seed)
    g, d = _Gen(), nn.Linear(4, 1)
    og = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.0, 0.9))
    od = torch.optim.Adam(d.parameters(), lr=4e-4, betas=(0.0, 0.9))
    sg = torch.optim.lr_scheduler.LambdaLR(og, lambda e: 1.0 - e / 10)
    sd = torch.optim.lr_scheduler.MultiStepLR(od, [2, 5], 0.1)
    g(torch.randn(2, 2, 5, 5)).square().mean().backward()
    d(torch.randn(2, 4)).square().mean().backward()
    for o, s in ((og, sg), (od, sd)):
        o.step()
        s.step()
    return {"generator": g, "discriminator": d}, {"g": og, "d": od}, {"g": sg, "d": sd}


def test_training_checkpoint_is_weights_only_and_self_describing(tmp_path):
    models, opts, scheds = _gan_like(0)
    path = save_training_checkpoint(
        tmp_path / "ckpt.pt",
        model_name="dncnn",
        model_cfg={"depth": 3, "channels": 4},
        params={"lr": 1e-4, "milestones": (1, 2)},
        step=7,
        epoch=2,
        models=models,
        optimizers=opts,
        schedulers=scheds,
        extra={"seconds": 1.5},
    )
    raw = torch.load(path, weights_only=True)
    for key in ("model", "config", "params", "state_dict", "step", "epoch", "git_revision", "torch_version",
                "optimizers", "schedulers", "rng", "aux_state_dicts", "primary", "extra"):
        assert key in raw, key
    assert raw["model"] == "dncnn" and raw["step"] == 7 and raw["epoch"] == 2
    assert raw["config"] == {"depth": 3, "channels": 4} and raw["params"]["milestones"] == [1, 2]
    assert raw["torch_version"] == torch.__version__ and raw["git_revision"]
    assert raw["primary"] == "generator" and set(raw["aux_state_dicts"]) == {"discriminator"}
    assert set(raw["state_dict"]) == set(models["generator"].state_dict())
    assert set(raw["optimizers"]) == {"g", "d"} and raw["optimizers"]["g"]["state"]
    assert raw["schedulers"]["d"]["last_epoch"] == 1 and len(raw["rng"]) == 1

    # restore into fresh objects: weights, optimizer moments and scheduler position come back
    fresh_models, fresh_opts, fresh_scheds = _gan_like(1)
    assert not torch.equal(fresh_models["discriminator"].weight, models["discriminator"].weight)
    info = load_training_checkpoint(path, fresh_models, fresh_opts, fresh_scheds, model_name="dncnn",
                                    model_cfg={"depth": 3, "channels": 4})
    assert info["step"] == 7 and info["epoch"] == 2 and info["extra"] == {"seconds": 1.5}
    for key in models:
        for (n, a), b in zip(models[key].state_dict().items(), fresh_models[key].state_dict().values()):
            assert torch.equal(a, b), (key, n)
    assert torch.equal(opts["d"].state_dict()["state"][0]["exp_avg"], fresh_opts["d"].state_dict()["state"][0]["exp_avg"])
    assert fresh_scheds["g"].get_last_lr() == scheds["g"].get_last_lr()


def test_load_training_checkpoint_names_mismatches(tmp_path):
    models, opts, scheds = _gan_like(0)
    path = save_training_checkpoint(tmp_path / "c.pt", model_name="dncnn", model_cfg={"depth": 3}, params=None,
                                    step=1, epoch=0, models=models, optimizers=opts, schedulers=scheds)
    with pytest.raises(ValueError, match=r"'dncnn'.*depth.*3.*requested model 'asapnet'"):
        load_training_checkpoint(path, models, model_name="asapnet", model_cfg={"depth": 3})
    with pytest.raises(ValueError, match=r"requested model 'dncnn' with config \{'depth': 4\}"):
        load_training_checkpoint(path, models, model_name="dncnn", model_cfg={"depth": 4})
    with pytest.raises(ValueError, match="discriminator"):
        load_training_checkpoint(path, {"generator": models["generator"]})
    with pytest.raises(ValueError, match="c.pt.*optimizers"):
        load_training_checkpoint(path, models, {"g": opts["g"]})


def test_unwrap_and_load_model_build_from_registry(tmp_path):
    from lib.models import build

    net = build("dncnn", {"depth": 3, "channels": 4})
    wrapped = torch.compile(net)  # a wrapper (compiles lazily, never called here)
    assert unwrap(wrapped) is net and unwrap(net) is net
    opt = torch.optim.Adam(net.parameters())
    path = save_training_checkpoint(tmp_path / "m.pt", model_name="dncnn", model_cfg=net.cfg, params={}, step=0,
                                    epoch=0, models={"model": wrapped}, optimizers={"adam": opt}, schedulers={})
    assert list(torch.load(path, weights_only=True)["state_dict"]) == list(net.state_dict())  # no wrapper prefix
    loaded = load_model(path)
    assert not loaded.training and loaded.cfg == net.cfg
    x = torch.rand(1, 1, 8, 8)
    net.eval()
    assert torch.equal(loaded(x), net(x))


def test_loss_csv_append_truncate_and_partial_line(tmp_path):
    path = tmp_path / "losses.csv"
    append_losses(path, [dict(step=s, loss=1.0 / s) for s in (1, 2, 3)])
    append_losses(path, [dict(step=4, loss=0.1)])
    assert [r["step"] for r in read_losses(path)] == [1, 2, 3, 4]
    assert read_losses(path)[2]["loss"] == 1.0 / 3  # full precision
    with pytest.raises(ValueError, match="losses.csv"):
        append_losses(path, [dict(step=5, other=1.0)])
    with path.open("a") as f:
        f.write("5,0.0")  # a write cut short by a kill
    assert [r["step"] for r in read_losses(path)] == [1, 2, 3, 4]
    assert truncate_losses(path, 2) == 2
    assert path.read_text() == "step,loss\n1,1.0\n2,0.5\n"
    epochs = tmp_path / "epochs.csv"  # kept lines are copied as written: integer columns stay integers
    append_losses(epochs, [dict(step=s, epoch=s // 2, loss=0.5) for s in (1, 2, 3)])
    truncate_losses(epochs, 2)
    assert epochs.read_text() == "step,epoch,loss\n1,0,0.5\n2,1,0.5\n"
    append_losses(path, [dict(step=3, loss=0.25)])
    assert [r["step"] for r in read_losses(path)] == [1, 2, 3]


def test_check_finite_names_loss_step_and_checkpoint(tmp_path):
    check_finite({"g": torch.tensor(1.0), "d": 0.5}, 3, None)
    with pytest.raises(FloatingPointError, match=r"'d' = nan at step 12; last good checkpoint: .*ck\.pt"):
        check_finite({"g": torch.tensor(1.0), "d": torch.tensor(float("nan"))}, 12, tmp_path / "ck.pt")
    with pytest.raises(FloatingPointError, match="'g' = inf at step 1; no checkpoint"):
        check_finite({"g": float("inf")}, 1, None)
    lin = nn.Linear(2, 2)
    check_finite_params({"m": lin}, 1, None)
    with torch.no_grad():
        lin.bias[0] = float("nan")
    with pytest.raises(FloatingPointError, match="m.bias after step 4"):
        check_finite_params({"m": lin}, 4, None)


def test_trainer_setup_checks_name_the_problem():
    check_batch(8, 2, 8, 1)
    with pytest.raises(ValueError, match="batch_size 6 is not divisible by the world size 4"):
        check_batch(6, 4)
    with pytest.raises(ValueError, match="batch_size 8 exceeds the 5 training items"):
        check_batch(8, 2, 5, 5 // 8)

    class Flipped:
        flip = True

    check_unflipped(object(), "XConfig")
    with pytest.raises(ValueError, match=r"\(XConfig\.flip\); build the dataset with flip=False"):
        check_unflipped(Flipped(), "XConfig")
    lin = nn.Linear(2, 2)
    assert wrap_ddp(lin, 1, torch.device("cpu")) is lin


def test_prepare_output_fresh_start_and_resume(tmp_path):
    out = tmp_path / "run"
    ckpt, csv_path, samples = out / "checkpoint.pt", out / "losses.csv", out / "samples"
    samples.mkdir(parents=True)
    (samples / "a.png").write_bytes(b"x")
    (samples / "keep.txt").write_text("x")
    ckpt.write_bytes(b"x")
    append_losses(csv_path, [dict(step=s, loss=float(s)) for s in (1, 2, 3)])
    assert prepare_output(out, ckpt, csv_path, 2, 0) == ckpt  # resume: rows after step 2 dropped
    assert ckpt.is_file() and [r["step"] for r in read_losses(csv_path)] == [1, 2]
    assert prepare_output(out, ckpt, csv_path, 0, 1) is None  # other ranks write nothing
    assert ckpt.is_file() and csv_path.is_file()
    assert prepare_output(out, ckpt, csv_path, 0, 0, stale=samples.glob("*.png")) is None
    assert not ckpt.exists() and not csv_path.exists()
    assert sorted(p.name for p in samples.iterdir()) == ["keep.txt"]
    fresh = tmp_path / "new" / "dir"
    prepare_output(fresh, fresh / "c.pt", fresh / "l.csv", 0, 0)
    assert fresh.is_dir()


def test_single_process_without_torchrun_env(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert init_distributed(device="cpu") == (0, 1, torch.device("cpu"))
    assert not torch.distributed.is_initialized()


def test_autocast_is_a_noop_on_cpu():
    a = torch.rand(4, 4)
    with autocast("cpu", enabled=True):
        assert (a @ a).dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what a plain autocast would do
        assert (a @ a).dtype == torch.bfloat16
