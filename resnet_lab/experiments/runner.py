"""The resumable grid runner shared by the experiments: train every point of a grid, one result file per point.

A grid is a list of named points (e.g. "plain20", "resnet20", ...). For each point the runner

- skips it when its result file `results_dir/<name>.json` is there and complete: a finished point never trains
  again;
- otherwise calls `run_point(name, run_dir, resume)`, where `run_dir = out_dir/<name>` holds the point's
  checkpoints and `resume` is True when an earlier, interrupted call left a `last.pt` there (so `fit` continues
  exactly where it stopped);
- writes the record that `run_point` returns to the result file, atomically, only when the point has finished:
  a result file is never half-written, and its presence means "done". A point that stopped early (a callback
  asked) returns None: no result file, and the next call resumes it.

A point whose training diverges (NonFiniteLossError) is reported and the grid goes on: a network that the shared
recipe cannot train is a finding, not a reason to stop. Ctrl-C stops the grid; the same call again resumes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnet_lab.files import check_writable_folder, write_json
from resnet_lab.train import NonFiniteLossError

# run_point(name, run_dir, resume) -> the point's result record (a JSON-able dict), or None if it stopped early.
RunPoint = Callable[[str, Path, bool], dict[str, Any] | None]


@dataclass
class GridSummary:
    """What one call of run_grid did: points trained to the end, finished earlier, stopped early, or failed."""

    finished: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # name -> the error message

    @property
    def exit_status(self) -> int:
        """0 when every point is done, 1 when some failed or stopped early (the command line's exit status)."""
        return 1 if self.failed or self.stopped else 0


def run_grid(
    points: Sequence[str],
    run_point: RunPoint,
    *,
    results_dir: str | Path,
    out_dir: str | Path,
    is_complete: Callable[[dict[str, Any]], bool] = lambda record: True,
    on_result: Callable[[str, dict[str, Any]], None] | None = None,
) -> GridSummary:
    """Run every point of the grid that has no complete result file yet, resuming interrupted ones.

    is_complete(record): whether an existing result file counts as finished (e.g. it has all the epochs asked
    for); an incomplete one is run again. on_result(name, record): called after each new result file is written
    (e.g. to regenerate a summary).
    """
    _check_names(points)
    # Fail now, not after hours of training, if a result file could not be written.
    results_dir, out_dir = check_writable_folder(results_dir), Path(out_dir)
    summary = GridSummary()
    for name in points:
        result_path = results_dir / f"{name}.json"
        if _finished(result_path, is_complete):
            print(f"{name}: finished earlier ({result_path}), skipped.", flush=True)
            summary.skipped.append(name)
            continue
        run_dir = out_dir / name
        resume = (run_dir / "last.pt").exists()
        print(f"{name}: {'resuming' if resume else 'starting'} in {run_dir}", flush=True)
        try:
            record = run_point(name, run_dir, resume)
        except NonFiniteLossError as error:
            print(f"{name}: diverged, going on with the next point. {error}", flush=True)
            summary.failed[name] = str(error)
            continue
        if record is None:
            print(f"{name}: stopped before its last epoch; run again to resume it.", flush=True)
            summary.stopped.append(name)
            continue
        write_json(record, result_path)
        summary.finished.append(name)
        if on_result is not None:
            on_result(name, record)
    if summary.failed:
        print(f"Diverged (no result file written): {', '.join(summary.failed)}.", flush=True)
    return summary


def run_checkpoint_grid(args: Any, folder_name: str, run_point: Callable[..., dict[str, Any]]) -> int:
    """Measure the depth sweep's trained checkpoints, one result file per point in results/<folder_name>.

    For the experiments that train nothing (block deletion, loss landscapes): the data are rebuilt from the
    checkpoints' own split, so that each measurement uses the images the networks were trained and validated on.
    `run_point(name, run_dir, resume, *, args, data, checkpoints)` returns a point's record. Returns the exit status.
    """
    from functools import partial

    from resnet_lab.checkpoint import read_checkpoint
    from resnet_lab.evaluate import checkpoint_data
    from resnet_lab.experiments.results import repository_results_dir

    results = Path(args.results) if args.results else repository_results_dir()
    checkpoints = Path(args.checkpoints) if args.checkpoints else results / "checkpoints"
    # Points are named MODEL-WHAT; the split is read from the first requested network's checkpoint, so that a
    # folder needs only the checkpoints of the networks asked for.
    meta = read_checkpoint(checkpoints / f"{args.points[0].partition('-')[0]}.pt")
    data = checkpoint_data({k: v for k, v in meta.items() if k != "model"}, args.data)
    if data.fingerprint != meta["data"]["fingerprint"]:
        print("WARNING: these are not the data the checkpoints were trained on: never commit these results.")
    folder = results / folder_name
    point = partial(run_point, args=args, data=data, checkpoints=checkpoints)
    return run_grid(args.points, point, results_dir=folder, out_dir=folder).exit_status


def load_points(folder: Path) -> dict[str, dict[str, Any]]:
    """Every point's record in a results folder, by point name (the file's stem)."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))}


def _check_names(points: Sequence[str]) -> None:
    """Point names become file and folder names: refuse duplicates and names that are not plain file names."""
    for name in points:
        if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(f"Grid point names must be plain file names (e.g. 'resnet20'), got {name!r}.")
    duplicates = sorted({name for name in points if list(points).count(name) > 1})
    if duplicates:
        raise ValueError(f"Each grid point must have its own name; repeated: {', '.join(duplicates)}.")


def _finished(result_path: Path, is_complete: Callable[[dict[str, Any]], bool]) -> bool:
    """Whether the point's result file exists and is complete."""
    if not result_path.exists():
        return False
    try:
        record = json.loads(result_path.read_text())
    except (OSError, ValueError) as error:
        # The runner writes atomically, so this file was damaged or written by something else: do not guess.
        raise ValueError(
            f"{result_path} is not a readable result file ({error}). Move it away or delete it to run this point "
            "again."
        ) from None
    return is_complete(record)


__all__ = ["GridSummary", "RunPoint", "run_grid"]
