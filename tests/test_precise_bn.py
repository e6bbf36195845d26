"""resnet_lab.precise_bn against known answers, and the chapter-8 experiments (precise-bn, seed-spread) on tiny
synthetic runs: their records, their readers and their bad-input errors."""

from __future__ import annotations

import argparse
import json
import math
import statistics

import pytest
import torch
from torch import nn

from resnet_lab import experiments
from resnet_lab.experiments import precise_bn as pbn
from resnet_lab.experiments import seed_spread
from resnet_lab.models import get_model
from resnet_lab.precise_bn import bn_layers, bn_statistics, recompute_bn_statistics, statistics_gap


def _conv_bn() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.BatchNorm2d(4))
    with torch.no_grad():  # statistics far from the initial ones, and affine weights that are not 1 and 0
        for m in model:
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.fill_(5.0)
                m.running_var.fill_(9.0)
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-1.0, 1.0)
    return model.eval()


def test_one_batch_gives_exactly_its_own_statistics():
    model = _conv_bn()
    x = torch.randn(16, 3, 8, 8) * 3 + 1
    recompute_bn_statistics(model, [x])
    h = model[0](x)  # what the first BN layer sees
    assert torch.allclose(model[1].running_mean, h.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(model[1].running_var, h.var((0, 2, 3), unbiased=True), atol=1e-4)
    # The second BN layer sees the output of the first normalized with the batch's own statistics.
    g = torch.relu(nn.functional.batch_norm(h, None, None, model[1].weight, model[1].bias, training=True))
    assert torch.allclose(model[3].running_mean, g.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(model[3].running_var, g.var((0, 2, 3), unbiased=True), atol=1e-4)


def test_several_batches_are_weighted_equally():
    model = nn.Sequential(nn.BatchNorm2d(2))
    a, b = torch.randn(8, 2, 4, 4), torch.randn(8, 2, 4, 4) * 2 + 3
    assert recompute_bn_statistics(model, iter([a, b])) == 2
    mean = (a.mean((0, 2, 3)) + b.mean((0, 2, 3))) / 2
    var = (a.var((0, 2, 3)) + b.var((0, 2, 3))) / 2
    assert torch.allclose(model[0].running_mean, mean, atol=1e-5)
    assert torch.allclose(model[0].running_var, var, atol=1e-5)


def test_weights_momentum_and_modes_are_restored():
    model = _conv_bn()
    model[3].momentum = 0.25
    model[3].train()  # a mixed state: the whole model in eval, one layer in train
    weights = {k: v.clone() for k, v in model.named_parameters()}
    recompute_bn_statistics(model, [torch.randn(4, 3, 8, 8)])
    assert all(torch.equal(weights[k], v) for k, v in model.named_parameters())
    assert model[1].momentum == 0.1 and model[3].momentum == 0.25
    assert not model.training and not model[1].training and model[3].training


def test_evaluation_after_recomputation_matches_batch_statistics():
    """Recomputed on the very batch that is then evaluated, eval mode gives what train mode gives (up to the
    unbiased variance)."""
    model = nn.Sequential(nn.BatchNorm2d(3)).eval()
    x = torch.randn(64, 3, 16, 16)
    recompute_bn_statistics(model, [x])
    train_out = nn.functional.batch_norm(x, None, None, model[0].weight, model[0].bias, training=True)
    assert torch.allclose(model(x), train_out, atol=1e-3)


def test_a_real_network_changes_its_statistics_and_nothing_else():
    model = get_model("resnet8", num_classes=10).eval()
    before = bn_statistics(model)
    x = torch.randn(32, 3, 32, 32)
    params = [p.clone() for p in model.parameters()]
    recompute_bn_statistics(model, [x[:16], x[16:]])
    assert statistics_gap(before, bn_statistics(model)) > 0
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters()))
    assert len(bn_layers(model)) == len(before)


def test_no_batches_or_no_bn_is_refused_and_changes_nothing():
    model = _conv_bn()
    before = bn_statistics(model)
    with pytest.raises(ValueError, match="No batches"):
        recompute_bn_statistics(model, [])
    assert statistics_gap(before, bn_statistics(model)) == 0
    with pytest.raises(ValueError, match="no batch-norm"):
        recompute_bn_statistics(nn.Sequential(nn.Conv2d(3, 3, 1)), [torch.randn(2, 3, 4, 4)])


def test_statistics_gap_counts_standard_deviations():
    a = {"bn": (torch.zeros(3), torch.full((3,), 4.0))}
    b = {"bn": (torch.tensor([2.0, 2.0, 2.0]), torch.full((3,), 4.0))}
    assert statistics_gap(a, a) == 0
    assert statistics_gap(b, a) == pytest.approx(1.0)  # 2 / sqrt(4)
    with pytest.raises(ValueError, match="different layers"):
        statistics_gap(a, {"other": a["bn"]})


# ------------------------------------------------------------------------------------------------------------
# The experiments' records and readers


def _results(errs):
    return {"provenance": {"seed": 0}, "config": {"epochs": len(errs)},
            "epochs": [{"epoch": i + 1, "lr": 0.1, "train_acc": 0.5, "train_eval_acc": 1 - e, "val_acc": 1 - e,
                        "val_loss": 1.0, "seconds": 2.0} for i, e in enumerate(errs)]}


def test_precise_record_merges_and_refuses_missing_epochs():
    precise = [{"epoch": 1, "train_eval_err_precise": 0.4, "val_err_precise": 0.45, "bn_gap": 0.1},
               {"epoch": 2, "train_eval_err_precise": 0.3, "val_err_precise": 0.35, "bn_gap": 0.2}]
    record = pbn.precise_bn_record("plain20", _results([0.5, 0.6]), precise, 10)
    assert [e["train_eval_err_precise"] for e in record["epochs"]] == [0.4, 0.3]
    assert record["final"] == {"epochs": 2, "wall_seconds": 4.0}
    jump = pbn.largest_jumps(record, top=1)[0]
    assert jump["epoch"] == 2 and jump["rise"] == pytest.approx(0.1) and jump["rise_precise"] == pytest.approx(-0.1)
    with pytest.raises(ValueError, match=r"epoch\(s\) \[2\]"):
        pbn.precise_bn_record("plain20", _results([0.5, 0.6]), precise[:1], 10)


def test_spread_summary_and_interval():
    runs = [{"seed": s, "final": {"val_err": e}} for s, e in [(1, 0.30), (0, 0.32), (2, 0.34)]]
    summary = seed_spread.spread_summary(runs)
    assert summary["mean"] == pytest.approx(32.0)
    assert summary["std"] == pytest.approx(statistics.stdev([30, 32, 34]))
    assert summary["range"] == pytest.approx(4.0)
    low, high = seed_spread.std_interval(2.0, 8)
    assert low < 2.0 < high
    # Wilson-Hilferty against the exact chi-square quantiles for 7 degrees of freedom (2.167, 14.067).
    assert low == pytest.approx(2.0 * math.sqrt(7 / 14.067), rel=0.01)
    assert high == pytest.approx(2.0 * math.sqrt(7 / 2.167), rel=0.02)
    with pytest.raises(ValueError, match="two seeds"):
        seed_spread.spread_summary(runs[:1])


def test_readers_say_how_to_make_missing_results(tmp_path):
    with pytest.raises(FileNotFoundError, match="experiment precise-bn"):
        pbn.load_precise_bn("plain20", tmp_path)
    with pytest.raises(FileNotFoundError, match="experiment seed-spread"):
        seed_spread.load_seed_spread(tmp_path)


# ------------------------------------------------------------------------------------------------------------
# The experiments on tiny synthetic runs


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    experiments.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_precise_bn_experiment_writes_one_record_with_both_evaluations(tmp_path):
    args = _parse("precise-bn", "--data", "synthetic", "--out", str(tmp_path / "runs"), "--results",
                  str(tmp_path / "res"), "--model", "plain8", "--epochs", "2", "--precise-batches", "2",
                  "--train-size", "256")
    assert experiments.run(args) == 0
    record = pbn.load_precise_bn("plain8", tmp_path / "res" / "precise_bn")
    assert [e["epoch"] for e in record["epochs"]] == [1, 2]
    for e in record["epochs"]:
        assert 0 <= e["train_eval_err_precise"] <= 1 and 0 <= e["val_err_precise"] <= 1 and e["bn_gap"] >= 0
    assert record["precise_bn_batches"] == 2 and record["config"]["train_eval_size"] == 256
    assert experiments.run(args) == 0  # finished: skipped


def test_the_callback_does_not_change_training():
    from resnet_lab.config import TrainConfig
    from resnet_lab.data import load_data
    from resnet_lab.train import fit

    data = load_data("synthetic", train_size=128, val_size=64, verbose=False)
    config = TrainConfig(epochs=2, batch_size=32, train_eval_size=64, precision="fp32")
    weights = []
    for callbacks in ([], [pbn.PreciseBNEval(data, num_batches=2)]):
        torch.manual_seed(0)
        model = get_model("plain8", num_classes=data.num_classes)
        fit(model, data, config, callbacks=callbacks, progress=False, device="cpu")
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_seed_spread_experiment_writes_one_file_per_seed_on_one_split(tmp_path):
    args = _parse("seed-spread", "--data", "synthetic", "--out", str(tmp_path / "runs"), "--results",
                  str(tmp_path / "res"), "--model", "resnet8", "--epochs", "1", "--seeds", "3", "5",
                  "--train-size", "256")
    assert experiments.run(args) == 0
    runs = seed_spread.load_seed_spread(tmp_path / "res" / "seed_spread")
    assert [r["seed"] for r in runs] == [3, 5]
    assert [r["provenance"]["seed"] for r in runs] == [3, 5]
    assert {r["provenance"]["data"]["split_seed"] for r in runs} == {0}
    assert runs[0]["epochs"][0]["val_err"] != runs[1]["epochs"][0]["val_err"] or \
        runs[0]["epochs"][0]["train_err"] != runs[1]["epochs"][0]["train_err"]


@pytest.mark.parametrize("argv, message", [
    (["seed-spread", "--seeds", "1"], "two different seeds"),
    (["precise-bn", "--precise-batches", "0"], "precise_batches"),
    (["precise-bn", "--model", "resnet21"], "21"),
])
def test_bad_options_fail_before_any_data_is_loaded(tmp_path, monkeypatch, argv, message):
    monkeypatch.setattr("resnet_lab.data.load_data", lambda *a, **k: pytest.fail("loaded data for bad options"))
    args = _parse(*argv, "--data", "synthetic", "--out", str(tmp_path / "o"), "--results", str(tmp_path / "r"))
    with pytest.raises(ValueError, match=message):
        experiments.run(args)


def test_committed_records_if_present_are_complete():
    from resnet_lab.experiments.results import repository_results_dir

    folder = repository_results_dir()
    for path in (folder / "precise_bn").glob("*.json"):
        record = json.loads(path.read_text())
        assert all("train_eval_err_precise" in e for e in record["epochs"])
        assert len(record["epochs"]) == record["config"]["epochs"]
    for path in (folder / "seed_spread").glob("*.json"):
        record = json.loads(path.read_text())
        assert record["provenance"]["data"]["split_seed"] == 0
