"""Experiments that produce the book's committed results: `python -m resnet_lab experiment NAME ...`.

depth-sweep: plain and residual CIFAR networks of growing depth, trained with one identical recipe on real
CIFAR-10 images, so that the only difference between a plain network and its ResNet twin is the skip connection
(He et al. 2016, figure 6). Each run trains in its own folder under `--out` (checkpoints, resumable), and its
per-epoch record is copied to `results/depth_sweep/<model>.json` once it has finished.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

import torch

from resnet_lab.checkpoint import build_model, read_checkpoint, save_checkpoint
from resnet_lab.data import ImageData, cache_dir, load_data
from resnet_lab.models import get_model
from resnet_lab.train import DEFAULT_BATCH_SIZE, NonFiniteLossError, evaluate_tensors, fit

DEPTH_SWEEP_DEPTHS = (20, 32, 44, 56)
DEPTH_SWEEP_EPOCHS = 30
DEPTH_SWEEP_VAL_SIZE = 5000
DEPTH_SWEEP_TRAIN_EVAL_SIZE = 5000
# Final weights committed in half precision for later chapters (lesion study, loss landscape, gradient flow).
EXPORTED_CHECKPOINTS = ("resnet20", "resnet56", "plain56")

RESULTS_ENV = "RESNET_LAB_RESULTS"
# Readers without a checkout (Colab installs only the package) fetch the committed result files from here.
RESULTS_URL = "https://raw.githubusercontent.com/resnet-lab/resnet-lab/main/results"


def repository_results_dir() -> Path:
    """results/ of the repository checkout the package is installed from (`pip install -e .`): where runs write."""
    path = Path(__file__).resolve().parent.parent / "results"
    if not path.is_dir():
        raise FileNotFoundError(
            f"resnet_lab is not installed from a repository checkout ({path} does not exist): pass --results DIR to "
            "choose where the result files go."
        )
    return path


def results_dir() -> Path:
    """Where to read the committed results: $RESNET_LAB_RESULTS, the repository checkout, ./results or
    ../results (a notebook started from notebooks/), else a local copy downloaded from the repository (Colab)."""
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV]).expanduser()
    here = Path(__file__).resolve().parent.parent / "results"
    for candidate in (here, Path.cwd() / "results", Path.cwd().parent / "results"):
        if candidate.is_dir():
            return candidate
    return _download_results()


def _download_results() -> Path:
    """Fetch results/depth_sweep/*.json from the repository into the cache (files that do not exist are skipped)."""
    dest = cache_dir() / "results"
    for name in depth_sweep_models(DEPTH_SWEEP_DEPTHS + (110,)):
        target = dest / "depth_sweep" / f"{name}.json"
        if target.exists():
            continue
        try:
            with urllib.request.urlopen(f"{RESULTS_URL}/depth_sweep/{name}.json", timeout=30) as response:
                payload = response.read()
        except urllib.error.HTTPError:
            continue  # a run that has not been committed
        except OSError as error:
            raise FileNotFoundError(
                f"No results/ folder here and the result files cannot be downloaded from {RESULTS_URL} ({error}). "
                f"Run from a clone of the repository, or set {RESULTS_ENV} to its results/ folder."
            ) from None
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(payload)
    return dest


def save_json(record: dict, path: str | Path) -> None:
    """Write a result file atomically (temporary file + rename), indented so that diffs stay readable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)


def depth_sweep_models(depths: tuple[int, ...] = DEPTH_SWEEP_DEPTHS) -> list[str]:
    """The grid in run order: shallowest, then deepest, then the depths between, each plain beside its twin
    (plain20, resnet20, plain56, resnet56, plain32, ...), so that a sweep cut short already has the extremes."""
    ordered = sorted(set(depths))
    ordered = ordered[:1] + ordered[-1:] + ordered[1:-1] if len(ordered) > 1 else ordered
    return [f"{family}{d}" for d in ordered for family in ("plain", "resnet")]


def _split_name(name: str) -> tuple[str, int]:
    match = re.fullmatch(r"(plain|resnet)(\d+)", name)
    if match is None:
        raise ValueError(f"{name!r} is not a depth-sweep model name (plainN or resnetN).")
    return match.group(1), int(match.group(2))


def sweep_record(name: str, results: dict) -> dict:
    """Turn one run's results.json (from `fit`) into the depth-sweep file format (errors, not accuracies)."""
    family, depth = _split_name(name)
    epochs = []
    for e in results["epochs"]:
        epochs.append(
            {
                "epoch": e["epoch"],
                "lr": e["lr"],
                "train_loss": e["train_loss"],  # on augmented batches, averaged over the epoch
                "train_err": 1.0 - e["train_acc"],
                "train_eval_loss": e["train_eval_loss"],  # on a fixed un-augmented training subset
                "train_eval_err": 1.0 - e["train_eval_acc"],
                "val_loss": e["val_loss"],
                "val_err": 1.0 - e["val_acc"],
                "seconds": e["seconds"],
            }
        )
    last = epochs[-1]
    return {
        "experiment": "depth-sweep",
        "model": name,
        "family": family,
        "depth": depth,
        "provenance": results["provenance"],
        "config": results["config"],
        "epochs": epochs,
        "final": {
            "epochs": last["epoch"],
            "train_eval_err": last["train_eval_err"],
            "val_err": last["val_err"],
            "wall_seconds": sum(e["seconds"] for e in epochs),
        },
    }


def load_depth_sweep(sweep_dir: str | Path | None = None) -> list[dict]:
    """Every depth-sweep run in `sweep_dir` (default: results_dir()/depth_sweep), in grid order."""
    sweep_dir = results_dir() / "depth_sweep" if sweep_dir is None else Path(sweep_dir)
    runs = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*.json"))]
    return sorted(runs, key=lambda r: (r["depth"], r["family"]))


def run_device(prov: dict) -> str:
    """The device of a run, with the CPU model where it was recorded: 'cpu (x86_64, 2 threads), AMD EPYC'."""
    # Records written before the grammar fix say "1 threads"; result files are never edited by hand.
    device = re.sub(r"\b1 threads\b", "1 thread", prov["device"])
    if device.startswith("cpu") and prov.get("cpu_model"):
        device += f", {prov['cpu_model']}"
    return device


def depth_sweep_table(sweep_dir: str | Path | None = None) -> list[dict]:
    """One row per run: final training error, validation error, epochs, wall time and device."""
    return [
        {
            "model": r["model"],
            "epochs": r["final"]["epochs"],
            "train_err_%": round(100 * r["final"]["train_eval_err"], 2),
            "val_err_%": round(100 * r["final"]["val_err"], 2),
            "wall_min": round(r["final"]["wall_seconds"] / 60, 1),
            "device": run_device(r["provenance"]),
        }
        for r in load_depth_sweep(sweep_dir)
    ]


def _compare(new: float, old: float) -> str:
    return "higher" if new > old else "lower" if new < old else "the same"


def depth_sweep_findings(rows: list[dict]) -> list[str]:
    """What the final errors show, one Markdown bullet per comparison: each network against the next shallower
    one of its family (degradation?), then each residual network against its plain twin."""
    final = {row["model"]: row for row in rows}
    by_family: dict[str, list[tuple[int, str]]] = {"plain": [], "resnet": []}
    for name in final:
        family, depth = _split_name(name)
        by_family[family].append((depth, name))
    pairs = []
    for family in ("plain", "resnet"):
        present = [name for _, name in sorted(by_family[family])]
        pairs += list(zip(present, present[1:]))
    depths = sorted({d for d, _ in by_family["plain"]} & {d for d, _ in by_family["resnet"]})
    pairs += [(f"plain{d}", f"resnet{d}") for d in depths]
    lines = []
    for old, new in pairs:
        parts = []
        for what, key in (("training error", "train_err_%"), ("validation error", "val_err_%")):
            a, b = final[old][key], final[new][key]
            parts.append(f"{what} {_compare(b, a)} ({b:.2f}% vs {a:.2f}%)")
        lines.append(f"- {new} against {old}: {', '.join(parts)}.")
    return lines


def export_half_precision(checkpoint: str | Path, dest: str | Path, data: ImageData) -> dict:
    """Save a trained network's weights in half precision (about 0.5 MB per 270k parameters) as a resnet_lab
    checkpoint, and record the validation error that these fp16 weights themselves reach.

    Rounding weights to fp16 can flip a handful of the 5,000 validation predictions, so the file records both the
    run's final validation error (fp32 weights) and the one measured here after rounding; `load_checkpoint` on the
    exported file gives back exactly the latter.
    """
    state = read_checkpoint(checkpoint)
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in state["model"].items()}
    model = build_model(state["model_spec"])
    model.load_state_dict(half)  # copies into the fp32 parameters: the model a reader gets back
    metrics = evaluate_tensors(model, data.val_x, data.val_y, data.mean, data.std, num_classes=data.num_classes,
                               precision="fp32", channels_last=False)
    keep = ("model_spec", "mean", "std", "classes", "image_size", "config", "data", "provenance", "epoch")
    payload = {k: state[k] for k in keep if k in state}
    payload["model"] = half
    payload["val"] = {
        "accuracy_fp32_weights": state["history"][-1]["val_acc"],
        "accuracy": metrics["accuracy"],
        "loss": metrics["loss"],
        "count": len(data.val_y),
    }
    save_checkpoint(payload, dest)
    return payload["val"]


def write_summary(sweep_dir: str | Path) -> Path:
    """results/depth_sweep/README.md: the table of final errors, generated from the result files."""
    sweep_dir = Path(sweep_dir)
    rows = depth_sweep_table(sweep_dir)
    runs = load_depth_sweep(sweep_dir)
    lines = [
        "# CIFAR-10 depth sweep: plain vs residual networks",
        "",
        "Written by `python -m resnet_lab experiment depth-sweep` from the JSON files in this folder (one per run,",
        "each with its provenance); do not edit by hand. Training error is measured after each epoch on a fixed",
        "subset of the training images without augmentation (as He et al. 2016 plot it), validation error on images",
        "held out from the training split.",
        "",
    ]
    if runs:
        data, config = runs[0]["provenance"]["data"], runs[0]["config"]
        lines += [
            f"Data: {data['source']}, {data['train_size']:,} training images, {data['val_size']:,} held out for "
            f"validation; training error on {config['train_eval_size']:,} of the training images.",
            "",
        ]
        if "jpeg" in str(data["source"]).lower():
            lines += ["These are JPEG-compressed CIFAR-10 images: compression costs a few points of accuracy compared "
                      "with the original images, so compare trends, not the last digit, with published numbers.", ""]
        keys = ("epochs", "batch_size", "lr", "schedule", "warmup_epochs", "momentum", "nesterov", "weight_decay",
                "label_smoothing", "crop_padding", "flip", "precision", "seed")
        recipe = ", ".join(f"{k}={config[k]}" for k in keys if k in config)
        lines += [f"Recipe, identical for every run: {recipe}.", ""]
        resumed = [r["model"] for r in runs if r["provenance"].get("resumed")]
        if resumed:
            lines += [f"Resumed after an interruption (see `resumed` in their provenance): {', '.join(resumed)}.", ""]
        lines += ["Wall time is the sum of the epochs' measured times. Some runs shared the CPU with other runs or "
                  "other work, and the CPU model differs between sessions, so compare wall times with care.", ""]
    lines += ["| network | epochs | training error (%) | validation error (%) | wall time (min) | device |",
              "|---|---:|---:|---:|---:|---|"]
    for row in rows:
        lines.append(f"| {row['model']} | {row['epochs']} | {row['train_err_%']:.2f} | {row['val_err_%']:.2f} | "
                     f"{row['wall_min']:.1f} | {row['device']} |")
    missing = [m for m in depth_sweep_models() if m not in {r["model"] for r in rows}]
    if missing:
        lines += ["", f"Not yet run (the sweep resumes where it stopped): {', '.join(missing)}."]
    findings = depth_sweep_findings(rows)
    if findings:
        lines += ["", "## What the data show", "",
                  "Final errors, each network against the next shallower one of its family (a deeper network that "
                  "ends with a higher *training* error shows the degradation problem) and each residual network "
                  "against its plain twin. These are single runs with one seed: differences of a few tenths of a "
                  "point can come from the seed alone.", "", *findings]
    path = sweep_dir / "README.md"
    tmp = path.with_name(f"README.md.tmp-{os.getpid()}")  # runners for different depths may finish together
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m resnet_lab experiment`."""
    parser.add_argument("name", choices=["depth-sweep"], help="which experiment to run")
    parser.add_argument("--data", required=True, help="CIFAR-10 source: an ImageFolder directory or 'cifar10'")
    parser.add_argument("--out", required=True, help="folder for the runs' checkpoints (outside the repository)")
    parser.add_argument("--results", default=None,
                        help="where the result files go (default: results/ of the repository checkout)")
    parser.add_argument("--epochs", type=int, default=DEPTH_SWEEP_EPOCHS)
    parser.add_argument("--depths", type=int, nargs="+", default=list(DEPTH_SWEEP_DEPTHS))
    parser.add_argument("--train-size", type=int, default=None, help="a training subset, for trying the runner")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help="the learning rate scales with it (the engine's default recipe)")
    parser.add_argument("--val-size", type=int, default=DEPTH_SWEEP_VAL_SIZE, help="validation images held out")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models (faster on some machines)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    """Run (or resume) the depth sweep; finished runs are skipped, unfinished ones resume where they stopped."""
    results = Path(args.results) if args.results else repository_results_dir()
    sweep_dir = results / "depth_sweep"
    models = depth_sweep_models(tuple(args.depths))
    data = load_data(args.data, val_size=args.val_size, train_size=args.train_size, split_seed=args.seed)
    train_eval_size = min(DEPTH_SWEEP_TRAIN_EVAL_SIZE, len(data.train_y))
    if data.is_synthetic:
        print("WARNING: synthetic data. These runs only exercise the runner: never commit their results.")
    out = Path(args.out)
    command = getattr(args, "command_line", None)
    failed = 0
    for name in models:
        record_path = sweep_dir / f"{name}.json"
        if record_path.exists() and json.loads(record_path.read_text())["final"]["epochs"] == args.epochs:
            print(f"{name}: finished earlier ({record_path}), skipped.", flush=True)
            continue
        run_dir = out / name
        resume = (run_dir / "last.pt").exists()
        print(f"{name}: {'resuming' if resume else 'starting'} in {run_dir}", flush=True)
        torch.manual_seed(args.seed)  # the same initialization stream for every run, resumed or not
        try:
            fit(get_model(name, num_classes=data.num_classes), data, epochs=args.epochs, batch_size=args.batch_size,
                train_eval_size=train_eval_size, out_dir=run_dir, resume=resume, seed=args.seed,
                compile=args.compile, command=command)
        except NonFiniteLossError as error:
            # A network that diverges with the shared recipe is a finding, not a reason to stop the whole grid.
            print(f"{name}: diverged, going on with the next network. {error}", flush=True)
            failed += 1
            continue
        record = sweep_record(name, json.loads((run_dir / "results.json").read_text()))
        save_json(record, record_path)
        if name in EXPORTED_CHECKPOINTS:
            val = export_half_precision(run_dir / "last.pt", results / "checkpoints" / f"{name}.pt", data)
            print(f"{name}: fp16 weights exported, validation accuracy {val['accuracy']:.4f} "
                  f"(fp32 weights: {val['accuracy_fp32_weights']:.4f}).", flush=True)
        write_summary(sweep_dir)
    return 1 if failed else 0
