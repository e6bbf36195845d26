"""Lesions and path gradients (resnet_lab.ensembles) on cases whose answer is known."""

import itertools
import math

import pytest
import torch
from torch import nn

from resnet_lab.ensembles import (
    block_info,
    blocks_deleted,
    blocks_swapped,
    effective_lengths,
    gated_paths,
    gradient_by_length,
    layer_deletions,
    layers_deleted,
    modules_replaced,
    path_counts,
    path_gradient_norms,
    path_gradients,
    random_blocks,
    random_swaps,
)
from resnet_lab.models import get_model


def _model(name: str = "resnet14", seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = get_model(name).double().eval()
    # Non-trivial BN statistics and shifts, so that a lesion has something to change.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.2, 0.2)
    return model


def _images(n: int = 4) -> torch.Tensor:
    return torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _make_identity(block: nn.Module) -> None:
    """Zero the branch's last BN (scale and shift): F(x) = 0, so the block computes relu(shortcut(x))."""
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()


def test_block_info_of_resnet56():
    infos = block_info(get_model("resnet56"))
    assert len(infos) == 27
    assert [i.name for i in infos if i.downsampling] == ["layer2.0", "layer3.0"]
    assert {i.stage for i in infos} == {1, 2, 3}


def test_deleting_a_block_that_is_the_identity_changes_nothing():
    model, x = _model(), _images()
    for name in ("layer1.1", "layer2.0"):  # an identity shortcut and a downsampling (option A) one
        _make_identity(model.get_submodule(name))
        before = model(x)
        with blocks_deleted(model, [name]):
            during = model(x)
        assert torch.equal(before, during)


def test_deleting_a_working_block_changes_the_output_and_is_undone():
    model, x = _model(), _images()
    before = model(x)
    with blocks_deleted(model, ["layer1.1", "layer3.1"]):
        during = model(x)
        assert isinstance(model.get_submodule("layer1.1"), nn.Sequential)
    assert not torch.allclose(before, during)
    assert torch.equal(model(x), before)


def test_deleting_plain_blocks_keeps_the_shapes():
    model, x = _model("plain14"), _images()
    with blocks_deleted(model, ["layer2.0", "layer3.1"]):
        assert model(x).shape == (4, 10)


def test_replacement_is_undone_after_an_error():
    model = _model()
    block = model.get_submodule("layer1.0")
    with pytest.raises(RuntimeError, match="boom"):
        with modules_replaced(model, {"layer1.0": nn.Identity()}):
            raise RuntimeError("boom")
    assert model.get_submodule("layer1.0") is block


def test_unknown_names_get_clear_errors():
    model = _model()
    with pytest.raises(KeyError, match="No block named .layer9.0.; the blocks are layer1.0"):
        with blocks_deleted(model, ["layer9.0"]):
            pass
    with pytest.raises(ValueError, match="twice"):
        with blocks_deleted(model, ["layer1.0", "layer1.0"]):
            pass
    with pytest.raises(ValueError, match="cannot trade places"):
        with blocks_swapped(model, [("layer1.1", "layer2.0")]):
            pass


def test_deleting_a_layer_that_is_the_identity_changes_nothing():
    model, x = _model("plain14"), _images()
    assert "layer2.0.conv1" not in layer_deletions(model)  # it changes the shape
    block = model.get_submodule("layer1.1")
    with torch.no_grad():  # conv1 = identity kernel, bn1 = identity map in eval mode
        block.conv1.weight.zero_()
        for c in range(block.conv1.out_channels):
            block.conv1.weight[c, c, 1, 1] = 1.0
        block.bn1.running_mean.zero_()
        block.bn1.running_var.fill_(1.0 - block.bn1.eps)
        block.bn1.weight.fill_(1.0)
        block.bn1.bias.zero_()
    before = model(x)
    with layers_deleted(model, ["layer1.1.conv1"]):
        assert torch.allclose(model(x), before, atol=1e-12)
    with layers_deleted(model, ["layer1.1.conv2"]):
        assert not torch.allclose(model(x), before)


def test_swapping_identical_blocks_changes_nothing_and_different_ones_do():
    model, x = _model("resnet20"), _images()
    before = model(x)
    with blocks_swapped(model, [("layer1.1", "layer1.2")]):
        assert not torch.allclose(model(x), before)
    model.get_submodule("layer1.2").load_state_dict(model.get_submodule("layer1.1").state_dict())
    before = model(x)
    with blocks_swapped(model, [("layer1.1", "layer1.2")]):
        assert torch.equal(model(x), before)


def test_random_draws_are_valid_and_reproducible():
    model = get_model("resnet56")
    drawn = random_blocks(model, 10, torch.Generator().manual_seed(3))
    assert len(set(drawn)) == 10 and "layer2.0" not in drawn
    assert drawn == random_blocks(model, 10, torch.Generator().manual_seed(3))
    pairs = random_swaps(model, 12, torch.Generator().manual_seed(0))
    flat = [n for p in pairs for n in p]
    assert len(set(flat)) == 24 and all(a.split(".")[0] == b.split(".")[0] for a, b in pairs)
    with pytest.raises(ValueError, match="disjoint pairs"):
        random_swaps(model, 13, torch.Generator().manual_seed(0))


def test_path_counts_are_binomial():
    assert path_counts(3) == [1, 3, 3, 1]
    assert sum(path_counts(27)) == 2**27
    assert path_counts(54)[27] == math.comb(54, 27)


def test_the_gradients_of_all_paths_add_up_to_the_full_gradient():
    model, x = _model("resnet8"), _images()  # 3 blocks: 8 paths
    y = torch.tensor([0, 3, 7, 9])
    n = len(block_info(model))
    selections = [[i for i in range(n) if bits[i]] for bits in itertools.product((0, 1), repeat=n)]
    per_path = path_gradients(model, x, y, selections)
    # The full gradient, by plain autograd on the unmodified model.
    stem_out = []
    handle = model.layer1[0].register_forward_pre_hook(lambda _m, args: stem_out.append(args[0]))
    loss = nn.functional.cross_entropy(model(x), y, reduction="sum")
    handle.remove()
    (full,) = torch.autograd.grad(loss, stem_out[0])
    assert torch.allclose(sum(per_path), full, rtol=0, atol=1e-12)
    # A path through no branch is the shortcut alone; it differs from the full gradient.
    assert not torch.allclose(per_path[0], full)


def test_gated_paths_leaves_the_model_as_it_was():
    model, x = _model("resnet8"), _images()
    before, keys = model(x), list(model.state_dict())
    with gated_paths(model):
        assert torch.allclose(model(x), before, atol=1e-12)  # the forward pass is unchanged
    assert list(model.state_dict()) == keys and torch.equal(model(x), before)
    assert all("branch" not in block.__dict__ and block.__dict__.get("downsample", 0) is None
               for block in (model.layer1[0],))
    with pytest.raises(ValueError, match="plain"):
        with gated_paths(_model("plain8")):
            pass


def test_path_gradient_norms_and_totals():
    model = _model("resnet8")
    norms = path_gradient_norms(model, _images(), torch.tensor([1, 2, 3, 4]), [0, 1, 3], 2,
                                torch.Generator().manual_seed(0))
    assert set(norms) == {0, 1, 3} and all(len(v) == 2 and min(v) > 0 for v in norms.values())
    totals = gradient_by_length(norms, 3)
    assert totals[1] == pytest.approx(3 * sum(norms[1]) / 2)


def test_effective_lengths_is_the_shortest_range_holding_the_share():
    assert effective_lengths({0: 1.0, 1: 8.0, 2: 1.0}, 0.8) == (1, 1)
    assert effective_lengths({0: 1.0, 1: 8.0, 2: 1.0}, 0.85) in ((0, 1), (1, 2))
    assert effective_lengths({0: 5.0, 1: 0.0, 2: 5.0}, 1.0) == (0, 2)
