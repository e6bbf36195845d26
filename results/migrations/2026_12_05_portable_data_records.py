"""One-off migration (2026-12-05): result files record their data by name and content, not by a machine's path.

Result files written before this migration recorded the data as the absolute path of the folder they were read
from, and the command lines with the absolute paths of the machine that ran them. This script rewrites, in every
committed result file and fp16 checkpoint, only that:

- the `data` record: `source` (a path) is replaced by `name`, `kind` and the content `fingerprint` of the data,
  computed from the same images (the script first checks that the recorded split sizes and the per-channel mean
  and standard deviation of the training split are reproduced exactly, which proves they are the same images
  split the same way);
- every recorded command: absolute paths become `.../NAME` (resnet_lab.provenance.portable_path);
- a `migrated` entry in the provenance says what was changed, when, and by which script.

Every measured number, the weights, and everything else stay as they were. Run once, from the repository root:

    python results/migrations/2026_12_05_portable_data_records.py --data /path/to/cifar10-jpeg
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from resnet_lab.checkpoint import save_checkpoint
from resnet_lab.data import load_data
from resnet_lab.files import write_json
from resnet_lab.provenance import portable_path

RESULTS = Path("results")
NOTE = {
    "date": "2026-12-05",
    "what": "data recorded by name, kind and content fingerprint instead of a folder path; absolute paths removed "
    "from the recorded commands; nothing measured was changed",
    "by": "results/migrations/2026_12_05_portable_data_records.py",
}


def portable_command(command: str) -> str:
    """The command with every absolute path made portable."""
    return shlex.join(portable_path(arg, cwd=Path("/nonexistent")) for arg in shlex.split(command))


def new_data_record(old: dict[str, Any], data) -> dict[str, Any]:
    """The data record without the path, after checking that `data` are the recorded data, split the same way."""
    split = {"split_seed": old["split_seed"], "val_size": old["val_size"], "train_size": old["train_size"]}
    if data.split_seed != split["split_seed"] or len(data.val_y) != split["val_size"]:
        raise SystemExit(f"split differs: {split}")
    if len(data.train_y) != old["train_size"]:
        data = load_data(data.source, val_size=old["val_size"], train_size=old["train_size"],
                         split_seed=old["split_seed"], verbose=False)
    if list(data.mean) != old["mean"] or list(data.std) != old["std"]:
        raise SystemExit("the training split's statistics differ: these are not the recorded data")
    record = {"name": data.name, "kind": data.kind, "fingerprint": data.fingerprint}
    return record | {k: v for k, v in old.items() if k != "source"}


def migrate_provenance(prov: dict[str, Any], data) -> dict[str, Any]:
    """Provenance with a portable data record and commands, and the migration noted."""
    prov = dict(prov)
    if "command" in prov:
        prov["command"] = portable_command(prov["command"])
    if prov.get("data") and "source" in prov["data"]:
        prov["data"] = new_data_record(prov["data"], data)
    prov["resumed"] = [r | {"command": portable_command(r["command"])} for r in prov.get("resumed", [])]
    if not prov["resumed"]:
        del prov["resumed"]
    prov["migrated"] = [*prov.get("migrated", []), NOTE]
    return prov


def migrate_json(path: Path, data) -> None:
    record = json.loads(path.read_text())
    if any(m["by"] == NOTE["by"] for m in record.get("provenance", {}).get("migrated", [])):
        return
    record["provenance"] = migrate_provenance(record["provenance"], data)
    write_json(record, path)
    print(f"migrated {path}")


def migrate_checkpoint(path: Path, data) -> None:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if any(m["by"] == NOTE["by"] for m in payload.get("provenance", {}).get("migrated", [])):
        return
    weights = {k: v.clone() for k, v in payload["model"].items()}
    payload["provenance"] = migrate_provenance(payload["provenance"], data)
    if "source" in payload.get("data", {}):
        payload["data"] = new_data_record(payload["data"], data)
    payload.pop("format", None)  # save_checkpoint writes it
    save_checkpoint(payload, path)
    again = torch.load(path, map_location="cpu", weights_only=True)["model"]
    if not all(torch.equal(again[k], weights[k]) for k in weights):
        raise SystemExit(f"{path}: weights changed")
    print(f"migrated {path} ({path.stat().st_size / 1e6:.2f} MB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the CIFAR-10 JPEG folder the results were trained on")
    args = parser.parse_args(argv)
    data = load_data(args.data, val_size=5000, split_seed=0, verbose=False)
    files = sorted(RESULTS.glob("depth_sweep/*.json")) + [RESULTS / "resnet20_10ep" / "results.json"]
    for path in files:
        migrate_json(path, data)
    for path in sorted(RESULTS.glob("checkpoints/*.pt")):
        migrate_checkpoint(path, data)
    print(f"done ({datetime.date.today()})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
