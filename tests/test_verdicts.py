"""Chapter 7's verdict rules on made-up measurements: each claim is called reproduced,
contradicted or not reproduced exactly when its numbers say so."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from cyclegan_lib import verdicts as V


def effect(effect: float, low: float, high: float, call: str) -> dict:
    return {"effect": effect, "low": low, "high": high, "call": call}


UP, DOWN, FLAT = (effect(0.2, 0.1, 0.3, "higher"), effect(-0.2, -0.3, -0.1, "lower"),
                  effect(0.0, -0.1, 0.1, "no clear difference"))


@pytest.fixture()
def ev() -> V.Evidence:
    """Evidence in which the paper is right wherever it can be."""
    rng = np.random.default_rng(0)
    return V.Evidence(
        losses={"naive": {"D / chance": 0.02}, "patch32": {"D / chance": 0.9}},
        diversity={"naive": 0.05, "patch32": 0.6},
        test={"naive": {"anime": np.zeros(50)}, "stabilized": {"anime": rng.random(50) < 0.8},
              "patch32": {"anime": rng.random(50) < 0.3}},
        blocks={"diffs": {"3 blocks": {"human": UP, "structure": UP, "eyes": DOWN, "anime": DOWN},
                          "6 blocks": {"anime": DOWN}},
                "consistency": {"3 blocks": {"ratio": 0.8, "low": 0.7, "high": 0.9},
                                "6 blocks": {"ratio": 0.8, "low": 0.7, "high": 0.9},
                                "9 blocks": {"ratio": 0.5, "low": 0.4, "high": 0.6}}},
        qual={9: {"expressions": {"diff": UP}, "facial_hair": {"diff": UP},
                  "angled_vs_frontal": DOWN,
                  "rates": {"frontal": effect(0.8, 0.7, 0.9, ""), "dark": effect(0.2, 0.1, 0.3, "")},
                  "dose": [{"turned dark vs 0 EV": 0.2, "turned dark vs 0 EV low": 0.1,
                            "turned dark vs 0 EV high": 0.3}]},
              3: {"facial_hair": {"diff": UP}}},
        ablation={"naive+lsgan": {"diversity": 0.5, "diversity low": 0.4, "diversity high": 0.6}},
        shares={"scaled32": {"D / chance": 0.05, "diversity": 0.1, "vs baseline": -0.3,
                             "vs low": -0.4, "vs high": -0.2, "call": "lower"}},
        parameter_share=0.379)


def statuses(ev: V.Evidence) -> dict[str, str]:
    return {r["claim"]: r["status"] for r in V.claim_rows(ev)}


def test_every_claim_reproduces_when_the_numbers_agree_with_the_paper(ev) -> None:
    got = statuses(ev)
    assert len(got) == len(V.RULES) == 14
    untestable = {"fewer blocks generalise better"}
    assert all(s == "reproduced" for c, s in got.items() if c not in untestable), got
    assert got["fewer blocks generalise better"].startswith("not testable here (")
    assert "| the paper says |" in V.claims_table(V.claim_rows(ev))


@pytest.mark.parametrize("change, claim, status", [
    (lambda e: e.blocks["diffs"]["3 blocks"].update(human=DOWN, eyes=UP),
     "fewer blocks look more human (eyes, mouth, a rounder face)", "contradicted"),
    (lambda e: e.blocks["diffs"]["3 blocks"].update(human=FLAT, eyes=FLAT),
     "fewer blocks look more human (eyes, mouth, a rounder face)",
     "not reproduced (3 blocks keep slightly more of the input's structure, but neither the "
     "human-face detector nor the eye width tells them apart)"),
    (lambda e: e.blocks["diffs"]["6 blocks"].update(anime=UP),
     "the 9-block model's outputs look the most like anime", "contradicted"),
    (lambda e: e.blocks["diffs"]["6 blocks"].update(anime=FLAT),
     "the 9-block model's outputs look the most like anime", "not reproduced"),
    (lambda e: e.shares["scaled32"].update({"D / chance": 0.9, "diversity": 0.5}),
     "with 32x32 patches the training was unstable", "contradicted"),
    (lambda e: e.shares["scaled32"].update(call="higher"),
     "with 32x32 patches the model was unable to learn", "contradicted"),
    (lambda e: e.qual[9]["rates"].update(frontal=effect(0.03, 0.0, 0.05, "")),
     "dark faces give the worst results", "contradicted"),
    (lambda e: e.qual[9]["dose"][-1].update({"turned dark vs 0 EV low": 0.01}),
     "shadows turn into hair", "not reproduced (under 5% of the face turns dark)"),
    (lambda e: e.qual[9].update(angled_vs_frontal=UP),
     "angled faces are translated worse", "contradicted"),
    (lambda e: e.blocks["consistency"]["9 blocks"].update(low=0.95, high=1.0),
     "the 9-block model is the most consistent across scenes", "contradicted"),
    (lambda e: (e.qual[9]["facial_hair"].update(diff=DOWN), e.qual[3]["facial_hair"].update(diff=DOWN)),
     "facial hair is kept, better with fewer blocks", "contradicted"),
    (lambda e: e.ablation.update({"naive+lsgan": {"diversity": 0.1, "diversity low": 0.05,
                                                  "diversity high": 0.15}}),
     "LSGAN and the history buffer stabilise training",
     "not reproduced (runs missing: naive+buffer, stabilized-lsgan, stabilized-buffer)"),
    (lambda e: e.ablation.clear(), "LSGAN and the history buffer stabilise training",
     "not testable here (the ablation runs with and without LSGAN or the buffer are not finished)"),
    (lambda e: e.test["naive"].update(anime=np.ones(50)) or e.losses["naive"].update({"D / chance": 1.0})
     or e.diversity.update(naive=0.5), "the naive model fails", "not reproduced"),
    (lambda e: setattr(e, "parameter_share", 0.5),
     "the 3-block generator has 38% of the parameters of the 9-block one", "not reproduced"),
])
def test_a_rule_follows_its_numbers(ev, change, claim, status) -> None:
    ev = copy.deepcopy(ev)
    change(ev)
    assert statuses(ev)[claim] == status


def test_naive_failure_counts_an_unstable_run_even_with_a_high_rate(ev) -> None:
    ev.test["naive"]["anime"] = np.ones(50)  # high rate, but D won and the outputs collapsed
    assert statuses(ev)["the naive model fails"] == "reproduced"


def test_claim_row_checks_the_status() -> None:
    with pytest.raises(ValueError):
        V.claim_row("x", "y", "sort of")
    with pytest.raises(ValueError):
        V.claim_row("x", "y", "not testable here")  # must say why
    row = V.claim_row("x", "y", "reproduced", effect_text=V.format_effect(-0.4, -0.5, -0.3))
    assert row["effect [95% CI]"] == "-0.40 [-0.50, -0.30]"
