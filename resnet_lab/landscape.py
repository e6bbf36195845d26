"""Loss landscapes (Li et al. 2018): the loss of a trained network along filter-normalized random directions.

- `random_direction(model, generator)`: a Gaussian direction in weight space, rescaled filter by filter so that
  each filter of the direction has the norm of the same filter of the network (filter normalization). As in the
  authors' code (tomgoldstein/loss-landscape, `net_plotter.py`, with `--xignore biasbn`), the direction is zero
  for every parameter with one dimension (biases and batch-norm scales and shifts), and batch-norm running
  statistics, which are buffers rather than parameters, are not moved.
- `perturbed(model, base, directions, steps)`: the network at base + sum of step * direction, within a `with`
  block; the base weights come back afterwards.
- `loss_slice` and `loss_grid`: the loss along one direction and over the plane of two, from any evaluation
  function (the chapter passes one that evaluates a fixed set of images in eval mode, as the authors' code does).
- `interpolation_states(start, end, alpha)`: the straight line from one network to another (e.g. from the
  initialization to the trained weights), every entry of the state dict interpolated.

Torch only: no data loading, no training engine, no plotting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

Direction = dict[str, Tensor]  # parameter name -> a tensor of the parameter's shape
Evaluate = Callable[[nn.Module], Mapping[str, float]]  # the model -> {"loss": ..., ...}


def base_weights(model: nn.Module) -> Direction:
    """A copy of the model's parameters, by name: the point the landscape is centred on."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def filter_norms(tensor: Tensor) -> Tensor:
    """The norm of each filter (each slice along the first dimension) of a weight tensor."""
    if tensor.dim() < 2:
        raise ValueError(f"filters are the slices of a tensor of 2 or more dimensions; got {tuple(tensor.shape)}.")
    return tensor.flatten(1).norm(dim=1)


def random_direction(model: nn.Module, generator: torch.Generator) -> Direction:
    """A filter-normalized Gaussian direction: each filter with the norm of the model's filter; 1-D params zero."""
    direction = {}
    for name, p in model.named_parameters():
        w = p.detach()
        if w.dim() <= 1:  # biases and BN scales and shifts: not perturbed (the authors' "ignore biasbn")
            direction[name] = torch.zeros_like(w)
            continue
        d = torch.randn(w.shape, generator=generator, dtype=w.dtype).to(w.device)
        scale = filter_norms(w) / (filter_norms(d) + 1e-10)  # the authors' code adds the same 1e-10
        direction[name] = d * scale.view(-1, *([1] * (w.dim() - 1)))
    return direction


def _check_direction(model: nn.Module, direction: Mapping[str, Tensor]) -> None:
    params = dict(model.named_parameters())
    missing = [n for n in params if n not in direction]
    extra = [n for n in direction if n not in params]
    if missing or extra:
        raise ValueError(f"The direction does not fit this model (missing {missing[:3]}, unexpected {extra[:3]}): "
                         "make directions with random_direction(model, ...) on the same network.")
    for name, p in params.items():
        if direction[name].shape != p.shape:
            raise ValueError(f"Direction entry {name} has shape {tuple(direction[name].shape)}, the parameter "
                             f"{tuple(p.shape)}.")


@contextmanager
def perturbed(model: nn.Module, base: Mapping[str, Tensor], directions: Sequence[Mapping[str, Tensor]],
              steps: Sequence[float]) -> Iterator[nn.Module]:
    """Within the block, each parameter is base + sum(step * direction); afterwards it is base again."""
    if len(directions) != len(steps):
        raise ValueError(f"One step per direction: got {len(directions)} directions and {len(steps)} steps.")
    for direction in directions:
        _check_direction(model, direction)
    params = dict(model.named_parameters())
    try:
        with torch.no_grad():
            for name, p in params.items():
                value = base[name].clone()
                for direction, step in zip(directions, steps):
                    value += step * direction[name]
                p.copy_(value)
        yield model
    finally:
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(base[name])


def loss_slice(model: nn.Module, direction: Mapping[str, Tensor], alphas: Sequence[float],
               evaluate: Evaluate, base: Mapping[str, Tensor] | None = None) -> list[dict[str, float]]:
    """evaluate(model at base + alpha * direction) for each alpha (base: the model's current weights)."""
    base = base_weights(model) if base is None else base
    rows = []
    for alpha in alphas:
        with perturbed(model, base, [direction], [alpha]):
            rows.append({"alpha": float(alpha), **evaluate(model)})
    return rows


def loss_grid(model: nn.Module, x_direction: Mapping[str, Tensor], y_direction: Mapping[str, Tensor],
              alphas: Sequence[float], betas: Sequence[float], evaluate: Evaluate,
              base: Mapping[str, Tensor] | None = None, progress: Callable[[int, int], None] | None = None
              ) -> dict[str, list[list[float]]]:
    """evaluate at base + alpha * x + beta * y over the grid: {metric: rows over betas, columns over alphas}."""
    base = base_weights(model) if base is None else base
    grid: dict[str, list[list[float]]] = {}
    for row, beta in enumerate(betas):
        values: dict[str, list[float]] = {}
        for alpha in alphas:
            with perturbed(model, base, [x_direction, y_direction], [alpha, beta]):
                for key, value in evaluate(model).items():
                    values.setdefault(key, []).append(float(value))
        for key, row_values in values.items():
            grid.setdefault(key, []).append(row_values)
        if progress is not None:
            progress(row + 1, len(betas))
    return grid


def local_minima(values: Sequence[Sequence[float]]) -> list[tuple[int, int]]:
    """(row, column) of every interior grid point lower than all 8 of its neighbours: a bowl has one, a landscape
    with several basins has several. Points on the border are left out: the slope they end may go on outside."""
    rows, cols = len(values), len(values[0])
    found = []
    for i in range(1, rows - 1):
        for j in range(1, cols - 1):
            neighbours = [values[a][b] for a in range(max(i - 1, 0), min(i + 2, rows))
                          for b in range(max(j - 1, 0), min(j + 2, cols)) if (a, b) != (i, j)]
            if all(values[i][j] < v for v in neighbours):
                found.append((i, j))
    return found


def interpolation_states(start: Mapping[str, Tensor], end: Mapping[str, Tensor], alpha: float) -> dict[str, Tensor]:
    """(1 - alpha) * start + alpha * end for every floating-point entry of two state dicts (others from end)."""
    if list(start) != list(end):
        raise ValueError("The two state dicts do not belong to the same network (their keys differ).")
    return {k: (1 - alpha) * start[k] + alpha * end[k] if end[k].is_floating_point() else end[k].clone()
            for k in end}


__all__ = ["Direction", "base_weights", "filter_norms", "interpolation_states", "local_minima", "loss_grid",
           "loss_slice", "perturbed", "random_direction"]
