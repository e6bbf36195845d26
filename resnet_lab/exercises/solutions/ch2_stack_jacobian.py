import torch

from resnet_lab.exercises import ch2


def stack_jacobian(jacobians: list[torch.Tensor]) -> torch.Tensor:
    """d x_n / d x_0 of a residual stack, from its branch Jacobians."""
    eye = torch.eye(jacobians[0].shape[0], dtype=jacobians[0].dtype)
    result = eye
    for j in jacobians:  # block i acts after blocks 0..i-1: from the left
        result = (eye + j) @ result
    return result


_ = ch2.check_stack_jacobian(stack_jacobian)
