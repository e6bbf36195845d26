"""Experiments that produce the book's committed results: `python -m resnet_lab experiment NAME ...`.

Each experiment is registered here with its name, its options and its run function; the command line gives each
one a sub-command of its own (`python -m resnet_lab experiment depth-sweep --help` lists its options). They share
the resumable grid runner of `resnet_lab.experiments.runner`.

- depth-sweep (`depth_sweep.py`): plain vs residual CIFAR networks of growing depth (He et al. 2016, figure 6).
- precise-bn (`precise_bn.py`), seed-spread (`seed_spread.py`) and ablations (`ablations.py`): evaluation with
  recomputed batch-norm statistics after every epoch, one short recipe trained with several seeds, and that recipe
  with one part removed at a time (chapter 8).
- transfer (`transfer.py`): pretrain on five CIFAR-10 classes, fine-tune on the other five with few labels.
- gradient-flow (`gradient_flow.py`): per-block gradients of plain vs residual networks at initialization, during
  the first epochs and after training, and shattered gradients (Balduzzi et al. 2017); chapter 5.
- block-deletion (`block_deletion.py`): lesions of the trained ResNet-56 and plain-56, and the gradient of each
  path length (Veit et al. 2016).
- loss-landscape (`loss_landscape.py`): loss surfaces of the trained ResNet-56 and plain-56 along
  filter-normalized random directions, and from initialization to the trained weights (Li et al. 2018).

Where the committed results are read from: `results.py`. Importing this package loads neither the training
engine nor matplotlib, so notebooks that only read results stay light.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from resnet_lab.experiments import (
    ablations,
    block_deletion,
    depth_sweep,
    gradient_flow,
    loss_landscape,
    precise_bn,
    seed_spread,
    transfer,
)
from resnet_lab.experiments.depth_sweep import (
    DEPTH_SWEEP_DEPTHS,
    EXPORTED_CHECKPOINTS,
    PUBLISHED_EPOCHS,
    PUBLISHED_TEST_ERR,
    SEED_STD_PCT,
    depth_sweep_findings,
    depth_sweep_models,
    depth_sweep_table,
    depth_sweep_verdict,
    export_half_precision,
    format_depth_sweep_table,
    load_depth_sweep,
    noise_threshold,
    run_device,
    sweep_record,
    write_summary,
)
from resnet_lab.experiments.results import download_results, repository_results_dir, results_dir


@dataclass(frozen=True)
class Experiment:
    """One experiment of the command line: its name, a one-line help, its options and the function that runs it."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]  # returns the exit status


# name -> Experiment, in the order the command line lists them.
EXPERIMENTS: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    """Add an experiment to the command line (a name may be registered once)."""
    if experiment.name in EXPERIMENTS:
        raise ValueError(f"An experiment named {experiment.name!r} is already registered.")
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One sub-command per registered experiment under `parser` (the `experiment` command), with its options."""
    names = parser.add_subparsers(dest="experiment", required=True, metavar="NAME", help="the experiment to run")
    for experiment in EXPERIMENTS.values():
        description = experiment.help[:1].upper() + experiment.help[1:] + "."
        experiment.add_arguments(names.add_parser(experiment.name, help=experiment.help, description=description))


def run(args: argparse.Namespace) -> int:
    """Run the experiment named on the command line; returns its exit status."""
    return EXPERIMENTS[args.experiment].run(args)


register(Experiment("depth-sweep", depth_sweep.HELP, depth_sweep.add_arguments, depth_sweep.run))
register(Experiment("precise-bn", precise_bn.HELP, precise_bn.add_arguments, precise_bn.run))
register(Experiment("seed-spread", seed_spread.HELP, seed_spread.add_arguments, seed_spread.run))
register(Experiment("ablations", ablations.HELP, ablations.add_arguments, ablations.run))
register(Experiment("transfer", transfer.HELP, transfer.add_arguments, transfer.run))
register(Experiment("gradient-flow", gradient_flow.HELP, gradient_flow.add_arguments, gradient_flow.run))
register(Experiment("block-deletion", block_deletion.HELP, block_deletion.add_arguments, block_deletion.run))
register(Experiment("loss-landscape", loss_landscape.HELP, loss_landscape.add_arguments, loss_landscape.run))

__all__ = [
    "DEPTH_SWEEP_DEPTHS", "EXPERIMENTS", "EXPORTED_CHECKPOINTS", "Experiment", "PUBLISHED_EPOCHS", "PUBLISHED_TEST_ERR",
    "SEED_STD_PCT", "add_arguments", "depth_sweep_findings", "depth_sweep_models", "depth_sweep_table",
    "depth_sweep_verdict", "download_results", "export_half_precision", "format_depth_sweep_table",
    "load_depth_sweep", "noise_threshold", "register", "repository_results_dir", "results_dir", "run", "run_device",
    "sweep_record", "write_summary",
]
