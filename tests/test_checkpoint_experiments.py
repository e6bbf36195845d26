"""The experiments that measure the depth sweep's checkpoints (block deletion, loss landscapes), end to end.

Run through the command line on tiny synthetic checkpoints: results written where asked, finished points
skipped on a second call, and the known answers of chapters 6 and 7 (the loss at a grid's origin is the
checkpoint's; an identity lesion is not needed here, see test_ensembles.py).
"""

from __future__ import annotations

import json

import pytest
import torch

from resnet_lab import cli
from resnet_lab.config import TrainConfig
from resnet_lab.data import load_data
from resnet_lab.experiments.depth_sweep import export_half_precision
from resnet_lab.models import get_model
from resnet_lab.train import fit


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """resnet56.pt and plain56.pt trained for one epoch on synthetic images, exported as the sweep exports them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("sweep")
    data = load_data("synthetic", train_size=64, val_size=32, verbose=False)
    try:
        for name in ("resnet56", "plain56"):
            torch.manual_seed(0)
            fit(get_model(name), data, TrainConfig(epochs=1, batch_size=32), out_dir=folder / name, progress=False)
            export_half_precision(folder / name / "last.pt", folder / "checkpoints" / f"{name}.pt", data)
    finally:
        torch.set_num_threads(threads)
    return folder / "checkpoints"


def _run(experiment: str, checkpoints, results, *options: str) -> int:
    return cli.main(["experiment", experiment, "--data", "synthetic", "--checkpoints", str(checkpoints),
                     "--results", str(results), *options])


@pytest.mark.usefixtures("one_thread")
def test_block_deletion_writes_each_point_once(checkpoints, tmp_path, capsys):
    assert _run("block-deletion", checkpoints, tmp_path, "--points", "resnet56-single", "plain56-random",
                "--eval-size", "16", "--max-k", "2") == 0
    single = json.loads((tmp_path / "block_deletion" / "resnet56-single.json").read_text())
    assert len(single["rows"]) == 27 and single["eval_images"] == 16
    assert [r["deleted"][0] for r in single["rows"] if r["downsampling"]] == ["layer2.0", "layer3.0"]
    assert single["provenance"]["data"]["kind"] == "synthetic"
    random = json.loads((tmp_path / "block_deletion" / "plain56-random.json").read_text())
    assert sorted({r["k"] for r in random["rows"]}) == [1, 2]
    capsys.readouterr()
    assert _run("block-deletion", checkpoints, tmp_path, "--points", "resnet56-single") == 0
    assert "resnet56-single: finished earlier" in capsys.readouterr().out


@pytest.mark.usefixtures("one_thread")
def test_loss_landscape_grid_origin_is_the_checkpoint(checkpoints, tmp_path):
    assert _run("loss-landscape", checkpoints, tmp_path, "--points", "plain56-seed0", "--eval-size", "8",
                "--resolution", "3", "--slice-points", "3") == 0
    record = json.loads((tmp_path / "loss_landscape" / "plain56-seed0.json").read_text())
    grid = record["grid"]
    assert grid["alphas"] == [-1.0, 0.0, 1.0] and len(grid["loss"]) == 3
    assert grid["loss"][1][1] == pytest.approx(record["center"]["loss"], rel=1e-6)


@pytest.mark.usefixtures("one_thread")
def test_a_folder_needs_only_the_checkpoints_of_the_points_asked_for(checkpoints, tmp_path):
    only_plain = tmp_path / "only_plain"
    only_plain.mkdir()
    (only_plain / "plain56.pt").write_bytes((checkpoints / "plain56.pt").read_bytes())
    assert _run("loss-landscape", only_plain, tmp_path, "--points", "plain56-interpolation", "--eval-size", "8",
                "--interpolation-points", "2") == 0
    record = json.loads((tmp_path / "loss_landscape" / "plain56-interpolation.json").read_text())
    assert [row["alpha"] for row in record["interpolation"]["rows"]] == [0.0, 1.0]
