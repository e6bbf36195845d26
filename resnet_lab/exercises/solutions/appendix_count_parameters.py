from torch import nn

from resnet_lab.exercises import appendix


def count_parameters(model: nn.Module) -> int:
    """The number of learned parameters of a model, the figure papers report."""
    # model.parameters() lists every learned tensor once, frozen or not, and leaves out
    # the buffers (BN's running statistics) that model.state_dict() also holds.
    return sum(parameter.numel() for parameter in model.parameters())


_ = appendix.check_count_parameters(count_parameters)
