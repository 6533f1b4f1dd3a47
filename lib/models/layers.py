"""Building blocks shared by the label -> photo generators and the discriminator: generator
input assembly (labels + instance edge) and the official Xavier initialisation."""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["generator_input", "check_instance_edge", "init_conv_xavier_"]


def generator_input(label_onehot: Tensor, instance_edge: Tensor | None, use_instance_edge: bool) -> Tensor:
    """Concatenates labels and the instance-edge channel (last), checking the config.

    Args:
        label_onehot: (B, label_nc, H, W).
        instance_edge: (B, 1, H, W) or None.
        use_instance_edge: whether the model expects the edge channel.

    Returns:
        (B, label_nc + use_instance_edge, H, W).
    """
    check_instance_edge(label_onehot, instance_edge, use_instance_edge)
    if use_instance_edge:
        return torch.cat([label_onehot, instance_edge.to(label_onehot.dtype)], dim=1)  # (B, label_nc+1, H, W)
    return label_onehot


def check_instance_edge(label_onehot: Tensor, instance_edge: Tensor | None, use_instance_edge: bool) -> None:
    """Raises ValueError when ``instance_edge`` is missing, extra, or not (B, 1, H, W) of the labels."""
    if use_instance_edge:
        if instance_edge is None:
            raise ValueError("the model was built with use_instance_edge=True but instance_edge is None")
        if instance_edge.shape[1] != 1 or instance_edge.shape[-2:] != label_onehot.shape[-2:]:
            raise ValueError(
                f"instance_edge shape {tuple(instance_edge.shape)} does not match labels "
                f"{tuple(label_onehot.shape)} with one channel"
            )
    elif instance_edge is not None:
        raise ValueError("the model was built with use_instance_edge=False but instance_edge was given")


def init_conv_xavier_(module: nn.Module, gain: float) -> nn.Module:
    """Xavier-normal init (``gain``) of every conv/linear weight, zero biases (official init_weights)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module
