"""Figures of chapters 6 and 7, drawn from the records of `experiments.block_deletion` and
`experiments.loss_landscape`, or from live records of the same form.

Each function takes records already in memory and returns a matplotlib Figure; nothing here measures anything.
A record is a dict with "baseline" ({"err", "loss"}) and "rows" (one dict per lesion, with "err"), as the
experiment writes it and as the chapter's live cells build it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from resnet_lab.ensembles import path_counts
from resnet_lab.viz import PALETTE

RESNET, PLAIN = PALETTE[1], PALETTE[2]


def plot_single_deletions(resnet: Mapping[str, Any], plain: Mapping[str, Any] | None = None,
                          figsize=(11, 4.0)) -> Figure:
    """Error after deleting each block of the ResNet (and each layer of the plain network), Veit's figure 3."""
    panels = [(resnet, "ResNet-56: one block deleted", "deleted block", RESNET)]
    if plain is not None:
        panels.append((plain, "plain-56: one layer deleted", "deleted layer", PLAIN))
    fig, axes = plt.subplots(1, len(panels), figsize=figsize, squeeze=False, sharey=True)
    for ax, (record, title, xlabel, color) in zip(axes[0], panels):
        rows = record["rows"]
        xs = list(range(1, len(rows) + 1))
        errs = [100 * r["err"] for r in rows]
        ax.plot(xs, errs, "o-", color=color, ms=4, lw=1, label="one deleted")
        down = [(x, e) for x, e, r in zip(xs, errs, rows) if r.get("downsampling")]
        if down:
            ax.plot(*zip(*down), "s", ms=9, mfc="none", mec="black", label="downsampling block")
        ax.axhline(100 * record["baseline"]["err"], color="black", ls="--", lw=1, label="intact network")
        ax.axhline(90, color="grey", ls=":", lw=1, label="chance (10 classes)")
        ax.set(title=title, xlabel=f"{xlabel} (1 = next to the input)", ylim=(0, 100))
        ax.legend(fontsize=8, loc="center right")
    axes[0][0].set_ylabel("validation error (%)")
    fig.tight_layout()
    return fig


def _by_k(rows: Sequence[Mapping[str, Any]]) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for r in rows:
        out.setdefault(r["k"], []).append(100 * r["err"])
    return dict(sorted(out.items()))


def plot_random_lesions(curves: Mapping[str, Mapping[str, Any]], figsize=(11, 4.0)) -> Figure:
    """Error against k blocks deleted (left) and k pairs swapped (right), Veit's figure 5; each draw a dot.

    curves: label -> record, where a record's rows carry "deleted" (deletions) or "swapped" (reorderings).
    """
    fig, axes = plt.subplots(1, 2, figsize=figsize, sharey=True)
    for label, record in curves.items():
        ax = axes[1] if "swapped" in record["rows"][0] else axes[0]
        color = PLAIN if label.lower().startswith("plain") else RESNET
        by_k = _by_k(record["rows"])
        ks = [0, *by_k]
        means = [100 * record["baseline"]["err"], *[sum(v) / len(v) for v in by_k.values()]]
        ax.plot(ks, means, "-", color=color, label=f"{label} (mean of draws)")
        for k, values in by_k.items():
            ax.plot([k] * len(values), values, "o", color=color, ms=3, alpha=0.6)
    axes[0].set(title="k random blocks deleted", xlabel="blocks deleted, k", ylabel="validation error (%)",
                ylim=(0, 100))
    axes[1].set(title="k random pairs of blocks swapped", xlabel="pairs swapped, k")
    for ax in axes:
        ax.axhline(90, color="grey", ls=":", lw=1, label="chance (10 classes)")
        ax.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    return fig


def plot_path_gradients(paths: Mapping[str, Any], figsize=(11, 3.6)) -> Figure:
    """Veit's figure 6: (a) how many paths have each length, (b) the gradient one path of each length carries,
    (c) the two multiplied: the total gradient by path length, with the range that carries 90 % of it."""
    n = paths["blocks"]
    norms = {int(k): v for k, v in paths["norms"].items()}
    totals = {int(k): t for k, t in paths["totals"].items()}
    counts = path_counts(n)
    fig, axes = plt.subplots(1, 3, figsize=figsize)
    axes[0].bar(range(n + 1), counts, color=PALETTE[0])
    axes[0].set(title="(a) number of paths", xlabel="path length (residual branches)", ylabel="paths")
    ks = sorted(norms)
    means = [sum(norms[k]) / len(norms[k]) for k in ks]
    axes[1].semilogy(ks, means, "o-", color=RESNET, ms=3)
    axes[1].set(title="(b) gradient of one path", xlabel="path length (residual branches)",
                ylabel="mean gradient norm at the input")
    share = [totals[k] / sum(totals.values()) for k in ks]
    axes[2].bar(ks, share, color=RESNET)
    low, high = paths["effective_90"]
    axes[2].axvspan(low - 0.5, high + 0.5, color="grey", alpha=0.2, label=f"90 % of it: lengths {low}-{high}")
    axes[2].set(title="(c) total gradient by length", xlabel="path length (residual branches)",
                ylabel="share of the summed gradient")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    return fig




# ----------------------------------------------------------------------------------------------------------------
# Chapter 7: loss landscapes (records of experiments.loss_landscape, or live ones of the same form)


def _label(record: Mapping[str, Any]) -> str:
    from resnet_lab.models import model_label

    return model_label(record["model"])


def _color(record: Mapping[str, Any]) -> str:
    return PLAIN if record["model"].startswith("plain") else RESNET


def _grid_shape(count: int, ncols: int | None) -> tuple[int, int]:
    """(rows, columns) for `count` panels, `ncols` per row (default: one row)."""
    ncols = min(ncols or count, count)
    return -(-count // ncols), ncols


def _depth(record: Mapping[str, Any]) -> int:
    from resnet_lab.models import parse_model_name

    return parse_model_name(record["model"]).depth


def plot_loss_slices(records: Sequence[Mapping[str, Any]], figsize: tuple[float, float] | None = None) -> Figure:
    """1-D slices: the loss along one filter-normalized direction, one line per record (model and seed), one
    row of panels per depth (deepest first), so that a colour and a line style name one network and seed."""
    depths = sorted({_depth(record) for record in records}, reverse=True)
    fig, axes = plt.subplots(len(depths), 2, figsize=figsize or (11, 3.8 * len(depths)), squeeze=False)
    styles = ("-", "--", ":", "-.")
    seen: dict[str, int] = {}
    for record in records:
        row = axes[depths.index(_depth(record))]
        rows = record["slice"]["rows"]
        label = _label(record)
        style = styles[seen.setdefault(label, 0) % len(styles)]
        seen[label] += 1
        text = f"{label}, directions seed {record.get('direction_seed', '?')}"
        alphas = [r["alpha"] for r in rows]
        row[0].plot(alphas, [r["loss"] for r in rows], style, color=_color(record), label=text)
        row[1].plot(alphas, [100 * r["err"] for r in rows], style, color=_color(record), label=text)
    for depth, row in zip(depths, axes):
        where = f" ({depth} layers)" if len(depths) > 1 else ""
        row[0].set(title=f"loss along one direction{where}", xlabel="step along the direction, alpha",
                   ylabel="training loss (cross-entropy)", yscale="log")
        row[1].set(title=f"error along the same direction{where}", xlabel="step along the direction, alpha",
                   ylabel="training error (%)", ylim=(0, 100))
        for ax in row:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_loss_contours(records: Sequence[Mapping[str, Any]], levels: Sequence[float] | None = None,
                       figsize: tuple[float, float] | None = None, ncols: int | None = None) -> Figure:
    """2-D contour plots of the loss over the plane of two directions, one panel per record, same levels;
    ncols panels per row (default: all in one row)."""
    import numpy as np

    count = len(records)
    nrows, ncols = _grid_shape(count, ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize or (3.0 * ncols + 1.0, 3.2 * nrows), squeeze=False)
    if levels is None:  # shared levels, spaced evenly in log loss so that both flat and steep regions show
        low = min(min(min(r) for r in rec["grid"]["loss"]) for rec in records)
        high = min(max(max(max(r) for r in rec["grid"]["loss"]) for rec in records), 50 * low)
        levels = np.geomspace(low * 1.05, high, 12)
    for ax in axes.flat[count:]:  # a last row that is not full
        ax.set_visible(False)
    for ax, record in zip(axes.flat, records):
        grid = record["grid"]
        z = np.array(grid["loss"])
        contours = ax.contour(grid["alphas"], grid["betas"], z, levels=levels, cmap="viridis", linewidths=1)
        ax.clabel(contours, fontsize=6, fmt="%.2g")
        ax.plot([0], [0], "k+", ms=8)
        ax.set(title=f"{_label(record)}, seed {record.get('direction_seed', '?')}", xlabel="direction 1 (alpha)",
               aspect="equal")
    for row in axes:
        row[0].set_ylabel("direction 2 (beta)")
    fig.tight_layout()
    return fig


def plot_loss_surfaces(records: Sequence[Mapping[str, Any]], zmax: float = 10.0,
                       figsize: tuple[float, float] | None = None, ncols: int | None = None) -> Figure:
    """3-D surface plots of the loss (clipped at zmax, as the paper's surface plots clip), one per record;
    ncols panels per row (default: all in one row)."""
    import numpy as np

    count = len(records)
    nrows, ncols = _grid_shape(count, ncols)
    fig = plt.figure(figsize=figsize or (3.6 * ncols, 3.4 * nrows))
    for index, record in enumerate(records):
        grid = record["grid"]
        ax = fig.add_subplot(nrows, ncols, index + 1, projection="3d")
        a, b = np.meshgrid(grid["alphas"], grid["betas"])
        z = np.minimum(np.array(grid["loss"]), zmax)
        ax.plot_surface(a, b, z, cmap="viridis", linewidth=0, antialiased=True)
        ax.set(title=f"{_label(record)}, seed {record.get('direction_seed', '?')}", xlabel="alpha",
               ylabel="beta", zlabel="loss", zlim=(0, zmax))
    fig.tight_layout()
    return fig


def plot_interpolation(records: Sequence[Mapping[str, Any]], figsize=(11, 3.8)) -> Figure:
    """The loss and error on the straight line from initialization (alpha 0) to the trained weights (alpha 1)."""
    fig, axes = plt.subplots(1, 2, figsize=figsize)
    styles = ("o-", "s--", "^:")
    seen: dict[str, int] = {}  # records of one family (one colour) told apart by line style, in order
    for record in records:
        rows = record["interpolation"]["rows"]
        alphas = [r["alpha"] for r in rows]
        color = _color(record)
        style = styles[seen.setdefault(color, 0) % len(styles)]
        seen[color] += 1
        axes[0].plot(alphas, [r["loss"] for r in rows], style, ms=3, color=color, label=_label(record))
        axes[1].plot(alphas, [100 * r["err"] for r in rows], style, ms=3, color=color, label=_label(record))
    axes[0].set(title="loss from initialization to trained", xlabel="alpha (0: initialization, 1: trained)",
                ylabel="training loss (cross-entropy)", yscale="log")
    axes[1].set(title="error on the same line", xlabel="alpha (0: initialization, 1: trained)",
                ylabel="training error (%)", ylim=(0, 100))
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


__all__ = ["plot_interpolation", "plot_loss_contours", "plot_loss_slices", "plot_loss_surfaces",
           "plot_path_gradients", "plot_random_lesions", "plot_single_deletions"]
