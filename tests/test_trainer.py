"""The training loop on tiny generated data: schedule, history, samples, pool, resume rules."""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
import torch

from cyclegan_lib.checkpoint import CheckpointError, latest_checkpoint, safe_load
from cyclegan_lib.config import make_config
from cyclegan_lib.runs import load_checkpoint_config, load_generator, read_history, run_is_complete
from cyclegan_lib.trainer import LOSS_NAMES, Trainer, TrainingError, lr_factor, train




# -- learning-rate schedule ------------------------------------------------------------------
def _official_lrs(n_epochs: int, n_epochs_decay: int, lr: float = 2e-4) -> list[float]:
    """The official code's LambdaLR (epoch_count=1), stepped at the end of every epoch."""
    def lambda_rule(epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=lambda_rule)
    out = []
    for _ in range(n_epochs + n_epochs_decay):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("n,d", [(100, 100), (12, 12), (1, 1), (3, 0), (0, 4)])
def test_lr_factor_matches_the_official_lambda_lr(n: int, d: int) -> None:
    official = _official_lrs(n, d)
    ours = [2e-4 * lr_factor(e, n, d) for e in range(n + d)]
    assert ours == pytest.approx(official, rel=1e-12, abs=1e-20)


def test_lr_values_at_the_paper_epoch_boundaries() -> None:
    assert lr_factor(0, 100, 100) == 1.0
    assert lr_factor(99, 100, 100) == 1.0          # last constant epoch
    assert lr_factor(100, 100, 100) == pytest.approx(100 / 101)  # first decay epoch
    assert lr_factor(149, 100, 100) == pytest.approx(51 / 101)
    assert lr_factor(199, 100, 100) == pytest.approx(1 / 101)    # last epoch, then 0
    assert lr_factor(200, 100, 100) == pytest.approx(0.0)


def test_trainer_applies_the_schedule_at_epoch_boundaries(tiny_dataset: Path, tmp_path: Path,
                                                          one_thread) -> None:
    cfg = make_config("stabilized", "smoke", epoch_size=2, n_epochs=2, n_epochs_decay=2,
                      save_every=100, sample_every=100)
    trainer = Trainer(cfg, tiny_dataset, tmp_path / "run", progress=False)
    seen: list[tuple[float, float]] = []
    step = trainer.train_step

    def recording_step(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        seen.append((trainer.model.opt_G.param_groups[0]["lr"], trainer.model.opt_D.param_groups[0]["lr"]))
        return step(a, b)

    trainer.train_step = recording_step  # type: ignore[method-assign]
    trainer.fit()
    expected = [2e-4] * 4 + [2e-4 * 2 / 3] * 2 + [2e-4 / 3] * 2
    assert [g for g, _ in seen] == pytest.approx(expected)
    assert [d for _, d in seen] == pytest.approx(expected)
    hist = read_history(tmp_path / "run")
    assert hist["lr"] == pytest.approx(expected, rel=1e-5)
    assert hist["epoch"] == [0, 0, 1, 1, 2, 2, 3, 3]


# -- one run -----------------------------------------------------------------------------------
def test_smoke_run_writes_everything(tiny_dataset: Path, tmp_path: Path, one_thread) -> None:
    run = tmp_path / "run"
    summary = train(make_config("stabilized", "smoke"), tiny_dataset, run, progress=False)
    assert summary["step"] == summary["total_steps"] == 8 and summary["complete"]
    assert run_is_complete(run)
    for name in ("config.json", "data_report.txt", "history.csv", "log.txt", "summary.json"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "samples").iterdir()) == \
        ["step_00000004.png", "step_00000008.png"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == \
        ["step_00000004.pt", "step_00000008.pt"]
    with open(run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, 9))
    assert list(rows[0]) == ["step", "epoch", "lr", *LOSS_NAMES]
    values = torch.tensor([[float(r[k]) for k in LOSS_NAMES] for r in rows])
    assert torch.isfinite(values).all() and (values >= 0).all()
    state = safe_load(run / "checkpoints" / "step_00000008.pt")
    assert state["step"] == 8 and state["history"].shape == (8, len(LOSS_NAMES))
    assert torch.allclose(state["history"], values, rtol=1e-5)
    assert load_checkpoint_config(run)["preset"] == "stabilized"


def test_training_changes_all_four_networks(tiny_dataset: Path, tmp_path: Path, one_thread) -> None:
    cfg = make_config("stabilized", "smoke", max_steps=2)
    trainer = Trainer(cfg, tiny_dataset, tmp_path / "run", progress=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    after = trainer.model.state_dict()
    weights = [k for k in before if k.endswith(".weight")]
    assert {k.split(".")[0] for k in weights} == {"G_AB", "G_BA", "D_A", "D_B"}
    for key in weights:  # every conv weight gets a gradient and moves
        assert not torch.equal(before[key], after[key]), key
    assert all(p.requires_grad for p in trainer.model.parameters())


def test_identity_term_can_be_switched_off(tiny_dataset: Path, tmp_path: Path, one_thread) -> None:
    cfg = make_config("stabilized", "smoke", lambda_identity=0.0, max_steps=2)
    trainer = Trainer(cfg, tiny_dataset, tmp_path / "run", progress=False)
    trainer.fit()
    idt = trainer.history[:, [LOSS_NAMES.index("idt_A"), LOSS_NAMES.index("idt_B")]]
    assert torch.count_nonzero(idt) == 0
    assert torch.count_nonzero(trainer.history[:, LOSS_NAMES.index("cycle_A")]) == 2


def test_pool_fills_during_training(tiny_dataset: Path, tmp_path: Path, one_thread) -> None:
    cfg = make_config("stabilized", "smoke", pool_size=5)
    trainer = Trainer(cfg, tiny_dataset, tmp_path / "run", progress=False)
    trainer.fit()
    assert len(trainer.model.pool_A) == len(trainer.model.pool_B) == 5
    state = safe_load(latest_checkpoint(tmp_path / "run" / "checkpoints"))
    assert len(state["buffers"]["A"]["images"]) == 5


@pytest.mark.parametrize("preset", ["naive", "patch32", "blocks3"])
def test_other_presets_train(preset: str, tiny_dataset: Path, tmp_path: Path, one_thread) -> None:
    summary = train(make_config(preset, "smoke", max_steps=2), tiny_dataset, tmp_path / "run",
                    progress=False)
    assert summary["step"] == 2 and not summary["complete"]
    g = load_generator(tmp_path / "run", "BtoA")
    with torch.no_grad():
        y = g(torch.zeros(1, 3, 32, 32))
    if preset == "naive":
        assert y.min() >= 0
    else:
        assert y.abs().max() <= 1


@pytest.mark.parametrize("stop, stopped_at", [(dict(max_steps=3), 3),
                                               (dict(max_minutes=1e-9), 1)])
def test_resume_in_process_is_exact(stop: dict, stopped_at: int, tiny_dataset: Path,
                                    tmp_path: Path, one_thread) -> None:
    """Stop early (after max_steps, or when max_minutes run out), resume to the end: same
    weights as one go."""
    full = Trainer(make_config("stabilized", "smoke", pool_size=2), tiny_dataset,
                   tmp_path / "full", progress=False)
    full.fit()
    summary = train(make_config("stabilized", "smoke", pool_size=2, **stop), tiny_dataset,
                    tmp_path / "part", progress=False)
    assert (summary["step"], summary["complete"]) == (stopped_at, False)
    assert latest_checkpoint(tmp_path / "part" / "checkpoints").name == f"step_{stopped_at:08d}.pt"
    part = Trainer(make_config("stabilized", "smoke", pool_size=2), tiny_dataset, tmp_path / "part",
                   resume=True, progress=False)
    assert part.step == stopped_at
    part.fit()
    for k, v in full.model.state_dict().items():
        assert torch.equal(part.model.state_dict()[k], v), k
    for name in ("opt_G", "opt_D"):  # Adam moments and step counts
        a, b = getattr(full.model, name).state_dict(), getattr(part.model, name).state_dict()
        for i, st in a["state"].items():
            assert all(torch.equal(st[k], b["state"][i][k]) for k in st), (name, i)
    for name in ("pool_A", "pool_B"):  # full buffers, swapping since step 3
        a, b = getattr(full.model, name), getattr(part.model, name)
        assert len(a) == 2 and all(torch.equal(x, y) for x, y in zip(a.images, b.images))
        assert a.rng.getstate() == b.rng.getstate()
    assert torch.equal(full.history, part.history)
    assert (tmp_path / "full" / "history.csv").read_text() == \
        (tmp_path / "part" / "history.csv").read_text()


def test_existing_run_needs_resume(tiny_dataset: Path, tmp_path: Path, one_thread) -> None:
    cfg = make_config("stabilized", "smoke", max_steps=1)
    train(cfg, tiny_dataset, tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match="--resume"):
        Trainer(cfg, tiny_dataset, tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match="ngf"):
        Trainer(make_config("stabilized", "smoke", ngf=4), tiny_dataset, tmp_path / "run",
                resume=True, progress=False)
    # bookkeeping may change on resume
    Trainer(make_config("stabilized", "smoke", max_steps=2, save_every=1), tiny_dataset,
            tmp_path / "run", resume=True, progress=False)


def test_load_generator_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_generator(tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        load_generator(tmp_path / "nope.pt")
    torch.save({"w": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a cyclegan_lib checkpoint"):
        load_generator(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="direction"):
        load_generator(tmp_path / "other.pt", direction="sideways")


def test_fewer_images_than_a_batch_still_trains(tiny_dataset: Path, tmp_path: Path,
                                                one_thread) -> None:
    """8 images, batch 16, epoch size from the data: one step per epoch, not zero."""
    cfg = dataclasses.replace(make_config("stabilized", "smoke", batch_size=16),
                              epoch_size=None).validate()
    summary = train(cfg, tiny_dataset, tmp_path / "run", progress=False)
    assert summary["total_steps"] == cfg.total_epochs == 2 and summary["step"] == 2
    assert latest_checkpoint(tmp_path / "run" / "checkpoints").name == "step_00000002.pt"


def test_ema_generators_average_the_weights_and_resume_exactly(tiny_dataset: Path, tmp_path: Path,
                                                               one_thread) -> None:
    """ema = d * ema + (1 - d) * w after every generator step; saved, resumed, loaded."""
    cfg = make_config("stabilized", "smoke", pool_size=2, ema_decay=0.9)
    full = Trainer(cfg, tiny_dataset, tmp_path / "full", progress=False)
    start = {k: v.clone() for k, v in full.model.G_AB.state_dict().items()}
    expected = {k: v.clone() for k, v in start.items()}
    step = full.model.update_ema

    def tracking() -> None:
        step()
        for k, w in full.model.G_AB.state_dict().items():
            expected[k] = 0.9 * expected[k] + 0.1 * w
    full.model.update_ema = tracking  # type: ignore[method-assign]
    full.fit()
    for k, v in full.model.ema["G_AB"].state_dict().items():
        assert torch.allclose(v, expected[k], atol=1e-6), k
        if v.is_floating_point() and v.numel() > 1:
            assert not torch.equal(v, full.model.G_AB.state_dict()[k]), k  # averaged, not a copy
    train(dataclasses.replace(cfg, max_steps=3), tiny_dataset, tmp_path / "part", progress=False)
    part = Trainer(cfg, tiny_dataset, tmp_path / "part", resume=True, progress=False)
    part.fit()
    for k, v in full.model.ema.state_dict().items():
        assert torch.equal(part.model.ema.state_dict()[k], v), k
    shipped = load_generator(tmp_path / "full")
    raw = load_generator(tmp_path / "full", ema=False)
    for k, v in shipped.state_dict().items():
        assert torch.equal(v, full.model.ema["G_AB"].state_dict()[k])
        assert torch.equal(raw.state_dict()[k], full.model.G_AB.state_dict()[k])


def test_schedule_length_may_change_while_the_rate_is_still_constant(tiny_dataset: Path,
                                                                      tmp_path: Path,
                                                                      one_thread) -> None:
    """Saved at step 4 of 3+3 epochs (2 steps each), finished as 2+2: same as 2+2 from the start."""
    short = dict(epoch_size=2, save_every=2, sample_every=100)
    full = Trainer(make_config("stabilized", "smoke", n_epochs=2, n_epochs_decay=2, **short),
                   tiny_dataset, tmp_path / "full", progress=False)
    full.fit()
    train(make_config("stabilized", "smoke", n_epochs=3, n_epochs_decay=3, max_steps=4, **short),
          tiny_dataset, tmp_path / "part", progress=False)
    part = Trainer(make_config("stabilized", "smoke", n_epochs=2, n_epochs_decay=2, **short),
                   tiny_dataset, tmp_path / "part", resume=True, progress=False)
    assert part.step == 4
    part.fit()
    for k, v in full.model.state_dict().items():
        assert torch.equal(part.model.state_dict()[k], v), k
    # past the constant phase of either schedule the steps differ: refused
    train(make_config("stabilized", "smoke", n_epochs=3, n_epochs_decay=3, max_steps=6, **short),
          tiny_dataset, tmp_path / "late", progress=False)
    with pytest.raises(TrainingError, match="n_epochs"):
        Trainer(make_config("stabilized", "smoke", n_epochs=2, n_epochs_decay=2, **short),
                tiny_dataset, tmp_path / "late", resume=True, progress=False)
