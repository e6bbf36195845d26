"""Checkers for the exercises of chapter 6 (residual networks as ensembles of paths).

Each checker compares the reader's function with the exact answer on small cases, and when they disagree it tries
the classic mistakes one by one to name the one that was made.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from resnet_lab.exercises import Verdict, run_check


def _fractions(n: int) -> list[float]:
    return [math.comb(n, k) / 2**n for k in range(n + 1)]


def check_path_length_fractions(path_length_fractions: Callable[[int], Sequence[float]]) -> Verdict:
    """path_length_fractions(n)[k] must be the fraction of the 2^n paths through n blocks that have length k."""

    def test() -> str | None:
        for n in (1, 3, 8, 27):
            result = path_length_fractions(n)
            expected = _fractions(n)
            try:
                values = [float(v) for v in result]
            except TypeError:
                return f"return a list of numbers (got {type(result).__name__}) for n={n}."
            if len(values) == n:
                return (f"for n={n} you returned {n} values; lengths run from 0 (the shortcut of every block) to "
                        f"n (every residual branch): n + 1 values.")
            if len(values) != n + 1:
                return f"for n={n} return n + 1 = {n + 1} values, one per path length 0..n; got {len(values)}."
            if all(math.isclose(v, math.comb(n, k)) for k, v in enumerate(values)):
                return ("these are the numbers of paths, C(n, k); divide by the number of all paths, 2^n, to get "
                        "fractions.")
            if not all(math.isclose(v, e, rel_tol=1e-9, abs_tol=1e-15) for v, e in zip(values, expected)):
                if math.isclose(sum(values), 1.0) and n > 1:
                    return (f"the fractions sum to 1 but are not binomial for n={n}: a path chooses, in each block "
                            "independently, the branch or the shortcut, so C(n, k) paths go through k branches.")
                return f"for n={n}, length k should get C(n, k) / 2^n; got {values[:4]}..."
        return None

    return run_check("path_length_fractions", test)


def _chain(n: int, seed: int) -> tuple[list[Tensor], Tensor]:
    generator = torch.Generator().manual_seed(seed)
    maps = [0.5 * torch.randn(3, 3, generator=generator, dtype=torch.float64) for _ in range(n)]
    return maps, torch.randn(3, generator=generator, dtype=torch.float64)


def _residual(maps: Sequence[Tensor], x: Tensor) -> Tensor:
    for a in maps:
        x = x + a @ x
    return x


def _paths_sum(maps: Sequence[Tensor], x: Tensor, reverse: bool = False, skip_empty: bool = False) -> Tensor:
    total = torch.zeros_like(x)
    for bits in itertools.product((0, 1), repeat=len(maps)):
        if skip_empty and not any(bits):
            continue
        chosen = [a for a, b in zip(maps, bits) if b]
        y = x
        for a in (reversed(chosen) if reverse else chosen):
            y = a @ y
        total = total + y
    return total


def check_unraveled(unraveled: Callable[[Sequence[Tensor], Tensor], Tensor]) -> Verdict:
    """unraveled(maps, x) must sum, over all 2^n paths, the path's maps applied to x in network order; for
    linear branches this equals the residual chain x -> x + A x, block after block."""

    def test() -> str | None:
        for n, seed in ((1, 0), (2, 1), (3, 2), (4, 3)):
            maps, x = _chain(n, seed)
            result = unraveled([a.clone() for a in maps], x.clone())
            expected = _residual(maps, x)
            if not isinstance(result, Tensor) or result.shape != expected.shape:
                return f"return a tensor shaped like x, {tuple(x.shape)} (n={n})."
            if torch.allclose(result, expected, atol=1e-10):
                continue
            if torch.allclose(result, _paths_sum(maps, x, skip_empty=True), atol=1e-10):
                return ("the path through no residual branch is missing: the one that takes every shortcut "
                        "and delivers x itself.")
            if torch.allclose(result, _paths_sum(maps, x, reverse=True), atol=1e-10):
                return (f"with n={n} the maps are applied in the wrong order: a path through blocks i < j applies "
                        "A_i first, so the product is A_j @ A_i @ x.")
            if torch.allclose(result, x + sum(a @ x for a in maps), atol=1e-10):
                return ("you summed the paths of length 0 and 1 only; paths through several branches apply "
                        "several maps in a row.")
            return f"wrong value for n={n}: expected the sum of A_path @ x over all 2^{n} subsets of blocks."
        return None

    return run_check("unraveled", test)


__all__ = ["check_path_length_fractions", "check_unraveled"]
