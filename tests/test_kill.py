"""kill -9 at random moments (as a job scheduler or the OOM killer does): a train.py run
killed again and again, each time resumed, finishes with every checkpoint readable. Slow: a
minute or two of subprocesses.

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
from agents.run_folder import RunDir
from lrenv.controller import Controller

ROOT = Path(__file__).resolve().parents[1]
KILLS = 12
EPISODES = 40


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


def event_files(run: RunDir) -> int:
    """TensorBoard event files of the run: one more for each session that began training."""
    return len(list(run.tb.glob("events.out.tfevents.*"))) if run.tb.exists() else 0


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
    new = ["--preset", "smoke", "--out", str(run.path), "--episodes", str(EPISODES)]
    common = ["--no-progress", "--checkpoint-every", "2", "--threads", "1"]
    kills = corrupted = 0
    at: list[int] = []  # episodes checkpointed when each kill landed
    argv = [*new, *common]
    for _ in range(KILLS):
        sessions = event_files(run)
        process = start(*argv)
        # past the imports (seconds), training has begun once this session's TensorBoard
        # file is there; then kill within the next episodes or checkpoint writes
        deadline = time.monotonic() + 120
        while event_files(run) == sessions and process.poll() is None:
            assert time.monotonic() < deadline, "train.py did not start training"
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 1.5))
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
    assert progress["finished"] and progress["episodes_done"] == EPISODES
    assert readable(run) and Controller.load(run.path).observation_size == 7
    assert not list(run.path.rglob("*.tmp"))


@pytest.mark.slow
def test_sigterm_to_the_process_group_stops_quietly_with_two_workers(tmp_path):
    """What a cluster scheduler does: SIGTERM to every process of the job, workers too."""
    run = RunDir(tmp_path / "run")
    argv = ["--preset", "smoke", "--out", str(run.path), "--n-envs", "2", "--episodes", "40"]
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *argv, "--checkpoint-every", "2", "--no-progress"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a job has
    )
    deadline = time.monotonic() + 120
    while not run.pointer.exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert err == ""  # no worker tracebacks
    assert f"continue with: python train.py --resume {run.path}" in out
    assert readable(run)
