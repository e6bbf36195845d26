"""resnet_lab.models: paper parameter counts, torchvision compatibility, names, specs and error messages."""

import json
import warnings

import pytest
import torch
import torchvision
from torch import nn

from resnet_lab.blocks import BasicBlock, Bottleneck, PreActBlock, PreActBottleneck
from resnet_lab.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from resnet_lab.models import (
    ModelName,
    ResNet,
    get_model,
    legacy_checkpoint_problem,
    list_models,
    model_label,
    parse_model_name,
    resnet18_cifar,
    resnet50,
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
    # Parameter counts of the pre-activation networks: test_preact_parameter_counts_against_the_paper.


# He et al. 2016b ("Identity mappings"), CIFAR-10 comparison table, parameter column: 1.7M and 10.2M.
PAPER_PREACT_MILLIONS = {164: 1.7, 1001: 10.2}


def _batch_norm_parameters(model: nn.Module) -> int:
    return sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())


@pytest.mark.parametrize("depth", PAPER_PREACT_MILLIONS)
def test_preact_parameter_counts_against_the_paper(depth):
    """Our pre-activation bottleneck networks against the counts of He et al. 2016b.

    Layer for layer they are resnet-pre-act.lua, the authors' code: a 16-channel 3x3 stem conv, 3 stages of
    (depth - 2) / 9 bottlenecks at 16/32/64 planes (64/128/256 channels), a bare 1x1 projection where a stage
    begins, a final BN-ReLU and a 10-way linear layer. ResNet-164 has 1,703,258 parameters: 1.7M, as printed.
    ResNet-1001 has 10,327,706, which the paper's one decimal would print as 10.3M, not 10.2M. Without the
    scale and shift of its 2 x 74,608 BN channels it has 10,178,490, which rounds to 10.2M: the paper's count
    is consistent with leaving BN's parameters out (it does not say how it counted). The stem (432 weights)
    and the final BN (512) are far too small to explain 0.15M. The earlier BN after each pre-activation
    projection (896 parameters) was not the cause either.
    """
    with torch.device("meta"):  # counts need shapes only; ResNet-1001 would take seconds to initialize
        model = get_model(f"preact_resnet{depth}")
    total = count_parameters(model)
    assert total == {164: 1_703_258, 1001: 10_327_706}[depth]
    without_bn = total - _batch_norm_parameters(model)
    assert round(without_bn / 1e6, 1) == PAPER_PREACT_MILLIONS[depth]
    if depth == 164:
        assert round(total / 1e6, 1) == PAPER_PREACT_MILLIONS[depth]


def test_preact_networks_follow_the_authors_code():
    """Bare projections on the shared BN-ReLU output, and (bottleneck networks) the stride on the first 1x1."""
    with torch.device("meta"):
        deep = get_model("preact_resnet164")
        shallow = get_model("preact_resnet110")
    for model in (deep, shallow):
        projections = [b.downsample for s in (model.layer1, model.layer2, model.layer3) for b in s if b.downsample]
        assert projections and all(isinstance(p, nn.Conv2d) for p in projections)
    assert deep.stride_in_1x1 is True and shallow.stride_in_1x1 is None
    first = deep.layer2[0]
    assert first.conv1.stride == (2, 2) and first.conv2.stride == (1, 1)
    assert deep.layer1[0].conv1.stride == (1, 1)  # stage 1 keeps the resolution
    # fb.resnet.torch's placement on request.
    with torch.device("meta"):
        v15 = get_model("preact_resnet164", stride_in_1x1=False)
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)
    assert count_parameters(v15) == count_parameters(deep)


@pytest.mark.parametrize(
    "name, default",
    [("resnet50", False), ("resnet152", False), ("resnet50_cifar", False), ("preact_resnet164", True)],
)
def test_stride_in_1x1_defaults_and_option(name, default):
    with torch.device("meta"):
        model = get_model(name)
        other = get_model(name, stride_in_1x1=not default)
    for net, flag in ((model, default), (other, not default)):
        assert net.stride_in_1x1 is flag
        block = net.layer2[0]
        assert isinstance(block, (Bottleneck, PreActBottleneck)) and block.stride_in_1x1 is flag
        assert (block.conv1.stride, block.conv2.stride) == (((2, 2), (1, 1)) if flag else ((1, 1), (2, 2)))
    assert other.spec["stride_in_1x1"] is (not default)


def test_stride_in_1x1_in_the_builders():
    assert resnet50(stride_in_1x1=True).layer3[0].conv1.stride == (2, 2)
    assert resnet_cifar(119, bottleneck=True, preact=True, width=4).stride_in_1x1 is True
    assert resnet_cifar(29, bottleneck=True, width=4).stride_in_1x1 is False  # the original block: torchvision's
    assert resnet_cifar(29, bottleneck=True, width=4, stride_in_1x1=True).layer2[0].conv1.stride == (2, 2)


@pytest.mark.parametrize("name", ["resnet18", "resnet34_cifar", "resnet20", "plain20", "preact_resnet110"])
@pytest.mark.parametrize("value", [True, False])
def test_stride_in_1x1_refused_for_basic_block_networks(name, value):
    with pytest.raises(ValueError, match=rf"stride_in_1x1 applies to bottleneck blocks only, and {name} is built"):
        get_model(name, stride_in_1x1=value)


def test_stride_in_1x1_must_be_a_bool():
    with pytest.raises(TypeError, match="stride_in_1x1 must be True or False, got str 'yes'"):
        get_model("resnet50", stride_in_1x1="yes")


def test_torchvision_resnet50_keeps_its_stride_placement():
    """The default loads torchvision's weights and matches its outputs; v1 has the same keys but other outputs."""
    torch.manual_seed(0)
    reference = torchvision.models.resnet50(weights=None).eval()
    ours = get_model("resnet50", num_classes=1000).eval()
    v1 = get_model("resnet50", num_classes=1000, stride_in_1x1=True).eval()
    assert reference.layer2[0].conv2.stride == ours.layer2[0].conv2.stride == (2, 2)
    ours.load_state_dict(reference.state_dict(), strict=True)
    v1.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))
        assert not torch.allclose(v1(x), reference(x))


def _save(model, path):
    return save_checkpoint(
        {"model_spec": model.spec, "model": model.state_dict(), "mean": [0.5] * 3, "std": [0.25] * 3,
         "classes": [f"c{i}" for i in range(10)]},
        path,
    )


@pytest.mark.parametrize(
    "name, options",
    [("resnet50", {"stride_in_1x1": True}), ("preact_resnet119", {"width": 4}),
     ("preact_resnet119", {"width": 4, "stride_in_1x1": False})],
)
def test_stride_in_1x1_round_trips_through_a_checkpoint(tmp_path, name, options):
    torch.manual_seed(0)
    model = get_model(name, **options).eval()
    assert "stride_in_1x1" in model.spec
    loaded, meta = load_checkpoint(_save(model, tmp_path / "best.pt"))
    assert meta["model_spec"] == model.spec
    assert loaded.stride_in_1x1 is model.stride_in_1x1
    assert loaded.layer2[0].conv1.stride == model.layer2[0].conv1.stride
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_an_older_preact_checkpoint_with_bn_in_the_shortcut_is_refused(tmp_path):
    """Before issue 22 a pre-activation projection was conv + BN: such weights must not load, and the error says why."""
    model = get_model("preact_resnet20", width=4)
    state = model.state_dict()
    for key in [k for k in state if k.endswith("downsample.weight")]:
        prefix = key.removesuffix("weight")
        channels = state[key].shape[0]
        state[prefix + "0.weight"] = state.pop(key)
        state[prefix + "1.weight"], state[prefix + "1.bias"] = torch.ones(channels), torch.zeros(channels)
        state[prefix + "1.running_mean"], state[prefix + "1.running_var"] = torch.zeros(channels), torch.ones(channels)
        state[prefix + "1.num_batches_tracked"] = torch.tensor(0)
    path = save_checkpoint(
        {"model_spec": {"name": "preact_resnet20", "num_classes": 10, "width": 4}, "model": state,
         "mean": [0.5] * 3, "std": [0.25] * 3, "classes": [f"c{i}" for i in range(10)]},
        tmp_path / "old.pt",
    )
    with pytest.raises(CheckpointError, match=r"older resnet_lab: its projection shortcuts have a BN.*Retrain"):
        load_checkpoint(path)


def test_an_older_preact_bottleneck_checkpoint_is_refused_even_without_projections(tmp_path):
    """Option A has no shortcut weights, so only the spec tells that the stride sat on the 3x3 conv."""
    model = get_model("preact_resnet119", width=4, shortcut="A")
    old_spec = {k: v for k, v in model.spec.items() if k != "stride_in_1x1"}
    path = _save(model, tmp_path / "old.pt")
    payload = torch.load(path, weights_only=True)
    payload["model_spec"] = old_spec
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="does not record stride_in_1x1.*first 1x1 conv"):
        load_checkpoint(path)
    assert legacy_checkpoint_problem(model.spec, model.state_dict()) is None


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
    valid = r"Valid options: num_classes, batch_norm, in_channels, "
    with pytest.raises(ValueError, match=r"unknown option\(s\) depth\. " + valid):
        get_model("resnet20", depth=56)
    # Width is an option of the CIFAR networks only.
    with pytest.raises(ValueError, match=r"unknown option\(s\) width"):
        get_model("resnet18", width=32)
    # So is batch_norm (chapter 5's networks without BN).
    with pytest.raises(ValueError, match=r"unknown option\(s\) batch_norm"):
        get_model("resnet18", batch_norm=False)


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
