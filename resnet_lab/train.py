"""Training and evaluation: `fit`, `evaluate`, the `History` of a run, optimizer, schedules and mixed precision.

`fit(model, data, epochs=...)` trains with SGD (momentum, Nesterov), weight decay on weights only, label smoothing
and a learning-rate schedule that is a pure function of the step (`lr_factor`). With `out_dir` it writes, after
every epoch, `last.pt` and `best.pt` (atomically, see `resnet_lab.checkpoint`) and `results.json` (per-epoch
record and provenance); `resume=True` continues exactly where the last checkpoint stopped. Ctrl-C finishes the
current step, saves and explains how to resume. Under `torchrun` the same call trains with
DistributedDataParallel: every process gets a slice of each batch, process 0 alone writes.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from resnet_lab.checkpoint import CheckpointError, check_same_model, read_checkpoint, save_checkpoint
from resnet_lab.data import BatchLoader, DataError, ImageData, classic_loader, load_data, mix_seed, normalize
from resnet_lab.provenance import provenance
from resnet_lab.runtime import get_device

SCHEDULES = ("onecycle", "cosine", "step", "constant")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
PIPELINES = ("fast", "classic")

# The defaults: with them `python -m resnet_lab train --model resnet20 --epochs 10` reaches the accuracy reported
# in the README on a 2-core CPU within 8 minutes. The learning rate scales linearly with the batch size.
DEFAULT_BATCH_SIZE = 128
DEFAULT_LR_PER_128 = 0.2
DEFAULT_MOMENTUM = 0.9
DEFAULT_WEIGHT_DECAY = 5e-4
DEFAULT_LABEL_SMOOTHING = 0.1
DEFAULT_SCHEDULE = "onecycle"
# Warm-up as a fraction of training when warmup_epochs is not given.
DEFAULT_WARMUP_FRACTION = {"onecycle": 0.2, "cosine": 0.05, "step": 0.0, "constant": 0.0}
DEFAULT_EVAL_BATCH_SIZE = 256
# Config entries that may differ when a run is resumed: they change speed or output, not the numbers.
RESUME_FREE_KEYS = frozenset({"compile", "eval_batch_size", "num_workers"})


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message says where and what to try."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during fit: the state was saved (when possible) and the message says how to resume."""


# ----------------------------------------------------------------------------------------------------------------
# Precision, optimizer, schedule


def cpu_supports_bf16() -> bool:
    """True when this CPU computes in bfloat16 natively (AVX512-BF16 or AMX), where bf16 autocast pays off.

    Without those instructions oneDNN emulates bf16, and autocast makes training slower, not faster: on the
    AVX-512 CPU without bf16 instructions of the book's measurements, a ResNet-20 training step in bf16 (channels
    last) ran at about half the speed of the same step in fp32.
    """
    cpu = torch.cpu
    for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        try:
            if getattr(cpu, check)():
                return True
        except (AttributeError, RuntimeError):
            continue
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" -> bf16 on CPUs with native bf16, fp16 (with a GradScaler) on CUDA, fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if device.type == "cpu" and cpu_supports_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' (with gradient scaling) is for CUDA GPUs; on this device use bf16 or fp32.")
    if precision == "bf16" and device.type == "cpu" and not cpu_supports_bf16():
        # Allowed (oneDNN emulates it), but say that it is slow here.
        warnings.warn("This CPU has no native bfloat16 instructions: bf16 autocast is slower than fp32 here.",
                      stacklevel=2)
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("This GPU does not support bfloat16: use precision 'fp16' (or 'auto').")
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context for a resolved precision ("bf16", "fp16" or "fp32": no autocast)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_optimizer(
    model: nn.Module, lr: float, momentum: float = DEFAULT_MOMENTUM, nesterov: bool = True,
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
) -> torch.optim.SGD:
    """SGD whose weight decay applies to weights only: batch-norm scales and shifts and biases are not decayed."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            # Tensors of one dimension are BN weights/biases and layer biases: decaying them only hurts.
            (no_decay if param.dim() <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)


def lr_factor(step: int, total_steps: int, schedule: str, warmup_steps: int = 0) -> float:
    """The learning rate at `step` (0-based) as a fraction of the peak rate.

    Linear warm-up over `warmup_steps`, then: "onecycle" decays linearly to 0, "cosine" follows a half cosine to
    0, "step" divides by 10 at 50% and 75% of training (He et al. 2016), "constant" stays at the peak.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}.")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return 0.1 ** ((step >= 0.5 * total_steps) + (step >= 0.75 * total_steps))
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 - progress


def training_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    x: Tensor,
    y: Tensor,
    *,
    device: torch.device,
    precision: str,
    label_smoothing: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """One SGD step on a batch; returns the (unscaled) loss and the logits, both detached."""
    with autocast(device, precision):
        logits = net(x)
        loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach(), logits.detach()


# ----------------------------------------------------------------------------------------------------------------
# History


@dataclass
class History(Sequence):
    """The record of a run: a list of per-epoch dicts, plus the configuration, provenance and best epoch.

    `history[-1]` is the last epoch's dict, `history["val_acc"]` the column of validation accuracies.
    `to_json()` gives the results.json text; `History.from_json(path)` reads one back; `plot()` draws the curves.
    """

    epochs: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    best: dict[str, Any] | None = None
    status: str = "finished"

    def __len__(self) -> int:
        return len(self.epochs)

    def __getitem__(self, key):
        if isinstance(key, str):
            return [e.get(key) for e in self.epochs]
        return self.epochs[key]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.epochs)

    def to_dict(self) -> dict[str, Any]:
        """The results.json structure: provenance, config, epochs, best, status."""
        return {
            "provenance": self.provenance,
            "config": self.config,
            "epochs": self.epochs,
            "best": self.best,
            "status": self.status,
        }

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The results.json text; written (atomically) to `path` when given."""
        text = json.dumps(self.to_dict(), indent=1, default=str) + "\n"
        if path is not None:
            path = Path(path)
            tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
            tmp.write_text(text)
            os.replace(tmp, path)
        return text

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> History:
        """A History from a results.json structure."""
        return cls(
            epochs=list(record.get("epochs", [])),
            config=dict(record.get("config") or {}),
            provenance=dict(record.get("provenance") or {}),
            best=record.get("best"),
            status=record.get("status", "finished"),
        )

    @classmethod
    def from_json(cls, source: str | os.PathLike) -> History:
        """Read a results.json file (or its text)."""
        text = str(source)
        if not text.lstrip().startswith("{"):
            text = Path(source).read_text()
        return cls.from_dict(json.loads(text))

    def plot(self, metric: str = "error", title: str | None = None, figsize=(10, 3.8)):
        """Loss (left) and error or accuracy in % (right) per epoch, for training and validation."""
        import matplotlib.pyplot as plt

        if metric not in ("error", "accuracy"):
            raise ValueError(f"metric must be 'error' or 'accuracy', got {metric!r}.")
        if not self.epochs:
            raise ValueError("This history has no epochs to plot yet.")
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=figsize, constrained_layout=True)
        x = self["epoch"]
        curves = (
            ("train", "training (augmented batches)", "-", "C0"),
            ("train_eval", "training (fixed subset, no augmentation)", "--", "C0"),
            ("val", "validation", "-", "C1"),
        )
        for prefix, label, style, color in curves:
            losses, accs = self[f"{prefix}_loss"], self[f"{prefix}_acc"]
            if any(v is None for v in losses):
                continue
            ax_loss.plot(x, losses, style, color=color, label=label)
            values = [100 * (1 - a) if metric == "error" else 100 * a for a in accs]
            ax_acc.plot(x, values, style, color=color, label=label)
        ax_loss.set_ylabel("loss (cross-entropy)")
        ax_acc.set_ylabel(f"{metric} (%)")
        for ax in (ax_loss, ax_acc):
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        ax_acc.legend(frameon=False)
        if title is None and self.config.get("model"):
            title = f"{self.config['model'].get('name')}, {len(self)} epochs"
        if title:
            fig.suptitle(title)
        return fig


# ----------------------------------------------------------------------------------------------------------------
# Evaluation


def _shard() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_sum(values: Tensor) -> Tensor:
    """Sum a tensor over all processes (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(values)
    return values


@torch.no_grad()
def evaluate_tensors(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    num_classes: int,
    batch_size: int = DEFAULT_EVAL_BATCH_SIZE,
    device: torch.device | str | None = None,
    precision: str = "auto",
    channels_last: bool = True,
) -> dict[str, Any]:
    """Loss (plain cross-entropy), accuracy, count and per-class accuracy of `model` on uint8 images x."""
    if len(y) == 0:
        raise DataError("There are no images to evaluate (the split is empty).")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    precision = resolve_precision(precision, device)
    rank, world = _shard()
    loader = BatchLoader(
        x, y, mean, std, batch_size=batch_size * world, device=device, channels_last=channels_last,
        rank=rank, world_size=world,
    )
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
    totals = _all_sum(torch.cat([loss_sum.view(1), seen.double(), correct.double()]))
    count = int(totals[1 : 1 + num_classes].sum())
    per_seen = totals[1 : 1 + num_classes]
    per_correct = totals[1 + num_classes :]
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
    batch_size: int = DEFAULT_EVAL_BATCH_SIZE,
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
# Ctrl-C, progress display, distributed set-up


class _StopRequest:
    """While active, the first Ctrl-C only asks training to stop after the current step; a second one stops now.

    Stopping between steps keeps weights, optimizer and batch-norm statistics consistent, so they can be saved.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nStopping after this step to save a checkpoint (press Ctrl-C again to stop at once)...", flush=True)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _in_notebook() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and "ipykernel" in sys.modules


class _Progress:
    """A tqdm bar per epoch in terminals and notebooks; one plain line per epoch when output goes to a file."""

    def __init__(self, enabled: bool, epochs: int, steps: int) -> None:
        self.epochs, self.steps = epochs, steps
        self.mode = "off"
        if enabled:
            self.mode = "bar" if _in_notebook() or sys.stderr.isatty() else "lines"
        self.bar = None

    def start(self, epoch: int, done: int) -> None:
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.steps, initial=done, desc=f"epoch {epoch + 1}/{self.epochs}", leave=True,
                            dynamic_ncols=True, unit="step")

    def update(self, steps: int, stats: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(steps)
            self.bar.set_postfix(stats, refresh=False)

    def end(self, record: dict[str, Any]) -> None:
        summary = _epoch_summary(record)
        if self.bar is not None:
            self.bar.set_postfix_str(summary)
            self.bar.close()
            self.bar = None
        elif self.mode == "lines":
            print(f"epoch {record['epoch']}/{self.epochs}  {summary}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _epoch_summary(r: dict[str, Any]) -> str:
    parts = [f"loss {r['train_loss']:.3f} acc {100 * r['train_acc']:.1f}%"]
    if r.get("val_acc") is not None:
        parts.append(f"val loss {r['val_loss']:.3f} acc {100 * r['val_acc']:.2f}%")
    parts.append(f"lr {r['lr']:.4f}  {r['images_per_s']:.0f} img/s  {r['seconds']:.0f} s")
    return " | ".join(parts)


@dataclass
class _Distributed:
    rank: int = 0
    world_size: int = 1
    started_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _start_distributed(device: torch.device | str | None) -> tuple[_Distributed, torch.device]:
    """Join the process group torchrun prepared (WORLD_SIZE > 1): NCCL on GPUs, gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return _Distributed(), get_device(None if device is None else str(device))
    use_cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
    started = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        started = True
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        run_device = torch.device("cuda", local_rank)
    else:
        run_device = torch.device("cpu")
    return _Distributed(dist.get_rank(), dist.get_world_size(), started), run_device


# ----------------------------------------------------------------------------------------------------------------
# fit


def _check_count(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def check_out_dir(out_dir: str | os.PathLike, resume: bool) -> None:
    """Refuse to start a new run in a folder that holds one (resnet_lab never overwrites a run)."""
    last = Path(out_dir) / "last.pt"
    if last.exists() and not resume:
        raise ValueError(
            f"{out_dir} already holds a training run ({last.name}). Continue it with resume=True (--resume), or "
            "choose another output folder (--out) to start a new run; resnet_lab never overwrites a run."
        )


def default_lr(batch_size: int) -> float:
    """The default peak learning rate for a batch size (linear scaling from DEFAULT_LR_PER_128 at 128)."""
    return DEFAULT_LR_PER_128 * batch_size / 128


def fit(
    model: nn.Module,
    data: ImageData | str,
    *,
    epochs: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float | None = None,
    momentum: float = DEFAULT_MOMENTUM,
    nesterov: bool = True,
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
    label_smoothing: float = DEFAULT_LABEL_SMOOTHING,
    schedule: str = DEFAULT_SCHEDULE,
    warmup_epochs: float | None = None,
    crop_padding: int = 4,
    flip: bool = True,
    cutout: int = 0,
    train_eval_size: int | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    seed: int = 0,
    precision: str = "auto",
    channels_last: bool = True,
    compile: bool = False,
    pipeline: str = "fast",
    num_workers: int = 2,
    eval_batch_size: int = DEFAULT_EVAL_BATCH_SIZE,
    progress: bool = True,
    device: torch.device | str | None = None,
    command: str | None = None,
) -> History:
    """Train `model` on `data` and return its History (also written to out_dir/results.json).

    model: a network from `get_model` (its `spec` is saved so that checkpoints can rebuild it).
    data: an ImageData from `load_data`, or a source for it ("cifar10", a folder, "synthetic").
    batch_size: the global batch (split over the processes under torchrun). lr: the peak learning rate, by default
        0.2 * batch_size / 128. schedule: "onecycle" (warm-up then linear decay to 0), "cosine", "step" (the
        paper's: /10 at 50% and 75%) or "constant"; warmup_epochs: linear warm-up (default: 20% of training for
        onecycle, 5% for cosine, none otherwise).
    weight_decay: applied to weights, not to batch-norm parameters or biases.
    crop_padding / flip / cutout: augmentation (pad-and-crop pixels, horizontal flips, cutout square size).
    train_eval_size: also evaluate, after each epoch, a fixed subset of this many training images without
        augmentation (training error as He et al. 2016 plot it): train_eval_loss and train_eval_acc.
    out_dir: folder for last.pt, best.pt and results.json; resume=True continues the run found there (a finished
        run returns at once with its history).
    precision: "auto" (bf16 autocast on CPUs that support it, fp16 + gradient scaling on CUDA), "bf16", "fp16",
        "fp32". channels_last: NHWC memory layout (faster convolutions). compile: torch.compile the model.
    pipeline: "fast" (BatchLoader: whole-batch augmentation on the device) or "classic" (torchvision transforms
        in a DataLoader with num_workers processes; resumes from epoch boundaries only).
    """
    _check_count("epochs", epochs)
    _check_count("batch_size", batch_size)
    _check_count("eval_batch_size", eval_batch_size)
    _check_count("crop_padding", crop_padding, minimum=0)
    _check_count("cutout", cutout, minimum=0)
    _check_count("num_workers", num_workers, minimum=0)
    if train_eval_size is not None:
        _check_count("train_eval_size", train_eval_size)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}.")
    if pipeline not in PIPELINES:
        raise ValueError(f"pipeline must be 'fast' or 'classic', got {pipeline!r}.")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}.")
    lr = default_lr(batch_size) if lr is None else lr
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}.")
    if warmup_epochs is None:
        warmup_epochs = DEFAULT_WARMUP_FRACTION[schedule] * epochs
    if not 0 <= warmup_epochs <= epochs:
        raise ValueError(f"warmup_epochs must be between 0 and epochs ({epochs}), got {warmup_epochs!r}.")
    if isinstance(data, (str, os.PathLike)):
        data = load_data(data)
    if not isinstance(data, ImageData):
        raise TypeError(f"data must be an ImageData from resnet_lab.data.load_data, got {type(data).__name__}.")
    spec = copy.deepcopy(getattr(model, "spec", None))
    outputs = (spec or {}).get("num_classes")
    if outputs is not None and outputs != data.num_classes:
        raise ValueError(
            f"The model has {outputs} outputs but the data has {data.num_classes} classes. Build it with "
            f"get_model({spec.get('name')!r}, num_classes={data.num_classes})."
        )
    config = {
        "model": spec,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": float(lr),
        "momentum": momentum,
        "nesterov": nesterov,
        "weight_decay": weight_decay,
        "label_smoothing": label_smoothing,
        "schedule": schedule,
        "warmup_epochs": float(warmup_epochs),
        "crop_padding": crop_padding,
        "flip": flip,
        "cutout": cutout,
        "train_eval_size": train_eval_size,
        "seed": seed,
        "precision": precision,
        "channels_last": channels_last,
        "compile": compile,
        "pipeline": pipeline,
        "num_workers": num_workers,
        "eval_batch_size": eval_batch_size,
    }
    run = _Run(model, data, config, Path(out_dir) if out_dir is not None else None, device, progress, command)
    return run.fit(resume)


class _Run:
    """The state of one training run. `fit()` above checks the arguments; this class does the work."""

    def __init__(self, model, data, config, out_dir, device, progress, command) -> None:
        self.model, self.data, self.config, self.out_dir = model, data, config, out_dir
        self.device_arg, self.show_progress, self.command = device, progress, command
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.provenance: dict[str, Any] = {}

    # --- the run -----------------------------------------------------------------------------------------------

    def fit(self, resume: bool) -> History:
        state = self._previous_state(resume)
        if state is not None and state["epoch"] >= self.config["epochs"] and not state.get("batch"):
            # A finished run: nothing to train. Hand back its weights and history at once.
            self.model.load_state_dict(state["model"])
            return self._history(state.get("status", "finished"), state)
        self.dist, self.device = _start_distributed(self.device_arg)
        try:
            return self._train(state)
        finally:
            if self.dist.started_here:
                dist.destroy_process_group()

    def _previous_state(self, resume: bool) -> dict[str, Any] | None:
        """The checkpoint to resume from, checked against this run; None for a fresh run."""
        if self.out_dir is None:
            if resume:
                raise ValueError("resume=True needs the out_dir of the run to resume.")
            return None
        check_out_dir(self.out_dir, resume)
        last = self.out_dir / "last.pt"
        if not last.exists():
            return None
        state = read_checkpoint(last)
        check_same_model(state, self.config["model"], last)
        saved = state.get("config", {})
        changed = sorted(
            k for k in set(saved) | set(self.config)
            if k not in RESUME_FREE_KEYS and k != "model" and saved.get(k) != self.config.get(k)
        )
        if changed:
            details = "; ".join(f"{k}: {saved.get(k)!r} then, {self.config.get(k)!r} now" for k in changed)
            raise CheckpointError(
                f"Cannot resume {last}: the run was started with other settings ({details}). Resume with the "
                "original settings (the command is in results.json), or start a new run in another folder."
            )
        saved_data = state.get("data") or {}
        now_data = self.data.describe()
        keys = ("train_size", "val_size", "split_seed", "image_size", "num_classes")
        differ = [k for k in keys if k in saved_data and saved_data[k] != now_data[k]]
        if differ:
            details = "; ".join(f"{k}: {saved_data[k]!r} then, {now_data[k]!r} now" for k in differ)
            raise CheckpointError(
                f"Cannot resume {last}: the data differ from the run's ({details}). Use the same --data, "
                "--val-size and --train-size as the original run."
            )
        return state

    def _train(self, state: dict[str, Any] | None) -> History:
        cfg, data, device = self.config, self.data, self.device
        self.precision = resolve_precision(cfg["precision"], device)
        torch.manual_seed(cfg["seed"])
        model = self.model.to(device)
        if cfg["channels_last"]:
            model = model.to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(model, cfg["lr"], cfg["momentum"], cfg["nesterov"], cfg["weight_decay"])
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")
        start_epoch, start_batch, partial = 0, 0, None
        if state is not None:
            model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if state.get("scaler") and self.scaler.is_enabled():
                self.scaler.load_state_dict(state["scaler"])
            self.history = list(state.get("history", []))
            self.best = state.get("best")
            self.provenance = dict(state.get("provenance") or {})
            start_epoch, start_batch, partial = state["epoch"], state.get("batch", 0), state.get("partial")
            _restore_rng(state.get("rng"))
        if self.dist.is_main and not self.provenance:
            self.provenance = provenance(
                command=self.command, seed=cfg["seed"], data=data.describe(), device=device,
                precision=self.precision, world_size=self.dist.world_size,
            )
        elif self.dist.is_main and state is not None:
            resumed = provenance(command=self.command, device=device)
            self.provenance.setdefault("resumed", []).append(
                {k: resumed[k] for k in ("command", "date", "device", "cpu_model", "git_commit")}
                | {"epoch": start_epoch}
            )
        net = model
        if self.dist.world_size > 1:
            net = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
        if cfg["compile"]:
            net = torch.compile(net)
        self.net, self.raw_model = net, model

        loader = self._train_loader()
        self.steps_per_epoch = len(loader)
        self.total_steps = cfg["epochs"] * self.steps_per_epoch
        self.warmup_steps = round(cfg["warmup_epochs"] * self.steps_per_epoch)
        self.train_eval = self._train_eval_subset()
        bar = _Progress(self.show_progress and self.dist.is_main, cfg["epochs"], self.steps_per_epoch)
        try:
            with _StopRequest() as stop:
                for epoch in range(start_epoch, cfg["epochs"]):
                    record = self._epoch(loader, epoch, start_batch, partial, bar, stop)
                    start_batch, partial = 0, None
                    bar.end(record)
        except KeyboardInterrupt as interrupt:
            bar.close()
            if isinstance(interrupt, TrainingInterrupted):
                raise
            raise TrainingInterrupted(self._interrupted_message(saved=False)) from None
        finally:
            bar.close()
        return self._history("finished")

    def _train_loader(self):
        cfg, data = self.config, self.data
        if cfg["pipeline"] == "classic":
            return classic_loader(
                data.train_x, data.train_y, data.mean, data.std, batch_size=cfg["batch_size"], train=True,
                crop_padding=cfg["crop_padding"], flip=cfg["flip"], cutout=cfg["cutout"],
                num_workers=cfg["num_workers"], seed=cfg["seed"],
            )
        return BatchLoader(
            data.train_x, data.train_y, data.mean, data.std, batch_size=cfg["batch_size"], train=True,
            crop_padding=cfg["crop_padding"], flip=cfg["flip"], cutout=cfg["cutout"], seed=cfg["seed"],
            device=self.device, channels_last=cfg["channels_last"], rank=self.dist.rank,
            world_size=self.dist.world_size,
        )

    def _train_eval_subset(self) -> tuple[Tensor, Tensor] | None:
        """A fixed subset of training images (the same for every seed and model), evaluated without augmentation."""
        size = self.config["train_eval_size"]
        if size is None:
            return None
        n = len(self.data.train_y)
        if size > n:
            raise ValueError(f"train_eval_size={size} but the training split has only {n} images.")
        keep = torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(self.data.split_seed, 7)))[:size]
        keep = keep.sort().values
        return self.data.train_x[keep], self.data.train_y[keep]

    def _epoch(self, loader, epoch: int, start_batch: int, partial: dict | None, bar: _Progress,
               stop: _StopRequest) -> dict[str, Any]:
        """Train one epoch (from `start_batch` when resuming inside it), evaluate, save; returns its record."""
        cfg, device = self.config, self.device
        self.net.train()
        partial = partial or {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        # The saved sums of an interrupted epoch are totals over all processes: process 0 carries them on.
        carried = partial if self.dist.is_main else {"loss_sum": 0.0, "correct": 0, "seen": 0}
        loss_sum = torch.tensor(carried["loss_sum"], dtype=torch.float64, device=device)
        correct = torch.tensor(carried["correct"], dtype=torch.int64, device=device)
        seen = carried["seen"]
        if isinstance(loader, BatchLoader):
            loader.set_epoch(epoch, start_batch)
        else:  # the classic pipeline restarts its epoch: reseed its shuffle so that epochs differ reproducibly
            loader.generator.manual_seed(mix_seed(cfg["seed"], epoch))
            torch.manual_seed(mix_seed(cfg["seed"], epoch, 1))
            start_batch = 0
        # CUDA: check the loss every few steps so that the GPU never waits for the CPU; CPU: every step.
        check_every = 20 if device.type == "cuda" else 1
        pending: list[tuple[int, Tensor]] = []
        bar.start(epoch, start_batch)
        started = time.perf_counter()
        for batch, (x, y) in enumerate(loader, start=start_batch):
            step = epoch * self.steps_per_epoch + batch
            lr = cfg["lr"] * lr_factor(step, self.total_steps, cfg["schedule"], self.warmup_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            if x.device != device:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                if cfg["channels_last"]:
                    x = x.contiguous(memory_format=torch.channels_last)
            loss, logits = training_step(
                self.net, self.optimizer, self.scaler, x, y, device=device, precision=self.precision,
                label_smoothing=cfg["label_smoothing"],
            )
            loss_sum += loss.double() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            pending.append((step, loss))
            if len(pending) >= check_every or batch == self.steps_per_epoch - 1:
                bad_step, stop_now = self._check(pending, stop)
                if bad_step is not None:
                    self._fail(epoch, bad_step, float(pending[bad_step - pending[0][0]][1]))
                if bar.mode == "bar":
                    elapsed = partial["seconds"] + time.perf_counter() - started
                    bar.update(len(pending), {"loss": f"{float(pending[-1][1]):.3f}",
                                              "acc": f"{100 * int(correct) / max(1, seen):.1f}%",
                                              "lr": f"{lr:.4f}", "img/s": f"{seen / elapsed:.0f}"})
                pending = []
                if stop_now:
                    self._save_interrupted(epoch, batch + 1, loss_sum, correct, seen,
                                           partial["seconds"] + time.perf_counter() - started)
        train_seconds = partial["seconds"] + time.perf_counter() - started
        sums = _all_sum(torch.stack([loss_sum, correct.double(), torch.tensor(float(seen), device=device,
                                                                             dtype=torch.float64)]))
        last_step = (epoch + 1) * self.steps_per_epoch - 1
        record = {
            "epoch": epoch + 1,
            "train_loss": float(sums[0] / sums[2]),
            "train_acc": float(sums[1] / sums[2]),
            "lr": cfg["lr"] * lr_factor(last_step, self.total_steps, cfg["schedule"], self.warmup_steps),
            "train_seconds": train_seconds,
            "images_per_s": float(sums[2]) / train_seconds,
        }
        record.update(self._evaluations())
        record["seconds"] = partial["seconds"] + time.perf_counter() - started
        self.history.append(record)
        if record.get("val_acc") is None or self.best is None or record["val_acc"] > self.best["val_acc"]:
            self.best = {k: record.get(k) for k in ("epoch", "val_loss", "val_acc")} | {"checkpoint": "best.pt"}
            self._save(epoch + 1, 0, None, best=True)
        else:
            self._save(epoch + 1, 0, None)
        return record

    def _check(self, pending: list[tuple[int, Tensor]], stop: _StopRequest) -> tuple[int | None, bool]:
        """(first step with a non-finite loss or None, whether to stop now), agreed by all processes."""
        losses = torch.stack([loss for _, loss in pending]).float()
        finite = torch.isfinite(losses)
        flags = torch.tensor([0.0 if bool(finite.all()) else 1.0, 1.0 if stop.requested else 0.0],
                             device=self.device)
        flags = _all_sum(flags)
        bad_step = None
        if flags[0] > 0:
            bad = (~finite).nonzero()
            bad_step = pending[int(bad[0])][0] if len(bad) else pending[-1][0]
        return bad_step, bool(flags[1] > 0)

    def _evaluations(self) -> dict[str, Any]:
        cfg, data = self.config, self.data
        common = dict(num_classes=data.num_classes, batch_size=cfg["eval_batch_size"], device=self.device,
                      precision=self.precision, channels_last=cfg["channels_last"])
        out: dict[str, Any] = {}
        if self.train_eval is not None:
            m = evaluate_tensors(self.raw_model, *self.train_eval, data.mean, data.std, **common)
            out |= {"train_eval_loss": m["loss"], "train_eval_acc": m["accuracy"]}
        if len(data.val_y):
            m = evaluate_tensors(self.raw_model, data.val_x, data.val_y, data.mean, data.std, **common)
            out |= {"val_loss": m["loss"], "val_acc": m["accuracy"]}
        else:
            out |= {"val_loss": None, "val_acc": None}
        return out

    # --- saving --------------------------------------------------------------------------------------------------

    def _payload(self, epoch: int, batch: int, partial: dict | None, status: str) -> dict[str, Any]:
        data = self.data
        return {
            "model_spec": self.config["model"],
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {
                "schedule": self.config["schedule"],
                "step": epoch * self.steps_per_epoch + batch,
                "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps,
            },
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "epoch": epoch,
            "batch": batch,
            "partial": partial,
            "rng": _rng_state(),
            "mean": list(data.mean),
            "std": list(data.std),
            "classes": list(data.classes),
            "image_size": list(data.image_size),
            "config": self.config,
            "data": data.describe(),
            "history": self.history,
            "best": self.best,
            "provenance": self.provenance,
            "status": status,
        }

    def _save(self, epoch: int, batch: int, partial: dict | None, best: bool = False,
              status: str | None = None) -> None:
        """last.pt (and best.pt) and results.json; process 0 only."""
        if self.out_dir is None or not self.dist.is_main:
            return
        finished = epoch >= self.config["epochs"] and batch == 0
        status = status or ("finished" if finished else "running")
        payload = self._payload(epoch, batch, partial, status)
        save_checkpoint(payload, self.out_dir / "last.pt")
        if best:
            save_checkpoint(payload, self.out_dir / "best.pt")
        self._history(status).to_json(self.out_dir / "results.json")

    def _history(self, status: str, state: dict[str, Any] | None = None) -> History:
        if state is not None:
            return History(list(state.get("history", [])), dict(state.get("config") or {}),
                           dict(state.get("provenance") or {}), state.get("best"), status)
        return History(list(self.history), dict(self.config), dict(self.provenance), self.best, status)

    def _save_interrupted(self, epoch, batch, loss_sum, correct, seen, seconds) -> None:
        """Ctrl-C between two steps: save the exact position (fast pipeline) and stop."""
        saved = False
        if self.config["pipeline"] == "fast" and self.out_dir is not None:
            # The epoch's sums so far, over all processes: the resumed epoch adds up to the uninterrupted one.
            sums = _all_sum(torch.stack([loss_sum, correct.double(),
                                         torch.tensor(float(seen), dtype=torch.float64, device=self.device)]))
            partial = {"loss_sum": float(sums[0]), "correct": int(sums[1]), "seen": int(sums[2]), "seconds": seconds}
            self._save(epoch, batch, partial, status="interrupted")
            saved = True
        raise TrainingInterrupted(self._interrupted_message(saved, epoch, batch))

    def _interrupted_message(self, saved: bool, epoch: int | None = None, batch: int | None = None) -> str:
        if self.out_dir is None:
            return "Training interrupted. Nothing was saved: pass out_dir (--out) to make runs resumable."
        where = self.out_dir / "last.pt"
        if saved:
            what = f"Saved the exact position (epoch {epoch + 1}, step {batch} of {self.steps_per_epoch}) to {where}."
        else:
            what = f"The last checkpoint, {where}, holds the state after epoch {len(self.history)}."
        return f"Training interrupted. {what} To continue, run {self._resume_hint()}."

    def _resume_hint(self) -> str:
        command = self.command or ""
        if "resnet_lab experiment " in command:
            return f"the same command again (finished runs are skipped, this one resumes): {command}"
        if " train " in f"{command} " and "resnet" in command:
            return f"the same command with --resume: {command}" + ("" if "--resume" in command else " --resume")
        return f"fit(..., out_dir={str(self.out_dir)!r}, resume=True) with the same arguments"

    def _fail(self, epoch: int, step: int, value: float) -> None:
        """A non-finite loss: stop with the step, the last good checkpoint and what to try."""
        if self.out_dir is not None and self.dist.is_main:
            history = self._history("failed")
            history.provenance = {**history.provenance, "failure": {"epoch": epoch + 1, "step": step, "loss": value}}
            history.to_json(self.out_dir / "results.json")
        last = f"{self.out_dir / 'last.pt'} (after epoch {len(self.history)})" if self.out_dir and self.history \
            else "none (no epoch finished)"
        raise NonFiniteLossError(
            f"The training loss became {value} at step {step} (epoch {epoch + 1}, batch "
            f"{step - epoch * self.steps_per_epoch + 1} of {self.steps_per_epoch}) with learning rate "
            f"{self.optimizer.param_groups[0]['lr']:.4g}. Training stopped; the last good checkpoint is {last}. "
            "Try a smaller learning rate (--lr), a longer warm-up (--warmup), or --precision fp32, in a new output "
            "folder."
        )


def _rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "python": list(random.getstate()[1]),
    }


def _restore_rng(state: dict[str, Any] | None) -> None:
    if not state:
        return
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if state.get("python") is not None:
        random.setstate((3, tuple(state["python"]), None))


__all__ = [
    "History",
    "NonFiniteLossError",
    "TrainingInterrupted",
    "autocast",
    "default_lr",
    "evaluate",
    "evaluate_tensors",
    "fit",
    "lr_factor",
    "make_optimizer",
    "normalize",
    "resolve_precision",
    "training_step",
]
