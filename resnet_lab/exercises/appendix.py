"""Checkers for the appendix "Reading ResNet code critically" (find-the-bug exercises).

Each exercise hands the reader a piece of model code with a mistake of the kind found in code published
online. Each checker compares the reader's fix with the library's own blocks, stages and networks (loading
the library's weights into the reader's module where there are weights), and when the two disagree it tries
the known mistakes one by one, so that the hint names the one that is still there.

Hints are wrapped to 88 columns, the width the book shows without scrolling.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from resnet_lab import blocks, models
from resnet_lab.exercises import NOT_YET, Verdict, run_check
from resnet_lab.exercises.ch3 import randomized

__all__ = [
    "check_classifier_head",
    "check_count_parameters",
    "check_downsample_block",
    "check_make_stage",
    "check_prepare_finetuning",
    "check_residual_block",
]

_ATOL = 1e-5
_WIDTH = 88

Hint = str | None


def _check(name: str, test: Callable[[], Hint]) -> Verdict:
    """run_check with the hint wrapped so that the printed verdict fits in 88 columns."""

    def wrapped() -> Hint:
        hint = test()
        if hint is None:
            return None
        prefix = f"{NOT_YET}: {name}: "
        lines = textwrap.wrap(hint, width=_WIDTH, initial_indent=" " * len(prefix), subsequent_indent="  ",
                              break_long_words=False, break_on_hyphens=False)
        lines[0] = lines[0][len(prefix):]
        return "\n".join(lines)

    return run_check(name, wrapped)


def _close(a: object, b: Tensor) -> bool:
    return isinstance(a, Tensor) and a.shape == b.shape and torch.allclose(a, b, atol=_ATOL)


def _load(module: nn.Module, reference: nn.Module, what: str, names: str) -> Hint:
    """Copy reference's weights into module (strict); a hint naming the keys when that fails."""
    if not isinstance(module, nn.Module):
        return f"{what} gave a {type(module).__name__}, not an nn.Module."
    try:
        module.load_state_dict(reference.state_dict(), strict=True)
    except RuntimeError as exc:
        # the first line only says "Error(s) in loading state_dict"; the next ones name the keys
        details = " ".join(line.strip() for line in str(exc).splitlines()[1:])[:200] or "the keys differ"
        return (f"the checker copies resnet_lab's weights into {what}, and that failed ({details}). Keep "
                f"the names {names}, with the same shapes.")
    return None


# ------------------------------------------------------------------------------------------------------------
# Exercises A.1 and A.2: basic blocks whose shortcut is missing or in the wrong place
# ------------------------------------------------------------------------------------------------------------

Mistakes = Callable[[nn.Module, Tensor], list[tuple[Tensor, str]]]


def _common_mistakes(r: nn.Module, x: Tensor) -> list[tuple[Tensor, str]]:
    """Outputs of the usual wrong forward passes of a basic block r (a resnet_lab BasicBlock), with hints."""
    branch = r.bn2(r.conv2(F.relu(r.bn1(r.conv1(x)))))
    skip = x if r.downsample is None else r.downsample(x)
    return [
        (F.relu(branch), "there is no residual addition: this is a plain block. Add the shortcut to the "
         "branch before the last ReLU, relu(F(x) + shortcut(x))."),
        (F.relu(branch + skip) + skip, "the skip is added twice, before and after the last ReLU. A block "
         "adds its shortcut exactly once: relu(F(x) + shortcut(x))."),
        (F.relu(branch + 2 * skip), "the shortcut is added twice (F(x) + 2 shortcut(x)); add it once."),
        (branch + skip, "the ReLU after the addition is missing: the original block applies one to the sum."),
        (F.relu(branch) + skip, "the ReLU comes before the addition; the original block applies it to the "
         "sum, relu(F(x) + shortcut(x))."),
    ]


def _compare_block(block: nn.Module, reference: nn.Module, case: tuple[int, int, int], mistakes: Mistakes,
                   forward_error: Callable[[Exception, tuple], Hint]) -> Hint:
    """Compare block with reference (same weights) in eval mode, then in train mode; a hint if they differ."""
    in_planes, planes, stride = case
    x = torch.randn(4, in_planes, 8, 8, generator=torch.Generator().manual_seed(10 + in_planes))
    where = f"in_planes={in_planes}, planes={planes}, stride={stride}"
    for mode in ("eval", "train"):
        block.train(mode == "train")
        reference.train(mode == "train")
        with torch.no_grad():
            try:
                out = block(x.clone())
            except (RuntimeError, TypeError) as exc:
                if hint := forward_error(exc, case):
                    return hint
                raise
            expected = reference(x.clone())
        if not isinstance(out, Tensor):
            return f"forward returned a {type(out).__name__}, not a tensor."
        if out.shape != expected.shape:
            return f"output shape {tuple(out.shape)} ({where}), expected {tuple(expected.shape)}."
        if _close(out, expected):
            continue
        if mode == "train":
            return ("right in eval mode but not in train mode: call the BN modules themselves, so that "
                    "they use batch statistics while training.")
        with torch.no_grad():
            for candidate, hint in mistakes(reference.eval(), x):
                if _close(out, candidate):
                    return f"{hint} (seen with {where})"
        return f"the output ({where}) differs from resnet_lab's BasicBlock: check the order of the layers."
    return None


def _check_blocks(name: str, build: Callable[[int, int, int], nn.Module], cases: list[tuple[int, int, int]],
                  names: str, mistakes: Mistakes, forward_error: Callable[[Exception, tuple], Hint]) -> Verdict:
    """For each (in_planes, planes, stride), load BasicBlock's weights into build(...) and compare outputs.

    `mistakes(reference, x)` lists the outputs of the known mistakes with their hints; `forward_error(exc,
    case)` may turn an exception raised by the reader's forward into a specific hint.
    """

    def test() -> Hint:
        for seed, case in enumerate(cases):
            torch.manual_seed(seed)
            reference = randomized(blocks.BasicBlock(*case, shortcut="B"), seed=seed + 1)
            block = build(*case)
            hint = _load(block, reference, "your block", names) or _compare_block(
                block, reference, case, mistakes, forward_error)
            if hint:
                return hint
        return None

    return _check(name, test)


def _downsample_error(exc: Exception, case: tuple[int, int, int]) -> Hint:
    """Hints for the exceptions of a DownsampleBlock whose shortcut is x itself, or a None called."""
    in_planes, planes, stride = case
    if isinstance(exc, RuntimeError) and "must match the size" in str(exc):
        return (f"adding x itself fails where the block changes the shape ({in_planes} -> {planes} channels, "
                f"stride {stride}): F(x) and x cannot be added. Use self.downsample(x) as the shortcut where "
                "it exists, and x where it is None.")
    if isinstance(exc, TypeError) and "'NoneType' object is not callable" in str(exc):
        return (f"self.downsample is None where the shape does not change ({in_planes} -> {planes}, "
                f"stride {stride}), and calling None fails. There the shortcut is x itself.")
    return None


def check_downsample_block(block_class: Callable[[int, int, int], nn.Module]) -> Verdict:
    """DownsampleBlock(in_planes, planes, stride) must equal blocks.BasicBlock(..., shortcut="B")."""
    cases = [(8, 16, 2), (16, 16, 1)]
    return _check_blocks("DownsampleBlock", lambda i, p, s: block_class(i, p, s), cases,
                         "conv1, bn1, conv2, bn2, downsample", _common_mistakes, _downsample_error)


def _skip_placement_mistakes(r: nn.Module, x: Tensor) -> list[tuple[Tensor, str]]:
    h = F.relu(r.bn1(r.conv1(x)))
    return [
        (F.relu(r.bn2(r.conv2(h)) + h), "the skip starts in the middle of the branch, after the first "
         "conv-BN-ReLU: it goes around the second convolution only, so the block is a plain layer followed "
         "by a one-layer residual unit. Keep the block's input x, before conv1, and add it to bn2's output."),
        *((F.relu(r.bn2(r.conv2(h_plus_x))), "the skip ends in the middle of the branch, after the first "
           "layer: it must go around both convolutions and join after bn2.")
          for h_plus_x in (F.relu(r.bn1(r.conv1(x)) + x), h + x)),
        *_common_mistakes(r, x),
    ]


def check_residual_block(block_class: Callable[[int], nn.Module]) -> Verdict:
    """ResidualBlock(channels) must compute relu(F(x) + x), like blocks.BasicBlock(channels, channels)."""
    return _check_blocks("ResidualBlock", lambda i, p, s: block_class(i), [(8, 8, 1), (16, 16, 1)],
                         "conv1, bn1, conv2, bn2", _skip_placement_mistakes, lambda exc, case: None)


# ------------------------------------------------------------------------------------------------------------
# Exercise A.3: a stage with pooling layers between its blocks
# ------------------------------------------------------------------------------------------------------------

_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)


def _stage_structure(stage: nn.Module) -> Hint:
    """A hint when the stage holds a None or a pooling layer, else None."""
    if not isinstance(stage, nn.Module):
        return f"make_stage returned a {type(stage).__name__}; return an nn.Sequential of blocks."
    for key, child in stage._modules.items():
        if child is None:
            return (f"entry {key} of your stage is None. nn.Sequential accepts a None without complaint and "
                    "fails only when it runs ('NoneType' object is not callable); leave it out.")
    for key, module in stage.named_modules():
        if isinstance(module, _POOLS):
            return (f"there is a {type(module).__name__} inside the stage (at {key!r}). In a ResNet only the "
                    "first block of a stage changes the resolution, with stride 2 in its first convolution "
                    "and in its shortcut; the blocks after it keep the shape. Remove the pooling.")
    return None


def check_make_stage(make_stage: Callable[[int, int, int, int], nn.Module]) -> Verdict:
    """make_stage(in_planes, planes, num_blocks, stride) must equal ResNet._make_layer with BasicBlock, "B"."""

    def test() -> Hint:
        for seed, (in_planes, planes, num_blocks, stride) in enumerate([(16, 32, 3, 2), (16, 16, 2, 1)]):
            where = f"make_stage({in_planes}, {planes}, {num_blocks}, {stride})"
            torch.manual_seed(seed)
            reference = models.ResNet._make_layer(blocks.BasicBlock, in_planes, planes, num_blocks, stride,
                                                  "B", True)
            reference = randomized(reference, seed=seed + 5)
            stage = make_stage(in_planes, planes, num_blocks, stride)
            if hint := _stage_structure(stage):
                return hint
            x = torch.randn(2, in_planes, 16, 16, generator=torch.Generator().manual_seed(seed))
            stage.eval()
            reference.eval()
            with torch.no_grad():
                out, expected = stage(x), reference(x)
            if not isinstance(out, Tensor):
                return f"{where} returned a {type(out).__name__} from forward, not a tensor."
            if out.shape != expected.shape:
                return (f"{where} maps a {tuple(x.shape)} input to {tuple(out.shape)}, expected "
                        f"{tuple(expected.shape)}: only the first block takes the stride, the others use "
                        "stride 1 and in_planes = planes.")
            if hint := _load(stage, reference, "your stage", "0, 1, 2, ... for the blocks"):
                return hint
            for mode in ("eval", "train"):
                stage.train(mode == "train")
                reference.train(mode == "train")
                with torch.no_grad():
                    if not _close(stage(x), reference(x)):
                        return (f"{where} computes something other than resnet_lab's stage ({mode} mode): "
                                "build it from blocks.BasicBlock(..., shortcut='B') only.")
        return None

    return _check("make_stage", test)


# ------------------------------------------------------------------------------------------------------------
# Exercise A.4: a classifier head with a hard-coded pooling size (and a missing import)
# ------------------------------------------------------------------------------------------------------------

# (height, width of the last feature map, the input size it comes from in a CIFAR-stem or ImageNet ResNet)
_HEAD_CASES = [(4, "a 32x32 CIFAR image"), (7, "a 224x224 ImageNet image"), (8, "a 64x64 image"),
               (2, "a 16x16 image")]


def _head_error(exc: Exception, size: int, source: str) -> Hint:
    if isinstance(exc, NameError) and "'F'" in str(exc):
        return ("F is not defined: the code uses torch.nn.functional under the name F but never imports "
                "it. It works only in a session where an earlier cell imported F. Add "
                "`import torch.nn.functional as F` to the cell, then check again: there is a second bug.")
    if isinstance(exc, RuntimeError):
        first = str(exc).splitlines()[0][:120]
        return (f"on a {size}x{size} feature map (from {source}) your head raised RuntimeError: {first}. "
                "The pooling size was written for one input size: pool over the whole map, whatever its "
                "size (nn.AdaptiveAvgPool2d(1), or features.mean(dim=(2, 3))).")
    return None


def check_classifier_head(head_class: Callable[[int, int], nn.Module]) -> Verdict:
    """ClassifierHead(in_channels, num_classes) must average the whole map, then apply its Linear `fc`."""

    def test() -> Hint:
        torch.manual_seed(0)
        holder = nn.Module()  # the reference's weights under the name the reader's head uses, fc
        holder.fc = reference = nn.Linear(16, 5)
        head = head_class(16, 5)
        if hint := _load(head, holder, "your head", "fc (an nn.Linear) and no other weights"):
            return hint
        head.eval()
        for size, source in _HEAD_CASES:
            features = torch.randn(3, 16, size, size, generator=torch.Generator().manual_seed(size))
            try:
                with torch.no_grad():
                    out = head(features)
            except (NameError, RuntimeError) as exc:
                if hint := _head_error(exc, size, source):
                    return hint
                raise
            expected = reference(features.mean(dim=(2, 3)))
            if _close(out, expected):
                continue
            if not isinstance(out, Tensor) or out.shape != expected.shape:
                shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                return f"on a {size}x{size} map your head returned {shape}, expected {tuple(expected.shape)}."
            corner = reference(features[:, :, :4, :4].mean(dim=(2, 3)))
            if size > 4 and _close(out, corner):
                return (f"on a {size}x{size} feature map (from {source}) your head averages only the top-left "
                        f"4x4 window and silently drops {size * size - 16} of the {size * size} positions: "
                        "avg_pool2d(x, 4) was written for a 4x4 map. Average over the whole map "
                        "(nn.AdaptiveAvgPool2d(1) or features.mean(dim=(2, 3))).")
            if _close(out, reference(features.amax(dim=(2, 3)))):
                return "your head takes the maximum over the map; a ResNet averages it (global average pooling)."
            return f"on a {size}x{size} map the output differs from fc(global average of the map)."
        return None

    return _check("ClassifierHead", test)


# ------------------------------------------------------------------------------------------------------------
# Exercise A.5: fine-tuning code that keeps the 1000-class ImageNet head
# ------------------------------------------------------------------------------------------------------------


def _finetune_case(depth: int, num_classes: int, prepare: Callable[[nn.Module, int], nn.Module]) -> Hint:
    """Run prepare(...) on a 1000-class ResNet of this depth; a hint if the result is not ready to train."""
    torch.manual_seed(depth)
    model = models.get_model(f"resnet{depth}", num_classes=1000).eval()
    pretrained = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
    features = model.fc.in_features
    name = f"ResNet-{depth}"
    result = prepare(model, num_classes)
    if not isinstance(result, nn.Module):
        return f"prepare_finetuning returned a {type(result).__name__}; return the model."
    head = getattr(result, "fc", None)
    if isinstance(head, nn.Linear) and head.out_features == 1000:
        return (f"the {name} still ends with the 1000-class ImageNet head. Training it with labels 0 to "
                f"{num_classes - 1} runs without any error (the loss accepts any label below 1000), but the "
                "model keeps scoring 1000 ImageNet classes. Replace model.fc with a new "
                f"nn.Linear(model.fc.in_features, num_classes).")
    if not isinstance(head, nn.Linear):
        return f"the new model.fc is a {type(head).__name__}; make it an nn.Linear."
    if head.in_features != features:
        return (f"the new head of the {name} takes {head.in_features} features, but its last feature map "
                f"has {features} channels (a bottleneck stage ends at 4 x 512 = 2048). Do not hard-code "
                "the size: read it from model.fc.in_features before replacing the head.")
    if head.out_features != num_classes:
        return f"the new head has {head.out_features} outputs; the task has num_classes = {num_classes}."
    result.eval()
    with torch.no_grad():
        out = result(torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    if not isinstance(out, Tensor) or tuple(out.shape) != (2, num_classes):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        return f"the prepared {name} returns {shape} for 2 images, expected (2, {num_classes})."
    state = result.state_dict()
    if any(k not in state or not torch.equal(state[k], v) for k, v in pretrained.items()):
        return ("the pretrained weights of the backbone changed: keep the model you are given and replace "
                "only its head (building a new network would throw the pretrained features away).")
    trainable = {n for n, p in result.named_parameters() if p.requires_grad}
    if not {"fc.weight", "fc.bias"} <= trainable:
        return ("the new head is frozen (requires_grad=False): create it after freezing the backbone, or "
                "switch its parameters back on.")
    if trainable != {"fc.weight", "fc.bias"}:
        return (f"{len(trainable) - 2} parameter tensors of the backbone are still trainable; this first "
                "stage of fine-tuning trains the new head only: set requires_grad = False on the others.")
    return None


def check_prepare_finetuning(prepare: Callable[[nn.Module, int], nn.Module]) -> Verdict:
    """prepare_finetuning(model, num_classes): new trainable head, frozen and unchanged backbone."""

    def test() -> Hint:
        for depth, num_classes in ((18, 5), (50, 37)):
            if hint := _finetune_case(depth, num_classes, prepare):
                return hint
        return None

    return _check("prepare_finetuning", test)


# ------------------------------------------------------------------------------------------------------------
# Exercise A.6: a parameter count that counts the wrong things
# ------------------------------------------------------------------------------------------------------------


class _Tied(nn.Module):
    """A small network that applies one convolution twice: its weights are shared, and count once."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.again = self.conv  # the same module under a second name
        self.fc = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.again(torch.relu(self.bn(self.conv(x)))).mean(dim=(2, 3)))


def _count_cases() -> list[tuple[str, nn.Module]]:
    cifar18 = models.get_model("resnet18_cifar")
    frozen = models.get_model("resnet20")
    for name, parameter in frozen.named_parameters():
        parameter.requires_grad = name.startswith("fc.")
    return [("the CIFAR ResNet-18", cifar18), ("a ResNet-20 with a frozen backbone", frozen),
            ("a network that uses one convolution twice", _Tied())]


def _count_mistakes(model: nn.Module) -> list[tuple[int, str]]:
    return [
        (sum(t.numel() for t in model.state_dict().values()), "your count includes the buffers of the "
         "state_dict: BN's running means and variances and its num_batches_tracked counters are statistics, "
         "not learned parameters. Count model.parameters() only."),
        (len(list(model.parameters())), "you counted parameter tensors, not numbers: add up p.numel()."),
        (sum(p.numel() for p in model.parameters() if p.requires_grad), "you counted only the trainable "
         "parameters; frozen weights are parameters of the model too, and papers count them."),
        (sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False)), "a weight shared by two "
         "layers is counted twice; model.parameters() lists each tensor once."),
    ]


def check_count_parameters(count_parameters: Callable[[nn.Module], int]) -> Verdict:
    """count_parameters(model) must return sum(p.numel() for p in model.parameters()), as an int."""

    def test() -> Hint:
        for description, model in _count_cases():
            expected = sum(p.numel() for p in model.parameters())
            result = count_parameters(model)
            if result == expected and isinstance(result, int) and not isinstance(result, bool):
                continue
            if isinstance(result, float) and abs(result * 1e6 - expected) < 0.01 * expected:
                return "return the exact count as an int, not millions: format it only when printing."
            if not isinstance(result, int) or isinstance(result, bool):
                return f"count_parameters returned a {type(result).__name__}; return an int."
            for wrong, hint in _count_mistakes(model):
                if result == wrong:
                    return f"for {description}: {result:,} instead of {expected:,}: {hint}"
            return f"for {description} you counted {result:,}; the model has {expected:,} parameters."
        return None

    return _check("count_parameters", test)
