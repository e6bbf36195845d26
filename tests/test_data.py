"""resnet_lab.data: sources, the validation split, the decoded-image cache, and the two augmentation pipelines."""

from __future__ import annotations

import os
from collections import Counter

import pytest
import torch

from resnet_lab import data as D
from resnet_lab.data import BatchLoader, DataError, load_data

# ---------------------------------------------------------------------------------------------------------------
# Sources and splits


def test_synthetic_is_announced_and_shaped(capsys):
    data = load_data("synthetic", train_size=100, val_size=20)
    assert "SYNTHETIC DATA" in capsys.readouterr().err
    assert data.train_x.shape == (100, 3, 32, 32) and data.train_x.dtype == torch.uint8
    assert data.val_x.shape == (20, 3, 32, 32) and data.test_x.shape == (20, 3, 32, 32)
    assert data.train_y.dtype == torch.int64 and data.num_classes == 10
    assert data.is_synthetic and data.describe()["source"] == "synthetic"


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
    data = load_data(tiny_image_folder, val_size=2, verbose=True)
    err = capsys.readouterr().err
    assert "skipped 1 unreadable" in err and "broken.jpg" in err
    assert len(data.train_y) + len(data.val_y) == 24
    assert any("broken.jpg" in s for s in data.skipped)


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
    assert (tiny_image_folder / ".resnet_lab_cache_native.pt").is_file()

    def fail(*args, **kwargs):
        raise AssertionError("decoded again although the cache is fresh")

    with monkeypatch.context() as m:
        m.setattr(D, "_decode_files", fail)
        again = load_data(tiny_image_folder, verbose=False)
    assert torch.equal(first.train_x, again.train_x)
    # A new file makes the cache stale: the folder is decoded again and the new image is there.
    write_image(tiny_image_folder / "train" / "dog" / "new.png", seed=99)
    assert len(load_data(tiny_image_folder, verbose=False).train_y) == len(first.train_y) + 1


def test_cache_falls_back_to_the_user_cache_folder(tiny_image_folder, tmp_path, monkeypatch):
    monkeypatch.setenv(D.CACHE_ENV, str(tmp_path / "usercache"))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder would be: writing beneath it fails")
    real = D._cache_paths
    monkeypatch.setattr(D, "_cache_paths", lambda path, size: [blocker / "cache.pt", real(path, size)[1]])
    load_data(tiny_image_folder, verbose=False)
    assert list((tmp_path / "usercache" / "decoded").glob("*.pt"))


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
    x = D.read_image(gray, 32)
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8
    assert torch.equal(x[0], x[1])  # grayscale copied to three channels
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="cannot be read as an image"):
        D.read_image(tmp_path / "notes.txt")
    with pytest.raises(DataError, match="does not exist"):
        D.read_image(tmp_path / "missing.png")


# ---------------------------------------------------------------------------------------------------------------
# The fast pipeline


def test_crop_flip_matches_padding_and_slicing():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=g)
    dy, dx = torch.randint(0, 9, (16,), generator=g), torch.randint(0, 9, (16,), generator=g)
    flip = torch.rand(16, generator=g) < 0.5
    out = D.crop_flip(x, dy, dx, flip, padding=4)
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
    assert torch.allclose(D.normalize(x, mean, std), expected, atol=1e-5)
    assert D.normalize(x, mean, std, channels_last=True).is_contiguous(memory_format=torch.channels_last)


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
    assert torch.equal(torch.cat([x for x, _ in batches]), D.normalize(data.val_x, data.mean, data.std))


def test_cutout_zeroes_a_square():
    mask = D.cutout_mask(torch.tensor([10, 0]), torch.tensor([10, 31]), 8, 32, 32)
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
    classic = D.classic_loader(x, y, *unit, batch_size=500, train=True, num_workers=0)
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
    remade = D.crop_flip(x[:64], params[:, 0], params[:, 1], params[:, 2].bool(), 4).float()
    assert torch.equal(remade, classic_images[:64].round())


def test_classic_pipeline_without_augmentation_equals_normalize(tiny_synthetic):
    data = tiny_synthetic
    loader = D.classic_loader(data.val_x, data.val_y, data.mean, data.std, batch_size=64, num_workers=0)
    x, y = next(iter(loader))
    assert torch.allclose(x, D.normalize(data.val_x, data.mean, data.std), atol=1e-5)
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
    cache = tiny_image_folder / ".resnet_lab_cache_native.pt"
    cache.write_bytes(cache.read_bytes()[:100])
    assert len(load_data(tiny_image_folder, verbose=False).train_y) > 0
    assert os.path.getsize(cache) > 100  # rebuilt
