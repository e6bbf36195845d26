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
    assert len(pages.children) == 4 and all(isinstance(p, widgets.Image) for p in pages.children)
    assert all(bytes(p.value)[:4] == b"\x89PNG" for p in pages.children)
    # The link lives in the browser (jslink), so the saved widget state works without a kernel.
    assert links == [((slider, "value"), (pages, "selected_index"))]
    with pytest.raises(ValueError, match="no records"):
        profile_slider({"model": "plain8", "records": []})


def test_shattered_figure_reads_a_record():
    x = [i / 10 for i in range(-20, 21)]
    curves = [{"kind": k, "depth": d, "autocorrelation": [1.0, 0.5, 0.2], "example_gradient": [1.0] * len(x)}
              for k in ("plain", "plain-bn", "resnet", "resnet-bn") for d in (2, 8)]
    fig = plot_shattered({"x": x, "curves": curves})
    assert len(fig.axes) == 6
    assert fig.axes[4].get_xlabel().startswith("depth")
    plt.close(fig)
