"""Faults injected into training and the command line (issue 23): each one must end in a clear message, with
nothing lost, nothing false recorded, and a run that resumes exactly where that is possible."""

from __future__ import annotations

import errno
import json
import os
import signal

import pytest
import torch

from resnet_lab import cli
from resnet_lab.callbacks import Callback
from resnet_lab.checkpoint import CheckpointError, read_checkpoint
from resnet_lab.config import TrainConfig
from resnet_lab.data import load_data
from resnet_lab.files import OutputError, RunLock, RunLockedError
from resnet_lab.models import get_model
from resnet_lab.train import NonFiniteLossError, TrainingInterrupted
from resnet_lab.train import fit as _fit

pytestmark = pytest.mark.usefixtures("one_thread")

QUICK = TrainConfig(epochs=2, batch_size=32, lr=0.05)
TINY_TRAIN = ["--model", "resnet8", "--data", "synthetic", "--train-size", "128", "--val-size", "64",
              "--batch-size", "32", "--epochs", "1", "--no-progress"]


def fit(model, data, config=QUICK, **options):
    return _fit(model, data, config, progress=False, **options)


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return get_model("resnet8")


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


class _AtStep(Callback):
    """Run `action(trainer)` after step `at` (0-based, over the run)."""

    def __init__(self, at: int, action) -> None:
        self.at, self.action = at, action

    def on_step_end(self, trainer, step):
        if step.step == self.at:
            self.action(trainer)


def _cli(capsys, argv) -> tuple[int, str]:
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


# ---------------------------------------------------------------------------------------------------------------
# 2, 3: divergence is never recorded as a result and never saved as a good state


def test_a_diverged_validation_loss_stops_the_run_and_is_not_saved(tiny_synthetic, tmp_path):
    def poison_batch_norm(trainer):  # what a huge learning rate does to the running statistics
        trainer.model.bn1.running_var.fill_(float("inf"))

    with pytest.raises(NonFiniteLossError, match="after epoch 2") as info:
        fit(_model(), tiny_synthetic, out_dir=tmp_path, callbacks=[_AtStep(7, poison_batch_norm)])
    assert "after epoch 1" in str(info.value)  # the last good checkpoint
    for name in ("last.pt", "best.pt"):
        state = read_checkpoint(tmp_path / name)
        assert state["epoch"] == 1
        assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    results = json.loads((tmp_path / "results.json").read_text())  # strict JSON: no bare NaN
    assert results["status"] == "failed" and len(results["epochs"]) == 1


def test_a_nan_in_the_first_epoch_explains_the_divergence(tiny_synthetic, tmp_path):
    def poison_weights(trainer):
        with torch.no_grad():
            trainer.model.conv1.weight.fill_(float("nan"))

    out = tmp_path / "new" / "run"  # not there yet: the failure must still be recorded, not crash on the folder
    with pytest.raises(NonFiniteLossError) as info:
        fit(_model(), tiny_synthetic, out_dir=out, callbacks=[_AtStep(1, poison_weights)])
    message = str(info.value)
    assert "became nan" in message and "none (no epoch finished)" in message and "--lr" in message
    assert info.value.where["step"] >= 1 and "became nan" in info.value.where["reason"]  # for a caller to record
    assert json.loads((out / "results.json").read_text())["status"] == "failed"


def test_results_json_and_evaluate_output_are_strict_json(tiny_synthetic, tmp_path):
    from resnet_lab.history import History

    text = History(epochs=[{"epoch": 1, "val_loss": float("nan")}]).to_json(tmp_path / "r.json")
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    json.loads((tmp_path / "r.json").read_text(), parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))


# ---------------------------------------------------------------------------------------------------------------
# 4, 5: one run per folder, and never over an old one


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_runs(tiny_synthetic, tmp_path):
    with RunLock(tmp_path), pytest.raises(RunLockedError, match="Another run"):
        fit(_model(), tiny_synthetic, out_dir=tmp_path)
    assert not (tmp_path / "last.pt").exists()


def test_the_cli_refuses_a_locked_folder_before_loading_data(tmp_path, capsys):
    with RunLock(tmp_path / "run"):
        code, err = _cli(capsys, ["train", *TINY_TRAIN, "--out", str(tmp_path / "run")])
    assert code == 2 and "Another run" in err and "SYNTHETIC" not in err


@pytest.mark.parametrize("leftover", ["best.pt", "results.json"])
def test_a_folder_with_any_file_of_a_run_is_never_overwritten(tiny_synthetic, tmp_path, leftover):
    (tmp_path / leftover).write_text("{}")
    with pytest.raises(ValueError, match="already holds a training run"):
        fit(_model(), tiny_synthetic, out_dir=tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# 7: resume only the same run on the same data


def test_resume_refuses_other_data_of_the_same_shape(tiny_synthetic, tmp_path):
    one_epoch = QUICK.replace(epochs=1)
    fit(_model(), tiny_synthetic, one_epoch, out_dir=tmp_path)
    other = load_data("synthetic", train_size=128, val_size=64, split_seed=5, verbose=False)
    other.split_seed = tiny_synthetic.split_seed  # the same sizes and seeds: only the images differ
    with pytest.raises(CheckpointError, match="fingerprint"):
        fit(_model(), other, one_epoch, out_dir=tmp_path, resume=True)


def test_resume_without_a_checkpoint_is_an_error(tiny_synthetic, tmp_path, capsys):
    with pytest.raises(ValueError, match="Nothing to resume"):
        fit(_model(), tiny_synthetic, out_dir=tmp_path / "empty", resume=True)
    code, err = _cli(capsys, ["train", *TINY_TRAIN, "--out", str(tmp_path / "empty"), "--resume"])
    assert code == 2 and "Nothing to resume" in err and "SYNTHETIC" not in err


# ---------------------------------------------------------------------------------------------------------------
# 8: SIGTERM is Ctrl-C


def test_sigterm_saves_the_exact_position_and_resumes_bit_identically(tiny_synthetic, tmp_path):
    reference = _model()
    fit(reference, tiny_synthetic, out_dir=tmp_path / "a")
    terminated = _model()
    with pytest.raises(TrainingInterrupted) as info:
        fit(terminated, tiny_synthetic, out_dir=tmp_path / "b",
            callbacks=[_AtStep(5, lambda trainer: os.kill(os.getpid(), signal.SIGTERM))])
    assert info.value.signal_name == "SIGTERM" and "SIGTERM" in str(info.value)
    state = read_checkpoint(tmp_path / "b" / "last.pt")
    assert (state["epoch"], state["batch"], state["status"]) == (1, 2, "interrupted")
    resumed = _model(seed=99)
    fit(resumed, tiny_synthetic, out_dir=tmp_path / "b", resume=True)
    assert _same_weights(reference, resumed)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # fit put the default handler back


def test_the_cli_exits_143_on_sigterm(tmp_path, capsys, monkeypatch):
    from resnet_lab import train as engine

    def raise_sigterm(*args, **kwargs):
        raise TrainingInterrupted("Training interrupted (SIGTERM). Saved.", "SIGTERM")

    monkeypatch.setattr(cli, "fit", raise_sigterm)
    assert engine.TrainingInterrupted is TrainingInterrupted
    code, err = _cli(capsys, ["train", *TINY_TRAIN, "--out", str(tmp_path / "run")])
    assert code == 143 and "SIGTERM" in err


# ---------------------------------------------------------------------------------------------------------------
# 9, 10: the output folder and every argument are checked before any data are loaded; messages, not tracebacks


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--device", "foo"], "foo"),
        (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "foo"], "GPU"),
        (["--lr", "-1"], "lr must be a positive number"),
        (["--mean", "0.5", "0.5", "0.5"], "both mean and std"),
    ],
)
def test_bad_arguments_fail_before_the_data_are_loaded(tmp_path, capsys, extra, fragment):
    if extra == ["--device", "foo"] and fragment == "GPU":
        pytest.skip("a GPU is present")
    code, err = _cli(capsys, ["train", *TINY_TRAIN, "--out", str(tmp_path / "run"), *extra])
    assert code == 2 and fragment in err and "SYNTHETIC" not in err


def test_an_existing_file_as_out_is_refused_at_once(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    code, err = _cli(capsys, ["train", *TINY_TRAIN, "--out", str(target)])
    assert code == 2 and "is a file" in err and "SYNTHETIC" not in err
    assert target.read_text() == "keep me"


def test_a_full_disk_while_saving_is_a_message_and_the_last_checkpoint_survives(tmp_path, capsys, monkeypatch):
    from resnet_lab import checkpoint

    out = tmp_path / "run"
    original = checkpoint.atomic_write
    writes = {"last.pt": 0}

    def full_disk_at_the_second_epoch(path, write):
        if path.name == "last.pt":
            writes["last.pt"] += 1
            if writes["last.pt"] == 2:
                raise OutputError(errno.ENOSPC, f"Could not write {path}: the disk is full; the previous file is "
                                  "intact.")
        return original(path, write)

    monkeypatch.setattr(checkpoint, "atomic_write", full_disk_at_the_second_epoch)
    argv = [a if a != "1" else "2" for a in TINY_TRAIN]  # two epochs
    code, err = _cli(capsys, ["train", *argv, "--out", str(out)])
    assert code == 1 and "disk is full" in err
    assert read_checkpoint(out / "last.pt")["epoch"] == 1 and not list(out.glob("*.tmp*"))
