from resnet_lab.exercises import ch1


def diagnose(shallow: dict, deep: dict) -> str:
    """Return "degradation", "overfitting" or "deeper is better"."""
    if deep["train_err"][-1] > shallow["train_err"][-1]:
        return "degradation"  # it does not even fit its training images
    if deep["val_err"][-1] > shallow["val_err"][-1]:
        return "overfitting"  # fits at least as well, generalizes worse
    return "deeper is better"


_ = ch1.check_diagnose(diagnose)
