"""What the numbers say: tables, summaries and verdicts computed from runs and metrics.

The chapters glue these numbers into their prose (:func:`cyclegan_lib.page.glue`); no display.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from . import paths
from .config import make_config
from .evaluate import diversity, metric
from .faces import detection_rate
from .models import ResnetGenerator, count_parameters
from .runs import read_history, run_info
from .stats import format_effect
from .tables import fmt, markdown_table

__all__ = [
    "run_info", "markdown_table", "parameter_table", "generator_macs", "preset_table",
    "CHANCE_D_LOSS", "loss_summary", "output_value_summary", "diversity", "timing_table",
    "face_summary", "face_detector_rates",
    "metric", "runs_table", "RATE_TOLERANCE", "KID_TOLERANCE", "compare",
    "quality_comparison", "rate_difference_se", "rate_noise_rows", "checkpoint_rates_table",
    "checkpoint_rates_summary", "pilots_table", "pilots_summary",
]


# -- tables --------------------------------------------------------------------------------

def parameter_table(ngf: int = 64) -> list[dict[str, Any]]:
    """Generator parameter counts for 3, 6 and 9 residual blocks, and their share of 9."""
    counts = {b: count_parameters(ResnetGenerator(ngf=ngf, n_blocks=b)) for b in (3, 6, 9)}
    per_block = (counts[6] - counts[3]) / 3
    return [{"blocks": b, "ngf": ngf, "parameters": n, "share of largest": n / counts[9],
             "in residual blocks": b * per_block / n} for b, n in counts.items()]


def generator_macs(ngf: int, n_blocks: int, size: int) -> int:
    """Multiply-accumulate operations of one generator forward pass on a ``size`` image."""
    net = ResnetGenerator(ngf=ngf, n_blocks=n_blocks)
    total = 0

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        nonlocal total
        if isinstance(module, nn.ConvTranspose2d):
            # each input element meets every weight of its group once
            total += int(inputs[0].numel() * module.out_channels * math.prod(module.kernel_size)
                         // module.groups)
        else:
            total += int(output.numel() * module.in_channels * math.prod(module.kernel_size)
                         // module.groups)

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.no_grad():
        net(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    return total


def preset_table(presets: Sequence[str], profile: str) -> list[dict[str, Any]]:
    """The experiment settings of presets at a profile, side by side (what each chapter changes)."""
    keys = ("gan_loss", "d_head", "d_patch", "pool_size", "generator_variant", "n_blocks",
            "image_size", "ngf", "ndf", "lambda_cycle", "lambda_identity")
    cfgs = {p: make_config(p, profile) for p in presets}
    return [{"setting": k, **{p: getattr(c, k) for p, c in cfgs.items()}} for k in keys]


# -- losses, outputs and timing ------------------------------------------------------------

CHANCE_D_LOSS = {"lsgan": 0.25, "nll": math.log(2.0)}


def loss_summary(run_dir: str | Path, tail: float = 0.25) -> dict[str, Any]:
    """Mean losses over the last ``tail`` of training, and how confident D ended up.

    ``D / chance``: D's loss over its value at output 1/2 (0.25 LSGAN, ln 2 NLL), comparable
    across losses; ``g_spread``: coefficient of variation of the generators' adversarial loss.
    """
    hist = read_history(run_dir)
    info = run_info(run_dir)
    n = len(hist.get("step", []))
    if n == 0:
        return {"steps": 0}
    start = int(n * (1 - tail))

    def mean(key: str) -> float:
        values = hist[key][start:]
        return sum(values) / len(values)

    def spread(key: str) -> float:
        values = hist[key][start:]
        m = sum(values) / len(values)
        var = sum((v - m) ** 2 for v in values) / len(values)
        return math.sqrt(var) / abs(m) if m else float("nan")

    chance = CHANCE_D_LOSS.get(info.get("gan_loss", "lsgan"), 0.25)
    d = (mean("D_A") + mean("D_B")) / 2
    return {"steps": n, "window": n - start, "gan_loss": info.get("gan_loss"),
            "G_adv": (mean("G_AB") + mean("G_BA")) / 2, "D": d, "D / chance": d / chance,
            "cycle": (mean("cycle_A") + mean("cycle_B")) / 2,
            "g_spread": (spread("G_AB") + spread("G_BA")) / 2}


def output_value_summary(images: "Any") -> dict[str, float]:
    """Min, max, mean and the share of values below 0 of a [-1, 1] image tensor."""
    t = images.detach().float()
    return {"min": float(t.min()), "max": float(t.max()), "mean": float(t.mean()),
            "share < 0": float((t < 0).float().mean())}


def timing_table(runs: Mapping[int, str | Path]) -> list[dict[str, Any]]:
    """Size and training time of runs keyed by block count, relative to the largest."""
    infos = {n: run_info(r) for n, r in runs.items()}
    ref = infos[max(infos)]
    return [{"blocks": n, "G params": i.get("params_G"), "steps": i.get("step"),
             "device": i.get("device"), "precision": i.get("precision"),
             "train min": round(i.get("train_seconds", 0) / 60, 1),
             "s / step": i.get("seconds_per_step"),
             "time vs largest": i["seconds_per_step"] / ref["seconds_per_step"]
             if i.get("seconds_per_step") and ref.get("seconds_per_step") else None,
             "params vs largest": i["params_G"] / ref["params_G"]
             if i.get("params_G") and ref.get("params_G") else None,
             "G compute vs largest": _macs(i, n) / _macs(ref, max(infos))
             if "ngf" in i and "image_size" in i else None}
            for n, i in infos.items()]


def _macs(info: Mapping[str, Any], blocks: int) -> int:
    return generator_macs(int(info["ngf"]), int(info.get("n_blocks", blocks)),
                          int(info["image_size"]))


# -- metrics and faces ---------------------------------------------------------------------

def runs_table(runs: Mapping[str, str | Path],
               metrics: Mapping[str, Mapping[str, Any]] | None = None,
               metric_names: Sequence[str] = ("anime det. G_AB(A)", "human det. G_BA(B)",
                                              "cycle L1 A", "KIDx100 A->B")
               ) -> list[dict[str, Any]]:
    """One row per run: what it changes, its size, how long it trained, and key metrics."""
    rows = []
    for label, run_dir in runs.items():
        info = run_info(run_dir)
        row: dict[str, Any] = {
            "run": label, "GAN loss": info.get("gan_loss"),
            "D sees": (f"{info['d_patch']} px patches"
                       if info.get("d_patch") and info["d_patch"] < info.get("image_size", 0)
                       else "whole image"),
            "D output": "one score" if info.get("d_head") == "single" else "score map",
            "buffer": info.get("pool_size"), "blocks": info.get("n_blocks"),
            "G params": info.get("params_G"), "steps": info.get("step"),
            "train min": round(info["train_seconds"] / 60, 1) if "train_seconds" in info
            else None,
        }
        for name in metric_names:
            row[name] = metric((metrics or {}).get(label), name)
        rows.append(row)
    for name in metric_names:
        if all(r[name] is None for r in rows):
            for r in rows:
                del r[name]
    return rows


def face_summary(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per qualitative test: photos, faces found, anime-detector rate on each model's outputs."""
    return [{"test": c, "photos": len(r.photos), "face found": sum(r.found),
             **{f"anime det. {m}": rate for m, rate in face_detector_rates(r.outputs).items()}}
            for c, r in results.items()]


def face_detector_rates(outputs: Mapping[str, Sequence[Any]]) -> dict[str, float | None]:
    """Share of each run's translated photos on which the anime-face detector fires."""
    try:
        cascade = paths.anime_cascade(search=True)
    except FileNotFoundError:
        return {label: None for label in outputs}
    return {label: detection_rate(list(images), cascade) if images else None
            for label, images in outputs.items()}


# -- verdicts ------------------------------------------------------------------------------

#: Smallest differences worth a word: 0.1 is about 1.4 standard errors of the difference of
#: two detector rates on 100 images; KID x100 from 100 images moves about 1 between resamplings.
RATE_TOLERANCE = 0.1
KID_TOLERANCE = 1.0


def compare(a: float | None, b: float | None, higher_is_better: bool, tolerance: float
            ) -> str:
    """``"better"``, ``"worse"`` or ``"about the same"`` (within ``tolerance``) for ``a`` against
    ``b``; ``"not measured"`` when either is missing.
    """
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)) or \
            (isinstance(b, float) and math.isnan(b)):
        return "not measured"
    diff = a - b if higher_is_better else b - a
    if abs(diff) <= tolerance:
        return "about the same"
    return "better" if diff > 0 else "worse"


def quality_comparison(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None
                       ) -> tuple[str, str]:
    """Compare two runs' human->anime quality: ``(word, detail)``."""
    ka, kb = metric(a, "KIDx100 A->B"), metric(b, "KIDx100 A->B")
    if ka is not None and kb is not None:
        return compare(ka, kb, False, KID_TOLERANCE), f"KID x100 {fmt(ka)} vs {fmt(kb)}"
    ra, rb = metric(a, "anime det. G_AB(A)"), metric(b, "anime det. G_AB(A)")
    word = compare(ra, rb, True, RATE_TOLERANCE)
    return word, f"anime-detector rate on translated test selfies {fmt(ra)} vs {fmt(rb)}"


def rate_difference_se(a: float, b: float, n: int) -> float:
    """Standard error of the difference of two detector rates, each the share of ``n`` images
    on which the detector fired (two independent binomial proportions)."""
    return math.sqrt(a * (1 - a) / n + b * (1 - b) / n)


def rate_noise_rows(metrics: Mapping[str, Mapping[str, Any]], reference: str = "stabilized"
                    ) -> list[dict[str, Any]]:
    """Each run's anime-detector rate on G_AB(testA) against ``reference``'s: the standard
    error of the difference on the number of test selfies evaluated, and the difference in
    standard errors (rows only where both rates were measured)."""
    ref = metric(metrics.get(reference), "anime det. G_AB(A)")
    if ref is None:
        return []
    rows = []
    for name, m in metrics.items():
        rate = metric(m, "anime det. G_AB(A)")
        if name == reference or rate is None:
            continue
        se = rate_difference_se(rate, ref, int(m["data"]["n_testA"]))
        rows.append({"run": name, "anime det. G_AB(A)": rate,
                     "SE of the difference to stabilised": se,
                     "difference / SE": (rate - ref) / se if se else None})
    return rows


# -- records of the published models ---------------------------------------------------------

def checkpoint_rates_table(rates: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A ``rates.json`` of ``scripts/checkpoint_rates.py`` as one row per checkpoint: the anime
    rate of G_AB(testA) and the human rate of G_BA(testB) of each kind of weights (ema, raw)."""
    by_step: dict[int, dict[str, Any]] = {}
    for r in rates["rows"]:
        row = by_step.setdefault(r["step"], {"step": r["step"]})
        row[f"anime det. ({r['weights']})"] = round(r["anime_rate"], 2)
        row[f"human det. G_BA ({r['weights']})"] = round(r["human_rate"], 2)
    return list(by_step.values())


def checkpoint_rates_summary(rates: Mapping[str, Any], last: int = 3) -> dict[str, float]:
    """What chapter 3 says of a ``rates.json``: mean and standard deviation of the anime rate
    over the ``last`` checkpoints of each kind of weights, and the averaged (ema) generator's
    peak against its final checkpoint, with the human rate of G_BA(testB) at both."""
    out: dict[str, float] = {}
    by_kind = {kind: [r for r in rates["rows"] if r["weights"] == kind] for kind in ("ema", "raw")}
    for kind, rows in by_kind.items():
        tail = [r["anime_rate"] for r in rows[-last:]]
        out[f"{kind}_last_mean"] = float(np.mean(tail))
        out[f"{kind}_last_sd"] = float(np.std(tail, ddof=1))
    ema = by_kind["ema"]
    peak = max(ema, key=lambda r: r["anime_rate"])
    out.update(ema_peak=peak["anime_rate"], ema_peak_step=peak["step"],
               ema_final=ema[-1]["anime_rate"], ema_human_peak=peak["human_rate"],
               ema_human_final=ema[-1]["human_rate"])
    return out


def pilots_table(pilots: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``pretrained/pilots.json`` (``scripts/pilots.py``) as one row per pilot: what it changed,
    its cost, steps, anime rate with interval and paired difference from ``base``."""
    return [{"pilot": name,
             "changed": ", ".join(f"{k}={v}" for k, v in r["overrides"].items())
                        or "(book profile)",
             "s/step": f"{r['seconds_per_step']:.2f}", "steps": f"{r['steps']:,}",
             "train min": r["train_minutes"],
             "anime det. G_AB(A)": format_effect(r["anime_rate"], *r["anime_ci"]).lstrip("+"),
             "minus base": format_effect(*r["minus_base"]) if "minus_base" in r else "",
             "human det. G_BA(B)": f"{r['human_rate_G_BA(testB)']:.2f}",
             "diversity / inputs": f"{r['diversity_ratio']:.2f}"}
            for name, r in pilots["pilots"].items()]


def pilots_summary(pilots: Mapping[str, Any]) -> dict[str, Any]:
    """What chapter 3 says of ``pilots.json``: the budget, the best pilot by anime rate against
    the unchanged ``base``, each pilot's steps and difference from ``base``, and how many
    times the base pilot's steps the costlier settings' steps took (cost per step)."""
    runs = pilots["pilots"]
    best = max(runs, key=lambda n: runs[n]["anime_rate"])
    out: dict[str, Any] = {"pilot_minutes": pilots["budget_minutes"], "pilot_best": best,
                           "pilot_base_rate": runs["base"]["anime_rate"],
                           "pilot_best_rate": runs[best]["anime_rate"]}
    for name, r in runs.items():
        key = name.replace("-", "_")
        out[f"pilot_steps_{key}"] = r["steps"]
        if "minus_base" in r:
            out[f"pilot_diff_{key}"] = format_effect(*r["minus_base"])
    costs = [runs["base"]["steps"] / runs[n]["steps"] for n in ("96px", "ngf64", "batch4")
             if n in runs]
    if costs:
        out.update(pilot_cost_low=min(costs), pilot_cost_high=max(costs))
    return out
