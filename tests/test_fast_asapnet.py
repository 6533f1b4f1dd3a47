"""The fast ASAPNet path computes the same function as the reference per-tile batched matmul:
gathered first layer, separable positional encoding, chunked tiles, channels-last head."""
from __future__ import annotations

import pytest
import torch

from lib.models import make_config
from lib.models.asapnet import ASAPNetGenerator
from lib.models.lowres import TentDownsample
from lib.models.pixelwise import (
    conv3x3_onehot,
    mlp_param_count,
    onehot_to_ids,
    pe_channels,
    pixelwise_mlp,
    pixelwise_mlp_fast,
    pixelwise_mlp_reference,
    positional_encoding,
    positional_encoding_factors,
)

RTOL = 1e-5  # issue: fast output equal to the reference within 1e-5 relative


def _rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / max |want|."""
    return float((got - want).abs().max() / want.abs().max())


def _tiled_pe(k: int, b: int, hh: int, ww: int) -> torch.Tensor:
    return positional_encoding(k).repeat(1, hh // k, ww // k).expand(b, -1, -1, -1)  # (B, C_pe, H, W)


def _case(k: int, grid: tuple[int, int], b: int = 2, label_nc: int = 5, width: int = 8, depth: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    h, w = grid
    hh, ww = h * k, w * k
    ids = torch.randint(0, label_nc, (b, hh, ww), generator=g)  # (B, H, W)
    onehot = torch.nn.functional.one_hot(ids, label_nc).permute(0, 3, 1, 2).float()  # (B, nc, H, W)
    c_in = label_nc + pe_channels(k)
    p = mlp_param_count(c_in, width, depth, 3)
    params = torch.randn(b, p, h, w, generator=g) * 0.5  # (B, P, h, w): large enough that tanh is not flat
    mlp_in = torch.cat([onehot, _tiled_pe(k, b, hh, ww)], dim=1)  # (B, nc + C_pe, H, W)
    return ids, onehot, params, mlp_in, dict(width=width, depth=depth, out_channels=3)


def test_reference_name_is_the_historical_function():
    assert pixelwise_mlp is pixelwise_mlp_reference


@pytest.mark.parametrize("k", [2, 4, 8, 16, 32])
def test_positional_encoding_is_separable(k):
    pe_x, pe_y = positional_encoding_factors(k)
    assert pe_x.shape == pe_y.shape == (pe_channels(k), k)
    pe = positional_encoding(k)
    assert torch.equal(pe_x[:, None, :] + pe_y[:, :, None], pe)  # exact: one factor is 0 per channel
    assert ((pe_x == 0).all(1) | (pe_y == 0).all(1)).all()


@pytest.mark.parametrize(
    "k, grid, chunk",
    [(4, (2, 3), None), (4, (3, 5), 16), (16, (2, 4), 300), (16, (1, 3), None), (8, (4, 2), 64 * 3)],
)
@pytest.mark.parametrize("final", ["tanh", "none"])
def test_fast_mlp_equals_reference_on_ids_and_on_onehot(k, grid, chunk, final):
    ids, onehot, params, mlp_in, kw = _case(k, grid)
    want = pixelwise_mlp_reference(mlp_in, params, k, final_activation=final, **kw)
    pe = positional_encoding_factors(k)
    for labels in (ids, onehot):  # gather path, dense-label path
        got = pixelwise_mlp_fast(
            labels, params, k, label_nc=5, pe_factors=pe, final_activation=final, chunk_pixels=chunk, **kw
        )
        assert got.shape == want.shape
        assert _rel_err(got, want) < RTOL


def test_fast_mlp_channels_last_params_soft_labels_and_no_encoding():
    k = 4
    ids, onehot, params, _, kw = _case(k, (2, 3), seed=1)
    soft = torch.softmax(torch.randn(onehot.shape), dim=1)  # not one-hot: dense first layer
    params = params.contiguous(memory_format=torch.channels_last)
    c_in = 5 + pe_channels(k)
    want = pixelwise_mlp_reference(torch.cat([soft, _tiled_pe(k, 2, 8, 12)], 1), params, k, **kw)
    got = pixelwise_mlp_fast(soft, params, k, pe_factors=positional_encoding_factors(k), **kw)
    assert _rel_err(got, want) < RTOL
    # without positional encoding the MLP input is the labels alone
    p = mlp_param_count(5, 8, 4, 3)
    params = torch.randn(2, p, 2, 3)
    want = pixelwise_mlp_reference(onehot, params, k, **kw)
    assert c_in > 5
    assert _rel_err(pixelwise_mlp_fast(ids, params, k, label_nc=5, **kw), want) < RTOL


def test_fast_mlp_depth_one_and_two():
    k = 4
    for depth in (1, 2):
        ids, onehot, _, mlp_in, kw = _case(k, (2, 2), depth=depth)
        p = mlp_param_count(mlp_in.shape[1], 8, depth, 3)
        params = torch.randn(2, p, 2, 2)
        kw["depth"] = depth
        want = pixelwise_mlp_reference(mlp_in, params, k, **kw)
        got = pixelwise_mlp_fast(ids, params, k, label_nc=5, pe_factors=positional_encoding_factors(k), **kw)
        assert _rel_err(got, want) < RTOL


def test_fast_mlp_is_differentiable_and_gradients_match():
    k = 4
    ids, _, params, mlp_in, kw = _case(k, (2, 2), b=1)
    p_ref = params.clone().requires_grad_(True)
    p_fast = params.clone().requires_grad_(True)
    target = torch.randn(1, 3, 8, 8)
    (pixelwise_mlp_reference(mlp_in, p_ref, k, **kw) * target).sum().backward()
    out = pixelwise_mlp_fast(ids, p_fast, k, label_nc=5, pe_factors=positional_encoding_factors(k), **kw)
    (out * target).sum().backward()
    assert _rel_err(p_fast.grad, p_ref.grad) < RTOL


def test_fast_mlp_rejects_bad_ids_and_shapes():
    k = 4
    ids, _, params, _, kw = _case(k, (2, 2))
    pe = positional_encoding_factors(k)
    bad = ids.clone()
    bad[0, 0, 0] = 5
    with pytest.raises(ValueError, match=r"outside \[0, 5\)"):
        pixelwise_mlp_fast(bad, params, k, label_nc=5, pe_factors=pe, **kw)
    with pytest.raises(ValueError, match="label_nc is required"):
        pixelwise_mlp_fast(ids, params, k, pe_factors=pe, **kw)
    with pytest.raises(ValueError, match="params have"):
        pixelwise_mlp_fast(ids, params[:, :-1], k, label_nc=5, pe_factors=pe, **kw)
    with pytest.raises(ValueError, match="multiple of the tile size"):
        pixelwise_mlp_fast(ids[:, :7], params, k, label_nc=5, pe_factors=pe, **kw)


def test_onehot_to_ids_accepts_only_exact_one_hot():
    ids = torch.randint(0, 4, (2, 5, 6))
    onehot = torch.nn.functional.one_hot(ids, 4).permute(0, 3, 1, 2).float()  # (B, 4, H, W)
    assert torch.equal(onehot_to_ids(onehot), ids)
    soft = onehot.clone()
    soft[0, :, 0, 0] = 0.25
    assert onehot_to_ids(soft) is None
    extra = onehot.clone()
    extra[1, (ids[1, 2, 3] + 1) % 4, 2, 3] = -0.5  # max still 1, but a second non-zero
    assert onehot_to_ids(extra) is None
    assert onehot_to_ids(onehot * 2) is None


@pytest.mark.parametrize("s", [2, 4, 8])
def test_tent_downsample_from_ids_equals_the_filter_on_the_one_hot_map(s):
    g = torch.Generator().manual_seed(s)
    ids = torch.randint(0, 6, (2, 4 * s, 6 * s), generator=g)  # (B, H, W): pixel noise, every border case
    onehot = torch.nn.functional.one_hot(ids, 6).permute(0, 3, 1, 2).float()  # (B, 6, H, W)
    ds = TentDownsample(s)
    want = ds(onehot)
    got = ds.from_ids(ids, 6)
    assert got.shape == want.shape == (2, 6, 4, 6)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(got.sum(1), torch.ones(2, 4, 6))  # the kernel sums to 1


def test_conv3x3_on_ids_equals_the_convolution_of_the_one_hot_map():
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, 5, (2, 9, 11), generator=g)
    onehot = torch.nn.functional.one_hot(ids, 5).permute(0, 3, 1, 2).float()  # (B, 5, H, W)
    extra = torch.rand(2, 2, 9, 11, generator=g)  # (B, 2, H, W): e.g. an edge map
    weight = torch.randn(7, 7, 3, 3, generator=g)  # (O, 5 + 2, 3, 3)
    want = torch.nn.functional.conv2d(torch.cat([onehot, extra], 1), weight, padding=1)
    torch.testing.assert_close(conv3x3_onehot(ids, 5, weight, extra), want, rtol=1e-5, atol=1e-5)
    want = torch.nn.functional.conv2d(onehot, weight[:, :5], padding=1)
    torch.testing.assert_close(conv3x3_onehot(ids, 5, weight[:, :5]), want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="does not fit"):
        conv3x3_onehot(ids, 5, weight)


SMALL = dict(label_nc=5, height=64, lr_width=8, lr_max_width=16, lr_depth=2, learned_ds_factor=2, hr_width=8, hr_depth=3)


@pytest.mark.parametrize(
    "size, ds",
    [((64, 128), 2), ((64, 64), 2), ((64, 128), 4)],  # k = 4: tent by 2 (ids histogram), or no tent (stem on ids)
)
def test_generator_fast_equals_reference(size, ds):
    torch.manual_seed(3)
    model = ASAPNetGenerator(make_config("asapnet", {**SMALL, "learned_ds_factor": ds})).eval()
    with torch.no_grad():  # larger head weights: outputs spread over (-1, 1), not all near 0
        model.lowres.head.weight.mul_(50.0)
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(0, 5, (2, *size), generator=g)
    onehot = torch.nn.functional.one_hot(ids, 5).permute(0, 3, 1, 2).float()  # (B, 5, H, W)
    edge = (torch.rand(2, 1, *size, generator=g) > 0.8).float()
    with torch.inference_mode():
        want = model(onehot, edge, impl="reference")
        assert want.abs().max() > 0.3
        for got in (model(onehot, edge), model(onehot, edge, label_ids=ids), model(onehot * 1.0, edge, impl="fast")):
            assert _rel_err(got, want) < RTOL
        soft = torch.softmax(torch.randn(onehot.shape, generator=g), 1)  # dense-label fallback
        assert _rel_err(model(soft, edge), model(soft, edge, impl="reference")) < RTOL
        params = model.predict_params(onehot, edge)
        assert params.shape == (2, model.cfg.num_mlp_params, size[0] // 4, size[1] // 4)
        assert _rel_err(params, model.predict_params(onehot, edge, impl="reference")) < RTOL
    with pytest.raises(ValueError, match="impl"):
        model(onehot, edge, impl="slow")
    with pytest.raises(ValueError, match="label_ids shape"):
        model(onehot, edge, label_ids=ids[:, :8])
    with pytest.raises(ValueError, match=r"outside \[0, 5\)"):
        model(onehot, edge, label_ids=ids + 1)


@pytest.mark.parametrize("ds", [2, 4])
def test_generator_fast_path_trains(ds):
    torch.manual_seed(5)
    model = ASAPNetGenerator(make_config("asapnet", {**SMALL, "learned_ds_factor": ds}))
    ids = torch.randint(0, 5, (1, 64, 64))
    onehot = torch.nn.functional.one_hot(ids, 5).permute(0, 3, 1, 2).float()
    edge = torch.zeros(1, 1, 64, 64)
    model(onehot, edge).square().mean().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    model.zero_grad()
    model(onehot, edge, impl="reference").square().mean().backward()
    for n, p in model.named_parameters():
        assert grads[n] is not None and torch.isfinite(grads[n]).all(), n
        torch.testing.assert_close(grads[n], p.grad, rtol=1e-4, atol=1e-9)
