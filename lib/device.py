"""Devices: resolve a device name, synchronise it, and tell what the CPU can do fast.

The one place that turns ``"auto"``/``"cpu"``/``"cuda[:i]"`` into a ``torch.device`` and that
decides whether bf16 autocast pays off on this machine (it does on CPUs with AMX, not on
AVX2-only CPUs; see docs/design.md#timing-protocol).
"""
from __future__ import annotations

import os

import torch

__all__ = ["resolve_device", "check_device", "sync", "all_cores", "cpu_flags", "bf16_autocast_recommended",
           "autocast_dtype_name", "check_precision", "PRECISIONS", "cpu_bf16_flags"]


def resolve_device(name: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``; ``"cuda"``
    -> ``cuda:<local_rank>``; a ``torch.device`` or anything else as given.

    Raises:
        ValueError: CUDA requested but not available, a CUDA index past the device count, or a
            name torch does not know (each names the device).
    """
    if isinstance(name, torch.device):
        if name.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {str(name)!r} requested but CUDA is not available")
        return name
    name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name if not name == "cuda" else f"cuda:{local_rank}")
    except RuntimeError as e:
        raise ValueError(f"device {name!r} is not a device name (cpu, cuda, cuda:<index>, auto): {e}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available")
        if (device.index or 0) >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} requested but there are {torch.cuda.device_count()} CUDA device(s)")
    return device


def check_device(setting: str) -> None:
    """Validates a stage config's ``device`` setting: ``"auto"``, ``"cpu"`` or ``"cuda[:i]"``
    (what :func:`resolve_device` accepts from a params file).

    Raises:
        ValueError: any other value (the message starts with ``device``, so
            :func:`lib.config.from_dict` names the full params key, e.g.
            ``train_translation.common.device``).
    """
    if setting not in ("auto", "cpu") and not setting.startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:i]', got {setting!r}")


def sync(device: str | torch.device) -> None:
    """Waits for the device's queued work (a no-op on the CPU)."""
    dev = device if isinstance(device, torch.device) else torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type != "cpu":
        backend = getattr(torch, dev.type, None)
        if backend is not None and hasattr(backend, "synchronize"):
            backend.synchronize()


def all_cores() -> int:
    """CPUs this process may run on (the ``threads: 0`` setting)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags of the first processor listed in ``cpuinfo`` (empty if unreadable)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def bf16_autocast_recommended(device: str | torch.device, flags: frozenset[str] | None = None) -> bool:
    """Whether bf16 autocast is expected to be faster than fp32 on ``device``.

    CUDA: when the GPU supports bf16. CPU: with native bf16 instructions, AMX tiles
    (``amx_bf16``) or AVX-512 BF16 (``avx512_bf16``): a DnCNN training step measured about 4x
    faster with AMX, and on an AVX-512 BF16 CPU without AMX the generators' forward passes took
    about half their fp32 time (``benchmarks/NOTES.md``); on AVX2-only CPUs bf16 autocast is
    emulated and slower than fp32, so fp32 is kept there.
    """
    dev = resolve_device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if dev.type != "cpu":
        return False
    flags = cpu_flags() if flags is None else flags
    return "amx_bf16" in flags or "avx512_bf16" in flags


PRECISIONS = ("auto", "fp32", "bf16")  # the precision settings of every trainer config


def check_precision(setting: str) -> None:
    """Validates a trainer config's ``precision`` setting (one of :data:`PRECISIONS`).

    Raises:
        ValueError: any other value (names it).
    """
    if setting not in PRECISIONS:
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {setting!r}")


def autocast_dtype_name(setting: str, device: str | torch.device) -> str:
    """Resolves a precision setting: ``"auto"`` -> ``"bf16"`` where recommended else ``"fp32"``;
    ``"fp32"``/``"bf16"`` as given.

    Raises:
        ValueError: any other value.
    """
    if setting == "auto":
        return "bf16" if bf16_autocast_recommended(device) else "fp32"
    if setting in ("fp32", "bf16"):
        return setting
    raise ValueError(f"precision {setting!r} is not 'auto', 'fp32' or 'bf16'")


BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # CPU instructions that compute in bf16 natively


def cpu_bf16_flags(flags: frozenset[str] | None = None) -> frozenset[str]:
    """Which of :data:`BF16_CPU_FLAGS` this CPU has (empty: bf16 only by emulation, slower than fp32).

    Unlike :func:`bf16_autocast_recommended` (is it expected to pay off), this says whether
    measuring bf16 on the CPU is meaningful at all.
    """
    flags = cpu_flags() if flags is None else flags
    return frozenset(f for f in BF16_CPU_FLAGS if f in flags)
