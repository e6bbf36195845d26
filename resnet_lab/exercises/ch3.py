"""Checkers for the exercises of chapter 3 (building blocks from scratch).

Each checker compares the reader's code with a reference on random inputs (PyTorch's own `F.conv2d` for the
convolution, the library's blocks, `resnet_lab.blocks`, for the rest), and when the two disagree it tries the
classic mistakes one by one to name the one that was made.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from resnet_lab import blocks
from resnet_lab.exercises import Verdict, run_check

_ATOL = 1e-5


def _close(a: object, b: Tensor) -> bool:
    return isinstance(a, Tensor) and a.shape == b.shape and torch.allclose(a, b, atol=_ATOL)


# ------------------------------------------------------------------------------------------------------------
# Exercise: a convolution as one matrix product (F.unfold)
# ------------------------------------------------------------------------------------------------------------

# (input shape, C_out, kernel, stride, padding, with bias): odd and non-square sizes, strides 1 and 2, 1x1 and 3x3.
_CONV_CASES = [
    ((2, 3, 7, 5), 4, 3, 1, 1, True),
    ((1, 2, 7, 9), 3, 3, 2, 1, False),
    ((2, 4, 6, 6), 5, 1, 2, 0, True),
    ((1, 3, 8, 7), 2, 3, 2, 0, True),
]


def _forbid_conv2d():
    """Make every PyTorch 2-D convolution raise while the reader's function runs (the exercise is to avoid it)."""

    def refuse(*args: object, **kwargs: object) -> Tensor:
        raise _UsedConv2d

    saved = (F.conv2d, torch.conv2d)
    F.conv2d = torch.conv2d = refuse
    return saved


class _UsedConv2d(Exception):
    pass


def check_conv2d_unfold(conv2d_unfold: Callable[..., Tensor]) -> Verdict:
    """conv2d_unfold(x, weight, bias, stride, padding) must equal F.conv2d, computed from F.unfold's columns."""

    def test() -> str | None:
        generator = torch.Generator().manual_seed(5)
        for shape, c_out, k, stride, padding, with_bias in _CONV_CASES:
            x = torch.randn(shape, generator=generator, dtype=torch.float64)
            weight = torch.randn(c_out, shape[1], k, k, generator=generator, dtype=torch.float64)
            bias = torch.randn(c_out, generator=generator, dtype=torch.float64) if with_bias else None
            expected = F.conv2d(x, weight, bias, stride, padding)
            where = (f"for x of shape {tuple(shape)}, a {k}x{k} kernel, stride={stride}, padding={padding}"
                     f"{', with a bias' if with_bias else ''}")
            saved = _forbid_conv2d()
            try:
                result = conv2d_unfold(x.clone(), weight.clone(), None if bias is None else bias.clone(),
                                       stride, padding)
            except _UsedConv2d:
                return ("your function calls F.conv2d (or nn.Conv2d); compute the convolution yourself, as one "
                        "matrix product of the reshaped weight with F.unfold's columns.")
            except RuntimeError as error:
                if "shape" in str(error) or "size" in str(error):
                    return (f"reshaping failed {where} ({str(error).splitlines()[0]}): the columns number "
                            "H_out * W_out, with H_out and W_out from the output-size rule (3.2), "
                            "floor((H + 2p - k) / s) + 1, each from its own input size.")
                raise
            finally:
                F.conv2d, torch.conv2d = saved
            if not isinstance(result, Tensor):
                return f"return a tensor (got {type(result).__name__}) {where}."
            if result.shape != expected.shape:
                hint = f"output shape {tuple(result.shape)} {where}, expected {tuple(expected.shape)}"
                if result.shape[2:] == expected.shape[2:][::-1]:
                    return hint + ": height and width are swapped; reshape to (N, C_out, H_out, W_out)."
                return hint + ": use the output-size rule (3.2), floor((H + 2p - k) / s) + 1."
            if torch.allclose(result, expected, atol=1e-8):
                continue
            return _diagnose_conv(result, x, weight, bias, stride, padding, where)
        return None

    return run_check("conv2d_unfold", test)


def _diagnose_conv(result: Tensor, x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, padding: int,
                   where: str) -> str:
    """Name the mistake in a convolution of the right shape but with the wrong values."""
    c_out = weight.shape[0]
    candidates = [
        (F.conv2d(x, weight, None, stride, padding),
         "the bias is missing: add one value per output channel, bias.view(1, -1, 1, 1)."),
        (F.conv2d(x, weight.flip(-2, -1), bias, stride, padding),
         "you flipped the kernel. PyTorch's conv2d is a cross-correlation, (3.1): window pixel (u, v) is "
         "multiplied by W[o, c, u, v], not by the mirrored entry."),
    ]
    # The weight's rows must follow unfold's column order (channel, then kernel row, then kernel column).
    cols = F.unfold(x, weight.shape[-1], padding=padding, stride=stride)
    scrambled = weight.reshape(-1, c_out).t() @ cols
    if bias is not None:
        scrambled = scrambled + bias.view(1, -1, 1)
    candidates.append((scrambled.reshape(result.shape),
                       "the weight is reshaped in the wrong order: weight.reshape(C_out, -1) keeps, in each row, "
                       "the (channel, kernel row, kernel column) order of F.unfold's columns."))
    for candidate, hint in candidates:
        if torch.allclose(result, candidate, atol=1e-8):
            return hint
    return (f"the values differ from F.conv2d {where}: each output pixel is the sum over (3.1) of one window, "
            "F.unfold's column, times the weights of one output channel.")


# ------------------------------------------------------------------------------------------------------------
# Exercise: the option-A shortcut
# ------------------------------------------------------------------------------------------------------------


def check_zero_pad_shortcut(zero_pad_shortcut: Callable[[Tensor, int, int], Tensor]) -> Verdict:
    """zero_pad_shortcut(x, out_channels, stride) must equal resnet_lab.blocks.PadShortcut."""

    def test() -> str | None:
        generator = torch.Generator().manual_seed(3)
        cases = [((2, 4, 6, 6), 8, 2), ((2, 4, 5, 5), 8, 2), ((1, 16, 8, 8), 32, 2), ((1, 3, 4, 4), 3, 1)]
        for shape, out_channels, stride in cases:
            x = torch.randn(shape, generator=generator)
            original = x.clone()
            result = zero_pad_shortcut(x, out_channels, stride)
            expected = blocks.PadShortcut(shape[1], out_channels, stride)(original)
            where = f"for x of shape {tuple(shape)}, out_channels={out_channels}, stride={stride}"
            if not torch.equal(x, original):
                return f"your function changed x in place {where}; build a new tensor instead."
            if not isinstance(result, Tensor):
                return f"return a tensor (got {type(result).__name__}) {where}."
            if result.shape[2:] != expected.shape[2:]:
                return (f"spatial size {tuple(result.shape[2:])} {where}, expected {tuple(expected.shape[2:])}: "
                        "keep every stride-th pixel, x[:, :, ::stride, ::stride] (a 5x5 map gives 3x3, the size "
                        "a 3x3 convolution with padding 1 and stride 2 produces).")
            if result.shape[:2] != expected.shape[:2]:
                return (f"shape {tuple(result.shape)} {where}, expected {tuple(expected.shape)}: the output "
                        "needs out_channels channels, the input's own plus zero channels.")
            if not _close(result, expected):
                return _diagnose_zero_pad(result, original, out_channels, stride, where)
        return None

    return run_check("zero_pad_shortcut", test)


def _diagnose_zero_pad(result: Tensor, x: Tensor, out_channels: int, stride: int, where: str) -> str:
    """Name the mistake in an option-A output that has the right shape but the wrong values."""
    in_channels = x.shape[1]
    sub = x[:, :, ::stride, ::stride]
    extra = out_channels - in_channels
    # Misplaced zeros would also fail the value checks further down: test for them first, so the hint names them.
    if extra and torch.equal(result[:, extra:], sub) and not result[:, :extra].any():
        return ("the zero channels come first: append them after x's channels, as "
                "resnet_lab.blocks.PadShortcut does, so channel i of the output is channel i of x.")
    half = extra // 2
    if extra and not result[:, :half].any() and torch.equal(result[:, half:half + in_channels], sub):
        return ("you split the zeros between both sides. Some implementations do that and it trains just "
                "as well, but here put them all after x's channels, as resnet_lab.blocks.PadShortcut does.")
    if stride > 1:
        for name, pooled in (("average", F.avg_pool2d(x, stride, ceil_mode=True)),
                             ("max", F.max_pool2d(x, stride, ceil_mode=True))):
            if torch.allclose(result[:, :in_channels], pooled, atol=_ATOL):
                return (f"you used {name} pooling; option A keeps every stride-th pixel as it is "
                        "(x[:, :, ::stride, ::stride]) so that it stays a pure identity on those pixels.")
    if extra and result[:, in_channels:].abs().sum() > 0:
        return f"the added channels are not zero {where}; option A pads with zeros (no parameters)."
    return (f"the first {in_channels} channels {where} are not x[:, :, ::{stride}, ::{stride}]: "
            "option A leaves the kept pixels unchanged.")


# ------------------------------------------------------------------------------------------------------------
# Shared by the two block exercises: copy the library's weights into the reader's block and compare outputs
# ------------------------------------------------------------------------------------------------------------


def randomized(block: nn.Module, seed: int) -> nn.Module:
    """The block with random BN scales, shifts and running statistics, so that every mistake changes the output.

    Also used by the appendix's checkers.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in block.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(0.3 * torch.randn(n, generator=generator))
                module.running_mean.copy_(0.2 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
    return block


Mistakes = Callable[[nn.Module, Tensor], list[tuple[Tensor, str]]]


def _check_block(
    name: str, block_class: Callable[[int], nn.Module], reference: nn.Module, layer_names: str, mistakes: Mistakes
) -> Verdict:
    """Load `reference`'s weights into block_class(channels), compare outputs in eval and train mode.

    `mistakes(reference, x)` lists (output of a classic mistake, hint); the hint of the one the reader's output
    matches is shown.
    """

    def test() -> str | None:
        channels = reference.conv1.in_channels
        block = block_class(channels)
        if not isinstance(block, nn.Module):
            return f"calling your class with {channels} channels gave a {type(block).__name__}, not an nn.Module."
        try:
            block.load_state_dict(reference.state_dict(), strict=True)
        except RuntimeError as exc:
            # the first line only says "Error(s) in loading state_dict"; the next ones name the keys
            details = " ".join(line.strip() for line in str(exc).splitlines()[1:])[:160] or "the keys differ"
            return (f"the checker copies resnet_lab's weights into your block, and that failed ({details}). Name "
                    f"the layers {layer_names}, with the same shapes, and give the convolutions bias=False.")
        x = torch.randn(4, channels, 6, 6, generator=torch.Generator().manual_seed(11))
        for mode in ("eval", "train"):
            block.train(mode == "train")
            reference.train(mode == "train")
            with torch.no_grad():
                out = block(x.clone())
                expected = reference(x.clone())
            if not isinstance(out, Tensor):
                return f"forward returned a {type(out).__name__}, not a tensor."
            if out.shape != expected.shape:
                return f"output shape {tuple(out.shape)}, expected {tuple(expected.shape)} (the input's shape)."
            if torch.allclose(out, expected, atol=_ATOL):
                continue
            if mode == "train":
                return ("right in eval mode but not in train mode: use the BN modules themselves (self.bn1(...)), "
                        "not a fixed formula, so that they normalize with batch statistics while training.")
            reference.eval()
            with torch.no_grad():
                for candidate, hint in mistakes(reference, x):
                    if torch.allclose(out, candidate, atol=_ATOL):
                        return hint
            return "the output differs from resnet_lab's block: check the order of the layers."
        return None

    return run_check(name, test)


# ------------------------------------------------------------------------------------------------------------
# Exercise (find the bug): a basic block that adds its skip twice
# ------------------------------------------------------------------------------------------------------------


def _basic_mistakes(r: nn.Module, x: Tensor) -> list[tuple[Tensor, str]]:
    branch = r.bn2(r.conv2(F.relu(r.bn1(r.conv1(x)))))
    return [
        (F.relu(branch + x) + x, "the skip is added twice: once before the final ReLU and once after it. "
         "A block adds x exactly once, y = relu(F(x) + x)."),
        (F.relu(branch + 2 * x), "x is added twice (F(x) + 2x). The shortcut carries x once."),
        (F.relu(branch), "there is no residual addition: this is a plain block. Add x before the final ReLU."),
        (branch + x, "the ReLU after the addition is missing (the original block has one; only the "
         "pre-activation block of He et al. 2016b drops it)."),
        (F.relu(branch) + x, "the ReLU comes before the addition; the original block applies it to the sum."),
    ]


def check_residual_block(block_class: Callable[[int], nn.Module]) -> Verdict:
    """ResidualBlock(channels) must compute relu(F(x) + x), exactly like blocks.BasicBlock(channels, channels)."""
    torch.manual_seed(0)
    reference = randomized(blocks.BasicBlock(8, 8), seed=1)
    return _check_block("ResidualBlock", block_class, reference, "conv1, bn1, conv2, bn2", _basic_mistakes)


# ------------------------------------------------------------------------------------------------------------
# Exercise: a pre-activation block from scratch
# ------------------------------------------------------------------------------------------------------------


def _preact_mistakes(r: nn.Module, x: Tensor) -> list[tuple[Tensor, str]]:
    branch = r.conv2(F.relu(r.bn2(r.conv1(F.relu(r.bn1(x))))))
    # the original (post-activation) order with the same modules; possible since all have 8 channels
    post_order = F.relu(r.bn2(r.conv2(F.relu(r.bn1(r.conv1(x))))))
    return [
        (F.relu(branch + x), "there is a ReLU after the addition. The pre-activation block leaves the sum "
         "alone, so that the identity path from block to block stays clean (He et al. 2016b)."),
        (branch, "there is no residual addition: return x + F(x)."),
        (branch + 2 * x, "x is added twice; add it once."),
        (post_order + x, "the layers are in the original order (conv, BN, ReLU); a pre-activation "
         "block runs BN and ReLU *before* each convolution."),
    ]


def check_preact_block(block_class: Callable[[int], nn.Module]) -> Verdict:
    """PreActBasicBlock(channels) must equal blocks.PreActBlock(channels, channels): x + (BN-ReLU-conv)x2."""
    torch.manual_seed(0)
    reference = randomized(blocks.PreActBlock(8, 8), seed=2)
    return _check_block("PreActBasicBlock", block_class, reference, "bn1, conv1, bn2, conv2", _preact_mistakes)
