"""The transfer experiment: `python -m resnet_lab experiment transfer --data DIR --out DIR`.

A ResNet-20 is pretrained on five CIFAR-10 classes (the source task) and then fine-tuned on the other five (the
target task) with only 10, 50 or 250 labelled images per class, by each strategy of `resnet_lab.finetune`
("linear", "partial", "full", "gradual") and, for comparison, trained from scratch on the same images, with
several seeds (the seed draws the labelled images, the new head and the training order).

Every fine-tuning run sees the same number of training images (its few images repeated, each time differently
augmented), so that the runs differ by the data and the strategy, not by the number of steps. The runs stop after
a fixed number of epochs (no early stopping, no choice made on the evaluation images); their learning curves are
measured on a fixed subset of the target classes' validation images, and their final accuracy and confusion matrix
on all of them. One result file per run in `results/transfer/`; the pretrained network's weights in half
precision in `results/checkpoints/resnet20_source.pt`, for the chapter's live cells.

Reading the records (`load_transfer`, `transfer_table`) needs neither the training engine nor matplotlib.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from resnet_lab.config import TrainConfig
from resnet_lab.experiments.results import repository_results_dir, results_dir

if TYPE_CHECKING:  # annotations only: the data module is loaded when the experiment runs
    from resnet_lab.data import ImageData
    from resnet_lab.history import History

HELP = "pretrain on five CIFAR-10 classes, fine-tune on the other five with few labels (chapter 9)"
SOURCE_CLASSES = ("airplane", "automobile", "bird", "cat", "deer")
TARGET_CLASSES = ("dog", "frog", "horse", "ship", "truck")
MODEL = "resnet20"
PRETRAIN_EPOCHS = 15
PER_CLASS = (10, 50, 250)
# "scratch": the same network, randomly initialized, trained on the same few images like "full".
METHODS = ("linear", "partial", "full", "gradual", "scratch")
SEEDS = (0, 1, 2)
# Sized for a 2-core CPU (a few hundred training images a second for ResNet-20): each fine-tuning epoch
# shows this many images (the labelled set, repeated), FINETUNE_EPOCHS of them per run.
IMAGES_PER_EPOCH = 250
FINETUNE_EPOCHS = 8
FINETUNE_BATCH = 64
# Peak learning rates (cosine schedule, one epoch of warm-up): pretrained weights need smaller steps than random.
FINETUNE_LR = 0.05
SCRATCH_LR = 0.1
# Learning curves are measured on this many target validation images per class; final accuracy on all of them.
CURVE_PER_CLASS = 50
VAL_SIZE = 5000
EXPORT_NAME = "resnet20_source.pt"


# ----------------------------------------------------------------------------------------------------------------
# Data: class subsets and few-shot training sets


def class_subset(data: ImageData, classes: tuple[str, ...] | list[str]) -> ImageData:
    """The images of some classes only, relabelled 0..k-1 in the order given, with their own statistics."""
    from resnet_lab.data import channel_stats

    missing = [c for c in classes if c not in data.classes]
    if missing:
        raise ValueError(f"Classes {', '.join(missing)} are not in the data (it has {', '.join(data.classes)}).")
    old = torch.tensor([data.classes.index(c) for c in classes])

    def pick(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = torch.isin(y, old)
        relabel = torch.full((len(data.classes),), -1, dtype=torch.int64)
        relabel[old] = torch.arange(len(classes))
        return x[keep], relabel[y[keep]]

    train_x, train_y = pick(data.train_x, data.train_y)
    val_x, val_y = pick(data.val_x, data.val_y)
    mean, std = channel_stats(train_x)
    return dataclasses.replace(data, train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y, test_x=None,
                               test_y=None, classes=list(classes), mean=mean, std=std,
                               name=f"{data.name}[{','.join(classes)}]")


# Constants that make this module's random draws differ from the data pipeline's (see data.mix_seed).
_PURPOSES = {"few-shot": 9_001, "curve": 9_002}


def per_class_indices(y: torch.Tensor, per_class: int, seed: int, purpose: str) -> torch.Tensor:
    """`per_class` seeded random indices of each label in y, sorted; a ValueError when a class has too few.

    purpose: "few-shot" (the labelled training images) or "curve" (the validation images of the curves).
    """
    from resnet_lab.data import mix_seed

    chosen = []
    for label in range(int(y.max()) + 1):
        where = (y == label).nonzero().flatten()
        if len(where) < per_class:
            raise ValueError(f"Class {label} has {len(where)} images, fewer than the {per_class} asked for.")
        generator = torch.Generator().manual_seed(mix_seed(seed, _PURPOSES[purpose], label))
        order = torch.randperm(len(where), generator=generator)
        chosen.append(where[order[:per_class]])
    return torch.cat(chosen).sort().values


def few_shot(target: ImageData, per_class: int, seed: int, *, images_per_epoch: int = IMAGES_PER_EPOCH,
             curve_per_class: int = CURVE_PER_CLASS) -> ImageData:
    """`per_class` labelled training images per class (drawn by `seed`), repeated to `images_per_epoch` an
    epoch, and `curve_per_class` validation images per class for the learning curves (the same for every run)."""
    keep = per_class_indices(target.train_y, per_class, seed, "few-shot")
    repeat = max(1, math.ceil(images_per_epoch / len(keep)))
    curve = per_class_indices(target.val_y, min(curve_per_class, int(target.val_y.bincount().min())), 0, "curve")
    return dataclasses.replace(
        target, train_x=target.train_x[keep].repeat(repeat, 1, 1, 1), train_y=target.train_y[keep].repeat(repeat),
        val_x=target.val_x[curve], val_y=target.val_y[curve], requested_train_size=len(keep),
        name=f"{target.name}:{per_class}-per-class-seed{seed}")


@torch.no_grad()
def predict_labels(model: torch.nn.Module, x: torch.Tensor, mean, std, batch_size: int = 256) -> torch.Tensor:
    """The predicted class of each uint8 image in x (model in eval mode, fp32)."""
    from resnet_lab.loaders import normalize

    was_training = model.training
    model.eval()
    out = [model(normalize(x[i:i + batch_size], mean, std)).argmax(1)
           for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out)


def confusion_matrix(y: torch.Tensor, predicted: torch.Tensor, num_classes: int) -> list[list[int]]:
    """counts[true][predicted] as nested lists."""
    counts = torch.bincount(y * num_classes + predicted, minlength=num_classes**2)
    return counts.view(num_classes, num_classes).tolist()


# ----------------------------------------------------------------------------------------------------------------
# The grid


def point_name(method: str, per_class: int, seed: int) -> str:
    """e.g. "full-50-s1"."""
    return f"{method}-{per_class}-s{seed}"


def grid(per_class: tuple[int, ...] = PER_CLASS, seeds: tuple[int, ...] = SEEDS,
         methods: tuple[str, ...] = METHODS) -> list[str]:
    """The pretraining run, then seed by seed every size and method: a grid cut short has whole seeds."""
    return ["pretrain"] + [point_name(m, n, s) for s in seeds for n in per_class for m in methods]


def finetune_config(method: str, seed: int, epochs: int = FINETUNE_EPOCHS) -> TrainConfig:
    """The fine-tuning recipe of a method (its normalization is set from the source network)."""
    return TrainConfig(epochs=epochs, batch_size=FINETUNE_BATCH, lr=SCRATCH_LR if method == "scratch" else FINETUNE_LR,
                       schedule="cosine", warmup_epochs=1.0, seed=seed)


def _record(name: str, run_dir: Path, extra: dict[str, Any]) -> dict[str, Any]:
    results = json.loads((run_dir / "results.json").read_text())
    epochs = [{k: e.get(k) for k in ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")}
              for e in results["epochs"]]
    return {"experiment": "transfer", "point": name, "provenance": results["provenance"],
            "config": results["config"], "epochs": epochs, **extra}


def _pretrain(run_dir: Path, resume: bool, *, source: ImageData, epochs: int, export: Path, device: str | None,
              command: str | None) -> dict | None:
    from resnet_lab.experiments.depth_sweep import export_half_precision
    from resnet_lab.models import get_model
    from resnet_lab.train import fit

    config = TrainConfig(epochs=epochs, seed=0)
    torch.manual_seed(config.seed)
    model = get_model(MODEL, num_classes=source.num_classes)
    history = fit(model, source, config, out_dir=run_dir, resume=resume, device=device, command=command)
    if history.status != "finished":
        return None
    val = export_half_precision(run_dir / "last.pt", export, source)
    return _record("pretrain", run_dir, {"model": MODEL, "classes": list(SOURCE_CLASSES),
                                         "final": {"epochs": len(history), "val_acc": history[-1]["val_acc"],
                                                   "fp16_val_acc": val["accuracy"]}})


def train_method(method: str, data: ImageData, source: str | Path, *, seed: int, epochs: int = FINETUNE_EPOCHS,
                 out_dir: Path | None = None, resume: bool = False, device: str | None = None,
                 command: str | None = None) -> tuple[torch.nn.Module, History]:
    """Fine-tune the network `source` (a checkpoint or a torchvision name) on `data` by `method`, or train
    MODEL from scratch on it ("scratch"): one point of the experiment. Returns the model and its History.

    The model's `preprocessing` holds the normalization it was trained with: the source's for fine-tuning
    (the weights expect it), the data's own for a network trained from scratch.
    """
    from resnet_lab import finetune
    from resnet_lab.models import get_model
    from resnet_lab.train import fit

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}.")
    torch.manual_seed(seed)  # the new head's (or the whole network's) initial weights
    plan = None
    if method == "scratch":
        model = get_model(MODEL, num_classes=data.num_classes)
        model.preprocessing = finetune.Preprocessing(tuple(data.mean), tuple(data.std), data.image_size[0],
                                                     "scratch")
    else:
        model = finetune.load_pretrained(source)
        finetune.replace_head(model, data.num_classes)
        plan = finetune.finetune_plan(model, method)
    prep = model.preprocessing
    config = finetune_config(method, seed, epochs).replace(mean=tuple(prep.mean), std=tuple(prep.std))
    history = fit(model, data, config, out_dir=out_dir, resume=resume, device=device, command=command,
                  param_groups=plan.param_groups if plan else None, callbacks=plan.callbacks if plan else (),
                  progress=False if out_dir is None else True)
    return model, history


def _finetune(name: str, run_dir: Path, resume: bool, *, target: ImageData, source_checkpoint: Path, epochs: int,
              pretrain_epochs: int, device: str | None, command: str | None) -> dict | None:
    from resnet_lab import finetune
    from resnet_lab.models import get_model

    method, per_class, seed = name.split("-")[0], int(name.split("-")[1]), int(name.split("-")[2][1:])
    data = few_shot(target, per_class, seed)
    model, history = train_method(method, data, source_checkpoint, seed=seed, epochs=epochs, out_dir=run_dir,
                                  resume=resume, device=device, command=command)
    if history.status != "finished":
        return None
    # The plan's description, for the record (the same for every run of a method).
    plan = None if method == "scratch" else finetune.finetune_plan(get_model(MODEL, num_classes=data.num_classes),
                                                                    method)
    mean, std = model.preprocessing.mean, model.preprocessing.std
    predicted = predict_labels(model.float(), target.val_x, mean, std)
    accuracy = float((predicted == target.val_y).float().mean())
    return _record(name, run_dir, {
        "method": method, "per_class": per_class, "seed": seed, "classes": list(TARGET_CLASSES),
        "pretrain_epochs": pretrain_epochs,
        "plan": plan.describe() if plan else None,
        "final": {"epochs": len(history), "curve_val_acc": history[-1]["val_acc"], "val_acc": accuracy,
                  "val_size": len(target.val_y), "confusion": confusion_matrix(target.val_y, predicted,
                                                                                 target.num_classes)},
    })


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m resnet_lab experiment transfer`."""
    parser.add_argument("--data", required=True, help="CIFAR-10 source: an ImageFolder directory or 'cifar10'")
    parser.add_argument("--out", required=True, help="folder for the runs' checkpoints (outside the repository)")
    parser.add_argument("--results", default=None,
                        help="where the result files go (default: results/ of the repository checkout)")
    parser.add_argument("--pretrain-epochs", type=int, default=PRETRAIN_EPOCHS, help="default: %(default)s")
    parser.add_argument("--epochs", type=int, default=FINETUNE_EPOCHS,
                        help=f"fine-tuning epochs of {IMAGES_PER_EPOCH} images (default: %(default)s)")
    parser.add_argument("--per-class", type=int, nargs="+", default=list(PER_CLASS),
                        help="labelled target images per class (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="default: %(default)s")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, help="default: all")
    parser.add_argument("--train-size", type=int, default=None, help="a training subset, for trying the runner")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")


def run(args: argparse.Namespace) -> int:
    """Run (or resume) the transfer experiment; finished points are skipped."""
    from resnet_lab.data import load_data
    from resnet_lab.experiments.runner import run_grid

    results = Path(args.results) if args.results else repository_results_dir()
    out_dir = results / "transfer"
    export = results / "checkpoints" / EXPORT_NAME
    data = load_data(args.data, val_size=VAL_SIZE, train_size=args.train_size, split_seed=0)
    if data.is_synthetic:
        print("WARNING: synthetic data. These runs only exercise the runner: never commit their results.")
        source, target = class_subset(data, data.classes[:5]), class_subset(data, data.classes[5:])
    else:
        source, target = class_subset(data, SOURCE_CLASSES), class_subset(data, TARGET_CLASSES)
    command = getattr(args, "command_line", None)
    points = grid(tuple(args.per_class), tuple(args.seeds), tuple(args.methods))

    def run_point(name: str, run_dir: Path, resume: bool) -> dict | None:
        if name == "pretrain":
            return _pretrain(run_dir, resume, source=source, epochs=args.pretrain_epochs, export=export,
                             device=args.device, command=command)
        return _finetune(name, run_dir, resume, target=target, source_checkpoint=Path(args.out) / "pretrain" /
                         "last.pt", epochs=args.epochs, pretrain_epochs=args.pretrain_epochs, device=args.device,
                         command=command)

    def is_complete(record: dict) -> bool:  # a result of other epochs, or of another source, is run again
        if record["point"] == "pretrain":
            return record["final"]["epochs"] == args.pretrain_epochs
        return record["final"]["epochs"] == args.epochs and record.get("pretrain_epochs") == args.pretrain_epochs

    summary = run_grid(points, run_point, results_dir=out_dir, out_dir=Path(args.out), is_complete=is_complete)
    return summary.exit_status


# ----------------------------------------------------------------------------------------------------------------
# Reading the records


def load_transfer(folder: str | Path | None = None) -> dict[str, dict]:
    """Every record of the transfer experiment, by point name."""
    folder = results_dir() / "transfer" if folder is None else Path(folder)
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def transfer_table(records: dict[str, dict]) -> list[dict[str, Any]]:
    """Per (method, images per class): mean, standard deviation and count over seeds of the final accuracy."""
    groups: dict[tuple[str, int], list[float]] = {}
    for record in records.values():
        if record["point"] != "pretrain":
            groups.setdefault((record["method"], record["per_class"]), []).append(record["final"]["val_acc"])
    rows = []
    for (method, n), accs in sorted(groups.items(), key=lambda kv: (kv[0][1], METHODS.index(kv[0][0]))):
        rows.append({"method": method, "per_class": n, "mean": statistics.fmean(accs),
                     "std": statistics.stdev(accs) if len(accs) > 1 else None, "seeds": len(accs)})
    return rows


__all__ = ["HELP", "METHODS", "PER_CLASS", "SOURCE_CLASSES", "TARGET_CLASSES", "add_arguments", "class_subset",
           "confusion_matrix", "few_shot", "finetune_config", "grid", "load_transfer", "per_class_indices",
           "point_name", "predict_labels", "run", "train_method", "transfer_table"]
