"""Training: `fit(model, data, config)` trains a network with the recipe in a `TrainConfig` and returns its History.

The loop, top to bottom: set the learning rate from the schedule, take one SGD step, tell the callbacks, check
that the loss is finite and whether anyone asked to stop; after each epoch evaluate, check that the validation
loss and the weights are finite, save `last.pt` / `best.pt` / `results.json` (atomically) and tell the callbacks.

With `out_dir`, the folder is locked for the run, and `resume=True` continues exactly where the last checkpoint
stopped. Ctrl-C or SIGTERM finishes the current step, saves the exact position and explains how to resume. Under
`torchrun` the same call trains with DistributedDataParallel: every process gets a slice of each batch, process 0
alone writes.
"""

from __future__ import annotations

import contextlib
import copy
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from resnet_lab.augment import make_augment
from resnet_lab.callbacks import Callback, ProgressBar, Step
from resnet_lab.checkpoint import save_checkpoint
from resnet_lab.config import TrainConfig
from resnet_lab.data import DataError, ImageData, derive_seed, load_data, train_eval_subset
from resnet_lab.evaluate import evaluate_tensors
from resnet_lab.files import RunLock
from resnet_lab.history import History
from resnet_lab.loaders import BatchLoader, classic_loader
from resnet_lab.optim import ParamGroups, describe_groups, lr_factor, make_optimizer, set_learning_rate
from resnet_lab.provenance import provenance
from resnet_lab.resume import check_out_dir, load_resume_state, restore_rng, rng_state, state_is_finite
from resnet_lab.runtime import all_sum, autocast, is_main_process, resolve_precision, start_distributed


class NonFiniteLossError(RuntimeError):
    """The training loss, the validation loss or the weights became NaN or infinite; the message says what to try.
    `where` holds what failed and when (reason, epoch, step, loss), as results.json records it."""

    def __init__(self, message: str, where: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.where = dict(where or {})


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during fit: the state was saved (when possible) and the message says how to resume."""

    def __init__(self, message: str, signal_name: str = "SIGINT") -> None:
        super().__init__(message)
        self.signal_name = signal_name


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


class StopRequest:
    """While active, the first Ctrl-C (SIGINT) or SIGTERM asks training to stop after the current step; a second
    one stops at once. Stopping between steps keeps weights, optimizer and BN statistics consistent for saving."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal_name is not None:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        print(f"\n{self.signal_name}: stopping after this step to save a checkpoint (send it again to stop at "
              "once)...", flush=True)

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}


class _EpochSums:
    """Loss, correct predictions, images and seconds of the epoch so far (carried over from an interrupted one)."""

    def __init__(self, partial: dict[str, Any] | None, carry: bool, device: torch.device) -> None:
        # The saved sums of an interrupted epoch are totals over all processes: process 0 alone carries them on.
        partial = partial or {}
        self.loss_sum = torch.tensor(partial.get("loss_sum", 0.0) if carry else 0.0, dtype=torch.float64,
                                     device=device)
        self.correct = torch.tensor(partial.get("correct", 0) if carry else 0, dtype=torch.int64, device=device)
        self.seen = partial.get("seen", 0) if carry else 0
        self.seconds_before = partial.get("seconds", 0.0)
        self.started = time.perf_counter()

    def add(self, loss: Tensor, logits: Tensor, y: Tensor) -> None:
        self.loss_sum += loss.double() * len(y)
        self.correct += (logits.argmax(1) == y).sum()
        self.seen += len(y)

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started

    def totals(self) -> dict[str, Any]:
        """The sums over all processes: loss_sum, correct, seen, seconds."""
        seen = torch.tensor(float(self.seen), dtype=torch.float64, device=self.loss_sum.device)
        sums = all_sum(torch.stack([self.loss_sum, self.correct.double(), seen]))
        return {"loss_sum": float(sums[0]), "correct": int(sums[1]), "seen": int(sums[2]), "seconds": self.seconds()}


class Trainer:
    """One training run: the model on its device, optimizer, loader, schedule, history and position.

    `fit` builds it and calls `run()`. Callbacks receive it: `model`, `optimizer`, `config`, `history`, `device`
    and `request_stop(reason)` are for them.
    """

    def __init__(self, model: nn.Module, data: ImageData, config: TrainConfig, *, state: dict[str, Any] | None,
                 out_dir: Path | None, callbacks: Sequence[Callback], param_groups: ParamGroups | None,
                 progress: bool, device: torch.device | str | None, command: str | None) -> None:
        self.data, self.config, self.out_dir, self.command = data, config, out_dir, command
        self.spec = copy.deepcopy(getattr(model, "spec", None))
        self.mean = tuple(config.mean) if config.mean is not None else tuple(data.mean)
        self.std = tuple(config.std) if config.std is not None else tuple(data.std)
        self.dist, self.device = start_distributed(device)
        self.precision = resolve_precision(config.precision, self.device)
        memory_format = torch.channels_last if config.channels_last else torch.preserve_format
        self.model = model.to(self.device, memory_format=memory_format)
        self.optimizer = make_optimizer(self.model, config, param_groups)
        self.custom_groups = param_groups is not None
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.loader = self._train_loader()
        self.steps_per_epoch = len(self.loader)
        self.total_steps = config.epochs * self.steps_per_epoch
        self.warmup_steps = round(config.warmup * self.steps_per_epoch)
        self.train_eval = train_eval_subset(data, config.train_eval_size) if config.train_eval_size else None
        # CUDA: check the loss every few steps so that the GPU never waits for the CPU; CPU: every step.
        self.check_every = 20 if self.device.type == "cuda" else 1
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.start_epoch, self.start_batch, self.partial = 0, 0, None
        self.stop_signal = StopRequest()
        self.stop_reason: str | None = None
        bar = [ProgressBar(every=self.check_every)] if progress and self.dist.is_main else []
        self.callbacks = bar + list(callbacks)
        if state is not None:
            self._restore(state)
        self.provenance = self._provenance(state)
        self.net = self._wrap(self.model)

    # --- set-up ----------------------------------------------------------------------------------------------------

    def _train_loader(self) -> BatchLoader | torch.utils.data.DataLoader:
        c, d = self.config, self.data
        if c.pipeline == "classic":
            return classic_loader(d.train_x, d.train_y, self.mean, self.std, batch_size=c.batch_size, train=True,
                                  crop_padding=c.crop_padding, flip=c.flip, cutout=c.cutout,
                                  num_workers=c.num_workers, seed=c.seed)
        augment = make_augment(c.augment, crop_padding=c.crop_padding, flip=c.flip, cutout=c.cutout,
                               image_size=d.image_size)
        return BatchLoader(d.train_x, d.train_y, self.mean, self.std, batch_size=c.batch_size, augment=augment,
                           seed=c.seed, device=self.device, channels_last=c.channels_last, rank=self.dist.rank,
                           world_size=self.dist.world_size)

    def _restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint: weights, optimizer, scaler, history, position and random states."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        self.history = list(state.get("history", []))
        self.best = state.get("best")
        self.start_epoch, self.start_batch, self.partial = state["epoch"], state.get("batch", 0), state.get("partial")
        restore_rng(state.get("rng"))

    def _provenance(self, state: dict[str, Any] | None) -> dict[str, Any]:
        """A new run's provenance, or the saved one with this resumption added to its `resumed` list."""
        if not self.dist.is_main:
            return {}
        if state is None or not state.get("provenance"):
            extra = {"param_groups": describe_groups(self.optimizer)} if self.custom_groups else {}
            return provenance(command=self.command, seed=self.config.seed, data=self.data.describe(),
                              device=self.device, precision=self.precision, world_size=self.dist.world_size, **extra)
        record = dict(state["provenance"])
        now = provenance(command=self.command, device=self.device)
        keep = ("command", "date", "device", "cpu_model", "git_commit")
        record["resumed"] = [*record.get("resumed", []), {k: now[k] for k in keep} | {"epoch": self.start_epoch}]
        return record

    def _wrap(self, model: nn.Module) -> nn.Module:
        net = model
        if self.dist.world_size > 1:
            ids = [self.device] if self.device.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        return torch.compile(net) if self.config.compile else net

    # --- the run ---------------------------------------------------------------------------------------------------

    def request_stop(self, reason: str = "a callback asked") -> None:
        """Stop after the current step (saving the exact position): the run ends with status "stopped"."""
        self.stop_reason = reason

    def run(self) -> History:
        """Train the remaining epochs; returns the History (status "finished" or "stopped")."""
        status = "interrupted"
        try:
            with self.stop_signal:
                for callback in self.callbacks:
                    callback.on_train_start(self)
                for epoch in range(self.start_epoch, self.config.epochs):
                    if self.stop_reason is not None:  # asked before this epoch (e.g. by a callback at the start)
                        break
                    self._train_epoch(epoch)
            status = "stopped" if self.stop_reason is not None else "finished"
            if status == "stopped":
                self._write_results(status)
        except KeyboardInterrupt as interrupt:  # a second Ctrl-C: stop at once, nothing saved mid-step
            if isinstance(interrupt, TrainingInterrupted):
                raise
            raise TrainingInterrupted(self._interrupted_message(saved=False),
                                      self.stop_signal.signal_name or "SIGINT") from None
        finally:
            for callback in self.callbacks:
                callback.on_train_end(self, status)
            if self.dist.started_here:
                dist.destroy_process_group()
        return self._history(status)

    def _train_epoch(self, epoch: int) -> None:
        """Train one epoch (from the saved step when resuming inside it), then evaluate and save."""
        config, device = self.config, self.device
        first = self.start_batch if epoch == self.start_epoch else 0
        sums = _EpochSums(self.partial if epoch == self.start_epoch else None, self.dist.is_main, device)
        self.net.train()
        for callback in self.callbacks:
            callback.on_epoch_start(self, epoch)
        pending: list[tuple[int, Tensor]] = []
        with self._epoch_batches(epoch, first) as batches:
            for batch, (x, y) in enumerate(batches, start=first):
                step = epoch * self.steps_per_epoch + batch
                lr = config.peak_lr * lr_factor(step, self.total_steps, config.schedule, self.warmup_steps)
                set_learning_rate(self.optimizer, lr)
                x, y = self._to_device(x, y)
                loss, logits = training_step(self.net, self.optimizer, self.scaler, x, y, device=device,
                                             precision=self.precision, label_smoothing=config.label_smoothing)
                sums.add(loss, logits, y)
                pending.append((step, loss))
                for callback in self.callbacks:
                    callback.on_step_end(self, Step(epoch, batch, step, x, y, loss, logits, lr))
                if len(pending) >= self.check_every or batch == self.steps_per_epoch - 1:
                    if self._check(epoch, pending):  # someone asked to stop
                        self._stop_inside_epoch(epoch, batch + 1, sums)
                        return
                    pending = []
        self._end_epoch(epoch, sums)

    @contextlib.contextmanager
    def _epoch_batches(self, epoch: int, first: int) -> Iterator[Any]:
        """The epoch's batches from batch `first`. The fast loader's randomness depends on (seed, epoch, batch)
        alone; the classic one restarts its epoch from its own seeded generators, away from the global ones."""
        if isinstance(self.loader, BatchLoader):
            self.loader.set_epoch(epoch, first)
            yield self.loader
            return
        if first:
            raise RuntimeError("The classic pipeline cannot resume inside an epoch.")  # it saves at epoch ends only
        self.loader.generator.manual_seed(derive_seed(self.config.seed, "shuffle", epoch))
        with torch.random.fork_rng(devices=[]):  # transforms in this process draw from torch's global generator
            torch.manual_seed(derive_seed(self.config.seed, "classic-augment", epoch))
            yield self.loader

    def _to_device(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if x.device == self.device:
            return x, y
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        return (x.contiguous(memory_format=torch.channels_last) if self.config.channels_last else x), y

    def _check(self, epoch: int, pending: list[tuple[int, Tensor]]) -> bool:
        """Stop with an explanation if a loss is not finite; True if a signal or a callback asked to stop.
        All processes take the same decision."""
        losses = torch.stack([loss for _, loss in pending]).float()
        finite = torch.isfinite(losses)
        stop = self.stop_signal.signal_name is not None or self.stop_reason is not None
        flags = all_sum(torch.tensor([0.0 if bool(finite.all()) else 1.0, float(stop)], device=self.device))
        if flags[0] > 0:
            bad = (~finite).nonzero()
            i = int(bad[0]) if len(bad) else len(pending) - 1
            step = pending[i][0]
            where = f"step {step} (epoch {epoch + 1}, batch {step - epoch * self.steps_per_epoch + 1} of " \
                    f"{self.steps_per_epoch})"
            value = float(pending[i][1])
            self._fail(f"The training loss became {value} at {where}", epoch=epoch + 1, step=step, loss=value)
        return bool(flags[1] > 0)

    def _end_epoch(self, epoch: int, sums: _EpochSums) -> None:
        """Record the epoch, evaluate, refuse a diverged state, save (and best.pt when it is the best so far)."""
        totals = sums.totals()
        last_step = (epoch + 1) * self.steps_per_epoch - 1
        record = {
            "epoch": epoch + 1,
            "train_loss": totals["loss_sum"] / totals["seen"],
            "train_acc": totals["correct"] / totals["seen"],
            "lr": self.config.peak_lr * lr_factor(last_step, self.total_steps, self.config.schedule,
                                                  self.warmup_steps),
            "train_seconds": totals["seconds"],
            "images_per_s": totals["seen"] / totals["seconds"],
        }
        record.update(self._evaluations())
        record["seconds"] = sums.seconds()
        self._check_state(f"after epoch {epoch + 1}", record.get("val_loss"))
        self.history.append(record)
        best = record.get("val_acc") is None or self.best is None or record["val_acc"] > self.best["val_acc"]
        if best:
            self.best = {k: record.get(k) for k in ("epoch", "val_loss", "val_acc")} | {"checkpoint": "best.pt"}
        self._save(epoch + 1, 0, None, best=best)
        for callback in self.callbacks:
            callback.on_epoch_end(self, record)

    def _evaluations(self) -> dict[str, Any]:
        """Loss and accuracy on the fixed training subset (if any) and on the validation split."""
        data, config = self.data, self.config
        common = dict(num_classes=data.num_classes, batch_size=config.eval_batch_size, device=self.device,
                      precision=self.precision, channels_last=config.channels_last)
        out: dict[str, Any] = {}
        if self.train_eval is not None:
            m = evaluate_tensors(self.model, *self.train_eval, self.mean, self.std, **common)
            out |= {"train_eval_loss": m["loss"], "train_eval_acc": m["accuracy"]}
        if len(data.val_y):
            m = evaluate_tensors(self.model, data.val_x, data.val_y, self.mean, self.std, **common)
            return out | {"val_loss": m["loss"], "val_acc": m["accuracy"]}
        return out | {"val_loss": None, "val_acc": None}

    def _check_state(self, when: str, val_loss: float | None) -> None:
        """A state is saved only if the validation loss and every weight and BN statistic are finite."""
        if val_loss is not None and not torch.isfinite(torch.tensor(val_loss)):
            self._fail(f"The validation loss became {val_loss} {when}", val_loss=val_loss)
        if not state_is_finite(self.model):
            self._fail(f"The weights or batch-norm statistics (running mean and variance) became NaN or infinite "
                       f"{when}")

    # --- stopping and failing --------------------------------------------------------------------------------------

    def _stop_inside_epoch(self, epoch: int, batch: int, sums: _EpochSums) -> None:
        """A signal or a callback asked to stop between two steps: save the exact position (fast pipeline)."""
        totals = sums.totals()
        saved = self.out_dir is not None and isinstance(self.loader, BatchLoader)
        if saved:
            self._check_state(f"at step {batch} of epoch {epoch + 1}", None)
            status = "stopped" if self.stop_signal.signal_name is None else "interrupted"
            self._save(epoch, batch, totals, status=status)
        if self.stop_signal.signal_name is not None:
            raise TrainingInterrupted(self._interrupted_message(saved, epoch, batch), self.stop_signal.signal_name)
        if self.stop_reason is None:
            self.stop_reason = "another process asked"

    def _interrupted_message(self, saved: bool, epoch: int | None = None, batch: int | None = None) -> str:
        what = self.stop_signal.signal_name or "Ctrl-C"
        if self.out_dir is None:
            return f"Training interrupted ({what}). Nothing was saved: pass out_dir (--out) to make runs resumable."
        where = self.out_dir / "last.pt"
        if saved:
            done = f"Saved the exact position (epoch {epoch + 1}, step {batch} of {self.steps_per_epoch}) to {where}."
        else:
            done = f"The last checkpoint, {where}, holds the state after epoch {len(self.history)}."
        return f"Training interrupted ({what}). {done} To continue, run {self._resume_hint()}."

    def _resume_hint(self) -> str:
        command = self.command or ""
        if "resnet_lab experiment " in command:
            return f"the same command again (finished runs are skipped, this one resumes): {command}"
        if " train " in f"{command} ":
            return f"the same command with --resume: {command}" + ("" if "--resume" in command else " --resume")
        return f"fit(..., out_dir={str(self.out_dir)!r}, resume=True) with the same arguments"

    def _fail(self, what: str, **where: Any) -> None:
        """Something diverged: record the failure, stop with the last good checkpoint and what to try."""
        if self.out_dir is not None and self.dist.is_main:
            history = self._history("failed")
            history.provenance = {**history.provenance, "failure": {"reason": what, **where}}
            history.to_json(self.out_dir / "results.json")
        last = f"{self.out_dir / 'last.pt'} (after epoch {len(self.history)})" if self.out_dir and self.history \
            else "none (no epoch finished)"
        raise NonFiniteLossError(
            f"{what}, with learning rate {self.optimizer.param_groups[0]['lr']:.4g}. Training stopped; the last good "
            f"checkpoint is {last}. Try a smaller learning rate (--lr), a longer warm-up (--warmup), or --precision "
            "fp32, in a new output folder.",
            where={"reason": what, **where},
        )

    # --- saving ----------------------------------------------------------------------------------------------------

    def _payload(self, epoch: int, batch: int, partial: dict | None, status: str) -> dict[str, Any]:
        return {
            "model_spec": self.spec,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {"schedule": self.config.schedule, "step": epoch * self.steps_per_epoch + batch,
                          "total_steps": self.total_steps, "warmup_steps": self.warmup_steps},
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "epoch": epoch,
            "batch": batch,
            "partial": partial,
            "rng": rng_state(),
            "mean": list(self.mean),
            "std": list(self.std),
            "classes": list(self.data.classes),
            "image_size": list(self.data.image_size),
            "config": self._config_record(),
            "data": self.data.describe(),
            "history": self.history,
            "best": self.best,
            "provenance": self.provenance,
            "status": status,
        }

    def _config_record(self) -> dict[str, Any]:
        return {"model": self.spec, **self.config.to_dict()}

    def _save(self, epoch: int, batch: int, partial: dict | None, best: bool = False,
              status: str | None = None) -> None:
        """last.pt (and best.pt) and results.json; process 0 only."""
        if self.out_dir is None or not self.dist.is_main:
            return
        finished = epoch >= self.config.epochs and batch == 0
        status = status or ("finished" if finished else "running")
        payload = self._payload(epoch, batch, partial, status)
        save_checkpoint(payload, self.out_dir / "last.pt")
        if best:
            save_checkpoint(payload, self.out_dir / "best.pt")
        self._write_results(status)

    def _write_results(self, status: str) -> None:
        if self.out_dir is not None and self.dist.is_main:
            self._history(status).to_json(self.out_dir / "results.json")

    def _history(self, status: str) -> History:
        return History(list(self.history), self._config_record(), dict(self.provenance), self.best, status)


# ----------------------------------------------------------------------------------------------------------------
# fit


def _check_inputs(model: nn.Module, data: ImageData | str) -> ImageData:
    if isinstance(data, str):
        data = load_data(data)
    if not isinstance(data, ImageData):
        raise TypeError(f"data must be an ImageData from resnet_lab.data.load_data, got {type(data).__name__}.")
    spec = getattr(model, "spec", None) or {}
    outputs = spec.get("num_classes")
    if outputs is not None and outputs != data.num_classes:
        raise ValueError(
            f"The model has {outputs} outputs but the data has {data.num_classes} classes. Build it with "
            f"get_model({spec.get('name')!r}, num_classes={data.num_classes})."
        )
    if len(data.train_y) < 1:
        raise DataError("The training split is empty: there is nothing to train on.")
    return data


def _finished_run(model: nn.Module, state: dict[str, Any], config: TrainConfig) -> History | None:
    """A run that already trained all its epochs: its weights go into `model` and its History is returned."""
    if state["epoch"] < config.epochs or state.get("batch"):
        return None
    model.load_state_dict(state["model"])
    return History(list(state.get("history", [])), dict(state.get("config") or {}),
                   dict(state.get("provenance") or {}), state.get("best"), state.get("status", "finished"))


def fit(
    model: nn.Module,
    data: ImageData | str,
    config: TrainConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    param_groups: ParamGroups | None = None,
    progress: bool = True,
    device: torch.device | str | None = None,
    command: str | None = None,
) -> History:
    """Train `model` on `data` with the recipe `config` (default: `TrainConfig()`) and return its History.

    - model: a network from `get_model` (its `spec` is saved so that checkpoints can rebuild it).
    - data: an ImageData from `load_data`, or a source for it ("cifar10", a folder, "synthetic").
    - out_dir: folder for last.pt, best.pt and results.json, locked while the run writes; a folder that holds a
      run is never overwritten. resume=True continues the run found there exactly (a finished run returns at once).
    - callbacks: `Callback` objects called after every step and epoch (see resnet_lab.callbacks).
    - param_groups: dicts {"params": [...], "lr_scale": s}; each group's learning rate is the schedule's times s
      (discriminative fine-tuning). Default: every trainable parameter, scale 1.
    - progress: a progress bar (terminal, notebook) or one line per epoch (files).
    - command: recorded in provenance.
    """
    config = (config if config is not None else TrainConfig()).resolved()
    data = _check_inputs(model, data)
    out = Path(out_dir) if out_dir is not None else None
    if resume and out is None:
        raise ValueError("resume=True needs the out_dir of the run to resume.")
    lock = RunLock(out) if out is not None and is_main_process() else contextlib.nullcontext()
    with lock:
        state = None
        if out is not None:
            check_out_dir(out, resume)
            if resume:
                state = load_resume_state(out, config, getattr(model, "spec", None), data.describe())
                finished = _finished_run(model, state, config)
                if finished is not None:
                    return finished
        trainer = Trainer(model, data, config, state=state, out_dir=out, callbacks=callbacks,
                          param_groups=param_groups, progress=progress, device=device, command=command)
        return trainer.run()


__all__ = ["NonFiniteLossError", "Trainer", "TrainingInterrupted", "fit", "training_step"]
