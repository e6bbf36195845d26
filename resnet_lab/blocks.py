"""Residual blocks and their plain twins, as in He et al. 2016 (both papers).

Every block has the signature `Block(in_planes, planes, stride=1, shortcut="B", residual=True)` and a class
attribute `expansion`: it maps `in_planes` channels to `planes * expansion` channels. The bottleneck blocks
take one more keyword, `stride_in_1x1` (see below).

Shortcut options (He et al. 2016, "Deep residual learning", section 4.1 and Table 3):

- "A": parameter-free. Identity where the shape is unchanged; where it changes, subsample with stride 2 and
  append zero channels (`PadShortcut`).
- "B": identity where the shape is unchanged, a projection where it changes.
- "C": a projection in every block.

A projection is a strided 1x1 convolution. In the original (post-activation) blocks a BN follows it, as in
torchvision and fb.resnet.torch's resnet.lua. In the pre-activation blocks it is the bare convolution and reads
the output of the block's first BN-ReLU, which the branch shares: as in the authors' code, Kaiming He's
resnet-pre-act.lua (github.com/KaimingHe/resnet-1k-layers), and in fb.resnet.torch's preresnet.lua, the
re-implementation by Facebook AI Research on which resnet-pre-act.lua is based. (For option C, preresnet.lua
feeds the projection of a block that keeps its shape with x itself; resnet-pre-act.lua has no option C, and
here every pre-activation projection reads the BN-ReLU output.)

Where a bottleneck block downsamples, its stride sits on one of two convolutions:

- `stride_in_1x1=False` (default): on the 3x3 conv, as in torchvision and fb.resnet.torch ("ResNet v1.5");
  torchvision's weights need it.
- `stride_in_1x1=True`: on the first 1x1 conv, as in the paper's Caffe models (ResNet v1,
  github.com/KaimingHe/deep-residual-networks: stride 2 on `res3a_branch2a`) and resnet-pre-act.lua.

The parameters are the same either way; the multiply-accumulates are not. The 3x3 conv costs the same in both
(its output is at the lower resolution either way), but an unstrided first 1x1 (v1.5) computes its output at the
higher resolution, four times as many positions; v1 skips three of every four input pixels, v1.5 sees them all.

`residual=False` gives the plain twin: the same layers, built in the same order (so the same seed gives the
same weights), without the addition. The plain network of the paper has no shortcut layers at all, so a plain
block builds no shortcut module whatever `shortcut` says; its parameter count equals that of the option-A
residual block.

Module names follow torchvision (`conv1`, `bn1`, ..., `downsample`) so that its ImageNet weights load directly.
Blocks keep PyTorch's default initialization; the networks call `init_weights` once everything is built.
"""

import torch.nn.functional as F
from torch import Tensor, nn

SHORTCUTS = ("A", "B", "C")


def _check_bool(option: str, value: object) -> None:
    """Raise TypeError unless `value` is True or False (1 or "yes" would silently pick a layout)."""
    if not isinstance(value, bool):
        raise TypeError(f"{option} must be True or False, got {type(value).__name__} {value!r}.")


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (the BN that follows has its own shift)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution with no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class PadShortcut(nn.Module):
    """Option-A shortcut: subsample by `stride`, then append zero channels up to `out_planes`. No parameters."""

    def __init__(self, in_planes: int, out_planes: int, stride: int = 1) -> None:
        super().__init__()
        if out_planes < in_planes:
            raise ValueError(
                f"PadShortcut can only add channels, got in_planes={in_planes} > out_planes={out_planes}. "
                "Use a projection shortcut (option 'B' or 'C') to reduce channels."
            )
        self.in_planes = in_planes
        self.out_planes = out_planes
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        """Subsample spatially, zero-pad the channel dimension."""
        if self.stride > 1:
            # Taking every stride-th pixel matches the output size of a 3x3 conv with padding 1 and this stride.
            x = x[:, :, :: self.stride, :: self.stride]
        # F.pad lists (left, right) pairs from the last dimension backwards: W, H, then C.
        return F.pad(x, (0, 0, 0, 0, 0, self.out_planes - self.in_planes))

    def extra_repr(self) -> str:
        return f"{self.in_planes}, {self.out_planes}, stride={self.stride}"


def make_shortcut(
    shortcut: str, in_planes: int, out_planes: int, stride: int, residual: bool = True, preact: bool = False
) -> nn.Module | None:
    """The shortcut module of a block, or None for the identity (and for plain blocks, which have no shortcut).

    A projection is a 1x1 conv followed by BN for the original blocks, the bare 1x1 conv for pre-activation
    blocks (`preact=True`), whose projection reads an input that the block's first BN has just normalized.
    """
    if shortcut not in SHORTCUTS:
        raise ValueError(
            f"shortcut must be 'A', 'B' or 'C' (He et al. 2016, section 4.1), got {shortcut!r}. "
            "A: zero-padding, no parameters; B: projection only where the shape changes; C: projection always."
        )
    if not residual:
        return None
    shape_changes = stride != 1 or in_planes != out_planes
    if shortcut == "A":
        return PadShortcut(in_planes, out_planes, stride) if shape_changes else None
    if shortcut == "B" and not shape_changes:
        return None
    if preact:
        # resnet-pre-act.lua (the authors' code) and preresnet.lua have no BN here: the conv's input is BN-ReLU(x).
        return conv1x1(in_planes, out_planes, stride)
    return nn.Sequential(conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes))


class _PostActivation(nn.Module):
    """Forward pass of the original blocks (He et al. 2016): relu(F(x) + shortcut(x))."""

    def forward(self, x: Tensor) -> Tensor:
        """relu(F(x) + shortcut(x)), or relu(F(x)) for the plain twin."""
        out = self.branch(x)
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class BasicBlock(_PostActivation):
    """Two 3x3 convolutions, each followed by BN; ReLU after the first and after the addition."""

    expansion = 1
    preact = False

    def __init__(
        self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "B", residual: bool = True
    ) -> None:
        super().__init__()
        # Built before the convolutions, as torchvision's _make_layer does, so the same seed gives the same weights.
        downsample = make_shortcut(shortcut, in_planes, planes * self.expansion, stride, residual)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.residual = residual

    def branch(self, x: Tensor) -> Tensor:
        """The residual function F(x): conv-BN-ReLU-conv-BN."""
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))

    def zero_init_last(self) -> None:
        """Zero the last BN scale so the residual branch starts at 0 and the block at the identity."""
        nn.init.zeros_(self.bn2.weight)


class Bottleneck(_PostActivation):
    """1x1 (reduce), 3x3, 1x1 (expand by 4), each followed by BN; ReLU after each but the last, and after the sum.

    `stride_in_1x1=False` (default) puts the stride on the 3x3 conv, as torchvision does ("ResNet v1.5"), whose
    weights need this placement; `True` puts it on the first 1x1, as the paper's Caffe models do (ResNet v1).
    Parameter counts are the same either way.
    """

    expansion = 4
    preact = False

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        shortcut: str = "B",
        residual: bool = True,
        *,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        _check_bool("stride_in_1x1", stride_in_1x1)
        downsample = make_shortcut(shortcut, in_planes, planes * self.expansion, stride, residual)
        self.conv1 = conv1x1(in_planes, planes, stride if stride_in_1x1 else 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, 1 if stride_in_1x1 else stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.residual = residual
        self.stride_in_1x1 = stride_in_1x1

    def branch(self, x: Tensor) -> Tensor:
        """The residual function F(x): three convolutions with BN, ReLU between them."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def zero_init_last(self) -> None:
        """Zero the last BN scale so the residual branch starts at 0 and the block at the identity."""
        nn.init.zeros_(self.bn3.weight)


class _PreActivation(nn.Module):
    """Forward pass of the pre-activation blocks (He et al. 2016, "Identity mappings"): F(x) + shortcut(x)."""

    def forward(self, x: Tensor) -> Tensor:
        """F(x) + shortcut(x), or F(x) for the plain twin; no ReLU after the addition."""
        # Computed once: the branch and a projection shortcut share it (and BN updates its statistics once).
        activated = self.relu(self.bn1(x))
        out = self.convs(activated)
        if not self.residual:
            return out
        if self.downsample is None:
            return out + x
        # A projection reads the BN-ReLU output, as in resnet-pre-act.lua (the authors') and preresnet.lua.
        # The parameter-free option A reads x, keeping the signal path as clean as the identity does.
        return out + self.downsample(activated if self.projection else x)

    def branch(self, x: Tensor) -> Tensor:
        """The residual function F(x): BN-ReLU, then the convolutions."""
        return self.convs(self.relu(self.bn1(x)))


class PreActBlock(_PreActivation):
    """BN-ReLU-conv3x3, BN-ReLU-conv3x3, then the addition with no activation after it."""

    expansion = 1
    preact = True

    def __init__(
        self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "B", residual: bool = True
    ) -> None:
        super().__init__()
        downsample = make_shortcut(shortcut, in_planes, planes * self.expansion, stride, residual, preact=True)
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.projection = isinstance(downsample, nn.Conv2d)
        self.residual = residual

    def convs(self, activated: Tensor) -> Tensor:
        """The branch after its first BN-ReLU."""
        return self.conv2(self.relu(self.bn2(self.conv1(activated))))

    def zero_init_last(self) -> None:
        """Zero the last conv: in a pre-activation block the branch ends with a conv, not a BN."""
        nn.init.zeros_(self.conv2.weight)


class PreActBottleneck(_PreActivation):
    """BN-ReLU-conv1x1, BN-ReLU-conv3x3, BN-ReLU-conv1x1 (expand by 4), then the addition.

    `stride_in_1x1=True` puts the stride on the first 1x1 conv, as Kaiming He's resnet-pre-act.lua does (the
    networks get_model builds for CIFAR default to it); `False` (the block's default) on the 3x3, as
    fb.resnet.torch's preresnet.lua does. A projection shortcut is a bare strided 1x1 conv on BN-ReLU(x).
    """

    expansion = 4
    preact = True

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        shortcut: str = "B",
        residual: bool = True,
        *,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        _check_bool("stride_in_1x1", stride_in_1x1)
        downsample = make_shortcut(shortcut, in_planes, planes * self.expansion, stride, residual, preact=True)
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = conv1x1(in_planes, planes, stride if stride_in_1x1 else 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, 1 if stride_in_1x1 else stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.projection = isinstance(downsample, nn.Conv2d)
        self.residual = residual
        self.stride_in_1x1 = stride_in_1x1

    def convs(self, activated: Tensor) -> Tensor:
        """The branch after its first BN-ReLU."""
        out = self.conv2(self.relu(self.bn2(self.conv1(activated))))
        return self.conv3(self.relu(self.bn3(out)))

    def zero_init_last(self) -> None:
        """Zero the last conv: in a pre-activation block the branch ends with a conv, not a BN."""
        nn.init.zeros_(self.conv3.weight)


BLOCKS = (BasicBlock, Bottleneck, PreActBlock, PreActBottleneck)


def init_weights(model: nn.Module, zero_init_residual: bool = False) -> None:
    """Kaiming-normal (fan_out) convolutions, BN at scale 1 and shift 0; optionally zero each block's last layer.

    The same loop as torchvision, in the same module order, so a seeded model matches torchvision's weights.
    Linear layers keep PyTorch's default initialization, as in torchvision.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            # fan_out keeps the backward signal's variance constant through ReLU layers (He et al. 2015).
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    if zero_init_residual:
        # Goyal et al. 2017: every residual block starts as the identity, which eases early training.
        for module in model.modules():
            if isinstance(module, BLOCKS):
                module.zero_init_last()


__all__ = [
    "BLOCKS",
    "SHORTCUTS",
    "BasicBlock",
    "Bottleneck",
    "PadShortcut",
    "PreActBlock",
    "PreActBottleneck",
    "conv1x1",
    "conv3x3",
    "init_weights",
    "make_shortcut",
]
