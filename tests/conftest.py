"""Shared fixtures: the synthetic task keeps the default test run to seconds."""

from __future__ import annotations

import gymnasium as gym
import pytest

import lrenv  # noqa: F401  (registers the environments)


@pytest.fixture
def synthetic_env():
    """A fresh ``lrenv/Synthetic-v0``, closed after the test."""
    env = gym.make("lrenv/Synthetic-v0")
    yield env
    env.close()
