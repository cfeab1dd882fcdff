"""What a registered env id means: its keywords resolved, and checked before any env is built.

- :func:`resolve_env_kwargs`: every keyword ``gym.make(id, **kwargs)`` passes to the env
  (:func:`lrenv.env.env_defaults`, the id's registered keywords, the user's); the one
  reader of what an id means.
- :func:`check_env_kwargs`: the check a parent process makes before starting env workers.
- :func:`is_task_set_id`, :func:`task_set_kwargs`: ids of envs over a task set.

The rules of one configuration (:func:`lrenv.env_config.validate_config`) are the env's
own, in :mod:`lrenv.env_config`, which the env imports; this module reads the registry
and imports the env, so that no import goes both ways.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from gymnasium.envs.registration import EnvSpec

from lrenv.data import check_data_root
from lrenv.env import LRScheduleEnv, env_defaults
from lrenv.env_config import validate_config
from lrenv.env_ids import check_env_id


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
    return spec, isinstance(entry, type) and issubclass(entry, LRScheduleEnv)


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
