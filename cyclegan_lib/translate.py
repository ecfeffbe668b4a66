"""Translate image files with a trained generator: the "try your own photo" path.

Shared by ``cyclegan-anime translate``, the qualitative chapter and the upload widget:
find the largest face, crop a square framed like the training selfies, translate.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageOps

from .data import IMAGE_EXTENSIONS, open_rgb, to_image, to_tensor
from .faces import center_square, crop_face
from .runs import generator_for, image_size

__all__ = ["Translation", "translate_image", "translate_paths", "translate_upload",
           "side_by_side", "open_photo", "face_crop_or_square"]


@dataclass
class Translation:
    source: str
    output: str | None = None       # the translated image
    crop: str | None = None         # the network input (face crop)
    pair: str | None = None         # crop | translation side by side
    face_found: bool | None = None  # None when no face cropping was asked for
    note: str = ""


@torch.no_grad()
def translate_image(generator: torch.nn.Module, image: Image.Image, size: int,
                    device: str | torch.device = "cpu") -> Image.Image:
    """Resize to ``size`` (bicubic), run the generator, return a PIL image."""
    x = to_tensor(image, size).to(device)
    return to_image(generator(x))


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    """Two images scaled to 256 x 256, left | right (the upload widget and the CLI)."""
    out = Image.new("RGB", (512, 256))
    out.paste(left.resize((256, 256), Image.BICUBIC), (0, 0))
    out.paste(right.resize((256, 256), Image.BICUBIC), (256, 0))
    return out


def open_photo(path: str | Path) -> Image.Image:
    """Open a user's photo as RGB, upright: phones store rotation in EXIF, not pixels."""
    image, _ = open_rgb(path)
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block is not worth refusing the photo for
        return image


def face_crop_or_square(image: Image.Image, fallback: bool = True
                        ) -> tuple[Image.Image | None, bool]:
    """``(network input, face found)``: the face crop, else the centre square (or None)."""
    crop, box = crop_face(image, fallback=fallback)
    return crop, box is not None


def _expand(inputs: list[str | Path]) -> list[tuple[Path, Path]]:
    """``(file, output stem relative to out_dir)`` for files and (recursively) folders."""
    files: list[tuple[Path, Path]] = []
    used: set[Path] = set()

    def add(path: Path, rel: Path) -> None:
        stem, n = rel.with_suffix(""), 2
        while stem in used:  # photo.jpg given twice, or a.jpg and a.png: keep both
            stem = rel.with_name(f"{rel.stem}-{n}").with_suffix("")
            n += 1
        used.add(stem)
        files.append((path, stem))

    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file()
                           and q.suffix.lower() in IMAGE_EXTENSIONS
                           and not any(part.startswith(".") for part in q.relative_to(p).parts))
            for q in found:
                add(q, q.relative_to(p))
        elif p.is_file():
            add(p, Path(p.name))
        else:
            raise FileNotFoundError(f"input not found: {p}")
    return files


def translate_paths(checkpoint: str | Path, inputs: list[str | Path], out_dir: str | Path,
                    direction: str = "AtoB", size: int | None = None, crop_face: bool = False,
                    fallback: bool = True, device: str = "cpu") -> list[Translation]:
    """Translate every image in ``inputs`` (files, or folders searched recursively) into ``out_dir``."""
    files = _expand(inputs)
    if not files:
        raise FileNotFoundError(f"no image files in {', '.join(str(i) for i in inputs)}")
    generator = generator_for(checkpoint, direction, device)
    size = size or image_size(checkpoint)
    out_dir = Path(out_dir)
    suffix = "anime" if direction == "AtoB" else "human"
    results = []
    for path, stem in files:
        result = Translation(str(path))
        try:
            image = open_photo(path)
        except (ValueError, OSError) as exc:
            result.note = f"skipped: {exc}"
            results.append(result)
            continue
        if crop_face:
            crop, found = face_crop_or_square(image, fallback)
            result.face_found = found
            if crop is None:
                result.note = "no face found: skipped (--no-crop-fallback)"
                results.append(result)
                continue
            if not found:
                result.note = "no face found: translated the centre square of the whole image"
            image = crop
        else:
            image = center_square(image)
        translated = translate_image(generator, image, size, device)
        base = out_dir / stem
        base.parent.mkdir(parents=True, exist_ok=True)
        result.output = str(base.parent / f"{base.name}_{suffix}.png")
        translated.save(result.output)
        if crop_face:
            result.crop = str(base.parent / f"{base.name}_crop.png")
            result.pair = str(base.parent / f"{base.name}_pair.png")
            image.save(result.crop)
            side_by_side(image, translated).save(result.pair)
        results.append(result)
    return results


def translate_upload(checkpoint: str | Path, image_bytes: bytes, size: int | None = None,
                     device: str = "cpu") -> tuple[Image.Image, Image.Image, bool]:
    """Translate an uploaded photo (the bytes of a FileUpload widget) to anime:
    ``(face crop or centre square, anime, face found)``."""
    if not image_bytes:
        raise ValueError("uploaded file is empty")
    generator, run_size = generator_for(checkpoint, "AtoB", device), image_size(checkpoint)
    # open_rgb reads files (its conversions and error messages are the ones of the data pipeline)
    fd, tmp = tempfile.mkstemp(suffix=".upload")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(bytes(image_bytes))
        try:
            image = open_photo(tmp)
        except ValueError as exc:
            raise ValueError(f"uploaded file: {exc}") from None
    finally:
        os.unlink(tmp)
    crop, found = face_crop_or_square(image, fallback=True)
    assert crop is not None
    return crop, translate_image(generator, crop, size or run_size, device), found
