"""One episode as the env ran it, recorded once by the env itself.

:class:`EpisodeTrace` is what ``render()``, train.py's TensorBoard figures and
evaluate.py's trajectories (trajectories.json, its figures) all read: the rate of each
decision over the SGD steps it applied to, and the validation losses. It holds data only:
the figures (:mod:`lrenv.plotting`) read it, it imports no plotting code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


def rate_line(
    ends: Sequence[int], lrs: Sequence[float], start: int = 0
) -> tuple[list[int], list[float]]:
    """The points of a piecewise-constant rate line.

    Args:
        ends: the SGD step at which each rate stopped applying (the next decision's step).
        lrs: the rates, ``lrs[i]`` in effect during the SGD steps ``(ends[i-1], ends[i]]``.
        start: the SGD step at which the first rate started.

    Returns:
        ``(steps, rates)``: two points per rate, at the start and the end of its steps.
    """
    if len(ends) != len(lrs):
        raise ValueError(f"{len(ends)} end steps for {len(lrs)} rates")
    steps: list[int] = []
    rates: list[float] = []
    if not ends:  # right after reset: no rate has been applied yet
        return steps, rates
    for begin, end, lr in zip([start, *ends[:-1]], ends, lrs, strict=True):
        steps += [int(begin), int(end)]
        rates += [float(lr), float(lr)]
    return steps, rates


@dataclass
class EpisodeTrace:
    """What one episode went through.

    ``val_loss[i]`` is the validation loss after ``val_steps[i]`` SGD steps (step 0: at
    reset); ``lr[i]`` is the rate of the SGD steps from ``lr_steps[i]`` to the next decision
    (the last one: to ``end_step``). A diverged decision has its rate but no validation loss.
    """

    val_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    lr_steps: list[int] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    end_step: int = 0
    best_val_loss: float = math.inf
    diverged: bool = False
    beta: list[float] = field(default_factory=list)
    """Schedule-free SGD's beta of each decision, with the env's ``beta_factor`` (else empty)."""

    def decision(
        self, start: int, lr: float, end: int, val_loss: float | None, beta: float | None = None
    ) -> None:
        """Record one decision: ``lr`` (and ``beta``, when the controller sets it) from SGD
        step ``start`` to ``end``, then the validation loss (``None``: it diverged)."""
        self.lr_steps.append(int(start))
        self.lr.append(float(lr))
        if beta is not None:
            self.beta.append(float(beta))
        if val_loss is None:
            self.diverged = True
        else:
            self.val_steps.append(int(end))
            self.val_loss.append(float(val_loss))

    def finish(self, end_step: int, best_val_loss: float) -> None:
        """Record how the episode ended."""
        self.end_step = int(end_step)
        self.best_val_loss = float(best_val_loss)

    def ends(self, now: int | None = None) -> list[int]:
        """The SGD step at which each rate stopped applying: the next decision's start, and
        for the last rate ``end_step`` (or ``now``, for an episode still running)."""
        if not self.lr:
            return []
        return [*self.lr_steps[1:], self.end_step if now is None else now]

    def rate_line(self, now: int | None = None) -> tuple[list[int], list[float]]:
        """:func:`rate_line` of the rates so far (ends as :meth:`ends`)."""
        if not self.lr:
            return [], []
        return rate_line(self.ends(now), self.lr, start=self.lr_steps[0])
