"""Checkers for the exercises of chapter 9 (fine-tuning and transfer learning).

Each checker compares the reader's function with the library's own (`resnet_lab.finetune`) on a few networks,
and when the two disagree it tries the classic mistakes one by one to name the one that was made.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from resnet_lab import finetune, models
from resnet_lab.exercises import Verdict, run_check

Hint = str | None


# ------------------------------------------------------------------------------------------------------------
# Exercise: discriminative learning rates
# ------------------------------------------------------------------------------------------------------------


def _scales_case(answer: Callable[[list[str], float], dict], names: list[str], decay: float) -> Hint:
    expected = {name: decay ** (len(names) - 1 - i) for i, name in enumerate(names)}
    got = answer(list(names), decay)
    if not isinstance(got, dict):
        return f"stage_lr_scales returned a {type(got).__name__}; return a dict {{stage name: scale}}."
    if set(got) != set(names):
        return f"the dict's keys should be the stage names {names}, got {sorted(got)}."
    values = [got[name] for name in names]
    if all(math.isclose(v, e, rel_tol=1e-9) for v, e in zip(values, expected.values())):
        return None
    if all(math.isclose(v, decay ** i, rel_tol=1e-9) for i, v in enumerate(values)):
        return ("the scales run the wrong way: the stem learns fastest and the head slowest. The head is new "
                "and random, so it gets the full rate (scale 1); the stages near the input, whose features "
                "are the most general, get the smallest.")
    if all(math.isclose(v, decay ** (len(names) - i), rel_tol=1e-9) for i, v in enumerate(values)):
        return "off by one: the head's scale should be exactly 1 (decay ** 0)."
    if math.isclose(values[-1], 1.0) and all(math.isclose(v, 1 - decay * (len(names) - 1 - i), rel_tol=1e-9)
                                             for i, v in enumerate(values)):
        return "the scales fall linearly; each stage's rate is the one above it times decay (a power law)."
    return (f"for stages {names} and decay {decay} the scales should be "
            f"{ {k: round(v, 6) for k, v in expected.items()} }, got { {k: round(v, 6) for k, v in got.items()} }.")


def check_stage_lr_scales(answer: Callable[[list[str], float], dict]) -> Verdict:
    """stage_lr_scales(names, decay): head 1, each stage below it `decay` times the one above."""

    def test() -> Hint:
        for name, decay in (("resnet8", 0.5), ("resnet18", 0.1), ("resnet56", 1 / 2.6)):
            names = list(finetune.stages(models.get_model(name)))
            if hint := _scales_case(answer, names, decay):
                return hint
        return None

    return run_check("stage_lr_scales", test)


# ------------------------------------------------------------------------------------------------------------
# Exercise: train mode, with the frozen batch norms kept in eval mode
# ------------------------------------------------------------------------------------------------------------


def _bn_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _modes_case(answer: Callable[[nn.Module], object], name: str, up_to: str) -> Hint:
    model = models.get_model(name)
    finetune.freeze(model, up_to=up_to)
    model.eval()  # the state evaluation leaves a model in
    answer(model)
    bns = _bn_layers(model)
    frozen = {n for n, m in bns if not any(p.requires_grad for p in m.parameters())}
    wrong_frozen = [n for n, m in bns if n in frozen and m.training]
    wrong_trained = [n for n, m in bns if n not in frozen and not m.training]
    if not model.training and all(not m.training for _, m in bns):
        return "the model is still in eval mode: start with model.train(), then fix the frozen BN layers."
    if wrong_frozen and len(wrong_frozen) == len(frozen):
        return (f"every frozen BN layer is in train mode (e.g. {wrong_frozen[0]}): in train mode each forward "
                "pass moves its running statistics towards the new data's, although its weights are frozen. "
                "Put BN layers whose parameters do not require gradients in eval mode.")
    if wrong_trained and len(wrong_trained) == len(bns) - len(frozen):
        return ("the BN layers of the stages that train are in eval mode too: only the frozen ones (their "
                "parameters have requires_grad=False) stay in eval mode.")
    if wrong_frozen or wrong_trained:
        return (f"some BN layers are in the wrong mode: {', '.join((wrong_frozen + wrong_trained)[:3])}. Decide "
                "layer by layer from its own parameters' requires_grad.")
    others = [n for n, m in model.named_modules() if not isinstance(m, nn.modules.batchnorm._BatchNorm)
              and not m.training]
    if others:
        return f"{others[0] or 'the model'} is in eval mode; everything but the frozen BN layers trains."
    return None


def check_train_keeping_frozen_bn(answer: Callable[[nn.Module], object]) -> Verdict:
    """train_keeping_frozen_bn(model): train mode, except BN layers whose parameters are frozen."""

    def test() -> Hint:
        for name, up_to in (("resnet8", "layer2"), ("resnet18", "layer3"), ("resnet20", "stem")):
            if hint := _modes_case(answer, name, up_to):
                return hint
        return None

    return run_check("train_keeping_frozen_bn", test)


__all__ = ["check_stage_lr_scales", "check_train_keeping_frozen_bn"]
