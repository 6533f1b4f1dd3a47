"""DnCNN: config strictness, shapes, gradients, official weight loaders, real denoising."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from lib.config import ConfigError
from lib.denoise.protocol import denoise
from lib.models import build
from lib.models.dncnn import (
    OFFICIAL_MODELS,
    DnCNN,
    DnCNNConfig,
    load_kair,
    load_matconvnet,
    load_official,
)


def _n_params(depth: int, c: int, n: int, bn: bool) -> int:
    """Closed-form parameter count: first conv (+bias), middle convs (+bias or BN affine), last conv (+bias)."""
    first = 9 * n * c + c
    middle = (depth - 2) * (9 * c * c + (2 * c if bn else c))
    last = 9 * c * n + n
    return first + middle + last


# ----------------------------------------------------------------------------- config


def test_build_rejects_unknown_key_naming_it():
    with pytest.raises(ConfigError, match="kernel_size"):
        build("dncnn", {"depth": 17, "kernel_size": 5})


def test_build_rejects_wrong_type_naming_key():
    with pytest.raises(ConfigError, match="models.dncnn.depth"):
        build("dncnn", {"depth": "17"})


@pytest.mark.parametrize("field,value", [("depth", 2), ("channels", 0), ("in_channels", 0)])
def test_config_validation_names_field(field, value):
    with pytest.raises(ValueError, match=field):
        DnCNNConfig(**{field: value})
    with pytest.raises(ConfigError, match=field):
        build("dncnn", {field: value})


def test_defaults_are_dncnn_s():
    cfg = DnCNNConfig()
    assert (cfg.depth, cfg.channels, cfg.in_channels, cfg.batch_norm, cfg.residual) == (17, 64, 1, True, True)


# ----------------------------------------------------------------------------- module


@pytest.mark.parametrize("depth,n", [(17, 1), (20, 1), (20, 3)])
def test_forward_shape_and_param_count(depth, n):
    model = build("dncnn", {"depth": depth, "in_channels": n}).eval()
    x = torch.rand(2, n, 12, 10)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert sum(p.numel() for p in model.parameters()) == _n_params(depth, 64, n, bn=True)
    convs = [m for m in model.body if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == depth


@pytest.mark.parametrize("bn", [True, False])
def test_every_parameter_gets_a_gradient(bn):
    torch.manual_seed(0)
    model = DnCNN(DnCNNConfig(depth=5, channels=8, in_channels=3, batch_norm=bn)).train()
    x = torch.rand(2, 3, 16, 16)
    loss = (model(x) - x.flip(-1)).square().mean()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_bn_and_no_bn_layouts():
    with_bn = DnCNN(DnCNNConfig(depth=5, channels=8, batch_norm=True))
    no_bn = DnCNN(DnCNNConfig(depth=5, channels=8, batch_norm=False))
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in with_bn.body) == 3
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in no_bn.body)
    # Convs before BN carry no bias; without BN every conv has one (official merged layout).
    assert [m.bias is not None for m in with_bn.body if isinstance(m, torch.nn.Conv2d)] == [True, False, False, False, True]
    assert all(m.bias is not None for m in no_bn.body if isinstance(m, torch.nn.Conv2d))
    assert sum(p.numel() for p in with_bn.parameters()) == _n_params(5, 8, 1, bn=True)
    assert sum(p.numel() for p in no_bn.parameters()) == _n_params(5, 8, 1, bn=False)
    # The no-BN layout has conv k at body.{2k}, the KAIR/MatConvNet order.
    assert {k for k in no_bn.state_dict() if k.endswith("weight")} == {f"body.{2 * k}.weight" for k in range(5)}


def test_residual_output_is_input_minus_body():
    torch.manual_seed(0)
    x = torch.rand(1, 1, 9, 9) * 1.2 - 0.1  # noisy input is not clipped
    res = DnCNN(DnCNNConfig(depth=4, channels=8, batch_norm=False, residual=True)).eval()
    plain = DnCNN(DnCNNConfig(depth=4, channels=8, batch_norm=False, residual=False)).eval()
    plain.load_state_dict(res.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(res(x), x - res.body(x), rtol=0, atol=0)
        torch.testing.assert_close(plain(x), res.body(x), rtol=0, atol=0)
        # forward does not clip: a huge input passes through (zero body -> identity)
        for p in res.parameters():
            p.zero_()
        torch.testing.assert_close(res(x * 10), x * 10, rtol=0, atol=0)


def test_init_is_small_orthogonal_with_small_bn_scales():
    torch.manual_seed(0)
    model = DnCNN(DnCNNConfig())
    w = model.body[2].weight.flatten(1)  # a middle conv as (64, 64 * 9): orthogonal rows of norm 0.2
    torch.testing.assert_close(w @ w.T, 0.04 * torch.eye(64), rtol=0, atol=1e-5)
    bn = model.body[3]
    assert 0.1 <= bn.weight.min() and bn.weight.max() <= 1.0 and bn.weight.std() > 0.1  # U(0.1, 1)
    assert bn.bias.abs().sum() == 0 and model.body[0].bias.abs().sum() == 0
    # the residual branch starts small (He init with BN scale 1: about 0.7, noise of order 1)
    x = torch.rand(2, 1, 40, 40)
    assert model.train()(x).sub(x).abs().mean() < 0.2


def test_denoise_numpy_roundtrip_and_errors():
    model = DnCNN(DnCNNConfig(depth=3, channels=4, in_channels=3, batch_norm=False)).eval()
    img = np.random.default_rng(0).random((7, 5, 3), dtype=np.float32)
    out = denoise(model, img)
    assert out.shape == img.shape and out.dtype == np.float32
    x = torch.from_numpy(img).permute(2, 0, 1)[None]  # (1, 3, 7, 5)
    with torch.no_grad():
        ref = model(x)[0].permute(1, 2, 0).numpy()  # (7, 5, 3)
    np.testing.assert_array_equal(out, ref)
    with pytest.raises(ValueError, match="float"):
        denoise(model, (img * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="shape"):
        denoise(model, img[None])


def test_denoise_passes_the_noise_level_when_given():
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x, sigma=None):
            seen.append(sigma)
            return x * self.w

    img = np.random.default_rng(0).random((6, 4), dtype=np.float32)
    np.testing.assert_array_equal(denoise(Probe(), img), img)
    denoise(Probe(), img, sigma=25)
    assert seen[0] is None and seen[1].tolist() == [25.0] and seen[1].shape == (1,)


# ----------------------------------------------------------------------------- file errors


def test_missing_file_names_it(tmp_path):
    for name in ("absent.mat", "absent.pth", "absent.bin"):
        with pytest.raises(FileNotFoundError, match=name):
            load_official(tmp_path / name)


def test_corrupt_and_foreign_files(tmp_path):
    garbage = tmp_path / "garbage.mat"
    garbage.write_bytes(b"MATLAB 5.0 MAT-file, not HDF5" + bytes(200))
    with pytest.raises(ValueError, match="garbage.mat"):
        load_official(garbage)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00not a pickle" * 10)
    with pytest.raises(ValueError, match="junk.pth"):
        load_official(junk)
    other = tmp_path / "model.onnx"
    other.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"model\.onnx.*\.mat"):
        load_official(other)


def test_truncated_released_file_named_with_its_checksum(tmp_path):
    """A file named like a released one must have its sha256 (lib/data/checksums/dncnn_official.sha256)."""
    truncated = tmp_path / "GD_Gray_Blind.mat"
    truncated.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(ValueError, match=r"GD_Gray_Blind\.mat.*sha256.*37f76da0b71dd2b2"):
        load_official(truncated)


def test_hdf5_without_net_is_rejected(tmp_path):
    import h5py

    path = tmp_path / "other.mat"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"other\.mat.*net\.layers"):
        load_matconvnet(path)


def test_kair_wrong_keys_and_shapes(tmp_path):
    cfg = DnCNNConfig(depth=4, channels=8, batch_norm=False)
    ours = DnCNN(cfg).state_dict()
    kair = {k.replace("body.", "model."): v for k, v in ours.items()}
    good = tmp_path / "good.pth"
    torch.save(kair, good)
    loaded_cfg, state = load_kair(good)
    assert loaded_cfg == cfg
    assert all(torch.equal(state[k], ours[k]) for k in ours) and state.keys() == ours.keys()

    wrong_keys = tmp_path / "wrong_keys.pth"
    torch.save(ours, wrong_keys)  # body.* keys: not a KAIR state dict
    with pytest.raises(ValueError, match=r"wrong_keys\.pth.*body\.0\.weight"):
        load_official(wrong_keys)

    bad_shape = dict(kair)
    bad_shape["model.2.weight"] = torch.zeros(8, 8, 5, 5)
    path = tmp_path / "bad_shape.pth"
    torch.save(bad_shape, path)
    with pytest.raises(ValueError, match=r"bad_shape\.pth.*\(8, 8, 3, 3\)"):
        load_official(path)

    gap = {k: v for k, v in kair.items() if not k.startswith("model.4.")}
    path = tmp_path / "gap.pth"
    torch.save(gap, path)
    with pytest.raises(ValueError, match=r"gap\.pth.*missing"):
        load_official(path)


# ----------------------------------------------------------------------------- official weights


def test_matconvnet_equals_kair_bit_exact(weights_mirror):
    cfg_m, sd_m = load_matconvnet(weights_mirror / OFFICIAL_MODELS["dncnn_s25"])
    cfg_k, sd_k = load_kair(weights_mirror / OFFICIAL_MODELS["kair_dncnn_25"])
    assert cfg_m == cfg_k == DnCNNConfig(depth=17, batch_norm=False)
    assert sd_m.keys() == sd_k.keys() and len(sd_m) == 34
    assert max((sd_m[k] - sd_k[k]).abs().max().item() for k in sd_m) == 0.0


@pytest.mark.parametrize(
    "name,depth,n", [("dncnn_s15", 17, 1), ("dncnn_s50", 17, 1), ("dncnn_b_gray", 20, 1), ("cdncnn_b_color", 20, 3)]
)
def test_official_configs(weights_mirror, name, depth, n):
    cfg, state = load_matconvnet(weights_mirror / OFFICIAL_MODELS[name])
    assert cfg == DnCNNConfig(depth=depth, in_channels=n, batch_norm=False)
    assert state[f"body.{2 * (depth - 1)}.weight"].shape == (n, 64, 3, 3)


def _psnr_gain(model, clean_u8: np.ndarray, sigma: float) -> tuple[float, float]:
    """PSNR (dB) of the noisy input and of the denoised output, both clipped and rounded to uint8."""
    clean = clean_u8.astype(np.float32) / 255.0
    noise = np.random.default_rng(0).standard_normal(clean.shape).astype(np.float32)
    noisy = clean + sigma / 255.0 * noise  # not clipped (docs/design.md#denoising-protocol)
    out = denoise(model, noisy)

    def u8(a: np.ndarray) -> np.ndarray:
        return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)

    return (
        peak_signal_noise_ratio(clean_u8, u8(noisy), data_range=255),
        peak_signal_noise_ratio(clean_u8, u8(out), data_range=255),
    )


def _center_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return img[top : top + size, left : left + size]


@pytest.mark.parametrize("name", ["dncnn_s25", "kair_dncnn_25"])
def test_gray_denoising_on_bsd68(weights_mirror, data_mirror, name):
    model = load_official(weights_mirror / OFFICIAL_MODELS[name])
    assert not model.training
    clean = _center_crop(np.asarray(Image.open(data_mirror / "bsd68" / "test001.png").convert("L")), 128)
    noisy_psnr, den_psnr = _psnr_gain(model, clean, 25.0)
    assert 19.5 < noisy_psnr < 21.5  # sigma 25 AWGN: 20 log10(255/25) = 20.2 dB before clipping
    assert den_psnr > noisy_psnr + 5.0


def test_color_blind_denoising_on_cbsd68(weights_mirror, data_mirror):
    model = load_official(weights_mirror / OFFICIAL_MODELS["cdncnn_b_color"])
    first = sorted((data_mirror / "cbsd68").glob("*.png"))[0]
    clean = _center_crop(np.asarray(Image.open(first).convert("RGB")), 96)  # RGB order, as trained
    noisy_psnr, den_psnr = _psnr_gain(model, clean, 25.0)
    assert den_psnr > noisy_psnr + 5.0


def test_loaded_model_matches_manual_forward(weights_mirror):
    """The loaded network is conv/ReLU with the file's tensors, output = input - residual."""
    model = load_official(weights_mirror / OFFICIAL_MODELS["dncnn_s25"])
    _, state = load_matconvnet(weights_mirror / OFFICIAL_MODELS["dncnn_s25"])
    x = torch.rand(1, 1, 12, 12)
    h = x
    for k in range(17):
        h = torch.nn.functional.conv2d(h, state[f"body.{2 * k}.weight"], state[f"body.{2 * k}.bias"], padding=1)
        if k < 16:
            h = h.relu()
    with torch.no_grad():
        torch.testing.assert_close(model(x), x - h, rtol=1e-6, atol=1e-6)
