"""Gradient flow, plain vs residual: `python -m resnet_lab experiment gradient-flow --data DIR --out DIR`.

The full-scale measurements of chapter 5, one result file per point in `results/gradient_flow/`:

- `init.json`: gradient profiles (`resnet_lab.gradflow.gradient_profile`) of freshly initialized plain and
  residual CIFAR networks of depth 20, 56 and 110, with and without batch normalization, on one fixed batch.
- `train_<model>.json`: the profile on the same batch every few steps during the first epochs of the depth
  sweep's recipe (the same 30-epoch one-cycle schedule, stopped early; `GradientFlowRecorder`); `<model>-nobn`:
  the same network without batch normalization. A run whose loss becomes NaN or infinite keeps its records up to
  then and says where it diverged (`diverged`).
- `trained.json`: the profile of the trained depth-sweep checkpoints (`results/checkpoints/*.pt`).
- `shattered.json`: Balduzzi et al.'s experiment on one-input ReLU networks (`resnet_lab.shattered`): the
  gradient along [-2, 2] and its autocorrelation for depths 2 to 50, plain and residual, with and without BN,
  residual also with branches scaled by 1/sqrt(2).

Every file carries provenance (command, commit, versions, device, date, seed, data). A point whose file exists is
skipped; an interrupted training point starts again (it keeps no checkpoints: its records live in memory).
Reading the files needs neither the engine nor matplotlib.
"""

from __future__ import annotations

import argparse
import json
import math
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from resnet_lab.config import TrainConfig
from resnet_lab.experiments.results import repository_results_dir, results_dir
from resnet_lab.gradflow import GradientProfile, gradient_profile
from resnet_lab.models import get_model

if TYPE_CHECKING:  # annotations only: the data module is loaded when the experiment runs
    from resnet_lab.data import ImageData

HELP = "per-block gradients of plain vs residual networks at init, during and after training; shattered gradients"
INIT_DEPTHS = (20, 56, 110)
TRAIN_MODELS = ("plain20", "resnet20", "plain56", "resnet56", "plain110", "resnet110")
# The same networks with every BN replaced by the identity ("-nobn"), trained with the same recipe.
TRAIN_MODELS_NO_BN = tuple(f"{name}-nobn" for name in TRAIN_MODELS)
TRAINED_CHECKPOINTS = ("plain20", "resnet20", "plain56", "resnet56")
SWEEP_EPOCHS = 30  # the depth sweep's schedule, of which the first epochs are recorded
SHATTERED_DEPTHS = (2, 8, 24, 50)
# family, "-bn" with batch normalization, "-scaled" with every residual branch multiplied by 1/sqrt(2)
SHATTERED_KINDS = ("plain", "plain-bn", "resnet", "resnet-bn", "resnet-scaled", "resnet-bn-scaled")


def measurement_batch(data: ImageData, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed batch every profile is measured on: `size` training images drawn at random (the training split is
    stored in class order, so its first images are all of one class), normalized, unaugmented."""
    from resnet_lab.data import normalize, train_eval_subset

    x, y = train_eval_subset(data, size)
    return normalize(x, data.mean, data.std), y


def init_profiles(images: torch.Tensor, labels: torch.Tensor, depths: tuple[int, ...] = INIT_DEPTHS,
                  seed: int = 0) -> list[dict[str, Any]]:
    """Profiles of fresh plain and residual networks of each depth, with and without BN (same seed each)."""
    rows = []
    for batch_norm in (True, False):
        for family in ("plain", "resnet"):
            for depth in depths:
                torch.manual_seed(seed)
                model = get_model(f"{family}{depth}", batch_norm=batch_norm)
                profile = gradient_profile(model, images, labels)
                rows.append({"model": f"{family}{depth}", "batch_norm": batch_norm, **profile.to_record()})
    return rows


def shattered_kind(kind: str) -> dict[str, Any]:
    """The relu_network options of a shattered-gradients kind: residual, batch_norm and branch_scale."""
    if kind not in SHATTERED_KINDS:
        raise ValueError(f"Unknown kind {kind!r}: one of {', '.join(SHATTERED_KINDS)}.")
    return {"residual": kind.startswith("resnet"), "batch_norm": "-bn" in kind,
            "branch_scale": 1 / math.sqrt(2) if kind.endswith("-scaled") else 1.0}


def shattered_record(depths: tuple[int, ...] = SHATTERED_DEPTHS, seeds: int = 20, max_lag: int = 32,
                     points: int = 256, width: int = 200) -> dict[str, Any]:
    """Autocorrelation curves (mean over `seeds` networks) and one example gradient per kind and depth."""
    from resnet_lab.shattered import input_gradients, line_inputs, mean_autocorrelation
    from resnet_lab.toynets import relu_network

    x = line_inputs(points)
    curves = []
    for kind in SHATTERED_KINDS:
        options = shattered_kind(kind)
        for depth in depths:
            net = relu_network(depth, width, seed=0, **options)
            curves.append({
                "kind": kind, "depth": depth, "branch_scale": options["branch_scale"],
                "autocorrelation": mean_autocorrelation(depth, seeds=seeds, max_lag=max_lag, points=points,
                                                        width=width, **options).tolist(),
                "example_gradient": input_gradients(net, x).tolist(),
            })
    return {"x": x.squeeze(1).tolist(), "width": width, "seeds": seeds, "max_lag": max_lag, "curves": curves}


def load_gradient_flow(name: str, folder: str | Path | None = None) -> dict[str, Any]:
    """One result file of the experiment ("init", "train_plain56", "trained", "shattered")."""
    folder = results_dir() / "gradient_flow" if folder is None else Path(folder)
    path = folder / f"{name}.json"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.json"))) or "none"
        raise FileNotFoundError(f"No gradient-flow result {name!r} in {folder} (there: {known}). Regenerate it "
                                "with python -m resnet_lab experiment gradient-flow --data DIR --out DIR.")
    return json.loads(path.read_text())


def profiles_of(rows: list[dict[str, Any]]) -> list[GradientProfile]:
    """The GradientProfile of every row of a result file."""
    return [GradientProfile.from_record(row) for row in rows]


# ----------------------------------------------------------------------------------------------------------------
# Running it


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m resnet_lab experiment gradient-flow`."""
    parser.add_argument("--data", required=True, help="CIFAR-10 source: an ImageFolder directory or 'cifar10'")
    parser.add_argument("--out", required=True, help="scratch folder for the runs (outside the repository)")
    parser.add_argument("--results", default=None,
                        help="where the result files go (default: results/ of the repository checkout)")
    parser.add_argument("--train-models", nargs="*", default=[*TRAIN_MODELS, *TRAIN_MODELS_NO_BN], metavar="MODEL",
                        help="networks trained while their gradients are recorded, '-nobn' for one without batch "
                        "normalization (default: %(default)s)")
    parser.add_argument("--record-epochs", type=int, default=2,
                        help="epochs of the depth sweep's schedule to record (default: %(default)s)")
    parser.add_argument("--every", type=int, default=20, help="steps between measurements (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=64, help="images in the measurement batch (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=20,
                        help="networks per curve of the shattered-gradients point (default: %(default)s)")
    parser.add_argument("--train-size", type=int, default=None, help="a training subset, for trying the runner")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")


def _record(point: str, payload: dict[str, Any], data: ImageData | None, command: str | None,
            device: str | None, **extra: Any) -> dict[str, Any]:
    from resnet_lab.provenance import provenance

    return {"experiment": "gradient-flow", "point": point,
            "provenance": provenance(command, seed=0, data=data.describe() if data is not None else None,
                                     device=device, **extra),
            **payload}


def _run_point(name: str, run_dir: Path, resume: bool, *, data: ImageData, args: argparse.Namespace,
               results: Path) -> dict[str, Any] | None:
    """One point of the grid: its record (written by the runner)."""
    command = getattr(args, "command_line", None)
    images, labels = measurement_batch(data, args.batch)
    if name == "init":
        return _record(name, {"batch": args.batch, "profiles": init_profiles(images, labels)}, data, command, "cpu")
    if name == "trained":
        from resnet_lab.checkpoint import load_checkpoint

        rows = []
        for model_name in TRAINED_CHECKPOINTS:
            model, meta = load_checkpoint(results_dir() / "checkpoints" / f"{model_name}.pt")
            model.float()
            profile = gradient_profile(model, images, labels, label=model_name)
            rows.append({"model": model_name, "batch_norm": True, "checkpoint": f"checkpoints/{model_name}.pt",
                         "checkpoint_commit": meta.get("provenance", {}).get("git_commit"), **profile.to_record()})
        return _record(name, {"batch": args.batch, "profiles": rows}, data, command, "cpu")
    if name == "shattered":
        return _record(name, shattered_record(seeds=args.seeds), None, command, "cpu")
    return _train_point(name.removeprefix("train_"), name, data=data, args=args, images=images, labels=labels)


def split_model(name: str) -> tuple[str, bool]:
    """A --train-models entry: the network's name and whether it has batch normalization ("resnet20-nobn")."""
    model_name = name.removesuffix("-nobn")
    return model_name, model_name == name


def _train_point(model_name: str, name: str, *, data: ImageData, args: argparse.Namespace, images: torch.Tensor,
                 labels: torch.Tensor) -> dict[str, Any]:
    """Train `model_name` with the depth sweep's recipe for the first epochs, recording its gradient profile."""
    from resnet_lab.callbacks import GradientFlowRecorder, StopAfterEpochs
    from resnet_lab.provenance import provenance
    from resnet_lab.train import NonFiniteLossError, fit

    network, batch_norm = split_model(model_name)
    config = TrainConfig(epochs=SWEEP_EPOCHS, train_eval_size=min(5000, len(data.train_y)))
    torch.manual_seed(config.seed)  # the depth sweep's initial weights
    model = get_model(network, num_classes=data.num_classes, batch_norm=batch_norm)
    recorder = GradientFlowRecorder(images, labels, every=args.every)
    record = {"experiment": "gradient-flow", "point": name, "model": network, "batch_norm": batch_norm,
              "every": args.every, "batch": args.batch, "steps_per_epoch": len(data.train_y) // config.batch_size}
    command = getattr(args, "command_line", None)
    try:
        history = fit(model, data, config, callbacks=[recorder, StopAfterEpochs(args.record_epochs)],
                      device=args.device, command=command)
    except NonFiniteLossError as error:  # without BN a network may diverge: what it recorded until then is the result
        where = {k: str(v) if isinstance(v, float) and not math.isfinite(v) else v for k, v in error.where.items()}
        return {**record, "provenance": provenance(command, seed=config.seed, data=data.describe(), device=args.device),
                "config": config.to_dict(), "diverged": where, "epochs": [], "records": recorder.records}
    epochs = [{k: e[k] for k in ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")}
              for e in history]
    return {**record, "provenance": history.provenance, "config": history.config, "epochs": epochs,
            "records": recorder.records}


def run(args: argparse.Namespace) -> int:
    """Run (or complete) the experiment: every point without a result file."""
    from resnet_lab.data import load_data
    from resnet_lab.experiments.runner import run_grid

    results = Path(args.results) if args.results else repository_results_dir()
    for name in args.train_models:
        network, batch_norm = split_model(name)
        get_model(network, batch_norm=batch_norm)  # a bad name fails now, not after the first points
    data = load_data(args.data, train_size=args.train_size, val_size=5000)
    if data.is_synthetic:
        print("WARNING: synthetic data. These runs only exercise the runner: never commit their results.")
    points = ["init", "shattered", "trained", *(f"train_{m}" for m in args.train_models)]
    summary = run_grid(points, partial(_run_point, data=data, args=args, results=results),
                       results_dir=results / "gradient_flow", out_dir=Path(args.out))
    return summary.exit_status


__all__ = [
    "INIT_DEPTHS", "SHATTERED_DEPTHS", "SHATTERED_KINDS", "TRAINED_CHECKPOINTS", "TRAIN_MODELS", "TRAIN_MODELS_NO_BN",
    "init_profiles", "load_gradient_flow", "measurement_batch", "profiles_of", "shattered_kind", "shattered_record",
    "split_model",
]
