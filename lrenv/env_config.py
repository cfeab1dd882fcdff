"""The rules of one env configuration, an action and reset's options: the env's own checks.

:func:`validate_config` is what :class:`lrenv.env.LRScheduleEnv` checks when it is built,
and what :func:`lrenv.keywords.check_env_kwargs` checks before any env is; each message
says what is allowed. This module imports no env, so that the env and the id-level
checks (:mod:`lrenv.keywords`, which imports the env) both read it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from lrenv.checks import check_bool, check_integer, is_real
from lrenv.data import DATASETS, NUM_CLASSES
from lrenv.features import FEATURE_TRANSFORMS
from lrenv.models import check_model
from lrenv.schedule_families import schedule_from_dict
from lrenv.threads import check_torch_threads
from lrenv.trainee import check_optimizer, check_precision

ACTION_MODES = ("scale", "absolute", "residual")
REWARDS = ("loss", "delta", "log_delta", "vs_base")
RENDER_MODES = ("rgb_array",)
"""What ``render_mode`` may be besides None (the env's ``metadata["render_modes"]``)."""


def validate_config(**c: Any) -> None:
    """Raise ValueError, naming what is allowed, for an impossible configuration: the env's
    own check, and :func:`check_env_kwargs`'s before any env is built."""
    check_torch_threads(c["torch_threads"])
    if c["render_mode"] not in (None, *RENDER_MODES):
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
    if c["reward"] == "vs_base" and c["action_mode"] != "residual":
        raise ValueError(
            "reward='vs_base' measures the controller against its base schedule: it needs "
            "action_mode='residual' with a base_schedule (train.py: --residual-over), got "
            f"action_mode={c['action_mode']!r}"
        )
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
    check_beta_factor(c["beta_factor"], c["optimizer"])
    check_bool(c["beta_once"], "beta_once")
    if c["beta_once"] and c["beta_factor"] is None:
        raise ValueError(
            "beta_once=True holds the beta that beta_factor's second action entry sets: it "
            "needs beta_factor (e.g. beta_factor=5)"
        )
    if not (is_real(c["momentum"]) and 0 <= c["momentum"] < 1):
        raise ValueError(f"momentum must be a number in [0, 1), got {c['momentum']!r}")
    if c["val_size"] is not None:
        check_integer(c["val_size"], "val_size", 2, "None (all) or an integer >= 2")
    if c["feature_transform"] not in FEATURE_TRANSFORMS:
        raise ValueError(
            f"unknown feature_transform {c['feature_transform']!r}; "
            f"choose one of {', '.join(FEATURE_TRANSFORMS)}"
        )
    check_bool(c["epochs_feature"], "epochs_feature")
    if c["trainee_seeds"] is not None:
        check_integer(c["trainee_seeds"], "trainee_seeds", 1, "None or a positive integer")
    weight = c["final_reward_weight"]
    if not (is_real(weight) and math.isfinite(weight) and weight >= 0):
        raise ValueError(f"final_reward_weight must be a finite number >= 0, got {weight!r}")
    cost = c["action_cost"]
    if not (is_real(cost) and math.isfinite(cost) and cost >= 0):
        raise ValueError(
            f"action_cost must be a finite number >= 0 (an episode pays it times its mean "
            f"absolute action; 0 turns it off), got {cost!r}"
        )
    limit = c["divergence_loss"]
    chance = math.log(NUM_CLASSES[c["dataset"]])
    if limit is not None and not (is_real(limit) and math.isfinite(limit) and limit >= chance):
        raise ValueError(
            f"divergence_loss must be None (2 ln C) or a finite number >= the chance-level "
            f"loss ln C = {chance:.4f} (below it a network that learned nothing counts as "
            f"diverged, and an early divergence would pay), got {limit!r}"
        )


MAX_BETA_FACTOR = 9.0
"""The widest ``beta_factor``: schedule-free's beta then reaches ``1 - 0.1 * 9 = 0.1``; at
10 it would reach 0, where the library's switch to the averaged weights divides by it."""


def check_beta_factor(beta_factor: Any, optimizer: str) -> None:
    """``beta_factor`` is None, or a number in (1, 9] with ``optimizer="schedule_free"``."""
    if beta_factor is None:
        return
    if not (is_real(beta_factor) and 1 < beta_factor <= MAX_BETA_FACTOR):
        raise ValueError(
            f"beta_factor must be None or a number in (1, {MAX_BETA_FACTOR:g}] (schedule-free "
            f"SGD's 1 - beta is 0.1 x beta_factor ** a), got {beta_factor!r}"
        )
    if optimizer != "schedule_free":
        raise ValueError(
            "beta_factor sets schedule-free SGD's beta: it needs optimizer='schedule_free', "
            f"got optimizer={optimizer!r}"
        )


def check_action(action: Any) -> float:
    """The action as a float in [-1, 1]; ValueError for a non-finite or misshaped one, or
    one that is not a real number (a string, complex number, bool or None)."""
    return check_actions(action, 1)[0]


def check_actions(action: Any, size: int) -> tuple[float, ...]:
    """An action of ``size`` entries as floats in [-1, 1] (size 1: a number or shape
    ``(1,)``); ValueError for a non-finite or misshaped one, or one that is not real."""
    shape = "(1,)" if size == 1 else f"({size},)"
    try:
        array = np.asarray(action)
    except (TypeError, ValueError) as err:  # a ragged list, say
        raise ValueError(
            f"action must be {'a number or ' if size == 1 else ''}an array of shape {shape}, "
            f"got {action!r}"
        ) from err
    if array.dtype.kind not in "iuf":  # "b" bool, "c" complex, "U" str, "O" None and others
        raise ValueError(
            f"action must be {'a real number or ' if size == 1 else ''}an array of shape "
            f"{shape} of floats, got {action!r} (dtype {array.dtype})"
        )
    allowed = ((), (1,)) if size == 1 else ((size,),)
    if array.shape not in allowed:
        raise ValueError(f"action must have shape {shape}, got shape {array.shape}")
    values = tuple(float(v) for v in array.reshape(-1))
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"action must be finite, got {values if size > 1 else values[0]}")
    return tuple(float(np.clip(v, -1.0, 1.0)) for v in values)


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
