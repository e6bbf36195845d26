"""resnet_lab.checkpoint: atomic writes, complete contents, and clear errors for every bad file."""

from __future__ import annotations

import pytest
import torch

from resnet_lab import checkpoint as C
from resnet_lab.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from resnet_lab.models import get_model


def _payload(model=None, **extra):
    model = model or get_model("resnet8")
    return {
        "model_spec": model.spec,
        "model": model.state_dict(),
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "classes": [f"c{i}" for i in range(10)],
        "image_size": [32, 32],
        **extra,
    }


def test_round_trip_rebuilds_the_model(tmp_path):
    torch.manual_seed(0)
    model = get_model("resnet8").eval()
    path = save_checkpoint(_payload(model, epoch=3), tmp_path / "run" / "best.pt")
    loaded, meta = load_checkpoint(path)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded(x), model(x)) and not loaded.training
    assert meta["epoch"] == 3 and meta["classes"][0] == "c0" and meta["model_spec"]["name"] == "resnet8"
    assert "model" not in meta and meta["format"] == C.CHECKPOINT_FORMAT


def test_a_crash_while_writing_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = save_checkpoint(_payload(epoch=1), tmp_path / "last.pt")
    before = path.read_bytes()
    real_save = torch.save

    def crash_half_way(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(100)  # a partial file on disk, then the process "dies"
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", crash_half_way)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(_payload(epoch=2), path)
    assert path.read_bytes() == before
    assert read_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"], "no temporary file is left behind"


def test_truncated_file_gives_a_clear_error(tmp_path):
    path = save_checkpoint(_payload(), tmp_path / "best.pt")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="damaged or not a PyTorch file"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"just some text", "damaged or not a PyTorch file"),
        (None, "not a resnet_lab checkpoint"),  # a bare state_dict
    ],
)
def test_foreign_files_are_refused(tmp_path, content, message):
    path = tmp_path / "weights.pt"
    if content is None:
        torch.save(get_model("resnet8").state_dict(), path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "best.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is a folder .*best.pt"):
        read_checkpoint(tmp_path)


def test_incomplete_checkpoint(tmp_path):
    payload = _payload()
    del payload["classes"]
    path = save_checkpoint(payload, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="lacks classes"):
        read_checkpoint(path)


def test_weights_that_do_not_fit_the_recorded_model(tmp_path):
    payload = _payload()
    payload["model_spec"] = {"name": "resnet14", "num_classes": 10}
    path = save_checkpoint(payload, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="do not fit that model"):
        load_checkpoint(path)


def test_check_same_model():
    payload = _payload()
    C.check_same_model(payload, {"name": "resnet8", "num_classes": 10}, "x.pt")
    with pytest.raises(CheckpointError, match=r"holds a resnet8 \(num_classes=10\), but this run builds a plain8"):
        C.check_same_model(payload, {"name": "plain8", "num_classes": 10}, "x.pt")
