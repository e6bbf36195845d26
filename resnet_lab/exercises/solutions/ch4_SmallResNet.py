import torch
import torch.nn.functional as F
from torch import nn

from resnet_lab.blocks import BasicBlock
from resnet_lab.exercises import ch4


class SmallResNet(nn.Module):
    """A 3x3 stem, four basic blocks (three halve the resolution), a classifier."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            BasicBlock(16, 16),
            BasicBlock(16, 32, stride=2),
            BasicBlock(32, 64, stride=2),
            BasicBlock(64, 64, stride=2),
        )
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.features(x)
        # The bug: avg_pool2d(out, 4) averages 4x4 windows, the whole map only for 32x32
        # inputs. Adaptive pooling to 1x1 averages each channel over the whole map.
        out = F.adaptive_avg_pool2d(out, 1)
        return self.fc(torch.flatten(out, 1))


_ = ch4.check_any_size_head(SmallResNet)
