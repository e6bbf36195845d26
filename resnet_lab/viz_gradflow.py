"""Figures and the widget of chapter 5 (gradient flow), drawn from the records of `resnet_lab.gradflow`,
`resnet_lab.shattered` and the gradient-flow experiment. No measurement happens here."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from resnet_lab.gradflow import GradientProfile
from resnet_lab.viz import PALETTE, _depth_colors, _label_and_depth, _times

KIND_STYLE = {  # shattered-gradient network kinds: colour and label
    "plain": (PALETTE[1], "plain, no BN"),
    "plain-bn": (PALETTE[3], "plain + BN"),
    "resnet": (PALETTE[0], "residual, no BN"),
    "resnet-bn": (PALETTE[2], "residual + BN"),
}


def _style(label: str, depth: int | None, colors: dict[int, str], index: int) -> dict[str, Any]:
    plain = label.startswith("plain")
    color = colors[depth] if depth is not None else PALETTE[index % len(PALETTE)]
    return {"color": color, "linestyle": "-" if plain else "--", "lw": 1.8 if plain else 2.2}


def plot_profiles_by_norm(rows: Sequence[dict[str, Any]], figsize=(10, 4.4)) -> Figure:
    """Gradient norm per block at initialization, with BN (left) and without (right); rows as in init.json."""
    if not rows:
        raise ValueError("no profiles to plot: pass the rows of init_profiles(...) or of init.json.")
    depths = [_label_and_depth(r["model"])[1] for r in rows]
    colors = _depth_colors(depths)
    fig, axes = plt.subplots(1, 2, figsize=figsize, sharey=True, constrained_layout=True)
    for index, (row, depth) in enumerate(zip(rows, depths)):
        ax = axes[0 if row["batch_norm"] else 1]
        norms = row["unit_norms"]
        name = _label_and_depth(row["model"])[0]
        ax.plot(range(1, len(norms) + 1), norms, label=f"{name}: {_times(norms[0] / norms[-1])}",
                **_style(row["model"], depth, colors, index))
    for ax, title in zip(axes, ("with batch normalization", "without batch normalization")):
        ax.set_yscale("log")
        ax.set_xlabel("block (1 = next to the input)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8, title="first block / last block", title_fontsize=8)
    axes[0].set_ylabel("per-image gradient norm at the block's output")
    fig.suptitle("Gradients at initialization (solid: plain, dashed: residual)", fontsize=10)
    return fig


def plot_chain_growth(measured: dict[str, list[float]], predicted: dict[str, float], figsize=(6.4, 4.2)) -> Figure:
    """Measured gradient norm per block of toy chains (points) against the predicted growth (lines).

    measured: label -> norms from `chain_gradient_norms` (block 1 first); predicted: label -> growth per block.
    """
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    for index, (label, norms) in enumerate(measured.items()):
        color = PALETTE[index % len(PALETTE)]
        depth = len(norms)
        blocks = range(1, depth + 1)
        ax.plot(blocks, norms, "o", ms=4, color=color, label=f"{label}: measured")
        ax.plot(blocks, [norms[-1] * predicted[label] ** (depth - b) for b in blocks], "-", color=color, lw=1.2,
                label=f"{label}: predicted, {predicted[label]:.3f} per block")
    ax.set_yscale("log")
    ax.set_xlabel("block (1 = next to the input)")
    ax.set_ylabel("gradient norm at the block's output")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    return fig


def plot_growth_during_training(runs: Sequence[dict[str, Any]], figsize=(10, 4.2)) -> Figure:
    """Left: first-block / last-block gradient ratio against the training step, one line per run.
    Right: the learning rate of the same steps. runs: train_<model>.json records (or the same dicts, live)."""
    if not runs:
        raise ValueError("no runs to plot: pass train_<model>.json records.")
    depths = [_label_and_depth(r["model"])[1] for r in runs]
    colors = _depth_colors(depths)
    fig, (left, right) = plt.subplots(1, 2, figsize=figsize, constrained_layout=True,
                                      gridspec_kw={"width_ratios": [2, 1]})
    for index, (run, depth) in enumerate(zip(runs, depths)):
        steps = [r["step"] for r in run["records"]]
        growth = [r["unit_norms"][0] / r["unit_norms"][-1] for r in run["records"]]
        style = _style(run["model"], depth, colors, index)
        left.plot(steps, growth, label=_label_and_depth(run["model"])[0], **style)
        right.plot(steps, [r["lr"] for r in run["records"]], **style)
    left.set_yscale("log")
    left.set_xlabel("training step (batches of 128 images)")
    left.set_ylabel("gradient norm, first block / last block")
    left.axhline(1, color="0.5", lw=0.8)
    left.grid(alpha=0.3)
    left.legend(frameon=False, fontsize=9)
    right.set_xlabel("training step")
    right.set_ylabel("learning rate")
    right.set_title("the schedule's warm-up", fontsize=10)
    right.grid(alpha=0.3)
    return fig


def plot_profile_frame(run: dict[str, Any], index: int, ylim: tuple[float, float] | None = None,
                       figsize=(6.4, 3.6)) -> Figure:
    """The gradient profile of one measurement of a run (its `records[index]`), with the initial one in grey."""
    record, first = run["records"][index], run["records"][0]
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    blocks = range(1, len(record["unit_norms"]) + 1)
    ax.plot(blocks, first["unit_norms"], color="0.7", lw=1.5, label="step 0 (initialization)")
    ax.plot(blocks, record["unit_norms"], color=PALETTE[2], lw=2, label=f"step {record['step']}")
    ax.set_yscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel("block (1 = next to the input)")
    ax.set_ylabel("gradient norm at block output")
    ax.set_title(f"{_label_and_depth(run['model'])[0]}, step {record['step']} (epoch {record['epoch'] + 1}), "
                 f"lr {record['lr']:.3g}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8, loc="upper right")
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=60)
    plt.close(fig)
    return buffer.getvalue()


def profile_slider(run: dict[str, Any], frames: int = 12):
    """A slider over precomputed pictures of the run's gradient profile during training (an ipywidgets box).

    The pictures are PNG `Image` widgets in a `Stack` (ipywidgets 8) whose `selected_index` is linked to the
    slider in the browser (`jslink`), so the widget works from its saved state, with no Python kernel: in the
    built book too. ipywidgets 7 (Colab) has no Stack: there the pictures sit in a `Tab` linked the same way.
    """
    import ipywidgets as widgets

    records = run["records"]
    if not records:
        raise ValueError("the run has no records: was it trained with a GradientFlowRecorder?")
    picks = sorted({round(i * (len(records) - 1) / max(frames - 1, 1)) for i in range(frames)})
    values = [v for r in records for v in r["unit_norms"]]
    ylim = (min(values) / 1.5, max(values) * 1.5)
    images = [widgets.Image(value=_png(plot_profile_frame(run, i, ylim)), format="png") for i in picks]
    stack_type = getattr(widgets, "Stack", None)
    pages = stack_type(images, selected_index=0) if stack_type is not None else widgets.Tab(images)
    if stack_type is None:
        for page, i in enumerate(picks):
            pages.set_title(page, f"step {records[i]['step']}")
    slider = widgets.IntSlider(value=0, min=0, max=len(picks) - 1, description="measurement",
                               continuous_update=True)
    widgets.jslink((slider, "value"), (pages, "selected_index"))
    return widgets.VBox([slider, pages])


def plot_init_vs_trained(initial: Sequence[GradientProfile], trained: Sequence[GradientProfile],
                         figsize=(10, 4.2)) -> Figure:
    """Gradient norm per block at initialization (left) and after training (right), same networks."""
    fig, axes = plt.subplots(1, 2, figsize=figsize, sharey=True, constrained_layout=True)
    for ax, profiles, title in zip(axes, (initial, trained), ("at initialization", "after 30 epochs")):
        depths = [_label_and_depth(p.label)[1] for p in profiles]
        colors = _depth_colors(depths)
        for index, (p, depth) in enumerate(zip(profiles, depths)):
            norms = list(p.unit_norms.values())
            ax.plot(range(1, len(norms) + 1), norms, label=f"{_label_and_depth(p.label)[0]}: {_times(p.growth)}",
                    **_style(p.label, depth, colors, index))
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("block (1 = next to the input)")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8, title="first block / last block", title_fontsize=8)
    axes[0].set_ylabel("per-image gradient norm at the block's output")
    return fig


def plot_shattered(record: dict[str, Any], depths: Sequence[int] | None = None, figsize=(10, 6.4)) -> Figure:
    """Top: df/dx along the line for one network of each kind at the deepest depth. Bottom: the autocorrelation
    at lag 1 against depth, and the whole autocorrelation curve at the deepest depth. record: shattered.json."""
    curves = record["curves"]
    depths = sorted({c["depth"] for c in curves}) if depths is None else list(depths)
    deepest = depths[-1]
    fig = plt.figure(figsize=figsize, constrained_layout=True)
    grid = fig.add_gridspec(2, 4)
    for column, kind in enumerate(KIND_STYLE):
        ax = fig.add_subplot(grid[0, column])
        curve = next(c for c in curves if c["kind"] == kind and c["depth"] == deepest)
        color, label = KIND_STYLE[kind]
        ax.plot(record["x"], curve["example_gradient"], color=color, lw=0.9)
        ax.set_title(f"{label}, depth {deepest}", fontsize=9)
        ax.set_xlabel("input x")
        if column == 0:
            ax.set_ylabel("df/dx")
        ax.tick_params(labelsize=7)
    lag1 = fig.add_subplot(grid[1, :2])
    full = fig.add_subplot(grid[1, 2:])
    for kind, (color, label) in KIND_STYLE.items():
        kind_curves = sorted((c for c in curves if c["kind"] == kind and c["depth"] in depths),
                             key=lambda c: c["depth"])
        lag1.plot([c["depth"] for c in kind_curves], [c["autocorrelation"][1] for c in kind_curves], "o-",
                  color=color, label=label)
        deep = kind_curves[-1]["autocorrelation"]
        full.plot(range(len(deep)), deep, color=color, label=label)
    lag1.set_xlabel("depth (hidden blocks)")
    lag1.set_ylabel("autocorrelation at lag 1")
    lag1.set_ylim(-0.1, 1.05)
    lag1.grid(alpha=0.3)
    lag1.legend(frameon=False, fontsize=8)
    full.set_xlabel("lag (points of the line, 4/255 apart)")
    full.set_ylabel(f"autocorrelation, depth {deepest}")
    full.axhline(0, color="0.5", lw=0.8)
    full.grid(alpha=0.3)
    return fig


__all__ = [
    "KIND_STYLE", "plot_chain_growth", "plot_growth_during_training", "plot_init_vs_trained",
    "plot_profile_frame", "plot_profiles_by_norm", "plot_shattered", "profile_slider",
]
