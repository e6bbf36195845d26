"""Files that are never half-written, strict JSON, and a lock so that two runs never write into one folder.

Every file resnet_lab writes (checkpoints, results.json, the decoded-image cache) goes through `atomic_write`: the
bytes go to a temporary file in the same folder, which is flushed to disk and then renamed over the target. A
crash, a full disk or Ctrl-C at any moment leaves either the old file or the new one, never a mixture, and no
temporary file behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

try:
    import fcntl
except ImportError:  # Windows has no flock; RunLock then does not lock (see its docstring).
    fcntl = None

# What an OSError means for someone who only wanted a file written.
_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.ENOENT: "a folder on the way does not exist",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder",
}


class OutputError(OSError):
    """A file or folder that resnet_lab could not write; the message says which one, why, and what is left."""


class RunLockedError(RuntimeError):
    """Another process is writing to the same run folder."""


def _reason(error: OSError) -> str:
    """A plain-words reason for an OSError, with the system's own words in brackets."""
    detail = error.strerror or str(error) or type(error).__name__
    reason = _REASONS.get(error.errno)
    return f"{reason} ({detail})" if reason else detail


def _output_error(message: str, error: OSError) -> OutputError:
    """An OutputError carrying the original error number, so callers can still test `error.errno`."""
    output_error = OutputError(message)
    output_error.errno = error.errno
    return output_error


def _fsync_folder(folder: Path) -> None:
    """Flush the folder entry of a renamed file to disk (POSIX); best effort, the file itself is already safe."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write `path` all at once: `write(f)` fills a temporary file that replaces `path` only when complete.

    On any failure (a full disk, Ctrl-C, an error in `write`) the temporary file is removed and the previous
    `path`, if any, is untouched. An OSError comes back as an OutputError that says so.
    """
    path = Path(path)
    existed = path.exists()
    # Same folder: a rename within one file system is atomic. The leading dot hides it from folder listings.
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # os.replace is atomic on POSIX and Windows: readers see the old file or the new one, never a mixture.
        os.replace(tmp, path)
    except OSError as error:
        kept = "The previous file is intact." if existed else "Nothing was written."
        raise _output_error(f"Could not write {path}: {_reason(error)}. {kept}", error) from error
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    _fsync_folder(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))


def json_safe(obj: Any) -> Any:
    """A copy of `obj` that strict JSON can hold: NaN and infinities become None, tuples become lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {key: json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(value) for value in obj]
    return obj


def write_json(record: Any, path: str | os.PathLike) -> Path:
    """Write `record` to `path` atomically as strict JSON (NaN and infinities as null), indented, newline-ended."""
    # allow_nan=False: Python would otherwise write NaN, which JSON readers other than Python's reject.
    # default=str: an object JSON does not know (a torch.device, a Path) is recorded by its name.
    text = json.dumps(json_safe(record), indent=1, allow_nan=False, default=str) + "\n"
    return atomic_write_text(path, text)


def check_writable_folder(folder: str | os.PathLike) -> Path:
    """`folder`, created if needed; raises OutputError if it is a file or cannot be written to."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is a file, not a folder. Choose another output folder (--out).")
    # Creating and deleting a file is the only test that works everywhere (permissions, read-only mounts, root).
    probe = folder / f".write-test-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise _output_error(
            f"Cannot write to the output folder {folder}: {_reason(error)}. Choose another folder (--out) or fix "
            "its permissions.",
            error,
        ) from error
    return folder


class RunLock:
    """`with RunLock(folder):` holds an exclusive lock on `folder/.lock`, so a second run on `folder` fails at once.

    The operating system releases the lock when the block ends and when the process dies, even by `kill -9`, so a
    crashed run never leaves a stale lock. On Windows (no `fcntl`) the lock is skipped.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self._file: Any = None

    def __enter__(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        file = open(self.folder / ".lock", "a+")  # kept open: the lock lives as long as the file
        if fcntl is not None:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.seek(0)
                holder = file.read().strip() or "unknown"
                file.close()
                raise RunLockedError(
                    f"Another run is writing to {self.folder} (process {holder}); wait for it to finish or choose "
                    "another output folder (--out)."
                ) from None
        # The holder's process id, for the message above; a reader of the folder sees who is writing.
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        self._file = file
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        # The file stays: deleting it would let a third process lock a new file while a second holds the old one.
        file, self._file = self._file, None
        if file is not None:
            file.truncate(0)
            file.close()  # closing the file releases the lock
