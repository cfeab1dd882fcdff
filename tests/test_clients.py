"""Other stable-baselines3 algorithms learn on lrenv unchanged
(docs/clients.md)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import A2C, SAC, TD3

ALGORITHMS = {
    "A2C": (A2C, {"n_steps": 5}),
    "SAC": (SAC, {"learning_starts": 10, "batch_size": 8, "buffer_size": 100}),
    "TD3": (TD3, {"learning_starts": 10, "batch_size": 8, "buffer_size": 100}),
}


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_sb3_algorithm_learns_a_few_steps(name):
    algorithm, settings = ALGORITHMS[name]
    env = gym.make("lrenv/Synthetic-v0", device="cpu")
    model = algorithm("MlpPolicy", env, seed=0, device="cpu", **settings)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=25)  # one episode of 20 decisions and part of the next
    assert model.num_timesteps == 25
    changed = [
        not np.array_equal(b.numpy(), p.detach().numpy())
        for b, p in zip(before, model.policy.parameters(), strict=True)
    ]
    assert any(changed)  # it took gradient steps
    action, _ = model.predict(env.observation_space.sample(), deterministic=True)
    assert env.action_space.contains(action)
    env.close()
