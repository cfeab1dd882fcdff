"""Learning-rate schedules as pure functions of the SGD step; nothing here knows of RL.

A schedule answers :meth:`Schedule.lr_at`: the rate for the chunk of SGD steps that starts
at ``sgd_step``. The evaluation's baselines (:mod:`agents.baselines`) run them exactly, and
the env's residual action (``action_mode="residual"``) scales one of them, so that an
action of 0 reproduces that schedule.

Families (the name is each class's ``kind``): ``step_decay`` (the paper's baseline),
``constant``, ``cosine`` (to zero), ``linear`` (to zero) and ``wsd`` (warmup, stable,
decay: constant at a peak, then a linear cooldown to zero over the last fraction of the
run). :func:`schedule_from_dict` builds one from its JSON description. Every schedule
has a ``peak_lr``, its highest rate: the drop-in scheduler draws a schedule's shape at the
user's own rate by scaling it with ``user_lr / peak_lr``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol

from lrenv.checks import check_integer, check_rate


class Schedule(Protocol):
    """A learning rate as a function of the SGD step."""

    kind: ClassVar[str]

    def lr_at(self, sgd_step: int, total_steps: int) -> float:
        """The learning rate for the SGD steps that start at ``sgd_step``."""
        ...

    def describe(self) -> str:
        """A short human-readable description, for tables and legends."""
        ...

    @property
    def peak_lr(self) -> float:
        """The highest rate of the schedule: the scale its shape is drawn at."""
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
        check_rate(self.initial_lr)
        check_integer(self.every, "every")
        if not 0 < self.factor <= 1:
            raise ValueError(f"factor must be in (0, 1], got {self.factor}")

    def lr_at(self, sgd_step: int, total_steps: int) -> float:
        """``initial_lr * factor ** (sgd_step // every)``."""
        return self.initial_lr * self.factor ** (sgd_step // self.every)

    def describe(self) -> str:
        """E.g. ``0.1, ×0.9 every 20 steps``."""
        return f"{self.initial_lr:g}, ×{self.factor:g} every {self.every} steps"

    @property
    def peak_lr(self) -> float:
        """The highest rate, ``initial_lr``."""
        return self.initial_lr


@dataclass(frozen=True)
class Constant:
    """The same rate throughout.

    Args:
        lr: the rate.
    """

    lr: float
    kind: ClassVar[str] = "constant"

    def __post_init__(self) -> None:
        check_rate(self.lr)

    def lr_at(self, sgd_step: int, total_steps: int) -> float:
        """``lr``."""
        return self.lr

    def describe(self) -> str:
        """E.g. ``0.1``."""
        return f"{self.lr:g}"

    @property
    def peak_lr(self) -> float:
        """The highest rate, ``lr``."""
        return self.lr


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
        check_rate(self.initial_lr)

    def lr_at(self, sgd_step: int, total_steps: int) -> float:
        """``initial_lr * (1 + cos(pi * sgd_step / total_steps)) / 2``."""
        return self.initial_lr * 0.5 * (1.0 + math.cos(math.pi * sgd_step / total_steps))

    def describe(self) -> str:
        """E.g. ``0.1 → 0``."""
        return f"{self.initial_lr:g} → 0"

    @property
    def peak_lr(self) -> float:
        """The highest rate, ``initial_lr``."""
        return self.initial_lr


@dataclass(frozen=True)
class Linear:
    """Linear decay from ``initial_lr`` towards 0 at ``total_steps``.

    Args:
        initial_lr: the rate at step 0.
    """

    initial_lr: float
    kind: ClassVar[str] = "linear"

    def __post_init__(self) -> None:
        check_rate(self.initial_lr)

    def lr_at(self, sgd_step: int, total_steps: int) -> float:
        """``initial_lr * (1 - sgd_step / total_steps)``."""
        return self.initial_lr * (1.0 - sgd_step / total_steps)

    def describe(self) -> str:
        """E.g. ``0.1 → 0 linearly``."""
        return f"{self.initial_lr:g} → 0 linearly"

    @property
    def peak_lr(self) -> float:
        """The highest rate, ``initial_lr``."""
        return self.initial_lr


@dataclass(frozen=True)
class WSD:
    """Warmup-stable-decay: a linear warmup to ``peak_lr``, a constant stretch, then a linear
    cooldown to zero over the last ``cooldown`` fraction of ``total_steps``.

    The shape Hägele et al. (2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed
    Training Durations") found to match or beat cosine. The warmup takes the first
    ``warmup`` fraction of the steps (0: none): at SGD step ``s`` of it the rate is
    ``peak_lr * (s + 1) / (warmup * total_steps)``.

    Args:
        peak_lr: the rate of the stable phase.
        cooldown: fraction of the run spent cooling down, in (0, 1].
        warmup: fraction of the run spent warming up, in [0, 1 - cooldown].
    """

    peak_lr: float
    cooldown: float
    warmup: float = 0.0
    kind: ClassVar[str] = "wsd"

    def __post_init__(self) -> None:
        check_rate(self.peak_lr)
        if not 0 < self.cooldown <= 1:
            raise ValueError(f"cooldown must be a fraction in (0, 1], got {self.cooldown}")
        if not 0 <= self.warmup <= 1 - self.cooldown:
            raise ValueError(
                f"warmup must be a fraction in [0, 1 - cooldown], got {self.warmup} "
                f"with cooldown {self.cooldown}"
            )

    def lr_at(self, sgd_step: int, total_steps: int) -> float:
        """Warmup ramp, then ``peak_lr``, then linear to 0 from ``(1 - cooldown) * total``."""
        progress = sgd_step / total_steps
        if progress < self.warmup:
            return self.peak_lr * min(1.0, (progress + 1.0 / total_steps) / self.warmup)
        start = 1.0 - self.cooldown
        if progress < start:
            return self.peak_lr
        return self.peak_lr * (1.0 - (progress - start) / self.cooldown)

    def describe(self) -> str:
        """E.g. ``0.3, cooldown last 20%`` (and the warmup when there is one)."""
        warm = f", warmup {self.warmup:.0%}" if self.warmup else ""
        return f"{self.peak_lr:g}{warm}, cooldown last {self.cooldown:.0%}"


SCHEDULES: dict[str, type] = {s.kind: s for s in (StepDecay, Constant, Cosine, Linear, WSD)}


def schedule_to_dict(schedule: Any) -> dict[str, Any]:
    """A JSON-ready description of any schedule dataclass: ``{"kind": ..., **parameters}``."""
    return {"kind": schedule.kind, **asdict(schedule)}


def schedule_from_dict(data: Mapping[str, Any], kinds: Mapping[str, type] = SCHEDULES) -> Any:
    """The inverse of :func:`schedule_to_dict`.

    Args:
        data: ``{"kind": ..., **parameters}``.
        kinds: the classes by kind (default :data:`SCHEDULES`; the baselines add theirs).

    Raises:
        ValueError: for an unknown kind or wrong parameters.
    """
    params = dict(data)
    kind = params.pop("kind", None)
    if kind not in kinds:
        raise ValueError(f"unknown schedule kind {kind!r}; choose one of {', '.join(kinds)}")
    try:
        return kinds[kind](**params)
    except TypeError as err:
        raise ValueError(f"bad parameters for a {kind} schedule: {params}") from err
