"""Chapter 3's convolution checker: each classic mistake gets its own hint (the stub and the reference solution
themselves are run by tests/test_exercises.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from resnet_lab.exercises import ch3


def _unfold_conv(flip=False, bias_used=True, swap=False, scramble=False, rounding=math.floor):
    """A conv2d_unfold with one chosen mistake (or none)."""

    def conv2d_unfold(x, weight, bias=None, stride=1, padding=0):
        n, _, height, width = x.shape
        c_out, _, k, _ = weight.shape
        h_out = rounding((height + 2 * padding - k) / stride) + 1
        w_out = rounding((width + 2 * padding - k) / stride) + 1
        w = weight.flip(-2, -1) if flip else weight
        rows = w.reshape(-1, c_out).t() if scramble else w.reshape(c_out, -1)
        out = rows @ F.unfold(x, k, padding=padding, stride=stride)
        if bias is not None and bias_used:
            out = out + bias.view(1, -1, 1)
        return out.reshape(n, c_out, w_out, h_out) if swap else out.reshape(n, c_out, h_out, w_out)

    return conv2d_unfold


@pytest.mark.parametrize("answer, hint", [
    (_unfold_conv(), None),
    (_unfold_conv(bias_used=False), "the bias is missing"),
    (_unfold_conv(flip=True), "you flipped the kernel"),
    (_unfold_conv(scramble=True), "reshaped in the wrong order"),
    (_unfold_conv(swap=True), "height and width are swapped"),
    (_unfold_conv(rounding=math.ceil), "output-size rule (3.2)"),
    (lambda x, w, b=None, s=1, p=0: F.conv2d(x, w, b, s, p), "calls F.conv2d"),
    (lambda x, w, b=None, s=1, p=0: torch.nn.functional.conv2d(x, w, b, s, p), "calls F.conv2d"),
])
def test_check_conv2d_unfold_hints(answer, hint, capsys):
    verdict = ch3.check_conv2d_unfold(answer)
    assert bool(verdict) is (hint is None), verdict.message
    if hint:
        assert hint in verdict.message
    # The checker forbids F.conv2d only while the answer runs.
    assert F.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 3, 3)).item() == 9
