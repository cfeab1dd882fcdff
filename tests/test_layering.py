"""The environment package imports no RL library and nothing of the agents: users of other
RL libraries, CleanRL-style scripts and the drop-in scheduler's users get lrenv without
stable-baselines3, and a folder of theirs named ``agents`` cannot
shadow anything lrenv needs."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import lrenv

RL_LIBRARIES = ("stable_baselines3", "sb3_contrib")
NOT_IMPORTED = (*RL_LIBRARIES, "agents")


def test_no_lrenv_module_imports_an_rl_library():
    modules = ["lrenv", *(f"lrenv.{m.name}" for m in pkgutil.iter_modules(lrenv.__path__))]
    assert {"lrenv.vector", "lrenv.env", "lrenv.scheduler", "lrenv.controller"} <= set(modules)
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(m for m in {NOT_IMPORTED!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]", f"lrenv imported {result.stdout.strip()}"


def test_the_episode_trace_imports_no_plotting_code():
    """lrenv.trace is data that the env, the scheduler and evaluate.py's workers keep; the
    figures read it, so drawing code (matplotlib) loads only where something is drawn."""
    code = (
        "import sys, lrenv.trace\n"
        "print(sorted(m for m in ('lrenv.plotting', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]", f"lrenv.trace imported {result.stdout.strip()}"
