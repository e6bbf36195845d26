"""Gradient flow: how large the gradient is at every depth of a network, plain or residual.

The measurements behind the book's claim (He et al. 2016, section 4.1) that plain networks *with batch
normalization* do not suffer from vanishing gradients at initialization, yet still train worse than their
residual twins: the degradation problem is an optimization difficulty, not a vanishing signal.

Pure measurement (torch only); `resnet_lab.viz.plot_gradient_profiles` draws the profiles measured here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
        name: float(m.weight.grad.norm() / m.weight.detach().norm())
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and m.weight.grad is not None
    }


@dataclass
class GradientProfile:
    """One network's gradients at one batch: per-unit output gradient norms and per-conv weight-gradient ratios."""

    label: str
    unit_norms: dict[str, float]
    weight_ratios: dict[str, float]
    training_mode: bool

    @property
    def growth(self) -> float:
        """Gradient norm at the first unit (next to the input) over the norm at the last unit (next to the loss)."""
        norms = list(self.unit_norms.values())
        return norms[0] / norms[-1]


def gradient_profile(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, train: bool = True, label: str | None = None
) -> GradientProfile:
    """Measure both gradient quantities in one forward/backward pass, leaving the model as it was.

    `train=True` (the default) measures what SGD sees: batch normalization uses the batch's statistics. The
    model's mode and its buffers (BN running statistics, which a train-mode pass would update) are restored
    afterwards; the parameters' `.grad` keep the measured gradients.
    """
    if images.shape[0] < 2 and train:
        raise ValueError(
            f"got a batch of {images.shape[0]} image(s): batch normalization in training mode needs at least 2 "
            "(use a few dozen for a stable measurement)."
        )
    was_training = model.training
    saved = {name: buffer.clone() for name, buffer in model.named_buffers()}
    try:
        model.train(train)
        norms = unit_gradient_norms(model, images, labels)
        ratios = weight_gradient_ratios(model)
    finally:
        model.train(was_training)
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(saved[name])
    if label is None:
        spec = getattr(model, "spec", None)
        label = spec["name"] if isinstance(spec, dict) and "name" in spec else type(model).__name__
    return GradientProfile(label=label, unit_norms=norms, weight_ratios=ratios, training_mode=train)


__all__ = ["GradientProfile", "gradient_profile", "unit_gradient_norms", "unit_names", "weight_gradient_ratios"]
