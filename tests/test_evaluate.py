"""Evaluation: KID/FID plumbing (with a stand-in feature extractor), cycle and identity
errors, detector rates, the metrics.json cache, the table and the CLI."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torch_fidelity
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from cyclegan_lib import evaluate as ev
from cyclegan_lib.checkpoint import CheckpointError
from cyclegan_lib.cli import main
from cyclegan_lib.data import load_domain
from cyclegan_lib.runs import load_generator

STAND_IN = "cyclegan-test-pixels"


class PixelFeatures(FeatureExtractorBase):
    """Stand-in for Inception: the image averaged down to 8x8, flattened (192 numbers)."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)

    @staticmethod
    def get_provided_features_list():
        return ("pixels",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "pixels"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 32, 32, dtype=torch.uint8)

    def forward(self, x):
        assert x.dtype == torch.uint8
        return (F.adaptive_avg_pool2d(x.float() / 255, 8).flatten(1),)


if STAND_IN not in FEATURE_EXTRACTORS_REGISTRY:
    torch_fidelity.register_feature_extractor(STAND_IN, PixelFeatures)


@pytest.fixture(autouse=True)
def _no_inception_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach for the internet: KID with Inception is off unless a test says so."""
    monkeypatch.setenv("CYCLEGAN_INCEPTION_WEIGHTS", "off")


def scores(fake: torch.Tensor, real: torch.Tensor) -> dict:
    """KID x100 and FID as evaluate_run computes them, with the stand-in features."""
    return ev.kid_fid(ev.image_features(fake, feature_extractor=STAND_IN),
                      ev.image_features(real, feature_extractor=STAND_IN))


@pytest.fixture(scope="module")
def real_sets(data_root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    a = load_domain(data_root / "testA", 32, max_images=40).images
    b = load_domain(data_root / "testB", 32, max_images=40).images
    return a, b


def test_kid_is_about_zero_for_identical_sets_and_larger_for_different_ones(real_sets) -> None:
    """KID's unbiased estimator scores the very same images slightly below zero (the
    K_XY diagonal holds self-similarities); two halves of one domain score about zero;
    selfies against anime score far higher.  FID of identical sets is exactly zero."""
    a, b = real_sets
    same = scores(a, a.clone())
    diff = scores(a, b)
    assert same["kid_subset_size"] == 40  # capped at the number of images
    assert diff["kid_x100_mean"] > 1.0
    assert -0.25 * diff["kid_x100_mean"] < same["kid_x100_mean"] <= 0
    assert diff["fid"] > 0.1 and abs(same["fid"]) < 1e-3 * diff["fid"]  # eigvals round-off
    cross = scores(a[:20], b[20:])["kid_x100_mean"]
    for x in (a, b):
        halves = scores(x[:20], x[20:])
        assert abs(halves["kid_x100_mean"]) < 0.2 * cross


def test_kid_rejects_non_uint8_and_tiny_sets(real_sets) -> None:
    a, _ = real_sets
    with pytest.raises(ValueError, match="uint8"):
        ev.image_features(a.float(), feature_extractor=STAND_IN)
    with pytest.raises(ValueError, match="at least 2"):
        scores(a[:1], a[:5])


def test_l1() -> None:
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    assert ev.l1(x, x) == 0
    assert ev.l1(torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)) == pytest.approx(1.0)


def test_inception_weights_resolution_never_downloads_here(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    path, why = ev.resolve_inception_weights()
    assert path is None and "off" in why
    monkeypatch.setenv("CYCLEGAN_INCEPTION_WEIGHTS", str(tmp_path / "nope.pth"))
    path, why = ev.resolve_inception_weights()
    assert path is None and "nope.pth" in why and "CYCLEGAN_INCEPTION_WEIGHTS" in why
    weights = tmp_path / "w.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, weights)
    assert ev.resolve_inception_weights(weights) == (str(weights), None)
    monkeypatch.delenv("CYCLEGAN_INCEPTION_WEIGHTS")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # empty hub cache
    path, why = ev.resolve_inception_weights(download=False)
    assert path is None and "weights-inception" in why


class Payload:
    pass


def test_inception_weights_with_pickled_objects_are_refused(tmp_path: Path) -> None:
    """torch-fidelity unpickles the weights fully; we check them weights-only first."""
    bad = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "x": Payload()}, bad)
    with pytest.raises(CheckpointError, match="refused"):
        ev.check_inception_weights(str(bad))


def test_evaluate_run_on_a_smoke_run(smoke_run: Path, data_root: Path, anime_cascade: Path,
                                     capsys: pytest.CaptureFixture) -> None:
    m = ev.evaluate_run(smoke_run, data_root, max_images=8, anime_cascade=anime_cascade,
                        feature_extractor=STAND_IN)
    json.dumps(m)  # JSON-able
    assert m["run"]["preset"] == "stabilized" and m["run"]["profile"] == "smoke"
    assert m["run"]["image_size"] == 32 and m["run"]["params_G"] > 0
    assert m["run"]["train_seconds"] > 0 and m["data"] == {
        "dir": str(data_root.resolve()), "n_testA": 8, "n_testB": 8}
    for name in ev.SET_NAMES:
        for cascade in ("anime", "human"):
            assert 0.0 <= m["detector"][name][cascade] <= 1.0
    assert m["detector"]["testB"]["anime"] > m["detector"]["testA"]["anime"]
    # the cycle error is G_BA(G_AB(a)) against a, recomputed here by hand
    a = load_domain(data_root / "testA", 32, max_images=8).images.float() / 127.5 - 1
    g_ab, g_ba = load_generator(smoke_run, "AtoB"), load_generator(smoke_run, "BtoA")
    with torch.no_grad():
        expected = (g_ba(g_ab(a)) - a).abs().mean().item()
        identity = (g_ba(a) - a).abs().mean().item()
    assert m["cycle_l1"]["A->B->A"] == pytest.approx(expected, rel=1e-4)
    assert m["identity_l1"]["G_BA(testA)"] == pytest.approx(identity, rel=1e-4)
    assert 0 < m["cycle_l1"]["B->A->B"] < 2 and 0 < m["identity_l1"]["G_AB(testB)"] < 2
    assert set(m["kid_x100"]) == {"A->B", "B->A", "testA vs testB"}
    assert m["kid_settings"]["kid_subset_size"] == 8 and "kid_skipped" not in m
    assert m["fid"]["A->B"] > 0
    assert "KID/FID skipped" not in capsys.readouterr().err


def test_kid_skipped_in_one_line_when_weights_are_unavailable(
        smoke_run: Path, data_root: Path, capsys: pytest.CaptureFixture) -> None:
    m = ev.evaluate_run(smoke_run, data_root, max_images=4, inception_weights="/nonexistent.pth")
    assert m["kid_x100"] is None and m["fid"] is None and "/nonexistent.pth" in m["kid_skipped"]
    err = [line for line in capsys.readouterr().err.splitlines() if "KID/FID" in line]
    assert len(err) == 1 and err[0].startswith("KID/FID skipped: ")
    assert m["cycle_l1"]["A->B->A"] > 0  # the other metrics still computed


def test_load_or_evaluate_reuses_cache_until_checkpoint_changes(
        smoke_run: Path, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "metrics.json"
    first = ev.load_or_evaluate(smoke_run, data_root, cache_file=cache, max_images=4, kid=False)
    assert json.loads(cache.read_text()) == first and first["kid_skipped"].startswith("not requested")

    def boom(*args, **kwargs):
        raise AssertionError("recomputed although nothing changed")

    monkeypatch.setattr(ev, "evaluate_run", boom)
    assert ev.load_or_evaluate(smoke_run, data_root, cache_file=cache, max_images=4,
                               kid=False) == first
    with pytest.raises(AssertionError, match="recomputed"):  # other settings: other key
        ev.load_or_evaluate(smoke_run, data_root, cache_file=cache, max_images=5, kid=False)
    monkeypatch.undo()
    monkeypatch.setenv("CYCLEGAN_INCEPTION_WEIGHTS", "off")
    ckpt = sorted((smoke_run / "checkpoints").glob("step_*.pt"))[-1]
    st = ckpt.stat()
    try:
        os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # "retrained"
        monkeypatch.setattr(ev, "evaluate_run", boom)
        with pytest.raises(AssertionError, match="recomputed"):
            ev.load_or_evaluate(smoke_run, data_root, cache_file=cache, max_images=4, kid=False)
    finally:
        os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_metrics_table_markdown() -> None:
    def fake(preset: str, blocks: int, kid: float | None) -> dict:
        m = {"run": {"preset": preset, "profile": "cpu", "n_blocks": blocks, "params_G": 2_000_000,
                     "train_seconds": 600.0},
             "detector": {"G_AB(testA)": {"anime": 0.5, "human": 0.25}},
             "cycle_l1": {"A->B->A": 0.1234, "B->A->B": 0.2}, "kid_x100": None, "fid": None}
        if kid is None:
            m["kid_skipped"] = "no weights"
        else:
            m["kid_x100"] = {"A->B": {"mean": kid, "std": 0.5}}
        return m

    table = ev.metrics_table([fake("blocks3", 3, None), fake("blocks6", 6, None)])
    lines = table.splitlines()
    assert lines[0].startswith("| run | blocks | G params | train min | anime det. G_AB(A)")
    assert "KID" not in lines[0]  # empty for every run: dropped
    assert lines[2].startswith("| blocks3 (cpu) | 3 | 2.00 M | 10.0 | 0.50 | 0.25 |")
    assert "0.123" in lines[2] and table.endswith("KID/FID not computed: no weights")
    table = ev.metrics_table([fake("stabilized", 9, 12.345)], names=["ours"],
                             columns=["KID×100 A→B"])
    assert table.splitlines()[0] == "| run | KID×100 A→B |"
    assert table.splitlines()[2] == "| ours | 12.35 ± 0.50 |"
    with pytest.raises(ValueError):
        ev.metrics_table([])


def test_detector_table() -> None:
    m = {"detector": {"testA": {"anime": 0.35, "human": 0.9}, "testB": {"anime": 0.97,
                                                                          "human": None}}}
    table = ev.detector_table(m)
    assert "| testA | 0.35 | 0.90 |" in table and "| testB | 0.97 | n/a |" in table
    assert "| G_AB(testA) | n/a | n/a |" in table


def test_cli_evaluate_writes_metrics_json(smoke_run: Path, data_root: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "sub" / "metrics.json"
    rc = main(["evaluate", "--checkpoint", str(smoke_run), "--data", str(data_root),
               "--out", str(out), "--max-images", "4"])
    assert rc == 0
    m = json.loads(out.read_text())
    assert m["data"]["n_testA"] == 4 and m["kid_x100"] is None and "off" in m["kid_skipped"]
    assert set(m["detector"]) == set(ev.SET_NAMES)
    assert f"wrote {out}" in capsys.readouterr().out


def test_cli_evaluate_bad_input_is_one_line(smoke_run: Path, data_root: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    rc = main(["evaluate", "--checkpoint", str(tmp_path / "none"), "--data", str(data_root),
               "--out", str(tmp_path / "m.json")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and str(tmp_path / "none") in err
    (tmp_path / "data" / "testA").mkdir(parents=True)
    rc = main(["evaluate", "--checkpoint", str(smoke_run), "--data", str(tmp_path / "data"),
               "--out", str(tmp_path / "m.json")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "testB" in err
    rc = main(["evaluate", "--checkpoint", str(smoke_run), "--data", str(data_root),
               "--anime-cascade", str(tmp_path / "missing.xml"), "--max-images", "2", "--no-kid",
               "--out", str(tmp_path / "m.json")])
    assert rc == 0  # the anime rates are skipped with a reason, the rest is measured
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["detector"]["testA"]["anime"] is None and "missing.xml" in m["detector_skipped"]
