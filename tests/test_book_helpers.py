"""cyclegan_lib.book (chapter set-up, runs, photos) and cyclegan_lib.report (tables, summaries
and computed verdicts)."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from cyclegan_lib import book, report
from cyclegan_lib.config import ConfigError

ENV = ("CYCLEGAN_PROFILE", "CYCLEGAN_DATA", "CYCLEGAN_RUNS", "CYCLEGAN_FACES",
       "CYCLEGAN_INCEPTION_WEIGHTS")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# -- chapter_setup ---------------------------------------------------------------------------

def test_profile_env_forces_profile(clean_env, tiny_dataset: Path, tmp_path: Path) -> None:
    clean_env.setenv("CYCLEGAN_PROFILE", "smoke")
    ctx = book.chapter_setup(profile="cpu", data_dir=tiny_dataset, runs_dir=tmp_path / "r",
                             quiet=True)
    assert ctx.profile == "smoke"
    assert ctx.device == "cpu"
    assert torch.get_num_threads() == 1  # smoke: one thread


def test_parameters_win_over_environment_for_paths(clean_env, tiny_dataset: Path,
                                                   tmp_path: Path) -> None:
    clean_env.setenv("CYCLEGAN_DATA", str(tmp_path / "elsewhere"))
    clean_env.setenv("CYCLEGAN_RUNS", str(tmp_path / "env_runs"))
    ctx = book.chapter_setup(profile="smoke", data_dir=tiny_dataset,
                             runs_dir=tmp_path / "param_runs", quiet=True)
    assert ctx.data_dir == tiny_dataset.resolve()
    assert ctx.runs_dir == (tmp_path / "param_runs").resolve()


def test_environment_gives_defaults(clean_env, tiny_dataset: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    clean_env.setenv("CYCLEGAN_DATA", str(tiny_dataset))
    clean_env.setenv("CYCLEGAN_RUNS", str(tmp_path / "env_runs"))
    clean_env.setenv("CYCLEGAN_FACES", str(tmp_path / "faces"))
    clean_env.setenv("CYCLEGAN_INCEPTION_WEIGHTS", str(tmp_path / "w.pth"))
    ctx = book.chapter_setup(profile="smoke")
    assert ctx.data_dir == tiny_dataset.resolve()
    assert ctx.runs_dir == (tmp_path / "env_runs").resolve()
    assert ctx.faces_dir == (tmp_path / "faces").resolve()
    assert ctx.inception_weights == tmp_path / "w.pth"
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("profile smoke (32 px")
    # The line is printed on public pages: folders by name, never the machine's paths.
    assert f"data: {tiny_dataset.name}/" in out[0] and str(tmp_path) not in out[0]


def test_default_runs_dir_is_next_to_toc(clean_env, tiny_dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\n")
    clean_env.chdir(root / "notebooks")
    ctx = book.chapter_setup(profile="smoke", data_dir=tiny_dataset, quiet=True)
    assert ctx.repo_root == root.resolve()
    assert ctx.runs_dir == (root / "runs").resolve()
    assert ctx.faces_dir == (tiny_dataset.parent / "faces").resolve()


def test_bad_profile_and_missing_data_are_clear(clean_env, tiny_dataset: Path,
                                                tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown profile"):
        book.chapter_setup(profile="huge", data_dir=tiny_dataset, quiet=True)
    with pytest.raises(FileNotFoundError, match="selfie2anime"):
        book.chapter_setup(profile="smoke", data_dir=tmp_path / "nope", quiet=True)


def test_colab_setup_is_a_no_op_elsewhere() -> None:
    assert not book.on_colab()
    assert book.colab_setup() is None


# -- tables ----------------------------------------------------------------------------------

def test_markdown_table_formats_values() -> None:
    text = report.markdown_table([{"a": 1234567, "b": 0.123456, "c": None, "d": "x|y", "e": True}])
    lines = text.splitlines()
    assert lines[0] == "| a | b | c | d | e |"
    assert lines[1] == "|---|---|---|---|---|"
    assert lines[2] == "| 1,234,567 | 0.123 | n/a | x\\|y | yes |"
    assert report.markdown_table([]) == "*(no rows)*"
    html = book.markdown_to_html(text)
    assert html is not None and "<table>" in html and "<td>1,234,567</td>" in html


def test_parameter_table_has_the_papers_38_percent() -> None:
    rows = {r["blocks"]: r for r in report.parameter_table(ngf=64)}
    assert rows[9]["parameters"] == 11_378_179
    assert rows[6]["parameters"] == 7_837_699
    assert rows[3]["parameters"] == 4_297_219
    assert round(rows[3]["share of largest"] * 100) == 38
    assert rows[9]["share of largest"] == 1.0


def test_preset_table_shows_what_changes() -> None:
    rows = {r["setting"]: r for r in report.preset_table(["naive", "stabilized"], "smoke")}
    assert rows["gan_loss"]["naive"] == "nll" and rows["gan_loss"]["stabilized"] == "lsgan"
    assert rows["pool_size"]["naive"] == 0 and rows["pool_size"]["stabilized"] == 50


# -- data ------------------------------------------------------------------------------------

def test_scan_overview(clean_env, tiny_dataset: Path, tmp_path: Path) -> None:
    (tiny_dataset / "trainA" / "notes.txt").write_text("not an image")
    ctx = book.chapter_setup(profile="smoke", data_dir=tiny_dataset, runs_dir=tmp_path,
                             quiet=True)
    rows, scan_report = book.scan_overview(ctx)
    by = {r["folder"]: r for r in rows}
    assert by["trainA"]["files"] == 9 and by["trainA"]["used"] == 8
    assert by["trainA"]["skipped"] == 1
    assert "notes.txt" in scan_report


def test_folder_overview_reads_real_formats(tmp_path: Path) -> None:
    from PIL import Image

    tmp_path.joinpath("d").mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "d" / "a.jpg", format="PNG")  # PNG behind .jpg
    Image.new("L", (50, 50)).save(tmp_path / "d" / "b.jpg", format="JPEG")
    (tmp_path / "d" / "c.jpg").write_bytes(b"junk")
    info = book.folder_overview(tmp_path / "d")
    assert info["files"] == 3 and info["unreadable"] == 1
    assert "PNG 1" in info["formats"] and "JPEG 1" in info["formats"]
    assert info["min side"] == 30 and info["max side"] == 50


# -- runs and summaries ----------------------------------------------------------------------

def test_ensure_runs_reuses_a_complete_run(clean_env, smoke_run: Path, data_root: Path,
                                           tmp_path: Path, capsys) -> None:
    runs_dir = tmp_path / "runs"
    shutil.copytree(smoke_run, runs_dir / "smoke" / "stabilized")
    ckpts = sorted((runs_dir / "smoke" / "stabilized" / "checkpoints").iterdir())
    before = [p.stat().st_mtime_ns for p in ckpts]
    ctx = book.chapter_setup(profile="smoke", data_dir=data_root, runs_dir=runs_dir, quiet=True)
    runs = book.ensure_runs(ctx, ["blocks9"])  # alias of stabilized
    assert runs == {"blocks9": runs_dir / "smoke" / "stabilized"}
    assert capsys.readouterr().out == "models: blocks9 from stabilized/ (trained here)\n"
    assert [p.stat().st_mtime_ns for p in ckpts] == before
    info = report.run_info(runs["blocks9"])
    assert info["preset"] == "stabilized" and info["complete"] is True


def test_loss_summary_relative_to_chance(smoke_run: Path) -> None:
    s = report.loss_summary(smoke_run)
    assert s["steps"] == 8 and s["gan_loss"] == "lsgan"
    assert math.isclose(s["D / chance"], s["D"] / 0.25)


def test_output_value_summary_sees_the_relu_floor() -> None:
    x = torch.relu(torch.randn(2, 3, 8, 8))
    s = report.output_value_summary(x)
    assert s["share < 0"] == 0.0 and s["min"] >= 0.0
    assert report.output_value_summary(torch.full((1, 3, 2, 2), -0.5))["share < 0"] == 1.0


def test_runs_table_calls_a_patch_as_large_as_the_image_the_whole_image(smoke_run: Path,
                                                                       tmp_path: Path) -> None:
    run = tmp_path / "naive"
    shutil.copytree(smoke_run, run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["d_patch"] = cfg["image_size"]
    (run / "config.json").write_text(json.dumps(cfg))
    rows = report.runs_table({"naive": run, "stabilised": smoke_run})
    assert rows[0]["D sees"] == "whole image" and rows[1]["D sees"] == "whole image"
    assert "KIDx100 A->B" not in rows[0]  # never measured: column left out


def test_run_metrics_smoke(clean_env, smoke_run: Path, data_root: Path, anime_cascade: Path,
                           tmp_path: Path) -> None:
    clean_env.setenv("CYCLEGAN_INCEPTION_WEIGHTS", "off")
    clean_env.setenv("CYCLEGAN_ANIME_CASCADE", str(anime_cascade))
    run = tmp_path / "run"
    shutil.copytree(smoke_run, run)
    ctx = book.chapter_setup(profile="smoke", data_dir=data_root, runs_dir=tmp_path, quiet=True)
    metrics = book.run_metrics(ctx, {"mine": run})
    m = metrics["mine"]
    assert m["data"]["n_testA"] == book.SMOKE_EVAL_IMAGES
    assert (run / "metrics.json").is_file()
    assert report.metric(m, "cycle L1 A") is not None
    assert report.metric(m, "KIDx100 A->B") is None


# -- photos ----------------------------------------------------------------------------------

def test_photo_helpers(clean_env, tiny_dataset: Path, tmp_path: Path) -> None:
    faces = tmp_path / "faces"
    for name in ("consistency/bob_a.jpg", "consistency/bob_b.jpg", "consistency/solo_a.jpg",
                 "dark/x.jpg", "dark/y.jpg"):
        (faces / name).parent.mkdir(parents=True, exist_ok=True)
        (faces / name).write_bytes(b"")
    (faces / "MANIFEST.csv").write_text(
        "file,category,source_repo,source_path,license,notes\n"
        "dark/x.jpg,dark,a/b,p.jpg,CC BY 4.0,SYNTHETIC: -3 EV\n"
        "dark/y.jpg,dark,a/b,q.jpg,MIT,real photo\n")
    clean_env.setenv("CYCLEGAN_FACES", str(faces))
    ctx = book.chapter_setup(profile="smoke", data_dir=tiny_dataset, runs_dir=tmp_path,
                             quiet=True)
    pairs = book.consistency_pairs(ctx)
    assert [(a.name, b.name) for a, b in pairs] == [("bob_a.jpg", "bob_b.jpg")]
    dark = book.face_photos(ctx, "dark")
    labels = book.photo_labels(ctx, dark)
    assert "SYNTHETIC" in labels[0] and "SYNTHETIC" not in labels[1]
    assert book.face_photos(ctx, "missing") == []


# -- verdicts --------------------------------------------------------------------------------

def test_compare() -> None:
    assert report.compare(0.8, 0.5, True, 0.1) == "better"
    assert report.compare(0.5, 0.8, True, 0.1) == "worse"
    assert report.compare(0.55, 0.5, True, 0.1) == "about the same"
    assert report.compare(10.0, 14.0, False, 1.0) == "better"
    assert report.compare(None, 0.5, True, 0.1) == "not measured"
    assert report.compare(float("nan"), 0.5, True, 0.1) == "not measured"


def _m(rate: float | None = None, kid: float | None = None) -> dict:
    return {"detector": {"G_AB(testA)": {"anime": rate}},
            "kid_x100": None if kid is None else {"A->B": {"mean": kid, "std": 0.1}}}


def test_quality_prefers_kid_when_both_runs_have_it() -> None:
    word, detail = report.quality_comparison(_m(0.2, kid=10.0), _m(0.9, kid=15.0))
    assert word == "better" and detail.startswith("KID")
    word, detail = report.quality_comparison(_m(0.2, kid=10.0), _m(0.9))
    assert word == "worse" and "anime-detector" in detail


def test_diversity_detects_collapse() -> None:
    torch.manual_seed(0)
    x = torch.rand(6, 3, 8, 8) * 2 - 1
    collapsed = x[:1].repeat(6, 1, 1, 1) + 0.01 * torch.randn(6, 3, 8, 8)
    assert report.diversity(collapsed) < 0.1 * report.diversity(x)
    assert math.isclose(report.diversity(x), report.diversity(-x), rel_tol=1e-6)
    assert math.isnan(report.diversity(x[:1]))


def test_generator_macs_counts_each_block_exactly() -> None:
    m3, m6, m9 = (report.generator_macs(8, b, 32) for b in (3, 6, 9))
    per_block = 2 * (32 // 4) ** 2 * (4 * 8) ** 2 * 9  # two 3x3 convs at 1/4 resolution
    assert m6 - m3 == m9 - m6 == 3 * per_block
    assert report.generator_macs(8, 3, 64) > 3.9 * m3  # compute grows with the pixel count


def test_timing_table(smoke_run: Path) -> None:
    rows = report.timing_table({3: smoke_run, 9: smoke_run})
    assert rows[-1]["time vs largest"] == 1.0 and rows[-1]["G compute vs largest"] == 1.0
    assert rows[0]["precision"] in ("fp32", "bf16")  # from the run's summary.json
    assert rows[0]["params vs largest"] == 1.0


PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"


def test_checkpoint_rates_table_has_one_row_per_checkpoint() -> None:
    rates = json.loads((PRETRAINED / "stabilized" / "rates.json").read_text())
    table = report.checkpoint_rates_table(rates)
    assert [r["step"] for r in table] == sorted({r["step"] for r in rates["rows"]})
    last = [r for r in rates["rows"] if r["weights"] == "ema"][-1]
    assert table[-1]["anime det. (ema)"] == round(last["anime_rate"], 2)
    assert {"anime det. (raw)", "human det. G_BA (ema)"} <= set(table[-1])


def test_pilots_table_rows_against_the_base() -> None:
    pilots = json.loads((PRETRAINED / "pilots.json").read_text())
    table = {r["pilot"]: r for r in report.pilots_table(pilots)}
    assert set(table) == set(pilots["pilots"])
    assert table["base"]["changed"] == "(book profile)" and table["base"]["minus base"] == ""
    others = [r for name, r in table.items() if name != "base"]
    assert others and all(r["minus base"][0] in "+-" and "[" in r["minus base"] for r in others)


def test_checkpoint_rates_summary_reads_the_last_checkpoints_and_the_peak() -> None:
    rows = [{"step": s, "weights": w, "anime_rate": a, "human_rate": h}
            for s, w, a, h in [(1, "ema", 0.2, 0.9), (2, "ema", 0.8, 0.7), (3, "ema", 0.5, 0.6),
                               (4, "ema", 0.6, 0.5), (1, "raw", 0.1, 0.0), (2, "raw", 0.3, 0.0),
                               (3, "raw", 0.5, 0.0)]]
    s = report.checkpoint_rates_summary({"rows": rows}, last=3)
    assert s["ema_last_mean"] == pytest.approx((0.8 + 0.5 + 0.6) / 3)
    assert s["ema_last_sd"] == pytest.approx(0.15275, abs=1e-4)  # sample sd (ddof=1)
    assert s["raw_last_mean"] == pytest.approx(0.3) and s["raw_last_sd"] == pytest.approx(0.2)
    assert (s["ema_peak"], s["ema_peak_step"], s["ema_human_peak"]) == (0.8, 2, 0.7)
    assert (s["ema_final"], s["ema_human_final"]) == (0.6, 0.5)


def test_pilots_summary_on_the_shipped_pilots() -> None:
    pilots = json.loads((PRETRAINED / "pilots.json").read_text())
    s = report.pilots_summary(pilots)
    runs = pilots["pilots"]
    assert s["pilot_best_rate"] == max(r["anime_rate"] for r in runs.values())
    assert runs[s["pilot_best"]]["anime_rate"] == s["pilot_best_rate"]
    assert s["pilot_base_rate"] == runs["base"]["anime_rate"]
    assert {f"pilot_steps_{n.replace('-', '_')}" for n in runs} <= set(s)
    assert {f"pilot_diff_{n.replace('-', '_')}" for n in runs if n != "base"} <= set(s)
    costly = [runs["base"]["steps"] / runs[n]["steps"] for n in ("96px", "ngf64", "batch4")]
    assert (s["pilot_cost_low"], s["pilot_cost_high"]) == (min(costly), max(costly))
    assert s["pilot_cost_low"] > 1  # each costlier setting took fewer steps in the same time


def test_rate_noise_rows_use_the_number_of_images_evaluated() -> None:
    def m(rate: float, n: int) -> dict:
        return {"detector": {"G_AB(testA)": {"anime": rate}}, "data": {"n_testA": n}}

    assert report.rate_difference_se(0.5, 0.5, 100) == pytest.approx(0.0707, abs=1e-4)
    rows = report.rate_noise_rows({"stabilized": m(0.5, 100), "patch32": m(0.7, 100),
                                   "smoke": m(0.7, 8), "naive": m(0.0, 100),
                                   "unmeasured": {"detector": {}}})
    by = {r["run"]: r for r in rows}
    assert set(by) == {"patch32", "smoke", "naive"}  # no row for the reference or a missing rate
    se = math.sqrt(0.5 * 0.5 / 100 + 0.7 * 0.3 / 100)
    assert by["patch32"]["SE of the difference to stabilised"] == pytest.approx(se)
    assert by["patch32"]["difference / SE"] == pytest.approx(0.2 / se)
    assert by["smoke"]["SE of the difference to stabilised"] > 3 * se  # 8 images, not 100
    assert by["naive"]["difference / SE"] == pytest.approx(-0.5 / math.sqrt(0.25 / 100))
    assert report.rate_noise_rows({"patch32": m(0.7, 100)}) == []  # no reference rate
