"""Label->photo translation models (ASAPNet, pix2pixHD, SPADE, PatchGAN), their losses and the
official checkpoint key mapping: shapes, gradients, tile locality, closed forms, parameter counts."""
from __future__ import annotations

import math

import pytest
import torch

from lib.config import ConfigError
from lib.models import build, make_config
from lib.models.asapnet import ASAPNetConfig, ASAPNetGenerator
from lib.models.lowres import TentDownsample
from lib.models.pixelwise import mlp_param_count, pe_channels, pixelwise_mlp, positional_encoding
from lib.models.losses import (
    LossConfig,
    feature_matching_loss,
    gan_d_loss,
    gan_g_loss,
    hinge_d_loss,
    hinge_g_loss,
    lsgan_d_loss,
    lsgan_g_loss,
    vgg19_features,
    vgg_loss,
)
from lib.models.official import convert_official_asapnet, convert_official_pix2pixhd

LABEL_NC = 5

# Small configs: every model family at a few thousand parameters.
SMALL = {
    "asapnet": dict(
        label_nc=LABEL_NC, height=64, lr_width=8, lr_max_width=16, lr_depth=2,
        learned_ds_factor=2, hr_width=8, hr_depth=3,
    ),  # k = 4: tent downsampling by 2, then one learned stride-2 conv
    "pix2pixhd": dict(label_nc=LABEL_NC, ngf=4, n_downsampling=2, n_blocks=2),
    "spade": dict(label_nc=LABEL_NC, ngf=4, spade_hidden=8, num_upsampling_layers="normal"),
    "patchgan": dict(in_channels=LABEL_NC + 1 + 3, ndf=8, n_layers=4, num_D=2),
}


def _labels(b: int, h: int, w: int, nc: int = LABEL_NC, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, nc, (b, h, w), generator=g)
    onehot = torch.nn.functional.one_hot(ids, nc).permute(0, 3, 1, 2).float()  # (B, nc, H, W)
    edge = (torch.rand(b, 1, h, w, generator=g) > 0.8).float()  # (B, 1, H, W)
    return onehot, edge


def test_patchgan_scales_and_widths():
    """Forward/backward of every family is in tests/test_model_registry.py; here the PatchGAN layout."""
    model = build("patchgan", SMALL["patchgan"])
    lab, edge = _labels(2, 64, 128)
    out = model(torch.cat([lab, edge, torch.rand(2, 3, 64, 128) * 2 - 1], dim=1))
    assert len(out) == 2 and all(len(feats) == 5 for feats in out)
    assert [f.shape[1] for f in out[0]] == [8, 16, 32, 64, 1]
    assert out[1][0].shape[-2:] == (17, 33)  # second scale sees the 32x64 pooled input


@pytest.mark.parametrize("name", ["asapnet", "pix2pixhd", "spade"])
def test_instance_edge_is_checked(name):
    lab, edge = _labels(1, 64, 64)
    model = build(name, SMALL[name])
    with pytest.raises(ValueError, match="instance_edge"):
        model(lab, None)
    model = build(name, {**SMALL[name], "use_instance_edge": False})
    assert model(lab, None).shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="instance_edge"):
        model(lab, edge)


def test_spade_most_upsamplings_and_instance_norm():
    model = build("spade", dict(label_nc=3, use_instance_edge=False, ngf=2, spade_hidden=4,
                                num_upsampling_layers="most", param_free_norm="instance"))
    lab, _ = _labels(1, 256, 128, nc=3)  # latent grid 2 x 1
    assert model(lab).shape == (1, 3, 256, 128)
    assert model.up_4.learned_shortcut and not model.G_middle_0.learned_shortcut
    with pytest.raises(ValueError, match="multiple"):
        model(lab[..., :192, :])


# ---------------------------------------------------------------- ASAPNet building blocks


def test_mlp_parameter_count_cityscapes():
    cfg = ASAPNetConfig()
    assert cfg.tile_size == 16
    assert cfg.mlp_channels == [51, 64, 64, 64, 64, 3]  # 35 labels + 16 PE channels
    assert cfg.num_mlp_params == 16_003 == mlp_param_count(51, 64, 5, 3)
    # biases 4*64 + 3, weights 51*64 + 3*64*64 + 64*3
    assert mlp_param_count(51, 64, 5, 3) == (4 * 64 + 3) + (51 * 64 + 3 * 64 * 64 + 64 * 3)


def _naive_mlp(x, params, k, channels, final_tanh=True):
    """Per-pixel loop over the official layout: per layer C_out biases then a row-major (C_in, C_out) matrix."""
    b, _, hh, ww = x.shape
    out = torch.empty(b, channels[-1], hh, ww, dtype=x.dtype)
    for n in range(b):
        for i in range(hh):
            for j in range(ww):
                vec = params[n, :, i // k, j // k]
                h = x[n, :, i, j]
                idx = 0
                for layer, (ci, co) in enumerate(zip(channels[:-1], channels[1:])):
                    bias = vec[idx : idx + co]
                    idx += co
                    weight = vec[idx : idx + ci * co].view(ci, co)
                    idx += ci * co
                    h = h @ weight + bias
                    if layer < len(channels) - 2:
                        h = torch.where(h > 0, h, 0.01 * h)
                    elif final_tanh:
                        h = torch.tanh(h)
                out[n, :, i, j] = h
    return out


@pytest.mark.parametrize("final", ["tanh", "none"])
def test_pixelwise_mlp_matches_per_pixel_reference(final):
    torch.manual_seed(1)
    k, channels = 4, [6, 5, 5, 3]
    x = torch.randn(2, 6, 8, 12, dtype=torch.float64)
    p = mlp_param_count(6, 5, 3, 3)
    params = torch.randn(2, p, 2, 3, dtype=torch.float64)
    got = pixelwise_mlp(x, params, k, width=5, depth=3, out_channels=3, final_activation=final)
    want = _naive_mlp(x, params, k, channels, final_tanh=final == "tanh")
    torch.testing.assert_close(got, want)


def test_generator_is_pixelwise_mlp_and_tiles_are_independent():
    torch.manual_seed(2)
    cfg = make_config("asapnet", SMALL["asapnet"])
    model = ASAPNetGenerator(cfg).eval()
    lab, edge = _labels(1, 64, 128)
    k = cfg.tile_size
    with torch.no_grad():
        params = model.predict_params(lab, edge)
        assert params.shape == (1, cfg.num_mlp_params, 64 // k, 128 // k)
        mlp_in = model.mlp_input(lab)
        mlp_kw = dict(width=cfg.hr_width, depth=cfg.hr_depth, out_channels=3)
        out = pixelwise_mlp(mlp_in, params, k, **mlp_kw)
        torch.testing.assert_close(out, model(lab, edge))
        ti, tj = 3, 5
        bumped = params.clone()
        bumped[:, :, ti, tj] += torch.randn(cfg.num_mlp_params)
        diff = (pixelwise_mlp(mlp_in, bumped, k, **mlp_kw) - out).abs().sum(1)[0]  # (H, W)
    inside = torch.zeros_like(diff, dtype=torch.bool)
    inside[ti * k : (ti + 1) * k, tj * k : (tj + 1) * k] = True
    assert (diff[~inside] == 0).all()
    assert (diff[inside] > 0).all()


def test_instance_edge_reaches_only_the_lowres_stream():
    cfg = make_config("asapnet", SMALL["asapnet"])
    model = ASAPNetGenerator(cfg)
    assert model.lowres.stem.conv.in_channels == LABEL_NC + 1
    assert model.mlp_input(_labels(1, 64, 64)[0]).shape[1] == LABEL_NC + pe_channels(cfg.tile_size)


@pytest.mark.parametrize("k", [2, 4, 8, 16, 32])
def test_positional_encoding_channels_values_and_periods(k):
    pe = positional_encoding(k)
    assert pe.shape == (4 * int(math.log2(k)), k, k) == (pe_channels(k), k, k)
    pos = torch.arange(k, dtype=torch.float64)
    for g, f in enumerate(2 ** torch.arange(int(math.log2(k)), 0, -1)):  # f = k, k/2, ..., 2
        f = int(f)
        phase = 2 * math.pi * (pos % f) / f
        xc, xs, yc, ys = pe[4 * g : 4 * g + 4].double()
        torch.testing.assert_close(xc, torch.cos(phase).expand(k, k), atol=1e-6, rtol=0)
        torch.testing.assert_close(xs, torch.sin(phase).expand(k, k), atol=1e-6, rtol=0)
        torch.testing.assert_close(yc, torch.cos(phase)[:, None].expand(k, k), atol=1e-6, rtol=0)
        torch.testing.assert_close(ys, torch.sin(phase)[:, None].expand(k, k), atol=1e-6, rtol=0)
        # period f along x for the x channels, along y for the y channels
        torch.testing.assert_close(xc[:, : k - f], xc[:, f:])
        torch.testing.assert_close(ys[: k - f], ys[f:])
        if f > 2:  # and not a shorter period
            assert not torch.allclose(xc[:, : k - f // 2], xc[:, f // 2 :])


def test_tiled_encoding_is_periodic_over_the_image():
    cfg = make_config("asapnet", SMALL["asapnet"])
    pe = ASAPNetGenerator(cfg).mlp_input(torch.zeros(1, LABEL_NC, 64, 128))[0, LABEL_NC:]
    k = cfg.tile_size
    torch.testing.assert_close(pe[:, :, k:], pe[:, :, :-k])
    torch.testing.assert_close(pe[:, k:], pe[:, :-k])
    torch.testing.assert_close(pe[:, :k, :k], positional_encoding(k))


def test_tent_downsample_kernel_and_closed_forms():
    ds = TentDownsample(2)
    torch.testing.assert_close(ds.kernel, torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8)
    assert TentDownsample(4).kernel.tolist() == pytest.approx([1 / 32, 3 / 32, 5 / 32, 7 / 32, 7 / 32, 5 / 32, 3 / 32, 1 / 32])
    assert "kernel" not in ds.state_dict()  # fixed, not learned: not saved either
    const = torch.full((1, 2, 16, 24), 0.7)
    torch.testing.assert_close(ds(const), torch.full((1, 2, 8, 12), 0.7))
    ramp = torch.arange(24.0).view(1, 1, 1, 24).expand(1, 1, 16, 24)
    out = ds(ramp)[0, 0]
    # symmetric kernel over pixels 2j-1 .. 2j+2: a ramp comes out at the centre 2j + 0.5
    torch.testing.assert_close(out[:, 1:-1], (2 * torch.arange(1.0, 11.0) + 0.5).expand(8, 10))
    for s in (2, 4, 8):
        assert TentDownsample(s)(torch.rand(1, 1, 64, 32)).shape == (1, 1, 64 // s, 32 // s)


@pytest.mark.parametrize(
    "bad", [{"height": 72}, {"height": 96}, {"height": 64, "learned_ds_factor": 16}, {"learned_ds_factor": 3}]
)
def test_asapnet_config_rejects_impossible_tilings(bad):
    with pytest.raises(ConfigError):
        make_config("asapnet", bad)


@pytest.mark.parametrize("height, given, learned, fixed", [
    (32, None, 2, 1), (128, None, 8, 1), (256, None, 16, 1), (512, None, 16, 2), (1024, None, 16, 4),  # derived
    (128, 4, 4, 2), (512, 32, 32, 1),  # given
])
def test_one_tile_rule_for_both_asapnet_families(height, given, learned, fixed):
    """The learned part of the tile is min(k, 16) unless set (official default 16), in the
    translation and the denoising config alike."""
    over = {} if given is None else {"learned_ds_factor": given}
    cfg = make_config("asapnet", {"height": height, **over})
    assert (cfg.learned_factor, cfg.fixed_factor) == (learned, fixed)
    den = make_config("asapnet_denoise", {"tile_size": height // 16, **over})
    assert (den.learned_factor, den.fixed_factor) == (learned, fixed)


# ---------------------------------------------------------------- Cityscapes-scale counts (meta device)


def _count(name, cfg=None):
    with torch.device("meta"):
        model = build(name, cfg)
    return sum(p.numel() for p in model.parameters())


def test_asapnet_parameter_count_cityscapes():
    n = _count("asapnet")
    # stem + 3 strided 64 + strided 1024 + 7 blocks + 1x1 head (conv weights, IN affine, head bias)
    want = (36 * 64 * 9 + 128) + 3 * (64 * 64 * 9 + 128) + (64 * 1024 * 9 + 2048) \
        + 7 * (1024 * 1024 * 9 + 2048) + (1024 * 16_003 + 16_003)
    assert n == want == 83_201_411
    assert abs(n - 83.2e6) / 83.2e6 < 0.005  # paper, Table 1 scale: about 83 M


def test_pix2pixhd_parameter_count_cityscapes():
    n = _count("pix2pixhd")
    assert n == 182_546_755
    assert abs(n - 182.5e6) / 182.5e6 < 0.005  # pix2pixHD global generator at paper width: about 183 M


def test_spade_and_discriminator_parameter_counts_cityscapes():
    sem = 36

    def spade(c):
        return (sem * 128 * 9 + 128) + 2 * (128 * c * 9 + c)

    def block(fin, fout):
        fmid = min(fin, fout)
        n = fin * fmid * 9 + fmid + fmid * fout * 9 + fout + spade(fin) + spade(fmid)
        return n + (fin * fout + spade(fin) if fin != fout else 0)

    want = (sem * 1024 * 9 + 1024) + 3 * block(1024, 1024) + block(1024, 512) + block(512, 256) \
        + block(256, 128) + block(128, 64) + (64 * 3 * 9 + 3)
    assert _count("spade") == want == 93_048_003
    per_scale = (39 * 64 * 16 + 64) + 64 * 128 * 16 + 128 * 256 * 16 + 256 * 512 * 16 + (512 * 16 + 1)
    assert _count("patchgan") == 2 * per_scale == 5_601_410


# ---------------------------------------------------------------- official checkpoints


def _official_asapnet_table(cfg: ASAPNetConfig) -> list[tuple[str, tuple[int, ...]]]:
    """Keys and shapes of tamarott/ASAPNet's netG (ASAPNetsLRStream, zero padding, instanceaffine)."""
    n_in = cfg.label_nc + 1
    table = [("lowres_stream.model.0.0.weight", (cfg.lr_width, n_in, 3, 3)),
             ("lowres_stream.model.0.1.weight", (cfg.lr_width,)),
             ("lowres_stream.model.0.1.bias", (cfg.lr_width,))]
    n_ds = int(math.log2(cfg.learned_factor))
    idx, c = 2, cfg.lr_width
    for i in range(n_ds):  # [Sequential(conv, IN), ReLU] pairs
        c_out = cfg.lr_max_width if i == n_ds - 1 else cfg.lr_width
        table += [(f"lowres_stream.model.{idx}.0.weight", (c_out, c, 3, 3)),
                  (f"lowres_stream.model.{idx}.1.weight", (c_out,)),
                  (f"lowres_stream.model.{idx}.1.bias", (c_out,))]
        idx, c = idx + 2, c_out
    for _ in range(cfg.lr_depth):  # ASAPNetsBlock: conv_block = Sequential(Sequential(conv, IN), ReLU)
        table += [(f"lowres_stream.model.{idx}.conv_block.0.0.weight", (c, c, 3, 3)),
                  (f"lowres_stream.model.{idx}.conv_block.0.1.weight", (c,)),
                  (f"lowres_stream.model.{idx}.conv_block.0.1.bias", (c,))]
        idx += 1
    table += [(f"lowres_stream.model.{idx}.weight", (cfg.num_mlp_params, c, 1, 1)),
              (f"lowres_stream.model.{idx}.bias", (cfg.num_mlp_params,))]
    return table


def _official_pix2pixhd_table(label_nc, ngf, n_down, n_blocks, norm):
    """Keys and shapes of NVIDIA/pix2pixHD's GlobalGenerator (``model`` Sequential)."""
    def norm_keys(i, c, prefix="model"):
        if norm != "batch":
            return []
        return [(f"{prefix}.{i}.weight", (c,)), (f"{prefix}.{i}.bias", (c,)), (f"{prefix}.{i}.running_mean", (c,)),
                (f"{prefix}.{i}.running_var", (c,)), (f"{prefix}.{i}.num_batches_tracked", ())]

    table = [("model.1.weight", (ngf, label_nc + 1, 7, 7)), ("model.1.bias", (ngf,))] + norm_keys(2, ngf)
    idx, c = 4, ngf
    for _ in range(n_down):  # [conv, norm, ReLU]
        table += [(f"model.{idx}.weight", (2 * c, c, 3, 3)), (f"model.{idx}.bias", (2 * c,))] + norm_keys(idx + 1, 2 * c)
        idx, c = idx + 3, 2 * c
    for _ in range(n_blocks):  # conv_block: [pad, conv, norm, ReLU, pad, conv, norm]
        for j in (1, 5):
            table += [(f"model.{idx}.conv_block.{j}.weight", (c, c, 3, 3)), (f"model.{idx}.conv_block.{j}.bias", (c,))]
            table += norm_keys(f"{idx}.conv_block.{j + 1}", c)
        idx += 1
    for _ in range(n_down):  # [convT (in, out, 3, 3), norm, ReLU]
        table += [(f"model.{idx}.weight", (c, c // 2, 3, 3)), (f"model.{idx}.bias", (c // 2,))] + norm_keys(idx + 1, c // 2)
        idx, c = idx + 3, c // 2
    table += [(f"model.{idx + 1}.weight", (3, c, 7, 7)), (f"model.{idx + 1}.bias", (3,))]  # [pad, conv, tanh]
    return table


def _random_state(table, device="cpu"):
    g = torch.Generator().manual_seed(3)
    if device == "meta":
        return {k: torch.empty(s, device="meta") for k, s in table}
    state = {k: (torch.tensor(7) if s == () else torch.randn(s, generator=g)) for k, s in table}
    return {k: (v.abs() + 0.5 if k.endswith("running_var") else v) for k, v in state.items()}


def test_official_asapnet_checkpoint_loads_strictly():
    cfg = make_config("asapnet", {**SMALL["asapnet"], "learned_ds_factor": 4})  # two learned convs
    official = _random_state(_official_asapnet_table(cfg))
    official = {"module." + k: v for k, v in official.items()}  # as saved from DataParallel
    model = ASAPNetGenerator(cfg)
    model.load_state_dict(convert_official_asapnet(official), strict=True)
    n = len(_official_asapnet_table(cfg))
    head = _official_asapnet_table(cfg)[n - 2][0]
    assert torch.equal(model.lowres.head.weight, official["module." + head])
    assert torch.equal(model.lowres.down[1].conv.weight, official["module.lowres_stream.model.4.0.weight"])
    assert torch.equal(model.lowres.blocks[1].norm.bias, official["module.lowres_stream.model.7.conv_block.0.1.bias"])


def test_official_asapnet_cityscapes_table_matches_shapes_and_count():
    cfg = ASAPNetConfig()
    table = _official_asapnet_table(cfg)
    assert sum(math.prod(s) for _, s in table) == 83_201_411
    with torch.device("meta"):
        model = ASAPNetGenerator(cfg)
    model.load_state_dict(convert_official_asapnet(_random_state(table, "meta")), strict=True, assign=True)


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_official_pix2pixhd_checkpoint_loads_strictly(norm):
    table = _official_pix2pixhd_table(LABEL_NC, 4, 2, 2, norm)
    official = _random_state(table)
    model = build("pix2pixhd", {**SMALL["pix2pixhd"], "norm": norm})
    model.load_state_dict(convert_official_pix2pixhd(official), strict=True)
    assert torch.equal(model.head[1].weight, official[table[-2][0]])
    assert torch.equal(model.blocks[1].body[5].weight, official["model.11.conv_block.5.weight"])
    assert torch.equal(model.up[0][0].weight, official["model.12.weight"])
    if norm == "instance":  # same function as the official layer list, written out with F ops
        lab, edge = _labels(1, 32, 32)
        torch.testing.assert_close(model(lab, edge), _official_pix2pixhd_forward(official, torch.cat([lab, edge], 1)))


def _official_pix2pixhd_forward(sd, x):
    """NVIDIA/pix2pixHD GlobalGenerator (instance norm) evaluated from its state dict."""
    F = torch.nn.functional
    conv = lambda i, x, **kw: F.conv2d(x, sd[f"model.{i}.weight"], sd[f"model.{i}.bias"], **kw)  # noqa: E731
    x = F.relu(F.instance_norm(conv(1, F.pad(x, (3, 3, 3, 3), mode="reflect"))))
    i = 4
    while f"model.{i}.weight" in sd:  # strided convs until the first residual block
        x = F.relu(F.instance_norm(conv(i, x, stride=2, padding=1)))
        i += 3
    while f"model.{i}.conv_block.1.weight" in sd:
        blk = lambda j, y: F.conv2d(F.pad(y, (1, 1, 1, 1), mode="reflect"),  # noqa: E731
                                    sd[f"model.{i}.conv_block.{j}.weight"], sd[f"model.{i}.conv_block.{j}.bias"])
        x = x + F.instance_norm(blk(5, F.relu(F.instance_norm(blk(1, x)))))
        i += 1
    while f"model.{i}.weight" in sd:  # transposed convs until the final pad (no weight)
        w, b = sd[f"model.{i}.weight"], sd[f"model.{i}.bias"]
        x = F.relu(F.instance_norm(F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)))
        i += 3
    return torch.tanh(conv(i + 1, F.pad(x, (3, 3, 3, 3), mode="reflect")))


def test_official_pix2pixhd_cityscapes_table_matches_shapes_and_count():
    table = _official_pix2pixhd_table(35, 64, 4, 9, "instance")
    assert sum(math.prod(s) for _, s in table) == 182_546_755
    with torch.device("meta"):
        model = build("pix2pixhd")
    model.load_state_dict(convert_official_pix2pixhd(_random_state(table, "meta")), strict=True, assign=True)


def test_official_converters_name_unknown_keys():
    with pytest.raises(KeyError, match="netG.model.1.weight"):
        convert_official_pix2pixhd({"netG.model.1.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="highres_stream.foo"):
        convert_official_asapnet({"highres_stream.foo": torch.zeros(1)})
    table = _official_asapnet_table(make_config("asapnet", SMALL["asapnet"]))
    bad = {k.replace("model.0.0.weight", "model.0.0.weight_orig"): v for k, v in _random_state(table).items()}
    model = ASAPNetGenerator(make_config("asapnet", SMALL["asapnet"]))
    with pytest.raises(RuntimeError, match="weight_orig"):
        model.load_state_dict(convert_official_asapnet(bad), strict=True)


# ---------------------------------------------------------------- losses


def _scales(values_per_scale):
    """D-style output: per scale a feature list whose last entry is the prediction."""
    return [[torch.randn(2, 4, 3, 3), torch.full((2, 1, 3, 3), float(v))] for v in values_per_scale]


def test_hinge_losses_closed_forms():
    g = torch.Generator().manual_seed(0)
    good_real = [[torch.randn(2, 4, 3, 3), 1 + torch.rand(2, 1, 3, 3, generator=g)] for _ in range(2)]
    good_fake = [[torch.randn(2, 4, 3, 3), -1 - torch.rand(2, 1, 3, 3, generator=g)] for _ in range(2)]
    assert hinge_d_loss(good_real, good_fake).item() == 0.0
    assert hinge_d_loss(_scales([0, 0]), _scales([0, 0])).item() == pytest.approx(2.0)
    # mean over scales: scale 1 real=0.5 -> 0.5, fake=0.5 -> 1.5; scale 2 real=3 -> 0, fake=-3 -> 0
    assert hinge_d_loss(_scales([0.5, 3]), _scales([0.5, -3])).item() == pytest.approx(1.0)
    assert hinge_g_loss(_scales([2, 4])).item() == pytest.approx(-3.0)
    assert hinge_g_loss(torch.full((2, 1, 3, 3), 0.25)).item() == pytest.approx(-0.25)
    assert gan_d_loss("hinge", _scales([0.5]), _scales([0.5])).item() == pytest.approx(2.0)


def test_lsgan_losses_closed_forms():
    assert lsgan_d_loss(_scales([1, 1]), _scales([0, 0])).item() == 0.0
    assert lsgan_d_loss(_scales([0]), _scales([1])).item() == pytest.approx(2.0)
    assert lsgan_g_loss(_scales([1, 3])).item() == pytest.approx((0 + 4) / 2)
    assert gan_g_loss("lsgan", [torch.ones(1, 1, 2, 2)]).item() == 0.0
    with pytest.raises(ValueError, match="gan_mode"):
        gan_g_loss("wgan", [torch.ones(1)])


def test_feature_matching_closed_forms():
    real = [[torch.randn(2, 4, 5, 5), torch.randn(2, 8, 3, 3), torch.randn(2, 1, 2, 2)] for _ in range(2)]
    same = [[f.clone() for f in feats] for feats in real]
    same[0][-1] += 5.0  # predictions are excluded
    assert feature_matching_loss(real, same).item() == 0.0
    zeros = [[torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 2, 2), torch.zeros(1, 1, 2, 2)] for _ in range(2)]
    fake = [[torch.ones(1, 2, 4, 4, requires_grad=True), torch.full((1, 3, 2, 2), 2.0, requires_grad=True),
             torch.full((1, 1, 2, 2), 9.0)] for _ in range(2)]
    loss = feature_matching_loss(zeros, fake)
    assert loss.item() == pytest.approx((1 + 2) * 2 / 2)  # sum over layers, mean over 2 scales
    loss.backward()
    assert fake[0][0].grad is not None


def test_vgg_weights_file_is_required_and_named(tmp_path):
    missing = tmp_path / "vgg19-dcbb9e9d.pth"
    with pytest.raises(FileNotFoundError, match="vgg19-dcbb9e9d.pth"):
        vgg19_features(missing)
    with pytest.raises(ValueError):
        vgg19_features(None)


def test_vgg_loss_on_random_vgg_and_file_round_trip(tmp_path):
    torch.manual_seed(4)
    vgg = vgg19_features(None, random_init=True)
    assert not any(p.requires_grad for p in vgg.parameters())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    feats = vgg(x)
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2]
    assert vgg_loss(vgg, x, x).item() == 0.0
    fake = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1).requires_grad_(True)
    loss = vgg_loss(vgg, fake, x)
    assert loss.item() > 0
    loss.backward()
    assert fake.grad.abs().sum() > 0
    # a torchvision-style file (features.* keys) loads into the same trunk
    state = {"features." + k.split(".", 2)[2]: v for k, v in vgg.state_dict().items()}  # slices.s.<idx>.*
    state["classifier.0.bias"] = torch.zeros(4)  # classifier keys are ignored
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    loaded = vgg19_features(path)
    torch.testing.assert_close(vgg_loss(loaded, fake.detach(), x), loss.detach())


def test_loss_config_defaults_and_strictness():
    from lib.config import from_dict

    cfg = from_dict(LossConfig, None)
    assert (cfg.gan_mode, cfg.lambda_feat, cfg.lambda_vgg, cfg.use_vgg) == ("hinge", 10.0, 10.0, False)
    assert from_dict(LossConfig, {"vgg_weights": "w.pth"}).use_vgg
    with pytest.raises(ConfigError, match="gan_mode"):
        from_dict(LossConfig, {"gan_mode": "wgan"})
