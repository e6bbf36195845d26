"""Residual networks as ensembles of paths (Veit et al. 2016): lesions at test time and the gradient of each path.

- `modules_replaced(model, {name: module})`: a context manager that puts other modules in place of some of the
  model's for the duration of a `with` block, and restores the model afterwards, even after an error. Deleting a
  block, deleting a layer and reordering blocks are all replacements, so the network's own forward pass runs
  unchanged: nothing here re-implements a block.
- `block_skip(block)`: what a block becomes when it is deleted. In a residual block, its shortcut alone: the
  residual branch is removed, as in Veit et al. (the block then computes relu(shortcut(x)), which is x itself for
  the identity shortcut, since x >= 0 after the previous ReLU). A plain block has no shortcut; deleting it leaves
  the parameter-free map of option A (identity, or subsample and pad with zero channels where the shape changes),
  so that the rest of the network still receives a tensor of the shape it expects.
- `layer_deletions(model)`: the single conv-BN layers that can be removed without changing a shape.
- `path_counts(n)`: the number of paths of each length through n residual blocks, C(n, k).
- `path_gradient_norms(...)`: Veit's measurement: one forward pass, then backward passes in which k sampled blocks
  pass the gradient through their residual branch only and the others through their shortcut only.

Torch only: no data loading, no training engine, no plotting.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from resnet_lab.blocks import BasicBlock, Bottleneck, PadShortcut, PreActBlock, PreActBottleneck
from resnet_lab.gradflow import unit_names


@dataclass(frozen=True)
class BlockInfo:
    """One block of a network: its module name, stage (1-based), shape change and whether it is residual."""

    name: str
    stage: int
    in_channels: int
    out_channels: int
    stride: int
    residual: bool

    @property
    def downsampling(self) -> bool:
        """Whether the block changes the resolution or the width (the first block of stages 2 and 3)."""
        return self.stride != 1 or self.in_channels != self.out_channels


def _last_conv(block: nn.Module) -> nn.Conv2d:
    """The convolution that ends the block's branch (conv3 in bottleneck blocks, conv2 in basic blocks)."""
    return block.conv3 if isinstance(block, (Bottleneck, PreActBottleneck)) else block.conv2


def block_info(model: nn.Module) -> list[BlockInfo]:
    """The model's blocks from input to output, with their stage and shape change."""
    modules = dict(model.named_modules())
    names = unit_names(model)
    if not names:
        raise ValueError("No blocks (modules named layerN.M) found: pass a resnet_lab ResNet or plain network.")
    infos = []
    for name in names:
        block = modules[name]
        if not isinstance(block, (BasicBlock, Bottleneck, PreActBlock, PreActBottleneck)):
            raise ValueError(f"{name} is a {type(block).__name__}, not a resnet_lab block.")
        strides = [m.stride[0] for m in (block.conv1, block.conv2, getattr(block, "conv3", None)) if m is not None]
        infos.append(BlockInfo(name=name, stage=int(name.split(".")[0].removeprefix("layer")),
                               in_channels=block.conv1.in_channels, out_channels=_last_conv(block).out_channels,
                               stride=max(strides), residual=bool(block.residual)))
    return infos


def block_skip(block: nn.Module) -> nn.Module:
    """The module that stands in for `block` when it is deleted: its shortcut alone (see the module docstring)."""
    info = block_info(_Wrap(block))[0]
    if not info.residual:  # plain block: the parameter-free map that keeps the shapes
        return PadShortcut(info.in_channels, info.out_channels, info.stride) if info.downsampling else nn.Identity()
    shortcut = block.downsample if block.downsample is not None else nn.Identity()
    if block.preact:
        if getattr(block, "projection", False):
            raise ValueError(
                "This pre-activation block's projection shortcut reads the block's own BN-ReLU output, so it "
                "cannot run without the block: delete only blocks with identity or option-A shortcuts."
            )
        return shortcut  # pre-activation blocks have no ReLU after the addition
    return nn.Sequential(shortcut, nn.ReLU())  # relu(0 + shortcut(x)): the branch is gone, the ReLU stays


class _Wrap(nn.Module):
    """A one-block model named like a stage's first block, so that block_info can describe a lone block."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.layer1 = nn.Sequential(block)


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


@contextmanager
def modules_replaced(model: nn.Module, replacements: Mapping[str, nn.Module]) -> Iterator[nn.Module]:
    """Within the `with` block, each named submodule of `model` is replaced by the given module; restored after."""
    modules = dict(model.named_modules())
    unknown = [name for name in replacements if name not in modules or name == ""]
    if unknown:
        raise KeyError(f"{model.__class__.__name__} has no submodule {', '.join(map(repr, unknown))}. Block names "
                       "look like 'layer2.3' (see block_info(model)); layer names like 'layer2.3.conv1'.")
    saved = {name: modules[name] for name in replacements}
    try:
        for name, module in replacements.items():
            _set_module(model, name, module)
        yield model
    finally:
        for name, module in saved.items():
            _set_module(model, name, module)


def _check_blocks(model: nn.Module, names: Sequence[str]) -> dict[str, nn.Module]:
    known = {info.name for info in block_info(model)}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise KeyError(f"No block named {', '.join(map(repr, unknown))}; the blocks are {', '.join(sorted(known))}.")
    if len(set(names)) != len(names):
        raise ValueError(f"A block is named twice in {list(names)}: each block can be deleted once.")
    modules = dict(model.named_modules())
    return {name: modules[name] for name in names}


def blocks_deleted(model: nn.Module, names: Sequence[str]):
    """Context manager: the named blocks (e.g. ['layer1.3']) are deleted (see `block_skip`) within the block."""
    blocks = _check_blocks(model, names)
    return modules_replaced(model, {name: block_skip(block) for name, block in blocks.items()})


def blocks_swapped(model: nn.Module, pairs: Sequence[tuple[str, str]]):
    """Context manager: each pair of blocks trades places (both must keep their shape: not downsampling)."""
    infos = {info.name: info for info in block_info(model)}
    flat = [name for pair in pairs for name in pair]
    blocks = _check_blocks(model, flat)
    for a, b in pairs:
        if infos[a].downsampling or infos[b].downsampling or infos[a].in_channels != infos[b].in_channels:
            raise ValueError(f"Blocks {a} and {b} cannot trade places: only blocks that keep the shape of their "
                             "input, in the same stage, are interchangeable.")
    replacements = {}
    for a, b in pairs:
        replacements[a], replacements[b] = blocks[b], blocks[a]
    return modules_replaced(model, replacements)


def layer_deletions(model: nn.Module) -> list[str]:
    """Single conv-BN layers that can be removed without changing a shape, as 'layer1.0.conv1' (basic blocks).

    Removing one replaces its convolution and its BN with the identity; the ReLU after it stays (a no-op on the
    non-negative input). The first convolution of a downsampling block changes the shape and is left out.
    """
    names = []
    modules = dict(model.named_modules())
    for info in block_info(model):
        block = modules[info.name]
        if not isinstance(block, BasicBlock):
            raise ValueError(f"layer deletion is defined for basic post-activation blocks; {info.name} is a "
                             f"{type(block).__name__}.")
        if not info.downsampling:
            names.append(f"{info.name}.conv1")
        names.append(f"{info.name}.conv2")
    return names


def layers_deleted(model: nn.Module, names: Sequence[str]):
    """Context manager: the named layers (from `layer_deletions`) are removed: conv and BN become identities."""
    allowed = set(layer_deletions(model))
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise KeyError(f"Cannot delete {', '.join(map(repr, unknown))}: deletable layers are listed by "
                       "layer_deletions(model) (a downsampling block's conv1 changes the shape).")
    replacements = {}
    for name in names:
        replacements[name] = nn.Identity()
        replacements[name.replace(".conv", ".bn")] = nn.Identity()  # conv1 -> bn1, conv2 -> bn2
    return modules_replaced(model, replacements)


def random_blocks(model: nn.Module, k: int, generator: torch.Generator, *,
                  include_downsampling: bool = False) -> list[str]:
    """k distinct blocks drawn at random (downsampling blocks left out unless asked), in network order."""
    candidates = [i.name for i in block_info(model) if include_downsampling or not i.downsampling]
    if not 0 <= k <= len(candidates):
        raise ValueError(f"k must be between 0 and {len(candidates)} (the blocks that can be drawn), got {k}.")
    picked = torch.randperm(len(candidates), generator=generator)[:k].sort().values
    return [candidates[int(i)] for i in picked]


def random_swaps(model: nn.Module, k: int, generator: torch.Generator) -> list[tuple[str, str]]:
    """k pairs of interchangeable blocks (same stage, not downsampling), 2k distinct blocks in all."""
    by_stage: dict[int, list[str]] = {}
    for info in block_info(model):
        if not info.downsampling:
            by_stage.setdefault(info.stage, []).append(info.name)
    pairs: list[tuple[str, str]] = []
    free = {stage: list(names) for stage, names in by_stage.items()}
    while len(pairs) < k:
        stages = [s for s, names in free.items() if len(names) >= 2]
        if not stages:
            raise ValueError(f"Only {len(pairs)} disjoint pairs of interchangeable blocks exist; asked for {k}.")
        stage = stages[int(torch.randint(len(stages), (1,), generator=generator))]
        names = free[stage]
        i, j = torch.randperm(len(names), generator=generator)[:2].tolist()
        pairs.append((names[i], names[j]))
        free[stage] = [n for idx, n in enumerate(names) if idx not in (i, j)]
    return pairs


# ----------------------------------------------------------------------------------------------------------------
# Paths and their gradients


def path_counts(n: int) -> list[int]:
    """How many of the 2^n paths through n residual blocks pass through k residual branches, k = 0..n."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative number of blocks, got {n!r}.")
    return [math.comb(n, k) for k in range(n + 1)]


class _Gate(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by gate[index] (read when the backward pass runs)."""

    @staticmethod
    def forward(ctx, x: Tensor, gates: Tensor, index: int) -> Tensor:  # type: ignore[override]
        ctx.gates, ctx.index = gates, index
        return x.clone()  # a new tensor, not a view: the block may modify the result in place

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad * ctx.gates[ctx.index], None, None


class _GatedShortcut(nn.Module):
    """A block's shortcut (None: the identity) whose backward pass is multiplied by a gate."""

    def __init__(self, shortcut: nn.Module | None, gates: Tensor, index: int) -> None:
        super().__init__()
        self.shortcut, self.gates, self.index = shortcut, gates, index

    def forward(self, x: Tensor) -> Tensor:
        return _Gate.apply(x if self.shortcut is None else self.shortcut(x), self.gates, self.index)


@contextmanager
def gated_paths(model: nn.Module) -> Iterator[tuple[Tensor, Tensor]]:
    """Within the block, every residual block's branch and shortcut pass their gradient times a gate.

    Yields (branch_gates, skip_gates), two tensors of one value per block, initially ones: set them between
    backward passes of one forward graph to choose which paths the gradient may take. The forward pass is
    unchanged. Post-activation residual blocks only (their branch and shortcut are separate callables).
    """
    infos = block_info(model)
    modules = dict(model.named_modules())
    blocks = [modules[i.name] for i in infos]
    bad = [i.name for i, b in zip(infos, blocks) if not i.residual or b.preact]
    if bad:
        raise ValueError(f"Paths are defined for post-activation residual blocks; {', '.join(bad[:3])} "
                         f"{'is' if len(bad) == 1 else 'are'} plain or pre-activation.")
    branch_gates, skip_gates = torch.ones(len(blocks)), torch.ones(len(blocks))
    saved = [(b.downsample, b.__dict__.get("branch")) for b in blocks]
    try:
        for index, block in enumerate(blocks):
            original = type(block).branch.__get__(block)  # the class's branch, bound: the library's own code
            block.branch = (lambda x, f=original, i=index: _Gate.apply(f(x), branch_gates, i))
            block.downsample = _GatedShortcut(block.downsample, skip_gates, index)
        yield branch_gates, skip_gates
    finally:
        for block, (downsample, branch) in zip(blocks, saved):
            if downsample is None:  # an identity shortcut is a plain None attribute, not a module slot
                del block._modules["downsample"]
                block.__dict__["downsample"] = None
            else:
                block.downsample = downsample
            if branch is None:
                del block.branch
            else:
                block.branch = branch


def _first_block_input(model: nn.Module, images: Tensor) -> tuple[Tensor, Tensor]:
    """The logits and the input of the first block (the stem's output), in one forward pass."""
    captured: list[Tensor] = []
    first = model.get_submodule(block_info(model)[0].name)
    handle = first.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    try:
        logits = model(images)
    finally:
        handle.remove()
    return logits, captured[0]


def path_gradients(model: nn.Module, images: Tensor, labels: Tensor, selections: Sequence[Sequence[int]]
                   ) -> list[Tensor]:
    """The gradient of the summed loss with respect to the first block's input, along each selected path.

    A selection lists the blocks (by index) whose residual branch the path goes through; it goes through the
    shortcut of every other block. One forward pass is shared by all selections.
    """
    n = len(block_info(model))
    grads = []
    with gated_paths(model) as (branch_gates, skip_gates):
        logits, x0 = _first_block_input(model, images)
        logits = logits if logits.dtype == torch.float64 else logits.float()  # fp16/bf16 logits: loss in fp32
        loss = F.cross_entropy(logits, labels, reduction="sum")  # summed: each image's gradient is its own
        for selection in selections:
            if any(not 0 <= i < n for i in selection):
                raise ValueError(f"Block indices must be between 0 and {n - 1}, got {list(selection)}.")
            branch_gates.zero_()
            branch_gates[list(selection)] = 1.0
            skip_gates.copy_(1.0 - branch_gates)
            (grad,) = torch.autograd.grad(loss, x0, retain_graph=True)
            grads.append(grad)
    return grads


def path_gradient_norms(model: nn.Module, images: Tensor, labels: Tensor, lengths: Sequence[int], samples: int,
                        generator: torch.Generator) -> dict[int, list[float]]:
    """Veit et al.'s measurement: for each path length k, `samples` paths through k random residual branches;
    for each path, the mean over the images of the norm of the gradient it carries to the first block's input.

    Run it in eval mode (`model.eval()`) to measure the trained network as it is used; in train mode BN mixes
    the images of the batch.
    """
    n = len(block_info(model))
    selections, keys = [], []
    for k in lengths:
        if not 0 <= k <= n:
            raise ValueError(f"Path lengths run from 0 to {n} (the number of blocks), got {k}.")
        for _ in range(samples):
            selections.append(torch.randperm(n, generator=generator)[:k].tolist())
            keys.append(k)
    norms: dict[int, list[float]] = {k: [] for k in lengths}
    for k, grad in zip(keys, path_gradients(model, images, labels, selections)):
        norms[k].append(float(grad.flatten(1).norm(dim=1).mean()))
    return norms


def gradient_by_length(norms: Mapping[int, Sequence[float]], n: int) -> dict[int, float]:
    """Veit's figure 6(c): the total gradient carried by paths of each length, count(k) x mean norm(k)."""
    counts = path_counts(n)
    return {k: counts[k] * sum(values) / len(values) for k, values in sorted(norms.items())}


def effective_lengths(totals: Mapping[int, float], share: float = 0.9) -> tuple[int, int]:
    """The shortest range of path lengths [a, b] that carries at least `share` of the summed gradient."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}.")
    lengths = sorted(totals)
    values = [totals[k] for k in lengths]
    whole = sum(values)
    best: tuple[int, int] | None = None
    for i in range(len(lengths)):
        running = 0.0
        for j in range(i, len(lengths)):
            running += values[j]
            if running >= share * whole:
                if best is None or lengths[j] - lengths[i] < best[1] - best[0]:
                    best = (lengths[i], lengths[j])
                break
    return best if best is not None else (lengths[0], lengths[-1])


__all__ = [
    "BlockInfo", "block_info", "block_skip", "blocks_deleted", "blocks_swapped", "effective_lengths",
    "gated_paths", "gradient_by_length", "layer_deletions", "layers_deleted", "modules_replaced", "path_counts",
    "path_gradient_norms", "path_gradients", "random_blocks", "random_swaps",
]
