"""Figures the book draws from result files: the depth sweep (He et al. 2016, figure 6)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from resnet_lab.experiments import load_depth_sweep

# One colour per depth, shared by both panels so that "plain-56" and "ResNet-56" are easy to pair up.
DEPTH_COLORS = {20: "#1b9e77", 32: "#d95f02", 44: "#7570b3", 56: "#e7298a", 110: "#66a61e"}


def plot_depth_sweep(sweep_dir: str | Path | None = None, figsize=(11, 4.2)) -> Figure:
    """He et al. 2016 figure 6 from our runs: training error (dashed) and validation error (solid) per epoch.

    Plain networks on the left, residual networks on the right, the same y-axis for both so that they can be
    compared at a glance. sweep_dir: a folder of depth-sweep JSON files (default: the committed results).
    """
    runs = load_depth_sweep(sweep_dir)
    if not runs:
        raise FileNotFoundError(
            f"No depth-sweep results in {sweep_dir or 'results/depth_sweep'}. Produce them with "
            "`python -m resnet_lab experiment depth-sweep --data PATH --out DIR`."
        )
    fig, axes = plt.subplots(1, 2, figsize=figsize, sharey=True, constrained_layout=True)
    for ax, family, title in zip(axes, ("plain", "resnet"), ("plain networks", "residual networks (ResNets)")):
        for run in sorted((r for r in runs if r["family"] == family), key=lambda r: r["depth"]):
            depth, epochs = run["depth"], run["epochs"]
            color = DEPTH_COLORS.get(depth)
            x = [e["epoch"] for e in epochs]
            label = f"{'plain' if family == 'plain' else 'ResNet'}-{depth}"
            ax.plot(x, [100 * e["train_eval_err"] for e in epochs], "--", color=color, lw=1.2)
            ax.plot(x, [100 * e["val_err"] for e in epochs], "-", color=color, lw=2, label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(loc="upper right", frameon=False)
        else:  # a sweep still running: say so rather than leave a blank panel
            ax.text(0.5, 0.5, "no finished runs yet", transform=ax.transAxes, ha="center", color="gray")
    axes[0].set_ylabel("error (%)")
    top = max(100 * max(e["val_err"], e["train_eval_err"]) for r in runs for e in r["epochs"][1:] or r["epochs"])
    axes[0].set_ylim(0, min(100, top * 1.05))
    fig.suptitle("CIFAR-10 (JPEG copy): dashed = training error, solid = validation error", fontsize=10)
    return fig
