"""Gradient flow: how large the gradient is at every depth of a network, plain or residual.

The measurements behind the book's claim (He et al. 2016, section 4.1) that plain networks *with batch
normalization* do not suffer from vanishing gradients at initialization, yet still train worse than their
residual twins: the degradation problem is an optimization difficulty, not a vanishing signal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from resnet_lab.viz import DEPTH_COLORS

# Colours for depths that the depth-sweep palette (viz.DEPTH_COLORS) does not cover.
_PALETTE = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")
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


def _times(factor: float) -> str:
    """A growth factor for a legend: 'x11,600' or 'x0.21'."""
    return f"\u00d7{factor:,.3g}" if factor < 1000 else f"\u00d7{float(f'{factor:.3g}'):,.0f}"


def plot_gradient_profiles(profiles: Sequence[GradientProfile], figsize=(10, 4.6)) -> Figure:
    """Left: gradient norm at each block's output, input to output. Right: ||dL/dW|| / ||W|| for every conv layer.

    Both on a log scale; plain networks solid, residual networks dashed, one colour per depth (the colours of the
    depth-sweep figure) so that a plain network and its residual twin are easy to pair up. The legend gives each
    network's growth factor, first block over last block.
    """
    if not profiles:
        raise ValueError("no profiles to plot: pass the results of gradient_profile(...) for one or more models.")
    depths = [int(m.group(1)) if (m := re.search(r"(\d+)$", p.label)) else None for p in profiles]
    # Depths the sweep palette lacks get the spare colours, in order: twins share a colour in any case.
    extra = sorted({d for d in depths if d is not None and d not in DEPTH_COLORS})
    colors = {**{d: _PALETTE[i % len(_PALETTE)] for i, d in enumerate(extra)}, **DEPTH_COLORS}
    fig, (left, right) = plt.subplots(1, 2, figsize=figsize, constrained_layout=True)
    for index, (profile, depth) in enumerate(zip(profiles, depths)):
        color = colors[depth] if depth is not None else _PALETTE[index % len(_PALETTE)]
        plain = profile.label.startswith("plain")
        style = {"color": color, "linestyle": "-" if plain else "--", "lw": 1.8 if plain else 2.2}
        name = profile.label.replace("plain", "plain-").replace("resnet", "ResNet-")
        units = list(profile.unit_norms.values())
        left.plot(range(1, len(units) + 1), units, label=f"{name}: {_times(profile.growth)}", **style)
        ratios = list(profile.weight_ratios.values())
        right.plot(range(1, len(ratios) + 1), ratios, **style)
    left.set_yscale("log")
    left.set_xlabel("block (1 = next to the input)")
    left.set_ylabel("per-image gradient norm at the block's output")
    left.set_title("gradient reaching each block")
    left.legend(frameon=False, fontsize=9, title="first block / last block", title_fontsize=9)
    right.set_yscale("log")
    right.set_xlabel("convolution layer (1 = stem)")
    right.set_ylabel(r"$\|\partial L / \partial W\| \;/\; \|W\|$")
    right.set_title("relative size of each layer's weight gradient")
    for ax in (left, right):
        ax.grid(alpha=0.3, which="major")
    mode = "training" if all(p.training_mode for p in profiles) else "evaluation" if not any(
        p.training_mode for p in profiles) else "mixed"
    fig.suptitle(f"Gradients at initialization, batch normalization in {mode} mode "
                 "(solid: plain, dashed: residual)", fontsize=10)
    return fig
