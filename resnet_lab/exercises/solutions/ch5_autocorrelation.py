import torch

from resnet_lab.exercises import ch5


def autocorrelation(g: torch.Tensor, k: int) -> float:
    """Uncentred correlation of g with itself shifted by k points."""
    a, b = g[: len(g) - k], g[k:]  # the overlapping parts
    return float((a * b).sum() / (a.pow(2).sum() * b.pow(2).sum()).sqrt())


_ = ch5.check_autocorrelation(autocorrelation)
