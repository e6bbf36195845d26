"""Saving and resuming a run: what a checkpoint holds, and the checks before a run continues from one.

A run's folder holds `last.pt` (the state after the last epoch, or the exact step where Ctrl-C / SIGTERM stopped
it), `best.pt` (the epoch with the best validation accuracy) and `results.json`. A run resumes only with the same
model, recipe and data (the data compared by their content fingerprint, not by where they are stored), and
resnet_lab never starts a new run over an old one.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import torch

from resnet_lab.checkpoint import CheckpointError, check_same_model, read_checkpoint
from resnet_lab.config import TrainConfig, resume_differences

RUN_FILES = ("last.pt", "best.pt", "results.json")
# Data properties that must match to resume: the content, and how it was split and sized.
DATA_KEYS = ("fingerprint", "train_size", "val_size", "split_seed", "image_size", "num_classes")


def check_out_dir(out_dir: str | os.PathLike, resume: bool) -> None:
    """Refuse a new run in a folder that holds one, and a resume in a folder that holds none."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"The output folder {out_dir} is a file: choose a folder for --out.")
    found = [name for name in RUN_FILES if (out_dir / name).exists()]
    if found and not resume:
        raise ValueError(
            f"{out_dir} already holds a training run ({', '.join(found)}). Continue it with resume=True (--resume), "
            "or choose another output folder (--out) to start a new run; resnet_lab never overwrites a run."
        )
    if resume and not (out_dir / "last.pt").exists():
        what = f"only {', '.join(found)}" if found else "no run"
        raise ValueError(
            f"Nothing to resume: {out_dir} holds {what} (no last.pt). Leave out --resume (resume=False) to start a new "
            "run there, or pass the --out folder of the run you want to continue."
        )


def load_resume_state(out_dir: Path, config: TrainConfig, spec: dict[str, Any] | None,
                      data_record: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint in out_dir/last.pt, checked: same model, same recipe, same data."""
    last = out_dir / "last.pt"
    state = read_checkpoint(last)
    check_same_model(state, spec, last)
    changed = resume_differences(state.get("config") or {}, config)
    if changed:
        raise CheckpointError(
            f"Cannot resume {last}: the run was started with other settings ({'; '.join(changed)}). Resume with the "
            "original settings (the command is in results.json), or start a new run in another folder."
        )
    saved = state.get("data") or {}
    differ = [k for k in DATA_KEYS if k in saved and saved[k] != data_record.get(k)]
    if differ:
        details = "; ".join(f"{k}: {saved[k]!r} then, {data_record.get(k)!r} now" for k in differ)
        hint = " The images themselves differ." if "fingerprint" in differ else ""
        raise CheckpointError(
            f"Cannot resume {last}: the data differ from the run's ({details}).{hint} Use the same data, --val-size, "
            "--train-size and --split-seed as the original run."
        )
    return state


def rng_state() -> dict[str, Any]:
    """The global random states (torch, CUDA, Python) that a model may draw from (e.g. dropout)."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "python": list(random.getstate()[1]),
    }


def restore_rng(state: dict[str, Any] | None) -> None:
    """Put back the random states saved by `rng_state` (a resumed run draws what the uninterrupted one drew)."""
    if not state:
        return
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if state.get("python") is not None:
        random.setstate((3, tuple(state["python"]), None))


def state_is_finite(model: torch.nn.Module) -> bool:
    """True when every floating-point parameter and buffer (e.g. BN running variances) is finite."""
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


__all__ = ["RUN_FILES", "check_out_dir", "load_resume_state", "restore_rng", "rng_state", "state_is_finite"]
