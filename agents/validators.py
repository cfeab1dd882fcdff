"""Every setting's check, in one place, made before any work starts.

One validator per setting: each raises :class:`UsageError` (a ``ValueError``) whose message
says what was wrong and what is allowed. The library (:func:`agents.training.train_controller`,
:func:`agents.evaluating.evaluate_controller`, :meth:`agents.train_config.TrainConfig.validate`)
calls them before it starts a process or writes a folder; train.py and evaluate.py print
the message as one line and exit with code 2. The env's keywords are checked by
:func:`lrenv.keywords.check_env_kwargs`, the env's own rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from typing import Any

from lrenv.checks import is_real


class UsageError(ValueError):
    """Options that cannot make a run or a comparison (the scripts print the message as a
    usage error, exit code 2)."""


SEED_LIMIT = 2**31
"""Seeds are below this: numpy's legacy seeding takes 32 bits, and the evaluation adds
offsets (1_000_000 + seed + j) to a seed."""


def integer(name: str, value: Any, low: int = 1, high: int | None = None, note: str = "") -> int:
    """Check an integer setting.

    Args:
        name: the setting (as the message names it).
        value: the value given.
        low: the smallest allowed.
        high: the largest allowed (None: no limit).
        note: what the bounds mean, appended to the message (e.g. ``"0: off"``).

    Returns:
        The value.

    Raises:
        UsageError: for a bool, a non-integer or a value out of range.
    """
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        what = f"an integer from {low} to {high}"
        if high is None:
            what = "a positive integer" if low == 1 else f"an integer >= {low}"
        extra = f" ({note})" if note else ""
        raise UsageError(f"{name} must be {what}{extra}, got {value!r}")
    return value


def number(
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    open_low: bool = False,
    note: str = "",
) -> float:
    """Check a real-valued setting: finite, in ``[low, high]`` (``(low, high]`` when
    ``open_low``).

    Raises:
        UsageError: for a non-number, a non-finite number or one out of range.
    """
    inside = (
        is_real(value)
        and math.isfinite(value)
        and (value > low if open_low else value >= low)
        and value <= high
    )
    if not inside:
        if math.isfinite(high):
            span = f"in {'(' if open_low else '['}{low:g}, {high:g}]"
        elif math.isfinite(low):
            span = f"{'>' if open_low else '>='} {low:g}"
        else:
            span = "that is finite"
        extra = f" ({note})" if note else ""
        raise UsageError(f"{name} must be a number {span}{extra}, got {value!r}")
    return float(value)


def boolean(name: str, value: Any) -> bool:
    """Check a yes/no setting."""
    if not isinstance(value, bool):
        raise UsageError(f"{name} must be true or false, got {value!r}")
    return value


def choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """Check a name among ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        raise UsageError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
    return value


def names(name: str, value: Any, allowed: Iterable[str], none: bool = False) -> list[str]:
    """Check a comma-separated list of names among ``allowed``; return the names.

    Args:
        name: the setting.
        value: e.g. ``"wsd,schedule_free"`` (``""`` for none).
        allowed: the known names.
        none: accept ``"none"`` for the empty list too.
    """
    allowed = list(allowed)
    if not isinstance(value, str):
        raise UsageError(f"{name} must be comma-separated names, got {value!r}")
    given = [v.strip() for v in value.split(",") if v.strip()]
    if none and given == ["none"]:
        return []
    unknown = [v for v in given if v not in allowed]
    if unknown:
        raise UsageError(
            f"{name}: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(allowed)}"
            + (" (or none)" if none else "")
        )
    return given


# --- PPO ------------------------------------------------------------------------------

SDE_DRAWS = ("rollout", "episode")
"""When gSDE's exploration map is drawn again (:attr:`agents.presets.PPOSettings.sde_draw`)."""

PPO_RULES: dict[str, Callable[[Any], Any]] = {
    "hidden": lambda v: integer("hidden", v, 1, 4096, "units of the hidden layer"),
    "actor_lr": lambda v: number("actor_lr", v, 0.0, 1.0, open_low=True, note="Adam's rate"),
    "critic_lr": lambda v: number("critic_lr", v, 0.0, 1.0, open_low=True, note="Adam's rate"),
    "episodes_per_rollout": lambda v: integer("episodes_per_rollout", v, 1),
    "n_epochs": lambda v: integer("n_epochs", v, 1, 1000),
    "minibatches": lambda v: integer("minibatches", v, 1),
    "gamma": lambda v: number("gamma", v, 0.0, 1.0, note="the discount factor; 1: none"),
    "gae_lambda": lambda v: number("gae_lambda", v, 0.0, 1.0),
    "clip_range": lambda v: number("clip_range", v, 0.0, 1.0, open_low=True, note="paper: 0.2"),
    "ent_coef": lambda v: number("ent_coef", v, 0.0, 1.0, note="the entropy bonus"),
    "target_kl": lambda v: (
        v
        if v is None
        else number("target_kl", v, 0.0, 1.0, open_low=True, note="None: no early stop")
    ),
    "log_std_init": lambda v: number(
        "log_std_init", v, -10.0, 2.0, note="initial log standard deviation"
    ),
    "use_sde": lambda v: boolean("use_sde", v),
    "sde_draw": lambda v: choice("sde_draw", v, SDE_DRAWS),
    "anneal_lr": lambda v: boolean("anneal_lr", v),
    "family_advantages": lambda v: boolean("family_advantages", v),
    "normalize_observations": lambda v: boolean("normalize_observations", v),
    "normalize_rewards": lambda v: boolean("normalize_rewards", v),
}
"""One validator per :class:`agents.presets.PPOSettings` field."""


def check_ppo(settings: Any) -> None:
    """Check every field of a :class:`agents.presets.PPOSettings` (or a mapping of some).

    Raises:
        UsageError: naming the first bad setting.
    """
    values = settings if isinstance(settings, Mapping) else _fields(settings)
    for key, value in values.items():
        if key not in PPO_RULES:
            raise UsageError(f"unknown PPO setting {key!r}; the settings: {', '.join(PPO_RULES)}")
        PPO_RULES[key](value)
    if values.get("sde_draw", "rollout") != "rollout" and values.get("use_sde") is False:
        raise UsageError(
            f"sde_draw {values['sde_draw']!r} draws gSDE's exploration map, which only "
            "use_sde has: add --use-sde, or leave sde_draw at 'rollout'"
        )


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


# --- shared by both scripts -------------------------------------------------------------


def check_preset(value: Any) -> str:
    """A preset name (:data:`agents.presets.PRESETS`)."""
    from agents.presets import PRESETS

    return choice("preset", value, PRESETS)


def check_seed(value: Any, name: str = "seed") -> int:
    """A seed: an integer from 0 to 2**31 - 1."""
    return integer(name, value, 0, SEED_LIMIT - 1)


def check_threads(value: Any) -> int:
    """Torch threads per process."""
    return integer("threads", value, 1, 1024, "torch threads per process")


def check_ray_address(value: Any) -> str | None:
    """``--ray``: None, ``"local"``, ``"auto"`` or ``"ray://HOST:PORT"``."""
    if value is None:
        return None
    if value in ("local", "auto") or (isinstance(value, str) and value.startswith("ray://")):
        return value
    raise UsageError(
        f"--ray {value!r}: give 'local' (start Ray here), 'auto' (join the cluster "
        "this machine is part of) or 'ray://HOST:10001' (join one through Ray Client)"
    )


def check_env_id(value: Any) -> str:
    """A registered env id (its keywords are checked with them, by
    :func:`lrenv.keywords.check_env_kwargs`)."""
    if not isinstance(value, str) or not value:
        raise UsageError(f"env_id must be a registered id like lrenv/Synthetic-v0, got {value!r}")
    from lrenv.env_ids import check_env_id as registered

    try:
        registered(value)
    except ValueError as err:
        raise UsageError(str(err)) from None
    return value


def check_device(value: Any) -> str:
    """The controller's torch device: ``"cpu"``, ``"auto"``, ``"cuda"`` or ``"cuda:N"``,
    which must exist here."""
    if value in ("auto", "cpu"):  # without importing torch: the scripts check this first
        return value
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, TypeError) as err:
        raise UsageError(f"device must be 'cpu', 'auto' or 'cuda[:N]', got {value!r}") from err
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"device must be 'cpu', 'auto' or 'cuda[:N]', got {value!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {value!r}: no CUDA GPU here; use 'cpu'")
    return value


def check_residual_over(value: Any) -> list[str]:
    """``residual_over``: baseline families whose schedules are a function of the step
    (a residual controller scales one), comma-separated; ``""`` for none."""
    from agents.tasks import BASELINES
    from lrenv.schedule_families import SCHEDULES

    usable = [b for b in BASELINES if b in SCHEDULES or b == "schedule_free"]
    families = names("residual_over", value, BASELINES)
    unusable = [f for f in families if f not in usable]
    if unusable:
        raise UsageError(
            f"residual_over: {', '.join(map(repr, unusable))} is not a function of the step, "
            f"which a residual controller scales; choose from {', '.join(usable)}"
        )
    return families


def check_baselines(value: Any) -> list[str]:
    """evaluate.py's ``--baselines``: known families, comma-separated, or ``none``."""
    from agents.tasks import BASELINES

    return names("baselines", value, BASELINES, none=True)
