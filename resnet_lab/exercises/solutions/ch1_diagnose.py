from resnet_lab.exercises import ch1


def diagnose(shallow: dict, deep: dict, noise: float) -> str:
    """Return "degradation", "overfitting", "deeper is better" or "inconclusive"."""
    # Final-epoch differences, deeper minus shallower; at most `noise` counts as none.
    train = deep["train_err"][-1] - shallow["train_err"][-1]
    val = deep["val_err"][-1] - shallow["val_err"][-1]
    if train > noise:
        return "degradation"  # it does not even fit its training images
    if val > noise:
        return "overfitting"  # fits (at least) as well, generalizes worse
    if val < -noise:
        return "deeper is better"  # better on new images, and fits no worse
    return "inconclusive"  # no difference on new images beyond the noise


_ = ch1.check_diagnose(diagnose)
