"""Batched data augmentation: random changes to whole batches of uint8 images, done on the device.

Every augmentation has the same two halves:

- `draw(generator, n, height, width)` draws the random parameters of n images on the CPU from a seeded
  generator, so that the same seed gives the same images on every machine and every device;
- `apply(images, params)` changes a batch of uint8 images (N, C, H, W) with those parameters, with a few tensor
  operations for the whole batch, on the images' device. `after_normalize(x, params)` does what must happen to
  the normalized float images (cutout paints its square with 0, i.e. with the mean colour).

Every parameter tensor has one entry per image, so a batch can be cut into slices (one per process) with its
parameters. The augmentations:

- `CropFlip(padding=4, flip=True, cutout=0)`: the CIFAR augmentation of He et al. 2016: pad by 4 pixels, cut a
  random crop of the original size, mirror half of the images; optionally cutout (DeVries & Taylor 2017);
- `ResizedCrop(size, scale, ratio, flip)`: the random-resized crops of Szegedy et al. 2015 used for ImageNet:
  a box of random area and shape, scaled to `size`;
- `NoAugment()`: the images as they are.

`make_augment(name, ...)` builds one from its name: "crop-flip", "resized-crop" or "none".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from resnet_lab.checks import check_int

AUGMENTATIONS = ("crop-flip", "none", "resized-crop")
# Random-resized crops draw this many boxes per image and keep the first that fits, as torchvision does.
RESIZED_CROP_TRIES = 10


class Augment:
    """The interface of an augmentation; this base class changes nothing."""

    def draw(self, generator: torch.Generator, n: int, height: int, width: int) -> dict[str, Tensor]:
        """The random parameters of n images of size height x width, one tensor entry per image."""
        return {}

    def apply(self, images: Tensor, params: dict[str, Tensor]) -> Tensor:
        """The augmented uint8 images (N, C, H', W')."""
        return images

    def after_normalize(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """The part of the augmentation that acts on normalized float images (default: nothing)."""
        return x


@dataclass(frozen=True)
class NoAugment(Augment):
    """No augmentation: training batches are shuffled but not changed."""


@dataclass(frozen=True)
class CropFlip(Augment):
    """Random crops of zero-padded images and horizontal flips (+ cutout squares of `cutout` pixels)."""

    padding: int = 4
    flip: bool = True
    cutout: int = 0

    def __post_init__(self) -> None:
        check_int("crop padding", self.padding, minimum=0)
        check_int("cutout", self.cutout, minimum=0)

    def draw(self, generator: torch.Generator, n: int, height: int, width: int) -> dict[str, Tensor]:
        """Crop offsets (0..2 padding), flips and cutout centres, drawn in a fixed order (results depend on it)."""
        span = 2 * self.padding + 1
        params = {
            "dy": torch.randint(0, span, (n,), generator=generator),
            "dx": torch.randint(0, span, (n,), generator=generator),
            "flip": torch.rand(n, generator=generator) < 0.5 if self.flip else torch.zeros(n, dtype=torch.bool),
        }
        if self.cutout:
            params["cy"] = torch.randint(0, height, (n,), generator=generator)
            params["cx"] = torch.randint(0, width, (n,), generator=generator)
        return params

    def apply(self, images: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Crop and flip the batch."""
        return crop_flip(images, params["dy"], params["dx"], params["flip"], self.padding)

    def after_normalize(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Cutout: zero a square of the normalized images (the mean colour), as DeVries & Taylor do."""
        if not self.cutout:
            return x
        _, _, height, width = x.shape
        return x.masked_fill(cutout_mask(params["cy"], params["cx"], self.cutout, height, width), 0.0)


@dataclass(frozen=True)
class ResizedCrop(Augment):
    """Random-resized crops: a box of `scale` times the image's area and width/height `ratio`, scaled to `size`."""

    size: int | tuple[int, int]
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True

    def __post_init__(self) -> None:
        for side in (self.size,) if isinstance(self.size, int) else self.size:
            check_int("resized-crop size", side)
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high <= 1, got {self.scale!r}.")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio must be (low, high) with 0 < low <= high, got {self.ratio!r}.")

    def draw(self, generator: torch.Generator, n: int, height: int, width: int) -> dict[str, Tensor]:
        """Boxes (top, left, height, width) and flips; a box that fits in none of the tries is the central crop."""
        area = height * width
        shape = (n, RESIZED_CROP_TRIES)
        scale = torch.empty(shape).uniform_(*self.scale, generator=generator)
        # The ratio is drawn uniformly on a log scale, so that 3/4 and 4/3 are equally likely.
        ratio = torch.empty(shape).uniform_(math.log(self.ratio[0]), math.log(self.ratio[1]), generator=generator).exp()
        box_w = (area * scale * ratio).sqrt().round()
        box_h = (area * scale / ratio).sqrt().round()
        fits = (box_w >= 1) & (box_w <= width) & (box_h >= 1) & (box_h <= height)
        first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # the first try that fits (0 when none does)
        box_w, box_h = box_w.gather(1, first).squeeze(1), box_h.gather(1, first).squeeze(1)
        found = fits.any(dim=1)
        centre_h, centre_w = _central_box(height, width, self.ratio)
        box_w, box_h = torch.where(found, box_w, float(centre_w)), torch.where(found, box_h, float(centre_h))
        top, left = _place(generator, found, box_h, height), _place(generator, found, box_w, width)
        flip = torch.rand(n, generator=generator) < 0.5 if self.flip else torch.zeros(n, dtype=torch.bool)
        return {"top": top, "left": left, "height": box_h, "width": box_w, "flip": flip}

    def apply(self, images: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Cut every box and scale it to `size` (bilinear, averaging several samples per pixel when shrinking)."""
        from torchvision.ops import roi_align

        index = torch.arange(len(images), device=images.device, dtype=torch.float32)
        top, left = params["top"].float(), params["left"].float()
        # roi_align takes one box per row: (image index, x1, y1, x2, y2), in pixel-edge coordinates with aligned=True.
        boxes = torch.stack([index, left, top, left + params["width"].float(), top + params["height"].float()], 1)
        size = (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)
        # sampling_ratio=-1: as many samples per output pixel as input pixels fall in it, so shrinking averages.
        out = roi_align(images.float(), boxes, output_size=size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)
        out = torch.where(params["flip"][:, None, None, None], out.flip(-1), out)
        return out.round_().clamp_(0, 255).to(torch.uint8)


def _place(generator: torch.Generator, found: Tensor, box: Tensor, side: int) -> Tensor:
    """Random offsets of boxes `box` pixels long within `side` pixels; the central offset where not `found`."""
    offset = (torch.rand(len(box), generator=generator) * (side - box + 1)).floor()
    return torch.where(found, offset, (side - box) // 2)


def _central_box(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int]:
    """The largest central box whose shape is within `ratio` (torchvision's fallback)."""
    shape = width / height
    if shape < ratio[0]:
        return round(width / ratio[0]), width
    if shape > ratio[1]:
        return height, round(height * ratio[1])
    return height, width


def make_augment(
    name: str,
    *,
    crop_padding: int = 4,
    flip: bool = True,
    cutout: int = 0,
    image_size: int | tuple[int, int] | None = None,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Augment:
    """The augmentation called `name` ("crop-flip", "resized-crop" or "none") with the options that apply to it.

    crop_padding and cutout belong to crop-flip; image_size (the output size), scale and ratio to resized-crop;
    flip to both. "none" ignores them all, except cutout, which no other augmentation has.
    """
    if name == "crop-flip":
        return CropFlip(crop_padding, flip, cutout)
    if cutout:
        raise ValueError(f"cutout is part of the crop-flip augmentation, not of {name!r}: set cutout=0.")
    if name == "none":
        return NoAugment()
    if name == "resized-crop":
        if image_size is None:
            raise ValueError("The resized-crop augmentation needs image_size, the size of the crops it outputs.")
        return ResizedCrop(image_size, tuple(scale), tuple(ratio), flip)
    raise ValueError(f"Unknown augmentation {name!r}: choose one of {', '.join(AUGMENTATIONS)}.")


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
