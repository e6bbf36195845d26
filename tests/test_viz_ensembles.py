"""Chapter 7's landscape figures: drawn from records, panels laid out as asked, networks told apart."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from resnet_lab.viz_ensembles import plot_interpolation, plot_loss_contours, plot_loss_slices  # noqa: E402


def _surface(model: str, seed: int, scale: float = 1.0) -> dict:
    axis = [-1.0, 0.0, 1.0]
    loss = [[scale * (1.0 + a * a + b * b) for a in axis] for b in axis]
    return {"model": model, "direction_seed": seed, "grid": {"alphas": axis, "betas": axis, "loss": loss}}


def _line(model: str) -> dict:
    rows = [{"alpha": a, "loss": 3.0 - 2.0 * a, "err": 0.9 - 0.8 * a} for a in (0.0, 0.5, 1.0)]
    return {"model": model, "interpolation": {"rows": rows}}


def test_contours_in_rows_share_their_levels_and_hide_unused_panels():
    records = [_surface(m, s, scale) for m, scale in (("resnet56", 1.0), ("plain56", 2.0), ("resnet20", 1.5))
               for s in (0, 1)]
    fig = plot_loss_contours(records, ncols=4)
    axes = fig.axes
    assert len(axes) == 8  # two rows of four
    shown = [ax for ax in axes if ax.get_visible()]
    assert len(shown) == 6 and all(not ax.get_visible() for ax in axes[6:])
    assert [ax.get_title() for ax in shown][:2] == ["ResNet-56, seed 0", "ResNet-56, seed 1"]
    assert axes[0].get_ylabel() and axes[4].get_ylabel()  # each row labels its vertical axis
    levels = {tuple(ax.collections[0].levels) for ax in shown}
    assert len(levels) == 1 and len(next(iter(levels))) > 1  # the same contour levels in every panel
    plt.close(fig)


def test_contours_default_to_one_row():
    fig = plot_loss_contours([_surface("resnet56", 0), _surface("plain56", 0)])
    assert len(fig.axes) == 2
    plt.close(fig)


def test_interpolation_tells_two_networks_of_one_family_apart():
    fig = plot_interpolation([_line("resnet56"), _line("plain56"), _line("resnet20"), _line("plain20")])
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["ResNet-56", "plain-56", "ResNet-20", "plain-20"]
    styles = [(line.get_color(), line.get_linestyle()) for line in lines]
    assert len(set(styles)) == 4  # colour for the family, line style for the depth
    assert lines[0].get_color() == lines[2].get_color() and lines[0].get_linestyle() != lines[2].get_linestyle()
    plt.close(fig)


def _slice(model: str, seed: int) -> dict:
    rows = [{"alpha": a, "loss": 1.0 + a * a, "err": 0.1 + 0.2 * a * a} for a in (-1.0, 0.0, 1.0)]
    return {"model": model, "direction_seed": seed, "slice": {"rows": rows}}


def test_slices_get_one_row_per_depth_deepest_first():
    records = [_slice(m, s) for m in ("resnet20", "plain20", "resnet56", "plain56") for s in (0, 1)]
    fig = plot_loss_slices(records)
    assert len(fig.axes) == 4
    top, bottom = fig.axes[0], fig.axes[2]
    assert "56 layers" in top.get_title() and "20 layers" in bottom.get_title()
    assert {line.get_label().split(",")[0] for line in top.get_lines()} == {"ResNet-56", "plain-56"}
    assert len(bottom.get_lines()) == 4
    plt.close(fig)
    fig = plot_loss_slices(records[:2])  # one depth: one row, titles without the depth
    assert len(fig.axes) == 2 and "layers" not in fig.axes[0].get_title()
    plt.close(fig)


def test_compact_png_is_a_palette_image_of_the_same_picture_in_fewer_bytes():
    import io

    from PIL import Image

    from resnet_lab.viz import png_bytes

    fig = plot_loss_contours([_surface("resnet56", 0), _surface("plain56", 0, 2.0)])
    full = io.BytesIO()
    fig.savefig(full, format="png", bbox_inches="tight", facecolor="white")
    compact = png_bytes(fig)
    plt.close(fig)
    small, large = Image.open(io.BytesIO(compact)), Image.open(io.BytesIO(full.getvalue()))
    assert small.mode == "P" and small.size == large.size
    assert len(compact) < 0.6 * len(full.getvalue())
    # The same picture: few pixels change visibly (antialiased edges get the nearest of 256 colours).
    import numpy as np

    difference = np.abs(np.asarray(small.convert("RGB"), dtype=int) - np.asarray(large.convert("RGB"), dtype=int))
    assert (difference.max(axis=2) > 16).mean() < 0.01


def test_compact_figures_replace_the_png_formatter_in_a_notebook_shell(monkeypatch):
    from matplotlib.figure import Figure

    import resnet_lab.viz as viz

    class Formatter:
        def __init__(self):
            self.types = {}

        def for_type(self, kind, function):
            self.types[kind] = function

    class Shell:
        def __init__(self):
            self.display_formatter = type("DisplayFormatter", (), {"formatters": {"image/png": Formatter()}})()

    shell = Shell()
    monkeypatch.setattr("IPython.get_ipython", lambda: shell)
    assert viz.use_compact_figures()
    assert shell.display_formatter.formatters["image/png"].types[Figure] is viz.png_bytes
    monkeypatch.setattr("IPython.get_ipython", lambda: None)  # plain Python: nothing to set
    assert not viz.use_compact_figures()


def test_surfaces_in_rows():
    from resnet_lab.viz_ensembles import plot_loss_surfaces

    fig = plot_loss_surfaces([_surface(m, 0) for m in ("resnet56", "plain56", "resnet20", "plain20")], ncols=2)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["ResNet-56, seed 0", "plain-56, seed 0", "ResNet-20, seed 0", "plain-20, seed 0"]
    positions = [ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes]
    assert set(positions) == {(2, 2)}  # two rows of two
    plt.close(fig)
