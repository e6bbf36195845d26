"""Precise BN: `python -m resnet_lab experiment precise-bn --data DIR --out DIR`.

The depth sweep's training-error curves jump by up to 17 points from one epoch to the next. Are the networks
that bad for an epoch, or is it the evaluation? This experiment trains one network with the sweep's recipe and,
after every epoch, evaluates it twice on the same images: once as usual, with the batch-norm running statistics
that training left behind, and once after recomputing them from training batches with the current weights
("precise BN", `resnet_lab.precise_bn`), on a copy, so that training itself is not changed. The record goes to
`results/precise_bn/<model>.json`.
"""

from __future__ import annotations

import argparse
import copy
import json
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from resnet_lab.callbacks import Callback
from resnet_lab.config import TrainConfig
from resnet_lab.experiments.results import repository_results_dir, results_dir
from resnet_lab.files import write_json
from resnet_lab.models import get_model

if TYPE_CHECKING:  # annotations only: the engine is loaded when the experiment runs
    from resnet_lab.data import ImageData
    from resnet_lab.train import Trainer

HELP = "evaluation with batch-norm running statistics against recomputed ('precise') ones, after every epoch"
PRECISE_BN_MODEL = "plain20"
PRECISE_BN_EPOCHS = 12
PRECISE_BN_TRAIN_SIZE = 20_000  # a subset: a CPU trains it in minutes per epoch
PRECISE_BN_BATCHES = 40
TRAIN_EVAL_SIZE = 5000
PRECISE_BN_SEED = 8  # mixed with the run seed: which augmented training batches recompute the statistics
SIDE_FILE = "precise_bn.json"  # the per-epoch measurements of a run, kept beside its checkpoints for resuming


class PreciseBNEval(Callback):
    """A callback: after each epoch, evaluate a copy of the model with recomputed BN statistics.

    The copy's BN statistics are recomputed from `num_batches` augmented training batches (the same images every
    epoch), then it is evaluated on the fixed training subset and on the validation split. The measurements of
    each epoch are also written to `run_dir/precise_bn.json`, so that a resumed run keeps the earlier ones.
    """

    def __init__(self, data: ImageData, num_batches: int, run_dir: Path | None = None) -> None:
        self.data, self.num_batches, self.run_dir = data, num_batches, run_dir
        self.epochs: list[dict[str, Any]] = []

    def on_train_start(self, trainer: Trainer) -> None:
        side = self.run_dir / SIDE_FILE if self.run_dir is not None else None
        if side is not None and side.exists():
            kept = json.loads(side.read_text())
            self.epochs = [e for e in kept if e["epoch"] <= trainer.start_epoch]

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        from resnet_lab.augment import make_augment
        from resnet_lab.data import mix_seed
        from resnet_lab.evaluate import evaluate_tensors
        from resnet_lab.loaders import BatchLoader
        from resnet_lab.precise_bn import bn_statistics, recompute_bn_statistics, statistics_gap
        from resnet_lab.runtime import autocast

        c, d = trainer.config, self.data
        model = copy.deepcopy(trainer.model)  # training goes on with the original, untouched
        running = bn_statistics(model)
        augment = make_augment(c.augment, crop_padding=c.crop_padding, flip=c.flip, cutout=c.cutout,
                               image_size=d.image_size)
        loader = BatchLoader(d.train_x, d.train_y, trainer.mean, trainer.std, batch_size=c.batch_size,
                             augment=augment, seed=mix_seed(c.seed, PRECISE_BN_SEED), device=trainer.device,
                             channels_last=c.channels_last)
        batches = [x for (x, _), _ in zip(loader, range(self.num_batches))]
        with autocast(trainer.device, trainer.precision):
            recompute_bn_statistics(model, batches)
        common = dict(num_classes=d.num_classes, batch_size=c.eval_batch_size, device=trainer.device,
                      precision=trainer.precision, channels_last=c.channels_last)
        train = evaluate_tensors(model, *trainer.train_eval, trainer.mean, trainer.std, **common)
        val = evaluate_tensors(model, d.val_x, d.val_y, trainer.mean, trainer.std, **common)
        entry = {"epoch": record["epoch"], "train_eval_err_precise": 1.0 - train["accuracy"],
                 "val_err_precise": 1.0 - val["accuracy"], "bn_gap": statistics_gap(running, bn_statistics(model))}
        self.epochs = [e for e in self.epochs if e["epoch"] < record["epoch"]] + [entry]
        if self.run_dir is not None:
            write_json(self.epochs, self.run_dir / SIDE_FILE)
        print(f"  precise BN: train err {100 * entry['train_eval_err_precise']:.2f}% (running stats "
              f"{100 * (1 - record['train_eval_acc']):.2f}%), val err {100 * entry['val_err_precise']:.2f}% "
              f"(running {100 * (1 - record['val_acc']):.2f}%)", flush=True)


def precise_bn_record(name: str, results: dict, precise: list[dict], num_batches: int) -> dict:
    """One run's results.json and its precise-BN measurements, merged into the results/precise_bn format."""
    by_epoch = {e["epoch"]: e for e in precise}
    missing = [e["epoch"] for e in results["epochs"] if e["epoch"] not in by_epoch]
    if missing:
        raise ValueError(f"No precise-BN measurement for epoch(s) {missing} of {name}: run the experiment again "
                         "in a new --out folder.")
    epochs = [
        {
            "epoch": e["epoch"],
            "lr": e["lr"],
            "train_err": 1.0 - e["train_acc"],  # on augmented batches, averaged over the epoch
            "train_eval_err": 1.0 - e["train_eval_acc"],  # running statistics, fixed un-augmented subset
            "train_eval_err_precise": by_epoch[e["epoch"]]["train_eval_err_precise"],
            "val_err": 1.0 - e["val_acc"],
            "val_err_precise": by_epoch[e["epoch"]]["val_err_precise"],
            "bn_gap": by_epoch[e["epoch"]]["bn_gap"],
            "seconds": e["seconds"],
        }
        for e in results["epochs"]
    ]
    return {
        "experiment": "precise-bn",
        "model": name,
        "precise_bn_batches": num_batches,
        "provenance": results["provenance"],
        "config": results["config"],
        "epochs": epochs,
        "final": {"epochs": epochs[-1]["epoch"], "wall_seconds": sum(e["seconds"] for e in epochs)},
    }


def load_precise_bn(model: str = PRECISE_BN_MODEL, folder: str | Path | None = None) -> dict:
    """The committed record of the precise-BN run of `model` (default folder: results_dir()/precise_bn)."""
    folder = results_dir() / "precise_bn" if folder is None else Path(folder)
    path = folder / f"{model}.json"
    if not path.exists():
        have = sorted(p.stem for p in folder.glob("*.json"))
        raise FileNotFoundError(f"No precise-BN record for {model!r} in {folder} (there are: {have or 'none'}). "
                                "Run `python -m resnet_lab experiment precise-bn --model "
                                f"{model} --data DIR --out DIR` to make it.")
    return json.loads(path.read_text())


def largest_jumps(record: dict, key: str = "train_eval_err", top: int = 3) -> list[dict]:
    """The `top` largest epoch-to-epoch rises of the error `key`, each with the same step measured precisely."""
    epochs = record["epochs"]
    jumps = [{"epoch": b["epoch"], "lr": b["lr"], "rise": b[key] - a[key],
              "rise_precise": b[f"{key}_precise"] - a[f"{key}_precise"]} for a, b in zip(epochs, epochs[1:])]
    return sorted(jumps, key=lambda j: j["rise"], reverse=True)[:top]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m resnet_lab experiment precise-bn`."""
    parser.add_argument("--data", required=True, help="CIFAR-10 source: an ImageFolder directory or 'cifar10'")
    parser.add_argument("--out", required=True, help="folder for the run's checkpoints (outside the repository)")
    parser.add_argument("--results", default=None,
                        help="where the result files go (default: results/ of the repository checkout)")
    parser.add_argument("--model", default=PRECISE_BN_MODEL, help="the network (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=PRECISE_BN_EPOCHS, help="epochs (default: %(default)s)")
    parser.add_argument("--precise-batches", type=int, default=PRECISE_BN_BATCHES,
                        help="training batches that recompute the BN statistics (default: %(default)s)")
    parser.add_argument("--train-size", type=int, default=PRECISE_BN_TRAIN_SIZE,
                        help="training images, a seeded subset (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, weights and training (default: 0)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")


def _train_point(name: str, run_dir: Path, resume: bool, *, data: ImageData, config: TrainConfig,
                 num_batches: int, device: str | None, command: str | None) -> dict | None:
    from resnet_lab.train import fit

    torch.manual_seed(config.seed)
    model = get_model(name, num_classes=data.num_classes)
    probe = PreciseBNEval(data, num_batches, run_dir)
    history = fit(model, data, config, out_dir=run_dir, resume=resume, device=device, command=command,
                  callbacks=[probe])
    if history.status != "finished":
        return None
    precise = json.loads((run_dir / SIDE_FILE).read_text())
    return precise_bn_record(name, json.loads((run_dir / "results.json").read_text()), precise, num_batches)


def run(args: argparse.Namespace) -> int:
    """Train (or resume) the network, measuring both evaluations after every epoch; write its record."""
    from resnet_lab.checks import check_int
    from resnet_lab.data import load_data
    from resnet_lab.experiments.runner import run_grid

    check_int("precise_batches", args.precise_batches)
    with torch.device("meta"):
        get_model(args.model)  # a bad name fails now, before any data is decoded
    results = Path(args.results) if args.results else repository_results_dir()
    # The depth sweep's recipe (TrainConfig's defaults), shorter.
    config = TrainConfig(epochs=args.epochs, seed=args.seed, train_eval_size=TRAIN_EVAL_SIZE)
    data = load_data(args.data, val_size=5000, train_size=args.train_size, split_seed=args.seed)
    if data.is_synthetic:
        print("WARNING: synthetic data. This run only exercises the experiment: never commit its results.")
    config = config.replace(train_eval_size=min(TRAIN_EVAL_SIZE, len(data.train_y)))
    point = partial(_train_point, data=data, config=config, num_batches=args.precise_batches, device=args.device,
                    command=getattr(args, "command_line", None))
    summary = run_grid([args.model], point, results_dir=results / "precise_bn", out_dir=Path(args.out),
                       is_complete=lambda record: record["final"]["epochs"] == config.epochs)
    return summary.exit_status


__all__ = ["PRECISE_BN_BATCHES", "PRECISE_BN_EPOCHS", "PRECISE_BN_MODEL", "PRECISE_BN_TRAIN_SIZE", "PreciseBNEval",
           "add_arguments", "largest_jumps", "load_precise_bn", "precise_bn_record", "run"]
