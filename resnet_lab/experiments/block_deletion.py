"""The lesion study: `python -m resnet_lab experiment block-deletion --data DIR`.

Veit et al. 2016's experiments on the depth sweep's trained networks (`results/checkpoints/`): delete each block
of ResNet-56 and each layer of plain-56 at test time; delete k random blocks; swap k random pairs of blocks; and
measure the gradient that paths of each length carry (`resnet_lab.ensembles`). Each point of the grid writes
`results/block_deletion/<point>.json`; the runner skips points already written, so an interrupted call resumes.

Errors are measured on a fixed subset of the checkpoints' validation split (its first `--eval-size` images), the
same images for every lesion, so that differences between lesions are not sampling noise between subsets.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from resnet_lab.experiments.results import results_dir

HELP = "delete and reorder blocks of the trained ResNet-56 and plain-56; path gradients (Veit et al. 2016)"
POINTS = ("resnet56-single", "resnet56-random", "resnet56-paths", "plain56-layers", "resnet56-reorder",
          "plain56-random")
EVAL_SIZE = 500
MAX_K = 10
# Veit et al. 2016, abstract: "most of the gradient in a residual network with 110 layers comes from paths that are
# only 10-34 layers deep"; ResNet-110 has 54 blocks of two layers.
VEIT_EFFECTIVE_LAYERS = (10, 34)
VEIT_BLOCKS = 54


def load_block_deletion(folder: str | Path | None = None) -> dict[str, dict]:
    """Every point's record in `folder` (default: results_dir()/block_deletion), by point name."""
    from resnet_lab.experiments.runner import load_points

    return load_points(results_dir() / "block_deletion" if folder is None else Path(folder))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m resnet_lab experiment block-deletion`."""
    parser.add_argument("--data", required=True, help="the CIFAR-10 folder the checkpoints were trained on")
    parser.add_argument("--checkpoints", default=None,
                        help="folder of resnet56.pt and plain56.pt (default: checkpoints/ in the --results folder)")
    parser.add_argument("--results", default=None,
                        help="where the result files go (default: results/ of the repository checkout)")
    parser.add_argument("--points", nargs="+", default=list(POINTS), choices=POINTS, metavar="POINT",
                        help=f"which experiments to run (default: all: {', '.join(POINTS)})")
    parser.add_argument("--eval-size", type=int, default=EVAL_SIZE,
                        help="validation images evaluated per lesion (a fixed random subset; default: %(default)s)")
    parser.add_argument("--max-k", type=int, default=MAX_K,
                        help="random deletions and swaps run k = 1..MAX_K (default: %(default)s)")
    parser.add_argument("--draws", type=int, default=2, help="random draws per k for ResNet-56 (default: 2)")
    parser.add_argument("--plain-draws", type=int, default=1, help="random draws per k for plain-56 (default: 1)")
    parser.add_argument("--path-images", type=int, default=16,
                        help="training images in the batch whose path gradients are measured (default: 16)")
    parser.add_argument("--path-samples", type=int, default=12,
                        help="paths sampled per length (default: 12)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draws (default: 0)")


class _Evaluator:
    """The error and loss of a model on the fixed validation subset, in fp32, on the CPU."""

    def __init__(self, data: Any, meta: dict, size: int) -> None:
        from resnet_lab.data import val_subset

        self.x, self.y = val_subset(data, size)  # at random: the split is stored in class order
        self.mean, self.std, self.num_classes = meta["mean"], meta["std"], data.num_classes

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        from resnet_lab.evaluate import evaluate_tensors

        m = evaluate_tensors(model, self.x, self.y, self.mean, self.std, num_classes=self.num_classes,
                             precision="fp32", channels_last=False, device="cpu")
        return {"err": 1.0 - m["accuracy"], "loss": m["loss"]}


def _single(model, evaluate, kind: str) -> list[dict]:
    from resnet_lab import ensembles

    rows = []
    if kind == "blocks":
        for info in ensembles.block_info(model):
            with ensembles.blocks_deleted(model, [info.name]):
                rows.append({"deleted": [info.name], "downsampling": info.downsampling, **evaluate(model)})
            print(f"  {info.name}: err {rows[-1]['err']:.4f}", flush=True)
    else:
        for name in ensembles.layer_deletions(model):
            with ensembles.layers_deleted(model, [name]):
                rows.append({"deleted": [name], **evaluate(model)})
            print(f"  {name}: err {rows[-1]['err']:.4f}", flush=True)
    return rows


def _random(model, evaluate, max_k: int, draws: int, generator: torch.Generator, swap: bool) -> list[dict]:
    from resnet_lab import ensembles

    rows = []
    for k in range(1, max_k + 1):
        for draw in range(draws):
            if swap:
                pairs = ensembles.random_swaps(model, k, generator)
                with ensembles.blocks_swapped(model, pairs):
                    rows.append({"k": k, "draw": draw, "swapped": [list(p) for p in pairs], **evaluate(model)})
            else:
                names = ensembles.random_blocks(model, k, generator)
                with ensembles.blocks_deleted(model, names):
                    rows.append({"k": k, "draw": draw, "deleted": names, **evaluate(model)})
            print(f"  k={k} draw {draw}: err {rows[-1]['err']:.4f}", flush=True)
    return rows


def _paths(model, data, images: int, samples: int, generator: torch.Generator) -> dict[str, Any]:
    from resnet_lab import ensembles
    from resnet_lab.loaders import normalize

    n = len(ensembles.block_info(model))
    index = torch.randperm(len(data.train_y), generator=generator)[:images]
    x = normalize(data.train_x[index], data.mean, data.std)
    y = data.train_y[index]
    norms = ensembles.path_gradient_norms(model.eval(), x, y, list(range(n + 1)), samples, generator)
    totals = ensembles.gradient_by_length(norms, n)
    return {"blocks": n, "images": images, "samples_per_length": samples, "train_indices": index.tolist(),
            "norms": {str(k): v for k, v in norms.items()}, "totals": {str(k): t for k, t in totals.items()},
            "effective_90": list(ensembles.effective_lengths(totals, 0.9))}


def _run_point(name: str, run_dir: Path, resume: bool, *, args: argparse.Namespace, data: Any,
               checkpoints: Path) -> dict:
    """One point of the grid: its record, with provenance."""
    from resnet_lab.checkpoint import load_checkpoint
    from resnet_lab.provenance import provenance

    model_name, _, what = name.partition("-")
    model, meta = load_checkpoint(checkpoints / f"{model_name}.pt")
    model.float().eval()
    evaluate = _Evaluator(data, meta, args.eval_size)
    # One generator per point, seeded from the point's name: a point's draws do not depend on the others.
    generator = torch.Generator().manual_seed(args.seed * 1000 + POINTS.index(name))
    started = time.perf_counter()
    record: dict[str, Any] = {"experiment": "block-deletion", "point": name, "model": model_name,
                              "checkpoint": f"checkpoints/{model_name}.pt", "eval_images": args.eval_size}
    if what != "paths":
        record["baseline"] = evaluate(model)
        print(f"{name}: intact network, err {record['baseline']['err']:.4f}", flush=True)
    if what == "single":
        record["rows"] = _single(model, evaluate, "blocks")
    elif what == "layers":
        record["rows"] = _single(model, evaluate, "layers")
    elif what in ("random", "reorder"):
        draws = args.plain_draws if model_name.startswith("plain") else args.draws
        record["rows"] = _random(model, evaluate, args.max_k, draws, generator, swap=what == "reorder")
    else:
        record["paths"] = _paths(model, data, args.path_images, args.path_samples, generator)
    record["seconds"] = time.perf_counter() - started
    record["provenance"] = provenance(command=getattr(args, "command_line", None), seed=args.seed,
                                      data=data.describe(), device="cpu")
    return record


def run(args: argparse.Namespace) -> int:
    """Run (or resume) the lesion study; finished points are skipped."""
    from resnet_lab.experiments.runner import run_checkpoint_grid

    return run_checkpoint_grid(args, "block_deletion", _run_point)


__all__ = ["EVAL_SIZE", "HELP", "MAX_K", "POINTS", "VEIT_BLOCKS", "VEIT_EFFECTIVE_LAYERS", "add_arguments",
           "load_block_deletion", "run"]
