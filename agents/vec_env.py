"""Batched trainees behind stable-baselines3's ``VecEnv`` interface.

The Gymnasium side (:class:`lrenv.vector.BatchedEnvs`, the core that trains N trainees as
one computation, and :class:`lrenv.vector.BatchedVectorEnv`) lives in :mod:`lrenv.vector`,
which imports no RL library; this module is the thin stable-baselines3 adapter over the
same core (the environment package stays free of RL libraries, so that users of other
RL libraries get lrenv without stable-baselines3).

- :class:`BatchedVecEnv` is a stable-baselines3 ``DummyVecEnv`` whose step trains all N at
  once; everything else (auto-reset with ``terminal_observation``, seeding, ``env_method``,
  ``get_attr``) is DummyVecEnv's own code.
- :func:`make_batched_sb3_vec_env` builds one from an id, a drop-in for SB3's ``make_vec_env``.

>>> from agents.vec_env import make_batched_sb3_vec_env
>>> venv = make_batched_sb3_vec_env("lrenv/Synthetic-v0", n_envs=4, seed=0)
>>> venv.reset().shape
(4, 7)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor

from lrenv.vector import BatchedEnvs


class BatchedVecEnv(DummyVecEnv):
    """A stable-baselines3 VecEnv of :class:`BatchedEnvs`: one batched computation per step.

    Behaves as ``DummyVecEnv`` over the same envs (auto-reset on done, with
    ``info["terminal_observation"]`` and ``info["TimeLimit.truncated"]``; ``seed``,
    ``env_method``, ``get_attr``), only faster.
    """

    def __init__(self, batch: BatchedEnvs) -> None:
        self.batch = batch
        super().__init__([lambda env=env: env for env in batch.envs])

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Train all envs at once, then let DummyVecEnv collect the results and auto-reset."""
        self.batch.prepare(list(self.actions))
        return super().step_wait()


def make_batched_sb3_vec_env(
    env_id: str,
    n_envs: int,
    seed: int | None = None,
    monitor: bool = True,
    strategy: str = "auto",
    **env_kwargs: Any,
) -> VecEnv:
    """A stable-baselines3 VecEnv of ``n_envs`` batched envs; a drop-in for ``make_vec_env``.

    Seeds like ``make_vec_env(env_id, n_envs, seed)``: env ``i`` is reset with ``seed + i`` and
    its action space seeded with ``seed + i``, so each env follows the same trajectory as
    in ``make_vec_env`` (within float tolerance).

    Args:
        env_id: a registered lrenv id (``"lrenv/FashionMNIST-CNN-v0"``, ...).
        n_envs: number of envs (trainees trained together), as ``make_vec_env`` names it.
        seed: the first env's seed, or ``None``.
        monitor: wrap in ``VecMonitor``, which records episode returns and lengths in
            ``info["episode"]`` as ``make_vec_env``'s per-env ``Monitor`` does.
        strategy: ``"auto"``, ``"vmap"`` or ``"loop"``
            (:class:`~lrenv.batched_trainee.BatchedTrainee`).
        **env_kwargs: keywords for every env, as for ``gym.make``.
    """
    vec: VecEnv = BatchedVecEnv(BatchedEnvs(n_envs, env_id, strategy, **env_kwargs))
    if seed is not None:
        for i, env in enumerate(vec.envs):
            env.action_space.seed(seed + i)
    vec.seed(seed)
    return VecMonitor(vec) if monitor else vec
