"""Checkers for chapter 5, "Gradient flow, plain vs residual".

Each checker runs the reader's function on cases with a known answer and recognises the classic mistakes: an
autocorrelation centred on the mean (undefined for a linear network's constant gradient), normalized by the whole
sequence instead of the overlapping parts, or shifted by the wrong lag; a chain's growth without the square root,
with the branch's standard deviation added instead of its variance, or with the plain chain's rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from resnet_lab.exercises import Verdict, run_check
from resnet_lab.gradflow import predicted_chain_growth
from resnet_lab.shattered import gradient_autocorrelation

__all__ = ["check_autocorrelation", "check_chain_growth"]


def _number(answer: object, what: str) -> tuple[float | None, str | None]:
    """(the answer as a float, None), or (None, a hint) when it is not a number."""
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        return float(answer), None
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        return None, f"{what} should be a number (a Python float), but it is a {type(answer).__name__}."
    return float(answer), None


def _close(a: float, b: float, rel: float = 1e-6) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


# ------------------------------------------------------------------------------------------------------------
# Exercise 5.1: the autocorrelation of a gradient sequence at one lag.
# ------------------------------------------------------------------------------------------------------------


def _centred(g: torch.Tensor, k: int) -> float:
    c = g - g.mean()
    a, b = c[: len(g) - k], c[k:]
    return float((a * b).sum() / (a.pow(2).sum() * b.pow(2).sum()).sqrt())


def _whole_norm(g: torch.Tensor, k: int) -> float:
    a, b = g[: len(g) - k], g[k:]
    return float((a * b).sum() / g.pow(2).sum())


def check_autocorrelation(autocorrelation: Callable[[torch.Tensor, int], float]) -> Verdict:
    """Check `autocorrelation(g, k)`: the cosine between g[:-k] and g[k:] (uncentred), as in section 5.5."""

    def test() -> str | None:
        generator = torch.Generator().manual_seed(0)
        constant = torch.full((40,), 2.5, dtype=torch.float64)
        ramp = torch.linspace(0.5, 3.0, 30, dtype=torch.float64)
        noise = torch.randn(50, generator=generator, dtype=torch.float64)
        for name, g in (("a constant gradient", constant), ("a ramp", ramp), ("random numbers", noise)):
            for k in (0, 1, 3):
                value, hint = _number(autocorrelation(g.clone(), k), "the autocorrelation")
                if hint:
                    return hint
                expected = float(gradient_autocorrelation(g, k)[k])
                if _close(value, expected):
                    continue
                if math.isnan(value) and name == "a constant gradient":
                    return ("for a constant gradient (a linear network) you returned nan: did you subtract the "
                            "mean? The book's autocorrelation is uncentred, so a constant sequence gives 1.")
                if k and _close(value, _centred(g, k)):
                    return "you subtracted the mean first: the book's autocorrelation is uncentred (no mean removed)."
                if k and _close(value, _whole_norm(g, k)):
                    return ("you divided by the sum of squares of the whole sequence: normalize by the two "
                            "overlapping parts, sqrt(sum a^2 * sum b^2) with a = g[:len(g)-k], b = g[k:].")
                for other in (k - 1, k + 1):
                    if 0 <= other < len(g) and _close(value, float(gradient_autocorrelation(g, other)[other])):
                        return f"at lag {k} you returned the value at lag {other}: check how far you shift g."
                return f"for {name} at lag {k} the expected value is {expected:.6g}, you returned {value:.6g}."
        return None

    return run_check("autocorrelation", test)


# ------------------------------------------------------------------------------------------------------------
# Exercise 5.2: the predicted growth of a random linear chain.
# ------------------------------------------------------------------------------------------------------------


def check_chain_growth(chain_growth: Callable[[float, int, bool], float]) -> Verdict:
    """Check `chain_growth(branch_std, blocks, residual)`: the gradient norm's expected growth over `blocks`."""

    def test() -> str | None:
        for std, blocks, residual in ((0.5, 7, True), (1.0, 10, True), (0.3, 20, True), (1.2, 6, False),
                                      (0.8, 9, False)):
            value, hint = _number(chain_growth(std, blocks, residual), "the growth")
            if hint:
                return hint
            expected = predicted_chain_growth(std, residual) ** blocks
            if _close(value, expected):
                continue
            kind = "residual" if residual else "plain"
            if residual and _close(value, (1 + std**2) ** blocks):
                return ("that is the growth of the squared norm: the norm grows by the square root, "
                        "sqrt(1 + s^2) per block.")
            if residual and _close(value, (1 + std) ** blocks):
                return ("you added the standard deviation: the mean SQUARE of the gradient grows by 1 + s^2 per "
                        "block (the cross term averages to zero), so the norm grows by sqrt(1 + s^2).")
            if residual and _close(value, std**blocks):
                return "that is the plain chain's growth: a residual block also passes the gradient through I."
            if not residual and _close(value, predicted_chain_growth(std, True) ** blocks):
                return "that is the residual chain's growth: a plain block has no identity, only W."
            if _close(value, predicted_chain_growth(std, residual) ** (blocks - 1)):
                return f"over {blocks} blocks the factor applies {blocks} times, not {blocks - 1}."
            return (f"for a {kind} chain with s = {std} over {blocks} blocks the expected growth is {expected:.6g}, "
                    f"you returned {value:.6g}.")
        return None

    return run_check("chain_growth", test)
