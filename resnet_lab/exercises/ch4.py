"""Checkers for the exercises of chapter 4 (assembling networks).

They compare the reader's code with `resnet_lab.models` (stages built by `ResNet._make_layer`, networks built by
`resnet_cifar`), and name the classic mistake when they can recognize it.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import torch
from torch import Tensor, nn

from resnet_lab import blocks, models, summary
from resnet_lab.exercises import Verdict, run_check

# ------------------------------------------------------------------------------------------------------------
# Exercise (find the bugs): make_layer
# ------------------------------------------------------------------------------------------------------------

_STAGE_CASES = [  # (block, in_planes, planes, num_blocks, stride): CIFAR stage 2, ResNet-50 stages 1 and 2
    (blocks.BasicBlock, 16, 32, 3, 2),
    (blocks.Bottleneck, 64, 64, 3, 1),
    (blocks.Bottleneck, 256, 128, 2, 2),
]


def _strided_conv(block: nn.Module) -> nn.Conv2d:
    """The convolution of the residual branch that carries the block's stride (the 3x3 in a bottleneck)."""
    return block.conv2 if isinstance(block, blocks.Bottleneck) else block.conv1


def check_make_layer(make_layer: Callable[..., nn.Module]) -> Verdict:
    """make_layer(block, in_planes, planes, num_blocks, stride) must build the stage ResNet._make_layer builds."""

    def test() -> str | None:
        for block, in_planes, planes, num_blocks, stride in _STAGE_CASES:
            call = f"make_layer({block.__name__}, {in_planes}, {planes}, {num_blocks}, {stride})"
            torch.manual_seed(0)
            stage = make_layer(block, in_planes, planes, num_blocks, stride)
            if hint := _container_problem(call, stage, num_blocks):
                return hint
            if hint := _blocks_problem(call, list(stage._modules.values()), block, in_planes, planes, stride):
                return hint
            if hint := _parameter_problem(call, stage, block, in_planes, planes, num_blocks, stride):
                return hint
            if hint := _output_shape_problem(call, stage, in_planes, planes * block.expansion, stride):
                return hint
        return None

    return run_check("make_layer", test)


def _container_problem(call: str, stage: object, num_blocks: int) -> str | None:
    """A hint when `stage` is not an nn.Sequential of `num_blocks` modules, else None."""
    if isinstance(stage, (list, tuple)):
        return f"{call} returned a {type(stage).__name__}; wrap the blocks in nn.Sequential(*layers)."
    if not isinstance(stage, nn.Sequential):
        return f"{call} returned a {type(stage).__name__}, not an nn.Sequential."
    members = list(stage._modules.values())
    if any(m is None for m in members):
        return (f"{call} put None into nn.Sequential, which fails as soon as data reaches it: append a "
                "module only when there is one (the shortcut lives inside each block, as downsample).")
    if len(members) != num_blocks:
        return f"{call} holds {len(members)} modules; a stage of {num_blocks} blocks holds {num_blocks}."
    return None


def _blocks_problem(
    call: str, members: list[nn.Module], block: models.BlockType, in_planes: int, planes: int, stride: int
) -> str | None:
    """A hint when a block of the stage has the wrong class, input width or stride, else None."""
    out_planes = planes * block.expansion
    for i, member in enumerate(members):
        if not isinstance(member, block):
            return f"{call}: module {i} is a {type(member).__name__}, expected a {block.__name__}."
        expected_in = in_planes if i == 0 else out_planes
        got_in = member.conv1.in_channels
        if got_in != expected_in:
            hint = f"{call}: block {i} reads {got_in} channels, but its input has {expected_in}."
            if i == 0 and member.conv1.out_channels == in_planes:
                hint += " The arguments are swapped: the signature is block(in_planes, planes, stride)."
            elif i > 0 and got_in == planes:
                hint += (f" After the first block the input has planes * block.expansion = {out_planes} "
                         "channels (a bottleneck expands by 4).")
            return hint
        expected_stride = stride if i == 0 else 1
        got_stride = _strided_conv(member).stride[0]
        if got_stride != expected_stride:
            return (f"{call}: block {i} has stride {got_stride}, expected {expected_stride}. Only the first "
                    "block of a stage changes the resolution; the others keep it (stride 1).")
    return None


def _parameter_problem(
    call: str, stage: nn.Module, block: models.BlockType, in_planes: int, planes: int, num_blocks: int, stride: int
) -> str | None:
    """A hint when the stage's parameter count differs from resnet_lab's (another shortcut option), else None."""
    reference = models.ResNet._make_layer(block, in_planes, planes, num_blocks, stride, "B", True)
    got, want = summary.count_parameters(stage), summary.count_parameters(reference)
    if got != want:
        return (f"{call} has {got:,} parameters, resnet_lab's stage {want:,}: build the blocks with their "
                "default shortcut (option B).")
    return None


def _output_shape_problem(call: str, stage: nn.Module, in_planes: int, out_planes: int, stride: int) -> str | None:
    """A hint when the stage does not map an (N, in_planes, 8, 8) batch to (N, out_planes, 8/stride, 8/stride)."""
    x = torch.randn(2, in_planes, 8, 8)
    out = stage.eval()(x)
    expected_shape = (2, out_planes, 8 // stride, 8 // stride)
    if tuple(out.shape) != expected_shape:
        return f"{call} maps (2, {in_planes}, 8, 8) to {tuple(out.shape)}, expected {expected_shape}."
    return None


# ------------------------------------------------------------------------------------------------------------
# Exercise: the parameter count of ResNet-(6n+2), by formula
# ------------------------------------------------------------------------------------------------------------


def _bn_channels(n: int) -> int:
    """BN channels of a CIFAR ResNet-(6n+2): the stem's 16, then 2n BNs per stage of 16, 32 and 64 channels."""
    return 16 + 2 * n * (16 + 32 + 64)


def check_cifar_params(resnet_cifar_params: Callable[[int], int]) -> Verdict:
    """resnet_cifar_params(n) must equal count_parameters(resnet_cifar(6n+2)) (option A, 10 classes)."""

    def test() -> str | None:
        ns = (1, 2, 3, 5, 9, 18)
        got = {n: resnet_cifar_params(n) for n in ns}
        for n, value in got.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                return f"resnet_cifar_params({n}) returned {value!r}; return an int (a number of parameters)."
        want = {n: summary.count_parameters(models.resnet_cifar(6 * n + 2)) for n in ns}
        diff = {n: int(got[n]) - want[n] for n in ns}
        if not any(diff.values()):
            return None
        bn = {n: _bn_channels(n) for n in ns}
        known = [  # (difference as a function of n, hint)
            (lambda n: -2 * bn[n], "every BN has two parameters per channel, its scale gamma and shift beta; "
             "they are missing."),
            (lambda n: -bn[n], "only one of BN's two parameters per channel is counted; count gamma and beta."),
            (lambda n: 2 * bn[n], "BN's running mean and variance are buffers, not parameters: count only "
             "gamma and beta."),
            (lambda n: bn[n], "the convolutions have no bias (bias=False, the BN after them has a shift)."),
            (lambda n: -10, "the classifier's bias (one per class) is missing."),
            (lambda n: -650, "the classifier (64 x 10 weights + 10 biases) is missing."),
            (lambda n: -464, "the first convolution (3 -> 16 channels, 3x3) and its BN are missing."),
            (lambda n: 9 * (16 * 32 + 32 * 64), "the first convolution of stages 2 and 3 is counted at the "
             "stage's own width; its input is the previous stage's output (16 and 32 channels)."),
            (lambda n: 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64, "option A shortcuts have no parameters: no 1x1 "
             "projections (this network uses zero-padding where the shape changes)."),
        ]
        for expected_diff, hint in known:
            if all(diff[n] == expected_diff(n) for n in ns):
                return hint
        first = next(n for n in ns if diff[n])
        if len(set(diff.values())) == 1:
            return (f"off by {diff[first]:+,} for every n: the part that does not depend on n (first conv, the "
                    "stage transitions, the classifier) is wrong.")
        return (f"resnet_cifar_params({first}) = {got[first]:,}, but ResNet-{6 * first + 2} has {want[first]:,} "
                "parameters: count each stage's 2n convolutions (3x3, no bias) and BNs (2 per channel).")

    return run_check("resnet_cifar_params", test)


# ------------------------------------------------------------------------------------------------------------
# Exercise (find the bug): a classifier head that only works at one input size
# ------------------------------------------------------------------------------------------------------------


def check_any_size_head(model_class: Callable[..., nn.Module]) -> Verdict:
    """model_class(num_classes) must give fc(global average of features(x)) for inputs of any size."""

    def test() -> str | None:
        torch.manual_seed(0)
        model = model_class(num_classes=7)
        if not isinstance(model, nn.Module):
            return f"calling the class gave a {type(model).__name__}, not an nn.Module."
        if not (hasattr(model, "features") and hasattr(model, "fc")):
            return "keep the two parts of the network, self.features and self.fc; change only the forward pass."
        model.eval()
        for size in (32, 64, 40):
            x = torch.randn(2, 3, size, size)
            with torch.no_grad():
                try:
                    out = model(x)
                except RuntimeError as exc:
                    if size == 32:
                        raise
                    return (f"the network works at 32x32 but fails at {size}x{size} ({str(exc).splitlines()[0]}). "
                            "The pooling size is tied to one input size: average over the whole feature map, "
                            "e.g. F.adaptive_avg_pool2d(out, 1) or out.mean(dim=(2, 3)).")
                expected = model.fc(model.features(x).mean(dim=(2, 3)))
            if not isinstance(out, Tensor) or out.shape != expected.shape:
                shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                return f"at {size}x{size} the output is {shape}, expected {tuple(expected.shape)} (N, num_classes)."
            if not torch.allclose(out, expected, atol=1e-5):
                return (f"at {size}x{size} the output is not fc(average of the features): pool by averaging over "
                        "the whole map (global average pooling), not max-pooling or a fixed window.")
        return None

    return run_check("SmallResNet", test)
