"""resnet_lab.augment: the batched augmentations and how BatchLoader uses them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from resnet_lab.augment import CropFlip, NoAugment, ResizedCrop, make_augment
from resnet_lab.loaders import BatchLoader, normalize


def _images(n: int = 8, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _draw(augment, n=8, height=32, width=32, seed=0):
    return augment.draw(torch.Generator().manual_seed(seed), n, height, width)


# ---------------------------------------------------------------------------------------------------------------
# make_augment


def test_make_augment_maps_names_to_augmentations():
    assert make_augment("crop-flip", crop_padding=2, flip=False, cutout=8) == CropFlip(2, False, 8)
    assert make_augment("none", crop_padding=4, flip=True) == NoAugment()
    assert make_augment("resized-crop", image_size=24, flip=False) == ResizedCrop(24, flip=False)


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("crop", {}, "Unknown augmentation 'crop'"),
        ("resized-crop", {}, "needs image_size"),
        ("none", {"cutout": 8}, "cutout is part of the crop-flip"),
        ("crop-flip", {"crop_padding": -1}, "crop padding"),
        ("resized-crop", {"image_size": 24, "scale": (0.5, 0.1)}, "scale"),
        ("resized-crop", {"image_size": 0}, "resized-crop size"),
    ],
)
def test_make_augment_refuses_what_it_cannot_do(name, options, message):
    with pytest.raises(ValueError, match=message):
        make_augment(name, **options)


# ---------------------------------------------------------------------------------------------------------------
# CropFlip and NoAugment


def test_crop_flip_draws_one_value_per_image_and_cutout_only_when_asked():
    params = _draw(CropFlip(padding=2))
    assert set(params) == {"dy", "dx", "flip"} and all(len(v) == 8 for v in params.values())
    assert int(params["dy"].max()) <= 4 and int(params["dx"].min()) >= 0
    assert set(_draw(CropFlip(cutout=4))) == {"dy", "dx", "flip", "cy", "cx"}
    assert not _draw(CropFlip(flip=False))["flip"].any()


def test_no_augment_changes_nothing():
    x = _images()
    augment = NoAugment()
    assert _draw(augment) == {} and torch.equal(augment.apply(x, {}), x)


def test_loader_with_no_augment_shuffles_but_keeps_the_images():
    x, y = _images(20), torch.arange(20)
    loader = BatchLoader(x, y, (0, 0, 0), (1, 1, 1), batch_size=8, augment=NoAugment(), seed=1)
    batches = list(loader)
    assert len(batches) == 2  # the last incomplete batch is dropped, as in training
    for images, labels in batches:
        assert torch.equal(images, normalize(x[labels], (0, 0, 0), (1, 1, 1)))
    assert torch.cat([labels for _, labels in batches]).tolist() != list(range(16))


def test_augment_keyword_gives_the_images_of_the_old_keywords():
    x, y = _images(32), torch.arange(32)
    common = dict(batch_size=16, seed=3)
    new = BatchLoader(x, y, (0.5,) * 3, (0.2,) * 3, augment=make_augment("crop-flip", cutout=6), **common)
    old = BatchLoader(x, y, (0.5,) * 3, (0.2,) * 3, train=True, crop_padding=4, cutout=6, **common)
    for loader in (new, old):
        loader.set_epoch(2)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(new, old))


def test_loader_refuses_two_ways_of_saying_the_augmentation():
    x, y = _images(16), torch.arange(16)
    with pytest.raises(TypeError, match="either"):
        BatchLoader(x, y, (0,) * 3, (1,) * 3, batch_size=8, augment=CropFlip(), crop_padding=2)
    with pytest.raises(ValueError, match="never augmented"):
        BatchLoader(x, y, (0,) * 3, (1,) * 3, batch_size=8, augment=CropFlip(), train=False)


# ---------------------------------------------------------------------------------------------------------------
# ResizedCrop


def test_resized_crop_of_the_whole_image_is_the_image():
    x = _images()
    augment = ResizedCrop(32, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    params = _draw(augment)
    assert params["top"].eq(0).all() and params["height"].eq(32).all()
    assert torch.equal(augment.apply(x, params), x)


def test_resized_crop_at_the_output_size_is_a_plain_crop_and_flips_mirror():
    x = _images()
    augment = ResizedCrop(16, scale=(0.25, 0.25), ratio=(1.0, 1.0), flip=True)
    params = _draw(augment, seed=4)
    out = augment.apply(x, params)
    assert out.shape == (8, 3, 16, 16) and out.dtype == torch.uint8
    assert 0 < int(params["flip"].sum()) < 8
    for i in range(8):
        top, left = int(params["top"][i]), int(params["left"][i])
        expected = x[i, :, top : top + 16, left : left + 16]
        assert torch.equal(out[i], expected.flip(-1) if params["flip"][i] else expected)


def test_resized_crop_averages_when_it_shrinks():
    x = _images(4) // 4 * 4  # multiples of 4: averages of 2x2 blocks are whole numbers
    augment = ResizedCrop(16, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    out = augment.apply(x, _draw(augment, n=4))
    assert torch.equal(out, F.avg_pool2d(x.float(), 2).round().to(torch.uint8))


def test_resized_crop_boxes_fit_and_follow_scale_and_ratio():
    augment = ResizedCrop(32, scale=(0.2, 0.6), ratio=(0.5, 2.0))
    p = _draw(augment, n=2000, height=40, width=30)
    assert (p["top"] >= 0).all() and (p["top"] + p["height"] <= 40).all()
    assert (p["left"] >= 0).all() and (p["left"] + p["width"] <= 30).all()
    area = p["height"] * p["width"] / (40 * 30)
    shape = p["width"] / p["height"]
    assert area.min() > 0.17 and area.max() < 0.64  # the drawn scale, up to rounding to whole pixels
    assert shape.min() > 0.45 and shape.max() < 2.2
    assert abs(float(area.mean()) - 0.4) < 0.02  # uniform in scale


def test_resized_crop_matches_torchvision_distribution():
    from torchvision.transforms import RandomResizedCrop

    n = 3000
    ours = _draw(ResizedCrop(32), n=n)
    torch.manual_seed(0)
    theirs = torch.tensor([RandomResizedCrop.get_params(torch.zeros(1, 32, 32), [0.08, 1.0], [3 / 4, 4 / 3])
                           for _ in range(n)], dtype=torch.float32)  # (top, left, height, width)
    for index, name in enumerate(("top", "left", "height", "width")):
        assert abs(float(ours[name].mean()) - float(theirs[:, index].mean())) < 1.0, name


def test_resized_crop_falls_back_to_the_central_box():
    augment = ResizedCrop(8, scale=(1.0, 1.0), ratio=(4.0, 5.0), flip=False)  # no box of full area is that wide
    p = _draw(augment, n=3)
    assert p["height"].eq(8).all() and p["width"].eq(32).all() and p["top"].eq(12).all() and p["left"].eq(0).all()


def test_loader_with_resized_crop_is_seeded_and_shards(tiny_synthetic):
    data = tiny_synthetic
    augment = make_augment("resized-crop", image_size=24)

    def loader(**kwargs):
        return BatchLoader(data.train_x, data.train_y, data.mean, data.std, batch_size=32, augment=augment,
                           seed=5, **kwargs)

    whole, again = list(loader()), list(loader())
    assert whole[0][0].shape == (32, 3, 24, 24)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(whole, again))
    parts = [list(loader(rank=r, world_size=2)) for r in (0, 1)]
    for (x, _), (x0, _), (x1, _) in zip(whole, *parts):
        assert torch.equal(torch.cat([x0, x1]), x)
