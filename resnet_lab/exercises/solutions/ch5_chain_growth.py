import math

from resnet_lab.exercises import ch5


def chain_growth(branch_std: float, blocks: int, residual: bool) -> float:
    """Expected growth of the gradient norm over `blocks` blocks of a linear chain."""
    # The mean square grows by 1 + s^2 per residual block (by s^2 per plain block); the norm by its root.
    per_block = math.sqrt(1 + branch_std**2) if residual else branch_std
    return per_block**blocks


_ = ch5.check_chain_growth(chain_growth)
