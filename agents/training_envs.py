"""The training envs of a run: one in this process, one process each, batched, or Ray actors.

:func:`training_envs` builds what PPO trains on from the run's task and runtime choices,
normalised as the PPO settings say (or as a resumed checkpoint's statistics were). The
single env and its worker processes are :mod:`agents.env_factory`'s.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

from agents.checkpoints import restore_normalization
from agents.env_factory import make_env, subproc_vec_env, worker_env
from agents.presets import PPOSettings
from agents.vec_env import make_batched_sb3_vec_env


def training_envs(
    env_id: str,
    env_kwargs: Mapping[str, Any],
    n_envs: int,
    settings: PPOSettings,
    *,
    torch_threads: int | None = None,
    normalization: Mapping[str, Any] | None = None,
    trusted_vecnormalize: str | Path | None = None,
    batched: bool = False,
    seed: int | None = None,
    ray: bool = False,
) -> VecEnv:
    """``n_envs`` trainees, normalised as configured.

    Args:
        env_id: the trainee task.
        env_kwargs: keywords for ``gym.make``.
        n_envs: trainees trained at once. Unbatched, more than one runs each in its own
            process (``SubprocVecEnv``) and one is stepped in this process
            (``DummyVecEnv``); batched, all of them train in this process as one batched
            computation (:func:`agents.vec_env.make_batched_sb3_vec_env`).
        settings: gives ``normalize_observations``, ``normalize_rewards`` and ``gamma``.
        torch_threads: torch threads while a trainee computes: in each worker process,
            or (one env, or batched) the env keyword ``torch_threads`` in this one, which
            gives the caller's count back after each call (None: the process's count).
        normalization: saved ``VecNormalize`` statistics to continue from (a resumed run;
            :func:`agents.checkpoints.normalization_state`).
        trusted_vecnormalize: an older run's pickled ``vecnormalize.pkl`` to continue from
            instead; loading it unpickles (``train.py --trust-pickle`` only).
        batched: train the trainees as one batched computation: the way to use a
            GPU; each trainee is the same as an unbatched one with the same seed.
        seed: seed the envs now (batched only; unbatched envs are seeded by the model).
        ray: each trainee in a Ray actor, anywhere on the connected Ray cluster
            (:class:`agents.ray_vec.RayVecEnv`), with ``torch_threads`` cores.

    Returns:
        The vectorised env, wrapped in ``VecNormalize`` when either normalisation is on.
    """
    venv: VecEnv
    if ray and batched:
        raise ValueError("trainees run either batched in this process or as Ray actors")
    if ray:
        from agents.ray_cluster import trainee_gpus
        from agents.ray_vec import RayVecEnv  # Ray only when asked: it is an optional extra

        venv = RayVecEnv(env_id, env_kwargs, n_envs, torch_threads or 1, trainee_gpus(env_kwargs))
    elif batched:
        # VecMonitor (monitor=True) records info["episode"] as the per-env Monitor does;
        # the batched envs are made without gym.make, so there is no Monitor to double.
        # --threads while the trainees compute, the caller's count given back after each
        # call (the env keyword; one of the user's wins)
        kwargs = {"torch_threads": torch_threads, **env_kwargs}
        venv = make_batched_sb3_vec_env(env_id, n_envs, seed=seed, monitor=True, **kwargs)
    elif n_envs > 1:
        factory = functools.partial(
            worker_env, env_id, dict(env_kwargs), torch_threads, os.getpid()
        )
        venv = subproc_vec_env(factory, n_envs)
    else:  # in this process, as batched trainees are
        kwargs = {"torch_threads": torch_threads, **env_kwargs}
        venv = DummyVecEnv([functools.partial(make_env, env_id, kwargs, None)])
    if normalization is not None:
        venv = restore_normalization(normalization, venv)
    elif trusted_vecnormalize is not None:
        venv = VecNormalize.load(str(trusted_vecnormalize), venv)  # unpickles: opted in
        venv.training = True
    elif settings.normalize_observations or settings.normalize_rewards:
        venv = VecNormalize(
            venv,
            norm_obs=settings.normalize_observations,
            norm_reward=settings.normalize_rewards,
            gamma=settings.gamma,
        )
    return venv
