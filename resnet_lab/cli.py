"""The command line: `python -m resnet_lab train | evaluate | predict | experiment ...`.

Every mistake in the input (an unknown model, a missing folder, a damaged checkpoint, an image that cannot be read)
ends with a one-paragraph message on stderr and exit status 2, without a traceback. Set RESNET_LAB_DEBUG=1 to see
the traceback anyway.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from resnet_lab import experiments
from resnet_lab.checkpoint import CheckpointError, load_checkpoint
from resnet_lab.data import DataError, load_data, normalize, read_image, resize_batch
from resnet_lab.provenance import current_command
from resnet_lab.train import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EVAL_BATCH_SIZE,
    DEFAULT_LABEL_SMOOTHING,
    DEFAULT_LR_PER_128,
    DEFAULT_MOMENTUM,
    DEFAULT_SCHEDULE,
    DEFAULT_WEIGHT_DECAY,
    PRECISIONS,
    SCHEDULES,
    NonFiniteLossError,
    autocast,
    check_out_dir,
    evaluate,
    fit,
    resolve_precision,
)

DEFAULT_MODEL = "resnet20"
DEFAULT_EPOCHS = 30
DEBUG_ENV = "RESNET_LAB_DEBUG"
# Exceptions that mean "the input is wrong": reported as a message, exit status 2.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, NotADirectoryError, PermissionError)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its four sub-commands."""
    parser = argparse.ArgumentParser(
        prog="python -m resnet_lab",
        description="Train, evaluate and use ResNets (the companion package of the resnet-lab book).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a network; checkpoints and results.json go to --out",
        description="Train a network. After every epoch DIR/last.pt, DIR/best.pt and DIR/results.json are written; "
        "--resume continues an interrupted run exactly.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    train.add_argument("--model", default=DEFAULT_MODEL, help="network name, e.g. resnet20, resnet56, plain20")
    _add_data_arguments(train)
    train.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="epochs of training")
    train.add_argument("--out", default=None, help="output folder (default: runs/MODEL)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    train.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="images per step (all processes)")
    train.add_argument("--lr", type=float, default=None,
                       help=f"peak learning rate (default: {DEFAULT_LR_PER_128} x batch-size / 128)")
    train.add_argument("--schedule", choices=SCHEDULES, default=DEFAULT_SCHEDULE,
                       help="learning-rate schedule; step = the paper's /10 at 50%% and 75%%")
    train.add_argument("--warmup", type=float, default=None,
                       help="epochs of linear warm-up (default: 20%% of training for onecycle, 5%% for cosine)")
    train.add_argument("--momentum", type=float, default=DEFAULT_MOMENTUM, help="SGD momentum")
    train.add_argument("--no-nesterov", dest="nesterov", action="store_false", help="plain momentum, not Nesterov")
    train.add_argument("--weight-decay", type=float, default=DEFAULT_WEIGHT_DECAY,
                       help="L2 penalty on weights (not on batch-norm parameters or biases)")
    train.add_argument("--label-smoothing", type=float, default=DEFAULT_LABEL_SMOOTHING, help="label smoothing")
    train.add_argument("--crop-padding", type=int, default=4, help="pixels of padding for random crops (0: none)")
    train.add_argument("--no-flip", dest="flip", action="store_false", help="no random horizontal flips")
    train.add_argument("--cutout", type=int, default=0, help="cutout square size in pixels (0: no cutout)")
    train.add_argument("--train-eval-size", type=int, default=None,
                       help="also evaluate this many training images without augmentation after each epoch")
    train.add_argument("--seed", type=int, default=0, help="seed of the shuffles and augmentations")
    train.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="auto: bf16 autocast on CPUs that support it, fp16 + gradient scaling on CUDA")
    train.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                       help="keep the NCHW memory layout")
    train.add_argument("--compile", action="store_true", help="torch.compile the model")
    train.add_argument("--pipeline", choices=("fast", "classic"), default="fast",
                       help="fast: batched augmentation on the device; classic: torchvision transforms + DataLoader")
    train.add_argument("--workers", type=int, default=2, help="DataLoader worker processes (classic pipeline)")
    train.add_argument("--eval-batch-size", type=int, default=DEFAULT_EVAL_BATCH_SIZE, help="batch for evaluation")
    train.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available)")
    train.add_argument("--no-progress", dest="progress", action="store_false", help="print nothing while training")
    train.set_defaults(func=_train)

    evaluate_cmd = commands.add_parser(
        "evaluate",
        help="accuracy, loss and per-class accuracy of a checkpoint, as JSON",
        description="Evaluate a checkpoint on a split of a dataset and print JSON with accuracy, loss, count and "
        "per-class accuracy. Without --data, the data the model was trained on is used.",
    )
    evaluate_cmd.add_argument("--checkpoint", required=True, help="a checkpoint file, e.g. runs/resnet20/best.pt")
    evaluate_cmd.add_argument("--data", default=None, help="data source (default: the one recorded in the checkpoint)")
    evaluate_cmd.add_argument("--split", default="val", choices=("val", "test", "train"), help="which split")
    evaluate_cmd.add_argument("--batch-size", type=int, default=DEFAULT_EVAL_BATCH_SIZE)
    evaluate_cmd.add_argument("--precision", choices=PRECISIONS, default="auto")
    evaluate_cmd.add_argument("--device", default=None)
    evaluate_cmd.set_defaults(func=_evaluate)

    predict = commands.add_parser(
        "predict",
        help="top-k classes of image files",
        description="Print the most likely classes, with probabilities, for each image file. Images are converted "
        "to RGB and resized (shorter side, then a central square) to the size the model was trained on.",
    )
    predict.add_argument("--checkpoint", required=True, help="a checkpoint file, e.g. runs/resnet20/best.pt")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    predict.add_argument("--top-k", type=int, default=3, help="how many classes to print per image")
    predict.add_argument("--json", action="store_true", help="print JSON instead of text")
    predict.add_argument("--device", default=None)
    predict.set_defaults(func=_predict)

    experiment = commands.add_parser(
        "experiment",
        help="run one of the book's experiments (see resnet_lab.experiments)",
        description="Run one of the experiments whose results the book shows.",
    )
    experiments.add_arguments(experiment)
    experiment.set_defaults(func=experiments.run)
    return parser


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", default=None,
        help="cifar10, cifar100, synthetic (smoke runs only) or an ImageFolder directory "
        "(DIR/train/<class>/*.jpg or DIR/<class>/*.jpg); default: $RESNET_LAB_DATA, else cifar10",
    )
    parser.add_argument("--val-size", type=int, default=None,
                        help="images held out from train for validation (default: 10%%, at most 5000)")
    parser.add_argument("--train-size", type=int, default=None, help="train on a subset of this many images")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the validation split and subset")
    parser.add_argument("--image-size", type=int, default=None,
                        help="resize images to this square size (default: keep them if all are square and alike)")


# ----------------------------------------------------------------------------------------------------------------
# Commands


def _train(args: argparse.Namespace) -> int:
    from resnet_lab.models import get_model

    # Check the model name before decoding any data: a typo should fail in a second, not after a minute.
    with torch.device("meta"):
        get_model(args.model)
    out = Path(args.out) if args.out else Path("runs") / args.model
    check_out_dir(out, args.resume)
    data = load_data(args.data, val_size=args.val_size, train_size=args.train_size, split_seed=args.split_seed,
                     image_size=args.image_size, verbose=args.progress)
    torch.manual_seed(args.seed)  # the initial weights
    model = get_model(args.model, num_classes=data.num_classes)
    history = fit(
        model, data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
        nesterov=args.nesterov, weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
        schedule=args.schedule, warmup_epochs=args.warmup, crop_padding=args.crop_padding, flip=args.flip,
        cutout=args.cutout, train_eval_size=args.train_eval_size, out_dir=out, resume=args.resume, seed=args.seed,
        precision=args.precision, channels_last=args.channels_last, compile=args.compile, pipeline=args.pipeline,
        num_workers=args.workers, eval_batch_size=args.eval_batch_size, progress=args.progress, device=args.device,
        command=args.command_line,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        best = history.best or {}
        minutes = sum(e["seconds"] for e in history) / 60
        accuracy = f"best validation accuracy {100 * best['val_acc']:.2f}% (epoch {best['epoch']})" \
            if best.get("val_acc") is not None else "no validation split"
        print(f"{args.model}: {len(history)} epochs in {minutes:.1f} min, {accuracy}. "
              f"Checkpoints and results.json in {out}/")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    device = _device(args.device)
    model, meta = load_checkpoint(args.checkpoint, device=device)
    recorded = meta.get("data") or {}
    recorded_source = _source_argument(recorded["source"]) if recorded.get("source") else None
    source = args.data if args.data is not None else recorded_source
    if source is None:
        raise DataError(f"{args.checkpoint} does not record its data: pass --data.")
    options: dict[str, Any] = {"verbose": False}
    if _same_source(source, recorded_source):
        # The run's own splits: the same held-out validation images and training subset (the synthetic images
        # depend on these sizes too). Another dataset gets its default split.
        options["split_seed"] = recorded.get("split_seed", 0)
        options["train_size"] = recorded.get("train_size")
        if recorded.get("val_from") != "val folder":
            options["val_size"] = recorded.get("val_size")
    size = meta.get("image_size") or [None]
    data = load_data(source, image_size=size[0], **options)
    if list(data.classes) != list(meta["classes"]):
        raise DataError(
            f"The data {data.source} has classes {data.classes}, but the model was trained on {meta['classes']}. "
            "Evaluate on data with the same class folders (in the same order)."
        )
    metrics = evaluate(model, data, args.split, batch_size=args.batch_size, device=device,
                       precision=args.precision, mean=meta["mean"], std=meta["std"])
    report = {"checkpoint": str(args.checkpoint), "model": meta["model_spec"], "data": data.source, **metrics}
    print(json.dumps(report, indent=1))
    return 0


def _same_source(source: str, recorded: str | None) -> bool:
    """True when `source` names the data recorded in a checkpoint (the same name or the same folder)."""
    if recorded is None:
        return False
    if source == recorded:
        return True
    return Path(source).expanduser().resolve() == Path(recorded).expanduser().resolve()


def _source_argument(recorded: str) -> str:
    """The load_data argument for a recorded source description ("cifar10 (/path)" -> "/path")."""
    if recorded.endswith(")") and " (" in recorded:
        return recorded[recorded.index(" (") + 2 : -1]
    return recorded


def _predict(args: argparse.Namespace) -> int:
    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}.")
    device = _device(args.device)
    model, meta = load_checkpoint(args.checkpoint, device=device)
    classes = meta["classes"]
    height = (meta.get("image_size") or [None])[0]
    channels = len(meta["mean"])
    # Read every file first: one unreadable image stops the command before any work is done.
    images = torch.stack([read_image(path, height, channels) for path in args.images])
    images = resize_batch(images, height) if height else images
    x = normalize(images.to(device), meta["mean"], meta["std"])
    precision = resolve_precision("auto", device)
    with torch.no_grad(), autocast(device, precision):
        probs = model(x).float().softmax(dim=1).cpu()
    k = min(args.top_k, len(classes))
    top = probs.topk(k, dim=1)
    results = [
        {"image": path, "top": [{"class": classes[i], "probability": round(float(p), 4)}
                                for p, i in zip(values, indices)]}
        for path, values, indices in zip(args.images, top.values, top.indices)
    ]
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for result in results:
            guesses = ", ".join(f"{t['class']} {100 * t['probability']:.1f}%" for t in result["top"])
            print(f"{result['image']}: {guesses}")
    return 0


def _device(name: str | None) -> torch.device:
    from resnet_lab.runtime import get_device

    return get_device(name)


# ----------------------------------------------------------------------------------------------------------------
# Entry point


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failed run, 2 bad input, 130 interrupted)."""
    command_line = current_command() if argv is None else shlex.join(["python", "-m", "resnet_lab", *argv])
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed its usage message
        return int(exit_.code or 0)
    args.command_line = command_line
    debug = os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")
    try:
        return args.func(args)
    except NonFiniteLossError as error:
        if debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        print(f"\n{interrupt or 'Interrupted.'}", file=sys.stderr)
        return 130
    except (CheckpointError, DataError, *USER_ERRORS) as error:
        if debug:
            raise
        print(f"error: {_one_paragraph(error)}", file=sys.stderr)
        return 2


def _one_paragraph(error: BaseException) -> str:
    """The exception's message on one line (some library messages span several)."""
    text = str(error) or type(error).__name__
    if isinstance(error, (FileNotFoundError, NotADirectoryError, PermissionError)) and error.filename:
        text = f"{error.strerror}: {error.filename}. Check the path."
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
