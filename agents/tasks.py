"""The tasks a comparison runs on, and the methods it compares.

A :class:`Task` is an env id and its keywords; :func:`resolve_tasks` decides the
evaluation, baseline-selection and controller tasks of one comparison (the paper's Table 2
transfer included), and :func:`check_controller_fits` refuses a controller whose
observations do not fit a task. The controller contract lives here, in one place: the
keywords that say how a controller's actions and observations are read
(:data:`CONTROLLER_INTERFACE_KEYS`) travel with it to every task.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

import lrenv  # noqa: F401  (registers the environments, here and in every worker)
from agents.presets import without_task_keys
from lrenv.keyword_roles import CONTROLLER_INTERFACE_KEYS, RUNTIME_KEYS

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


@dataclass(frozen=True)
class Task:
    """An env id and the keywords passed to ``gym.make``: one trainee task."""

    env_id: str
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:  # a plain dict: picklable for worker processes
        object.__setattr__(self, "env_kwargs", dict(self.env_kwargs))

    def make(self, keep_best: bool, torch_threads: int | None = None) -> gym.Env:
        """A fresh env for this task.

        Args:
            keep_best: whether the env keeps its best-validation weights (for test_best).
            torch_threads: the env keyword ``torch_threads`` unless the task sets it (None:
                the process's count, e.g. a worker's --threads).
        """
        from lrenv.vector import max_episode_steps  # torch only when an env is made

        kwargs = {"torch_threads": torch_threads, **self.env_kwargs, "keep_best": keep_best}
        if kwargs.get("reward") == "vs_base":
            # evaluation reads no reward, and "vs_base" would train the base schedule
            # beside every run for nothing (and refuses a baseline's own action mode);
            # "log_delta" is the same reward less the base's part
            kwargs["reward"] = "log_delta"
        # a training run's pool of trainee seeds would make every evaluation or selection
        # episode rerun a seed the controller trained on: they draw fresh seeds
        kwargs.pop("trainee_seeds", None)
        # ValueError saying `import lrenv` or "lrenv:" when the id is unknown here: a worker
        # process has imported lrenv (this module does) but no other package
        return gym.make(
            self.env_id, max_episode_steps=max_episode_steps(self.env_id, kwargs), **kwargs
        )

    @property
    def resolved_kwargs(self) -> dict[str, Any]:
        """Every keyword the env is built with: :class:`lrenv.env.LRScheduleEnv`'s defaults,
        the registered keywords of ``env_id`` over them, and ``env_kwargs`` over those. For
        a task set, the keywords its tasks share (``task_set`` and ``split`` among them;
        each task's row adds its own)."""
        # torch and the data loaders only when asked
        from lrenv.env import env_defaults
        from lrenv.keywords import is_task_set_id, resolve_env_kwargs, task_set_kwargs

        if is_task_set_id(self.env_id):  # the keywords its tasks share; each row adds its own
            from lrenv.task_sets import TASK_SET_KEYS

            shared = {k: v for k, v in env_defaults().items() if k not in TASK_SET_KEYS}
            return {**shared, **task_set_kwargs(self.env_id, self.env_kwargs)}
        return resolve_env_kwargs(self.env_id, self.env_kwargs)

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

    def describe(self, controller_keys: bool = True) -> str:
        """``env_id`` and the keywords, e.g. ``lrenv/Synthetic-v0 (total_steps=100)``;
        without ``controller_keys``, those of :data:`CONTROLLER_INTERFACE_KEYS` left out
        (a baseline's runs replace them with its own: plain SGD, its rates)."""
        hidden = RUNTIME_KEYS if controller_keys else (*RUNTIME_KEYS, *CONTROLLER_INTERFACE_KEYS)
        kwargs = {k: v for k, v in self.env_kwargs.items() if k not in hidden}
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
    from lrenv.features import feature_names_of  # torch only where a controller is checked

    expected = len(feature_names_of(task.resolved_kwargs))
    if expected != observation_size:
        raise ValueError(
            f"the controller reads {observation_size} features but {task.describe()} gives "
            f"{expected}; pass the env keywords it was trained with (--env-kwargs)"
        )
