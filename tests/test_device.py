"""lib.device: device names, and where bf16 autocast is chosen."""
from __future__ import annotations

import pytest
import torch

from lib.device import autocast_dtype_name, bf16_autocast_recommended, cpu_flags, resolve_device


def test_resolve_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda:1' requested but CUDA is not available"):
            resolve_device("cuda:1")


@pytest.mark.parametrize("flags, expected", [
    ({"avx2", "fma"}, False),  # AVX2 only: bf16 is emulated, slower than fp32
    ({"avx2", "avx512f", "avx512_bf16"}, True),  # native bf16 dot products
    ({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, True),
])
def test_bf16_on_the_cpu_only_with_native_instructions(flags, expected):
    assert bf16_autocast_recommended("cpu", frozenset(flags)) is expected


def test_precision_setting(monkeypatch):
    assert autocast_dtype_name("fp32", "cpu") == "fp32" and autocast_dtype_name("bf16", "cpu") == "bf16"
    auto = autocast_dtype_name("auto", "cpu")
    assert auto == ("bf16" if bf16_autocast_recommended("cpu") else "fp32")
    with pytest.raises(ValueError, match="'fp8'"):
        autocast_dtype_name("fp8", "cpu")


def test_cpu_flags_reads_the_first_processor(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(str(info)) == frozenset({"fpu", "avx2", "avx512_bf16"})
    assert cpu_flags(str(tmp_path / "missing")) == frozenset()


@pytest.mark.parametrize("module, cls", [
    ("lib.train.gan", "GANTrainConfig"),
    ("lib.train.segmenter", "SegmenterTrainConfig"),
    ("lib.train.denoise", "DenoiseTrainConfig"),
    ("lib.translation.evaluate", "TranslationEvalConfig"),
    ("lib.translation.timing", "TimeTranslationConfig"),
])
def test_every_stage_config_names_a_bad_device_by_its_params_key(module, cls):
    import importlib

    from lib.config import ConfigError, from_dict

    config_class = getattr(importlib.import_module(module), cls)
    with pytest.raises(ConfigError, match=r"^stage\.common\.device must be 'auto', 'cpu' or 'cuda\[:i\]', got 'tpu'$"):
        from_dict(config_class, {"device": "tpu"}, where="stage.common")
    for ok in ("auto", "cpu", "cuda:1"):
        assert from_dict(config_class, {"device": ok}, where="stage.common").device == ok
