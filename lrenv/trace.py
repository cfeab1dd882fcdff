"""One episode as the env ran it, recorded once by the env itself.

:class:`EpisodeTrace` is what ``render()``, train.py's TensorBoard figures and
evaluate.py's trajectories (trajectories.json, its figures) all read: the rate of each
decision over the SGD steps it applied to, and the validation losses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lrenv.plotting import rate_line


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

    def decision(self, start: int, lr: float, end: int, val_loss: float | None) -> None:
        """Record one decision: ``lr`` from SGD step ``start`` to ``end``, then the
        validation loss (``None``: the trainee diverged)."""
        self.lr_steps.append(int(start))
        self.lr.append(float(lr))
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
        """:func:`lrenv.plotting.rate_line` of the rates so far (ends as :meth:`ends`)."""
        if not self.lr:
            return [], []
        return rate_line(self.ends(now), self.lr, start=self.lr_steps[0])
