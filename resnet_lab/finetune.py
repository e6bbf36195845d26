"""Fine-tuning: start from a trained ResNet, give it a new head, and choose which of its stages learn, and how fast.

The pieces, each usable alone::

    model = load_pretrained("resnet18")  # torchvision's ImageNet weights (network once)
    model = load_pretrained("runs/source/best.pt")  # or a resnet_lab checkpoint
    replace_head(model, num_classes=5)  # a new, randomly initialized linear layer
    plan = finetune_plan(model, "partial")  # stages that train, their rates, frozen BN
    fit(model, data, config, param_groups=plan.param_groups, callbacks=plan.callbacks)

Strategies (`STRATEGIES`): "linear" trains the head alone (a linear probe); "partial" the last stage and the head;
"full" everything, with learning rates that shrink stage by stage towards the input (discriminative fine-tuning);
"gradual" starts like "linear" and unfreezes one more stage, from the top, every `unfreeze_every` epochs.

A frozen stage is frozen twice over: its parameters get no gradient (so SGD, weight decay included, leaves them
bit-identical), and its batch-norm layers stay in eval mode, so their running statistics keep the values that the
pretrained weights were trained with instead of drifting towards the new data's. `fit` puts the whole network in
train mode at every epoch start; the plan's `FreezeSchedule` callback puts the frozen BN layers back.

The preprocessing that goes with the weights (normalization statistics, input size) travels with the model as
`model.preprocessing`; feed the model images prepared that way (`TrainConfig(mean=..., std=...)`, `load_data(...,
image_size=...)`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from resnet_lab.callbacks import Callback
from resnet_lab.models import ResNet, get_model

if TYPE_CHECKING:  # annotations only
    from resnet_lab.data import ImageData
    from resnet_lab.train import Trainer

STRATEGIES = ("linear", "partial", "full", "gradual")
# torchvision's ImageNet ResNets, which resnet_lab's networks of the same name load key for key.
TORCHVISION_NAMES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
# ImageNet's per-channel statistics, as torchvision's weights' transforms() use them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The side of the crop torchvision's ImageNet ResNets were trained on (RandomResizedCrop(224)).
IMAGENET_SIZE = 224
# Discriminative fine-tuning: each stage below the head learns at this fraction of the rate of the stage above.
DEFAULT_LR_DECAY = 0.5


class PretrainedUnavailableError(RuntimeError):
    """Pretrained weights that cannot be had here (no network, no cached copy); the message names the alternative."""


@dataclass(frozen=True)
class Preprocessing:
    """How images must be prepared for a pretrained model: normalization and the input size it learned at."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: int | None  # the square side the weights were trained on (None: unknown)
    source: str  # where the weights came from, for records: "torchvision:ResNet18_Weights.IMAGENET1K_V1", ...
    classes: tuple[str, ...] = ()  # the classes of the pretrained head (empty when unknown, e.g. ImageNet's 1000)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, for results files."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


# ----------------------------------------------------------------------------------------------------------------
# Loading


def _offline_message(name: str, error: BaseException) -> str:
    return (
        f"Cannot fetch torchvision's ImageNet weights for {name} ({type(error).__name__}: "
        f"{str(error).splitlines()[0] if str(error) else 'no details'}). They are downloaded once from "
        "download.pytorch.org and then cached by torch.hub, and this machine has no network and no cached copy. "
        "Offline, fine-tune a resnet_lab checkpoint instead: load_pretrained('path/to/best.pt') (on the command "
        "line, --from path/to/best.pt), e.g. the book's results/checkpoints/resnet20_source.pt, pretrained on five "
        "CIFAR-10 classes; or copy the weights file into torch.hub's cache (torch.hub.get_dir()/checkpoints) "
        "from a machine that has the network, or run on Colab, where the download works."
    )


def _torchvision_weights(name: str) -> Any:
    """torchvision's default (best) ImageNet weights enum for a model name, through the `weights=` API."""
    from torchvision.models import get_model_weights

    return get_model_weights(name).DEFAULT


def load_pretrained(name_or_checkpoint: str | os.PathLike, *, device: str | torch.device = "cpu") -> ResNet:
    """A pretrained ResNet with `model.preprocessing` set: torchvision's ImageNet weights for a name in
    `TORCHVISION_NAMES`, or the network of a resnet_lab checkpoint file.

    Offline, the torchvision path raises PretrainedUnavailableError, whose message names the offline alternative.
    """
    if isinstance(name_or_checkpoint, str) and name_or_checkpoint in TORCHVISION_NAMES:
        name = name_or_checkpoint
        weights = _torchvision_weights(name)
        try:
            state = weights.get_state_dict(progress=False)
        except (OSError, RuntimeError, ValueError) as error:  # URLError is an OSError
            raise PretrainedUnavailableError(_offline_message(name, error)) from None
        model = get_model(name, num_classes=len(weights.meta["categories"]))
        model.load_state_dict(state)  # strict: resnet_lab's ImageNet ResNets have torchvision's keys
        model.preprocessing = Preprocessing(IMAGENET_MEAN, IMAGENET_STD, IMAGENET_SIZE, f"torchvision:{weights}")
        return model.to(device).eval()
    path = Path(name_or_checkpoint).expanduser()
    if not path.exists() and os.sep not in str(name_or_checkpoint) and not str(name_or_checkpoint).endswith(".pt"):
        raise ValueError(
            f"{str(name_or_checkpoint)!r} is neither a checkpoint file nor one of torchvision's ImageNet ResNets "
            f"({', '.join(TORCHVISION_NAMES)}). Pass a resnet_lab checkpoint (e.g. runs/NAME/best.pt) or one of "
            "those names."
        )
    from resnet_lab.checkpoint import load_checkpoint

    model, meta = load_checkpoint(path, device=device)
    size = (meta.get("image_size") or [None])[0]
    model.preprocessing = Preprocessing(tuple(meta["mean"]), tuple(meta["std"]), size, f"checkpoint:{path.name}",
                                        tuple(meta.get("classes") or ()))
    return model


def resized(data: ImageData, size: int) -> ImageData:
    """The same data with every image resized to size x size (shorter side, then the central square), for a
    network pretrained at another resolution (ImageNet's ResNets: 224; CIFAR's 32x32 images are far smaller).

    The normalization statistics are kept: resizing barely changes a channel's mean and spread.
    """
    from resnet_lab.folders import resize_batch

    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a whole number of pixels, 1 or more, got {size!r}.")
    test = {} if data.test_x is None else {"test_x": resize_batch(data.test_x, size)}
    return dataclasses.replace(data, train_x=resize_batch(data.train_x, size), val_x=resize_batch(data.val_x, size),
                               **test)


# ----------------------------------------------------------------------------------------------------------------
# The head


def replace_head(model: ResNet, num_classes: int) -> nn.Linear:
    """Give `model` a new, trainable linear head for `num_classes` classes (its input size read from the old one).

    The model's `spec` is updated so that checkpoints rebuild the new shape; returns the new layer.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be a whole number of 2 or more, got {num_classes!r}: a classifier "
                         "needs at least two classes.")
    old = getattr(model, "fc", None)
    if not isinstance(old, nn.Linear):
        raise TypeError(f"replace_head expects a ResNet whose head is model.fc, an nn.Linear; got "
                        f"{type(old).__name__}.")
    head = nn.Linear(old.in_features, num_classes).to(old.weight.device)
    model.fc = head
    model.num_classes = num_classes
    if getattr(model, "spec", None) is not None:
        model.spec = {**model.spec, "num_classes": num_classes}
    return head


def check_head(model: nn.Module, num_classes: int) -> None:
    """Raise ValueError when the model's head does not have one output per class of the data."""
    outputs = getattr(getattr(model, "fc", None), "out_features", None)
    if outputs != num_classes:
        raise ValueError(
            f"The model's head has {outputs} outputs but the data have {num_classes} classes. Training on it would "
            "run without an error (cross-entropy accepts any label below the number of outputs) and learn the "
            "wrong task: call replace_head(model, num_classes) first."
        )


# ----------------------------------------------------------------------------------------------------------------
# Stages, freezing


def stages(model: ResNet) -> dict[str, list[nn.Module]]:
    """The network's stages from input to output: "stem", "layer1".."layer3" (or "layer4"), "head".

    The final BN of a pre-activation network belongs to the last stage, whose output it normalizes.
    """
    if not isinstance(getattr(model, "fc", None), nn.Linear) or not hasattr(model, "layer1"):
        raise TypeError(f"Fine-tuning needs a ResNet with torchvision's layout (conv1, layer1.., fc); got "
                        f"{type(model).__name__}.")
    out: dict[str, list[nn.Module]] = {"stem": [m for m in (model.conv1, model.bn1) if m is not None]}
    layers = [name for name in ("layer1", "layer2", "layer3", "layer4") if getattr(model, name, None) is not None]
    for name in layers:
        out[name] = [getattr(model, name)]
    if getattr(model, "bn_final", None) is not None:
        out[layers[-1]].append(model.bn_final)
    out["head"] = [model.fc]
    return out


def _parameters(modules: Sequence[nn.Module]) -> list[nn.Parameter]:
    return [p for m in modules for p in m.parameters()]


def trainable_stages(model: ResNet, strategy: str) -> list[str]:
    """The stages a strategy trains from the start: linear and gradual the head; partial the last stage too."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}.")
    names = list(stages(model))
    return {"linear": names[-1:], "gradual": names[-1:], "partial": names[-2:], "full": names}[strategy]


def set_frozen(model: ResNet, frozen: Sequence[str]) -> None:
    """Freeze the named stages (no gradients, BN in eval mode) and unfreeze the others (gradients on).

    BN modes of unfrozen stages are left to the caller: `fit` sets train mode at each epoch start.
    """
    parts = stages(model)
    unknown = sorted(set(frozen) - set(parts))
    if unknown:
        raise ValueError(f"Unknown stage(s) {', '.join(unknown)}: this network's stages are {', '.join(parts)}.")
    for name, modules in parts.items():
        for param in _parameters(modules):
            param.requires_grad_(name not in frozen)
        if name in frozen:
            for module in modules:
                for bn in module.modules():
                    if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                        bn.eval()


def freeze(model: ResNet, up_to: str | None = None) -> None:
    """Freeze every stage from the stem up to and including `up_to` (default: all but the head)."""
    names = list(stages(model))
    up_to = names[-2] if up_to is None else up_to
    if up_to not in names:
        raise ValueError(f"Unknown stage {up_to!r}: this network's stages are {', '.join(names)}.")
    set_frozen(model, names[: names.index(up_to) + 1])


def unfreeze(model: ResNet) -> None:
    """Make every parameter trainable again (BN layers follow the model's mode)."""
    set_frozen(model, [])


def frozen_stages(model: ResNet) -> list[str]:
    """The stages none of whose parameters require gradients."""
    return [name for name, modules in stages(model).items()
            if not any(p.requires_grad for p in _parameters(modules))]


# ----------------------------------------------------------------------------------------------------------------
# Learning rates per stage, gradual unfreezing


def stage_lr_scales(model: ResNet, decay: float = DEFAULT_LR_DECAY) -> dict[str, float]:
    """Discriminative fine-tuning: the head at 1, the stage below at `decay`, the next at decay**2, ..."""
    if not (isinstance(decay, (int, float)) and 0 < decay <= 1 and math.isfinite(decay)):
        raise ValueError(f"decay must be in (0, 1], got {decay!r}.")
    names = list(stages(model))
    return {name: float(decay ** (len(names) - 1 - i)) for i, name in enumerate(names)}


def stage_param_groups(model: ResNet, lr_scales: dict[str, float]) -> list[dict[str, Any]]:
    """One parameter group per stage, named after it, with its `lr_scale` (the form `fit` takes)."""
    parts = stages(model)
    missing = sorted(set(parts) - set(lr_scales))
    if missing:
        raise ValueError(f"lr_scales has no entry for stage(s) {', '.join(missing)}.")
    return [{"name": name, "params": _parameters(modules), "lr_scale": lr_scales[name]}
            for name, modules in parts.items()]


def unfreeze_epochs(model: ResNet, strategy: str, unfreeze_every: int = 1) -> dict[str, int | None]:
    """For each stage, the epoch (0-based) from which it trains; None: never (it stays frozen)."""
    names = list(stages(model))
    start = set(trainable_stages(model, strategy))
    if strategy != "gradual":
        return {name: 0 if name in start else None for name in names}
    # The head first, then one more stage from the top every `unfreeze_every` epochs (Howard and Ruder 2018).
    return {name: (len(names) - 1 - i) * unfreeze_every for i, name in enumerate(names)}


class FreezeSchedule(Callback):
    """Keeps frozen stages frozen inside `fit`: no gradients, BN in eval mode; unfreezes stages on schedule.

    `epochs[stage]` is the epoch (0-based) from which the stage trains, None for never. The optimizer must hold
    every parameter that will ever train (see `finetune_plan`): a parameter without a gradient is skipped by SGD,
    weight decay and momentum included, so a frozen weight stays bit-identical.
    """

    def __init__(self, epochs: dict[str, int | None]) -> None:
        self.epochs = dict(epochs)
        self.log: list[tuple[int, list[str]]] = []  # (epoch, frozen stages), for records

    def frozen_at(self, epoch: int) -> list[str]:
        """The stages frozen during `epoch` (0-based)."""
        return [name for name, start in self.epochs.items() if start is None or epoch < start]

    def on_train_start(self, trainer: Trainer) -> None:
        set_frozen(trainer.model, self.frozen_at(trainer.start_epoch))

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        # fit has just called model.train(): put the frozen stages' BN layers back in eval mode.
        frozen = self.frozen_at(epoch)
        set_frozen(trainer.model, frozen)
        self.log.append((epoch, frozen))


class EarlyStopping(Callback):
    """Stop when the validation accuracy has not improved for `patience` epochs; at the end, put the best weights
    (those of best.pt) back into the model."""

    def __init__(self, patience: int = 5) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be a whole number of epochs, 1 or more, got {patience!r}.")
        self.patience = patience
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch: int | None = None
        self.stopped_at: int | None = None

    def on_train_start(self, trainer: Trainer) -> None:
        # A resumed run that had already stopped early: its patience ran out, so it trains no further.
        best_epoch = (trainer.best or {}).get("epoch")
        if trainer.start_epoch and best_epoch is not None and trainer.start_epoch - best_epoch >= self.patience:
            self.stopped_at = trainer.start_epoch
            trainer.request_stop(f"no better validation accuracy for {self.patience} epochs (before resuming)")

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if record.get("val_acc") is None:
            raise ValueError("Early stopping needs a validation split: give the data validation images.")
        best = trainer.best or {}
        if best.get("epoch") == record["epoch"]:  # this epoch is the best so far (fit has just recorded it)
            self.best_state = copy.deepcopy(trainer.model.state_dict())
            self.best_epoch = record["epoch"]
        elif record["epoch"] - best.get("epoch", record["epoch"]) >= self.patience:
            self.stopped_at = record["epoch"]
            trainer.request_stop(f"no better validation accuracy for {self.patience} epochs")

    def on_train_end(self, trainer: Trainer, status: str) -> None:
        if self.best_state is None and trainer.out_dir is not None and (trainer.out_dir / "best.pt").exists():
            # A resumed run: the best weights of the earlier part are in best.pt.
            from resnet_lab.checkpoint import read_checkpoint

            self.best_state = read_checkpoint(trainer.out_dir / "best.pt")["model"]
            self.best_epoch = (trainer.best or {}).get("epoch")
        if self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)


@dataclass
class FinetunePlan:
    """What `fit` needs to fine-tune one way: parameter groups with per-stage learning rates, and callbacks."""

    strategy: str
    param_groups: list[dict[str, Any]]
    schedule: FreezeSchedule
    lr_scales: dict[str, float]

    @property
    def callbacks(self) -> list[Callback]:
        """The callbacks to pass to `fit` (add EarlyStopping yourself if you want it)."""
        return [self.schedule]

    def describe(self) -> dict[str, Any]:
        """For results files: the strategy, each stage's lr_scale and the epoch it starts training."""
        return {"strategy": self.strategy, "lr_scales": self.lr_scales, "unfreeze_epochs": self.schedule.epochs}


def finetune_plan(model: ResNet, strategy: str, *, lr_decay: float = DEFAULT_LR_DECAY,
                  unfreeze_every: int = 1) -> FinetunePlan:
    """The parameter groups and freezing schedule of a strategy (see the module docstring).

    "full" and "gradual" use discriminative learning rates (`stage_lr_scales(model, lr_decay)`); lr_decay=1 gives
    every stage the same rate. The frozen stages of "linear" and "partial" are frozen at once (`fit` then leaves
    them out of the optimizer). "gradual" leaves every parameter trainable until `fit` starts, because `fit`
    builds its optimizer from the trainable parameters and a stage unfrozen later must be in it; the schedule
    freezes the stages when training starts.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}.")
    scales = stage_lr_scales(model, lr_decay) if strategy in ("full", "gradual") else \
        {name: 1.0 for name in stages(model)}
    schedule = FreezeSchedule(unfreeze_epochs(model, strategy, unfreeze_every))
    groups = stage_param_groups(model, scales)
    set_frozen(model, [] if strategy == "gradual" else schedule.frozen_at(0))
    return FinetunePlan(strategy, groups, schedule, scales)


__all__ = [
    "DEFAULT_LR_DECAY", "EarlyStopping", "FinetunePlan", "FreezeSchedule", "IMAGENET_MEAN", "IMAGENET_SIZE",
    "IMAGENET_STD", "Preprocessing", "PretrainedUnavailableError", "STRATEGIES", "TORCHVISION_NAMES", "check_head",
    "finetune_plan", "freeze", "frozen_stages", "load_pretrained", "replace_head", "resized", "set_frozen",
    "stage_lr_scales", "stage_param_groups", "stages", "trainable_stages", "unfreeze", "unfreeze_epochs",
]
