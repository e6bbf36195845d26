"""resnet_lab.data, folders and loaders: sources, the validation split, the decoded-image cache, the two pipelines.

The faults of issue 23 (read-only data, interrupted decoding, damaged caches, unreadable files) are in
test_data_faults.py; the augmentations themselves in test_augment.py.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
import torch

from resnet_lab import data as D
from resnet_lab import folders
from resnet_lab.augment import CropFlip, crop_flip, cutout_mask
from resnet_lab.data import DataError, load_data
from resnet_lab.loaders import BatchLoader, classic_loader, normalize


@pytest.fixture(autouse=True)
def user_cache(tmp_path_factory, monkeypatch):
    """Decoded images are cached in a fresh folder per test (beside tmp_path), never in the user's real cache."""
    folder = tmp_path_factory.mktemp("user-cache")
    monkeypatch.setenv(D.CACHE_ENV, str(folder))
    return folder

# ---------------------------------------------------------------------------------------------------------------
# Sources and splits


def test_synthetic_is_announced_and_shaped(capsys):
    data = load_data("synthetic", train_size=100, val_size=20)
    assert "SYNTHETIC DATA" in capsys.readouterr().err
    assert data.train_x.shape == (100, 3, 32, 32) and data.train_x.dtype == torch.uint8
    assert data.val_x.shape == (20, 3, 32, 32) and data.test_x.shape == (20, 3, 32, 32)
    assert data.train_y.dtype == torch.int64 and data.num_classes == 10
    assert data.is_synthetic and data.describe()["name"] == "synthetic"


def test_channel_stats_match_a_direct_computation(tiny_synthetic):
    x = tiny_synthetic.train_x.double() / 255
    mean = x.mean(dim=(0, 2, 3))
    std = x.permute(1, 0, 2, 3).reshape(3, -1).std(dim=1, unbiased=False)
    assert torch.allclose(torch.tensor(tiny_synthetic.mean, dtype=torch.float64), mean, atol=1e-12)
    assert torch.allclose(torch.tensor(tiny_synthetic.std, dtype=torch.float64), std, atol=1e-10)


def test_image_folder_with_train_and_test(tiny_image_folder, tiny_classes):
    data = load_data(tiny_image_folder, val_size=6, verbose=False)
    assert data.classes == list(tiny_classes)
    assert len(data.train_y) == 18 and len(data.val_y) == 6 and len(data.test_y) == 6
    assert data.train_x.shape[1:] == (3, 32, 32)
    assert sorted(Counter(data.test_y.tolist()).values()) == [2, 2, 2]
    assert data.val_from == "held out from train"


def test_class_folders_directly_and_default_val_size(tmp_path, write_image):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(20):
            write_image(tmp_path / name / f"{i}.jpg", seed=i)
    data = load_data(tmp_path, verbose=False)
    assert data.classes == ["a", "b"]
    assert len(data.val_y) == 4 and len(data.train_y) == 36  # 10% held out
    assert data.test_x is None
    with pytest.raises(DataError, match="no test split"):
        data.split("test")


def test_val_folder_is_used_instead_of_holding_out(tiny_image_folder, tiny_classes, write_image):
    for name in tiny_classes:
        (tiny_image_folder / "val" / name).mkdir(parents=True)
        write_image(tiny_image_folder / "val" / name / "v.png", seed=7)
    data = load_data(tiny_image_folder, verbose=False)
    assert len(data.train_y) == 24 and len(data.val_y) == 3 and data.val_from == "val folder"


def test_validation_split_is_seeded():
    a = load_data("synthetic", train_size=200, val_size=0, verbose=False)
    x, y = a.train_x, a.train_y
    split = [D._hold_out(x, y, 50, seed) for seed in (0, 0, 1)]
    assert torch.equal(split[0][2], split[1][2]) and torch.equal(split[0][3], split[1][3])
    assert not torch.equal(split[0][2], split[2][2])
    # Held-out and kept images are disjoint and together are the whole set.
    train_x, _, val_x, _ = split[0]
    assert len(train_x) == 150 and len(val_x) == 50
    rows = sorted(map(bytes, torch.cat([train_x, val_x]).flatten(1).numpy()))
    assert rows == sorted(map(bytes, x.flatten(1).numpy()))


def test_train_size_takes_a_subset_and_keeps_the_validation_split(tiny_image_folder):
    full = load_data(tiny_image_folder, val_size=6, verbose=False)
    small = load_data(tiny_image_folder, val_size=6, train_size=5, verbose=False)
    assert len(small.train_y) == 5 and torch.equal(small.val_x, full.val_x)
    with pytest.raises(DataError, match="train_size=100"):
        load_data(tiny_image_folder, val_size=6, train_size=100, verbose=False)


def test_unreadable_files_are_named_and_skipped(tiny_image_folder, capsys):
    bad = tiny_image_folder / "train" / "cat" / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    data = load_data(tiny_image_folder, val_size=2, verbose=True, max_skipped=0.05)
    err = capsys.readouterr().err
    assert "skipped 1 unreadable" in err and "train/cat/broken.jpg" in err
    assert len(data.train_y) + len(data.val_y) == 24
    assert data.skipped == ["train/cat/broken.jpg"]


def test_images_of_other_sizes_are_resized(tmp_path, capsys, write_image):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_image(tmp_path / name / "wide.png", size=(64, 48))
        write_image(tmp_path / name / "small.png", size=(20, 20), mode="L")
    data = load_data(tmp_path, val_size=1, verbose=True)
    assert data.train_x.shape[1:] == (3, 32, 32)
    assert "different sizes" in capsys.readouterr().err
    assert load_data(tmp_path, val_size=1, image_size=24, verbose=False).train_x.shape[1:] == (3, 24, 24)


def test_decoded_images_are_cached_and_rebuilt_when_stale(tiny_image_folder, monkeypatch, write_image):
    first = load_data(tiny_image_folder, verbose=False)
    assert folders.cache_file(tiny_image_folder, None).is_file()

    def fail(*args, **kwargs):
        raise AssertionError("decoded again although the cache is fresh")

    with monkeypatch.context() as m:
        m.setattr(folders, "_decode_files", fail)
        again = load_data(tiny_image_folder, verbose=False)
    assert torch.equal(first.train_x, again.train_x)
    # A new file makes the cache stale: the folder is decoded again and the new image is there.
    write_image(tiny_image_folder / "train" / "dog" / "new.png", seed=99)
    assert len(load_data(tiny_image_folder, verbose=False).train_y) == len(first.train_y) + 1


@pytest.mark.parametrize(
    "source, message",
    [
        ("no/such/folder", "neither a folder that exists"),
        ("cifar", "neither a folder that exists"),
    ],
)
def test_bad_sources_explain_what_to_pass(source, message):
    with pytest.raises(DataError, match=message):
        load_data(source)


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="No images found"):
        load_data(tmp_path)


def test_no_data_at_all_lists_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.delenv(D.DATA_ENV, raising=False)
    with pytest.raises(DataError) as info:
        load_data(None, root=tmp_path, download=False)
    message = str(info.value)
    assert "Tried" in message and D.DATA_ENV in message and "cifar10" in message and "--data" in message


def test_data_env_variable_is_the_default_source(tiny_image_folder, tiny_classes, monkeypatch):
    monkeypatch.setenv(D.DATA_ENV, str(tiny_image_folder))
    assert load_data(verbose=False).classes == list(tiny_classes)


@pytest.mark.parametrize("kwargs", [{"val_size": -1}, {"train_size": 0}, {"image_size": 2.5}])
def test_bad_sizes(kwargs):
    with pytest.raises(DataError):
        load_data("synthetic", **kwargs)


def test_read_image_converts_and_resizes(tmp_path, write_image):
    gray = write_image(tmp_path / "g.png", size=(50, 40), mode="L")
    x = folders.read_image(gray, 32)
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8
    assert torch.equal(x[0], x[1])  # grayscale copied to three channels
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="cannot be read as an image"):
        folders.read_image(tmp_path / "notes.txt")
    with pytest.raises(DataError, match="does not exist"):
        folders.read_image(tmp_path / "missing.png")


# ---------------------------------------------------------------------------------------------------------------
# The fast pipeline


def test_crop_flip_matches_padding_and_slicing():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=g)
    dy, dx = torch.randint(0, 9, (16,), generator=g), torch.randint(0, 9, (16,), generator=g)
    flip = torch.rand(16, generator=g) < 0.5
    out = crop_flip(x, dy, dx, flip, padding=4)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(16):
        expected = padded[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32]
        if flip[i]:
            expected = expected.flip(-1)
        assert torch.equal(out[i], expected)


def test_normalize():
    x = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    expected = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(normalize(x, mean, std), expected, atol=1e-5)
    assert normalize(x, mean, std, channels_last=True).is_contiguous(memory_format=torch.channels_last)


def _loader(data, **kwargs):
    options = dict(batch_size=32, train=True, seed=3) | kwargs
    return BatchLoader(data.train_x, data.train_y, data.mean, data.std, **options)


def test_batch_loader_is_deterministic_per_epoch_and_resumable(tiny_synthetic):
    a, b = _loader(tiny_synthetic), _loader(tiny_synthetic)
    assert len(a) == 4
    a.set_epoch(2)
    b.set_epoch(2)
    first = list(a)
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(first, b))
    a.set_epoch(3)
    assert not torch.equal(next(iter(a))[0], first[0][0])
    # Starting at batch 2 gives exactly the last two batches of the full epoch.
    b.set_epoch(2, start_batch=2)
    tail = list(b)
    assert len(tail) == 2 and all(torch.equal(t[0], f[0]) for t, f in zip(tail, first[2:]))


def test_batch_loader_shards_each_batch_across_processes(tiny_synthetic):
    whole = _loader(tiny_synthetic)
    parts = [_loader(tiny_synthetic, rank=r, world_size=2) for r in (0, 1)]
    for loader in (whole, *parts):
        loader.set_epoch(1)
    for (x, y), (x0, y0), (x1, y1) in zip(whole, *parts):
        assert len(y0) == len(y1) == 16
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)


def test_evaluation_loader_keeps_everything_in_order(tiny_synthetic):
    data = tiny_synthetic
    loader = BatchLoader(data.val_x, data.val_y, data.mean, data.std, batch_size=50)
    batches = list(loader)
    assert [len(y) for _, y in batches] == [50, 14]
    assert torch.equal(torch.cat([x for x, _ in batches]), normalize(data.val_x, data.mean, data.std))


def test_cutout_zeroes_a_square():
    mask = cutout_mask(torch.tensor([10, 0]), torch.tensor([10, 31]), 8, 32, 32)
    assert mask.shape == (2, 1, 32, 32)
    assert int(mask[0].sum()) == 64 and bool(mask[0, 0, 6:14, 6:14].all())
    assert int(mask[1].sum()) == 4 * 5  # rows -4..3 and columns 27..34, clipped at the corner


def test_fast_loader_with_cutout_has_zeros(tiny_synthetic):
    x, _ = next(iter(_loader(tiny_synthetic, cutout=8)))
    zero_pixels = (x == 0).all(dim=1).flatten(1).sum(1)
    assert bool((zero_pixels >= 16).all())


# ---------------------------------------------------------------------------------------------------------------
# The classic pipeline draws from the same distribution


def _position_image() -> torch.Tensor:
    """Channel 0 holds row + 1, channel 1 column + 1 (padding reads 0): crops and flips can be read back."""
    rows = torch.arange(1, 33).view(32, 1).expand(32, 32)
    cols = torch.arange(1, 33).view(1, 32).expand(32, 32)
    return torch.stack([rows, cols, torch.zeros(32, 32, dtype=torch.long)]).to(torch.uint8)


def _crop_parameters(images: torch.Tensor) -> list[tuple[int, int, bool]]:
    """(dy, dx, flipped) of each augmented copy of _position_image (values on the 0..255 scale)."""
    found = []
    for img in images.round().long():
        dy = int(img[0, 16, 16]) - 13  # output row 16 reads padded row 16 + dy, i.e. image row 16 + dy - 4
        flipped = int(img[1, 16, 17]) < int(img[1, 16, 16])
        dx = int(img[1, 16, 16]) - (12 if flipped else 13)
        found.append((dy, dx, flipped))
    return found


def test_classic_and_fast_pipelines_draw_crops_and_flips_alike():
    n = 4000
    x = _position_image().expand(n, 3, 32, 32).contiguous()
    y = torch.zeros(n, dtype=torch.int64)
    unit = ((0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255))  # normalization that leaves values on the 0..255 scale
    fast = BatchLoader(x, y, *unit, batch_size=n, train=True, seed=0)
    fast_images = next(iter(fast))[0]
    torch.manual_seed(0)
    classic = classic_loader(x, y, *unit, batch_size=500, train=True, num_workers=0)
    classic_images = torch.cat([images for images, _ in classic])
    for images in (fast_images, classic_images):
        params = _crop_parameters(images)
        assert len(set(params)) == 9 * 9 * 2, "every offset and flip combination occurs"
        for index, values in ((0, range(9)), (1, range(9)), (2, (False, True))):
            counts = Counter(p[index] for p in params)
            expected = n / len(values)
            # Uniform: each value within 6 standard deviations of its expected count (fails if e.g. shifted).
            assert set(counts) == set(values)
            assert all(abs(counts[v] - expected) < 6 * expected**0.5 for v in values), counts
    # And the crops are the same functions of their parameters: re-create the classic crops with crop_flip.
    params = torch.tensor([(dy, dx, f) for dy, dx, f in _crop_parameters(classic_images[:64])])
    remade = crop_flip(x[:64], params[:, 0], params[:, 1], params[:, 2].bool(), 4).float()
    assert torch.equal(remade, classic_images[:64].round())


def test_classic_pipeline_without_augmentation_equals_normalize(tiny_synthetic):
    data = tiny_synthetic
    loader = classic_loader(data.val_x, data.val_y, data.mean, data.std, batch_size=64, num_workers=0)
    x, y = next(iter(loader))
    assert torch.allclose(x, normalize(data.val_x, data.mean, data.std), atol=1e-5)
    assert torch.equal(y, data.val_y)


def test_batch_loader_refuses_float_images():
    with pytest.raises(TypeError, match="uint8"):
        BatchLoader(torch.zeros(4, 3, 8, 8), torch.zeros(4, dtype=torch.long), (0,) * 3, (1,) * 3, batch_size=2)


def test_batch_loader_needs_one_full_training_batch(tiny_synthetic):
    with pytest.raises(DataError, match="fewer than one batch"):
        _loader(tiny_synthetic, batch_size=1024)


def test_mix_seed_changes_with_every_part():
    seeds = {D.mix_seed(0, 0), D.mix_seed(0, 1), D.mix_seed(1, 0), D.mix_seed(0, 0, 0)}
    assert len(seeds) == 4 and all(0 <= s < 2**63 for s in seeds)
    assert D.mix_seed(5, 7) == D.mix_seed(5, 7)


def test_cache_file_is_not_trusted_when_damaged(tiny_image_folder):
    load_data(tiny_image_folder, verbose=False)
    cache = folders.cache_file(tiny_image_folder, None)
    cache.write_bytes(cache.read_bytes()[:100])
    assert len(load_data(tiny_image_folder, verbose=False).train_y) > 0
    assert os.path.getsize(cache) > 100  # rebuilt


# ---------------------------------------------------------------------------------------------------------------
# The named seeds: the derivations of the first version, pinned (committed results depend on them)


def test_seed_purposes_keep_the_first_versions_derivations():
    assert D.derive_seed(5, "split") == 5 and D.derive_seed(5, "train-subset") == 6
    assert D.derive_seed(5, "train-eval") == D.mix_seed(5, 7)
    assert D.derive_seed(5, "shuffle", 3) == D.mix_seed(5, 3)
    assert D.derive_seed(5, "augment", 3, 9) == D.mix_seed(5, 3, 9)
    assert D.derive_seed(5, "classic-augment", 3) == D.mix_seed(5, 3, 1)
    with pytest.raises(ValueError, match="Unknown seed purpose 'crops'"):
        D.derive_seed(0, "crops")
    with pytest.raises(ValueError, match="takes epoch and batch"):
        D.derive_seed(0, "augment", 1)


def test_split_subsets_shuffles_and_crops_are_those_of_the_first_version():
    """Values recorded with the code that produced results/: the validation images must never change."""
    n = 100
    x = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 2, 2).contiguous()
    _, train_y, _, val_y = D._hold_out(x, torch.arange(n), 10, 0)
    assert val_y.tolist() == [19, 37, 44, 53, 69, 71, 90, 91, 93, 95]
    assert train_y[D._train_subset(x[:90], torch.arange(90), 5, 0, "x")[1]].tolist() == [36, 66, 74, 79, 94]
    data = D.ImageData(x[:90], train_y, x[:10], val_y, ["a"], (0.0,) * 3, (1.0,) * 3, "test")
    assert D.train_eval_subset(data, 5)[1].tolist() == [9, 16, 36, 40, 41]
    loader = BatchLoader(torch.zeros(16, 3, 32, 32, dtype=torch.uint8), torch.arange(16), (0,) * 3, (1,) * 3,
                         batch_size=8, augment=CropFlip(cutout=4), seed=0)
    loader.set_epoch(1)
    assert [y.tolist() for _, y in loader] == [[4, 7, 13, 9, 10, 6, 11, 0], [14, 8, 1, 15, 2, 12, 5, 3]]
    params = {k: v.tolist() for k, v in loader._draw(1, 8).items()}
    assert params == {
        "dy": [6, 6, 2, 6, 0, 4, 0, 6],
        "dx": [4, 6, 1, 3, 0, 4, 1, 7],
        "flip": [False, True, False, True, False, True, True, False],
        "cy": [14, 17, 22, 22, 24, 7, 9, 19],
        "cx": [24, 19, 31, 17, 7, 27, 19, 23],
    }


def test_train_eval_subset_is_fixed_and_checked(tiny_synthetic):
    x, y = D.train_eval_subset(tiny_synthetic, 20)
    assert len(y) == 20 and torch.equal(D.train_eval_subset(tiny_synthetic, 20)[0], x)
    with pytest.raises(DataError, match="only 128"):
        D.train_eval_subset(tiny_synthetic, 129)
    with pytest.raises(DataError, match="train_eval_size"):
        D.train_eval_subset(tiny_synthetic, 0)


def test_val_subset_is_fixed_checked_and_mixes_the_classes():
    # A validation split stored in class order, as an image folder gives it: 10 images of each of 4 classes.
    y = torch.arange(4).repeat_interleave(10)
    x = torch.zeros(40, 3, 2, 2, dtype=torch.uint8)
    data = D.ImageData(x, y, x, y, ["a", "b", "c", "d"], (0.0,) * 3, (1.0,) * 3, "test")
    assert data.val_y[:10].unique().tolist() == [0]  # the trap that val_subset avoids
    sub_x, sub_y = D.val_subset(data, 10)
    assert len(sub_y) == 10 and len(sub_y.unique()) > 1
    assert torch.equal(D.val_subset(data, 10)[1], sub_y)  # fixed
    with pytest.raises(DataError, match="only 40"):
        D.val_subset(data, 41)


def test_describe_records_what_the_data_were_without_paths(tiny_image_folder):
    record = load_data(tiny_image_folder, val_size=6, train_size=10, verbose=False).describe()
    assert record["name"] == "tiny" and record["kind"] == "folder" and len(record["fingerprint"]) == 32
    assert record["train_size"] == 10 and record["requested_train_size"] == 10 and record["val_size"] == 6
    assert record["skipped"] == {"count": 0, "files": []}
    assert "source" not in record and str(tiny_image_folder) not in str(record)


def test_moved_names_are_still_importable_from_data():
    from resnet_lab import augment, loaders
    from resnet_lab.data import BatchLoader as FromData
    from resnet_lab.data import classic_loader as classic_from_data
    from resnet_lab.data import read_image, resize_batch

    assert FromData is loaders.BatchLoader and classic_from_data is loaders.classic_loader
    assert read_image is folders.read_image and resize_batch is folders.resize_batch
    assert D.crop_flip is augment.crop_flip and D.normalize is loaders.normalize
    with pytest.raises(AttributeError, match="no_such_name"):
        D.no_such_name  # noqa: B018
    assert D.IMAGENET_MEAN == (0.485, 0.456, 0.406) and D.IMAGENET_STD == (0.229, 0.224, 0.225)
