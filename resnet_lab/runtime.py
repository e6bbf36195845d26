"""Where the code runs and how: the device, its precision, the processes of a distributed run, and smoke mode.

`RESNET_LAB_SMOKE=1` is read here and nowhere else. Notebooks and the CLI ask `pick(full=..., smoke=...)`
for every size that should shrink in continuous integration (epochs, subset sizes, depths).
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import warnings
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

T = TypeVar("T")

SMOKE_ENV = "RESNET_LAB_SMOKE"
_SMOKE_VALUES = {"1": True, "true": True, "yes": True, "on": True, "": False, "0": False, "false": False,
                 "no": False, "off": False}
# The device types resnet_lab trains on; get_device refuses others with a message that lists these.
DEVICE_TYPES = ("cpu", "cuda", "mps")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def is_smoke() -> bool:
    """True when RESNET_LAB_SMOKE is 1, true, yes or on; False when unset, empty, 0, false, no or off."""
    value = os.environ.get(SMOKE_ENV, "")
    # Strict: a typo such as RESNET_LAB_SMOKE=ture must not silently start an hours-long full run.
    try:
        return _SMOKE_VALUES[value.strip().lower()]
    except KeyError:
        raise ValueError(
            f"{SMOKE_ENV}={value!r} is not understood: set it to 1 (smoke mode: tiny sizes, for CI) or 0 (normal "
            "mode), or unset it."
        ) from None


def pick(full: T, smoke: T) -> T:
    """Return `smoke` in smoke mode (CI), `full` otherwise."""
    return smoke if is_smoke() else full


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def _parse_device(prefer: str | torch.device) -> torch.device:
    """`prefer` as a torch.device of a type resnet_lab runs on; ValueError for any other name."""
    try:
        device = torch.device(prefer.strip().lower() if isinstance(prefer, str) else prefer)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in DEVICE_TYPES:
        raise ValueError(
            f"Unknown device {str(prefer)!r}: use cpu, cuda (or cuda:0, cuda:1, ... for one of several GPUs), mps "
            "(Apple GPUs), or leave it out (auto) to pick the best available."
        )
    return device


def _check_available(device: torch.device) -> None:
    """Raise ValueError, saying what to do, when `device` does not exist on this machine."""
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"Device {str(device)!r} was requested but no CUDA GPU is visible. On Colab: Runtime > Change runtime "
            "type > GPU; locally, drop --device to train on the best available device (here the CPU)."
        )
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(
            f"Device {str(device)!r} does not exist: this machine has {count} CUDA GPU{'s' if count != 1 else ''} "
            f"(cuda:0 to cuda:{count - 1})."
        )
    if device.type == "mps" and not _mps_available():
        raise ValueError(
            "Device 'mps' was requested but Apple's MPS backend is not available here (it needs an Apple-silicon "
            "Mac and a PyTorch built for it). Drop --device to train on the best available device."
        )


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device `prefer` names (checked: ValueError if unknown or absent), else the best: cuda, mps, then cpu."""
    if prefer is not None and str(prefer).strip().lower() not in ("", "auto"):
        device = _parse_device(prefer)
        _check_available(device)
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
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


def setup(verbose: bool = True) -> torch.device:
    """The first call of every notebook: pick the device, show figures compactly in Jupyter (viz.png_bytes), and
    say what this session will do."""
    device = get_device()
    if "IPython" in sys.modules:  # only a notebook or IPython session displays figures
        from resnet_lab.viz import use_compact_figures

        use_compact_figures()
    if verbose:
        mode = "smoke mode (tiny sizes, for CI)" if is_smoke() else "normal mode"
        print(f"resnet_lab {_version()} | torch {torch.__version__} | device: {device_name(device)} | {mode}")
    return device


# ----------------------------------------------------------------------------------------------------------------
# Precision


def cpu_supports_bf16() -> bool:
    """True when this CPU computes in bfloat16 natively (AVX512-BF16 or AMX), where bf16 autocast pays off.

    Without those instructions oneDNN emulates bf16, and autocast makes training slower, not faster: on the
    AVX-512 CPU without bf16 instructions of the book's measurements, a ResNet-20 training step in bf16 (channels
    last) ran at about half the speed of the same step in fp32.
    """
    cpu = torch.cpu
    for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        try:
            if getattr(cpu, check)():
                return True
        except (AttributeError, RuntimeError):
            continue
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" -> bf16 on CPUs with native bf16, fp16 (with a GradScaler) on CUDA, fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if device.type == "cpu" and cpu_supports_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' (with gradient scaling) is for CUDA GPUs; on this device use bf16 or fp32.")
    if precision == "bf16" and device.type == "cpu" and not cpu_supports_bf16():
        # Allowed (oneDNN emulates it), but say that it is slow here.
        warnings.warn("This CPU has no native bfloat16 instructions: bf16 autocast is slower than fp32 here.",
                      stacklevel=2)
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("This GPU does not support bfloat16: use precision 'fp16' (or 'auto').")
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context for a resolved precision ("bf16", "fp16" or "fp32": no autocast)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


# ----------------------------------------------------------------------------------------------------------------
# Distributed runs (torchrun): every process trains on a slice of each batch; process 0 alone writes.


@dataclass
class Distributed:
    """This process's place in a distributed run: rank, number of processes, and whether we started the group."""

    rank: int = 0
    world_size: int = 1
    started_here: bool = False

    @property
    def is_main(self) -> bool:
        """True for the process that writes files and prints (rank 0)."""
        return self.rank == 0


def start_distributed(device: torch.device | str | None) -> tuple[Distributed, torch.device]:
    """Join the process group torchrun prepared (WORLD_SIZE > 1): NCCL on GPUs, gloo on CPUs.

    Outside torchrun: a single-process `Distributed()` and `get_device(device)`.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return Distributed(), get_device(None if device is None else str(device))
    use_cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
    started = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        started = True
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        run_device = torch.device("cuda", local_rank)
    else:
        run_device = torch.device("cpu")
    return Distributed(dist.get_rank(), dist.get_world_size(), started), run_device


def is_main_process() -> bool:
    """False in the processes of rank > 0 that torchrun starts: they train, but never write files or print."""
    return int(os.environ.get("RANK", "0")) == 0


def shard() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_sum(values: Tensor) -> Tensor:
    """Sum a tensor over all processes, in place (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(values)
    return values


def _version() -> str:
    from resnet_lab import __version__

    return __version__
