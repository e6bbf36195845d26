"""Training data: images as uint8 tensors in memory, a fixed validation split, and the seeds of all randomness.

Sources (`load_data(source)`, `--data` on the command line, or the RESNET_LAB_DATA environment variable):

- `"cifar10"`, `"cifar100"`: torchvision's download into a cache folder (the way to go on Colab);
- a directory in ImageFolder layout: `DIR/train/<class>/*.jpg` with optional `DIR/val/` and `DIR/test/`, or the
  class folders directly in `DIR`. Readers' own photos work too: other sizes are resized, unreadable files are
  reported and skipped. Decoding happens once; the decoded images are cached in the user's cache folder
  (folders.py), never in the data folder;
- `"synthetic"`: random CIFAR-shaped images for smoke runs and tests only. It says so loudly.

Every image is decoded once into a uint8 tensor shaped (N, C, H, W). The validation split, the training subset
and every shuffle and augmentation are drawn from generators seeded by `derive_seed`, so the same seeds give the
same images on every machine. `ImageData.fingerprint` is a digest of the decoded images themselves: the same
data copied to another folder or machine has the same fingerprint and the same validation split.

The loaders are in loaders.py (`BatchLoader`, `classic_loader`, `normalize`), the augmentations in augment.py,
the image files in folders.py; their names stay importable from here too.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from resnet_lab.checks import check_int

if TYPE_CHECKING:  # for readers and editors: these names are re-exported lazily by __getattr__ below
    from resnet_lab.augment import crop_flip, cutout_mask  # noqa: F401
    from resnet_lab.folders import IMAGE_SUFFIXES, open_image, read_image, resize_batch, resize_image  # noqa: F401
    from resnet_lab.loaders import BatchLoader, classic_loader, classic_transforms, normalize  # noqa: F401

DATA_ENV = "RESNET_LAB_DATA"
CACHE_ENV = "RESNET_LAB_CACHE"
TORCHVISION_SOURCES = ("cifar10", "cifar100")
SOURCE_NAMES = (*TORCHVISION_SOURCES, "synthetic")
# The size images of mixed sizes are brought to when the caller does not choose one: what CIFAR networks expect.
DEFAULT_IMAGE_SIZE = 32
# Held-out validation images: 10% of the training images, at most 5,000 (He et al. 2016 hold out 5k of 50k).
MAX_DEFAULT_VAL_SIZE = 5000
# A folder with more unreadable files than this fraction is refused: something is wrong with it, not one file.
DEFAULT_MAX_SKIPPED = 0.01
# The statistics of ImageNet's training images, for networks pretrained on it (torchvision's weights).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DataError(ValueError):
    """Data that cannot be used: a missing source, an empty folder, an impossible split or an unreadable image."""


@dataclass
class ImageData:
    """A dataset decoded into memory: uint8 images shaped (N, C, H, W), int64 labels, class names and statistics.

    `mean` and `std` are per-channel statistics of `train_x` on the [0, 1] scale; the loaders normalize with them
    and checkpoints store them, so a trained model is always fed images normalized the way it was trained.
    `source` is what `load_data` was given (a folder's full path: kept in memory, never recorded); `name` is what
    results record ("cifar10", "synthetic", a folder's own name), with `fingerprint`, a digest of the content.
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
    name: str = ""
    kind: str = ""
    fingerprint: str = ""
    requested_train_size: int | None = None

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
        return self.kind == "synthetic" or self.source.startswith("synthetic")

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

    def describe(self) -> dict[str, Any]:
        """What the data were and how they were split: the `data` entry of every result's provenance. No paths."""
        return {
            "name": self.name or self.source,
            "kind": self.kind,
            "fingerprint": self.fingerprint,
            "train_size": len(self.train_y),
            "val_size": len(self.val_y),
            "test_size": None if self.test_y is None else len(self.test_y),
            "val_from": self.val_from,
            "split_seed": self.split_seed,
            "requested_train_size": self.requested_train_size,
            "image_size": list(self.image_size),
            "num_classes": self.num_classes,
            "mean": list(self.mean),
            "std": list(self.std),
            "skipped": {"count": len(self.skipped), "files": self.skipped[:20]},
        }

    def __repr__(self) -> str:
        sizes = f"train={len(self.train_y)}, val={len(self.val_y)}"
        if self.test_y is not None:
            sizes += f", test={len(self.test_y)}"
        height, width = self.image_size
        name = self.name or self.source
        return f"ImageData({name!r}, {sizes}, {self.num_classes} classes, {self.channels}x{height}x{width})"


# ----------------------------------------------------------------------------------------------------------------
# Seeds: every random draw of the data pipeline has a named purpose


def mix_seed(*numbers: int) -> int:
    """A 63-bit seed derived from several integers (run seed, epoch, batch) that changes when any of them does."""
    digest = hashlib.blake2b(repr(tuple(int(n) for n in numbers)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


# purpose: (the numbers it takes after the seed, how the generator's seed is made from them). These are the
# derivations of the first version, kept exactly: committed results were measured on the validation images and
# with the shuffles they give. A new purpose should use mix_seed(seed, <a constant of its own>, *numbers).
SEED_PURPOSES = {
    "split": ((), lambda seed: seed),  # which training images are held out for validation
    "train-subset": ((), lambda seed: seed + 1),  # which training images train_size keeps
    "train-eval": ((), lambda seed: mix_seed(seed, 7)),  # the fixed training images evaluated after each epoch
    "val-subset": ((), lambda seed: mix_seed(seed, 11)),  # the fixed validation images of quick evaluations
    "synthetic": ((), lambda seed: seed),  # the images of the synthetic source
    "shuffle": (("epoch",), lambda seed, epoch: mix_seed(seed, epoch)),  # the order of an epoch's images
    "augment": (("epoch", "batch"), lambda seed, epoch, batch: mix_seed(seed, epoch, batch)),  # crops, flips...
    "classic-augment": (("epoch",), lambda seed, epoch: mix_seed(seed, epoch, 1)),  # torch's global generator
}


def derive_seed(seed: int, purpose: str, *numbers: int) -> int:
    """The generator seed for one purpose of the data pipeline, e.g. derive_seed(run_seed, "augment", epoch, batch)."""
    if purpose not in SEED_PURPOSES:
        raise ValueError(f"Unknown seed purpose {purpose!r}: choose one of {', '.join(SEED_PURPOSES)}.")
    names, derive = SEED_PURPOSES[purpose]
    if len(numbers) != len(names):
        wanted = " and ".join(names) or "no number"
        raise ValueError(f"The {purpose!r} seed takes {wanted} after the seed, got {len(numbers)} number(s).")
    return derive(int(seed), *(int(n) for n in numbers))


def seeded_generator(seed: int, purpose: str, *numbers: int) -> torch.Generator:
    """A CPU generator seeded with `derive_seed(seed, purpose, *numbers)`."""
    return torch.Generator().manual_seed(derive_seed(seed, purpose, *numbers))


# ----------------------------------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True)
class _Request:
    """The options of one load_data call."""

    val_size: int | None
    train_size: int | None
    split_seed: int
    image_size: int | None
    root: str | os.PathLike | None
    download: bool
    verbose: bool
    max_skipped: float


@dataclass
class _Found:
    """The decoded images of a source before they are split, and what the source was."""

    splits: dict[str, tuple[Tensor, Tensor]]
    classes: list[str]
    source: str
    name: str
    kind: str
    skipped: list[str] = field(default_factory=list)


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
    max_skipped: float = DEFAULT_MAX_SKIPPED,
) -> ImageData:
    """Load a dataset into memory as uint8 tensors with a deterministic validation split.

    - source: "cifar10", "cifar100", "synthetic" or an ImageFolder directory; None reads RESNET_LAB_DATA, then
      tries cifar10 in the download cache.
    - val_size: images held out from the training split for validation (seeded by `split_seed`); default 10% of
      the training images, at most 5,000. Ignored when the source has its own validation folder.
    - train_size: keep only this many training images (a seeded subset), for quick runs; the validation split
      does not change.
    - image_size: resize every image to this square size; default: keep the size when all images share one,
      else 32.
    - root: where cifar10/cifar100 are downloaded (default: RESNET_LAB_CACHE or ~/.cache/resnet_lab/data).
    - max_skipped: the largest fraction of a folder's image files that may be unreadable (they are skipped and
      reported); more is refused.
    """
    check_int("val_size", val_size, minimum=0, allow_none=True, error=DataError)
    check_int("train_size", train_size, allow_none=True, error=DataError)
    check_int("image_size", image_size, allow_none=True, error=DataError)
    check_int("split_seed", split_seed, minimum=0, error=DataError)
    if isinstance(max_skipped, bool) or not isinstance(max_skipped, (int, float)) or not 0 <= max_skipped <= 1:
        raise DataError(f"max_skipped must be a fraction between 0 and 1, got {max_skipped!r}.")
    request = _Request(val_size, train_size, split_seed, image_size, root, download, verbose, max_skipped)
    if source is None:
        return _load_default(request)
    name = source.strip().lower() if isinstance(source, str) else None
    if name == "synthetic":
        return synthetic_data(
            train_size=train_size or 2000,
            val_size=256 if val_size is None else val_size,
            image_size=image_size or DEFAULT_IMAGE_SIZE,
            seed=split_seed,
            verbose=verbose,
        )
    if name in TORCHVISION_SOURCES:
        return _assemble(_torchvision_splits(name, root, download), request)
    return _load_path(source, request)


def _load_path(source: str | os.PathLike, request: _Request) -> ImageData:
    """A folder: a torchvision download folder, or an image folder (decoded and cached by folders.py)."""
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
            found = _torchvision_splits(name, path, download=False)
            found.source = str(path)
            return _assemble(found, request)
    # Imported here: PIL and the decoding machinery are only needed for image folders.
    from resnet_lab import folders

    decoded = folders.load_folder(path, request.image_size, request.verbose)
    _check_skipped(len(decoded.skipped), decoded.file_count, request.max_skipped, path)
    resolved = path.resolve()
    found = _Found(decoded.splits, decoded.classes, str(resolved), resolved.name, "folder", list(decoded.skipped))
    return _assemble(found, request)


def _check_skipped(skipped: int, total: int, max_skipped: float, path: Path) -> None:
    """Refuse a folder with more unreadable files than the fraction `max_skipped`."""
    if skipped <= max_skipped * total:
        return
    needed = math.ceil(1000 * skipped / total) / 1000
    raise DataError(
        f"{skipped} of the {total} image files in {path} could not be read ({skipped / total:.1%}), more than "
        f"max_skipped={max_skipped} allows. Fix or remove the files listed above, or accept them with "
        f"load_data(..., max_skipped={needed})."
    )


def _load_default(request: _Request) -> ImageData:
    """No source given: RESNET_LAB_DATA, then cifar10 from the download cache (downloading it if possible)."""
    tried = []
    env = os.environ.get(DATA_ENV, "").strip()
    if env:
        return load_data(env, **_options(request))
    tried.append(f"the {DATA_ENV} environment variable (not set)")
    try:
        found = _torchvision_splits("cifar10", request.root, request.download)
    except DataError as error:
        tried.append(f"cifar10 in {_download_root(request.root)} ({error.args[0].split('. ')[0]})")
        raise DataError(
            "No training data found. Tried " + "; ".join(tried) + ". Provide data with --data DIR (or "
            f"load_data(DIR)) where DIR holds DIR/train/<class>/*.jpg or DIR/<class>/*.jpg, set {DATA_ENV}=DIR, "
            "connect to the internet so that 'cifar10' can download, or use 'synthetic' for a smoke run."
        ) from None
    return _assemble(found, request)


def _options(request: _Request) -> dict[str, Any]:
    """The keyword arguments of load_data that made `request`."""
    return {name: getattr(request, name) for name in _Request.__dataclass_fields__}


_TORCHVISION_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def _download_root(root: str | os.PathLike | None) -> Path:
    if root is not None:
        return Path(root).expanduser()
    return cache_dir() / "data"


def cache_dir() -> Path:
    """Where resnet_lab keeps downloads and decoded images: RESNET_LAB_CACHE, else ~/.cache/resnet_lab."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "resnet_lab"


def _torchvision_splits(name: str, root: str | os.PathLike | None, download: bool) -> _Found:
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
    return _Found(splits, classes, source=name, name=name, kind="torchvision")


def _assemble(found: _Found, request: _Request) -> ImageData:
    """Fingerprint the content, hold out the validation split, take the training subset, compute the statistics."""
    splits = found.splits
    if request.image_size is not None:
        # torchvision arrays (and cached folders) have one size; bring them to the requested one.
        from resnet_lab.folders import resize_batch

        splits = {name: (resize_batch(x, request.image_size), y) for name, (x, y) in splits.items()}
    fingerprint = content_fingerprint(splits, found.classes)
    train_x, train_y = splits["train"]
    val_from = "held out from train"
    if "val" in splits:
        val_x, val_y = splits["val"]
        val_from = "val folder"
    else:
        train_x, train_y, val_x, val_y = _hold_out(train_x, train_y, request.val_size, request.split_seed)
    if request.train_size is not None:
        train_x, train_y = _train_subset(train_x, train_y, request.train_size, request.split_seed, found.name)
    mean, std = channel_stats(train_x)
    test_x, test_y = splits.get("test", (None, None))
    data = ImageData(
        train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y, test_x=test_x, test_y=test_y,
        classes=found.classes, mean=mean, std=std, source=found.source, split_seed=request.split_seed,
        val_from=val_from, skipped=found.skipped, name=found.name, kind=found.kind, fingerprint=fingerprint,
        requested_train_size=request.train_size,
    )
    if request.verbose:
        print(f"data: {data!r}, fingerprint {fingerprint}", file=sys.stderr)
    return data


def content_fingerprint(splits: dict[str, tuple[Tensor, Tensor]], classes: list[str]) -> str:
    """A digest (blake2b, 128 bits, hex) of the class names and every split's decoded images and labels.

    It depends on the content only: the same images in another folder, on another machine, give the same digest.
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps(list(classes)).encode())
    for name in sorted(splits):
        x, y = splits[name]
        digest.update(f"|{name}|{tuple(x.shape)}|{x.dtype}|".encode())
        digest.update(x.contiguous().numpy().data)  # the bytes of the tensor itself, without a copy
        digest.update(y.to(torch.int64).contiguous().numpy().data)
    return digest.hexdigest()


def _hold_out(x: Tensor, y: Tensor, val_size: int | None, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Split off a seeded random validation set; the same seed gives the same split on every machine."""
    n = len(y)
    if val_size is None:
        val_size = min(MAX_DEFAULT_VAL_SIZE, round(0.1 * n))
    if val_size >= n:
        raise DataError(
            f"val_size={val_size} leaves no training images: the training split has {n}. Use a smaller --val-size."
        )
    # The split is a function of the images' order alone, and folders.py lists files in the order of their names
    # relative to the folder: a copy of the folder elsewhere gets the same split.
    order = torch.randperm(n, generator=seeded_generator(seed, "split"))
    # Sorting keeps the stored order inside each split, which makes the split easy to inspect.
    val_idx, train_idx = order[:val_size].sort().values, order[val_size:].sort().values
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def _train_subset(x: Tensor, y: Tensor, size: int, seed: int, name: str) -> tuple[Tensor, Tensor]:
    """A seeded subset of `size` training images (in stored order), for quick runs."""
    if size > len(y):
        raise DataError(
            f"train_size={size} but the training split of {name} has only {len(y)} images (after holding out "
            "the validation images). Use a smaller --train-size or leave it out."
        )
    keep = torch.randperm(len(y), generator=seeded_generator(seed, "train-subset"))[:size].sort().values
    return x[keep], y[keep]


def train_eval_subset(data: ImageData, size: int) -> tuple[Tensor, Tensor]:
    """A fixed subset of `size` training images, the same for every run seed and model: evaluated unaugmented."""
    return _fixed_subset(data.train_x, data.train_y, size, data.split_seed, "train-eval", "train_eval_size")


def val_subset(data: ImageData, size: int) -> tuple[Tensor, Tensor]:
    """A fixed random subset of `size` validation images, the same for every model: for quick evaluations.

    Both splits keep the images in stored order, which is class order for an image folder: `data.val_x[:500]` would
    be 500 airplanes. Subsets for measurements must be drawn at random, as here.
    """
    return _fixed_subset(data.val_x, data.val_y, size, data.split_seed, "val-subset", "validation subset size")


def _fixed_subset(x: Tensor, y: Tensor, size: int, seed: int, purpose: str, what: str) -> tuple[Tensor, Tensor]:
    """`size` images drawn at random (a generator seeded by the split seed and `purpose`), kept in stored order."""
    check_int(what, size, error=DataError)
    if size > len(y):
        raise DataError(f"{what}={size} but that split has only {len(y)} images: ask for at most {len(y)}.")
    keep = torch.randperm(len(y), generator=seeded_generator(seed, purpose))[:size].sort().values
    return x[keep], y[keep]


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
    generator = seeded_generator(seed, "synthetic")
    templates = F.interpolate(
        torch.rand(num_classes, 3, 4, 4, generator=generator), size=(image_size, image_size), mode="bilinear"
    )

    def make(n: int) -> tuple[Tensor, Tensor]:
        labels = torch.randint(0, num_classes, (n,), generator=generator)
        noise = torch.rand(n, 3, image_size, image_size, generator=generator)
        images = (0.6 * templates[labels] + 0.4 * noise) * 255
        return images.round().to(torch.uint8), labels

    splits = {"train": make(train_size), "val": make(val_size), "test": make(test_size)}
    classes = [f"class{i}" for i in range(num_classes)]
    mean, std = channel_stats(splits["train"][0])
    return ImageData(
        train_x=splits["train"][0], train_y=splits["train"][1], val_x=splits["val"][0], val_y=splits["val"][1],
        test_x=splits["test"][0], test_y=splits["test"][1], classes=classes, mean=mean, std=std,
        source="synthetic", split_seed=seed, val_from="generated", name="synthetic", kind="synthetic",
        fingerprint=content_fingerprint(splits, classes), requested_train_size=train_size,
    )


# ----------------------------------------------------------------------------------------------------------------
# Names that moved to folders.py, loaders.py and augment.py stay importable from here (notebooks and older code
# use them). They are looked up on first use, so that those modules can import DataError and the seeds from this
# one without a circular import.

_MOVED = {
    "IMAGE_SUFFIXES": "folders",
    "open_image": "folders",
    "read_image": "folders",
    "resize_image": "folders",
    "resize_batch": "folders",
    "BatchLoader": "loaders",
    "normalize": "loaders",
    "classic_loader": "loaders",
    "classic_transforms": "loaders",
    "crop_flip": "augment",
    "cutout_mask": "augment",
}


def __getattr__(name: str) -> Any:
    """resnet_lab.data.BatchLoader and the other moved names: looked up in their new module."""
    if name in _MOVED:
        return getattr(importlib.import_module(f"resnet_lab.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
