"""Shared pieces of the benchmark scripts: the reference loader, machine facts, memory.

Not part of the library: the reference loader here is what the *official*
CycleGAN code does per sample (open the JPEG, convert to RGB, torchvision
``Resize`` bicubic to the load size, ``RandomCrop``, ``RandomHorizontalFlip``,
``ToTensor``, ``Normalize(0.5, 0.5)``), so the benchmarks can compare the
project's decode-once in-memory pipeline with it.
"""
from __future__ import annotations

import json
import os
import platform
import random
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

from cyclegan_lib.precision import cpu_has_native_bf16

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def data_dir(arg: str | None) -> Path:
    """``--data`` or ``$CYCLEGAN_DATA`` or ``../shared/data/selfie2anime`` beside the repo."""
    if arg:
        return Path(arg)
    if os.environ.get("CYCLEGAN_DATA"):
        return Path(os.environ["CYCLEGAN_DATA"])
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "selfie2anime"


class ReferenceLoader:
    """The official ``UnalignedDataset`` + ``DataLoader(batch_size, shuffle=True)``, per image.

    Every sample opens and decodes its JPEG and runs the torchvision transform
    chain; nothing is cached.  ``workers > 0`` uses a ``torch.utils.data.DataLoader``
    with that many worker processes (the official default is 4); ``0`` decodes
    in the training process.
    """

    def __init__(self, root: Path, load_size: int, crop_size: int, batch_size: int = 1,
                 seed: int = 0, workers: int = 0, max_images: int | None = None) -> None:
        import torchvision.transforms as T
        from torchvision.transforms import InterpolationMode

        def files(folder: Path) -> list[Path]:
            out = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            return out[:max_images] if max_images else out

        self.files_a, self.files_b = files(root / "trainA"), files(root / "trainB")
        self.transform = T.Compose([
            T.Resize([load_size, load_size], InterpolationMode.BICUBIC),
            T.RandomCrop(crop_size), T.RandomHorizontalFlip(), T.ToTensor(),
            T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
        self.batch_size, self.workers = batch_size, workers
        self.rng = random.Random(seed)
        self._iter = None

    def __len__(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        path_a = self.files_a[index % len(self.files_a)]
        path_b = self.files_b[random.randint(0, len(self.files_b) - 1)]  # unaligned partner
        a = self.transform(Image.open(path_a).convert("RGB"))
        b = self.transform(Image.open(path_b).convert("RGB"))
        return a, b

    def _batches(self):
        if self.workers > 0:
            loader = torch.utils.data.DataLoader(self, batch_size=self.batch_size, shuffle=True,
                                                 num_workers=self.workers, drop_last=True,
                                                 persistent_workers=True)
            while True:
                yield from loader
        while True:
            order = list(range(len(self)))
            self.rng.shuffle(order)
            for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
                items = [self[i] for i in order[start:start + self.batch_size]]
                yield torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._iter is None:
            self._iter = self._batches()
        return next(self._iter)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(device: torch.device | None = None) -> dict:
    """What the numbers were measured on."""
    info = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16": cpu_has_native_bf16(),
        "torch": torch.__version__, "python": sys.version.split()[0],
        "loadavg_1min": round(os.getloadavg()[0], 2),
    }
    if device is not None and device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def peak_memory(device: torch.device) -> dict:
    """CPU peak RSS of this process (MiB) and, on CUDA, the max allocated (MiB)."""
    out = {"cpu_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.type == "cuda":
        out["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def summarize(samples: list[float]) -> dict:
    return {"median": round(statistics.median(samples), 4), "min": round(min(samples), 4),
            "max": round(max(samples), 4), "samples": [round(s, 4) for s in samples]}


def other_load() -> list[str]:
    """Other busy processes (what else ran while measuring), from /proc; best effort."""
    busy = []
    me = os.getpid()
    try:
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) in (me, os.getppid()):
                continue
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                state = stat.rsplit(")", 1)[1].split()[0]
                if state == "R":
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                    busy.append(cmd.strip()[:120])
            except OSError:
                continue
    except OSError:
        pass
    return busy


def emit(report: dict, out: str | None) -> None:
    """Print the report as JSON and, with ``--out``, also write it to that file."""
    text = json.dumps(report, indent=2)
    print(text)
    if out:
        Path(out).write_text(text + "\n")
