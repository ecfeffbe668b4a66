"""The data pipeline: load sizes, decode-once tensors, per-epoch plans, batches, shards."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan_lib.config import TrainConfig
from cyclegan_lib.data import (DataError, DomainImages, EpochPlan, ScanReport, UnpairedData,
                               load_domain, load_unpaired, make_batch, scan_folder, to_image,
                               to_tensor)
from conftest import make_images


@pytest.mark.parametrize("crop,load", [(256, 287), (128, 144), (64, 72), (32, 36)])
def test_load_size_scales_with_the_crop(crop: int, load: int) -> None:
    assert TrainConfig(image_size=crop).resolved_load_size == load
    assert TrainConfig(image_size=crop, load_size=crop).resolved_load_size == crop


def test_scan_decodes_once_at_load_size(tmp_path: Path) -> None:
    make_images(tmp_path / "A", 5, size=50)
    images, report = scan_folder(tmp_path / "A", 36, min_size=32)
    assert images.shape == (5, 3, 36, 36) and images.dtype == torch.uint8
    assert report.used == [f"img_{i:03d}.jpg" for i in range(5)]
    assert not report.skipped and not report.converted


def test_scan_resize_is_bicubic(tmp_path: Path) -> None:
    make_images(tmp_path / "A", 1, size=50)
    images, _ = scan_folder(tmp_path / "A", 36)
    ref = Image.open(tmp_path / "A" / "img_000.jpg").convert("RGB").resize((36, 36), Image.BICUBIC)
    assert torch.equal(images[0], torch.from_numpy(np.array(ref)).permute(2, 0, 1))


def test_max_images_keeps_the_first_by_name(tmp_path: Path) -> None:
    make_images(tmp_path / "A", 6)
    images, report = scan_folder(tmp_path / "A", 36, max_images=3)
    assert len(images) == 3 and report.used == ["img_000.jpg", "img_001.jpg", "img_002.jpg"]


def test_cache_round_trip_and_invalidation(tmp_path: Path) -> None:
    paths = make_images(tmp_path / "A", 3)
    cache = tmp_path / "cache"
    first = load_domain(tmp_path / "A", 36, cache_dir=cache)
    assert len(list(cache.glob("*.pt"))) == 1
    again = load_domain(tmp_path / "A", 36, cache_dir=cache)
    assert torch.equal(first.images, again.images) and again.report.used == first.report.used
    paths[0].unlink()  # a change to the folder must not be served from the cache
    changed = load_domain(tmp_path / "A", 36, cache_dir=cache)
    assert len(changed) == 2
    for f in cache.glob("*.pt"):  # a damaged cache file is rebuilt
        f.write_bytes(b"garbage")
    assert len(load_domain(tmp_path / "A", 36, cache_dir=cache)) == 2


def test_load_unpaired_layout(tiny_dataset: Path) -> None:
    data = load_unpaired(tiny_dataset, "train", 36, min_size=32, cache_dir=None)
    assert len(data.a) == len(data.b) == 8
    assert "trainA" in data.report_text() and "trainB" in data.report_text()
    with pytest.raises(DataError, match="nowhere"):
        load_unpaired(tiny_dataset / "nowhere", "train", 36, cache_dir=None)


# -- EpochPlan ---------------------------------------------------------------------------
def _plan(seed: int = 0, epoch: int = 0, samples: int = 400, n_a: int = 10, n_b: int = 7
          ) -> EpochPlan:
    return EpochPlan.draw(n_a, n_b, samples, load_size=36, crop_size=32, seed=seed, epoch=epoch)


def _fields(plan: EpochPlan) -> list[torch.Tensor]:
    return [plan.index_a, plan.index_b, plan.crop_a, plan.crop_b, plan.flip_a, plan.flip_b]


def test_plan_is_a_function_of_seed_and_epoch() -> None:
    a, b = _plan(seed=1, epoch=3), _plan(seed=1, epoch=3)
    assert all(torch.equal(x, y) for x, y in zip(_fields(a), _fields(b)))
    torch.manual_seed(123)  # the global RNG plays no part
    c = _plan(seed=1, epoch=3)
    assert all(torch.equal(x, y) for x, y in zip(_fields(a), _fields(c)))
    for other in (_plan(seed=1, epoch=4), _plan(seed=2, epoch=3)):
        assert not torch.equal(a.index_a, other.index_a) or not torch.equal(a.crop_a, other.crop_a)


def test_plan_visits_every_a_image_each_pass() -> None:
    plan = _plan(samples=25, n_a=10)
    assert len(plan) == 25
    assert sorted(plan.index_a[:10].tolist()) == list(range(10))
    assert sorted(plan.index_a[10:20].tolist()) == list(range(10))
    assert plan.index_b.min() >= 0 and plan.index_b.max() < 7


def test_crops_in_range_and_cover_all_offsets() -> None:
    plan = _plan(samples=2000)
    for crop in (plan.crop_a, plan.crop_b):
        assert crop.min() == 0 and crop.max() == 36 - 32  # every offset 0..4 used, none beyond


def test_flips_about_half() -> None:
    plan = _plan(samples=4000)
    for flip in (plan.flip_a, plan.flip_b):
        assert flip.dtype == torch.bool
        assert abs(flip.float().mean().item() - 0.5) < 0.04
    assert not torch.equal(plan.flip_a, plan.flip_b)


def test_shards_are_disjoint_and_complete() -> None:
    plan = _plan(samples=12)
    shards = [plan.shard(r, 3) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]
    for field_index in range(6):
        full = _fields(plan)[field_index]
        rebuilt = torch.stack([_fields(s)[field_index] for s in shards], dim=1).flatten(0, 1)
        assert torch.equal(rebuilt.reshape(full.shape), full)


# -- make_batch --------------------------------------------------------------------------
def _data() -> UnpairedData:
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 256, (4, 3, 36, 36), dtype=torch.uint8, generator=g)
    b = torch.randint(0, 256, (3, 3, 36, 36), dtype=torch.uint8, generator=g)
    a[0] = 0
    a[1] = 255
    return UnpairedData(DomainImages(a, ScanReport("A")), DomainImages(b, ScanReport("B")))


def test_make_batch_range_and_shape() -> None:
    data = _data()
    plan = EpochPlan.draw(4, 3, 8, 36, 32, seed=0, epoch=0)
    a, b = make_batch(data, plan, 0, 4, 32)
    assert a.shape == b.shape == (4, 3, 32, 32)
    assert a.dtype == torch.float32
    assert a.min() >= -1 and a.max() <= 1
    assert a.min() == -1 and a.max() == 1  # the all-black and all-white images are in A


def test_make_batch_applies_the_plan() -> None:
    data = _data()
    plan = EpochPlan.draw(4, 3, 16, 36, 32, seed=5, epoch=2)
    a, b = make_batch(data, plan, 8, 3, 32)
    for j in range(3):
        i = 8 + j
        y, x = plan.crop_b[i].tolist()
        ref = data.b.images[plan.index_b[i], :, y:y + 32, x:x + 32]
        if plan.flip_b[i]:
            ref = ref.flip(-1)
        assert torch.equal(b[j], ref.float() / 127.5 - 1)
        y, x = plan.crop_a[i].tolist()
        ref = data.a.images[plan.index_a[i], :, y:y + 32, x:x + 32]
        assert torch.equal(a[j], (ref.flip(-1) if plan.flip_a[i] else ref).float() / 127.5 - 1)


def test_make_batch_channels_last() -> None:
    data = _data()
    plan = EpochPlan.draw(4, 3, 4, 36, 32, seed=0, epoch=0)
    a, _ = make_batch(data, plan, 0, 2, 32, channels_last=True)
    assert a.is_contiguous(memory_format=torch.channels_last)


def test_tensor_image_round_trip() -> None:
    arr = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    t = to_tensor(Image.fromarray(arr), 32)
    assert t.shape == (1, 3, 32, 32) and t.min() >= -1 and t.max() <= 1
    assert np.array_equal(np.asarray(to_image(t)), arr)


def test_dark_16bit_image_keeps_its_brightness(tmp_path: Path) -> None:
    """A 16-bit PNG spans 0..65535 even when all its values are below 256."""
    from cyclegan_lib.data import open_rgb

    grey = (np.arange(40 * 40).reshape(40, 40) % 200).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "dark16.png")
    assert Image.open(tmp_path / "dark16.png").mode.startswith("I;16")
    rgb, note = open_rgb(tmp_path / "dark16.png")
    assert rgb.mode == "RGB" and "16-bit" in note
    assert np.asarray(rgb).max() <= 1  # 199/65535 of full scale, not 199/255


def test_a_decoder_crash_on_one_file_skips_only_that_file(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a decoder raises on one odd file, the scan lists it and goes on."""
    import struct

    import cyclegan_lib.data as data_module

    make_images(tmp_path / "A", 3)
    real = data_module.open_rgb

    def flaky(path):
        if Path(path).name == "img_001.jpg":
            raise struct.error("unpack requires a buffer of 4 bytes")
        return real(path)

    monkeypatch.setattr(data_module, "open_rgb", flaky)
    images, report = scan_folder(tmp_path / "A", 36)
    assert report.used == ["img_000.jpg", "img_002.jpg"] and len(images) == 2
    assert report.skipped == [("img_001.jpg", "unreadable image (error: unpack requires a "
                                              "buffer of 4 bytes)")]
