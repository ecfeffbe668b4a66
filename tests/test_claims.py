"""The measurements behind the verdict table, on inputs whose answer is known."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan_lib import claims as C
from cyclegan_lib.ablation import (ablation_args, ablation_config, ablation_summary,
                                   ablation_table, diversity_ratio_ci, load_ablation,
                                   save_ablation)
from cyclegan_lib.config import ABLATIONS, ConfigError, make_config
from cyclegan_lib.report import diversity
from cyclegan_lib.viz import test_images as load_test_images

REPO = Path(__file__).resolve().parents[1]


def _faces(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Distinct smooth random images in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size // 4, size // 4, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                           align_corners=False)


# -- statistics -----------------------------------------------------------------------------

def test_bootstrap_interval_covers_the_mean_and_shrinks_with_more_data() -> None:
    rng = np.random.default_rng(1)
    small, large = rng.normal(2.0, 1.0, 25), rng.normal(2.0, 1.0, 400)
    est, lo, hi = C.bootstrap_ci(small, seed=3)
    assert est == pytest.approx(small.mean()) and lo < est < hi
    _, lo2, hi2 = C.bootstrap_ci(large, seed=3)
    assert lo2 < 2.0 < hi2 and (hi2 - lo2) < (hi - lo) / 2
    # a constant has a zero-width interval; the seed makes it reproducible
    assert C.bootstrap_ci(np.ones(10)) == (1.0, 1.0, 1.0)
    assert C.bootstrap_ci(small, seed=5) == C.bootstrap_ci(small, seed=5)
    with pytest.raises(ValueError):
        C.bootstrap_ci((np.ones(3), np.ones(4)))


def test_paired_difference_sees_a_small_shift_that_unpaired_noise_would_hide() -> None:
    rng = np.random.default_rng(0)
    person = rng.normal(0, 5, 60)                 # large differences between images
    a, b = person + 0.3 + rng.normal(0, 0.1, 60), person
    eff, lo, hi = C.paired_difference(a, b)
    assert eff == pytest.approx(0.3, abs=0.05) and lo > 0
    assert C.verdict(lo, hi) == "higher"
    _, ulo, uhi = C.unpaired_difference(a, b)    # ignoring the pairing: no call
    assert C.verdict(ulo, uhi) == "no clear difference"
    # detector hits: 0/1 per image; model A fires on 8 more of the same 40 images
    hits_b = np.array([1] * 10 + [0] * 30, float)
    hits_a = hits_b.copy()
    hits_a[10:18] = 1
    eff, lo, hi = C.paired_difference(hits_a, hits_b)
    assert eff == pytest.approx(0.2) and lo > 0 and C.verdict(-hi, -lo) == "lower"


def test_verdict_needs_the_interval_to_exclude_zero() -> None:
    assert C.verdict(0.01, 0.5) == "higher"
    assert C.verdict(-0.5, -0.01) == "lower"
    assert C.verdict(-0.1, 0.2) == "no clear difference"
    assert C.verdict(0.0, 0.2) == "no clear difference"
    assert C.verdict(float("nan"), 1.0) == "not measured"
    assert C.format_effect(0.123, 0.05, 0.2) == "+0.12 [0.05, 0.20]"
    assert C.format_effect(None) == "n/a"
    d = {"effect": 0.123, "low": 0.05, "high": 0.2, "call": "higher", "ratio": 0.5}
    assert C.format_interval(d) == "+0.12 [0.05, 0.20]"
    assert C.format_interval(d, 3, signed=False) == "0.123 [0.050, 0.200]"
    assert C.format_interval(d, key="ratio", signed=False, call=True) == "0.50 [0.05, 0.20] (higher)"


# -- image measurements ---------------------------------------------------------------------

def test_srgb_linear_round_trip_and_exposure() -> None:
    u = torch.linspace(0, 1, 101)
    assert torch.allclose(C.linear_to_srgb(C.srgb_to_linear(u)), u, atol=1e-5)
    assert float(C.srgb_to_linear(torch.tensor(0.5))) == pytest.approx(0.21404, abs=1e-4)
    x = torch.full((1, 3, 8, 8), 0.0)             # sRGB 0.5: linear 0.214
    for ev in (-1, -2, -3):
        lin = C.srgb_to_linear((C.exposure(x, ev) + 1) / 2)
        assert torch.allclose(lin, torch.full_like(lin, 0.21404 * 2.0 ** ev), atol=2e-4)
    assert torch.equal(C.exposure(x, 0), x)
    assert float(C.exposure(x, 3).max()) == pytest.approx(1.0)  # clipped at white
    im = Image.new("RGB", (4, 4), (188, 188, 188))  # sRGB 188: linear 0.503
    dark = C.exposure(im, -1)
    assert isinstance(dark, Image.Image) and dark.getpixel((0, 0))[0] == 137  # linear 0.252


def test_ssim_known_values() -> None:
    x = _faces(3, 32)
    g = C.grey(x)
    assert np.allclose(C.ssim(g, g), 1.0)
    # two flat images: SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b, c1 = 0.3, 0.6, 0.01 ** 2
    s = C.ssim(torch.full((1, 1, 16, 16), a), torch.full((1, 1, 16, 16), b))
    assert s[0] == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-5)
    noisy = [C.ssim(g, (g + torch.randn_like(g) * s_).clamp(0, 1)).mean() for s_ in (0.05, 0.3)]
    assert 1 > noisy[0] > noisy[1]


def test_structure_kept_is_high_for_recoloured_input_low_for_unrelated() -> None:
    x = _faces(6, 64)
    recoloured = x * 0.7 + 0.1                    # same layout, other contrast
    unrelated = _faces(6, 64, seed=9)
    kept, lost = C.structure_kept(x, recoloured), C.structure_kept(x, unrelated)
    assert kept.shape == (6,) and kept.min() > 0.8 and lost.max() < kept.min()
    # PIL inputs of another size are resized to the common size
    pil = [Image.fromarray(((x[i].permute(1, 2, 0) + 1) * 127.5).byte().numpy()).resize((128, 128))
           for i in range(6)]
    assert np.allclose(C.structure_kept(pil, x), 1.0, atol=0.05)


def test_dark_share_and_turned_dark() -> None:
    light = torch.full((2, 3, 64, 64), 0.6)
    bearded = light.clone()
    bearded[1, :, 36:, :] = -0.9                  # dark lower part of image 1
    share = C.dark_share(bearded)
    assert share[0] == 0 and share[1] == pytest.approx(1.0)  # LOWER_FACE starts at row 36
    out = light.clone()
    t, b, l, r = C.FACE_REGION
    out[:, :, int(t * 64):int(b * 64), int(l * 64):32] = -1   # left half of the face region
    assert np.allclose(C.turned_dark(light, out), 0.5, atol=0.02)
    assert np.allclose(C.turned_dark(light, light), 0.0)
    # pixels already dark in the reference do not count
    assert np.allclose(C.turned_dark(out, out), 0.0)


def test_skin_lightness_change_in_lstar() -> None:
    grey50 = torch.full((1, 3, 64, 64), 2 * 0.4663 - 1)  # sRGB 0.4663: L* = 50
    white = torch.ones(1, 3, 64, 64)
    assert float(C.lightness(grey50).mean()) == pytest.approx(50, abs=0.1)
    assert C.skin_lightness_change(grey50, white)[0] == pytest.approx(50, abs=0.1)
    assert C.skin_lightness_change(white, white)[0] == pytest.approx(0, abs=1e-4)


def test_consistency_same_person_close_vs_unrelated() -> None:
    people = _faces(8, 64, seed=1)
    second = (people + 0.05 * torch.randn_like(people)).clamp(-1, 1)   # same person, new noise
    res = C.consistency(people, second, n=500)
    assert res["ratio"] < 0.5 and res["high"] < 1 and res["people"] == 8
    shuffled = second[torch.tensor([3, 6, 0, 7, 1, 2, 5, 4])]          # nobody matches
    assert C.consistency(people, shuffled, n=500)["ratio"] > 0.8
    with pytest.raises(ValueError):
        C.consistency(people[:1], second[:1])


def test_change_correlation_follows_the_changed_region() -> None:
    neutral = _faces(5, 64, seed=2)
    smiling = neutral.clone()
    for i in range(5):                            # each person changes in a different place
        smiling[i, :, 12 * i:12 * i + 10, 20:44] += 0.8
    r = C.change_correlation(neutral, smiling, neutral, smiling)   # identity "generator"
    assert np.allclose(r["matched"], 1.0) and r["mismatched"].max() < 0.3


def test_detector_hits_match_detection_rate(anime_cascade: Path, data_root: Path) -> None:
    from cyclegan_lib.faces import detection_rate
    from cyclegan_lib.viz import test_images

    anime = test_images(data_root, "B", n=6, size=64)
    hits = C.detector_hits(anime, anime_cascade)
    u8 = ((anime + 1) * 127.5).round().to(torch.uint8)
    assert set(hits) <= {0.0, 1.0}
    assert hits.mean() == pytest.approx(detection_rate(u8, anime_cascade))
    assert C.detector_hits(torch.zeros(2, 3, 64, 64), "human").tolist() == [0.0, 0.0]


def test_dose_response_rows(anime_cascade: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYCLEGAN_ANIME_CASCADE", str(anime_cascade))
    x = torch.full((4, 3, 32, 32), 0.4)
    rows = C.dose_response(torch.nn.Identity(), x, n=100)    # the output is the darkened input
    assert [r["EV"] for r in rows] == [0, -1, -2, -3]
    dark = [r["turned dark"] for r in rows]
    # sRGB 0.7 (linear 0.45): even at -3 EV it is sRGB 0.26, just above the dark threshold
    assert dark == [0, 0, 0, 0] and rows[-1]["turned dark call"] == "no clear difference"
    # sRGB 0.4 (linear 0.133): -1 EV gives sRGB 0.28 (not dark), -2 EV 0.20 (dark)
    mid = C.dose_response(torch.nn.Identity(), torch.full((3, 3, 32, 32), -0.2), n=100)
    assert [r["turned dark"] for r in mid] == [0, 0, 1, 1]
    assert [r["turned dark call"] for r in mid] == ["-", "no clear difference", "higher", "higher"]


# -- photo sets -----------------------------------------------------------------------------

def test_photo_sets_from_the_manifest(faces_root: Path) -> None:
    sets = C.photo_sets(faces_root)
    assert len(sets["consistency_pairs"]) == 6
    assert all(a.stem[:-2] == b.stem[:-2] for a, b in sets["consistency_pairs"])
    assert len(sets["smile_pairs"]) >= 50
    for a, b in sets["smile_pairs"]:
        assert a.name.replace("_neutral", "_smiling") == b.name and b.is_file()
        assert a in sets["publishable"] and b in sets["publishable"]
    synthetic = {p.name: q.name for p, q in sets["synthetic_dark"].items()}
    assert synthetic == {"london_005_underexposed.jpg": "london_005_neutral.jpg",
                         "london_063_underexposed.jpg": "london_063_neutral.jpg"}
    same = {(a.name, b.name) for a, b in sets["same_person"]}
    assert ("london_092_neutral.jpg", "london_092_beard.jpg") in same
    assert ("dorsey_beard.jpg", "dorsey_beard_2.jpg") in same
    assert len(sets["angled"]) == 7 and not set(sets["angled"]) & sets["publishable"]


# -- ablation -------------------------------------------------------------------------------

def test_ablations_change_one_thing_from_their_baseline() -> None:
    assert len(ABLATIONS) == 10
    fields = ("generator_variant", "gan_loss", "pool_size", "d_head", "d_patch")
    for name in ABLATIONS:
        cfg = ablation_config(name, "ablation")
        assert (cfg.image_size, cfg.ngf, cfg.ndf, cfg.epoch_size, cfg.total_epochs,
                cfg.save_every) == (64, 32, 32, 100, 4, 400)
        base = ablation_config(ABLATIONS[name][0], "ablation")
        changed = {f for f in fields if getattr(cfg, f) != getattr(base, f)}
        if name in ("naive", "stabilized"):
            assert not changed
        elif name.endswith("patchmap"):
            assert changed == {"d_head", "d_patch"}
        else:
            assert len(changed) == 1, (name, changed)
    assert ablation_config("naive+patchmap").d_patch is None
    assert ablation_config("stabilized-patchmap").d_patch == 64    # 70 clamped to the image
    assert ablation_config("stabilized-patchmap", "smoke").d_patch == 32
    assert ablation_args("naive+patchmap") == ["--preset", "naive", "--set", "d_head=patchmap",
                                               "--set", "d_patch=none"]
    with pytest.raises(ConfigError):
        ablation_config("bogus")


def test_cli_reads_the_ablation_arguments_as_the_library_does() -> None:
    from cyclegan_lib.cli import build_parser
    from cyclegan_lib.config import parse_override

    for name in ABLATIONS:
        args = build_parser().parse_args(["train", "--out", "x", "--profile", "ablation",
                                          *ablation_args(name)])
        over = dict(parse_override(t) for t in args.set)
        cfg = make_config(args.preset, args.profile, **over)
        if any(v is None for v in over.values()):
            import dataclasses
            cfg = dataclasses.replace(cfg, **{k: None for k, v in over.items() if v is None})
        assert cfg.to_dict() == ablation_config(name).to_dict() | {"preset": args.preset}


def test_diversity_ratio_matches_report_diversity() -> None:
    x = _faces(10, 32)
    y = x * 0.1                                   # collapsed towards grey
    est, lo, hi = diversity_ratio_ci(x, y, n=300)
    assert est == pytest.approx(diversity(y) / diversity(x), rel=1e-4)
    assert est == pytest.approx(0.1, rel=1e-3)
    assert lo <= est <= hi


def test_run_ablation_script_at_smoke(tiny_dataset: Path, tmp_path: Path, anime_cascade: Path,
                                      one_thread) -> None:
    out = tmp_path / "ablation"
    env = {**os.environ, "ABLATION_PROFILE": "smoke", "ABLATION_OUT": str(out),
           "CYCLEGAN_DATA": str(tiny_dataset), "PYTHON": sys.executable,
           "CYCLEGAN_ANIME_CASCADE": str(anime_cascade)}
    cmd = [str(REPO / "scripts" / "run_ablation.sh"), "naive", "naive+lsgan"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("naive", "naive+lsgan"):
        assert '"complete": true' in (out / name / "summary.json").read_text()
    import json
    assert json.loads((out / "naive+lsgan" / "config.json").read_text())["gan_loss"] == "lsgan"
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count("complete, skipped") == 2
    bad = subprocess.run([cmd[0], "bogus"], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown ablation" in bad.stderr

    rows = ablation_summary(out, tiny_dataset, anime_cascade=anime_cascade, n_boot=100)
    assert [r["variant"] for r in rows] == ["naive", "naive+lsgan"]
    naive, lsgan = rows
    assert naive["steps"] == 8 and naive["call"] == "-"
    assert lsgan["baseline"] == "naive" and lsgan["changed"] == "gan_loss=lsgan"
    for r in rows:
        assert r["diversity low"] <= r["diversity"] <= r["diversity high"]
        assert 0 <= r["anime low"] <= r["anime rate"] <= r["anime high"] <= 1
        assert r["D / chance"] > 0 and math.isfinite(r["D / chance"])
    assert lsgan["vs baseline"] == pytest.approx(lsgan["anime rate"] - naive["anime rate"])
    table = ablation_table(rows)
    assert table.count("\n") == 3 and "| naive+lsgan | gan_loss=lsgan | 8 |" in table

    saved = load_ablation(save_ablation(rows, tmp_path / "ablation.json", "smoke"))
    assert saved["profile"] == "smoke" and saved["steps"] == 8
    assert [r["variant"] for r in saved["rows"]] == ["naive", "naive+lsgan"]
    assert "stabilized" in saved["missing"] and "naive" not in saved["missing"]
    assert ablation_table(saved["rows"]) == table
    cli = subprocess.run([sys.executable, "-m", "cyclegan_lib.ablation", "summary", "--runs",
                          str(out), "--data", str(tiny_dataset), "--out",
                          str(tmp_path / "cli.json"), "--profile", "smoke"],
                         env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert cli.returncode == 0, cli.stderr
    assert load_ablation(tmp_path / "cli.json")["rows"][1]["variant"] == "naive+lsgan"


def test_committed_ablation_summary_is_readable() -> None:
    saved = load_ablation(REPO / "pretrained" / "ablation.json")
    assert saved["profile"] == "ablation" and saved["rows"]
    names = [r["variant"] for r in saved["rows"]]
    assert set(names) | set(saved["missing"]) == set(ABLATIONS)
    assert all(r["steps"] == saved["steps"] > 0 for r in saved["rows"])  # one budget for all
    assert "/work" not in (REPO / "pretrained" / "ablation.json").read_text()


def test_measure_test_set_on_a_smoke_run(smoke_run: Path, data_root: Path,
                                          anime_cascade: Path) -> None:
    m = C.measure_test_set(smoke_run, data_root, n_images=6, anime_cascade=anime_cascade)
    assert m["inputs"].shape == m["outputs"].shape == (6, 3, 32, 32)
    for key in ("anime", "human", "structure", "skin"):
        assert m[key].shape == (6,) and np.isfinite(m[key]).all()
    assert set(m["anime"]) <= {0.0, 1.0} and (m["structure"] <= 1).all()


def test_block_and_qualitative_measures_on_a_smoke_run(smoke_run: Path, data_root: Path,
                                                       faces_root: Path) -> None:
    if not (faces_root / "MANIFEST.csv").is_file():
        pytest.skip("no faces folder")
    b = C.block_measures({"a": smoke_run, "b": smoke_run}, data_root, faces_root,
                         reference="b", n_images=4, n_pairs=3)
    assert [r["run"] for r in b["rows"]] == ["a", "b"]
    assert b["diffs"]["a"]["anime"]["effect"] == 0  # the same model: no difference
    assert b["consistency"]["a"]["people"] == 3
    assert set(b["eyes check"]) == {"selfies", "anime", "anime - selfies"}
    assert 0 <= b["rows"][0]["eyes"]["found"] <= 1
    q = C.qualitative_measures(smoke_run, faces_root, n=3)
    assert [r["EV"] for r in q["dose"]] == list(C.DOSE_EVS)
    assert q["expressions"]["diff"]["call"] in ("higher", "lower", "no clear difference")
    assert len(q["skin"]["values"]) == 3 and set(q["rates"]) >= {"frontal", "angled", "dark"}


def test_eye_size_finds_eyes_in_selfies_and_none_in_flat_images(data_root: Path) -> None:
    selfies = load_test_images(data_root, "A", n=6, size=64)
    sizes = C.eye_size(selfies)
    assert np.mean(~np.isnan(sizes)) >= 0.5                    # the cascade fires on real faces
    assert np.all((sizes[~np.isnan(sizes)] > 0.05) & (sizes[~np.isnan(sizes)] < 0.5))
    assert np.isnan(C.eye_size(torch.zeros(2, 3, 64, 64))).all()   # nothing to find


def test_block_tables_show_every_model_and_every_difference() -> None:
    d = {"effect": 0.1, "low": 0.05, "high": 0.15, "call": "higher"}
    cons = {"ratio": 0.5, "low": 0.4, "high": 0.6}
    blocks = {"rows": [{"run": r, "anime": d, "human": d, "structure": d, "eyes": d}
                       for r in ("3 blocks", "9 blocks")],
              "consistency": {"3 blocks": cons, "9 blocks": cons},
              "diffs": {"3 blocks": {"anime": d, "eyes": d}}}
    models, diffs = C.block_tables(blocks)
    assert [m["generator"] for m in models] == ["3 blocks", "9 blocks"]
    assert models[0]["anime det. [95% CI]"] == "0.10 [0.05, 0.15]"
    assert models[0]["eye width / image [95% CI]"] == "0.100 [0.050, 0.150]"
    assert models[1]["same-person ratio [95% CI]"] == "0.50 [0.40, 0.60]"
    assert diffs == [{"comparison": "3 blocks - 9 blocks",
                      "anime [95% CI]": "+0.10 [0.05, 0.15] (higher)",
                      "eyes [95% CI]": "+0.10 [0.05, 0.15] (higher)"}]


def test_qualitative_tables_have_a_row_per_generator_and_per_group() -> None:
    d = {"effect": -0.2, "low": -0.3, "high": -0.1, "call": "lower"}
    cons = {"ratio": 0.5, "low": 0.4, "high": 0.6}
    q = {"expressions": {"diff": d}, "consistency": cons, "inputs consistency": cons,
         "facial_hair": {"diff": d}, "angled_vs_frontal": d, "dark_vs_frontal": d,
         "rates": {"frontal": {**d, "photos": 8}, "dark": {**d, "photos": 7}}}
    per_claim, per_group = C.qualitative_tables({"3 blocks": q, "9 blocks": q})
    assert [r["generator"] for r in per_claim] == ["3 blocks", "9 blocks"]
    assert per_claim[0]["anime rate: angled - frontal"] == "-0.20 [-0.30, -0.10] (lower)"
    assert per_claim[0]["same-person ratio (inputs: 0.50 [0.40, 0.60])"] == "0.50 [0.40, 0.60]"
    assert per_group == [{"group": g, "photos": n, "3 blocks": "-0.20 [-0.30, -0.10]",
                          "9 blocks": "-0.20 [-0.30, -0.10]"} for g, n in (("frontal", 8), ("dark", 7))]
