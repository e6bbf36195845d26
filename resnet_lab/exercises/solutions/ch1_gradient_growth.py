import torch
from torch import nn

from resnet_lab.exercises import ch1
from resnet_lab.gradflow import unit_gradient_norms


def gradient_growth(model: nn.Module, images: torch.Tensor,
                    labels: torch.Tensor) -> float:
    """Gradient norm at the first block's output over the last block's."""
    was_training = model.training
    model.train()  # batch statistics, as during SGD
    try:
        # the norms come in order, from the input to the output
        norms = list(unit_gradient_norms(model, images, labels).values())
    finally:
        model.train(was_training)
    return norms[0] / norms[-1]


_ = ch1.check_gradient_growth(gradient_growth)
