"""How fast the data pipeline delivers augmented batches, against what training consumes.

Prints JSON with three rates, all in *iterations' worth of images per second*
(one iteration takes ``batch`` human and ``batch`` anime images):

* ``fast_loader``: the project's pipeline: :class:`~cyclegan_lib.data.EpochPlan`
  (pairing, crops, flips drawn per epoch) + :func:`~cyclegan_lib.data.make_batch`
  from the decode-once in-memory ``uint8`` cache, to float [-1, 1] on the device;
* ``reference_loader``: the official per-image loader (JPEG decode, bicubic
  resize, random crop, flip, ToTensor, Normalize for every sample);
* ``train_step``: what the trainer consumes at the same profile (the fast path,
  measured here for ``--train-steps`` iterations unless ``--train-ips`` is given).

The target is ``fast_loader / train_step >= 5``.

    python benchmarks/loader.py                   # the cpu profile (64 px, ngf 32, 9 blocks)
    python benchmarks/loader.py --profile full --device cuda
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ReferenceLoader, data_dir, emit, machine, other_load, peak_memory, summarize, sync  # noqa: E402

from cyclegan_lib.config import make_config  # noqa: E402
from cyclegan_lib.data import EpochPlan, load_unpaired, make_batch  # noqa: E402
from cyclegan_lib.cyclegan import resolve_device  # noqa: E402


def fast_loader_rate(data, cfg, device: torch.device, batches: int, repeats: int,
                     channels_last: bool) -> tuple[list[float], float]:
    """Iterations/s of EpochPlan.draw + make_batch; the plan draw is included once per epoch."""
    bs, size = cfg.batch_size, cfg.image_size
    epoch_size = cfg.epoch_size or max(len(data.a), len(data.b)) // bs
    rates = []
    plan_seconds = []
    for rep in range(repeats + 1):  # the first pass is the warm-up
        done, epoch = 0, rep * 1000
        sync(device)
        t = time.perf_counter()
        while done < batches:
            t_plan = time.perf_counter()
            plan = EpochPlan.draw(len(data.a), len(data.b), epoch_size * bs,
                                  cfg.resolved_load_size, size, cfg.seed, epoch)
            plan_seconds.append(time.perf_counter() - t_plan)
            for i in range(min(epoch_size, batches - done)):
                a, b = make_batch(data, plan, i * bs, bs, size, device, channels_last)
                done += 1
            epoch += 1
        sync(device)
        if rep:
            rates.append(batches * bs / (time.perf_counter() - t))
    return rates, sum(plan_seconds) / len(plan_seconds)


def reference_loader_rate(root: Path, cfg, device: torch.device, batches: int, repeats: int,
                          workers: int) -> list[float]:
    loader = ReferenceLoader(root, cfg.resolved_load_size, cfg.image_size, cfg.batch_size,
                             seed=cfg.seed, workers=workers)
    rates = []
    for rep in range(repeats + 1):
        sync(device)
        t = time.perf_counter()
        for _ in range(batches):
            a, b = loader.next()
            a, b = a.to(device), b.to(device)
        sync(device)
        if rep:
            rates.append(batches * cfg.batch_size / (time.perf_counter() - t))
    return rates


def train_step_rate(data, cfg, steps: int, warmup: int) -> list[float]:
    """Iterations x batch per second of the trainer's step, data included (the fast path)."""
    from cyclegan_lib.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp) / "none", Path(tmp) / "run", progress=False, data=data)
        bs = cfg.batch_size
        plan = EpochPlan.draw(len(data.a), len(data.b), (steps + warmup) * bs,
                              cfg.resolved_load_size, cfg.image_size, cfg.seed, 0)
        rates = []
        pending = []
        for i in range(warmup):
            pending.append(trainer.train_step(*make_batch(
                data, plan, i * bs, bs, cfg.image_size, trainer.device, trainer.model.channels_last)))
        torch.stack(pending).cpu()
        for i in range(warmup, warmup + steps):
            sync(trainer.device)
            t = time.perf_counter()
            loss = trainer.train_step(*make_batch(
                data, plan, i * bs, bs, cfg.image_size, trainer.device, trainer.model.channels_last))
            loss.cpu()
            rates.append(bs / (time.perf_counter() - t))
    return rates


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="cpu", help="smoke, cpu or full (sizes and batch)")
    p.add_argument("--preset", default="stabilized")
    p.add_argument("--data", default=None, help="selfie2anime folder (default $CYCLEGAN_DATA)")
    p.add_argument("--device", default=None, help="default: the profile's device")
    p.add_argument("--batches", type=int, default=2000, help="batches per fast-loader repeat")
    p.add_argument("--ref-batches", type=int, default=200, help="batches per reference repeat")
    p.add_argument("--ref-workers", type=int, default=0,
                   help="DataLoader workers for the reference loader (official default 4)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--train-steps", type=int, default=20)
    p.add_argument("--train-warmup", type=int, default=3)
    p.add_argument("--train-ips", type=float, default=None,
                   help="use this train-step rate (images/s) instead of measuring it")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None, help="also write the JSON here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {"device": args.device} if args.device else {}
    cfg = make_config(args.preset, args.profile, **overrides)
    device = resolve_device(cfg.device)
    root = data_dir(args.data)

    t = time.perf_counter()
    data = load_unpaired(root, "train", cfg.resolved_load_size, min_size=cfg.image_size,
                         max_images=cfg.max_images)
    cache_seconds = time.perf_counter() - t
    channels_last = cfg.fast and device.type == "cuda"
    fast, plan_s = fast_loader_rate(data, cfg, device, args.batches, args.repeats, channels_last)
    ref = reference_loader_rate(root, cfg, device, args.ref_batches, args.repeats, args.ref_workers)
    if args.train_ips is not None:
        train = {"median": args.train_ips, "source": "--train-ips"}
    else:
        train = summarize(train_step_rate(data, cfg, args.train_steps, args.train_warmup))
        train["source"] = f"measured: {args.train_steps} steps after {args.train_warmup} warm-up"
    fast_s, ref_s = summarize(fast), summarize(ref)
    report = {
        "benchmark": "loader", "machine": machine(device), "device": str(device),
        "settings": {"profile": cfg.profile, "image_size": cfg.image_size,
                     "load_size": cfg.resolved_load_size, "batch": cfg.batch_size,
                     "ngf": cfg.ngf, "blocks": cfg.n_blocks, "images": [len(data.a), len(data.b)],
                     "unit": "iterations x batch per second (each with one A and one B image)"},
        "cache_load_s": round(cache_seconds, 2),
        "plan_draw_ms_per_epoch": round(plan_s * 1000, 3),
        "fast_loader_images_per_s": fast_s,
        "reference_loader_images_per_s": ref_s,
        "reference_workers": args.ref_workers,
        "train_step_images_per_s": train,
        "fast_loader_over_train_step": round(fast_s["median"] / train["median"], 1),
        "fast_loader_over_reference_loader": round(fast_s["median"] / ref_s["median"], 1),
        "target": ">= 5x the train step",
        "target_met": fast_s["median"] / train["median"] >= 5,
        "memory": peak_memory(device),
        "busy_processes_at_end": other_load(),
    }
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
