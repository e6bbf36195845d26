"""How big a network is: parameters (in total and per stage), multiply-accumulates, and a compact layer table.

Multiply-accumulates (MACs) come from `torch.utils.flop_counter.FlopCounterMode`, which counts the matrix work of
convolutions and linear layers (2 FLOPs per MAC). Batch norm, ReLU, pooling and the residual additions are not
counted: they cost a few operations per activation, around 1% of a ResNet's arithmetic, and papers leave them
out too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

# Top-level modules of the stem; their parameters are reported together as "stem".
STEM_MODULES = ("conv1", "bn1")


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """The number of parameters (scalars) in the model, optionally only those that require gradients."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def parameters_by_stage(model: nn.Module) -> dict[str, int]:
    """Parameters per top-level part, in order: 'stem' (conv1, bn1), 'layer1', ..., then 'bn_final' if any, 'fc'."""
    counts: dict[str, int] = {}
    for name, child in model.named_children():
        count = count_parameters(child)
        if count == 0:  # ReLU, pooling and the option-A shortcuts have nothing to count
            continue
        key = "stem" if name in STEM_MODULES else name
        counts[key] = counts.get(key, 0) + count
    return counts


def _example_input(model: nn.Module, input_size: Sequence[int]) -> torch.Tensor:
    """A zero batch of the given size on the model's device and in its dtype."""
    parameter = next(model.parameters(), None)
    if parameter is None:
        return torch.zeros(*input_size)
    return torch.zeros(*input_size, device=parameter.device, dtype=parameter.dtype)


def _count_flops(model: nn.Module, input_size: Sequence[int]) -> FlopCounterMode:
    """Run one forward pass in eval mode without gradients, counting FLOPs; the training mode is restored."""
    was_training = model.training
    counter = FlopCounterMode(display=False, depth=None)
    try:
        model.eval()  # batch statistics are not updated by this measurement
        with torch.no_grad(), counter:
            model(_example_input(model, input_size))
    finally:
        model.train(was_training)
    return counter


def conv2d_macs(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    output_size: int | tuple[int, int],
    groups: int = 1,
) -> int:
    """Multiply-accumulates of a 2-D convolution on one image, counted by hand from its shapes.

    Each of the `out_channels * H_out * W_out` output values is a dot product of `in_channels / groups * k_h * k_w`
    products; the bias (one addition per output) is not counted, as in `count_macs`.
    """
    k_h, k_w = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    h_out, w_out = (output_size, output_size) if isinstance(output_size, int) else output_size
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}.")
    return out_channels * h_out * w_out * (in_channels // groups) * k_h * k_w


def count_macs(model: nn.Module, input_size: Sequence[int] = (1, 3, 32, 32)) -> int:
    """Multiply-accumulates of one forward pass on a batch of `input_size` (convolutions and linear layers).

    A model built on the meta device (`with torch.device("meta"): ...`) is counted without any arithmetic.
    """
    return _count_flops(model, input_size).get_total_flops() // 2


@dataclass(frozen=True)
class LayerRow:
    """One row of a layer table: a module's name, type, output shape, parameters and MACs."""

    name: str
    type: str
    output_shape: tuple[int, ...] | None
    params: int
    macs: int


class LayerTable(list):
    """A list of LayerRow that prints as an aligned text table with a total line."""

    def __init__(self, rows: Sequence[LayerRow], total_params: int, total_macs: int) -> None:
        super().__init__(rows)
        self.total_params = total_params
        self.total_macs = total_macs

    def __str__(self) -> str:
        return format_table(self, self.total_params, self.total_macs)

    __repr__ = __str__


def format_table(rows: Sequence[LayerRow], total_params: int | None = None, total_macs: int | None = None) -> str:
    """Format layer rows as an aligned text table; a total line is added when totals are given."""
    header = ("layer", "type", "output shape", "params", "MACs")
    cells = [
        (
            row.name,
            row.type,
            "-" if row.output_shape is None else str(row.output_shape),
            f"{row.params:,}",
            f"{row.macs:,}",
        )
        for row in rows
    ]
    if total_params is not None and total_macs is not None:
        cells.append(("total", "", "", f"{total_params:,}", f"{total_macs:,}"))
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    # Text columns align left, numbers right.
    align = ("<", "<", "<", ">", ">")

    def render(line: Sequence[str]) -> str:
        return "  ".join(f"{text:{a}{w}}" for text, a, w in zip(line, align, widths)).rstrip()

    rule = "-" * len(render(header))
    return "\n".join([render(header), rule, *(render(line) for line in cells)])


def layer_table(
    model: nn.Module, input_size: Sequence[int] = (1, 3, 32, 32), level: int = 1, compact: bool = True
) -> LayerTable:
    """Rows for the modules `level` steps below the model (1: stem layers and stages; 2: blocks), in call order.

    `compact` leaves out the modules that neither hold parameters nor change the shape (ReLU, Identity).
    """
    if not isinstance(level, int) or isinstance(level, bool) or level < 1:
        raise ValueError(f"level must be a positive int (1: stages, 2: blocks, ...), got {level!r}.")
    # A module deeper than `level` is covered by its ancestor's row; a leaf above it gets its own row.
    chosen = {
        name: module
        for name, module in model.named_modules()
        if name and (name.count(".") + 1 == level or (name.count(".") + 1 < level and not list(module.children())))
    }
    shapes: dict[str, tuple[int, ...] | None] = {}
    unchanged: set[str] = set()  # the modules whose output has the shape of their input

    def recorder(name: str):
        def hook(module: nn.Module, inputs: tuple[object, ...], output: object) -> None:
            shapes[name] = tuple(output.shape) if isinstance(output, torch.Tensor) else None
            if inputs and isinstance(inputs[0], torch.Tensor) and tuple(inputs[0].shape) == shapes[name]:
                unchanged.add(name)

        return hook

    hooks = [module.register_forward_hook(recorder(name)) for name, module in chosen.items()]
    try:
        counter = _count_flops(model, input_size)
    finally:
        for hook in hooks:
            hook.remove()
    # FlopCounterMode names modules by the path from the root, which it calls by its class name.
    flops = counter.get_flop_counts()
    root = type(model).__name__
    rows = [
        LayerRow(
            name=name,
            type=type(chosen[name]).__name__,
            output_shape=shape,
            params=count_parameters(chosen[name]),
            macs=sum(flops.get(f"{root}.{name}", {}).values()) // 2,
        )
        for name, shape in shapes.items()  # the order in which the modules ran
        if not (compact and name in unchanged and count_parameters(chosen[name]) == 0)
    ]
    return LayerTable(rows, count_parameters(model), counter.get_total_flops() // 2)


__all__ = [
    "LayerRow",
    "LayerTable",
    "conv2d_macs",
    "count_macs",
    "count_parameters",
    "format_table",
    "layer_table",
    "parameters_by_stage",
]
