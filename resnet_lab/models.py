"""Residual networks and their plain twins: the CIFAR networks of He et al. 2016 and torchvision's ImageNet ResNets.

Names understood by `get_model` (see `list_models()` for the paper's entries):

- `resnet<depth>` / `plain<depth>`: CIFAR networks of He et al. 2016 (section 4.2), any depth 6n+2
  (resnet20, 32, 44, 56, 110, 1202 in the paper; resnet8 or plain8 make quick exercises).
  Option-A shortcuts by default, so a plain twin has exactly the parameters of its residual network.
- `preact_resnet<depth>`: pre-activation CIFAR networks of He et al. 2016 ("Identity mappings"). As in that
  paper, basic blocks up to depth 110 (6n+2) and bottleneck blocks above (9n+2: preact_resnet164, 1001).
  As in the authors' code, Kaiming He's resnet-pre-act.lua (and fb.resnet.torch's preresnet.lua): projection
  shortcuts where the shape changes (option B), each a bare 1x1 conv on the block's BN-ReLU output, no BN;
  and, in the bottleneck networks, the stride on the first 1x1 conv (`stride_in_1x1=True`, resnet-pre-act.lua).
- `resnet18`, `resnet34`, `resnet50`, `resnet101`, `resnet152`: ImageNet networks whose `state_dict` matches
  torchvision's key for key, so torchvision weights load with `strict=True`. The bottleneck networks put the
  stride on the 3x3 conv as torchvision does ("v1.5"); `stride_in_1x1=True` gives the paper's v1 placement.
  These names win over the CIFAR pattern: for a CIFAR ResNet of depth 50 or 152, call `resnet_cifar(50)`.
- `resnet18_cifar`, `resnet34_cifar`, `resnet50_cifar`: the ImageNet stage layout with a 3x3 stride-1 stem and
  no max-pool, the "ResNet-18 for CIFAR" most tutorials train.

`stride_in_1x1` is an option of bottleneck networks only (see `resnet_lab.blocks`); a basic-block network
refuses it. A pre-activation bottleneck network always records it in its `spec`, because its default changed
(to the authors' placement) when its projection shortcuts lost their BN: a checkpoint of such a network whose
spec lacks it comes from that older version, and `legacy_checkpoint_problem` says so.

`parse_model_name` says what a name stands for (family and depth) and `model_label` how tables and figures write
it ("ResNet-56", "plain-56"): the one place where names are taken apart.

Models take normalized float tensors shaped (N, C, H, W); normalization belongs to the data pipeline.
"""

import difflib
import re
from collections.abc import Callable, Collection, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from resnet_lab.blocks import BasicBlock, Bottleneck, PreActBlock, PreActBottleneck, conv3x3, init_weights
from resnet_lab.checks import check_int

BlockType = type[BasicBlock] | type[Bottleneck] | type[PreActBlock] | type[PreActBottleneck]


class ResNet(nn.Module):
    """A residual network or its plain twin: stem, three or four stages of blocks, average pooling, linear head.

    Attribute names follow torchvision (`conv1`, `bn1`, `relu`, `maxpool`, `layer1`..`layer4`, `avgpool`, `fc`).
    Networks of three stages have `layer4 = None`; pre-activation networks have no stem BN (`bn1 = None`) and a
    final BN-ReLU (`bn_final`) before the pooling, because their blocks end with a convolution.
    `stride_in_1x1` (bottleneck blocks only) moves each downsampling block's stride to its first 1x1 conv;
    None means False (torchvision's placement). `self.stride_in_1x1` is None for basic-block networks.
    """

    def __init__(
        self,
        block: BlockType,
        layers: Sequence[int],
        widths: Sequence[int],
        num_classes: int = 1000,
        *,
        stem: str = "imagenet",
        shortcut: str = "B",
        residual: bool = True,
        zero_init_residual: bool = False,
        in_channels: int = 3,
        name: str = "resnet",
        stride_in_1x1: bool | None = None,
    ) -> None:
        super().__init__()
        check_int("num_classes", num_classes)
        check_int("in_channels", in_channels)
        for option, value in (("residual", residual), ("zero_init_residual", zero_init_residual)):
            if not isinstance(value, bool):
                raise TypeError(f"{option} must be True or False, got {type(value).__name__} {value!r}.")
        if len(layers) not in (3, 4) or len(widths) != len(layers):
            raise ValueError(f"ResNet takes 3 or 4 stages with one width each, got layers={layers}, widths={widths}.")
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' (7x7 conv + max-pool) or 'cifar' (3x3 conv), got {stem!r}.")
        bottleneck = block.expansion > 1
        if stride_in_1x1 is not None and not bottleneck:
            raise ValueError(
                f"stride_in_1x1 applies to bottleneck blocks only, and {name} is built of {block.__name__}s, "
                "whose stride sits on their first 3x3 convolution (the only place it can go). Leave it out."
            )
        if bottleneck:
            stride_in_1x1 = False if stride_in_1x1 is None else stride_in_1x1
            if not isinstance(stride_in_1x1, bool):
                raise TypeError(
                    f"stride_in_1x1 must be True or False, got {type(stride_in_1x1).__name__} {stride_in_1x1!r}."
                )
        if zero_init_residual and not residual:
            raise ValueError(
                "zero_init_residual needs residual connections: in a plain network, zeroing each block's last "
                "layer would zero every block's output. Use zero_init_residual=False for plain networks."
            )
        self.name = name
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.stride_in_1x1 = stride_in_1x1
        # Filled in by get_model: the recipe that rebuilds this model (saved with checkpoints).
        self.spec: dict[str, Any] | None = None

        if stem == "imagenet":
            # 7x7 stride-2 conv then a stride-2 max-pool: a 224x224 image enters the first stage at 56x56.
            self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        else:
            # CIFAR images are 32x32: a 3x3 stride-1 conv and no pooling keep the full resolution.
            self.conv1 = conv3x3(in_channels, widths[0])
        # Pre-activation blocks normalize their input themselves, so their stem is the convolution alone.
        self.bn1 = None if block.preact else nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if stem == "imagenet" else nn.Identity()

        stages = []
        in_planes = widths[0]
        for index, (planes, blocks) in enumerate(zip(widths, layers)):
            # Each stage after the first halves the resolution in its first block while the width grows.
            stride = 1 if index == 0 else 2
            stages.append(
                self._make_layer(block, in_planes, planes, blocks, stride, shortcut, residual, stride_in_1x1)
            )
            in_planes = planes * block.expansion
        self.layer1, self.layer2, self.layer3 = stages[:3]
        self.layer4 = stages[3] if len(stages) == 4 else None

        self.bn_final = nn.BatchNorm2d(in_planes) if block.preact else None
        # Adaptive pooling makes the network independent of the input size.
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_planes, num_classes)
        init_weights(self, zero_init_residual)

    @staticmethod
    def _make_layer(
        block: BlockType,
        in_planes: int,
        planes: int,
        blocks: int,
        stride: int,
        shortcut: str,
        residual: bool,
        stride_in_1x1: bool | None = None,
    ) -> nn.Sequential:
        """One stage: `blocks` blocks, the first of which may change resolution and width."""
        # Basic blocks have one place for the stride and take no stride_in_1x1.
        options: dict[str, Any] = {"shortcut": shortcut, "residual": residual}
        if stride_in_1x1 is not None:
            options["stride_in_1x1"] = stride_in_1x1
        layers = [block(in_planes, planes, stride, **options)]
        for _ in range(1, blocks):
            layers.append(block(planes * block.expansion, planes, 1, **options))
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Class scores (logits) for a batch of normalized images shaped (N, C, H, W)."""
        # A cheap check that turns a cryptic convolution error into one that says what to do.
        if x.dim() != 4 or x.shape[1] != self.in_channels or not x.is_floating_point():
            self._raise_bad_input(x)
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.relu(self.bn1(x))
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        if self.layer4 is not None:
            x = self.layer4(x)
        if self.bn_final is not None:
            x = self.relu(self.bn_final(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)

    @torch.jit.unused
    def _raise_bad_input(self, x: Tensor) -> None:
        """Raise a ValueError (wrong shape) or TypeError (not float) that explains the expected input."""
        channels = self.in_channels
        shape = tuple(x.shape)
        expected = f"{self.name} expects a batch of images shaped (N, {channels}, H, W)"
        if x.dim() == 3 and shape[0] == channels:
            raise ValueError(
                f"{expected}; got a single image shaped {shape}. Add a batch dimension with x.unsqueeze(0)."
            )
        if x.dim() != 4:
            raise ValueError(f"{expected}; got a {x.dim()}-D tensor shaped {shape}.")
        if shape[1] != channels and shape[3] == channels:
            raise ValueError(
                f"{expected}; got {shape}, which looks channels-last (N, H, W, C). "
                "Move the channels with x.permute(0, 3, 1, 2)."
            )
        if shape[1] != channels:
            raise ValueError(
                f"{expected}; got {shape}, with {shape[1]} channel(s) in dimension 1. Convert the images to "
                f"{channels} channels, or build the model for them with in_channels={shape[1]}."
            )
        raise TypeError(
            f"{self.name} expects float images, normalized by the data pipeline; got dtype {x.dtype}. "
            "Convert with x.float() / 255, then normalize."
        )


# ---------------------------------------------------------------------------------------------------------------
# CIFAR networks (He et al. 2016, section 4.2): 3 stages of n blocks, 16/32/64 channels, depth 6n+2 or 9n+2.
# ---------------------------------------------------------------------------------------------------------------


def _valid_depths_near(depth: int, layers_per_block: int) -> list[int]:
    """The valid depths (layers_per_block * 3 * n + 2, n >= 1) just below and just above `depth`."""
    step = 3 * layers_per_block
    smallest = step + 2
    if depth < smallest:
        return [smallest]
    below = depth - (depth - 2) % step
    return [below, below + step]


def cifar_blocks_per_stage(depth: int, bottleneck: bool = False, label: str | None = None) -> int:
    """Blocks per stage n for a CIFAR depth: depth = 6n+2 (basic blocks) or 9n+2 (bottleneck blocks)."""
    if not isinstance(depth, int) or isinstance(depth, bool):
        raise TypeError(f"depth must be an int, got {type(depth).__name__} {depth!r}.")
    layers_per_block = 3 if bottleneck else 2
    step = 3 * layers_per_block
    if depth >= step + 2 and (depth - 2) % step == 0:
        return (depth - 2) // step
    kind = "bottleneck blocks of 3" if bottleneck else "blocks of 2"
    nearest = _valid_depths_near(depth, layers_per_block)
    suggestion = " and ".join(str(d) for d in nearest)
    label = label or f"ResNet-{depth}"
    raise ValueError(
        f"{label} is not a CIFAR ResNet depth: depth must be {step}n+2 with n >= 1 "
        f"(3 stages of n {kind} conv layers, plus the first conv and the classifier). "
        f"Nearest valid depth{'s' if len(nearest) > 1 else ''}: {suggestion}."
    )


def resnet_cifar(
    depth: int,
    num_classes: int = 10,
    *,
    bottleneck: bool = False,
    preact: bool = False,
    residual: bool = True,
    shortcut: str | None = None,
    width: int = 16,
    zero_init_residual: bool = False,
    in_channels: int = 3,
    stride_in_1x1: bool | None = None,
    batch_norm: bool = True,
) -> ResNet:
    """A CIFAR ResNet (or plain twin) of He et al. 2016: 3x3 stem, 3 stages of width, 2*width, 4*width channels.

    `shortcut=None` picks the papers' choice: option A for the original networks, B for pre-activation ones.
    With `residual=False` the network has no shortcut layers at all, whatever `shortcut` says.
    `stride_in_1x1=None` picks the authors' placement for pre-activation bottleneck networks (True, as in
    resnet-pre-act.lua) and torchvision's for the original bottleneck (False); basic blocks refuse the option.
    `batch_norm=False` replaces every batch normalization by the identity (`without_batch_norm`), keeping the
    Kaiming initialization of the convolutions: the networks without BN of chapter 5.
    """
    if not isinstance(batch_norm, bool):
        raise TypeError(f"batch_norm must be True or False, got {type(batch_norm).__name__} {batch_norm!r}.")
    prefix = "preact_" if preact else ""
    kind = "resnet" if residual else "plain"
    label = f"{'PreAct-' if preact else ''}{'ResNet' if residual else 'Plain'}-{depth}"
    blocks = cifar_blocks_per_stage(depth, bottleneck, label)
    check_int("width", width)
    if shortcut is None:
        shortcut = "B" if preact else "A"
    if preact:
        block = PreActBottleneck if bottleneck else PreActBlock
    else:
        block = Bottleneck if bottleneck else BasicBlock
    if stride_in_1x1 is None and bottleneck:
        stride_in_1x1 = preact
    model = ResNet(
        block,
        layers=(blocks, blocks, blocks),
        widths=(width, 2 * width, 4 * width),
        num_classes=num_classes,
        stem="cifar",
        shortcut=shortcut,
        residual=residual,
        zero_init_residual=zero_init_residual,
        in_channels=in_channels,
        name=f"{prefix}{kind}{depth}",
        stride_in_1x1=stride_in_1x1,
    )
    return model if batch_norm else without_batch_norm(model)


def without_batch_norm(model: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d of `model` by nn.Identity, in place; returns the model.

    The convolutions keep their weights, so a network built with the same seed differs from its BN twin only
    by the missing normalizations (and their parameters and buffers).
    """
    for parent in list(model.modules()):
        for child_name, child in parent.named_children():
            if isinstance(child, nn.BatchNorm2d):
                setattr(parent, child_name, nn.Identity())
    return model


# ---------------------------------------------------------------------------------------------------------------
# ImageNet networks (He et al. 2016, Table 1), key-compatible with torchvision, and their CIFAR-stem variants.
# ---------------------------------------------------------------------------------------------------------------

IMAGENET_LAYOUTS: MappingProxyType[int, tuple[BlockType, tuple[int, int, int, int]]] = MappingProxyType(
    {
        18: (BasicBlock, (2, 2, 2, 2)),
        34: (BasicBlock, (3, 4, 6, 3)),
        50: (Bottleneck, (3, 4, 6, 3)),
        101: (Bottleneck, (3, 4, 23, 3)),
        152: (Bottleneck, (3, 8, 36, 3)),
    }
)


def _imagenet_layout(depth: int, num_classes: int, stem: str, name: str, **options: Any) -> ResNet:
    """The ImageNet stage layout of the given depth (64/128/256/512 planes), projection (B) shortcuts by default."""
    block, layers = IMAGENET_LAYOUTS[depth]
    if options.get("shortcut") is None:
        options["shortcut"] = "B"
    return ResNet(block, layers, (64, 128, 256, 512), num_classes, stem=stem, name=name, **options)


def resnet18(num_classes: int = 1000, **options: Any) -> ResNet:
    """ResNet-18 for ImageNet; loads torchvision's resnet18 weights."""
    return _imagenet_layout(18, num_classes, "imagenet", "resnet18", **options)


def resnet34(num_classes: int = 1000, **options: Any) -> ResNet:
    """ResNet-34 for ImageNet; loads torchvision's resnet34 weights."""
    return _imagenet_layout(34, num_classes, "imagenet", "resnet34", **options)


def resnet50(num_classes: int = 1000, **options: Any) -> ResNet:
    """ResNet-50 for ImageNet (stride on the 3x3 conv, "v1.5"); loads torchvision's resnet50 weights.

    `stride_in_1x1=True` gives the paper's v1 (same parameters, torchvision's weights then compute another net).
    """
    return _imagenet_layout(50, num_classes, "imagenet", "resnet50", **options)


def resnet101(num_classes: int = 1000, **options: Any) -> ResNet:
    """ResNet-101 for ImageNet; loads torchvision's resnet101 weights."""
    return _imagenet_layout(101, num_classes, "imagenet", "resnet101", **options)


def resnet152(num_classes: int = 1000, **options: Any) -> ResNet:
    """ResNet-152 for ImageNet; loads torchvision's resnet152 weights."""
    return _imagenet_layout(152, num_classes, "imagenet", "resnet152", **options)


def resnet18_cifar(num_classes: int = 10, **options: Any) -> ResNet:
    """ResNet-18's stages with a 3x3 stride-1 stem and no max-pool: the common "ResNet-18 for CIFAR"."""
    return _imagenet_layout(18, num_classes, "cifar", "resnet18_cifar", **options)


def resnet34_cifar(num_classes: int = 10, **options: Any) -> ResNet:
    """ResNet-34's stages with a 3x3 stride-1 stem and no max-pool."""
    return _imagenet_layout(34, num_classes, "cifar", "resnet34_cifar", **options)


def resnet50_cifar(num_classes: int = 10, **options: Any) -> ResNet:
    """ResNet-50's stages with a 3x3 stride-1 stem and no max-pool."""
    return _imagenet_layout(50, num_classes, "cifar", "resnet50_cifar", **options)


# ---------------------------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------------------------

# Fixed names; any other name must match the CIFAR pattern below.
_BUILDERS: MappingProxyType[str, Callable[..., ResNet]] = MappingProxyType(
    {
        "resnet18": resnet18,
        "resnet34": resnet34,
        "resnet50": resnet50,
        "resnet101": resnet101,
        "resnet152": resnet152,
        "resnet18_cifar": resnet18_cifar,
        "resnet34_cifar": resnet34_cifar,
        "resnet50_cifar": resnet50_cifar,
    }
)
_CIFAR_NAME = re.compile(r"(resnet|plain|preact_resnet)([1-9][0-9]*)")
# The networks of the two papers, listed by list_models(); the pattern accepts every other valid depth too.
_PAPER_CIFAR_NAMES = (
    *(f"resnet{depth}" for depth in (20, 32, 44, 56, 110, 1202)),
    *(f"plain{depth}" for depth in (20, 32, 44, 56, 110)),
    "preact_resnet110",
    "preact_resnet164",
    "preact_resnet1001",
)
# Deeper pre-activation networks use bottleneck blocks, as in He et al. 2016b (110: basic; 164, 1001: bottleneck).
PREACT_BOTTLENECK_ABOVE = 110

_FIXED_OPTIONS = frozenset({"shortcut", "zero_init_residual", "in_channels", "stride_in_1x1"})
_CIFAR_OPTIONS = _FIXED_OPTIONS | {"width", "batch_norm"}


def list_models() -> list[str]:
    """The named networks: the CIFAR networks of the papers, then the ImageNet ResNets and their CIFAR variants."""
    return [*_PAPER_CIFAR_NAMES, *_BUILDERS]


class ModelName(NamedTuple):
    """What a model name says: its family and its depth (number of weight layers).

    Families: "resnet" and "plain" (the CIFAR networks and their plain twins), "preact" (pre-activation CIFAR
    networks), "imagenet" (resnet18 ... resnet152) and "cifar_stem" (resnet18_cifar ... resnet50_cifar).
    """

    family: str
    depth: int


# Prefix of the CIFAR names -> family.
_CIFAR_FAMILIES = MappingProxyType({"resnet": "resnet", "plain": "plain", "preact_resnet": "preact"})
# How each family is written in tables and figure legends.
_LABELS = MappingProxyType(
    {
        "resnet": "ResNet-{depth}",
        "plain": "plain-{depth}",
        "preact": "PreAct-ResNet-{depth}",
        "imagenet": "ResNet-{depth}",
        "cifar_stem": "ResNet-{depth} (CIFAR stem)",
    }
)


def parse_model_name(name: str) -> ModelName:
    """The family and depth a model name stands for, e.g. "plain56" -> ModelName("plain", 56).

    Raises TypeError for a non-string and ValueError (naming the valid names) for a name `get_model` does not know.
    Whether a CIFAR depth is valid (6n+2, 9n+2) is checked when the model is built, not here.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string such as 'resnet20', got {type(name).__name__} {name!r}.")
    if name in _BUILDERS:
        family = "cifar_stem" if name.endswith("_cifar") else "imagenet"
        return ModelName(family, int(name.removeprefix("resnet").removesuffix("_cifar")))
    match = _CIFAR_NAME.fullmatch(name)
    if match is None:
        raise ValueError(_unknown_name_message(name))
    return ModelName(_CIFAR_FAMILIES[match.group(1)], int(match.group(2)))


def model_label(name: str) -> str:
    """How a model is written in tables and figures: "ResNet-56", "plain-56", "PreAct-ResNet-164", "ResNet-18"."""
    family, depth = parse_model_name(name)
    return _LABELS[family].format(depth=depth)


def _cifar_builder(parsed: ModelName) -> Callable[..., ResNet]:
    """A builder for a CIFAR network (family "resnet", "plain" or "preact") of the parsed depth."""
    family, depth = parsed
    preact = family == "preact"

    def build(num_classes: int, **options: Any) -> ResNet:
        return resnet_cifar(
            depth,
            num_classes,
            residual=family != "plain",
            preact=preact,
            bottleneck=preact and depth > PREACT_BOTTLENECK_ABOVE,
            **options,
        )

    return build


def _unknown_name_message(name: str) -> str:
    """The error message for a name get_model does not know, with the closest match."""
    names = list_models()
    close = difflib.get_close_matches(name.lower().replace("-", ""), names, n=2, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(match) for match in close)}?" if close else ""
    return (
        f"Unknown model {name!r}.{hint} Valid names: {', '.join(names)}; "
        "also resnet<depth>, plain<depth> and preact_resnet<depth> for other CIFAR depths (e.g. resnet8)."
    )


def get_model(name: str, num_classes: int = 10, **options: Any) -> ResNet:
    """Build a network by name (see `list_models()` and the module docstring); `model.spec` records the recipe.

    Options: `shortcut` ("A", "B", "C"), `zero_init_residual` (bool), `in_channels` (int), `stride_in_1x1`
    (bool, bottleneck networks only), and for the CIFAR networks `width` (channels of the first stage, 16 in
    the paper) and `batch_norm` (False: no batch normalization, chapter 5). A pre-activation bottleneck
    network records its `stride_in_1x1` in the spec even when it was not given (see the module docstring).
    """
    parsed = parse_model_name(name)
    if name in _BUILDERS:
        builder, valid_options = _BUILDERS[name], _FIXED_OPTIONS
    else:
        builder, valid_options = _cifar_builder(parsed), _CIFAR_OPTIONS
    unknown = sorted(set(options) - valid_options)
    if unknown:
        raise ValueError(
            f"get_model({name!r}) got unknown option(s) {', '.join(unknown)}. "
            f"Valid options: num_classes, {', '.join(sorted(valid_options))}."
        )
    model = builder(num_classes, **options)
    model.spec = {"name": name, "num_classes": num_classes, **options}
    if _is_preact_bottleneck(model):
        model.spec["stride_in_1x1"] = model.stride_in_1x1
    return model


def _is_preact_bottleneck(model: ResNet) -> bool:
    return isinstance(model.layer1[0], PreActBottleneck)


# Keys only an older pre-activation checkpoint has: the BN that followed a projection shortcut (issue 22).
_OLD_PREACT_SHORTCUT_BN = re.compile(r"layer\d\.\d+\.downsample\.1\.")


def legacy_checkpoint_problem(spec: dict[str, Any], keys: Collection[str]) -> str | None:
    """Why a checkpoint's spec and weight names come from before the pre-activation fix, or None if they do not.

    Until then, pre-activation projection shortcuts had a BN after their 1x1 conv (neither of the authors'
    codebases has one), and pre-activation bottleneck networks put their stride on the 3x3 conv and did not
    record `stride_in_1x1`. Such weights cannot be loaded into the current networks: this says why.
    """
    try:
        family, depth = parse_model_name(spec["name"])
    except (KeyError, TypeError, ValueError):
        return None
    if family != "preact":
        return None
    fix = (
        "resnet_lab's pre-activation networks now follow the authors' code (resnet-pre-act.lua): a projection "
        "shortcut is a bare 1x1 conv on the BN-ReLU output, and a bottleneck network puts its stride on the "
        "first 1x1 conv. Retrain the network with this version"
    )
    if any(_OLD_PREACT_SHORTCUT_BN.match(key) for key in keys):
        return f"its projection shortcuts have a BN, as resnet_lab built them before. {fix}."
    if depth > PREACT_BOTTLENECK_ABOVE and "stride_in_1x1" not in spec:
        return (
            "its spec does not record stride_in_1x1, so it was written before the stride of pre-activation "
            f"bottleneck networks moved to the first 1x1 conv. {fix}."
        )
    return None


__all__ = [
    "IMAGENET_LAYOUTS",
    "PREACT_BOTTLENECK_ABOVE",
    "ModelName",
    "ResNet",
    "cifar_blocks_per_stage",
    "get_model",
    "legacy_checkpoint_problem",
    "list_models",
    "model_label",
    "parse_model_name",
    "resnet101",
    "resnet152",
    "resnet18",
    "resnet18_cifar",
    "resnet34",
    "resnet34_cifar",
    "resnet50",
    "resnet50_cifar",
    "resnet_cifar",
    "without_batch_norm",
]
