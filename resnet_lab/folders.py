"""Image folders: listing the files, decoding them once into uint8 arrays, and caching the result.

An image folder holds one sub-folder per class: `DIR/train/<class>/*.jpg` (with optional `DIR/val/` and
`DIR/test/` alike) or `DIR/<class>/*.jpg`. Classes and files are taken in the order of their names, so the
decoded tensors, and the validation split drawn from them, do not depend on where the folder is.

Decoding 50,000 JPEGs takes a minute or two, so the result is cached in the user's cache folder
(`cache_dir()/decoded`, see RESNET_LAB_CACHE): the data folder itself is never written to (it may be read-only or
shared). The cache is used only while the folder's file names, sizes and modification times are unchanged, and is
rebuilt whenever it cannot be trusted. Unreadable files are skipped and always reported.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from resnet_lab.data import CACHE_ENV, DEFAULT_IMAGE_SIZE, DataError, cache_dir
from resnet_lab.files import atomic_write

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
CACHE_FORMAT = 2
# Files are handed to the decoding threads this many at a time, so that Ctrl-C cancels little work.
DECODE_CHUNK = 512
SPLIT_FOLDERS = {"val": ("val", "valid", "validation"), "test": ("test",)}
DECODE_INTERRUPTED = "Interrupted while decoding images; nothing was cached. Run the command again to start over."
# How many unreadable files the report names; the rest are counted.
SHOWN_SKIPPED = 10

_Layout = dict[str, dict[str, list[Path]]]  # {split: {class: image files}}


@dataclass
class DecodedFolder:
    """The decoded images of a folder, by split, and the files that could not be read."""

    splits: dict[str, tuple[Tensor, Tensor]]  # {split: (uint8 images (N, C, H, W), int64 labels)}
    classes: list[str]
    skipped: dict[str, str]  # {file name relative to the folder: why it could not be read}
    file_count: int  # image files listed, readable or not


def load_folder(path: Path, image_size: int | None, verbose: bool = True) -> DecodedFolder:
    """The decoded images of the image folder `path`: from the cache when it is fresh, else decoded and cached."""
    layout = folder_layout(path)
    key = _cache_key(layout, path, image_size)
    cache = cache_file(path, image_size)
    decoded = _read_cache(cache, key)
    if decoded is None:
        try:
            decoded = _decode_layout(layout, path, image_size, verbose)
        except KeyboardInterrupt:
            # A bare KeyboardInterrupt prints an empty line; say what happened and what is left.
            raise KeyboardInterrupt(DECODE_INTERRUPTED) from None
        _write_cache(cache, key, decoded)
    report_skipped(decoded.skipped, decoded.file_count)
    return decoded


# ----------------------------------------------------------------------------------------------------------------
# Listing


def folder_layout(path: Path) -> _Layout:
    """`{split: {class: files}}` for `DIR/train|val|test/<class>/*` or `DIR/<class>/*`, checked for usable classes."""
    train_dir = path / "train" if (path / "train").is_dir() else path
    layout = {"train": _list_classes(train_dir)}
    if train_dir != path:
        for split, names in SPLIT_FOLDERS.items():
            found = [path / name for name in names if (path / name).is_dir()]
            if found:
                layout[split] = _list_classes(found[0])
    _check_layout(layout, path, train_dir)
    return layout


def _list_classes(folder: Path) -> dict[str, list[Path]]:
    """{class name: image files} for a folder of class folders, both sorted by name (hidden ones left out)."""
    found = {}
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            p for p in class_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        found[class_dir.name] = files
    return found


def _check_layout(layout: _Layout, path: Path, train_dir: Path) -> None:
    """Refuse what ImageFolder refuses: no images, class folders without images, fewer than two classes."""
    train = layout["train"]
    if not any(train.values()):
        raise DataError(
            f"No images found in {train_dir}. An image folder holds one sub-folder per class with the images "
            f"inside: {path}/train/<class>/*.jpg (optionally {path}/val/ and {path}/test/ alike) or "
            f"{path}/<class>/*.jpg. Accepted file types: {', '.join(sorted(IMAGE_SUFFIXES))}."
        )
    split_dirs = {"train": train_dir} | {split: _split_dir(path, split) for split in layout if split != "train"}
    empty = [
        printable((split_dirs[split] / name).relative_to(path).as_posix())
        for split, classes in layout.items()
        for name, files in classes.items()
        if not files
    ]
    if empty:
        raise DataError(
            f"These class folders in {path} hold no images: {', '.join(empty)}. Every class needs images (file "
            f"types {', '.join(sorted(IMAGE_SUFFIXES))}): add some, or remove the empty folders."
        )
    if len(train) < 2:
        raise DataError(
            f"{train_dir} has a single class folder ({printable(next(iter(train)))}): classification needs at least "
            "two classes, each in its own sub-folder."
        )
    for split, classes in layout.items():
        unknown = sorted(printable(name) for name in set(classes) - set(train))
        if not classes:
            raise DataError(f"{split_dirs[split]} has no class folders: put its images in one sub-folder per class.")
        if unknown:
            raise DataError(
                f"{split_dirs[split]} has class folders that {train_dir} does not have: {', '.join(unknown)}. Every "
                "split must use the training split's class names."
            )


def _split_dir(path: Path, split: str) -> Path:
    """The folder of a val or test split (the first of its accepted names that exists)."""
    return next(path / name for name in SPLIT_FOLDERS[split] if (path / name).is_dir())


def printable(name: str) -> str:
    """A file name as printable text: bytes that are not UTF-8 (allowed in file names on Linux) as \\xNN."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


# ----------------------------------------------------------------------------------------------------------------
# The cache


def cache_file(path: Path, image_size: int | None) -> Path:
    """The cache file of the folder `path` decoded at `image_size` (in the user's cache folder)."""
    # os.fsencode: the path's own bytes, so that a name that is not valid UTF-8 still has a digest.
    digest = hashlib.blake2b(os.fsencode(path.resolve()), digest_size=8).hexdigest()
    return cache_dir() / "decoded" / f"{path.resolve().name[:40]}-{digest}-{image_size or 'native'}.pt"


def _cache_key(layout: _Layout, path: Path, image_size: int | None) -> str:
    """A digest of the folder's file names, sizes and modification times, and the requested image size."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}|{image_size}".encode())
    for split, classes in sorted(layout.items()):
        for files in classes.values():
            for file in files:
                stat = file.stat()
                digest.update(os.fsencode(file.relative_to(path)))
                digest.update(f"|{split}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _read_cache(cache: Path, key: str) -> DecodedFolder | None:
    """The cached images if `cache` holds a complete, current cache for `key`; None otherwise (then rebuilt)."""
    if not cache.is_file():
        return None
    try:
        cached = torch.load(cache, map_location="cpu", weights_only=True)
    except Exception:  # truncated, damaged or written by an incompatible version: rebuilt, never trusted
        return None
    if not (isinstance(cached, dict) and cached.get("format") == CACHE_FORMAT and cached.get("key") == key):
        return None
    splits, classes, skipped, count = (cached.get(k) for k in ("splits", "classes", "skipped", "file_count"))
    if not (_valid_splits(splits) and isinstance(classes, list) and isinstance(skipped, dict)):
        return None
    if not isinstance(count, int) or not all(isinstance(c, str) for c in classes):
        return None
    return DecodedFolder({k: (v[0], v[1]) for k, v in splits.items()}, classes, skipped, count)


def _valid_splits(splits: Any) -> bool:
    """True for {split: (uint8 images (N, C, H, W), int64 labels (N,))} with a training split."""
    if not isinstance(splits, dict) or "train" not in splits:
        return False
    for pair in splits.values():
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(t, Tensor) for t in pair)):
            return False
        x, y = pair
        if x.dtype != torch.uint8 or x.dim() != 4 or y.dtype != torch.int64 or y.shape != (len(x),):
            return False
    return True


def _write_cache(cache: Path, key: str, decoded: DecodedFolder) -> None:
    """Save the decoded images atomically; if that fails (a full disk, no permission) say so and carry on."""
    payload = {
        "format": CACHE_FORMAT,
        "key": key,
        "splits": decoded.splits,
        "classes": decoded.classes,
        "skipped": decoded.skipped,
        "file_count": decoded.file_count,
    }
    try:
        atomic_write(cache, lambda f: torch.save(payload, f))
    except OSError as error:
        print(
            f"data: WARNING: the decoded images could not be cached ({error}). This run goes on; the next one "
            f"decodes them again. Set {CACHE_ENV} to a writable folder to keep them.",
            file=sys.stderr,
        )


# ----------------------------------------------------------------------------------------------------------------
# Decoding


def _decode_layout(layout: _Layout, path: Path, image_size: int | None, verbose: bool) -> DecodedFolder:
    """Decode every split of the folder; unreadable files are skipped and listed."""
    classes = list(layout["train"])
    count = sum(len(files) for by_class in layout.values() for files in by_class.values())
    if verbose:
        print(f"data: decoding {count} images in {path} (once; the result is cached)...", file=sys.stderr)
    target = image_size or _common_size(layout, verbose)
    splits, skipped = {}, {}
    for split, files_by_class in layout.items():
        files = [f for name in classes for f in files_by_class.get(name, [])]
        labels = [i for i, name in enumerate(classes) for _ in files_by_class.get(name, [])]
        images, ok, bad = _decode_files(files, target)
        skipped |= {printable(files[i].relative_to(path).as_posix()): reason for i, reason in bad.items()}
        if not ok:
            example = next(iter(bad.values()))
            raise DataError(f"None of the {len(files)} image files of {path}/{split} could be read (e.g. {example}).")
        images = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
        splits[split] = (images, torch.tensor([labels[i] for i in ok], dtype=torch.int64))
    return DecodedFolder(splits, classes, skipped, count)


def _common_size(layout: _Layout, verbose: bool) -> int | None:
    """None (keep) when every image has the same square size, else DEFAULT_IMAGE_SIZE. Reads headers only."""
    sizes = set()
    for classes in layout.values():
        for files in classes.values():
            for file in files:
                try:
                    with Image.open(file) as image:
                        sizes.add(image.size)
                except (OSError, UnidentifiedImageError):
                    continue  # reported when decoding
                if len(sizes) > 1:
                    break
    if len(sizes) == 1 and len({*next(iter(sizes))}) == 1:
        return None
    if verbose:
        print(
            f"data: the images have different sizes; resizing them to {DEFAULT_IMAGE_SIZE}x{DEFAULT_IMAGE_SIZE} "
            "(pass image_size / --image-size to choose another size).",
            file=sys.stderr,
        )
    return DEFAULT_IMAGE_SIZE


def _decode_one(file: Path, size: int | None) -> np.ndarray | str:
    """One file as an HxWx3 uint8 array, or the reason it cannot be read."""
    try:
        return np.asarray(open_image(file, size))
    except DataError as error:
        return printable(str(error).removeprefix(f"{file}: "))  # the report names the file itself


def _decode_files(files: Sequence[Path], size: int | None) -> tuple[list[np.ndarray], list[int], dict[int, str]]:
    """Decode image files to HxWx3 uint8 arrays; returns the arrays, the indices that worked, {index: reason}."""
    # PIL releases the GIL while decoding, so threads give a real speed-up.
    pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
    results: list[np.ndarray | str] = []
    try:
        for start in range(0, len(files), DECODE_CHUNK):
            chunk = files[start : start + DECODE_CHUNK]
            results += pool.map(_decode_one, chunk, [size] * len(chunk))
    finally:
        # On Ctrl-C (or any error): drop the files not started and do not wait for those being decoded.
        pool.shutdown(wait=False, cancel_futures=True)
    images, ok, bad = [], [], {}
    first_shape = None
    for i, result in enumerate(results):
        if isinstance(result, str):
            bad[i] = result
            continue
        first_shape = first_shape or result.shape
        if result.shape != first_shape:  # only when image_size is None and sizes differ (guarded above)
            result = np.asarray(resize_image(Image.fromarray(result), first_shape[0]))
        images.append(result)
        ok.append(i)
    return images, ok, bad


def report_skipped(skipped: dict[str, str], file_count: int) -> None:
    """Warn on stderr about unreadable files, always: a silently smaller dataset changes every number."""
    if not skipped:
        return
    shown = "\n  ".join(f"{name}: {reason}" for name, reason in list(skipped.items())[:SHOWN_SKIPPED])
    more = f"\n  ... and {len(skipped) - SHOWN_SKIPPED} more" if len(skipped) > SHOWN_SKIPPED else ""
    print(
        f"data: WARNING: skipped {len(skipped)} unreadable image file(s) of {file_count}:\n  {shown}{more}",
        file=sys.stderr,
    )


# ----------------------------------------------------------------------------------------------------------------
# Single images


def open_image(path: str | os.PathLike, size: int | None = None, channels: int = 3) -> Image.Image:
    """Open an image file as RGB (or grayscale for channels=1), resized to size x size when `size` is given."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Image file {str(path)!r} does not exist." if not path.exists() else f"{path} is not a file.")
    try:
        with Image.open(path) as image:
            image = image.convert("RGB" if channels == 3 else "L")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"{path}: cannot be read as an image ({type(error).__name__}: {error})") from None
    if size is not None and image.size != (size, size):
        image = resize_image(image, size)
    return image


def resize_image(image: Image.Image, size: int) -> Image.Image:
    """Scale the shorter side to `size` (antialiased), then cut the central size x size square."""
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((new_w, new_h), Image.BICUBIC if scale > 1 else Image.LANCZOS)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def resize_batch(x: Tensor, size: int) -> Tensor:
    """Resize uint8 images (N, C, H, W) to size x size; unchanged when they already have that size."""
    if x.shape[-2:] == (size, size):
        return x
    channels = x.shape[1]
    resized = [np.asarray(resize_image(Image.fromarray(img.permute(1, 2, 0).squeeze(-1).numpy()), size)) for img in x]
    out = torch.from_numpy(np.stack(resized))
    return out.unsqueeze(1) if channels == 1 else out.permute(0, 3, 1, 2).contiguous()


def read_image(path: str | os.PathLike, size: int | None = None, channels: int = 3) -> Tensor:
    """One image file as a uint8 tensor (C, H, W), resized as `open_image` does. For prediction."""
    array = np.asarray(open_image(path, size, channels))
    tensor = torch.from_numpy(array.copy())
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()
