"""Toy networks for chapter 5: fully connected chains small enough to reason about exactly.

- `linear_chain`: blocks x -> x + W x (residual) or x -> W x (plain), no nonlinearity, so the growth of the
  gradient per block follows from W's distribution (`resnet_lab.gradflow.predicted_chain_growth`).
- `relu_network`: a ReLU network of `depth` blocks of one linear layer each, plain or residual, with or without
  batch normalization; with one input and one output it is the network of the shattered-gradients experiment
  (`resnet_lab.shattered`), with a wide input it is the batch-normalized chain whose gradient explosion Yang et
  al. 2019 analysed.

Every block is an `nn.Sequential` entry, so `chain_gradient_norms` sees the output of every block. Torch only.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from resnet_lab.checks import check_int


class Residual(nn.Module):
    """x -> x + scale * branch(x): the identity shortcut around any branch (scale 1 unless given)."""

    def __init__(self, branch: nn.Module, scale: float = 1.0) -> None:
        super().__init__()
        self.branch = branch
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        """The branch's output, times the scale, added to its input."""
        return x + self.scale * self.branch(x)


def linear_chain(depth: int, width: int, *, residual: bool, branch_std: float = 1.0, seed: int = 0) -> nn.Sequential:
    """`depth` linear blocks of `width` units, weights N(0, branch_std**2 / width), no biases.

    residual=True: each block computes x + W x; False: W x. With branch_std=1 the plain chain keeps the mean
    square of the gradient and the residual chain doubles it at every block.
    """
    check_int("depth", depth)
    check_int("width", width)
    if branch_std < 0:
        raise ValueError(f"branch_std is a standard deviation, got {branch_std}.")
    generator = torch.Generator().manual_seed(seed)
    blocks = []
    for _ in range(depth):
        layer = nn.Linear(width, width, bias=False)
        with torch.no_grad():
            layer.weight.copy_(torch.randn(width, width, generator=generator) * branch_std / math.sqrt(width))
        blocks.append(Residual(layer) if residual else layer)
    return nn.Sequential(*blocks)


def relu_network(
    depth: int,
    width: int = 200,
    *,
    residual: bool,
    batch_norm: bool,
    in_features: int = 1,
    out_features: int = 1,
    seed: int = 0,
    branch_scale: float = 1.0,
) -> nn.Sequential:
    """Input layer, `depth` ReLU blocks, output layer; every hidden layer He-initialized (variance 2 / fan-in).

    A block's unit is [BN ->] ReLU -> Linear (pre-activation order, so the residual version adds the unit to an
    untouched x); plain: x -> unit(x), residual: x -> x + unit(x). The input layer keeps PyTorch's default
    initialization (uniform weights and biases), which spreads the ReLUs' kinks over the inputs; hidden and
    output layers have zero biases. Without batch normalization a residual network's signal doubles in mean
    square at every block (each unit adds a signal as large as its input): that is the price of He init without
    a scaled branch. `branch_scale` multiplies every residual branch (Balduzzi et al.'s rescaling, e.g. 1/sqrt(2)).
    """
    check_int("depth", depth, minimum=0)
    check_int("width", width)
    if branch_scale != 1.0 and not residual:
        raise ValueError(f"branch_scale scales residual branches; a plain network has none (got {branch_scale}).")
    # The initializers draw from the global generator: seed a private copy of it, leave the caller's alone.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = [nn.Linear(in_features, width)]
        for _ in range(depth):
            linear = nn.Linear(width, width)
            nn.init.kaiming_normal_(linear.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(linear.bias)
            unit = nn.Sequential(*([nn.BatchNorm1d(width)] if batch_norm else []), nn.ReLU(), linear)
            layers.append(Residual(unit, branch_scale) if residual else unit)
        head = nn.Linear(width, out_features)
        nn.init.kaiming_normal_(head.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(head.bias)
    layers.append(nn.Sequential(nn.ReLU(), head))
    return nn.Sequential(*layers)


__all__ = ["Residual", "linear_chain", "relu_network"]
