"""Checkpoints that are never half-written and that hold everything needed to use or resume a trained network.

A checkpoint is a dict saved with `torch.save`. Besides the weights it records the model's recipe
(`model_spec`, from `get_model`), the normalization statistics and class names (so `evaluate` and `predict` need
nothing else), and for resuming: optimizer, learning-rate schedule position, gradient scaler, epoch and batch,
random number generator states, the history so far and the run's configuration.

`save_checkpoint` writes through `resnet_lab.files.atomic_write`: a crash, a full disk or Ctrl-C during the write
leaves the previous checkpoint intact. `load_checkpoint` rebuilds the model and explains what went wrong when the
file is missing, damaged or not a resnet_lab checkpoint. A checkpoint is data: loading one never runs code from
the file, and its recorded model is checked against its weights before any memory is allocated for it.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from resnet_lab.files import atomic_write

CHECKPOINT_FORMAT = "resnet_lab.checkpoint/1"
# Keys every checkpoint written by resnet_lab has.
REQUIRED_KEYS = ("format", "model_spec", "model", "mean", "std", "classes")


class CheckpointError(ValueError):
    """A checkpoint file that is missing, damaged, or does not match the model or the data."""


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike) -> Path:
    """Save `payload` (plus the format tag) to `path` atomically; raises files.OutputError if it cannot be written."""
    payload = {"format": CHECKPOINT_FORMAT, **payload}
    return atomic_write(path, lambda f: torch.save(payload, f))


def _check_path(path: Path) -> None:
    """Raise CheckpointError when `path` is a folder or does not exist."""
    if path.is_dir():
        hint = " (it holds best.pt and last.pt)" if (path / "best.pt").exists() else ""
        raise CheckpointError(f"{path} is a folder{hint}; pass the checkpoint file itself, e.g. {path / 'best.pt'}.")
    if not path.exists():
        raise CheckpointError(
            f"Checkpoint {str(path)!r} does not exist. Training writes DIR/best.pt and DIR/last.pt into its --out "
            "folder: check the path."
        )


def _load(path: Path, map_location: str | torch.device) -> Any:
    """torch.load restricted to tensors and plain data; every failure becomes a CheckpointError."""
    try:
        # weights_only: a checkpoint is data, and loading one must not run code from the file.
        return torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, IndexError, KeyError) as error:
        raise CheckpointError(
            f"Cannot read checkpoint {path}: it is damaged or not a PyTorch file ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no details'}). resnet_lab never leaves a half-written "
            "checkpoint, so the file was probably truncated while copied or is another kind of file: copy it "
            "again, or use the other checkpoint (best.pt / last.pt) of the run."
        ) from None
    except Exception as error:  # pickle.UnpicklingError: not a pickle at all, or objects we refuse to load
        if isinstance(error, pickle.UnpicklingError) and (
            "Weights only load failed" in str(error) or "Unsupported global" in str(error)
        ):
            raise CheckpointError(
                f"Cannot read checkpoint {path}: it contains Python code or objects that were refused (loading them "
                "could run code). resnet_lab checkpoints hold only tensors and plain data, so this file was written "
                "by another program; load it only if you trust its source, and not with resnet_lab."
            ) from None
        raise CheckpointError(
            f"Cannot read checkpoint {path}: it is not a PyTorch file ({type(error).__name__}). Pass a best.pt or "
            "last.pt written by `python -m resnet_lab train`."
        ) from None


def _check_payload(payload: Any, path: Path) -> None:
    """Raise CheckpointError unless `payload` has the form of a resnet_lab checkpoint."""
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"{path} is a PyTorch file but not a resnet_lab checkpoint: it holds a {type(payload).__name__}, not a "
            "dict. resnet_lab checkpoints come from `python -m resnet_lab train` or fit(..., out_dir=...)."
        )
    if payload.get("format") != CHECKPOINT_FORMAT:
        what = "a bare state_dict" if "format" not in payload else "another format"
        raise CheckpointError(
            f"{path} is a PyTorch file but not a resnet_lab checkpoint ({what}). Load plain weights with "
            "model.load_state_dict(torch.load(path)); resnet_lab checkpoints come from `python -m resnet_lab train` "
            "or fit(..., out_dir=...)."
        )
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"Checkpoint {path} lacks {', '.join(missing)}: it is incomplete. Retrain or re-save.")
    spec, state = payload["model_spec"], payload["model"]
    if not (isinstance(spec, dict) and isinstance(spec.get("name"), str)):
        raise CheckpointError(f"Checkpoint {path} has no valid model_spec (got {spec!r}): it is damaged.")
    if not (isinstance(state, dict) and all(isinstance(v, Tensor) for v in state.values())):
        raise CheckpointError(f"Checkpoint {path}: its model entry is not a dict of tensors; it is damaged.")


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint's dict, checked; raises CheckpointError with a clear message for every failure."""
    path = Path(path).expanduser()
    _check_path(path)
    payload = _load(path, map_location)
    _check_payload(payload, path)
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


def _unfit(path: str | os.PathLike, spec: dict[str, Any], detail: str) -> CheckpointError:
    return CheckpointError(
        f"Checkpoint {path} records the model {_describe(spec)}, but its weights do not fit that model ({detail}). "
        "It was probably written by another version of resnet_lab, or it is damaged."
    )


def _shape_mismatch(expected: dict[str, Tensor], state: dict[str, Tensor]) -> str | None:
    """The first difference between the model's tensors and the file's, in words; None when they agree."""
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:  # the first three are enough to recognise the difference
            parts.append(f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}")
    if parts:
        return "; ".join(parts)
    for key, tensor in expected.items():
        if tensor.shape != state[key].shape:
            return f"{key} is {tuple(state[key].shape)} in the file, {tuple(tensor.shape)} in the model"
    return None


def check_weights_fit(spec: dict[str, Any], state: dict[str, Tensor], path: str | os.PathLike) -> None:
    """Raise CheckpointError unless `state` has exactly the tensors of the model `spec` describes.

    Nothing real is allocated: the model is built on the meta device (shapes without memory), so a damaged or
    crafted file whose spec asks for billions of parameters fails here at once instead of filling the memory.
    """
    from resnet_lab.models import legacy_checkpoint_problem, parse_model_name

    try:
        depth = parse_model_name(spec["name"]).depth
    except (ValueError, TypeError) as error:
        raise _unfit(path, spec, str(error).splitlines()[0]) from None
    # Networks whose layers changed since the file was written: say so, rather than list mismatched keys.
    problem = legacy_checkpoint_problem(spec, state.keys())
    if problem:
        raise CheckpointError(f"Checkpoint {path} holds a {_describe(spec)} written by an older resnet_lab: {problem}")
    # Every layer has at least one tensor: a depth beyond the number of tensors cannot fit, and building the
    # model (even on the meta device) would take time and memory in proportion to that depth.
    if depth > len(state):
        raise _unfit(path, spec, f"a network of {depth} layers, but only {len(state)} tensors in the file")
    try:
        with torch.device("meta"):
            expected = build_model(spec).state_dict()
    except (ValueError, TypeError, KeyError) as error:
        raise _unfit(path, spec, f"resnet_lab cannot build it: {str(error).splitlines()[0]}") from None
    mismatch = _shape_mismatch(expected, state)
    if mismatch:
        raise _unfit(path, spec, mismatch)


def _check_stored_size(state: dict[str, Tensor], path: Path) -> None:
    """Raise CheckpointError when the weights claim more bytes than the file holds (tensors that repeat one value)."""
    claimed = sum(tensor.numel() * tensor.element_size() for tensor in state.values())
    size = path.stat().st_size
    if claimed > size:
        raise CheckpointError(
            f"Checkpoint {path} is damaged or crafted: its weights claim {claimed:,} bytes, but the file holds only "
            f"{size:,}. Use a checkpoint written by resnet_lab."
        )


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """The trained model (in eval mode, on `device`) and the checkpoint's metadata (everything but the states)."""
    path = Path(path).expanduser()
    payload = read_checkpoint(path)
    spec, state = payload["model_spec"], payload["model"]
    # Checked before the model is built: building allocates (and initializes) every parameter.
    _check_stored_size(state, path)
    check_weights_fit(spec, state, path)
    try:
        model = build_model(spec)
        model.load_state_dict(state)
    except (ValueError, TypeError, RuntimeError, KeyError) as error:
        raise _unfit(path, spec, str(error).splitlines()[0]) from None
    model.to(device).eval()
    heavy = ("model", "optimizer", "scheduler", "scaler", "rng")
    meta = {k: v for k, v in payload.items() if k not in heavy}
    return model, meta
