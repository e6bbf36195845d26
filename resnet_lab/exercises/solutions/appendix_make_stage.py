from torch import nn

from resnet_lab import blocks
from resnet_lab.exercises import appendix


def make_stage(in_planes: int, planes: int, num_blocks: int, stride: int) -> nn.Module:
    """A ResNet stage: num_blocks basic blocks, the first one changing the shape."""
    # Only the first block changes the shape (stride 2 in its conv1 and its shortcut);
    # the others keep it. No pooling layer between the blocks.
    layers = [blocks.BasicBlock(in_planes, planes, stride, shortcut="B")]
    for _ in range(1, num_blocks):
        layers.append(blocks.BasicBlock(planes, planes, 1, shortcut="B"))
    return nn.Sequential(*layers)


_ = appendix.check_make_stage(make_stage)
