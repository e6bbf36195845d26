"""Training throughput: resnet_lab's fast pipeline against the classic torchvision pipeline, in one run.

For each model (ResNet-20 and ResNet-56 by default) it trains on real CIFAR-10 images with `fit` and reports the
training images/s of the second epoch (the first one warms up caches and worker processes) for:

- classic fp32, 0 and 2 workers: Dataset + torchvision transforms (RandomCrop with padding, flip, ToTensor,
  Normalize) + DataLoader, fp32 and NCHW: the recipe of the source articles and most tutorials;
- fast fp32 NCHW: resnet_lab's BatchLoader (whole-batch augmentation), otherwise the same as classic;
- fast default: BatchLoader with the engine's defaults (precision "auto", channels_last);
- compute only: the same model and settings as "fast default" stepping through pre-made, pre-normalized batches
  (no data pipeline at all): the ceiling for any pipeline.

Usage: python benchmarks/train_throughput.py --data /path/to/cifar10-jpeg [--models resnet20 resnet56]
[--steps 24] [--json FILE] [--baseline EARLIER.json]. Other programs share the CPU in many settings: the script
prints the load average before and after; compare numbers from one run only, and only between runs on the same CPU
model (the report names it, and whether it computes in bf16 natively, which decides the default precision).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

from resnet_lab.config import TrainConfig
from resnet_lab.data import load_data
from resnet_lab.files import write_json
from resnet_lab.loaders import normalize
from resnet_lab.models import get_model
from resnet_lab.optim import make_optimizer
from resnet_lab.provenance import cpu_model, current_command, provenance
from resnet_lab.runtime import cpu_supports_bf16, get_device, resolve_precision
from resnet_lab.train import fit, training_step

BATCH_SIZE = 128


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def fit_rate(name: str, data, **options) -> float:
    """Training images/s of the second of two epochs of `fit` (the first one warms up)."""
    torch.manual_seed(0)
    history = fit(get_model(name), data, TrainConfig(epochs=2, batch_size=BATCH_SIZE, **options), progress=False)
    return history[-1]["images_per_s"]


def compute_rate(name: str, data, steps: int, precision: str, channels_last: bool) -> float:
    """Images/s of training steps alone, on batches normalized in advance and kept in memory."""
    device = get_device()
    precision = resolve_precision(precision, device)
    torch.manual_seed(0)
    model = get_model(name).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, TrainConfig(lr=0.05))
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    batches = [
        (normalize(data.train_x[i : i + BATCH_SIZE].to(device), data.mean, data.std, channels_last),
         data.train_y[i : i + BATCH_SIZE].to(device))
        for i in range(0, steps * BATCH_SIZE, BATCH_SIZE)
    ]

    def run(some):
        for x, y in some:
            loss, _ = training_step(model, optimizer, scaler, x, y, device=device, precision=precision,
                                    label_smoothing=0.1)
        float(loss)  # wait for the device

    run(batches[:3])  # warm-up
    started = time.perf_counter()
    run(batches)
    return steps * BATCH_SIZE / (time.perf_counter() - started)


def compare(rows: list[dict], baseline_file: str) -> dict:
    """The baseline report's rates beside these, with new / baseline for each; printed and returned."""
    baseline = json.loads(Path(baseline_file).read_text())
    then, now = baseline["provenance"].get("cpu_model"), cpu_model()
    if then != now:
        raise SystemExit(f"The baseline ran on another CPU ({then}, here {now}): its rates are not comparable.")
    old = {row["model"]: row["images_per_s"] for row in baseline["results"]}
    ratios = {}
    print(f"\nnew / baseline ({baseline['provenance'].get('git_commit')}), images/s")
    for row in rows:
        if row["model"] not in old:
            continue
        ratios[row["model"]] = {k: v / old[row["model"]][k] for k, v in row["images_per_s"].items()
                                if k in old[row["model"]]}
        for label, ratio in ratios[row["model"]].items():
            print(f"  {row['model']:9s} {label:34s} {old[row['model']][label]:7.0f} -> "
                  f"{row['images_per_s'][label]:7.0f}  {ratio:5.2f}x")
    prov = baseline["provenance"]
    keep = ("git_commit", "resnet_lab_version", "torch_version", "cpu_model", "device", "date", "precision")
    return {"provenance": {k: prov.get(k) for k in keep}, "load_average": baseline.get("load_average"),
            "results": baseline["results"], "new_over_baseline": ratios}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("RESNET_LAB_DATA"),
                        help="CIFAR-10 source (ImageFolder directory or 'cifar10'); default $RESNET_LAB_DATA")
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56"])
    parser.add_argument("--steps", type=int, default=24, help="training steps per measured epoch")
    parser.add_argument("--json", default=None, help="also write the measurements to this JSON file")
    parser.add_argument("--baseline", default=None,
                        help="the JSON report of an earlier run on the same machine (e.g. of the code before a "
                        "change): the new report lists it beside its own, with the ratio of every rate")
    args = parser.parse_args(argv)
    if args.data is None:
        parser.error("pass --data (e.g. the CIFAR-10 JPEG folder or 'cifar10') or set RESNET_LAB_DATA")

    data = load_data(args.data, train_size=args.steps * BATCH_SIZE, verbose=False)
    # Evaluation is not part of the measurement: keep the validation split tiny.
    data = dataclasses.replace(data, val_x=data.val_x[:256], val_y=data.val_y[:256])
    load_before = _load()
    device = get_device()
    bf16 = cpu_supports_bf16()
    print(f"device: {device} ({cpu_model()}, native bf16: {'yes' if bf16 else 'no'}), {torch.get_num_threads()} "
          f"threads; load average before: {load_before}", flush=True)
    classic = dict(pipeline="classic", precision="fp32", channels_last=False)
    rows = []
    for name in args.models:
        rates = {
            "classic fp32, 0 workers": fit_rate(name, data, num_workers=0, **classic),
            "classic fp32, 2 workers": fit_rate(name, data, num_workers=2, **classic),
            "fast fp32 NCHW": fit_rate(name, data, pipeline="fast", precision="fp32", channels_last=False),
            "fast default": fit_rate(name, data),
            "compute only (default settings)": compute_rate(name, data, args.steps, "auto", True),
        }
        best_classic = max(rates["classic fp32, 0 workers"], rates["classic fp32, 2 workers"])
        row = {
            "model": name,
            "images_per_s": rates,
            "fast_default_over_best_classic": rates["fast default"] / best_classic,
            "fast_default_over_classic_2_workers": rates["fast default"] / rates["classic fp32, 2 workers"],
            "fast_fp32_over_best_classic": rates["fast fp32 NCHW"] / best_classic,
            "fast_default_over_compute_only": rates["fast default"] / rates["compute only (default settings)"],
        }
        rows.append(row)
        print(f"\n{name} (batch {BATCH_SIZE}, training images/s)", flush=True)
        for label, rate in rates.items():
            print(f"  {label:34s} {rate:7.0f}")
        print(f"  fast default / best classic        {row['fast_default_over_best_classic']:7.2f}x")
        print(f"  fast default / classic (2 workers) {row['fast_default_over_classic_2_workers']:7.2f}x")
        print(f"  fast fp32 NCHW / best classic      {row['fast_fp32_over_best_classic']:7.2f}x")
        print(f"  fast default / compute only        {100 * row['fast_default_over_compute_only']:6.1f}%", flush=True)
    load_after = _load()
    print(f"\nload average after: {load_after}")
    comparison = compare(rows, args.baseline) if args.baseline else None
    if args.json:
        record = {
            "provenance": provenance(command=current_command(), data=data.describe(), device=device,
                                     precision=resolve_precision("auto", device), native_bf16=bf16),
            "load_average": {"before": load_before, "after": load_after},
            "batch_size": BATCH_SIZE,
            "steps_per_epoch": args.steps,
            "results": rows,
        }
        if comparison is not None:
            record["baseline"] = comparison
        write_json(record, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
