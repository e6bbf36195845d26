"""resnet_lab.gradflow: gradient norms per unit and per layer, checked against autograd, and the chapter-1 claims."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from resnet_lab.gradflow import (  # noqa: E402
    GradientProfile,
    gradient_profile,
    unit_gradient_norms,
    unit_names,
    weight_gradient_ratios,
)
from resnet_lab.models import get_model  # noqa: E402
from resnet_lab.viz import DEPTH_COLORS, PALETTE, plot_gradient_profiles  # noqa: E402


def _batch(seed: int = 0, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def _model(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return get_model(name)


def test_unit_names_lists_every_block_from_input_to_output():
    names = unit_names(_model("resnet8"))  # 3 stages of 1 block
    assert names == ["layer1.0", "layer2.0", "layer3.0"]
    assert len(unit_names(_model("plain14"))) == 6


def test_unit_names_of_a_model_without_stages_is_empty_and_measuring_it_is_an_error():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    assert unit_names(model) == []
    images, labels = _batch()
    with pytest.raises(ValueError, match="no residual units"):
        unit_gradient_norms(model, images, labels)


@pytest.mark.parametrize("name, train", [("plain8", True), ("resnet8", True), ("resnet8", False)])
def test_unit_gradient_norms_match_autograd_of_the_summed_loss(name, train):
    """Per-image gradient = gradient of the batch's summed loss w.r.t. that image's activations (autograd)."""
    images, labels = _batch(1)
    model = _model(name).train(train)
    measured = unit_gradient_norms(model, images, labels)

    reference = _model(name).train(train)
    outputs = {}
    modules = dict(reference.named_modules())
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: outputs.__setitem__(n, o)) for n in measured]
    loss = F.cross_entropy(reference(images), labels, reduction="sum")
    for handle in handles:
        handle.remove()
    grads = torch.autograd.grad(loss, [outputs[n] for n in measured])
    for unit, grad in zip(measured, grads):
        per_image = grad.flatten(1).norm(dim=1)
        expected = per_image.pow(2).mean().sqrt().item()
        assert measured[unit] == pytest.approx(expected, rel=1e-4), unit
    assert model.training is train  # the mode is left as it was


def test_unit_gradient_norms_do_not_accumulate_over_calls():
    images, labels = _batch(2)
    model = _model("plain8").eval()  # eval: no running-statistics update, so two calls see the same network
    first = unit_gradient_norms(model, images, labels)
    conv_grad = model.conv1.weight.grad.clone()
    second = unit_gradient_norms(model, images, labels)
    assert second == pytest.approx(first, rel=1e-6)
    assert torch.allclose(model.conv1.weight.grad, conv_grad)


def test_weight_gradient_ratios_are_gradient_over_weight_norms_for_every_conv():
    images, labels = _batch(3)
    model = _model("resnet8").train()
    assert weight_gradient_ratios(model) == {}  # no backward pass yet: no gradients
    unit_gradient_norms(model, images, labels)
    ratios = weight_gradient_ratios(model)
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert list(ratios) == [n for n, _ in convs]
    assert len(ratios) == 7  # stem + 3 blocks of 2 (option-A shortcuts have no weights)
    for name, conv in convs:
        expected = (conv.weight.grad.norm() / conv.weight.norm()).item()
        assert ratios[name] == pytest.approx(expected)


def test_gradient_profile_restores_mode_and_running_statistics():
    images, labels = _batch(4)
    model = _model("plain8").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    profile = gradient_profile(model, images, labels)
    assert not model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "buffers or weights changed"
    assert profile.training_mode is True
    assert profile.label == "plain8"
    assert list(profile.unit_norms) == unit_names(model)
    norms = list(profile.unit_norms.values())
    assert profile.growth == pytest.approx(norms[0] / norms[-1])
    # The same numbers as the two lower-level functions called in train mode.
    assert profile.unit_norms == pytest.approx(unit_gradient_norms(_model("plain8").train(), images, labels))


def test_gradient_profile_rejects_a_single_image_in_train_mode():
    images, labels = _batch(5, n=1)
    with pytest.raises(ValueError, match="at least 2"):
        gradient_profile(_model("plain8"), images, labels)


def test_chapter_1_claim_with_train_mode_batch_norm_plain_gradients_grow_not_vanish():
    """He et al. 2016: with BN the plain net's gradients do not vanish. Here they even grow towards the input,
    more than in the residual twin; measured in eval mode (BN frozen at its initial statistics) they shrink."""
    images, labels = _batch(6, n=16)
    plain = gradient_profile(_model("plain14"), images, labels)
    resnet = gradient_profile(_model("resnet14"), images, labels)
    plain_eval = gradient_profile(_model("plain14"), images, labels, train=False)
    assert plain.growth > 2
    assert plain.growth > 1.3 * resnet.growth
    assert plain_eval.growth < 1


def test_plot_gradient_profiles_draws_two_log_panels_one_line_per_model():
    images, labels = _batch(7)
    profiles = [gradient_profile(_model(n), images, labels) for n in ("plain8", "resnet8")]
    fig = plot_gradient_profiles(profiles)
    try:
        left, right = fig.axes[:2]
        assert left.get_yscale() == right.get_yscale() == "log"
        assert len(left.get_lines()) == len(right.get_lines()) == 2
        assert len(left.get_lines()[0].get_xdata()) == 3 and len(right.get_lines()[0].get_xdata()) == 7
        texts = [t.get_text() for t in left.get_legend().get_texts()]
        assert texts == [f"plain-8: \u00d7{profiles[0].growth:.3g}", f"ResNet-8: \u00d7{profiles[1].growth:.3g}"]
        plain_line, resnet_line = left.get_lines()
        assert plain_line.get_color() == resnet_line.get_color()  # twins share a colour
        assert plain_line.get_linestyle() == "-" and resnet_line.get_linestyle() == "--"
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="no profiles"):
        plot_gradient_profiles([])


def test_plot_gradient_profiles_colours_depths_outside_the_sweep_and_keeps_other_labels():
    """Depth 8 is not a sweep depth: it gets a colour no other depth in the figure has; a hand-made network keeps
    its label."""
    images, labels = _batch(8)
    profiles = [gradient_profile(_model("resnet8"), images, labels),
                gradient_profile(_model("resnet20"), images, labels),
                GradientProfile("my tower", {"a": 2.0, "b": 1.0}, {"c": 0.1}, True)]
    fig = plot_gradient_profiles(profiles)
    try:
        lines = fig.axes[0].get_lines()
        assert lines[1].get_color() == DEPTH_COLORS[20] == PALETTE[0]
        assert lines[0].get_color() == PALETTE[1]  # not depth 20's colour, although 8 comes first
        texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert texts[1].startswith("ResNet-20: ") and texts[2] == "my tower: \u00d72"
    finally:
        plt.close(fig)


def test_growth_of_a_hand_made_profile():
    profile = GradientProfile("x", {"a": 6.0, "b": 3.0, "c": 2.0}, {}, True)
    assert profile.growth == 3.0


# ------------------------------------------------------------------------------------------------------------
# Chapter 1 exercise checkers (resnet_lab.exercises.ch1): each classic mistake gets its own hint
# ------------------------------------------------------------------------------------------------------------

from resnet_lab.data import BatchLoader  # noqa: E402
from resnet_lab.exercises import ch1  # noqa: E402


def _assert_verdict(verdict, hint: str | None) -> None:
    """A pass when no hint is expected; otherwise a fail whose message contains the hint."""
    assert bool(verdict) is (hint is None), verdict.message
    if hint:
        assert hint in verdict.message


def _growth(train: bool = True, inverted: bool = False, restore: bool = True):
    def gradient_growth(model, images, labels):
        was_training = model.training
        model.train(train)
        norms = list(unit_gradient_norms(model, images, labels).values())
        if restore:
            model.train(was_training)
        return norms[-1] / norms[0] if inverted else norms[0] / norms[-1]

    return gradient_growth


@pytest.mark.parametrize("answer, hint", [
    (_growth(), None),
    (_growth(train=False), "eval mode"),
    (_growth(inverted=True), "upside down"),
    (_growth(restore=False), "restore it"),
    (lambda model, images, labels: "big", "should be a number"),
])
def test_check_gradient_growth_hints(answer, hint, capsys):
    verdict = ch1.check_gradient_growth(answer)
    _assert_verdict(verdict, hint)


def _training_error(train_loader=False, train_mode=False, no_grad=True, restore=True, percent=False):
    def training_error(model, x, y, mean, std, batch_size=100):
        was_training = model.training
        model.train(train_mode)
        wrong = 0
        with torch.no_grad() if no_grad else torch.enable_grad():
            for images, labels in BatchLoader(x, y, mean, std, batch_size=batch_size, train=train_loader):
                wrong += (model(images).argmax(dim=1) != labels).sum().item()
        if restore:
            model.train(was_training)
        return (100.0 if percent else 1.0) * wrong / len(y)

    return training_error


@pytest.mark.parametrize("options, hint", [
    ({}, None),
    ({"train_mode": True}, "changed the model"),
    ({"train_loader": True}, "training loader augments"),
    ({"no_grad": False}, "torch.no_grad"),
    ({"restore": False}, "Restore the mode"),
    ({"percent": True}, "not a percentage"),
])
def test_check_training_error_hints(options, hint, capsys):
    verdict = ch1.check_training_error(_training_error(**options))
    _assert_verdict(verdict, hint)


# The diagnose checker (exercise 1.3, with its seed-noise argument) is tested in tests/test_exercises_ch1.py.


def test_checkers_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    ch1.check_gradient_growth(_growth())
    ch1.check_training_error(_training_error())
    assert torch.equal(torch.rand(3), expected)
