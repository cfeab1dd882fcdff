"""Whether an env id is registered: the check a command line gets before torch loads.

This module imports Gymnasium and lrenv's registrations only (``import lrenv`` loads no
torch), so that train.py and evaluate.py refuse an unknown id at once.
"""

from __future__ import annotations

import importlib

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec

import lrenv  # noqa: F401  (registers lrenv's ids)


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
