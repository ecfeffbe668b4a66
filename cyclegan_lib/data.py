"""Data: scan two image folders, decode each image once, and serve augmented batches.

:class:`EpochPlan` draws each epoch's pairs, crops and flips from ``(seed, epoch)`` alone, so a
resumed run sees the same batches; :func:`make_batch` applies it on the device.
"""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, UnidentifiedImageError

from . import paths
from .checkpoint import atomic_save
from .errors import DataError

__all__ = [
    "DataError", "IMAGE_EXTENSIONS", "ScanReport", "DomainImages", "UnpairedData",
    "open_rgb", "scan_folder", "load_domain", "load_unpaired", "EpochPlan", "make_batch",
    "to_tensor", "to_image", "to_uint8", "uint8_to_float", "float_to_uint8",
]

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated JPEG is an error, not grey pixels


def open_rgb(path: str | Path) -> tuple[Image.Image, str | None]:
    """Open any supported image fully and return it as 8-bit RGB."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise ValueError("empty file (0 bytes)")
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "RGB":
                return im.copy(), None
            if mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grey: scale, do not clip
                arr = np.asarray(im, dtype=np.float64)
                # A 16-bit file spans 0..65535 even when it is dark; only 32-bit "I" (which
                # some decoders use for 8-bit data too) is judged by its values.
                top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
                grey = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
                return grey.convert("RGB"), f"converted {mode} (16-bit) to RGB"
            if mode in ("RGBA", "LA", "P", "PA") or "transparency" in im.info:
                rgba = im.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(white, rgba).convert("RGB"), \
                    f"converted {mode} to RGB (alpha over white)"
            return im.convert("RGB"), f"converted {mode} to RGB"
    except UnidentifiedImageError:
        raise ValueError("not an image (unrecognised format)") from None
    except (OSError, SyntaxError) as exc:  # truncated or corrupt data
        raise ValueError(f"unreadable image ({str(exc).splitlines()[0] if str(exc) else exc!r})") \
            from None
    except Image.DecompressionBombError:
        raise ValueError("image too large (decompression bomb guard)") from None


@dataclass
class ScanReport:
    """What :func:`scan_folder` used, converted and skipped, and why."""

    folder: str
    used: list[str] = field(default_factory=list)
    converted: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.folder}: {len(self.used)} images used, {len(self.converted)} converted, "
                f"{len(self.skipped)} skipped")

    def text(self) -> str:
        """The full report: one line per converted or skipped file."""
        lines = [self.summary()]
        lines += [f"  skipped   {name}: {why}" for name, why in self.skipped]
        lines += [f"  converted {name}: {why}" for name, why in self.converted]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"folder": self.folder, "used": self.used,
                "converted": [list(x) for x in self.converted],
                "skipped": [list(x) for x in self.skipped]}

    @classmethod
    def from_dict(cls, d: dict) -> "ScanReport":
        return cls(d["folder"], list(d["used"]), [tuple(x) for x in d["converted"]],
                   [tuple(x) for x in d["skipped"]])


def _decode(path: Path, size: int, min_size: int) -> tuple[torch.Tensor | None, str | None, str | None]:
    """Decode one file: (uint8 CHW tensor at ``size``, conversion note, skip reason)."""
    try:
        image, note = open_rgb(path)
        if min(image.size) < min_size:
            return None, None, f"too small ({image.size[0]}x{image.size[1]} < {min_size} px crop)"
        image = image.resize((size, size), Image.BICUBIC)
        return to_uint8(image), note, None
    except (ValueError, OSError) as exc:
        return None, None, str(exc)
    except Exception as exc:  # noqa: BLE001  a decoder bug on one odd file must not stop a run
        return None, None, f"unreadable image ({type(exc).__name__}: {exc})"


def to_uint8(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def _list_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"data folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.is_file())


def scan_folder(folder: str | Path, size: int, min_size: int | None = None,
                max_images: int | None = None, workers: int = 4
                ) -> tuple[torch.Tensor, ScanReport]:
    """Decode every usable image of ``folder`` once, resized to ``size`` x ``size``."""
    folder = Path(folder)
    report = ScanReport(str(folder))
    candidates = []
    for path in _list_files(folder):
        if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith("."):
            candidates.append(path)
        else:
            report.skipped.append((path.name, "not an image file (by extension)"))
    min_size = size if min_size is None else min_size
    tensors: list[torch.Tensor] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        chunk = max(64, workers * 8)
        for start in range(0, len(candidates), chunk):
            if max_images is not None and len(tensors) >= max_images:
                break
            paths = candidates[start:start + chunk]
            for path, (tensor, note, why) in zip(paths, pool.map(
                    lambda p: _decode(p, size, min_size), paths)):
                if why is not None:
                    report.skipped.append((path.name, why))
                elif max_images is None or len(tensors) < max_images:
                    tensors.append(tensor)
                    report.used.append(path.name)
                    if note:
                        report.converted.append((path.name, note))
    if not tensors:
        raise DataError(f"no usable images in {folder} ({len(report.skipped)} files skipped)")
    return torch.stack(tensors), report


@dataclass
class DomainImages:
    """One domain in memory: ``uint8 [N, 3, S, S]`` plus the scan report."""

    images: torch.Tensor
    report: ScanReport

    def __len__(self) -> int:
        return self.images.shape[0]


def load_domain(folder: str | Path, size: int, min_size: int | None = None,
                max_images: int | None = None, cache_dir: Path | None | str = "default"
                ) -> DomainImages:
    """:func:`scan_folder` with a disk cache keyed on the folder's files and the size
    (tensors and strings only, read back with ``weights_only=True``)."""
    folder = Path(folder)
    files = _list_files(folder)
    if cache_dir == "default":
        cache_dir = paths.cache_dir()
    key = hashlib.sha1(repr((str(folder.resolve()), size, min_size, max_images,
                             [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files])
                            ).encode()).hexdigest()[:20]
    cache_file = Path(cache_dir) / f"{folder.name}-{size}-{key}.pt" if cache_dir else None
    if cache_file is not None and cache_file.is_file():
        try:
            blob = torch.load(cache_file, weights_only=True)
            return DomainImages(blob["images"], ScanReport.from_dict(blob["report"]))
        except Exception:  # a damaged cache is rebuilt, never trusted
            cache_file.unlink(missing_ok=True)
    images, report = scan_folder(folder, size, min_size, max_images)
    if cache_file is not None:
        try:
            atomic_save({"images": images, "report": report.to_dict()}, cache_file)
        except OSError:
            pass  # a read-only cache location only costs speed
    return DomainImages(images, report)


@dataclass
class UnpairedData:
    """Two unpaired domains, A (human) and B (anime), at one size."""

    a: DomainImages
    b: DomainImages

    def report_text(self) -> str:
        return self.a.report.text() + "\n" + self.b.report.text() + "\n"


def load_unpaired(root: str | Path, split: str, size: int, min_size: int | None = None,
                  max_images: int | None = None, cache_dir: Path | None | str = "default"
                  ) -> UnpairedData:
    """Load ``root/{split}A`` and ``root/{split}B`` (the CycleGAN dataset layout)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    return UnpairedData(
        load_domain(root / f"{split}A", size, min_size, max_images, cache_dir),
        load_domain(root / f"{split}B", size, min_size, max_images, cache_dir))


@dataclass
class EpochPlan:
    """Which images meet and how they are augmented, for every step of one epoch.

    A function of ``(seed, epoch)`` alone, so a resumed run sees the same batches.
    """

    index_a: torch.Tensor
    index_b: torch.Tensor
    crop_a: torch.Tensor   # [M, 2] (y, x)
    crop_b: torch.Tensor
    flip_a: torch.Tensor   # [M] bool
    flip_b: torch.Tensor

    @classmethod
    def draw(cls, n_a: int, n_b: int, samples: int, load_size: int, crop_size: int,
             seed: int, epoch: int) -> "EpochPlan":
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        reps = -(-samples // n_a)
        index_a = torch.cat([torch.randperm(n_a, generator=g) for _ in range(reps)])[:samples]
        index_b = torch.randint(0, n_b, (samples,), generator=g)
        span = load_size - crop_size + 1
        crop_a = torch.randint(0, span, (samples, 2), generator=g)
        crop_b = torch.randint(0, span, (samples, 2), generator=g)
        flip_a = torch.rand(samples, generator=g) < 0.5
        flip_b = torch.rand(samples, generator=g) < 0.5
        return cls(index_a, index_b, crop_a, crop_b, flip_a, flip_b)

    def __len__(self) -> int:
        return len(self.index_a)

    def shard(self, rank: int, world_size: int) -> "EpochPlan":
        """Every ``world_size``-th sample from ``rank``: disjoint parts for DDP ranks."""
        sl = slice(rank, None, world_size)
        return EpochPlan(*(t[sl] for t in (self.index_a, self.index_b, self.crop_a,
                                            self.crop_b, self.flip_a, self.flip_b)))


def _crop_flip(images: torch.Tensor, index: torch.Tensor, crop: torch.Tensor, flip: torch.Tensor,
               size: int) -> torch.Tensor:
    out = []
    for i, (y, x), f in zip(index.tolist(), crop.tolist(), flip.tolist()):
        patch = images[i, :, y:y + size, x:x + size]
        out.append(patch.flip(-1) if f else patch)
    return torch.stack(out)


def make_batch(data: UnpairedData, plan: EpochPlan, start: int, batch_size: int, crop_size: int,
               device: torch.device | str = "cpu", channels_last: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples ``start .. start+batch_size`` of ``plan`` as float tensors in [-1, 1]."""
    sl = slice(start, start + batch_size)
    device = torch.device(device)
    batches = []
    for dom, idx, crop, flip in ((data.a, plan.index_a, plan.crop_a, plan.flip_a),
                                 (data.b, plan.index_b, plan.crop_b, plan.flip_b)):
        x = _crop_flip(dom.images, idx[sl], crop[sl], flip[sl], crop_size)
        if device.type == "cuda":
            x = x.pin_memory().to(device, non_blocking=True)
        x = x.float().div_(127.5).sub_(1.0)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        batches.append(x)
    return batches[0], batches[1]


def uint8_to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels as the networks' float range [-1, 1]."""
    return images.float().div(127.5).sub(1.0)


def float_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] network images as uint8 pixels (clipped, rounded)."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """A PIL image as a ``[1, 3, size, size]`` float tensor in [-1, 1] (bicubic resize)."""
    image = image.convert("RGB").resize((size, size), Image.BICUBIC)
    return uint8_to_float(to_uint8(image).unsqueeze(0))


def to_image(tensor: torch.Tensor) -> Image.Image:
    """The first image of a [-1, 1] tensor as a PIL image."""
    t = tensor.detach().cpu()
    return Image.fromarray(float_to_uint8(t[0] if t.dim() == 4 else t).permute(1, 2, 0).numpy())
