"""Chapter 6's checkers: each classic mistake gets its own hint (stubs and reference solutions are run by
tests/test_exercises.py)."""

from __future__ import annotations

import math

import pytest

from resnet_lab.exercises import ch6


@pytest.mark.parametrize("answer, hint", [
    (lambda n: [math.comb(n, k) / 2**n for k in range(n + 1)], None),
    (lambda n: [math.comb(n, k) / 2**n for k in range(n)], "n + 1 values"),
    (lambda n: [math.comb(n, k) for k in range(n + 1)], "divide by the number of all paths"),
    (lambda n: [1 / (n + 1)] * (n + 1), "not binomial"),
])
def test_path_length_fraction_hints(answer, hint, capsys):
    verdict = ch6.check_path_length_fractions(answer)
    assert bool(verdict) is (hint is None)
    if hint:
        assert hint in capsys.readouterr().out.replace("\n    ", " ")


def _unraveled(reverse=False, skip_empty=False, short=False):
    def unraveled(maps, x):
        if short:
            return x + sum(a @ x for a in maps)
        return ch6._paths_sum(maps, x, reverse=reverse, skip_empty=skip_empty)

    return unraveled


@pytest.mark.parametrize("answer, hint", [
    (_unraveled(), None),
    (_unraveled(reverse=True), "wrong order"),
    (_unraveled(skip_empty=True), "no residual branch is missing"),
    (_unraveled(short=True), "length 0 and 1 only"),
])
def test_unraveled_hints(answer, hint, capsys):
    verdict = ch6.check_unraveled(answer)
    assert bool(verdict) is (hint is None)
    if hint:
        assert hint in capsys.readouterr().out.replace("\n    ", " ")
