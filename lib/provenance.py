"""Provenance: what a result depends on (scale, config, hardware, code revision), in one dict.

Every stage writes the same ``meta`` block beside its numbers, built here, so that a reader
can tell from a metrics file at which scale, on which machine and from which commit it came.
"""
from __future__ import annotations

import platform
import warnings
from typing import Any

import torch

from lib.config import to_dict
from lib.device import all_cores, bf16_autocast_recommended, cpu_flags, resolve_device
from lib.paths import git_revision

__all__ = ["environment_info", "provenance"]

_CPU_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")  # flags that change CPU speed


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment_info(device: str | torch.device = "cpu") -> dict:
    """What a measurement depends on: device, library versions, threads, TF32 flags, CPU.

    Returns:
        Dict with ``device``, ``device_name`` (GPU name, or CPU model), ``torch_version``,
        ``threads``, ``interop_threads``, ``cpu_count`` (CPUs this process may use),
        ``cpu_model``, ``cpu_features`` (the speed-relevant flags present), ``bf16_autocast``
        (whether bf16 autocast is recommended on this device), ``cuda_available``,
        ``cuda_version``, ``cudnn_version``, ``tf32_matmul``, ``tf32_cudnn``,
        ``float32_matmul_precision``, ``python_version``, ``platform``. Unknown values are ``None``.
    """
    dev = device if isinstance(device, torch.device) else torch.device(str(device))
    cpu_model = _cpu_model()
    cpu_count = all_cores()
    cuda_available = torch.cuda.is_available()
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" and cuda_available else cpu_model
    try:
        cudnn_version = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except RuntimeError:
        cudnn_version = None
    with warnings.catch_warnings():  # newer torch may deprecate the allow_tf32 getters
        warnings.simplefilter("ignore")
        tf32_matmul = bool(torch.backends.cuda.matmul.allow_tf32)
        tf32_cudnn = bool(torch.backends.cudnn.allow_tf32)
    flags = cpu_flags()
    try:
        bf16 = bf16_autocast_recommended(resolve_device(dev))
    except ValueError:
        bf16 = None
    return {
        "device": str(dev),
        "device_name": device_name,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_count": cpu_count,
        "cpu_model": cpu_model,
        "cpu_features": [f for f in _CPU_FEATURES if f in flags],
        "bf16_autocast": bf16,
        "cuda_available": cuda_available,
        "cuda_version": torch.version.cuda,
        "cudnn_version": cudnn_version,
        "tf32_matmul": tf32_matmul,
        "tf32_cudnn": tf32_cudnn,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
    }


def provenance(scale: str | None, config: Any = None, device: str | torch.device = "cpu", **extra: Any) -> dict:
    """The ``meta`` block of a metrics file.

    Args:
        scale: ``smoke``/``default``/``paper`` (the ``scale`` key of params.yaml).
        config: the stage config (a dataclass, turned into a dict) or a mapping, or None.
        device: the device the numbers were measured on.
        **extra: stage-specific entries (protocol text, image lists, ...), kept as given.

    Returns:
        ``{"scale", "config", "hardware", "git_revision", **extra}``.
    """
    if config is not None and not isinstance(config, dict):
        config = to_dict(config)
    return {
        "scale": scale,
        **({"config": config} if config is not None else {}),
        **extra,
        "hardware": environment_info(device),
        "git_revision": git_revision(),
    }
