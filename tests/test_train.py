"""resnet_lab.train: exact resumption, Ctrl-C, non-finite losses, results.json, schedules and optimizer groups."""

from __future__ import annotations

import json
import math
import os
import signal

import pytest
import torch

from resnet_lab import train as T
from resnet_lab.checkpoint import CheckpointError, read_checkpoint
from resnet_lab.models import get_model
from resnet_lab.train import History, NonFiniteLossError, TrainingInterrupted, fit

pytestmark = pytest.mark.usefixtures("one_thread")

PROVENANCE_KEYS = (
    "command", "git_commit", "resnet_lab_version", "torch_version", "device", "cpu_model", "date", "seed", "data"
)
QUICK = dict(epochs=2, batch_size=32, lr=0.05, progress=False)


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
    history = fit(reference, tiny_synthetic, out_dir=tmp_path / "a", **QUICK)

    crashed = _model()

    def crash(out):
        raise RuntimeError("simulated power cut")

    _trap(crashed, at_call=5, action=crash)  # the first step of epoch 2 (4 steps per epoch)
    with pytest.raises(RuntimeError, match="power cut"):
        fit(crashed, tiny_synthetic, out_dir=tmp_path / "b", **QUICK)
    assert read_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1

    resumed = _model(seed=123)  # other initial weights: everything must come from the checkpoint
    history_b = fit(resumed, tiny_synthetic, out_dir=tmp_path / "b", resume=True, **QUICK)
    assert _same_weights(reference, resumed)
    assert [e["train_loss"] for e in history] == [e["train_loss"] for e in history_b]
    assert [e["val_acc"] for e in history] == [e["val_acc"] for e in history_b]


def test_ctrl_c_mid_epoch_saves_and_resumes_bit_identically(tiny_synthetic, tmp_path):
    reference = _model()
    history = fit(reference, tiny_synthetic, out_dir=tmp_path / "a", **QUICK)

    interrupted = _model()

    def press_ctrl_c(out):
        os.kill(os.getpid(), signal.SIGINT)
        return out

    _trap(interrupted, at_call=6, action=press_ctrl_c)  # the second step of epoch 2
    with pytest.raises(TrainingInterrupted) as info:
        fit(interrupted, tiny_synthetic, out_dir=tmp_path / "b", **QUICK)
    message = str(info.value)
    assert "epoch 2, step 2 of 4" in message and "resume=True" in message
    state = read_checkpoint(tmp_path / "b" / "last.pt")
    assert (state["epoch"], state["batch"], state["status"]) == (1, 2, "interrupted")
    assert json.loads((tmp_path / "b" / "results.json").read_text())["status"] == "interrupted"

    resumed = _model(seed=123)
    history_b = fit(resumed, tiny_synthetic, out_dir=tmp_path / "b", resume=True, **QUICK)
    assert _same_weights(reference, resumed)
    assert [e["train_loss"] for e in history] == [e["train_loss"] for e in history_b]
    assert [e["train_acc"] for e in history] == [e["train_acc"] for e in history_b]
    assert history_b.status == "finished" and history_b.provenance["resumed"][0]["epoch"] == 1


def test_a_finished_run_returns_at_once(tiny_synthetic, tmp_path, monkeypatch):
    model = _model()
    first = fit(model, tiny_synthetic, out_dir=tmp_path, **QUICK)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(T, "training_step", no_training)
    fresh = _model(seed=5)
    again = fit(fresh, tiny_synthetic, out_dir=tmp_path, resume=True, **QUICK)
    assert again.epochs == first.epochs and again.status == "finished"
    assert _same_weights(model.cpu(), fresh)


def test_an_existing_run_is_never_overwritten(tiny_synthetic, tmp_path):
    fit(_model(), tiny_synthetic, out_dir=tmp_path, **(QUICK | {"epochs": 1}))
    with pytest.raises(ValueError, match="already holds a training run"):
        fit(_model(), tiny_synthetic, out_dir=tmp_path, **(QUICK | {"epochs": 1}))


def test_resume_refuses_other_settings_or_another_model(tiny_synthetic, tmp_path):
    fit(_model(), tiny_synthetic, out_dir=tmp_path, **(QUICK | {"epochs": 1}))
    with pytest.raises(CheckpointError, match="lr: 0.05 then, 0.1 now"):
        fit(_model(), tiny_synthetic, out_dir=tmp_path, resume=True, **(QUICK | {"lr": 0.1}))
    with pytest.raises(CheckpointError, match="holds a resnet8.*builds a resnet14"):
        fit(_model(name="resnet14"), tiny_synthetic, out_dir=tmp_path, resume=True, **QUICK)


def test_non_finite_loss_stops_with_step_checkpoint_and_hint(tiny_synthetic, tmp_path):
    model = _model()
    _trap(model, at_call=7, action=lambda out: out * float("nan"))  # epoch 2, batch 3
    with pytest.raises(NonFiniteLossError) as info:
        fit(model, tiny_synthetic, out_dir=tmp_path, **QUICK)
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
    history = fit(_model(), tiny_synthetic, out_dir=tmp_path, train_eval_size=32, seed=1, **QUICK)
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
    history = fit(_model(), data, epochs=3, batch_size=32, lr=0.1, progress=False, precision="fp32")
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_acc"] > 0.6  # chance is 0.1


def test_classic_pipeline_trains(tiny_synthetic):
    history = fit(_model(), tiny_synthetic, pipeline="classic", num_workers=0, **(QUICK | {"epochs": 1}))
    assert len(history) == 1 and history.config["pipeline"] == "classic"
    assert math.isfinite(history[0]["train_loss"])


def test_evaluate_reports_per_class_accuracy(tiny_synthetic):
    model = _model()
    result = T.evaluate(model, tiny_synthetic, "val", precision="fp32")
    assert result["count"] == 64 and set(result["per_class_accuracy"]) == set(tiny_synthetic.classes)
    manual = (model.eval()(T.normalize(tiny_synthetic.val_x, tiny_synthetic.mean, tiny_synthetic.std)).argmax(1)
              == tiny_synthetic.val_y).float().mean()
    assert result["accuracy"] == pytest.approx(float(manual))


def test_model_and_data_must_agree_on_classes(tiny_synthetic):
    with pytest.raises(ValueError, match="100 outputs but the data has 10 classes"):
        fit(get_model("resnet8", num_classes=100), tiny_synthetic, epochs=1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, "epochs must be"),
        ({"schedule": "linear"}, "schedule must be one of"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
        ({"resume": True}, "needs the out_dir"),
    ],
)
def test_bad_arguments(tiny_synthetic, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit(_model(), tiny_synthetic, **({"epochs": 1} | kwargs))


# ---------------------------------------------------------------------------------------------------------------
# Schedules, optimizer, precision


def test_step_schedule_divides_by_ten_at_half_and_three_quarters():
    factors = [T.lr_factor(s, 100, "step") for s in (0, 49, 50, 74, 75, 99)]
    assert factors == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_warmup_then_decay_to_zero():
    total, warmup = 100, 20
    onecycle = [T.lr_factor(s, total, "onecycle", warmup) for s in range(total)]
    assert onecycle[0] == pytest.approx(1 / 20) and onecycle[19] == 1.0 and onecycle[20] == 1.0
    assert all(a >= b for a, b in zip(onecycle[19:], onecycle[20:])) and onecycle[-1] < 0.02
    cosine = [T.lr_factor(s, total, "cosine", warmup) for s in range(total)]
    assert cosine[20] == 1.0 and cosine[60] == pytest.approx(0.5) and cosine[-1] < 0.01
    assert T.lr_factor(50, total, "constant", warmup) == 1.0


def test_no_weight_decay_on_batch_norm_and_biases():
    model = get_model("resnet8")
    optimizer = T.make_optimizer(model, lr=0.1, weight_decay=5e-4)
    decayed, free = optimizer.param_groups
    assert decayed["weight_decay"] == 5e-4 and free["weight_decay"] == 0.0
    assert all(p.dim() == 4 or p is model.fc.weight for p in decayed["params"])
    assert any(p is model.bn1.weight for p in free["params"]) and any(p is model.fc.bias for p in free["params"])
    assert optimizer.defaults["nesterov"]
    assert len(decayed["params"]) + len(free["params"]) == len(list(model.parameters()))


def test_precision_resolution():
    cpu = torch.device("cpu")
    assert T.resolve_precision("auto", cpu) == ("bf16" if T.cpu_supports_bf16() else "fp32")
    assert T.resolve_precision("fp32", cpu) == "fp32"
    assert T.resolve_precision("auto", torch.device("cuda")) == "fp16"
    with pytest.raises(ValueError, match="for CUDA GPUs"):
        T.resolve_precision("fp16", cpu)
