"""Feeding images to a network: normalization, the fast batch loader, and the classic DataLoader pipeline.

`BatchLoader`, the fast path, keeps the whole uint8 dataset on the device and makes every batch with a few tensor
operations: a seeded shuffle per epoch, an augmentation of the whole batch (augment.py), normalization with the
training split's statistics. `classic_loader` is the textbook `Dataset` + torchvision transforms + `DataLoader`
pipeline, kept for teaching and for comparison: it draws augmented images from the same distribution, one PIL
image at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from PIL import Image
from torch import Tensor

from resnet_lab.augment import Augment, CropFlip, cutout_mask
from resnet_lab.checks import check_int
from resnet_lab.data import DataError, seeded_generator


def normalize(x: Tensor, mean: Sequence[float], std: Sequence[float], channels_last: bool = False) -> Tensor:
    """uint8 images -> float32 (x / 255 - mean) / std, on x's device."""
    scale = torch.tensor([1 / (255 * s) for s in std], device=x.device).view(1, -1, 1, 1)
    shift = torch.tensor([m / s for m, s in zip(mean, std)], device=x.device).view(1, -1, 1, 1)
    out = torch.addcmul(-shift, x.float(), scale)  # x / (255 s) - m / s, in one pass
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def _resolve_augment(
    augment: Augment | None, train: bool | None, crop_padding: int | None, flip: bool | None, cutout: int | None
) -> Augment | None:
    """The augmentation of a loader; None for evaluation (every image once, in order, unchanged).

    The keywords of earlier versions still work: train=True with crop_padding/flip/cutout means CropFlip.
    """
    legacy = {k: v for k, v in (("padding", crop_padding), ("flip", flip), ("cutout", cutout)) if v is not None}
    if augment is not None:
        if legacy:
            raise TypeError("Give the augmentation either as augment=... or as crop_padding/flip/cutout, not both.")
        if train is False:
            raise ValueError("train=False means evaluation batches, which are never augmented: leave out augment.")
        return augment
    return CropFlip(**legacy) if train else None


class BatchLoader:
    """Batches of normalized float images from uint8 tensors, augmented on whole batches on the device.

    With an `augment` (augment.py; train=True alone means CropFlip()): a new seeded shuffle every epoch, the
    augmentation, and the last incomplete batch dropped. Without: the images in order, unchanged (evaluation).
    The randomness of batch b of epoch e comes from generators seeded with (seed, e) and (seed, e, b) alone, so a
    run resumed at any batch sees exactly the images an uninterrupted run sees, whatever the number of processes.

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
        augment: Augment | None = None,
        train: bool | None = None,
        crop_padding: int | None = None,
        flip: bool | None = None,
        cutout: int | None = None,
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
        check_int("world_size", world_size)
        check_int("rank", rank, minimum=0)
        check_int("batch_size", batch_size)
        if batch_size % world_size or rank >= world_size:
            raise ValueError(
                f"batch_size must be a multiple of the {world_size} processes and rank below it, got batch_size="
                f"{batch_size}, rank={rank}."
            )
        self.augment = _resolve_augment(augment, train, crop_padding, flip, cutout)
        self.train = self.augment is not None
        if self.train and len(x) < batch_size:
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
            order = torch.randperm(n, generator=seeded_generator(self.seed, "shuffle", self.epoch))
        else:
            order = torch.arange(n)
        for b in range(self.start_batch, len(self)):
            index = order[b * self.batch_size : (b + 1) * self.batch_size]
            # Drawn for the whole global batch, then sliced: every process count sees the same augmented images.
            params = self._draw(b, len(index)) if self.augment is not None else None
            if self.world_size > 1:
                share = -(-len(index) // self.world_size)
                part = slice(self.rank * share, (self.rank + 1) * share)
                index = index[part]
                params = {k: v[part] for k, v in params.items()} if params is not None else None
            yield self._batch(index, params)
        self.start_batch = 0

    def _draw(self, batch: int, n: int) -> dict[str, Tensor]:
        """The augmentation parameters of one global batch, drawn on the CPU from its own generator."""
        _, _, height, width = self.x.shape
        generator = seeded_generator(self.seed, "augment", self.epoch, batch)
        return self.augment.draw(generator, n, height, width)

    def _batch(self, index: Tensor, params: dict[str, Tensor] | None) -> tuple[Tensor, Tensor]:
        index = index.to(self.device)
        images, labels = self.x[index], self.y[index]
        if params is not None:
            params = {k: v.to(self.device, non_blocking=True) for k, v in params.items()}
            images = self.augment.apply(images, params)
        x = normalize(images, self.mean, self.std, self.channels_last)
        if params is not None:
            x = self.augment.after_normalize(x, params)
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
    mean: Sequence[float],
    std: Sequence[float],
    *,
    train: bool,
    crop_padding: int = 4,
    flip: bool = True,
    cutout: int = 0,
    image_size: int = 32,
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
