"""Gradient flow: how large the gradient is at every depth of a network, plain or residual.

The measurements behind the book's claim (He et al. 2016, section 4.1) that plain networks *with batch
normalization* do not suffer from vanishing gradients at initialization, yet still train worse than their
residual twins: the degradation problem is an optimization difficulty, not a vanishing signal.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

# Residual units are the children of the stage containers (`layer1.0`, `layer1.1`, ...) in every resnet_lab model.
_UNIT = re.compile(r"layer\d+\.\d+")


def unit_names(model: nn.Module) -> list[str]:
    """Names of the model's residual (or plain) units, from input to output."""
    return [name for name, _ in model.named_modules() if _UNIT.fullmatch(name)]


def unit_gradient_norms(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """The norm of dLoss/d(output of each unit), per image (root mean square over the batch).

    One forward and backward pass of the cross-entropy loss; the model's mode (train or eval) is left as it is,
    so call `model.train()` first to measure what SGD sees (batch statistics in batch normalization).
    """
    names = unit_names(model)
    if not names:
        raise ValueError("no residual units (modules named layerN.M) found: is this a resnet_lab model?")
    outputs: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(_module, _inputs, output):
            output.retain_grad()
            outputs[name] = output

        return hook

    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_hook(keep(name)) for name in names]
    try:
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
    finally:
        for handle in handles:
            handle.remove()
    batch = images.shape[0]
    # Cross-entropy is averaged over the batch; multiply by the batch size to get per-image gradients.
    return {name: float(outputs[name].grad.flatten(1).norm(dim=1).pow(2).mean().sqrt() * batch) for name in names}


def weight_gradient_ratios(model: nn.Module) -> dict[str, float]:
    """For every conv layer that has a gradient: ||dLoss/dW|| / ||W||, the relative size of an SGD step."""
    return {
        name: float(m.weight.grad.norm() / m.weight.norm())
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and m.weight.grad is not None
    }
