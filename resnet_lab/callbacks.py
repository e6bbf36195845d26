"""Callbacks: code that runs inside `fit` after every step and every epoch, without touching the engine.

A chapter that wants gradient norms per block during training, weight snapshots, a live plot or early stopping
writes a `Callback` and passes it to `fit(..., callbacks=[...])`::

    class GradNorms(Callback):
        def on_step_end(self, trainer, step):
            self.norms.append(trainer.model.fc.weight.grad.norm().item())

Every hook receives the `Trainer` (its `model`, `optimizer`, `config`, `history` and `request_stop(reason)`).
The gradients of a step are still in the parameters' `.grad` when `on_step_end` runs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import Tensor

from resnet_lab.checks import check_int
from resnet_lab.gradflow import gradient_profile

if TYPE_CHECKING:  # only for annotations: the engine imports this module, not the other way round
    from resnet_lab.train import Trainer


@dataclass(frozen=True)
class Step:
    """What one training step saw and did: its position, batch, loss, logits and learning rate."""

    epoch: int  # 0-based
    batch: int  # 0-based, within the epoch
    step: int  # 0-based, over the whole run
    x: Tensor
    y: Tensor
    loss: Tensor  # detached; reading it with float() waits for the GPU
    logits: Tensor
    lr: float  # the schedule's rate (a group's rate is this times its lr_scale)


class Callback:
    """Hooks called by `fit`; override the ones you need (each does nothing by default)."""

    def on_train_start(self, trainer: Trainer) -> None:
        """Before the first step (also when a run resumes)."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Before the first step of `epoch` (0-based)."""

    def on_step_end(self, trainer: Trainer, step: Step) -> None:
        """After the optimizer step; gradients are still in `.grad`."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After the epoch's evaluation and checkpoint; `record` is the epoch's entry of the history."""

    def on_train_end(self, trainer: Trainer, status: str) -> None:
        """When training ends: "finished", "stopped" (a callback asked) or "interrupted"."""


def _in_notebook() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and "ipykernel" in sys.modules


def epoch_summary(r: dict[str, Any]) -> str:
    """One line of an epoch's record: training and validation loss and accuracy, lr, speed, time."""
    parts = [f"loss {r['train_loss']:.3f} acc {100 * r['train_acc']:.1f}%"]
    if r.get("val_acc") is not None:
        parts.append(f"val loss {r['val_loss']:.3f} acc {100 * r['val_acc']:.2f}%")
    parts.append(f"lr {r['lr']:.4f}  {r['images_per_s']:.0f} img/s  {r['seconds']:.0f} s")
    return " | ".join(parts)


class ProgressBar(Callback):
    """A tqdm bar per epoch in terminals and notebooks; one plain line per epoch when output goes to a file.

    every: update the bar every this many steps (reading the loss makes a GPU wait, so not every step there).
    """

    def __init__(self, every: int = 1) -> None:
        self.every = every
        self.mode = "bar" if _in_notebook() or sys.stderr.isatty() else "lines"
        self.bar = None
        self.images = 0
        self.pending = 0

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self.images, self.pending = 0, 0
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=trainer.steps_per_epoch, initial=trainer.start_batch, leave=True, unit="step",
                            desc=f"epoch {epoch + 1}/{trainer.config.epochs}", dynamic_ncols=True)

    def on_step_end(self, trainer: Trainer, step: Step) -> None:
        self.pending += 1
        self.images += len(step.y)
        if self.bar is None or (self.pending < self.every and step.batch != trainer.steps_per_epoch - 1):
            return
        self.bar.update(self.pending)
        self.pending = 0
        accuracy = float((step.logits.argmax(1) == step.y).float().mean())
        self.bar.set_postfix({"loss": f"{float(step.loss):.3f}", "acc": f"{100 * accuracy:.1f}%",
                              "lr": f"{step.lr:.4f}"}, refresh=False)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        summary = epoch_summary(record)
        if self.bar is not None:
            self.bar.set_postfix_str(summary)
            self.close()
        else:
            print(f"epoch {record['epoch']}/{trainer.config.epochs}  {summary}", flush=True)

    def on_train_end(self, trainer: Trainer, status: str) -> None:
        self.close()

    def close(self) -> None:
        """Close the open bar, if any."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class GradientFlowRecorder(Callback):
    """Gradient profiles (`resnet_lab.gradflow.gradient_profile`) on one fixed batch while a network trains.

    Measures before the first step (step 0) and after every `every` optimizer steps, with batch normalization in
    training mode as SGD sees it; the measurement restores BN's running statistics, so training is unchanged.
    `images` must be normalized as the training batches are. `records` holds one dict per measurement: step,
    epoch (0-based), learning rate and the profile's record (`GradientProfile.to_record`).
    """

    def __init__(self, images: Tensor, labels: Tensor, every: int = 20) -> None:
        check_int("every", every)
        if images.dim() != 4 or len(images) != len(labels):
            raise ValueError(f"images must be a batch (N, C, H, W) with one label each, got {tuple(images.shape)} "
                             f"and {len(labels)} labels.")
        self.images, self.labels, self.every = images, labels, every
        self.records: list[dict[str, Any]] = []

    def on_train_start(self, trainer: Trainer) -> None:
        if not self.records and trainer.start_epoch == 0 and trainer.start_batch == 0:
            self._measure(trainer, step=0, epoch=0, lr=0.0)

    def on_step_end(self, trainer: Trainer, step: Step) -> None:
        if (step.step + 1) % self.every == 0:
            self._measure(trainer, step=step.step + 1, epoch=step.epoch, lr=step.lr)

    def _measure(self, trainer: Trainer, step: int, epoch: int, lr: float) -> None:
        device = next(trainer.model.parameters()).device
        profile = gradient_profile(trainer.model, self.images.to(device), self.labels.to(device))
        self.records.append({"step": step, "epoch": epoch, "lr": lr, **profile.to_record()})


class StopAfterEpochs(Callback):
    """Stop training after `epochs` epochs of a longer schedule (the run can be resumed later)."""

    def __init__(self, epochs: int) -> None:
        check_int("epochs", epochs)
        self.epochs = epochs

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if record["epoch"] >= self.epochs:
            trainer.request_stop(f"stopped after {self.epochs} epoch(s) of {trainer.config.epochs}")


__all__ = ["Callback", "GradientFlowRecorder", "ProgressBar", "Step", "StopAfterEpochs", "epoch_summary"]
