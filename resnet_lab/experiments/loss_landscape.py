"""Loss landscapes: `python -m resnet_lab experiment loss-landscape --data DIR`.

Li et al. 2018's pictures of the trained ResNet-56 and plain-56 of the depth sweep, and of the 20-layer pair
(`results/checkpoints/`): the training loss over the plane of two filter-normalized random directions and along
one of them (1-D slice), for two seeds of directions each; and along the straight line from each network's
initialization to its trained weights. Each point writes `results/loss_landscape/<point>.json`; finished points
are skipped when run again.

A 2-core CPU computes this in tens of minutes, and only on a subset: the loss is that of a fixed random subset of
the training split (`--eval-size` images, un-augmented, BN in eval mode as in the authors' code), on a coarser grid
than the paper's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from resnet_lab.experiments.results import results_dir

HELP = "loss surfaces of the trained ResNet-56, plain-56, ResNet-20 and plain-20 (Li et al. 2018)"
MODELS = ("resnet56", "plain56", "resnet20", "plain20")
SEEDS = (0, 1)
POINTS = tuple(f"{m}-seed{s}" for m in MODELS for s in SEEDS) + tuple(f"{m}-interpolation" for m in MODELS)
# The committed results' settings (each result file records its `seconds`). Li et al. evaluate 51 x 51 grids on
# the whole training set.
EVAL_SIZE = 500
RESOLUTION = 21  # grid points per axis over [-1, 1]
SLICE_POINTS = 21
INTERPOLATION_POINTS = 21  # alpha over [0, 1]


def load_loss_landscape(folder: str | Path | None = None) -> dict[str, dict]:
    """Every point's record in `folder` (default: results_dir()/loss_landscape), by point name."""
    from resnet_lab.experiments.runner import load_points

    return load_points(results_dir() / "loss_landscape" if folder is None else Path(folder))


def linspace(low: float, high: float, count: int) -> list[float]:
    """`count` evenly spaced values from low to high, rounded to 6 decimals (so that 0 is exactly 0)."""
    return [round(v, 6) for v in torch.linspace(low, high, count, dtype=torch.float64).tolist()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m resnet_lab experiment loss-landscape`."""
    parser.add_argument("--data", required=True, help="the CIFAR-10 folder the checkpoints were trained on")
    parser.add_argument("--checkpoints", default=None,
                        help="folder of the networks' checkpoints, MODEL.pt "
                        "(default: checkpoints/ in the --results folder)")
    parser.add_argument("--results", default=None,
                        help="where the result files go (default: results/ of the repository checkout)")
    parser.add_argument("--points", nargs="+", default=list(POINTS), choices=POINTS, metavar="POINT",
                        help=f"which surfaces to compute (default: all: {', '.join(POINTS)})")
    parser.add_argument("--eval-size", type=int, default=EVAL_SIZE,
                        help="training images in the fixed subset whose loss is plotted (default: %(default)s)")
    parser.add_argument("--resolution", type=int, default=RESOLUTION,
                        help="grid points per axis over [-1, 1] (default: %(default)s)")
    parser.add_argument("--slice-points", type=int, default=SLICE_POINTS,
                        help="points of the 1-D slice over [-1, 1] (default: %(default)s)")
    parser.add_argument("--interpolation-points", type=int, default=INTERPOLATION_POINTS,
                        help="points from initialization (alpha 0) to trained weights (alpha 1) "
                        "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the image subset and of the rebuilt initialization (default: 0, the sweep's)")


def make_evaluator(x: torch.Tensor, y: torch.Tensor, mean, std, num_classes: int):
    """An evaluate(model) -> {"loss", "err"} on fixed uint8 images, fp32 on the CPU, BN in eval mode."""
    from resnet_lab.evaluate import evaluate_tensors

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        m = evaluate_tensors(model, x, y, mean, std, num_classes=num_classes, precision="fp32",
                             channels_last=False, device="cpu")
        return {"loss": m["loss"], "err": 1.0 - m["accuracy"]}

    return evaluate


def _run_point(name: str, run_dir: Path, resume: bool, *, args: argparse.Namespace, data: Any,
               checkpoints: Path) -> dict:
    from resnet_lab import landscape
    from resnet_lab.checkpoint import build_model, load_checkpoint
    from resnet_lab.provenance import provenance

    model_name, _, what = name.partition("-")
    model, meta = load_checkpoint(checkpoints / f"{model_name}.pt")
    model.float().eval()
    index = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(args.seed))[:args.eval_size]
    evaluate = make_evaluator(data.train_x[index], data.train_y[index], meta["mean"], meta["std"],
                              data.num_classes)
    started = time.perf_counter()
    record: dict[str, Any] = {"experiment": "loss-landscape", "point": name, "model": model_name,
                              "checkpoint": f"checkpoints/{model_name}.pt", "eval_images": args.eval_size,
                              "eval_split": "train", "center": evaluate(model)}
    print(f"{name}: trained network, loss {record['center']['loss']:.4f}", flush=True)
    if what == "interpolation":
        torch.manual_seed(args.seed)  # the depth sweep seeds torch with its seed just before building each network
        start = build_model(meta["model_spec"]).state_dict()
        end = {k: v.clone() for k, v in model.state_dict().items()}
        # Not beyond [0, 1]: extrapolated BN running variances can turn negative.
        alphas = linspace(0, 1, args.interpolation_points)
        rows = []
        for alpha in alphas:
            model.load_state_dict(landscape.interpolation_states(start, end, alpha))
            rows.append({"alpha": alpha, **evaluate(model)})
            print(f"  alpha {alpha:+.3f}: loss {rows[-1]['loss']:.4f}", flush=True)
        model.load_state_dict(end)
        record["interpolation"] = {"alphas": alphas, "rows": rows,
                                   "start": f"{model_name} at initialization, rebuilt with torch seed {args.seed}"}
    else:
        seed = int(what.removeprefix("seed"))
        generator = torch.Generator().manual_seed(seed)
        x_dir = landscape.random_direction(model, generator)
        y_dir = landscape.random_direction(model, generator)
        slice_alphas = linspace(-1, 1, args.slice_points)
        record["slice"] = {"alphas": slice_alphas,
                           "rows": landscape.loss_slice(model, x_dir, slice_alphas, evaluate)}
        print(f"  1-D slice done ({time.perf_counter() - started:.0f} s)", flush=True)
        axis = linspace(-1, 1, args.resolution)
        grid = landscape.loss_grid(model, x_dir, y_dir, axis, axis, evaluate,
                                   progress=lambda done, total: print(f"  grid row {done}/{total}", flush=True))
        record["direction_seed"] = seed
        record["grid"] = {"alphas": axis, "betas": axis, **grid}
    record["seconds"] = time.perf_counter() - started
    record["provenance"] = provenance(command=getattr(args, "command_line", None), seed=args.seed,
                                      data=data.describe(), device="cpu")
    return record


def run(args: argparse.Namespace) -> int:
    """Compute (or resume) the surfaces; finished points are skipped."""
    from resnet_lab.experiments.runner import run_checkpoint_grid

    return run_checkpoint_grid(args, "loss_landscape", _run_point)


__all__ = ["EVAL_SIZE", "HELP", "POINTS", "RESOLUTION", "add_arguments", "linspace", "load_loss_landscape",
           "make_evaluator", "run"]
