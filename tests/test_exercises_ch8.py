"""Chapter 8's checkers: each classic mistake gets its own hint (the stubs and the reference solutions themselves
are run by tests/test_exercises.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from resnet_lab.exercises import ch8


def _crop(swap=False, same=False, reflect=False, no_cut=False, in_place=False):
    """A random_crop with one chosen mistake (or none)."""

    def random_crop(x, dy, dx, padding):
        n, _, height, width = x.shape
        if in_place:
            x[:, :, 0, 0] = 0
        if swap:
            dy, dx = dx, dy
        if same:
            dy, dx = dy[:1].expand(n), dx[:1].expand(n)
        if reflect:
            padded = F.pad(x.float(), (padding,) * 4, mode="reflect").to(x.dtype)
        else:
            padded = F.pad(x, (padding,) * 4)
        if no_cut:
            return padded
        return torch.stack([padded[i, :, dy[i]:dy[i] + height, dx[i]:dx[i] + width] for i in range(n)])

    return random_crop


@pytest.mark.parametrize("answer, hint", [
    (_crop(), None),
    (_crop(swap=True), "rows and columns are swapped"),
    (_crop(same=True), "offsets of the first one"),
    (_crop(reflect=True), "must be zeros"),
    (_crop(no_cut=True), "padded size"),
    (_crop(in_place=True), "changed its input"),
    (lambda x, dy, dx, p: x, "unchanged"),
])
def test_check_random_crop_hints(answer, hint):
    verdict = ch8.check_random_crop(answer)
    assert bool(verdict) is (hint is None), verdict.message
    if hint:
        assert hint in verdict.message


def _step(factor_only=False, strict=False, one_drop=False):
    def step_lr(step, total, peak):
        if strict:
            drops = (step > 0.5 * total) + (step > 0.75 * total)
        else:
            drops = (step >= 0.5 * total) + (0 if one_drop else step >= 0.75 * total)
        return (1.0 if factor_only else peak) * 0.1 ** drops

    return step_lr


@pytest.mark.parametrize("answer, hint", [
    (_step(), None),
    (_step(factor_only=True), "multiply by peak_lr"),
    (_step(strict=True), "off-by-one at a boundary"),
    (_step(one_drop=True), "divided by 10 twice"),
    (lambda step, total, peak: peak, "expected"),
    (lambda step, total, peak: "0.1", "return a number"),
])
def test_check_step_schedule_hints(answer, hint):
    verdict = ch8.check_step_schedule(answer)
    assert bool(verdict) is (hint is None), verdict.message
    if hint:
        assert hint in verdict.message


def _pixels(x):
    return x.double() / 255


@pytest.mark.parametrize("answer, hint", [
    (lambda x: (_pixels(x).mean((0, 2, 3)).tolist(), _pixels(x).std((0, 2, 3)).tolist()), None),
    (lambda x: (_pixels(x).mean((0, 2, 3)).tolist(), _pixels(x).std((2, 3)).mean(0).tolist()), "(0.2023"),
    (lambda x: (_pixels(x).mean((0, 2, 3)).tolist(), _pixels(x).mean((2, 3)).std(0).tolist()),
     "mean brightness"),
    (lambda x: (x.double().mean((0, 2, 3)).tolist(), x.double().std((0, 2, 3)).tolist()), "divide by 255"),
    (lambda x: (_pixels(x).mean((0, 1, 2)).tolist(), _pixels(x).std((0, 1, 2)).tolist()), "one value per channel"),
    (lambda x: (_pixels(x).mean((0, 2, 3)).tolist(), (_pixels(x).var((0, 2, 3))).tolist()), "square root"),
    (lambda x: _pixels(x).mean((0, 2, 3)), "pair (mean, std)"),
])
def test_check_channel_stats_hints(answer, hint):
    verdict = ch8.check_channel_stats(answer)
    assert bool(verdict) is (hint is None), verdict.message
    if hint:
        assert hint in verdict.message
