"""The transfer experiment's pieces: class subsets, few-shot draws, confusion matrices, the grid and its table."""

from __future__ import annotations

import json

import pytest
import torch

from resnet_lab import cli
from resnet_lab.data import load_data
from resnet_lab.experiments import transfer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    return load_data("synthetic", train_size=400, val_size=200, verbose=False)


def test_class_subset_relabels_in_the_order_given(data):
    names = [data.classes[3], data.classes[1]]
    sub = transfer.class_subset(data, names)
    assert sub.classes == names and set(sub.train_y.tolist()) == {0, 1}
    assert len(sub.train_y) == int(((data.train_y == 3) | (data.train_y == 1)).sum())
    first = (data.train_y == 3).nonzero()[0, 0]
    kept = ((data.train_y == 3) | (data.train_y == 1)).nonzero().flatten().tolist().index(int(first))
    assert torch.equal(sub.train_x[kept], data.train_x[first]) and sub.train_y[kept] == 0
    with pytest.raises(ValueError, match="not in the data"):
        transfer.class_subset(data, ["unicorn"])


def test_few_shot_draws_per_class_and_depends_on_the_seed(data):
    target = transfer.class_subset(data, data.classes[:2])
    a, b = transfer.few_shot(target, 10, seed=0), transfer.few_shot(target, 10, seed=1)
    assert a.requested_train_size == 20 and len(a.train_y) >= transfer.IMAGES_PER_EPOCH
    assert a.train_y[:20].bincount().tolist() == [10, 10]
    assert not torch.equal(a.train_x[:20], b.train_x[:20])
    assert torch.equal(a.val_x, b.val_x)  # the curve subset is the same for every run
    with pytest.raises(ValueError, match="fewer than"):
        transfer.few_shot(target, 10_000, seed=0)


def test_confusion_matrix_counts_true_by_predicted():
    y, p = torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 2, 0, 2])
    assert transfer.confusion_matrix(y, p, 3) == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_grid_runs_whole_seeds_first():
    points = transfer.grid((10, 50), (0, 1), ("linear", "scratch"))
    assert points[:4] == ["pretrain", "linear-10-s0", "scratch-10-s0", "linear-50-s0"]
    assert len(points) == 1 + 2 * 2 * 2


def test_table_means_over_seeds():
    records = {"pretrain": {"point": "pretrain"}}
    for seed, acc in ((0, 0.5), (1, 0.7)):
        records[f"linear-10-s{seed}"] = {"point": "x", "method": "linear", "per_class": 10,
                                         "final": {"val_acc": acc}}
    (row,) = transfer.transfer_table(records)
    assert row["mean"] == pytest.approx(0.6) and row["seeds"] == 2 and row["std"] == pytest.approx(0.1414, abs=1e-3)


def test_the_experiment_runs_end_to_end_on_synthetic_data(tmp_path, capsys):
    def command(pretrain_epochs: int, out: str = "runs") -> list[str]:
        return ["experiment", "transfer", "--data", "synthetic", "--train-size", "1500", "--out",
                str(tmp_path / out), "--results", str(tmp_path / "results"), "--pretrain-epochs",
                str(pretrain_epochs), "--epochs", "1", "--per-class", "10", "--seeds", "0", "--methods", "linear"]

    args = command(1)
    (tmp_path / "results").mkdir()
    assert cli.main(args) == 0
    records = transfer.load_transfer(tmp_path / "results" / "transfer")
    assert set(records) == {"pretrain", "linear-10-s0"}
    final = records["linear-10-s0"]["final"]
    assert sum(map(sum, final["confusion"])) == final["val_size"]
    assert records["linear-10-s0"]["plan"]["unfreeze_epochs"]["layer3"] is None
    assert (tmp_path / "results" / "checkpoints" / "resnet20_source.pt").exists()
    assert json.loads((tmp_path / "runs" / "linear-10-s0" / "results.json").read_text())["status"] == "finished"
    # Asked again with more pretraining (in a new run folder): the source is retrained, and the fine-tuning that
    # used the old one too.
    capsys.readouterr()
    assert cli.main(command(2, "runs2")) == 0
    out = capsys.readouterr().out
    assert "finished earlier" not in out
    records = transfer.load_transfer(tmp_path / "results" / "transfer")
    assert records["pretrain"]["final"]["epochs"] == 2 and records["linear-10-s0"]["pretrain_epochs"] == 2
    assert cli.main(command(2, "runs2")) == 0
    assert capsys.readouterr().out.count("finished earlier") == 2
