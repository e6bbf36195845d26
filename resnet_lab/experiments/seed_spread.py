"""Seed spread: `python -m resnet_lab experiment seed-spread --data DIR --out DIR`.

How much does one run tell? The same short recipe (ResNet-20 on a subset of the training images, a few epochs)
is trained once per seed, and each run's record goes to `results/seed_spread/seed<N>.json`. The seed sets the
initial weights, the order of the images and the augmentation. The validation images and the training subset
are the same for every seed (split seed 0, as in every run of the depth sweep), so the spread measured here is
that of training alone, not of which images happen to be held out.

Reading the records (load_seed_spread, spread_summary) needs neither the engine nor matplotlib.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from resnet_lab.config import TrainConfig
from resnet_lab.experiments.results import repository_results_dir, results_dir
from resnet_lab.models import get_model

if TYPE_CHECKING:
    from resnet_lab.data import ImageData

HELP = "the same short recipe trained with several seeds: how far apart single runs land"
SEED_SPREAD_MODEL = "resnet20"
SEED_SPREAD_SEEDS = tuple(range(8))
SEED_SPREAD_EPOCHS = 4
SEED_SPREAD_TRAIN_SIZE = 5000
SEED_SPREAD_VAL_SIZE = 5000
SPLIT_SEED = 0  # the depth sweep's split: the same validation images for every seed


def seed_spread_config(epochs: int = SEED_SPREAD_EPOCHS, seed: int = 0) -> TrainConfig:
    """The recipe of every run: the library's default recipe (the depth sweep's), shorter."""
    return TrainConfig(epochs=epochs, seed=seed)


def seed_record(name: str, seed: int, results: dict) -> dict:
    """One run's results.json in the seed-spread format (errors, not accuracies)."""
    epochs = [{"epoch": e["epoch"], "lr": e["lr"], "train_err": 1.0 - e["train_acc"], "val_err": 1.0 - e["val_acc"],
               "val_loss": e["val_loss"], "seconds": e["seconds"]} for e in results["epochs"]]
    return {
        "experiment": "seed-spread",
        "model": name,
        "seed": seed,
        "split_seed": SPLIT_SEED,
        "provenance": results["provenance"],
        "config": results["config"],
        "epochs": epochs,
        "final": {"epochs": epochs[-1]["epoch"], "val_err": epochs[-1]["val_err"],
                  "wall_seconds": sum(e["seconds"] for e in epochs)},
    }


def load_seed_spread(folder: str | Path | None = None) -> list[dict]:
    """Every seed's record in `folder` (default: results_dir()/seed_spread), by seed."""
    folder = results_dir() / "seed_spread" if folder is None else Path(folder)
    runs = [json.loads(p.read_text()) for p in folder.glob("seed*.json")]
    if not runs:
        raise FileNotFoundError(f"No seed-spread records in {folder}. Run `python -m resnet_lab experiment "
                                "seed-spread --data DIR --out DIR` to make them.")
    return sorted(runs, key=lambda r: r["seed"])


def spread_summary(runs: list[dict]) -> dict:
    """Final validation errors in % across seeds: each seed's, mean, sample standard deviation, min, max, range."""
    if len(runs) < 2:
        raise ValueError(f"A spread needs at least two seeds, got {len(runs)}.")
    errors = [100 * r["final"]["val_err"] for r in runs]
    return {"seeds": [r["seed"] for r in runs], "val_err_%": errors, "mean": statistics.fmean(errors),
            "std": statistics.stdev(errors), "min": min(errors), "max": max(errors),
            "range": max(errors) - min(errors), "n": len(errors)}


def std_interval(std: float, n: int) -> tuple[float, float]:
    """A rough 90% interval for the true standard deviation given a sample one from n runs (chi-square, n-1
    degrees of freedom, by the Wilson-Hilferty approximation): few seeds pin the spread down only loosely."""
    if n < 2:
        raise ValueError(f"A standard deviation needs at least two runs, got {n}.")
    k = n - 1

    def chi2(z: float) -> float:  # the chi-square quantile at the standard normal quantile z
        return k * (1 - 2 / (9 * k) + z * math.sqrt(2 / (9 * k))) ** 3

    z = 1.6448536269514722  # the 95th percentile of the standard normal
    return std * math.sqrt(k / chi2(z)), std * math.sqrt(k / chi2(-z))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m resnet_lab experiment seed-spread`."""
    parser.add_argument("--data", required=True, help="CIFAR-10 source: an ImageFolder directory or 'cifar10'")
    parser.add_argument("--out", required=True, help="folder for the runs' checkpoints (outside the repository)")
    parser.add_argument("--results", default=None,
                        help="where the result files go (default: results/ of the repository checkout)")
    parser.add_argument("--model", default=SEED_SPREAD_MODEL, help="the network (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEED_SPREAD_SEEDS),
                        help="the seeds, one run each (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=SEED_SPREAD_EPOCHS, help="epochs (default: %(default)s)")
    parser.add_argument("--train-size", type=int, default=SEED_SPREAD_TRAIN_SIZE,
                        help="training images, the same subset for every seed (default: %(default)s)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")


def train_recipe_point(run_dir: Path, resume: bool, *, model: str, options: dict, config: TrainConfig,
                       data: ImageData, device: str | None, command: str | None) -> dict | None:
    """Train one run of a short recipe (resumable in run_dir); its seed-spread record, or None if it stopped early.

    The initial weights come from config.seed, so runs with the same seed start from the same network.
    """
    from resnet_lab.train import fit

    torch.manual_seed(config.seed)  # the initial weights
    net = get_model(model, num_classes=data.num_classes, **options)
    history = fit(net, data, config, out_dir=run_dir, resume=resume, device=device, command=command)
    if history.status != "finished":
        return None
    return seed_record(model, config.seed, json.loads((run_dir / "results.json").read_text()))


def _train_point(name: str, run_dir: Path, resume: bool, *, model: str, data: ImageData, epochs: int,
                 device: str | None, command: str | None) -> dict | None:
    config = seed_spread_config(epochs, int(name.removeprefix("seed")))
    return train_recipe_point(run_dir, resume, model=model, options={}, config=config, data=data, device=device,
                              command=command)


def run(args: argparse.Namespace) -> int:
    """Train (or resume) one run per seed; finished seeds are skipped."""
    from resnet_lab.data import load_data
    from resnet_lab.experiments.runner import run_grid

    if any(s < 0 for s in args.seeds) or len(set(args.seeds)) < 2:
        raise ValueError(f"--seeds needs at least two different seeds of 0 or more, got {args.seeds}.")
    with torch.device("meta"):
        get_model(args.model)
    seed_spread_config(args.epochs)  # a bad number of epochs fails now
    results = Path(args.results) if args.results else repository_results_dir()
    data = load_data(args.data, val_size=SEED_SPREAD_VAL_SIZE, train_size=args.train_size, split_seed=SPLIT_SEED)
    if data.is_synthetic:
        print("WARNING: synthetic data. These runs only exercise the experiment: never commit their results.")
    point = partial(_train_point, model=args.model, data=data, epochs=args.epochs, device=args.device,
                    command=getattr(args, "command_line", None))
    summary = run_grid([f"seed{s}" for s in args.seeds], point, results_dir=results / "seed_spread",
                       out_dir=Path(args.out), is_complete=lambda record: record["final"]["epochs"] == args.epochs)
    return summary.exit_status


__all__ = ["SEED_SPREAD_EPOCHS", "SEED_SPREAD_MODEL", "SEED_SPREAD_SEEDS", "SEED_SPREAD_TRAIN_SIZE", "SPLIT_SEED",
           "add_arguments", "load_seed_spread", "run", "seed_record", "seed_spread_config", "spread_summary",
           "std_interval", "train_recipe_point"]
