"""The depth-sweep runner on a tiny synthetic grid: result files, resuming, the fp16 export and the figure."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from resnet_lab import cli, experiments
from resnet_lab.checkpoint import load_checkpoint
from resnet_lab.data import load_data
from resnet_lab.train import evaluate_tensors

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--data", "synthetic", "--train-size", "96", "--val-size", "64", "--batch-size", "32", "--depths", "8",
        "--epochs", "2"]


def test_run_order_puts_the_extremes_first():
    assert experiments.depth_sweep_models((56, 20, 44, 32)) == [
        "plain20", "resnet20", "plain56", "resnet56", "plain32", "resnet32", "plain44", "resnet44"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The runner on resnet8/plain8 for two epochs; returns (results dir, runs dir)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sweep")
    argv = ["experiment", "depth-sweep", *TINY, "--out", str(root / "runs"), "--results", str(root / "results")]
    assert cli.main(argv) == 0
    torch.set_num_threads(threads)
    return root / "results", root / "runs", argv


def test_sweep_writes_one_record_per_network(sweep):
    results, runs, _ = sweep
    files = sorted(p.name for p in (results / "depth_sweep").glob("*.json"))
    assert files == ["plain8.json", "resnet8.json"]
    for name in ("plain8", "resnet8"):
        record = json.loads((results / "depth_sweep" / f"{name}.json").read_text())
        fit_record = json.loads((runs / name / "results.json").read_text())
        assert record["model"] == name and record["depth"] == 8
        assert [e["epoch"] for e in record["epochs"]] == [1, 2]
        # Errors are 1 - accuracy of the engine's record, epoch by epoch.
        for mine, theirs in zip(record["epochs"], fit_record["epochs"]):
            assert mine["val_err"] == pytest.approx(1 - theirs["val_acc"])
            assert mine["train_eval_err"] == pytest.approx(1 - theirs["train_eval_acc"])
        assert record["provenance"]["command"].startswith("python -m resnet_lab experiment depth-sweep")
        assert record["config"]["model"]["name"] == name
    table = experiments.depth_sweep_table(results / "depth_sweep")
    assert [row["model"] for row in table] == ["plain8", "resnet8"]
    readme = (results / "depth_sweep" / "README.md").read_text()
    assert "| plain8 | 2 |" in readme and "| resnet8 | 2 |" in readme
    assert "## What the data show" in readme and "- resnet8 against plain8: training error " in readme


def test_findings_compare_each_depth_with_the_next_and_each_twin():
    def row(model, train, val):
        return {"model": model, "train_err_%": train, "val_err_%": val}

    # Out of order on purpose, and 110 must come after 56 (depths compare as numbers, not strings).
    rows = [row("plain110", 12.0, 18.0), row("resnet20", 7.0, 12.0), row("plain20", 8.0, 14.0),
            row("plain56", 10.0, 15.0), row("resnet56", 5.0, 12.0)]
    assert experiments.depth_sweep_findings(rows) == [
        "- plain56 against plain20: training error higher (10.00% vs 8.00%), validation error higher "
        "(15.00% vs 14.00%).",
        "- plain110 against plain56: training error higher (12.00% vs 10.00%), validation error higher "
        "(18.00% vs 15.00%).",
        "- resnet56 against resnet20: training error lower (5.00% vs 7.00%), validation error the same "
        "(12.00% vs 12.00%).",
        "- resnet20 against plain20: training error lower (7.00% vs 8.00%), validation error lower (12.00% vs 14.00%).",
        "- resnet56 against plain56: training error lower (5.00% vs 10.00%), validation error lower "
        "(12.00% vs 15.00%).",
    ]
    assert experiments.depth_sweep_findings(rows[:1]) == []


@pytest.mark.parametrize("prov, expected", [
    ({"device": "cpu (x86_64, 2 threads)", "cpu_model": "AMD EPYC"}, "cpu (x86_64, 2 threads), AMD EPYC"),
    ({"device": "cpu (x86_64, 1 threads)"}, "cpu (x86_64, 1 thread)"),  # an old record, before the grammar fix
    ({"device": "cpu (x86_64, 16 threads)", "cpu_model": None}, "cpu (x86_64, 16 threads)"),
    ({"device": "NVIDIA H200", "cpu_model": "AMD EPYC"}, "NVIDIA H200"),  # the CPU does not matter on a GPU
])
def test_run_device_names_the_cpu_and_fixes_old_grammar(prov, expected):
    assert experiments.run_device(prov) == expected


def test_plain_and_residual_twins_share_the_recipe(sweep):
    results, _, _ = sweep
    plain, res = (json.loads((results / "depth_sweep" / f"{n}.json").read_text()) for n in ("plain8", "resnet8"))
    strip = lambda config: {k: v for k, v in config.items() if k != "model"}  # noqa: E731
    assert strip(plain["config"]) == strip(res["config"])


def test_a_second_invocation_skips_finished_runs(sweep, capsys):
    results, runs, argv = sweep
    before = (runs / "plain8" / "last.pt").stat().st_mtime_ns
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("finished earlier") == 2
    assert (runs / "plain8" / "last.pt").stat().st_mtime_ns == before


def test_fp16_export_reloads_to_the_recorded_accuracy(sweep, tmp_path):
    results, runs, _ = sweep
    data = load_data("synthetic", train_size=96, val_size=64, verbose=False)
    val = experiments.export_half_precision(runs / "resnet8" / "last.pt", tmp_path / "resnet8.pt", data)
    assert (tmp_path / "resnet8.pt").stat().st_size < (runs / "resnet8" / "last.pt").stat().st_size / 2
    model, meta = load_checkpoint(tmp_path / "resnet8.pt")
    assert meta["val"] == val
    metrics = evaluate_tensors(model, data.val_x, data.val_y, data.mean, data.std, num_classes=10,
                               precision="fp32", channels_last=False)
    assert metrics["accuracy"] == val["accuracy"]
    assert abs(val["accuracy"] - val["accuracy_fp32_weights"]) <= 2 / 64


def test_depth_sweep_figure_has_both_panels(sweep):
    results, _, _ = sweep
    from resnet_lab.viz import plot_depth_sweep

    fig = plot_depth_sweep(results / "depth_sweep")
    left, right = fig.axes
    assert [line.get_label() for line in left.get_lines() if not line.get_label().startswith("_")] == ["plain-8"]
    assert [line.get_label() for line in right.get_lines() if not line.get_label().startswith("_")] == ["ResNet-8"]
    assert len(left.get_lines()) == 2  # training error (dashed) and validation error (solid)


def test_missing_results_say_how_to_make_them(tmp_path):
    from resnet_lab.viz import plot_depth_sweep

    with pytest.raises(FileNotFoundError, match="experiment depth-sweep"):
        plot_depth_sweep(tmp_path)


def test_an_interrupted_sweep_resumes_to_the_same_records(sweep, tmp_path, monkeypatch, capsys):
    """Ctrl-C in the middle of the first network, then the same command again: the records equal the reference's."""
    reference, _, _ = sweep
    argv = ["experiment", "depth-sweep", *TINY, "--out", str(tmp_path / "runs"), "--results", str(tmp_path / "res")]
    build = experiments.get_model
    built = []

    def press_ctrl_c_in_first_network(name, **options):
        model = build(name, **options)
        if not built:
            steps = {"n": 0}

            def hook(module, inputs, output):
                if module.training:
                    steps["n"] += 1
                    if steps["n"] == 5:  # epoch 2, step 2 of 3
                        os.kill(os.getpid(), signal.SIGINT)

            model.register_forward_hook(hook)
        built.append(name)
        return model

    monkeypatch.setattr(experiments, "get_model", press_ctrl_c_in_first_network)
    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert "epoch 2, step 2 of 3" in err and "same command again" in err
    assert not (tmp_path / "res" / "depth_sweep" / "plain8.json").exists()

    assert cli.main(argv) == 0
    for name in ("plain8", "resnet8"):
        ours = json.loads((tmp_path / "res" / "depth_sweep" / f"{name}.json").read_text())
        theirs = json.loads((reference / "depth_sweep" / f"{name}.json").read_text())
        drop = lambda epochs: [{k: v for k, v in e.items() if k != "seconds"} for e in epochs]  # noqa: E731
        assert drop(ours["epochs"]) == drop(theirs["epochs"])
    assert len(ours["provenance"].get("resumed", [])) == 0  # resnet8 ran in one go
    plain = json.loads((tmp_path / "res" / "depth_sweep" / "plain8.json").read_text())
    assert plain["provenance"]["resumed"][0]["epoch"] == 1


def test_depth_sweep_figure_of_a_sweep_in_progress(sweep, tmp_path, recwarn):
    """Only plain runs finished so far: the residual panel says so, and matplotlib has nothing to warn about."""
    import shutil

    from resnet_lab.viz import plot_depth_sweep

    results, _, _ = sweep
    shutil.copy(results / "depth_sweep" / "plain8.json", tmp_path / "plain8.json")
    fig = plot_depth_sweep(tmp_path)
    right = fig.axes[1]
    assert not right.get_lines() and [t.get_text() for t in right.texts] == ["no finished runs yet"]
    assert not [w for w in recwarn if "legend" in str(w.message)]
