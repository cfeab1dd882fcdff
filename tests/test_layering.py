"""The environment package imports no RL library (issue 11, item 4): users of other RL
libraries, and CleanRL-style scripts, get lrenv without stable-baselines3."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import lrenv

RL_LIBRARIES = ("stable_baselines3", "sb3_contrib")


def test_no_lrenv_module_imports_an_rl_library():
    modules = ["lrenv", *(f"lrenv.{m.name}" for m in pkgutil.iter_modules(lrenv.__path__))]
    assert "lrenv.vector" in modules and "lrenv.env" in modules  # the walk found them
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(m for m in {RL_LIBRARIES!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]", f"lrenv imported {result.stdout.strip()}"
