"""Every registered model, one tiny config each: forward, backward, and the checkpoint round trip.

A model family added to ``lib.models.MODELS`` without a tiny config in ``conftest.TINY_MODELS``
fails here, so every family is exercised by the same checks.
"""
from __future__ import annotations

import pytest
import torch
from conftest import TINY_MODELS

from lib.checkpoint import save_checkpoint
from lib.config import to_dict
from lib.models import MODELS, build, load_model, model_name
from lib.models.complexity import count_params


def _inputs(name: str, seed: int = 0) -> tuple[list[torch.Tensor], dict]:
    _, shapes, kwargs = TINY_MODELS[name]
    g = torch.Generator().manual_seed(seed)
    tensors = []
    for i, shape in enumerate(shapes):
        if name in ("asapnet", "pix2pixhd", "spade") and i == 0:  # one-hot label map
            ids = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
            tensors.append(torch.nn.functional.one_hot(ids, shape[1]).permute(0, 3, 1, 2).float())  # (B, C, H, W)
        elif name in ("asapnet", "pix2pixhd", "spade"):  # instance edge map
            tensors.append((torch.rand(*shape, generator=g) > 0.8).float())
        else:
            tensors.append(torch.rand(*shape, generator=g) * 2 - 1)
    return tensors, dict(kwargs)


def _flat(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for part in out for t in _flat(part)]


def test_every_registered_model_has_a_tiny_config():
    assert sorted(TINY_MODELS) == sorted(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_finite_and_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    model = build(name, TINY_MODELS[name][0]).train()
    args, kwargs = _inputs(name)
    outs = _flat(model(*args, **kwargs))
    assert outs and all(torch.isfinite(t).all() for t in outs)
    if name not in ("patchgan", "segmenter", "inception_segmenter"):  # images out: same size as the input
        assert outs[0].shape[-2:] == args[0].shape[-2:]
    loss = sum((t * torch.randn_like(t)).sum() for t in outs)
    loss.backward()
    for pname, p in model.named_parameters():
        if not p.requires_grad:  # a frozen pretrained part (inception_segmenter's backbone) is never trained
            assert p.grad is None, f"{name}: frozen {pname} got a gradient"
            continue
        assert p.grad is not None, f"{name}: {pname} gets no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_nan_input_is_not_hidden(name):
    """A NaN in the input shows in the output (so the NaN guards of the training loop see it)."""
    model = build(name, TINY_MODELS[name][0]).eval()
    args, kwargs = _inputs(name)
    args[-1] = args[-1].clone()
    args[-1][0, 0, 3, 3] = float("nan")
    with torch.no_grad():
        outs = _flat(model(*args, **kwargs))
    assert any(not torch.isfinite(t).all() for t in outs), f"{name}: NaN input gave a finite output"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_checkpoint_round_trip_through_the_one_loader(name, tmp_path):
    torch.manual_seed(1)
    model = build(name, TINY_MODELS[name][0]).eval()
    path = save_checkpoint(tmp_path / f"{name}.pt", model=name, config=to_dict(model.cfg),
                           state_dict=model.state_dict(), step=3)
    loaded = load_model(path)
    assert model_name(loaded) == name and not loaded.training
    assert count_params(loaded) == count_params(model)
    args, kwargs = _inputs(name)
    with torch.no_grad():
        for a, b in zip(_flat(model(*args, **kwargs)), _flat(loaded(*args, **kwargs))):
            assert torch.equal(a, b)


def test_loader_names_the_file_when_weights_do_not_fit(tmp_path):
    model = build("dncnn", TINY_MODELS["dncnn"][0])
    path = save_checkpoint(tmp_path / "bad.pt", model="dncnn", config={**to_dict(model.cfg), "channels": 16},
                           state_dict=model.state_dict(), step=0)
    with pytest.raises(ValueError, match="bad.pt.*do not fit"):
        load_model(path)
    path = save_checkpoint(tmp_path / "unknown.pt", model="nonexistent", config={}, state_dict={}, step=0)
    with pytest.raises(ValueError, match="unknown.pt.*unknown model"):
        load_model(path)
