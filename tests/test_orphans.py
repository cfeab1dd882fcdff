"""kill -9 at random moments leaves no worker behind: train.py's and evaluate.py's worker
processes (the selection and evaluation pools, the SubprocVecEnv env workers, the
forkserver and the resource tracker) all end when the script is killed, during the base
selection, training, the snapshot selection or the comparison. Slow: subprocesses.

    python -m pytest -m slow tests/test_orphans.py -s    # prints where each kill landed
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Seconds the workers may take to end. A worker that is running ends at once (the kernel's
# parent-death signal, or the watchdog within a second); a spawned pool worker still
# importing torch when the parent dies ends once its imports are done and its initializer
# runs, which takes a minute on a loaded two-core machine.
GRACE = 180.0


def session_members(sid: int) -> list[str]:
    """``pid command`` of every live process in session ``sid`` (the script's workers keep
    the session the script was started in)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            found.append(f"{entry.name} {cmdline[:120]}")
    return found


def start(script: str, *argv: str) -> tuple[subprocess.Popen, queue.Queue]:
    """The script in its own session, its stdout lines on a queue."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / script), *argv],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return process, lines


def kill_after(process: subprocess.Popen, lines: queue.Queue, marker: str, delay: float) -> str:
    """SIGKILL ``process`` ``delay`` seconds after it printed ``marker``; say where."""
    deadline = time.monotonic() + 300
    while True:
        assert time.monotonic() < deadline, f"never printed {marker!r}"
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            assert process.poll() is None, f"ended before printing {marker!r}"
            continue
        if marker in line:
            break
    time.sleep(delay)
    if process.poll() is not None:
        return f"{marker!r} + {delay:.1f} s: finished first"
    process.send_signal(signal.SIGKILL)
    process.wait()
    return f"{marker!r} + {delay:.1f} s"


def assert_no_survivors(sid: int, where: str) -> None:
    started = time.monotonic()
    while (left := session_members(sid)) and time.monotonic() < started + GRACE:
        time.sleep(0.2)
    assert not left, f"killed at {where}; still alive after {GRACE:g} s: {left}"
    print(f"  every worker gone {time.monotonic() - started:.1f} s after the kill")


TRAIN = [
    "--preset",
    "smoke",
    "--n-envs",
    "2",
    "--episodes",
    "8",
    "--residual-over",
    "wsd,schedule_free",
    "--select-every",
    "4",
    "--select-seeds",
    "2",
    "--no-progress",
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "marker",
    [
        "choosing the base schedule",  # the base selection's pool
        "  base: ",  # building the SubprocVecEnv workers, training
        "choosing among the snapshots",  # the snapshot selection's pool
    ],
)
def test_killing_train_py_leaves_no_worker(tmp_path, marker):
    rng = random.Random(marker)
    process, lines = start("train.py", *TRAIN, "--out", str(tmp_path / "run"))
    where = kill_after(process, lines, marker, rng.uniform(0.5, 4.0))
    print(f"\ntrain.py killed at {where}")
    assert_no_survivors(process.pid, where)


@pytest.mark.slow
def test_killing_evaluate_py_leaves_no_worker(tmp_path):
    rng = random.Random(3)
    flags = ["--preset", "smoke", "--workers", "2", "--no-progress", "--baselines", "constant,wsd"]
    process, lines = start("evaluate.py", *flags, "--out", str(tmp_path / "eval"))
    where = kill_after(process, lines, "evaluating on", rng.uniform(1.0, 5.0))
    print(f"\nevaluate.py killed at {where}")
    assert_no_survivors(process.pid, where)
