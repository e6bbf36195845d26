"""The committed results of chapters 6 and 7 (block deletion, loss landscapes): schema and known answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LESIONS = sorted((ROOT / "results" / "block_deletion").glob("*.json"))
SURFACES = sorted((ROOT / "results" / "loss_landscape").glob("*.json"))


def _ids(paths):
    return [p.stem for p in paths]


@pytest.mark.parametrize("path", LESIONS, ids=_ids(LESIONS))
def test_block_deletion_schema(path: Path):
    record = json.loads(path.read_text())
    assert record["experiment"] == "block-deletion" and record["point"] == path.stem
    assert record["provenance"]["data"]["fingerprint"] == "5a64a0c1212ebdd1433dfe86487949cb"
    if "paths" in record:
        paths = record["paths"]
        assert len(paths["norms"]) == paths["blocks"] + 1
        assert all(len(v) == paths["samples_per_length"] for v in paths["norms"].values())
        low, high = paths["effective_90"]
        assert 0 <= low <= high <= paths["blocks"]
        return
    assert 0 <= record["baseline"]["err"] <= 1
    assert record["rows"] and all(0 <= row["err"] <= 1 for row in record["rows"])
    if path.stem == "resnet56-single":
        assert len(record["rows"]) == 27
        assert [r["deleted"][0] for r in record["rows"] if r["downsampling"]] == ["layer2.0", "layer3.0"]


@pytest.mark.parametrize("path", SURFACES, ids=_ids(SURFACES))
def test_loss_landscape_schema_and_origin(path: Path):
    record = json.loads(path.read_text())
    assert record["experiment"] == "loss-landscape" and record["point"] == path.stem
    assert record["provenance"]["data"]["fingerprint"] == "5a64a0c1212ebdd1433dfe86487949cb"
    if "grid" in record:
        grid = record["grid"]
        middle = grid["alphas"].index(0.0)
        assert grid["betas"][middle] == 0.0
        # The known answer: at the grid's origin the network is the checkpoint itself.
        assert grid["loss"][middle][middle] == pytest.approx(record["center"]["loss"], rel=1e-6)
        rows = record["slice"]["rows"]
        at_zero = [r for r in rows if r["alpha"] == 0.0]
        assert at_zero and at_zero[0]["loss"] == pytest.approx(record["center"]["loss"], rel=1e-6)
    else:
        rows = record["interpolation"]["rows"]
        assert rows[0]["alpha"] == 0.0 and rows[-1]["alpha"] == 1.0
        # At alpha = 1 the interpolated network is the trained one.
        assert rows[-1]["loss"] == pytest.approx(record["center"]["loss"], rel=1e-5)
