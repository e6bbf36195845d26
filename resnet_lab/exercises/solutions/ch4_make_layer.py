from torch import nn

from resnet_lab.blocks import BasicBlock, Bottleneck
from resnet_lab.exercises import ch4


def make_layer(block: type[BasicBlock | Bottleneck], in_planes: int, planes: int,
               num_blocks: int, stride: int) -> nn.Sequential:
    """One stage of blocks; the first may halve the resolution and change the width."""
    layers = [block(in_planes, planes, stride)]  # bug 1: swapped arguments
    out_planes = planes * block.expansion  # bug 2: a bottleneck outputs 4 * planes
    for _ in range(num_blocks - 1):
        layers.append(block(out_planes, planes, 1))  # bug 3: stride on the first only
    return nn.Sequential(*layers)


_ = ch4.check_make_layer(make_layer)
