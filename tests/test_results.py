"""Every committed result file carries its provenance and a schema the book's figures can rely on."""

from __future__ import annotations

import json
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
    assert "python -m resnet_lab" in prov["command"] or "resnet-lab" in prov["command"], prov["command"]
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
