"""The record of a training run: `History`, a list of per-epoch dicts with the run's config and provenance.

It is what `fit` returns and what results.json holds; `History.from_json(path)` reads a run back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnet_lab.files import json_safe, write_json


@dataclass
class History(Sequence):
    """The record of a run: a list of per-epoch dicts, plus the configuration, provenance and best epoch.

    `history[-1]` is the last epoch's dict, `history["val_acc"]` the column of validation accuracies.
    `to_json()` gives the results.json text; `History.from_json(path)` reads one back; `plot()` draws the curves.
    """

    epochs: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    best: dict[str, Any] | None = None
    status: str = "finished"

    def __len__(self) -> int:
        return len(self.epochs)

    def __getitem__(self, key):
        if isinstance(key, str):
            return [e.get(key) for e in self.epochs]
        return self.epochs[key]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.epochs)

    def to_dict(self) -> dict[str, Any]:
        """The results.json structure: provenance, config, epochs, best, status."""
        return {
            "provenance": self.provenance,
            "config": self.config,
            "epochs": self.epochs,
            "best": self.best,
            "status": self.status,
        }

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The results.json text; written (atomically) to `path` when given."""
        if path is not None:
            write_json(self.to_dict(), path)
        return json.dumps(json_safe(self.to_dict()), indent=1, default=str, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> History:
        """A History from a results.json structure."""
        return cls(
            epochs=list(record.get("epochs", [])),
            config=dict(record.get("config") or {}),
            provenance=dict(record.get("provenance") or {}),
            best=record.get("best"),
            status=record.get("status", "finished"),
        )

    @classmethod
    def from_json(cls, source: str | os.PathLike) -> History:
        """Read a results.json file (or its text)."""
        text = str(source)
        if not text.lstrip().startswith("{"):
            text = Path(source).read_text()
        return cls.from_dict(json.loads(text))

    def plot(self, metric: str = "error", title: str | None = None, figsize=(10, 3.8)):
        """Loss (left) and error or accuracy in % (right) per epoch: `resnet_lab.viz.plot_history`."""
        from resnet_lab.viz import plot_history  # figures live in viz; reading a record needs no matplotlib

        return plot_history(self, metric=metric, title=title, figsize=figsize)


__all__ = ["History"]
