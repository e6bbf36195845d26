"""Chapter 5's checkers: each classic mistake gets its own hint (the stubs and reference solutions themselves are
run by tests/test_exercises.py)."""

from __future__ import annotations

import math

import pytest
import torch

from resnet_lab.exercises import ch5


def _autocorrelation(centred=False, whole=False, shift=0):
    def autocorrelation(g, k):
        g = g - g.mean() if centred else g
        k = k + shift
        a, b = g[: len(g) - k], g[k:]
        if whole:
            return float((a * b).sum() / g.pow(2).sum())
        return float((a * b).sum() / (a.pow(2).sum() * b.pow(2).sum()).sqrt())

    return autocorrelation


@pytest.mark.parametrize("answer, hint", [
    (_autocorrelation(), None),
    (_autocorrelation(centred=True), "subtract the mean"),
    (_autocorrelation(whole=True), "whole sequence"),
    (_autocorrelation(shift=1), "the value at lag"),
    (lambda g, k: torch.ones(2), "should be a number"),
    (lambda g, k: 0.5, "expected value"),
])
def test_check_autocorrelation_hints(answer, hint):
    verdict = ch5.check_autocorrelation(answer)
    assert bool(verdict) is (hint is None)
    if hint:
        assert hint in verdict.message


@pytest.mark.parametrize("answer, hint", [
    (lambda s, n, r: (math.sqrt(1 + s**2) if r else s) ** n, None),
    (lambda s, n, r: ((1 + s**2) if r else s**2) ** n, "squared norm"),
    (lambda s, n, r: (1 + s) ** n if r else s**n, "added the standard deviation"),
    (lambda s, n, r: s**n, "plain chain's growth"),
    (lambda s, n, r: math.sqrt(1 + s**2) ** n, "residual chain's growth"),
    (lambda s, n, r: (math.sqrt(1 + s**2) if r else s) ** (n - 1), "not"),
    (lambda s, n, r: "big", "should be a number"),
])
def test_check_chain_growth_hints(answer, hint):
    verdict = ch5.check_chain_growth(answer)
    assert bool(verdict) is (hint is None)
    if hint:
        assert hint in verdict.message
