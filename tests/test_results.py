"""Every committed result file carries its provenance and a schema the book's figures can rely on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULT_FILES = sorted((ROOT / "results").glob("**/*.json"))
PROVENANCE_KEYS = ("command", "git_commit", "resnet_lab_version", "torch_version", "device", "date", "seed", "data")


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


@pytest.mark.parametrize("path", RESULT_FILES, ids=_ids(RESULT_FILES))
def test_result_file_has_provenance(path: Path):
    record = json.loads(path.read_text())
    prov = record["provenance"]
    missing = [k for k in PROVENANCE_KEYS if k not in prov]
    assert not missing, f"{path.name}: provenance lacks {missing}"
    # Results come from the package's command line, or from a script in benchmarks/.
    assert "python -m resnet_lab" in prov["command"] or "benchmarks/" in prov["command"], prov["command"]
    assert "synthetic" not in str(prov["data"]).lower(), "a smoke/synthetic run must never be committed as a result"


DEPTH_SWEEP = sorted((ROOT / "results" / "depth_sweep").glob("*.json"))


@pytest.mark.parametrize("path", DEPTH_SWEEP, ids=_ids(DEPTH_SWEEP))
def test_depth_sweep_schema(path: Path):
    run = json.loads(path.read_text())
    assert run["experiment"] == "depth-sweep"
    assert path.stem == run["model"] == f"{run['family']}{run['depth']}"
    epochs = run["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(1, len(epochs) + 1))
    assert len(epochs) >= 30 and run["final"]["epochs"] == len(epochs)
    for e in epochs:
        for key in ("train_loss", "train_eval_loss", "val_loss", "lr", "seconds"):
            assert e[key] >= 0
        for key in ("train_err", "train_eval_err", "val_err"):
            assert 0.0 <= e[key] <= 1.0
    assert run["final"]["val_err"] == epochs[-1]["val_err"]
    assert run["provenance"]["data"]["val_size"] == 5000


def test_depth_sweep_runs_share_one_recipe():
    """Plain and residual networks must differ only by the model: same epochs, optimizer, schedule and data."""
    runs = [json.loads(p.read_text()) for p in DEPTH_SWEEP]
    if len(runs) < 2:
        pytest.skip("fewer than two depth-sweep runs committed")
    ignore = {"model", "name", "depth"}

    def recipe(run):
        return {k: v for k, v in run["config"].items() if k not in ignore}

    first = recipe(runs[0])
    for run in runs[1:]:
        assert recipe(run) == first, f"{run['model']} was trained with a different recipe"


CHECKPOINTS = sorted((ROOT / "results" / "checkpoints").glob("*.pt"))
# The depth sweep's exports, named after their runs; chapter 9's source network has its own test below.
SWEEP_CHECKPOINTS = [p for p in CHECKPOINTS if (ROOT / "results" / "depth_sweep" / f"{p.stem}.json").exists()]


def _run_record(checkpoint: Path) -> dict:
    """The record of the run that wrote a checkpoint: NAME.json beside it when the weights come from a second run
    of the sweep's recipe (the first run's weights were not kept), else the sweep's depth_sweep/NAME.json."""
    beside = checkpoint.with_suffix(".json")
    path = beside if beside.exists() else ROOT / "results" / "depth_sweep" / f"{checkpoint.stem}.json"
    return json.loads(path.read_text())


def test_a_second_run_beside_a_checkpoint_has_the_sweeps_recipe_and_data():
    """A checkpoint from a second run (plain20) was trained with the recipe, seed and split of the sweep's run."""
    from resnet_lab.config import TrainConfig

    seconds = [p for p in SWEEP_CHECKPOINTS if p.with_suffix(".json").exists()]
    assert seconds, "plain20.pt comes from a second run, recorded in plain20.json beside it"
    for path in seconds:
        second = _run_record(path)
        first = json.loads((ROOT / "results" / "depth_sweep" / f"{path.stem}.json").read_text())
        assert second["model"] == first["model"] == path.stem
        # Fields TrainConfig gained after the first run must hold their defaults, which the first run used.
        defaults = TrainConfig().to_dict()
        assert {k: second["config"][k] for k in first["config"]} == first["config"]
        assert all(second["config"][k] == defaults[k] for k in second["config"].keys() - first["config"].keys())
        assert second["provenance"]["seed"] == first["provenance"]["seed"]
        for key in ("fingerprint", "train_size", "val_size", "split_seed"):
            assert second["provenance"]["data"][key] == first["provenance"]["data"][key]
        assert not second["provenance"]["git_commit"].endswith("-dirty")


def test_transfer_source_checkpoint_matches_its_record():
    """Chapter 9's pretrained network: the fp16 weights of the transfer experiment's pretraining run."""
    from resnet_lab.checkpoint import load_checkpoint

    path = ROOT / "results" / "checkpoints" / "resnet20_source.pt"
    record = json.loads((ROOT / "results" / "transfer" / "pretrain.json").read_text())
    model, meta = load_checkpoint(path)
    assert path.stat().st_size < 2_500_000 and meta["model_spec"]["num_classes"] == 5
    assert meta["classes"] == record["classes"]
    assert meta["val"]["accuracy"] == pytest.approx(record["final"]["fp16_val_acc"])
    assert meta["val"]["accuracy_fp32_weights"] == pytest.approx(record["final"]["val_acc"])
    assert abs(meta["val"]["accuracy"] - meta["val"]["accuracy_fp32_weights"]) <= 0.003


@pytest.mark.parametrize("path", SWEEP_CHECKPOINTS, ids=_ids(SWEEP_CHECKPOINTS))
def test_committed_checkpoint_matches_its_depth_sweep_record(path: Path):
    """The fp16 weights load into the recorded model and belong to the committed run of the same name."""
    from resnet_lab.checkpoint import load_checkpoint

    model, meta = load_checkpoint(path)
    assert path.stat().st_size < 2_500_000, "committed checkpoints are half precision, a few MB at most"
    record = _run_record(path)
    assert meta["model_spec"]["name"] == path.stem == record["model"]
    assert meta["val"]["accuracy_fp32_weights"] == pytest.approx(1 - record["final"]["val_err"])
    # Rounding the weights to fp16 may flip a few of the 5,000 predictions, not more.
    assert abs(meta["val"]["accuracy"] - meta["val"]["accuracy_fp32_weights"]) <= 0.003
    assert meta["val"]["count"] == record["provenance"]["data"]["val_size"] == 5000


@pytest.mark.parametrize("path", SWEEP_CHECKPOINTS, ids=_ids(SWEEP_CHECKPOINTS))
def test_committed_checkpoint_gives_its_recorded_accuracy(path: Path):
    """Evaluated on the validation split it was measured on, the checkpoint gives exactly the recorded accuracy.

    Needs the CIFAR-10 JPEG folder (RESNET_LAB_DATA); CI machines without it skip this test.
    """
    import os

    from resnet_lab.checkpoint import load_checkpoint
    from resnet_lab.evaluate import checkpoint_data, evaluate_tensors

    source = os.environ.get("RESNET_LAB_DATA")
    if not source or not Path(source).is_dir():
        pytest.skip("RESNET_LAB_DATA does not name the CIFAR-10 folder the runs were trained on")
    model, meta = load_checkpoint(path)
    data = checkpoint_data(meta, source)  # the run's own split, found from the content fingerprint
    assert data.fingerprint == meta["data"]["fingerprint"]
    metrics = evaluate_tensors(model, data.val_x, data.val_y, meta["mean"], meta["std"], num_classes=10,
                               precision="fp32", channels_last=False)
    assert metrics["accuracy"] == meta["val"]["accuracy"]


# A committed file names its data, never the folders of the machine that made it.
MACHINE_PATHS = re.compile(r"(?<![\w.<>])(/work/|/home/|/root/|/Users/|/tmp/|/mnt/)")
COMMITTED_TEXT = [p for p in [*sorted((ROOT / "results").rglob("*")), *sorted((ROOT / "notebooks").glob("*.ipynb")),
                              *sorted((ROOT / "book").rglob("*.md")), ROOT / "README.md"]
                  if p.is_file() and p.suffix in (".json", ".md", ".ipynb", ".py")]


@pytest.mark.parametrize("path", COMMITTED_TEXT, ids=_ids(COMMITTED_TEXT))
def test_no_committed_file_names_a_machine_path(path: Path):
    found = MACHINE_PATHS.findall(path.read_text())
    assert not found, f"{path.name} records a path of the machine that wrote it: {found[:3]}"


@pytest.mark.parametrize("path", CHECKPOINTS, ids=_ids(CHECKPOINTS))
def test_no_committed_checkpoint_names_a_machine_path(path: Path):
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=True)
    text = json.dumps({k: v for k, v in payload.items() if k != "model"}, default=str)
    found = MACHINE_PATHS.findall(text)
    assert not found, f"{path.name} records a path of the machine that wrote it: {found[:3]}"


def test_the_machine_path_check_can_fail():
    assert MACHINE_PATHS.search('"command": "python -m resnet_lab train --data /work/data/cifar10-jpeg"')
    assert not MACHINE_PATHS.search("--data .../cifar10-jpeg --out runs/resnet20 results/depth_sweep/")
