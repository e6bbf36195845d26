"""Gradient flow: how large the gradient is at every depth of a network, plain or residual.

The measurements behind the book's claim (He et al. 2016, section 4.1) that plain networks *with batch
normalization* do not suffer from vanishing gradients at initialization, yet still train worse than their
residual twins: the degradation problem is an optimization difficulty, not a vanishing signal.

- `gradient_profile`: per-unit gradient norms, activation sizes and weight-gradient ratios of a CIFAR network on
  one batch (chapters 1 and 5); `GradientFlowRecorder` in `resnet_lab.callbacks` takes it during training.
- `chain_gradient_norms` and `predicted_chain_growth`: the same measurement on the toy chains of
  `resnet_lab.toynets`, where the growth per block is known analytically (chapter 5).

Pure measurement (torch only); `resnet_lab.viz.plot_gradient_profiles` draws the profiles measured here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

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
    return unit_statistics(model, images, labels)[0]


def unit_statistics(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor
) -> tuple[dict[str, float], dict[str, float]]:
    """Per unit, from one forward and backward pass: (gradient norm per image, root mean square of the output).

    The gradient norm is that of `unit_gradient_norms`; the RMS of a unit's output (over images, channels and
    pixels) is the size of the forward signal there. The model's mode is left as it is.
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
    grads = {name: float(outputs[name].grad.flatten(1).norm(dim=1).pow(2).mean().sqrt() * batch) for name in names}
    sizes = {name: float(outputs[name].detach().float().pow(2).mean().sqrt()) for name in names}
    return grads, sizes


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
    activation_rms: dict[str, float] = field(default_factory=dict)  # RMS of each unit's output

    @property
    def growth(self) -> float:
        """Gradient norm at the first unit (next to the input) over the norm at the last unit (next to the loss)."""
        norms = list(self.unit_norms.values())
        return norms[0] / norms[-1]

    @property
    def growth_per_unit(self) -> float:
        """The constant factor per unit that gives the same total growth: growth ** (1 / (units - 1))."""
        units = len(self.unit_norms)
        return self.growth ** (1 / (units - 1)) if units > 1 else 1.0

    def to_record(self) -> dict[str, Any]:
        """A JSON-able dict (results files); `GradientProfile.from_record` reads it back."""
        return {"label": self.label, "training_mode": self.training_mode, "units": list(self.unit_norms),
                "unit_norms": list(self.unit_norms.values()), "activation_rms": list(self.activation_rms.values()),
                "convs": list(self.weight_ratios), "weight_ratios": list(self.weight_ratios.values())}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> GradientProfile:
        """The profile that `to_record` wrote."""
        units = record["units"]
        return cls(label=record["label"], unit_norms=dict(zip(units, record["unit_norms"])),
                   weight_ratios=dict(zip(record["convs"], record["weight_ratios"])),
                   training_mode=record["training_mode"],
                   activation_rms=dict(zip(units, record.get("activation_rms", []))))


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
        norms, sizes = unit_statistics(model, images, labels)
        ratios = weight_gradient_ratios(model)
    finally:
        model.train(was_training)
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(saved[name])
    if label is None:
        spec = getattr(model, "spec", None)
        label = spec["name"] if isinstance(spec, dict) and "name" in spec else type(model).__name__
    return GradientProfile(label=label, unit_norms=norms, weight_ratios=ratios, training_mode=train,
                           activation_rms=sizes)


# ---------------------------------------------------------------------------------------------------------------
# Toy chains (resnet_lab.toynets): the gradient at every block's output, and what theory predicts for it.


def chain_gradient_norms(chain: nn.Sequential, x: torch.Tensor, direction: torch.Tensor | None = None) -> list[float]:
    """Norm of d<v, chain(x)>/d(output of each block), root mean square over the batch, block 1 first.

    The "loss" is the output projected on a fixed direction v (default: a vector of ones over the square root
    of the output size, so a chain that is the identity gives norm 1 everywhere). The last entry is the
    gradient at the chain's output, that is the norm of v.
    """
    if not isinstance(chain, nn.Sequential) or len(chain) == 0:
        raise ValueError("chain must be a non-empty nn.Sequential of blocks (see resnet_lab.toynets).")
    outputs: list[torch.Tensor] = []
    h = x
    for block in chain:
        h = block(h)
        h.retain_grad()
        outputs.append(h)
    if direction is None:
        direction = torch.ones_like(h) / math.sqrt(h[0].numel())
    elif direction.shape != h.shape[1:] and direction.shape != h.shape:
        raise ValueError(f"direction must be shaped like one output {tuple(h.shape[1:])} or the batch's "
                         f"{tuple(h.shape)}, got {tuple(direction.shape)}.")
    (h * direction).sum().backward()
    return [float(o.grad.flatten(1).norm(dim=1).pow(2).mean().sqrt()) for o in outputs]


def predicted_chain_growth(branch_std: float, residual: bool) -> float:
    """Expected growth of the gradient norm per block of a random linear chain (root of the mean square).

    A block multiplies the gradient g by (I + W)^T (residual) or W^T (plain), with W's entries independent,
    mean 0 and variance branch_std**2 / width. Then E||W^T g||^2 = branch_std**2 ||g||^2 and the cross term of
    the residual block has mean 0, so the mean square grows by 1 + branch_std**2 (residual) or branch_std**2
    (plain) per block.
    """
    if branch_std < 0:
        raise ValueError(f"branch_std is a standard deviation, got {branch_std}.")
    return math.sqrt(1 + branch_std**2) if residual else branch_std


def predicted_bn_relu_growth() -> float:
    """Growth per layer of the gradient norm of a wide, deep BN-ReLU network at init, large-batch limit.

    Yang et al. 2019 (A Mean Field Theory of Batch Normalization, ICLR, theorem 3.10) find that in a fully
    connected network z^l = W^l ReLU(BN(z^(l-1))) the squared gradient norm grows per layer at a rate that falls
    to pi / (pi - 1) as the batch grows, whatever the weight variance; the norm grows by its square root. Finite
    batches give a slightly larger rate.
    """
    return math.sqrt(math.pi / (math.pi - 1))


__all__ = [
    "GradientProfile", "chain_gradient_norms", "gradient_profile", "predicted_bn_relu_growth",
    "predicted_chain_growth", "unit_gradient_norms",
    "unit_names", "unit_statistics", "weight_gradient_ratios",
]
