"""Trainees, selection grids and evaluation runs on a (local) Ray instance (issue 15).

One local Ray instance serves the whole module; everything skips where Ray is absent.
"""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from agents.ppo import make_env

ray = pytest.importorskip("ray")

from agents.ray_cluster import connect  # noqa: E402  (needs ray)
from agents.ray_vec import EnvActorLostError, RayVecEnv  # noqa: E402

ENV_ID = "lrenv/Synthetic-v0"
SHORT = {"total_steps": 40}  # 4 decisions an episode


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray instance of two cores, for this module's tests."""
    with connect("local", num_cpus=2) as module:
        yield module


def _actions(n_steps: int, n_envs: int) -> np.ndarray:
    return np.random.default_rng(7).uniform(-1, 1, (n_steps, n_envs, 1)).astype(np.float32)


def _roll(venv, actions: np.ndarray, kill_at: int | None = None) -> list[tuple]:
    """Step ``venv`` through ``actions`` from a seeded reset; kill env 1's actor before
    step ``kill_at``."""
    venv.seed(3)
    out = [(venv.reset(),)]
    for t, action in enumerate(actions):
        if t == kill_at:
            ray.kill(venv.actors[1], no_restart=True)
        obs, rewards, dones, infos = venv.step(action)
        terminal = [info.get("terminal_observation") for info in infos]
        out.append((obs, rewards, dones, terminal, [info["val_loss"] for info in infos]))
    return out


def _assert_same(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            if isinstance(u, list):
                for p, q in zip(u, v, strict=True):
                    np.testing.assert_allclose(p, q, rtol=1e-6) if p is not None else None
                    assert (p is None) == (q is None)
            else:
                np.testing.assert_allclose(u, v, rtol=1e-6)


def test_ray_vec_env_steps_as_dummy_vec_env_does(ray_local):
    actions = _actions(10, 2)  # two and a half episodes: auto-resets included
    dummy = DummyVecEnv([lambda: make_env(ENV_ID, SHORT, 1)] * 2)
    expected = _roll(dummy, actions)
    venv = RayVecEnv(ENV_ID, SHORT, 2)
    try:
        _assert_same(_roll(venv, actions), expected)
        assert venv.get_attr("decisions") == [4, 4]
    finally:
        venv.close()


@pytest.mark.parametrize("kill_at", [2, 4], ids=["mid-episode", "at-episode-end"])
def test_a_killed_actor_is_restarted_and_its_episode_redone(ray_local, kill_at):
    actions = _actions(7, 2)
    venv = RayVecEnv(ENV_ID, SHORT, 2)
    try:
        expected = _roll(venv, actions)
        first = venv.actors[1]
        _assert_same(_roll(venv, actions, kill_at=kill_at), expected)
        assert venv.restarts == [0, 1] and venv.actors[1] != first
    finally:
        venv.close()


def test_an_actor_lost_too_often_ends_the_run_with_a_clear_error(ray_local):
    venv = RayVecEnv(ENV_ID, SHORT, 2, max_restarts=0)
    try:
        with pytest.raises(EnvActorLostError, match="env 1 was lost 1 times"):
            _roll(venv, _actions(3, 2), kill_at=1)
    finally:
        venv.close()
