"""Data faults of issue 23: read-only data and full disks, copies of a folder, Ctrl-C while decoding, damaged
caches, unreadable files and odd folders, file names that are not UTF-8."""

from __future__ import annotations

import errno
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from resnet_lab import data as D
from resnet_lab import folders
from resnet_lab.data import DataError, load_data


@pytest.fixture(autouse=True)
def user_cache(tmp_path_factory, monkeypatch):
    """The user cache of each test: a fresh folder outside the data folders."""
    folder = tmp_path_factory.mktemp("user-cache")
    monkeypatch.setenv(D.CACHE_ENV, str(folder))
    return folder


def _files(folder) -> dict[str, bytes]:
    """Every file under `folder`, hidden ones included, with its content."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------------------------------------------------
# Item 1: the data folder is never written; a cache that cannot be written only warns and leaves nothing behind


def test_the_data_folder_is_never_written(tiny_image_folder, user_cache):
    before = _files(tiny_image_folder)
    load_data(tiny_image_folder, verbose=False)
    assert _files(tiny_image_folder) == before
    assert [p.parent.name for p in user_cache.rglob("*.pt")] == ["decoded"]


def test_an_unwritable_user_cache_warns_and_still_loads(tiny_image_folder, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("a file where the cache folder would be: nothing can be written beneath it")
    monkeypatch.setenv(D.CACHE_ENV, str(blocker))
    before = _files(tiny_image_folder)
    data = load_data(tiny_image_folder, verbose=False)
    assert len(data.train_y) + len(data.val_y) == 24
    assert "could not be cached" in capsys.readouterr().err
    assert _files(tiny_image_folder) == before  # no fallback into the data folder either


def test_a_full_disk_leaves_no_temporary_file(tiny_image_folder, user_cache, monkeypatch, capsys):
    def save_then_fill_the_disk(obj, f, *args, **kwargs):
        f.write(b"half a cache file")
        raise OSError(errno.ENOSPC, "No space left on device")

    before = _files(tiny_image_folder)
    with monkeypatch.context() as m:
        m.setattr(torch, "save", save_then_fill_the_disk)
        data = load_data(tiny_image_folder, verbose=False)
    assert len(data.train_y) > 0
    err = capsys.readouterr().err
    assert "could not be cached" in err and "disk is full" in err
    assert _files(tiny_image_folder) == before
    assert not [p for p in user_cache.rglob("*") if p.is_file()]


def test_ctrl_c_while_caching_leaves_no_temporary_file(tiny_image_folder, user_cache, monkeypatch):
    def interrupted_save(obj, f, *args, **kwargs):
        f.write(b"part of a cache file")
        raise KeyboardInterrupt

    before = _files(tiny_image_folder)
    monkeypatch.setattr(torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        load_data(tiny_image_folder, verbose=False)
    assert _files(tiny_image_folder) == before
    assert not [p for p in user_cache.rglob("*") if p.is_file()]


# ---------------------------------------------------------------------------------------------------------------
# Items 6 and 7: the fingerprint and the split follow the content, not the path


def test_a_copy_elsewhere_has_the_same_fingerprint_and_split(tiny_image_folder, tmp_path):
    copy = tmp_path / "elsewhere" / "deeper" / tiny_image_folder.name
    shutil.copytree(tiny_image_folder, copy, copy_function=shutil.copy)  # new modification times too
    a = load_data(tiny_image_folder, val_size=6, verbose=False)
    b = load_data(copy, val_size=6, verbose=False)
    assert len(a.fingerprint) == 32 and a.fingerprint == b.fingerprint
    assert torch.equal(a.val_x, b.val_x) and torch.equal(a.val_y, b.val_y) and torch.equal(a.train_x, b.train_x)
    assert a.describe() == b.describe()
    assert a.source != b.source  # the loadable path is kept in memory...
    recorded = json.dumps(a.describe())
    assert str(tmp_path) not in recorded and "/" not in a.describe()["name"]  # ...and never recorded


def test_the_fingerprint_is_of_the_whole_content(tiny_image_folder, write_image):
    base = load_data(tiny_image_folder, val_size=6, verbose=False)
    # The split does not change it: it is computed before the split.
    assert load_data(tiny_image_folder, val_size=3, split_seed=5, verbose=False).fingerprint == base.fingerprint
    write_image(tiny_image_folder / "test" / "dog" / "000.png", seed=12345)  # one test image changes
    assert load_data(tiny_image_folder, val_size=6, verbose=False).fingerprint != base.fingerprint


def test_renamed_classes_change_the_fingerprint(tiny_image_folder):
    base = load_data(tiny_image_folder, verbose=False)
    for split in ("train", "test"):
        (tiny_image_folder / split / "ship").rename(tiny_image_folder / split / "yacht")
    renamed = load_data(tiny_image_folder, verbose=False)
    assert torch.equal(renamed.train_x, base.train_x) and renamed.fingerprint != base.fingerprint


def test_synthetic_data_have_a_fingerprint_that_follows_the_seed():
    a, b, c = (load_data("synthetic", train_size=64, val_size=8, split_seed=s, verbose=False) for s in (0, 0, 1))
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.describe()["kind"] == "synthetic"


# ---------------------------------------------------------------------------------------------------------------
# Item 8: Ctrl-C while decoding


class _RecordingPool(ThreadPoolExecutor):
    """A thread pool that remembers how it was shut down."""

    made: list[_RecordingPool] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.shutdown_calls: list[dict] = []
        _RecordingPool.made.append(self)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.shutdown_calls.append({"wait": wait, "cancel_futures": cancel_futures})
        super().shutdown(wait=wait, cancel_futures=cancel_futures)


def test_ctrl_c_while_decoding_stops_the_pool_and_says_so(tiny_image_folder, user_cache, monkeypatch):
    calls = []
    real_open = folders.open_image

    def open_until_ctrl_c(path, size=None, channels=3):
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt  # what Ctrl-C raises: no message at all
        return real_open(path, size, channels)

    _RecordingPool.made = []
    monkeypatch.setattr(folders, "open_image", open_until_ctrl_c)
    monkeypatch.setattr(folders, "ThreadPoolExecutor", _RecordingPool)
    monkeypatch.setattr(folders, "DECODE_CHUNK", 4)
    with pytest.raises(KeyboardInterrupt) as info:
        load_data(tiny_image_folder, verbose=False)
    assert "Interrupted while decoding images" in str(info.value) and "Run the command again" in str(info.value)
    (pool,) = _RecordingPool.made
    assert pool.shutdown_calls and pool.shutdown_calls[0]["cancel_futures"]
    for thread in list(pool._threads):
        thread.join(timeout=10)
        assert not thread.is_alive()
    assert len(calls) < 24  # the files after the interrupted chunk were never decoded
    assert not [p for p in user_cache.rglob("*") if p.is_file()]  # nothing was cached


# ---------------------------------------------------------------------------------------------------------------
# Item 10: a cache file that loads but is not a cache is rebuilt


@pytest.mark.parametrize(
    "damage",
    [
        lambda cached: [1, 2, 3],  # a valid torch file that is not a dict
        lambda cached: {k: v for k, v in cached.items() if k != "splits"},  # a dict without its images
        lambda cached: cached | {"splits": {"train": (torch.zeros(2, 3), torch.zeros(2))}},  # images of wrong shape
        lambda cached: cached | {"classes": "cat dog ship"},  # classes that are not a list
        lambda cached: cached | {"format": 1},  # the format of an older version
    ],
    ids=["list", "no-splits", "bad-splits", "bad-classes", "old-format"],
)
def test_a_cache_that_is_not_a_cache_is_rebuilt(tiny_image_folder, damage):
    first = load_data(tiny_image_folder, verbose=False)
    cache = folders.cache_file(tiny_image_folder, None)
    good = torch.load(cache, weights_only=True)
    torch.save(damage(good), cache)
    again = load_data(tiny_image_folder, verbose=False)
    assert torch.equal(again.train_x, first.train_x) and again.fingerprint == first.fingerprint
    rebuilt = torch.load(cache, weights_only=True)
    assert isinstance(rebuilt, dict) and torch.equal(rebuilt["splits"]["train"][0], good["splits"]["train"][0])


# ---------------------------------------------------------------------------------------------------------------
# Item 11: unreadable files are always reported and recorded; too many are refused; odd folders are refused


def _break(folder, names):
    for name in names:
        (folder / name).write_bytes(b"this is not an image")


def test_skipped_files_are_reported_even_when_quiet_and_recorded(tiny_image_folder, capsys):
    _break(tiny_image_folder / "train" / "cat", ["broken.jpg"])
    for _ in range(2):  # decoded, then from the cache: reported both times
        data = load_data(tiny_image_folder, verbose=False, max_skipped=0.05)
        err = capsys.readouterr().err
        assert "WARNING" in err and "skipped 1 unreadable image file(s) of 31" in err and "train/cat/broken.jpg" in err
    assert data.skipped == ["train/cat/broken.jpg"]
    assert data.describe()["skipped"] == {"count": 1, "files": ["train/cat/broken.jpg"]}


def test_describe_names_the_first_twenty_skipped_files(tiny_image_folder):
    _break(tiny_image_folder / "train" / "dog", [f"bad{i:02d}.png" for i in range(25)])
    skipped = load_data(tiny_image_folder, verbose=False, max_skipped=1).describe()["skipped"]
    assert skipped["count"] == 25 and skipped["files"] == [f"train/dog/bad{i:02d}.png" for i in range(20)]


def test_too_many_unreadable_files_are_refused(tiny_image_folder):
    _break(tiny_image_folder / "train" / "cat", ["broken.jpg"])
    with pytest.raises(DataError, match=r"1 of the 31 image files .* max_skipped=0\.01 .* max_skipped=0\.033"):
        load_data(tiny_image_folder, verbose=False)
    assert len(load_data(tiny_image_folder, verbose=False, max_skipped=0.033).skipped) == 1


@pytest.mark.parametrize("value", [-0.1, 1.5, True, "1%"])
def test_max_skipped_must_be_a_fraction(value):
    with pytest.raises(DataError, match="max_skipped"):
        load_data("synthetic", max_skipped=value)


def test_a_single_class_is_refused(tmp_path, write_image):
    (tmp_path / "only").mkdir()
    write_image(tmp_path / "only" / "a.png")
    with pytest.raises(DataError, match="at least two classes"):
        load_data(tmp_path, verbose=False)


def test_class_folders_without_images_are_named(tiny_image_folder):
    (tiny_image_folder / "train" / "bird").mkdir()
    (tiny_image_folder / "test" / "cat" / "000.png").unlink()
    (tiny_image_folder / "test" / "cat" / "001.png").unlink()
    with pytest.raises(DataError, match="hold no images: train/bird, test/cat"):
        load_data(tiny_image_folder, verbose=False)


def test_a_split_folder_without_class_folders_is_refused(tiny_image_folder, write_image):
    (tiny_image_folder / "val").mkdir()
    write_image(tiny_image_folder / "val" / "loose.png")
    with pytest.raises(DataError, match="val has no class folders"):
        load_data(tiny_image_folder, verbose=False)


# ---------------------------------------------------------------------------------------------------------------
# Item 13: file names that are not UTF-8


def _odd_name(folder, name: bytes):
    path = folder / os.fsdecode(name)
    try:
        path.touch()
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system does not take file names that are not UTF-8")
    path.unlink()
    return path


def test_file_names_that_are_not_utf8(tiny_image_folder, write_image, capsys):
    good = _odd_name(tiny_image_folder / "train" / "cat", b"good\xff.png")
    write_image(good, seed=77)
    bad = _odd_name(tiny_image_folder / "train" / "dog", b"bad\xfe.png")
    bad.write_bytes(b"not an image")
    data = load_data(tiny_image_folder, verbose=False, max_skipped=0.05)
    assert len(data.train_y) + len(data.val_y) == 25  # the good one is read
    assert data.skipped == ["train/dog/bad\\xfe.png"]  # the bad one is named printably
    json.dumps(data.describe(), ensure_ascii=False).encode("utf-8")  # and can be recorded
    assert "bad\\xfe.png" in capsys.readouterr().err
    assert torch.equal(load_data(tiny_image_folder, verbose=False, max_skipped=0.05).train_x, data.train_x)
