"""Evaluation: loss, accuracy and per-class accuracy of a model on a split, and the data a checkpoint was measured on.

Nothing here trains or imports the training engine: a chapter that only evaluates a committed checkpoint loads
this module, the models and the data, and nothing else.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from resnet_lab.data import DataError, ImageData, load_data
from resnet_lab.loaders import BatchLoader
from resnet_lab.runtime import all_sum, autocast, resolve_precision, shard

EVAL_BATCH_SIZE = 256


@torch.no_grad()
def evaluate_tensors(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    num_classes: int,
    batch_size: int = EVAL_BATCH_SIZE,
    device: torch.device | str | None = None,
    precision: str = "auto",
    channels_last: bool = True,
) -> dict[str, Any]:
    """Loss (plain cross-entropy), accuracy, count and per-class accuracy of `model` on uint8 images x."""
    if len(y) == 0:
        raise DataError("There are no images to evaluate (the split is empty).")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    precision = resolve_precision(precision, device)
    rank, world = shard()
    loader = BatchLoader(x, y, mean, std, batch_size=batch_size * world, device=device, channels_last=channels_last,
                         rank=rank, world_size=world)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    seen = torch.zeros(num_classes, dtype=torch.int64, device=device)
    correct = torch.zeros(num_classes, dtype=torch.int64, device=device)
    for images, labels in loader:
        with autocast(device, precision):
            logits = model(images)
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum").double()
        seen += torch.bincount(labels, minlength=num_classes)
        correct += torch.bincount(labels[logits.argmax(1) == labels], minlength=num_classes)
    model.train(was_training)
    totals = all_sum(torch.cat([loss_sum.view(1), seen.double(), correct.double()]))
    per_seen = totals[1 : 1 + num_classes]
    per_correct = totals[1 + num_classes :]
    count = int(per_seen.sum())
    per_class = [float(c / s) if s > 0 else None for c, s in zip(per_correct.tolist(), per_seen.tolist())]
    return {
        "count": count,
        "loss": float(totals[0]) / count,
        "accuracy": float(per_correct.sum()) / count,
        "per_class_accuracy": per_class,
    }


def evaluate(
    model: nn.Module,
    data: ImageData,
    split: str = "val",
    *,
    batch_size: int = EVAL_BATCH_SIZE,
    device: torch.device | str | None = None,
    precision: str = "auto",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Accuracy, loss, count and per-class accuracy on one split of `data` (normalized with the training split's
    statistics, or with `mean`/`std` when given, e.g. those stored in a checkpoint)."""
    x, y = data.split(split)
    metrics = evaluate_tensors(
        model, x, y, mean or data.mean, std or data.std, num_classes=data.num_classes, batch_size=batch_size,
        device=device, precision=precision,
    )
    per_class = dict(zip(data.classes, metrics.pop("per_class_accuracy")))
    return {"split": split, **metrics, "per_class_accuracy": per_class}


# ----------------------------------------------------------------------------------------------------------------
# The data a checkpoint was measured on


def _recorded_source(recorded: dict[str, Any]) -> str | None:
    """The load_data argument that finds the recorded data without a path: a torchvision name or 'synthetic'."""
    kind, name = recorded.get("kind"), recorded.get("name")
    if kind in ("torchvision", "synthetic"):
        return name
    return None


def checkpoint_data(meta: dict[str, Any], source: str | None = None, *, verbose: bool = False) -> ImageData:
    """The data a checkpoint was trained and validated on, split as in its run, from `source` or its record.

    The split is reproduced when the data at `source` have the content fingerprint recorded in the checkpoint
    (wherever they are stored). Other data get their default split, with a warning on stderr; compare
    `data.fingerprint` with `meta["data"]["fingerprint"]` to tell the two cases apart. Raises DataError when the
    checkpoint names a folder and `source` is None.
    """
    recorded = meta.get("data") or {}
    source = source if source is not None else _recorded_source(recorded)
    if source is None:
        name = recorded.get("name", "an image folder")
        raise DataError(f"The checkpoint was trained on the image folder {name!r}, which it names but does not "
                        "locate (results never record a machine's paths): pass its location with --data DIR.")
    size = (meta.get("image_size") or [None])[0]
    try:
        data = load_data(source, image_size=size, verbose=verbose, **_split_options(recorded))
    except DataError:  # the recorded split does not fit these data (too few images): they are other data
        data = None
    same = data is not None and (recorded.get("kind") == "synthetic"  # generated from the recorded sizes
                                 or data.fingerprint == recorded.get("fingerprint"))
    if not same:
        data = load_data(source, image_size=size, verbose=verbose)
        _check_classes(data, meta)
        print(f"warning: the data at {source} are not the data the model was trained on (their content fingerprint "
              "differs from the checkpoint's): their validation split is not the run's, and training images may be "
              "among them.", file=sys.stderr)
    _check_classes(data, meta)
    return data


def _check_classes(data: ImageData, meta: dict[str, Any]) -> None:
    if list(data.classes) != list(meta["classes"]):
        raise DataError(
            f"The data {data.name} have classes {data.classes}, but the model was trained on {meta['classes']}. "
            "Evaluate on data with the same class folders (in the same order)."
        )


def _split_options(recorded: dict[str, Any]) -> dict[str, Any]:
    """load_data options that rebuild the recorded split: its seed, validation size and training subset."""
    # The training subset is drawn after the validation split, sorted: asking for the recorded training size gives
    # the run's training images whether or not it trained on a subset (a full-size "subset" is the whole split).
    options: dict[str, Any] = {"split_seed": recorded.get("split_seed", 0), "train_size": recorded.get("train_size")}
    if recorded.get("val_from") != "val folder":
        options["val_size"] = recorded.get("val_size")
    return options


__all__ = ["EVAL_BATCH_SIZE", "checkpoint_data", "evaluate", "evaluate_tensors"]
