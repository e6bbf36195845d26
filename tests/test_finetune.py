"""Fine-tuning: each strategy trains exactly what it should, frozen BN stays put, per-stage learning rates hold
through the schedule, early stopping restores the best weights, and pretrained weights fail offline with a
message that names the offline alternative. On a tiny synthetic image folder the tests make."""

from __future__ import annotations

import json
import urllib.error

import pytest
import torch
from torch import nn

from resnet_lab import cli, finetune
from resnet_lab.callbacks import Callback
from resnet_lab.config import TrainConfig
from resnet_lab.data import load_data
from resnet_lab.models import get_model
from resnet_lab.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = TrainConfig(epochs=2, batch_size=8, lr=0.05, precision="fp32", channels_last=False, warmup_epochs=0.0)


@pytest.fixture
def tiny_data(tiny_image_folder):
    return load_data(tiny_image_folder, val_size=6, verbose=False)


@pytest.fixture(scope="module")
def source_checkpoint(tmp_path_factory):
    """A resnet8 trained one epoch on synthetic data: the 'pretrained' network of these tests."""
    threads = torch.get_num_threads()  # restored after: later test modules must see the machine's thread count
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("source") / "run"
        data = load_data("synthetic", train_size=64, val_size=16, verbose=False)
        torch.manual_seed(0)
        fit(get_model("resnet8", num_classes=data.num_classes), data, TINY.replace(epochs=1, batch_size=16),
            out_dir=out, progress=False)
    finally:
        torch.set_num_threads(threads)
    return out / "best.pt"


def _pretrained(source_checkpoint, num_classes):
    model = finetune.load_pretrained(source_checkpoint)
    finetune.replace_head(model, num_classes)
    return model


def _stage_states(model):
    """{stage: {name: tensor copy}} of every parameter and buffer, stage by stage."""
    return {stage: {f"{i}.{k}": v.detach().clone() for i, m in enumerate(modules) for k, v in m.state_dict().items()}
            for stage, modules in finetune.stages(model).items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


# --- the head ---------------------------------------------------------------------------------------------------


def test_replace_head_gives_the_new_class_count_and_keeps_the_features(source_checkpoint):
    model = finetune.load_pretrained(source_checkpoint)
    body = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
    head = finetune.replace_head(model, 3)
    assert model.fc is head and head.out_features == 3 and head.in_features == 64
    assert model.spec["num_classes"] == 3
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in body.items())
    with pytest.raises(ValueError, match="at least two classes"):
        finetune.replace_head(model, 1)


def test_check_head_explains_a_forgotten_head():
    model = get_model("resnet8", num_classes=10)
    with pytest.raises(ValueError, match="replace_head"):
        finetune.check_head(model, 3)
    finetune.check_head(model, 10)


def test_linear_strategy_is_the_appendix_exercise(source_checkpoint):
    """Appendix A's prepare_finetuning is the linear strategy: the library's version passes its checker."""
    from resnet_lab.exercises.appendix import check_prepare_finetuning

    def prepare(model, num_classes):
        finetune.replace_head(model, num_classes)
        finetune.finetune_plan(model, "linear")
        return model

    assert check_prepare_finetuning(prepare)


# --- strategies -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy, trained", [("linear", {"head"}), ("partial", {"layer3", "head"}),
                                               ("full", {"stem", "layer1", "layer2", "layer3", "head"})])
def test_each_strategy_trains_only_its_stages(source_checkpoint, tiny_data, strategy, trained):
    torch.manual_seed(0)
    model = _pretrained(source_checkpoint, tiny_data.num_classes)
    plan = finetune.finetune_plan(model, strategy)
    before = _stage_states(model)
    fit(model, tiny_data, TINY, param_groups=plan.param_groups, callbacks=plan.callbacks, progress=False)
    after = _stage_states(model)
    for stage, params in finetune.stages(model).items():
        grads = {p.requires_grad for m in params for p in m.parameters()}
        assert grads == {stage in trained}, stage
        # Frozen: weights and BN running statistics bit-identical. Trained: something moved.
        assert _same(before[stage], after[stage]) == (stage not in trained), stage
    assert set(finetune.frozen_stages(model)) == set(finetune.stages(model)) - trained


def test_frozen_bn_would_drift_without_the_schedule(source_checkpoint, tiny_data):
    """The control: freezing parameters alone (requires_grad=False) leaves BN statistics free to move."""
    torch.manual_seed(0)
    model = _pretrained(source_checkpoint, tiny_data.num_classes)
    finetune.freeze(model)
    before = model.layer1[0].bn1.running_mean.clone()
    fit(model, tiny_data, TINY, progress=False)  # no FreezeSchedule callback: fit puts every BN in train mode
    assert not torch.equal(before, model.layer1[0].bn1.running_mean)


def test_gradual_unfreezing_follows_its_schedule(source_checkpoint, tiny_data):
    torch.manual_seed(0)
    model = _pretrained(source_checkpoint, tiny_data.num_classes)
    plan = finetune.finetune_plan(model, "gradual")
    assert plan.schedule.epochs == {"head": 0, "layer3": 1, "layer2": 2, "layer1": 3, "stem": 4}
    before = _stage_states(model)
    fit(model, tiny_data, TINY.replace(epochs=3), param_groups=plan.param_groups, callbacks=plan.callbacks,
        progress=False)
    after = _stage_states(model)
    assert [frozen for _, frozen in plan.schedule.log] == [["stem", "layer1", "layer2", "layer3"],
                                                           ["stem", "layer1", "layer2"], ["stem", "layer1"]]
    for stage in ("stem", "layer1"):
        assert _same(before[stage], after[stage]), stage
    for stage in ("layer2", "layer3", "head"):
        assert not _same(before[stage], after[stage]), stage


class _RecordLR(Callback):
    def __init__(self):
        self.rows = []

    def on_step_end(self, trainer, step):
        self.rows.append((step.lr, [(g.get("name"), g["lr"]) for g in trainer.optimizer.param_groups]))


def test_per_stage_learning_rates_hold_through_the_schedule(source_checkpoint, tiny_data):
    torch.manual_seed(0)
    model = _pretrained(source_checkpoint, tiny_data.num_classes)
    plan = finetune.finetune_plan(model, "full", lr_decay=0.1)
    assert plan.lr_scales == pytest.approx({"stem": 1e-4, "layer1": 1e-3, "layer2": 1e-2, "layer3": 0.1, "head": 1})
    recorder = _RecordLR()
    fit(model, tiny_data, TINY.replace(epochs=3, schedule="cosine", warmup_epochs=1.0),
        param_groups=plan.param_groups, callbacks=[*plan.callbacks, recorder], progress=False)
    lrs = [lr for lr, _ in recorder.rows]
    assert len(set(lrs)) > 3  # the schedule moved (warm-up, then cosine)
    for lr, groups in recorder.rows:
        for name, group_lr in groups:
            assert group_lr == pytest.approx(lr * plan.lr_scales[name], rel=1e-12), name


def test_unknown_strategy_and_stage_are_refused():
    model = get_model("resnet8")
    with pytest.raises(ValueError, match="linear, partial, full, gradual"):
        finetune.finetune_plan(model, "everything")
    with pytest.raises(ValueError, match="stages are stem, layer1"):
        finetune.freeze(model, up_to="layer4")


# --- early stopping ---------------------------------------------------------------------------------------------


class _FakeTrainer:
    def __init__(self, model):
        self.model, self.best, self.out_dir, self.stop = model, None, None, None

    def request_stop(self, reason):
        self.stop = reason


def test_early_stopping_stops_and_restores_the_best_weights():
    model = nn.Linear(2, 2)
    trainer, stopper = _FakeTrainer(model), finetune.EarlyStopping(patience=2)
    best_weights = model.weight.detach().clone()
    for epoch, acc in enumerate([0.5, 0.7, 0.6, 0.65], start=1):
        if trainer.best is None or acc > trainer.best["val_acc"]:
            trainer.best = {"epoch": epoch, "val_acc": acc}
        stopper.on_epoch_end(trainer, {"epoch": epoch, "val_acc": acc})
        if epoch == 2:
            best_weights = model.weight.detach().clone()
        with torch.no_grad():
            model.weight.add_(1.0)  # the next epoch changes the weights
    assert trainer.stop is not None and stopper.stopped_at == 4 and stopper.best_epoch == 2
    stopper.on_train_end(trainer, "stopped")
    assert torch.equal(model.weight, best_weights)


def test_early_stopping_in_fit_keeps_the_best_epoch(source_checkpoint, tiny_data):
    torch.manual_seed(0)
    model = _pretrained(source_checkpoint, tiny_data.num_classes)
    plan = finetune.finetune_plan(model, "full")
    stopper = finetune.EarlyStopping(patience=1)
    history = fit(model, tiny_data, TINY.replace(epochs=6, lr=0.5), param_groups=plan.param_groups,
                  callbacks=[*plan.callbacks, stopper], progress=False)
    best = max(history, key=lambda r: r["val_acc"])
    if history.status == "stopped":
        assert len(history) == history.best["epoch"] + 1
    from resnet_lab.evaluate import evaluate

    acc = evaluate(model, tiny_data, "val", precision="fp32", mean=model.preprocessing.mean,
                   std=model.preprocessing.std)["accuracy"]
    assert acc == pytest.approx(best["val_acc"])


def test_resuming_a_run_that_stopped_early_trains_no_further(source_checkpoint, tiny_data, tmp_path):
    def run(resume):
        torch.manual_seed(0)
        model = _pretrained(source_checkpoint, tiny_data.num_classes)
        plan = finetune.finetune_plan(model, "linear")  # frozen BN: with a negligible rate nothing changes
        history = fit(model, tiny_data, TINY.replace(epochs=6, lr=1e-9), param_groups=plan.param_groups,
                      callbacks=[*plan.callbacks, finetune.EarlyStopping(patience=1)], progress=False,
                      out_dir=tmp_path / "run", resume=resume)
        return model, history

    _, first = run(resume=False)
    assert first.status == "stopped" and len(first) == 2  # epoch 2 is no better than epoch 1
    _, again = run(resume=True)
    assert again.status == "stopped" and len(again) == 2  # not one more epoch


# --- loading ----------------------------------------------------------------------------------------------------


def test_load_pretrained_checkpoint_carries_its_preprocessing(source_checkpoint):
    model = finetune.load_pretrained(source_checkpoint)
    meta = torch.load(source_checkpoint, weights_only=True)
    assert model.preprocessing.mean == tuple(meta["mean"]) and model.preprocessing.image_size == 32
    assert list(model.preprocessing.classes) == meta["classes"] and not model.training


def test_torchvision_weights_offline_fail_with_the_alternative(monkeypatch):
    import torchvision.models._api as api

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(finetune.PretrainedUnavailableError) as error:
        finetune.load_pretrained("resnet18")
    message = str(error.value)
    assert "no network" in message and "--from path/to/best.pt" in message and "\n" not in message


def test_torchvision_weights_load_through_the_weights_api(monkeypatch):
    """With the download simulated by torchvision's own (random) resnet18, its weights load key for key."""
    import torchvision
    import torchvision.models._api as api

    reference = torchvision.models.resnet18(weights=None)
    monkeypatch.setattr(api, "load_state_dict_from_url", lambda url, **kw: reference.state_dict())
    model = finetune.load_pretrained("resnet18")
    assert model.preprocessing.mean == finetune.IMAGENET_MEAN and model.preprocessing.image_size == 224
    assert "IMAGENET1K" in model.preprocessing.source
    reference.eval()
    x = torch.randn(1, 3, 64, 64)
    assert torch.allclose(model(x), reference(x), atol=1e-5)


def test_unknown_source_name():
    with pytest.raises(ValueError, match="neither a checkpoint file"):
        finetune.load_pretrained("resnet19")


# --- the command line ---------------------------------------------------------------------------------------------


def _finetune_args(source, data, out, *extra):
    return ["finetune", "--from", str(source), "--data", str(data), "--out", str(out), "--val-size", "6",
            "--batch-size", "8", "--epochs", "2", "--precision", "fp32", "--no-progress", *extra]


def test_cli_finetune_then_predict(source_checkpoint, tiny_image_folder, tmp_path, capsys, write_image):
    out = tmp_path / "ft"
    assert cli.main(_finetune_args(source_checkpoint, tiny_image_folder, out, "--strategy", "partial")) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["model"]["num_classes"] == 3
    # partial: the frozen stages are left out of the optimizer
    assert [g["name"] for g in results["provenance"]["param_groups"]][::2] == ["layer3", "head"]
    assert results["config"]["mean"] == list(finetune.load_pretrained(source_checkpoint).preprocessing.mean)
    # predict on a new photo of another size
    photo = write_image(tmp_path / "photo.jpg", size=(97, 61))
    capsys.readouterr()
    assert cli.main(["predict", "--checkpoint", str(out / "best.pt"), str(photo), "--json"]) == 0
    top = json.loads(capsys.readouterr().out)[0]["top"]
    assert len(top) == 3 and {t["class"] for t in top} == {"cat", "dog", "ship"}
    # resume of the finished run is instant
    assert cli.main(_finetune_args(source_checkpoint, tiny_image_folder, out, "--strategy", "partial",
                                   "--resume")) == 0


def test_cli_finetune_bad_inputs(source_checkpoint, tmp_path, capsys, write_image, monkeypatch):
    import torchvision.models._api as api

    one_class = tmp_path / "one"
    (one_class / "cats").mkdir(parents=True)
    for i in range(4):
        write_image(one_class / "cats" / f"{i}.png")
    assert cli.main(_finetune_args(source_checkpoint, one_class, tmp_path / "a")) == 2
    assert "two classes" in capsys.readouterr().err

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    assert cli.main(_finetune_args("resnet18", one_class, tmp_path / "b")) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--from path/to/best.pt" in err and not (tmp_path / "b").exists()

    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    assert cli.main(_finetune_args(broken, one_class, tmp_path / "c")) == 2
    assert "Cannot read checkpoint" in capsys.readouterr().err


def test_resized_data_for_a_network_of_another_resolution(tiny_data):
    big = finetune.resized(tiny_data, 48)
    assert big.train_x.shape[1:] == (3, 48, 48) and big.val_x.shape[1:] == (3, 48, 48)
    assert torch.equal(big.train_y, tiny_data.train_y) and big.mean == tiny_data.mean
    with pytest.raises(ValueError, match="whole number of pixels"):
        finetune.resized(tiny_data, 0)


def test_chapter_9_imagenet_path_runs_with_simulated_weights(monkeypatch):
    """Section 9.6's Colab switch (RUN_IMAGENET): torchvision's resnet18 through the weights API, the images
    resized, a linear probe by transfer.train_method. The download is simulated with random weights."""
    import torchvision
    import torchvision.models._api as api

    from resnet_lab.experiments import transfer

    reference = torchvision.models.resnet18(weights=None)
    monkeypatch.setattr(api, "load_state_dict_from_url", lambda url, **kw: reference.state_dict())
    data = finetune.resized(load_data("synthetic", train_size=64, val_size=16, verbose=False), 64)
    model, history = transfer.train_method("linear", data, "resnet18", seed=0, epochs=1)
    assert model.fc.out_features == data.num_classes and len(history) == 1
    assert 0.0 <= history[-1]["val_acc"] <= 1.0
    assert torch.equal(model.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)  # frozen: untouched
