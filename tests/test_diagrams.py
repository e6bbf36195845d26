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


@pytest.mark.parametrize("kind", ["preact", "preact_bottleneck"])
def test_preactivation_projection_has_no_batch_norm(kind):
    """As in resnet_lab.blocks and the authors' code: the pre-activation projection is a bare 1x1 conv."""
    ax = diagrams.draw_block(kind, "projection", planes=32)
    shortcut_x = max(t.get_position()[0] for t in ax.texts if "conv" in t.get_text())
    on_shortcut = [t.get_text() for t in ax.texts if t.get_position()[0] == shortcut_x]
    assert any(text.startswith("1×1 conv, ") and text.endswith("/2") for text in on_shortcut)
    assert "BN" not in on_shortcut
    branch_bns = 2 if kind == "preact" else 3
    assert _texts(ax).count("BN") == branch_bns
    # The original block keeps the BN after its projection.
    original = diagrams.draw_block("basic", "projection", planes=32)
    assert _texts(original).count("BN") == 3


@pytest.mark.parametrize("kind", ["bottleneck", "preact_bottleneck"])
def test_stride_in_1x1_moves_the_stride_label(kind):
    convs = [label for layer, label in diagrams.block_layers(kind, 16, 2, stride_in_1x1=True) if layer == "conv"]
    assert convs == ["1×1 conv, 16, /2", "3×3 conv, 16", "1×1 conv, 64"]
    ax = diagrams.draw_block(kind, "projection", planes=16, stride_in_1x1=True)
    assert "1×1 conv, 16, /2" in _texts(ax)
    with pytest.raises(ValueError, match="bottleneck blocks only"):
        diagrams.block_layers("basic", 16, 2, stride_in_1x1=True)


@pytest.mark.parametrize("size, kernel, stride, padding", [(5, 3, 2, 1), (7, 1, 2, 0), (6, 3, 1, 1)])
def test_conv_windows_follow_the_output_size_rule(size, kernel, stride, padding):
    ax = diagrams.draw_conv_windows(size, kernel, stride, padding)
    out = (size + 2 * padding - kernel) // stride + 1  # floor((H + 2p - k) / s) + 1
    padded = size + 2 * padding
    texts = _texts(ax)
    assert f"output {out}×{out}" in texts and f"input {size}×{size}, padded to {padded}×{padded}" in texts
    assert texts.count("0") == padded**2 - size**2  # one zero per padding cell
    outlines = [p for p in ax.patches if not p.get_fill()]
    # The windows of outputs (0, 0) and (0, 1): kernel wide, `stride` apart.
    assert len(outlines) == min(out, 2)
    assert all(round(p.get_width() + 2 * (p.get_x() - stride * j)) == kernel for j, p in enumerate(outlines))


def test_conv_windows_reject_impossible_layers():
    with pytest.raises(ValueError, match="does not fit"):
        diagrams.draw_conv_windows(2, 5, 1, 0)
    with pytest.raises(ValueError, match="stride must be an int of at least 1"):
        diagrams.draw_conv_windows(5, 3, 0, 1)
