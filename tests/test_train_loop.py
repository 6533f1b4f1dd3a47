"""The shared training loop over the three trainers: data order, outputs and checkpoint format,
exact resume after SIGKILL, NaN stop, time budget and two-process DDP."""
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
from conftest import TINY_DNCNN_NO_BN, tiny_train

from lib.checkpoint import load_checkpoint
from lib.models import load_model, model_name
from lib.train import denoise, gan, segmenter
from lib.train.common import read_losses
from lib.train.loop import _running, batch_indices

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
KINDS = ("gan", "segmenter", "denoise")
COLUMNS = {"gan": gan.LOSS_COLUMNS, "segmenter": segmenter.LOSS_COLUMNS, "denoise": denoise.LOSS_COLUMNS}
PRIMARY = {"gan": "asapnet", "segmenter": "segmenter", "denoise": "dncnn"}


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _plain(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def _epoch_texts(csv_path: Path) -> list[str]:
    lines = csv_path.read_text().splitlines()
    col = lines[0].split(",").index("epoch")
    return [line.split(",")[col] for line in lines[1:]]


# ----------------------------------------------------------------------------- data order


def test_batch_indices_permute_each_epoch_and_shard_disjointly():
    n, b = 10, 4  # 2 steps per epoch, items 8, 9 of the permutation dropped
    epoch0 = [batch_indices(s, n, b, seed=3)[1] for s in range(2)]
    assert len(set(sum(epoch0, []))) == 8 and all(len(x) == 4 for x in epoch0)
    assert batch_indices(1, n, b, seed=3) == (0, epoch0[1])  # a pure function of (step, seed)
    assert batch_indices(2, n, b, seed=3)[0] == 1
    assert len({tuple(batch_indices(2 * e, n, b, seed=3)[1]) for e in range(6)}) > 1  # epochs shuffled differently
    shards = [batch_indices(5, n, b, seed=3, rank=r, world_size=2) for r in range(2)]
    assert shards[0][1] + shards[1][1] == batch_indices(5, n, b, seed=3)[1]
    # in order (denoising patches are random themselves): step 5 of 3 per epoch = items 16..23 of epoch 1
    assert batch_indices(5, 24, 8, seed=0, shuffle=False) == (1, list(range(16, 24)))
    assert batch_indices(5, 24, 8, seed=0, rank=1, world_size=2, shuffle=False) == (1, list(range(20, 24)))
    with pytest.raises(ValueError, match="world size 3"):
        batch_indices(0, n, b, seed=0, world_size=3)
    with pytest.raises(ValueError, match="exceeds"):
        batch_indices(0, 3, 4, seed=0)


def test_running_sums_read_checkpoints_written_before_the_shared_loop():
    assert _running({"sums": [1.0, 2.0], "count": 2, "last": [0.5, 0.7]}, ("loss", "acc")) == (
        {"loss": 1.0, "acc": 2.0}, 2, {"loss": 0.5, "acc": 0.7})
    assert _running({"loss_sum": 3.0, "loss_count": 1, "last_loss": 0.2}, ("loss",)) == ({"loss": 3.0}, 1, {"loss": 0.2})
    now = {"loss_sums": {"loss": 1.5}, "loss_count": 3, "last_losses": {"loss": 0.1}}
    assert _running(now, ("loss",)) == ({"loss": 1.5}, 3, {"loss": 0.1})


# ----------------------------------------------------------------------------- outputs


@pytest.mark.parametrize("kind", KINDS)
def test_outputs_checkpoint_format_and_loader(kind, tmp_path):
    summary = tiny_train(kind, tmp_path, max_steps=4)
    assert (summary["steps"], summary["start_step"], summary["steps_run"]) == (4, 0, 4)
    rows = read_losses(tmp_path / "losses.csv")
    assert list(rows[0]) == list(COLUMNS[kind]) and [r["step"] for r in rows] == [1, 2, 3, 4]
    assert _epoch_texts(tmp_path / "losses.csv") == ["0", "0", "0", "1"]  # 3 steps per epoch
    assert all(np.isfinite(list(r.values())).all() for r in rows)
    raw = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    for key in ("model", "config", "params", "state_dict", "step", "epoch", "primary", "aux_state_dicts", "optimizers",
                "schedulers", "scalers", "rng", "extra", "format", "git_revision", "torch_version"):
        assert key in raw, key
    assert raw["model"] == PRIMARY[kind] and (raw["step"], raw["epoch"]) == (4, 1)
    assert {"seconds", "world_size", "num_items", "loss_sums", "loss_count", "last_losses", "stage_params"} <= set(raw["extra"])
    assert raw["extra"]["last_losses"] == {k: rows[-1][k] for k in COLUMNS[kind][2:-1] if not k.startswith("lr")}
    model = load_model(tmp_path / "checkpoint.pt")  # the one checkpoint loader
    assert not model.training and model_name(model) == PRIMARY[kind] and _equal(model.state_dict(), raw["state_dict"])


# ----------------------------------------------------------------------------- resume

_KILL_SCRIPT = """
import json, os, signal, sys
sys.path.insert(0, {tests!r})
from conftest import tiny_train
a = json.loads(sys.argv[1])
def hook(step, losses, models):
    if step == a["kill_at"]:
        os.kill(os.getpid(), signal.SIGKILL)
tiny_train(a["kind"], a["out"], on_step=hook, max_steps=a["max_steps"])
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_resume_after_sigkill_is_bitwise_identical(kind, tmp_path):
    killed = tmp_path / "killed"
    args = dict(kind=kind, out=str(killed), kill_at=5, max_steps=8)  # 3 steps per epoch: kill and resume cross epochs
    proc = subprocess.run([sys.executable, "-c", _KILL_SCRIPT.format(tests=str(TESTS)), json.dumps(args)],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert load_checkpoint(killed / "checkpoint.pt")["step"] == 4
    assert [r["step"] for r in read_losses(killed / "losses.csv")] == [1, 2, 3, 4, 5]  # row 5 is past the checkpoint

    resumed = tiny_train(kind, killed, max_steps=8)
    assert (resumed["start_step"], resumed["steps"]) == (4, 8)
    straight = tiny_train(kind, tmp_path / "straight", max_steps=8)
    a = torch.load(killed / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 8
    assert _equal(a["state_dict"], b["state_dict"])  # weights and BN statistics, bitwise
    assert all(_equal(a["aux_state_dicts"][k], b["aux_state_dicts"][k]) for k in b["aux_state_dicts"])
    for key in b["optimizers"]:
        assert _equal(a["optimizers"][key]["state"][0], b["optimizers"][key]["state"][0])
    rows_a, rows_b = read_losses(killed / "losses.csv"), read_losses(tmp_path / "straight" / "losses.csv")
    assert [r["step"] for r in rows_a] == list(range(1, 9)) and _plain(rows_a) == _plain(rows_b)
    assert _epoch_texts(killed / "losses.csv") == _epoch_texts(tmp_path / "straight" / "losses.csv")  # ints stay ints
    for key in ("final_losses", "final_loss", "final_pixel_accuracy"):
        assert resumed.get(key) == straight.get(key)
    # a finished run resumes to nothing
    assert tiny_train(kind, killed, max_steps=8)["steps_run"] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_changed_setting_starts_afresh_and_equals_a_fresh_run(kind, tmp_path, capsys):
    """A run whose checkpoint was written with other trajectory settings does not fail: it says
    why in one line and starts from step 0; the result equals a run in an empty folder."""
    first = tiny_train(kind, tmp_path / "run", max_steps=4)
    assert first["steps"] == 4
    capsys.readouterr()
    changed = tiny_train(kind, tmp_path / "run", max_steps=4, seed=1)
    err = capsys.readouterr().err
    assert "seed: checkpoint 0 vs requested 1" in err and "starting afresh" in err
    assert (changed["start_step"], changed["steps_run"]) == (0, 4)
    tiny_train(kind, tmp_path / "fresh", max_steps=4, seed=1)
    a = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "fresh" / "checkpoint.pt", weights_only=True)
    assert _equal(a["state_dict"], b["state_dict"]) and a["params"]["seed"] == 1
    assert _plain(read_losses(tmp_path / "run" / "losses.csv")) == _plain(read_losses(tmp_path / "fresh" / "losses.csv"))


# ----------------------------------------------------------------------------- NaN guard


@pytest.mark.parametrize("kind", KINDS)
def test_nan_stops_and_keeps_the_last_good_checkpoint(kind, tmp_path):
    def poison(step, losses, models):  # weights turn NaN after step 3: step 4 computes a non-finite loss
        if step == 3:
            with torch.no_grad():
                next(iter(models.values())).parameters().__next__().fill_(float("nan"))

    with pytest.raises(FloatingPointError, match=r"non-finite loss .* at step 4; last good checkpoint: .*checkpoint\.pt"):
        tiny_train(kind, tmp_path, max_steps=8, on_step=poison)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 2
    assert all(torch.isfinite(t).all() for t in ckpt["state_dict"].values() if t.is_floating_point())


# ----------------------------------------------------------------------------- time budget


@pytest.mark.parametrize("kind", ["gan", "segmenter"])
def test_time_budget_stops_at_a_checkpoint_and_resumes(kind, tmp_path):
    first = tiny_train(kind, tmp_path, max_steps=6, checkpoint_every=0, log_every=5, time_budget_s=1e-6)
    assert first["stopped_by_budget"] is True and first["steps"] == 1
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 1
    assert [r["step"] for r in read_losses(tmp_path / "losses.csv")] == [1]
    rest = tiny_train(kind, tmp_path, max_steps=6, checkpoint_every=0, log_every=5)
    assert (rest["start_step"], rest["steps"], rest["stopped_by_budget"]) == (1, 6, False)
    assert [r["step"] for r in read_losses(tmp_path / "losses.csv")] == [1, 5, 6]


# ----------------------------------------------------------------------------- DDP

_DDP_SCRIPT = """
import json, os, sys
import torch
sys.path.insert(0, {tests!r})
from conftest import tiny_train
a = json.loads(sys.argv[1])
rank = int(os.environ["RANK"])
def dump(step, losses, models):
    if step == a["max_steps"]:
        torch.save({{"models": {{k: m.state_dict() for k, m in models.items()}}, "losses": losses}},
                   os.path.join(a["dump"], f"rank{{rank}}.pt"))
s = tiny_train(a["kind"], a["out"], model_cfg=a["model_cfg"], data_kw=a["data_kw"], on_step=dump, max_steps=a["max_steps"], **a["over"])
assert s["world_size"] == 2, s
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_ddp_two_processes_on_cpu(kind, tmp_path):
    (tmp_path / "ddp.py").write_text(_DDP_SCRIPT.format(tests=str(TESTS)))
    model_cfg = TINY_DNCNN_NO_BN if kind == "denoise" else None
    data_kw, over = {"gan": ({"n": 4}, {"epochs": 1, "decay_epochs": 2}),  # 2 steps per epoch
                     "segmenter": ({"n": 8}, {"batch_size": 4}),  # batch norm needs 2 items per rank
                     "denoise": (None, {})}[kind]
    args = dict(kind=kind, out=str(tmp_path / "ddp"), dump=str(tmp_path), model_cfg=model_cfg, data_kw=data_kw, over=over,
                max_steps=3)
    torchrun = Path(sys.executable).parent / "torchrun"
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", str(tmp_path / "ddp.py"), json.dumps(args)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    primary = next(iter(r0["models"]))
    if kind != "segmenter":  # batch-norm running statistics are per rank (the U-Net has BN)
        assert all(_equal(r0["models"][k], r1["models"][k]) for k in r0["models"])  # replicas stay identical
    assert r0["losses"] == r1["losses"]  # logged losses are means over ranks
    ckpt = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt")
    assert ckpt["step"] == 3 and len(ckpt["rng"]) == 2 and ckpt["extra"]["world_size"] == 2
    assert _equal(ckpt["state_dict"], r0["models"][primary])
    assert [r["step"] for r in read_losses(tmp_path / "ddp" / "losses.csv")] == [1, 2, 3]
    if kind == "segmenter":
        return
    # without batch norm the averaged shard gradients equal the full-batch ones
    tiny_train(kind, tmp_path / "single", model_cfg=model_cfg, data_kw=data_kw, max_steps=3, **over)
    one = load_checkpoint(tmp_path / "single" / "checkpoint.pt")
    for k, v in one["state_dict"].items():
        assert torch.allclose(v, r0["models"][primary][k], rtol=1e-4, atol=1e-6), k
    # GAN: the hinge gradient of the prediction biases is ~0 (every prediction inside (-1, 1)),
    # so Adam's first normalised steps turn float noise into +-lr there; elsewhere the weights agree.
    for k, v in one["aux_state_dicts"].get("discriminator", {}).items():
        tol = 2 * 3 * 4e-4 if k.endswith("blocks.4.0.bias") else 1e-6
        assert torch.allclose(v, r0["models"]["discriminator"][k], rtol=1e-4, atol=tol), k
