"""Where the code runs and how big the live work is: the device, and smoke mode.

`RESNET_LAB_SMOKE=1` is read here and nowhere else. Notebooks and the CLI ask `pick(full=..., smoke=...)`
for every size that should shrink in continuous integration (epochs, subset sizes, depths).
"""

from __future__ import annotations

import os
import platform
import sys
from typing import TypeVar

import torch

T = TypeVar("T")

SMOKE_ENV = "RESNET_LAB_SMOKE"


def is_smoke() -> bool:
    """True when RESNET_LAB_SMOKE is set to a true value (1, true, yes, on)."""
    return os.environ.get(SMOKE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def pick(full: T, smoke: T) -> T:
    """Return `smoke` in smoke mode (CI), `full` otherwise."""
    return smoke if is_smoke() else full


def get_device(prefer: str | None = None) -> torch.device:
    """The best available device: `prefer` if given, else cuda, then mps, then cpu."""
    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                "CUDA was requested but no CUDA GPU is visible. "
                "On Colab: Runtime > Change runtime type > GPU; locally, drop --device to train on the CPU."
            )
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_name(device: torch.device | str | None = None) -> str:
    """A human-readable name for the device, e.g. 'NVIDIA T4' or 'cpu (x86_64, 2 threads)'."""
    device = torch.device(device) if device is not None else get_device()
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    threads = torch.get_num_threads()
    return f"cpu ({platform.machine()}, {threads} thread{'s' if threads != 1 else ''})"


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def setup(verbose: bool = True) -> torch.device:
    """The first call of every notebook: pick the device and say what this session will do."""
    device = get_device()
    if verbose:
        mode = "smoke mode (tiny sizes, for CI)" if is_smoke() else "normal mode"
        print(f"resnet_lab {_version()} | torch {torch.__version__} | device: {device_name(device)} | {mode}")
    return device


def _version() -> str:
    from resnet_lab import __version__

    return __version__
