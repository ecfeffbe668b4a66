"""Inference speed of the 9-block ResNet generator (the paper's G) at 256 px.

Prints JSON: batch-1 latency (ms, median of repeats) for each execution
variant, the throughput (images/s) of the best variant at the best batch size,
how far each variant's output is from the plain fp32 output, and peak memory.

    python benchmarks/inference.py                 # CPU (and CUDA when present)
    python benchmarks/inference.py --device cpu --threads 2 --repeats 20

Variants (each skipped with a reason where it cannot run):

* ``eager_fp32``: ``torch.no_grad()``, contiguous NCHW: how the official test script runs;
* ``inference_mode_fp32``: ``torch.inference_mode()`` (no autograd bookkeeping);
* ``channels_last_fp32``: NHWC weights and activations (oneDNN's native layout on CPU);
* ``jit_freeze_fp32``: ``torch.jit.trace`` + ``torch.jit.freeze`` (constant weights, oneDNN
  conv fusion) + ``optimize_for_inference``;
* ``compile_fp32``: ``torch.compile`` (inductor) with weight freezing;
* ``bf16`` variants: the same in bfloat16 where the CPU has native bf16
  (``avx512_bf16``/AMX) or on CUDA; their output differs from fp32 by rounding,
  which the JSON reports (``max_abs_diff`` on the [-1, 1] output).
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, machine, other_load, peak_memory, summarize, sync  # noqa: E402

from cyclegan_lib.models import ResnetGenerator, init_weights  # noqa: E402
from cyclegan_lib.precision import resolve_amp  # noqa: E402


def time_calls(fn, x: torch.Tensor, device: torch.device, repeats: int, warmup: int
               ) -> list[float]:
    for _ in range(warmup):
        fn(x)
    sync(device)
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        sync(device)
        out.append(time.perf_counter() - t)
    return out


def build_variants(net: ResnetGenerator, device: torch.device, size: int, bf16_ok: bool,
                   want: set[str] | None) -> dict:
    """name -> (callable taking an fp32 NCHW batch, setup seconds) or a skip reason (str)."""
    variants: dict = {}

    def add(name: str, make):
        if want is not None and name not in want:
            return
        t = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fn = make()
                example = torch.randn(1, 3, size, size, device=device)
                fn(example)  # trace/compile happens on the first call: part of setup
                sync(device)
            variants[name] = (fn, time.perf_counter() - t)
        except Exception as exc:  # a variant that cannot run here is reported, not fatal
            variants[name] = f"skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"

    def eager(model, mode, memory_format=torch.contiguous_format, dtype=None):
        ctx = torch.inference_mode if mode == "inference" else torch.no_grad

        def fn(x):
            with ctx():
                x = x.to(memory_format=memory_format)
                if dtype is not None:
                    with torch.autocast(device.type, dtype=dtype):
                        return model(x).float()
                return model(x)
        return fn

    cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
    add("eager_fp32", lambda: eager(net, "no_grad"))
    add("inference_mode_fp32", lambda: eager(net, "inference"))
    add("channels_last_fp32", lambda: eager(cl, "inference", torch.channels_last))

    def jit_freeze(dtype=None):
        model = copy.deepcopy(net)
        if dtype is not None:
            model = model.to(dtype)
        example = torch.randn(1, 3, size, size, device=device, dtype=dtype or torch.float32)
        with torch.no_grad():
            traced = torch.jit.freeze(torch.jit.trace(model, example))
            if device.type == "cpu":
                traced = torch.jit.optimize_for_inference(traced)

        def fn(x):
            with torch.no_grad():
                return traced(x if dtype is None else x.to(dtype)).float()
        return fn

    add("jit_freeze_fp32", lambda: jit_freeze())

    def compiled(dtype=None, memory_format=torch.contiguous_format):
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True  # weights as constants: prepacked oneDNN convs
        model = copy.deepcopy(net).to(memory_format=memory_format)
        if dtype is not None:
            model = model.to(dtype)
        cmodel = torch.compile(model)

        def fn(x):
            with torch.no_grad():
                x = x.to(memory_format=memory_format)
                return cmodel(x if dtype is None else x.to(dtype)).float()
        return fn

    add("compile_fp32", lambda: compiled())
    if device.type == "cuda":
        add("compile_channels_last_fp32", lambda: compiled(memory_format=torch.channels_last))
    if bf16_ok:
        add("autocast_bf16_channels_last", lambda: eager(cl, "inference", torch.channels_last,
                                                         torch.bfloat16))
        add("jit_freeze_bf16", lambda: jit_freeze(torch.bfloat16))
        add("compile_bf16", lambda: compiled(torch.bfloat16))
        add("compile_bf16_channels_last", lambda: compiled(torch.bfloat16, torch.channels_last))
    else:
        variants["bf16"] = "skipped: no native bf16 on this device (avx512_bf16/amx or CUDA)"
    return variants


def bench_device(device: torch.device, args) -> dict:
    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(ngf=args.ngf, n_blocks=args.blocks)).to(device).eval()
    bf16_ok = resolve_amp("auto", device) == "bf16"  # the trainer's rule: native bf16 only
    want = set(args.variants.split(",")) if args.variants else None
    variants = build_variants(net, device, args.size, bf16_ok, want)
    x = torch.randn(1, 3, args.size, args.size, device=device,
                    generator=torch.Generator(device).manual_seed(1))
    with torch.no_grad():
        ref = net(x).float()
    results: dict = {}
    for name, v in variants.items():
        if isinstance(v, str):
            results[name] = v
            continue
        fn, setup = v
        times = time_calls(fn, x, device, args.repeats, args.warmup)
        with torch.no_grad():
            diff = (fn(x).float() - ref).abs()
        results[name] = {"latency_ms": summarize([t * 1000 for t in times]),
                         "setup_s": round(setup, 2),
                         "max_abs_diff": float(f"{diff.max().item():.3g}"),
                         "mean_abs_diff": float(f"{diff.mean().item():.3g}")}
    timed = {k: v for k, v in results.items() if isinstance(v, dict)}
    best = min(timed, key=lambda k: timed[k]["latency_ms"]["median"])
    fp32 = {k: v for k, v in timed.items() if "fp32" in k}
    best_fp32 = min(fp32, key=lambda k: fp32[k]["latency_ms"]["median"]) if fp32 else None
    # Throughput of the best variant (and the best exact one) over batch sizes.
    throughput: dict = {}
    for name in dict.fromkeys([best, best_fp32]):
        if name is None:
            continue
        fn = variants[name][0]
        per_batch = {}
        for bs in [int(b) for b in args.batches.split(",")]:
            xb = torch.randn(bs, 3, args.size, args.size, device=device)
            times = time_calls(fn, xb, device, max(3, args.repeats // bs), 1)
            per_batch[bs] = round(bs / sorted(times)[len(times) // 2], 2)
        top = max(per_batch, key=per_batch.get)
        throughput[name] = {"images_per_s_by_batch": per_batch, "best_batch": top,
                            "best_images_per_s": per_batch[top]}
    baseline = timed.get("eager_fp32", {}).get("latency_ms", {}).get("median")
    out = {
        "device": str(device), "machine": machine(device),
        "settings": {"size": args.size, "ngf": args.ngf, "blocks": args.blocks,
                     "repeats": args.repeats, "warmup": args.warmup},
        "variants": results,
        "best": {"variant": best, "latency_ms": timed[best]["latency_ms"]["median"],
                 "speedup_vs_eager_fp32": round(baseline / timed[best]["latency_ms"]["median"], 3)
                 if baseline else None},
        "best_fp32": {"variant": best_fp32,
                      "latency_ms": timed[best_fp32]["latency_ms"]["median"]} if best_fp32 else None,
        "throughput": throughput,
        "memory": peak_memory(device),
    }
    if device.type == "cpu":
        out["target_ms"] = args.target_ms
        out["target_met"] = timed[best]["latency_ms"]["median"] < args.target_ms
        out["target_met_fp32"] = (timed[best_fp32]["latency_ms"]["median"] < args.target_ms
                                  if best_fp32 else None)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="all", help="cpu, cuda or all (cpu, plus cuda if present)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--blocks", type=int, default=9)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batches", default="1,2,4,8", help="batch sizes for the throughput sweep")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all)")
    p.add_argument("--variants", default=None, help="comma list to run only some variants")
    p.add_argument("--target-ms", type=float, default=250.0)
    p.add_argument("--out", default=None, help="also write the JSON here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ([torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
               if args.device == "all" else [torch.device(args.device)])
    report = {"benchmark": "inference", "results": [bench_device(d, args) for d in devices],
              "busy_processes_at_end": other_load()}
    if not torch.cuda.is_available():
        report["cuda"] = "not available on this machine: no CUDA figures"
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
