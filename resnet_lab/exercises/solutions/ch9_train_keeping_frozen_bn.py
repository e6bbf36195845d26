from torch import nn

from resnet_lab.exercises import ch9


def train_keeping_frozen_bn(model: nn.Module) -> None:
    """Train mode for everything except BN layers whose parameters are frozen."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            frozen = not any(p.requires_grad for p in module.parameters())
            if frozen:
                module.eval()  # running statistics stay those of the pretraining data


_ = ch9.check_train_keeping_frozen_bn(train_keeping_frozen_bn)
