"""Face finding for user photos, square crops, and the detector rates used by evaluation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan_lib.data import load_domain, open_rgb
from cyclegan_lib.paths import anime_cascade as anime_cascade_path
from cyclegan_lib.faces import (Box, center_square, crop_face,
                                detection_rate, find_face, human_cascade_path,
                                square_crop_box)


def _photo(faces_root: Path, rel: str) -> Image.Image:
    path = faces_root / rel
    if not path.is_file():
        pytest.fail(f"test photo missing: {path} (set CYCLEGAN_FACES)")
    return open_rgb(path)[0]


def _no_face(size: tuple[int, int] = (300, 220), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    grad = np.linspace(0, 255, size[0])[None, :, None] * np.ones((size[1], 1, 3))
    arr = np.clip(grad * 0.6 + rng.normal(0, 25, (size[1], size[0], 3)), 0, 255)
    return Image.fromarray(arr.astype(np.uint8))


@pytest.mark.parametrize("rel", ["expressive/laughing_man.jpg", "facial_hair/selfie_beard.jpg",
                                 "consistency/obama_a.jpg"])
def test_find_face_on_real_photos(faces_root: Path, rel: str) -> None:
    image = _photo(faces_root, rel)
    box = find_face(image)
    assert box is not None, rel
    assert box.w >= min(image.size) // 5  # the default minimum size
    crop, found = crop_face(image)
    assert found is not None and crop is not None and crop.width == crop.height
    assert crop.width > box.w  # margin around the face


def test_face_cut_by_the_border_is_found_by_the_padded_pass(faces_root: Path) -> None:
    image = _photo(faces_root, "angled/profile_woman_updo.jpg")
    box = find_face(image)
    assert box is not None and box.how == "frontal-padded"
    assert box.x < 0  # the face extends past the left edge; the crop still stays inside
    left, top, right, bottom = square_crop_box(box, image.width, image.height)
    assert 0 <= left and right <= image.width and 0 <= top and bottom <= image.height


def test_tilted_face_box_is_mapped_back_to_the_photo(faces_root: Path) -> None:
    image = _photo(faces_root, "pool/london_045_smiling.jpg")
    upright = find_face(image)
    assert upright is not None and upright.how == "frontal"
    angle = 30.0
    tilted = image.rotate(angle, resample=Image.BICUBIC)  # counter-clockwise about the centre
    box = find_face(tilted)
    assert box is not None and box.how.startswith("frontal-rotated")
    # where the upright face centre lands after the rotation
    cx, cy = image.width / 2, image.height / 2
    ux, uy = upright.x + upright.w / 2 - cx, upright.y + upright.h / 2 - cy
    t = np.deg2rad(angle)
    ex, ey = cx + ux * np.cos(t) + uy * np.sin(t), cy - ux * np.sin(t) + uy * np.cos(t)
    assert abs(box.x + box.w / 2 - ex) < 0.15 * upright.w
    assert abs(box.y + box.h / 2 - ey) < 0.15 * upright.w


def test_no_face_falls_back_to_centre_square_or_none() -> None:
    image = _no_face()
    assert find_face(image) is None
    crop, box = crop_face(image)
    assert box is None and crop is not None and crop.size == (220, 220)
    assert np.array_equal(np.asarray(crop), np.asarray(center_square(image)))
    assert crop_face(image, fallback=False) == (None, None)


def test_square_crop_box_framing_and_bounds() -> None:
    box = Box(100, 100, 100, 100)
    left, top, right, bottom = square_crop_box(box, 1000, 1000, margin=1.0)
    assert right - left == bottom - top == 200
    assert left == 50 and top == round(150 - 0.45 * 200)
    # near a corner: shifted inside, still square
    left, top, right, bottom = square_crop_box(Box(0, 0, 80, 80), 300, 200, margin=1.0)
    assert (left, top) == (0, 0) and right - left == bottom - top == 160
    # image smaller than the wanted square: shrunk to the shorter side
    left, top, right, bottom = square_crop_box(Box(10, 10, 90, 90), 120, 100, margin=1.0)
    assert right - left == bottom - top == 100 and right <= 120


def test_detector_rates_on_real_test_images_at_64px(data_root: Path, anime_cascade: Path) -> None:
    """The models README's figures, at the size model outputs are judged: real anime fires the
    anime cascade far more often than selfies do, and selfies fire the human cascade."""
    a = load_domain(data_root / "testA", 64, max_images=30).images
    b = load_domain(data_root / "testB", 64, max_images=30).images
    anime_b, anime_a = detection_rate(b, anime_cascade), detection_rate(a, anime_cascade)
    human_a, human_b = detection_rate(a, human_cascade_path()), detection_rate(b, human_cascade_path())
    assert anime_b >= 0.8 and anime_a <= 0.5 and anime_b - anime_a >= 0.4
    assert human_a >= 0.8 and human_b <= 0.5


def test_detection_rate_rejects_bad_input(anime_cascade: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        detection_rate(torch.zeros(2, 3, 32, 32), anime_cascade)
    with pytest.raises(ValueError, match="no images"):
        detection_rate([], anime_cascade)
    bad = tmp_path / "bad.xml"
    bad.write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(OSError, match="bad.xml: not a valid"):
        detection_rate([_no_face()], bad)
    with pytest.raises(FileNotFoundError, match="nothing.xml"):
        detection_rate([_no_face()], tmp_path / "nothing.xml")


def test_anime_cascade_path_errors_name_the_setting(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.delenv("CYCLEGAN_ANIME_CASCADE", raising=False)
    with pytest.raises(FileNotFoundError, match="CYCLEGAN_ANIME_CASCADE"):
        anime_cascade_path()
    with pytest.raises(FileNotFoundError, match="missing.xml"):
        anime_cascade_path(tmp_path / "missing.xml")
