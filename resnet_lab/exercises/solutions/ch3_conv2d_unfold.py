import torch
import torch.nn.functional as F

from resnet_lab.exercises import ch3


def conv2d_unfold(x: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None = None,
                  stride: int = 1, padding: int = 0) -> torch.Tensor:
    """F.conv2d(x, weight, bias, stride, padding), computed from F.unfold's windows."""
    n, _, height, width = x.shape
    c_out, _, k, _ = weight.shape
    h_out = (height + 2 * padding - k) // stride + 1  # the output-size rule (3.2)
    w_out = (width + 2 * padding - k) // stride + 1
    # One column per window: (N, C_in * k * k, h_out * w_out),
    # each in the order (channel, kernel row, kernel column)
    cols = F.unfold(x, k, padding=padding, stride=stride)
    # Each output channel's weights as one row, in the same order: (C_out, C_in * k * k)
    out = weight.reshape(c_out, -1) @ cols  # (N, C_out, h_out * w_out)
    out = out.reshape(n, c_out, h_out, w_out)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)  # one shift per output channel
    return out


_ = ch3.check_conv2d_unfold(conv2d_unfold)
