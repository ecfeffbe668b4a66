"""Translate image files with a trained generator: the "try your own photo" path.

Used by ``cyclegan-anime translate`` and by the qualitative chapter, so the
book shows exactly what the command line does.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from .data import IMAGE_EXTENSIONS, open_rgb, to_image, to_tensor

__all__ = ["Translation", "translate_image", "translate_paths", "side_by_side"]


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


def side_by_side(left: Image.Image, right: Image.Image, height: int = 256) -> Image.Image:
    a = left.resize((height, height), Image.BICUBIC)
    b = right.resize((height, height), Image.BICUBIC)
    out = Image.new("RGB", (2 * height, height))
    out.paste(a, (0, 0))
    out.paste(b, (height, 0))
    return out


def _expand(inputs: list[str | Path]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += sorted(q for q in p.iterdir()
                            if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"input not found: {p}")
    return files


def translate_paths(checkpoint: str | Path, inputs: list[str | Path], out_dir: str | Path,
                    direction: str = "AtoB", size: int | None = None, crop_face: bool = False,
                    fallback: bool = True, device: str = "cpu", margin: float = 0.6
                    ) -> list[Translation]:
    """Translate every image in ``inputs`` (files or folders) into ``out_dir``.

    For ``photo.jpg`` it writes ``photo_anime.png`` (or ``photo_human.png``),
    and with ``crop_face`` also ``photo_crop.png`` and ``photo_pair.png``.
    Unreadable files are reported in the result's ``note`` and skipped.
    """
    from .faces import crop_face as find_and_crop
    from .trainer import load_checkpoint_config, load_generator

    files = _expand(inputs)
    generator = load_generator(checkpoint, direction, device)
    size = size or int(load_checkpoint_config(checkpoint)["image_size"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "anime" if direction == "AtoB" else "human"
    results = []
    for path in files:
        result = Translation(str(path))
        try:
            image, _ = open_rgb(path)
        except (ValueError, OSError) as exc:
            result.note = f"skipped: {exc}"
            results.append(result)
            continue
        if crop_face:
            crop, box = find_and_crop(image, margin=margin, fallback=fallback)
            result.face_found = box is not None
            if crop is None:
                result.note = "no face found: skipped (--no-crop-fallback)"
                results.append(result)
                continue
            if box is None:
                result.note = "no face found: used the centre square of the whole image"
            image = crop
        translated = translate_image(generator, image, size, device)
        stem = path.stem
        translated.save(out_dir / f"{stem}_{suffix}.png")
        result.output = str(out_dir / f"{stem}_{suffix}.png")
        if crop_face:
            image.save(out_dir / f"{stem}_crop.png")
            side_by_side(image, translated).save(out_dir / f"{stem}_pair.png")
            result.crop = str(out_dir / f"{stem}_crop.png")
            result.pair = str(out_dir / f"{stem}_pair.png")
        results.append(result)
    return results
