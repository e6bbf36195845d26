import torch

from resnet_lab.data import BatchLoader
from resnet_lab.exercises import ch1


def training_error(model, x, y, mean, std, batch_size=100):
    """Fraction of the uint8 images x that the model misclassifies."""
    # Bug 1: train=True augments (random crops and flips), shuffles, and
    # drops the last incomplete batch. train=False: every image once, as is.
    loader = BatchLoader(x, y, mean, std, batch_size=batch_size,
                         train=False)
    was_training = model.training
    # Bug 2: in training mode, BN normalizes with each batch's statistics
    # and updates its running averages: the measurement changes the model.
    model.eval()
    wrong = 0
    with torch.no_grad():  # bug 3: a measurement needs no autograd graph
        for images, labels in loader:
            wrong += (model(images).argmax(dim=1) != labels).sum().item()
    model.train(was_training)
    return wrong / len(y)


_ = ch1.check_training_error(training_error)
