"""The command line: train / evaluate / predict on tiny synthetic data, and one clear message per bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from resnet_lab import cli

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_TRAIN = ["--model", "resnet8", "--data", "synthetic", "--train-size", "128", "--val-size", "64",
              "--batch-size", "32", "--epochs", "1", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch run of resnet8 on synthetic data, trained once for the whole module."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cli") / "run"
    assert cli.main(["train", *TINY_TRAIN, "--out", str(out)]) == 0
    torch.set_num_threads(threads)
    return out


def _fails(capsys, argv, *fragments, code=2) -> str:
    """Run the CLI, expect exit status `code` and a message on stderr containing every fragment, no traceback."""
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_train_writes_checkpoints_and_results(trained):
    assert {p.name for p in trained.iterdir()} == {".lock", "best.pt", "last.pt", "results.json"}
    results = json.loads((trained / "results.json").read_text())
    assert results["status"] == "finished" and len(results["epochs"]) == 1
    assert results["provenance"]["command"].startswith("python -m resnet_lab train --model resnet8")
    assert results["config"]["batch_size"] == 32 and results["provenance"]["data"]["train_size"] == 128
    # The run folder is a temporary folder of this machine: the record keeps only its name.
    assert "--out .../run" in results["provenance"]["command"] and str(trained) not in json.dumps(results)


def test_recorded_commands_leave_out_the_machines_folders(tmp_path):
    from resnet_lab.provenance import portable_path

    assert portable_path("/data/sets/cifar10-jpeg") == ".../cifar10-jpeg"
    assert portable_path("--data=/data/sets/cifar10-jpeg") == "--data=.../cifar10-jpeg"
    assert portable_path(str(tmp_path / "runs" / "r20"), cwd=tmp_path) == "runs/r20"
    assert portable_path("~/data") == ".../data"
    assert portable_path("runs/r20") == "runs/r20" and portable_path("resnet20") == "resnet20"


def test_evaluate_prints_json_that_matches_training(trained, capsys):
    assert cli.main(["evaluate", "--checkpoint", str(trained / "best.pt")]) == 0
    report = json.loads(capsys.readouterr().out)
    best = json.loads((trained / "results.json").read_text())["best"]
    assert report["split"] == "val" and report["count"] == 64
    assert report["accuracy"] == pytest.approx(best["val_acc"]) and report["loss"] == pytest.approx(best["val_loss"])
    assert set(report["per_class_accuracy"]) == {f"class{i}" for i in range(10)}
    assert cli.main(["evaluate", "--checkpoint", str(trained / "best.pt"), "--split", "test"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 64


def test_predict_prints_top_k(trained, tmp_path, capsys, write_image):
    images = [write_image(tmp_path / "a.png"), write_image(tmp_path / "b.jpg", size=(80, 60), seed=1)]
    assert cli.main(["predict", "--checkpoint", str(trained / "best.pt"), "--top-k", "2", *map(str, images)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{images[0]}: class") and lines[0].count("%") == 2
    assert cli.main(["predict", "--checkpoint", str(trained / "best.pt"), "--json", str(images[0])]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert len(result["top"]) == 3 and sum(t["probability"] for t in result["top"]) <= 1.0001


def test_unknown_model(capsys):
    _fails(capsys, ["train", "--model", "resnet2O", "--data", "synthetic"], "Unknown model 'resnet2O'")


def test_bad_depth(capsys):
    _fails(capsys, ["train", "--model", "resnet21", "--data", "synthetic"], "6n+2", "20 and 26")


def test_missing_data(capsys, tmp_path):
    _fails(capsys, ["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")],
           "neither a folder that exists", "ImageFolder")


def test_empty_data(capsys, tmp_path):
    (tmp_path / "data" / "cat").mkdir(parents=True)
    _fails(capsys, ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "o")], "No images found")


def test_bad_numbers(capsys, tmp_path, tiny_image_folder):
    _fails(capsys, ["train", *TINY_TRAIN, "--epochs", "0", "--out", str(tmp_path / "o")], "epochs must be")
    _fails(capsys, ["train", "--data", str(tiny_image_folder), "--train-size", "1000", "--out", str(tmp_path / "o")],
           "train_size=1000", "Use a smaller --train-size")
    _fails(capsys, ["train", *TINY_TRAIN, "--batch-size", "1000", "--out", str(tmp_path / "o")], "fewer than one batch")


def test_existing_run_needs_resume(trained, capsys):
    _fails(capsys, ["train", *TINY_TRAIN, "--out", str(trained)], "already holds a training run", "--resume")


def test_resume_of_a_finished_run_is_instant(trained, capsys):
    assert cli.main(["train", *TINY_TRAIN, "--out", str(trained), "--resume"]) == 0
    assert "1 epochs" in capsys.readouterr().out


def test_wrong_split(trained, capsys, tiny_image_folder):
    _fails(capsys, ["evaluate", "--checkpoint", str(trained / "best.pt"), "--split", "holdout"], "invalid choice")
    # A folder without a test/ sub-folder has no test split (and other classes than the model).
    (tiny_image_folder / "test").rename(tiny_image_folder / "elsewhere")
    _fails(capsys, ["evaluate", "--checkpoint", str(trained / "best.pt"), "--data", str(tiny_image_folder)],
           "have classes", "trained on")


def test_no_test_split(tmp_path, capsys, write_image):
    from resnet_lab.data import load_data

    folder = tmp_path / "imgs"
    for name in (f"class{i}" for i in range(10)):
        (folder / name).mkdir(parents=True)
        for i in range(3):
            write_image(folder / name / f"{i}.png", seed=i)
    out = tmp_path / "run"
    assert cli.main(["train", "--model", "resnet8", "--data", str(folder), "--val-size", "10", "--batch-size", "10",
                     "--epochs", "1", "--no-progress", "--out", str(out)]) == 0
    assert load_data(folder, verbose=False).test_x is None
    _fails(capsys, ["evaluate", "--checkpoint", str(out / "best.pt"), "--split", "test"], "pass its location",
           "--data")
    _fails(capsys, ["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(folder), "--split", "test"],
           "has no test split")


def _ten_class_folder(folder, write_image, seed=0):
    for c in range(10):
        (folder / f"class{c}").mkdir(parents=True)
        for i in range(4):
            write_image(folder / f"class{c}" / f"{i}.png", seed=seed + 10 * c + i)
    return folder


def test_evaluate_reproduces_the_split_of_moved_data_and_says_when_it_cannot(tmp_path, capsys, write_image):
    import shutil

    folder = _ten_class_folder(tmp_path / "imgs", write_image)
    out = tmp_path / "run"
    assert cli.main(["train", "--model", "resnet8", "--data", str(folder), "--val-size", "13", "--batch-size", "9",
                     "--epochs", "1", "--no-progress", "--out", str(out)]) == 0
    best = json.loads((out / "results.json").read_text())["best"]
    moved = shutil.copytree(folder, tmp_path / "elsewhere" / "copy")
    capsys.readouterr()
    assert cli.main(["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(moved)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split_reproduced"] and report["count"] == 13
    assert report["accuracy"] == pytest.approx(best["val_acc"])
    other = _ten_class_folder(tmp_path / "other", write_image, seed=500)
    assert cli.main(["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(other)]) == 0
    captured = capsys.readouterr()
    assert not json.loads(captured.out)["split_reproduced"] and "not the data the model was trained on" in captured.err


def test_every_training_option_has_a_flag_with_its_default():
    from resnet_lab.config import TrainConfig

    parser = cli.build_parser()
    defaults = parser.parse_args(["train"])
    assert cli.config_from_args(defaults) == TrainConfig()
    old_flags = ["--epochs", "3", "--batch-size", "64", "--lr", "0.1", "--schedule", "step", "--warmup", "1",
                 "--momentum", "0.8", "--no-nesterov", "--weight-decay", "0.001", "--label-smoothing", "0",
                 "--crop-padding", "2", "--no-flip", "--cutout", "8", "--train-eval-size", "100", "--seed", "3",
                 "--precision", "fp32", "--no-channels-last", "--compile", "--pipeline", "classic", "--workers", "0",
                 "--eval-batch-size", "128", "--mean", "0.5", "0.5", "0.5", "--std", "0.2", "0.2", "0.2"]
    config = cli.config_from_args(parser.parse_args(["train", *old_flags]))
    assert config == TrainConfig(epochs=3, batch_size=64, lr=0.1, schedule="step", warmup_epochs=1.0, momentum=0.8,
                                 nesterov=False, weight_decay=0.001, label_smoothing=0.0, crop_padding=2, flip=False,
                                 cutout=8, train_eval_size=100, seed=3, precision="fp32", channels_last=False,
                                 compile=True, pipeline="classic", num_workers=0, eval_batch_size=128,
                                 mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2))
    help_text = parser._subparsers._group_actions[0].choices["train"].format_help()
    assert "(default: 30)" in help_text and "--no-flip" in help_text and "onecycle" in help_text


def test_unreadable_checkpoint(capsys, tmp_path):
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"\x00\x01 not a checkpoint")
    _fails(capsys, ["evaluate", "--checkpoint", str(bad)], "Cannot read checkpoint")
    _fails(capsys, ["predict", "--checkpoint", str(tmp_path / "missing.pt"), "x.png"], "does not exist")


def test_images_the_model_cannot_take(trained, capsys, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    _fails(capsys, ["predict", "--checkpoint", str(trained / "best.pt"), str(text)], "cannot be read as an image")
    _fails(capsys, ["predict", "--checkpoint", str(trained / "best.pt"), str(tmp_path / "gone.jpg")], "does not exist")


def test_python_dash_m_entry_point_has_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "resnet_lab", "train", "--model", "resnet7", "--data", "synthetic"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one paragraph
