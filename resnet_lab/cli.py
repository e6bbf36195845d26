"""The command line: `python -m resnet_lab train | finetune | evaluate | predict | experiment ...`.

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

import torch

from resnet_lab import experiments
from resnet_lab.checkpoint import CheckpointError, load_checkpoint
from resnet_lab.config import add_config_arguments, config_from_args
from resnet_lab.data import DEFAULT_MAX_SKIPPED, DataError, load_data
from resnet_lab.evaluate import EVAL_BATCH_SIZE, checkpoint_data, evaluate
from resnet_lab.files import OutputError, RunLock, RunLockedError, check_writable_folder, json_safe
from resnet_lab.finetune import PretrainedUnavailableError
from resnet_lab.folders import read_image, resize_batch
from resnet_lab.loaders import normalize
from resnet_lab.provenance import current_command, portable_path
from resnet_lab.resume import check_out_dir
from resnet_lab.runtime import PRECISIONS, autocast, get_device, is_main_process, resolve_precision
from resnet_lab.train import NonFiniteLossError, TrainingInterrupted, fit

DEFAULT_MODEL = "resnet20"
DEBUG_ENV = "RESNET_LAB_DEBUG"
# Exceptions that mean "the input is wrong": reported as a message, exit status 2.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, NotADirectoryError, PermissionError, RunLockedError)
# Exit statuses of a run stopped by a signal: 128 + the signal number, as shells report them.
SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its five sub-commands."""
    parser = argparse.ArgumentParser(
        prog="python -m resnet_lab",
        description="Train, evaluate and use ResNets (the companion package of the resnet-lab book).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a network; checkpoints and results.json go to --out",
        description="Train a network. After every epoch DIR/last.pt, DIR/best.pt and DIR/results.json are written; "
        "--resume continues an interrupted run exactly. Ctrl-C or SIGTERM saves the exact position first.",
    )
    train.add_argument("--model", default=DEFAULT_MODEL,
                       help=f"network name, e.g. resnet20, resnet56, plain20 (default: {DEFAULT_MODEL})")
    _add_data_arguments(train)
    train.add_argument("--out", default=None, help="output folder (default: runs/MODEL)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    add_config_arguments(train)  # every option of the recipe, from resnet_lab.config.TrainConfig
    train.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available)")
    train.add_argument("--no-progress", dest="progress", action="store_false", help="print nothing while training")
    train.set_defaults(func=_train)

    evaluate_cmd = commands.add_parser(
        "evaluate",
        help="accuracy, loss and per-class accuracy of a checkpoint, as JSON",
        description="Evaluate a checkpoint on a split of a dataset and print JSON with accuracy, loss, count and "
        "per-class accuracy. The split is the run's own when the data have the content the model was trained on.",
    )
    evaluate_cmd.add_argument("--checkpoint", required=True, help="a checkpoint file, e.g. runs/resnet20/best.pt")
    evaluate_cmd.add_argument("--data", default=None,
                              help="data source (needed for image folders; default: the one recorded, for cifar10, "
                              "cifar100 and synthetic)")
    evaluate_cmd.add_argument("--split", default="val", choices=("val", "test", "train"), help="which split")
    evaluate_cmd.add_argument("--batch-size", type=int, default=EVAL_BATCH_SIZE)
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

    finetune = commands.add_parser(
        "finetune",
        help="fine-tune a pretrained network on an image folder; checkpoints and results.json go to --out",
        description="Fine-tune a pretrained ResNet (a resnet_lab checkpoint, or torchvision's ImageNet weights by "
        "name, which need the network once) on your data: a new head for your classes, then the strategy's stages "
        "train (linear: the head; partial: the last stage and the head; full: everything, lower rates near the "
        "input; gradual: one more stage per epoch from the top). Images are normalized and resized the way the "
        "pretrained network expects. Training stops early when the validation accuracy has not improved for "
        "--patience epochs, and best.pt keeps the best weights; `predict` and `evaluate` take its checkpoints. "
        "Defaults that differ from train's: 15 epochs, --lr 0.01, cosine schedule, no warm-up.",
    )
    finetune.add_argument("--from", dest="source", required=True, metavar="CHECKPOINT_OR_NAME",
                          help="a resnet_lab checkpoint (e.g. runs/NAME/best.pt) or resnet18, resnet34, resnet50, "
                          "resnet101, resnet152 (torchvision's ImageNet weights)")
    finetune.add_argument("--strategy", default="partial", choices=("linear", "partial", "full", "gradual"),
                          help="which stages train (default: partial)")
    finetune.add_argument("--lr-decay", type=float, default=0.5,
                          help="full and gradual: each stage learns at this fraction of the rate of the stage "
                          "above it (default: 0.5)")
    finetune.add_argument("--patience", type=int, default=5,
                          help="stop after this many epochs without a better validation accuracy (default: 5)")
    _add_data_arguments(finetune)
    finetune.add_argument("--out", required=True, help="output folder")
    finetune.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    add_config_arguments(finetune, skip=("mean", "std"))  # normalization comes with the pretrained weights
    finetune.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available)")
    finetune.add_argument("--no-progress", dest="progress", action="store_false", help="print nothing while training")
    finetune.set_defaults(func=_finetune, epochs=15, lr=0.01, warmup_epochs=0.0, schedule="cosine")

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
    parser.add_argument("--max-skipped", type=float, default=DEFAULT_MAX_SKIPPED,
                        help="largest fraction of unreadable image files to skip (with a warning) rather than refuse "
                        f"the data (default: {DEFAULT_MAX_SKIPPED})")


# ----------------------------------------------------------------------------------------------------------------
# Commands


def _train(args: argparse.Namespace) -> int:
    from resnet_lab.models import get_model

    # Check everything that can be checked before decoding any data: a typo should fail in a second, not after
    # a minute of decoding or an epoch of training.
    config = config_from_args(args)
    with torch.device("meta"):
        get_model(args.model)
    get_device(args.device)
    out = Path(args.out) if args.out else Path("runs") / args.model
    check_out_dir(out, args.resume)
    check_writable_folder(out)
    if is_main_process():
        with RunLock(out):  # another run writing there fails now, not after the data are decoded
            pass
    data = load_data(args.data, val_size=args.val_size, train_size=args.train_size, split_seed=args.split_seed,
                     image_size=args.image_size, max_skipped=args.max_skipped, verbose=args.progress)
    # The initial weights come from torch's global generator: seed it, as every training script does.
    torch.manual_seed(config.seed)
    model = get_model(args.model, num_classes=data.num_classes)
    history = fit(model, data, config, out_dir=out, resume=args.resume, progress=args.progress, device=args.device,
                  command=args.command_line)
    if is_main_process():
        print(_train_summary(args.model, history, out))
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from resnet_lab import finetune

    config = config_from_args(args)
    if args.patience < 1:
        raise ValueError(f"--patience must be at least 1 epoch, got {args.patience}.")
    get_device(args.device)
    # The pretrained network first: offline, torchvision's weights fail here, before any folder is made.
    model = finetune.load_pretrained(args.source)
    out = Path(args.out)
    check_out_dir(out, args.resume)
    check_writable_folder(out)
    if is_main_process():
        with RunLock(out):  # another run writing there fails now, not after the data are decoded
            pass
    prep = model.preprocessing
    image_size = args.image_size or prep.image_size
    data = load_data(args.data, val_size=args.val_size, train_size=args.train_size, split_seed=args.split_seed,
                     image_size=image_size, max_skipped=args.max_skipped, verbose=args.progress)
    if len(data.val_y) == 0:
        raise DataError("Fine-tuning stops early on the validation split, and it is empty: give --val-size 1 or "
                        "more, or a DIR/val folder.")
    if data.channels != len(prep.mean):
        raise DataError(f"The pretrained network takes {len(prep.mean)}-channel images; these have {data.channels}.")
    torch.manual_seed(config.seed)  # the new head's initial weights
    finetune.replace_head(model, data.num_classes)
    plan = finetune.finetune_plan(model, args.strategy, lr_decay=args.lr_decay)
    config = config.replace(mean=prep.mean, std=prep.std)
    stopper = finetune.EarlyStopping(args.patience)
    history = fit(model, data, config, out_dir=out, resume=args.resume, progress=args.progress, device=args.device,
                  command=args.command_line, param_groups=plan.param_groups, callbacks=[*plan.callbacks, stopper])
    if is_main_process():
        print(_train_summary(f"{args.source} fine-tuned ({args.strategy})", history, out))
    return 0


def _train_summary(model: str, history, out: Path) -> str:
    best = history.best or {}
    minutes = sum(e["seconds"] for e in history) / 60
    accuracy = f"best validation accuracy {100 * best['val_acc']:.2f}% (epoch {best['epoch']})" \
        if best.get("val_acc") is not None else "no validation split"
    ended = "" if history.status == "finished" else f" (status: {history.status})"
    return f"{model}: {len(history)} epochs in {minutes:.1f} min{ended}, {accuracy}. Checkpoints and results.json " \
        f"in {out}/"


def _evaluate(args: argparse.Namespace) -> int:
    device = get_device(args.device)
    model, meta = load_checkpoint(args.checkpoint, device=device)
    data = checkpoint_data(meta, args.data)
    metrics = evaluate(model, data, args.split, batch_size=args.batch_size, device=device,
                       precision=args.precision, mean=meta["mean"], std=meta["std"])
    recorded = (meta.get("data") or {}).get("fingerprint")
    report = {"checkpoint": str(args.checkpoint), "model": meta["model_spec"], "data": data.name,
              "split_reproduced": recorded is not None and recorded == data.fingerprint, **metrics}
    print(json.dumps(json_safe(report), indent=1, allow_nan=False))
    return 0


def _predict(args: argparse.Namespace) -> int:
    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}.")
    device = get_device(args.device)
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


# ----------------------------------------------------------------------------------------------------------------
# Entry point


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failed run, 2 bad input, 130 Ctrl-C, 143 SIGTERM)."""
    command_line = current_command() if argv is None else \
        shlex.join(["python", "-m", "resnet_lab", *(portable_path(a) for a in argv)])
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
    except TrainingInterrupted as interrupt:
        print(f"\n{interrupt}", file=sys.stderr)
        return SIGNAL_EXIT.get(interrupt.signal_name, 130)
    except KeyboardInterrupt as interrupt:
        print(f"\n{interrupt or 'Interrupted: nothing was saved.'}", file=sys.stderr)
        return 130
    except OutputError as error:  # a full disk or an unwritable folder: the previous files are intact
        if debug:
            raise
        print(f"error: {_one_paragraph(error)}", file=sys.stderr)
        return 1
    except (CheckpointError, DataError, PretrainedUnavailableError, *USER_ERRORS) as error:
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
