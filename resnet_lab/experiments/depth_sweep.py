"""The depth sweep: `python -m resnet_lab experiment depth-sweep --data DIR --out DIR`.

Plain and residual CIFAR networks of growing depth, trained with one identical recipe on real CIFAR-10 images, so
that the only difference between a plain network and its ResNet twin is the skip connection (He et al. 2016,
figure 6). Each network trains in its own folder under `--out` (checkpoints, resumable); when it has finished,
its per-epoch record goes to `results/depth_sweep/<model>.json` and the table results/depth_sweep/README.md is
written again from all the records.

Reading the records (load_depth_sweep, depth_sweep_table, depth_sweep_findings) needs neither the training
engine nor matplotlib; the engine is imported only when a sweep runs.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import torch

from resnet_lab.checkpoint import build_model, read_checkpoint, save_checkpoint
from resnet_lab.config import TrainConfig
from resnet_lab.experiments.results import repository_results_dir, results_dir
from resnet_lab.files import atomic_write_text
from resnet_lab.models import get_model, model_label, parse_model_name

if TYPE_CHECKING:  # annotations only: the data module is loaded when a sweep runs
    from resnet_lab.data import ImageData

DEPTH_SWEEP_DEPTHS = (20, 32, 44, 56)
DEPTH_SWEEP_EPOCHS = 30
DEPTH_SWEEP_VAL_SIZE = 5000
DEPTH_SWEEP_TRAIN_EVAL_SIZE = 5000
# Final weights committed in half precision for later chapters (lesion study, loss landscape, gradient flow).
EXPORTED_CHECKPOINTS = ("resnet20", "resnet56", "plain56")
FAMILIES = ("plain", "resnet")
HELP = "plain vs residual CIFAR networks of growing depth, one recipe (He et al. 2016, figure 6)"
# He et al. 2016, Table 6: CIFAR-10 *test* error (%) after 64k iterations of batch 128 (about 164 epochs) on the
# original images, one run each except ResNet-110, the best of 5 runs. Their plain networks appear only in figure 6.
# Their length of training in epochs: 64k iterations of 128 images over the 50k training images.
PUBLISHED_EPOCHS = 64_000 * 128 / 50_000
PUBLISHED_TEST_ERR = MappingProxyType({"resnet20": 8.75, "resnet32": 7.51, "resnet44": 7.17, "resnet56": 6.97,
                                       "resnet110": 6.43})
# The seed-to-seed standard deviation of one run's final error, in points: He et al.'s ResNet-110, 6.61 +- 0.16
# over 5 runs (Table 6). Borrowed as the seed noise of our single runs, which were not repeated.
SEED_STD_PCT = 0.16


# ----------------------------------------------------------------------------------------------------------------
# The records


def depth_sweep_models(depths: tuple[int, ...] = DEPTH_SWEEP_DEPTHS) -> list[str]:
    """The grid in run order: shallowest, then deepest, then the depths between, each plain beside its twin
    (plain20, resnet20, plain56, resnet56, plain32, ...), so that a sweep cut short already has the extremes."""
    ordered = sorted(set(depths))
    ordered = ordered[:1] + ordered[-1:] + ordered[1:-1] if len(ordered) > 1 else ordered
    return [f"{family}{d}" for d in ordered for family in FAMILIES]


def _family_and_depth(name: str) -> tuple[str, int]:
    """("plain", 56) for "plain56"; a ValueError for names outside the sweep (e.g. "preact_resnet110")."""
    parsed = parse_model_name(name)
    if parsed.family not in FAMILIES or parsed.depth is None:
        raise ValueError(f"{name!r} is not a depth-sweep model name (plainN or resnetN).")
    return parsed.family, parsed.depth


def sweep_record(name: str, results: dict) -> dict:
    """Turn one run's results.json (from `fit`) into the depth-sweep file format (errors, not accuracies)."""
    family, depth = _family_and_depth(name)
    epochs = [
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
        for e in results["epochs"]
    ]
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
    """One row per run, in grid order: final errors in % (training error in eval mode on the fixed subset, the
    running training error on augmented batches, validation error), He et al.'s published test error where
    Table 6 has one (else None), epochs, wall time and device."""
    return [
        {
            "model": r["model"],
            "epochs": r["final"]["epochs"],
            "train_err_%": round(100 * r["final"]["train_eval_err"], 2),
            "running_err_%": round(100 * r["epochs"][-1]["train_err"], 2),
            "val_err_%": round(100 * r["final"]["val_err"], 2),
            "published_err_%": PUBLISHED_TEST_ERR.get(r["model"]),
            "wall_min": round(r["final"]["wall_seconds"] / 60, 1),
            "device": run_device(r["provenance"]),
        }
        for r in load_depth_sweep(sweep_dir)
    ]


# Column key -> (header, format) of format_depth_sweep_table.
TABLE_COLUMNS = MappingProxyType({
    "epochs": ("epochs", "{:d}"),
    "running_err_%": ("running err %", "{:.2f}"),
    "train_err_%": ("train err %", "{:.2f}"),
    "val_err_%": ("val err %", "{:.2f}"),
    "published_err_%": ("He et al. test err %", "{:.2f}"),
    "wall_min": ("minutes", "{:.1f}"),
})


def format_depth_sweep_table(rows: list[dict], columns: tuple[str, ...] = ("epochs", "train_err_%", "val_err_%",
                                                                        "published_err_%")) -> str:
    """The rows of `depth_sweep_table` as a plain-text table, one line per network written as in the figures
    ("ResNet-56"), right-aligned columns chosen from TABLE_COLUMNS; a value the row lacks shows as "-"."""
    unknown = [c for c in columns if c not in TABLE_COLUMNS]
    if unknown:
        raise ValueError(f"unknown column(s) {', '.join(unknown)}; choose from {', '.join(TABLE_COLUMNS)}.")
    cells = [["network", *(TABLE_COLUMNS[c][0] for c in columns)]]
    for row in rows:
        values = [row.get(c) for c in columns]
        cells.append([model_label(row["model"]),
                      *("-" if v is None else TABLE_COLUMNS[c][1].format(v) for c, v in zip(columns, values))])
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join([line[0].ljust(widths[0]), *(v.rjust(w) for v, w in zip(line[1:], widths[1:]))])
                     for line in cells)


def noise_threshold(seed_std: float = SEED_STD_PCT) -> float:
    """The smallest difference (in points) between two single runs that seed noise is unlikely to explain: two
    standard deviations of the difference of two independent runs, 2 * sqrt(2) * seed_std."""
    return 2 * math.sqrt(2) * seed_std


def _compare(new: float, old: float) -> str:
    return "higher" if new > old else "lower" if new < old else "the same"


def _pairs(models: list[str]) -> list[tuple[str, str]]:
    """(shallower, deeper) within each family, then (plain, resnet) twins, depths compared as numbers."""
    by_family: dict[str, list[tuple[int, str]]] = {family: [] for family in FAMILIES}
    for name in models:
        family, depth = _family_and_depth(name)
        by_family[family].append((depth, name))
    pairs = []
    for family in FAMILIES:
        present = [name for _, name in sorted(by_family[family])]
        pairs += list(zip(present, present[1:]))
    twins = sorted({d for d, _ in by_family["plain"]} & {d for d, _ in by_family["resnet"]})
    return pairs + [(f"plain{d}", f"resnet{d}") for d in twins]


_METRICS = (("training error", "train_err_%"), ("validation error", "val_err_%"))


def depth_sweep_findings(rows: list[dict], threshold: float | None = None) -> list[str]:
    """What the final errors show, one Markdown bullet per comparison: each network against the next shallower
    one of its family (degradation?), then each residual network against its plain twin. A difference of at
    most `threshold` points (default: noise_threshold()) is marked "within seed noise"."""
    threshold = noise_threshold() if threshold is None else threshold
    final = {row["model"]: row for row in rows}
    lines = []
    for old, new in _pairs(list(final)):
        parts = []
        for what, key in _METRICS:
            a, b = final[old][key], final[new][key]
            noise = ", within seed noise" if a != b and abs(b - a) <= threshold else ""
            parts.append(f"{what} {_compare(b, a)} ({b:.2f}% vs {a:.2f}%{noise})")
        lines.append(f"- {model_label(new)} against {model_label(old)}: {', '.join(parts)}.")
    return lines


def _claim(count: str, pairs: list[tuple[str, str]], final: dict, sign: int, threshold: float) -> tuple[bool, str]:
    """Whether every pair moves both errors in the direction `sign` (+1 up, -1 down), and a clause saying so."""
    verb = "raise" if sign > 0 else "lower"
    clauses, everywhere = [], True
    for what, key in _METRICS:
        diffs = [final[new][key] - final[old][key] for old, new in pairs]
        agree = [abs(d) for d in diffs if d * sign > 0]
        everywhere &= len(agree) == len(diffs)
        if not agree:
            clauses.append(f"none {verb}s the {what}")
            continue
        size = f"by {agree[0]:.2f} points" if len(agree) == 1 else f"by {min(agree):.2f} to {max(agree):.2f} points"
        clear = sum(d > threshold for d in agree)
        noise = "all beyond seed noise" if clear == len(agree) else f"{clear} of them beyond seed noise"
        who = "all" if len(agree) == len(diffs) else f"{len(agree)} of the {len(diffs)}"
        clauses.append(f"{who} {verb} the {what} ({size}, {noise})")
    return everywhere, f"{count}: " + "; ".join(clauses) + "."


def depth_sweep_verdict(rows: list[dict], seed_std: float = SEED_STD_PCT) -> list[str]:
    """The verdict the final errors support, as sentences to print: do the plain steps in depth degrade, do the
    residual steps improve, does every residual network beat its plain twin (He et al.'s figure 6), each in the
    training and the validation error; then the seed-noise caveat, naming the differences it could explain.

    seed_std: the standard deviation of one run's final error, in points; differences of at most
    noise_threshold(seed_std) count as within seed noise.
    """
    final = {row["model"]: row for row in rows}
    threshold = noise_threshold(seed_std)
    pairs = _pairs(list(final))
    groups = (  # (one, several, pairs, the direction He et al. found)
        ("plain step", "plain steps", [p for p in pairs if p[0].startswith("plain") and p[1].startswith("plain")],
         +1),
        ("residual step", "residual steps", [p for p in pairs if p[0].startswith("resnet")], -1),
        ("plain/residual twin", "plain/residual twins",
         [p for p in pairs if p[0].startswith("plain") and p[1].startswith("resnet")], -1),
    )
    lines, holds = [], []
    for one, several, group, sign in groups:
        if group:
            count = f"1 {one}" if len(group) == 1 else f"{len(group)} {several}"
            if "twin" in one:
                count += " (ResNet against plain)"
            everywhere, sentence = _claim(count, group, final, sign, threshold)
            lines.append(sentence)
            holds.append(everywhere)
    if not lines:
        return []
    small = []
    for old, new in pairs:
        for what, key in _METRICS:
            d = abs(final[new][key] - final[old][key])
            if d <= threshold:
                small.append(f"{model_label(new)} vs {model_label(old)} ({what}, {d:.2f})")
    if len(holds) == len(groups) and all(holds):
        lines.append("Verdict: as in He et al.'s figure 6, every plain step in depth degrades, every residual step "
                     "improves and every ResNet beats its plain twin, in training and validation error alike"
                     + (", though not every difference exceeds seed noise (below)." if small else "."))
    else:
        lines.append("Verdict: these runs do not reproduce every trend of He et al.'s figure 6 (see above).")
    caveat = (f"Seed noise: every network was trained once. Taking He et al.'s spread over five runs of ResNet-110, "
              f"a standard deviation of {seed_std:g} points, as that of one run, a difference between two runs "
              f"needs more than 2 x sqrt(2) x {seed_std:g} = {threshold:.2f} points before the seed alone is an "
              "unlikely cause. ")
    caveat += ("Within that: " + "; ".join(small) + ". Their direction could flip with another seed."
               if small else "Every difference above is larger than that.")
    return lines + [caveat]


# ----------------------------------------------------------------------------------------------------------------
# The summary README


def _data_line(data: dict, config: dict) -> str:
    """The data sentence of the summary; records from before the content fingerprint name their source."""
    source = data.get("name") or data["source"]
    if data.get("fingerprint"):
        source += f" (content fingerprint {data['fingerprint']})"
    return (f"Data: {source}, {data['train_size']:,} training images, {data['val_size']:,} held out for "
            f"validation; training error on {config['train_eval_size']:,} of the training images.")


def _summary_header(runs: list[dict]) -> list[str]:
    """The paragraphs about data, recipe, resumed runs and wall times, from the first run's record."""
    data, config = runs[0]["provenance"]["data"], runs[0]["config"]
    lines = [_data_line(data, config), ""]
    if "jpeg" in str(data.get("name") or data["source"]).lower():
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
    return lines


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
        "held out from the training split. He et al.'s test errors are their Table 6 (about 164 epochs on the original",
        "images and a schedule of their own; ResNet-110 the best of five runs); they trained plain networks too but",
        "published their errors only as curves (figure 6).",
        "",
    ]
    if runs:
        lines += _summary_header(runs)
    lines += ["| network | epochs | training error (%) | validation error (%) | He et al. test error (%) | "
              "wall time (min) | device |",
              "|---|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        published = "-" if row["published_err_%"] is None else f"{row['published_err_%']:.2f}"
        lines.append(f"| {model_label(row['model'])} | {row['epochs']} | {row['train_err_%']:.2f} | "
                     f"{row['val_err_%']:.2f} | {published} | {row['wall_min']:.1f} | {row['device']} |")
    missing = [m for m in depth_sweep_models() if m not in {r["model"] for r in rows}]
    if missing:
        lines += ["", f"Not yet run (the sweep resumes where it stopped): {', '.join(missing)}."]
    findings = depth_sweep_findings(rows)
    if findings:
        lines += ["", "## What the data show", "",
                  "Final errors, each network against the next shallower one of its family (a deeper network that "
                  "ends with a higher *training* error shows the degradation problem) and each residual network "
                  "against its plain twin. These are single runs with one seed: differences of at most "
                  f"{noise_threshold():.2f} points (two standard deviations of the difference of two runs, taking "
                  f"He et al.'s {SEED_STD_PCT:g}-point spread over five runs of ResNet-110) are marked "
                  "as within seed noise.", "", *findings]
    # Atomic: sweeps of different depths, run side by side, may finish together.
    return atomic_write_text(sweep_dir / "README.md", "\n".join(lines) + "\n")


# ----------------------------------------------------------------------------------------------------------------
# Half-precision weights for later chapters


def export_half_precision(checkpoint: str | Path, dest: str | Path, data: ImageData) -> dict:
    """Save a trained network's weights in half precision (about 0.5 MB per 270k parameters) as a resnet_lab
    checkpoint, and record the validation error that these fp16 weights themselves reach.

    Rounding weights to fp16 can flip a handful of the 5,000 validation predictions, so the file records both the
    run's final validation error (fp32 weights) and the one measured here after rounding; `load_checkpoint` on the
    exported file gives back exactly the latter. data: the ImageData the network was validated on.
    """
    from resnet_lab.evaluate import evaluate_tensors  # evaluation only, no training code

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


# ----------------------------------------------------------------------------------------------------------------
# Running the sweep


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m resnet_lab experiment depth-sweep`."""
    parser.add_argument("--data", required=True, help="CIFAR-10 source: an ImageFolder directory or 'cifar10'")
    parser.add_argument("--out", required=True, help="folder for the runs' checkpoints (outside the repository)")
    parser.add_argument("--results", default=None,
                        help="where the result files go (default: results/ of the repository checkout)")
    parser.add_argument("--depths", type=int, nargs="+", default=list(DEPTH_SWEEP_DEPTHS),
                        help="depths of the plain and residual networks, 6n+2 (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=DEPTH_SWEEP_EPOCHS,
                        help="epochs of training per network (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size,
                        help="images per step; the learning rate scales with it (default: %(default)s)")
    parser.add_argument("--val-size", type=int, default=DEPTH_SWEEP_VAL_SIZE,
                        help="validation images held out (default: %(default)s)")
    parser.add_argument("--train-size", type=int, default=None, help="a training subset, for trying the runner")
    parser.add_argument("--train-eval-size", type=int, default=DEPTH_SWEEP_TRAIN_EVAL_SIZE,
                        help="training images evaluated without augmentation after each epoch (default: %(default)s)")
    parser.add_argument("--export", nargs="*", default=list(EXPORTED_CHECKPOINTS), metavar="MODEL",
                        help="networks whose final weights are saved in half precision to RESULTS/checkpoints "
                        "(default: %(default)s; none when given without names)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the split, the initial weights and training (default: %(default)s)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models (faster on some machines)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")


def _check_models(models: list[str]) -> None:
    """Build every network on the meta device (no memory, no time): a bad depth raises its ValueError now."""
    with torch.device("meta"):
        for name in models:
            get_model(name)


def _train_point(name: str, run_dir: Path, resume: bool, *, data: ImageData, config: TrainConfig, export: list[str],
                 export_dir: Path, device: str | None, command: str | None) -> dict | None:
    """Train (or resume) one network of the sweep; its depth-sweep record, or None if it stopped early."""
    from resnet_lab.train import fit  # the training engine, loaded only when a sweep runs

    torch.manual_seed(config.seed)  # the same initialization stream for every network, resumed or not
    model = get_model(name, num_classes=data.num_classes)
    history = fit(model, data, config, out_dir=run_dir, resume=resume, device=device, command=command)
    if history.status != "finished":
        return None
    if name in export:
        # Before the record: the record's presence means "done", export included.
        val = export_half_precision(run_dir / "last.pt", export_dir / f"{name}.pt", data)
        print(f"{name}: fp16 weights exported, validation accuracy {val['accuracy']:.4f} "
              f"(fp32 weights: {val['accuracy_fp32_weights']:.4f}).", flush=True)
    return sweep_record(name, json.loads((run_dir / "results.json").read_text()))


def run(args: argparse.Namespace) -> int:
    """Run (or resume) the depth sweep; finished networks are skipped, unfinished ones resume where they stopped."""
    from resnet_lab.data import load_data
    from resnet_lab.experiments.runner import run_grid

    results = Path(args.results) if args.results else repository_results_dir()
    sweep_dir = results / "depth_sweep"
    models = depth_sweep_models(tuple(args.depths))
    # Check the names and the recipe before decoding any data: a typo should fail in a second, not after a minute.
    _check_models(models)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, compile=args.compile,
                         train_eval_size=args.train_eval_size)
    data = load_data(args.data, val_size=args.val_size, train_size=args.train_size, split_seed=args.seed)
    if data.is_synthetic:
        print("WARNING: synthetic data. These runs only exercise the runner: never commit their results.")
    config = config.replace(train_eval_size=min(args.train_eval_size, len(data.train_y)))
    train_point = partial(_train_point, data=data, config=config, export=args.export,
                          export_dir=results / "checkpoints", device=args.device,
                          command=getattr(args, "command_line", None))
    summary = run_grid(models, train_point, results_dir=sweep_dir, out_dir=Path(args.out),
                       is_complete=lambda record: record["final"]["epochs"] == config.epochs,
                       on_result=lambda name, record: write_summary(sweep_dir))
    return summary.exit_status


__all__ = [
    "DEPTH_SWEEP_DEPTHS", "DEPTH_SWEEP_EPOCHS", "DEPTH_SWEEP_TRAIN_EVAL_SIZE", "DEPTH_SWEEP_VAL_SIZE",
    "EXPORTED_CHECKPOINTS", "PUBLISHED_EPOCHS", "PUBLISHED_TEST_ERR", "SEED_STD_PCT", "TABLE_COLUMNS", "add_arguments",
    "depth_sweep_findings", "depth_sweep_models", "depth_sweep_table", "depth_sweep_verdict",
    "export_half_precision", "format_depth_sweep_table", "load_depth_sweep", "noise_threshold", "run",
    "run_device", "sweep_record", "write_summary",
]
