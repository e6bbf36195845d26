"""resnet_lab.blocks: shapes, shortcut options A/B/C, plain twins, initialization and the residual Jacobian."""

import math

import pytest
import torch
from torch import nn

from resnet_lab.blocks import (
    BLOCKS,
    BasicBlock,
    Bottleneck,
    PadShortcut,
    PreActBlock,
    PreActBottleneck,
    init_weights,
    make_shortcut,
)
from resnet_lab.summary import count_macs, count_parameters

PREACT_BLOCKS = (PreActBlock, PreActBottleneck)


def conv_bn_params(in_planes: int, out_planes: int, kernel: int) -> int:
    """Parameters of a bias-free conv followed by a BN (scale and shift per channel)."""
    return in_planes * out_planes * kernel * kernel + 2 * out_planes


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("shortcut", ["A", "B", "C"])
@pytest.mark.parametrize("stride", [1, 2])
def test_output_shape(block, shortcut, stride):
    module = block(4, 8, stride, shortcut=shortcut)
    out = module(torch.randn(2, 4, 7, 7))
    # A 3x3 conv with padding 1 and stride 2 maps 7 pixels to 4; option A's subsampling must agree.
    size = 7 if stride == 1 else 4
    assert out.shape == (2, 8 * block.expansion, size, size)


def test_pad_shortcut_subsamples_and_appends_zero_channels():
    x = torch.randn(2, 3, 6, 6)
    out = PadShortcut(3, 5, stride=2)(x)
    assert out.shape == (2, 5, 3, 3)
    assert torch.equal(out[:, :3], x[:, :, ::2, ::2])
    assert torch.count_nonzero(out[:, 3:]) == 0
    assert count_parameters(PadShortcut(3, 5, 2)) == 0


def test_pad_shortcut_cannot_remove_channels():
    with pytest.raises(ValueError, match="can only add channels.*projection shortcut"):
        PadShortcut(8, 4)


def test_shortcut_options_follow_the_paper():
    # Shape unchanged: A and B are the identity, C projects.
    assert make_shortcut("A", 16, 16, 1) is None
    assert make_shortcut("B", 16, 16, 1) is None
    assert isinstance(make_shortcut("C", 16, 16, 1), nn.Sequential)
    # Shape changes: A pads without parameters; in the original blocks, B and C project with a 1x1 conv and a BN.
    assert isinstance(make_shortcut("A", 16, 32, 2), PadShortcut)
    for option in "BC":
        conv, bn = make_shortcut(option, 16, 32, 2)
        assert conv.kernel_size == (1, 1) and conv.stride == (2, 2) and conv.bias is None
        assert isinstance(bn, nn.BatchNorm2d)
    # Plain blocks have no shortcut at all.
    assert all(make_shortcut(option, 16, 32, 2, residual=False) is None for option in "ABC")


def test_preact_projection_is_a_bare_strided_conv():
    """As in resnet-pre-act.lua and preresnet.lua: a 1x1 conv with the block's stride, no BN after it."""
    conv = make_shortcut("B", 16, 32, 2, preact=True)
    assert isinstance(conv, nn.Conv2d)
    assert conv.kernel_size == (1, 1) and conv.stride == (2, 2) and conv.bias is None
    assert isinstance(make_shortcut("C", 32, 32, 1, preact=True), nn.Conv2d)
    assert make_shortcut("B", 32, 32, 1, preact=True) is None
    assert isinstance(make_shortcut("A", 16, 32, 2, preact=True), PadShortcut)


@pytest.mark.parametrize("block", PREACT_BLOCKS)
@pytest.mark.parametrize("shortcut", ["B", "C"])
def test_preact_block_projection_has_no_batch_norm(block, shortcut):
    module = block(16, 32 // block.expansion, stride=2, shortcut=shortcut)
    assert isinstance(module.downsample, nn.Conv2d) and module.projection
    assert module.downsample.stride == (2, 2) and module.downsample.out_channels == 32
    # The block's only BNs are those of its branch: one per convolution of F.
    batch_norms = [name for name, m in module.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert batch_norms == (["bn1", "bn2"] if block is PreActBlock else ["bn1", "bn2", "bn3"])
    without_shortcut = count_parameters(block(16, 32 // block.expansion, stride=2, shortcut="A"))
    assert count_parameters(module) == without_shortcut + 16 * 32  # the 1x1 weights, nothing else


@pytest.mark.parametrize("block", PREACT_BLOCKS)
@pytest.mark.parametrize("shortcut", ["A", "B", "C"])
def test_preact_shortcut_input(block, shortcut):
    """A projection reads the shared BN-ReLU output; option A (no parameters) reads x itself."""
    module = block(8, 16 // block.expansion, stride=2, shortcut=shortcut).train()
    seen = []
    module.downsample.register_forward_hook(lambda _, inputs, output: seen.append(inputs[0].clone()))
    x = torch.randn(4, 8, 6, 6)
    with torch.no_grad():
        activated = torch.relu(nn.functional.batch_norm(x, None, None, module.bn1.weight, module.bn1.bias,
                                                         training=True))
        module(x)
    expected = x if shortcut == "A" else activated
    assert len(seen) == 1 and torch.allclose(seen[0], expected, atol=1e-5)
    # BN updates its running statistics once per forward pass: the two paths share one BN-ReLU.
    assert module.bn1.num_batches_tracked.item() == 1


def test_unknown_shortcut_message():
    with pytest.raises(ValueError, match=r"shortcut must be 'A', 'B' or 'C'.*got 'D'.*projection always"):
        BasicBlock(16, 16, shortcut="D")


def test_basic_block_parameter_counts():
    branch = conv_bn_params(16, 32, 3) + conv_bn_params(32, 32, 3)
    projection = conv_bn_params(16, 32, 1)
    assert count_parameters(BasicBlock(16, 32, 2, shortcut="A")) == branch
    assert count_parameters(BasicBlock(16, 32, 2, shortcut="B")) == branch + projection
    assert count_parameters(BasicBlock(16, 32, 2, shortcut="C")) == branch + projection
    same = conv_bn_params(16, 16, 3) * 2
    assert count_parameters(BasicBlock(16, 16, shortcut="B")) == same
    assert count_parameters(BasicBlock(16, 16, shortcut="C")) == same + conv_bn_params(16, 16, 1)


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("shortcut", ["A", "B", "C"])
def test_plain_twin_has_the_branch_and_no_shortcut(block, shortcut):
    plain = block(4, 8, 2, shortcut=shortcut, residual=False)
    assert plain.downsample is None
    assert count_parameters(plain) == count_parameters(block(4, 8, 2, shortcut="A"))


@pytest.mark.parametrize("block", BLOCKS)
def test_same_seed_gives_the_same_weights_for_plain_and_residual(block):
    torch.manual_seed(0)
    residual = block(8, 8, shortcut="A").state_dict()
    torch.manual_seed(0)
    plain = block(8, 8, shortcut="A", residual=False).state_dict()
    assert residual.keys() == plain.keys()
    assert all(torch.equal(residual[key], plain[key]) for key in residual)


def test_bottleneck_strides_on_the_3x3_conv_like_torchvision():
    block = Bottleneck(64, 64, stride=2)
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    assert block.conv3.out_channels == 256


BOTTLENECKS = (Bottleneck, PreActBottleneck)


@pytest.mark.parametrize("block", BOTTLENECKS)
@pytest.mark.parametrize("stride_in_1x1", [False, True])
def test_bottleneck_stride_placement(block, stride_in_1x1):
    """False: stride on the 3x3 (torchvision, fb.resnet.torch); True: on the first 1x1 (v1, resnet-pre-act.lua)."""
    module = block(32, 16, stride=2, shortcut="B", stride_in_1x1=stride_in_1x1)
    assert module.stride_in_1x1 is stride_in_1x1
    strided, unstrided = (module.conv1, module.conv2) if stride_in_1x1 else (module.conv2, module.conv1)
    assert strided.stride == (2, 2) and unstrided.stride == (1, 1) and module.conv3.stride == (1, 1)
    # The 3x3 conv sees the halved map only when the 1x1 before it strides.
    sizes = []
    module.conv2.register_forward_hook(lambda _, inputs, output: sizes.append(tuple(inputs[0].shape[2:])))
    out = module(torch.randn(2, 32, 7, 7))
    # floor((7 + 2*0 - 1)/2) + 1 = floor((7 + 2*1 - 3)/2) + 1 = 4: either placement gives the same output size.
    assert out.shape == (2, 64, 4, 4)
    assert sizes == [(4, 4) if stride_in_1x1 else (7, 7)]
    # Same parameters, fewer multiply-accumulates when the 3x3 works at the lower resolution.
    other = block(32, 16, stride=2, shortcut="B", stride_in_1x1=not stride_in_1x1)
    assert count_parameters(module) == count_parameters(other)
    macs, other_macs = count_macs(module, (1, 32, 8, 8)), count_macs(other, (1, 32, 8, 8))
    assert (macs < other_macs) is stride_in_1x1


@pytest.mark.parametrize("block", BOTTLENECKS)
def test_stride_in_1x1_defaults_to_torchvision_and_is_checked(block):
    assert block(8, 4, stride=2).stride_in_1x1 is False
    with pytest.raises(TypeError, match="stride_in_1x1 must be True or False, got int 1"):
        block(8, 4, stride=2, stride_in_1x1=1)
    # Keyword-only: a fourth positional argument stays the shortcut option.
    with pytest.raises(TypeError):
        block(8, 4, 2, "B", True, True)


@pytest.mark.parametrize("block", [BasicBlock, PreActBlock])
def test_basic_blocks_have_no_stride_option(block):
    with pytest.raises(TypeError, match="stride_in_1x1"):
        block(8, 8, stride=2, stride_in_1x1=True)


def test_convs_before_bn_have_no_bias():
    for block in BLOCKS:
        convs = [m for m in block(8, 4, 2, shortcut="C").modules() if isinstance(m, nn.Conv2d)]
        assert convs and all(conv.bias is None for conv in convs)


def test_init_weights_kaiming_fan_out():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(256, 256, 3, bias=False), nn.BatchNorm2d(256))
    model[1].weight.data.fill_(3.0)
    init_weights(model)
    fan_out = 256 * 3 * 3
    assert model[0].weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.02)
    assert torch.equal(model[1].weight, torch.ones(256)) and torch.equal(model[1].bias, torch.zeros(256))


@pytest.mark.parametrize("block", BLOCKS)
def test_zero_init_residual_makes_each_block_start_at_the_identity(block):
    torch.manual_seed(0)
    module = block(16, 16 // block.expansion, shortcut="A")
    init_weights(module, zero_init_residual=True)
    module.eval()
    x = torch.randn(2, 16, 5, 5)
    with torch.no_grad():
        out = module(x)
    # Post-activation blocks apply a ReLU after the addition; pre-activation blocks return the sum itself.
    expected = x if block in PREACT_BLOCKS else torch.relu(x)
    assert torch.allclose(out, expected)
    # Without zero init, the branch contributes.
    init_weights(module)
    with torch.no_grad():
        assert not torch.allclose(module(x), expected)


@pytest.mark.parametrize("block", PREACT_BLOCKS)
def test_residual_jacobian_is_identity_plus_branch_jacobian(block):
    """d(x + F(x))/dx = I + dF/dx; the plain twin (same weights) has dF/dx alone."""
    torch.manual_seed(0)
    residual = block(8, 8 // block.expansion, shortcut="A").double().eval()
    torch.manual_seed(0)
    plain = block(8, 8 // block.expansion, shortcut="A", residual=False).double().eval()
    # Kaiming weights and non-trivial BN statistics, shared by both, give the branch a sizeable Jacobian.
    for net in (residual, plain):
        torch.manual_seed(1)
        init_weights(net)
        for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
            generator = torch.Generator().manual_seed(bn.num_features)
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=generator, dtype=torch.float64))
            bn.running_var.copy_(torch.rand(bn.num_features, generator=generator, dtype=torch.float64) + 0.5)
    x = torch.randn(1, 8, 3, 3, dtype=torch.float64)
    n = x.numel()
    jac_residual = torch.autograd.functional.jacobian(residual, x).reshape(n, n)
    jac_plain = torch.autograd.functional.jacobian(plain, x).reshape(n, n)
    assert torch.allclose(jac_residual, torch.eye(n, dtype=torch.float64) + jac_plain)
    # The branch matters, so the check above is not trivially true.
    assert jac_plain.abs().max() > 0.1


def test_post_activation_jacobian_before_the_final_relu():
    """relu(x + F(x)) has Jacobian I + dF/dx in the rows where the output is positive, and 0 elsewhere."""
    torch.manual_seed(0)
    residual = BasicBlock(4, 4, shortcut="A").double().eval()
    torch.manual_seed(0)
    plain = BasicBlock(4, 4, shortcut="A", residual=False).double().eval()
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    n = x.numel()
    jac_residual = torch.autograd.functional.jacobian(residual, x).reshape(n, n)
    jac_branch = torch.autograd.functional.jacobian(plain.branch, x).reshape(n, n)
    active = (residual(x) > 0).reshape(n, 1).double()
    assert 0 < active.sum() < n  # some rows of each kind
    assert torch.allclose(jac_residual, active * (torch.eye(n, dtype=torch.float64) + jac_branch))


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("shortcut", ["A", "C"])
def test_forward_is_branch_plus_shortcut(block, shortcut):
    module = block(8, 16 // block.expansion, stride=2, shortcut=shortcut).eval()
    plain = block(8, 16 // block.expansion, stride=2, shortcut=shortcut, residual=False).eval()
    plain.load_state_dict(module.state_dict(), strict=False)  # the plain twin lacks only the shortcut
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        branch = module.branch(x)
        if block in PREACT_BLOCKS:
            shortcut_input = module.relu(module.bn1(x)) if shortcut == "C" else x
            assert torch.allclose(module(x), branch + module.downsample(shortcut_input), atol=1e-6)
            assert torch.allclose(plain(x), branch, atol=1e-6)
        else:
            assert torch.allclose(module(x), torch.relu(branch + module.downsample(x)), atol=1e-6)
            assert torch.allclose(plain(x), torch.relu(branch), atol=1e-6)
