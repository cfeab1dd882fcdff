"""kill -9 at random moments (issue 14): a train.py run killed again and again, each time
resumed, finishes with every checkpoint readable. Slow: a minute or two of subprocesses.

    python -m pytest -m slow tests/test_kill.py -s    # prints the figures
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.checkpoints import pickled_entries, read_normalization
from agents.controller import Controller
from agents.runs import RunDir

ROOT = Path(__file__).resolve().parents[1]
KILLS = 10


def start(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def readable(run: RunDir) -> bool:
    """Whether the latest checkpoint (if any) reads as a resume would read it."""
    checkpoint = run.last_checkpoint()
    if checkpoint is None:
        return True
    pickled_entries(checkpoint.controller)
    if checkpoint.vecnormalize is not None:
        read_normalization(checkpoint.vecnormalize)
    Controller.load(checkpoint.controller)
    return True


@pytest.mark.slow
def test_kill_9_at_random_moments_never_corrupts_a_checkpoint(tmp_path):
    rng = random.Random(14)
    run = RunDir(tmp_path / "run")
    new = ["--preset", "smoke", "--out", str(run.path), "--episodes", "16"]
    common = ["--no-progress", "--checkpoint-every", "2", "--torch-threads", "1"]
    kills = corrupted = 0
    at: list[int] = []  # episodes checkpointed when each kill landed
    argv = [*new, *common]
    for _ in range(KILLS):
        process = start(*argv)
        time.sleep(rng.uniform(3.0, 7.0))  # ~3-5 s of imports, then an episode every ~0.3 s
        if process.poll() is not None:
            break  # finished before the kill
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        try:
            readable(run)
        except ValueError:
            corrupted += 1
        checkpoint = run.last_checkpoint() if run.pointer.exists() else None
        at.append(checkpoint.progress["episodes_done"] if checkpoint else -1)
        if run.config_path.exists():
            argv = ["--resume", str(run.path), *common]
    process = start(*argv)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    progress = run.last_checkpoint().progress
    print(f"\nkill -9: {kills} kills (checkpointed episodes at each: {at}), {corrupted} unreadable")
    assert corrupted == 0
    assert progress["finished"] and progress["episodes_done"] == 16
    assert readable(run) and Controller.load(run.path).observation_size == 7
    assert not list(run.path.rglob("*.tmp"))
