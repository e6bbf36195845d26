"""resnet_lab.checkpoint: atomic writes, complete contents, and clear errors for every bad file."""

from __future__ import annotations

import errno
import time

import pytest
import torch

from resnet_lab import checkpoint as C
from resnet_lab.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from resnet_lab.files import OutputError
from resnet_lab.models import get_model


class Gadget:
    """A Python object in a file: weights_only loading refuses it, since unpickling objects can run code."""

    def __init__(self) -> None:
        self.value = 1


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
    with pytest.raises(OutputError, match="No space left") as caught:
        save_checkpoint(_payload(epoch=2), path)
    assert isinstance(caught.value, OSError) and "previous file is intact" in str(caught.value)
    assert path.read_bytes() == before
    assert read_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"], "no temporary file is left behind"


def test_a_full_disk_is_named_and_leaves_the_old_file(tmp_path, monkeypatch):
    path = save_checkpoint(_payload(epoch=1), tmp_path / "last.pt")
    before = path.read_bytes()

    def disk_full(obj, f, *args, **kwargs):
        f.write(b"PK partial zip")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OutputError, match=r"Could not write .*last\.pt: the disk is full") as caught:
        save_checkpoint(_payload(epoch=2), path)
    assert caught.value.errno == errno.ENOSPC
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_ctrl_c_while_saving_leaves_the_old_file(tmp_path, monkeypatch):
    path = save_checkpoint(_payload(epoch=1), tmp_path / "last.pt")
    before = path.read_bytes()
    real_save = torch.save

    def interrupted(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        raise KeyboardInterrupt  # after the bytes are written, before the file is renamed into place

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(_payload(epoch=2), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


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


@pytest.mark.parametrize(("content", "kind"), [([1, 2], "list"), (torch.zeros(3), "Tensor"), ("text", "str")])
def test_a_pytorch_file_that_is_not_a_dict(tmp_path, content, kind):
    path = tmp_path / "x.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=rf"not a resnet_lab checkpoint: it holds a {kind}, not a dict"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="not a resnet_lab checkpoint"):
        load_checkpoint(path)


def test_python_objects_in_the_file_are_refused_without_running_them(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"format": C.CHECKPOINT_FORMAT, "gadget": Gadget()}, path)
    message = r"contains Python code or objects that were refused \(loading them could run code\)"
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("model_spec", None, "has no valid model_spec"),
        ("model_spec", {"num_classes": 10}, "has no valid model_spec"),
        ("model", [1, 2], "model entry is not a dict of tensors"),
        ("model", {"fc.weight": "zeros"}, "model entry is not a dict of tensors"),
    ],
)
def test_malformed_entries(tmp_path, key, value, message):
    path = save_checkpoint({**_payload(), key: value}, tmp_path / "x.pt")
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


def test_weights_checked_key_by_key_and_shape_by_shape(tmp_path):
    payload = _payload()
    payload["model_spec"] = {"name": "resnet8", "num_classes": 100}
    path = save_checkpoint(payload, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=r"fc\.weight is \(10, 64\) in the file, \(100, 64\) in the model"):
        load_checkpoint(path)
    payload = _payload()
    payload["model_spec"] = {"name": "plain8", "num_classes": 10, "shortcut": "B"}
    del payload["model"]["fc.bias"]
    path = save_checkpoint(payload, tmp_path / "y.pt")
    with pytest.raises(CheckpointError, match=r"do not fit that model \(missing fc\.bias\)"):
        load_checkpoint(path)


def test_a_spec_resnet_lab_cannot_build(tmp_path):
    for spec, message in (
        ({"name": "vgg16", "num_classes": 10}, "Unknown model 'vgg16'"),
        ({"name": "resnet8", "num_classes": 10, "dropout": 0.5}, r"cannot build it: .*unknown option\(s\) dropout"),
    ):
        path = save_checkpoint({**_payload(), "model_spec": spec}, tmp_path / "x.pt")
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)


def _refuse_real_builds(monkeypatch):
    """Make building a real model (not on the meta device) fail the test instead of filling the memory."""
    real_build = C.build_model

    def build_on_meta_only(spec):
        if torch.empty(0).device.type != "meta":
            raise AssertionError(f"a real model was built from the unchecked spec {spec}")
        return real_build(spec)

    monkeypatch.setattr(C, "build_model", build_on_meta_only)


@pytest.mark.parametrize(
    "options",
    [
        {"num_classes": 10**9},  # 64e9 weights in the classifier alone: 256 GB
        {"num_classes": 10, "width": 2**20},  # convolutions of a million channels
    ],
)
def test_a_crafted_spec_fails_fast_without_allocating(tmp_path, monkeypatch, options):
    path = save_checkpoint({**_payload(), "model_spec": {"name": "resnet8", **options}}, tmp_path / "x.pt")
    assert path.stat().st_size < 2_000_000
    _refuse_real_builds(monkeypatch)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="do not fit that model"):
        load_checkpoint(path)
    assert time.perf_counter() - start < 10


def test_a_crafted_depth_fails_before_any_model_is_built(tmp_path, monkeypatch):
    """Even on the meta device, 60 million blocks would take minutes and gigabytes of Python objects."""
    path = save_checkpoint({**_payload(), "model_spec": {"name": "resnet60000002", "num_classes": 10}}, tmp_path / "x")

    def no_build(spec):
        raise AssertionError("the model was built")

    monkeypatch.setattr(C, "build_model", no_build)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"a network of 60000002 layers, but only \d+ tensors in the file"):
        load_checkpoint(path)
    assert time.perf_counter() - start < 10


def test_tensors_that_claim_more_bytes_than_the_file_holds(tmp_path, monkeypatch):
    """A tensor can repeat one stored number over any shape (stride 0): the shapes fit, the file is tiny."""
    with torch.device("meta"):
        shapes = {key: t.shape for key, t in get_model("resnet8", width=64).state_dict().items()}
    payload = _payload()
    payload["model_spec"] = {"name": "resnet8", "num_classes": 10, "width": 64}
    payload["model"] = {key: torch.zeros(()).expand(shape) for key, shape in shapes.items()}
    path = save_checkpoint(payload, tmp_path / "x.pt")
    _refuse_real_builds(monkeypatch)
    with pytest.raises(CheckpointError, match=r"damaged or crafted: its weights claim [\d,]+ bytes, but the file"):
        load_checkpoint(path)


def test_half_precision_weights_load_into_a_float_model(tmp_path):
    """The committed checkpoints store fp16 weights: they load into the usual float32 model."""
    torch.manual_seed(0)
    model = get_model("resnet8").eval()
    half = {key: t.half() if t.is_floating_point() else t for key, t in model.state_dict().items()}
    path = save_checkpoint({**_payload(model), "model": half}, tmp_path / "x.pt")
    loaded, _ = load_checkpoint(path)
    assert loaded.fc.weight.dtype == torch.float32
    assert torch.equal(loaded.fc.weight, model.fc.weight.half().float())


def test_check_same_model():
    payload = _payload()
    C.check_same_model(payload, {"name": "resnet8", "num_classes": 10}, "x.pt")
    with pytest.raises(CheckpointError, match=r"holds a resnet8 \(num_classes=10\), but this run builds a plain8"):
        C.check_same_model(payload, {"name": "plain8", "num_classes": 10}, "x.pt")
