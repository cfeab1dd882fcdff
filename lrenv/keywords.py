"""The env's keywords: their defaults, what a registered id means, and their validation.

- :func:`env_defaults`: every keyword's default, read from :class:`~lrenv.env.LRScheduleEnv`.
- :func:`resolve_env_kwargs`: every keyword ``gym.make(id, **kwargs)`` passes to the env;
  the one reader of what an id means.
- :func:`check_env_kwargs`: the check a parent process makes before starting env workers.
- :func:`validate_config`: the env's own check of a configuration, with a message that
  says what is allowed.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import numbers
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec

from lrenv.checks import check_integer
from lrenv.data import DATASETS, NUM_CLASSES, check_data_root
from lrenv.features import FEATURE_TRANSFORMS
from lrenv.models import check_model
from lrenv.schedules import schedule_from_dict
from lrenv.threads import check_torch_threads
from lrenv.trainee import check_optimizer, check_precision

ACTION_MODES = ("scale", "absolute", "residual")
REWARDS = ("loss", "delta", "log_delta")


@functools.cache
def _env_defaults() -> tuple[tuple[str, Any], ...]:
    parameters = inspect.signature(_env_class().__init__).parameters.values()
    return tuple((p.name, p.default) for p in parameters if p.default is not p.empty)


def env_defaults() -> dict[str, Any]:
    """The default of every keyword of :class:`LRScheduleEnv` (read from its signature):
    what an id's registered keywords and a user's keywords are merged over."""
    return dict(_env_defaults())


def _env_class() -> type:
    from lrenv.env import LRScheduleEnv  # lrenv.env imports this module

    return LRScheduleEnv


def _spec(env_id: str) -> tuple[EnvSpec, bool]:
    """The registered spec of ``env_id`` (``"module:id"`` imports the module first, as
    ``gym.make`` does) and whether :class:`LRScheduleEnv` makes it.

    Raises:
        ValueError: for an id that is not registered, saying how lrenv's ids get registered.
    """
    spec = check_env_id(env_id)
    entry = spec.entry_point
    if isinstance(entry, str):
        module, name = entry.split(":")
        entry = getattr(importlib.import_module(module), name)
    return spec, isinstance(entry, type) and issubclass(entry, _env_class())


TASK_SET_ENTRY_POINT = "lrenv.task_set_env:TaskSetEnv"


def is_task_set_id(env_id: str) -> bool:
    """Whether ``env_id`` is registered as an env over a task set (``lrenv/TaskSet-v0``).

    Raises:
        ValueError: for an id that is not registered.
    """
    spec, _ = _spec(env_id)
    entry = spec.entry_point
    return entry == TASK_SET_ENTRY_POINT or getattr(entry, "__name__", None) == "TaskSetEnv"


def task_set_kwargs(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The keywords ``gym.make(env_id, **env_kwargs)`` passes to a task-set env: its
    registered ones and ``env_kwargs`` over them (``task_set`` and ``split`` included).

    Raises:
        ValueError: for an id that is not a task set's.
    """
    if not is_task_set_id(env_id):
        raise ValueError(f"{env_id} is not an env over a task set")
    spec, _ = _spec(env_id)
    return {**spec.kwargs, **dict(env_kwargs or {})}


def check_task_set_env_kwargs(env_id: str, env_kwargs: Mapping[str, Any]) -> None:
    """:func:`check_env_kwargs` for a task-set id: the set loads, the keywords are ones a
    task set takes, and every task of the split is a valid env with them (no data loaded).

    Raises:
        ValueError: naming what is wrong.
    """
    from lrenv.task_set_env import check_task_set_kwargs
    from lrenv.task_sets import check_split, load_task_set

    kwargs = task_set_kwargs(env_id, env_kwargs)
    name, split = kwargs.pop("task_set", "default"), kwargs.pop("split", "train")
    check_split(split)
    check_task_set_kwargs(kwargs)
    for task in load_task_set(name).tasks(split):
        config = {**env_defaults(), **kwargs, **task.env_kwargs}
        validate_config(**config)
        check_data_root(config["dataset"], config["data_root"])


def check_env_id(env_id: str) -> EnvSpec:
    """The registered spec of ``env_id`` (``"module:id"`` imports the module first, as
    ``gym.make`` does).

    Raises:
        ValueError: for an id that is not registered (listing lrenv's ids), or a module
            that cannot be imported.
    """
    if not isinstance(env_id, str):
        raise ValueError(f"an env id is a string like 'lrenv/Synthetic-v0', got {env_id!r}")
    if ":" in env_id:
        module, env_id = env_id.split(":", 1)
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ValueError(f"cannot import {module!r} for the env id: {err}") from None
    try:
        return gym.spec(env_id)
    except gym.error.Error:
        ours = sorted(name for name in gym.registry if name.startswith("lrenv/"))
        raise ValueError(
            f"{env_id!r} is not a registered environment; lrenv's ids: {', '.join(ours)} (an "
            "id of another package: write it as 'module:id' to have Gymnasium import the module)"
        ) from None


def resolve_env_kwargs(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every keyword ``gym.make(env_id, **env_kwargs)`` passes to :class:`LRScheduleEnv`:
    its defaults, the id's registered keywords over them, ``env_kwargs`` over those. The one
    place that reads what an id means (the vector envs, the evaluation's tasks and the
    scheduler all ask here).

    Args:
        env_id: a registered lrenv id (``"module:id"`` is accepted).
        env_kwargs: keywords over the id's registered ones.

    Raises:
        ValueError: for an id that is not registered, or not made by ``LRScheduleEnv``.
    """
    spec, made_here = _spec(env_id)
    if not made_here:
        raise ValueError(f"{env_id} is not an lrenv id (its env is not an LRScheduleEnv)")
    return {**env_defaults(), **spec.kwargs, **dict(env_kwargs or {})}


def check_env_kwargs(env_id: str, env_kwargs: Mapping[str, Any]) -> None:
    """Check the keywords ``gym.make(env_id, **env_kwargs)`` would pass to
    :class:`LRScheduleEnv` without building it (no data is loaded): the check a parent
    process makes before starting env workers, so that a mistake is reported here rather
    than as a worker's broken pipe.

    Ids that another class makes are only checked to exist.

    Args:
        env_id: a registered id (``"module:id"`` is accepted).
        env_kwargs: keywords over the id's registered ones.

    Raises:
        ValueError: naming the keyword and what it accepts, or for an id that is not
            registered.
    """
    if is_task_set_id(env_id):
        check_task_set_env_kwargs(env_id, env_kwargs)
        return
    spec, made_here = _spec(env_id)
    if not made_here:
        return
    kwargs = {**spec.kwargs, **env_kwargs}
    defaults = env_defaults()
    unknown = sorted(set(kwargs) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown env keyword(s) {', '.join(map(repr, unknown))} for {env_id}; "
            f"the keywords are: {', '.join(sorted(defaults))}"
        )
    config = {**defaults, **kwargs}
    validate_config(**config)
    check_data_root(config["dataset"], config["data_root"])


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number (numpy scalars included), and not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def validate_config(**c: Any) -> None:
    """Raise ValueError, naming what is allowed, for an impossible configuration: the env's
    own check, and :func:`check_env_kwargs`'s before any env is built."""
    check_torch_threads(c["torch_threads"])
    if c["render_mode"] not in (None, *_env_class().metadata["render_modes"]):
        raise ValueError(f"render_mode must be None or 'rgb_array', got {c['render_mode']!r}")
    if c["dataset"] not in DATASETS:
        raise ValueError(f"unknown dataset {c['dataset']!r}; choose one of {', '.join(DATASETS)}")
    check_model(c["model"])
    check_precision(c["precision"])  # before the data loads; the trainee checks the device
    check_optimizer(c["optimizer"], c["warmup_steps"])
    if c["reward"] not in REWARDS:
        raise ValueError(f"unknown reward {c['reward']!r}; choose one of {', '.join(REWARDS)}")
    if (c["action_mode"] == "residual") != (c["base_schedule"] is not None):
        raise ValueError(
            "action_mode='residual' scales base_schedule, and base_schedule is read only by "
            "it: give both (e.g. base_schedule={'kind': 'wsd', 'peak_lr': 0.3, "
            f"'cooldown': 0.2}}), got action_mode={c['action_mode']!r}, "
            f"base_schedule={c['base_schedule']!r}"
        )
    if c["base_schedule"] is not None:
        schedule_from_dict(c["base_schedule"])  # ValueError naming the kinds
    for key in ("batch_size", "steps_per_action", "total_steps"):
        check_integer(c[key], key)
    if c["total_steps"] % c["steps_per_action"]:
        raise ValueError(
            f"total_steps ({c['total_steps']}) must be a multiple of steps_per_action "
            f"({c['steps_per_action']})"
        )
    bounds = c["lr_bounds"]
    try:
        low, high = bounds
    except (TypeError, ValueError):
        low = high = None
    if not (is_real(low) and is_real(high) and 0 < low < high and math.isfinite(high)):
        raise ValueError(
            f"lr_bounds must be two numbers (low, high) with 0 < low < high < inf, got {bounds!r}"
        )
    rates = [c["initial_lr"]] if c["initial_lr"] is not None else list(c["initial_lrs"])
    if not rates or not all(is_real(r) and math.isfinite(r) and r > 0 for r in rates):
        raise ValueError(
            f"initial learning rates (initial_lr, or initial_lrs when it is None) must be "
            f"positive, finite numbers, got {rates!r}"
        )
    if c["action_mode"] not in ACTION_MODES:
        raise ValueError(
            f"unknown action_mode {c['action_mode']!r}; choose one of {', '.join(ACTION_MODES)}"
        )
    base = c["factor_base"]
    if not (is_real(base) and math.isfinite(base) and base > 1):
        raise ValueError(f"factor_base must be a finite number > 1, got {base!r}")
    if not (is_real(c["momentum"]) and 0 <= c["momentum"] < 1):
        raise ValueError(f"momentum must be a number in [0, 1), got {c['momentum']!r}")
    if c["val_size"] is not None:
        check_integer(c["val_size"], "val_size", 2, "None (all) or an integer >= 2")
    if c["feature_transform"] not in FEATURE_TRANSFORMS:
        raise ValueError(
            f"unknown feature_transform {c['feature_transform']!r}; "
            f"choose one of {', '.join(FEATURE_TRANSFORMS)}"
        )
    weight = c["final_reward_weight"]
    if not (is_real(weight) and math.isfinite(weight) and weight >= 0):
        raise ValueError(f"final_reward_weight must be a finite number >= 0, got {weight!r}")
    limit = c["divergence_loss"]
    chance = math.log(NUM_CLASSES[c["dataset"]])
    if limit is not None and not (is_real(limit) and math.isfinite(limit) and limit >= chance):
        raise ValueError(
            f"divergence_loss must be None (2 ln C) or a finite number >= the chance-level "
            f"loss ln C = {chance:.4f} (below it a network that learned nothing counts as "
            f"diverged, and an early divergence would pay), got {limit!r}"
        )


def check_action(action: Any) -> float:
    """The action as a float in [-1, 1]; ValueError for a non-finite or misshaped one, or
    one that is not a real number (a string, complex number, bool or None)."""
    try:
        array = np.asarray(action)
    except (TypeError, ValueError) as err:  # a ragged list, say
        raise ValueError(
            f"action must be a number or an array of shape (1,), got {action!r}"
        ) from err
    if array.dtype.kind not in "iuf":  # "b" bool, "c" complex, "U" str, "O" None and others
        raise ValueError(
            "action must be a real number or an array of shape (1,) of floats, "
            f"got {action!r} (dtype {array.dtype})"
        )
    if array.shape not in ((), (1,)):
        raise ValueError(f"action must have shape (1,), got shape {array.shape}")
    value = float(array.reshape(()))
    if not math.isfinite(value):
        raise ValueError(f"action must be finite, got {value}")
    return float(np.clip(value, -1.0, 1.0))


def check_reset_options(options: Mapping[str, Any] | None) -> float | None:
    """The ``initial_lr`` reset option as a float (None when not given); ValueError for
    anything else, so that a typo never passes silently."""
    if options is None:
        return None
    if not isinstance(options, Mapping) or set(options) - {"initial_lr"}:
        raise ValueError(
            "reset options allow only 'initial_lr' (a positive, finite learning rate), "
            f"e.g. options={{'initial_lr': 0.01}}; got {options!r}"
        )
    if "initial_lr" not in options:
        return None
    lr = options["initial_lr"]
    if not (is_real(lr) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"reset option 'initial_lr' must be a positive, finite number, got {lr!r}")
    return float(lr)
