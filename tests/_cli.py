"""Run the installed ``cyclegan-anime`` console script as a user would (helpers for tests)."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CLI = Path(sys.executable).with_name("cyclegan-anime")


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def one_line_error(self) -> str:
        """Assert the command failed the way users should see it, return its message."""
        assert self.returncode != 0, f"{self.args}: expected failure\n{self.stdout}"
        assert "Traceback" not in self.stderr + self.stdout, self.stderr
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, f"{self.args}: expected one line on stderr, got:\n{self.stderr}"
        return lines[0]


def cli_env() -> dict[str, str]:
    """The test process's environment (data paths, the per-session decode cache).

    One OpenMP thread per command: the test machine's cores are shared, and torch's
    spinning worker threads slow down by an order of magnitude when oversubscribed.
    """
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def start(*args: str | Path) -> subprocess.Popen:
    assert CLI.is_file(), f"console script not installed next to {sys.executable}"
    return subprocess.Popen([str(CLI), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env())


def finish(proc: subprocess.Popen, timeout: float = 300) -> Result:
    out, err = proc.communicate(timeout=timeout)
    return Result([str(a) for a in proc.args], proc.returncode, out, err)


def run(*args: str | Path, timeout: float = 300) -> Result:
    return finish(start(*args), timeout)


def run_many(commands: list[list[str | Path]], timeout: float = 300) -> list[Result]:
    """Start every command at once (each mostly waits for imports), then collect them."""
    procs = [start(*c) for c in commands]
    return [finish(p, timeout) for p in procs]
