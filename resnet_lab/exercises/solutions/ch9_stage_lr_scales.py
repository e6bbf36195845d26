from resnet_lab.exercises import ch9


def stage_lr_scales(names: list[str], decay: float) -> dict[str, float]:
    """Learning-rate scale of each stage, `names` listed from the input to the head."""
    last = len(names) - 1
    # The head (last) gets decay ** 0 = 1; each stage below it one more factor of decay.
    return {name: decay ** (last - i) for i, name in enumerate(names)}


_ = ch9.check_stage_lr_scales(stage_lr_scales)
