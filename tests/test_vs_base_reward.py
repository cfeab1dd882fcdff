"""reward="vs_base": the log-decrease of the validation loss less the base schedule's own,
the base run alone on the episode's seed. It is exactly 0 at action 0 and sums to the
log-ratio of the base's final loss to the controller's, so the trainee noise the two runs
share cancels out of the return."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

import lrenv  # noqa: F401  (registers the envs)

RESIDUAL = {"action_mode": "residual", "base_schedule": {"kind": "constant", "lr": 0.1}}


def episode(action: float, reward: str, seed: int = 3, **kwargs):
    """Rewards and the last info of one Synthetic-v0 episode at a constant action."""
    env = gym.make("lrenv/Synthetic-v0", total_steps=60, reward=reward, **RESIDUAL, **kwargs)
    env.reset(seed=seed)
    rewards, done, info = [], False, {}
    while not done:
        _, r, terminated, truncated, info = env.step(np.array([action], np.float32))
        rewards.append(r)
        done = terminated or truncated
    env.close()
    return rewards, info


@pytest.mark.parametrize("optimizer", ["sgd", "schedule_free"])
def test_action_zero_earns_exactly_nothing(optimizer):
    rewards, info = episode(0.0, "vs_base", optimizer=optimizer)
    assert len(rewards) == 6 and not info["diverged"]
    assert rewards == [0.0] * 6


def test_the_return_is_the_log_ratio_of_the_bases_final_loss_to_the_controllers():
    base_rewards, base_info = episode(0.0, "log_delta")
    rewards, info = episode(0.6, "vs_base")
    assert info["val_loss"] != base_info["val_loss"]  # the controller did change the run
    assert sum(rewards) == pytest.approx(math.log(base_info["val_loss"] / info["val_loss"]))
    # step by step: its own log-decrease less the base's
    own, _ = episode(0.6, "log_delta")
    assert rewards == pytest.approx(np.subtract(own, base_rewards).tolist())


def test_a_divergence_pays_the_log_ratio_of_the_bases_final_loss_to_the_threshold():
    _, base_info = episode(0.0, "log_delta", factor_base=1e4)
    rewards, info = episode(1.0, "vs_base", factor_base=1e4)
    assert info["diverged"] and len(rewards) < 6
    env = gym.make("lrenv/Synthetic-v0")
    threshold = env.unwrapped.divergence_loss
    env.close()
    assert sum(rewards) == pytest.approx(math.log(base_info["val_loss"] / threshold))


def test_vs_base_needs_a_base_schedule():
    with pytest.raises(ValueError, match=r"reward=.vs_base. .* needs action_mode=.residual."):
        gym.make("lrenv/Synthetic-v0", reward="vs_base")


@pytest.mark.parametrize("optimizer", ["sgd", "schedule_free"])
def test_a_pool_of_trainee_seeds_trains_each_base_run_once_and_changes_no_episode(
    optimizer, monkeypatch
):
    from lrenv.env import LRScheduleEnv

    trained = []
    run_base = LRScheduleEnv._run_base
    monkeypatch.setattr(
        LRScheduleEnv, "_run_base", lambda self, *a: trained.append(a) or run_base(self, *a)
    )
    kwargs = {"total_steps": 60, "optimizer": optimizer, "trainee_seeds": 1, **RESIDUAL}
    env = gym.make("lrenv/Synthetic-v0", reward="vs_base", **kwargs)
    episodes = []
    for seed in (3, 4, 5):  # one seed in the pool: every episode trains the same trainee
        env.reset(seed=seed)
        rewards, done = [], False
        while not done:
            _, r, terminated, truncated, info = env.step(np.array([0.6], np.float32))
            rewards.append(r)
            done = terminated or truncated
        episodes.append((rewards, info["val_loss"]))
    env.close()
    assert trained == [(0, 0.1)]  # the base run once, then read back
    assert episodes[0][0] != [0.0] * 6 and episodes[1] == episodes[0] == episodes[2]
    # the pool's seed 0 run afresh gives the same episode: the cache changes no number
    fresh = gym.make("lrenv/Synthetic-v0", reward="vs_base", **kwargs)
    fresh.unwrapped._base_runs.clear()
    fresh.reset(seed=9)
    rewards = [fresh.step(np.array([0.6], np.float32))[1] for _ in range(6)]
    fresh.close()
    assert rewards == episodes[0][0]


def test_a_pool_draws_its_seeds_with_the_reset_seed():
    env = gym.make("lrenv/Synthetic-v0", total_steps=20, trainee_seeds=3)
    trainee = env.unwrapped.trainee
    drawn, reset = set(), trainee.reset
    trainee.reset = lambda seed, lr: drawn.add(seed) or reset(seed, lr)
    for seed in range(12):
        env.reset(seed=seed)
    env.close()
    assert drawn == {0, 1, 2}


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "4"])
def test_trainee_seeds_is_none_or_a_positive_integer(bad):
    with pytest.raises(ValueError, match="trainee_seeds must be None or a positive integer"):
        gym.make("lrenv/Synthetic-v0", trainee_seeds=bad)


def test_selection_and_evaluation_draw_fresh_trainee_seeds():
    from agents.tasks import Task

    task = Task("lrenv/Synthetic-v0", {"reward": "vs_base", "trainee_seeds": 2, **RESIDUAL})
    env = task.make(keep_best=False)
    assert env.unwrapped.trainee_seeds is None and env.unwrapped.reward == "log_delta"
    env.close()
