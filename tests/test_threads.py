"""The trainee computes with ``torch_threads`` threads and gives the caller's count back:
on a busy machine more threads than free cores slow training many times."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from lrenv.vector import BatchedEnvs


@pytest.fixture
def two_threads():
    """The process at two torch threads (a client that never set them, on two cores)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(saved)


def record_threads(trainee, seen):
    """Make ``trainee.train_steps`` note torch's thread count while it trains."""
    train_steps = trainee.train_steps

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return train_steps(*args, **kwargs)

    trainee.train_steps = spy


@pytest.mark.parametrize(("torch_threads", "inside"), [({}, 1), ({"torch_threads": None}, 2)])
def test_env_trains_with_its_threads_and_restores_the_callers(two_threads, torch_threads, inside):
    env = gym.make("lrenv/Synthetic-v0", device="cpu", **torch_threads)
    seen = []
    record_threads(env.unwrapped.trainee, seen)
    env.reset(seed=0)
    assert torch.get_num_threads() == 2
    env.step(np.zeros(1, np.float32))
    assert seen == [inside] and torch.get_num_threads() == 2


def test_batched_envs_train_with_their_threads(two_threads):
    batch = BatchedEnvs(2, "lrenv/Synthetic-v0", device="cpu")
    seen = []
    record_threads(batch.trainee, seen)
    for i, env in enumerate(batch.envs):
        env.reset(seed=i)
    batch.step([np.zeros(1, np.float32)] * 2)
    assert seen == [1] and torch.get_num_threads() == 2


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_torch_threads_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="torch_threads must be None or a positive integer"):
        gym.make("lrenv/Synthetic-v0", device="cpu", torch_threads=bad)
