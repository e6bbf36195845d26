"""Figures of chapter 9 (fine-tuning and transfer), drawn from records: histories, transfer result files, counts.

Each function takes data, draws one figure and returns it; none trains or measures anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

# One colour per method, the same in every figure of the chapter.
METHOD_COLORS = {"linear": "#1f77b4", "partial": "#2ca02c", "full": "#d62728", "gradual": "#9467bd",
                 "scratch": "#7f7f7f"}
METHOD_LABELS = {"linear": "linear probe", "partial": "partial (last stage + head)",
                 "full": "full (per-stage rates)", "gradual": "gradual unfreezing", "scratch": "from scratch"}


def plot_class_affinity(counts: Sequence[Sequence[int]], rows: Sequence[str], columns: Sequence[str],
                        title: str) -> Figure:
    """A heat map of counts[row][column] as percentages of each row (e.g. target class -> source prediction)."""
    table = np.asarray(counts, dtype=float)
    share = 100 * table / table.sum(axis=1, keepdims=True).clip(min=1)
    fig, ax = plt.subplots(figsize=(6.2, 4.6), constrained_layout=True)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=100)
    for i in range(share.shape[0]):
        for j in range(share.shape[1]):
            ax.text(j, i, f"{share[i, j]:.0f}", ha="center", va="center",
                    color="white" if share[i, j] > 60 else "black", fontsize=9)
    ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label="% of the row's images")
    return fig


def plot_live_curves(histories: Mapping[str, Any], title: str) -> Figure:
    """Validation accuracy (%) against epoch for a few live runs, one line per method."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8), constrained_layout=True)
    for method, history in histories.items():
        ax.plot(history["epoch"], [100 * a for a in history["val_acc"]], marker="o", lw=2,
                color=METHOD_COLORS.get(method), label=METHOD_LABELS.get(method, method))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    return fig


def plot_transfer_accuracy(rows: Sequence[Mapping[str, Any]], chance: float) -> Figure:
    """Final accuracy (%) against labelled images per class (log scale), mean and spread over seeds per method."""
    fig, ax = plt.subplots(figsize=(7, 4.2), constrained_layout=True)
    methods = [m for m in METHOD_COLORS if any(r["method"] == m for r in rows)]
    for k, method in enumerate(methods):
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["per_class"])
        x = np.array([r["per_class"] for r in mine]) * (1 + 0.03 * (k - len(methods) / 2))  # side by side
        y = [100 * r["mean"] for r in mine]
        err = [100 * (r["std"] or 0.0) for r in mine]
        ax.errorbar(x, y, yerr=err, marker="o", lw=2, capsize=3, color=METHOD_COLORS[method],
                    label=METHOD_LABELS[method])
    ax.axhline(100 * chance, color="black", ls=":", lw=1, label="chance")
    ax.set_xscale("log")
    per_class = sorted({r["per_class"] for r in rows})
    ax.set_xticks(per_class, [str(n) for n in per_class])
    ax.set_xlabel("labelled training images per target class (log scale)")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    return fig


def plot_transfer_curves(records: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Learning curves of the transfer experiment: one panel per labelled-set size, the seeds' mean per method."""
    runs = [r for r in records.values() if r["point"] != "pretrain"]
    sizes = sorted({r["per_class"] for r in runs})
    fig, axes = plt.subplots(1, len(sizes), figsize=(3.6 * len(sizes), 3.6), sharey=True, constrained_layout=True)
    axes = np.atleast_1d(axes)
    for ax, n in zip(axes, sizes):
        for method in METHOD_COLORS:
            mine = [r for r in runs if r["per_class"] == n and r["method"] == method]
            if not mine:
                continue
            curves = np.array([[100 * e["val_acc"] for e in r["epochs"]] for r in mine])
            ax.plot(range(1, curves.shape[1] + 1), curves.mean(axis=0), marker="o", ms=3, lw=2,
                    color=METHOD_COLORS[method], label=METHOD_LABELS[method])
        ax.set_title(f"{n} labelled images per class", fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation accuracy (%)")
    axes[-1].legend(fontsize=8)
    return fig


def plot_confusions(matrices: Mapping[str, Sequence[Sequence[int]]], classes: Sequence[str]) -> Figure:
    """Confusion matrices side by side (rows: true class, columns: predicted), as percentages of each row."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(3.4 * len(matrices), 3.5), constrained_layout=True)
    axes = np.atleast_1d(axes)
    for ax, (title, counts) in zip(axes, matrices.items()):
        table = np.asarray(counts, dtype=float)
        share = 100 * table / table.sum(axis=1, keepdims=True).clip(min=1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=100)
        for i in range(share.shape[0]):
            for j in range(share.shape[1]):
                ax.text(j, i, f"{share[i, j]:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 60 else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
        ax.set_xlabel("predicted class")
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("true class")
    return fig


__all__ = ["METHOD_COLORS", "METHOD_LABELS", "plot_class_affinity", "plot_confusions", "plot_live_curves",
           "plot_transfer_accuracy", "plot_transfer_curves"]
