"""resnet_lab: the companion package of the resnet-lab book.

The names below are the stable public API that the chapters use: `from resnet_lab import fit, TrainConfig`.
They are loaded on first use, so that `import resnet_lab.gradflow` (a measurement) does not load the training
engine or matplotlib, and modules can move inside the package without breaking a chapter.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> the module that defines it
_API = {
    # models and their parts
    "get_model": "models", "list_models": "models", "parse_model_name": "models", "model_label": "models",
    "count_parameters": "summary", "count_macs": "summary", "layer_table": "summary",
    # where the code runs
    "setup": "runtime", "pick": "runtime", "is_smoke": "runtime", "get_device": "runtime",
    # data
    "load_data": "data", "ImageData": "data", "DataError": "data",
    # training and evaluation
    "TrainConfig": "config", "fit": "train", "Trainer": "train", "NonFiniteLossError": "train",
    "TrainingInterrupted": "train", "Callback": "callbacks", "Step": "callbacks", "History": "history",
    "evaluate": "evaluate", "evaluate_tensors": "evaluate", "checkpoint_data": "evaluate",
    "load_checkpoint": "checkpoint", "CheckpointError": "checkpoint",
    # measurements and figures
    "unit_gradient_norms": "gradflow", "gradient_profile": "gradflow",
    "plot_depth_sweep": "viz", "plot_history": "viz", "plot_gradient_profiles": "viz",
}

__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (PEP 562)."""
    if name not in _API:
        raise AttributeError(f"module 'resnet_lab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"resnet_lab.{_API[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
