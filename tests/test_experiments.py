"""resnet_lab.experiments: the depth-sweep records and summary, where results are read from, the registry, the
shared grid runner (skipping, resuming exactly, atomic result files) and the depth sweep on a tiny synthetic grid."""

from __future__ import annotations

import argparse
import errno
import io
import json
import os
import shutil
import signal
import urllib.error
import urllib.request
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from resnet_lab import cli, experiments  # noqa: E402
from resnet_lab.callbacks import Callback  # noqa: E402
from resnet_lab.checkpoint import load_checkpoint, read_checkpoint  # noqa: E402
from resnet_lab.config import TrainConfig  # noqa: E402
from resnet_lab.data import load_data  # noqa: E402
from resnet_lab.evaluate import evaluate_tensors  # noqa: E402
from resnet_lab.experiments import depth_sweep, results  # noqa: E402
from resnet_lab.experiments.runner import run_grid  # noqa: E402
from resnet_lab.files import OutputError  # noqa: E402
from resnet_lab.history import History  # noqa: E402
from resnet_lab.models import get_model  # noqa: E402
from resnet_lab.train import NonFiniteLossError, fit  # noqa: E402
from resnet_lab.viz import DEPTH_COLORS, PALETTE, plot_depth_sweep, plot_history  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COMMITTED_SWEEP = ROOT / "results" / "depth_sweep"
TINY = ["--data", "synthetic", "--train-size", "96", "--val-size", "64", "--batch-size", "32", "--depths", "8",
        "--epochs", "2"]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# ------------------------------------------------------------------------------------------------------------
# Records, table, findings and the summary README (no training)


def test_run_order_puts_the_extremes_first():
    assert experiments.depth_sweep_models((56, 20, 44, 32)) == [
        "plain20", "resnet20", "plain56", "resnet56", "plain32", "resnet32", "plain44", "resnet44"]


def _row(model, train, val):
    return {"model": model, "train_err_%": train, "val_err_%": val}


def test_findings_compare_each_depth_with_the_next_and_each_twin():
    # Out of order on purpose, and 110 must come after 56 (depths compare as numbers, not strings).
    rows = [_row("plain110", 12.0, 18.0), _row("resnet20", 7.0, 12.0), _row("plain20", 8.0, 14.0),
            _row("plain56", 10.0, 15.0), _row("resnet56", 5.0, 11.8)]
    assert experiments.depth_sweep_findings(rows) == [
        "- plain-56 against plain-20: training error higher (10.00% vs 8.00%), validation error higher "
        "(15.00% vs 14.00%).",
        "- plain-110 against plain-56: training error higher (12.00% vs 10.00%), validation error higher "
        "(18.00% vs 15.00%).",
        "- ResNet-56 against ResNet-20: training error lower (5.00% vs 7.00%), validation error lower "
        "(11.80% vs 12.00%, within seed noise).",
        "- ResNet-20 against plain-20: training error lower (7.00% vs 8.00%), validation error lower "
        "(12.00% vs 14.00%).",
        "- ResNet-56 against plain-56: training error lower (5.00% vs 10.00%), validation error lower "
        "(11.80% vs 15.00%).",
    ]
    assert experiments.depth_sweep_findings(rows[:1]) == []
    # The threshold is an argument: with none, no difference is within noise.
    assert "within seed noise" not in "".join(experiments.depth_sweep_findings(rows, threshold=0))


def test_noise_threshold_is_two_standard_deviations_of_a_difference_of_two_runs():
    assert experiments.noise_threshold(1.0) == pytest.approx(2 * 2 ** 0.5)
    assert experiments.noise_threshold() == pytest.approx(2 * 2 ** 0.5 * experiments.SEED_STD_PCT)
    assert experiments.SEED_STD_PCT == 0.16  # He et al. 2016, Table 6: ResNet-110, 6.61 +- 0.16 over 5 runs


def test_verdict_states_each_trend_and_names_the_differences_within_seed_noise():
    rows = [_row("plain20", 8.0, 14.0), _row("plain32", 10.0, 15.0), _row("resnet20", 7.0, 12.0),
            _row("resnet32", 6.9, 11.0)]
    verdict = experiments.depth_sweep_verdict(rows)
    assert verdict[0] == ("1 plain step: all raise the training error (by 2.00 points, all beyond seed "
                          "noise); all raise the validation error (by 1.00 points, all beyond seed noise).")
    assert verdict[1].startswith("1 residual step: all lower the training error (by 0.10 points, 0 of "
                                 "them beyond seed noise)")
    assert verdict[3].startswith("Verdict: as in He et al.'s figure 6, every plain step in depth degrades, every "
                                 "residual step improves and every ResNet beats its plain twin")
    assert verdict[3].endswith("though not every difference exceeds seed noise (below).")
    assert "= 0.45 points" in verdict[4]
    assert verdict[4].endswith("Within that: ResNet-32 vs ResNet-20 (training error, 0.10). Their direction could "
                               "flip with another seed.")
    # A larger seed noise swallows more; a residual step that does not improve breaks the verdict.
    assert "validation error, 1.00" in experiments.depth_sweep_verdict(rows, seed_std=0.5)[-1]
    rows[3] = _row("resnet32", 7.5, 11.0)
    worse = experiments.depth_sweep_verdict(rows)
    assert "1 of the 1" not in worse[1] and "none lowers the training error" in worse[1]
    assert worse[3].startswith("Verdict: these runs do not reproduce every trend")
    assert experiments.depth_sweep_verdict([]) == []


def test_table_rows_carry_the_published_error_and_the_running_error(tmp_path):
    record = {"model": "resnet20", "family": "resnet", "depth": 20, "provenance": {"device": "cpu"},
              "epochs": [{"train_err": 0.1234}], "final": {"epochs": 30, "train_eval_err": 0.0686,
                                                            "val_err": 0.1286, "wall_seconds": 600}}
    (tmp_path / "resnet20.json").write_text(json.dumps(record))
    (tmp_path / "plain20.json").write_text(json.dumps({**record, "model": "plain20", "family": "plain"}))
    rows = experiments.depth_sweep_table(tmp_path)
    assert [r["published_err_%"] for r in rows] == [None, 8.75]  # Table 6 has no plain networks
    assert rows[1]["running_err_%"] == 12.34 and rows[1]["train_err_%"] == 6.86
    assert experiments.format_depth_sweep_table(rows).splitlines() == [
        "network    epochs  train err %  val err %  He et al. test err %",
        "plain-20       30         6.86      12.86                     -",
        "ResNet-20      30         6.86      12.86                  8.75",
    ]
    narrow = experiments.format_depth_sweep_table(rows, ("running_err_%", "wall_min"))
    assert narrow.splitlines()[2] == "ResNet-20          12.34     10.0"
    with pytest.raises(ValueError, match="unknown column"):
        experiments.format_depth_sweep_table(rows, ("accuracy",))


@pytest.mark.parametrize("name", ["preact_resnet110", "resnet18", "resnet18_cifar"])
def test_only_plain_and_resnet_cifar_names_belong_to_the_sweep(name):
    with pytest.raises(ValueError, match="not a depth-sweep model name"):
        experiments.sweep_record(name, {"epochs": [], "provenance": {}, "config": {}})


@pytest.mark.parametrize("prov, expected", [
    ({"device": "cpu (x86_64, 2 threads)", "cpu_model": "AMD EPYC"}, "cpu (x86_64, 2 threads), AMD EPYC"),
    ({"device": "cpu (x86_64, 1 threads)"}, "cpu (x86_64, 1 thread)"),  # an old record, before the grammar fix
    ({"device": "cpu (x86_64, 16 threads)", "cpu_model": None}, "cpu (x86_64, 16 threads)"),
    ({"device": "NVIDIA H200", "cpu_model": "AMD EPYC"}, "NVIDIA H200"),  # the CPU does not matter on a GPU
])
def test_run_device_names_the_cpu_and_fixes_old_grammar(prov, expected):
    assert experiments.run_device(prov) == expected


@pytest.mark.skipif(not (COMMITTED_SWEEP / "README.md").exists(), reason="no committed depth sweep")
def test_committed_records_regenerate_the_committed_summary(tmp_path):
    """The committed JSON files load as they are, and the README written from them is the committed one."""
    copy = shutil.copytree(COMMITTED_SWEEP, tmp_path / "depth_sweep")
    (copy / "README.md").unlink()
    runs = experiments.load_depth_sweep(copy)
    assert {r["model"] for r in runs} == {p.stem for p in COMMITTED_SWEEP.glob("*.json")}
    order = [(r["depth"], r["family"]) for r in runs]
    assert order == sorted(order)  # grid order: by depth (as numbers), plain before resnet
    experiments.write_summary(copy)
    assert (copy / "README.md").read_text() == (COMMITTED_SWEEP / "README.md").read_text()
    assert [p.name for p in copy.iterdir() if p.name.startswith(".")] == []  # no temporary files left


@pytest.mark.skipif(not (COMMITTED_SWEEP / "resnet20.json").exists(), reason="no committed resnet20 record")
def test_summary_names_new_records_data_without_a_path(tmp_path):
    """Records written since the content fingerprint carry the data's name, never a path of the machine."""
    record = json.loads((COMMITTED_SWEEP / "resnet20.json").read_text())
    data = record["provenance"]["data"]
    assert "source" not in data  # the committed records name their data (results/migrations/)
    data.update(name="cifar10-jpeg", kind="folder", fingerprint="0" * 32)
    (tmp_path / "resnet20.json").write_text(json.dumps(record))
    readme = experiments.write_summary(tmp_path).read_text()
    assert f"Data: cifar10-jpeg (content fingerprint {'0' * 32}), 45,000 training images, 5,000 held out" in readme
    assert "/work/" not in readme and "source" not in readme
    assert "JPEG-compressed" in readme
    assert "Not yet run (the sweep resumes where it stopped): plain20, plain56, resnet56, " in readme


# ------------------------------------------------------------------------------------------------------------
# Where results are read from: never the network, unless download_results() is called


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No results anywhere: no checkout results/, none next to the working folder, an empty cache."""
    monkeypatch.delenv(results.RESULTS_ENV, raising=False)
    monkeypatch.setenv("RESNET_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(results, "_CHECKOUT_RESULTS", tmp_path / "no-checkout" / "results")
    (tmp_path / "work" / "notebooks").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work" / "notebooks")

    def no_network(*args, **kwargs):
        raise AssertionError("results_dir() must never download")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return tmp_path


def test_results_dir_without_results_says_how_to_get_them_and_never_downloads(nowhere):
    with pytest.raises(FileNotFoundError, match=r"download_results\(\)"):
        experiments.results_dir()
    with pytest.raises(FileNotFoundError, match="download_results"):
        experiments.load_depth_sweep()


def test_results_dir_order_env_then_working_folder(nowhere, monkeypatch):
    (nowhere / "work" / "results").mkdir()  # ../results, as seen from notebooks/
    assert experiments.results_dir() == nowhere / "work" / "results"
    monkeypatch.setenv(results.RESULTS_ENV, str(nowhere / "mine"))
    assert experiments.results_dir() == nowhere / "mine"


def test_repository_results_dir_outside_a_checkout_says_to_pass_results(nowhere):
    with pytest.raises(FileNotFoundError, match="--results DIR"):
        experiments.repository_results_dir()


class _FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_download_results_fetches_committed_files_into_the_cache(nowhere, monkeypatch):
    served = {"depth_sweep/plain20.json": b'{"model": "plain20"}', "depth_sweep/resnet20.json": b'{"new": 1}'}
    asked = []

    def urlopen(url, timeout):
        name = url.removeprefix(results.RESULTS_URL + "/")
        asked.append(name)
        if name not in served:
            raise urllib.error.HTTPError(url, 404, "Not Found", None, None)
        return _FakeResponse(served[name])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    kept = nowhere / "cache" / "results" / "depth_sweep" / "resnet20.json"
    kept.parent.mkdir(parents=True)
    kept.write_text('{"old": 1}')
    dest = experiments.download_results()
    assert dest == nowhere / "cache" / "results"
    assert (dest / "depth_sweep" / "plain20.json").read_bytes() == served["depth_sweep/plain20.json"]
    assert kept.read_text() == '{"old": 1}' and "depth_sweep/resnet20.json" not in asked  # kept, not fetched
    assert sorted(p.name for p in (dest / "depth_sweep").iterdir()) == ["plain20.json", "resnet20.json"]
    # Later calls find the downloaded copy without the network.
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("downloaded twice"))
    assert experiments.results_dir() == dest


def test_download_results_without_network_says_what_to_do(nowhere, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError, match="Cannot download the result files"):
        experiments.download_results(nowhere / "dest")
    assert not (nowhere / "dest").exists() or not any((nowhere / "dest").rglob("*.json"))


# ------------------------------------------------------------------------------------------------------------
# The registry: one sub-command per experiment, with its own options


def _experiment_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="experiment")
    experiments.add_arguments(parser)
    return parser


def test_each_experiment_has_its_own_help(capsys):
    assert "depth-sweep" in experiments.EXPERIMENTS
    with pytest.raises(SystemExit):
        _experiment_parser().parse_args(["depth-sweep", "--help"])
    out = capsys.readouterr().out
    for option in ("--depths", "--epochs", "--train-eval-size", "--export", "--results"):
        assert option in out
    args = _experiment_parser().parse_args(["depth-sweep", "--data", "d", "--out", "o"])
    assert args.experiment == "depth-sweep" and args.depths == [20, 32, 44, 56] and args.epochs == 30
    assert args.export == ["resnet20", "resnet56", "plain56"]


def test_unknown_experiment_is_refused(capsys):
    with pytest.raises(SystemExit):
        _experiment_parser().parse_args(["width-sweep"])
    assert "invalid choice" in capsys.readouterr().err


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match="already registered"):
        experiments.register(experiments.EXPERIMENTS["depth-sweep"])


@pytest.mark.parametrize("option, message", [(["--depths", "21"], "21"), (["--epochs", "0"], "epochs")])
def test_bad_options_fail_before_any_data_is_loaded(tmp_path, monkeypatch, option, message):
    monkeypatch.setattr("resnet_lab.data.load_data", lambda *a, **k: pytest.fail("loaded data for a bad grid"))
    args = _experiment_parser().parse_args(["depth-sweep", "--data", "synthetic", "--out", str(tmp_path / "o"),
                                            "--results", str(tmp_path / "r"), *option])
    with pytest.raises(ValueError, match=message):
        experiments.run(args)


# ------------------------------------------------------------------------------------------------------------
# The grid runner, with fake points (no training)


def _record_calls(calls, outcome=None):
    """A run_point that records its calls and returns {"name": ...} (or what `outcome(name)` gives/raises)."""
    def run_point(name, run_dir, resume):
        calls.append((name, resume))
        return outcome(name) if outcome else {"name": name, "final": {"epochs": 2}}

    return run_point


def test_finished_points_are_skipped_and_incomplete_ones_run_again(tmp_path, capsys):
    res = tmp_path / "results"
    res.mkdir()
    (res / "a.json").write_text(json.dumps({"name": "a", "final": {"epochs": 2}}))
    (res / "b.json").write_text(json.dumps({"name": "b", "final": {"epochs": 1}}))  # from a shorter grid
    calls = []
    summary = run_grid(["a", "b", "c"], _record_calls(calls), results_dir=res, out_dir=tmp_path / "runs",
                       is_complete=lambda r: r["final"]["epochs"] == 2)
    assert calls == [("b", False), ("c", False)]
    assert summary.skipped == ["a"] and summary.finished == ["b", "c"] and summary.exit_status == 0
    assert json.loads((res / "b.json").read_text())["final"]["epochs"] == 2
    assert "a: finished earlier" in capsys.readouterr().out


def test_a_point_with_a_checkpoint_is_resumed(tmp_path):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "last.pt").write_bytes(b"")
    calls = []
    run_grid(["a", "b"], _record_calls(calls), results_dir=tmp_path / "results", out_dir=tmp_path / "runs")
    assert calls == [("a", True), ("b", False)]


def test_a_diverged_point_is_recorded_and_the_grid_goes_on(tmp_path, capsys):
    def outcome(name):
        if name == "b":
            raise NonFiniteLossError("The training loss became nan at step 3.")
        return {"name": name}

    calls = []
    summary = run_grid(["a", "b", "c"], _record_calls(calls, outcome), results_dir=tmp_path / "r",
                       out_dir=tmp_path / "runs")
    assert [name for name, _ in calls] == ["a", "b", "c"]
    assert summary.finished == ["a", "c"] and list(summary.failed) == ["b"] and "nan" in summary.failed["b"]
    assert summary.exit_status == 1
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["a.json", "c.json"]
    assert "b: diverged" in capsys.readouterr().out


def test_a_point_that_stopped_early_gets_no_result_file(tmp_path):
    summary = run_grid(["a"], _record_calls([], lambda name: None), results_dir=tmp_path / "r",
                       out_dir=tmp_path / "runs")
    assert summary.stopped == ["a"] and summary.exit_status == 1
    assert list((tmp_path / "r").iterdir()) == []


def test_result_files_are_written_atomically(tmp_path, monkeypatch):
    """A failure while the result file is written (a full disk) leaves the previous file whole and no litter."""
    res = tmp_path / "results"
    res.mkdir()
    (res / "a.json").write_text('{"final": {"epochs": 1}}')  # an older, incomplete result: to be replaced

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("resnet_lab.files.os.replace", disk_full)
    with pytest.raises(OutputError, match="disk is full"):
        run_grid(["a"], _record_calls([]), results_dir=res, out_dir=tmp_path / "runs",
                 is_complete=lambda r: r["final"]["epochs"] == 2)
    assert [p.name for p in res.iterdir()] == ["a.json"]
    assert (res / "a.json").read_text() == '{"final": {"epochs": 1}}'


@pytest.mark.parametrize("points, message", [
    (["a", "../b"], "plain file names"),
    (["a", ""], "plain file names"),
    (["a", "b", "a"], "repeated: a"),
])
def test_point_names_must_be_distinct_file_names(tmp_path, points, message):
    calls = []
    with pytest.raises(ValueError, match=message):
        run_grid(points, _record_calls(calls), results_dir=tmp_path / "r", out_dir=tmp_path / "runs")
    assert calls == []


def test_a_damaged_result_file_is_not_overwritten(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "a.json").write_text('{"final": ')
    with pytest.raises(ValueError, match="not a readable result file"):
        run_grid(["a"], _record_calls([]), results_dir=tmp_path / "r", out_dir=tmp_path / "runs")
    assert (tmp_path / "r" / "a.json").read_text() == '{"final": '


def test_results_that_cannot_be_written_fail_before_training(tmp_path):
    (tmp_path / "r").write_text("a file, not a folder")
    calls = []
    with pytest.raises(OutputError, match="not a folder"):
        run_grid(["a"], _record_calls(calls), results_dir=tmp_path / "r", out_dir=tmp_path / "runs")
    assert calls == []


# ------------------------------------------------------------------------------------------------------------
# The grid runner with real training: an interrupted point resumes exactly


class _CtrlCAfterFirstEpoch(Callback):
    """Presses Ctrl-C once epoch 1 is saved, as a user stopping a long sweep would."""

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt


@pytest.mark.usefixtures("one_thread")
def test_an_interrupted_point_resumes_to_the_same_weights(tmp_path):
    data = load_data("synthetic", train_size=96, val_size=32, verbose=False)
    config = TrainConfig(epochs=2, batch_size=32)

    def train_point(interrupt):
        def run_point(name, run_dir, resume):
            torch.manual_seed(0)
            callbacks = [_CtrlCAfterFirstEpoch()] if interrupt and not resume else []
            history = fit(get_model(name), data, config, out_dir=run_dir, resume=resume, callbacks=callbacks,
                          progress=False)
            return {"epochs": [{k: v for k, v in e.items() if "seconds" not in k and k != "images_per_s"}
                               for e in history.epochs]}

        return run_point

    reference = run_grid(["resnet8"], train_point(False), results_dir=tmp_path / "ref", out_dir=tmp_path / "ref_runs")
    assert reference.finished == ["resnet8"]

    with pytest.raises(KeyboardInterrupt):
        run_grid(["resnet8"], train_point(True), results_dir=tmp_path / "res", out_dir=tmp_path / "runs")
    assert not (tmp_path / "res" / "resnet8.json").exists()  # no result for an unfinished point
    assert read_checkpoint(tmp_path / "runs" / "resnet8" / "last.pt")["epoch"] == 1

    resumed = run_grid(["resnet8"], train_point(True), results_dir=tmp_path / "res", out_dir=tmp_path / "runs")
    assert resumed.finished == ["resnet8"]
    ours = read_checkpoint(tmp_path / "runs" / "resnet8" / "last.pt")
    theirs = read_checkpoint(tmp_path / "ref_runs" / "resnet8" / "last.pt")
    assert ours["epoch"] == theirs["epoch"] == 2
    assert ours["model"].keys() == theirs["model"].keys()
    for key in theirs["model"]:
        assert torch.equal(ours["model"][key], theirs["model"][key]), key
    assert (json.loads((tmp_path / "res" / "resnet8.json").read_text())
            == json.loads((tmp_path / "ref" / "resnet8.json").read_text()))


# ------------------------------------------------------------------------------------------------------------
# The depth sweep on a tiny synthetic grid, through the command line


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The sweep on resnet8/plain8 for two epochs; returns (results dir, runs dir, argv)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sweep")
    argv = ["experiment", "depth-sweep", *TINY, "--export", "resnet8", "--out", str(root / "runs"),
            "--results", str(root / "results")]
    try:
        assert cli.main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    return root / "results", root / "runs", argv


def test_sweep_writes_one_record_per_network(sweep):
    results_path, runs, _ = sweep
    files = sorted(p.name for p in (results_path / "depth_sweep").iterdir())
    assert files == ["README.md", "plain8.json", "resnet8.json"]  # and no temporary files
    for name in ("plain8", "resnet8"):
        record = json.loads((results_path / "depth_sweep" / f"{name}.json").read_text())
        fit_record = json.loads((runs / name / "results.json").read_text())
        assert record["model"] == name and record["depth"] == 8
        assert [e["epoch"] for e in record["epochs"]] == [1, 2]
        # Errors are 1 - accuracy of the engine's record, epoch by epoch.
        for mine, theirs in zip(record["epochs"], fit_record["epochs"]):
            assert mine["val_err"] == pytest.approx(1 - theirs["val_acc"])
            assert mine["train_eval_err"] == pytest.approx(1 - theirs["train_eval_acc"])
        assert record["provenance"]["command"].startswith("python -m resnet_lab experiment depth-sweep")
        assert record["config"]["model"]["name"] == name
    table = experiments.depth_sweep_table(results_path / "depth_sweep")
    assert [row["model"] for row in table] == ["plain8", "resnet8"]
    readme = (results_path / "depth_sweep" / "README.md").read_text()
    assert "| plain-8 | 2 |" in readme and "| ResNet-8 | 2 |" in readme
    assert "## What the data show" in readme and "- ResNet-8 against plain-8: training error " in readme


def test_plain_and_residual_twins_share_the_recipe(sweep):
    results_path, _, _ = sweep
    plain, res = (json.loads((results_path / "depth_sweep" / f"{n}.json").read_text()) for n in ("plain8", "resnet8"))
    strip = lambda config: {k: v for k, v in config.items() if k != "model"}  # noqa: E731
    assert strip(plain["config"]) == strip(res["config"])
    assert plain["config"]["epochs"] == 2 and plain["config"]["batch_size"] == 32


def test_a_second_invocation_skips_finished_runs(sweep, capsys, monkeypatch):
    results_path, runs, argv = sweep
    before = (runs / "plain8" / "last.pt").stat().st_mtime_ns
    monkeypatch.setattr("resnet_lab.train.fit", lambda *a, **k: pytest.fail("trained a finished network"))
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.count("finished earlier") == 2
    assert (runs / "plain8" / "last.pt").stat().st_mtime_ns == before


def test_only_the_requested_networks_are_exported(sweep):
    results_path, _, _ = sweep
    assert sorted(p.name for p in (results_path / "checkpoints").iterdir()) == ["resnet8.pt"]


def test_fp16_export_reloads_to_the_recorded_accuracy(sweep, tmp_path):
    results_path, runs, _ = sweep
    data = load_data("synthetic", train_size=96, val_size=64, verbose=False)
    val = experiments.export_half_precision(runs / "resnet8" / "last.pt", tmp_path / "resnet8.pt", data)
    assert (tmp_path / "resnet8.pt").stat().st_size < (runs / "resnet8" / "last.pt").stat().st_size / 2
    model, meta = load_checkpoint(tmp_path / "resnet8.pt")
    assert meta["val"] == val
    assert load_checkpoint(results_path / "checkpoints" / "resnet8.pt")[1]["val"] == val  # the sweep's export
    metrics = evaluate_tensors(model, data.val_x, data.val_y, data.mean, data.std, num_classes=10,
                               precision="fp32", channels_last=False)
    assert metrics["accuracy"] == val["accuracy"]
    assert abs(val["accuracy"] - val["accuracy_fp32_weights"]) <= 2 / len(data.val_y)


@pytest.mark.usefixtures("one_thread")
def test_an_interrupted_sweep_resumes_to_the_same_records(sweep, tmp_path, monkeypatch, capsys):
    """Ctrl-C in the middle of the first network, then the same command again: the records equal the reference's."""
    reference, _, _ = sweep
    argv = ["experiment", "depth-sweep", *TINY, "--export", "--out", str(tmp_path / "runs"),
            "--results", str(tmp_path / "res")]
    build = depth_sweep.get_model
    built = []

    def press_ctrl_c_in_first_network(name, **options):
        model = build(name, **options)
        if next(model.parameters()).is_meta:
            return model  # the sweep checks every name on the meta device first
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

    monkeypatch.setattr(depth_sweep, "get_model", press_ctrl_c_in_first_network)
    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert "epoch 2, step 2 of 3" in err and "same command again" in err
    assert not (tmp_path / "res" / "depth_sweep" / "plain8.json").exists()

    assert cli.main(argv) == 0
    drop = lambda epochs: [{k: v for k, v in e.items() if k != "seconds"} for e in epochs]  # noqa: E731
    for name in ("plain8", "resnet8"):
        ours = json.loads((tmp_path / "res" / "depth_sweep" / f"{name}.json").read_text())
        theirs = json.loads((reference / "depth_sweep" / f"{name}.json").read_text())
        assert drop(ours["epochs"]) == drop(theirs["epochs"])
    assert "resumed" not in ours["provenance"]  # resnet8 ran in one go
    plain = json.loads((tmp_path / "res" / "depth_sweep" / "plain8.json").read_text())
    assert plain["provenance"]["resumed"][0]["epoch"] == 1
    assert not (tmp_path / "res" / "checkpoints").exists()  # --export with no names: nothing exported


# ------------------------------------------------------------------------------------------------------------
# Figures drawn from the records


def test_depth_sweep_figure_has_both_panels(sweep):
    results_path, _, _ = sweep
    fig = plot_depth_sweep(experiments.load_depth_sweep(results_path / "depth_sweep"))
    left, right = fig.axes
    assert [line.get_label() for line in left.get_lines() if not line.get_label().startswith("_")] == ["plain-8"]
    assert [line.get_label() for line in right.get_lines() if not line.get_label().startswith("_")] == ["ResNet-8"]
    assert len(left.get_lines()) == 2  # training error (dashed) and validation error (solid)


def test_depth_sweep_figure_wants_records(tmp_path):
    with pytest.raises(TypeError, match="load_depth_sweep"):
        plot_depth_sweep(tmp_path)
    with pytest.raises(ValueError, match="experiment depth-sweep"):
        plot_depth_sweep([])


def test_depth_sweep_figure_of_a_sweep_in_progress(sweep, recwarn):
    """Only plain runs finished so far: the residual panel says so, and matplotlib has nothing to warn about."""
    results_path, _, _ = sweep
    plain = [r for r in experiments.load_depth_sweep(results_path / "depth_sweep") if r["family"] == "plain"]
    fig = plot_depth_sweep(plain)
    right = fig.axes[1]
    assert not right.get_lines() and [t.get_text() for t in right.texts] == ["no finished runs yet"]
    assert not [w for w in recwarn if "legend" in str(w.message)]


def test_committed_depth_sweep_uses_the_book_palette():
    runs = experiments.load_depth_sweep(COMMITTED_SWEEP)
    if not runs:
        pytest.skip("no committed depth sweep")
    fig = plot_depth_sweep(runs)
    colors = {line.get_label(): line.get_color() for line in fig.axes[1].get_lines()}
    assert colors["ResNet-56"] == DEPTH_COLORS[56] == PALETTE[3]


def test_history_figure_from_a_run(sweep):
    _, runs, _ = sweep
    history = History.from_json(runs / "resnet8" / "results.json")
    fig = plot_history(history)
    loss, error = fig.axes
    assert [line.get_label() for line in error.get_lines()] == [
        "training (augmented batches)", "training (fixed subset, no augmentation)", "validation"]
    expected = [100 * (1 - a) for a in history["val_acc"]]
    assert list(error.get_lines()[2].get_ydata()) == pytest.approx(expected)
    assert fig._suptitle.get_text() == "resnet8, 2 epochs"
    # A plain list of epochs works too, and a record without a train-eval subset draws two curves.
    epochs = [{k: v for k, v in e.items() if not k.startswith("train_eval")} for e in history.epochs]
    assert len(plot_history(epochs, metric="accuracy").axes[1].get_lines()) == 2
    with pytest.raises(ValueError, match="metric"):
        plot_history(history, metric="loss")
    with pytest.raises(ValueError, match="no epochs"):
        plot_history([])
