"""Checkers for appendix B, "Batch normalization".

Exercise B.1 is a hand-written training-mode batch norm with two bugs, exercise B.2 folds an evaluation-mode batch
norm into the convolution before it. Each checker builds small float64 test cases, compares the reader's answer
with PyTorch, and when the answer is wrong it tries the usual mistakes one by one so that the hint can name the one
that was made (statistics over the wrong axes, unbiased variance, epsilon outside the square root, ...).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from resnet_lab.exercises import Verdict, run_check
from resnet_lab.exercises.ch2 import DTYPE, not_a_tensor, same_tensor

__all__ = ["check_batch_norm_train", "check_fold_bn"]


# ------------------------------------------------------------------------------------------------------------
# Exercise B.1: batch normalization in training mode (find the bug)
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
            if hint := not_a_tensor(answer, "the output"):
                return hint
            if not torch.equal(x, x_before):
                return "your function modified its input x in place; compute a new tensor instead."
            if answer.shape != x.shape:
                return f"the output has shape {tuple(answer.shape)}; batch norm keeps the input's, {shape}."
            expected = F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)
            if same_tensor(answer, expected):
                continue
            return _diagnose_batch_norm(answer, x, gamma, beta, eps)
        return None

    return run_check("batch_norm_train", test)


def _diagnose_batch_norm(answer: torch.Tensor, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                         eps: float) -> str:
    """Name every way in which `answer` departs from training-mode batch norm, if it is a known variant."""
    for dims, unbiased, eps_place in itertools.product(_AXES, (False, True), ("inside", "outside", "none")):
        if not same_tensor(answer, _batch_norm_variant(x, gamma, beta, eps, dims, unbiased, eps_place), tol=1e-7):
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
    if same_tensor(answer, x_hat, tol=1e-7):
        return "the normalization is right, but gamma and beta are not applied: y = gamma * x_hat + beta."
    if same_tensor(answer, beta.view(1, -1, 1, 1) * x_hat + gamma.view(1, -1, 1, 1), tol=1e-7):
        return "gamma and beta are swapped: gamma scales x_hat, beta shifts it."
    return ("the output does not match training-mode batch norm (per-channel mean and biased variance over "
            "N, H, W).")


# ------------------------------------------------------------------------------------------------------------
# Exercise B.2: fold an evaluation-mode batch norm into the convolution before it
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
            hint = not_a_tensor(weight, "the folded weight") or not_a_tensor(bias, "the folded bias")
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
                if not same_tensor(F.conv2d(x, weight, bias, conv.stride, conv.padding), bn(conv(x))):
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
        if same_tensor(weight, right_w) and same_tensor(bias, right_b):
            return None
        if same_tensor(weight, conv.weight * (gamma / torch.sqrt(var)).view(-1, 1, 1, 1)):
            return "epsilon is missing from the scale: gamma / sqrt(running_var + eps)."
        if same_tensor(weight, conv.weight * (gamma / (var + bn.eps)).view(-1, 1, 1, 1)):
            return "the scale divides by the variance; use the standard deviation, sqrt(running_var + eps)."
        if not same_tensor(weight, right_w):
            return ("each output channel's filter is multiplied by its own scale "
                    "gamma_c / sqrt(running_var_c + eps); the scale broadcasts over the weight's first axis.")
        if same_tensor(bias, beta - scale * mean):
            return "the convolution's own bias is lost: it goes through the batch norm, scale * (b - mean)."
        if same_tensor(bias, beta - scale * mean + conv_bias):
            return "the convolution's bias must be scaled as well: bias = beta + scale * (b - mean)."
        if same_tensor(bias, beta + scale * conv_bias) or same_tensor(bias, beta + conv_bias):
            return "the running mean is not subtracted: bias = beta + scale * (b - running_mean)."
        return "the weight is right but the bias is not: bias = beta + scale * (b - running_mean)."
