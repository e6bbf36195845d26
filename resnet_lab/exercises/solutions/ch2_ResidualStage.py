import torch
from torch import nn

from resnet_lab.exercises import ch2


class ResidualUnit(nn.Module):
    """One residual unit: input + branch(input)."""

    def __init__(self, branch: nn.Module):
        super().__init__()
        self.branch = branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class ResidualStage(nn.Module):
    """Two residual units in a row."""

    def __init__(self, f1: nn.Module, f2: nn.Module):
        super().__init__()
        self.unit1 = ResidualUnit(f1)
        self.unit2 = ResidualUnit(f2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Each unit adds its own input already; one more `+ x` would give
        # the identity path a weight of 2.
        return self.unit2(self.unit1(x))


_ = ch2.check_residual_stage(ResidualStage)
