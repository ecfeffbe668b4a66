"""Image measurements behind the paper's qualitative claims (see :mod:`cyclegan_lib.claims`).

Images come as ``[N, 3, H, W]`` tensors in [-1, 1] or lists of PIL images; results are per-image
numpy arrays, ready for a bootstrap interval.  Exposure changes act in linear light.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .data import float_to_uint8
from .evaluate import translate_batch
from .faces import detection_hits, human_cascade_path
from .paths import anime_cascade
from .stats import bootstrap_ci, paired_difference, pairs_mean, resample_ci, verdict

__all__ = IMAGE_MEASURES = [
    "as_images", "srgb_to_linear", "linear_to_srgb", "grey", "lightness", "gaussian_blur",
    "ssim", "structure_kept", "region", "dark_share", "turned_dark", "exposure",
    "skin_lightness_change", "consistency", "change_correlation", "detector_hits",
    "dose_response", "DOSE_EVS", "FACE_REGION", "LOWER_FACE", "SKIN_REGION", "DARK_THRESHOLD",
    "COMMON_SIZE",
]

# Regions (top, bottom, left, right) as fractions of a face crop framed like selfie2anime
# (face box rows 0.085-0.815, columns 0.135-0.865; eyes near 0.38, mouth near 0.63).
FACE_REGION = (0.20, 0.80, 0.25, 0.75)   # brows to chin, inside the cheeks
LOWER_FACE = (0.57, 0.82, 0.25, 0.75)    # the lower third of the face box: mouth, chin, beard
SKIN_REGION = (0.42, 0.60, 0.30, 0.70)   # cheeks and nose, between the eyes and the mouth
#: "Hair-dark": sRGB luma below this (on [0, 1]); beards, anime hair and black shadows.
DARK_THRESHOLD = 0.25
#: Images are compared at this size (the cpu/book profiles' resolution).
COMMON_SIZE = 64
#: The exposures of the dark-faces dose-response (stops from the photo as taken).
DOSE_EVS = (0, -1, -2, -3)


def as_images(images: Any, size: int | None = None) -> torch.Tensor:
    """A ``[N, 3, S, S]`` float tensor in [-1, 1] from a tensor or a list of PIL images/tensors,
    resized (bilinear, antialiased) to ``size`` when given.
    """
    if isinstance(images, torch.Tensor):
        x = images.detach().float().cpu()
        x = x.unsqueeze(0) if x.dim() == 3 else x
    else:
        parts = []
        for im in images:
            if isinstance(im, Image.Image):
                arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
                t = torch.from_numpy(arr).permute(2, 0, 1)
            else:
                t = im.detach().float().cpu()
            t = t.unsqueeze(0) if t.dim() == 3 else t
            parts.append(F.interpolate(t, size=(size, size), mode="bilinear", antialias=True,
                                       align_corners=False) if size else t)
        x = torch.cat(parts)
    if size and x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False)
    return x


def srgb_to_linear(u: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded values in [0, 1] to linear light (IEC 61966-2-1)."""
    return torch.where(u <= 0.04045, u / 12.92, ((u.clamp(min=0) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v: torch.Tensor) -> torch.Tensor:
    """Linear light in [0, 1] to sRGB-encoded values."""
    return torch.where(v <= 0.0031308, v * 12.92, 1.055 * v.clamp(min=0) ** (1 / 2.4) - 0.055)


def _unit(images: Any, size: int | None = None) -> torch.Tensor:
    return ((as_images(images, size) + 1) / 2).clamp(0, 1)


def grey(images: Any, size: int | None = None) -> torch.Tensor:
    """``[N, 1, H, W]`` sRGB luma in [0, 1] (0.299 R + 0.587 G + 0.114 B, OpenCV's grey)."""
    u = _unit(images, size)
    return (0.299 * u[:, 0] + 0.587 * u[:, 1] + 0.114 * u[:, 2]).unsqueeze(1)


def lightness(images: Any, size: int | None = None) -> torch.Tensor:
    """``[N, H, W]`` CIE L* (0 black, 100 white) from the linear-light luminance Y."""
    lin = srgb_to_linear(_unit(images, size))
    y = 0.2126 * lin[:, 0] + 0.7152 * lin[:, 1] + 0.0722 * lin[:, 2]
    d = 6 / 29
    f = torch.where(y > d ** 3, y.clamp(min=1e-12) ** (1 / 3), y / (3 * d * d) + 4 / 29)
    return 116 * f - 16


def _gauss(sigma: float, radius: int | None = None) -> torch.Tensor:
    r = radius if radius is not None else max(1, int(round(3 * sigma)))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma ** 2))
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[N, C, H, W]`` (reflect padding; sigma 0: unchanged)."""
    if sigma <= 0:
        return x
    k = _gauss(sigma)
    r, c = len(k) // 2, x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def ssim(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per-image SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03)
    of ``[N, C, H, W]`` images on [0, 1], averaged over the valid region.
    """
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    x, y = x.double(), y.double()  # variances are differences of large numbers
    k = _gauss(1.5, radius=5).double()
    w = (k[:, None] * k[None, :]).view(1, 1, 11, 11).repeat(x.shape[1], 1, 1, 1)
    conv = lambda t: F.conv2d(t, w, groups=x.shape[1])  # noqa: E731
    mx, my = conv(x), conv(y)
    vx, vy, cxy = conv(x * x) - mx ** 2, conv(y * y) - my ** 2, conv(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1).numpy()


def _layout(images: Any) -> torch.Tensor:
    """Grey at :data:`COMMON_SIZE`, blurred (sigma 1 px): a face's layout without colour and
    texture, what the structure, consistency and expression measures compare."""
    return gaussian_blur(grey(images, COMMON_SIZE), 1.0)


def structure_kept(inputs: Any, outputs: Any) -> np.ndarray:
    """Per-image SSIM of input and output layouts: how much layout the output keeps, ignoring
    colour and texture (1 same structure, about 0 unrelated).
    """
    return ssim(_layout(inputs), _layout(outputs))


def region(x: torch.Tensor, box: tuple[float, float, float, float]) -> torch.Tensor:
    """The ``(top, bottom, left, right)`` fractional box of ``[..., H, W]``."""
    h, w = x.shape[-2:]
    t, b, l, r = box
    return x[..., int(round(t * h)):int(round(b * h)), int(round(l * w)):int(round(r * w))]


def dark_share(images: Any) -> np.ndarray:
    """Per image, the share of :data:`LOWER_FACE` pixels darker than :data:`DARK_THRESHOLD`:
    the dark mass of mouth and chin, where a beard shows and a shaven chin does not.
    """
    dark = region(grey(images, COMMON_SIZE), LOWER_FACE) < DARK_THRESHOLD
    return dark.flatten(1).double().mean(1).numpy()


def turned_dark(reference: Any, outputs: Any) -> np.ndarray:
    """Per image, the share of :data:`FACE_REGION` pixels lit in ``reference`` but dark in
    ``outputs``: the paper's "shadows turn into hair" (pixels dark in the reference left out).
    """
    ref = region(grey(reference, COMMON_SIZE), FACE_REGION) >= DARK_THRESHOLD
    out = region(grey(outputs, COMMON_SIZE), FACE_REGION) < DARK_THRESHOLD
    lit = ref.flatten(1).double().sum(1)
    return ((ref & out).flatten(1).double().sum(1) / lit.clamp(min=1)).numpy()


def exposure(images: Any, ev: float) -> Any:
    """The images with exposure changed by ``ev`` stops (linear light x 2**ev, clipped).

    Tensors give tensors, PIL images give PIL images; -3 EV is how ``faces/dark`` was made.
    """
    def change(u: torch.Tensor) -> torch.Tensor:
        return linear_to_srgb((srgb_to_linear(u) * 2.0 ** ev).clamp(0, 1))

    if isinstance(images, torch.Tensor):
        return change(((images.float() + 1) / 2).clamp(0, 1)) * 2 - 1
    single = isinstance(images, Image.Image)
    out = []
    for im in ([images] if single else images):
        u = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0)
        arr = (change(u) * 255).round().clamp(0, 255).byte().numpy()
        out.append(Image.fromarray(arr))
    return out[0] if single else out


def skin_lightness_change(inputs: Any, outputs: Any) -> np.ndarray:
    """Per image, output minus input skin lightness (CIE L*) over cheeks and nose
    (:data:`SKIN_REGION`), its median, so a stray anime eye or hair strand does not decide it.
    """
    def level(images: Any) -> torch.Tensor:
        return region(lightness(images, COMMON_SIZE), SKIN_REGION).flatten(1).median(1).values

    return (level(outputs) - level(inputs)).double().numpy()


def consistency(out_a: Any, out_b: Any, n: int = 2000, seed: int = 0) -> dict[str, float]:
    """Is one person translated alike in two photos (``out_a[i]``, ``out_b[i]``)?

    Distance: 1 - SSIM of the layouts.  ``ratio``: mean distance of a person's two outputs
    over that of two different people's, with a bootstrap interval over people (``low``,
    ``high``); below 1 means identity is kept.
    """
    ga, gb = _layout(out_a), _layout(out_b)
    m = len(ga)
    if m < 2:
        raise ValueError("consistency needs at least two people")
    d = 1.0 - ssim(ga.repeat_interleave(m, 0), gb.repeat(m, 1, 1, 1)).reshape(m, m)

    def ratio(idx: np.ndarray) -> float:
        return float(np.diag(d)[idx].mean()) / pairs_mean(d, idx)

    lo, hi = resample_ci(ratio, m, n, seed)
    return {"same": float(np.diag(d).mean()), "different": float(d[~np.eye(m, dtype=bool)].mean()),
            "ratio": ratio(np.arange(m)), "low": lo, "high": hi, "people": m}


def change_correlation(in_a: Any, in_b: Any, out_a: Any, out_b: Any) -> dict[str, np.ndarray]:
    """Does the output change where the input changes (one person, two expressions)?

    Per person, the correlation of the input and output change maps (``matched``), and against
    the next person's output change (``mismatched``, the chance level).
    """
    def change(a: Any, b: Any) -> torch.Tensor:
        return (_layout(a) - _layout(b)).abs().flatten(1).double()

    def corr(u: torch.Tensor, v: torch.Tensor) -> np.ndarray:
        u, v = u - u.mean(1, keepdim=True), v - v.mean(1, keepdim=True)
        den = (u.norm(dim=1) * v.norm(dim=1)).clamp(min=1e-12)
        return ((u * v).sum(1) / den).numpy()

    ci, co = change(in_a, in_b), change(out_a, out_b)
    return {"matched": corr(ci, co), "mismatched": corr(ci, co.roll(1, 0))}


def detector_hits(images: Any, cascade: str | Path = "anime") -> np.ndarray:
    """Per image 1.0 if the face detector fires, else 0.0 (:func:`.faces.detection_hits`).

    ``cascade``: ``"anime"`` (``$CYCLEGAN_ANIME_CASCADE``), ``"human"`` (OpenCV's) or a file.
    """
    path = {"anime": None, "human": human_cascade_path()}.get(str(cascade), cascade)
    path = anime_cascade() if path is None else path
    if isinstance(images, torch.Tensor):
        images = float_to_uint8(as_images(images))
    return np.array(detection_hits(images, path), dtype=float)


@torch.no_grad()
def dose_response(generator: torch.nn.Module, images: Any, device: str = "cpu", n: int = 2000,
                  seed: int = 0) -> list[dict[str, Any]]:
    """The dark-faces test as a dose-response: the same photos at each exposure of
    :data:`DOSE_EVS`.  Per exposure, the anime-detector rate and :func:`turned_dark` share with
    intervals, and both as paired differences from the photos as taken.
    """
    x = as_images(images)
    rows, base = [], None
    for ev in DOSE_EVS:
        y = translate_batch(generator, exposure(x, ev), device)
        hits, dark = detector_hits(y), turned_dark(x, y)
        base = base or (hits, dark)
        row: dict[str, Any] = {"EV": ev}
        for key, v, b in (("anime rate", hits, base[0]), ("turned dark", dark, base[1])):
            est, lo, hi = bootstrap_ci(v, n=n, seed=seed)
            d, dlo, dhi = paired_difference(v, b, n=n, seed=seed)
            row.update({key: est, f"{key} low": lo, f"{key} high": hi, f"{key} vs 0 EV": d,
                        f"{key} vs 0 EV low": dlo, f"{key} vs 0 EV high": dhi,
                        f"{key} call": verdict(dlo, dhi) if ev != DOSE_EVS[0] else "-"})
        rows.append(row)
    return rows
