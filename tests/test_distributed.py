"""Distributed training: the same `train` command under `torchrun --nproc_per_node 2` (gloo on the CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from resnet_lab import cli


@pytest.mark.slow
def test_two_process_gloo_run_writes_one_results_file(tmp_path, capsys):
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "resnet_lab", "train", "--model", "resnet8", "--data", "synthetic", "--train-size", "128",
        "--val-size", "64", "--batch-size", "32", "--epochs", "2", "--no-progress", "--out", str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes on a small CPU: one thread each
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [".lock", "best.pt", "last.pt", "results.json"]
    record = json.loads((out / "results.json").read_text())
    assert record["status"] == "finished" and [e["epoch"] for e in record["epochs"]] == [1, 2]
    assert record["provenance"]["world_size"] == 2
    # The summary line is printed once (process 0), not once per process.
    assert result.stdout.count("Checkpoints and results.json in") == 1
    # Validation was split over the two processes and summed: a single-process evaluation agrees.
    assert cli.main(["evaluate", "--checkpoint", str(out / "last.pt")]) == 0
    report = json.loads(capsys.readouterr().out)
    last = record["epochs"][-1]
    assert report["count"] == 64
    assert report["accuracy"] == pytest.approx(last["val_acc"])
    assert report["loss"] == pytest.approx(last["val_loss"], rel=1e-3)
