import torch
from torch import nn

from resnet_lab.exercises import ch3


class PreActBasicBlock(nn.Module):
    """Pre-activation basic block for an unchanged shape (He et al. 2016b)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(torch.relu(self.bn1(x)))  # BN and ReLU before each conv
        out = self.conv2(torch.relu(self.bn2(out)))
        return x + out  # nothing after the addition: the identity path stays clean


_ = ch3.check_preact_block(PreActBasicBlock)
