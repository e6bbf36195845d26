"""Block and network diagrams for chapters 3 and 4, drawn with plain matplotlib (no network, no services).

`draw_block` draws one residual block top to bottom, the way He et al. draw them: the residual branch F
in the middle column, the shortcut as a separate path that leaves the input *before* the first layer of F
and joins again at the addition *after* the last one, so it visibly goes around the whole branch.
`draw_network` draws the feature-map shapes of a network's stages, from shapes measured by a forward pass.
`draw_conv_windows` draws where the windows of a convolution or pooling layer fall on a zero-padded input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.patches import Circle, FancyBboxPatch, Rectangle

BLOCK_KINDS = ("basic", "bottleneck", "preact", "preact_bottleneck")
SHORTCUTS = ("identity", "zeropad", "projection")

# Colours by layer type, so the same kind of layer looks the same in every figure.
COLORS = {
    "conv": "#cfe2f3",
    "bn": "#fff2cc",
    "relu": "#d9ead3",
    "projection": "#f4cccc",
    "zeropad": "#eeeeee",
}
_HEIGHTS = {"conv": 0.62, "bn": 0.42, "relu": 0.42}
_GAP = 0.32  # vertical space between two boxes (room for an arrow)
_MAIN_W = 2.6  # width of a box in the main column
_SKIP_X = 2.75  # x of the shortcut path
_SIDE_W = 2.2  # width of a box on the shortcut path


def block_layers(
    kind: str, planes: int = 64, stride: int = 1, stride_in_1x1: bool = False
) -> list[tuple[str, str]]:
    """The residual branch F of a block as (layer type, label) pairs, first layer first.

    The stride sits on the first 3x3 convolution; in a bottleneck, on the 3x3 (torchvision, "v1.5") or, with
    `stride_in_1x1=True`, on the first 1x1 (the paper's v1 and resnet-pre-act.lua), as in resnet_lab.blocks.
    """
    _check_choice("kind", kind, BLOCK_KINDS)
    if stride_in_1x1 and not kind.endswith("bottleneck"):
        raise ValueError(f"stride_in_1x1 applies to bottleneck blocks only, not to kind {kind!r}.")
    s = f", /{stride}" if stride != 1 else ""
    # In a bottleneck, s1 marks the first 1x1 conv and s3 the 3x3: one of them carries the stride.
    s1, s3 = (s, "") if stride_in_1x1 else ("", s)
    if kind == "basic":
        return [("conv", f"3×3 conv, {planes}{s}"), ("bn", "BN"), ("relu", "ReLU"),
                ("conv", f"3×3 conv, {planes}"), ("bn", "BN")]
    if kind == "bottleneck":
        return [("conv", f"1×1 conv, {planes}{s1}"), ("bn", "BN"), ("relu", "ReLU"),
                ("conv", f"3×3 conv, {planes}{s3}"), ("bn", "BN"), ("relu", "ReLU"),
                ("conv", f"1×1 conv, {4 * planes}"), ("bn", "BN")]
    if kind == "preact":
        return [("bn", "BN"), ("relu", "ReLU"), ("conv", f"3×3 conv, {planes}{s}"),
                ("bn", "BN"), ("relu", "ReLU"), ("conv", f"3×3 conv, {planes}")]
    return [("bn", "BN"), ("relu", "ReLU"), ("conv", f"1×1 conv, {planes}{s1}"),
            ("bn", "BN"), ("relu", "ReLU"), ("conv", f"3×3 conv, {planes}{s3}"),
            ("bn", "BN"), ("relu", "ReLU"), ("conv", f"1×1 conv, {4 * planes}")]


def draw_block(
    kind: str = "basic",
    shortcut: str = "identity",
    ax: Axes | None = None,
    planes: int = 64,
    stride: int | None = None,
    title: str | None = None,
    stride_in_1x1: bool = False,
) -> Axes:
    """Draw one residual block: the branch F in the middle, the shortcut around all of it, then the addition.

    kind: "basic", "bottleneck", "preact" or "preact_bottleneck". shortcut: "identity" (x itself),
    "zeropad" (option A: subsample, then append zero channels; no parameters) or "projection" (options B/C:
    a strided 1x1 convolution, followed by BN in the original blocks). `stride` defaults to 1 for an identity
    shortcut and 2 otherwise. A pre-activation block's projection is the bare 1x1 convolution and reads the
    output of its first BN-ReLU, so the split is drawn after those two layers (as in resnet_lab.blocks and the
    authors' code). `stride_in_1x1` (bottlenecks only) draws the stride on the first 1x1 conv.
    """
    _check_choice("kind", kind, BLOCK_KINDS)
    _check_choice("shortcut", shortcut, SHORTCUTS)
    if stride is None:
        stride = 1 if shortcut == "identity" else 2
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}.")
    bottleneck = kind.endswith("bottleneck")
    preact = kind.startswith("preact")
    out_channels = 4 * planes if bottleneck else planes
    if shortcut == "identity":
        if stride != 1:
            raise ValueError(
                "an identity shortcut cannot change the shape (stride must be 1): "
                "use shortcut='zeropad' (option A) or 'projection' (option B/C) for a block with stride 2."
            )
        in_channels = out_channels
    else:
        # The first block of a stage: half the channels of its output (the stem for a bottleneck stage 1).
        in_channels = out_channels // 2 if stride == 2 else planes
    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, 6.2 if bottleneck else 5.0))

    y = 0.0
    size_in = "H×W" if stride == 1 else "2H×2W"
    ax.text(0, y, f"x   ({in_channels}×{size_in})", ha="center", va="center", fontsize=10, fontweight="bold")
    # A pre-activation projection reads the BN-ReLU output (as in the authors' code and resnet_lab.blocks):
    # those two layers come before the split. Every other shortcut leaves from x itself.
    shared = 2 if preact and shortcut == "projection" else 0
    split_y, branch_bottom = _draw_branch(ax, block_layers(kind, planes, stride, stride_in_1x1), shared)
    add_y = branch_bottom - 0.22
    ax.add_patch(Circle((0, add_y), 0.22, facecolor="white", edgecolor="black", lw=1.4, zorder=3))
    ax.text(0, add_y, "+", ha="center", va="center", fontsize=15, zorder=4)
    ax.text(-_MAIN_W / 2 - 0.1, (split_y + branch_bottom) / 2, "F(x)", rotation=90, ha="right", va="center",
            fontsize=11, style="italic")
    _draw_shortcut(ax, shortcut, stride, in_channels, out_channels, split_y, add_y, preact)
    y = _draw_output(ax, preact, out_channels, add_y)

    ax.set_xlim(-_MAIN_W / 2 - 0.45, _SKIP_X + 1.4)
    ax.set_ylim(y - 0.3, 0.3)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title if title is not None else _default_title(kind, shortcut), fontsize=11)
    return ax


def _draw_branch(ax: Axes, layers: list[tuple[str, str]], shared: int) -> tuple[float, float]:
    """Draw the branch F down the middle column; return the y of the shortcut's split point and of F's end."""
    y = -0.2
    for layer, label in layers[:shared]:
        _arrow(ax, (0, y), (0, y - _GAP))
        y -= _GAP
        _box(ax, 0, y - _HEIGHTS[layer] / 2, _MAIN_W, _HEIGHTS[layer], label, COLORS[layer])
        y -= _HEIGHTS[layer]
    split_y = y - 0.25  # where the shortcut leaves the main path: before every layer of F
    ax.plot([0, 0], [y, split_y], color="black", lw=1.4)
    ax.add_patch(Circle((0, split_y), 0.06, color="black", zorder=3))
    _arrow(ax, (0, split_y), (0, split_y - _GAP))
    y = split_y - _GAP
    for layer, label in layers[shared:]:
        height = _HEIGHTS[layer]
        _box(ax, 0, y - height / 2, _MAIN_W, height, label, COLORS[layer])
        y -= height
        _arrow(ax, (0, y), (0, y - _GAP))
        y -= _GAP
    return split_y, y


def _draw_shortcut(ax: Axes, shortcut: str, stride: int, in_channels: int, out_channels: int, split_y: float,
                   add_y: float, preact: bool = False) -> None:
    """Draw the shortcut: right from the split point, down past the whole branch, left into the addition."""
    mid_y = (split_y + add_y) / 2
    ax.plot([0, _SKIP_X], [split_y, split_y], color="black", lw=1.4)
    if shortcut == "identity":
        ax.plot([_SKIP_X, _SKIP_X], [split_y, add_y], color="black", lw=1.4)
        ax.text(_SKIP_X + 0.12, mid_y, "identity\nx", ha="left", va="center", fontsize=9)
    else:
        lines, note = _shortcut_layers(shortcut, stride, in_channels, out_channels, preact)
        heights = [0.55 if style == "--" else _HEIGHTS["conv" if kind_ == "projection" else "bn"]
                   for kind_, _, style in lines]
        total = sum(heights) + _GAP * (len(heights) - 1)
        top = mid_y + total / 2
        ax.plot([_SKIP_X, _SKIP_X], [split_y, top], color="black", lw=1.4)
        for i, ((kind_, label, style), height) in enumerate(zip(lines, heights)):
            _box(ax, _SKIP_X, top - height / 2, _SIDE_W, height, label, COLORS[kind_], linestyle=style,
                 fontsize=8.5)
            top -= height
            if i < len(lines) - 1:
                _arrow(ax, (_SKIP_X, top), (_SKIP_X, top - _GAP))
                top -= _GAP
        ax.plot([_SKIP_X, _SKIP_X], [top, add_y], color="black", lw=1.4)
        ax.text(_SKIP_X + 0.1, top - 0.1, note, ha="left", va="top", fontsize=7.5, color="#444444")
    _arrow(ax, (_SKIP_X, add_y), (0.22, add_y))


def _shortcut_layers(
    shortcut: str, stride: int, in_channels: int, out_channels: int, preact: bool = False
) -> tuple[list[tuple[str, str, str]], str]:
    """The boxes of a zeropad or projection shortcut as (colour, label, line style), and the note beside them."""
    if shortcut == "zeropad":
        # Dashed boxes: subsampling and zero channels are not layers, they have no parameters.
        lines = [("zeropad", f"subsample /{stride}", "--")]
        if out_channels != in_channels:
            lines.append(("zeropad", f"+ {out_channels - in_channels} zero channels", "--"))
        return lines, "option A\n(no parameters)"
    s = f", /{stride}" if stride != 1 else ""
    conv = ("projection", f"1×1 conv, {out_channels}{s}", "-")
    if preact:
        # No BN: the authors' pre-activation code projects the already normalized BN-ReLU output.
        return [conv], "option B/C\n(projection W$_s$,\nno BN)"
    return [conv, ("bn", "BN", "-")], "option B/C\n(projection W$_s$x)"


def _draw_output(ax: Axes, preact: bool, out_channels: int, add_y: float) -> float:
    """Draw what follows the addition, down to the output label; return the label's y."""
    y = add_y - 0.22
    if not preact:  # the original block applies ReLU after the addition; a pre-activation block does not
        _arrow(ax, (0, y), (0, y - _GAP))
        y -= _GAP
        _box(ax, 0, y - _HEIGHTS["relu"] / 2, _MAIN_W, _HEIGHTS["relu"], "ReLU", COLORS["relu"])
        y -= _HEIGHTS["relu"]
    _arrow(ax, (0, y), (0, y - _GAP))
    y -= _GAP + 0.18
    ax.text(0, y, f"out   ({out_channels}×H×W)", ha="center", va="center", fontsize=10, fontweight="bold")
    return y


def draw_network(
    shapes: Sequence[tuple[str, Sequence[int]]],
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Draw feature maps left to right: one slab per (name, (C, H, W)), height ~ sqrt(H), width ~ log2(C).

    Pass shapes measured by a forward pass, batch dimension dropped: [("input", (3, 224, 224)), ...].
    """
    if len(shapes) == 0:
        raise ValueError("draw_network needs at least one (name, (C, H, W)) pair.")
    for name, shape in shapes:
        if len(shape) != 3:
            raise ValueError(
                f"{name!r}: expected a (C, H, W) shape without the batch dimension, got {tuple(shape)}."
            )
    if ax is None:
        _, ax = plt.subplots(figsize=(1.25 * len(shapes) + 0.5, 3.4))
    max_side = max(math.sqrt(shape[1]) for _, shape in shapes)
    pitch = 2.0  # distance between the centres of two slabs, wide enough for the labels
    previous_right = 0.0
    for i, (name, (channels, height, width)) in enumerate(shapes):
        slab_w = 0.12 * max(math.log2(channels), 1.0)
        slab_h = 3.0 * math.sqrt(height) / max_side  # sqrt keeps a 7x7 map visible next to a 224x224 one
        centre = i * pitch
        ax.add_patch(Rectangle((centre - slab_w / 2, -slab_h / 2), slab_w, slab_h, facecolor=COLORS["conv"],
                               edgecolor="black"))
        ax.text(centre, -1.75, name, ha="center", va="top", fontsize=9, fontweight="bold")
        ax.text(centre, -2.1, f"{channels}×{height}×{width}", ha="center", va="top", fontsize=8.5)
        if i > 0:
            _arrow(ax, (previous_right + 0.08, 0), (centre - slab_w / 2 - 0.08, 0))
        previous_right = centre + slab_w / 2
    x = len(shapes) * pitch
    ax.set_xlim(-pitch / 2, x - pitch / 2)
    ax.set_ylim(-2.6, 1.7)
    ax.set_aspect("equal")
    ax.axis("off")
    if title is not None:
        ax.set_title(title, fontsize=11)
    return ax


def draw_conv_windows(
    size: int = 5,
    kernel: int = 3,
    stride: int = 2,
    padding: int = 1,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Draw where a convolution's (or pooling's) windows fall on a zero-padded size x size input, and the output.

    Left, the padded input (padding cells grey, marked 0) with the windows of the first two outputs of row 0
    outlined; right, the output grid of floor((size + 2 padding - kernel) / stride) + 1 cells a side, the same
    two cells coloured to match.
    """
    for name, value, smallest in (("size", size, 1), ("kernel", kernel, 1), ("stride", stride, 1),
                                  ("padding", padding, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < smallest:
            raise ValueError(f"{name} must be an int of at least {smallest}, got {value!r}.")
    padded = size + 2 * padding
    if kernel > padded:
        raise ValueError(f"a {kernel}x{kernel} kernel does not fit a {size}x{size} input padded by {padding}.")
    out = (padded - kernel) // stride + 1
    if ax is None:
        _, ax = plt.subplots(figsize=(0.55 * (padded + out + 3), 0.55 * padded + 1.4))
    for row in range(padded):
        for col in range(padded):
            is_pad = not (padding <= row < padding + size and padding <= col < padding + size)
            ax.add_patch(Rectangle((col, -row - 1), 1, 1, facecolor=COLORS["zeropad"] if is_pad else "white",
                                   edgecolor="#999999", lw=0.8))
            if is_pad:
                ax.text(col + 0.5, -row - 0.5, "0", ha="center", va="center", fontsize=8, color="#777777")
    windows = [(0, j) for j in range(min(out, 2))]
    colors = ["#3d85c6", "#cc0000"]
    offset = padded + 2  # x of the output grid
    top = -(padded - out) / 2  # the output grid is centred vertically
    for (i, j), color in zip(windows, colors):
        inset = 0.06 if j == 0 else 0.12  # overlapping windows stay distinguishable
        ax.add_patch(Rectangle((stride * j + inset, -stride * i - kernel + inset), kernel - 2 * inset,
                               kernel - 2 * inset, fill=False, edgecolor=color, lw=2.4, zorder=3))
    for row in range(out):
        for col in range(out):
            color = next((c for (i, j), c in zip(windows, colors) if (i, j) == (row, col)), "white")
            ax.add_patch(Rectangle((offset + col, top - row - 1), 1, 1, facecolor=color, edgecolor="#999999",
                                   lw=0.8, alpha=0.8 if color != "white" else 1.0))
    _arrow(ax, (padded + 0.3, -padded / 2), (offset - 0.3, -padded / 2))
    ax.text(padded / 2, -padded - 0.35, f"input {size}×{size}, padded to {padded}×{padded}", ha="center",
            va="top", fontsize=9)
    ax.text(offset + out / 2, top - out - 0.35, f"output {out}×{out}", ha="center", va="top", fontsize=9)
    ax.set_xlim(-0.3, offset + out + 0.3)
    ax.set_ylim(-padded - 1.3, 0.3)
    ax.set_aspect("equal")
    ax.axis("off")
    default = f"{kernel}×{kernel} windows, stride {stride}, padding {padding}"
    ax.set_title(title if title is not None else default, fontsize=11)
    return ax


def _default_title(kind: str, shortcut: str) -> str:
    names = {"basic": "basic block", "bottleneck": "bottleneck block", "preact": "pre-activation block",
             "preact_bottleneck": "pre-activation bottleneck"}
    return f"{names[kind]}, {shortcut} shortcut"


def _check_choice(what: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}: choose one of {', '.join(map(repr, choices))}.")


def _box(ax: Axes, x: float, y: float, width: float, height: float, label: str, color: str,
         linestyle: str = "-", fontsize: float = 9.5) -> None:
    """A rounded box centred at (x, y) with its label."""
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                boxstyle="round,pad=0.0,rounding_size=0.08", facecolor=color,
                                edgecolor="black", linestyle=linestyle, lw=1.0, zorder=2))
    ax.text(x, y, label, ha="center", va="center", fontsize=fontsize, zorder=3)


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.annotate("", xy=end, xytext=start,
                arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 1.2, "shrinkA": 0, "shrinkB": 0})
