"""Checkers for the exercises of chapter 7 (loss landscapes).

The checker compares the reader's filter normalization with `resnet_lab.landscape.random_direction`'s rule on
tensors of several shapes, and names the classic mistakes: normalizing the whole layer instead of each filter,
scaling to unit norm instead of the weights' norm, and moving biases and batch-norm parameters.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from resnet_lab.exercises import Verdict, run_check
from resnet_lab.landscape import filter_norms


def check_filter_normalize(filter_normalize: Callable[[Tensor, Tensor], Tensor]) -> Verdict:
    """filter_normalize(direction, weight) must rescale each filter of direction to the norm of weight's filter,
    and return zeros for 1-D tensors (biases, BN parameters)."""

    def test() -> str | None:
        generator = torch.Generator().manual_seed(7)
        for shape in ((4, 3, 3, 3), (10, 64), (8, 2, 1, 1), (16,)):
            weight = torch.randn(shape, generator=generator, dtype=torch.float64) * torch.rand(
                shape[0], *([1] * (len(shape) - 1)), generator=generator, dtype=torch.float64) * 3
            direction = torch.randn(shape, generator=generator, dtype=torch.float64)
            saved = direction.clone()
            result = filter_normalize(direction.clone(), weight.clone())
            where = f"for a weight of shape {shape}"
            if not isinstance(result, Tensor) or result.shape != weight.shape:
                return f"return a tensor of the weight's shape {where}."
            if len(shape) == 1:
                if torch.count_nonzero(result):
                    return ("biases and batch-norm parameters (1-D tensors) get a zero direction, as in Li et "
                            "al.'s code with ignore='biasbn': the landscape moves the filters only.")
                continue
            norms, target = filter_norms(result), filter_norms(weight)
            if torch.allclose(norms, torch.ones_like(norms)):
                return (f"each filter has norm 1 {where}: scale it to the norm of the same filter of the weight, "
                        "so that the direction is as large as the filter it moves.")
            if torch.allclose(result.norm(), weight.norm()) and not torch.allclose(norms, target):
                return (f"you normalized the whole tensor {where} (layer normalization); normalize each filter "
                        "(each slice along the first dimension) on its own.")
            if not torch.allclose(norms, target, rtol=1e-6):
                return f"the filters of the result do not have the weight's filter norms {where}."
            cos = torch.nn.functional.cosine_similarity(result.flatten(1), saved.flatten(1), dim=1)
            if not torch.allclose(cos, torch.ones_like(cos)):
                return (f"each filter of the result must point the way the random direction's filter points "
                        f"{where}: rescale it, do not replace it (with the weight itself, for instance).")
        return None

    return run_check("filter_normalize", test)


__all__ = ["check_filter_normalize"]
