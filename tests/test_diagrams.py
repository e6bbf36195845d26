"""The block and network diagrams draw, carry the right labels, and reject impossible requests."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from resnet_lab import diagrams  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts if t.get_text()]  # arrows are empty annotations


def test_basic_block_identity_has_its_layers_in_order():
    ax = diagrams.draw_block("basic", "identity", planes=64)
    texts = _texts(ax)
    branch = [t for t in texts if t in {"3×3 conv, 64", "BN", "ReLU"}]
    # conv-BN-ReLU-conv-BN inside F, then the ReLU after the addition
    assert branch == ["3×3 conv, 64", "BN", "ReLU", "3×3 conv, 64", "BN", "ReLU"]
    assert "+" in texts
    assert any(t.startswith("identity") for t in texts)
    assert ax.get_title() == "basic block, identity shortcut"


def test_shortcut_goes_around_the_whole_branch():
    ax = diagrams.draw_block("bottleneck", "identity")
    box_ys = [t.get_position()[1] for t in ax.texts if "conv" in t.get_text()]
    plus_y = next(t.get_position()[1] for t in ax.texts if t.get_text() == "+")
    # the vertical part of the skip is the line drawn at the largest x; it spans from above the first conv
    # to the addition, below the last conv
    skip = max(ax.lines, key=lambda line: min(line.get_xdata()))
    top, bottom = max(skip.get_ydata()), min(skip.get_ydata())
    assert top > max(box_ys) and bottom <= plus_y < min(box_ys)


def test_preactivation_has_no_relu_after_the_addition():
    ax = diagrams.draw_block("preact", "identity")
    texts = _texts(ax)
    plus_y = next(t.get_position()[1] for t in ax.texts if t.get_text() == "+")
    assert texts[1:3] == ["BN", "ReLU"]  # after the input label, the branch starts with BN-ReLU
    assert not [t for t in ax.texts if t.get_text() == "ReLU" and t.get_position()[1] < plus_y]


@pytest.mark.parametrize(
    "shortcut, expected", [("zeropad", "+ 64 zero channels"), ("projection", "1×1 conv, 128, /2")]
)
def test_downsampling_shortcuts_are_drawn_differently(shortcut, expected):
    ax = diagrams.draw_block("basic", shortcut, planes=128)
    texts = _texts(ax)
    assert expected in texts
    assert "3×3 conv, 128, /2" in texts
    assert texts[0].startswith("x   (64×")


def test_bottleneck_expands_four_times():
    layers = diagrams.block_layers("bottleneck", planes=32, stride=2)
    convs = [label for kind, label in layers if kind == "conv"]
    assert convs == ["1×1 conv, 32", "3×3 conv, 32, /2", "1×1 conv, 128"]


def test_draws_into_a_given_axes():
    fig, axes = plt.subplots(1, 2)
    returned = diagrams.draw_block("preact_bottleneck", "projection", ax=axes[1])
    assert returned is axes[1]
    assert not axes[0].texts


def test_bad_requests_get_clear_errors():
    with pytest.raises(ValueError, match="unknown kind 'wide'"):
        diagrams.draw_block("wide")
    with pytest.raises(ValueError, match="zeropad"):
        diagrams.draw_block("basic", "identity", stride=2)
    with pytest.raises(ValueError, match="without the batch dimension"):
        diagrams.draw_network([("input", (1, 3, 32, 32))])


def test_network_diagram_labels_every_shape():
    shapes = [("input", (3, 32, 32)), ("stage 1", (16, 32, 32)), ("stage 3", (64, 8, 8))]
    ax = diagrams.draw_network(shapes, title="ResNet-20")
    texts = _texts(ax)
    for name, (c, h, w) in shapes:
        assert name in texts and f"{c}×{h}×{w}" in texts
    assert len(ax.patches) == len(shapes)
    assert ax.get_title() == "ResNet-20"


def test_preactivation_projection_splits_after_the_shared_bn_relu():
    """resnet_lab.blocks feeds a pre-activation projection with the BN-ReLU output; identity reads x itself."""

    def skip_top(ax):
        skip = max(ax.lines, key=lambda line: min(line.get_xdata()))
        return max(skip.get_ydata())

    def first_relu_y(ax):
        return max(t.get_position()[1] for t in ax.texts if t.get_text() == "ReLU")

    projection = diagrams.draw_block("preact", "projection", planes=32)
    assert skip_top(projection) < first_relu_y(projection)
    zeropad = diagrams.draw_block("preact", "zeropad", planes=32)
    assert skip_top(zeropad) > first_relu_y(zeropad)
