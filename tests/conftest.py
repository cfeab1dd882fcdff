"""Shared fixtures: the synthetic task keeps the default test run to seconds."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest
from hypothesis import HealthCheck, settings

import lrenv  # noqa: F401  (registers the environments)
from lrenv.threads import torch_threads

# Property-based tests (tests/test_fuzz.py): the default run tries the same few examples
# every time (fast, reproducible); --hypothesis-profile lrenv-long fuzzes with fresh ones.
settings.register_profile(
    "lrenv",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "lrenv-long", settings.get_profile("lrenv"), max_examples=1000, derandomize=False
)
settings.load_profile("lrenv")


@pytest.fixture(scope="module")
def one_torch_thread():
    """The module's tests compute with one torch thread (the count is restored after).

    Tiny trainees gain nothing from a second thread, and on a busy two-core machine two
    threads that wait for each other are many times slower than one (see
    docs/benchmarks.md#threads). Use it with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    with torch_threads(1):
        yield


@pytest.fixture
def synthetic_env():
    """A fresh ``lrenv/Synthetic-v0``, closed after the test."""
    env = gym.make("lrenv/Synthetic-v0")
    yield env
    env.close()


RECURRENT_KWARGS = '{"progress_feature": true, "feature_transform": "log", "factor_base": 1.25}'


def _train_smoke(out: Path, *flags: str) -> Path:
    """A controller trained by train.py in seconds (the smoke preset, two synthetic
    episodes, one torch thread: two on a busy two-core machine are many times slower);
    returns its run folder."""
    import train  # the script at the project root (pytest's pythonpath)

    with torch_threads(1):
        return train.main(
            [
                "--preset",
                "smoke",
                "--episodes",
                "2",
                "--no-progress",
                "--figure-every",
                "0",
                "--checkpoint-every",
                "0",
                "--out",
                str(out),
                *flags,
            ]
        )


@pytest.fixture(scope="session")
def train_smoke():
    """``train_smoke(out, *flags)``: train a controller in seconds; returns its run folder."""
    return _train_smoke


@pytest.fixture(scope="session")
def smoke_run_folders(tmp_path_factory) -> dict[str, Path]:
    """Run folders shared read-only by the tests of controllers and the scheduler:
    ``"ppo"`` (the smoke preset: raw features, factor 2) and ``"recurrent"`` (RecurrentPPO;
    log features, progress, factor 1.25)."""
    root = tmp_path_factory.mktemp("smoke-runs")
    return {
        "ppo": _train_smoke(root / "ppo"),
        "recurrent": _train_smoke(root / "lstm", "--recurrent", "--env-kwargs", RECURRENT_KWARGS),
    }
