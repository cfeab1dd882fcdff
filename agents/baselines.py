"""The baselines a practitioner would pick instead of a learned controller, as policies.

Families (each one's name is the method name in results.json):

- ``step_decay``, ``constant``, ``cosine``, ``linear``, ``wsd``: fixed schedules, pure
  functions of the SGD step (:mod:`lrenv.schedule_families`);
- ``plateau``: torch's ``ReduceLROnPlateau`` on the validation loss at each decision, the
  hand-written adaptive rival of a learned controller (:class:`Plateau`);
- ``schedule_free``: schedule-free SGD (Defazio et al. 2024, the ``schedulefree``
  package) at a constant rate with its own warmup (:class:`ScheduleFree`). It changes the
  optimizer, not the rate: its runs use the env keyword ``optimizer="schedule_free"``, and
  every validation and test pass reads its averaged weights (the optimizer's eval mode).

A schedule is wrapped in a :class:`SchedulePolicy`, which has the same ``predict(obs, state,
episode_start, deterministic)`` interface as a stable-baselines3 model or an
:class:`lrenv.controller.Controller`, so that :func:`agents.episodes.run_episode` runs
baselines and controllers through one loop.

The rate is set *exactly*, never through the controller's clipped action: before each env
step the runner calls ``env.unwrapped.set_lr(policy.lr_at(sgd_step))`` and then steps
with action 0 (factor 1, which keeps the rate as set). ``predict`` therefore always
answers action 0; on its own, without the runner, a schedule policy keeps the initial rate.
After each step the runner passes the validation loss to :meth:`SchedulePolicy.observe`,
which only the plateau rule reads.

Decisions happen only every ``steps_per_action`` SGD steps, so a schedule is sampled at
decision boundaries: the chunk of SGD steps ``[s, s + steps_per_action)`` trains at
``lr_at(s)``. For step decay with ``every`` not a multiple of ``steps_per_action``, a
decay therefore takes effect at the first decision boundary at or after its multiple of
``every`` (with ``every=25`` and decisions every 10 steps: at steps 30, 50, 80, ...).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from lrenv.checks import check_integer, check_rate
from lrenv.schedule_families import (
    SCHEDULES,
    WSD,
    Constant,
    Cosine,
    Linear,
    Schedule,
    StepDecay,
    schedule_to_dict,
)
from lrenv.schedule_families import schedule_from_dict as _schedule_from_dict

__all__ = [
    "WSD",
    "BaselineSchedule",
    "Constant",
    "Cosine",
    "Linear",
    "Plateau",
    "Schedule",
    "ScheduleFree",
    "SchedulePolicy",
    "StepDecay",
    "TuningFree",
    "schedule_from_dict",
    "schedule_to_dict",
]


@dataclass(frozen=True)
class Plateau:
    """torch's ``ReduceLROnPlateau`` on the validation loss seen at each decision.

    Starts at ``initial_lr``; after ``patience`` decisions without a relative improvement
    of 1e-4 (torch's default threshold) the rate is multiplied by ``factor``.

    Args:
        initial_lr: the starting rate.
        factor: the reduction, in (0, 1).
        patience: decisions without improvement tolerated before a reduction.
    """

    initial_lr: float
    factor: float
    patience: int
    kind: ClassVar[str] = "plateau"

    def __post_init__(self) -> None:
        check_rate(self.initial_lr)
        if not 0 < self.factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {self.factor}")
        check_integer(self.patience, "patience", 0, "a non-negative integer")

    def lr_at(self, sgd_step: int, total_steps: int) -> float:
        """The starting rate (the rule itself runs in a :class:`PlateauTracker`)."""
        return self.initial_lr

    def tracker(self) -> PlateauTracker:
        """A fresh rule for one episode."""
        return PlateauTracker(self)

    def describe(self) -> str:
        """E.g. ``0.3, ×0.5 after 5 flat decisions``."""
        return f"{self.initial_lr:g}, ×{self.factor:g} after {self.patience} flat decisions"


class PlateauTracker:
    """One episode of :class:`Plateau`: torch's scheduler over a placeholder optimizer whose
    rate is read back and applied to the trainee."""

    def __init__(self, plateau: Plateau) -> None:
        placeholder = torch.zeros(1, requires_grad=True)
        self._optimizer = torch.optim.SGD([placeholder], lr=plateau.initial_lr)
        self._scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self._optimizer, mode="min", factor=plateau.factor, patience=plateau.patience
        )

    @property
    def lr(self) -> float:
        """The rate the rule asks for now."""
        return float(self._optimizer.param_groups[0]["lr"])

    def observe(self, val_loss: float) -> None:
        """Take the validation loss after a decision's SGD steps."""
        self._scheduler.step(val_loss)


@dataclass(frozen=True)
class ScheduleFree:
    """Schedule-free SGD (``schedulefree.SGDScheduleFree``, momentum 0.9) at a constant rate.

    Args:
        lr: the optimizer's rate (its warmup ramps up to it).
        warmup_steps: SGD steps of the optimizer's own linear warmup.
    """

    lr: float
    warmup_steps: int = 0
    kind: ClassVar[str] = "schedule_free"

    def __post_init__(self) -> None:
        check_rate(self.lr)
        check_integer(self.warmup_steps, "warmup_steps", 0)

    @property
    def env_kwargs(self) -> dict[str, Any]:
        """The env keywords its runs need: the schedule-free optimizer and its warmup."""
        return {"optimizer": "schedule_free", "warmup_steps": self.warmup_steps}

    def lr_at(self, sgd_step: int, total_steps: int) -> float:
        """``lr``: the optimizer needs no schedule."""
        return self.lr

    def describe(self) -> str:
        """E.g. ``1, warmup 50 steps``."""
        return f"{self.lr:g}, warmup {self.warmup_steps} steps"


@dataclass(frozen=True)
class TuningFree:
    """A tuning-free optimizer at a constant ``lr`` (its published default is 1): Prodigy
    (``optimizer="prodigy"``, the ``prodigyopt`` package) or D-Adaptation's SGD
    (``optimizer="dadapt_sgd"``, the ``dadaptation`` package). Each estimates its own step
    size; ``lr`` multiplies that estimate.

    Args:
        optimizer: ``"prodigy"`` or ``"dadapt_sgd"``.
        lr: the multiplier of the estimated step size.
    """

    optimizer: str
    lr: float = 1.0
    kind: ClassVar[str] = "tuning_free"

    def __post_init__(self) -> None:
        if self.optimizer not in TUNING_FREE_OPTIMIZERS:
            raise ValueError(
                f"unknown tuning-free optimizer {self.optimizer!r}; choose one of "
                f"{', '.join(TUNING_FREE_OPTIMIZERS)}"
            )
        check_rate(self.lr)

    @property
    def env_kwargs(self) -> dict[str, Any]:
        """The env keywords its runs need: its optimizer."""
        return {"optimizer": self.optimizer}

    def lr_at(self, sgd_step: int, total_steps: int) -> float:
        """``lr``: the optimizer adapts its own step size."""
        return self.lr

    def describe(self) -> str:
        """E.g. ``prodigy, lr 1``."""
        return f"{self.optimizer}, lr {self.lr:g}"


TUNING_FREE_OPTIMIZERS = ("prodigy", "dadapt_sgd")
BaselineSchedule = Schedule | Plateau | ScheduleFree | TuningFree
BASELINE_KINDS: dict[str, type] = {
    **SCHEDULES,
    "plateau": Plateau,
    "schedule_free": ScheduleFree,
    "tuning_free": TuningFree,
}


def schedule_from_dict(data: Mapping[str, Any]) -> BaselineSchedule:
    """:func:`lrenv.schedule_families.schedule_from_dict` over every baseline family.

    Raises:
        ValueError: for an unknown kind or wrong parameters.
    """
    return _schedule_from_dict(data, BASELINE_KINDS)


def schedule_env_kwargs(schedule: Mapping[str, Any]) -> dict[str, Any]:
    """The env keywords a baseline's runs need beyond its task (schedule-free's optimizer)."""
    return dict(getattr(schedule_from_dict(schedule), "env_kwargs", {}))


def grid(family: str, spec: Mapping[str, Iterable[Any]]) -> list[BaselineSchedule]:
    """Every combination of the values in ``spec`` as schedules of ``family``.

    ``spec`` maps each parameter of the family's class to the values tried, e.g.
    ``grid("wsd", {"peak_lr": (0.3, 0.5), "cooldown": (0.2,)})``; the order is that of
    :func:`itertools.product` over ``spec``'s keys. For step decay with the paper's grid
    (:data:`agents.presets.PAPER_STEP_DECAY_GRID`) that is the paper's 48 schedules.

    Raises:
        ValueError: for an unknown family or parameters it does not take.
    """
    if family not in BASELINE_KINDS:
        raise ValueError(
            f"unknown baseline family {family!r}; choose one of {', '.join(BASELINE_KINDS)}"
        )
    names = list(spec)
    return [
        schedule_from_dict({"kind": family, **dict(zip(names, values, strict=True))})
        for values in itertools.product(*(spec[name] for name in names))
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

    def __init__(self, schedule: BaselineSchedule) -> None:
        self.schedule = schedule
        make_tracker = getattr(schedule, "tracker", None)
        self._tracker = None if make_tracker is None else make_tracker()

    def lr_at(self, sgd_step: int, total_steps: int) -> float:
        """The scheduled rate for the chunk of SGD steps starting at ``sgd_step``."""
        if self._tracker is not None:
            return self._tracker.lr
        return self.schedule.lr_at(sgd_step, total_steps)

    def observe(self, val_loss: float) -> None:
        """Take the validation loss after a step (read by the adaptive plateau rule only).

        One policy serves one episode: the plateau rule's state is not reset.
        """
        if self._tracker is not None:
            self._tracker.observe(val_loss)

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
