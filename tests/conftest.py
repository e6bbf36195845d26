"""Shared fixtures: tiny datasets made on the fly, and one compute thread for training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

TINY_CLASSES = ("cat", "dog", "ship")


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Decoded-image caches and downloads of the tests go to a temporary folder, never into the user's cache."""
    patch = pytest.MonkeyPatch()
    patch.setenv("RESNET_LAB_CACHE", str(tmp_path_factory.mktemp("resnet_lab_cache")))
    yield
    patch.undo()


@pytest.fixture
def one_thread():
    """Run with one intra-op thread: on a small shared CPU, two threads that wait for each other are far slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _write_image(path: Path, size=(32, 32), seed: int = 0, mode: str = "RGB") -> Path:
    """A random image file (format from the suffix)."""
    rng = np.random.default_rng(seed)
    width, height = size
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path)
    return path


@pytest.fixture
def write_image():
    """write_image(path, size=(32, 32), seed=0, mode="RGB"): a random image file, format from the suffix."""
    return _write_image


@pytest.fixture
def tiny_classes() -> tuple[str, ...]:
    """The class names of tiny_image_folder, in order."""
    return TINY_CLASSES


@pytest.fixture
def tiny_image_folder(tmp_path) -> Path:
    """An ImageFolder tree DIR/train/<class>/*.png (three classes, eight 32x32 images each) and DIR/test/."""
    root = tmp_path / "tiny"
    for split, count in (("train", 8), ("test", 2)):
        for c, name in enumerate(TINY_CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                _write_image(folder / f"{i:03d}.png", seed=1000 * c + i + (500 if split == "test" else 0))
    return root


@pytest.fixture
def tiny_synthetic():
    """128 training and 64 validation images of the synthetic source (no printing)."""
    from resnet_lab.data import load_data

    return load_data("synthetic", train_size=128, val_size=64, verbose=False)
