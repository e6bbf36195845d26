from resnet_lab.exercises import ch8


def step_lr(step: int, total_steps: int, peak_lr: float) -> float:
    """He et al.'s schedule: peak_lr, divided by 10 at 50% and at 75% of training."""
    drops = (step >= 0.5 * total_steps) + (step >= 0.75 * total_steps)  # 0, 1 or 2
    return peak_lr * 0.1 ** drops


_ = ch8.check_step_schedule(step_lr)
