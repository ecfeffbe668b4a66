"""Images per second of a full CycleGAN training iteration: the official way vs. this project's.

One iteration = both generators (translation, cycle, identity), both PatchGAN
discriminators (LSGAN, history buffer), two Adam steps, and the data for it.
"Images/s" counts iterations x batch (each iteration takes ``batch`` human and
``batch`` anime images).  Every mode runs in its own process (clean peak RSS,
no state shared) and warms up; then the modes take turns timing ``--steps``
iterations, ``--repeats`` rounds (so a load spike on a shared machine hits all
modes alike); the JSON gives the median and the spread.

Modes:

* ``reference``: the official code's way: fp32, contiguous NCHW, no compile, the
  default (for-loop) Adam, one network call per image set, and a per-image
  loader that opens and decodes two JPEGs each step and runs the torchvision
  transforms (``Resize`` bicubic to the load size, ``RandomCrop``,
  ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``).
* ``fast``: what ``cyclegan-anime train`` does (every profile: ``fast=True``,
  ``amp="auto"``): decode-once in-memory uint8 cache + batched crop/flip on the
  device (``EpochPlan`` + ``make_batch``), network calls batched where they
  share a network (exact), fused Adam, losses fetched every ``log_every`` steps,
  and bf16 autocast (losses in fp32) where the hardware computes bf16 natively
  (CUDA; CPUs with AVX512-BF16 or AMX); on CUDA also channels_last and cudnn
  autotuning.

Ablation modes (``--ablation``), each one change from its neighbour:
``cache`` (reference step, in-memory loader), ``batched`` (batched calls, for-loop
Adam), ``fast_fp32`` (+ fused Adam: the fast path with ``amp="off"``, the
reference's exact fp32 maths), ``fast`` (+ bf16 where native),
``fast_channels_last`` (CPU: fast_fp32 + NHWC) and, with ``--compile``,
``fast_compile`` (fast + ``torch.compile``; the compile time is reported separately).

    python benchmarks/train_step.py                       # 128 px, ngf 64, 9 blocks, CPU
    python benchmarks/train_step.py --ablation --compile
    python benchmarks/train_step.py --size 256 --device cuda --steps 50   # paper settings
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (ReferenceLoader, data_dir, emit, machine, other_load, peak_memory,  # noqa: E402
                    summarize, sync)

from cyclegan_lib.config import make_config  # noqa: E402
from cyclegan_lib.cyclegan import resolve_device  # noqa: E402
from cyclegan_lib.data import (DomainImages, EpochPlan, ScanReport, UnpairedData,  # noqa: E402
                               load_unpaired, make_batch)
from cyclegan_lib.trainer import Trainer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from reference_step import reference_optimize  # noqa: E402  the official step, the tests' oracle

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) for the fraction-of-peak figure.
PEAK_BF16_TFLOPS = {"H100 SXM": 989.4, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.4,
                    "H200": 989.4, "GH200": 989.4, "A100": 312.0, "L40S": 362.0, "L4": 121.0,
                    "A10G": 70.0, "A10": 125.0, "T4": 65.0, "V100": 125.0}

MODES = ("reference", "cache", "batched", "fast_fp32", "fast", "fast_channels_last", "fast_compile")
# Modes that keep the reference's fp32 arithmetic (no autocast).
FP32_MODES = ("reference", "cache", "batched", "fast_fp32", "fast_channels_last")


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    if given:
        return given
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if key in name:
            return PEAK_BF16_TFLOPS[key]
    return None


def make_cfg(args, mode: str):
    return make_config("stabilized", "cpu", image_size=args.size, ngf=args.ngf, ndf=args.ngf,
                       n_blocks=args.blocks, batch_size=args.batch, device=args.device,
                       fast=mode not in ("reference", "cache", "batched"), compile=mode == "fast_compile",
                       amp="off" if mode in FP32_MODES else args.amp,
                       log_every=args.log_every)


def tiny_data(load_size: int) -> UnpairedData:
    """Placeholder domains for the trainer's bookkeeping when the loader is external."""
    images = torch.zeros(2, 3, load_size, load_size, dtype=torch.uint8)
    return UnpairedData(DomainImages(images, ScanReport("A")), DomainImages(images, ScanReport("B")))


def count_flops(trainer: Trainer, real_a: torch.Tensor, real_b: torch.Tensor) -> int:
    """FLOPs of one iteration (convolutions and matmuls, forward + backward), by torch's counter."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        trainer.train_step(real_a, real_b)
    return int(counter.get_total_flops())


def child(args) -> dict:
    """Measure one mode in this process."""
    mode = args.child
    cfg = make_cfg(args, mode)
    device = resolve_device(cfg.device)
    root = data_dir(args.data)
    setup = time.perf_counter()
    if mode == "reference":
        data = tiny_data(cfg.resolved_load_size)
        loader = ReferenceLoader(root, cfg.resolved_load_size, cfg.image_size, cfg.batch_size,
                                 seed=cfg.seed, workers=args.ref_workers)
    else:
        data = load_unpaired(root, "train", cfg.resolved_load_size, min_size=cfg.image_size)
    data_seconds = time.perf_counter() - setup
    tmp = tempfile.TemporaryDirectory()
    trainer = Trainer(cfg, Path(tmp.name) / "none", Path(tmp.name) / "run", progress=False,
                      data=data)
    if mode in ("reference", "cache"):
        trainer.train_step = lambda a, b: reference_optimize(trainer.model, a, b)
    if mode == "fast_channels_last" and not trainer.model.channels_last:
        trainer.model.channels_last = True
        trainer.model.to(memory_format=torch.channels_last)
    trainer.model.train()

    bs, size = cfg.batch_size, cfg.image_size
    total = (args.warmup + args.repeats * args.steps + 1) * bs
    plan = EpochPlan.draw(len(data.a), len(data.b), total, cfg.resolved_load_size, size,
                          cfg.seed, 0)
    step_no = 0

    def next_batch():
        nonlocal step_no
        if mode == "reference":
            a, b = loader.next()
            a, b = a.to(device), b.to(device)
        else:
            a, b = make_batch(data, plan, step_no * bs, bs, size, device, trainer.model.channels_last)
        step_no += 1
        return a, b

    # Warm-up (the first call also compiles, with --compile).
    pending = []
    t = time.perf_counter()
    pending.append(trainer.train_step(*next_batch()))
    torch.stack(pending).cpu()
    first_step = time.perf_counter() - t
    for _ in range(args.warmup - 1):
        pending.append(trainer.train_step(*next_batch()))
    torch.stack(pending).cpu()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    reply({"ready": True})

    def timed_repeat() -> float:
        pending = []
        sync(device)
        t = time.perf_counter()
        for i in range(args.steps):
            pending.append(trainer.train_step(*next_batch()))
            if (i + 1) % cfg.log_every == 0:  # the trainer's own flush cadence
                torch.stack(pending).cpu()
                pending = []
        if pending:
            torch.stack(pending).cpu()
        sync(device)
        return time.perf_counter() - t

    # The parent says when to run a repeat, so the modes take turns (a load spike
    # on a shared machine then hits every mode, not one).
    seconds = []
    for line in sys.stdin:
        if line.strip() != "run":
            break
        seconds.append(timed_repeat())
        reply({"seconds": seconds[-1]})
    ips = [args.steps * bs / s for s in seconds]
    out = {"mode": mode, "images_per_s": summarize(ips),
           "seconds_per_iteration": round(sorted(seconds)[len(seconds) // 2] / args.steps, 4),
           "first_step_s": round(first_step, 2), "data_setup_s": round(data_seconds, 2),
           "memory": peak_memory(device),
           "trainer": {"batched": mode not in ("reference", "cache"), "channels_last": trainer.model.channels_last,
                       "bf16_autocast": trainer.precision == "bf16",
                       "precision": trainer.precision, "compile": cfg.compile,
                       "adam_fused": bool(trainer.model.opt_G.param_groups[0].get("fused"))}}
    if args.flops and mode in ("reference", "fast", "fast_fp32"):
        out["flops_per_iteration"] = count_flops(trainer, *next_batch())
    tmp.cleanup()
    return out


def reply(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class ModeProcess:
    """One mode in its own process (own peak RSS, no shared state), driven line by line."""

    def __init__(self, mode: str, argv: list[str]) -> None:
        self.mode, self.error = mode, None
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), *argv,
                                      "--child", mode], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._read()  # set-up and warm-up done

    def _read(self) -> dict | None:
        if self.error:
            return None
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().strip().splitlines()
            self.error = err[-1] if err else f"exit {self.proc.wait()}"
            return None
        return json.loads(line)

    def run(self) -> None:
        if not self.error:
            self.proc.stdin.write("run\n")
            self.proc.stdin.flush()
            self._read()

    def finish(self) -> dict:
        if self.error:
            return {"mode": self.mode, "error": self.error}
        self.proc.stdin.write("done\n")
        self.proc.stdin.flush()
        out = self._read()
        self.proc.wait()
        return out if out is not None else {"mode": self.mode, "error": self.error}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--ngf", type=int, default=64, help="generator and discriminator width")
    p.add_argument("--blocks", type=int, default=9)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--steps", type=int, default=5, help="iterations per timed repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--log-every", type=int, default=25, help="loss fetch cadence (as training)")
    p.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16"),
                   help="precision of the fast modes (auto: bf16 where native, fp16 on other GPUs)")
    p.add_argument("--modes", default=None, help=f"comma list from {', '.join(MODES)}")
    p.add_argument("--ablation", action="store_true", help="also the one-change-at-a-time modes")
    p.add_argument("--compile", action="store_true", help="also fast + torch.compile")
    p.add_argument("--flops", action=argparse.BooleanOptionalAction, default=True,
                   help="count the FLOPs of one iteration (default on)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="device peak (TFLOP/s) for the fraction-of-peak figure")
    p.add_argument("--ref-workers", type=int, default=0,
                   help="DataLoader workers for the reference loader (official default 4; "
                        "0 = decode in the training process)")
    p.add_argument("--data", default=None, help="selfie2anime folder (default $CYCLEGAN_DATA)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        reply(child(args))
        return 0

    device = resolve_device(args.device)
    if args.modes:
        modes = args.modes.split(",")
    else:
        modes = ["reference", "fast_fp32", "fast"]
        if args.ablation:
            modes = ["reference", "cache", "batched", "fast_fp32", "fast"]
            if device.type == "cpu":
                modes.append("fast_channels_last")
        if args.compile:
            modes.append("fast_compile")
    unknown = set(modes) - set(MODES)
    if unknown:
        p.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
    child_argv = [a for a in argv if a not in ("--ablation", "--compile")]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    busy_before = other_load()
    procs = [ModeProcess(m, child_argv) for m in modes]  # set up one after the other
    for _ in range(args.repeats):
        for proc in procs:
            proc.run()
    results = {proc.mode: proc.finish() for proc in procs}
    report: dict = {
        "benchmark": "train_step", "started": started, "machine": machine(device),
        "settings": {"size": args.size, "ngf": args.ngf, "ndf": args.ngf, "blocks": args.blocks,
                     "batch": args.batch, "device": str(device), "steps": args.steps,
                     "repeats": args.repeats, "warmup": args.warmup,
                     "reference_loader_workers": args.ref_workers,
                     "unit": "iterations x batch per second (median of repeats)"},
        "modes": results,
    }
    ok = {m: r for m, r in results.items() if "images_per_s" in r}
    if "reference" in ok:
        base = ok["reference"]["images_per_s"]["median"]
        report["speedup_vs_reference"] = {m: round(r["images_per_s"]["median"] / base, 3)
                                          for m, r in ok.items()}
        if "fast" in ok:
            report["fast_over_reference"] = report["speedup_vs_reference"]["fast"]
            target = 1.3 if device.type == "cpu" else 2.0
            report["target"] = f"fast >= {target}x reference ({device.type})"
            report["target_met"] = report["fast_over_reference"] >= target
            label = ok["fast"]["trainer"].get("precision", "fp32")
            report["fast_precision"] = {"bf16": "bf16 autocast",
                                        "fp16": "fp16 autocast + gradient scaling (no bf16 here)"
                                        }.get(label, "fp32 (no native bf16 here)")
        if "fast_fp32" in ok:
            report["fast_fp32_over_reference"] = report["speedup_vs_reference"]["fast_fp32"]
    flops = next((r.get("flops_per_iteration") for r in ok.values()
                  if r.get("flops_per_iteration")), None)
    if flops:
        report["flops_per_iteration"] = flops
        report["gflop_per_iteration"] = round(flops / 1e9, 1)
        report["flops_note"] = ("torch.utils.flop_counter: convolutions (forward and backward) "
                                "and matmuls; norms and elementwise ops not counted")
        peak = peak_tflops(device, args.peak_tflops)
        report["achieved_tflops"] = {m: round(flops * r["images_per_s"]["median"] / args.batch
                                              / 1e12, 3) for m, r in ok.items()}
        if peak:
            report["peak_tflops"] = peak
            report["fraction_of_peak"] = {m: round(v / peak, 4)
                                          for m, v in report["achieved_tflops"].items()}
    if device.type == "cpu":
        report["cuda"] = ("not measured: no GPU on this machine; run with --device cuda --size 256 "
                          "on one for the GPU figures and the fraction of peak")
    report["busy_processes"] = {"before": busy_before, "after": other_load()}
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
