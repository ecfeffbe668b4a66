"""Translate-your-own-photo: face crop, translation, outputs, the upload path and the CLI."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cyclegan_lib.cli import main
from cyclegan_lib.translate import open_photo, translate_paths, translate_upload

PHOTOS = ["expressive/laughing_man.jpg", "consistency/obama_a.jpg"]


def _no_face_jpg(path: Path, size: tuple[int, int] = (200, 120)) -> Path:
    rng = np.random.default_rng(3)
    arr = np.clip(np.linspace(0, 255, size[0])[None, :, None] * np.ones((size[1], 1, 3))
                  + rng.normal(0, 20, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def photos(faces_root: Path, tmp_path: Path) -> Path:
    """Two real face photos and one without a face, copied into a temp folder."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for rel in PHOTOS:
        src = faces_root / rel
        if not src.is_file():
            pytest.fail(f"test photo missing: {src} (set CYCLEGAN_FACES)")
        shutil.copy(src, folder / src.name)
    _no_face_jpg(folder / "wall.jpg")
    return folder


def test_translate_with_face_crop(smoke_run: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    results = translate_paths(smoke_run, [photos], out, crop_face=True)
    by_name = {Path(r.source).name: r for r in results}
    assert set(by_name) == {"laughing_man.jpg", "obama_a.jpg", "wall.jpg"}
    for name in ("laughing_man", "obama_a"):
        r = by_name[f"{name}.jpg"]
        assert r.face_found is True and r.note == ""
        assert Image.open(r.output).size == (32, 32)      # the smoke run's image size
        crop = Image.open(r.crop)
        assert crop.width == crop.height and crop.width > 32  # full-resolution face crop
        assert Image.open(r.pair).size == (512, 256)
    wall = by_name["wall.jpg"]
    assert wall.face_found is False and "no face found" in wall.note
    assert Image.open(wall.crop).size == (120, 120)  # the centre square
    # --no-crop-fallback: the photo without a face is skipped, the others translated
    results = translate_paths(smoke_run, [photos], tmp_path / "strict", crop_face=True,
                              fallback=False)
    skipped = [r for r in results if r.output is None]
    assert [Path(r.source).name for r in skipped] == ["wall.jpg"]
    assert "skipped" in skipped[0].note


def test_translate_folders_recursively_without_name_clashes(smoke_run: Path, tmp_path: Path
                                                             ) -> None:
    src = tmp_path / "in"
    _no_face_jpg(src / "a.jpg")
    _no_face_jpg(src / "sub" / "a.jpg")
    _no_face_jpg(src / ".hidden" / "x.jpg")
    (src / "notes.txt").write_text("not an image")
    (src / "broken.jpg").write_bytes(b"not a jpeg")
    results = translate_paths(smoke_run, [src, src / "a.jpg"], tmp_path / "out",
                              direction="BtoA")
    outputs = sorted(str(Path(r.output).relative_to(tmp_path / "out")) for r in results
                     if r.output)
    assert outputs == ["a-2_human.png", "a_human.png", "sub/a_human.png"]
    broken = [r for r in results if Path(r.source).name == "broken.jpg"]
    assert broken[0].output is None and broken[0].note.startswith("skipped: not an image")


def test_exif_rotated_photo_is_upright(tmp_path: Path) -> None:
    image = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    image.save(tmp_path / "phone.jpg", exif=exif.tobytes())
    assert open_photo(tmp_path / "phone.jpg").size == (20, 40)


def test_translate_upload(smoke_run: Path, faces_root: Path) -> None:
    data = (faces_root / PHOTOS[0]).read_bytes()
    crop, anime, found = translate_upload(smoke_run, data)
    assert found and crop.width == crop.height and anime.size == (32, 32)
    buf = io.BytesIO()
    Image.new("RGB", (90, 60), (128, 128, 128)).save(buf, format="PNG")
    crop, anime, found = translate_upload(smoke_run, buf.getvalue(), size=64)
    assert not found and crop.size == (60, 60) and anime.size == (64, 64)
    with pytest.raises(ValueError, match="uploaded file: not an image"):
        translate_upload(smoke_run, b"hello")
    with pytest.raises(ValueError, match="empty"):
        translate_upload(smoke_run, b"")


def test_cli_translate_reports_faces_not_found(smoke_run: Path, photos: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    rc = main(["translate", "--checkpoint", str(smoke_run), str(photos), "--crop-face",
               "--out", str(tmp_path / "cli")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "wall.jpg: no face found" in out and "face found in 2 of 3 image(s); no face in 1" in out
    assert (tmp_path / "cli" / "laughing_man_pair.png").is_file()
    rc = main(["translate", "--checkpoint", str(smoke_run), str(tmp_path / "nothing.jpg"),
               "--out", str(tmp_path / "cli")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "nothing.jpg" in err
