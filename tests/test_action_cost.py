"""``action_cost``: each decision pays ``c * sum(|a_i|) / decisions``, and nothing else changes."""

import math

import numpy as np
import pytest
from schedule_free_task import SCHEDULE_FREE

from lrenv.env import LRScheduleEnv

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RESIDUAL_BETA = {**SCHEDULE_FREE, "beta_factor": 5, "reward": "vs_base"}


def episode(env: LRScheduleEnv, actions, seed: int = 3) -> list[tuple]:
    """(observation, reward, info) of each decision from a reset at ``seed``."""
    env.reset(seed=seed)
    out = []
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(np.asarray(a, np.float32))
        out.append((obs, reward, info))
        if terminated or truncated:
            break
    return out


def test_each_decision_pays_the_price_of_its_clipped_action_and_nothing_else_changes():
    # the second action is beyond the box: it is charged as clipped, like its effect
    actions = [[0.5, -0.25], [-1.7, 0.0], [0.0, 0.8], [0.0, 0.0], [0.3, 1.0], [-0.1, -0.6]]
    free = episode(LRScheduleEnv(**RESIDUAL_BETA), actions)
    priced = episode(LRScheduleEnv(**RESIDUAL_BETA, action_cost=0.3), actions)
    assert len(free) == len(priced) == 6
    for a, (obs, reward, info), (obs_c, reward_c, info_c) in zip(
        actions, free, priced, strict=True
    ):
        np.testing.assert_array_equal(obs, obs_c)
        assert info["val_loss"] == info_c["val_loss"]
        charged = 0.3 * sum(min(abs(float(np.float32(x))), 1.0) for x in a) / 6  # as stepped
        assert reward - reward_c == pytest.approx(charged, rel=1e-12, abs=1e-15)
    # the base run itself (action 0 throughout) pays nothing: its paired reward stays 0
    base_run = episode(LRScheduleEnv(**RESIDUAL_BETA, action_cost=0.3), [[0.0, 0.0]] * 6)
    assert [reward for _, reward, _ in base_run] == [0.0] * 6


def test_an_episode_pays_the_cost_times_its_mean_absolute_action():
    actions = [[0.4, -0.2]] * 6
    free = sum(r for _, r, _ in episode(LRScheduleEnv(**RESIDUAL_BETA), actions))
    priced_env = LRScheduleEnv(**RESIDUAL_BETA, action_cost=0.05)
    priced = sum(r for _, r, _ in episode(priced_env, actions))
    assert free - priced == pytest.approx(0.05 * 0.6)


def test_a_diverging_decision_pays_it_too():
    task = {
        "dataset": "synthetic",
        "model": "mlp",
        "batch_size": 64,
        "total_steps": 50,
        "action_mode": "absolute",
        "device": "cpu",
    }
    rewards = []
    for cost in (0.0, 2.0):
        env = LRScheduleEnv(**task, action_cost=cost)
        env.reset(seed=0, options={"initial_lr": 1e-3})
        # the top of lr_bounds diverges this trainee in its first decision (as in test_env)
        _, reward, terminated, _, info = env.step(np.array([1.0], np.float32))
        assert terminated and info["diverged"]
        rewards.append(reward)
    assert rewards[0] - rewards[1] == pytest.approx(2.0 * 1.0 / 5)
    assert rewards[1] < 0  # a divergence never pays


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, True, "0.1", None])
def test_a_cost_that_is_not_a_finite_number_at_least_0_is_refused(bad):
    with pytest.raises(ValueError, match=r"action_cost must be a finite number >= 0 .*got"):
        LRScheduleEnv(**RESIDUAL_BETA, action_cost=bad)
