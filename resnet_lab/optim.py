"""The optimizer and the learning-rate schedule of `fit`.

SGD with (Nesterov) momentum; weight decay on weights only; parameter groups that each carry an `lr_scale` which
multiplies the schedule's learning rate (discriminative fine-tuning: a pretrained body at 0.1x, a new head at 1x);
and a schedule that is a pure function of the step, so that a resumed run continues on exactly the same curve.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from resnet_lab.config import SCHEDULES, TrainConfig

ParamGroups = Sequence[dict[str, Any]]


def _split_decay(params: Iterable[nn.Parameter]) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(weights, other): tensors of one dimension are BN scales/shifts and biases, and decaying them only hurts."""
    decay, no_decay = [], []
    for param in params:
        if param.requires_grad:
            (no_decay if param.dim() <= 1 else decay).append(param)
    return decay, no_decay


def make_optimizer(model: nn.Module, config: TrainConfig, param_groups: ParamGroups | None = None) -> torch.optim.SGD:
    """SGD over the trainable parameters, weight decay on weights only, each group with its `lr_scale`.

    param_groups: None (the whole model, scale 1) or dicts {"params": [...], "lr_scale": float} (other keys, such
    as "weight_decay" or "name", are kept). Frozen parameters (requires_grad=False) are left out.
    """
    groups = [{"params": list(model.parameters())}] if param_groups is None else list(param_groups)
    sgd_groups = []
    for i, group in enumerate(groups):
        if "params" not in group:
            raise ValueError(f"param_groups[{i}] has no 'params': each group is a dict with a list of parameters.")
        options = {k: v for k, v in group.items() if k != "params"}
        scale = options.setdefault("lr_scale", 1.0)
        if not (isinstance(scale, (int, float)) and scale >= 0 and math.isfinite(scale)):
            raise ValueError(f"param_groups[{i}]['lr_scale'] must be a number >= 0, got {scale!r}.")
        decay_rate = options.pop("weight_decay", config.weight_decay)
        decay, no_decay = _split_decay(group["params"])
        sgd_groups += [{"params": decay, "weight_decay": decay_rate, **options},
                       {"params": no_decay, "weight_decay": 0.0, **options}]
    sgd_groups = [g for g in sgd_groups if g["params"]]
    if not sgd_groups:
        raise ValueError("The model has no trainable parameters (all have requires_grad=False): nothing to train.")
    _check_disjoint(sgd_groups)
    return torch.optim.SGD(sgd_groups, lr=config.peak_lr, momentum=config.momentum,
                           nesterov=config.nesterov and config.momentum > 0)


def _check_disjoint(groups: list[dict[str, Any]]) -> None:
    seen: set[int] = set()
    for group in groups:
        for param in group["params"]:
            if id(param) in seen:
                raise ValueError("A parameter appears in two param_groups: give each parameter to one group only.")
            seen.add(id(param))


def describe_groups(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """For results.json: per optimizer group, its name (if any), lr_scale, weight decay and parameter count."""
    return [{"name": g.get("name"), "lr_scale": g["lr_scale"], "weight_decay": g["weight_decay"],
             "parameters": sum(p.numel() for p in g["params"])} for g in optimizer.param_groups]


def lr_factor(step: int, total_steps: int, schedule: str, warmup_steps: int = 0) -> float:
    """The learning rate at `step` (0-based) as a fraction of the peak rate.

    Linear warm-up over `warmup_steps`, then: "onecycle" decays linearly to 0, "cosine" follows a half cosine to
    0, "step" divides by 10 at 50% and 75% of training (He et al. 2016), "constant" stays at the peak.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}.")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return 0.1 ** ((step >= 0.5 * total_steps) + (step >= 0.75 * total_steps))
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 - progress


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Give every group the schedule's rate `lr` times the group's own lr_scale."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


__all__ = ["describe_groups", "lr_factor", "make_optimizer", "set_learning_rate"]
