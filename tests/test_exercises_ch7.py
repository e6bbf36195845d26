"""Chapter 7's checker: each classic mistake gets its own hint (the stub and the reference solution themselves are
run by tests/test_exercises.py)."""

from __future__ import annotations

import pytest
import torch

from resnet_lab.exercises import ch7


def _normalize(unit=False, layer=False, keep_1d=False, weight_itself=False):
    def filter_normalize(direction, weight):
        if weight.dim() <= 1:
            return direction if keep_1d else torch.zeros_like(weight)
        if weight_itself:
            return weight.clone()
        if layer:
            return direction * weight.norm() / direction.norm()
        d = direction.flatten(1).norm(dim=1)
        w = torch.ones_like(d) if unit else weight.flatten(1).norm(dim=1)
        return direction * (w / d).view(-1, *([1] * (weight.dim() - 1)))

    return filter_normalize


@pytest.mark.parametrize("answer, hint", [
    (_normalize(), None),
    (_normalize(unit=True), "has norm 1"),
    (_normalize(layer=True), "whole tensor"),
    (_normalize(keep_1d=True), "zero direction"),
    (_normalize(weight_itself=True), "do not replace it"),
])
def test_filter_normalize_hints(answer, hint, capsys):
    verdict = ch7.check_filter_normalize(answer)
    assert bool(verdict) is (hint is None)
    if hint:
        assert hint in capsys.readouterr().out.replace("\n    ", " ")
