"""The environment over a task set: one trainee task per episode, drawn from a split."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from lrenv.env import LRScheduleEnv, env_defaults
from lrenv.env_config import check_reset_options
from lrenv.task_sets import (
    TASK_SET_KEYS,
    TaskSet,
    TaskSpec,
    check_split,
    load_task_set,
    mean_decisions,
)


class TaskSetEnv(gym.Env):
    """
    ## Description

    :class:`lrenv.env.LRScheduleEnv` over a *task set* (:mod:`lrenv.task_sets`): every
    episode trains a trainee of one task of the set's ``split``, drawn with the reset seed,
    so that one controller learns (or is tested) on many datasets, models, batch sizes,
    horizons and starting rates. ``train`` is the split to learn and tune on; ``test``
    holds the tasks kept out of both, for zero-shot evaluation.

    Action, observation, reward, episode end and ``info`` are the inner env's (see
    ``help(lrenv.env.LRScheduleEnv)``); the observation has the same length and meaning on
    every task: ``lrenv/TaskSet-v0`` registers ``feature_transform="relative"`` (losses as
    ratios to the loss at reset, log-scaled variances, weight statistics relative to their
    initial values), ``progress_feature=True`` and ``reward="delta"``. Episodes differ in
    length (``total_steps / steps_per_action`` decisions of their task); ``decisions`` is
    their mean over the split.

    ## Arguments

    * ``task_set``: a shipped set's name (``"default"``, ``"smoke"``, or a version such as
      ``"default-v1"``) or the path of a CSV file in the format of :mod:`lrenv.task_sets`.
    * ``split``: ``"train"`` (default) or ``"test"``.
    * every other keyword of :class:`~lrenv.env.LRScheduleEnv` except those a task fixes
      (:data:`lrenv.task_sets.TASK_SET_KEYS`: dataset, model, batch size, horizon,
      decision interval, validation size and initial rate). Giving one of those raises
      ``ValueError``: a preset or a user can never change a task of the set silently.

    ## Reset

    ``reset(seed=s)`` draws the task uniformly from the split with ``self.np_random`` and
    seeds the trainee from it; ``reset(options={"task": name})`` picks the task by name;
    ``options={"initial_lr": x}`` sets the starting rate as in the inner env.
    ``info["task"]`` names the current task after ``reset`` and every ``step``, and
    ``info["task_family"]`` its dataset and kind of model (e.g. ``fashion_mnist-mlp``).

    ## Version History

    * v0: initial version.

    ## Example

    >>> import gymnasium as gym
    >>> import lrenv
    >>> env = gym.make("lrenv/TaskSet-v0", task_set="smoke")
    >>> obs, info = env.reset(seed=0)
    >>> info["task"] in env.unwrapped.task_names
    True
    """

    metadata: ClassVar[dict[str, Any]] = LRScheduleEnv.metadata

    def __init__(self, task_set: str = "default", split: str = "train", **env_kwargs: Any) -> None:
        check_split(split)
        check_task_set_kwargs(env_kwargs)
        self.task_set: TaskSet = load_task_set(task_set)
        self.split = split
        self.tasks: list[TaskSpec] = self.task_set.tasks(split)
        self.env_kwargs = dict(env_kwargs)
        self.render_mode = env_kwargs.get("render_mode")
        self._envs: dict[str, LRScheduleEnv] = {}
        first = self._env(self.tasks[0])  # checks the shared keywords, builds the spaces
        self.action_space = first.action_space
        self.observation_space = first.observation_space
        self.feature_names = first.feature_names
        self.current: LRScheduleEnv = first
        self.task: TaskSpec = self.tasks[0]

    @property
    def task_names(self) -> list[str]:
        """The names of the split's tasks, in file order."""
        return [task.name for task in self.tasks]

    @property
    def decisions(self) -> int:
        """Decisions per episode, averaged over the split's tasks (rounded): what a
        rollout of whole episodes is sized by."""
        return mean_decisions(self.tasks)

    def _env(self, task: TaskSpec) -> LRScheduleEnv:
        if task.name not in self._envs:
            self._envs[task.name] = LRScheduleEnv(**task.env_kwargs, **self.env_kwargs)
        return self._envs[task.name]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode of a task drawn from the split (or ``options["task"]``)."""
        options = dict(options or {})
        name = options.pop("task", None)
        check_reset_options(options or None)  # before anything changes
        if name is not None and name not in self.task_names:
            raise ValueError(
                f"reset option 'task' must name a task of split {self.split!r} of "
                f"{self.task_set.name}, got {name!r}; the tasks are: {', '.join(self.task_names)}"
            )
        super().reset(seed=seed)
        if name is None:
            task = self.tasks[int(self.np_random.integers(len(self.tasks)))]
        else:
            task = next(t for t in self.tasks if t.name == name)
        trainee_seed = int(self.np_random.integers(2**31 - 1))
        self.task, self.current = task, self._env(task)
        obs, info = self.current.reset(seed=trainee_seed, options=options or None)
        return obs, self._info(info)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One decision of the current task's episode."""
        obs, reward, terminated, truncated, info = self.current.step(action)
        return obs, reward, terminated, truncated, self._info(info)

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        return {**info, "task": self.task.name, "task_family": self.task.family}

    def render(self) -> np.ndarray | None:
        """The current episode, as the inner env draws it."""
        return self.current.render()

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()

    @property
    def total_steps(self) -> int:
        """SGD steps of the current task's episode."""
        return self.current.total_steps

    @property
    def trace(self) -> Any:
        """The current episode's :class:`lrenv.trace.EpisodeTrace`."""
        return self.current.trace


def check_task_set_kwargs(env_kwargs: Mapping[str, Any]) -> None:
    """ValueError for a keyword a task fixes, or one :class:`LRScheduleEnv` does not take.

    A task's keywords come from its row; silently overriding them would change the task.
    """
    fixed = sorted(set(env_kwargs) & {*TASK_SET_KEYS, "initial_lrs"})
    if fixed:
        raise ValueError(
            f"{', '.join(fixed)} {'is' if len(fixed) == 1 else 'are'} fixed by each task of a "
            "task set; edit the set's CSV file (or give another one) to change a task"
        )
    unknown = sorted(set(env_kwargs) - set(env_defaults()))
    if unknown:
        raise ValueError(
            f"unknown env keyword(s) {', '.join(map(repr, unknown))} for a task set; the "
            f"keywords are: task_set, split, and {', '.join(sorted(env_defaults()))}"
        )
