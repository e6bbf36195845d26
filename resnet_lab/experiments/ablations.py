"""Ablations: `python -m resnet_lab experiment ablations --data DIR --out DIR`.

Which parts of the recipe matter? Each variant removes one part of the seed spread's teaching recipe (ResNet-20, a
few epochs on a fixed subset of 5,000 training images, the depth sweep's validation split) and trains it with a few
seeds; each run's record goes to `results/ablations/<variant>-seed<N>.json`, in the seed-spread format. The default
recipe itself is the seed spread (`results/seed_spread/`): same images, same seeds for the initial weights, so a
variant's errors are compared with the default's over seeds, not with one lucky or unlucky run.

Reading the records (load_ablations, ablation_summary) needs neither the engine nor matplotlib.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from resnet_lab.config import TrainConfig
from resnet_lab.experiments.results import repository_results_dir, results_dir
from resnet_lab.experiments.seed_spread import (
    SEED_SPREAD_EPOCHS,
    SEED_SPREAD_MODEL,
    SEED_SPREAD_TRAIN_SIZE,
    SEED_SPREAD_VAL_SIZE,
    SPLIT_SEED,
    seed_spread_config,
    train_recipe_point,
)
from resnet_lab.models import get_model

if TYPE_CHECKING:
    from resnet_lab.data import ImageData

HELP = "the seed spread's teaching recipe with one part removed at a time, over a few seeds (chapter 8)"
# variant -> (changes to the recipe, options of the network): one part of the default recipe removed each.
ABLATIONS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "no-augmentation": ({"augment": "none"}, {}),
    "constant-lr": ({"schedule": "constant", "lr": 0.1, "warmup_epochs": 0.0}, {}),
    "zero-init-residual": ({}, {"zero_init_residual": True}),
    "no-label-smoothing": ({"label_smoothing": 0.0}, {}),
}
ABLATION_LABELS = {
    "no-augmentation": "no augmentation",
    "constant-lr": "constant lr 0.1",
    "zero-init-residual": "zero-init last BN",
    "no-label-smoothing": "no label smoothing",
}
ABLATION_SEEDS = (0, 1, 2)


def ablation_recipe(variant: str, epochs: int = SEED_SPREAD_EPOCHS, seed: int = 0) -> tuple[TrainConfig, dict]:
    """The training recipe and the network options of one variant (the seed spread's recipe, one part removed)."""
    if variant not in ABLATIONS:
        raise ValueError(f"Unknown ablation {variant!r}: choose one of {', '.join(ABLATIONS)}.")
    changes, options = ABLATIONS[variant]
    return seed_spread_config(epochs, seed).replace(**changes), dict(options)


def load_ablations(folder: str | Path | None = None) -> dict[str, list[dict]]:
    """Every run's record in `folder` (default: results_dir()/ablations), grouped by variant, sorted by seed."""
    folder = results_dir() / "ablations" if folder is None else Path(folder)
    runs: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*-seed*.json")):
        record = json.loads(path.read_text())
        runs.setdefault(record["variant"], []).append(record)
    if not runs:
        raise FileNotFoundError(f"No ablation records in {folder}. Run `python -m resnet_lab experiment ablations "
                                "--data DIR --out DIR` to make them.")
    return {v: sorted(r, key=lambda record: record["seed"]) for v, r in runs.items()}


def ablation_summary(runs: dict[str, list[dict]], default: dict) -> dict[str, dict]:
    """Each variant's final validation errors (%) against the default recipe's `spread_summary`.

    difference: the variant's mean minus the default's; se: its standard error, from the default's seed-to-seed
    standard deviation (one noise level for every recipe, the best estimate a few seeds allow); distinguishable:
    whether the difference is more than two standard errors.
    """
    summary = {}
    for variant, records in runs.items():
        errors = [100 * r["final"]["val_err"] for r in records]
        mean = statistics.fmean(errors)
        se = default["std"] * math.sqrt(1 / len(errors) + 1 / default["n"])
        summary[variant] = {"seeds": [r["seed"] for r in records], "val_err_%": errors, "mean": mean,
                            "difference": mean - default["mean"], "se": se,
                            "distinguishable": abs(mean - default["mean"]) > 2 * se}
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m resnet_lab experiment ablations`."""
    parser.add_argument("--data", required=True, help="CIFAR-10 source: an ImageFolder directory or 'cifar10'")
    parser.add_argument("--out", required=True, help="folder for the runs' checkpoints (outside the repository)")
    parser.add_argument("--results", default=None,
                        help="where the result files go (default: results/ of the repository checkout)")
    parser.add_argument("--variants", nargs="+", default=list(ABLATIONS), choices=list(ABLATIONS), metavar="VARIANT",
                        help=f"which variants to train (default: all: {', '.join(ABLATIONS)})")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(ABLATION_SEEDS),
                        help="the seeds, one run of each variant each (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=SEED_SPREAD_EPOCHS,
                        help="epochs, as the seed spread's (default: %(default)s)")
    parser.add_argument("--model", default=SEED_SPREAD_MODEL, help="the network, as the seed spread's (default: "
                        "%(default)s)")
    parser.add_argument("--train-size", type=int, default=SEED_SPREAD_TRAIN_SIZE,
                        help="training images, as the seed spread's (default: %(default)s)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")


def _train_point(name: str, run_dir: Path, resume: bool, *, model: str, data: ImageData, epochs: int,
                 device: str | None, command: str | None) -> dict | None:
    variant, _, seed = name.rpartition("-seed")
    config, options = ablation_recipe(variant, epochs, int(seed))
    record = train_recipe_point(run_dir, resume, model=model, options=options, config=config,
                                data=data, device=device, command=command)
    if record is None:
        return None
    return {**record, "experiment": "ablations", "variant": variant, "model_options": options}


def run(args: argparse.Namespace) -> int:
    """Train (or resume) every variant with every seed; finished runs are skipped."""
    from resnet_lab.data import load_data
    from resnet_lab.experiments.runner import run_grid

    if any(s < 0 for s in args.seeds) or len(set(args.seeds)) != len(args.seeds):
        raise ValueError(f"--seeds needs different seeds of 0 or more, got {args.seeds}.")
    for variant in args.variants:  # a bad number of epochs or network fails now, before the data are loaded
        ablation_recipe(variant, args.epochs)
        with torch.device("meta"):
            get_model(args.model, **ABLATIONS[variant][1])
    results = Path(args.results) if args.results else repository_results_dir()
    data = load_data(args.data, val_size=SEED_SPREAD_VAL_SIZE, train_size=args.train_size, split_seed=SPLIT_SEED)
    if data.is_synthetic:
        print("WARNING: synthetic data. These runs only exercise the experiment: never commit their results.")
    point = partial(_train_point, model=args.model, data=data, epochs=args.epochs, device=args.device,
                    command=getattr(args, "command_line", None))
    names = [f"{variant}-seed{seed}" for variant in args.variants for seed in args.seeds]
    summary = run_grid(names, point, results_dir=results / "ablations", out_dir=Path(args.out),
                       is_complete=lambda record: record["final"]["epochs"] == args.epochs)
    return summary.exit_status


__all__ = ["ABLATIONS", "ABLATION_LABELS", "ABLATION_SEEDS", "HELP", "ablation_recipe", "ablation_summary",
           "add_arguments", "load_ablations", "run"]
