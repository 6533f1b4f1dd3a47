"""Config strictness, scale overlays, atomic writes and self-describing checkpoints."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from lib import checkpoint, config, io, stages
from lib.paths import ROOT
from lib.train.gan import gan_config


@dataclass(frozen=True)
class _Cfg:
    width: int = 64
    rate: float = 1e-4
    name: str = "x"
    sizes: tuple[int, ...] = (1, 2)
    mode: str | None = None


def test_from_dict_defaults_and_coercion():
    cfg = config.from_dict(_Cfg, {"rate": 1, "sizes": [3, 4, 5]})
    assert cfg == _Cfg(rate=1.0, sizes=(3, 4, 5))
    assert isinstance(cfg.rate, float)


@pytest.mark.parametrize(
    "bad, key",
    [({"widht": 3}, "widht"), ({"width": "64"}, "width"), ({"width": True}, "width"), ({"sizes": [1, "a"]}, "sizes[1]")],
)
def test_from_dict_rejects_unknown_and_mistyped_keys(bad, key):
    with pytest.raises(config.ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        config.from_dict(_Cfg, bad, where="model")


def test_section_names_missing_key():
    with pytest.raises(config.ConfigError, match="a.b.c"):
        config.section({"a": {"b": {}}}, "a.b.c")


def test_project_params_load_for_every_stage():
    for name in stages.STAGES:
        scale, cfg = stages.load_stage(name, ROOT / "params.yaml")
        assert scale == "default"
        assert config.from_dict(type(cfg), config.to_dict(cfg)) == cfg
    _, translation = stages.load_stage("train_translation", ROOT / "params.yaml")
    assert set(translation.models) == {"asapnet", "pix2pixhd"}
    for model in translation.models:
        gan = gan_config(translation, model)
        assert gan.generator == model and gan.size == translation.common["size"]
    with pytest.raises(config.ConfigError, match="spade"):
        gan_config(translation, "spade")


def test_unknown_stage_lists_known_names():
    with pytest.raises(config.ConfigError, match="known stages"):
        stages.load_stage("nope")


@pytest.mark.parametrize("scale", ["smoke", "paper", "paper-smoke"])
def test_every_scale_is_valid(tmp_path, scale):
    from lib import scales

    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    scales.select(scale, params, ROOT / "scales")
    for name in stages.STAGES:
        stages.load_stage(name, params)
    _, translation = stages.load_stage("train_translation", params)
    for model in translation.models:
        gan_config(translation, model)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    io.write_json(target, {"a": float("inf"), "b": [1, 2]})
    assert io.read_json(target) == {"a": "inf", "b": [1, 2]}


def test_checkpoint_round_trip_and_validation(tmp_path):
    net = torch.nn.Linear(3, 2)
    path = checkpoint.save_checkpoint(
        tmp_path / "ck.pt", model="linear", config={"in": 3}, state_dict=net.state_dict(), step=7,
        params={"lr": 1e-3}, optimizer=torch.optim.Adam(net.parameters()).state_dict(),
    )
    ck = checkpoint.load_checkpoint(path)
    assert ck["model"] == "linear" and ck["step"] == 7 and ck["torch_version"] == torch.__version__
    assert torch.equal(ck["state_dict"]["weight"], net.weight.detach())
    torch.save({"state_dict": {}}, tmp_path / "bare.pt")
    with pytest.raises(ValueError, match="missing"):
        checkpoint.load_checkpoint(tmp_path / "bare.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt.pt"):
        checkpoint.load_checkpoint(tmp_path / "corrupt.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        checkpoint.load_checkpoint(tmp_path / "missing.pt")

