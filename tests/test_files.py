"""resnet_lab.files: atomic writes that survive a full disk and Ctrl-C, strict JSON, and the run lock.

Tests run as root in CI, where chmod does not stop a write: failures are simulated with monkeypatch.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from resnet_lab import files
from resnet_lab.files import (
    OutputError,
    RunLock,
    RunLockedError,
    atomic_write,
    atomic_write_text,
    check_writable_folder,
    json_safe,
    write_json,
)


def _strict_json(text: str):
    """Parse like a strict (non-Python) JSON reader: NaN, Infinity and -Infinity are errors."""

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def _disk_full(f):
    """A writer that writes half its bytes, then finds the disk full."""
    f.write(b"new and partial")
    raise OSError(errno.ENOSPC, "No space left on device")


# ----- atomic_write -----


def test_atomic_write_writes_and_returns_the_path(tmp_path):
    path = atomic_write(tmp_path / "sub" / "a.bin", lambda f: f.write(b"\x00\x01"))
    assert path == tmp_path / "sub" / "a.bin"
    assert path.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.bin"]


def test_disk_full_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = atomic_write_text(tmp_path / "results.json", "old\n")
    with pytest.raises(OutputError) as caught:
        atomic_write(path, _disk_full)
    message = str(caught.value)
    assert str(path) in message and "the disk is full" in message and "previous file is intact" in message
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"], "no temporary file is left behind"


def test_disk_full_on_a_new_file_leaves_nothing(tmp_path):
    with pytest.raises(OutputError, match="Nothing was written"):
        atomic_write(tmp_path / "new.json", _disk_full)
    assert list(tmp_path.iterdir()) == []


def test_failure_while_flushing_to_disk(tmp_path, monkeypatch):
    path = atomic_write_text(tmp_path / "a.txt", "old")

    def fsync_fails(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync_fails)
    with pytest.raises(OutputError, match=r"Could not write .*a\.txt: Input/output error\. The previous file"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_failure_while_renaming(tmp_path, monkeypatch):
    path = atomic_write_text(tmp_path / "a.txt", "old")

    def replace_fails(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", replace_fails)
    with pytest.raises(OutputError, match="permission denied"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_ctrl_c_while_writing_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = atomic_write_text(tmp_path / "last.pt", "old")

    def interrupted(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # passed on as it is, not turned into an OutputError
        atomic_write(path, interrupted)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_other_errors_of_the_writer_pass_through_and_clean_up(tmp_path):
    def broken(f):
        f.write(b"x")
        raise TypeError("cannot pickle")

    with pytest.raises(TypeError, match="cannot pickle"):
        atomic_write(tmp_path / "x.pt", broken)
    assert list(tmp_path.iterdir()) == []


def test_temporary_file_is_hidden_in_the_same_folder(tmp_path):
    seen = []
    atomic_write(tmp_path / "a.txt", lambda f: seen.append(pathlib.Path(f.name)))
    assert seen == [tmp_path / f".a.txt.tmp-{os.getpid()}"]


def test_atomic_write_text_is_utf8(tmp_path):
    path = atomic_write_text(tmp_path / "t.txt", "Ångström ✓\n")
    assert path.read_bytes() == "Ångström ✓\n".encode()


# ----- JSON -----


def test_json_safe_turns_non_finite_numbers_into_none():
    record = {"loss": float("nan"), "best": {"acc": float("inf"), "x": [1.5, float("-inf"), (2, 3)]}, "n": 3}
    assert json_safe(record) == {"loss": None, "best": {"acc": None, "x": [1.5, None, [2, 3]]}, "n": 3}
    assert record["loss"] != record["loss"], "the input is not modified"


def test_write_json_is_strict_indented_and_newline_ended(tmp_path):
    record = {"epochs": [{"val_loss": float("nan"), "train_loss": 2.5}], "best": float("inf"), "ok": True}
    path = write_json(record, tmp_path / "results.json")
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert _strict_json(text) == {"epochs": [{"val_loss": None, "train_loss": 2.5}], "best": None, "ok": True}
    assert text == json.dumps(_strict_json(text), indent=1) + "\n"


def test_write_json_records_unknown_objects_by_name(tmp_path):
    path = write_json({"out": pathlib.PurePosixPath("runs/a")}, tmp_path / "r.json")
    assert _strict_json(path.read_text()) == {"out": "runs/a"}


def test_write_json_failure_keeps_the_old_file(tmp_path, monkeypatch):
    path = write_json({"a": 1}, tmp_path / "r.json")

    def fsync_fails(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync_fails)
    with pytest.raises(OutputError, match="disk is full"):
        write_json({"a": 2}, path)
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


# ----- check_writable_folder -----


def test_check_writable_folder_creates_the_folder_and_leaves_no_probe(tmp_path):
    folder = check_writable_folder(tmp_path / "a" / "b")
    assert folder == tmp_path / "a" / "b" and folder.is_dir()
    assert list(folder.iterdir()) == []


def test_check_writable_folder_refuses_a_file(tmp_path):
    target = tmp_path / "runs"
    target.write_text("not a folder")
    with pytest.raises(OutputError, match=r"runs is a file, not a folder\. Choose another output folder"):
        check_writable_folder(target)
    with pytest.raises(OutputError, match="a part of the path is a file"):
        check_writable_folder(target / "inside")


def test_check_writable_folder_refuses_an_unwritable_folder(tmp_path, monkeypatch):
    def touch_refused(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(pathlib.Path, "touch", touch_refused)
    with pytest.raises(OutputError, match=r"Cannot write to the output folder .*: permission denied") as caught:
        check_writable_folder(tmp_path)
    assert caught.value.errno == errno.EACCES


# ----- RunLock -----

_HOLD_LOCK = textwrap.dedent(
    """
    import sys
    from resnet_lab.files import RunLock
    with RunLock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()  # hold the lock until the test closes stdin (or kills this process)
    """
)


def _holder(folder):
    """A second Python process holding RunLock(folder) until its stdin is closed."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(pathlib.Path(files.__file__).parent.parent)},
    )
    assert process.stdout.readline().strip() == "locked"
    return process


def test_second_lock_in_the_same_process_fails_at_once(tmp_path):
    folder = tmp_path / "run"
    with RunLock(folder):
        assert (folder / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(RunLockedError, match=rf"Another run is writing to .*run \(process {os.getpid()}\)"):
            with RunLock(folder):
                pass
    with RunLock(folder):  # released on exit
        pass


def test_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(ValueError, match="inside"):
        with RunLock(tmp_path):
            raise ValueError("inside")
    with RunLock(tmp_path):
        pass


def test_lock_held_by_another_process(tmp_path):
    process = _holder(tmp_path)
    try:
        with pytest.raises(RunLockedError, match=rf"\(process {process.pid}\); wait for it .*--out"):
            with RunLock(tmp_path):
                pass
    finally:
        process.stdin.close()
        assert process.wait(timeout=30) == 0
    with RunLock(tmp_path):  # the other process has finished
        pass


def test_lock_released_when_the_holder_is_killed(tmp_path):
    process = _holder(tmp_path)
    process.kill()  # no clean-up code runs: the operating system drops the lock
    process.wait(timeout=30)
    process.stdin.close()
    process.stdout.close()
    with RunLock(tmp_path):
        pass


def test_lock_creates_the_folder(tmp_path):
    with RunLock(tmp_path / "new" / "run") as lock:
        assert lock.folder.is_dir()
