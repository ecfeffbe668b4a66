"""Face detection and square crops with OpenCV's human-face cascades and nagadomi's
anime-face cascade: crude but download-free, enough to centre a face and to score domains.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import torch
from PIL import Image

__all__ = ["Box", "detect_boxes", "human_cascade_path", "profile_cascade_path", "find_face", "square_crop_box",
           "crop_face", "center_square", "detection_rate", "detection_hits", "DETECT_SIZE", "DETECT_MIN_SIZE",
           "FACE_MARGIN", "FACE_CENTER_Y"]

# The calibrated settings (README, "Detector calibration"): smaller images are upsampled to
# DETECT_SIZE first, so rates stay comparable across image sizes.
DETECT_SIZE = 256
DETECT_MIN_SIZE = 48
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 5

# How selfie2anime frames a face (README, "Detector calibration"); crops of photos copy it.
FACE_MARGIN = 1 / 0.73 - 1
FACE_CENTER_Y = 0.45


@dataclass(frozen=True)
class Box:
    """A detection in pixel coordinates of the image it was found in."""

    x: int
    y: int
    w: int
    h: int
    how: str = "frontal"  # which detector pass found it (see find_face)

    @property
    def area(self) -> int:
        return self.w * self.h


def human_cascade_path() -> Path:
    """OpenCV's bundled ``haarcascade_frontalface_default.xml``."""
    return Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"


def profile_cascade_path() -> Path:
    """OpenCV's bundled ``haarcascade_profileface.xml`` (faces turned to one side)."""
    return Path(cv2.data.haarcascades) / "haarcascade_profileface.xml"


@lru_cache(maxsize=8)
def _cascade(path: str):
    if not Path(path).is_file():
        raise FileNotFoundError(f"cascade file not found: {path}")
    try:
        cascade = cv2.CascadeClassifier(path)
    except (cv2.error, SystemError):  # malformed XML
        cascade = None
    if cascade is None or cascade.empty():
        raise OSError(f"{path}: not a valid OpenCV cascade classifier file")
    return cascade


def _grey(image: Image.Image | np.ndarray) -> np.ndarray:
    """Grey + histogram equalisation, the preprocessing of every measurement here."""
    if isinstance(image, Image.Image):
        arr = np.asarray(image.convert("L"), dtype=np.uint8)
    else:
        arr = image
    return cv2.equalizeHist(np.ascontiguousarray(arr))


def _detect(grey: np.ndarray, cascade_path: str, min_size: int) -> list[tuple[int, int, int, int]]:
    found = _cascade(cascade_path).detectMultiScale(
        grey, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBORS, minSize=(min_size, min_size))
    return [tuple(int(v) for v in b) for b in found]


def detect_boxes(image: Image.Image, cascade_path: str | Path, min_size: int) -> list[Box]:
    """Everything one cascade finds in ``image`` (grey + equalisation, the calibrated settings)."""
    return [Box(*b) for b in _detect(_grey(image), str(cascade_path), min_size)]


def _largest(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int] | None:
    return max(boxes, key=lambda b: b[2] * b[3]) if boxes else None


def find_face(image: Image.Image) -> Box | None:
    """The largest human face in a photo, trying progressively looser detector passes."""
    grey = _grey(image)
    h, w = grey.shape
    min_size = max(24, min(w, h) // 5)
    frontal, profile = str(human_cascade_path()), str(profile_cascade_path())

    if (b := _largest(_detect(grey, frontal, min_size))) is not None:
        return Box(*b, how="frontal")
    pad = max(w, h) // 4
    padded = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    if (b := _largest(_detect(padded, frontal, min_size))) is not None:
        return Box(b[0] - pad, b[1] - pad, b[2], b[3], how="frontal-padded")
    if (b := _largest(_detect(grey, profile, min_size))) is not None:
        return Box(*b, how="profile")
    if (b := _largest(_detect(np.ascontiguousarray(grey[:, ::-1]), profile, min_size))) is not None:
        return Box(w - b[0] - b[2], b[1], b[2], b[3], how="profile-mirrored")
    for angle in (-20.0, 20.0):
        rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        turned = cv2.warpAffine(grey, rot, (w, h), borderMode=cv2.BORDER_REPLICATE)
        if (b := _largest(_detect(turned, frontal, min_size))) is not None:
            # Rotate the box centre back; keep the box upright.
            back = cv2.invertAffineTransform(rot)
            cx, cy = back @ np.array([b[0] + b[2] / 2, b[1] + b[3] / 2, 1.0])
            return Box(int(round(cx - b[2] / 2)), int(round(cy - b[3] / 2)), b[2], b[3],
                       how=f"frontal-rotated{angle:+.0f}")
    return None


def square_crop_box(box: Box, width: int, height: int, margin: float = FACE_MARGIN
                    ) -> tuple[int, int, int, int]:
    """A square around ``box``, grown by ``margin`` of its size, with the face centre at
    :data:`FACE_CENTER_Y` of its height, as (left, top, right, bottom)."""
    side = int(round(max(box.w, box.h) * (1 + margin)))
    side = max(1, min(side, width, height))
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    left = int(round(min(max(cx - side / 2, 0), width - side)))
    top = int(round(min(max(cy - side * FACE_CENTER_Y, 0), height - side)))
    return left, top, left + side, top + side


def center_square(image: Image.Image) -> Image.Image:
    """The largest centred square of an image (the crop used when no face is found)."""
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


def crop_face(image: Image.Image, margin: float = FACE_MARGIN, fallback: bool = True
              ) -> tuple[Image.Image | None, Box | None]:
    """Crop the largest human face (:func:`find_face`) to a square framed like the training data."""
    image = image.convert("RGB")
    box = find_face(image)
    if box is None:
        return (center_square(image) if fallback else None), None
    return image.crop(square_crop_box(box, image.width, image.height, margin)), box


def _as_images(images: torch.Tensor | Sequence[Image.Image]) -> Iterable[Image.Image]:
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError("detection_rate expects a uint8 tensor [N, 3, H, W] or PIL images")
        for t in images:
            yield Image.fromarray(t.permute(1, 2, 0).numpy())
    else:
        yield from images


def detection_hits(images: torch.Tensor | Sequence[Image.Image], cascade_path: str | Path
                   ) -> list[bool]:
    """Per image, whether a cascade finds at least one face (kept per image for paired
    bootstraps), at the calibrated :data:`DETECT_SIZE` and :data:`DETECT_MIN_SIZE`.
    """
    path = str(cascade_path)
    _cascade(path)  # fail on a bad cascade before any work
    hits = []
    for image in _as_images(images):
        image = image.convert("L")
        side = min(image.size)
        if side < DETECT_SIZE:
            scale = DETECT_SIZE / side
            image = image.resize((round(image.width * scale), round(image.height * scale)),
                                 Image.BICUBIC)
            ms = DETECT_MIN_SIZE
        else:
            ms = max(1, round(DETECT_MIN_SIZE * side / DETECT_SIZE))
        hits.append(bool(_detect(_grey(image), path, ms)))
    return hits


def detection_rate(images: torch.Tensor | Sequence[Image.Image], cascade_path: str | Path
                   ) -> float:
    """Fraction of images in which a cascade finds at least one face."""
    hits = detection_hits(images, cascade_path)
    if not hits:
        raise ValueError("detection_rate: no images given")
    return sum(hits) / len(hits)
