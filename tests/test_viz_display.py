"""How notebooks show figures: palette PNGs (resnet_lab.viz.png_bytes), registered in a notebook shell."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

import resnet_lab.viz as viz  # noqa: E402


def _figure():
    fig, ax = plt.subplots(figsize=(4, 3))
    for k in range(4):
        ax.plot([0, 1, 2, 3], [k, k + 1, k * k, 2 * k], label=f"line {k}")
    ax.legend()
    ax.set_title("a plot with a few colours")
    return fig


def test_compact_png_is_a_palette_image_of_the_same_picture_in_fewer_bytes():
    fig = _figure()
    full = io.BytesIO()
    fig.savefig(full, format="png", bbox_inches="tight", facecolor="white")
    compact = viz.png_bytes(fig)
    plt.close(fig)
    small, large = Image.open(io.BytesIO(compact)), Image.open(io.BytesIO(full.getvalue()))
    assert small.mode == "P" and small.size == large.size
    assert len(compact) < 0.6 * len(full.getvalue())
    # The same picture: few pixels change visibly (antialiased edges get the nearest of 256 colours).
    difference = np.abs(np.asarray(small.convert("RGB"), dtype=int) - np.asarray(large.convert("RGB"), dtype=int))
    assert (difference.max(axis=2) > 16).mean() < 0.01


def test_compact_figures_replace_the_png_formatter_in_a_notebook_shell(monkeypatch):
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
