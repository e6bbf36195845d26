"""resnet_lab.train: exact resumption, Ctrl-C, non-finite losses, results.json, schedules and optimizer groups."""

from __future__ import annotations

import json
import math
import os
import signal

import pytest
import torch

from resnet_lab import train as engine
from resnet_lab.callbacks import Callback
from resnet_lab.checkpoint import CheckpointError, read_checkpoint
from resnet_lab.config import TrainConfig
from resnet_lab.evaluate import evaluate
from resnet_lab.history import History
from resnet_lab.loaders import normalize
from resnet_lab.models import get_model
from resnet_lab.optim import lr_factor, make_optimizer
from resnet_lab.runtime import cpu_supports_bf16, resolve_precision
from resnet_lab.train import NonFiniteLossError, TrainingInterrupted
from resnet_lab.train import fit as _fit

pytestmark = pytest.mark.usefixtures("one_thread")

PROVENANCE_KEYS = (
    "command", "git_commit", "resnet_lab_version", "torch_version", "device", "cpu_model", "date", "seed", "data"
)
QUICK = TrainConfig(epochs=2, batch_size=32, lr=0.05)


def fit(model, data, config=QUICK, **options):
    """`fit` without a progress bar, with the quick recipe by default."""
    return _fit(model, data, config, progress=False, **options)


def _model(seed: int = 0, name: str = "resnet8"):
    torch.manual_seed(seed)
    return get_model(name)


def _trap(model, at_call: int, action) -> None:
    """Call `action` during the `at_call`-th training forward pass of `model` (1-based)."""
    original = model.forward
    calls = {"n": 0}

    def forward(x):
        if not model.training:
            return original(x)
        calls["n"] += 1
        out = original(x)
        return action(out) if calls["n"] == at_call else out

    model.forward = forward


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_after_a_crash_is_bit_identical(tiny_synthetic, tmp_path):
    reference = _model()
    history = fit(reference, tiny_synthetic, out_dir=tmp_path / "a")

    crashed = _model()

    def crash(out):
        raise RuntimeError("simulated power cut")

    _trap(crashed, at_call=5, action=crash)  # the first step of epoch 2 (4 steps per epoch)
    with pytest.raises(RuntimeError, match="power cut"):
        fit(crashed, tiny_synthetic, out_dir=tmp_path / "b")
    assert read_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1

    resumed = _model(seed=123)  # other initial weights: everything must come from the checkpoint
    history_b = fit(resumed, tiny_synthetic, out_dir=tmp_path / "b", resume=True)
    assert _same_weights(reference, resumed)
    assert [e["train_loss"] for e in history] == [e["train_loss"] for e in history_b]
    assert [e["val_acc"] for e in history] == [e["val_acc"] for e in history_b]


def test_ctrl_c_mid_epoch_saves_and_resumes_bit_identically(tiny_synthetic, tmp_path):
    reference = _model()
    history = fit(reference, tiny_synthetic, out_dir=tmp_path / "a")

    interrupted = _model()

    def press_ctrl_c(out):
        os.kill(os.getpid(), signal.SIGINT)
        return out

    _trap(interrupted, at_call=6, action=press_ctrl_c)  # the second step of epoch 2
    with pytest.raises(TrainingInterrupted) as info:
        fit(interrupted, tiny_synthetic, out_dir=tmp_path / "b")
    message = str(info.value)
    assert "epoch 2, step 2 of 4" in message and "resume=True" in message
    state = read_checkpoint(tmp_path / "b" / "last.pt")
    assert (state["epoch"], state["batch"], state["status"]) == (1, 2, "interrupted")
    assert json.loads((tmp_path / "b" / "results.json").read_text())["status"] == "interrupted"

    resumed = _model(seed=123)
    history_b = fit(resumed, tiny_synthetic, out_dir=tmp_path / "b", resume=True)
    assert _same_weights(reference, resumed)
    assert [e["train_loss"] for e in history] == [e["train_loss"] for e in history_b]
    assert [e["train_acc"] for e in history] == [e["train_acc"] for e in history_b]
    assert history_b.status == "finished" and history_b.provenance["resumed"][0]["epoch"] == 1


def test_a_finished_run_returns_at_once(tiny_synthetic, tmp_path, monkeypatch):
    model = _model()
    first = fit(model, tiny_synthetic, out_dir=tmp_path)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(engine, "training_step", no_training)
    fresh = _model(seed=5)
    again = fit(fresh, tiny_synthetic, out_dir=tmp_path, resume=True)
    assert again.epochs == first.epochs and again.status == "finished"
    assert _same_weights(model.cpu(), fresh)


def test_an_existing_run_is_never_overwritten(tiny_synthetic, tmp_path):
    fit(_model(), tiny_synthetic, QUICK.replace(epochs=1), out_dir=tmp_path)
    with pytest.raises(ValueError, match="already holds a training run"):
        fit(_model(), tiny_synthetic, QUICK.replace(epochs=1), out_dir=tmp_path)


def test_resume_refuses_other_settings_or_another_model(tiny_synthetic, tmp_path):
    fit(_model(), tiny_synthetic, QUICK.replace(epochs=1), out_dir=tmp_path)
    with pytest.raises(CheckpointError, match="lr: 0.05 then, 0.1 now"):
        fit(_model(), tiny_synthetic, QUICK.replace(lr=0.1), out_dir=tmp_path, resume=True)
    with pytest.raises(CheckpointError, match="holds a resnet8.*builds a resnet14"):
        fit(_model(name="resnet14"), tiny_synthetic, out_dir=tmp_path, resume=True)


def test_non_finite_loss_stops_with_step_checkpoint_and_hint(tiny_synthetic, tmp_path):
    model = _model()
    _trap(model, at_call=7, action=lambda out: out * float("nan"))  # epoch 2, batch 3
    with pytest.raises(NonFiniteLossError) as info:
        fit(model, tiny_synthetic, out_dir=tmp_path)
    message = str(info.value)
    assert "nan at step 6 (epoch 2, batch 3 of 4)" in message
    assert str(tmp_path / "last.pt") in message and "after epoch 1" in message and "--lr" in message
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "failed" and len(results["epochs"]) == 1
    assert results["provenance"]["failure"]["step"] == 6
    # The last good checkpoint is untouched and finite.
    state = read_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_results_file_and_history(tiny_synthetic, tmp_path):
    history = fit(_model(), tiny_synthetic, QUICK.replace(train_eval_size=32, seed=1), out_dir=tmp_path)
    record = json.loads((tmp_path / "results.json").read_text())
    assert record == json.loads(history.to_json())
    assert not [k for k in PROVENANCE_KEYS if k not in record["provenance"]]
    assert record["provenance"]["data"]["val_size"] == 64 and record["provenance"]["seed"] == 1
    assert record["config"]["model"] == {"name": "resnet8", "num_classes": 10}
    assert record["config"]["lr"] == 0.05 and record["config"]["schedule"] == "onecycle"
    keys = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "train_eval_loss", "train_eval_acc", "lr",
            "seconds", "images_per_s"}
    assert [e["epoch"] for e in record["epochs"]] == [1, 2]
    assert all(keys <= set(e) for e in record["epochs"])
    assert record["best"]["epoch"] in (1, 2) and record["status"] == "finished"
    assert (tmp_path / "best.pt").is_file() and not list(tmp_path.glob("*.tmp-*"))
    # History behaves as a list of epochs, reads back from JSON, and plots itself.
    assert len(history) == 2 and history[-1]["epoch"] == 2 and history["epoch"] == [1, 2]
    again = History.from_json(tmp_path / "results.json")
    assert again == history
    figure = history.plot()
    assert len(figure.axes) == 2 and len(figure.axes[0].lines) == 3
    import matplotlib.pyplot as plt

    plt.close(figure)


def test_training_learns_the_synthetic_classes():
    from resnet_lab.data import load_data

    data = load_data("synthetic", train_size=384, val_size=128, verbose=False)
    history = fit(_model(), data, TrainConfig(epochs=3, batch_size=32, lr=0.1, precision="fp32"))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_acc"] > 0.6  # chance is 0.1


def test_classic_pipeline_trains(tiny_synthetic):
    history = fit(_model(), tiny_synthetic, QUICK.replace(epochs=1, pipeline="classic", num_workers=0))
    assert len(history) == 1 and history.config["pipeline"] == "classic"
    assert math.isfinite(history[0]["train_loss"])


def test_evaluate_reports_per_class_accuracy(tiny_synthetic):
    model = _model()
    result = evaluate(model, tiny_synthetic, "val", precision="fp32")
    assert result["count"] == 64 and set(result["per_class_accuracy"]) == set(tiny_synthetic.classes)
    manual = (model.eval()(normalize(tiny_synthetic.val_x, tiny_synthetic.mean, tiny_synthetic.std)).argmax(1)
              == tiny_synthetic.val_y).float().mean()
    assert result["accuracy"] == pytest.approx(float(manual))


def test_model_and_data_must_agree_on_classes(tiny_synthetic):
    with pytest.raises(ValueError, match="100 outputs but the data has 10 classes"):
        fit(get_model("resnet8", num_classes=100), tiny_synthetic)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, "epochs must be"),
        ({"schedule": "linear"}, "schedule must be one of"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
        ({"warmup_epochs": 3.0}, "warmup_epochs must be between"),
        ({"mean": (0.5, 0.5, 0.5)}, "both mean and std"),
        ({"augment": "mixup"}, "augment must be one of"),
        ({"train_eval_size": 0}, "train_eval_size"),
    ],
)
def test_bad_options_are_refused_when_the_config_is_made(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**({"epochs": 1} | kwargs))


def test_resume_needs_an_output_folder(tiny_synthetic):
    with pytest.raises(ValueError, match="needs the out_dir"):
        fit(_model(), tiny_synthetic, resume=True)


# ---------------------------------------------------------------------------------------------------------------
# Schedules, optimizer, precision


def test_step_schedule_divides_by_ten_at_half_and_three_quarters():
    factors = [lr_factor(s, 100, "step") for s in (0, 49, 50, 74, 75, 99)]
    assert factors == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_warmup_then_decay_to_zero():
    total, warmup = 100, 20
    onecycle = [lr_factor(s, total, "onecycle", warmup) for s in range(total)]
    assert onecycle[0] == pytest.approx(1 / 20) and onecycle[19] == 1.0 and onecycle[20] == 1.0
    assert all(a >= b for a, b in zip(onecycle[19:], onecycle[20:])) and onecycle[-1] < 0.02
    cosine = [lr_factor(s, total, "cosine", warmup) for s in range(total)]
    assert cosine[20] == 1.0 and cosine[60] == pytest.approx(0.5) and cosine[-1] < 0.01
    assert lr_factor(50, total, "constant", warmup) == 1.0


def test_no_weight_decay_on_batch_norm_and_biases():
    model = get_model("resnet8")
    optimizer = make_optimizer(model, TrainConfig(lr=0.1, weight_decay=5e-4))
    decayed, free = optimizer.param_groups
    assert decayed["weight_decay"] == 5e-4 and free["weight_decay"] == 0.0
    assert all(p.dim() == 4 or p is model.fc.weight for p in decayed["params"])
    assert any(p is model.bn1.weight for p in free["params"]) and any(p is model.fc.bias for p in free["params"])
    assert optimizer.defaults["nesterov"]
    assert len(decayed["params"]) + len(free["params"]) == len(list(model.parameters()))


def test_precision_resolution():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if cpu_supports_bf16() else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
    with pytest.raises(ValueError, match="for CUDA GPUs"):
        resolve_precision("fp16", cpu)


# ---------------------------------------------------------------------------------------------------------------
# Callbacks, parameter groups, normalization override


class _Recorder(Callback):
    """Records every hook call; asks to stop after step `stop_at` (0-based, over the run) if given."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.steps, self.epochs, self.events, self.stop_at = [], [], [], stop_at

    def on_train_start(self, trainer):
        self.events.append("start")

    def on_step_end(self, trainer, step):
        self.steps.append((step.epoch, step.batch, step.step, float(step.loss), step.lr, len(step.y)))
        if step.step == self.stop_at:
            trainer.request_stop("enough")

    def on_epoch_end(self, trainer, record):
        self.epochs.append(record["epoch"])

    def on_train_end(self, trainer, status):
        self.events.append(status)


def test_a_callback_sees_every_step_and_epoch(tiny_synthetic):
    recorder = _Recorder()
    history = fit(_model(), tiny_synthetic, callbacks=[recorder])
    assert [s[2] for s in recorder.steps] == list(range(8))  # 2 epochs of 4 steps
    assert [(s[0], s[1]) for s in recorder.steps] == [(e, b) for e in range(2) for b in range(4)]
    assert recorder.epochs == [1, 2] and recorder.events == ["start", "finished"]
    assert history[-1]["train_loss"] == pytest.approx(sum(s[3] for s in recorder.steps[4:]) / 4)


def test_a_callback_can_stop_the_run_and_it_resumes_exactly(tiny_synthetic, tmp_path):
    reference = _model()
    fit(reference, tiny_synthetic, out_dir=tmp_path / "a")
    stopper = _Recorder(stop_at=5)
    stopped = _model()
    history = fit(stopped, tiny_synthetic, out_dir=tmp_path / "b", callbacks=[stopper])
    assert history.status == "stopped" and len(stopper.steps) == 6 and stopper.events[-1] == "stopped"
    state = read_checkpoint(tmp_path / "b" / "last.pt")
    assert (state["epoch"], state["batch"], state["status"]) == (1, 2, "stopped")
    assert json.loads((tmp_path / "b" / "results.json").read_text())["status"] == "stopped"
    resumed = _model(seed=7)
    fit(resumed, tiny_synthetic, out_dir=tmp_path / "b", resume=True)
    assert _same_weights(reference, resumed)


def test_parameter_groups_get_their_scaled_rates_through_the_whole_schedule(tiny_synthetic):
    model = _model()
    head = list(model.fc.parameters())
    body = [p for n, p in model.named_parameters() if not n.startswith("fc.")]
    seen = []

    class Rates(Callback):
        def on_step_end(self, trainer, step):
            seen.append((step.lr, {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}))

    config = QUICK.replace(schedule="onecycle", warmup_epochs=1.0)
    fit(model, tiny_synthetic, config, callbacks=[Rates()],
        param_groups=[{"params": body, "lr_scale": 0.1, "name": "body"}, {"params": head, "name": "head"}])
    expected = [0.05 * lr_factor(s, 8, "onecycle", 4) for s in range(8)]
    assert [lr for lr, _ in seen] == pytest.approx(expected)
    assert expected[3] == pytest.approx(0.05)  # the warm-up reaches the peak, then it decays
    for lr, groups in seen:
        assert groups == pytest.approx({"body": 0.1 * lr, "head": lr})


def test_frozen_parameters_stay_out_of_the_optimizer_and_do_not_change(tiny_synthetic):
    model = _model()
    for p in model.parameters():
        p.requires_grad_(False)
    model.fc.requires_grad_(True)
    frozen = {n: p.clone() for n, p in model.named_parameters() if not n.startswith("fc.")}
    fit(model, tiny_synthetic, QUICK.replace(epochs=1, weight_decay=0.0))
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)


def test_a_normalization_override_reaches_training_evaluation_and_the_checkpoint(tiny_synthetic, tmp_path,
                                                                               monkeypatch):
    from resnet_lab import train as engine

    mean, std = (0.5, 0.25, 0.0), (0.5, 0.5, 1.0)
    seen_x = []

    class Inputs(Callback):
        def on_step_end(self, trainer, step):
            seen_x.append(step.x)

    evaluated = []
    original = engine.evaluate_tensors

    def spy(model, x, y, m, s, **kw):
        evaluated.append((tuple(m), tuple(s)))
        return original(model, x, y, m, s, **kw)

    monkeypatch.setattr(engine, "evaluate_tensors", spy)
    config = QUICK.replace(epochs=1, mean=mean, std=std, augment="none", train_eval_size=16)
    fit(_model(), tiny_synthetic, config, out_dir=tmp_path, callbacks=[Inputs()])
    x = seen_x[0].float()
    # Channel 2 has mean 0 and std 1: the network sees the raw image scaled to [0, 1].
    assert x[:, 2].min() >= 0 and x[:, 2].max() <= 1 and x[:, 2].max() > 0.9
    assert evaluated == [(mean, std), (mean, std)]  # the training subset, then the validation split
    state = read_checkpoint(tmp_path / "last.pt")
    assert (tuple(state["mean"]), tuple(state["std"])) == (mean, std)
    assert state["config"]["mean"] == list(mean)


def test_the_config_round_trips_through_results_json(tiny_synthetic, tmp_path):
    config = QUICK.replace(mean=(0.1, 0.2, 0.3), std=(1.0, 1.0, 1.0), cutout=8)
    history = fit(_model(), tiny_synthetic, config, out_dir=tmp_path)
    again = TrainConfig.from_dict(History.from_json(tmp_path / "results.json").config)
    assert again == config.resolved() and history.config["model"]["name"] == "resnet8"


@pytest.mark.parametrize("pipeline", ["fast", "classic"])
def test_fit_leaves_the_global_generator_alone(tiny_synthetic, pipeline):
    model = _model()
    state = torch.get_rng_state()
    fit(model, tiny_synthetic, QUICK.replace(epochs=1, pipeline=pipeline, num_workers=0))
    assert torch.equal(torch.get_rng_state(), state)
