"""Checkers for chapter 1, "When deeper is worse".

Each checker runs the reader's function on small cases with a known answer; when the answer is wrong it compares
it with the classic mistakes (a ratio upside down, gradients measured with frozen batch-norm statistics, a
"training error" taken in training mode on augmented images, a diagnosis made from validation error alone or
one that reads the sign of a difference smaller than the seed noise) so that the hint can say which one was made.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

from resnet_lab.data import BatchLoader, channel_stats, normalize
from resnet_lab.exercises import Verdict, run_check
from resnet_lab.gradflow import unit_gradient_norms
from resnet_lab.models import get_model

__all__ = ["check_diagnose", "check_gradient_growth", "check_training_error"]


def _close(answer: float, expected: float, rel: float = 1e-3) -> bool:
    return math.isclose(answer, expected, rel_tol=rel, abs_tol=1e-12)


def _not_a_number(answer: object, what: str) -> str | None:
    """A hint when `answer` is not a plain number (a 0-d tensor is accepted), else None."""
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        return None
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        return f"{what} should be a number (a Python float), but it is a {type(answer).__name__}."
    return None


# ------------------------------------------------------------------------------------------------------------
# Exercise: how much does the gradient grow from the last unit to the first?
# ------------------------------------------------------------------------------------------------------------


def _reference_growth(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, train: bool) -> float:
    norms = list(unit_gradient_norms(copy.deepcopy(model).train(train), images, labels).values())
    return norms[0] / norms[-1]


def check_gradient_growth(gradient_growth: Callable[[nn.Module, torch.Tensor, torch.Tensor], float]) -> Verdict:
    """Check `gradient_growth(model, images, labels)`: first-unit / last-unit gradient norm, in training mode."""

    def test() -> str | None:
        generator = torch.Generator().manual_seed(0)
        images = torch.randn(16, 3, 32, 32, generator=generator)
        labels = torch.randint(0, 10, (16,), generator=generator)
        for name in ("plain14", "resnet8"):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(1)
                model = get_model(name).eval()  # as a model loaded from a checkpoint would arrive
            pristine = copy.deepcopy(model)
            answer = gradient_growth(model, images, labels)
            if hint := _not_a_number(answer, "the growth factor"):
                return hint
            train_ratio = _reference_growth(pristine, images, labels, train=True)
            eval_ratio = _reference_growth(pristine, images, labels, train=False)
            answer = float(answer)
            if _close(answer, train_ratio):
                if model.training:
                    return ("the number is right, but the model was handed to you in eval mode and you left it "
                            "in training mode: remember `was_training = model.training` and restore it.")
                continue
            if _close(answer, eval_ratio):
                return (f"for {name} you measured with batch normalization in eval mode (ratio {answer:.3g}). "
                        "SGD trains with batch statistics: call model.train() before measuring "
                        f"(the train-mode ratio is different: {train_ratio:.3g} is what you should get).")
            if _close(answer, 1 / train_ratio) or _close(answer, 1 / eval_ratio):
                return ("your ratio is upside down: divide the norm at the FIRST unit (next to the input) by the "
                        "norm at the LAST unit (next to the loss).")
            return f"for {name} the expected growth factor is {train_ratio:.4g}, you returned {answer:.4g}."
        return None

    return run_check("gradient_growth", test)


# ------------------------------------------------------------------------------------------------------------
# Exercise (find the bug): the training error that the degradation diagnosis needs
# ------------------------------------------------------------------------------------------------------------


class _Recorder(nn.Module):
    """A tiny BN network that records whether autograd was recording during each forward pass."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # fixed weights without touching the reader's random state
            torch.manual_seed(0)
            self.net = nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
            )
        self.grad_enabled: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.grad_enabled.append(torch.is_grad_enabled())
        return self.net(x)


# 200 images in batches of 64: a loader that drops the last incomplete batch misses 8 of them.
_N_IMAGES, _BATCH = 200, 64


def _training_error_case() -> tuple[_Recorder, torch.Tensor, torch.Tensor, tuple, tuple, float]:
    """A model with settled BN statistics, uint8 images, and labels it gets exactly 25% wrong in eval mode."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (_N_IMAGES, 3, 16, 16), generator=generator, dtype=torch.uint8)
    # Brighter on the left in red, so that flips and crops change the prediction of many images.
    x[:, 0, :, :6] = (x[:, 0, :, :6] // 2 + 128).to(torch.uint8)
    mean, std = channel_stats(x)
    images = normalize(x, mean, std)
    model = _Recorder()
    with torch.no_grad():
        model.train()
        for _ in range(5):
            model(images[torch.randperm(_N_IMAGES, generator=generator)[:64]])  # settles the running statistics
        model.eval()
        labels = model(images).argmax(dim=1)
    wrong = torch.arange(_N_IMAGES) % 4 == 0
    labels[wrong] = (labels[wrong] + 1) % 10
    model.grad_enabled.clear()
    return model, x, labels, mean, std, 0.25


def _error_with_training_loader(model: nn.Module, x, y, mean, std) -> float:
    """The mistake: eval mode, but batches from the training loader (augmented, shuffled, last batch dropped)."""
    model = copy.deepcopy(model).eval()
    wrong = 0
    with torch.no_grad():
        for images, labels in BatchLoader(x, y, mean, std, batch_size=_BATCH, train=True):
            wrong += int((model(images).argmax(dim=1) != labels).sum())
    return wrong / len(y)


def check_training_error(training_error: Callable[..., float]) -> Verdict:
    """Check `training_error(model, x, y, mean, std, batch_size)`: eval mode, un-augmented images, no gradients."""

    def test() -> str | None:
        model, x, y, mean, std, expected = _training_error_case()
        state = copy.deepcopy(model.state_dict())
        with_training_loader = _error_with_training_loader(model, x, y, mean, std)
        model.train()  # the checker calls it from the middle of a training loop, as fit() would
        answer = training_error(model, x, y, mean, std, _BATCH)
        if hint := _not_a_number(answer, "the training error"):
            return hint
        answer = float(answer)
        if any(not torch.equal(state[k], v) for k, v in model.state_dict().items()):
            return ("measuring changed the model: in training mode every forward pass updates batch norm's running "
                    "statistics (and normalizes with the batch's own statistics instead). Measure in model.eval().")
        if _close(answer, 100 * expected):
            return "return a fraction between 0 and 1 (0.25 for 25%), not a percentage."
        if _close(answer, with_training_loader, rel=1e-9) and not _close(answer, expected, rel=1e-9):
            return ("the training loader augments (random crops and flips), shuffles and drops the last incomplete "
                    "batch: you measured the error on altered images, and not on all of them. Use a loader with "
                    "train=False, which yields every image once, unchanged.")
        if not _close(answer, expected, rel=1e-9):
            return (f"the model gets {expected:.0%} of these images wrong in eval mode, your function says "
                    f"{answer:.2%}. Are the images classified as they are (no augmentation), each exactly once?")
        if any(model.grad_enabled):
            return ("the number is right, but autograd recorded the forward passes: wrap the loop in "
                    "`with torch.no_grad():` (a measurement needs no gradients, and recording them costs memory).")
        if not model.training:
            return ("the number is right, but the model came in training mode and leaves in eval mode: the "
                    "training loop that called you would go on with frozen batch statistics. Restore the mode.")
        return None

    return run_check("training_error", test)


# ------------------------------------------------------------------------------------------------------------
# Exercise: degradation or overfitting?
# ------------------------------------------------------------------------------------------------------------

# (shallow, deep, noise, answer, what the case is): final-epoch values decide, differences of at most `noise` count
# as none; earlier epochs are there to mislead. The same data appear with two noise levels, so that a function that
# ignores `noise` (or hard-codes one value) fails one of them.
_SHALLOW = {"train_err": [0.6, 0.2, 0.05], "val_err": [0.6, 0.3, 0.12]}
_DIAGNOSIS_CASES = (
    (_SHALLOW, {"train_err": [0.7, 0.3, 0.09], "val_err": [0.7, 0.35, 0.15]}, 0.005, "degradation",
     "the deeper net ends with a training error 4 points higher (9% vs 5%), far beyond the noise of 0.5 points"),
    (_SHALLOW, {"train_err": [0.5, 0.1, 0.01], "val_err": [0.5, 0.25, 0.16]}, 0.005, "overfitting",
     "the deeper net fits the training images better (1% vs 5%) but does worse on validation (16% vs 12%)"),
    (_SHALLOW, {"train_err": [0.7, 0.1, 0.03], "val_err": [0.7, 0.25, 0.10]}, 0.005, "deeper is better",
     "the deeper net has lower training AND validation error at the end, both by more than the noise"),
    (_SHALLOW, {"train_err": [0.5, 0.1, 0.08], "val_err": [0.5, 0.25, 0.14]}, 0.005, "degradation",
     "the deeper net was ahead after the first epochs but ends with higher training error (8% vs 5%)"),
    (_SHALLOW, {"train_err": [0.4, 0.15, 0.053], "val_err": [0.4, 0.2, 0.135]}, 0.005, "overfitting",
     "the training errors differ by 0.3 points, within the noise of 0.5 (the deeper net fits as well), and the "
     "validation error is 1.5 points higher: it generalizes worse"),
    (_SHALLOW, {"train_err": [0.5, 0.15, 0.053], "val_err": [0.5, 0.25, 0.122]}, 0.005, "inconclusive",
     "the deeper net's training error is 0.3 points higher and its validation error 0.2 points higher, both within "
     "the noise of 0.5 points: another seed could reverse either"),
    (_SHALLOW, {"train_err": [0.5, 0.15, 0.053], "val_err": [0.5, 0.25, 0.122]}, 0.001, "degradation",
     "with a noise of only 0.1 points, the deeper net's 0.3-point higher training error counts"),
    (_SHALLOW, {"train_err": [0.5, 0.1, 0.03], "val_err": [0.5, 0.25, 0.117]}, 0.005, "inconclusive",
     "the deeper net fits its training images better, but its validation error is only 0.3 points lower, within "
     "the noise of 0.5 points: nothing says it is better on new images"),
)
_ANSWERS = ("degradation", "overfitting", "deeper is better", "inconclusive")


def _naive_diagnosis(shallow: dict, deep: dict) -> str:
    """The diagnosis that ignores noise: any difference at all counts."""
    if deep["train_err"][-1] > shallow["train_err"][-1]:
        return "degradation"
    if deep["val_err"][-1] > shallow["val_err"][-1]:
        return "overfitting"
    return "deeper is better"


def check_diagnose(diagnose: Callable[[dict, dict, float], str]) -> Verdict:
    """Check `diagnose(shallow, deep, noise)` -> 'degradation', 'overfitting', 'deeper is better' or
    'inconclusive' on eight cases, two of them the same data with two noise levels."""

    def test() -> str | None:
        for shallow, deep, noise, expected, why in _DIAGNOSIS_CASES:
            answer = diagnose(copy.deepcopy(shallow), copy.deepcopy(deep), noise)
            if not isinstance(answer, str) or answer not in _ANSWERS:
                return f"return one of {', '.join(map(repr, _ANSWERS))}; got {answer!r}."
            if answer == expected:
                continue
            if answer == _naive_diagnosis(shallow, deep) and expected in ("inconclusive", "overfitting"):
                return (f"with noise={noise}: {why}. A difference of at most `noise` is no evidence either way: "
                        "compare each difference with the noise before reading its sign.")
            if answer == "inconclusive":
                return (f"with noise={noise} the answer is {expected!r}: {why}. Call it inconclusive only when "
                        "the differences that matter are within the `noise` you are given, not a fixed value.")
            if expected == "inconclusive":
                return (f"with noise={noise}: {why}. When no difference that matters exceeds the noise, the "
                        "answer is 'inconclusive'.")
            if expected == "degradation" and answer == "overfitting":
                return (f"this is degradation, not overfitting: {why}. Overfitting means fitting the training set "
                        "at least as well; compare training errors first.")
            if expected == "degradation" and answer == "deeper is better":
                return (f"{why}. Degradation is decided by the TRAINING error: the deeper net fits its own training "
                        "images worse, whatever the validation error does.")
            if expected == "overfitting":
                return (f"this is overfitting: {why}. Higher validation error with training error no higher is a "
                        "generalization gap, not an optimization problem.")
            return f"this case is {expected!r}: {why}. Use the final epoch of each curve."
        return None

    return run_check("diagnose", test)
