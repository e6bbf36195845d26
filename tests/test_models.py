"""resnet_lab.models: paper parameter counts, torchvision compatibility, names, specs and error messages."""

import json
import warnings

import pytest
import torch
import torchvision
from torch import nn

from resnet_lab.blocks import BasicBlock, PreActBlock, PreActBottleneck
from resnet_lab.models import (
    ModelName,
    ResNet,
    get_model,
    list_models,
    model_label,
    parse_model_name,
    resnet18_cifar,
    resnet_cifar,
)
from resnet_lab.summary import count_parameters

# He et al. 2016, section 4.2: option-A CIFAR ResNets with 10 classes (the paper rounds: 0.27M, 0.46M, ...).
PAPER_COUNTS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    """True when both state dicts have the same keys and equal tensors."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("depth", PAPER_COUNTS)
def test_cifar_parameter_counts_and_plain_twins(depth):
    assert count_parameters(get_model(f"resnet{depth}")) == PAPER_COUNTS[depth]
    assert count_parameters(get_model(f"plain{depth}")) == PAPER_COUNTS[depth]


def test_resnet18_cifar_parameter_count():
    assert count_parameters(get_model("resnet18_cifar")) == 11_173_962


def test_listed_names_build():
    names = list_models()
    for required in ("resnet20", "resnet1202", "plain20", "plain110", "preact_resnet110", "preact_resnet164"):
        assert required in names
    # The two deepest take seconds to build and run the same code as resnet110 and preact_resnet164.
    names = [name for name in names if name not in ("resnet1202", "preact_resnet1001")]
    # The meta device builds the structure without allocating memory.
    with torch.device("meta"):
        models = {name: get_model(name) for name in names}
    assert all(model.spec["name"] == name for name, model in models.items())
    # The pre-activation paper rounds ResNet-164 to 1.7M parameters.
    assert round(count_parameters(models["preact_resnet164"]) / 1e6, 1) == 1.7


def test_cifar_layout():
    model = get_model("resnet20")
    assert model.conv1.kernel_size == (3, 3) and model.conv1.out_channels == 16
    assert model.layer4 is None
    for stage, width in zip((model.layer1, model.layer2, model.layer3), (16, 32, 64)):
        assert len(stage) == 3 and all(isinstance(b, BasicBlock) for b in stage)
        assert stage[-1].conv2.out_channels == width
    assert model.fc.in_features == 64
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_preact_networks_use_the_papers_blocks():
    shallow = get_model("preact_resnet110")
    deep = get_model("preact_resnet164")
    assert len(shallow.layer1) == 18 and isinstance(shallow.layer1[0], PreActBlock)
    assert len(deep.layer1) == 18 and isinstance(deep.layer1[0], PreActBottleneck)
    # No BN-ReLU in the stem; a final BN-ReLU before pooling instead.
    assert deep.bn1 is None and deep.bn_final.num_features == 256
    small = get_model("preact_resnet20", width=4).eval()
    assert small(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_any_cifar_depth_through_the_pattern():
    model = get_model("plain8", num_classes=3)
    assert len(model.layer1) == 1 and not model.layer1[0].residual
    assert model.spec == {"name": "plain8", "num_classes": 3}


@pytest.mark.parametrize("depth", [18, 50])
def test_torchvision_weights_load_and_give_identical_outputs(depth):
    torch.manual_seed(0)
    reference = getattr(torchvision.models, f"resnet{depth}")(weights=None).eval()
    torch.manual_seed(0)
    ours = get_model(f"resnet{depth}", num_classes=1000).eval()
    # Same modules built and initialized in the same order: the same seed already gives torchvision's weights.
    assert same_weights(ours, reference)
    ours.fc.weight.data.zero_()  # so that the loading below has something to restore
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))
    assert count_parameters(ours) == {18: 11_689_512, 50: 25_557_032}[depth]


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_state_dict_keys_and_shapes_match_torchvision(depth):
    with torch.device("meta"):
        reference = getattr(torchvision.models, f"resnet{depth}")(weights=None).state_dict()
        ours = get_model(f"resnet{depth}", num_classes=1000).state_dict()
    assert list(ours) == list(reference)
    assert all(ours[key].shape == reference[key].shape for key in ours)


def test_resnet18_cifar_stem_and_input_size_independence():
    model = resnet18_cifar().eval()
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 16, 16)).shape == (1, 10)
        assert model(torch.randn(1, 3, 24, 20)).shape == (1, 10)


def test_plain_and_residual_share_weights_but_not_outputs():
    torch.manual_seed(0)
    residual = get_model("resnet20")
    torch.manual_seed(0)
    plain = get_model("plain20")
    assert same_weights(residual, plain)
    x = torch.randn(2, 3, 16, 16)
    assert not torch.allclose(residual.eval()(x), plain.eval()(x))


def test_plain_networks_have_no_shortcut_layers_whatever_the_option():
    plain = get_model("plain20", shortcut="C")
    assert all(block.downsample is None for stage in (plain.layer1, plain.layer2, plain.layer3) for block in stage)
    assert count_parameters(plain) == PAPER_COUNTS[20]


def test_shortcut_options_change_the_count_as_expected():
    projections = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)  # 1x1 conv + BN where the width doubles
    assert count_parameters(get_model("resnet20", shortcut="B")) == PAPER_COUNTS[20] + projections
    assert count_parameters(get_model("resnet20", shortcut="C")) > count_parameters(get_model("resnet20", shortcut="B"))


def test_zero_init_residual():
    model = get_model("resnet20", zero_init_residual=True)
    blocks = [block for stage in (model.layer1, model.layer2, model.layer3) for block in stage]
    assert all(torch.count_nonzero(block.bn2.weight) == 0 for block in blocks)
    assert all(torch.count_nonzero(block.bn1.weight) == block.bn1.num_features for block in blocks)


def test_zero_init_residual_refused_for_plain_networks():
    with pytest.raises(ValueError, match="zero_init_residual needs residual connections"):
        get_model("plain20", zero_init_residual=True)


def test_spec_is_json_and_rebuilds_the_model():
    model = get_model("resnet32", num_classes=100, shortcut="B", width=8)
    assert model.spec == {"name": "resnet32", "num_classes": 100, "shortcut": "B", "width": 8}
    rebuilt = get_model(**json.loads(json.dumps(model.spec)))
    state, rebuilt_state = model.state_dict(), rebuilt.state_dict()
    assert state.keys() == rebuilt_state.keys()
    assert all(state[k].shape == rebuilt_state[k].shape for k in state)
    assert resnet_cifar(20).spec is None  # only get_model records a recipe


def test_in_channels_option():
    model = get_model("resnet8", in_channels=1)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_channels_last_and_compile_pass_the_input_check():
    model = get_model("resnet8").eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
        assert torch.allclose(model(x.to(memory_format=torch.channels_last)), expected, atol=1e-5)
        compiled = torch.compile(model, backend="eager")
        assert torch.allclose(compiled(x), expected, atol=1e-5)
        with pytest.raises(ValueError, match="unsqueeze"):
            compiled(x[0])


def test_torchscript_still_works():
    model = get_model("resnet8").eval()
    x = torch.randn(2, 3, 16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated in recent PyTorch
        scripted = torch.jit.script(model)
    with torch.no_grad():
        assert torch.allclose(scripted(x), model(x))


# ----- error messages -----


@pytest.mark.parametrize(
    "name, message",
    [
        ("resnet21", r"ResNet-21 is not a CIFAR ResNet depth: depth must be 6n\+2.*Nearest valid depths: 20 and 26\."),
        ("plain57", r"Plain-57 .*6n\+2.*Nearest valid depths: 56 and 62\."),
        ("resnet5", r"ResNet-5 .*Nearest valid depth: 8\."),
        ("preact_resnet120", r"PreAct-ResNet-120 .*9n\+2.*bottleneck.*Nearest valid depths: 119 and 128\."),
    ],
)
def test_invalid_depth_messages(name, message):
    with pytest.raises(ValueError, match=message):
        get_model(name)


def test_invalid_depth_for_resnet_cifar():
    with pytest.raises(ValueError, match=r"9n\+2.*Nearest valid depths: 29 and 38"):
        resnet_cifar(30, bottleneck=True)
    with pytest.raises(TypeError, match="depth must be an int"):
        resnet_cifar(20.0)


def test_unknown_name_lists_names_and_the_closest_match():
    with pytest.raises(ValueError, match=r"Unknown model 'resnet_fifty'\. Did you mean 'resnet50_cifar'.*resnet20, "):
        get_model("resnet_fifty")
    with pytest.raises(ValueError, match=r"Did you mean 'resnet20'"):
        get_model("ResNet-20")
    with pytest.raises(TypeError, match="name must be a string"):
        get_model(20)


def test_unknown_option_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown option\(s\) depth\. Valid options: num_classes, in_channels, "):
        get_model("resnet20", depth=56)
    # Width is an option of the CIFAR networks only.
    with pytest.raises(ValueError, match=r"unknown option\(s\) width"):
        get_model("resnet18", width=32)


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"shortcut": "D"}, ValueError, "shortcut must be 'A', 'B' or 'C'"),
        ({"in_channels": 0}, ValueError, "in_channels must be at least 1"),
        ({"width": 2.5}, ValueError, "width must be an int of at least 1, got float 2.5"),
        ({"width": 0}, ValueError, "width must be at least 1, got 0"),
        ({"in_channels": True}, ValueError, "in_channels must be an int of at least 1, got bool True"),
        ({"zero_init_residual": "yes"}, TypeError, "zero_init_residual must be True or False"),
    ],
)
def test_invalid_option_values(options, error, message):
    with pytest.raises(error, match=message):
        get_model("resnet8", **options)


def test_invalid_num_classes():
    with pytest.raises(ValueError, match="num_classes must be at least 1"):
        get_model("resnet8", num_classes=0)
    with pytest.raises(ValueError, match="num_classes must be an int of at least 1, got str '10'"):
        get_model("resnet18", num_classes="10")


# ----- names and labels -----


@pytest.mark.parametrize(
    "name, family, depth, label",
    [
        ("resnet56", "resnet", 56, "ResNet-56"),
        ("plain56", "plain", 56, "plain-56"),
        ("resnet8", "resnet", 8, "ResNet-8"),
        ("plain1202", "plain", 1202, "plain-1202"),
        ("preact_resnet164", "preact", 164, "PreAct-ResNet-164"),
        ("resnet18", "imagenet", 18, "ResNet-18"),
        ("resnet152", "imagenet", 152, "ResNet-152"),
        ("resnet50_cifar", "cifar_stem", 50, "ResNet-50 (CIFAR stem)"),
    ],
)
def test_parse_model_name_and_label(name, family, depth, label):
    parsed = parse_model_name(name)
    assert parsed == ModelName(family, depth) and parsed.family == family and parsed.depth == depth
    assert model_label(name) == label


def test_every_listed_name_parses_and_has_a_label():
    labels = [model_label(name) for name in list_models()]
    assert len(set(labels)) == len(labels), "two models must not share a label"


def test_parse_accepts_any_cifar_depth_but_get_model_checks_it():
    assert parse_model_name("resnet21") == ("resnet", 21)
    with pytest.raises(ValueError, match="not a CIFAR ResNet depth"):
        get_model("resnet21")


@pytest.mark.parametrize("name", ["ResNet-56", "resnet", "plain056", "resnet56x", "vgg16", "resnet0", ""])
def test_parse_refuses_unknown_names_like_get_model(name):
    with pytest.raises(ValueError, match=rf"Unknown model '{name}'\."):
        parse_model_name(name)
    with pytest.raises(ValueError, match=rf"Unknown model '{name}'\."):
        model_label(name)


def test_parse_refuses_a_non_string():
    with pytest.raises(TypeError, match="name must be a string"):
        parse_model_name(56)


@pytest.mark.parametrize(
    "shape, dtype, error, message",
    [
        ((3, 32, 32), torch.float32, ValueError, r"\(N, 3, H, W\); got a single image .*x\.unsqueeze\(0\)"),
        ((32, 32), torch.float32, ValueError, r"\(N, 3, H, W\); got a 2-D tensor shaped \(32, 32\)"),
        ((2, 32, 32, 3), torch.float32, ValueError, r"looks channels-last.*x\.permute\(0, 3, 1, 2\)"),
        ((2, 1, 32, 32), torch.float32, ValueError, r"with 1 channel\(s\) in dimension 1.*in_channels=1"),
        ((2, 3, 32, 32), torch.uint8, TypeError, r"float images.*torch\.uint8"),
    ],
)
def test_bad_input_messages(shape, dtype, error, message):
    model = get_model("resnet8")
    with pytest.raises(error, match=r"resnet8 expects .*" + message):
        model(torch.zeros(shape, dtype=dtype))


def test_resnet_class_checks_its_layout():
    with pytest.raises(ValueError, match="3 or 4 stages"):
        ResNet(BasicBlock, (2, 2), (16, 32))
    with pytest.raises(ValueError, match="stem must be 'imagenet'"):
        ResNet(BasicBlock, (1, 1, 1), (16, 32, 64), stem="tiny")
