"""Multi-process training under torchrun: two Gloo processes on CPU.

The launches are real ``torchrun --nproc_per_node=2 --no-python cyclegan-anime
train`` jobs (a 3-step run, then ``--resume`` to the end of the smoke
schedule), so the tests cover the launcher environment, process-group set-up,
DDP gradient sync, sharding, rank-0-only writes and resume as users run them.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cyclegan_lib.config import ConfigError, make_config
from cyclegan_lib.data import EpochPlan
from cyclegan_lib.distributed import DistEnv, launcher_env, weights_checksum
from cyclegan_lib.models import ResnetGenerator
from cyclegan_lib.runs import load_generator, read_history
from cyclegan_lib.trainer import Trainer

BIN = Path(sys.executable).parent
LAUNCH_TIMEOUT = 300


def _torchrun(args: list[str], cache: Path) -> subprocess.CompletedProcess:
    torchrun = BIN / "torchrun"
    launcher = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m",
                                                           "torch.distributed.run"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               CYCLEGAN_CACHE=str(cache), PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    # --standalone: a rendezvous on a free local port, so parallel test runs never collide.
    return subprocess.run([*launcher, "--standalone", "--nproc_per_node=2", "--no-python", *args],
                          env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT)


def _train_args(data: Path, out: Path, *extra: str) -> list[str]:
    # fp32 (no bf16 autocast): the gradient test compares losses to 1e-4
    return ["cyclegan-anime", "train", "--preset", "stabilized", "--profile", "smoke",
            "--data", str(data), "--out", str(out), "--no-progress", "--set", "amp=off", *extra]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> dict:
    """A 2-process smoke run stopped after 3 steps, then resumed under torchrun to step 8."""
    base = tmp_path_factory.mktemp("ddp")
    cache = tmp_path_factory.getbasetemp() / "cache"
    run = base / "run"
    first = _torchrun(_train_args(data_root, run, "--max-steps", "3"), cache)
    assert first.returncode == 0, first.stderr[-3000:]
    second = _torchrun(_train_args(data_root, run, "--resume"), cache)
    assert second.returncode == 0, second.stderr[-3000:]
    return {"base": base, "run": run, "first": first, "second": second, "cache": cache}


# -- the launcher's environment ----------------------------------------------------------

def test_launcher_env_outside_torchrun_is_single_process():
    assert launcher_env({}) is None
    assert launcher_env({"WORLD_SIZE": "1"}) == DistEnv(0, 1, 0)


def test_launcher_env_reads_torchrun_variables():
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "MASTER_ADDR": "node0",
           "MASTER_PORT": "29500"}
    assert launcher_env(env) == DistEnv(rank=3, world_size=4, local_rank=1)


@pytest.mark.parametrize("env, words", [
    ({"WORLD_SIZE": "2"}, ["WORLD_SIZE=2", "MASTER_ADDR", "torchrun --nproc_per_node=2"]),
    ({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_PORT": "1"}, ["MASTER_ADDR"]),
    ({"WORLD_SIZE": "two"}, ["WORLD_SIZE='two'"]),
    ({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "h", "MASTER_PORT": "1"},
     ["RANK=2", "outside"]),
])
def test_launcher_env_without_a_launcher_is_a_one_line_error(env, words):
    with pytest.raises(ConfigError) as info:
        launcher_env(env)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_cli_with_world_size_but_no_launcher_fails_in_one_line(tmp_path, tiny_dataset,
                                                               monkeypatch, capsys):
    from cyclegan_lib.cli import main

    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    out = tmp_path / "run"
    code = main(["train", "--profile", "smoke", "--data", str(tiny_dataset), "--out", str(out),
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "MASTER_ADDR" in err[0] and "torchrun" in err[0], err
    assert not out.exists()


# -- sharding --------------------------------------------------------------------------

@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_epoch_shards_partition_the_epoch(world_size):
    plan = EpochPlan.draw(n_a=40, n_b=30, samples=8 * world_size, load_size=36, crop_size=32,
                          seed=5, epoch=2)
    shards = [plan.shard(r, world_size) for r in range(world_size)]
    assert {len(s) for s in shards} == {8}
    # Every sample of the epoch goes to exactly one rank...
    rows = sorted(tuple(int(v) for v in (s.index_a[i], s.index_b[i], *s.crop_a[i], *s.crop_b[i],
                                         s.flip_a[i], s.flip_b[i]))
                  for s in shards for i in range(len(s)))
    full = sorted(tuple(int(v) for v in (plan.index_a[i], plan.index_b[i], *plan.crop_a[i],
                                         *plan.crop_b[i], plan.flip_a[i], plan.flip_b[i]))
                  for i in range(len(plan)))
    assert rows == full
    # ...and, while an epoch is shorter than domain A, no A image reaches two ranks.
    seen = [set(s.index_a.tolist()) for s in shards]
    assert sum(len(s) for s in seen) == len(set().union(*seen)) == 8 * world_size


# -- the torchrun job ------------------------------------------------------------------

def test_torchrun_job_writes_one_run_directory(ddp_run):
    base, run = ddp_run["base"], ddp_run["run"]
    assert [p.name for p in base.iterdir()] == ["run"]
    assert [p.relative_to(base) for p in base.rglob("history.csv")] == [Path("run/history.csv")]
    history = read_history(run)
    assert history["step"] == [float(s) for s in range(1, 9)]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["complete"] and summary["world_size"] == 2 and summary["effective_batch"] == 2
    config = json.loads((run / "config.json").read_text())
    assert config["batch_size"] == 1
    assert not list(run.glob("failure_rank*.txt"))
    out = ddp_run["first"].stdout + ddp_run["second"].stdout
    assert out.count("run directory:") == 2  # printed by rank 0 only, once per launch


def test_resume_under_torchrun_continues_from_the_checkpoint(ddp_run):
    log = (ddp_run["run"] / "log.txt").read_text()
    assert "resuming from step_00000003.pt at step 3" in log
    assert re.search(r"weights after step 3: checksum [0-9a-f]{15} identical on all 2 ranks", log)
    assert "done: step 8/8" in log


def test_weights_identical_on_all_ranks(ddp_run):
    run = ddp_run["run"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["weights_identical_across_ranks"] is True
    log = (run / "log.txt").read_text()
    line = re.search(r"weights after step 8: checksum ([0-9a-f]{15}) identical on all 2 ranks",
                     log)
    assert line and line.group(1) == summary["weights_checksum"]
    # The recorded checksum is that of the checkpointed weights (rank 0's, unwrapped).
    state = torch.load(run / "checkpoints" / "step_00000008.pt", weights_only=True)
    nets = []
    cfg = make_config("stabilized", "smoke")
    from cyclegan_lib.cyclegan import CycleGAN

    model = CycleGAN(cfg)
    for key in ("G_AB", "G_BA", "D_A", "D_B"):
        getattr(model, key).load_state_dict(state["models"][key])
        nets.append(getattr(model, key))
    assert f"{weights_checksum(nets):015x}" == summary["weights_checksum"]


def test_checkpoint_loads_into_a_plain_generator(ddp_run):
    state = torch.load(ddp_run["run"] / "checkpoints" / "step_00000008.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state["models"]["G_AB"])
    net = load_generator(ddp_run["run"], "AtoB")
    assert type(net) is ResnetGenerator
    with torch.no_grad():
        out = net(torch.zeros(1, 3, 32, 32))
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()


def test_ranks_saw_disjoint_images_every_epoch(ddp_run):
    log = (ddp_run["run"] / "log.txt").read_text()
    lines = re.findall(r"epoch (\d+) data: 2 ranks x (\d+) samples, (\d+) distinct A images, "
                       r"(\d+) on more than one rank", log)
    # first launch: epoch 0; resumed launch: epochs 0 (redrawn) and 1
    assert [e for e, *_ in lines] == ["0", "0", "1"]
    for _, per_rank, distinct, shared in lines:
        assert (int(per_rank), int(distinct), int(shared)) == (4, 8, 0)


def test_ddp_gradients_match_one_process_with_the_double_batch(ddp_run, data_root,
                                                                tmp_path):
    """2 ranks x batch 1 = 1 process x batch 2 on the same images (while the buffer fills).

    Step 1's losses are computed from the common initial weights; step 2's
    from the weights after one averaged update of all four networks, so they
    agree only if DDP averaged the generator and discriminator gradients.
    (Without any sync, step 2 differs by about 1e-1 relative.)
    """
    threads = torch.get_num_threads()
    try:  # one thread, like each rank (and far faster than two on a busy machine)
        single = Trainer(make_config("stabilized", "smoke", batch_size=2, max_steps=2, threads=1,
                                     amp="off"),
                         data_root, tmp_path / "single", progress=False)
        single.fit()
    finally:
        torch.set_num_threads(threads)
    ddp = torch.tensor([list(v[:2]) for k, v in read_history(ddp_run["run"]).items()
                        if k not in ("step", "epoch", "lr")])
    ref = single.history[:2].T.double()
    assert torch.allclose(ddp.double(), ref, rtol=1e-4, atol=1e-6), (ddp, ref)


def test_a_failing_rank_ends_the_job_with_one_line_from_rank_0(tmp_path, data_root):
    script = tmp_path / "fail_on_rank1.py"
    script.write_text(
        "import sys\n"
        "from cyclegan_lib import trainer\n"
        "from cyclegan_lib.cli import main\n"
        "step = trainer.Trainer.train_step\n"
        "def failing(self, a, b):\n"
        "    if self.rank == 1 and self.step == 2:\n"
        "        raise ValueError('injected failure on rank 1')\n"
        "    return step(self, a, b)\n"
        "trainer.Trainer.train_step = failing\n"
        "sys.exit(main(sys.argv[1:]))\n")
    run = tmp_path / "run"
    proc = _torchrun([sys.executable, str(script), *_train_args(data_root, run)[1:]],
                     tmp_path / "cache")
    assert proc.returncode != 0
    ours = [ln for ln in (proc.stdout + proc.stderr).splitlines()
            if ln.startswith("cyclegan-anime")]
    assert ours == ["cyclegan-anime train: error: rank 1 failed: ValueError: injected failure "
                    f"on rank 1 (traceback in {run / 'failure_rank1.txt'})"], proc.stderr[-3000:]
    # No traceback from the training processes themselves (torchrun adds its own summary).
    assert "cyclegan_lib" not in proc.stderr.replace(str(run), "")
    assert "injected failure on rank 1" in (run / "failure_rank1.txt").read_text()


def test_two_process_checkpoint_resumes_in_one_process(ddp_run, data_root, tmp_path):
    """The smoke profile fixes epoch_size (steps per rank), so step 4 means the same in both."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(ddp_run["run"], run)
    (run / "checkpoints" / "step_00000008.pt").unlink()
    (run / "summary.json").unlink()
    threads = torch.get_num_threads()
    try:
        trainer = Trainer(make_config("stabilized", "smoke", threads=1), data_root, run,
                          resume=True, progress=False)
        assert trainer.step == 4 and trainer.world_size == 1
        summary = trainer.fit()
    finally:
        torch.set_num_threads(threads)
    assert summary["complete"] and summary["step"] == 8 and summary["world_size"] == 1
    assert read_history(run)["step"] == [float(s) for s in range(1, 9)]
