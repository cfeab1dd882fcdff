"""Compare a learned controller with tuned baseline schedules, as the paper does.

The protocol (Xu et al. 2019, section 4; the machinery behind ``evaluate.py``):

1. **Selection, on validation only.** Every member of every baseline family's grid (the
   preset's ``evaluation.grids``: step decay, constant, cosine, linear, WSD, plateau,
   schedule-free SGD) trains ``grid_seeds`` times on the *baseline task*; each is scored
   by the best validation loss of its run. The test split is never read in this phase:
   the envs are made with ``keep_best=False`` and ``test_best`` is never called.
2. **Evaluation.** The best schedule of each family, and the controller, each train
   ``runs`` times on the *evaluation task*, on the same seeds. Every run keeps the
   checkpoint with the best validation loss (``keep_best=True``) and tests it once.
3. **Statistics.** Mean and sample standard deviation (n - 1) of test loss and accuracy;
   independent two-sample t-tests (two-sided, ``scipy.stats.ttest_ind``), Student's and
   Welch's, of the controller against each baseline, significant at p < 0.05 (``*``).

The baseline task is the evaluation task, except for transfer (the paper's Table 2): a
controller trained on one task and evaluated on another is compared with the baseline
schedule chosen on the task it was trained on.

Seeds: evaluation run ``i`` uses seed ``seed + i`` for every method; selection runs use
``SELECTION_SEED_OFFSET + seed + j``, so the schedules are never chosen on the trainee
initialisations and batch orders they are then evaluated on.

Runs are independent and spread over worker processes (``spawn``), each holding its own
envs; with one worker everything runs in this process. Batched (``Runner(batched=True)``),
the runs of one method on one task train together, their trainees as one batched
computation (:mod:`lrenv.vector`), with the same results within float tolerance.
:mod:`agents.report` writes the results files and figures.
"""

from __future__ import annotations

import json
import math
import multiprocessing
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from scipy import stats
from tqdm.auto import tqdm

import lrenv  # noqa: F401  (registers the environments, here and in every worker)
from agents.baselines import (
    BaselineSchedule,
    SchedulePolicy,
    grid,
    schedule_env_kwargs,
    schedule_from_dict,
    schedule_to_dict,
)
from agents.presets import without_task_keys
from lrenv.features import feature_names

SELECTION_SEED_OFFSET = 1_000_000
BASELINES = (
    "step_decay",
    "constant",
    "cosine",
    "linear",
    "wsd",
    "plateau",
    "schedule_free",
)
METHODS = ("controller", *BASELINES)
METHOD_LABELS = {
    "controller": "learned controller",
    "step_decay": "step decay",
    "constant": "constant",
    "cosine": "cosine decay",
    "linear": "linear decay",
    "wsd": "warmup-stable-decay",
    "plateau": "reduce on plateau",
    "schedule_free": "schedule-free SGD",
}
SIGNIFICANCE = 0.05
# Env keywords that say how the controller's actions and observations are read. A
# controller keeps the values it was trained with wherever it is evaluated.
CONTROLLER_INTERFACE_KEYS = (
    "steps_per_action",
    "factor_base",
    "action_mode",
    "base_schedule",
    "optimizer",
    "warmup_steps",
    "lr_bounds",
    "feature_transform",
    "progress_feature",
)
# Env keywords that change where or how a run executes, not what task it is.
RUNTIME_KEYS = ("device", "data_root", "keep_best", "torch_threads")


# --- tasks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """An env id and the keywords passed to ``gym.make``: one trainee task."""

    env_id: str
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:  # a plain dict: picklable for worker processes
        object.__setattr__(self, "env_kwargs", dict(self.env_kwargs))

    def make(self, keep_best: bool) -> gym.Env:
        """A fresh env for this task (``keep_best`` decides whether test_best is possible)."""
        from lrenv.vector import max_episode_steps  # torch only when an env is made

        # torch_threads=None: the process's count, which the Runner sets (--threads)
        kwargs = {"torch_threads": None, **self.env_kwargs, "keep_best": keep_best}
        # ValueError saying `import lrenv` or "lrenv:" when the id is unknown here: a worker
        # process has imported lrenv (this module does) but no other package
        return gym.make(
            self.env_id, max_episode_steps=max_episode_steps(self.env_id, kwargs), **kwargs
        )

    @property
    def resolved_kwargs(self) -> dict[str, Any]:
        """Every keyword the env is built with: :class:`lrenv.env.LRScheduleEnv`'s defaults,
        the registered keywords of ``env_id`` over them, and ``env_kwargs`` over those."""
        from lrenv.env import env_defaults  # torch and the data loaders only when asked

        return {**env_defaults(), **gym.spec(self.env_id).kwargs, **self.env_kwargs}

    def same_task_as(self, other: Task) -> bool:
        """Whether both train the same trainee the same way (runtime keywords aside)."""

        def essence(task: Task) -> dict[str, Any]:
            kwargs = task.resolved_kwargs
            kwargs = {k: v for k, v in kwargs.items() if k not in RUNTIME_KEYS}
            return json.loads(json.dumps(kwargs, sort_keys=True, default=list))

        return essence(self) == essence(other)

    @property
    def label(self) -> str:
        """The id and what it trains, e.g. ``lrenv/FashionMNIST-MLP-v0 (fashion_mnist, mlp)``:
        for titles and tables, which must name the trainee, not only an id."""
        kwargs = self.resolved_kwargs
        return f"{self.env_id} ({kwargs.get('dataset', '?')}, {kwargs.get('model', '?')})"

    def describe(self) -> str:
        """``env_id`` and the keywords, e.g. ``lrenv/Synthetic-v0 (total_steps=100)``."""
        kwargs = {k: v for k, v in self.env_kwargs.items() if k not in RUNTIME_KEYS}
        if not kwargs:
            return self.env_id
        return f"{self.env_id} ({', '.join(f'{k}={v!r}' for k, v in sorted(kwargs.items()))})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``{"env_id", "env_kwargs"}``."""
        return {"env_id": self.env_id, "env_kwargs": dict(self.env_kwargs)}


def resolve_tasks(
    preset_env_id: str,
    preset_env_kwargs: Mapping[str, Any],
    controller_config: Mapping[str, Any] | None = None,
    env_id: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    baseline_from: str | None = None,
    baseline_env_kwargs: Mapping[str, Any] | None = None,
) -> tuple[Task, Task, Task | None]:
    """The evaluation task, the task the baselines are chosen on, and the controller's task.

    - Evaluation task: ``env_id`` (default: the controller's training env, else the
      preset's) with the preset's keywords, the controller's interface keywords
      (:data:`CONTROLLER_INTERFACE_KEYS`: what its actions and features mean) and then
      ``env_kwargs`` over them.
    - Baseline task: ``baseline_from`` with the evaluation keywords and
      ``baseline_env_kwargs`` over them; by default the controller's training task (its
      saved ``env_id`` and ``env_kwargs`` over the preset's keywords), run on the
      evaluation task's device; without a controller, the evaluation task.
    - Controller task: what the controller was trained on (``None`` without a controller
      or without a saved ``env_id``).

    When the baseline task is the evaluation task up to runtime keywords
    (:data:`RUNTIME_KEYS`), the evaluation task itself is returned for it.
    """
    config = dict(controller_config or {})
    trained_on = None
    if config.get("env_id"):
        preset_kwargs = dict(preset_env_kwargs)
        if config["env_id"] != preset_env_id:
            preset_kwargs = without_task_keys(preset_kwargs)
        trained_on = Task(config["env_id"], {**preset_kwargs, **(config.get("env_kwargs") or {})})
    chosen_id = env_id or (trained_on.env_id if trained_on else preset_env_id)
    # a preset's task keywords never change the trainee of another id (lrenv.TASK_KEYS)
    kwargs = dict(preset_env_kwargs)
    if chosen_id != preset_env_id:
        kwargs = without_task_keys(kwargs)
    if trained_on is not None:
        interface = {
            k: v for k, v in trained_on.env_kwargs.items() if k in CONTROLLER_INTERFACE_KEYS
        }
        kwargs.update(interface)
    kwargs.update(env_kwargs or {})
    task = Task(chosen_id, kwargs)

    if baseline_from is not None:
        baseline = Task(baseline_from, {**kwargs, **(baseline_env_kwargs or {})})
    elif trained_on is not None:
        runtime = {k: v for k, v in kwargs.items() if k in RUNTIME_KEYS}
        base = {k: v for k, v in trained_on.env_kwargs.items() if k not in RUNTIME_KEYS}
        baseline = Task(trained_on.env_id, {**base, **runtime, **(baseline_env_kwargs or {})})
    else:
        baseline = Task(task.env_id, {**kwargs, **(baseline_env_kwargs or {})})
    if baseline.same_task_as(task):
        baseline = task
    return task, baseline, trained_on


def check_controller_fits(observation_size: int, task: Task) -> None:
    """Raise ValueError when the task's observation length differs from the controller's."""
    expected = len(feature_names(bool(task.resolved_kwargs.get("progress_feature", False))))
    if expected != observation_size:
        raise ValueError(
            f"the controller reads {observation_size} features but {task.describe()} gives "
            f"{expected}; pass the env keywords it was trained with (--env-kwargs)"
        )


# --- one run -------------------------------------------------------------------------------


@dataclass
class Trajectory:
    """What one episode went through.

    ``val_loss[i]`` is the validation loss after ``val_steps[i]`` SGD steps (step 0: at
    reset); ``lr[i]`` is the rate of the SGD steps from ``lr_steps[i]`` to the next decision.
    """

    val_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    lr_steps: list[int] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    end_step: int = 0
    best_val_loss: float = math.inf
    diverged: bool = False


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
        self.trajectory = Trajectory(
            val_steps=[self.info["sgd_step"]], val_loss=[self.info["val_loss"]]
        )
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
        """Take in the step that followed :meth:`act`."""
        start = self.info["sgd_step"]
        self.obs, _, terminated, truncated, self.info = result
        info = self.info
        self.trajectory.lr_steps.append(start)
        self.trajectory.lr.append(info["lr"])
        if info["diverged"]:
            self.trajectory.diverged = True
        else:
            observe = getattr(self.policy, "observe", None)
            if observe is not None:  # the plateau rule reads the validation loss
                observe(info["val_loss"])
            self.trajectory.val_steps.append(info["sgd_step"])
            self.trajectory.val_loss.append(info["val_loss"])
        if terminated or truncated:
            self.done = True
            self.trajectory.end_step = int(info["sgd_step"])
            self.trajectory.best_val_loss = float(info["best_val_loss"])


def run_episode(env: gym.Env, policy: Any, seed: int) -> Trajectory:
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


def run_episodes(batch: Any, policies: Sequence[Any], seeds: Sequence[int]) -> list[Trajectory]:
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


@dataclass(frozen=True)
class Job:
    """One training run to do: a method on a task with a seed.

    ``schedule`` (a :func:`agents.baselines.schedule_to_dict`) for a baseline, ``controller``
    (a controller file, read by :meth:`agents.controller.Controller.load`, which never
    unpickles) for the controller. ``test`` tests the best-validation
    checkpoint once; selection jobs have ``test=False`` and never touch the test split.
    """

    method: str
    task: Task
    seed: int
    schedule: Mapping[str, Any] | None = None
    controller: str | None = None
    test: bool = True

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
    trajectory: Trajectory

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


def _task_key(task: Task) -> str:
    return json.dumps(task.to_dict(), sort_keys=True, default=list)


class _Cache:
    """Envs, batches of envs and controllers of one process, made once and reused."""

    def __init__(self) -> None:
        self.envs: dict[tuple[str, bool], gym.Env] = {}
        self.batches: dict[tuple[str, bool, int], Any] = {}
        self.controllers: dict[str, Any] = {}

    def env(self, task: Task, keep_best: bool) -> gym.Env:
        key = (_task_key(task), keep_best)
        if key not in self.envs:
            self.envs[key] = task.make(keep_best)
        return self.envs[key]

    def batch(self, task: Task, keep_best: bool, n: int) -> Any:
        """A :class:`lrenv.vector.BatchedEnvs` of ``n`` envs of ``task``."""
        key = (_task_key(task), keep_best, n)
        if key not in self.batches:
            from lrenv.vector import BatchedEnvs  # the batched trainee only when asked

            # torch_threads=None: the process's count, which the Runner sets (--threads)
            kwargs = {"torch_threads": None, **task.env_kwargs, "keep_best": keep_best}
            self.batches[key] = BatchedEnvs(n, task.env_id, **kwargs)
        return self.batches[key]

    def controller(self, path: str) -> Any:
        if path not in self.controllers:
            from agents.controller import Controller  # torch only where a controller runs

            self.controllers[path] = Controller.load(path)
        return self.controllers[path]

    def close(self) -> None:
        for env in [*self.envs.values(), *self.batches.values()]:
            env.close()
        self.envs.clear()
        self.batches.clear()


def _policy(job: Job, cache: _Cache) -> Any:
    """The job's policy: its controller (checked against the task) or its schedule."""
    if job.controller is not None:
        policy = cache.controller(job.controller)
        check_controller_fits(policy.observation_size, job.task)
        return policy
    return SchedulePolicy(schedule_from_dict(job.schedule))


def run_job(job: Job, cache: _Cache | None = None) -> RunResult:
    """Do one :class:`Job` (in this process), reusing envs from ``cache`` when given."""
    own_cache = cache is None
    cache = _Cache() if cache is None else cache
    try:
        env = cache.env(job.task, keep_best=job.test)
        trajectory = run_episode(env, _policy(job, cache), job.seed)
        tested = env.unwrapped.test_best() if job.test else {}
    finally:
        if own_cache:
            cache.close()
    return _result(job, trajectory, tested)


def run_batch(jobs: Sequence[Job], cache: _Cache | None = None) -> list[RunResult]:
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
    if any(_task_key(j.task) != _task_key(first.task) or j.test != first.test for j in jobs):
        raise ValueError("a batch of jobs must share one task and one test flag")
    if first.task.resolved_kwargs.get("optimizer", "sgd") != "sgd":
        return [run_job(job, cache) for job in jobs]  # batched trainees: plain SGD only
    own_cache = cache is None
    cache = _Cache() if cache is None else cache
    try:
        batch = cache.batch(first.task, first.test, len(jobs))
        policies = [_policy(job, cache) for job in jobs]
        trajectories = run_episodes(batch, policies, [job.seed for job in jobs])
        tested = [env.test_best() if first.test else {} for env in batch.envs[: len(jobs)]]
    finally:
        if own_cache:
            cache.close()
    return [_result(*args) for args in zip(jobs, trajectories, tested, strict=True)]


def _result(job: Job, trajectory: Trajectory, tested: Mapping[str, float]) -> RunResult:
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


_WORKER_CACHE: _Cache | None = None


def _init_worker(threads: int | None) -> None:
    global _WORKER_CACHE
    _WORKER_CACHE = _Cache()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _run_in_worker(job: Job) -> RunResult:
    return run_job(job, _WORKER_CACHE)


def _run_batch_in_worker(jobs: list[Job]) -> list[RunResult]:
    return run_batch(jobs, _WORKER_CACHE)


def batches(jobs: Sequence[Job], max_batch: int | None = None) -> list[list[int]]:
    """The indices of ``jobs`` in groups that can train batched.

    A group holds the jobs of one method on one task (with one controller and ``test``
    flag), e.g. a method's evaluation runs on all seeds, or one baseline family's
    selection runs; a group larger than ``max_batch`` is split into near-equal parts. Jobs
    of another optimizer than plain SGD (schedule-free SGD) go one per group: batched
    trainees train with plain SGD only.

    Args:
        jobs: the jobs.
        max_batch: the most jobs in one group (``None``: no limit).

    Returns:
        Index lists, in the order of each group's first job.
    """
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, job in enumerate(jobs):
        key = (job.method, _task_key(job.task), job.test, job.controller)
        groups.setdefault(key, []).append(i)
    out = []
    for group in groups.values():
        if jobs[group[0]].task.resolved_kwargs.get("optimizer", "sgd") != "sgd":
            out += [[i] for i in group]  # batched trainees run plain SGD only
            continue
        parts = 1 if max_batch is None else math.ceil(len(group) / max_batch)
        size, extra = divmod(len(group), parts)
        start = 0
        for k in range(parts):
            end = start + size + (k < extra)
            out.append(group[start:end])
            start = end
    return out


class Runner:
    """Runs jobs in this process (``workers=1``) or over a pool of spawned processes.

    Use as a context manager; the pool (and every worker's envs) lives until exit.

    Args:
        workers: processes; 1 runs everything here.
        threads: torch threads per process (``None``: leave torch's default). One thread
            per process is fastest on a shared CPU: with other jobs running, two threads
            made a synthetic episode 6x slower than one (1.2 s against 0.2 s).
        progress: show a tqdm progress bar.
        batched: train the jobs of one method on one task together, their trainees as one
            batched computation (:func:`batches`, :func:`run_batch`); each group is one
            unit of work for a worker. The results equal unbatched ones within float
            tolerance. The way to use a GPU.
        max_batch: the most jobs trained together (``None``: all of a group).
    """

    def __init__(
        self,
        workers: int = 1,
        threads: int | None = None,
        progress: bool = True,
        batched: bool = False,
        max_batch: int | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if max_batch is not None and max_batch < 1:
            raise ValueError(f"max_batch must be >= 1 or None, got {max_batch}")
        self.workers = workers
        self.threads = threads
        self.progress = progress
        self.batched = batched
        self.max_batch = max_batch
        self._pool: ProcessPoolExecutor | None = None
        self._cache = _Cache()
        self._saved_threads: int | None = None

    def __enter__(self) -> Runner:
        if self.workers == 1 and self.threads is not None:
            import torch

            self._saved_threads = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        if self.workers > 1:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.threads,),
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._cache.close()
        if self._saved_threads is not None:
            import torch

            torch.set_num_threads(self._saved_threads)
            self._saved_threads = None

    def run(self, jobs: Sequence[Job], desc: str = "runs") -> list[RunResult]:
        """Results in the order of ``jobs``; the first failure is raised."""
        if self.batched:
            return self._run_batched(jobs, desc)
        bar = tqdm(total=len(jobs), desc=desc, unit="run", disable=not self.progress)
        try:
            if self._pool is None:
                results = []
                for job in jobs:
                    results.append(run_job(job, self._cache))
                    bar.update()
                return results
            futures = {self._pool.submit(_run_in_worker, job): i for i, job in enumerate(jobs)}
            results: list[RunResult | None] = [None] * len(jobs)
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    results[futures[future]] = future.result()  # raises the worker's error
                    bar.update()
            return results  # type: ignore[return-value]
        finally:
            bar.close()

    def _run_batched(self, jobs: Sequence[Job], desc: str) -> list[RunResult]:
        groups = batches(jobs, self.max_batch)
        results: list[RunResult | None] = [None] * len(jobs)
        bar = tqdm(total=len(jobs), desc=desc, unit="run", disable=not self.progress)

        def keep(group: list[int], done: list[RunResult]) -> None:
            for i, result in zip(group, done, strict=True):
                results[i] = result
            bar.update(len(group))

        try:
            if self._pool is None:
                for group in groups:
                    keep(group, run_batch([jobs[i] for i in group], self._cache))
            else:
                futures = {
                    self._pool.submit(_run_batch_in_worker, [jobs[i] for i in group]): k
                    for k, group in enumerate(groups)
                }
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        keep(groups[futures[future]], future.result())
            return results  # type: ignore[return-value]
        finally:
            bar.close()


# --- selection and evaluation --------------------------------------------------------------


@dataclass
class Selection:
    """The candidates of one baseline family, their validation scores and the winner."""

    method: str
    task: Task
    seeds: list[int]
    scores: list[dict[str, Any]]
    best: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "method": self.method,
            "task": self.task.to_dict(),
            "seeds": self.seeds,
            "chosen": self.best,
            "scores": self.scores,
        }


def selection_seeds(n: int, seed: int = 0) -> list[int]:
    """The seeds of ``n`` validation-only selection runs for evaluation seed ``seed``:
    ``SELECTION_SEED_OFFSET + seed + j``, never the seeds of an evaluation run."""
    return [SELECTION_SEED_OFFSET + seed + j for j in range(n)]


def candidates(
    grids: Mapping[str, Mapping[str, Iterable[Any]]], families: Iterable[str] | None = None
) -> dict[str, list[BaselineSchedule]]:
    """The baseline families and their candidate schedules.

    Args:
        grids: family -> parameter -> values (e.g. a preset's ``evaluation.grids``).
        families: the families wanted (default: every one in ``grids``), in report order.

    Raises:
        ValueError: for a family without a grid or an unknown family.
    """
    wanted = list(grids) if families is None else list(families)
    missing = [f for f in wanted if f not in grids]
    if missing:
        raise ValueError(f"no grid for baseline families {missing}; grids exist for {list(grids)}")
    return {family: grid(family, grids[family]) for family in wanted}


def select_baselines(
    runner: Runner,
    families: Mapping[str, Sequence[BaselineSchedule]],
    task: Task,
    seeds: Sequence[int],
) -> dict[str, Selection]:
    """Score every candidate by its best validation loss (mean over ``seeds``); keep the best.

    All candidates run as one batch of jobs with ``test=False``: nothing reads the test
    split. Ties go to the earlier candidate.
    """
    jobs = [
        Job(method, task, seed, schedule=schedule_to_dict(schedule), test=False)
        for method, schedules in families.items()
        for schedule in schedules
        for seed in seeds
    ]
    results = iter(runner.run(jobs, desc="selection (validation)"))
    selections = {}
    for method, schedules in families.items():
        scores = []
        for schedule in schedules:
            runs = [next(results) for _ in seeds]
            per_seed = [r.best_val_loss for r in runs]
            scores.append(
                {
                    "schedule": schedule_to_dict(schedule),
                    "description": schedule.describe(),
                    "best_val_loss": float(np.mean(per_seed)),
                    "per_seed": per_seed,
                    "diverged": [r.diverged for r in runs],
                }
            )
        best = min(range(len(scores)), key=lambda i: scores[i]["best_val_loss"])
        selections[method] = Selection(method, task, list(seeds), scores, scores[best]["schedule"])
    return selections


@dataclass(frozen=True)
class TTest:
    """An independent two-sample t-test (two-sided): Student's, or Welch's."""

    statistic: float
    pvalue: float
    df: float

    @property
    def significant(self) -> bool:
        """p < 0.05."""
        return self.pvalue < SIGNIFICANCE


def t_test(a: Sequence[float], b: Sequence[float], equal_var: bool = True) -> TTest:
    """Student's (``equal_var``) or Welch's two-sample t-test (``scipy.stats.ttest_ind``).

    Student's: ``t = (mean(a) - mean(b)) / sqrt(s2 * (1/na + 1/nb))`` with the pooled
    variance ``s2 = ((na-1) var(a) + (nb-1) var(b)) / (na + nb - 2)`` and ``df = na + nb -
    2``. Welch's: ``t = (mean(a) - mean(b)) / sqrt(var(a)/na + var(b)/nb)`` with the
    Welch-Satterthwaite degrees of freedom; it does not assume equal spreads, which a
    learned controller and a fixed schedule need not have. Both two-sided.

    When a sample has no spread at all (ten runs that all end at the same accuracy, say)
    the same formulas are computed here, because scipy would warn about precision loss:
    two such samples give p = 1 for equal means and p = 0 otherwise. Fewer than two values
    in a sample give NaN (no test is possible).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return TTest(math.nan, math.nan, na + nb - 2)
    if np.ptp(a) > 0 and np.ptp(b) > 0:
        result = stats.ttest_ind(a, b, equal_var=equal_var)
        return TTest(float(result.statistic), float(result.pvalue), float(result.df))
    diff = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / na, b.var(ddof=1) / nb
    if equal_var:
        df = na + nb - 2
        pooled = ((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / df
        se2 = pooled * (1 / na + 1 / nb)
    else:
        se2 = va + vb
        df = se2**2 / (va**2 / (na - 1) + vb**2 / (nb - 1)) if se2 > 0 else na + nb - 2
    if se2 == 0:
        return TTest(math.copysign(math.inf, diff) if diff else 0.0, 0.0 if diff else 1.0, df)
    t = diff / math.sqrt(se2)
    return TTest(t, float(2 * stats.t.sf(abs(t), df)), df)


def summarize(results: Sequence[RunResult]) -> dict[str, dict[str, float]]:
    """Per method: runs, mean and sample std (n - 1) of test loss and accuracy, divergences."""
    summary = {}
    for method in methods_in(results):
        runs = [r for r in results if r.method == method]
        entry: dict[str, float] = {"runs": len(runs), "diverged": sum(r.diverged for r in runs)}
        for key in ("test_loss", "test_accuracy", "best_val_loss"):
            values = np.array([getattr(r, key) for r in runs], dtype=np.float64)
            entry[f"{key}_mean"] = float(values.mean())
            entry[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        summary[method] = entry
    return summary


def compare_methods(
    results: Sequence[RunResult], reference: str
) -> dict[str, dict[str, dict[str, float]]]:
    """t-tests of ``reference`` against every other method, on test loss and accuracy:
    Student's (``t``, ``p``, ``df``) and Welch's (``welch_t``, ``welch_p``, ``welch_df``)."""
    by_method = {m: [r for r in results if r.method == m] for m in methods_in(results)}
    tests = {}
    for method, runs in by_method.items():
        if method == reference:
            continue
        tests[method] = {}
        for key in ("test_loss", "test_accuracy"):
            ours = [getattr(r, key) for r in by_method[reference]]
            theirs = [getattr(r, key) for r in runs]
            student, welch = t_test(ours, theirs), t_test(ours, theirs, equal_var=False)
            tests[method][key] = {
                "t": student.statistic,
                "p": student.pvalue,
                "df": student.df,
                "welch_t": welch.statistic,
                "welch_p": welch.pvalue,
                "welch_df": welch.df,
            }
    return tests


@dataclass
class Comparison:
    """Everything evaluate.py reports: settings, selections, runs and statistics."""

    config: dict[str, Any]
    task: Task
    baseline_task: Task
    controller_task: Task | None
    selections: dict[str, Selection]
    results: list[RunResult]
    summary: dict[str, dict[str, float]] = field(init=False)
    reference: str = field(init=False)
    p_values: dict[str, dict[str, dict[str, float]]] = field(init=False)

    def __post_init__(self) -> None:
        self.summary = summarize(self.results)
        methods = methods_in(self.results)
        self.reference = "controller" if "controller" in methods else methods[0]
        self.p_values = compare_methods(self.results, self.reference)

    def to_dict(self) -> dict[str, Any]:
        """The content of results.json."""
        return finite_or_none(
            {
                "runs": [r.record() for r in self.results],
                "summary": self.summary,
                "reference": self.reference,
                "p_values": self.p_values,
                "significance": SIGNIFICANCE,
                "chosen": {m: s.best for m, s in self.selections.items()},
                "selection": {m: s.to_dict() for m, s in self.selections.items()},
                "task": self.task.to_dict(),
                "baseline_task": self.baseline_task.to_dict(),
                "controller_task": None
                if self.controller_task is None
                else self.controller_task.to_dict(),
                "config": self.config,
            }
        )


def evaluate_methods(
    runner: Runner,
    task: Task,
    seeds: Sequence[int],
    chosen: Mapping[str, Mapping[str, Any]],
    controller: str | None = None,
) -> list[RunResult]:
    """Run the controller (if given) and each chosen schedule on ``seeds``; test each run once."""
    jobs = [Job("controller", task, seed, controller=controller) for seed in seeds if controller]
    jobs += [
        Job(method, task, seed, schedule=schedule)
        for method, schedule in chosen.items()
        for seed in seeds
    ]
    return runner.run(jobs, desc="evaluation (tested once)")


def run_comparison(
    runner: Runner,
    task: Task,
    baseline_task: Task,
    families: Mapping[str, Sequence[BaselineSchedule]],
    runs: int,
    seed: int = 0,
    grid_seeds: int = 1,
    controller: str | None = None,
    controller_task: Task | None = None,
    config: Mapping[str, Any] | None = None,
) -> Comparison:
    """Select the baselines on ``baseline_task`` (validation), then evaluate on ``task``."""
    if runs < 1 or grid_seeds < 1:
        raise ValueError(f"runs and grid_seeds must be >= 1, got {runs} and {grid_seeds}")
    if controller is None and not families:
        raise ValueError("nothing to evaluate: give a controller or at least one baseline")
    selections = select_baselines(
        runner, families, baseline_task, selection_seeds(grid_seeds, seed)
    )
    chosen = {method: s.best for method, s in selections.items()}
    seeds = [seed + i for i in range(runs)]
    results = evaluate_methods(runner, task, seeds, chosen, controller)
    return Comparison(
        config=dict(config or {}),
        task=task,
        baseline_task=baseline_task,
        controller_task=controller_task,
        selections=selections,
        results=results,
    )


def methods_in(results: Iterable[RunResult]) -> list[str]:
    present = {r.method for r in results}
    return [m for m in METHODS if m in present]


def finite_or_none(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None: strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value
