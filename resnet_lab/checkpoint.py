"""Checkpoints that are never half-written and that hold everything needed to use or resume a trained network.

A checkpoint is a dict saved with `torch.save`. Besides the weights it records the model's recipe
(`model_spec`, from `get_model`), the normalization statistics and class names (so `evaluate` and `predict` need
nothing else), and for resuming: optimizer, learning-rate schedule position, gradient scaler, epoch and batch,
random number generator states, the history so far and the run's configuration.

`save_checkpoint` writes to a temporary file in the same folder and renames it over the target: a crash during
the write leaves the previous checkpoint intact. `load_checkpoint` rebuilds the model and explains what went wrong
when the file is missing, damaged or not a resnet_lab checkpoint.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

CHECKPOINT_FORMAT = "resnet_lab.checkpoint/1"
# Keys every checkpoint written by resnet_lab has.
REQUIRED_KEYS = ("format", "model_spec", "model", "mean", "std", "classes")


class CheckpointError(ValueError):
    """A checkpoint file that is missing, damaged, or does not match the model or the data."""


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike) -> Path:
    """Save `payload` atomically: write `path.tmp-PID` in the same folder, flush it to disk, rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, **payload}
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        # os.replace is atomic on POSIX and Windows: readers see the old file or the new one, never a mixture.
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint's dict, checked; raises CheckpointError with a clear message for every failure."""
    path = Path(path).expanduser()
    if path.is_dir():
        hint = " (it holds best.pt and last.pt)" if (path / "best.pt").exists() else ""
        raise CheckpointError(f"{path} is a folder{hint}; pass the checkpoint file itself, e.g. {path / 'best.pt'}.")
    if not path.exists():
        raise CheckpointError(
            f"Checkpoint {str(path)!r} does not exist. Training writes DIR/best.pt and DIR/last.pt into its --out "
            "folder: check the path."
        )
    try:
        # weights_only: a checkpoint is data, and loading one must not run code from the file.
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, IndexError, KeyError) as error:
        raise CheckpointError(
            f"Cannot read checkpoint {path}: it is damaged or not a PyTorch file ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no details'}). resnet_lab never leaves a half-written "
            "checkpoint, so the file was probably truncated while copied or is another kind of file: copy it "
            "again, or use the other checkpoint (best.pt / last.pt) of the run."
        ) from None
    except Exception as error:  # pickle.UnpicklingError: not a pickle at all, or objects we refuse to load
        if "Unsupported global" in str(error):
            raise CheckpointError(
                f"Cannot read checkpoint {path}: it holds Python objects other than tensors and plain data, which "
                "resnet_lab refuses to load (loading them could run code from the file). resnet_lab checkpoints "
                "never hold such objects: this file was written by another program."
            ) from None
        raise CheckpointError(
            f"Cannot read checkpoint {path}: it is not a PyTorch file ({type(error).__name__}). Pass a best.pt or "
            "last.pt written by `python -m resnet_lab train`."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        what = "a bare state_dict" if isinstance(payload, dict) and "format" not in payload else "another format"
        raise CheckpointError(
            f"{path} is a PyTorch file but not a resnet_lab checkpoint ({what}). Load plain weights with "
            "model.load_state_dict(torch.load(path)); resnet_lab checkpoints come from `python -m resnet_lab train` "
            "or fit(..., out_dir=...)."
        )
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"Checkpoint {path} lacks {', '.join(missing)}: it is incomplete. Retrain or re-save.")
    return payload


def check_same_model(payload: dict[str, Any], spec: dict[str, Any] | None, path: str | os.PathLike) -> None:
    """Raise CheckpointError unless the checkpoint was made for a model with this spec."""
    saved = payload.get("model_spec")
    if spec is not None and saved != spec:
        raise CheckpointError(
            f"Checkpoint {path} holds a {_describe(saved)}, but this run builds a {_describe(spec)}. To resume, use "
            "the same model options; to train this model, choose a new output folder (--out)."
        )


def _describe(spec: dict[str, Any] | None) -> str:
    if not spec:
        return "model without a recorded spec"
    options = ", ".join(f"{k}={v!r}" for k, v in spec.items() if k != "name")
    return f"{spec.get('name')} ({options})" if options else str(spec.get("name"))


def build_model(spec: dict[str, Any]) -> nn.Module:
    """A fresh model from a spec saved in a checkpoint (`{"name": ..., "num_classes": ..., **options}`)."""
    from resnet_lab.models import get_model

    options = dict(spec)
    name = options.pop("name")
    return get_model(name, **options)


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """The trained model (in eval mode, on `device`) and the checkpoint's metadata (everything but the states)."""
    payload = read_checkpoint(path)
    spec = payload["model_spec"]
    try:
        model = build_model(spec)
        model.load_state_dict(payload["model"])
    except (ValueError, TypeError, RuntimeError, KeyError) as error:
        raise CheckpointError(
            f"Checkpoint {path} records the model {_describe(spec)}, but its weights do not fit that model "
            f"({str(error).splitlines()[0]}). It was probably written by another version of resnet_lab."
        ) from None
    model.to(device).eval()
    heavy = ("model", "optimizer", "scheduler", "scaler", "rng")
    meta = {k: v for k, v in payload.items() if k not in heavy}
    return model, meta
