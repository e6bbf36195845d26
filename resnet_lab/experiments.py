"""Experiments that produce the book's committed results: `python -m resnet_lab experiment NAME ...`.

depth-sweep: plain and residual CIFAR networks of growing depth, trained with one identical recipe on real
CIFAR-10 images, so that the only difference between a plain network and its ResNet twin is the skip connection
(He et al. 2016, figure 6). Each run trains in its own folder under `--out` (checkpoints, resumable), and its
per-epoch record is copied to `results/depth_sweep/<model>.json` once it has finished.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch

# Shallow before deep and plain beside its twin, so that an interrupted sweep has comparable pairs first.
DEPTH_SWEEP_DEPTHS = (20, 32, 44, 56)
DEPTH_SWEEP_EPOCHS = 30
DEPTH_SWEEP_VAL_SIZE = 5000
DEPTH_SWEEP_TRAIN_EVAL_SIZE = 5000
# Final weights committed in half precision for later chapters (lesion study, loss landscape, gradient flow).
EXPORTED_CHECKPOINTS = ("resnet20", "resnet56", "plain56")

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


def depth_sweep_models(depths: tuple[int, ...] = DEPTH_SWEEP_DEPTHS) -> list[str]:
    """The grid in run order: plain20, resnet20, plain32, resnet32, ..."""
    return [f"{family}{d}" for d in depths for family in ("plain", "resnet")]


def _split_name(name: str) -> tuple[str, int]:
    match = re.fullmatch(r"(plain|resnet)(\d+)", name)
    if match is None:
        raise ValueError(f"{name!r} is not a depth-sweep model name (plainN or resnetN).")
    return match.group(1), int(match.group(2))


def sweep_record(name: str, results: dict) -> dict:
    """Turn one run's results.json (from `fit`) into the depth-sweep file format (errors, not accuracies)."""
    family, depth = _split_name(name)
    epochs = []
    for e in results["epochs"]:
        epochs.append(
            {
                "epoch": e["epoch"],
                "lr": e["lr"],
                "train_loss": e["train_loss"],  # on augmented batches, averaged over the epoch
                "train_err": 1.0 - e["train_acc"],
                "train_eval_loss": e["train_eval_loss"],  # on a fixed un-augmented training subset
                "train_eval_err": 1.0 - e["train_eval_acc"],
                "val_loss": e["val_loss"],
                "val_err": 1.0 - e["val_acc"],
                "seconds": e["seconds"],
            }
        )
    last = epochs[-1]
    return {
        "experiment": "depth-sweep",
        "model": name,
        "family": family,
        "depth": depth,
        "provenance": results["provenance"],
        "config": results["config"],
        "epochs": epochs,
        "final": {
            "epochs": last["epoch"],
            "train_eval_err": last["train_eval_err"],
            "val_err": last["val_err"],
            "wall_seconds": sum(e["seconds"] for e in epochs),
        },
    }


def load_depth_sweep(results_dir: str | Path = RESULTS_DIR / "depth_sweep") -> list[dict]:
    """Every committed depth-sweep run, in grid order."""
    runs = [json.loads(p.read_text()) for p in sorted(Path(results_dir).glob("*.json"))]
    return sorted(runs, key=lambda r: (r["depth"], r["family"]))


def depth_sweep_table(results_dir: str | Path = RESULTS_DIR / "depth_sweep") -> list[dict]:
    """One row per run: final training error, validation error, epochs, wall time and device."""
    return [
        {
            "model": r["model"],
            "epochs": r["final"]["epochs"],
            "train_err_%": round(100 * r["final"]["train_eval_err"], 2),
            "val_err_%": round(100 * r["final"]["val_err"], 2),
            "wall_min": round(r["final"]["wall_seconds"] / 60, 1),
            "device": r["provenance"]["device"],
        }
        for r in load_depth_sweep(results_dir)
    ]


def export_half_precision(checkpoint: Path, dest: Path, record: dict) -> None:
    """Save a trained network's weights in fp16 with what is needed to rebuild and check it."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    weights = {k: (v.half() if v.is_floating_point() else v) for k, v in state["model"].items()}
    payload = {k: v for k, v in state.items() if k not in ("model", "optimizer", "scheduler", "scaler", "rng")}
    payload["model"] = weights
    payload["recorded_val_err"] = record["final"]["val_err"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(dest)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m resnet_lab experiment`."""
    parser.add_argument("name", choices=["depth-sweep"], help="which experiment to run")
    parser.add_argument("--data", required=True, help="CIFAR-10 source: an ImageFolder directory or 'cifar10'")
    parser.add_argument("--out", required=True, help="folder for the runs' checkpoints (outside the repository)")
    parser.add_argument("--results", default=str(RESULTS_DIR), help="where the committed result files go")
    parser.add_argument("--epochs", type=int, default=DEPTH_SWEEP_EPOCHS)
    parser.add_argument("--depths", type=int, nargs="+", default=list(DEPTH_SWEEP_DEPTHS))
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    """Run (or resume) the depth sweep; finished runs are skipped, unfinished ones resume from their last epoch."""
    raise NotImplementedError  # filled in once the engine's fit() lands
