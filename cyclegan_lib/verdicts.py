"""The verdict table of chapter 7: each claim of the paper, what measures it, and the rule.

:func:`gather` makes the measurements with the same library calls as the chapters that test
each claim; every rule below is a plain function of that :class:`Evidence`, so a verdict
changes only when the numbers do, and the tests check each rule on made-up numbers.  A
difference counts only when its 95% interval excludes zero (:func:`~.stats.verdict`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from . import ablation, book, claims, report
from .ablation import is_stable
from .stats import format_effect, format_interval, paired_difference
from .tables import markdown_table

__all__ = ["STATUSES", "claim_row", "claims_table", "Evidence", "gather", "RULES",
           "claim_rows"]

#: The four outcomes of a claim; "not testable here" must say why in parentheses.
STATUSES = ("reproduced", "not reproduced", "contradicted", "not testable here")


def claim_row(claim: str, measured: str, status: str, effect_text: str = "n/a"
              ) -> dict[str, str]:
    """One row of the verdict table, with the status checked against :data:`STATUSES`.

    ``claim`` is the paper's own words; ``effect_text`` the effect as the chapter formats it
    (:func:`format_effect`, or e.g. "37.9% of the parameters" for a count without interval).
    """
    base = status.split("(")[0].strip()
    if base not in STATUSES:
        raise ValueError(f"status {status!r}: choose from {', '.join(STATUSES)}")
    if base == "not testable here" and "(" not in status:
        raise ValueError("a 'not testable here' status must say why, in parentheses")
    return {"claim": claim, "measured": measured, "effect [95% CI]": effect_text,
            "status": status}


def claims_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The verdict table as Markdown (rows from :func:`claim_row`), each status in bold."""
    shown = []
    for r in rows:
        row = claim_row(r["claim"], r["measured"], r["status"],
                        effect_text=r.get("effect [95% CI]", r.get("effect", "n/a")))
        row["status"] = f"**{row['status']}**"
        shown.append(row)
    return markdown_table(shown, columns=["claim", "measured", "effect [95% CI]", "status"],
                          headers={"claim": "the paper says", "measured": "what we measured",
                                   "effect [95% CI]": "effect [95% CI]"})


# -- the measurements ------------------------------------------------------------------------

@dataclass
class Evidence:
    """Everything the rules read; each entry is what the named library call returns."""

    losses: dict[str, dict]     # report.loss_summary of naive and patch32
    diversity: dict[str, float]  # book.diversity_ratio (output / inputs') of naive and patch32
    test: dict[str, dict]       # claims.measure_test_set of naive, stabilized and patch32
    blocks: dict[str, Any]      # claims.block_measures of 3, 6 and 9 blocks (reference 9)
    qual: dict[int, dict]       # claims.qualitative_measures of 3 and 9 blocks
    ablation: dict[str, dict]   # chapter 3's single-factor ablation, rows by variant
    shares: dict[str, dict]     # chapter 4's patch-share runs, rows by variant
    parameter_share: float      # 3-block generator parameters / 9-block ones (ngf 64)


def gather(ctx: book.ChapterContext, runs: Mapping[str, Path]) -> Evidence:
    """Measure every claim for the runs of ``naive``, ``stabilized``, ``patch32``, ``blocks3``
    and ``blocks6`` (a few images at the ``smoke`` profile), with the ablation and the
    patch-share rows of chapters 3 and 4 (:mod:`.ablation`)."""
    small = ctx.profile == "smoke"
    n_images = 8 if small else None
    abl_rows, _, _ = ablation.ablation_rows(ctx)
    share_rows, _, _ = ablation.patch_share_rows(ctx)
    return Evidence(
        losses={p: report.loss_summary(runs[p]) for p in ("naive", "patch32")},
        diversity={p: book.diversity_ratio(ctx, runs[p]) for p in ("naive", "patch32")},
        test={p: claims.measure_test_set(runs[p], ctx.data_dir, n_images, ctx.device)
              for p in ("naive", "stabilized", "patch32")},
        blocks=claims.block_measures(
            {"3 blocks": runs["blocks3"], "6 blocks": runs["blocks6"],
             "9 blocks": runs["stabilized"]}, ctx.data_dir, ctx.faces_dir,
            reference="9 blocks", n_images=n_images, n_pairs=6 if small else None,
            device=ctx.device),
        qual={n: claims.qualitative_measures(runs[p], ctx.faces_dir, n=6 if small else None,
                                             device=ctx.device)
              for n, p in ((3, "blocks3"), (9, "stabilized"))},
        ablation={r["variant"]: r for r in abl_rows},
        shares={r["variant"]: r for r in share_rows},
        parameter_share=report.parameter_table(ngf=64)[0]["share of largest"])


# -- the rules, one claim each ---------------------------------------------------------------

def naive_fails(ev: Evidence) -> dict[str, str]:
    rate = claims.interval(ev.test["naive"]["anime"])
    stable = is_stable(ev.losses["naive"].get("D / chance"), ev.diversity["naive"])
    return claim_row(
        "the naive model fails", "anime-detector rate on G_AB(testA); output diversity / inputs'",
        "reproduced" if not stable or rate["high"] < 0.1 else "not reproduced",
        effect_text=f"rate {format_interval(rate, signed=False)}; "
                    f"diversity {ev.diversity['naive']:.2f}")


def lsgan_and_buffer_stabilise(ev: Evidence) -> dict[str, str]:
    keys = ("naive+lsgan", "naive+buffer", "stabilized-lsgan", "stabilized-buffer")
    abl = ev.ablation
    present = [k for k in keys if k in abl]
    if not present:
        status = ("not testable here (the ablation runs with and without LSGAN or the buffer "
                  "are not finished)")
    else:
        adds = any(abl[k]["diversity low"] > 0.2 for k in keys[:2] if k in abl)
        removes = any(abl[k]["diversity high"] < 0.2 for k in keys[2:] if k in abl)
        missing = [k for k in keys if k not in abl]
        status = "reproduced" if adds or removes else (
            "not reproduced" + (f" (runs missing: {', '.join(missing)})" if missing else ""))
    return claim_row(
        "LSGAN and the history buffer stabilise training",
        "ablation, 400 steps: output diversity / inputs' with each fix added to the naive model "
        "or removed from the stabilised one", status,
        effect_text="; ".join(
            f"{k}: " + format_effect(abl[k]["diversity"], abl[k]["diversity low"],
                                     abl[k]["diversity high"]).lstrip("+")
            for k in present) or "n/a")


def patch32_unstable(ev: Evidence) -> dict[str, str]:
    s32 = ev.shares["scaled32"]
    return claim_row(
        "with 32x32 patches the training was unstable",
        "D loss / chance and output diversity / inputs' of the 32x32 run at 64 px, and of the "
        "8x8-patch run (the paper's 32x32 share of the face)",
        "contradicted" if is_stable(s32["D / chance"], s32["diversity"]) else "reproduced",
        effect_text=f"64 px: D/chance {ev.losses['patch32'].get('D / chance', float('nan')):.2f}, "
                    f"diversity {ev.diversity['patch32']:.2f}; paper's share: D/chance "
                    f"{s32['D / chance']:.2f}, diversity {s32['diversity']:.2f}")


def patch32_cannot_learn(ev: Evidence) -> dict[str, str]:
    d32 = dict(zip(("effect", "low", "high"),
                   paired_difference(ev.test["patch32"]["anime"], ev.test["stabilized"]["anime"])))
    s32 = ev.shares["scaled32"]
    shares = {"effect": s32["vs baseline"], "low": s32["vs low"], "high": s32["vs high"]}
    return claim_row(
        "with 32x32 patches the model was unable to learn",
        "anime rate, 32x32 - 70x70 at 64 px and 8x8 - 16-px field (the paper's shares), paired",
        {"lower": "reproduced", "higher": "contradicted"}.get(s32["call"], "not reproduced"),
        effect_text=f"64 px: {format_interval(d32)}; paper's share: {format_interval(shares)}")


def three_blocks_parameter_share(ev: Evidence) -> dict[str, str]:
    share = ev.parameter_share
    return claim_row("the 3-block generator has 38% of the parameters of the 9-block one",
                     "parameters counted from the models (ngf 64)",
                     "reproduced" if round(share * 100) == 38 else "not reproduced",
                     effect_text=f"{share:.1%}")


def fewer_blocks_look_human(ev: Evidence) -> dict[str, str]:
    diffs = ev.blocks["diffs"]["3 blocks"]
    dh, ds, dy = diffs["human"], diffs["structure"], diffs["eyes"]
    # the direct measures of "looks human": the face detector, and smaller (less anime) eyes
    direct = {dh["call"], {"lower": "higher", "higher": "lower"}.get(dy["call"], dy["call"])}
    status = ("reproduced" if "higher" in direct and "lower" not in direct else
              "contradicted" if "lower" in direct and "higher" not in direct else
              "not reproduced" + (" (3 blocks keep slightly more of the input's structure, but "
                                  "neither the human-face detector nor the eye width tells them "
                                  "apart)" if ds["call"] == "higher" else ""))
    return claim_row(
        "fewer blocks look more human (eyes, mouth, a rounder face)",
        "3 - 9 blocks, paired: human-detector rate, eye width and structure SSIM on G_AB(testA); "
        "face roundness not measured", status,
        effect_text=f"human {format_interval(dh)}; SSIM {format_interval(ds, 3)}; "
                    f"eye width {format_interval(dy, 3)}")


def fewer_blocks_generalise(ev: Evidence) -> dict[str, str]:
    return claim_row(
        "fewer blocks generalise better", "-",
        "not testable here (the paper gives no measure; chapter 6's hard-photo rates per block "
        "count rest on 7 or 8 photos per group)", effect_text="n/a")


def nine_blocks_most_anime(ev: Evidence) -> dict[str, str]:
    a3, a6 = ev.blocks["diffs"]["3 blocks"]["anime"], ev.blocks["diffs"]["6 blocks"]["anime"]
    calls = {a3["call"], a6["call"]}
    return claim_row(
        "the 9-block model's outputs look the most like anime",
        "anime-detector rate, 3 - 9 and 6 - 9 blocks (paired)",
        "reproduced" if calls == {"lower"} else "contradicted" if "higher" in calls
        else "not reproduced",
        effect_text=f"3-9: {format_interval(a3)}; 6-9: {format_interval(a6)}")


def expressions_kept(ev: Evidence) -> dict[str, str]:
    de = ev.qual[9]["expressions"]["diff"]
    return claim_row(
        "facial expressions are kept", "correlation of input change and output change, smiling "
        "vs neutral, matched - mismatched person (9 blocks)",
        "reproduced" if de["call"] == "higher" else "not reproduced",
        effect_text=format_interval(de))


def nine_blocks_most_consistent(ev: Evidence) -> dict[str, str]:
    cons = ev.blocks["consistency"]
    c9, others = cons["9 blocks"], [cons[k] for k in ("3 blocks", "6 blocks")]
    return claim_row(
        "the 9-block model is the most consistent across scenes",
        "distance between a person's two outputs / between different people's (lower: more "
        "consistent)",
        "reproduced" if all(c9["high"] < o["low"] for o in others) else
        "contradicted" if any(o["high"] < c9["low"] for o in others) else "not reproduced",
        effect_text="; ".join(
            f"{k.split()[0]}: {format_interval(c, signed=False, key='ratio')}"
            for k, c in cons.items()))


def facial_hair_kept(ev: Evidence) -> dict[str, str]:
    b9, b3 = ev.qual[9]["facial_hair"]["diff"], ev.qual[3]["facial_hair"]["diff"]
    return claim_row(
        "facial hair is kept, better with fewer blocks",
        "lower-face dark-pixel share, output - input (bearded photos)",
        "contradicted" if b9["call"] == "lower" and b3["call"] == "lower" else
        "reproduced" if b9["call"] != "lower" and b3["call"] != "lower" else "not reproduced",
        effect_text=f"9 blocks {format_interval(b9)}; 3 blocks {format_interval(b3)}")


def angled_faces_worse(ev: Evidence) -> dict[str, str]:
    da = ev.qual[9]["angled_vs_frontal"]
    return claim_row(
        "angled faces are translated worse",
        "anime rate, angled - frontal photos (9 blocks, unpaired)",
        {"lower": "reproduced", "higher": "contradicted"}.get(da["call"], "not reproduced"),
        effect_text=format_interval(da))


def dark_faces_worst(ev: Evidence) -> dict[str, str]:
    rates = ev.qual[9]["rates"]
    dark, others = rates["dark"], [r for g, r in rates.items() if g != "dark"]
    return claim_row(
        "dark faces give the worst results",
        "anime rate of the dark photos vs the other groups (9 blocks)",
        "reproduced" if all(dark["high"] < r["low"] for r in others) else
        "contradicted" if any(r["high"] < dark["low"] for r in others) else "not reproduced",
        effect_text="; ".join(f"{g} {r['effect']:.2f}" for g, r in rates.items()))


def shadows_turn_into_hair(ev: Evidence) -> dict[str, str]:
    d3 = ev.qual[9]["dose"][-1]  # -3 EV
    dd = {"effect": d3["turned dark vs 0 EV"], "low": d3["turned dark vs 0 EV low"],
          "high": d3["turned dark vs 0 EV high"]}
    return claim_row(
        "shadows turn into hair", "share of the face turned hair-dark, -3 EV - 0 EV (same photos)",
        "reproduced" if dd["low"] > 0.05 else
        "not reproduced (under 5% of the face turns dark)" if dd["low"] > 0
        else "not reproduced", effect_text=format_interval(dd, 3))


#: The claims in the order of the paper.
RULES: tuple[Callable[[Evidence], dict[str, str]], ...] = (
    naive_fails, lsgan_and_buffer_stabilise, patch32_unstable, patch32_cannot_learn,
    three_blocks_parameter_share, fewer_blocks_look_human, fewer_blocks_generalise,
    nine_blocks_most_anime, expressions_kept, nine_blocks_most_consistent, facial_hair_kept,
    angled_faces_worse, dark_faces_worst, shadows_turn_into_hair)


def claim_rows(ev: Evidence) -> list[dict[str, str]]:
    """Every rule applied to the evidence: the rows of the verdict table."""
    return [rule(ev) for rule in RULES]
