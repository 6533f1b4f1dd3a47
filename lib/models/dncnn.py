"""DnCNN: residual denoising CNN (Zhang, Zuo, Chen, Meng, Zhang, "Beyond a Gaussian
Denoiser: Residual Learning of Deep CNN for Image Denoising", IEEE TIP 2017).

The network predicts the noise: ``denoised = noisy - body(noisy)``. Layers: conv3x3 + ReLU,
``depth - 2`` blocks of conv3x3 + BN + ReLU, conv3x3; 64 feature channels, zero padding 1.

Official weights: the MatConvNet ``.mat`` files of the original release (MATLAB v7.3 / HDF5,
batch norm merged into the convolutions) and the KAIR PyTorch state dict, loaded bit-exactly
by :func:`load_matconvnet` and :func:`load_kair` (the two agree to the last bit on sigma 25).
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "DnCNN",
    "DnCNNConfig",
    "load_official",
    "load_matconvnet",
    "load_kair",
    "official_path",
    "OFFICIAL_MODELS",
]

KERNEL = 3  # sec. III-A: every conv is 3x3
PADDING = 1  # sec. III-A: zero padding keeps the size (official: pad = 1)
BN_EPS = 1e-4  # official MatConvNet vl_nnbnorm default epsilon
INIT_GAIN = 0.2  # KAIR DnCNN training: orthogonal init, gain 0.2 (reset_parameters explains why not He)
BN_SCALE_INIT = (0.1, 1.0)  # KAIR DnCNN training: BN scale ~ U(0.1, 1)

# Official weight files, relative to the weights mirror (layout of the original releases).
OFFICIAL_MODELS: dict[str, str] = {
    "dncnn_s15": "dncnn/cszn_DnCNN/model/specifics/sigma=15.mat",  # DnCNN-S, sigma 15, depth 17
    "dncnn_s25": "dncnn/cszn_DnCNN/model/specifics/sigma=25.mat",  # DnCNN-S, sigma 25, depth 17
    "dncnn_s50": "dncnn/cszn_DnCNN/model/specifics/sigma=50.mat",  # DnCNN-S, sigma 50, depth 17
    "dncnn_b_gray": "dncnn/cszn_DnCNN/model/GD_Gray_Blind.mat",  # DnCNN-B, sigma in [0, 55], depth 20
    "cdncnn_b_color": "dncnn/cszn_DnCNN/model/GD_Color_Blind.mat",  # CDnCNN-B, RGB, depth 20
    "kair_dncnn_25": "dncnn/KAIR/model_zoo/dncnn_25.pth",  # KAIR conversion of sigma=25.mat
}


@dataclasses.dataclass(frozen=True)
class DnCNNConfig:
    """DnCNN hyper-parameters; defaults are DnCNN-S (gray, one noise level).

    Attributes:
        depth: number of conv layers (sec. III-A: 17 for DnCNN-S, 20 for DnCNN-B/CDnCNN-B).
        channels: feature channels of the hidden layers (sec. III-A: 64).
        in_channels: image channels, 1 for gray, 3 for color (RGB order for CDnCNN-B).
        batch_norm: BN between the hidden convs (sec. III-A). The official released weights
            have BN merged into the convs: ``False``, with a bias on every conv.
        residual: the body predicts the noise and the output is ``input - body(input)``
            (sec. III-B, residual learning).
    """

    depth: int = 17  # sec. III-A: DnCNN-S depth
    channels: int = 64  # sec. III-A: 64 filters
    in_channels: int = 1  # sec. III-A: c = 1 gray, 3 color
    batch_norm: bool = True  # sec. III-A: conv + BN + ReLU in the middle layers
    residual: bool = True  # sec. III-B: residual learning

    def __post_init__(self) -> None:
        if self.depth < 3:
            raise ValueError(f"depth must be >= 3 (first conv, >= 1 middle block, last conv), got {self.depth}")
        if self.channels < 1:
            raise ValueError(f"channels must be >= 1, got {self.channels}")
        if self.in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {self.in_channels}")


def _conv_indices(cfg: DnCNNConfig) -> list[int]:
    """Positions of the convs in ``DnCNN.body`` (the layout built by :class:`DnCNN`)."""
    step = 3 if cfg.batch_norm else 2  # conv [+ BN] + ReLU per middle block
    middle = [2 + step * k for k in range(cfg.depth - 2)]
    return [0, *middle, 2 + step * (cfg.depth - 2)]


class DnCNN(nn.Module):
    """DnCNN denoiser.

    ``body``: conv(in->C)+ReLU, (depth-2) x [conv(C->C) (+BN) + ReLU], conv(C->in); all 3x3,
    padding 1. Convs followed by BN have no bias; every other conv has one. Initialisation:
    :meth:`reset_parameters` (small orthogonal convs, small BN scales: the residual branch
    starts near zero, so training leaves the ``output = input`` plateau).

    Args:
        cfg: the configuration.
    """

    def __init__(self, cfg: DnCNNConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or DnCNNConfig()
        self.cfg = cfg
        c, n = cfg.channels, cfg.in_channels
        layers: list[nn.Module] = [nn.Conv2d(n, c, KERNEL, padding=PADDING, bias=True), nn.ReLU(inplace=True)]
        for _ in range(cfg.depth - 2):
            layers.append(nn.Conv2d(c, c, KERNEL, padding=PADDING, bias=not cfg.batch_norm))
            if cfg.batch_norm:
                layers.append(nn.BatchNorm2d(c, eps=BN_EPS))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Conv2d(c, n, KERNEL, padding=PADDING, bias=True))
        self.body = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Orthogonal conv weights of gain :data:`INIT_GAIN`, zero biases; BN scale drawn from
        U(:data:`BN_SCALE_INIT`), BN shift zero, fresh running statistics.

        Paper vs released code: the paper (sec. IV-A) names He et al.'s init, but the released
        MatConvNet training code draws every conv with the small std sqrt(2 / (9 * 64)) and
        small, clipped BN scales, and KAIR's PyTorch training uses orthogonal convs of gain 0.2
        and BN scales U(0.1, 1), the choice here. With a fan-in He init and BN scale 1 the
        residual branch outputs noise of order 1 and Adam sits at the ``output = input``
        plateau (training MSE = E[sigma^2] / 255^2) for hundreds of steps. Loading released
        weights replaces every tensor, so it does not depend on this.
        """
        for m in self.body:
            if isinstance(m, nn.Conv2d):
                nn.init.orthogonal_(m.weight, gain=INIT_GAIN)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.uniform_(m.weight, *BN_SCALE_INIT)
                nn.init.zeros_(m.bias)
                m.reset_running_stats()

    def forward(self, noisy: Tensor, sigma: Tensor | None = None) -> Tensor:
        """Denoises a batch.

        Args:
            noisy: (B, C, H, W) float images in [0, 1] plus noise (not clipped).
            sigma: ignored. DnCNN is blind (it is not told the noise level); the argument
                keeps one denoiser interface, ``model(noisy, sigma=(B,) noise levels in
                0..255 units)``, shared with denoisers that take the noise level.

        Returns:
            (B, C, H, W) denoised images, not clipped (``noisy - body(noisy)`` when residual).
        """
        out = self.body(noisy)  # (B, C, H, W)
        return noisy - out if self.cfg.residual else out


# ----------------------------------------------------------------------------- loaders


def _config_and_state(path: Path, convs: list[tuple[np.ndarray | Tensor, np.ndarray | Tensor]]) -> tuple[
    DnCNNConfig, dict[str, Tensor]
]:
    """Checks a conv stack (BN merged) and maps it to a no-BN config and our state dict keys."""
    if len(convs) < 3:
        raise ValueError(f"{path}: expected a DnCNN with >= 3 conv layers, found {len(convs)}")
    w0 = convs[0][0]
    if len(w0.shape) != 4:
        raise ValueError(f"{path}: first conv weight should be 4-D (Cout, Cin, 3, 3), got shape {tuple(w0.shape)}")
    channels, in_channels = int(w0.shape[0]), int(w0.shape[1])
    cfg = DnCNNConfig(depth=len(convs), channels=channels, in_channels=in_channels, batch_norm=False, residual=True)
    state: dict[str, Tensor] = {}
    for k, (idx, (w, b)) in enumerate(zip(_conv_indices(cfg), convs)):
        cin = in_channels if k == 0 else channels
        cout = in_channels if k == len(convs) - 1 else channels
        want_w, want_b = (cout, cin, KERNEL, KERNEL), (cout,)
        if tuple(w.shape) != want_w or tuple(b.shape) != want_b:
            raise ValueError(
                f"{path}: conv {k} of {len(convs)} has weight {tuple(w.shape)} / bias {tuple(b.shape)}; "
                f"a DnCNN expects weight {want_w} / bias {want_b}"
            )
        state[f"body.{idx}.weight"] = torch.as_tensor(np.ascontiguousarray(w) if isinstance(w, np.ndarray) else w)
        state[f"body.{idx}.bias"] = torch.as_tensor(np.ascontiguousarray(b) if isinstance(b, np.ndarray) else b)
    for key, t in state.items():
        if not t.is_floating_point():
            raise ValueError(f"{path}: {key} is {t.dtype}, expected floating point weights")
        state[key] = t.to(torch.float32).contiguous()
    return cfg, state


def _mat_string(dataset) -> str:
    """A MATLAB char array stored by v7.3 as uint16 codes."""
    return "".join(chr(int(c)) for c in np.asarray(dataset).ravel())


def load_matconvnet(path: str | os.PathLike) -> tuple[DnCNNConfig, dict[str, Tensor]]:
    """Reads an official MatConvNet DnCNN model (MATLAB v7.3 / HDF5, BN merged).

    ``net/layers`` is a cell of object references; each layer is a group with ``type``
    (``conv`` / ``relu``); a conv has ``weights`` = refs to ``[W, b]``. h5py reports W as
    (Cout, Cin, kw, kh) (MATLAB's kh x kw x Cin x Cout reversed); a trailing MATLAB singleton
    Cout = 1 is dropped, so the last gray conv reads as (Cin, kw, kh). MatConvNet computes
    cross-correlation like PyTorch: no kernel flip.

    Args:
        path: the ``.mat`` file.

    Returns:
        ``(cfg, state_dict)``: cfg with depth/in_channels/channels from the file and
        ``batch_norm=False``; state dict keys ``body.{i}.weight`` / ``body.{i}.bias``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not an HDF5 MATLAB file or not a DnCNN (names the file).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DnCNN weight file not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path}: not a MATLAB v7.3 (HDF5) file: {e}") from e
    with f:
        if "net" not in f or "layers" not in f["net"]:
            raise ValueError(f"{path}: expected a MatConvNet model with variable net.layers; found {sorted(f.keys())}")
        refs = np.asarray(f["net/layers"]).ravel()  # (N,) object references
        types, convs = [], []
        for i, ref in enumerate(refs):
            try:
                layer = f[ref]
                kind = _mat_string(layer["type"])
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{path}: net.layers{{{i + 1}}} is not a MatConvNet layer: {e}") from e
            types.append(kind)
            if kind == "conv":
                for field in ("stride", "pad"):
                    if field in layer and not np.all(np.asarray(layer[field]) == 1):
                        raise ValueError(
                            f"{path}: net.layers{{{i + 1}}}.{field} = {np.asarray(layer[field]).ravel().tolist()}, "
                            "a DnCNN expects 1"
                        )
                wrefs = np.asarray(layer["weights"]).ravel() if "weights" in layer else []
                if len(wrefs) != 2:
                    raise ValueError(f"{path}: net.layers{{{i + 1}}} (conv) should hold weights {{W, b}}")
                w = np.asarray(f[wrefs[0]])
                b = np.asarray(f[wrefs[1]]).ravel()  # (1, Cout) -> (Cout,)
                if w.ndim == 3:
                    w = w[None]  # (Cin, kw, kh) -> (1, Cin, kw, kh): MATLAB dropped Cout = 1
                if w.ndim != 4:
                    raise ValueError(f"{path}: net.layers{{{i + 1}}} weight has shape {w.shape}, expected 4-D")
                convs.append((w.transpose(0, 1, 3, 2), b))  # (Cout, Cin, kw, kh) -> (Cout, Cin, kh, kw)
    expected = ["conv", "relu"] * (len(convs) - 1) + ["conv"]
    if types != expected:
        raise ValueError(
            f"{path}: expected layers conv, relu, ..., conv (batch norm merged), got {', '.join(types)}"
        )
    return _config_and_state(path, convs)


_KAIR_KEY = re.compile(r"model\.(\d+)\.(weight|bias)")


def load_kair(path: str | os.PathLike) -> tuple[DnCNNConfig, dict[str, Tensor]]:
    """Reads a KAIR DnCNN state dict (BN merged): conv k is ``model.{2k}.weight/bias``.

    Args:
        path: the ``.pth`` file (legacy or zip torch format; loaded with ``weights_only``).

    Returns:
        ``(cfg, state_dict)`` as :func:`load_matconvnet`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a torch file, or not a DnCNN state dict (names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DnCNN weight file not found: {path}")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip/runtime errors of a corrupt or foreign file
        raise ValueError(f"{path}: not a loadable torch state dict: {e}") from e
    if not isinstance(sd, Mapping) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise ValueError(f"{path}: expected a state dict of tensors (KAIR DnCNN), got {type(sd).__name__}")
    indices = []
    for key in sd:
        m = _KAIR_KEY.fullmatch(key)
        if m is None:
            raise ValueError(f"{path}: unexpected key {key!r}; a KAIR DnCNN has only model.{{2k}}.weight/bias")
        indices.append(int(m.group(1)))
    n = len(set(indices))
    want = {f"model.{2 * k}.{p}" for k in range(n) for p in ("weight", "bias")}
    if set(sd) != want:
        missing = sorted(want - set(sd))
        extra = sorted(set(sd) - want)
        raise ValueError(
            f"{path}: expected keys model.{{0,2,...,{2 * (n - 1)}}}.weight/bias; missing {missing}, unexpected {extra}"
        )
    convs = [(sd[f"model.{2 * k}.weight"], sd[f"model.{2 * k}.bias"]) for k in range(n)]
    return _config_and_state(path, convs)


def check_official_checksum(path: str | os.PathLike) -> None:
    """Checks a released DnCNN weight file against ``lib/data/checksums/dncnn_official.sha256``
    when its name is one of the released files (other files, e.g. one's own, are not checked).

    Raises:
        ValueError: the sha256 differs, naming the file and the expected sum.
    """
    from lib.data.fetch import CHECKSUM_DIR, read_checksums, sha256_file

    path = Path(path)
    if not path.is_file():
        return
    expected = {rel: d for rel, d in read_checksums(CHECKSUM_DIR / "dncnn_official.sha256").items()
                if Path(rel).name == path.name}
    if len(expected) != 1:
        return
    (rel, digest), = expected.items()
    actual = sha256_file(path)
    if actual != digest:
        raise ValueError(f"{path}: sha256 {actual} is not that of the released {rel} ({digest}); "
                         f"the file is truncated or another file: fetch it again")


def load_official(path: str | os.PathLike) -> DnCNN:
    """Builds a DnCNN (eval mode, CPU) from an official ``.mat`` or KAIR ``.pth`` file.

    Args:
        path: the weight file; the suffix selects the reader.

    Returns:
        The model, with ``cfg.batch_norm=False`` (BN merged in the official weights).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unknown suffix, or the file is not a DnCNN (names the file).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    check_official_checksum(path)
    if suffix == ".mat":
        cfg, state = load_matconvnet(path)
    elif suffix in (".pth", ".pt"):
        cfg, state = load_kair(path)
    else:
        if not path.is_file():
            raise FileNotFoundError(f"DnCNN weight file not found: {path}")
        raise ValueError(f"{path}: unknown DnCNN weight format {suffix!r}; expected .mat (MatConvNet) or .pth (KAIR)")
    model = DnCNN(cfg)
    model.load_state_dict(state, strict=True)
    return model.eval()


def official_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """The file of the official model ``name`` inside a weights mirror.

    Args:
        name: a key of :data:`OFFICIAL_MODELS`.
        root: the weights mirror; ``None`` uses ``$ASAPNET_WEIGHTS``.

    Raises:
        KeyError: unknown ``name`` (lists the known names).
        FileNotFoundError: no mirror configured, or the file is missing.
    """
    from lib.paths import WEIGHTS_ENV, mirror_root

    if name not in OFFICIAL_MODELS:
        raise KeyError(f"unknown official DnCNN model {name!r}; known: {', '.join(sorted(OFFICIAL_MODELS))}")
    base = mirror_root(root, WEIGHTS_ENV)
    if base is None:
        raise FileNotFoundError(f"no weights folder for {name!r}: pass root or set ${WEIGHTS_ENV}")
    path = base / OFFICIAL_MODELS[name]
    if not path.is_file():
        raise FileNotFoundError(f"official DnCNN weights {name!r} not found: {path}")
    return path
