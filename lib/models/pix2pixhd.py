"""pix2pixHD global generator (Wang et al., "High-Resolution Image Synthesis and Semantic
Manipulation with Conditional GANs", CVPR 2018, sec. 3.2 "G1"), the baseline of ASAPNet sec. 4.

reflect-pad 3 + conv7x7 + norm + ReLU -> ``n_downsampling`` stride-2 conv3x3 doubling the
channels -> ``n_blocks`` residual blocks -> as many ConvTranspose2d(3, stride 2) halving them
-> reflect-pad 3 + conv7x7 to RGB + tanh. Convs keep their bias; InstanceNorm is not affine
(official ``get_norm_layer('instance')``).

State-dict keys (see :mod:`lib.models.official` for the official ``model.N`` ones)::

    stem.1.{weight,bias}              (stem.2 the norm when it has parameters)
    down.{i}.0.{weight,bias}          (down.{i}.1 the norm)
    blocks.{j}.body.{1,5}.{weight,bias}   (body.{2,6} the norms)
    up.{i}.0.{weight,bias}            (up.{i}.1 the norm)
    head.1.{weight,bias}
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from lib.models.layers import generator_input

__all__ = ["GlobalGenerator", "Pix2PixHDConfig", "ResnetBlock"]

OUT_CHANNELS = 3  # RGB (official: output_nc)
OUTER_KERNEL = 7  # official: first and last conv 7x7 after ReflectionPad2d(3)
KERNEL = 3  # official: 3x3 strided, residual and transposed convs
INIT_STD = 0.02  # official weights_init: conv weights ~ N(0, 0.02), BN weights ~ N(1, 0.02)


@dataclass(frozen=True)
class Pix2PixHDConfig:
    """pix2pixHD global generator; defaults are the official Cityscapes setting.

    Attributes:
        label_nc: one-hot label channels (official: label_nc).
        use_instance_edge: whether an instance-edge channel is concatenated to the labels
            (official: no_instance=False).
        ngf: channels of the first conv (official: ngf).
        n_downsampling: stride-2 convs (official: n_downsample_global).
        n_blocks: residual blocks at ``ngf * 2**n_downsampling`` (official: n_blocks_global).
        norm: "instance" (no affine parameters) or "batch" (official: norm).
    """

    label_nc: int = 35  # Cityscapes label ids (official: label_nc)
    use_instance_edge: bool = True  # official: no_instance=False
    ngf: int = 64  # official: ngf
    n_downsampling: int = 4  # official: n_downsample_global
    n_blocks: int = 9  # official: n_blocks_global
    norm: Literal["instance", "batch"] = "instance"  # official: norm

    def __post_init__(self) -> None:
        for name in ("label_nc", "ngf"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.n_downsampling < 0 or self.n_blocks < 0:
            raise ValueError("n_downsampling and n_blocks must be >= 0")

    @property
    def in_channels(self) -> int:
        """Generator input channels: labels (+ instance edge)."""
        return self.label_nc + int(self.use_instance_edge)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)  # official get_norm_layer('instance')
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True)  # official get_norm_layer('batch')
    raise ValueError(f"unknown norm {kind!r}; known: instance, batch")


class ResnetBlock(nn.Module):
    """x + [reflect-pad 1, conv3x3, norm, ReLU, reflect-pad 1, conv3x3, norm](x).

    Args:
        dim: channels.
        norm: "instance" or "batch".
    """

    def __init__(self, dim: int, norm: str = "instance") -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, KERNEL),
            _norm(norm, dim),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, KERNEL),
            _norm(norm, dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class GlobalGenerator(nn.Module):
    """pix2pixHD global generator (G1).

    Args:
        cfg: the model configuration.
    """

    def __init__(self, cfg: Pix2PixHDConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ngf, norm = cfg.ngf, cfg.norm
        self.stem = nn.Sequential(
            nn.ReflectionPad2d(OUTER_KERNEL // 2),
            nn.Conv2d(cfg.in_channels, ngf, OUTER_KERNEL),
            _norm(norm, ngf),
            nn.ReLU(),
        )
        down = []
        c = ngf
        for _ in range(cfg.n_downsampling):
            down.append(nn.Sequential(nn.Conv2d(c, 2 * c, KERNEL, stride=2, padding=1), _norm(norm, 2 * c), nn.ReLU()))
            c *= 2
        self.down = nn.Sequential(*down)
        self.blocks = nn.Sequential(*[ResnetBlock(c, norm) for _ in range(cfg.n_blocks)])
        up = []
        for _ in range(cfg.n_downsampling):
            up.append(
                nn.Sequential(
                    nn.ConvTranspose2d(c, c // 2, KERNEL, stride=2, padding=1, output_padding=1),
                    _norm(norm, c // 2),
                    nn.ReLU(),
                )
            )
            c //= 2
        self.up = nn.Sequential(*up)
        self.head = nn.Sequential(
            nn.ReflectionPad2d(OUTER_KERNEL // 2),
            nn.Conv2d(c, OUT_CHANNELS, OUTER_KERNEL),
            nn.Tanh(),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # official weights_init: conv weights N(0, 0.02); conv biases keep PyTorch's default
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, INIT_STD)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, INIT_STD)
                nn.init.zeros_(m.bias)

    def forward(self, label_onehot: Tensor, instance_edge: Tensor | None = None) -> Tensor:
        """Translates a label map to an image.

        Args:
            label_onehot: one-hot labels, (B, label_nc, H, W); H, W multiples of 2**n_downsampling.
            instance_edge: instance edges, (B, 1, H, W), or None when ``use_instance_edge`` is off.

        Returns:
            The image, (B, 3, H, W), in [-1, 1].
        """
        x = generator_input(label_onehot, instance_edge, self.cfg.use_instance_edge)
        f = 2**self.cfg.n_downsampling
        if x.shape[-2] % f or x.shape[-1] % f:
            raise ValueError(f"input size {tuple(x.shape[-2:])} is not a multiple of {f}")
        return self.head(self.up(self.blocks(self.down(self.stem(x)))))
