"""Chapter 9's checkers: each classic mistake gets its own hint (stubs and solutions: tests/test_exercises.py)."""

from __future__ import annotations

import pytest
from torch import nn

from resnet_lab.exercises import ch9


@pytest.mark.parametrize("answer, hint", [
    (lambda names, d: {n: d ** (len(names) - 1 - i) for i, n in enumerate(names)}, None),
    (lambda names, d: {n: d ** i for i, n in enumerate(names)}, "run the wrong way"),
    (lambda names, d: {n: d ** (len(names) - i) for i, n in enumerate(names)}, "off by one"),
    (lambda names, d: {n: 1 - d * (len(names) - 1 - i) for i, n in enumerate(names)}, "fall linearly"),
    (lambda names, d: [1.0] * len(names), "return a dict"),
    (lambda names, d: {n: 1.0 for n in names[1:]}, "keys should be the stage names"),
])
def test_stage_lr_scales_hints(answer, hint, capsys):
    verdict = ch9.check_stage_lr_scales(answer)
    out = capsys.readouterr().out
    assert bool(verdict) == (hint is None)
    if hint:
        assert hint in " ".join(out.split()), out


def _all_bn_eval(model):
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


@pytest.mark.parametrize("answer, hint", [
    (lambda model: None, "still in eval mode"),
    (lambda model: model.train(), "every frozen BN layer is in train mode"),
    (_all_bn_eval, "the stages that train are in eval mode too"),
])
def test_train_keeping_frozen_bn_hints(answer, hint, capsys):
    assert not ch9.check_train_keeping_frozen_bn(answer)
    assert hint in " ".join(capsys.readouterr().out.split())
