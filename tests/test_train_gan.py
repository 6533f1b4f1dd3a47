"""GAN trainer: both recipes train, outputs and checkpoint contents, exact resume after SIGKILL,
NaN stop, time budget, two-process DDP, generation, and 2 steps on the real Facades."""
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
from PIL import Image
from torch.utils.data import Dataset

from lib.checkpoint import load_checkpoint
from lib.config import ConfigError
from lib.models import build
from lib.models.losses import LossConfig, gan_d_loss, vgg19_features
from lib.train.common import read_losses
from lib.train.gan import (
    LOSS_COLUMNS,
    GANTrainConfig,
    batch_indices,
    d_loss_terms,
    generate,
    label_colormap,
    load_generator,
    lr_factor,
    train_gan,
)

ROOT = Path(__file__).resolve().parents[1]
LABEL_NC = 13  # as Facades
SIZE = 32
ASAP = dict(label_nc=LABEL_NC, use_instance_edge=False, lr_width=16, lr_max_width=64, lr_depth=1,
            learned_ds_factor=2, hr_width=16, hr_depth=3)  # k = 2 at height 32
P2P = dict(label_nc=LABEL_NC, use_instance_edge=False, ngf=8, n_blocks=1, n_downsampling=2)
D_TINY = dict(ndf=8)


class Pairs(Dataset):
    """Blocky random label maps (ids 1..12 in 8-px blocks); the photo is a colour per class
    plus a little noise. ``nan_from_epoch``: photos become NaN from that epoch on."""

    def __init__(self, n: int = 4, size: int = SIZE, seed: int = 0, nan_from_epoch: int | None = None,
                 edges: bool = False, flip: bool = False) -> None:
        g = torch.Generator().manual_seed(seed)
        blocks = torch.randint(1, LABEL_NC, (n, size // 8, size // 8), generator=g)
        self.labels = blocks.repeat_interleave(8, 1).repeat_interleave(8, 2)  # (n, size, size)
        colours = torch.rand(LABEL_NC, 3, generator=g) * 2 - 1  # (LABEL_NC, 3)
        noise = 0.1 * torch.randn(n, 3, size, size, generator=g)
        self.images = (colours[self.labels].permute(0, 3, 1, 2) + noise).clamp(-1, 1)  # (n, 3, size, size)
        self.nan_from_epoch, self.edges, self.flip, self.epoch = nan_from_epoch, edges, flip, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        image = self.images[i].clone()
        if self.nan_from_epoch is not None and self.epoch >= self.nan_from_epoch:
            image.fill_(float("nan"))
        item = dict(label=self.labels[i].clone(), image=image, path=f"/nowhere/item_{i:03d}.jpg")
        if self.edges:
            item["instance_edge"] = (self.labels[i] != self.labels[i].roll(1, 0)).float()[None]  # (1, H, W)
        return item


def _cfg(**kw) -> GANTrainConfig:
    base = dict(generator="asapnet", generator_cfg=ASAP, discriminator_cfg=D_TINY, epochs=1, decay_epochs=2,
                batch_size=2, size=SIZE, checkpoint_every=2, sample_every=3, log_every=1, threads=1, device="cpu")
    return GANTrainConfig(**{**base, **kw})


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _plain(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


# ----------------------------------------------------------------------------- pure functions


def test_config_defaults_schedule_and_strictness():
    cfg = GANTrainConfig()  # ASAPNet recipe (sec. 4)
    assert (cfg.loss.gan_mode, cfg.loss.lambda_feat, cfg.loss.lambda_vgg, cfg.loss.vgg_weights) == ("hinge", 10.0, 10.0, None)
    assert (cfg.lr_g, cfg.lr_d, cfg.beta1, cfg.beta2) == (1e-4, 4e-4, 0.0, 0.9)
    assert (cfg.epochs, cfg.decay_epochs, cfg.batch_size, cfg.flip) == (200, 100, 32, True)
    assert cfg.total_steps(2975) == 300 * 92 and GANTrainConfig(max_steps=5).total_steps(2975) == 5
    # official update_learning_rate: full rate through epoch `epochs`, then -lr/decay per epoch
    assert [lr_factor(e, 2, 4) for e in range(6)] == [1.0, 1.0, 1.0, 0.75, 0.5, 0.25]
    assert lr_factor(7, 3, 0) == 1.0
    with pytest.raises(ConfigError, match="learning_rate"):
        train_gan({"learning_rate": 1.0}, Pairs(), "unused")
    with pytest.raises(ConfigError, match=r"train\.loss\.gan_mode"):
        train_gan({"loss": {"gan_mode": "wgan"}}, Pairs(), "unused")


def test_batch_indices_permute_each_epoch_and_shard_disjointly():
    n, b = 10, 4  # 2 steps per epoch, items 8, 9 of the permutation dropped
    epoch0 = [batch_indices(s, n, b, seed=3)[1] for s in range(2)]
    assert len(set(sum(epoch0, []))) == 8 and all(len(x) == 4 for x in epoch0)
    assert batch_indices(1, n, b, seed=3) == (0, epoch0[1])  # a pure function of (step, seed)
    assert batch_indices(2, n, b, seed=3)[0] == 1
    orders = {tuple(batch_indices(2 * e, n, b, seed=3)[1]) for e in range(6)}
    assert len(orders) > 1  # epochs are shuffled differently
    shards = [batch_indices(5, n, b, seed=3, rank=r, world_size=2) for r in range(2)]
    assert shards[0][1] + shards[1][1] == batch_indices(5, n, b, seed=3)[1]
    with pytest.raises(ValueError, match="world size 3"):
        batch_indices(0, n, b, seed=0, world_size=3)
    with pytest.raises(ValueError, match="exceeds"):
        batch_indices(0, 3, 4, seed=0)


@pytest.mark.parametrize("mode", ["hinge", "lsgan"])
def test_d_loss_terms_sum_to_the_discriminator_loss(mode):
    g = torch.Generator().manual_seed(0)
    real = [[torch.randn(2, 4, 5, 5, generator=g), torch.randn(2, 1, 3, 3, generator=g)] for _ in range(2)]
    fake = [[torch.randn(2, 4, 5, 5, generator=g), torch.randn(2, 1, 3, 3, generator=g)] for _ in range(2)]
    d_real, d_fake = d_loss_terms(mode, real, fake)
    assert torch.allclose(d_real + d_fake, gan_d_loss(mode, real, fake))
    p = real[0][-1]
    if mode == "hinge":
        assert torch.allclose(d_loss_terms(mode, real[:1], fake[:1])[0], torch.relu(1 - p).mean())
    else:
        assert torch.allclose(d_loss_terms(mode, real[:1], fake[:1])[0], ((p - 1) ** 2).mean())


def test_label_colormap_is_the_voc_palette():
    colours = label_colormap(np.array([[0, 1, 2], [3, 12, 7]]), 13)
    assert colours.dtype == np.uint8 and colours.shape == (2, 3, 3)
    assert colours[0].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    assert colours[1].tolist() == [[128, 128, 0], [64, 0, 128], [128, 128, 128]]  # VOC: cat, dog, bus
    assert len({tuple(c) for c in label_colormap(np.arange(35), 35)}) == 35
    with pytest.raises(ValueError, match="outside"):
        label_colormap(torch.tensor([[13]]), 13)


# ----------------------------------------------------------------------------- training runs


def test_asapnet_recipe_trains_writes_outputs_and_round_trips(tmp_path):
    out = tmp_path / "run"
    data = Pairs(n=4)  # 2 steps per epoch; epochs 1 + decay 2 -> 6 steps
    summary = train_gan(_cfg(), data, out, params={"scale": "test", "root": Path("/data")}, progress=False)
    assert (summary["steps"], summary["total_steps"], summary["epochs"]) == (6, 6, 3.0)
    assert summary["vgg_used"] is False and summary["stopped_by_budget"] is False
    rows = read_losses(out / "losses.csv")
    assert list(rows[0]) == list(LOSS_COLUMNS)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6] and [r["epoch"] for r in rows] == [0, 0, 1, 1, 2, 2]
    assert all(np.isfinite([r[k] for k in LOSS_COLUMNS]).all() for r in rows)
    assert [r["lr_g"] for r in rows] == [1e-4] * 4 + [5e-5] * 2  # lr_factor(2, 1, 2) = 0.5
    assert [r["lr_d"] for r in rows] == [4e-4] * 4 + [2e-4] * 2
    assert all(r["g_vgg"] == 0.0 and r["d_real"] >= 0 and r["d_fake"] >= 0 for r in rows)
    final = summary["final_losses"]  # mean of the last 10% (here: the last row)
    assert final == {k: rows[-1][k] for k in ("d_real", "d_fake", "g_gan", "g_feat", "g_vgg")}

    samples = sorted(p.name for p in (out / "samples").glob("*.png"))
    assert samples == ["latest.png", "step_000003.png", "step_000006.png"]
    grid = np.asarray(Image.open(out / "samples" / "latest.png"))
    assert grid.shape == (4 * SIZE + 3 * 2, 3 * SIZE + 2 * 2, 3)
    assert np.array_equal(grid[:SIZE, :SIZE], label_colormap(data.labels[0], LABEL_NC))  # item 0, unflipped
    assert np.array_equal(grid[:SIZE, 2 * (SIZE + 2):], np.asarray(
        ((data.images[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0)))

    raw = torch.load(out / "checkpoint.pt", weights_only=True)
    assert raw["model"] == "asapnet" and raw["step"] == 6 and raw["epoch"] == 3
    assert raw["config"]["height"] == SIZE and raw["config"]["label_nc"] == LABEL_NC
    assert raw["params"]["loss"]["gan_mode"] == "hinge" and raw["params"]["generator_cfg"] == ASAP
    assert set(raw["aux_state_dicts"]) == {"discriminator"}
    assert set(raw["optimizers"]) == set(raw["schedulers"]) == {"generator", "discriminator"}
    assert raw["optimizers"]["generator"]["param_groups"][0]["betas"] == (0.0, 0.9)
    assert raw["schedulers"]["discriminator"]["last_epoch"] == 6
    assert raw["extra"]["vgg_used"] is False and raw["extra"]["stage_params"] == {"scale": "test", "root": "/data"}
    assert raw["extra"]["discriminator"]["config"]["in_channels"] == LABEL_NC + 3
    assert {"python", "numpy", "torch", "cuda"} <= set(raw["rng"][0])
    assert raw["torch_version"] == torch.__version__ and raw["git_revision"]

    rebuilt = build(raw["model"], raw["config"])
    rebuilt.load_state_dict(raw["state_dict"])
    g = load_generator(out / "checkpoint.pt")
    assert not g.training and _equal(g.state_dict(), rebuilt.state_dict())
    files = generate(g, data, tmp_path / "gen", batch_size=3)
    assert [f.name for f in files] == [f"item_{i:03d}.png" for i in range(4)]
    onehot = torch.nn.functional.one_hot(data.labels, LABEL_NC).permute(0, 3, 1, 2).float()  # (4, 13, H, W)
    to_u8 = lambda x: ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)  # noqa: E731
    with torch.no_grad():
        want = torch.cat([to_u8(rebuilt.eval()(onehot[:3])), to_u8(rebuilt(onehot[3:]))])  # generate's batches
        whole = to_u8(rebuilt(onehot))  # the sample grid's batch
    assert np.array_equal(np.stack([np.asarray(Image.open(f)) for f in files]), want.numpy())
    assert np.array_equal(grid[:SIZE, SIZE + 2 : 2 * SIZE + 2], whole[0].numpy())  # the final generator


def test_pix2pixhd_recipe_is_config_only_with_vgg_and_edges(tmp_path):
    vgg = vgg19_features(None, random_init=True)
    state = {f"features.{k.split('.', 2)[2]}": v for k, v in vgg.state_dict().items()}  # slices.s.<idx>.w -> features.<idx>.w
    torch.save(state, tmp_path / "vgg19.pth")
    cfg = _cfg(generator="pix2pixhd", generator_cfg={**P2P, "use_instance_edge": True},
               discriminator_cfg={**D_TINY, "spectral_norm": False},
               loss=LossConfig(gan_mode="lsgan", vgg_weights=str(tmp_path / "vgg19.pth")),
               lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, max_steps=2)
    summary = train_gan(cfg, Pairs(n=4, edges=True), tmp_path / "p2p", progress=False)
    assert summary["steps"] == 2 and summary["vgg_used"] is True
    rows = read_losses(tmp_path / "p2p" / "losses.csv")
    assert all(r["g_vgg"] > 0 and np.isfinite(list(r.values())).all() for r in rows)
    assert [r["lr_g"] for r in rows] == [2e-4, 2e-4] and [r["lr_d"] for r in rows] == [2e-4, 2e-4]
    raw = torch.load(tmp_path / "p2p" / "checkpoint.pt", weights_only=True)
    assert raw["model"] == "pix2pixhd" and raw["extra"]["vgg_used"] is True
    assert raw["optimizers"]["discriminator"]["param_groups"][0]["betas"] == (0.5, 0.999)
    d_keys = raw["aux_state_dicts"]["discriminator"]
    assert not any("parametrizations" in k for k in d_keys)  # no spectral norm
    assert d_keys["scales.0.blocks.0.0.weight"].shape[1] == LABEL_NC + 1 + 3  # labels + edge + RGB
    # flips belong to the trainer: a dataset that flips by itself is refused
    with pytest.raises(ValueError, match="flip=True"):
        train_gan(_cfg(), Pairs(flip=True), tmp_path / "x", progress=False)


_KILL_SCRIPT = """
import json, os, signal, sys
sys.path.insert(0, {tests!r})
from test_train_gan import Pairs
from lib.train.gan import train_gan
a = json.loads(sys.argv[1])
def hook(step, losses, g, d):
    if step == a["kill_at"]:
        os.kill(os.getpid(), signal.SIGKILL)
train_gan(a["train"], Pairs(n=6), a["out"], progress=False, on_step=hook)
"""


def test_resume_after_sigkill_is_bitwise_identical(tmp_path):
    train = dict(generator="asapnet", generator_cfg=ASAP, discriminator_cfg=D_TINY, epochs=2, decay_epochs=2,
                 batch_size=2, size=SIZE, checkpoint_every=2, sample_every=0, log_every=1, threads=1, device="cpu",
                 max_steps=8)  # 3 steps per epoch: the kill, the resume and the decay cross epochs
    killed = tmp_path / "killed"
    code = _KILL_SCRIPT.format(tests=str(ROOT / "tests"))
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(dict(train=train, out=str(killed), kill_at=5))],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert load_checkpoint(killed / "checkpoint.pt")["step"] == 4
    assert [r["step"] for r in read_losses(killed / "losses.csv")] == [1, 2, 3, 4, 5]

    resumed = train_gan(train, Pairs(n=6), killed, progress=False)
    assert (resumed["start_step"], resumed["steps"]) == (4, 8)
    straight = train_gan(train, Pairs(n=6), tmp_path / "straight", progress=False)
    assert straight["steps"] == 8

    a = torch.load(killed / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 8
    assert _equal(a["state_dict"], b["state_dict"])  # generator, bitwise
    assert _equal(a["aux_state_dicts"]["discriminator"], b["aux_state_dicts"]["discriminator"])  # incl. spectral-norm u, v
    assert any("parametrizations" in k for k in a["aux_state_dicts"]["discriminator"])
    for net in ("generator", "discriminator"):
        assert _equal(a["optimizers"][net]["state"][0], b["optimizers"][net]["state"][0])
    rows_a, rows_b = read_losses(killed / "losses.csv"), read_losses(tmp_path / "straight" / "losses.csv")
    assert [r["step"] for r in rows_a] == list(range(1, 9)) and _plain(rows_a) == _plain(rows_b)
    assert resumed["final_losses"] == straight["final_losses"]
    # a finished run resumes to nothing; other trajectory settings are refused
    assert train_gan(train, Pairs(n=6), killed, progress=False)["steps_run"] == 0
    with pytest.raises(ValueError, match="lr_d: checkpoint 0.0004 vs requested 0.001"):
        train_gan({**train, "lr_d": 1e-3, "max_steps": 9}, Pairs(n=6), killed, progress=False)


def test_time_budget_stops_at_a_checkpoint_and_resumes(tmp_path):
    cfg = _cfg(checkpoint_every=0, sample_every=0, log_every=5, time_budget_s=1e-6)
    first = train_gan(cfg, Pairs(n=4), tmp_path, progress=False)
    assert first["stopped_by_budget"] is True and first["steps"] == 1
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 1
    assert [r["step"] for r in read_losses(tmp_path / "losses.csv")] == [1]
    rest = train_gan(_cfg(checkpoint_every=0, sample_every=0, log_every=5), Pairs(n=4), tmp_path, progress=False)
    assert (rest["start_step"], rest["steps"], rest["stopped_by_budget"]) == (1, 6, False)
    assert [r["step"] for r in read_losses(tmp_path / "losses.csv")] == [1, 5, 6]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    # photos turn NaN in epoch 1 (steps 3, 4); the checkpoint of step 2 must survive
    with pytest.raises(FloatingPointError, match=r"'d_real' = nan.* at step 3; last good checkpoint: .*checkpoint\.pt"):
        train_gan(_cfg(), Pairs(n=4, nan_from_epoch=1), tmp_path, progress=False)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 2
    assert all(torch.isfinite(t).all() for t in ckpt["state_dict"].values())
    assert all(torch.isfinite(t).all() for t in ckpt["aux_state_dicts"]["discriminator"].values())


_DDP_SCRIPT = """
import json, os, sys
import torch
sys.path.insert(0, {tests!r})
from test_train_gan import Pairs
from lib.train.gan import train_gan
a = json.loads(sys.argv[1])
rank = int(os.environ["RANK"])
def dump(step, losses, g, d):
    if step == a["train"]["max_steps"]:
        torch.save({{"g": g.state_dict(), "d": d.state_dict(), "losses": losses}}, os.path.join(a["dump"], f"rank{{rank}}.pt"))
s = train_gan(a["train"], Pairs(n=4), a["out"], progress=False, on_step=dump)
assert s["world_size"] == 2, s
"""


def test_ddp_two_processes_on_cpu_hold_identical_weights(tmp_path):
    (tmp_path / "ddp.py").write_text(_DDP_SCRIPT.format(tests=str(ROOT / "tests")))
    train = dict(generator="asapnet", generator_cfg=ASAP, discriminator_cfg=D_TINY, epochs=1, decay_epochs=2,
                 batch_size=2, size=SIZE, checkpoint_every=2, sample_every=0, log_every=1, threads=1, device="cpu",
                 max_steps=3)
    args = dict(train=train, out=str(tmp_path / "ddp"), dump=str(tmp_path))
    torchrun = Path(sys.executable).parent / "torchrun"
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", str(tmp_path / "ddp.py"), json.dumps(args)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert _equal(r0["g"], r1["g"]) and _equal(r0["d"], r1["d"])  # replicas stay identical
    assert r0["losses"] == r1["losses"]  # logged losses are means over ranks
    ckpt = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt")
    assert ckpt["step"] == 3 and len(ckpt["rng"]) == 2 and ckpt["extra"]["world_size"] == 2
    assert _equal(ckpt["state_dict"], r0["g"])
    # per-sample norms: the averaged shard gradients equal the full-batch ones
    single = train_gan(train, Pairs(n=4), tmp_path / "single", progress=False)
    assert single["steps"] == 3
    one = load_checkpoint(tmp_path / "single" / "checkpoint.pt")
    for k, v in one["state_dict"].items():
        assert torch.allclose(v, r0["g"][k], rtol=1e-4, atol=1e-6), k
    # The hinge gradient of the prediction biases is ~0 (every prediction inside (-1, 1)), so
    # Adam's first normalised steps turn float noise into +-lr there; elsewhere the weights agree.
    for k, v in one["aux_state_dicts"]["discriminator"].items():
        tol = 2 * train["max_steps"] * 4e-4 if k.endswith("blocks.4.0.bias") else 1e-6
        assert torch.allclose(v, r0["d"][k], rtol=1e-4, atol=tol), k
    rows_ddp, rows_one = read_losses(tmp_path / "ddp" / "losses.csv"), read_losses(tmp_path / "single" / "losses.csv")
    for key in ("d_real", "d_fake", "g_feat"):
        assert np.allclose([r[key] for r in rows_ddp], [r[key] for r in rows_one], rtol=1e-4), key
    assert np.allclose([r["g_gan"] for r in rows_ddp], [r["g_gan"] for r in rows_one], atol=2e-3)  # -mean D(fake): shifted by those biases


def test_two_steps_on_real_facades(data_mirror, tmp_path):
    from lib.data.facades import LABEL_NC as FACADES_NC
    from lib.data.facades import FacadesDataset

    data = FacadesDataset(data_mirror / "facades", "train", size=64, flip=False)
    cfg = _cfg(generator_cfg={**ASAP, "label_nc": FACADES_NC}, size=64, max_steps=2, batch_size=1)
    summary = train_gan(cfg, data, tmp_path, progress=False)
    assert summary["steps"] == 2 and summary["steps_per_epoch"] == len(data) == 318
    rows = read_losses(tmp_path / "losses.csv")
    assert [r["step"] for r in rows] == [1, 2] and all(np.isfinite(list(r.values())).all() for r in rows)
    assert np.asarray(Image.open(tmp_path / "samples" / "latest.png")).shape == (4 * 64 + 6, 3 * 64 + 4, 3)
    test = FacadesDataset(data_mirror / "facades", "test", size=64)
    files = generate(load_generator(tmp_path / "checkpoint.pt"), torch.utils.data.Subset(test, [0, 1]), tmp_path / "gen")
    assert [f.name for f in files] == ["cmp_b0001.png", "cmp_b0002.png"]
