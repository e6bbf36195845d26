"""Figures and the widget of chapter 5 (gradient flow), drawn from the records of `resnet_lab.gradflow`,
`resnet_lab.shattered` and the gradient-flow experiment. No measurement happens here."""

from __future__ import annotations

import math
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
    "resnet-scaled": (PALETTE[4], "residual, branch x 1/\u221a2, no BN"),
    "resnet-bn-scaled": (PALETTE[5], "residual + BN, branch x 1/\u221a2"),
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


class _SvgPanel:
    """One panel of a small hand-written SVG figure: a box, data-to-pixel mapping, ticks and lines. The widgets'
    pictures are drawn this way because an SVG line takes a few kilobytes where a PNG of it takes tens, and the
    pictures are stored in the notebook."""

    def __init__(self, box: tuple[int, int, int, int], x_range: tuple[float, float], y_range: tuple[float, float],
                 log_y: bool = False) -> None:
        self.left, self.top, self.width, self.height = box
        self.x_range, self.log_y = x_range, log_y
        self.y_range = tuple(math.log10(v) for v in y_range) if log_y else y_range

    def _px(self, x: float, y: float) -> tuple[float, float]:
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        y = math.log10(y) if self.log_y else y
        return (self.left + (x - x0) / (x1 - x0) * self.width,
                self.top + self.height - (y - y0) / (y1 - y0) * self.height)

    def line(self, xs: Sequence[float], ys: Sequence[float], color: str, width: float = 1.0, dash: str = "") -> str:
        """A polyline through the points, in whole pixels (a finer grid would not show)."""
        points = " ".join("{:.0f},{:.0f}".format(*self._px(x, y)) for x, y in zip(xs, ys))
        dashes = f" stroke-dasharray='{dash}'" if dash else ""
        return f"<polyline points='{points}' stroke='{color}' stroke-width='{width}' fill='none'{dashes}/>"

    def axes(self, x_ticks: Sequence[tuple[float, str]], y_ticks: Sequence[tuple[float, str]], x_label: str,
             y_label: str) -> str:
        """The box, tick labels at (value, text) pairs, and the axis labels."""
        parts = [f"<rect x='{self.left}' y='{self.top}' width='{self.width}' height='{self.height}' fill='none' "
                 "stroke='#999'/>"]
        bottom = self.top + self.height
        for value, label in x_ticks:
            parts.append(_svg_text(self._px(value, self._y_any())[0], bottom + 15, label))
        for value, label in y_ticks:
            parts.append(_svg_text(self.left - 4, self._px(self.x_range[0], value)[1] + 4, label, "end", 10))
        parts.append(_svg_text(self.left + self.width / 2, bottom + 30, x_label))
        middle = self.top + self.height / 2
        if y_label:
            parts.append(f"<text x='{self.left - 44}' y='{middle:.0f}' font-size='11' text-anchor='middle' "
                         f"transform='rotate(-90 {self.left - 44} {middle:.0f})'>{y_label}</text>")
        return "".join(parts)

    def _y_any(self) -> float:
        return 10 ** self.y_range[0] if self.log_y else self.y_range[0]


def _svg_text(x: float, y: float, value: str, anchor: str = "middle", size: int = 11) -> str:
    return f"<text x='{x:.0f}' y='{y:.0f}' font-size='{size}' text-anchor='{anchor}'>{value}</text>"


def _svg(width: int, height: int, title: str, parts: Sequence[str]) -> str:
    """A complete SVG picture with a title line on top."""
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} "
            f"{height}' font-family='sans-serif' role='img' aria-label='{title}'>"
            + _svg_text(width / 2, 16, title, size=13) + "".join(parts) + "</svg>")


def _svg_profile_frame(run: dict[str, Any], index: int, ylim: tuple[float, float]) -> str:
    """The gradient profile of `run["records"][index]` (in colour) over the initial one (grey), log scale."""
    record, first = run["records"][index], run["records"][0]
    blocks = range(1, len(record["unit_norms"]) + 1)
    panel = _SvgPanel((70, 30, 560, 200), (1, len(blocks)), ylim, log_y=True)
    decades = range(math.ceil(math.log10(ylim[0])), math.floor(math.log10(ylim[1])) + 1)
    step = max(1, len(decades) // 6)  # at most about six labelled decades
    y_ticks = [(10.0**k, f"1e{k}" if k else "1") for k in decades[::step]]
    last = len(blocks)
    x_ticks = [(b, str(b)) for b in sorted({1, *range(10, last, 10), last})]
    title = (f"{_label_and_depth(run['model'])[0]}, step {record['step']} (epoch {record['epoch'] + 1}), "
             f"learning rate {record['lr']:.3g}")
    parts = [panel.axes(x_ticks, y_ticks, "block (1 = next to the input)", "gradient norm"),
             panel.line(blocks, first["unit_norms"], "#bbb", 2.0),
             panel.line(blocks, record["unit_norms"], PALETTE[2], 2.0),
             _svg_text(620, 48, "grey: step 0 (initialization)", "end", 10)]
    return _svg(660, 270, title, parts)


def profile_slider(run: dict[str, Any], frames: int = 12):
    """A slider over precomputed pictures of the run's gradient profile during training (an ipywidgets box).

    The pictures are small SVGs in `HTML` widgets in a `Stack` (ipywidgets 8) whose `selected_index` is linked to
    the slider in the browser (`jslink`), so the widget works from its saved state, with no Python kernel: in the
    built book too. ipywidgets 7 (Colab) has no Stack: there the pictures sit in a `Tab` linked the same way.
    """
    import ipywidgets as widgets

    records = run["records"]
    if not records:
        raise ValueError("the run has no records: was it trained with a GradientFlowRecorder?")
    picks = sorted({round(i * (len(records) - 1) / max(frames - 1, 1)) for i in range(frames)})
    values = [v for r in records for v in r["unit_norms"]]
    ylim = (min(values) / 1.5, max(values) * 1.5)
    layout = widgets.Layout()  # one layout for every picture: the notebook stores each model once
    images = [widgets.HTML(_svg_profile_frame(run, i, ylim), layout=layout) for i in picks]
    pages = _pages(images, [f"step {records[i]['step']}" for i in picks])
    slider = widgets.IntSlider(value=0, min=0, max=len(picks) - 1, description="measurement",
                               continuous_update=True)
    widgets.jslink((slider, "value"), (pages, "selected_index"))
    return widgets.VBox([slider, pages])


def _pages(children: Sequence[Any], titles: Sequence[str], selected: int = 0):
    """One child shown at a time: a Stack (ipywidgets 8), or a Tab with titles where there is none (Colab's 7)."""
    import ipywidgets as widgets

    stack_type = getattr(widgets, "Stack", None)
    if stack_type is not None:
        return stack_type(list(children), selected_index=selected)
    pages = widgets.Tab(list(children))
    for index, title in enumerate(titles):
        pages.set_title(index, title)
    pages.selected_index = selected
    return pages


def _svg_gradient_frame(x: Sequence[float], gradient: Sequence[float], autocorrelation: Sequence[float],
                        title: str, color: str) -> str:
    """df/dx along the line (left) and its autocorrelation against the lag (right)."""
    low, high = min(gradient), max(gradient)
    pad = 0.05 * (high - low or abs(high) or 1.0)
    grad = _SvgPanel((70, 30, 380, 140), (x[0], x[-1]), (low - pad, high + pad))
    lags = range(len(autocorrelation))
    acf = _SvgPanel((520, 30, 120, 140), (0, len(lags) - 1), (-0.3, 1.05))
    parts = [grad.axes([(x[0], f"{x[0]:g}"), (0, "0"), (x[-1], f"{x[-1]:g}")],
                       [(high, f"{high:.2g}"), (low, f"{low:.2g}")], "input x", "df/dx"),
             acf.axes([(0, "0"), (lags[-1], str(lags[-1]))], [(1, "1"), (0, "0")], "lag", ""),
             _svg_text(580, 24, "autocorrelation")]
    if low < 0 < high:
        parts.append(grad.line((x[0], x[-1]), (0, 0), "#bbb", 1.0, "4 3"))
    parts += [acf.line((0, lags[-1]), (0, 0), "#bbb", 1.0, "4 3"), grad.line(x, gradient, color),
              acf.line(lags, autocorrelation, color, 1.5)]
    return _svg(660, 215, title, parts)


def shattered_explorer(record: dict[str, Any]):
    """Controls for block type, normalization, branch scale and depth over the networks of shattered.json: the
    picture of df/dx along the line and its autocorrelation for the chosen network (an ipywidgets box).

    Every picture is drawn in advance (a small SVG in an `HTML` widget); nested Stacks, one level per control,
    are linked to the controls in the browser (`jslink`), so the widget works from its saved state without a
    kernel, in the built book too. A plain network has no branch to scale: both scales show the same picture.
    """
    import ipywidgets as widgets

    curves = {(c["kind"], c["depth"]): c for c in record["curves"]}
    depths = sorted({depth for _, depth in curves})
    layout = widgets.Layout()  # one layout for every picture: the notebook stores each model once
    block = widgets.ToggleButtons(options=["plain", "residual"], index=0, description="block")
    norm = widgets.ToggleButtons(options=["no BN", "BN"], index=1, description="normalization")
    scale = widgets.ToggleButtons(options=["1", "1/\u221a2"], index=0, description="branch scale")
    depth = widgets.SelectionSlider(options=depths, index=len(depths) - 1, description="depth",
                                    continuous_update=True)

    def frame(kind: str, d: int):
        if (kind, d) not in curves:
            raise ValueError(f"shattered.json has no curve for {kind} at depth {d}: regenerate it.")
        c = curves[(kind, d)]
        color, label = KIND_STYLE[kind]
        title = f"{label}, depth {d}: autocorrelation at lag 1 = {c['autocorrelation'][1]:.2f}"
        return widgets.HTML(_svg_gradient_frame(record["x"], c["example_gradient"], c["autocorrelation"], title,
                                                color), layout=layout)

    def level(control, titles, make):
        pages = _pages([make(i) for i in range(len(titles))], titles, control.index)
        widgets.jslink((control, "index"), (pages, "selected_index"))
        return pages

    def by_depth(kind: str):
        return level(depth, [f"depth {d}" for d in depths], lambda i: frame(kind, depths[i]))

    def by_scale(family: str, bn: bool):
        kind = family + ("-bn" if bn else "")
        if family == "plain":
            same = by_depth(kind)
            return level(scale, list(scale.options), lambda i: same)
        return level(scale, list(scale.options), lambda i: by_depth(kind + ("-scaled" if i else "")))

    tree = level(block, list(block.options), lambda b: level(
        norm, list(norm.options), lambda n: by_scale(("plain", "resnet")[b], bool(n))))
    return widgets.VBox([widgets.HBox([block, norm]), widgets.HBox([scale, depth]), tree])


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


def plot_shattered(record: dict[str, Any], depths: Sequence[int] | None = None, figsize=(10, 3.8)) -> Figure:
    """Left: the autocorrelation of df/dx at lag 1 against depth, one line per kind of network. Right: the whole
    autocorrelation curve at the deepest depth. record: shattered.json (its pictures: `shattered_explorer`)."""
    curves = record["curves"]
    depths = sorted({c["depth"] for c in curves}) if depths is None else list(depths)
    deepest = depths[-1]
    fig, (lag1, full) = plt.subplots(1, 2, figsize=figsize, constrained_layout=True)
    for kind, (color, label) in KIND_STYLE.items():
        kind_curves = sorted((c for c in curves if c["kind"] == kind and c["depth"] in depths),
                             key=lambda c: c["depth"])
        if not kind_curves:
            continue  # a record written before this kind existed
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
    "plot_profiles_by_norm", "plot_shattered", "profile_slider", "shattered_explorer",
]
