"""The training recipe: one frozen `TrainConfig` holds every option of `fit`, its default and its meaning.

The same fields give the command line's flags (`add_config_arguments`), the `config` entry of results.json
(`to_dict`) and the comparison that refuses to resume a run with another recipe (`resume_differences`), so an
option is written once, here. For example::

    config = TrainConfig(epochs=10)                  # the defaults for everything else
    config = config.replace(lr=0.1, schedule="step")  # a variant; TrainConfig is immutable
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
from dataclasses import dataclass, field
from typing import Any, Union, get_args, get_origin, get_type_hints

from resnet_lab.checks import check_int
from resnet_lab.runtime import PRECISIONS

SCHEDULES = ("onecycle", "cosine", "step", "constant")
PIPELINES = ("fast", "classic")
AUGMENTATIONS = ("crop-flip", "none", "resized-crop")
# The peak learning rate scales linearly with the batch size (Goyal et al. 2017): 0.2 at a batch of 128.
LR_PER_128 = 0.2
# Warm-up as a fraction of training when warmup_epochs is not given.
WARMUP_FRACTION = {"onecycle": 0.2, "cosine": 0.05, "step": 0.0, "constant": 0.0}
# Options that may change when a run is resumed: they change speed or output, not the numbers.
RESUME_FREE = frozenset({"compile", "eval_batch_size", "num_workers"})


def _option(default: Any, help: str, *, flag: str | None = None, choices: tuple | None = None) -> Any:
    """A dataclass field with the help text and command-line details of one option."""
    metadata = {"help": help, "flag": flag, "choices": choices}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class TrainConfig:
    """Every option of a training run. `fit(model, data, TrainConfig(...))`; defaults are a strong CIFAR recipe."""

    epochs: int = _option(30, "epochs of training")
    batch_size: int = _option(128, "images per step (all processes together)")
    lr: float | None = _option(None, f"peak learning rate (default: {LR_PER_128} x batch-size / 128)")
    schedule: str = _option("onecycle", "learning-rate schedule; step = the paper's /10 at 50%% and 75%%",
                            choices=SCHEDULES)
    warmup_epochs: float | None = _option(
        None, "epochs of linear warm-up (default: 20%% of training for onecycle, 5%% for cosine)", flag="--warmup")
    momentum: float = _option(0.9, "SGD momentum")
    nesterov: bool = _option(True, "Nesterov momentum; the flag --no-nesterov gives plain momentum")
    weight_decay: float = _option(5e-4, "L2 penalty on weights (not on batch-norm parameters or biases)")
    label_smoothing: float = _option(0.1, "label smoothing of the cross-entropy loss")
    augment: str = _option("crop-flip", "augmentation: crop-flip (pad and crop, CIFAR), resized-crop (random "
                           "resized crops, ImageNet-sized models) or none", choices=AUGMENTATIONS)
    crop_padding: int = _option(4, "pixels of zero padding for random crops (crop-flip; 0: no crops)")
    flip: bool = _option(True, "random horizontal flips; the flag --no-flip turns them off")
    cutout: int = _option(0, "cutout square size in pixels (0: no cutout)")
    mean: tuple[float, ...] | None = _option(
        None, "per-channel mean used to normalize images (default: the training images'; ImageNet's for "
        "ImageNet weights: 0.485 0.456 0.406)")
    std: tuple[float, ...] | None = _option(
        None, "per-channel standard deviation used to normalize images (default: the training images'; "
        "ImageNet's: 0.229 0.224 0.225)")
    train_eval_size: int | None = _option(
        None, "also evaluate this many training images without augmentation after each epoch")
    seed: int = _option(0, "seed of the shuffles and augmentations")
    precision: str = _option("auto", "auto: bf16 autocast on CPUs with native bf16, fp16 + gradient scaling on "
                             "CUDA, else fp32", choices=PRECISIONS)
    channels_last: bool = _option(True, "channels-last memory layout (faster convolutions); the flag "
                                  "--no-channels-last keeps NCHW")
    compile: bool = _option(False, "torch.compile the model")
    pipeline: str = _option("fast", "fast: batched augmentation on the device; classic: torchvision transforms + "
                            "DataLoader", choices=PIPELINES)
    num_workers: int = _option(2, "DataLoader worker processes (classic pipeline)", flag="--workers")
    eval_batch_size: int = _option(256, "batch size for evaluation")

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            check_int(name, getattr(self, name))
        for name in ("crop_padding", "cutout", "num_workers", "seed"):
            check_int(name, getattr(self, name), minimum=0)
        check_int("train_eval_size", self.train_eval_size, allow_none=True)
        for name, choices in (("schedule", SCHEDULES), ("pipeline", PIPELINES), ("augment", AUGMENTATIONS),
                              ("precision", PRECISIONS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}.")
        if self.lr is not None and not _positive(self.lr):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}.")
        if self.warmup_epochs is not None and not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"warmup_epochs must be between 0 and epochs ({self.epochs}), got {self.warmup_epochs!r}.")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}.")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"weight_decay must be 0 or more, got {self.weight_decay!r}.")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}.")
        if self.pipeline == "classic" and self.augment != "crop-flip":
            raise ValueError("The classic pipeline implements the crop-flip augmentation only: use pipeline='fast'.")
        self._check_normalization()

    def _check_normalization(self) -> None:
        if (self.mean is None) != (self.std is None):
            raise ValueError("Give both mean and std (or neither, to use the training images' statistics).")
        if self.mean is None:
            return
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean has {len(self.mean)} values but std has {len(self.std)}: give one per channel.")
        if not all(_positive(s) for s in self.std):
            raise ValueError(f"every std must be a positive number, got {self.std!r}.")

    @property
    def peak_lr(self) -> float:
        """The peak learning rate: lr, or the default scaled with the batch size."""
        return self.lr if self.lr is not None else LR_PER_128 * self.batch_size / 128

    @property
    def warmup(self) -> float:
        """Epochs of warm-up: warmup_epochs, or the schedule's default fraction of training."""
        return self.warmup_epochs if self.warmup_epochs is not None else WARMUP_FRACTION[self.schedule] * self.epochs

    def resolved(self) -> TrainConfig:
        """The same recipe with the defaults that depend on other options written out (lr, warmup_epochs)."""
        return self.replace(lr=float(self.peak_lr), warmup_epochs=float(self.warmup))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some options changed (checked like a new config)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The options as plain JSON values (tuples become lists): the `config` entry of results.json."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> TrainConfig:
        """A config from `to_dict()` output; keys of newer options may be missing (their defaults apply)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(record) - known - {"model"})  # results.json stores the model spec beside the options
        if unknown:
            raise ValueError(f"Unknown training options {', '.join(unknown)}: written by a newer resnet_lab?")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in record.items() if k in known}
        return cls(**values)


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and math.isfinite(value)


def resume_differences(saved: dict[str, Any], now: TrainConfig) -> list[str]:
    """The options (other than those free to change) that differ between a saved run's config and `now`."""
    then = TrainConfig.from_dict(saved).resolved().to_dict()
    current = now.resolved().to_dict()
    return [f"{k}: {then[k]!r} then, {current[k]!r} now" for k in current
            if k not in RESUME_FREE and then[k] != current[k]]


# ----------------------------------------------------------------------------------------------------------------
# The command line, generated from the fields


def _field_type(hint: Any) -> tuple[type, bool]:
    """(scalar type, is a tuple) of a field annotation such as `float | None` or `tuple[float, ...] | None`."""
    if get_origin(hint) in (Union, types.UnionType):
        hint = next(a for a in get_args(hint) if a is not type(None))
    if get_origin(hint) is tuple:
        return get_args(hint)[0], True
    return hint, False


def add_config_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per TrainConfig field: `--batch-size`, `--no-flip`, ... with the field's help and default."""
    hints = get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        help_text = f.metadata["help"]
        kind, is_tuple = _field_type(hints[f.name])
        if kind is bool:
            if f.default:
                parser.add_argument(f"--no-{flag[2:]}", dest=f.name, action="store_false", help=help_text)
            else:
                parser.add_argument(flag, dest=f.name, action="store_true", help=help_text)
            continue
        if f.default is not None and "default" not in help_text:
            help_text += f" (default: {f.default})"
        parser.add_argument(flag, dest=f.name, type=kind, nargs="+" if is_tuple else None, default=f.default,
                            choices=f.metadata["choices"], metavar=None if f.metadata["choices"] else
                            f.name.split("_")[-1].upper(), help=help_text)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed command-line arguments (fields not on the command line keep their defaults)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return TrainConfig(**values)


__all__ = ["AUGMENTATIONS", "PIPELINES", "SCHEDULES", "TrainConfig", "add_config_arguments", "config_from_args",
           "resume_differences"]
