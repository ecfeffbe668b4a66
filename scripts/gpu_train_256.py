"""One command for a GPU: train the stabilised model at the paper's size in a fixed time, publish it.

On one CUDA GPU, in about ``--minutes`` of training (default 6, so that the whole
command stays within 10 minutes including start-up and the benchmark):

1. times a few iterations of the fast path at 256 px, ngf 64, 9 blocks, bf16
   (where the GPU has it), and sizes the run to the time budget: as many
   100-step epochs as fit, half at the constant rate and half decaying, as the
   paper's schedule;
2. trains ``stabilized`` at that length (EMA generators) into ``--runs``;
3. publishes both generators as fp16 safetensors in ``--out``, split so that
   no file exceeds 16 MiB, with config, history and summary;
4. runs ``benchmarks/train_step.py`` for the reference and fast paths at 256 px
   (the performance work's 2x target on a GPU) and writes its JSON beside the model.

    ./dev.sh shell python scripts/gpu_train_256.py --out pretrained/stabilized_256

On a CPU (for tests) pass a tiny size: ``--size 32 --ngf 8 --minutes 0.05 --device cpu``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from cyclegan_lib.config import make_config
from cyclegan_lib.data import make_batch
from cyclegan_lib.pretrained import export_run
from cyclegan_lib.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


def seconds_per_step(cfg, data_dir: Path, probe_dir: Path, steps: int = 10) -> float:
    """Median-free, simple timing of ``steps`` iterations after 3 warm-up ones."""
    trainer = Trainer(cfg, data_dir, probe_dir, progress=False)
    plan = trainer._epoch_plan(0)
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)

    def run(n: int) -> None:
        for i in range(n):
            a, b = make_batch(trainer.data, plan, i % trainer.epoch_size, 1, cfg.image_size,
                              trainer.device, trainer.model.channels_last)
            trainer.train_step(a, b)
        sync()

    run(3)
    start = time.perf_counter()
    run(steps)
    return (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("CYCLEGAN_DATA"))
    p.add_argument("--out", default="pretrained/stabilized_256")
    p.add_argument("--runs", default=os.environ.get("CYCLEGAN_RUNS", "runs"))
    p.add_argument("--minutes", type=float, default=6.0, help="training time budget")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--device", default="cuda")
    p.add_argument("--amp", default="auto")
    p.add_argument("--max-shard-mb", type=float, default=16.0)
    p.add_argument("--epoch-size", type=int, default=100, help="steps per epoch (tests: fewer)")
    p.add_argument("--bench-steps", type=int, default=20)
    p.add_argument("--bench-repeats", type=int, default=3)
    args = p.parse_args(argv)
    if not args.data:
        sys.exit("set --data or CYCLEGAN_DATA to the selfie2anime folder")
    data = Path(args.data)
    base = dict(image_size=args.size, ngf=args.ngf, ndf=args.ngf, device=args.device,
                amp=args.amp, epoch_size=args.epoch_size, ema_decay=0.999, log_every=100)
    run_dir = Path(args.runs) / f"gpu{args.size}" / "stabilized"
    if run_dir.exists() and any((run_dir / "checkpoints").glob("step_*.pt")):
        sys.exit(f"{run_dir} already holds a run: remove it or pass another --runs")
    t0 = time.perf_counter()
    probe = make_config("stabilized", "full", n_epochs=1, n_epochs_decay=1, **base)
    sps = seconds_per_step(probe, data, run_dir.parent / "probe")
    size = args.epoch_size
    epochs = max(2, int(args.minutes * 60 / sps) // size)
    cfg = make_config("stabilized", "full", n_epochs=(epochs + 1) // 2, n_epochs_decay=epochs // 2,
                      save_every=epochs * size, sample_every=max(size, epochs * size // 4),
                      max_minutes=1.25 * args.minutes, **base)  # a busier GPU: stop, saved
    print(f"probe: {sps:.3f} s/step on {probe.device} -> {epochs * size} steps "
          f"({cfg.n_epochs} + {cfg.n_epochs_decay} epochs of {size})", flush=True)
    summary = Trainer(cfg, data, run_dir, progress=False).fit()
    out = export_run(run_dir, REPO / args.out if not Path(args.out).is_absolute() else args.out,
                     max_shard_mb=args.max_shard_mb)
    largest = max(f.stat().st_size for f in out.glob("*.safetensors")) / 2**20
    bench_json = out / "train_step_bench.json"
    bench = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "train_step.py"), "--device", args.device,
         "--size", str(args.size), "--ngf", str(args.ngf), "--modes", "reference,fast",
         "--steps", str(args.bench_steps), "--repeats", str(args.bench_repeats),
         "--warmup", "3", "--no-flops", "--data", str(data), "--out", str(bench_json)],
        capture_output=True, text=True)
    if bench.returncode != 0:
        print(bench.stderr[-2000:], file=sys.stderr)
    report = {"out": str(out), "steps": summary["step"], "train_seconds": summary["train_seconds"],
              "seconds_per_step": summary["seconds_per_step"], "precision": summary["precision"],
              "largest_file_mib": round(largest, 2), "benchmark": str(bench_json)
              if bench.returncode == 0 else f"failed ({bench.returncode})",
              "wall_seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(report, indent=2))
    return 0 if bench.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
