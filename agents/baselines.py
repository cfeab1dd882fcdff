"""Hand-written learning-rate schedules (step decay, constant, cosine) as policies.

A schedule is a pure function of the SGD step: :meth:`Schedule.lr_at`. It is wrapped in a
:class:`SchedulePolicy`, which has the same ``predict(obs, state, episode_start,
deterministic)`` interface as a stable-baselines3 model or an
:class:`agents.controller.Controller`, so that :func:`agents.evaluation.run_episode` runs
baselines and controllers through one loop.

The rate is set *exactly*, never through the controller's clipped action: before each env
step the runner calls ``env.unwrapped.set_lr(policy.lr_at(sgd_step))`` and then steps
with action 0 (factor 1, which keeps the rate as set). ``predict`` therefore always
answers action 0; on its own, without the runner, a schedule policy keeps the initial rate.

Decisions happen only every ``steps_per_action`` SGD steps, so a schedule is sampled at
decision boundaries: the chunk of SGD steps ``[s, s + steps_per_action)`` trains at
``lr_at(s)``. For step decay with ``every`` not a multiple of ``steps_per_action``, a
decay therefore takes effect at the first decision boundary at or after its multiple of
``every`` (with ``every=25`` and decisions every 10 steps: at steps 30, 50, 80, ...).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol

import numpy as np


class Schedule(Protocol):
    """A learning rate as a function of the SGD step."""

    kind: ClassVar[str]

    def lr_at(self, sgd_step: int, total_steps: int) -> float:
        """The learning rate for the SGD steps that start at ``sgd_step``."""
        ...

    def describe(self) -> str:
        """A short human-readable description, for tables and legends."""
        ...


@dataclass(frozen=True)
class StepDecay:
    """``initial_lr * factor ** floor(sgd_step / every)``: the paper's baseline.

    Args:
        initial_lr: the rate at step 0.
        every: decay every this many SGD steps.
        factor: multiply the rate by this at each decay.
    """

    initial_lr: float
    every: int
    factor: float
    kind: ClassVar[str] = "step_decay"

    def __post_init__(self) -> None:
        _check_rate(self.initial_lr)
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"every must be a positive integer, got {self.every!r}")
        if not 0 < self.factor <= 1:
            raise ValueError(f"factor must be in (0, 1], got {self.factor}")

    def lr_at(self, sgd_step: int, total_steps: int) -> float:
        """``initial_lr * factor ** (sgd_step // every)``."""
        return self.initial_lr * self.factor ** (sgd_step // self.every)

    def describe(self) -> str:
        """E.g. ``0.1, ×0.9 every 20 steps``."""
        return f"{self.initial_lr:g}, ×{self.factor:g} every {self.every} steps"


@dataclass(frozen=True)
class Constant:
    """The same rate throughout.

    Args:
        lr: the rate.
    """

    lr: float
    kind: ClassVar[str] = "constant"

    def __post_init__(self) -> None:
        _check_rate(self.lr)

    def lr_at(self, sgd_step: int, total_steps: int) -> float:
        """``lr``."""
        return self.lr

    def describe(self) -> str:
        """E.g. ``0.1``."""
        return f"{self.lr:g}"


@dataclass(frozen=True)
class Cosine:
    """Cosine decay from ``initial_lr`` towards 0 at ``total_steps`` (no restarts).

    Sampled at decision boundaries, the last chunk trains at a small positive rate.

    Args:
        initial_lr: the rate at step 0.
    """

    initial_lr: float
    kind: ClassVar[str] = "cosine"

    def __post_init__(self) -> None:
        _check_rate(self.initial_lr)

    def lr_at(self, sgd_step: int, total_steps: int) -> float:
        """``initial_lr * (1 + cos(pi * sgd_step / total_steps)) / 2``."""
        return self.initial_lr * 0.5 * (1.0 + math.cos(math.pi * sgd_step / total_steps))

    def describe(self) -> str:
        """E.g. ``0.1 → 0``."""
        return f"{self.initial_lr:g} → 0"


SCHEDULES: dict[str, type] = {s.kind: s for s in (StepDecay, Constant, Cosine)}


def schedule_to_dict(schedule: Schedule) -> dict[str, Any]:
    """A JSON-ready description: ``{"kind": ..., **parameters}``."""
    return {"kind": schedule.kind, **asdict(schedule)}  # type: ignore[call-overload]


def schedule_from_dict(data: Mapping[str, Any]) -> Schedule:
    """The inverse of :func:`schedule_to_dict`.

    Raises:
        ValueError: for an unknown kind or wrong parameters.
    """
    params = dict(data)
    kind = params.pop("kind", None)
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule kind {kind!r}; choose one of {', '.join(SCHEDULES)}")
    try:
        return SCHEDULES[kind](**params)
    except TypeError as err:
        raise ValueError(f"bad parameters for a {kind} schedule: {params}") from err


def step_decay_grid(grid: Mapping[str, Iterable[Any]]) -> list[StepDecay]:
    """Every combination of ``grid["initial_lr"] x grid["every"] x grid["factor"]``.

    With the paper's grid (:data:`lrenv.presets.PAPER_STEP_DECAY_GRID`) that is 48
    schedules, in the order initial rate, then period, then factor.
    """
    return [
        StepDecay(float(lr), int(every), float(factor))
        for lr, every, factor in itertools.product(
            grid["initial_lr"], grid["every"], grid["factor"]
        )
    ]


class SchedulePolicy:
    """A fixed schedule with the ``predict`` interface of a stable-baselines3 model.

    ``predict`` answers action 0 (keep the rate); the schedule itself is applied through
    :meth:`lr_at`, which the evaluation runner passes to ``env.unwrapped.set_lr`` before
    every step. ``is_recurrent`` is False: there is no state to carry.

    Args:
        schedule: the schedule to follow.

    Example:
        >>> policy = SchedulePolicy(StepDecay(0.1, every=20, factor=0.9))
        >>> policy.lr_at(40, total_steps=500)  # doctest: +ELLIPSIS
        0.081...
    """

    is_recurrent = False

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule

    def lr_at(self, sgd_step: int, total_steps: int) -> float:
        """The scheduled rate for the chunk of SGD steps starting at ``sgd_step``."""
        return self.schedule.lr_at(sgd_step, total_steps)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Action 0 (factor 1) for each observation, batched like the input; state unchanged."""
        observation = np.asarray(observation)
        shape = (1,) if observation.ndim <= 1 else (observation.shape[0], 1)
        return np.zeros(shape, dtype=np.float32), state

    def __repr__(self) -> str:
        return f"SchedulePolicy({self.schedule!r})"


def _check_rate(lr: float) -> None:
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"a learning rate must be positive and finite, got {lr!r}")
