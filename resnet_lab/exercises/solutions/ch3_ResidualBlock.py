import torch
from torch import nn

from resnet_lab.exercises import ch3


class ResidualBlock(nn.Module):
    """A basic block that keeps the shape of its input."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + x  # the one addition of the shortcut
        return torch.relu(out)  # the bug: x was added a second time after this ReLU


_ = ch3.check_residual_block(ResidualBlock)
