"""Every id's spec: the batched vector entry point and the episode length."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import lrenv
from agents.env_factory import make_env
from lrenv.vector import BatchedVectorEnv

# the single-task ids; lrenv/TaskSet-v0 (many tasks, no one length) is tested in
# tests/test_task_sets.py
IDS = sorted(
    env_id
    for env_id in gym.registry
    if env_id.startswith("lrenv/") and env_id != "lrenv/TaskSet-v0"
)
SMALL = {"device": "cpu"}


def test_ids_found():
    assert "lrenv/Synthetic-v0" in IDS and len(IDS) == 9
    assert "lrenv/TaskSet-v0" in gym.registry


@pytest.mark.parametrize("env_id", IDS)
def test_spec_says_decisions_per_episode(env_id):
    spec = gym.spec(env_id)
    assert spec.vector_entry_point == "lrenv.vector:make_vector_env"
    if env_id == "lrenv/LRSchedule-v0":  # free keywords: no length is right for all of them
        assert spec.max_episode_steps is None
        return
    assert set(lrenv.TASK_KEYS) <= set(spec.kwargs)
    assert spec.max_episode_steps == spec.kwargs["total_steps"] // spec.kwargs["steps_per_action"]


def run_episode(env, seed=3):
    """Rewards and truncation flags of one episode with fixed actions."""
    env.reset(seed=seed)
    rewards, flags = [], []
    done = False
    while not done:
        _, reward, terminated, truncated, _ = env.step(np.array([-0.1], np.float32))
        rewards.append(reward)
        flags.append((terminated, truncated))
        done = terminated or truncated
    return rewards, flags


def test_time_limit_ends_the_episode_where_the_env_does():
    limited = gym.make("lrenv/Synthetic-v0", **SMALL)
    bare = gym.make("lrenv/Synthetic-v0", max_episode_steps=-1, **SMALL)  # no TimeLimit
    assert limited.spec.max_episode_steps == 20 and bare.spec.max_episode_steps is None
    assert any(isinstance(w, gym.wrappers.TimeLimit) for w in _wrappers(limited))
    assert not any(isinstance(w, gym.wrappers.TimeLimit) for w in _wrappers(bare))
    rewards, flags = run_episode(limited)
    assert run_episode(bare) == (rewards, flags)  # bit-identical, the same 20 decisions
    assert flags == [(False, False)] * 19 + [(False, True)]


def _wrappers(env):
    while isinstance(env, gym.Wrapper):
        yield env
        env = env.env


def test_make_env_gives_the_time_limit_of_the_keywords():
    """train.py's envs: a total_steps override moves the TimeLimit with it."""
    env = make_env("lrenv/Synthetic-v0", {"total_steps": 400, **SMALL})
    assert env.spec.max_episode_steps == 40 and env.unwrapped.decisions == 40


def test_make_vec_builds_batched_trainees():
    envs = gym.make_vec(
        "lrenv/Synthetic-v0", num_envs=3, vectorization_mode="vector_entry_point", **SMALL
    )
    assert isinstance(envs, BatchedVectorEnv) and envs.num_envs == 3
    assert envs.spec.max_episode_steps == 20
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (3, 7)
    for _ in range(20):
        _, _, terminated, truncated, infos = envs.step(np.zeros((3, 1), np.float32))
    assert truncated.all() and not terminated.any() and (infos["sgd_step"] == 200).all()
    envs.close()


def test_make_vec_refuses_a_length_the_episode_does_not_have():
    with pytest.raises(ValueError, match=r"pass max_episode_steps=40 as well"):
        gym.make_vec("lrenv/Synthetic-v0", num_envs=2, total_steps=400, **SMALL)
    envs = gym.make_vec(
        "lrenv/Synthetic-v0", num_envs=2, total_steps=400, max_episode_steps=40, **SMALL
    )
    assert envs.batch.envs[0].decisions == 40
    envs.close()
