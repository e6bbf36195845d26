"""Where a result came from: the command, the code version, the software, the machine, the seed and the data."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from resnet_lab.runtime import device_name

REPO_DIR = Path(__file__).resolve().parent.parent


def portable_path(arg: str, cwd: Path | None = None) -> str:
    """A command-line argument without this machine's folders: an absolute path inside the working folder becomes
    relative to it, any other absolute path keeps its last component (".../cifar10-jpeg"). Others are kept."""
    prefix, sep, value = arg.partition("=") if arg.startswith("--") and "=" in arg else ("", "", arg)
    if not (value.startswith("/") or value.startswith("~") or (len(value) > 2 and value[1:3] in (":\\", ":/"))):
        return arg
    path = Path(value).expanduser()
    cwd = cwd or Path.cwd()
    try:
        portable = path.relative_to(cwd).as_posix() or "."
    except ValueError:
        portable = f".../{path.name}"
    return f"{prefix}{sep}{portable}"


def current_command() -> str:
    """The command line of this process as a reader would type it (`python -m resnet_lab train ...` for the CLI),
    with this machine's absolute paths left out (`portable_path`): results are committed, a machine's folders not."""
    argv = [portable_path(a) for a in sys.argv]
    if argv and Path(sys.argv[0]).name == "__main__.py" and Path(sys.argv[0]).parent.name == "resnet_lab":
        return shlex.join(["python", "-m", "resnet_lab", *argv[1:]])
    if argv and Path(sys.argv[0]).name in ("resnet-lab", "resnet_lab"):
        return shlex.join(["resnet-lab", *argv[1:]])
    return shlex.join(["python", *argv]) if argv and argv[0] else "python (interactive)"


def git_commit(path: Path = REPO_DIR) -> str | None:
    """The commit of the checkout `path` is in, with "-dirty" when files differ from it; None outside git."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if status else commit


def cpu_model() -> str:
    """The processor's model name (e.g. 'AMD EPYC'): CPU wall times are only comparable on the same model."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass  # not Linux: fall back to what the platform module knows
    return platform.processor() or platform.machine()


def provenance(
    command: str | None = None,
    seed: int | None = None,
    data: dict[str, Any] | None = None,
    device: torch.device | str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The provenance record stored with every result (results.json) and checkpoint."""
    import torchvision

    from resnet_lab import __version__

    record = {
        "command": command or current_command(),
        "git_commit": git_commit(),
        "resnet_lab_version": __version__,
        "torch_version": str(torch.__version__),
        "torchvision_version": str(torchvision.__version__),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "device": device_name(device),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "data": data,
    }
    record.update(extra)
    return record
