from torch import nn

from resnet_lab.exercises import appendix


def prepare_finetuning(model: nn.Module, num_classes: int) -> nn.Module:
    """Ready an ImageNet-pretrained ResNet to learn `num_classes` new classes."""
    for parameter in model.parameters():
        parameter.requires_grad = False  # keep the pretrained features as they are
    # The bug: the 1000-class ImageNet head was kept. A new layer, created after the
    # freezing, is trainable; its input size is read from the model (512 for
    # ResNet-18 and -34, 2048 for ResNet-50 and deeper).
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


_ = appendix.check_prepare_finetuning(prepare_finetuning)
