"""The private names of stable-baselines3 and sb3-contrib that this project relies on,
because they have no public counterpart. pyproject.toml pins both to the versions these
were checked against; when an upgrade moves one of them, this test says which, and where
our code uses it, before a training run fails halfway (or silently trains with one rate).

When it fails: update the code named in the message to the new name, run the whole test
suite, then widen the version range in pyproject.toml.
"""

from __future__ import annotations

import inspect

import pytest
import sb3_contrib
import stable_baselines3
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, subproc_vec_env

VERSIONS = (
    f"stable-baselines3 {stable_baselines3.__version__}, sb3-contrib {sb3_contrib.__version__}"
)


def _update(name: str, where: str) -> str:
    return (
        f"{VERSIONS} moved {name}, which {where} relies on: update it there, then the version "
        "range in pyproject.toml"
    )


@pytest.mark.parametrize("algorithm", [PPO, RecurrentPPO], ids=["PPO", "RecurrentPPO"])
def test_every_update_sets_the_rates_through_update_learning_rate(algorithm):
    """agents/ppo.py's two-rate controllers override ``_update_learning_rate`` to give the
    actor and the critic their own Adam rate; ``train`` must still call it."""
    where = "agents/ppo.py (_TwoRateMixin._update_learning_rate)"
    assert callable(getattr(algorithm, "_update_learning_rate", None)), _update(
        f"{algorithm.__name__}._update_learning_rate", where
    )
    assert "self._update_learning_rate(" in inspect.getsource(algorithm.train), _update(
        f"the call of _update_learning_rate in {algorithm.__name__}.train", where
    )
    assert callable(getattr(BasePolicy, "_get_constructor_parameters", None)), _update(
        "BasePolicy._get_constructor_parameters", "agents/ppo.py (_TwoRatePolicyMixin)"
    )


def test_the_algorithm_attributes_we_read_exist():
    model = PPO("MlpPolicy", DummyVecEnv([lambda: _pendulum()]), n_steps=8, batch_size=8)
    for name, where in [
        ("_current_progress_remaining", "agents/ppo.py (_TwoRateMixin._update_learning_rate)"),
        ("_total_timesteps", "agents/ppo.py (_TwoRateMixin.collect_rollouts)"),
        ("_stats_window_size", "agents/checkpoints.py (load_model)"),
        ("_last_obs", "agents/training.py (a resumed run resets its envs)"),
    ]:
        assert hasattr(model, name), _update(f"BaseAlgorithm.{name}", where)
    model.env.close()


def test_the_vec_env_internals_we_use_exist():
    """agents/ray_vec.py resets its envs as SB3's own VecEnvs do (the seeds and options
    that ``seed()`` and ``set_options()`` stored); agents/env_factory.py's ``close_envs`` talks to
    SubprocVecEnv's worker processes through their pipes."""
    venv = DummyVecEnv([lambda: _pendulum()])
    for name in ("_seeds", "_options", "_reset_seeds", "_reset_options"):
        assert hasattr(venv, name), _update(f"VecEnv.{name}", "agents/ray_vec.py (reset)")
    venv.close()
    init, whole = inspect.getsource(SubprocVecEnv.__init__), inspect.getsource(SubprocVecEnv)
    for name in ("self.remotes", "self.processes"):
        assert name in init, _update(f"SubprocVecEnv: {name}", "agents/env_factory.py (close_envs)")
    assert "self.closed" in whole, _update(
        "SubprocVecEnv.closed", "agents/env_factory.py (close_envs)"
    )
    assert 'cmd == "close"' in inspect.getsource(subproc_vec_env._worker), _update(
        "the worker's 'close' command", "agents/env_factory.py (close_envs)"
    )


def _pendulum():
    import gymnasium as gym

    return gym.make("Pendulum-v1")
