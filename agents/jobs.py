"""A unit of evaluation work and its result: one method on one task and seed.

:func:`run_job` makes the env (kept in a per-process cache), runs the episode and, for an
evaluation run, tests the best-validation checkpoint once; :func:`run_batch` does the same
for a group of jobs whose trainees train as one batched computation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

import lrenv  # noqa: F401  (registers the environments, here and in every worker)
from agents.baselines import (
    SchedulePolicy,
    schedule_env_kwargs,
    schedule_from_dict,
)
from agents.episodes import run_episode, run_episodes
from agents.open_loop import open_loop_policy
from agents.tasks import Task, check_controller_fits
from lrenv.env import action_size
from lrenv.trace import EpisodeTrace


@dataclass(frozen=True)
class Job:
    """One training run to do: a method on a task with a seed.

    ``schedule`` (a :func:`agents.baselines.schedule_to_dict`) for a baseline, ``controller``
    (a controller file, read by :meth:`lrenv.controller.Controller.load`, which never
    unpickles) for the controller, ``policy`` for an open-loop policy (a replay, a random
    policy). ``test`` tests the best-validation
    checkpoint once; selection jobs have ``test=False`` and never touch the test split.
    """

    method: str
    task: Task
    seed: int
    schedule: Mapping[str, Any] | None = None
    controller: str | None = None
    test: bool = True
    policy: Mapping[str, Any] | None = None
    """An open-loop policy (:func:`agents.open_loop.open_loop_policy`), run on the task's
    own action interface, as a controller would be."""

    def __post_init__(self) -> None:
        if self.schedule is not None:
            # A schedule sets each rate with set_lr and steps with action 0, which keeps the
            # rate only under the multiplicative action; how a controller's actions map
            # onto rates is no part of the task a schedule runs on. Schedule-free SGD adds
            # its optimizer.
            # A residual controller's base and optimizer are its own, not the task's: a
            # schedule runs plain SGD unless it brings its optimizer (schedule-free SGD).
            kwargs = {
                **{k: v for k, v in self.task.env_kwargs.items() if k != "base_schedule"},
                "action_mode": "scale",
                "optimizer": "sgd",
                "warmup_steps": 0,
                **schedule_env_kwargs(self.schedule),
            }
            object.__setattr__(self, "task", Task(self.task.env_id, kwargs))


@dataclass
class RunResult:
    """The outcome of one :class:`Job`."""

    method: str
    seed: int
    best_val_loss: float
    test_loss: float | None
    test_accuracy: float | None
    diverged: bool
    schedule: dict[str, Any] | None
    trajectory: EpisodeTrace

    def record(self) -> dict[str, Any]:
        """The flat JSON object of results.json's ``"runs"`` (no trajectory)."""
        return {
            "method": self.method,
            "seed": self.seed,
            "test_loss": self.test_loss,
            "test_accuracy": self.test_accuracy,
            "best_val_loss": self.best_val_loss,
            "diverged": self.diverged,
            "schedule": self.schedule,
        }


def task_key(task: Task) -> str:
    return json.dumps(task.to_dict(), sort_keys=True, default=list)


class EnvCache:
    """Envs, batches of envs and controllers of one process, made once and reused.

    Args:
        torch_threads: the envs' keyword ``torch_threads`` (None: the process's count,
            which a worker's initializer set; a keyword of the task's wins).
    """

    def __init__(self, torch_threads: int | None = None) -> None:
        self.torch_threads = torch_threads
        self.envs: dict[tuple[str, bool], gym.Env] = {}
        self.batches: dict[tuple[str, bool, int], Any] = {}
        self.controllers: dict[str, Any] = {}

    def env(self, task: Task, keep_best: bool) -> gym.Env:
        key = (task_key(task), keep_best)
        if key not in self.envs:
            self.envs[key] = task.make(keep_best, self.torch_threads)
        return self.envs[key]

    def batch(self, task: Task, keep_best: bool, n_envs: int) -> Any:
        """A :class:`lrenv.vector.BatchedEnvs` of ``n_envs`` envs of ``task``."""
        key = (task_key(task), keep_best, n_envs)
        if key not in self.batches:
            from lrenv.vector import BatchedEnvs  # the batched trainee only when asked

            kwargs = {
                "torch_threads": self.torch_threads,
                **task.env_kwargs,
                "keep_best": keep_best,
            }
            self.batches[key] = BatchedEnvs(n_envs, task.env_id, **kwargs)
        return self.batches[key]

    def controller(self, path: str) -> Any:
        if path not in self.controllers:
            from agents.sb3_controller import Controller  # torch only where a controller runs

            self.controllers[path] = Controller.load(path)
        return self.controllers[path]

    def close(self) -> None:
        for env in [*self.envs.values(), *self.batches.values()]:
            env.close()
        self.envs.clear()
        self.batches.clear()


def _policy(job: Job, cache: EnvCache) -> Any:
    """The job's policy: its controller (checked against the task) or its schedule."""
    if job.controller is not None:
        policy = cache.controller(job.controller)
        check_controller_fits(policy.observation_size, job.task)
        return policy
    if job.policy is not None:
        kwargs = job.task.resolved_kwargs
        decisions = kwargs["total_steps"] // kwargs["steps_per_action"]
        return open_loop_policy(
            job.policy, decisions, job.seed, action_size(kwargs.get("beta_factor"))
        )
    return SchedulePolicy(schedule_from_dict(job.schedule))


def run_job(job: Job, cache: EnvCache | None = None) -> RunResult:
    """Do one :class:`Job` (in this process), reusing envs from ``cache`` when given."""
    own_cache = cache is None
    cache = EnvCache() if cache is None else cache
    try:
        env = cache.env(job.task, keep_best=job.test)
        trajectory = run_episode(env, _policy(job, cache), job.seed)
        tested = env.unwrapped.test_best() if job.test else {}
    finally:
        if own_cache:
            cache.close()
    return _result(job, trajectory, tested)


def run_batch(jobs: Sequence[Job], cache: EnvCache | None = None) -> list[RunResult]:
    """Do ``jobs`` at once in this process, their trainees batched (:mod:`lrenv.vector`).

    The jobs must share a task and ``test``; each gives the same result as
    :func:`run_job` (within float tolerance: batched sums round differently).

    Args:
        jobs: the jobs, e.g. one method's runs on several seeds.
        cache: reuse its batches of envs and controllers (default: a fresh one).

    Returns:
        The results, in the order of ``jobs``.
    """
    if not jobs:
        return []
    first = jobs[0]
    if any(task_key(j.task) != task_key(first.task) or j.test != first.test for j in jobs):
        raise ValueError("a batch of jobs must share one task and one test flag")
    if first.task.resolved_kwargs.get("optimizer", "sgd") != "sgd":
        return [run_job(job, cache) for job in jobs]  # batched trainees: plain SGD only
    own_cache = cache is None
    cache = EnvCache() if cache is None else cache
    try:
        batch = cache.batch(first.task, first.test, len(jobs))
        policies = [_policy(job, cache) for job in jobs]
        trajectories = run_episodes(batch, policies, [job.seed for job in jobs])
        tested = [env.test_best() if first.test else {} for env in batch.envs[: len(jobs)]]
    finally:
        if own_cache:
            cache.close()
    return [_result(*args) for args in zip(jobs, trajectories, tested, strict=True)]


def _result(job: Job, trajectory: EpisodeTrace, tested: Mapping[str, float]) -> RunResult:
    return RunResult(
        method=job.method,
        seed=job.seed,
        best_val_loss=trajectory.best_val_loss,
        test_loss=tested.get("test_loss"),
        test_accuracy=tested.get("test_accuracy"),
        diverged=trajectory.diverged,
        schedule=None if job.schedule is None else dict(job.schedule),
        trajectory=trajectory,
    )


def finite_or_none(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None: strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value
