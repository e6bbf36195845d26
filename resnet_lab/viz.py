"""The book's figures, drawn from records: depth-sweep runs, a training History, gradient profiles.

Every function takes data already in memory (the list from `experiments.load_depth_sweep`, a `History`, the
profiles from `gradflow.gradient_profile`) and returns a matplotlib Figure. Nothing here trains, reads result
folders or touches the network, so a figure can be redrawn from any saved record. `use_compact_figures` makes
Jupyter show figures as palette PNGs, which keeps the notebooks (outputs committed) small.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from resnet_lab.models import model_label, parse_model_name

if TYPE_CHECKING:  # annotations only: measuring gradients is gradflow's job, drawing them is ours
    from resnet_lab.gradflow import GradientProfile

# One palette for every figure (ColorBrewer "Dark2": distinct, readable in print and for most colour-blind readers).
PALETTE = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")
# One colour per depth, shared by every figure so that "plain-56" and "ResNet-56" are easy to pair up.
DEPTH_COLORS = dict(zip((20, 32, 44, 56, 110), PALETTE))


def _label_and_depth(name: str) -> tuple[str, int | None]:
    """("ResNet-56", 56) for a model name; (name, None) for a label that is not one (e.g. a hand-made network)."""
    try:
        return model_label(name), parse_model_name(name).depth
    except ValueError:
        return name, None


def _depth_colors(depths: Sequence[int | None]) -> dict[int, str]:
    """DEPTH_COLORS, plus colours for the depths it does not cover, taken from those no other depth here uses."""
    used = {DEPTH_COLORS[d] for d in depths if d in DEPTH_COLORS}
    spare = [c for c in PALETTE if c not in used] or list(PALETTE)
    extra = sorted({d for d in depths if d is not None and d not in DEPTH_COLORS})
    return {**{d: spare[i % len(spare)] for i, d in enumerate(extra)}, **DEPTH_COLORS}


# ----------------------------------------------------------------------------------------------------------------
# The depth sweep (He et al. 2016, figure 6)


def plot_depth_sweep(runs: Sequence[Mapping[str, Any]], figsize=(11, 4.2)) -> Figure:
    """He et al. 2016 figure 6 from our runs: training error (dashed) and validation error (solid) per epoch.

    runs: the depth-sweep records, `load_depth_sweep(folder)`. Plain networks on the left, residual networks on
    the right, the same y-axis for both so that they can be compared at a glance.
    """
    if isinstance(runs, (str, os.PathLike)):
        raise TypeError(f"plot_depth_sweep takes the records, not a folder: plot_depth_sweep(load_depth_sweep("
                        f"{str(runs)!r})) (load_depth_sweep is in resnet_lab.experiments).")
    if not runs:
        raise ValueError(
            "No depth-sweep runs to plot. Load them with resnet_lab.experiments.load_depth_sweep(), or produce them "
            "with `python -m resnet_lab experiment depth-sweep --data PATH --out DIR`."
        )
    fig, axes = plt.subplots(1, 2, figsize=figsize, sharey=True, constrained_layout=True)
    for ax, family, title in zip(axes, ("plain", "resnet"), ("plain networks", "residual networks (ResNets)")):
        for run in sorted((r for r in runs if r["family"] == family), key=lambda r: r["depth"]):
            color = DEPTH_COLORS.get(run["depth"])
            x = [e["epoch"] for e in run["epochs"]]
            ax.plot(x, [100 * e["train_eval_err"] for e in run["epochs"]], "--", color=color, lw=1.2)
            ax.plot(x, [100 * e["val_err"] for e in run["epochs"]], "-", color=color, lw=2,
                    label=model_label(run["model"]))
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(loc="upper right", frameon=False)
        else:  # a sweep still running: say so rather than leave a blank panel
            ax.text(0.5, 0.5, "no finished runs yet", transform=ax.transAxes, ha="center", color="gray")
    axes[0].set_ylabel("error (%)")
    # The first epoch's errors are near chance: leave them out of the y-range so the differences stay visible.
    top = max(100 * max(e["val_err"], e["train_eval_err"]) for r in runs for e in r["epochs"][1:] or r["epochs"])
    axes[0].set_ylim(0, min(100, top * 1.05))
    fig.suptitle("CIFAR-10 (JPEG copy): dashed = training error, solid = validation error", fontsize=10)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# One training run


def plot_history(history: Any, metric: str = "error", title: str | None = None, figsize=(10, 3.8)) -> Figure:
    """Loss (left) and error or accuracy in % (right) per epoch, for training and validation.

    history: a `History` (what `fit` returns, or `History.from_json("results.json")`) or a list of its epoch
    dicts. metric: "error" or "accuracy".
    """
    if metric not in ("error", "accuracy"):
        raise ValueError(f"metric must be 'error' or 'accuracy', got {metric!r}.")
    epochs = list(getattr(history, "epochs", history))
    if not epochs:
        raise ValueError("This history has no epochs to plot yet.")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=figsize, constrained_layout=True)
    x = [e["epoch"] for e in epochs]
    curves = (
        ("train", "training (augmented batches)", "-", PALETTE[0]),
        ("train_eval", "training (fixed subset, no augmentation)", "--", PALETTE[0]),
        ("val", "validation", "-", PALETTE[1]),
    )
    for prefix, label, style, color in curves:
        losses, accs = [e.get(f"{prefix}_loss") for e in epochs], [e.get(f"{prefix}_acc") for e in epochs]
        if any(v is None for v in losses + accs):
            continue  # not measured in this run (no train_eval_size, no validation split)
        ax_loss.plot(x, losses, style, color=color, label=label)
        ax_acc.plot(x, [100 * (1 - a) if metric == "error" else 100 * a for a in accs], style, color=color,
                    label=label)
    ax_loss.set_ylabel("loss (cross-entropy)")
    ax_acc.set_ylabel(f"{metric} (%)")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    ax_acc.legend(frameon=False)
    model = (getattr(history, "config", None) or {}).get("model") or {}
    if title is None and model.get("name"):
        title = f"{model['name']}, {len(epochs)} epochs"
    if title:
        fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Gradient flow


def _times(factor: float) -> str:
    """A growth factor for a legend: 'x11,600' or 'x0.21'."""
    return f"\u00d7{factor:,.3g}" if factor < 1000 else f"\u00d7{float(f'{factor:.3g}'):,.0f}"


def plot_gradient_profiles(profiles: Sequence[GradientProfile], figsize=(10, 4.6)) -> Figure:
    """Left: gradient norm at each block's output, input to output. Right: ||dL/dW|| / ||W|| for every conv layer.

    Both on a log scale; plain networks solid, residual networks dashed, one colour per depth (the colours of the
    depth-sweep figure) so that a plain network and its residual twin are easy to pair up. The legend gives each
    network's growth factor, first block over last block. profiles: from `gradflow.gradient_profile`.
    """
    if not profiles:
        raise ValueError("no profiles to plot: pass the results of gradient_profile(...) for one or more models.")
    labels = [_label_and_depth(p.label) for p in profiles]
    colors = _depth_colors([depth for _, depth in labels])
    fig, (left, right) = plt.subplots(1, 2, figsize=figsize, constrained_layout=True)
    for index, (profile, (name, depth)) in enumerate(zip(profiles, labels)):
        color = colors[depth] if depth is not None else PALETTE[index % len(PALETTE)]
        plain = profile.label.startswith("plain")
        style = {"color": color, "linestyle": "-" if plain else "--", "lw": 1.8 if plain else 2.2}
        units = list(profile.unit_norms.values())
        left.plot(range(1, len(units) + 1), units, label=f"{name}: {_times(profile.growth)}", **style)
        ratios = list(profile.weight_ratios.values())
        right.plot(range(1, len(ratios) + 1), ratios, **style)
    left.set_yscale("log")
    left.set_xlabel("block (1 = next to the input)")
    left.set_ylabel("per-image gradient norm at the block's output")
    left.set_title("gradient reaching each block")
    left.legend(frameon=False, fontsize=9, title="first block / last block", title_fontsize=9)
    right.set_yscale("log")
    right.set_xlabel("convolution layer (1 = stem)")
    right.set_ylabel(r"$\|\partial L / \partial W\| \;/\; \|W\|$")
    right.set_title("relative size of each layer's weight gradient")
    for ax in (left, right):
        ax.grid(alpha=0.3, which="major")
    modes = {p.training_mode for p in profiles}
    mode = "mixed" if len(modes) > 1 else "training" if modes == {True} else "evaluation"
    fig.suptitle(f"Gradients at initialization, batch normalization in {mode} mode "
                 "(solid: plain, dashed: residual)", fontsize=10)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# How notebooks show figures


def png_bytes(fig: Figure, colors: int = 256) -> bytes:
    """The figure as a PNG of at most `colors` colours on white, cropped as Jupyter crops it.

    Matplotlib writes 32-bit RGBA PNGs; a plot uses few colours, so a palette PNG of the same pixels takes about a
    third of the bytes, and a notebook whose figures are committed stays small.
    """
    from PIL import Image  # Pillow: a dependency of matplotlib

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", facecolor="white")
    buffer.seek(0)
    rgba = Image.open(buffer).convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    image = Image.alpha_composite(white, rgba).convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def use_compact_figures() -> bool:
    """In Jupyter (or Colab), show matplotlib figures as `png_bytes` palette PNGs; True if it could.

    The inline backend registers its own PNG formatter when it is first loaded, so it is loaded here first.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: nothing displays figures
        return False
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return False
    if "inline" in plt.get_backend():
        import matplotlib_inline.backend_inline  # noqa: F401  (loading it registers the inline PNG formatter)
    shell.display_formatter.formatters["image/png"].for_type(Figure, png_bytes)
    return True


__all__ = ["DEPTH_COLORS", "PALETTE", "plot_depth_sweep", "plot_gradient_profiles", "plot_history", "png_bytes",
           "use_compact_figures"]
