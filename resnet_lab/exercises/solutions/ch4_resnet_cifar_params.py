from resnet_lab.exercises import ch4


def resnet_cifar_params(n: int) -> int:
    """Parameters of the CIFAR ResNet-(6n+2) with option-A shortcuts and 10 classes."""
    total = 3 * 16 * 9 + 2 * 16  # stem: 3x3 conv, 3 -> 16 channels; BN (gamma, beta)
    in_width = 16
    for width in (16, 32, 64):
        # the first conv of a stage reads the previous stage's width
        convs = 9 * in_width * width + (2 * n - 1) * 9 * width * width
        bns = 2 * n * 2 * width  # one BN after each of the 2n convolutions
        total += convs + bns
        in_width = width
    return total + 64 * 10 + 10  # classifier: weights and biases


_ = ch4.check_cifar_params(resnet_cifar_params)
