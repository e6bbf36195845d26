"""Precise batch normalization: recompute the running statistics of every BN layer from training batches.

During training each BN layer keeps an exponential moving average of the batch means and variances (momentum
0.1 in PyTorch: the last ~10 batches dominate), and evaluation uses these averages. While the weights still move
fast (a high learning rate), the averages describe the network of a few steps ago, not the current one, and the
evaluated error can jump by many points from one epoch to the next. "Precise BN" (Wu and Johnson 2021) replaces
them with the plain average of the statistics over many batches, computed with the current weights.

Pure measurement (torch only): the caller brings the batches, already normalized, on the model's device.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

_BN = nn.modules.batchnorm._BatchNorm  # BatchNorm1d/2d/3d and SyncBatchNorm


def bn_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The batch-norm layers that keep running statistics, as (name, module), in forward order of definition."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _BN) and m.track_running_stats]


def bn_statistics(model: nn.Module) -> dict[str, tuple[Tensor, Tensor]]:
    """A copy of every BN layer's running (mean, variance), by layer name."""
    return {name: (m.running_mean.detach().clone(), m.running_var.detach().clone()) for name, m in bn_layers(model)}


def statistics_gap(a: dict[str, tuple[Tensor, Tensor]], b: dict[str, tuple[Tensor, Tensor]]) -> float:
    """How far two sets of BN statistics are apart: how many of b's standard deviations a's running mean is off,
    averaged over the channels of each layer and then over the layers; 0 when they are equal."""
    if a.keys() != b.keys():
        raise ValueError("The two sets of statistics come from different layers: measure them on the same model.")
    if not a:
        raise ValueError("There are no batch-norm statistics to compare.")
    gaps = [((ma - mb).abs() / vb.clamp_min(1e-12).sqrt()).mean().item() for (ma, _), (mb, vb) in
            ((a[k], b[k]) for k in a)]
    return sum(gaps) / len(gaps)


@torch.no_grad()
def recompute_bn_statistics(model: nn.Module, batches: Iterable[Tensor]) -> int:
    """Replace every BN layer's running mean and variance by their average over `batches`, with the current weights.

    Each batch goes forward once in training mode (so each BN layer normalizes with, and records, that batch's
    statistics); the running mean becomes the mean of the batch means and the running variance the mean of the
    (unbiased) batch variances, every batch weighted equally. Nothing else changes: the weights are untouched, the
    momentum of each layer and the model's train/eval mode are restored. Returns the number of batches used.
    """
    layers = [m for _, m in bn_layers(model)]
    if not layers:
        raise ValueError("The model has no batch-norm layers with running statistics: there is nothing to recompute.")
    batches = list(batches)  # a few dozen batches: checked before any statistic is reset
    if not batches:
        raise ValueError("No batches were given: precise BN needs at least one training batch (better: dozens).")
    momenta = [m.momentum for m in layers]
    modes = {m: m.training for m in model.modules()}
    try:
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # None: a cumulative average, every batch weighted equally
        model.train()
        for x in batches:
            model(x)
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        for m, training in modes.items():
            m.train(training)
    return len(batches)


__all__ = ["bn_layers", "bn_statistics", "recompute_bn_statistics", "statistics_gap"]
