"""Training data: images as uint8 tensors, a fixed validation split, and two ways to feed them to a network.

Sources (`load_data(source)`, `--data` on the command line, or the RESNET_LAB_DATA environment variable):
- `"cifar10"`, `"cifar100"`: torchvision's download into a cache folder (the way to go on Colab);
- a directory in ImageFolder layout: `DIR/train/<class>/*.jpg` with optional `DIR/val/` and `DIR/test/`, or the
  class folders directly in `DIR`. Readers' own photos work too: other sizes are resized, unreadable files are
  reported and skipped. Decoding happens once; the decoded images are cached in one file next to the data;
- `"synthetic"`: random CIFAR-shaped images for smoke runs and tests only. It says so loudly.

Every image is decoded once into a uint8 tensor shaped (N, C, H, W). `BatchLoader`, the fast path, does the
augmentation of He et al. 2016 (4-pixel padding, random 32x32 crop, horizontal flip; optionally cutout) on whole
batches with tensor indexing, on the GPU when there is one, and normalizes with the training split's statistics.
`classic_loader` is the textbook `Dataset` + torchvision transforms + `DataLoader` pipeline, kept for teaching and
for comparison: it draws augmented images from the same distribution, one PIL image at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

DATA_ENV = "RESNET_LAB_DATA"
CACHE_ENV = "RESNET_LAB_CACHE"
TORCHVISION_SOURCES = ("cifar10", "cifar100")
SOURCE_NAMES = (*TORCHVISION_SOURCES, "synthetic")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
# The size images of mixed sizes are brought to when the caller does not choose one: what CIFAR networks expect.
DEFAULT_IMAGE_SIZE = 32
# Held-out validation images: 10% of the training images, at most 5,000 (He et al. 2016 hold out 5k of 50k).
MAX_DEFAULT_VAL_SIZE = 5000
CACHE_FORMAT = 1


class DataError(ValueError):
    """Data that cannot be used: a missing source, an empty folder, an impossible split or an unreadable image."""


@dataclass
class ImageData:
    """A dataset decoded into memory: uint8 images shaped (N, C, H, W), int64 labels, class names and statistics.

    `mean` and `std` are per-channel statistics of `train_x` on the [0, 1] scale; the loaders normalize with them
    and checkpoints store them, so a trained model is always fed images normalized the way it was trained.
    """

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str
    test_x: Tensor | None = None
    test_y: Tensor | None = None
    split_seed: int = 0
    val_from: str = "held out from train"
    skipped: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of every image."""
        return (int(self.train_x.shape[2]), int(self.train_x.shape[3]))

    @property
    def channels(self) -> int:
        """Number of colour channels (3 for RGB)."""
        return int(self.train_x.shape[1])

    @property
    def is_synthetic(self) -> bool:
        """True for the random images of the `synthetic` source."""
        return self.source.startswith("synthetic")

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        """The images and labels of split `name` ("train", "val" or "test")."""
        splits = {"train": (self.train_x, self.train_y), "val": (self.val_x, self.val_y)}
        if self.test_x is not None:
            splits["test"] = (self.test_x, self.test_y)
        if name not in splits:
            if name == "test":
                raise DataError(
                    f"The data {self.source} has no test split (it has {', '.join(splits)}). A folder gets one from "
                    "DIR/test/<class>/...; cifar10 and cifar100 have their official test sets. Use --split val."
                )
            raise DataError(f"Unknown split {name!r}: choose one of {', '.join(splits)}.")
        return splits[name]

    def describe(self) -> dict:
        """Where the data came from and the split sizes: the `data` entry of every result's provenance."""
        return {
            "source": self.source,
            "train_size": len(self.train_y),
            "val_size": len(self.val_y),
            "test_size": None if self.test_y is None else len(self.test_y),
            "val_from": self.val_from,
            "split_seed": self.split_seed,
            "image_size": list(self.image_size),
            "num_classes": self.num_classes,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    def __repr__(self) -> str:
        sizes = f"train={len(self.train_y)}, val={len(self.val_y)}"
        if self.test_y is not None:
            sizes += f", test={len(self.test_y)}"
        height, width = self.image_size
        return f"ImageData({self.source!r}, {sizes}, {self.num_classes} classes, {self.channels}x{height}x{width})"


# ----------------------------------------------------------------------------------------------------------------
# Loading


def load_data(
    source: str | os.PathLike | None = None,
    *,
    val_size: int | None = None,
    train_size: int | None = None,
    split_seed: int = 0,
    image_size: int | None = None,
    root: str | os.PathLike | None = None,
    download: bool = True,
    verbose: bool = True,
) -> ImageData:
    """Load a dataset into memory as uint8 tensors with a deterministic validation split.

    source: "cifar10", "cifar100", "synthetic" or an ImageFolder directory; None reads RESNET_LAB_DATA, then
        tries cifar10 in the download cache.
    val_size: images held out from the training split for validation (seeded by `split_seed`); default 10% of
        the training images, at most 5,000. Ignored when the source has its own validation folder.
    train_size: keep only this many training images (a seeded subset), for quick runs; the validation split
        does not change.
    image_size: resize every image to this square size; default: keep the size when all images share one,
        else 32.
    root: where cifar10/cifar100 are downloaded (default: RESNET_LAB_CACHE or ~/.cache/resnet_lab/data).
    """
    _check_optional_count("val_size", val_size, allow_zero=True)
    _check_optional_count("train_size", train_size)
    _check_optional_count("image_size", image_size)
    if source is None:
        return _load_default(val_size, train_size, split_seed, image_size, root, download, verbose)
    if isinstance(source, str) and source.strip().lower() in SOURCE_NAMES:
        name = source.strip().lower()
        if name == "synthetic":
            return synthetic_data(
                train_size=train_size or 2000,
                val_size=256 if val_size is None else val_size,
                image_size=image_size or DEFAULT_IMAGE_SIZE,
                seed=split_seed,
                verbose=verbose,
            )
        splits = _torchvision_splits(name, root, download)
        return _assemble(splits, name, val_size, train_size, split_seed, image_size, verbose)
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(
            f"The data source {str(source)!r} is neither a folder that exists nor one of {', '.join(SOURCE_NAMES)}. "
            "Pass an ImageFolder directory (DIR/train/<class>/*.jpg or DIR/<class>/*.jpg), 'cifar10' to download "
            "CIFAR-10, or 'synthetic' for a smoke run."
        )
    if not path.is_dir():
        raise DataError(f"The data source {str(path)!r} is a file, not a folder. Pass the folder of class folders.")
    for name in TORCHVISION_SOURCES:
        # A torchvision download folder (e.g. ~/datasets with cifar-10-batches-py inside) is read as is.
        if (path / _TORCHVISION_FOLDERS[name]).is_dir():
            splits = _torchvision_splits(name, path, download=False)
            return _assemble(splits, f"{name} ({path})", val_size, train_size, split_seed, image_size, verbose)
    splits, skipped = _folder_splits(path, image_size, verbose)
    data = _assemble(splits, str(path.resolve()), val_size, train_size, split_seed, image_size, verbose)
    data.skipped = skipped
    return data


def _load_default(val_size, train_size, split_seed, image_size, root, download, verbose) -> ImageData:
    """No source given: RESNET_LAB_DATA, then cifar10 from the download cache (downloading it if possible)."""
    tried = []
    env = os.environ.get(DATA_ENV, "").strip()
    if env:
        return load_data(
            env,
            val_size=val_size,
            train_size=train_size,
            split_seed=split_seed,
            image_size=image_size,
            root=root,
            download=download,
            verbose=verbose,
        )
    tried.append(f"the {DATA_ENV} environment variable (not set)")
    try:
        splits = _torchvision_splits("cifar10", root, download)
    except DataError as error:
        tried.append(f"cifar10 in {_download_root(root)} ({error.args[0].split('. ')[0]})")
        raise DataError(
            "No training data found. Tried " + "; ".join(tried) + ". Provide data with --data DIR (or "
            f"load_data(DIR)) where DIR holds DIR/train/<class>/*.jpg or DIR/<class>/*.jpg, set {DATA_ENV}=DIR, "
            "connect to the internet so that 'cifar10' can download, or use 'synthetic' for a smoke run."
        ) from None
    return _assemble(splits, "cifar10", val_size, train_size, split_seed, image_size, verbose)


def _check_optional_count(name: str, value: int | None, allow_zero: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        least = "0 or more" if allow_zero else "a positive integer"
        raise DataError(f"{name} must be {least} (or None for the default), got {value!r}.")


_Splits = dict[str, tuple[Tensor, Tensor]]
_TORCHVISION_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def _download_root(root: str | os.PathLike | None) -> Path:
    if root is not None:
        return Path(root).expanduser()
    return cache_dir() / "data"


def cache_dir() -> Path:
    """Where resnet_lab keeps downloads and decoded images it cannot keep next to the data."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "resnet_lab"


def _torchvision_splits(name: str, root, download: bool) -> tuple[_Splits, list[str]]:
    """CIFAR-10/100 through torchvision: already arrays, so no decoding and no cache of our own."""
    import torchvision

    dataset_class = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}[name]
    folder = _download_root(root)
    splits = {}
    classes: list[str] = []
    for split, train in (("train", True), ("test", False)):
        try:
            dataset = dataset_class(str(folder), train=train, download=download)
        except (RuntimeError, OSError) as error:  # torchvision: RuntimeError "not found"; urllib: URLError (OSError)
            how = "downloading failed" if download else "it is not there and download=False"
            raise DataError(
                f"Could not load {name} from {folder}: {how} ({error}). Connect to the internet, or pass an "
                "ImageFolder directory instead."
            ) from None
        images = torch.from_numpy(np.ascontiguousarray(dataset.data)).permute(0, 3, 1, 2).contiguous()
        splits[split] = (images, torch.tensor(dataset.targets, dtype=torch.int64))
        classes = list(dataset.classes)
    return splits, classes


def _assemble(
    found: tuple[_Splits, list[str]],
    source: str,
    val_size: int | None,
    train_size: int | None,
    split_seed: int,
    image_size: int | None,
    verbose: bool,
) -> ImageData:
    """Hold out the validation split, take the training subset, compute the statistics."""
    splits, classes = found
    if image_size is not None:
        # torchvision arrays (and cached folders) have one size; bring them to the requested one.
        splits = {name: (resize_batch(x, image_size), y) for name, (x, y) in splits.items()}
    train_x, train_y = splits["train"]
    val_from = "held out from train"
    if "val" in splits:
        val_x, val_y = splits["val"]
        val_from = "val folder"
    else:
        train_x, train_y, val_x, val_y = _hold_out(train_x, train_y, val_size, split_seed)
    if train_size is not None:
        if train_size > len(train_y):
            raise DataError(
                f"train_size={train_size} but the training split of {source} has only {len(train_y)} images "
                f"(after holding out {len(val_y)} for validation). Use a smaller --train-size or leave it out."
            )
        keep = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(split_seed + 1))[:train_size]
        keep = keep.sort().values
        train_x, train_y = train_x[keep], train_y[keep]
    mean, std = channel_stats(train_x)
    test_x, test_y = splits.get("test", (None, None))
    data = ImageData(
        train_x=train_x,
        train_y=train_y,
        val_x=val_x,
        val_y=val_y,
        test_x=test_x,
        test_y=test_y,
        classes=classes,
        mean=mean,
        std=std,
        source=source,
        split_seed=split_seed,
        val_from=val_from,
    )
    if verbose:
        print(f"data: {data!r}", file=sys.stderr)
    return data


def _hold_out(x: Tensor, y: Tensor, val_size: int | None, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Split off a seeded random validation set; the same seed gives the same split on every machine."""
    n = len(y)
    if val_size is None:
        val_size = min(MAX_DEFAULT_VAL_SIZE, round(0.1 * n))
    if val_size >= n:
        raise DataError(
            f"val_size={val_size} leaves no training images: the training split has {n}. Use a smaller --val-size."
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    # Sorting keeps the stored order inside each split, which makes the split easy to inspect.
    val_idx, train_idx = order[:val_size].sort().values, order[val_size:].sort().values
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def channel_stats(x: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images, on the [0, 1] scale (exact, in float64)."""
    if len(x) == 0:
        raise DataError("The training split is empty: there is nothing to train on.")
    channels = x.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    for chunk in x.split(4096):  # chunks keep the float64 copy small
        c = chunk.to(torch.float64)
        total += c.sum(dim=(0, 2, 3))
        total_sq += (c * c).sum(dim=(0, 2, 3))
    count = x.numel() / channels
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(0).sqrt()
    return tuple((mean / 255).tolist()), tuple((std / 255).tolist())


# ----------------------------------------------------------------------------------------------------------------
# Synthetic data


def synthetic_data(
    train_size: int = 2000,
    val_size: int = 256,
    test_size: int | None = None,
    num_classes: int = 10,
    image_size: int = 32,
    seed: int = 0,
    verbose: bool = True,
) -> ImageData:
    """Random CIFAR-shaped images for smoke runs and tests: each class is a blurry colour template plus noise.

    The classes can be learned (a small network gets well above chance in a few epochs), which lets tests check
    that training makes progress. The numbers mean nothing about real images.
    """
    if verbose:
        print(
            "*** SYNTHETIC DATA: random images for smoke runs and tests. Nothing learned on them says anything "
            "about real images. ***",
            file=sys.stderr,
        )
    test_size = val_size if test_size is None else test_size
    generator = torch.Generator().manual_seed(seed)
    templates = F.interpolate(
        torch.rand(num_classes, 3, 4, 4, generator=generator), size=(image_size, image_size), mode="bilinear"
    )

    def make(n: int) -> tuple[Tensor, Tensor]:
        labels = torch.randint(0, num_classes, (n,), generator=generator)
        noise = torch.rand(n, 3, image_size, image_size, generator=generator)
        images = (0.6 * templates[labels] + 0.4 * noise) * 255
        return images.round().to(torch.uint8), labels

    train_x, train_y = make(train_size)
    val_x, val_y = make(val_size)
    test_x, test_y = make(test_size)
    mean, std = channel_stats(train_x)
    return ImageData(
        train_x=train_x,
        train_y=train_y,
        val_x=val_x,
        val_y=val_y,
        test_x=test_x,
        test_y=test_y,
        classes=[f"class{i}" for i in range(num_classes)],
        mean=mean,
        std=std,
        source="synthetic",
        split_seed=seed,
        val_from="generated",
    )


# ----------------------------------------------------------------------------------------------------------------
# Image folders: listing, decoding, caching


def _list_classes(folder: Path) -> dict[str, list[Path]]:
    """{class name: image files} for a folder of class folders, both sorted by name."""
    found = {}
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            p for p in class_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        found[class_dir.name] = files
    return found


def _folder_layout(path: Path) -> dict[str, dict[str, list[Path]]]:
    """{split: {class: files}} for DIR/train|val|test/<class>/* or DIR/<class>/*."""
    if (path / "train").is_dir():
        layout = {"train": _list_classes(path / "train")}
        for split, names in (("val", ("val", "valid", "validation")), ("test", ("test",))):
            for name in names:
                if (path / name).is_dir():
                    layout[split] = _list_classes(path / name)
                    break
    else:
        layout = {"train": _list_classes(path)}
    train = layout["train"]
    where = path / "train" if (path / "train").is_dir() else path
    if not train or not any(train.values()):
        raise DataError(
            f"No images found in {where}. An image folder holds one sub-folder per class with the images inside: "
            f"{path}/train/<class>/*.jpg (optionally {path}/val/ and {path}/test/ alike) or {path}/<class>/*.jpg. "
            f"Accepted file types: {', '.join(sorted(IMAGE_SUFFIXES))}."
        )
    for split, classes in layout.items():
        unknown = sorted(set(classes) - set(train))
        if unknown:
            raise DataError(
                f"{path}/{split} has class folders that {where} does not have: {', '.join(unknown)}. Every split "
                "must use the training split's class names."
            )
    return layout


def _cache_key(layout: dict[str, dict[str, list[Path]]], path: Path, image_size: int | None) -> str:
    """A digest of the folder's path, file list, sizes and modification times, and the requested image size."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}|{path.resolve()}|{image_size}".encode())
    for split, classes in sorted(layout.items()):
        for name, files in classes.items():
            for file in files:
                stat = file.stat()
                digest.update(f"{split}/{name}/{file.name}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _cache_paths(path: Path, image_size: int | None) -> list[Path]:
    """Next to the data if that folder is writable, else in the user's cache folder."""
    name = f".resnet_lab_cache_{image_size or 'native'}.pt"
    fallback = cache_dir() / "decoded" / f"{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]}{name}"
    return [path / name, fallback]


def _folder_splits(path: Path, image_size: int | None, verbose: bool) -> tuple[tuple[_Splits, list[str]], list[str]]:
    """Decoded images of an image folder, from the cache when it is fresh, else decoded (and cached)."""
    layout = _folder_layout(path)
    classes = list(layout["train"])
    key = _cache_key(layout, path, image_size)
    for cache_file in _cache_paths(path, image_size):
        if cache_file.is_file():
            try:
                cached = torch.load(cache_file, map_location="cpu", weights_only=True)
            except Exception:  # a stale or damaged cache is rebuilt, never trusted
                continue
            if cached.get("key") == key:
                skipped = list(cached["skipped"])
                _report_skipped(skipped, verbose)
                return (dict(cached["splits"]), list(cached["classes"])), skipped
    if verbose:
        count = sum(len(f) for classes_ in layout.values() for f in classes_.values())
        print(f"data: decoding {count} images in {path} (once; the result is cached)...", file=sys.stderr)
    target = image_size or _common_size(layout, verbose)
    splits, skipped = {}, []
    for split, files_by_class in layout.items():
        files = [f for name in classes for f in files_by_class.get(name, [])]
        labels = [i for i, name in enumerate(classes) for _ in files_by_class.get(name, [])]
        images, ok, bad = _decode_files(files, target)
        skipped += bad
        if not ok:
            raise DataError(f"None of the {len(files)} image files of {path}/{split} could be read (e.g. {bad[0]}).")
        splits[split] = (torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(),
                         torch.tensor([labels[i] for i in ok], dtype=torch.int64))
    _report_skipped(skipped, verbose)
    payload = {"format": CACHE_FORMAT, "key": key, "splits": splits, "classes": classes, "skipped": skipped}
    for cache_file in _cache_paths(path, image_size):
        if _try_save(payload, cache_file):
            break
    return (splits, classes), skipped


def _try_save(payload: dict, path: Path) -> bool:
    """Write atomically (temporary file, then rename); False when the folder is not writable."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, tmp)
        os.replace(tmp, path)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        return False


def _common_size(layout: dict[str, dict[str, list[Path]]], verbose: bool) -> int | None:
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


def _decode_files(files: Sequence[Path], size: int | None) -> tuple[list[np.ndarray], list[int], list[str]]:
    """Decode image files to HxWx3 uint8 arrays; returns the arrays, the indices that worked, the failures."""

    def decode(file: Path) -> np.ndarray | str:
        try:
            return np.asarray(open_image(file, size))
        except DataError as error:
            return str(error)

    # PIL releases the GIL while decoding, so threads give a real speed-up.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(decode, files, chunksize=256))
    images, ok, bad = [], [], []
    first_shape = None
    for i, result in enumerate(results):
        if isinstance(result, str):
            bad.append(result)
            continue
        first_shape = first_shape or result.shape
        if result.shape != first_shape:  # only when image_size is None and sizes differ (guarded above)
            result = np.asarray(resize_image(Image.fromarray(result), first_shape[0]))
        images.append(result)
        ok.append(i)
    return images, ok, bad


def _report_skipped(skipped: list[str], verbose: bool) -> None:
    if skipped and verbose:
        shown = "\n  ".join(skipped[:10])
        more = f"\n  ... and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        print(f"data: skipped {len(skipped)} unreadable image file(s):\n  {shown}{more}", file=sys.stderr)


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


# ----------------------------------------------------------------------------------------------------------------
# The fast path: whole-batch augmentation on the device


def mix_seed(*numbers: int) -> int:
    """A 63-bit seed derived from several integers (run seed, epoch, batch) that changes when any of them does."""
    digest = hashlib.blake2b(repr(tuple(int(n) for n in numbers)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def normalize(x: Tensor, mean: Sequence[float], std: Sequence[float], channels_last: bool = False) -> Tensor:
    """uint8 images -> float32 (x / 255 - mean) / std, on x's device."""
    scale = torch.tensor([1 / (255 * s) for s in std], device=x.device).view(1, -1, 1, 1)
    shift = torch.tensor([m / s for m, s in zip(mean, std)], device=x.device).view(1, -1, 1, 1)
    out = torch.addcmul(-shift, x.float(), scale)  # x / (255 s) - m / s, in one pass
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def crop_flip(x: Tensor, dy: Tensor, dx: Tensor, flip: Tensor, padding: int) -> Tensor:
    """Random crops of zero-padded images and horizontal flips, for a whole batch at once.

    Image i is padded by `padding` pixels on each side, cut at rows dy[i]..dy[i]+H and columns dx[i]..dx[i]+W of
    the padded image, then mirrored left-right where flip[i]. This is what RandomCrop(H, padding) followed by
    RandomHorizontalFlip does to one PIL image, done here with one indexing operation for the batch.
    """
    n, channels, height, width = x.shape
    padded = F.pad(x, (padding, padding, padding, padding)) if padding else x
    rows = dy[:, None] + torch.arange(height, device=x.device)  # (N, H)
    cols = dx[:, None] + torch.arange(width, device=x.device)  # (N, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # a flipped crop reads its columns right to left
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(channels, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def cutout_mask(cy: Tensor, cx: Tensor, size: int, height: int, width: int) -> Tensor:
    """Boolean masks (N, 1, H, W) of size x size squares centred at (cy, cx), clipped at the borders."""
    top = cy - size // 2
    left = cx - size // 2
    r = torch.arange(height, device=cy.device)[None, :]
    c = torch.arange(width, device=cx.device)[None, :]
    in_rows = (r >= top[:, None]) & (r < top[:, None] + size)
    in_cols = (c >= left[:, None]) & (c < left[:, None] + size)
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]


class BatchLoader:
    """Batches of normalized float images from uint8 tensors, augmented on whole batches on the device.

    train=True: a new seeded shuffle every epoch, random crop (zero padding `crop_padding`) + horizontal flip
    (+ cutout of `cutout` pixels), the last incomplete batch dropped. train=False: the images in order, unchanged.
    The randomness of batch b of epoch e comes from a generator seeded with (seed, e, b) alone, so a run resumed
    at any batch sees exactly the images an uninterrupted run sees, whatever the number of processes.

    With `world_size` > 1 (DistributedDataParallel), `batch_size` is the global batch and process `rank` gets its
    own slice of every batch.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        batch_size: int,
        train: bool = False,
        crop_padding: int = 4,
        flip: bool = True,
        cutout: int = 0,
        seed: int = 0,
        device: torch.device | str | None = None,
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if x.dtype != torch.uint8 or x.dim() != 4:
            raise TypeError(f"BatchLoader takes uint8 images shaped (N, C, H, W), got {x.dtype} {tuple(x.shape)}.")
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels.")
        if batch_size < 1 or batch_size % world_size:
            raise ValueError(f"batch_size must be a positive multiple of the {world_size} processes, got {batch_size}.")
        if train and len(x) < batch_size:
            raise DataError(
                f"The training split has {len(x)} images, fewer than one batch of {batch_size}: "
                "use a smaller --batch-size or more data."
            )
        self.device = torch.device(device) if device is not None else x.device
        # The whole dataset lives on the device (150 MB for CIFAR-10): no copies per batch.
        self.x = x.to(self.device)
        self.y = y.to(self.device)
        self.mean, self.std = tuple(mean), tuple(std)
        self.batch_size = batch_size
        self.train = train
        self.crop_padding, self.flip, self.cutout = crop_padding, flip, cutout
        self.seed = seed
        self.channels_last = channels_last
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Choose the epoch (its shuffle and augmentation) and the batch to start from (for resuming)."""
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        """Batches per epoch (of the global batch size)."""
        n = len(self.y)
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.y)
        if self.train:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(self.seed, self.epoch)))
        else:
            order = torch.arange(n)
        for b in range(self.start_batch, len(self)):
            index = order[b * self.batch_size : (b + 1) * self.batch_size]
            # Drawn for the whole global batch, then sliced: every process count sees the same augmented images.
            augment = self._augmentation(b, len(index)) if self.train else None
            if self.world_size > 1:
                share = -(-len(index) // self.world_size)
                part = slice(self.rank * share, (self.rank + 1) * share)
                index = index[part]
                if augment is not None:
                    augment = {k: v[part] for k, v in augment.items()}
            yield self._batch(index, augment)
        self.start_batch = 0

    def _augmentation(self, batch: int, n: int) -> dict[str, Tensor]:
        """Crop offsets, flips and cutout centres of one global batch, drawn on the CPU from its own generator."""
        generator = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, batch))
        _, _, height, width = self.x.shape
        span = 2 * self.crop_padding + 1
        params = {
            "dy": torch.randint(0, span, (n,), generator=generator),
            "dx": torch.randint(0, span, (n,), generator=generator),
            "flip": torch.rand(n, generator=generator) < 0.5 if self.flip else torch.zeros(n, dtype=torch.bool),
        }
        if self.cutout:
            params["cy"] = torch.randint(0, height, (n,), generator=generator)
            params["cx"] = torch.randint(0, width, (n,), generator=generator)
        return params

    def _batch(self, index: Tensor, augment: dict[str, Tensor] | None) -> tuple[Tensor, Tensor]:
        index = index.to(self.device)
        images, labels = self.x[index], self.y[index]
        if augment is not None:
            a = {k: v.to(self.device, non_blocking=True) for k, v in augment.items()}
            images = crop_flip(images, a["dy"], a["dx"], a["flip"], self.crop_padding)
        x = normalize(images, self.mean, self.std, self.channels_last)
        if augment is not None and self.cutout:
            _, _, height, width = x.shape
            x = x.masked_fill(cutout_mask(a["cy"], a["cx"], self.cutout, height, width), 0.0)
        return x, labels


# ----------------------------------------------------------------------------------------------------------------
# The classic path: Dataset + torchvision transforms + DataLoader, one PIL image at a time


class Cutout:
    """Zero a size x size square at a uniformly random centre of a normalized image tensor (DeVries & Taylor 2017)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: Tensor) -> Tensor:
        _, height, width = image.shape
        cy = torch.randint(0, height, (1,))
        cx = torch.randint(0, width, (1,))
        return image.masked_fill(cutout_mask(cy, cx, self.size, height, width)[0], 0.0)


def classic_transforms(
    mean: Sequence[float], std: Sequence[float], *, train: bool, crop_padding: int = 4, flip: bool = True,
    cutout: int = 0, image_size: int = 32,
):
    """The textbook torchvision pipeline: RandomCrop(padding) + RandomHorizontalFlip + ToTensor + Normalize."""
    from torchvision import transforms as T

    steps = []
    if train:
        steps.append(T.RandomCrop(image_size, padding=crop_padding))
        if flip:
            steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    if train and cutout:
        steps.append(Cutout(cutout))
    return T.Compose(steps)


class UInt8ImageDataset(torch.utils.data.Dataset):
    """A map-style dataset over uint8 image tensors that hands each image to `transform` as a PIL image."""

    def __init__(self, x: Tensor, y: Tensor, transform=None) -> None:
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        array = self.x[i].permute(1, 2, 0).numpy()
        image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
        return (self.transform(image) if self.transform else image), int(self.y[i])


def classic_loader(
    x: Tensor,
    y: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    batch_size: int,
    train: bool = False,
    crop_padding: int = 4,
    flip: bool = True,
    cutout: int = 0,
    num_workers: int = 2,
    seed: int = 0,
) -> torch.utils.data.DataLoader:
    """A torch DataLoader over `UInt8ImageDataset` with `classic_transforms`: per-image PIL work in workers."""
    transform = classic_transforms(
        mean, std, train=train, crop_padding=crop_padding, flip=flip, cutout=cutout, image_size=int(x.shape[-1])
    )
    return torch.utils.data.DataLoader(
        UInt8ImageDataset(x, y, transform),
        batch_size=batch_size,
        shuffle=train,
        drop_last=train,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )
