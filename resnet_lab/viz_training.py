"""Chapter 8's figures, drawn from data and records: images per class, augmentations, learning-rate schedules,
precise-BN curves, the spread over seeds, time to accuracy and ablations.

Like `resnet_lab.viz`, every function takes what is already in memory and returns a matplotlib Figure; nothing
here trains or reads result folders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor

from resnet_lab.models import model_label
from resnet_lab.viz import PALETTE


def _as_image(x: Tensor) -> Tensor:
    """(C, H, W) uint8 or float in [0, 1] -> (H, W, C) float for imshow."""
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    return x.clamp(0, 1).permute(1, 2, 0)


def plot_class_grid(x: Tensor, y: Tensor, classes: Sequence[str], per_class: int = 8,
                    figsize=(7.5, 8.5)) -> Figure:
    """The first `per_class` images of every class, one row per class, the class name on the left.

    The images are drawn as one mosaic (one image in the figure, not one per axes): a small file.
    """
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise TypeError(f"plot_class_grid takes uint8 images (N, C, H, W), got {x.dtype} {tuple(x.shape)}.")
    channels, height, width = x.shape[1:]
    gap = 2
    mosaic = torch.full((channels, len(classes) * (height + gap) - gap, per_class * (width + gap) - gap), 255,
                        dtype=torch.uint8)
    for row in range(len(classes)):
        index = (y == row).nonzero().flatten()[:per_class]
        for col, i in enumerate(index.tolist()):
            top, left = row * (height + gap), col * (width + gap)
            mosaic[:, top:top + height, left:left + width] = x[i]
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    ax.imshow(_as_image(mosaic), interpolation="nearest")
    ax.set_yticks([row * (height + gap) + height / 2 for row in range(len(classes))], list(classes))
    ax.set_xticks([])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig


def plot_augmentations(original: Tensor, versions: Sequence[Tensor], titles: Sequence[str] | None = None,
                       figsize=(10, 4.6)) -> Figure:
    """Each image of `original` (a row) beside its augmented versions (columns): uint8 (N, C, H, W) tensors."""
    columns = [original, *versions]
    titles = ["original", *(titles or [f"draw {i + 1}" for i in range(len(versions))])]
    fig, axes = plt.subplots(len(original), len(columns), figsize=figsize, squeeze=False)
    for col, (images, title) in enumerate(zip(columns, titles)):
        for row in range(len(original)):
            ax = axes[row][col]
            ax.imshow(_as_image(images[row]), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0][col].set_title(title, fontsize=9)
    fig.subplots_adjust(wspace=0.05, hspace=0.05, left=0.01, right=0.99, top=0.92, bottom=0.01)
    return fig


def plot_schedules(schedules: Mapping[str, Sequence[float]], steps_per_epoch: int, figsize=(10, 3.6)) -> Figure:
    """Learning rate against epoch for each named schedule (one value per step)."""
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    for (name, rates), color in zip(schedules.items(), PALETTE):
        ax.plot([s / steps_per_epoch for s in range(len(rates))], rates, color=color, label=name, lw=2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return fig


def _lr_axis(ax, epochs: Sequence[int], rates: Sequence[float]):
    twin = ax.twinx()
    twin.plot(epochs, rates, ":", color="grey", lw=1.5, label="learning rate")
    twin.set_ylabel("learning rate (dotted)", color="grey")
    twin.tick_params(axis="y", colors="grey")
    twin.set_ylim(0, max(rates) * 1.1)
    return twin


def plot_precise_bn(sweep_run: Mapping[str, Any], record: Mapping[str, Any], figsize=(11, 4.2)) -> Figure:
    """Left: a depth-sweep run's training error per epoch (running BN statistics only). Right: the precise-BN run,
    its training and validation error with the running statistics and with recomputed ones."""
    fig, (left, right) = plt.subplots(1, 2, figsize=figsize, constrained_layout=True)
    e = sweep_run["epochs"]
    x = [r["epoch"] for r in e]
    left.plot(x, [100 * r["train_eval_err"] for r in e], "-o", ms=3, color=PALETTE[1],
              label="training error, running statistics")
    _lr_axis(left, x, [r["lr"] for r in e])
    left.set_title(f"depth sweep: {model_label(sweep_run['model'])}, {len(e)} epochs")
    e = record["epochs"]
    x = [r["epoch"] for r in e]
    right.plot(x, [100 * r["train_eval_err"] for r in e], "-o", ms=3, color=PALETTE[1],
               label="training, running statistics")
    right.plot(x, [100 * r["train_eval_err_precise"] for r in e], "-s", ms=3, color=PALETTE[0],
               label="training, precise BN")
    right.plot(x, [100 * r["val_err"] for r in e], "--", color=PALETTE[1], alpha=0.6,
               label="validation, running statistics")
    right.plot(x, [100 * r["val_err_precise"] for r in e], "--", color=PALETTE[0], alpha=0.6,
               label="validation, precise BN")
    _lr_axis(right, x, [r["lr"] for r in e])
    right.set_title(f"this chapter's run: {model_label(record['model'])}, {len(e)} epochs")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.set_ylabel("error (%)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8, loc="upper right")
    return fig


def plot_seed_spread(runs: Sequence[Mapping[str, Any]], figsize=(11, 3.8)) -> Figure:
    """Left: validation error per epoch, one line per seed. Right: the final errors as dots, with their mean."""
    fig, (left, right) = plt.subplots(1, 2, figsize=figsize, constrained_layout=True,
                                      gridspec_kw={"width_ratios": [2, 1]})
    finals = []
    for run in runs:
        e = run["epochs"]
        left.plot([r["epoch"] for r in e], [100 * r["val_err"] for r in e], "-", color=PALETTE[2], alpha=0.6)
        finals.append(100 * run["final"]["val_err"])
    left.set_xlabel("epoch")
    left.set_ylabel("validation error (%)")
    left.set_title(f"{len(runs)} seeds, one line each")
    left.grid(alpha=0.3)
    right.plot(finals, [0] * len(finals), "o", color=PALETTE[2], alpha=0.7, ms=9)
    mean = sum(finals) / len(finals)
    right.axvline(mean, color="black", lw=1, label=f"mean {mean:.2f}%")
    right.set_yticks([])
    right.set_xlabel("final validation error (%)")
    right.set_title("where each seed ends")
    right.legend(frameon=False)
    right.grid(alpha=0.3, axis="x")
    return fig


def plot_time_to_accuracy(epochs: Sequence[Mapping[str, Any]], label: str, figsize=(8, 3.6)) -> Figure:
    """Validation accuracy (%) against wall-clock minutes, from a run's per-epoch records."""
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    elapsed, minutes = 0.0, []
    for e in epochs:
        elapsed += e["seconds"]
        minutes.append(elapsed / 60)
    ax.plot(minutes, [100 * e["val_acc"] for e in epochs], "-o", color=PALETTE[0], label=label)
    ax.set_xlabel("wall-clock time (minutes)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, loc="lower right")
    return fig


def plot_ablations(summary: Mapping[str, Mapping[str, Any]], default: Mapping[str, Any],
                   labels: Mapping[str, str] | None = None, figsize=(8, 3.6)) -> Figure:
    """Final validation error (%) of every seed of the default recipe and of each variant (dots), with their means
    (bars). summary: `ablation_summary(...)`; default: the seed spread's `spread_summary(...)`."""
    labels = labels or {}
    rows = [("default recipe", default["val_err_%"], default["mean"])] + [
        (labels.get(name, name), row["val_err_%"], row["mean"]) for name, row in summary.items()]
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    for i, (_, errors, mean) in enumerate(rows):
        color = PALETTE[2] if i == 0 else PALETTE[0]
        ax.barh(i, mean, color=color, alpha=0.35, height=0.6)
        ax.plot(errors, [i] * len(errors), "o", color=color, ms=5, label="one seed" if i <= 1 else None)
    ax.axvline(default["mean"], color=PALETTE[2], lw=1, ls="--", label="mean of the default recipe")
    ax.set_yticks(range(len(rows)), [name for name, _, _ in rows])
    ax.invert_yaxis()
    low = min(min(errors) for _, errors, _ in rows)
    high = max(max(errors) for _, errors, _ in rows)
    ax.set_xlim(max(0.0, low - 5), min(100.0, high + 5))
    ax.set_ylabel("recipe")
    ax.set_xlabel("final validation error (%); bars: the mean over seeds")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(frameon=False, loc="lower right", fontsize=8)
    return fig


__all__ = ["plot_ablations", "plot_augmentations", "plot_class_grid", "plot_precise_bn", "plot_schedules",
           "plot_seed_spread", "plot_time_to_accuracy"]
