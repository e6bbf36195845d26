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
[--steps 24] [--json FILE]. Other programs share the CPU in many settings: the script prints the load average
before and after; compare numbers from one run only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import torch

from resnet_lab.data import load_data, normalize
from resnet_lab.models import get_model
from resnet_lab.provenance import provenance
from resnet_lab.runtime import get_device
from resnet_lab.train import make_optimizer, resolve_precision, training_step

BATCH_SIZE = 128


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def fit_rate(name: str, data, **options) -> float:
    """Training images/s of the second of two epochs of `fit` (the first one warms up)."""
    from resnet_lab.train import fit

    torch.manual_seed(0)
    history = fit(get_model(name), data, epochs=2, batch_size=BATCH_SIZE, progress=False, **options)
    return history[-1]["images_per_s"]


def compute_rate(name: str, data, steps: int, precision: str, channels_last: bool) -> float:
    """Images/s of training steps alone, on batches normalized in advance and kept in memory."""
    device = get_device()
    precision = resolve_precision(precision, device)
    torch.manual_seed(0)
    model = get_model(name).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, lr=0.05)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("RESNET_LAB_DATA"),
                        help="CIFAR-10 source (ImageFolder directory or 'cifar10'); default $RESNET_LAB_DATA")
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56"])
    parser.add_argument("--steps", type=int, default=24, help="training steps per measured epoch")
    parser.add_argument("--json", default=None, help="also write the measurements to this JSON file")
    args = parser.parse_args(argv)
    if args.data is None:
        parser.error("pass --data (e.g. the CIFAR-10 JPEG folder or 'cifar10') or set RESNET_LAB_DATA")

    data = load_data(args.data, train_size=args.steps * BATCH_SIZE, verbose=False)
    # Evaluation is not part of the measurement: keep the validation split tiny.
    data = dataclasses.replace(data, val_x=data.val_x[:256], val_y=data.val_y[:256])
    load_before = _load()
    device = get_device()
    print(f"device: {device}, {torch.get_num_threads()} threads; load average before: {load_before}", flush=True)
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
    if args.json:
        record = {
            "provenance": provenance(command="python " + " ".join(sys.argv), data=data.describe(), device=device,
                                     precision=resolve_precision("auto", device)),
            "load_average": {"before": load_before, "after": load_after},
            "batch_size": BATCH_SIZE,
            "steps_per_epoch": args.steps,
            "results": rows,
        }
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
