"""Shared fixtures.

Real data and weights come from the mirrors named by ``$ASAPNET_DATA`` and
``$ASAPNET_WEIGHTS`` (``.ci/run`` sets both). Tests that need them are skipped when the
variables are unset on a developer machine, and fail under ``CI=true`` so CI cannot pass
by skipping.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # tests share two cores; keeps timings stable


def _mirror(env: str) -> Path:
    value = os.environ.get(env)
    if not value:
        if os.environ.get("CI") == "true":
            pytest.fail(f"${env} must be set in CI (see .ci/run)")
        pytest.skip(f"${env} not set: real-data test skipped")
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"${env}={value} is not a folder")
    return path


@pytest.fixture(scope="session")
def data_mirror() -> Path:
    """The local data mirror (layout: bsd68/, set12/, cbsd68/, train400/, cbsd432/, facades/, cityscapes_subset/)."""
    return _mirror("ASAPNET_DATA")


@pytest.fixture(scope="session")
def weights_mirror() -> Path:
    """The local weights mirror (layout: pt_inception-...pth, dncnn/cszn_DnCNN/model/..., dncnn/KAIR/...)."""
    return _mirror("ASAPNET_WEIGHTS")


# ----------------------------------------------------------------------------- a project copy for `dvc repro`
# Shared by tests/test_pipeline.py (smoke scale) and tests/test_paper_path.py (paper path at smoke size).


def run_checked(cmd: list[str], cwd: Path, env: dict) -> str:
    """Runs ``cmd``; its stdout + stderr, or an AssertionError holding their tails when it fails."""
    import subprocess

    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout + proc.stderr


def project_copy(dest: Path, data_mirror: Path, weights_mirror: Path, scale: str) -> dict:
    """Copies the tracked and untracked-not-ignored files of the project to ``dest`` as a fresh git
    repo, without the results committed from the default scale, its ``params.yaml`` put at
    ``scale`` with ``python -m lib.scales select`` (the mechanism users and CI use).

    Returns:
        The environment to run ``dvc`` in the copy with (its own ``lib/``, the mirrors, caches under ``dest``).
    """
    import shutil
    import subprocess
    import sys

    from lib import scales
    from lib.paths import ROOT

    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
        capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    # Results committed from the default scale are removed so the run rebuilds them.
    for rel in ("reports/index.html", "dvc.lock"):
        (dest / rel).unlink(missing_ok=True)
    shutil.rmtree(dest / "reports" / "metrics", ignore_errors=True)
    scales.select(scale, dest / "params.yaml")
    venv_bin = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "ASAPNET_DATA": str(data_mirror),
        "ASAPNET_WEIGHTS": str(weights_mirror),
        "TORCH_HOME": str(dest / ".cache" / "torch"),
        "MPLCONFIGDIR": str(dest / ".cache" / "mpl"),
        "DVC_SITE_CACHE_DIR": str(dest / ".cache" / "dvc-site"),
        "DVC_NO_ANALYTICS": "1",
        "PYTHONPATH": str(dest),  # the copy's lib/, not the checkout's
    }
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        run_checked(cmd, dest, env)
    return env


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--golden", default=None, help="folder of the official generators' golden outputs "
                     "(overrides $ASAPNET_GOLDEN; tests/test_golden.py)")


# Tiny label -> photo generator settings (config overrides of the paper configs) for the timing
# and translation tests: a forward at 64x128 takes milliseconds. Import as
# ``from conftest import TINY_GENERATORS``.
TINY_GENERATORS = {
    "asapnet": {"lr_width": 4, "lr_max_width": 8, "lr_depth": 1, "hr_width": 4, "hr_depth": 2},
    "pix2pixhd": {"ngf": 2, "n_downsampling": 2, "n_blocks": 1},
    "spade": {"ngf": 2, "spade_hidden": 4, "num_upsampling_layers": "normal"},
}


# ----------------------------------------------------------------------------- tiny trainer runs
# Shared by tests/test_train_loop.py (one parametrized module over the three trainers) and the
# trainer-specific tests; also imported by their subprocess scripts (``from conftest import ...``).

import numpy as np  # noqa: E402
from torch.utils.data import Dataset  # noqa: E402

TINY_LABEL_NC = 13  # as Facades
TINY_ASAPNET = dict(label_nc=TINY_LABEL_NC, use_instance_edge=False, lr_width=16, lr_max_width=64, lr_depth=1,
                    learned_ds_factor=2, hr_width=16, hr_depth=3)  # k = 2 at height 32
TINY_DNCNN = {"depth": 3, "channels": 8}  # BN on the middle layer
TINY_DNCNN_NO_BN = {"depth": 3, "channels": 8, "batch_norm": False}

# trainer -> its tiny training config (epochs cross within a few steps; checkpoint every 2 steps)
TINY_TRAIN = {
    "gan": dict(generator="asapnet", generator_cfg=TINY_ASAPNET, discriminator_cfg={"ndf": 8}, epochs=2,
                decay_epochs=2, batch_size=2, size=32, checkpoint_every=2, sample_every=0, log_every=1, threads=1,
                device="cpu"),
    "segmenter": dict(seed=0, width=8, size=16, batch_size=2, epochs=4, lr=1e-2, log_every=1, checkpoint_every=2,
                      threads=1, device="cpu"),
    "denoise": dict(patch_size=16, batch_size=8, patches_per_epoch=24, epochs=100, sigma_fixed=None,
                    checkpoint_every=2, log_every=1, threads=1, device="cpu"),
}


class TinyPairs(Dataset):
    """Blocky random label maps (ids 1..12 in 8-px blocks); the photo is a colour per class
    plus a little noise. ``nan_from_epoch``: photos become NaN from that epoch on."""

    def __init__(self, n: int = 4, size: int = 32, seed: int = 0, nan_from_epoch: int | None = None,
                 edges: bool = False, flip: bool = False) -> None:
        g = torch.Generator().manual_seed(seed)
        blocks = torch.randint(1, TINY_LABEL_NC, (n, size // 8, size // 8), generator=g)
        self.labels = blocks.repeat_interleave(8, 1).repeat_interleave(8, 2)  # (n, size, size)
        colours = torch.rand(TINY_LABEL_NC, 3, generator=g) * 2 - 1  # (LABEL_NC, 3)
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


class TwoColours(Dataset):
    """Items whose left part is red (Facades id 1) and right part blue (id 2), split at a random column."""

    def __init__(self, n: int = 8, size: int = 16, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.cuts = rng.integers(3, size - 3, n)
        self.noise = rng.normal(0, 0.1, (n, 3, size, size)).astype(np.float32)
        self.size = size

    def __len__(self) -> int:
        return len(self.cuts)

    def __getitem__(self, i: int) -> dict:
        s, c = self.size, int(self.cuts[i])
        label = torch.ones(s, s, dtype=torch.long)  # (H, W) id 1 = class 0
        label[:, c:] = 2  # id 2 = class 1
        image = torch.full((3, s, s), -1.0)
        image[0, :, :c] = 1.0  # red
        image[2, :, c:] = 1.0  # blue
        image = (image + torch.from_numpy(self.noise[i])).clamp(-1, 1)
        return {"label": label, "image": image, "path": f"/data/cmp_b{i:04d}.jpg"}


def tiny_gray_images(n: int = 4, size: int = 40, seed: int = 0) -> list[np.ndarray]:
    """Piecewise-constant gray images (random blocks of 8 px): easy to denoise."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(30, 226, size=(n, size // 8, size // 8))
    return list(np.kron(blocks, np.ones((8, 8))).astype(np.uint8))  # (n, size, size)


def tiny_train(kind: str, out_dir, *, model_cfg: dict | None = None, data_kw: dict | None = None, resume: bool = True,
               on_step=None, **overrides) -> dict:
    """Runs the tiny ``kind`` trainer of :data:`TINY_TRAIN` (``overrides`` over its config) on its
    tiny data (6 GAN pairs, 6 two-colour photos, 4 gray images) and returns its summary."""
    train = {**TINY_TRAIN[kind], **overrides}
    if kind == "gan":
        from lib.train.gan import train_gan

        return train_gan(train, TinyPairs(**{"n": 6, **(data_kw or {})}), out_dir, resume=resume, progress=False,
                         on_step=on_step)
    if kind == "segmenter":
        from lib.train.segmenter import train_segmenter

        return train_segmenter(train, TwoColours(**{"n": 6, **(data_kw or {})}), out_dir, resume=resume,
                               labels="facades", progress=False, on_step=on_step)
    from lib.train.denoise import train_denoiser

    return train_denoiser("dncnn", model_cfg or TINY_DNCNN, train, tiny_gray_images(**(data_kw or {})), out_dir,
                          resume=resume, progress=False, on_step=on_step)


# ----------------------------------------------------------------------------- every registered model
# registry name -> (tiny config, input shapes of one forward: (B, C, H, W) tensors or None, keyword
# inputs). tests/test_model_registry.py checks that every entry of lib.models.MODELS is here.
REGISTRY_LABEL_NC = 5
TINY_MODELS = {
    "asapnet": (dict(label_nc=REGISTRY_LABEL_NC, height=64, lr_width=8, lr_max_width=16, lr_depth=2,
                     learned_ds_factor=2, hr_width=8, hr_depth=3, use_instance_edge=True),
                [(2, REGISTRY_LABEL_NC, 64, 128), (2, 1, 64, 128)], {}),
    "pix2pixhd": (dict(label_nc=REGISTRY_LABEL_NC, ngf=4, n_downsampling=2, n_blocks=2, use_instance_edge=True),
                  [(2, REGISTRY_LABEL_NC, 64, 128), (2, 1, 64, 128)], {}),
    "spade": (dict(label_nc=REGISTRY_LABEL_NC, ngf=4, spade_hidden=8, num_upsampling_layers="normal",
                   use_instance_edge=True),
              [(2, REGISTRY_LABEL_NC, 64, 128), (2, 1, 64, 128)], {}),
    "patchgan": (dict(in_channels=REGISTRY_LABEL_NC + 1 + 3, ndf=8, n_layers=4, num_D=2),
                 [(2, REGISTRY_LABEL_NC + 1 + 3, 64, 128)], {}),
    "dncnn": (dict(depth=4, channels=8), [(2, 1, 24, 24)], {}),
    "asapnet_denoise": (dict(tile_size=8, lr_width=8, lr_max_width=16, lr_depth=1, hr_width=8, hr_depth=2,
                             context="conv", residual=True, noise_level_input=True, kernel_size=3,
                             slicing="bilinear", intensity_bins=2),  # every stream: front, MLP, bilateral filter
                        [(2, 1, 32, 32)], {"sigma": 25.0}),
    "segmenter": (dict(arch="unet", num_classes=4, width=4, depth=2), [(2, 3, 32, 32)], {}),
    # the frozen Inception is full size (random weights here); 80 px: about the smallest input it takes
    "inception_segmenter": (dict(arch="inception_unet", num_classes=4, input_scale=1.0, decoder_width=4, width=4, depth=2),
                            [(2, 3, 80, 80)], {}),
}
