"""Training throughput with 1 vs N processes (torchrun, Gloo on CPU), as JSON.

    python benchmarks/ddp_throughput.py                      # 1 and 2 processes, cpu profile
    python benchmarks/ddp_throughput.py --procs 1 2 4 --steps 60 --warmup 10 --out result.json
    python benchmarks/ddp_throughput.py --amp off            # exact fp32 maths

Every configuration runs in fresh processes started by ``torchrun`` with one
torch thread per process (``OMP_NUM_THREADS=1``).  Each rank builds the
trainer of the ``stabilized`` preset at the chosen profile (``cpu``: 64 px,
ngf = ndf = 32), takes ``--warmup`` untimed steps, then times ``--steps``
full iterations (batch assembly, generator and discriminator updates, DDP
gradient all-reduce, the loss all-reduce every ``log_every`` steps) between
two barriers.  Images/s counts the images of domain A consumed by all ranks:
``steps x batch x processes / seconds``.  No run directory is written.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit  # noqa: E402


def _worker(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    from cyclegan_lib.config import make_config
    from cyclegan_lib.data import make_batch
    from cyclegan_lib.distributed import DistributedTrainer, launcher_env
    from cyclegan_lib.trainer import Trainer

    torch.set_num_threads(args.threads)
    env = launcher_env()
    world = env.world_size if env is not None else 1
    cfg = make_config("stabilized", args.profile, max_images=args.max_images, device="cpu",
                      threads=args.threads, amp=args.amp)
    with tempfile.TemporaryDirectory() as tmp:
        if world > 1:
            dist.init_process_group("gloo")
            trainer: Trainer = DistributedTrainer(cfg, args.data, Path(tmp) / "run", progress=False)
        else:
            trainer = Trainer(cfg, args.data, Path(tmp) / "run", progress=False)
        trainer.epoch_size = max(trainer.epoch_size, args.warmup + args.steps)
        plan = Trainer._epoch_plan(trainer, 0)  # no per-epoch logging collective
        pending = []

        def step(i: int) -> None:
            a, b = make_batch(trainer.data, plan, i * cfg.batch_size, cfg.batch_size,
                              cfg.image_size, trainer.device)
            pending.append(trainer.train_step(a, b))
            if (i + 1) % cfg.log_every == 0:
                trainer._flush(pending)

        for i in range(args.warmup):
            step(i)
        trainer._flush(pending)
        if world > 1:
            dist.barrier()
        start = time.perf_counter()
        for i in range(args.warmup, args.warmup + args.steps):
            step(i)
        trainer._flush(pending)
        if world > 1:
            dist.barrier()
        seconds = time.perf_counter() - start
        if world > 1:
            dist.destroy_process_group()
    if env is None or env.is_main:
        images = args.steps * cfg.batch_size * world
        Path(args.result).write_text(json.dumps({
            "processes": world, "threads_per_process": torch.get_num_threads(),
            "steps": args.steps, "seconds": round(seconds, 3),
            "seconds_per_step": round(seconds / args.steps, 4),
            "precision": trainer.precision,
            "images_per_s": round(images / seconds, 3)}))


def _launch(n: int, args: argparse.Namespace, result: Path) -> dict:
    torchrun = Path(sys.executable).parent / "torchrun"
    launcher = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m",
                                                           "torch.distributed.run"]
    cmd = [*launcher, "--standalone", f"--nproc_per_node={n}", __file__, "--worker",
           "--result", str(result), "--profile", args.profile, "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--threads", str(args.threads),
           "--max-images", str(args.max_images), "--data", str(args.data), "--amp", args.amp]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(REPO))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"ddp_throughput: {n} process(es) failed (exit {proc.returncode}): "
                 f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(result.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--max-images", type=int, default=200,
                        help="images per domain to load (speed does not depend on it)")
    parser.add_argument("--data", default=os.environ.get("CYCLEGAN_DATA",
                                                         str(REPO.parent / "shared" / "data"
                                                             / "selfie2anime")))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"],
                        help="bf16 autocast, as the amp training option")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    import torch

    from cyclegan_lib.config import make_config

    cfg = make_config("stabilized", args.profile)
    load_before = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.procs:
            results.append(_launch(n, args, Path(tmp) / f"result_{n}.json"))
    base = results[0]["images_per_s"]
    for r in results:
        r["speedup_vs_first"] = round(r["images_per_s"] / base, 3)
    report = {
        "benchmark": "ddp_throughput", "preset": "stabilized", "profile": args.profile,
        "image_size": cfg.image_size, "ngf": cfg.ngf, "ndf": cfg.ndf,
        "batch_per_process": cfg.batch_size, "backend": "gloo", "device": "cpu",
        "warmup_steps": args.warmup, "results": results,
        "cpu_count": os.cpu_count(), "loadavg_1min_before": round(load_before[0], 2),
        "loadavg_1min_after": round(os.getloadavg()[0], 2),
        "torch": torch.__version__, "python": platform.python_version(),
        "utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }
    emit(report, args.out)


if __name__ == "__main__":
    main()
