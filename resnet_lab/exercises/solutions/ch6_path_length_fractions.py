import math

from resnet_lab.exercises import ch6


def path_length_fractions(n: int) -> list[float]:
    """Fraction of the 2^n paths through n blocks that go through k branches."""
    # Each block is passed either through its branch or its shortcut: a path is a
    # subset of the blocks, and C(n, k) subsets have k elements.
    return [math.comb(n, k) / 2**n for k in range(n + 1)]


_ = ch6.check_path_length_fractions(path_length_fractions)
