"""Checkers for chapter 2, "The residual idea, in math".

Each checker builds small float64 test cases, compares the reader's answer with a reference computed here or
by PyTorch, and when the answer is wrong it tries the usual mistakes one by one so that the hint can name the
one that was made (wrong product order, skip added twice, a first-order approximation, ...).
`same_tensor` and `not_a_tensor` also serve the batch-norm checkers of appendix B (`batch_norm`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.autograd.functional import jacobian

from resnet_lab.exercises import Verdict, run_check

__all__ = ["check_residual_stage", "check_stack_jacobian", "not_a_tensor", "same_tensor"]

DTYPE = torch.float64
TOL = 1e-9


def same_tensor(answer: object, expected: torch.Tensor, tol: float = TOL) -> bool:
    """True when `answer` is a tensor of the expected shape whose values match to `tol`."""
    return (
        isinstance(answer, torch.Tensor)
        and answer.shape == expected.shape
        and torch.allclose(answer.to(expected.dtype), expected, atol=tol, rtol=tol)
    )


def not_a_tensor(answer: object, what: str) -> str | None:
    """A hint when `answer` is not a tensor, else None."""
    if not isinstance(answer, torch.Tensor):
        return f"{what} should be a torch.Tensor, but it is a {type(answer).__name__}."
    return None


# ------------------------------------------------------------------------------------------------------------
# Exercise: a stage of two residual units (find the bug: the skip added twice)
# ------------------------------------------------------------------------------------------------------------


class _Zero(nn.Module):
    """A residual branch that returns zeros: the state every residual unit should turn into the identity."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class _Branch(nn.Module):
    """A small non-linear residual branch with fixed random weights: x -> W2 tanh(W1 x)."""

    def __init__(self, dim: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w1 = nn.Parameter(torch.randn(dim, dim, generator=g, dtype=DTYPE) / dim**0.5)
        self.w2 = nn.Parameter(torch.randn(dim, dim, generator=g, dtype=DTYPE) / dim**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ self.w1.T) @ self.w2.T


def check_residual_stage(stage_class: Callable[[nn.Module, nn.Module], nn.Module]) -> Verdict:
    """Check a class `ResidualStage(f1, f2)` computing x1 = x + f1(x), then x1 + f2(x1)."""

    def test() -> str | None:
        x = torch.randn(5, 6, generator=torch.Generator().manual_seed(0), dtype=DTYPE)

        zero_out = stage_class(_Zero(), _Zero())(x)
        if hint := not_a_tensor(zero_out, "the stage's output"):
            return hint
        if zero_out.shape != x.shape:
            return (f"the output has shape {tuple(zero_out.shape)}, but a residual stage keeps the input's "
                    f"shape {tuple(x.shape)}.")
        for k in (2, 3, 4):
            if same_tensor(zero_out, k * x):
                return (f"with both residual branches returning zero your stage returns {k}x instead of x: "
                        "the skip is added more than once. Each unit adds its own input exactly once "
                        "(x + f(x)); the stage needs no extra `+ x` on top of that.")
        if not same_tensor(zero_out, x):
            return ("with both residual branches returning zero, a residual stage must be the identity map "
                    "(x1 = x + 0, x2 = x1 + 0), but your stage changes its input.")

        f1, f2 = _Branch(6, seed=1), _Branch(6, seed=2)
        out = stage_class(f1, f2)(x)
        x1 = x + f1(x)
        expected = x1 + f2(x1)
        if same_tensor(out, expected):
            return None
        if same_tensor(out, expected + x):
            return "the skip over the whole stage adds x a second time: remove the extra `+ x`."
        if same_tensor(out, x + f1(x) + f2(x)):
            return "the second branch is applied to x; it must act on the first unit's output x1 = x + f1(x)."
        if same_tensor(out, torch.relu(expected)):
            return "drop the ReLU after the addition: this stage keeps a clean identity path (no activation)."
        if same_tensor(out, x + f2(x + f1(x))) or same_tensor(out, f2(x1)):
            return "each unit is `input + branch(input)`: the first unit's skip (x1 = x + f1(x)) is missing."
        return "for random branches the output is not x1 + f2(x1) with x1 = x + f1(x)."

    return run_check("ResidualStage", test)


# ------------------------------------------------------------------------------------------------------------
# Exercise: the Jacobian of a residual stack as an ordered product
# ------------------------------------------------------------------------------------------------------------


def _ordered_product(factors: list[torch.Tensor]) -> torch.Tensor:
    """factors[-1] @ ... @ factors[0]: the first block's factor acts first, so it stands rightmost."""
    result = torch.eye(factors[0].shape[0], dtype=factors[0].dtype)
    for factor in factors:
        result = factor @ result
    return result


def check_stack_jacobian(stack_jacobian: Callable[[list[torch.Tensor]], torch.Tensor]) -> Verdict:
    """Check `stack_jacobian(jacobians)` = (I + J_{n-1}) ... (I + J_1)(I + J_0) for branch Jacobians J_i."""

    def test() -> str | None:
        g = torch.Generator().manual_seed(0)
        dim = 5
        eye = torch.eye(dim, dtype=DTYPE)
        js = [0.6 * torch.randn(dim, dim, generator=g, dtype=DTYPE) for _ in range(4)]
        answer = stack_jacobian([j.clone() for j in js])
        if hint := not_a_tensor(answer, "the returned Jacobian"):
            return hint
        if answer.shape != (dim, dim):
            return f"for {dim}x{dim} branch Jacobians the result is {dim}x{dim}, not {tuple(answer.shape)}."
        if not same_tensor(answer, _ordered_product([eye + j for j in js])):
            return _diagnose_stack_jacobian(answer, js)

        if not same_tensor(stack_jacobian([js[0].clone()]), eye + js[0]):
            return "for a single block the result must be I + J_0."

        # The real test: a residual stack built with autograd, whose exact Jacobian torch computes.
        block_js, stack_j = _residual_stack_jacobians(dim, g)
        if not same_tensor(stack_jacobian(block_js), stack_j):
            return "your product does not match torch.autograd's Jacobian of a real 3-block residual stack."
        return None

    return run_check("stack_jacobian", test)


def _diagnose_stack_jacobian(answer: torch.Tensor, js: list[torch.Tensor]) -> str:
    """Name the mistake when `answer` is not the ordered product of the factors (I + J_i)."""
    eye = torch.eye(js[0].shape[0], dtype=DTYPE)
    expected = _ordered_product([eye + j for j in js])
    if same_tensor(answer, _ordered_product([eye + j for j in reversed(js)])):
        return ("the factors are multiplied in the wrong order. Matrices do not commute: the first "
                "block's factor (I + J_0) acts first on a perturbation, so it must stand rightmost.")
    if same_tensor(answer, _ordered_product(js)):
        return "that is the product of the J_i alone (a plain network): each factor is I + J_i."
    if same_tensor(answer, eye + sum(js)):
        return ("I + sum(J_i) keeps only the first-order terms; the exact Jacobian is the product of "
                "all the factors (I + J_i).")
    if same_tensor(answer, _ordered_product([eye + j.T for j in js])) or same_tensor(answer, expected.T):
        return "a transpose crept in: use the J_i as given (rows = outputs, columns = inputs)."
    return "the result is not the ordered product (I + J_3)(I + J_2)(I + J_1)(I + J_0)."


def _residual_stack_jacobians(dim: int, g: torch.Generator) -> tuple[list[torch.Tensor], torch.Tensor]:
    """A real 3-block residual stack: each branch's Jacobian J_i at its block's input, and the stack's Jacobian."""
    branches = [_Branch(dim, seed=10 + i) for i in range(3)]
    xs = [torch.randn(dim, generator=g, dtype=DTYPE)]
    for f in branches:
        xs.append(xs[-1] + f(xs[-1]))
    block_js = [jacobian(f, x).detach() for f, x in zip(branches, xs)]

    def stack(x: torch.Tensor) -> torch.Tensor:
        for f in branches:
            x = x + f(x)
        return x

    return block_js, jacobian(stack, xs[0])
