"""Face detection and square crops, with OpenCV's cascades (no downloads).

The human detector is the frontal-face Haar cascade bundled inside the
``opencv-python-headless`` wheel; the anime detector is nagadomi's
``lbpcascade_animeface.xml``, whose path comes from ``$CYCLEGAN_ANIME_CASCADE``
or an argument.  Both are crude but download-free, and good enough to centre a
face before translation and to score which domain an image looks like.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["Box", "human_cascade_path", "anime_cascade_path", "detect_faces",
           "largest_face", "square_crop_box", "crop_face"]


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h


def human_cascade_path() -> Path:
    """OpenCV's bundled ``haarcascade_frontalface_default.xml``."""
    import cv2

    return Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"


def anime_cascade_path(path: str | Path | None = None) -> Path:
    """The anime-face cascade: argument, ``$CYCLEGAN_ANIME_CASCADE``, or an error naming both."""
    value = path or os.environ.get("CYCLEGAN_ANIME_CASCADE")
    if not value:
        raise FileNotFoundError("anime-face cascade not configured: set CYCLEGAN_ANIME_CASCADE to "
                                "lbpcascade_animeface.xml (e.g. ../shared/models/)")
    p = Path(value)
    if not p.is_file():
        raise FileNotFoundError(f"anime-face cascade not found: {p}")
    return p


@lru_cache(maxsize=4)
def _cascade(path: str):
    import cv2

    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise FileNotFoundError(f"could not load cascade classifier: {path}")
    return cascade


def detect_faces(image: Image.Image, cascade_path: str | Path | None = None,
                 min_size: int | None = None, scale_factor: float = 1.1,
                 min_neighbors: int = 5) -> list[Box]:
    """Faces found by a cascade (default: OpenCV's frontal human face), largest first.

    Grey + histogram equalisation, as in the measurements of the models README.
    ``min_size`` defaults to a fifth of the shorter side (at least 24 px).
    """
    import cv2

    path = str(cascade_path or human_cascade_path())
    grey = cv2.equalizeHist(np.asarray(image.convert("L"), dtype=np.uint8))
    if min_size is None:
        min_size = max(24, min(image.size) // 5)
    found = _cascade(path).detectMultiScale(grey, scaleFactor=scale_factor,
                                            minNeighbors=min_neighbors,
                                            minSize=(min_size, min_size))
    boxes = [Box(int(x), int(y), int(w), int(h)) for x, y, w, h in found]
    return sorted(boxes, key=lambda b: b.area, reverse=True)


def largest_face(image: Image.Image, cascade_path: str | Path | None = None) -> Box | None:
    boxes = detect_faces(image, cascade_path)
    return boxes[0] if boxes else None


def square_crop_box(box: Box, width: int, height: int, margin: float = 0.6
                    ) -> tuple[int, int, int, int]:
    """A square around ``box`` grown by ``margin`` of its size (hair and chin, like the
    anime training faces), shifted to stay inside the image, as (left, top, right, bottom)."""
    side = int(round(max(box.w, box.h) * (1 + margin)))
    side = min(side, width, height)
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    left = int(round(min(max(cx - side / 2, 0), width - side)))
    top = int(round(min(max(cy - side / 2, 0), height - side)))
    return left, top, left + side, top + side


def crop_face(image: Image.Image, margin: float = 0.6, fallback: bool = True
              ) -> tuple[Image.Image | None, Box | None]:
    """Crop the largest human face to a square.

    Returns ``(crop, box)``; with no face, ``(centre square, None)`` if
    ``fallback`` else ``(None, None)``.
    """
    image = image.convert("RGB")
    box = largest_face(image)
    if box is None:
        if not fallback:
            return None, None
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        return image.crop((left, top, left + side, top + side)), None
    return image.crop(square_crop_box(box, image.width, image.height, margin)), box
