"""Shattered gradients (Balduzzi et al. 2017): the gradient of a network with one input, along a line.

For a network f with a scalar input x and a scalar output, `input_gradients` computes g(x) = df/dx at evenly
spaced points of a line. In a shallow ReLU network g changes little from one point to the next; Balduzzi et al.
showed that in deep plain networks neighbouring gradients become uncorrelated, like white noise, while skip
connections keep them correlated. `gradient_autocorrelation` measures it: the correlation of g with itself
shifted by k points.

The networks are `resnet_lab.toynets.relu_network(depth, residual=..., batch_norm=...)`. A network with batch
normalization is measured with BN normalizing by the statistics of the line's points, frozen
(`freeze_batch_statistics`): in training mode every output would depend on every input, and df(x_i)/dx_i would
no longer be one point's gradient. Torch only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from resnet_lab.checks import check_int
from resnet_lab.toynets import relu_network


def line_inputs(points: int = 256, low: float = -2.0, high: float = 2.0) -> Tensor:
    """`points` evenly spaced inputs on [low, high], shaped (points, 1)."""
    check_int("points", points, minimum=2)
    if not low < high:
        raise ValueError(f"the line needs low < high, got low={low}, high={high}.")
    return torch.linspace(low, high, points).unsqueeze(1)


def freeze_batch_statistics(net: nn.Module, x: Tensor) -> nn.Module:
    """Set every BN layer's running statistics to the mean and variance of `x`'s batch, then put `net` in eval mode.

    Afterwards the network normalizes exactly as it did in training mode on this batch, but each output depends
    only on its own input. Returns the network (changed in place).
    """
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    counts: dict[nn.Module, int] = {}  # values per channel that each BN normalizes over

    def count(module, inputs):
        counts[module] = inputs[0].numel() // inputs[0].shape[1]

    handles = [m.register_forward_pre_hook(count) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: after one batch, exactly that batch's statistics
    net.train()
    try:
        with torch.no_grad():
            net(x)
    finally:
        for handle in handles:
            handle.remove()
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
        # The running variance is the unbiased estimate; training mode normalizes with the biased one.
        n = counts[m]
        m.running_var.mul_((n - 1) / n)
    return net.eval()


def input_gradients(net: nn.Module, x: Tensor) -> Tensor:
    """df/dx at every point of x (shaped (points, 1)) for a network with one input and one output; shape (points,).

    A network with batch normalization is first frozen on x's statistics (`freeze_batch_statistics`).
    """
    if x.dim() != 2 or x.shape[1] != 1:
        raise ValueError(f"x must be shaped (points, 1): one scalar input per point, got {tuple(x.shape)}. "
                         "Use line_inputs(points).")
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()):
        freeze_batch_statistics(net, x)
    x = x.detach().clone().requires_grad_(True)
    y = net(x)
    if y.shape != (x.shape[0], 1):
        raise ValueError(f"the network must map (points, 1) to (points, 1), got output shape {tuple(y.shape)}.")
    # In eval mode output i depends on input i only, so the gradient of the sum is the per-point derivative.
    (grad,) = torch.autograd.grad(y.sum(), x)
    return grad.squeeze(1).detach()


def gradient_autocorrelation(g: Tensor, max_lag: int) -> Tensor:
    """Correlation of the sequence g with itself shifted by 0..max_lag points (uncentered, normalized).

    r(k) = sum_i g_i g_{i+k} / sqrt(sum_i g_i^2 * sum_i g_{i+k}^2), the sums over the overlapping points: the
    cosine between g and its shifted copy. r(0) = 1; a constant gradient (a linear network) gives 1 at every lag;
    white noise of mean zero gives values near 0 beyond lag 0.
    """
    if g.dim() != 1:
        raise ValueError(f"g must be a 1-D sequence of gradients, got shape {tuple(g.shape)}.")
    check_int("max_lag", max_lag, minimum=0)
    if max_lag >= len(g):
        raise ValueError(f"max_lag must be smaller than the sequence ({len(g)} points), got {max_lag}.")
    g = g.double()
    values = []
    for k in range(max_lag + 1):
        a, b = g[: len(g) - k], g[k:]
        denominator = (a.pow(2).sum() * b.pow(2).sum()).sqrt()
        values.append(float((a * b).sum() / denominator) if denominator > 0 else float("nan"))
    return torch.tensor(values)


def mean_autocorrelation(
    depth: int, *, residual: bool, batch_norm: bool, seeds: int = 10, max_lag: int = 32, points: int = 256,
    width: int = 200, branch_scale: float = 1.0,
) -> Tensor:
    """The autocorrelation of df/dx along [-2, 2], averaged over `seeds` independently initialized networks."""
    check_int("seeds", seeds)
    x = line_inputs(points)
    curves = [
        gradient_autocorrelation(
            input_gradients(relu_network(depth, width, residual=residual, batch_norm=batch_norm, seed=seed,
                                         branch_scale=branch_scale), x),
            max_lag,
        )
        for seed in range(seeds)
    ]
    return torch.stack(curves).mean(0)


__all__ = [
    "freeze_batch_statistics", "gradient_autocorrelation", "input_gradients", "line_inputs", "mean_autocorrelation"
]
