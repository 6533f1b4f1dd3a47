"""ASAPNet-denoise: config strictness, the variants' table, forward/backward on odd sizes, residual
and context options, noise-level input, the kernel-prediction head (filters, slicing, bilateral
grid), the hybrid front, complexity closed form, grid-size robustness, short training checks."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from lib.config import ConfigError, from_dict
from lib.models.lowres import LOWRES_PADDINGS, CellNorm, ChannelAffine, LowResStream
from lib.models.pixelwise import pe_channels
from lib.models.asapnet_denoise import (
    VARIANT_BASE,
    VARIANT_CHANGE,
    VARIANTS,
    ASAPNetDenoiseConfig,
    ASAPNetDenoiser,
    complexity,
    variant_config,
)
from lib.models.tile_filter import apply_kernels, guide_map, slice_bilateral, slice_tiles

# Small widths so every test runs in a fraction of a second.
TINY = dict(lr_width=4, lr_max_width=8, lr_depth=1, hr_width=8, hr_depth=2, context_width=4)


def _tiny(name: str, in_channels: int = 1, **kw) -> ASAPNetDenoiseConfig:
    return variant_config(name, in_channels, **{**TINY, **kw})


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "field,value",
    [
        ("in_channels", 0),
        ("tile_size", 12),
        ("tile_size", 1),
        ("learned_ds_factor", 32),
        ("learned_ds_factor", 3),
        ("lr_width", 0),
        ("lr_depth", -1),
        ("hr_depth", 0),
        ("context", "patch5"),
        ("context_width", 0),
        ("final_activation", "sigmoid"),
        ("init_gain", 0.0),
        ("lr_padding", "circular"),
        ("lr_norm", "batch"),
        ("kernel_size", 4),
        ("kernel_size", 1),
        ("kernel_channels", "per_pixel"),
        ("slicing", "bicubic"),
        ("slicing", "bilinear"),  # without a kernel
        ("mlp", False),  # without a kernel: nothing would produce the output
        ("intensity_bins", 1),
        ("intensity_bins", 8),  # with nearest slicing
        ("guide", "clean"),
    ],
)
def test_config_validation_names_field(field, value):
    with pytest.raises(ValueError, match=field):
        ASAPNetDenoiseConfig(**{field: value})
    with pytest.raises(ConfigError, match=field):
        from_dict(ASAPNetDenoiseConfig, {field: value}, where="models.asapnet_denoise")


def test_from_dict_rejects_unknown_key():
    with pytest.raises(ConfigError, match="tile"):
        from_dict(ASAPNetDenoiseConfig, {"tile": 8})


def test_from_dict_accepts_every_variant():
    for name, overrides in VARIANTS.items():
        assert from_dict(ASAPNetDenoiseConfig, overrides) == variant_config(name)


def test_variant_unknown_name_lists_known():
    with pytest.raises(KeyError, match="plain"):
        variant_config("nope")


def test_variants_form_the_ablation_chain():
    """Each row of the main chain keeps every change of the previous row and adds one."""
    chain = ["plain", "residual", "context_patch", "small_tiles", "noise_level"]
    assert list(VARIANTS)[0] == "plain" and set(chain) <= set(VARIANTS)
    fields = lambda n: dataclasses.asdict(variant_config(n))  # noqa: E731
    for prev, cur in zip(chain[:-1], chain[1:]):
        diff = {k for k in fields(cur) if fields(cur)[k] != fields(prev)[k]}
        assert diff and all(k in VARIANTS[cur] for k in diff), (prev, cur, diff)
        assert VARIANTS[prev].items() <= VARIANTS[cur].items()  # overrides accumulate
    plain, last = variant_config("plain"), variant_config("noise_level")
    assert (plain.residual, plain.context, plain.noise_level_input, plain.final_activation) == (
        False, "none", False, "tanh")
    assert (last.residual, last.context, last.tile_size, last.noise_level_input, last.final_activation) == (
        True, "patch3", 8, True, "none")
    assert variant_config("context_conv").context == "conv"
    assert variant_config("tiny_tiles").tile_size == 4


# ----------------------------------------------------------------------------- forward / backward


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("in_channels", [1, 3])
def test_variant_forward_odd_size_and_gradients(name, in_channels):
    torch.manual_seed(0)
    cfg = _tiny(name, in_channels)
    model = ASAPNetDenoiser(cfg).train()
    x = torch.rand(2, in_channels, 37, 53) + 0.1 * torch.randn(2, in_channels, 37, 53)
    sigma = torch.tensor([15.0, 50.0])
    y = model(x, sigma)
    assert y.shape == x.shape and torch.isfinite(y).all()
    target = torch.rand_like(x)
    (y - target).square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{name}: no gradient reaches {pname}"


@pytest.mark.parametrize("size", [(9, 23), (16, 17), (17, 33), (40, 24)])
def test_forward_any_size_with_fixed_downsampling(size):
    """Part of k by the tent filter (learned_ds_factor < k): sizes still come back exactly."""
    cfg = _tiny("context_patch", tile_size=16, learned_ds_factor=4)
    assert cfg.fixed_factor == 4
    x = torch.rand(1, 1, *size)
    with torch.no_grad():
        y = ASAPNetDenoiser(cfg)(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_single_tile_input_raises_clearly():
    with pytest.raises(ValueError, match="single 16x16 tile"):
        ASAPNetDenoiser(_tiny("residual"))(torch.rand(1, 1, 5, 16))


def test_wrong_channel_count_raises():
    with pytest.raises(ValueError, match="in_channels"):
        ASAPNetDenoiser(_tiny("plain", 3))(torch.rand(1, 1, 16, 16))


# ----------------------------------------------------------------------------- output mapping


def _zero_head(model: ASAPNetDenoiser) -> None:
    with torch.no_grad():
        model.lowres.head.weight.zero_()
        model.lowres.head.bias.zero_()


@pytest.mark.parametrize("name", ["residual", "context_patch", "context_conv", "small_tiles", "noise_level"])
def test_residual_with_zero_mlp_returns_input_exactly(name):
    model = ASAPNetDenoiser(_tiny(name))
    _zero_head(model)  # every predicted MLP parameter is 0 -> the MLP outputs 0
    x = torch.randn(2, 1, 37, 53)
    with torch.no_grad():
        y = model(x, torch.tensor([25.0, 25.0]))
    assert torch.equal(y, x)


def test_plain_tanh_output_maps_to_unit_range():
    """Plain: out = (tanh(m) + 1) / 2, so a zero MLP gives 0.5 and any output lies in [0, 1]."""
    model = ASAPNetDenoiser(_tiny("plain"))
    x = torch.rand(1, 1, 20, 21)
    with torch.no_grad():
        model.lowres.head.bias.normal_(0, 10.0)  # large MLP parameters: saturating outputs
        y = model(x)
        assert y.min() >= 0 and y.max() <= 1 and (y - 0.5).abs().max() > 0.1
        _zero_head(model)
        assert torch.equal(model(x), torch.full_like(x, 0.5))


# ----------------------------------------------------------------------------- context


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("k", [4, 8, 16])
def test_mlp_input_channel_counts(in_channels, k):
    c = in_channels
    pe = pe_channels(k)
    assert pe == 4 * {4: 2, 8: 3, 16: 4}[k]
    assert _tiny("residual", c, tile_size=k).mlp_in_channels == c + pe
    assert _tiny("context_patch", c, tile_size=k).mlp_in_channels == 9 * c + pe
    assert _tiny("context_conv", c, tile_size=k).mlp_in_channels == c + TINY["context_width"] + pe
    assert _tiny("noise_level", c, tile_size=k).mlp_in_channels == 9 * c + 1 + pe
    assert _tiny("context_patch", c, tile_size=k, positional_encoding=False).mlp_in_channels == 9 * c


def test_patch3_features_are_the_3x3_neighbourhood():
    model = ASAPNetDenoiser(_tiny("context_patch", 3))
    x = torch.randn(2, 3, 16, 16)
    f = model.pixel_features(x)  # (B, 27, H, W), index c * 9 + (dy + 1) * 3 + (dx + 1)
    assert f.shape == (2, 27, 16, 16)
    for c in range(3):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                got = f[:, c * 9 + (dy + 1) * 3 + (dx + 1), 1:-1, 1:-1]
                want = x[:, c, 1 + dy : 15 + dy, 1 + dx : 15 + dx]
                assert torch.equal(got, want), (c, dy, dx)
    # reflect padding at the border: the left neighbour of column 0 is column 1
    assert torch.equal(f[:, 3, :, 0], x[:, 0, :, 1])


def test_conv_context_sees_a_neighbourhood_and_the_pixel():
    model = ASAPNetDenoiser(_tiny("context_conv"))
    x = torch.zeros(1, 1, 16, 16)
    f = model.pixel_features(x)
    assert f.shape == (1, 1 + TINY["context_width"], 16, 16)
    assert torch.equal(f[:, :1], x)
    x2 = x.clone()
    x2[0, 0, 8, 8] = 1.0  # a 2-layer 3x3 front-end has a 5x5 receptive field
    d = (model.pixel_features(x2) - f)[0, 1:].abs().sum(0)
    assert d[6:11, 6:11].sum() > 0 and d[:5].sum() == 0 and d[12:].sum() == 0


# ----------------------------------------------------------------------------- noise level


def test_noise_level_input_changes_output_and_blind_ignores_it():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 24, 24)
    nonblind = ASAPNetDenoiser(_tiny("noise_level"))
    with torch.no_grad():
        a = nonblind(x, torch.tensor([10.0, 10.0]))
        b = nonblind(x, torch.tensor([50.0, 10.0]))
        assert (a[0] - b[0]).abs().max() > 1e-6  # sigma of image 0 changed
        assert torch.equal(a[1], b[1])  # image 1 untouched
        assert torch.equal(nonblind(x, 10.0), a)  # a scalar broadcasts
    with pytest.raises(ValueError, match="sigma"):
        nonblind(x)
    with pytest.raises(ValueError, match="sigma"):
        nonblind(x, torch.tensor([10.0, 20.0, 30.0]))
    blind = ASAPNetDenoiser(_tiny("small_tiles"))
    with torch.no_grad():
        assert torch.equal(blind(x, torch.tensor([10.0, 10.0])), blind(x, torch.tensor([50.0, 5.0])))
        assert torch.equal(blind(x), blind(x, torch.tensor([50.0, 5.0])))


# ----------------------------------------------------------------------------- complexity


def _closed_form_macs(cfg: ASAPNetDenoiseConfig, h: int, w: int) -> int:
    """Convs and MLP matmuls of one forward pass (biases, norms, activations not counted)."""
    k = cfg.tile_size
    hp, wp = -(-h // k) * k, -(-w // k) * k  # padded to multiples of k
    c_lr = cfg.lowres_in_channels
    macs = 0
    s = cfg.fixed_factor
    if s > 1:  # tent filter, depthwise: reflect pad s/2, 2s taps along x, then 2s taps along y
        macs += c_lr * (hp + s) * (wp // s) * 2 * s + c_lr * (hp // s) * (wp // s) * 2 * s
    hh, ww = hp // s, wp // s
    macs += hh * ww * c_lr * cfg.lr_width * 9  # stem
    c = cfg.lr_width
    n_down = cfg.learned_factor.bit_length() - 1
    for i in range(n_down):
        c_out = cfg.lr_max_width if i == n_down - 1 else cfg.lr_width
        hh, ww = hh // 2, ww // 2
        macs += hh * ww * c * c_out * 9
        c = c_out
    macs += cfg.lr_depth * hh * ww * c * c * 9  # plain blocks
    macs += hh * ww * c * cfg.num_lowres_params  # 1x1 head: filter logits + MLP parameters
    if cfg.intensity_bins and cfg.guide == "smooth":  # binomial blur of the guide: 5 taps along x, then y
        macs += 5 * (hp + 4) * wp + 5 * hp * wp
    if cfg.context == "conv":
        cc = cfg.in_channels
        for _ in range(cfg.context_layers):
            macs += hp * wp * cc * cfg.context_width * 9
            cc = cfg.context_width
    ch = cfg.mlp_channels
    if cfg.mlp:
        macs += hp * wp * sum(a * b for a, b in zip(ch[:-1], ch[1:]))  # per-pixel MLP
    return macs  # the per-pixel filter (s^2 element-wise multiply-adds per pixel) is not counted


@pytest.mark.parametrize("name", list(VARIANTS))
def test_complexity_matches_closed_form_and_grows(name):
    cfg = variant_config(name)
    small, big = complexity(cfg, 37, 53), complexity(cfg, 321, 481)
    model = ASAPNetDenoiser(cfg)
    assert small["params"] == big["params"] == sum(p.numel() for p in model.parameters()) > 0
    assert big["gmacs"] > small["gmacs"] > 0
    assert big["gmacs"] * 1e9 == pytest.approx(_closed_form_macs(cfg, 321, 481), rel=1e-9)
    assert small["gmacs"] * 1e9 == pytest.approx(_closed_form_macs(cfg, 37, 53), rel=1e-9)


def test_complexity_with_fixed_downsampling():
    cfg = _tiny("noise_level", 3, tile_size=16, learned_ds_factor=4)
    got = complexity(cfg, 50, 70)["gmacs"] * 1e9
    assert got == pytest.approx(_closed_form_macs(cfg, 50, 70), rel=1e-9)


# ----------------------------------------------------------------------------- grid-size robustness


def _two_grids(cfg: ASAPNetDenoiseConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's output on a 128x128 image and on its top-left 64x64 crop (grids of 16 and 8 tiles)."""
    torch.manual_seed(0)
    model = ASAPNetDenoiser(cfg).eval()
    for m in model.modules():  # non-trivial norm affines, so every layer matters
        if hasattr(m, "weight") and isinstance(m.weight, torch.nn.Parameter) and m.weight.ndim == 1:
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.uniform_(m.bias, -0.2, 0.2)
    x = torch.rand(1, 1, 128, 128)
    with torch.no_grad():
        return model(x)[..., :64, :64], model(x[..., :64, :64])


def test_grid_robust_variant_does_not_depend_on_the_grid_size():
    """Away from the crop's bottom/right border, a tile's output is the same whether the image
    is 16 or 8 tiles wide with reflect padding and the per-cell norm; with instance norm (the
    ASAPNet stream) every tile changes with the grid."""
    cfg = _tiny("grid_robust", tile_size=8, lr_depth=1)
    assert (cfg.lr_padding, cfg.lr_norm, cfg.context) == ("reflect", "cell", "conv")
    big, small = _two_grids(cfg)
    inner = (..., slice(0, 24), slice(0, 24))  # 3 tiles from the top-left corner, shared by both grids
    torch.testing.assert_close(big[inner], small[inner], rtol=0, atol=1e-5)
    big, small = _two_grids(dataclasses.replace(cfg, lr_norm="instance"))
    assert (big[inner] - small[inner]).abs().max() > 1e-3
    for norm in ("cell", "none"):  # zero padding makes the grid border visible, but not the grid size
        big, small = _two_grids(dataclasses.replace(cfg, lr_padding="zeros", lr_norm=norm))
        torch.testing.assert_close(big[inner], small[inner], rtol=0, atol=1e-5)


def test_hybrid_row_keeps_the_grid_robust_stream():
    """The hybrid changes grid_robust's front only, so its output does not depend on the grid size either."""
    cfg = _tiny("hybrid", tile_size=8, lr_depth=1)
    assert VARIANT_BASE["hybrid"] == "grid_robust"
    full = variant_config("hybrid")
    assert (full.lr_padding, full.lr_norm, full.context_layers, full.context_width) == ("reflect", "cell", 3, 32)
    big, small = _two_grids(cfg)
    inner = (..., slice(0, 24), slice(0, 24))
    torch.testing.assert_close(big[inner], small[inner], rtol=0, atol=1e-5)


def test_lowres_options_keep_the_state_dict_layout_and_check_small_grids():
    plain = ASAPNetDenoiser(_tiny("context_conv", tile_size=8)).state_dict()
    for norm in ("cell", "none"):
        robust = ASAPNetDenoiser(_tiny("context_conv", tile_size=8, lr_padding="reflect", lr_norm=norm)).state_dict()
        assert {k: v.shape for k, v in robust.items()} == {k: v.shape for k, v in plain.items()}
    model = ASAPNetDenoiser(_tiny("grid_robust", tile_size=8))
    with pytest.raises(ValueError, match="reflect padding"):
        model(torch.rand(1, 1, 8, 40))  # a grid of 1 x 5 tiles
    assert model(torch.rand(1, 1, 16, 40)).shape == (1, 1, 16, 40)


def test_lowres_stream_takes_its_padding_and_norm_at_construction():
    """The stream is built with its padding and norm (nothing is patched afterwards): every 3x3
    conv pads as asked, the 1x1 head does not pad, and each norm is the asked kind."""
    norms = {"instance": torch.nn.InstanceNorm2d, "cell": CellNorm, "none": ChannelAffine}
    for padding in LOWRES_PADDINGS:
        for norm, kind in norms.items():
            stream = LowResStream(2, 5, width=4, max_width=8, depth=1, learned_ds_factor=4, padding=padding, norm=norm)
            layers = [stream.stem, *stream.down, *stream.blocks]
            assert [layer.conv.padding_mode for layer in layers] == [padding] * 4
            assert all(type(layer.norm) is kind for layer in layers)
            assert stream.head.padding == (0, 0) and stream(torch.rand(1, 2, 16, 16)).shape == (1, 5, 4, 4)
    for bad in ({"padding": "circular"}, {"norm": "batch"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LowResStream(2, 5, **bad)


# ----------------------------------------------------------------------------- training sanity


def test_short_training_reduces_mse():
    """Residual + 3x3 context on a fixed noisy batch: 30 Adam steps lower the MSE to the clean image."""
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    clean = (0.5 + 0.3 * torch.sin(6 * xx) * torch.cos(4 * yy)).expand(4, 1, 32, 32)  # smooth
    noisy = clean + 25 / 255 * torch.randn(4, 1, 32, 32)
    model = ASAPNetDenoiser(variant_config("context_patch", lr_width=8, lr_max_width=16, lr_depth=1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = F.mse_loss(model(noisy), clean)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    noise_mse = F.mse_loss(noisy, clean).item()
    assert losses[0] == pytest.approx(noise_mse, rel=0.05)  # starts near the identity
    assert losses[-1] < 0.7 * losses[0]


# ----------------------------------------------------------------------------- the variants' table

FILTER_ROWS = ["kernel", "kernel_only", "kernel_bilinear", "kernel_bilateral", "bilateral_only", "hybrid_kernel"]


def test_every_row_changes_one_thing_from_its_base():
    """Each row has a base row listed before it (or none: the root) and a change text; it keeps the
    base's overrides and adds to them; the report and the study read the same table."""
    from lib.denoise.study import VARIANT_CHANGES

    assert list(VARIANT_BASE) == list(VARIANTS) == list(VARIANT_CHANGE)
    assert [n for n, b in VARIANT_BASE.items() if b is None] == ["plain"]
    order = list(VARIANTS)
    for name, base in VARIANT_BASE.items():
        assert VARIANT_CHANGE[name].strip()
        if base is None:
            continue
        assert order.index(base) < order.index(name), (name, base)
        assert VARIANTS[base].items() <= VARIANTS[name].items() and VARIANTS[base] != VARIANTS[name], name
        assert variant_config(base) != variant_config(name)
    assert VARIANT_CHANGES == VARIANT_CHANGE
    bilateral, hybrid = variant_config("kernel_bilateral"), variant_config("hybrid")
    assert (bilateral.kernel_size, bilateral.slicing, bilateral.intensity_bins, bilateral.mlp) == (5, "bilinear", 8, True)
    assert not variant_config("bilateral_only").mlp and variant_config("kernel").slicing == "nearest"
    assert (hybrid.context, hybrid.context_layers, hybrid.context_width) == ("conv", 3, 32)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_checkpoint_round_trip_of_every_variant(name, tmp_path):
    """Each row builds from its config dict through the registry, saves and reloads through the one loader."""
    from lib.checkpoint import save_checkpoint
    from lib.config import to_dict
    from lib.models import build, load_model

    torch.manual_seed(0)
    model = build("asapnet_denoise", to_dict(_tiny(name, 3))).eval()
    path = save_checkpoint(tmp_path / "m.pt", model="asapnet_denoise", config=to_dict(model.cfg),
                           state_dict=model.state_dict(), step=1)
    loaded = load_model(path)
    x, sigma = torch.rand(1, 3, 29, 35), torch.tensor([25.0])
    with torch.no_grad():
        assert loaded.cfg == model.cfg and torch.equal(loaded(x, sigma), model(x, sigma))


# ----------------------------------------------------------------------------- kernel prediction


def _head_bias(model: ASAPNetDenoiser, filter_logits: torch.Tensor) -> None:
    """Every tile predicts the same parameters: the given filter logits (G*T*D,) and a zero MLP."""
    with torch.no_grad():
        model.lowres.head.weight.zero_()
        model.lowres.head.bias.zero_()
        model.lowres.head.bias[: model.cfg.num_filter_params] = filter_logits


def _delta_logits(cfg: ASAPNetDenoiseConfig) -> torch.Tensor:
    """Logits whose softmax is the centre tap exactly (exp(-1e4) is 0 in float32), layout (g T + t) D + d."""
    taps, bins = cfg.kernel_size**2, max(cfg.intensity_bins, 1)
    logits = torch.full((cfg.kernel_groups, taps, bins), -1e4)
    logits[:, taps // 2] = 0.0
    return logits.flatten()


@pytest.mark.parametrize("in_channels,kernel_channels", [(1, "shared"), (3, "shared"), (3, "per_channel")])
@pytest.mark.parametrize("name", FILTER_ROWS)
def test_delta_kernel_reproduces_the_input(name, in_channels, kernel_channels):
    """A predicted delta filter (and a zero MLP) returns the noisy input: exactly with per-tile
    weights, to float rounding where the weights are interpolated (bilinear / bilateral)."""
    cfg = _tiny(name, in_channels, kernel_channels=kernel_channels)
    model = ASAPNetDenoiser(cfg).eval()
    _head_bias(model, _delta_logits(cfg))
    x = torch.randn(2, in_channels, 37, 53)
    with torch.no_grad():
        y = model(x, torch.tensor([25.0, 25.0]))
    if cfg.slicing == "nearest":
        assert torch.equal(y, x)
    else:
        torch.testing.assert_close(y, x, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["kernel_only", "bilateral_only"])
def test_filter_alone_is_a_weighted_average(name):
    """Any predicted filter has weights summing to one: a constant image comes back unchanged, and
    no output leaves the range of the input."""
    torch.manual_seed(0)
    model = ASAPNetDenoiser(_tiny(name, 3, kernel_channels="per_channel")).eval()
    with torch.no_grad():
        model.lowres.head.weight.normal_(0, 1.0)  # tile-varying, far-from-uniform filters
        model.lowres.head.bias.normal_(0, 2.0)
        const = torch.full((1, 3, 40, 44), 0.3)
        torch.testing.assert_close(model(const), const, rtol=0, atol=1e-6)
        x = torch.rand(1, 3, 40, 44)
        y = model(x)
    assert y.min() >= x.min() - 1e-6 and y.max() <= x.max() + 1e-6
    assert (y - x).abs().max() > 1e-3  # it does filter


def test_apply_kernels_matches_an_unfold_reference():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 11, 13)
    cols = F.unfold(F.pad(x, (2, 2, 2, 2), mode="reflect"), 5).view(2, 3, 25, 11, 13)  # (B, C, T, H, W)
    for groups in (1, 3):
        w = torch.softmax(torch.randn(2, groups, 25, 11, 13), dim=2)  # (B, G, T, H, W)
        want = (cols * w).sum(dim=2)  # (B, C, H, W), the shared filter broadcast over C
        with torch.no_grad():
            torch.testing.assert_close(apply_kernels(x, w), want)  # in-place accumulation
        wg = w.clone().requires_grad_()
        got = apply_kernels(x, wg)  # recorded by autograd
        torch.testing.assert_close(got, want)
        got.sum().backward()
        torch.testing.assert_close(wg.grad, cols.sum(dim=1, keepdim=True).expand_as(w) if groups == 1 else cols)
    with pytest.raises(ValueError, match="weights shape"):
        apply_kernels(x, torch.rand(2, 2, 25, 11, 13))


def test_per_channel_filters_equal_the_shared_one_when_they_agree():
    shared = ASAPNetDenoiser(_tiny("kernel_only", 3)).eval()
    per = ASAPNetDenoiser(_tiny("kernel_only", 3, kernel_channels="per_channel")).eval()
    assert per.cfg.num_filter_params == 3 * shared.cfg.num_filter_params == 75
    torch.manual_seed(0)
    logits = torch.randn(25)
    _head_bias(shared, logits)
    _head_bias(per, logits.repeat(3))
    x = torch.rand(1, 3, 33, 35)
    with torch.no_grad():
        torch.testing.assert_close(per(x), shared(x))


# ----------------------------------------------------------------------------- slicing


def test_bilinear_slicing_equals_the_tile_constant_when_all_tiles_agree():
    """Same parameters in every tile: bilinear slicing gives the per-tile model's output."""
    torch.manual_seed(0)
    nearest = ASAPNetDenoiser(_tiny("kernel")).eval()
    bilinear = ASAPNetDenoiser(_tiny("kernel_bilinear")).eval()
    bilinear.load_state_dict(nearest.state_dict())  # same layout: slicing adds no parameter
    logits = torch.randn(nearest.cfg.num_filter_params)
    for model in (nearest, bilinear):
        _head_bias(model, logits)
        with torch.no_grad():
            model.lowres.head.bias[25:].normal_(0, 0.1, generator=torch.Generator().manual_seed(1))  # same MLP
    x = torch.rand(2, 1, 37, 53)
    with torch.no_grad():
        torch.testing.assert_close(bilinear(x), nearest(x), rtol=0, atol=1e-6)
    grid = torch.randn(1, 4, 1, 1).expand(1, 4, 3, 5)  # (B, P, h, w), constant over cells
    torch.testing.assert_close(slice_tiles(grid, 8, "bilinear"), slice_tiles(grid, 8, "nearest"), rtol=0, atol=1e-6)


def test_bilinear_slicing_is_continuous_across_tile_borders():
    """Neighbouring pixels differ by at most 1/k of the largest step between neighbouring cells
    (within and across tile borders); per-tile values jump by the whole step at the borders."""
    torch.manual_seed(0)
    k = 8
    grid = torch.randn(1, 2, 4, 5)  # (B, P, h, w)
    lin, near = slice_tiles(grid, k, "bilinear"), slice_tiles(grid, k, "nearest")
    assert lin.shape == near.shape == (1, 2, 32, 40)
    for dim in (-1, -2):
        cell_step = grid.diff(dim=dim).abs().max()
        assert lin.diff(dim=dim).abs().max() <= cell_step / k + 1e-6
        assert near.diff(dim=dim).abs().max() == pytest.approx(cell_step.item())
    # value at a pixel = bilinear between the cells around its position ((y + 0.5) / k - 0.5, ...)
    y, x = 13, 22
    gy, gx = (y + 0.5) / k - 0.5, (x + 0.5) / k - 0.5  # 1.1875, 2.3125
    i, j, a, b = int(gy), int(gx), gy - int(gy), gx - int(gx)
    want = ((1 - a) * (1 - b) * grid[..., i, j] + (1 - a) * b * grid[..., i, j + 1]
            + a * (1 - b) * grid[..., i + 1, j] + a * b * grid[..., i + 1, j + 1])
    torch.testing.assert_close(lin[..., y, x], want)


def test_bilateral_slicing_reads_the_bins_at_the_guide():
    """Bins centred on (d + 0.5) / D: a guide at a bin centre reads that bin (sliced bilinearly in
    space), between two centres the linear mix; equal bins give the bilinear slicing."""
    torch.manual_seed(0)
    k, bins = 4, 4
    grid = torch.randn(2, 3, bins, 3, 5)  # (B, P, D, h, w)
    ones = torch.ones(2, 1, 12, 20)
    for d in range(bins):
        got = slice_bilateral(grid, ones * (d + 0.5) / bins, k)
        torch.testing.assert_close(got, slice_tiles(grid[:, :, d], k, "bilinear"), rtol=0, atol=1e-5)
    mid = slice_bilateral(grid, ones * 0.5, k)  # half-way between the centres of bins 1 and 2
    want = 0.5 * (slice_tiles(grid[:, :, 1], k, "bilinear") + slice_tiles(grid[:, :, 2], k, "bilinear"))
    torch.testing.assert_close(mid, want, rtol=0, atol=1e-5)
    flat = grid[:, :, :1].expand(-1, -1, bins, -1, -1)
    torch.testing.assert_close(slice_bilateral(flat, torch.rand(2, 1, 12, 20) * 1.4 - 0.2, k),
                               slice_tiles(grid[:, :, 0], k, "bilinear"), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="guide shape"):
        slice_bilateral(grid, torch.rand(2, 1, 12, 19), k)


def test_guide_maps():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(guide_map(x, "noisy"), x.mean(dim=1, keepdim=True))
    torch.testing.assert_close(guide_map(torch.full((1, 3, 9, 9), 0.7), "smooth"), torch.full((1, 1, 9, 9), 0.7))
    noise = torch.randn(1, 1, 256, 256)
    ratio = guide_map(noise, "smooth")[..., 4:-4, 4:-4].std() / noise.std()  # binomial 5-tap: sqrt(70/256)^2 = 0.273
    assert 0.24 < ratio < 0.31
    with pytest.raises(ValueError, match="guide"):
        guide_map(x, "clean")


# ----------------------------------------------------------------------------- sizes and grids


@pytest.mark.parametrize("name", FILTER_ROWS + ["hybrid"])
@pytest.mark.parametrize("size", [(9, 23), (16, 17), (33, 47)])
def test_filter_rows_take_any_size(name, size):
    """Sizes that are not multiples of the tile (and smaller than one tile per side) come back exactly."""
    x = torch.rand(1, 1, *size)
    with torch.no_grad():
        y = ASAPNetDenoiser(_tiny(name, tile_size=8)).eval()(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_bilateral_filter_with_a_grid_free_stream_does_not_depend_on_the_grid_size():
    """The kernel head adds nothing grid-size dependent: with the grid-robust low-res stream the
    bilateral rows' output near the top-left corner is the same on the image and on its crop."""
    for name in ("kernel_bilateral", "bilateral_only"):
        cfg = _tiny(name, tile_size=8, lr_padding="reflect", lr_norm="cell")
        big, small = _two_grids(cfg)
        inner = (..., slice(0, 24), slice(0, 24))
        torch.testing.assert_close(big[inner], small[inner], rtol=0, atol=1e-5)


def test_nan_input_shows_in_the_filtered_output():
    model = ASAPNetDenoiser(_tiny("bilateral_only")).eval()
    x = torch.rand(1, 1, 32, 32)
    x[0, 0, 5, 5] = float("nan")
    with torch.no_grad():
        assert not torch.isfinite(model(x)).all()


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize("name", ["kernel_bilateral", "bilateral_only", "hybrid", "hybrid_kernel"])
def test_filter_and_hybrid_rows_train(name):
    """A few Adam steps on a fixed noisy batch of a smooth image lower the MSE; the filter rows start
    as a box average (near-uniform softmax weights), far below the noise's MSE."""
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    clean = (0.5 + 0.3 * torch.sin(6 * xx) * torch.cos(4 * yy)).expand(4, 1, 32, 32)
    noisy = clean + 25 / 255 * torch.randn(4, 1, 32, 32)
    model = ASAPNetDenoiser(_tiny(name, tile_size=8))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = F.mse_loss(model(noisy), clean)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert losses[-1] < 0.9 * losses[0]
    noise_mse = F.mse_loss(noisy, clean).item()
    assert losses[0] < 0.1 * noise_mse if model.cfg.kernel_size else losses[0] == pytest.approx(noise_mse, rel=0.05)
