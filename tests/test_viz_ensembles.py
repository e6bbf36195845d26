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


def test_surfaces_in_rows():
    from resnet_lab.viz_ensembles import plot_loss_surfaces

    fig = plot_loss_surfaces([_surface(m, 0) for m in ("resnet56", "plain56", "resnet20", "plain20")], ncols=2)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["ResNet-56, seed 0", "plain-56, seed 0", "ResNet-20, seed 0", "plain-20, seed 0"]
    positions = [ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes]
    assert set(positions) == {(2, 2)}  # two rows of two
    plt.close(fig)
