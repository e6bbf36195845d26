"""Chapter 1's checkers: each classic mistake gets its own hint (the stubs and reference solutions themselves are
run by tests/test_exercises.py)."""

from __future__ import annotations

import pytest

from resnet_lab.exercises import ch1


def _diagnose(noise_used: float | None = None, inconclusive: bool = True):
    """A diagnose() that uses `noise` (or ignores it: noise_used=0, or hard-codes a value)."""

    def diagnose(shallow, deep, noise):
        tol = noise if noise_used is None else noise_used
        train = deep["train_err"][-1] - shallow["train_err"][-1]
        val = deep["val_err"][-1] - shallow["val_err"][-1]
        if train > tol:
            return "degradation"
        if val > tol:
            return "overfitting"
        if val < -tol or not inconclusive:
            return "deeper is better"
        return "inconclusive"

    return diagnose


@pytest.mark.parametrize("answer, hint", [
    (_diagnose(), None),
    (_diagnose(noise_used=0.0), "is no evidence either way"),  # reads the sign of any difference
    (_diagnose(noise_used=0.005), "the `noise` you are given, not a fixed value"),  # a fixed noise level
    (_diagnose(noise_used=0.05), "Call it inconclusive only when"),  # far too cautious
    (_diagnose(inconclusive=False), "the answer is 'inconclusive'"),  # never inconclusive
    (lambda shallow, deep: "degradation", "TypeError"),  # the old two-argument signature
    (lambda shallow, deep, noise: "unsure", "return one of 'degradation'"),
])
def test_check_diagnose_hints(answer, hint, capsys):
    verdict = ch1.check_diagnose(answer)
    assert bool(verdict) is (hint is None)
    if hint:
        assert hint in verdict.message


def test_diagnose_cases_test_the_noise_both_ways():
    """The same data appear with two noise levels and two answers, and every answer occurs."""
    by_data = {}
    for shallow, deep, noise, expected, _ in ch1._DIAGNOSIS_CASES:
        by_data.setdefault(repr((shallow, deep)), set()).add((noise, expected))
    assert any(len({answer for _, answer in seen}) == 2 for seen in by_data.values())
    assert {case[3] for case in ch1._DIAGNOSIS_CASES} == set(ch1._ANSWERS)
