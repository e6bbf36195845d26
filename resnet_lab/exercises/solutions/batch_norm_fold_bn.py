import torch
from torch import nn

from resnet_lab.exercises import batch_norm


def fold_bn(conv: nn.Conv2d,
            bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of one conv equal to bn(conv(x)), bn in eval mode."""
    with torch.no_grad():
        # a_c: one scale per output channel
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv_bias = conv.bias
        if conv_bias is None:
            conv_bias = torch.zeros_like(bn.running_mean)
        weight = conv.weight * scale.view(-1, 1, 1, 1)  # filter c times a_c
        # b_c, with the conv's own bias passed through the batch norm
        bias = bn.bias + scale * (conv_bias - bn.running_mean)
    return weight, bias


_ = batch_norm.check_fold_bn(fold_bn)
