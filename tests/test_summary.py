"""resnet_lab.summary: parameter counts per stage, multiply-accumulates and the layer table."""

import pytest
import torch
from torch import nn

from resnet_lab.blocks import Bottleneck
from resnet_lab.models import get_model
from resnet_lab.summary import (
    conv2d_macs,
    count_macs,
    count_parameters,
    format_table,
    layer_table,
    parameters_by_stage,
)


def resnet20_macs() -> int:
    """ResNet-20's convolution and classifier MACs on a 32x32 image, counted by hand."""
    conv = lambda size, c_in, c_out: size * size * c_in * c_out * 9  # noqa: E731 - one output pixel: 9*c_in MACs
    stem = conv(32, 3, 16)
    stage1 = 6 * conv(32, 16, 16)
    stage2 = conv(16, 16, 32) + 5 * conv(16, 32, 32)  # the first conv halves the resolution
    stage3 = conv(8, 32, 64) + 5 * conv(8, 64, 64)
    return stem + stage1 + stage2 + stage3 + 64 * 10


def test_resnet20_macs_match_the_paper_and_a_hand_count():
    macs = count_macs(get_model("resnet20"), (1, 3, 32, 32))
    assert macs == resnet20_macs()
    assert round(macs / 1e6, 1) == 40.6


def test_resnet50_macs_at_224():
    # On the meta device shapes propagate without arithmetic: the count is the same, and instant.
    with torch.device("meta"):
        model = get_model("resnet50", num_classes=1000)
    assert round(count_macs(model, (1, 3, 224, 224)) / 1e9, 2) == 4.09


@pytest.mark.parametrize(
    ("conv", "size", "hand_count"),
    [
        # 3x3, padding 1, stride 1 on 32x32: 32*32 outputs per channel, each 3*3*3 products
        (nn.Conv2d(3, 16, 3, padding=1, bias=False), 32, 16 * 32 * 32 * 3 * 3 * 3),
        # 7x7 stride 2 on 224x224 (the ImageNet stem): floor((224 + 6 - 7) / 2) + 1 = 112
        (nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), 224, 64 * 112 * 112 * 3 * 7 * 7),
        # 1x1 stride 2 without padding on 7x7: floor((7 - 1) / 2) + 1 = 4; the bias is not counted
        (nn.Conv2d(8, 4, 1, stride=2), 7, 4 * 4 * 4 * 8),
        # grouped: each output reads in_channels / groups = 2 channels
        (nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False), 5, 8 * 5 * 5 * 2 * 3 * 3),
    ],
)
def test_a_single_convolution_is_counted_as_by_hand(conv, size, hand_count):
    out = conv(torch.zeros(1, conv.in_channels, size, size))
    assert count_macs(conv, (1, conv.in_channels, size, size)) == hand_count
    assert conv2d_macs(conv.in_channels, conv.out_channels, conv.kernel_size, out.shape[-2:], conv.groups) == hand_count


def test_conv2d_macs_rejects_groups_that_do_not_divide():
    with pytest.raises(ValueError, match="groups=3 must divide"):
        conv2d_macs(8, 8, 3, 4, groups=3)


def test_v1_and_v1_5_bottleneck_differ_by_the_first_1x1_at_full_resolution():
    # The first block of ResNet-50's stage 2: 256 channels in at 56x56, planes 128, stride 2. Only the first 1x1
    # convolution moves: v1.5 runs it on the 56x56 input, v1 (stride on the 1x1) on a 28x28 grid.
    v15 = Bottleneck(256, 128, stride=2)
    v1 = Bottleneck(256, 128, stride=2, stride_in_1x1=True)
    size = (1, 256, 56, 56)
    assert count_parameters(v1) == count_parameters(v15)
    shared = conv2d_macs(128, 128, 3, 28) + conv2d_macs(128, 512, 1, 28) + conv2d_macs(256, 512, 1, 28)
    assert count_macs(v15, size) == conv2d_macs(256, 128, 1, 56) + shared
    assert count_macs(v1, size) == conv2d_macs(256, 128, 1, 28) + shared
    assert count_macs(v15, size) - count_macs(v1, size) == 256 * 128 * (56 * 56 - 28 * 28)


def test_resnet50_v1_costs_the_three_downsampling_1x1_convolutions_less():
    with torch.device("meta"):
        v15 = get_model("resnet50", num_classes=1000)
        v1 = get_model("resnet50", num_classes=1000, stride_in_1x1=True)
    image = (1, 3, 224, 224)
    assert count_parameters(v1) == count_parameters(v15)
    # stages 2-4 start at 56, 28 and 14 pixels with 256, 512 and 1024 channels and planes 128, 256, 512
    starts = [(256, 56), (512, 28), (1024, 14)]
    saved = sum(conv2d_macs(c, c // 2, 1, h) - conv2d_macs(c, c // 2, 1, h // 2) for c, h in starts)
    assert count_macs(v15, image) - count_macs(v1, image) == saved
    assert round(count_macs(v1, image) / 1e9, 2) == 3.86  # He et al. (2016), table 1: 3.8 x 10^9


def test_macs_on_the_meta_device_equal_real_ones():
    with torch.device("meta"):
        meta = get_model("preact_resnet20")
    assert count_macs(meta, (1, 3, 32, 32)) == count_macs(get_model("preact_resnet20"), (1, 3, 32, 32))


def test_macs_scale_with_the_batch_and_leave_the_model_untouched():
    model = get_model("resnet8").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    one = count_macs(model, (1, 3, 16, 16))
    assert count_macs(model, (3, 3, 16, 16)) == 3 * one
    assert model.training  # the measurement ran in eval mode and restored training mode
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics unchanged


def test_count_parameters_trainable_only():
    model = get_model("resnet8")
    model.fc.requires_grad_(False)
    assert count_parameters(model) - count_parameters(model, trainable_only=True) == 64 * 10 + 10


def test_parameters_by_stage():
    stages = parameters_by_stage(get_model("resnet20"))
    assert list(stages) == ["stem", "layer1", "layer2", "layer3", "fc"]
    assert stages["stem"] == 3 * 16 * 9 + 2 * 16 and stages["fc"] == 64 * 10 + 10
    assert sum(stages.values()) == 269_722
    with torch.device("meta"):
        assert list(parameters_by_stage(get_model("resnet18"))) == [
            "stem",
            "layer1",
            "layer2",
            "layer3",
            "layer4",
            "fc",
        ]
        assert "bn_final" in parameters_by_stage(get_model("preact_resnet164"))


def test_layer_table_rows_and_text():
    table = layer_table(get_model("resnet20"), (1, 3, 32, 32))
    rows = {row.name: row for row in table}
    # ReLU and the identity max-pool neither hold parameters nor change the shape: the compact table skips them.
    assert list(rows) == ["conv1", "bn1", "layer1", "layer2", "layer3", "avgpool", "fc"]
    assert rows["layer1"].output_shape == (1, 16, 32, 32)
    assert rows["layer2"].output_shape == (1, 32, 16, 16)
    assert rows["layer3"].output_shape == (1, 64, 8, 8)
    assert rows["fc"].output_shape == (1, 10) and rows["fc"].macs == 640
    assert (
        rows["layer2"].type == "Sequential"
        and rows["layer2"].params == parameters_by_stage(get_model("resnet20"))["layer2"]
    )
    assert sum(row.macs for row in table) == table.total_macs == resnet20_macs()
    text = str(table)
    assert text.splitlines()[0].split() == ["layer", "type", "output", "shape", "params", "MACs"]
    assert text.splitlines()[-1].split() == ["total", "269,722", "40,551,040"]
    assert repr(table) == text


def test_layer_table_levels():
    model = get_model("resnet8")
    full = layer_table(model, (1, 3, 16, 16), compact=False)
    assert "relu" in [row.name for row in full] and "maxpool" in [row.name for row in full]
    blocks = layer_table(model, (1, 3, 16, 16), level=2)
    names = [row.name for row in blocks]
    assert names == ["conv1", "bn1", "layer1.0", "layer2.0", "layer3.0", "avgpool", "fc"]
    assert blocks[3].output_shape == (1, 32, 8, 8)
    with pytest.raises(ValueError, match="level must be a positive int"):
        layer_table(model, level=0)


def test_format_table_without_totals():
    text = format_table(layer_table(get_model("resnet8"), (1, 3, 16, 16)))
    assert "total" not in text and text.splitlines()[2].startswith("conv1")
