"""Checkers for chapter 2, "The residual idea, in math".

Each checker builds small float64 test cases, compares the reader's answer with a reference computed here or
by PyTorch, and when the answer is wrong it tries the usual mistakes one by one so that the hint can name the
one that was made (wrong product order, skip added twice, batch statistics over the wrong axes, ...).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.functional import jacobian

from resnet_lab.exercises import Verdict, run_check

__all__ = ["check_batch_norm_train", "check_fold_bn", "check_residual_stage", "check_stack_jacobian"]

DTYPE = torch.float64
TOL = 1e-9


def _same(answer: object, expected: torch.Tensor, tol: float = TOL) -> bool:
    """True when `answer` is a tensor of the expected shape whose values match to `tol`."""
    return (
        isinstance(answer, torch.Tensor)
        and answer.shape == expected.shape
        and torch.allclose(answer.to(expected.dtype), expected, atol=tol, rtol=tol)
    )


def _not_a_tensor(answer: object, what: str) -> str | None:
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
        if hint := _not_a_tensor(zero_out, "the stage's output"):
            return hint
        if zero_out.shape != x.shape:
            return (f"the output has shape {tuple(zero_out.shape)}, but a residual stage keeps the input's "
                    f"shape {tuple(x.shape)}.")
        for k in (2, 3, 4):
            if _same(zero_out, k * x):
                return (f"with both residual branches returning zero your stage returns {k}x instead of x: "
                        "the skip is added more than once. Each unit adds its own input exactly once "
                        "(x + f(x)); the stage needs no extra `+ x` on top of that.")
        if not _same(zero_out, x):
            return ("with both residual branches returning zero, a residual stage must be the identity map "
                    "(x1 = x + 0, x2 = x1 + 0), but your stage changes its input.")

        f1, f2 = _Branch(6, seed=1), _Branch(6, seed=2)
        out = stage_class(f1, f2)(x)
        x1 = x + f1(x)
        expected = x1 + f2(x1)
        if _same(out, expected):
            return None
        if _same(out, expected + x):
            return "the skip over the whole stage adds x a second time: remove the extra `+ x`."
        if _same(out, x + f1(x) + f2(x)):
            return "the second branch is applied to x; it must act on the first unit's output x1 = x + f1(x)."
        if _same(out, torch.relu(expected)):
            return "drop the ReLU after the addition: this stage keeps a clean identity path (no activation)."
        if _same(out, x + f2(x + f1(x))) or _same(out, f2(x1)):
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
        if hint := _not_a_tensor(answer, "the returned Jacobian"):
            return hint
        if answer.shape != (dim, dim):
            return f"for {dim}x{dim} branch Jacobians the result is {dim}x{dim}, not {tuple(answer.shape)}."
        if not _same(answer, _ordered_product([eye + j for j in js])):
            return _diagnose_stack_jacobian(answer, js)

        if not _same(stack_jacobian([js[0].clone()]), eye + js[0]):
            return "for a single block the result must be I + J_0."

        # The real test: a residual stack built with autograd, whose exact Jacobian torch computes.
        block_js, stack_j = _residual_stack_jacobians(dim, g)
        if not _same(stack_jacobian(block_js), stack_j):
            return "your product does not match torch.autograd's Jacobian of a real 3-block residual stack."
        return None

    return run_check("stack_jacobian", test)


def _diagnose_stack_jacobian(answer: torch.Tensor, js: list[torch.Tensor]) -> str:
    """Name the mistake when `answer` is not the ordered product of the factors (I + J_i)."""
    eye = torch.eye(js[0].shape[0], dtype=DTYPE)
    expected = _ordered_product([eye + j for j in js])
    if _same(answer, _ordered_product([eye + j for j in reversed(js)])):
        return ("the factors are multiplied in the wrong order. Matrices do not commute: the first "
                "block's factor (I + J_0) acts first on a perturbation, so it must stand rightmost.")
    if _same(answer, _ordered_product(js)):
        return "that is the product of the J_i alone (a plain network): each factor is I + J_i."
    if _same(answer, eye + sum(js)):
        return ("I + sum(J_i) keeps only the first-order terms; the exact Jacobian is the product of "
                "all the factors (I + J_i).")
    if _same(answer, _ordered_product([eye + j.T for j in js])) or _same(answer, expected.T):
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


# ------------------------------------------------------------------------------------------------------------
# Exercise: batch normalization in training mode (find the bug)
# ------------------------------------------------------------------------------------------------------------

_AXES = {
    (0, 2, 3): "per channel over (N, H, W)",
    (1, 2, 3): "per sample over (C, H, W), which is layer normalization",
    (2, 3): "per sample and channel over (H, W), which is instance normalization",
    (0,): "over the batch only, separately for every channel and pixel",
    (0, 1, 2, 3): "over the whole tensor at once",
}


def _batch_norm_variant(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float, dims: tuple,
                        unbiased: bool, eps_place: str) -> torch.Tensor:
    """Batch norm with one choice of axes, variance estimator and epsilon placement (for diagnosis)."""
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=unbiased)
    if eps_place == "inside":
        x_hat = (x - mean) / torch.sqrt(var + eps)
    elif eps_place == "outside":
        x_hat = (x - mean) / (torch.sqrt(var) + eps)
    else:
        x_hat = (x - mean) / torch.sqrt(var)
    return gamma.view(1, -1, 1, 1) * x_hat + beta.view(1, -1, 1, 1)


def _bn_case(seed: int, shape: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An input with a different mean and scale per channel (one almost constant), plus gamma and beta."""
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    scale = torch.logspace(-2, 0.5, c, dtype=DTYPE).view(1, c, 1, 1)
    offset = torch.linspace(-3, 3, c, dtype=DTYPE).view(1, c, 1, 1)
    x = offset + scale * torch.randn(shape, generator=g, dtype=DTYPE)
    gamma = 0.5 + torch.rand(c, generator=g, dtype=DTYPE)
    beta = torch.randn(c, generator=g, dtype=DTYPE)
    return x, gamma, beta


def check_batch_norm_train(batch_norm_train: Callable[..., torch.Tensor]) -> Verdict:
    """Check `batch_norm_train(x, gamma, beta, eps)` against training-mode F.batch_norm."""

    def test() -> str | None:
        eps = 1e-3  # large enough that its placement changes the result on the near-constant channel
        for seed, shape in enumerate([(4, 3, 5, 2), (2, 5, 3, 3)]):
            x, gamma, beta = _bn_case(seed, shape)
            x_before = x.clone()
            answer = batch_norm_train(x, gamma, beta, eps)
            if hint := _not_a_tensor(answer, "the output"):
                return hint
            if not torch.equal(x, x_before):
                return "your function modified its input x in place; compute a new tensor instead."
            if answer.shape != x.shape:
                return f"the output has shape {tuple(answer.shape)}; batch norm keeps the input's, {shape}."
            expected = F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)
            if _same(answer, expected):
                continue
            return _diagnose_batch_norm(answer, x, gamma, beta, eps)
        return None

    return run_check("batch_norm_train", test)


def _diagnose_batch_norm(answer: torch.Tensor, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                         eps: float) -> str:
    """Name every way in which `answer` departs from training-mode batch norm, if it is a known variant."""
    for dims, unbiased, eps_place in itertools.product(_AXES, (False, True), ("inside", "outside", "none")):
        if not _same(answer, _batch_norm_variant(x, gamma, beta, eps, dims, unbiased, eps_place), tol=1e-7):
            continue
        problems = []
        if dims != (0, 2, 3):
            problems.append(f"the statistics are computed {_AXES[dims]}; batch norm computes one mean and "
                            "one variance per channel, over the batch and all positions: dim=(0, 2, 3)")
        if unbiased:
            problems.append("the variance is the unbiased one (divided by m - 1); the normalization uses the "
                            "biased variance (divided by m, unbiased=False)")
        if eps_place == "outside":
            problems.append("epsilon is added after the square root; it belongs inside: sqrt(var + eps)")
        if eps_place == "none":
            problems.append("epsilon is missing: divide by sqrt(var + eps)")
        return "; ".join(problems) + "."
    correct = _batch_norm_variant(x, gamma, beta, eps, (0, 2, 3), False, "inside")
    x_hat = (correct - beta.view(1, -1, 1, 1)) / gamma.view(1, -1, 1, 1)
    if _same(answer, x_hat, tol=1e-7):
        return "the normalization is right, but gamma and beta are not applied: y = gamma * x_hat + beta."
    if _same(answer, beta.view(1, -1, 1, 1) * x_hat + gamma.view(1, -1, 1, 1), tol=1e-7):
        return "gamma and beta are swapped: gamma scales x_hat, beta shifts it."
    return ("the output does not match training-mode batch norm (per-channel mean and biased variance over "
            "N, H, W).")


# ------------------------------------------------------------------------------------------------------------
# Exercise: fold an evaluation-mode batch norm into the convolution before it
# ------------------------------------------------------------------------------------------------------------


def _conv_bn(seed: int, bias: bool) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    """A conv (3 -> 4 channels) and a BatchNorm2d with non-trivial running statistics (float64, eval mode)."""
    g = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(3, 4, kernel_size=3, padding=1, bias=bias).to(DTYPE)
    bn = nn.BatchNorm2d(4, eps=1e-3).to(DTYPE)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g, dtype=DTYPE) / 5)
        if bias:
            conv.bias.copy_(torch.randn(4, generator=g, dtype=DTYPE))
        bn.running_mean.copy_(torch.randn(4, generator=g, dtype=DTYPE))
        # One tiny variance, so that forgetting eps changes the result.
        bn.running_var.copy_(torch.tensor([1e-3, 0.5, 2.0, 4.0], dtype=DTYPE))
        bn.weight.copy_(0.5 + torch.rand(4, generator=g, dtype=DTYPE))
        bn.bias.copy_(torch.randn(4, generator=g, dtype=DTYPE))
    return conv.eval(), bn.eval()


FoldBN = Callable[[nn.Conv2d, nn.BatchNorm2d], tuple[torch.Tensor, torch.Tensor]]


def check_fold_bn(fold_bn: FoldBN) -> Verdict:
    """Check `fold_bn(conv, bn) -> (weight, bias)`: one convolution equal to bn(conv(x)), bn in eval mode."""

    def test() -> str | None:
        for seed, has_bias in ((0, True), (1, False)):
            conv, bn = _conv_bn(seed, has_bias)
            before = {k: v.clone() for k, v in [*conv.state_dict().items(), *bn.state_dict().items()]}
            try:
                result = fold_bn(conv, bn)
            except (TypeError, AttributeError) as exc:
                if not has_bias:
                    return (f"for a convolution without bias (conv.bias is None) your code fails ({exc}); "
                            "treat the missing bias as zeros.")
                raise
            after = {k: v for k, v in [*conv.state_dict().items(), *bn.state_dict().items()]}
            if any(not torch.equal(before[k], after[k]) for k in before):
                return "your function changed the conv or the batch norm in place; return new tensors."
            if not (isinstance(result, tuple | list) and len(result) == 2):
                return "return a pair (weight, bias) of tensors."
            weight, bias = result
            hint = _not_a_tensor(weight, "the folded weight") or _not_a_tensor(bias, "the folded bias")
            if hint:
                return hint
            if weight.shape != conv.weight.shape or bias.shape != (conv.out_channels,):
                return (f"the folded weight must have the conv weight's shape {tuple(conv.weight.shape)} and "
                        f"the bias shape ({conv.out_channels},); got {tuple(weight.shape)} and "
                        f"{tuple(bias.shape)}.")
            if hint := _diagnose_fold(weight, bias, conv, bn):
                return hint
            x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)
            with torch.no_grad():
                if not _same(F.conv2d(x, weight, bias, conv.stride, conv.padding), bn(conv(x))):
                    return "the folded convolution does not reproduce bn(conv(x)) in evaluation mode."
        return None

    return run_check("fold_bn", test)


def _diagnose_fold(weight: torch.Tensor, bias: torch.Tensor, conv: nn.Conv2d,
                   bn: nn.BatchNorm2d) -> str | None:
    """None when (weight, bias) is the right folding, else a hint naming the mistake."""
    with torch.no_grad():
        conv_bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels, dtype=DTYPE)
        mean, var, gamma, beta = bn.running_mean, bn.running_var, bn.weight, bn.bias
        scale = gamma / torch.sqrt(var + bn.eps)
        right_w = conv.weight * scale.view(-1, 1, 1, 1)
        right_b = beta + scale * (conv_bias - mean)
        if _same(weight, right_w) and _same(bias, right_b):
            return None
        if _same(weight, conv.weight * (gamma / torch.sqrt(var)).view(-1, 1, 1, 1)):
            return "epsilon is missing from the scale: gamma / sqrt(running_var + eps)."
        if _same(weight, conv.weight * (gamma / (var + bn.eps)).view(-1, 1, 1, 1)):
            return "the scale divides by the variance; use the standard deviation, sqrt(running_var + eps)."
        if not _same(weight, right_w):
            return ("each output channel's filter is multiplied by its own scale "
                    "gamma_c / sqrt(running_var_c + eps); the scale broadcasts over the weight's first axis.")
        if _same(bias, beta - scale * mean):
            return "the convolution's own bias is lost: it goes through the batch norm, scale * (b - mean)."
        if _same(bias, beta - scale * mean + conv_bias):
            return "the convolution's bias must be scaled as well: bias = beta + scale * (b - mean)."
        if _same(bias, beta + scale * conv_bias) or _same(bias, beta + conv_bias):
            return "the running mean is not subtracted: bias = beta + scale * (b - running_mean)."
        return "the weight is right but the bias is not: bias = beta + scale * (b - running_mean)."
