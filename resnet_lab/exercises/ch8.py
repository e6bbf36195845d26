"""Checkers for the exercises of chapter 8 (training ResNets on CIFAR-10).

Each checker compares the reader's function with the library's own (`resnet_lab.augment.crop_flip`,
`resnet_lab.optim.lr_factor`, `resnet_lab.data.channel_stats`) on fixed inputs and, when they disagree, tries the
classic mistakes one by one to name the one that was made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from resnet_lab.augment import crop_flip
from resnet_lab.data import channel_stats
from resnet_lab.exercises import Verdict, run_check
from resnet_lab.optim import lr_factor

# ------------------------------------------------------------------------------------------------------------
# Exercise: the batched random crop
# ------------------------------------------------------------------------------------------------------------


def _crop_case(padding: int) -> tuple[Tensor, Tensor, Tensor]:
    """Images that are not square (to catch swapped axes) and offsets that differ between images."""
    generator = torch.Generator().manual_seed(8)
    x = torch.randint(1, 256, (6, 3, 7, 5), generator=generator, dtype=torch.uint8)  # no zeros: padding shows
    dy = torch.randint(0, 2 * padding + 1, (6,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (6,), generator=generator)
    dy[0], dx[0] = 0, 2 * padding  # the extremes: the top edge, the right edge
    dy[1], dx[1] = 2 * padding, 0
    return x, dy, dx


def _reference_crop(x: Tensor, dy: Tensor, dx: Tensor, padding: int) -> Tensor:
    return crop_flip(x, dy, dx, torch.zeros(len(x), dtype=torch.bool), padding)


def _crop_mistakes(x: Tensor, dy: Tensor, dx: Tensor, padding: int) -> list[tuple[Tensor, str]]:
    """What the classic mistakes produce on this case, each with its hint."""
    n, _, height, width = x.shape
    same = torch.zeros_like(dy)
    reflect = F.pad(x.float(), (padding,) * 4, mode="reflect").to(x.dtype)
    reflected = torch.stack([reflect[i, :, dy[i]:dy[i] + height, dx[i]:dx[i] + width] for i in range(n)])
    return [
        (_reference_crop(x, dx, dy, padding),
         "rows and columns are swapped: dy[i] is the row (height) offset and dx[i] the column (width) offset."),
        (_reference_crop(x, same + dy[0], same + dx[0], padding),
         "every image got the offsets of the first one: each image i has its own dy[i] and dx[i]."),
        (reflected, "the padding must be zeros (RandomCrop's default, fill=0), not a reflection of the image."),
    ]


def check_random_crop(random_crop: Callable[[Tensor, Tensor, Tensor, int], Tensor]) -> Verdict:
    """random_crop(x, dy, dx, padding): zero-pad each image by `padding`, cut it at (dy[i], dx[i]), same size."""

    def test() -> str | None:
        for padding in (4, 2):
            x, dy, dx = _crop_case(padding)
            original = x.clone()
            result = random_crop(x, dy.clone(), dx.clone(), padding)
            if not torch.equal(x, original):
                return "your function changed its input images; build a new tensor (F.pad returns one)."
            expected = _reference_crop(x, dy, dx, padding)
            if not isinstance(result, Tensor):
                return f"return a tensor, got {type(result).__name__}."
            if result.shape != expected.shape:
                if result.shape[-2:] == (x.shape[2] + 2 * padding, x.shape[3] + 2 * padding):
                    return ("the output still has the padded size: cut a window of the original height and width "
                            "out of each padded image.")
                return f"the output has shape {tuple(result.shape)}, expected {tuple(expected.shape)}."
            if result.dtype != x.dtype:
                return f"keep the images' dtype ({x.dtype}); got {result.dtype}."
            if torch.equal(result, expected):
                continue
            for wrong, hint in _crop_mistakes(x, dy, dx, padding):
                if torch.equal(result, wrong):
                    return hint
            if torch.equal(result, x):
                return "the images came back unchanged: pad them first, then cut each at its own offsets."
            return (f"the crops differ from RandomCrop's for padding={padding}: image i is padded by `padding` "
                    "zeros on each side and its window starts at row dy[i], column dx[i] of the padded image.")
        return None

    return run_check("random_crop", test)


# ------------------------------------------------------------------------------------------------------------
# Exercise: the step schedule
# ------------------------------------------------------------------------------------------------------------

_STEP_CASES = (100, 391 * 10, 7, 64)  # total steps: round, an epoch-sized multiple, odd, small


def _step_mistakes(total: int, peak: float) -> list[tuple[list[float], str]]:
    """Whole schedules of the classic mistakes, each with its hint."""
    steps = range(total)
    return [
        ([lr_factor(s, total, "step") for s in steps], "you returned the factor, not the rate: multiply by peak_lr."),
        ([peak * 0.1 ** ((s > 0.5 * total) + (s > 0.75 * total)) for s in steps],
         "an off-by-one at a boundary: steps count from 0, and each drop happens at the first step >= 50% (then "
         "75%) of total_steps."),
        ([peak * 0.1 ** (s >= 0.5 * total) for s in steps],
         "the rate is divided by 10 twice, at 50% and at 75% of training, and stays at peak_lr / 100 to the end."),
        ([peak * (1 - 0.9 * (s >= 0.5 * total) - 0.09 * (s >= 0.75 * total)) for s in steps],
         "each drop divides the current rate by 10 (peak, peak/10, peak/100); do not subtract."),
    ]


def check_step_schedule(step_lr: Callable[[int, int, float], float]) -> Verdict:
    """step_lr(step, total_steps, peak_lr): the peak until half of training, /10 until 75%, /100 after."""

    def test() -> str | None:
        peak = 0.4  # not a power of 10: a missing factor shows
        for total in _STEP_CASES:
            got = [step_lr(step, total, peak) for step in range(total)]
            wrong = [g for g in got if not isinstance(g, (int, float)) or isinstance(g, bool)]
            if wrong:
                return f"return a number (the learning rate), got {type(wrong[0]).__name__}."
            expected = [peak * lr_factor(step, total, "step") for step in range(total)]
            if _same(got, expected, peak):
                continue
            for schedule, hint in _step_mistakes(total, peak):
                if _same(got, schedule, peak):
                    return f"with total_steps={total}, {hint}"
            step = next(i for i, (g, e) in enumerate(zip(got, expected)) if abs(g - e) > 1e-12 * peak)
            return (f"at step {step} of {total} ({100 * step / total:.1f}% of training) you gave {got[step]:g}, "
                    f"expected {expected[step]:g}.")
        return None

    return run_check("step_lr", test)


def _same(a: list[float], b: list[float], scale: float) -> bool:
    return all(abs(p - q) <= 1e-12 * scale for p, q in zip(a, b))


# ------------------------------------------------------------------------------------------------------------
# Exercise: the normalization statistics
# ------------------------------------------------------------------------------------------------------------


def _stats_images() -> Tensor:
    """Images whose brightness varies a lot from one image to the next, as photographs' does."""
    generator = torch.Generator().manual_seed(3)
    brightness = torch.randint(20, 200, (64, 3, 1, 1), generator=generator)
    noise = torch.randint(0, 56, (64, 3, 8, 8), generator=generator)
    return (brightness + noise).to(torch.uint8)


def _as_floats(values: object) -> list[float] | None:
    try:
        return [float(v) for v in values]  # tuples, lists and 1-D tensors alike
    except (TypeError, ValueError):
        return None


def _stats_mistakes(x: Tensor) -> list[tuple[Sequence[float], Sequence[float], str]]:
    f = x.double() / 255
    per_image_std = f.std(dim=(2, 3)).mean(0)
    std_of_means = f.mean(dim=(2, 3)).std(0)
    mean, std = channel_stats(x)
    scaled_mean, scaled_std = [255 * m for m in mean], [255 * s for s in std]
    return [
        (mean, per_image_std.tolist(),
         "your std is the average of each image's own std. That is how the widely copied CIFAR-10 values "
         "(0.2023, 0.1994, 0.2010) were made, and it misses how much images differ from each other: compute "
         "one std per channel over all pixels of all images together."),
        (mean, std_of_means.tolist(),
         "your std is the spread of the images' mean brightness, not of the pixels: compute it over all pixels "
         "of all images together, per channel."),
        (scaled_mean, scaled_std, "the statistics must be on the [0, 1] scale of ToTensor: divide by 255."),
    ]


def check_channel_stats(stats: Callable[[Tensor], tuple[Sequence[float], Sequence[float]]]) -> Verdict:
    """stats(x) for uint8 images (N, C, H, W): per-channel mean and std of all pixels, on the [0, 1] scale."""

    def test() -> str | None:
        x = _stats_images()
        original = x.clone()
        result = stats(x)
        if not torch.equal(x, original):
            return "your function changed its input images."
        if not isinstance(result, tuple) or len(result) != 2:
            return "return a pair (mean, std), each with one value per channel."
        mean, std = _as_floats(result[0]), _as_floats(result[1])
        if mean is None or std is None or len(mean) != x.shape[1] or len(std) != x.shape[1]:
            return (f"mean and std need one value per channel ({x.shape[1]} here): reduce over the images, the "
                    "rows and the columns (dims 0, 2 and 3), not over the channels.")
        want_mean, want_std = channel_stats(x)

        def close(a: Sequence[float], b: Sequence[float], tol: float = 2e-3) -> bool:
            return all(abs(p - q) <= tol * max(1.0, abs(q)) for p, q in zip(a, b))

        if close(mean, want_mean, 1e-4) and close(std, want_std, 1e-3):
            return None
        for wrong_mean, wrong_std, hint in _stats_mistakes(x):
            if close(mean, wrong_mean) and close(std, wrong_std):
                return hint
        if close(mean, want_mean, 1e-4):
            return (f"the means are right but the stds are not ({std} vs {list(want_std)}): the std is the square "
                    "root of the mean squared deviation of every pixel of the channel from the channel's mean.")
        return f"the means differ ({mean} vs {list(want_mean)}): average every pixel of each channel."

    return run_check("channel_stats", test)


__all__ = ["check_channel_stats", "check_random_crop", "check_step_schedule"]
