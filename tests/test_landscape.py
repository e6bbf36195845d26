"""Filter-normalized directions and loss surfaces (resnet_lab.landscape) on cases whose answer is known."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_lab.landscape import (
    base_weights,
    filter_norms,
    interpolation_states,
    local_minima,
    loss_grid,
    loss_slice,
    perturbed,
    random_direction,
)
from resnet_lab.models import get_model


def _model() -> nn.Module:
    torch.manual_seed(0)
    return get_model("resnet8").double().eval()


def test_a_filter_normalized_direction_has_the_norms_it_claims():
    model = _model()
    direction = random_direction(model, torch.Generator().manual_seed(0))
    for name, p in model.named_parameters():
        d = direction[name]
        assert d.shape == p.shape
        if p.dim() <= 1:  # biases and BN parameters are not moved
            assert torch.count_nonzero(d) == 0
        else:
            assert torch.allclose(filter_norms(d), filter_norms(p.detach()), rtol=1e-9)
            assert not torch.allclose(d, p.detach())  # a random direction, not the weights themselves


def test_directions_are_reproducible_and_differ_between_seeds():
    model = _model()
    a = random_direction(model, torch.Generator().manual_seed(0))
    b = random_direction(model, torch.Generator().manual_seed(0))
    c = random_direction(model, torch.Generator().manual_seed(1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])


def test_filter_norms_refuses_vectors():
    with pytest.raises(ValueError, match="2 or more dimensions"):
        filter_norms(torch.ones(3))


def test_perturbed_moves_the_weights_and_puts_them_back():
    model = _model()
    base = base_weights(model)
    d = random_direction(model, torch.Generator().manual_seed(0))
    with perturbed(model, base, [d, d], [0.5, 0.25]):
        w = model.get_submodule("layer1.0.conv1").weight
        assert torch.allclose(w, base["layer1.0.conv1.weight"] + 0.75 * d["layer1.0.conv1.weight"])
    assert all(torch.equal(p, base[n]) for n, p in model.named_parameters())
    with pytest.raises(ValueError, match="does not fit"):
        with perturbed(model, base, [{"x": torch.ones(1)}], [1.0]):
            pass


def test_the_loss_at_the_origin_of_the_grid_is_the_models_loss():
    model = _model()
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = torch.arange(8)

    def evaluate(m):
        with torch.no_grad():
            return {"loss": float(F.cross_entropy(m(x), y))}

    expected = evaluate(model)["loss"]
    dx = random_direction(model, torch.Generator().manual_seed(0))
    dy = random_direction(model, torch.Generator().manual_seed(1))
    grid = loss_grid(model, dx, dy, [-0.5, 0.0, 0.5], [-0.5, 0.0, 0.5], evaluate)
    assert grid["loss"][1][1] == expected
    assert grid["loss"][0][0] != expected
    assert evaluate(model)["loss"] == expected  # the model is back where it was


def test_a_slice_of_a_quadratic_follows_the_formula():
    model = nn.Linear(4, 3).double()
    w = base_weights(model)
    d = random_direction(model, torch.Generator().manual_seed(0))
    rows = loss_slice(model, d, [-1.0, 0.5, 2.0], lambda m: {"loss": float(m.weight.detach().pow(2).sum())})
    for row in rows:  # ||w + a d||^2 = ||w||^2 + 2a <w, d> + a^2 ||d||^2, and ||d|| = ||w|| row by row
        a = row["alpha"]
        expected = (w["weight"].pow(2).sum() + 2 * a * (w["weight"] * d["weight"]).sum()
                    + a * a * d["weight"].pow(2).sum())
        assert row["loss"] == pytest.approx(float(expected), rel=1e-12)


def test_interpolation_ends_at_its_two_states():
    a, b = get_model("resnet8").state_dict(), _model().float().state_dict()
    assert all(torch.equal(interpolation_states(a, b, 0.0)[k], a[k]) for k in a if a[k].is_floating_point())
    assert all(torch.equal(interpolation_states(a, b, 1.0)[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="same network"):
        interpolation_states(a, get_model("resnet14").state_dict(), 0.5)


def test_local_minima_counts_the_basins_inside_the_grid():
    bowl = [[(i - 2) ** 2 + (j - 2) ** 2 for j in range(5)] for i in range(5)]
    assert local_minima(bowl) == [(2, 2)]
    two = [[min((i - 1) ** 2 + (j - 1) ** 2, (i - 4) ** 2 + (j - 4) ** 2 + 0.5) for j in range(6)] for i in range(6)]
    assert local_minima(two) == [(1, 1), (4, 4)]
    slope = [[i + j for j in range(4)] for i in range(4)]  # lowest at a corner: not a basin of the grid
    assert local_minima(slope) == []
