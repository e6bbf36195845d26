"""Chapter 5's measurements on cases with known answers: toy chains, shattered gradients, the recorder, no-BN nets."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from resnet_lab.callbacks import GradientFlowRecorder, StopAfterEpochs
from resnet_lab.checkpoint import build_model
from resnet_lab.experiments import EXPERIMENTS
from resnet_lab.experiments.gradient_flow import init_profiles, load_gradient_flow
from resnet_lab.gradflow import (
    GradientProfile,
    chain_gradient_norms,
    gradient_profile,
    predicted_bn_relu_growth,
    predicted_chain_growth,
    unit_statistics,
)
from resnet_lab.models import get_model
from resnet_lab.shattered import (
    freeze_batch_statistics,
    gradient_autocorrelation,
    input_gradients,
    line_inputs,
)
from resnet_lab.toynets import Residual, linear_chain, relu_network


def _scaled_identity_chain(depth: int, width: int, alpha: float, residual: bool) -> nn.Sequential:
    blocks = []
    for _ in range(depth):
        layer = nn.Linear(width, width, bias=False)
        with torch.no_grad():
            layer.weight.copy_(alpha * torch.eye(width))
        blocks.append(Residual(layer) if residual else layer)
    return nn.Sequential(*blocks)


@pytest.mark.parametrize("residual", [True, False])
def test_chain_of_scaled_identities_gives_the_exact_powers(residual):
    """Blocks x + a x (or a x): the gradient at block l's output is (1 + a)^(L - l) (or a^(L - l)) exactly."""
    depth, alpha = 6, 0.5
    norms = chain_gradient_norms(_scaled_identity_chain(depth, 4, alpha, residual), torch.randn(3, 4))
    factor = 1 + alpha if residual else alpha
    expected = [factor ** (depth - 1 - block) for block in range(depth)]
    assert norms == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("residual,branch_std", [(True, 1.0), (True, 0.3), (False, 1.0), (False, 1.5)])
def test_random_linear_chain_grows_as_predicted(residual, branch_std):
    """Gaussian blocks of width 512: the measured growth per block is within 5% of sqrt(1 + s^2) (or s)."""
    depth = 8
    chain = linear_chain(depth, 512, residual=residual, branch_std=branch_std, seed=1)
    direction = torch.randn(512)
    norms = chain_gradient_norms(chain, torch.randn(16, 512), direction)
    per_block = (norms[0] / norms[-1]) ** (1 / (depth - 1))
    assert per_block == pytest.approx(predicted_chain_growth(branch_std, residual), rel=0.05)


def test_bn_relu_network_grows_at_yang_et_al_s_rate():
    """Fully connected BN-ReLU net, width 512, batch 128, a generic (per-sample) output gradient: the norm grows
    per layer by sqrt(pi / (pi - 1)) = 1.211 (Yang et al. 2019), within 1%; without BN it neither grows nor shrinks
    that fast (He init keeps the mean square)."""
    layers, width = 30, 512
    x = torch.randn(128, width, generator=torch.Generator().manual_seed(0))
    direction = torch.randn(128, width, generator=torch.Generator().manual_seed(1))
    rates = {}
    for batch_norm in (True, False):
        net = relu_network(layers, width, residual=False, batch_norm=batch_norm, in_features=width, seed=0)
        norms = chain_gradient_norms(nn.Sequential(*net[:-1]), x, direction)[1:]
        rates[batch_norm] = (norms[0] / norms[-1]) ** (1 / (len(norms) - 1))
    assert predicted_bn_relu_growth() == pytest.approx(1.2112, abs=1e-4)
    assert rates[True] == pytest.approx(predicted_bn_relu_growth(), rel=0.01)
    assert rates[False] == pytest.approx(1.0, abs=0.05)


def test_predicted_growth_values_and_a_bad_std():
    assert predicted_chain_growth(1.0, True) == pytest.approx(math.sqrt(2))
    assert predicted_chain_growth(0.0, True) == 1.0
    assert predicted_chain_growth(0.7, False) == 0.7
    with pytest.raises(ValueError, match="standard deviation"):
        predicted_chain_growth(-1.0, True)


def test_chain_gradient_norms_refuses_a_bad_direction():
    with pytest.raises(ValueError, match="direction must be shaped"):
        chain_gradient_norms(linear_chain(2, 4, residual=True), torch.randn(3, 4), torch.randn(5))


def test_linear_network_gradient_is_constant_and_its_autocorrelation_is_one():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(1, 16), nn.Linear(16, 16), nn.Linear(16, 1))
    g = input_gradients(net, line_inputs(64))
    slope = (net[2].weight @ net[1].weight @ net[0].weight).item()
    assert torch.allclose(g, torch.full_like(g, slope), rtol=1e-5)
    assert gradient_autocorrelation(g, 10).tolist() == pytest.approx([1.0] * 11)


def test_input_gradients_match_the_derivative_of_a_known_function():
    """f(x) = relu(x - 0.5) - relu(-x): f' is 1 right of 0.5, 0 between 0 and 0.5, 1 left of 0."""
    net = nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0], [-1.0]]))
        net[0].bias.copy_(torch.tensor([-0.5, 0.0]))
        net[2].weight.copy_(torch.tensor([[1.0, -1.0]]))
    x = torch.tensor([[-1.5], [-0.2], [0.2], [0.4], [1.0], [1.9]])
    assert input_gradients(net, x).tolist() == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]


def test_autocorrelation_of_white_noise_is_near_zero_and_of_a_sine_follows_the_cosine():
    noise = torch.randn(20000, generator=torch.Generator().manual_seed(0))
    r = gradient_autocorrelation(noise, 3)
    assert r[0] == pytest.approx(1.0) and r[1:].abs().max() < 0.03
    t = torch.arange(4000, dtype=torch.float64)
    r = gradient_autocorrelation(torch.sin(0.01 * t), 5)
    assert r.tolist() == pytest.approx([math.cos(0.01 * k) for k in range(6)], abs=2e-3)


def test_autocorrelation_refuses_bad_input():
    with pytest.raises(ValueError, match="max_lag must be smaller"):
        gradient_autocorrelation(torch.ones(5), 5)
    with pytest.raises(ValueError, match="1-D sequence"):
        gradient_autocorrelation(torch.ones(5, 2), 1)
    with pytest.raises(ValueError, match=r"shaped \(points, 1\)"):
        input_gradients(nn.Linear(1, 1), torch.ones(5))


def test_frozen_batch_statistics_reproduce_the_training_mode_output():
    net = relu_network(4, 32, residual=True, batch_norm=True, seed=3)
    x = line_inputs(50)
    with torch.no_grad():
        train_out = net.train()(x)
    freeze_batch_statistics(net, x)
    assert not net.training
    with torch.no_grad():
        assert torch.allclose(net(x), train_out, atol=1e-5)


def test_deep_plain_bn_network_shatters_and_its_residual_twin_does_not():
    """Balduzzi et al.'s qualitative finding on our networks: at depth 24, plain+BN is near white noise."""
    x = line_inputs(256)
    lag1 = {}
    for residual in (False, True):
        curves = [gradient_autocorrelation(input_gradients(
            relu_network(24, 100, residual=residual, batch_norm=True, seed=s), x), 1)[1] for s in range(3)]
        lag1[residual] = float(torch.stack(curves).mean())
    assert lag1[False] < 0.3 < 0.6 < lag1[True]


def test_relu_network_leaves_the_global_generator_alone():
    torch.manual_seed(7)
    expected = torch.rand(1)
    torch.manual_seed(7)
    relu_network(2, 8, residual=False, batch_norm=False, seed=0)
    assert torch.equal(torch.rand(1), expected)


def test_networks_without_batch_norm_have_none_and_the_same_convolutions():
    torch.manual_seed(0)
    with_bn = get_model("plain20")
    torch.manual_seed(0)
    without = get_model("plain20", batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in without.modules())
    assert without.spec["batch_norm"] is False
    conv_with = {k: v for k, v in with_bn.state_dict().items() if "conv" in k}
    conv_without = {k: v for k, v in without.state_dict().items() if "conv" in k}
    assert conv_with.keys() == conv_without.keys()
    assert all(torch.equal(conv_with[k], conv_without[k]) for k in conv_with)
    rebuilt = build_model(without.spec)  # a checkpoint's spec rebuilds the network without BN
    assert rebuilt.state_dict().keys() == without.state_dict().keys()
    with pytest.raises(TypeError, match="batch_norm must be True or False"):
        get_model("resnet20", batch_norm="no")


def test_unit_statistics_activation_rms_matches_a_hook():
    torch.manual_seed(0)
    model = get_model("resnet8").train()
    images, labels = torch.randn(6, 3, 32, 32), torch.randint(0, 10, (6,))
    seen = {}
    model.layer3[0].register_forward_hook(lambda m, i, o: seen.update(out=o.detach().clone()))
    _, sizes = unit_statistics(model, images, labels)
    assert sizes["layer3.0"] == pytest.approx(float(seen["out"].pow(2).mean().sqrt()), rel=1e-6)


def test_profile_record_round_trip_and_growth_per_unit():
    profile = GradientProfile("x", {"a": 8.0, "b": 4.0, "c": 2.0}, {"conv": 0.5}, True, {"a": 1.0, "b": 1.0, "c": 1.0})
    again = GradientProfile.from_record(profile.to_record())
    assert again == profile
    assert profile.growth_per_unit == pytest.approx(2.0)


def test_init_profiles_show_explosion_with_bn_and_vanishing_without():
    """At init, plain+BN gradients grow towards the input; without BN the plain ones shrink."""
    torch.manual_seed(0)
    images, labels = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    rows = {(r["model"], r["batch_norm"]): r for r in init_profiles(images, labels, depths=(32,))}
    growth = {key: r["unit_norms"][0] / r["unit_norms"][-1] for key, r in rows.items()}
    assert growth[("plain32", True)] > 3 * growth[("resnet32", True)]
    assert growth[("plain32", False)] < 1


def test_recorder_measures_on_schedule_and_changes_nothing_in_training(tiny_synthetic):
    """Training with the recorder gives bit-identical weights to training without it (BN buffers restored)."""
    from resnet_lab.config import TrainConfig
    from resnet_lab.data import normalize
    from resnet_lab.train import fit

    config = TrainConfig(epochs=2, batch_size=32, precision="fp32")
    images = normalize(tiny_synthetic.train_x[:8], tiny_synthetic.mean, tiny_synthetic.std)
    models = []
    recorder = GradientFlowRecorder(images, tiny_synthetic.train_y[:8], every=2)
    for callbacks in ([], [recorder]):
        torch.manual_seed(0)
        model = get_model("plain8")
        fit(model, tiny_synthetic, config, callbacks=callbacks, progress=False)
        models.append(model)
    states = [m.state_dict() for m in models]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    steps = [r["step"] for r in recorder.records]
    assert steps == [0, 2, 4, 6, 8]
    assert len(recorder.records[0]["unit_norms"]) == 3  # plain8: one unit per stage


def test_stop_after_epochs_stops_a_longer_schedule(tiny_synthetic):
    from resnet_lab.config import TrainConfig
    from resnet_lab.train import fit

    torch.manual_seed(0)
    history = fit(get_model("plain8"), tiny_synthetic, TrainConfig(epochs=5, batch_size=64, precision="fp32"),
                  callbacks=[StopAfterEpochs(2)], progress=False)
    assert history.status == "stopped" and len(history) == 2


def test_experiment_is_registered_and_a_missing_result_says_how_to_make_it(tmp_path):
    assert "gradient-flow" in EXPERIMENTS
    with pytest.raises(FileNotFoundError, match="experiment gradient-flow"):
        load_gradient_flow("nothing", tmp_path)


def test_gradient_profile_of_a_network_without_bn_is_finite():
    torch.manual_seed(0)
    profile = gradient_profile(get_model("resnet20", batch_norm=False), torch.randn(4, 3, 32, 32),
                               torch.randint(0, 10, (4,)))
    assert all(math.isfinite(v) for v in profile.unit_norms.values())


def test_every_default_point_is_listed_for_download():
    """A reader without a checkout gets every file chapter 5 reads through download_results()."""
    from resnet_lab.experiments.gradient_flow import TRAIN_MODELS, TRAIN_MODELS_NO_BN
    from resnet_lab.experiments.results import COMMITTED_FILES

    points = ["init", "trained", "shattered", *(f"train_{model}" for model in TRAIN_MODELS + TRAIN_MODELS_NO_BN)]
    assert {f"gradient_flow/{point}.json" for point in points} <= set(COMMITTED_FILES)


def test_residual_branch_scale_multiplies_the_branch_and_plain_nets_refuse_it():
    unit = nn.Linear(3, 3)
    x = torch.randn(2, 3)
    assert torch.allclose(Residual(unit, 0.5)(x), x + 0.5 * unit(x))
    assert torch.equal(Residual(unit)(x), x + unit(x))
    net = relu_network(2, 8, residual=True, batch_norm=False, branch_scale=0.0)
    h = net[0](torch.randn(4, 1))
    assert torch.equal(nn.Sequential(*net[1:-1])(h), h)  # branches scaled to zero: every block is the identity
    with pytest.raises(ValueError, match="plain network has none"):
        relu_network(2, 8, residual=False, batch_norm=False, branch_scale=0.5)


def test_shattered_kinds_name_their_options():
    from resnet_lab.experiments.gradient_flow import SHATTERED_KINDS, shattered_kind

    assert shattered_kind("plain") == {"residual": False, "batch_norm": False, "branch_scale": 1.0}
    assert shattered_kind("resnet-bn-scaled") == {"residual": True, "batch_norm": True,
                                                  "branch_scale": pytest.approx(2 ** -0.5)}
    assert {k: shattered_kind(k)["batch_norm"] for k in SHATTERED_KINDS} == {
        "plain": False, "plain-bn": True, "resnet": False, "resnet-bn": True, "resnet-scaled": False,
        "resnet-bn-scaled": True}
    with pytest.raises(ValueError, match="Unknown kind"):
        shattered_kind("resnet-ln")


def test_a_training_point_without_bn_that_diverges_keeps_its_records(monkeypatch):
    """`train_<model>-nobn`: the network is built without BN, and a NaN loss ends the point with what it recorded."""
    import argparse

    import resnet_lab.train as train
    from resnet_lab.data import load_data
    from resnet_lab.experiments import gradient_flow

    assert gradient_flow.split_model("resnet20-nobn") == ("resnet20", False)
    assert gradient_flow.split_model("plain56") == ("plain56", True)
    built = []

    def diverging_fit(model, data, config, callbacks, **kwargs):
        built.append(model)
        recorder = callbacks[0]
        recorder.records.append({"step": 0, "unit_norms": [2.0, 1.0]})
        raise train.NonFiniteLossError("The training loss became nan at step 3", where={
            "reason": "The training loss became nan at step 3", "epoch": 1, "step": 3, "loss": float("nan")})

    monkeypatch.setattr(train, "fit", diverging_fit)
    data = load_data("synthetic", train_size=256, val_size=16, verbose=False)
    args = argparse.Namespace(every=5, batch=4, record_epochs=1, device="cpu")
    record = gradient_flow._train_point("plain8-nobn", "train_plain8-nobn", data=data, args=args,
                                        images=data.train_x[:4].float(), labels=data.train_y[:4])
    assert not any(isinstance(m, nn.BatchNorm2d) for m in built[0].modules())
    assert record["model"] == "plain8" and record["batch_norm"] is False
    assert record["diverged"]["step"] == 3 and record["diverged"]["loss"] == "nan"  # strict JSON: no bare NaN
    assert record["records"] == [{"step": 0, "unit_norms": [2.0, 1.0]}] and record["epochs"] == []
    assert record["provenance"]["seed"] == 0
