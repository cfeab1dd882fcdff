"""A bad command line fails before the heavy imports: train.py and evaluate.py parse and
check each option with modules that import neither torch nor stable-baselines3, so the
one-line error comes in well under the seconds those imports take."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "stable_baselines3", "sb3_contrib", "matplotlib", "scipy")

# Run the script as `python SCRIPT ARGS` would, then list the heavy modules it imported.
PROBE = """
import runpy, sys
script, *args = sys.argv[1:]
sys.argv = [script, *args]
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as exit:
    code = exit.code
else:
    code = 0
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print(code, ",".join(heavy) or "-")
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["train.py", "--gamma", "5"],
        ["train.py", "--clip-range", "-0.2"],
        ["train.py", "--threads", "0"],
        ["train.py", "--preset", "nope"],
        ["train.py", "--episodes", "-5"],
        ["evaluate.py", "--runs", "-3"],
        ["evaluate.py", "--workers", "0"],
        ["evaluate.py", "--grid-seeds", "0"],
        ["evaluate.py", "--baselines", "nope"],
        ["train.py", "--env-id", "lrenv/Nope-v0"],
        ["evaluate.py", "--env-id", "lrenv/Nope-v0"],
    ],
)
def test_a_bad_option_exits_2_before_torch_is_imported(argv):
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    code, heavy = result.stdout.split()
    assert code == "2", result.stderr
    assert heavy == "-", f"{argv[0]} imported {heavy} before refusing {argv[1:]}"
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
