import torch

from resnet_lab.exercises import ch7


def filter_normalize(direction: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Each filter of direction rescaled to the norm of weight's filter; 1-D: zeros."""
    if weight.dim() <= 1:  # biases and BN parameters are not perturbed
        return torch.zeros_like(weight)
    d_norms = direction.flatten(1).norm(dim=1)  # one norm per filter (first dimension)
    w_norms = weight.flatten(1).norm(dim=1)
    scale = w_norms / (d_norms + 1e-10)
    return direction * scale.view(-1, *([1] * (weight.dim() - 1)))


_ = ch7.check_filter_normalize(filter_normalize)
