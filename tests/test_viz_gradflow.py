"""Chapter 5's figures and slider widget: drawn from records, labelled, and the widget linked in the browser."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import ipywidgets as widgets  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from resnet_lab.experiments.gradient_flow import init_profiles  # noqa: E402
from resnet_lab.viz_gradflow import (  # noqa: E402
    plot_growth_during_training,
    plot_profiles_by_norm,
    plot_shattered,
    profile_slider,
    shattered_explorer,
)


def _run(model: str = "plain8", steps: int = 5) -> dict:
    records = [{"step": 2 * i, "epoch": 0, "lr": 0.01 * i, "unit_norms": [4.0 / (i + 1), 2.0, 1.0]}
               for i in range(steps)]
    return {"model": model, "records": records}


def test_profiles_by_norm_splits_bn_and_no_bn_and_labels_the_axes():
    torch.manual_seed(0)
    rows = init_profiles(torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,)), depths=(8,))
    fig = plot_profiles_by_norm(rows)
    left, right = fig.axes[:2]
    assert "with batch" in left.get_title() and "without" in right.get_title()
    assert len(left.lines) == 2 and len(right.lines) == 2
    assert left.get_yscale() == "log" and left.get_ylabel()
    plt.close(fig)
    with pytest.raises(ValueError, match="no profiles"):
        plot_profiles_by_norm([])


def test_growth_during_training_plots_one_line_per_run():
    fig = plot_growth_during_training([_run("plain8"), _run("resnet8")])
    assert len(fig.axes[0].get_legend().get_texts()) == 2
    assert list(fig.axes[0].lines[0].get_xdata()) == [0, 2, 4, 6, 8]
    plt.close(fig)


def test_slider_is_linked_to_a_stack_of_pictures(monkeypatch):
    links = []
    real_jslink = widgets.jslink
    monkeypatch.setattr(widgets, "jslink", lambda a, b: links.append((a, b)) or real_jslink(a, b))
    box = profile_slider(_run(steps=7), frames=4)
    slider, pages = box.children
    assert isinstance(slider, widgets.IntSlider) and slider.max == 3
    assert len(pages.children) == 4 and all(isinstance(p, widgets.HTML) for p in pages.children)
    assert all(p.value.startswith("<svg") for p in pages.children)
    # each picture is that measurement's: its step in the title, its profile in the coloured line
    assert [f"step {s} (" in p.value for p, s in zip(pages.children, (0, 4, 8, 12))] == [True] * 4
    assert len({p.value for p in pages.children}) == 4
    # The link lives in the browser (jslink), so the saved widget state works without a kernel.
    assert links == [((slider, "value"), (pages, "selected_index"))]
    with pytest.raises(ValueError, match="no records"):
        profile_slider({"model": "plain8", "records": []})


def _shattered_record(kinds=("plain", "plain-bn", "resnet", "resnet-bn", "resnet-scaled", "resnet-bn-scaled")):
    x = [i / 10 for i in range(-20, 21)]
    curves = [{"kind": k, "depth": d, "autocorrelation": [1.0, 0.5 - 0.01 * i, 0.2],
               "example_gradient": [float(i + d)] * len(x)}
              for i, k in enumerate(kinds) for d in (2, 8)]
    return {"x": x, "curves": curves}


def test_shattered_figure_reads_a_record_old_or_new():
    for record in (_shattered_record(), _shattered_record(("plain", "plain-bn", "resnet", "resnet-bn"))):
        fig = plot_shattered(record)
        lag1, full = fig.axes
        assert lag1.get_xlabel().startswith("depth") and len(lag1.lines) == len({c["kind"] for c in record["curves"]})
        plt.close(fig)


def _shown(widget):
    """The leaf a browser shows: follow each nested Stack's selected child."""
    while isinstance(widget, (widgets.Stack, widgets.Tab)):
        widget = widget.children[widget.selected_index]
    return widget


def test_shattered_explorer_shows_the_network_its_controls_name(monkeypatch):
    links = []
    real_jslink = widgets.jslink
    monkeypatch.setattr(widgets, "jslink", lambda a, b: links.append((a, b)) or real_jslink(a, b))
    box = shattered_explorer(_shattered_record())
    (block, norm), (scale, depth), tree = box.children[0].children, box.children[1].children, box.children[2]
    shown = _shown(tree)  # the default: plain + BN at the deepest depth
    assert isinstance(shown, widgets.HTML) and shown.value.startswith("<svg")
    assert "plain + BN, depth 8" in shown.value
    # every control drives the Stacks of its level in the browser (jslink), so the saved state works
    assert {a[0] for a, _ in links} == {block, norm, scale, depth}
    assert all(b[1] == "selected_index" and a[1] == "index" for a, b in links)
    frames = {id(w) for w in _leaves(tree)}
    assert len(frames) == 12  # 6 kinds x 2 depths, each drawn once
    # choose residual, BN, branch x 1/sqrt(2), depth 2 by hand (what the links do in the browser)
    for control, index in ((block, 1), (norm, 1), (scale, 1), (depth, 0)):
        control.index = index
        for a, b in links:
            if a[0] is control:
                b[0].selected_index = index
    assert "residual + BN, branch x 1/\u221a2, depth 2" in _shown(tree).value
    # a plain network has no branch to scale: both scales show the same picture
    plain = tree.children[0].children[1]
    assert plain.children[0] is plain.children[1]


def _leaves(widget):
    if isinstance(widget, (widgets.Stack, widgets.Tab)):
        return [leaf for child in widget.children for leaf in _leaves(child)]
    return [widget]
