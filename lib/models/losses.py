"""GAN training losses of ASAPNet (sec. 4, following SPADE sec. 4 / appendix A and pix2pixHD
sec. 3.2): hinge or least-squares adversarial loss, discriminator feature matching and the
VGG19 perceptual loss.

Discriminator outputs are given as the :class:`~lib.models.patchgan.MultiscaleDiscriminator`
returns them: a list (per scale) of lists of features whose last entry is the prediction; a
list of prediction tensors or a single tensor are accepted too. Adversarial losses are the mean
over scales of the per-scale mean (SPADE's convention; pix2pixHD sums over scales and halves
the discriminator loss).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "LossConfig",
    "hinge_d_loss",
    "hinge_g_loss",
    "lsgan_d_loss",
    "lsgan_g_loss",
    "gan_d_loss",
    "gan_g_loss",
    "feature_matching_loss",
    "d_loss_terms",
    "vgg19_features",
    "vgg_loss",
    "VGG19Features",
    "VGG_LAYER_WEIGHTS",
]

Preds = Union[Tensor, Sequence[Tensor], Sequence[Sequence[Tensor]]]

VGG_LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)  # SPADE/pix2pixHD VGGLoss, relu1_1..relu5_1
VGG_SLICE_ENDS = (2, 7, 12, 21, 30)  # torchvision vgg19.features indices after relu1_1 .. relu5_1
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision ImageNet normalisation
IMAGENET_STD = (0.229, 0.224, 0.225)  # torchvision ImageNet normalisation


@dataclass(frozen=True)
class LossConfig:
    """Generator/discriminator loss settings; defaults are ASAPNet's (sec. 4).

    Attributes:
        gan_mode: "hinge" (ASAPNet, SPADE) or "lsgan" (pix2pixHD).
        lambda_feat: weight of the feature-matching loss (official: lambda_feat).
        lambda_vgg: weight of the VGG loss (official: lambda_vgg).
        vgg_weights: torchvision VGG19 ImageNet state-dict file; None switches the VGG loss off.
        lambda_l1: weight of a per-pixel L1 reconstruction term ``mean |fake - real|`` on
            images in [-1, 1] (pix2pix's L1 term; not in ASAPNet's recipe, which uses VGG: a
            stand-in where no VGG19 weights are at hand, docs/design.md#training).
    """

    gan_mode: Literal["hinge", "lsgan"] = "hinge"  # sec. 4: hinge loss
    lambda_feat: float = 10.0  # official: lambda_feat
    lambda_vgg: float = 10.0  # official: lambda_vgg
    vgg_weights: str | None = None  # no VGG file: VGG loss off
    lambda_l1: float = 0.0  # paper: no L1 term

    def __post_init__(self) -> None:
        for name in ("lambda_feat", "lambda_vgg", "lambda_l1"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def use_vgg(self) -> bool:
        """Whether the VGG perceptual loss is on."""
        return self.vgg_weights is not None


def _predictions(preds: Preds) -> list[Tensor]:
    """Per-scale prediction tensors: the last entry of each feature list."""
    if isinstance(preds, Tensor):
        return [preds]
    out = []
    for p in preds:
        out.append(p if isinstance(p, Tensor) else p[-1])
    if not out:
        raise ValueError("no discriminator predictions given")
    return out


def _mean_over_scales(values: list[Tensor]) -> Tensor:
    return torch.stack(values).mean()


def hinge_d_loss(real_preds: Preds, fake_preds: Preds) -> Tensor:
    """Hinge discriminator loss: mean over scales of E[relu(1 - D(real))] + E[relu(1 + D(fake))].

    Args:
        real_preds: discriminator outputs on real pairs.
        fake_preds: discriminator outputs on generated pairs.

    Returns:
        Scalar loss; 0 when every real prediction is >= 1 and every fake one <= -1.
    """
    real, fake = _predictions(real_preds), _predictions(fake_preds)
    return _mean_over_scales([F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake, strict=True)])


def hinge_g_loss(fake_preds: Preds) -> Tensor:
    """Hinge generator loss: mean over scales of -E[D(fake)]."""
    return _mean_over_scales([-f.mean() for f in _predictions(fake_preds)])


def lsgan_d_loss(real_preds: Preds, fake_preds: Preds) -> Tensor:
    """Least-squares discriminator loss: mean over scales of E[(D(real) - 1)^2] + E[D(fake)^2]."""
    real, fake = _predictions(real_preds), _predictions(fake_preds)
    return _mean_over_scales([((r - 1) ** 2).mean() + (f**2).mean() for r, f in zip(real, fake, strict=True)])


def lsgan_g_loss(fake_preds: Preds) -> Tensor:
    """Least-squares generator loss: mean over scales of E[(D(fake) - 1)^2]."""
    return _mean_over_scales([((f - 1) ** 2).mean() for f in _predictions(fake_preds)])


def gan_d_loss(mode: str, real_preds: Preds, fake_preds: Preds) -> Tensor:
    """The discriminator loss of ``mode`` ("hinge" or "lsgan")."""
    if mode == "hinge":
        return hinge_d_loss(real_preds, fake_preds)
    if mode == "lsgan":
        return lsgan_d_loss(real_preds, fake_preds)
    raise ValueError(f"unknown gan_mode {mode!r}; known: hinge, lsgan")


def gan_g_loss(mode: str, fake_preds: Preds) -> Tensor:
    """The generator adversarial loss of ``mode`` ("hinge" or "lsgan")."""
    if mode == "hinge":
        return hinge_g_loss(fake_preds)
    if mode == "lsgan":
        return lsgan_g_loss(fake_preds)
    raise ValueError(f"unknown gan_mode {mode!r}; known: hinge, lsgan")


def feature_matching_loss(real_feats: Sequence[Sequence[Tensor]], fake_feats: Sequence[Sequence[Tensor]]) -> Tensor:
    """Discriminator feature matching (pix2pixHD eq. 4, SPADE weighting).

    ``(1 / num_D) * sum_scales sum_{j < last} mean |D_j(fake) - D_j(real)|``: L1 between the
    intermediate features of every scale, the final prediction excluded; real features are
    detached.

    Args:
        real_feats: per scale, the feature list on real pairs.
        fake_feats: per scale, the feature list on generated pairs.

    Returns:
        Scalar loss (unweighted by lambda_feat).
    """
    if len(real_feats) != len(fake_feats) or not real_feats:
        raise ValueError(f"feature lists of {len(real_feats)} and {len(fake_feats)} scales")
    total = fake_feats[0][0].new_zeros(())
    for real, fake in zip(real_feats, fake_feats):
        for r, f in zip(real[:-1], fake[:-1], strict=True):
            total = total + F.l1_loss(f, r.detach())
    return total / len(real_feats)


class VGG19Features(nn.Module):
    """Frozen VGG19 trunk returning relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.

    Inputs are images in [-1, 1]; they are mapped to [0, 1] and ImageNet-normalised (the
    official SPADE/pix2pixHD loss feeds [-1, 1] images unnormalised).

    Args:
        features: the first 30 layers of ``torchvision.models.vgg19().features``.
    """

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        starts = (0,) + VGG_SLICE_ENDS[:-1]
        self.slices = nn.ModuleList()
        for a, b in zip(starts, VGG_SLICE_ENDS):  # layers keep their torchvision index: slices.s.<idx>
            self.slices.append(nn.Sequential(OrderedDict((str(i), features[i]) for i in range(a, b))))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)  # (1, 3, 1, 1)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)  # (1, 3, 1, 1)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGG19Features":
        """Stays in eval mode: the perceptual network is fixed."""
        return super().train(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, 3, H, W) in [-1, 1] -> five feature maps."""
        x = ((x + 1) / 2 - self.mean) / self.std  # (B, 3, H, W), ImageNet-normalised
        feats = []
        for s in self.slices:
            x = s(x)
            feats.append(x)
        return feats


def vgg19_features(weights_file: str | os.PathLike | None, random_init: bool = False) -> VGG19Features:
    """Builds the frozen VGG19 trunk of the perceptual loss.

    Args:
        weights_file: a torchvision ``vgg19`` ImageNet state dict (``features.*`` keys are used,
            ``classifier.*`` keys are ignored).
        random_init: allowed only with ``weights_file=None``: random (Kaiming, torchvision's
            scheme) weights, for tests.

    Returns:
        The :class:`VGG19Features` module (no parameter requires grad).

    Raises:
        FileNotFoundError: ``weights_file`` does not exist (the message names it).
        ValueError: neither a file nor ``random_init``; or both.
        KeyError: the file lacks ``features.*`` keys of VGG19 (the message names them).
    """
    import torchvision  # local: only the perceptual loss needs torchvision

    if weights_file is None and not random_init:
        raise ValueError("vgg19_features needs a weights_file (or random_init=True for tests)")
    if weights_file is not None and random_init:
        raise ValueError("give either weights_file or random_init=True, not both")
    with torch.device("meta"):  # the classifier (~120 M parameters) is never materialised
        trunk = torchvision.models.vgg19(weights=None).features[: VGG_SLICE_ENDS[-1]]
    trunk = trunk.to_empty(device="cpu")
    if weights_file is None:
        for m in trunk.modules():
            if isinstance(m, nn.Conv2d):  # torchvision's VGG init
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
    else:
        path = Path(weights_file)
        if not path.is_file():
            raise FileNotFoundError(f"VGG19 weights file not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        wanted = {k: v for k, v in state.items() if k.startswith("features.")}
        sub = {k[len("features.") :]: v for k, v in wanted.items() if int(k.split(".")[1]) < VGG_SLICE_ENDS[-1]}
        missing = sorted(set(trunk.state_dict()) - set(sub))
        if missing:
            raise KeyError(f"{path}: missing VGG19 keys {['features.' + m for m in missing]}")
        trunk.load_state_dict(sub, strict=True)
    return VGG19Features(trunk)


def vgg_loss(vgg: nn.Module, fake: Tensor, real: Tensor) -> Tensor:
    """VGG perceptual loss: sum_i w_i * mean |phi_i(fake) - phi_i(real)|.

    phi_i are relu1_1..relu5_1 of VGG19 with weights w = 1/32, 1/16, 1/8, 1/4, 1 (SPADE/pix2pixHD
    VGGLoss); real features are detached.

    Args:
        vgg: a :class:`VGG19Features` (inputs in [-1, 1]).
        fake: generated images, (B, 3, H, W) in [-1, 1].
        real: real images, (B, 3, H, W) in [-1, 1].

    Returns:
        Scalar loss (unweighted by lambda_vgg).
    """
    f_fake = vgg(fake)
    with torch.no_grad():
        f_real = vgg(real)
    return sum(w * F.l1_loss(a, b.detach()) for w, a, b in zip(VGG_LAYER_WEIGHTS, f_fake, f_real, strict=True))


def d_loss_terms(mode: str, real_feats: Sequence[Sequence[Tensor]], fake_feats: Sequence[Sequence[Tensor]]) -> tuple[Tensor, Tensor]:
    """The real and fake parts of the discriminator loss; their sum is
    :func:`lib.models.losses.gan_d_loss` (mean over scales).

    hinge: ``d_real = mean_s E[relu(1 - D_s(real))]``, ``d_fake = mean_s E[relu(1 + D_s(fake))]``;
    lsgan: ``d_real = mean_s E[(D_s(real) - 1)^2]``, ``d_fake = mean_s E[D_s(fake)^2]``.

    Args:
        mode: ``"hinge"`` or ``"lsgan"``.
        real_feats: per scale, the discriminator features on real pairs (last = prediction).
        fake_feats: the same on generated pairs.

    Returns:
        ``(d_real, d_fake)`` scalars.
    """
    real = [s[-1] for s in real_feats]
    fake = [s[-1] for s in fake_feats]
    if mode == "hinge":
        r = [torch.relu(1 - p).mean() for p in real]
        f = [torch.relu(1 + p).mean() for p in fake]
    elif mode == "lsgan":
        r = [((p - 1) ** 2).mean() for p in real]
        f = [(p**2).mean() for p in fake]
    else:
        raise ValueError(f"unknown gan_mode {mode!r}; known: hinge, lsgan")
    return torch.stack(r).mean(), torch.stack(f).mean()
