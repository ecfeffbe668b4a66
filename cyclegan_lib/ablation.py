"""The single-factor stabilisation ablation: which of the paper's fixes carries the training?

:data:`cyclegan_lib.config.ABLATIONS` names ten runs (naive and stabilised, each with one fix
added or removed); ``scripts/run_ablation.sh`` trains them with the arguments that
``python -m cyclegan_lib.ablation args`` prints, and :func:`ablation_summary` measures them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .book import ChapterContext, ensure_runs
from .claims import measure_test_set
from .config import ABLATIONS, PATCH_SHARES, ConfigError, TrainConfig, config_with, make_config
from .evaluate import pairwise_l1
from .paths import anime_cascade as anime_cascade_path
from .report import loss_summary, run_info
from .stats import bootstrap_ci, format_effect, paired_difference, pairs_mean, resample_ci, verdict
from .tables import markdown_table

__all__ = ["ablation_config", "ablation_args", "ablation_baseline", "ablation_summary",
           "ablation_table", "save_ablation", "load_ablation", "diversity_ratio_ci",
           "ABLATION_TAIL_STEPS", "is_stable", "ablation_rows", "patch_share_rows"]

#: ``{name: (base preset, overrides)}``: config.ABLATIONS, or config.PATCH_SHARES (chapter 4).
Variants = Mapping[str, tuple[str, Mapping[str, Any]]]

#: Discriminator balance is averaged over this many final steps of each run.
ABLATION_TAIL_STEPS = 100


def _overrides(name: str, profile: str) -> tuple[str, dict[str, Any]]:
    if name not in ABLATIONS:
        raise ConfigError(f"unknown ablation {name!r} (choose from {', '.join(ABLATIONS)})")
    preset, changes = ABLATIONS[name]
    size = make_config(preset, profile).image_size
    changes = dict(changes)
    if isinstance(changes.get("d_patch"), int):  # 70x70 inputs: the whole image when smaller
        changes["d_patch"] = min(changes["d_patch"], size)
    return preset, changes


def ablation_config(name: str, profile: str = "ablation", **extra: Any) -> TrainConfig:
    """The :class:`TrainConfig` of one ablation variant at ``profile`` (``None`` values kept)."""
    preset, changes = _overrides(name, profile)
    return config_with(preset, profile, {**changes, **{k: v for k, v in extra.items()
                                                       if v is not None}})


def ablation_args(name: str, profile: str = "ablation") -> list[str]:
    """``cyclegan-anime train`` arguments of one variant: ``--preset P --set K=V ...``."""
    preset, changes = _overrides(name, profile)
    args = ["--preset", preset]
    for key, value in changes.items():
        args += ["--set", f"{key}={'none' if value is None else value}"]
    return args


def ablation_baseline(name: str, variants: Variants = ABLATIONS) -> str:
    """The run a variant differs from by one setting (itself for a baseline)."""
    preset, changes = variants[name]
    return preset if changes else name


# -- measurements ---------------------------------------------------------------------------

def diversity_ratio_ci(inputs: torch.Tensor, outputs: torch.Tensor, n: int = 2000,
                       seed: int = 0) -> tuple[float, float, float]:
    """Output / input diversity (:func:`.report.diversity`), bootstrap interval over images."""
    d_in, d_out = pairwise_l1(inputs), pairwise_l1(outputs)

    def ratio(idx: np.ndarray) -> float:
        return pairs_mean(d_out, idx) / pairs_mean(d_in, idx)

    return (ratio(np.arange(len(d_in))), *resample_ci(ratio, len(d_in), n, seed))


def ablation_summary(runs_dir: str | Path, data_dir: str | Path,
                     names: Sequence[str] | None = None, n_images: int | None = None,
                     device: str = "cpu", anime_cascade: str | Path | None = None,
                     n_boot: int = 2000, seed: int = 0,
                     variants: Variants = ABLATIONS) -> list[dict[str, Any]]:
    """One row per trained variant of ``variants`` in ``runs_dir`` (untrained ones are skipped).

    Collapse (output / input diversity), balance (``D / chance`` over the last
    :data:`ABLATION_TAIL_STEPS` steps) and the anime-detector rate on G_AB(testA), each with an
    interval, and the rate's paired difference from the variant's baseline (``vs baseline``).
    """
    runs_dir = Path(runs_dir)
    cascade = anime_cascade_path(anime_cascade)
    names = [n for n in (names or variants)
             if (runs_dir / n / "checkpoints").is_dir()
             and any((runs_dir / n / "checkpoints").glob("step_*.pt"))]
    hits: dict[str, np.ndarray] = {}
    rows = []
    for name in names:
        run = runs_dir / name
        info = run_info(run)
        m = measure_test_set(run, data_dir, n_images, device, human=False, anime_cascade=cascade)
        x, y, hits[name] = m["inputs"], m["outputs"], m["anime"]
        div, dlo, dhi = diversity_ratio_ci(x, y, n=n_boot, seed=seed)
        rate, rlo, rhi = bootstrap_ci(hits[name], n=n_boot, seed=seed)
        steps = int(info.get("step", 0))
        ls = loss_summary(run, tail=min(1.0, ABLATION_TAIL_STEPS / steps)) if steps else {}
        preset, changes = variants[name]
        rows.append({"variant": name, "baseline": ablation_baseline(name, variants),
                     "changed": ", ".join(f"{k}={info.get(k, v)}" for k, v in changes.items())
                     or "-",
                     "steps": steps, "diversity": div, "diversity low": dlo,
                     "diversity high": dhi, "D / chance": ls.get("D / chance"),
                     "anime rate": rate, "anime low": rlo, "anime high": rhi})
    for row in rows:
        base = row["baseline"]
        if base != row["variant"] and base in hits and len(hits[base]) == len(
                hits[row["variant"]]):
            eff, lo, hi = paired_difference(hits[row["variant"]], hits[base], n=n_boot,
                                            seed=seed)
            row.update({"vs baseline": eff, "vs low": lo, "vs high": hi,
                        "call": verdict(lo, hi)})
        else:
            row.update({"vs baseline": None, "vs low": None, "vs high": None, "call": "-"})
    return rows


def ablation_table(rows: Sequence[dict[str, Any]]) -> str:
    """:func:`ablation_summary` rows as the Markdown table of chapter 3 (intervals in brackets)."""

    def ci(r: dict[str, Any], key: str, lo: str, hi: str) -> str:
        return format_effect(r.get(key), r.get(lo), r.get(hi)).lstrip("+")

    shown = [{"variant": r["variant"], "changed": r["changed"], "steps": r["steps"],
              "diversity / inputs' [95% CI]": ci(r, "diversity", "diversity low",
                                                 "diversity high"),
              "D loss / chance (last 100 steps)": r["D / chance"],
              "anime det. G_AB(testA) [95% CI]": ci(r, "anime rate", "anime low", "anime high"),
              "vs baseline [95% CI]": format_effect(r.get("vs baseline"), r.get("vs low"),
                                                    r.get("vs high")),
              "call": r.get("call", "-")} for r in rows]
    return markdown_table(shown)


def save_ablation(rows: Sequence[dict[str, Any]], path: str | Path,
                  profile: str = "ablation", variants: Variants = ABLATIONS) -> Path:
    """Write :func:`ablation_summary` rows as JSON (with the profile and the step budget)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    steps = sorted({int(r["steps"]) for r in rows})
    missing = [n for n in variants if n not in {r["variant"] for r in rows}]
    payload = {"profile": profile, "steps": steps[0] if len(steps) == 1 else steps,
               "missing": missing, "rows": list(rows)}
    path.write_text(json.dumps(payload, indent=1, default=float) + "\n")
    return path


def load_ablation(path: str | Path, variants: Variants = ABLATIONS) -> dict[str, Any]:
    """The JSON written by :func:`save_ablation`: ``profile``, ``steps``, ``missing``, ``rows``."""
    data = json.loads(Path(path).read_text())
    data.setdefault("missing", [n for n in variants
                                if n not in {r["variant"] for r in data["rows"]}])
    return data


def is_stable(d_over_chance: float | None, diversity: float) -> bool:
    """Training counts as stable when the discriminators' loss ended at 0.5 to 1.2 times its
    value at chance and the outputs differ from input to input (>= 0.2 x the inputs')."""
    return 0.5 <= (d_over_chance or 0) <= 1.2 and diversity >= 0.2


def ablation_rows(ctx: ChapterContext) -> tuple[list[dict[str, Any]], list[str], str]:
    """Chapter 3's ablation for a chapter: ``(rows, variants missing, where the rows are
    from)``, measured from the finished runs under ``runs/ablation`` if any, else the record
    ``pretrained/ablation.json``."""
    folder = ctx.runs_dir / "ablation"
    names = [n for n in ABLATIONS if (folder / n / "summary.json").is_file()]
    if names:
        rows = ablation_summary(folder, ctx.data_dir, names,
                                n_images=8 if ctx.profile == "smoke" else None)
        return (rows, [n for n in ABLATIONS if n not in names],
                "measured now from the runs under the runs folder (`ablation/<variant>`)")
    saved = load_ablation(ctx.repo_root / "pretrained" / "ablation.json")
    return (saved["rows"], saved["missing"],
            "loaded from `pretrained/ablation.json`, written by `python -m cyclegan_lib.ablation "
            "summary` from the ten runs, because the runs are not under this page's runs folder")


def patch_share_rows(ctx: ChapterContext) -> tuple[list[dict[str, Any]], int, str]:
    """Chapter 4's patch-share runs for a chapter: ``(rows, steps, where the rows are from)``;
    at the book profile the record ``pretrained/patch_shares.json``, else the runs of the
    chapter's profile (trained if missing)."""
    saved = ctx.repo_root / "pretrained" / "patch_shares.json"
    if ctx.profile == "book" and saved.is_file():
        record = load_ablation(saved, PATCH_SHARES)
        return (record["rows"], record["steps"],
                "loaded from `pretrained/patch_shares.json`, measured by "
                f"`scripts/patch_shares.sh` on the four runs at step {record['steps']:,}")
    ensure_runs(ctx, list(PATCH_SHARES))
    rows = ablation_summary(ctx.runs_dir / ctx.profile, ctx.data_dir, list(PATCH_SHARES),
                            n_images=8 if ctx.profile == "smoke" else None, variants=PATCH_SHARES)
    return rows, rows[0]["steps"], f"measured now from the four runs of the `{ctx.profile}` profile"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cyclegan_lib.ablation")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("args", help="print 'NAME train-arguments' per variant")
    p.add_argument("--profile", default="ablation")
    p.add_argument("names", nargs="*")
    q = sub.add_parser("summary", help="measure the trained variants and write JSON")
    q.add_argument("--runs", required=True, help="folder holding one run per variant")
    q.add_argument("--data", required=True, help="selfie2anime folder")
    q.add_argument("--out", required=True, help="JSON file to write")
    q.add_argument("--profile", default="ablation")
    q.add_argument("--n-images", type=int, default=None)
    q.add_argument("--variants", choices=("ablation", "shares"), default="ablation",
                   help="config.ABLATIONS (chapter 3) or config.PATCH_SHARES (chapter 4)")
    args = parser.parse_args(argv)
    if args.command == "summary":
        variants = PATCH_SHARES if args.variants == "shares" else ABLATIONS
        rows = ablation_summary(args.runs, args.data, n_images=args.n_images, variants=variants)
        print(save_ablation(rows, args.out, args.profile, variants))
        return 0
    try:
        for name in args.names or ABLATIONS:
            ablation_config(name, args.profile)  # fail before training on a bad combination
            print(" ".join([name, *ablation_args(name, args.profile)]))
    except ConfigError as exc:
        print(f"ablation: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
