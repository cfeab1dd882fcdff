"""One trainee episode driven by a policy (a controller or a baseline schedule), recorded.

:func:`run_episode` runs one env, :func:`run_episodes` a batched env's N at once; each
returns the env's own :class:`lrenv.trace.EpisodeTrace` of the rates applied and the
validation losses seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

import lrenv  # noqa: F401  (registers the environments, here and in every worker)
from lrenv.trace import EpisodeTrace


class _Episode:
    """One episode of a policy on an env, one decision at a time.

    :func:`run_episode` steps its env alone and :func:`run_episodes` steps many at once
    (batched trainees); both drive the same episodes through this class.
    """

    def __init__(self, env: gym.Env, policy: Any, seed: int) -> None:
        self.env = env
        self.policy = policy
        self.total_steps = env.unwrapped.total_steps
        self.lr_at = getattr(policy, "lr_at", None)
        options = None if self.lr_at is None else {"initial_lr": self.lr_at(0, self.total_steps)}
        self.obs, self.info = env.reset(seed=seed, options=options)
        self.trajectory: EpisodeTrace = env.unwrapped.trace  # the env records it
        self.state: Any = None
        self.episode_start = np.ones((1,), dtype=bool)
        self.done = False

    def act(self) -> np.ndarray:
        """The policy's next action; a schedule's rate is set exactly before it."""
        action, self.state = self.policy.predict(
            self.obs, state=self.state, episode_start=self.episode_start, deterministic=True
        )
        self.episode_start = np.zeros((1,), dtype=bool)
        if self.lr_at is not None:
            self.env.unwrapped.set_lr(self.lr_at(self.info["sgd_step"], self.total_steps))
        return action

    def record(self, result: tuple[np.ndarray, float, bool, bool, dict[str, Any]]) -> None:
        """Take in the step that followed :meth:`act` (the env has recorded it)."""
        self.obs, _, terminated, truncated, self.info = result
        observe = getattr(self.policy, "observe", None)
        if observe is not None and not self.info["diverged"]:
            observe(self.info["val_loss"])  # the plateau rule reads the validation loss
        self.done = terminated or truncated


def run_episode(env: gym.Env, policy: Any, seed: int) -> EpisodeTrace:
    """Run one episode of ``policy`` on ``env`` from ``reset(seed=seed)``.

    ``policy`` has ``predict(obs, state, episode_start, deterministic)``; actions are
    deterministic, a recurrent state is carried between decisions and ``episode_start`` is
    True only at the first one. A policy with ``lr_at(sgd_step, total_steps)`` (a
    :class:`agents.baselines.SchedulePolicy`) has its rate set exactly with
    ``env.unwrapped.set_lr`` before every step, which then runs with action 0.
    """
    episode = _Episode(env, policy, seed)
    while not episode.done:
        episode.record(env.step(episode.act()))
    return episode.trajectory


def run_episodes(batch: Any, policies: Sequence[Any], seeds: Sequence[int]) -> list[EpisodeTrace]:
    """Run one episode on each of the first ``len(seeds)`` envs of ``batch`` at once.

    Env ``i`` runs ``policies[i]`` from ``reset(seed=seeds[i])`` exactly as
    :func:`run_episode` would; the trainees of the envs still running train together,
    as one batched computation per decision.

    Args:
        batch: a :class:`lrenv.vector.BatchedEnvs` with at least ``len(seeds)`` envs.
        policies: one policy per episode (the same object may serve several).
        seeds: one reset seed per episode.

    Returns:
        The trajectories, in the order of ``seeds``.
    """
    if len(policies) != len(seeds) or len(seeds) > batch.num_envs:
        raise ValueError(
            f"{len(policies)} policies and {len(seeds)} seeds for {batch.num_envs} envs"
        )
    episodes = [
        _Episode(env, policy, seed)
        for env, policy, seed in zip(batch.envs, policies, seeds, strict=False)
    ]
    running = list(range(len(episodes)))
    while running:
        actions = [episodes[i].act() for i in running]
        for i, result in zip(running, batch.step(actions, running), strict=True):
            episodes[i].record(result)
        running = [i for i in running if not episodes[i].done]
    return [episode.trajectory for episode in episodes]
