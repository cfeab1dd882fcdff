"""One picture of one episode, drawn the same way everywhere: ``render()``, the TensorBoard
figure of train.py and the schedules of evaluate.py's report. Imported only when drawing.

An episode's rates are piecewise constant: the rate chosen at a decision applies to the
SGD steps that follow it, up to the next decision. :func:`rate_line` draws each rate over
exactly those steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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


def episode_figure(
    ends: Sequence[int],
    lrs: Sequence[float],
    val_steps: Sequence[int],
    val_losses: Sequence[float],
    title: str = "",
):
    """A matplotlib figure (made without pyplot, so no GUI backend is needed): the
    learning rate (log scale, :func:`rate_line`) and the validation loss against SGD steps.

    Args:
        ends, lrs: the rates and where each stopped applying, as for :func:`rate_line`.
        val_steps, val_losses: the validation losses and the SGD steps they were taken at.
        title: the figure title.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5), dpi=80, layout="constrained")
    ax = figure.add_subplot()
    ax.plot(*rate_line(ends, lrs), color="tab:blue")
    ax.set_yscale("log")
    ax.set_xlabel("SGD step")
    ax.set_ylabel("learning rate", color="tab:blue")
    loss = ax.twinx()
    loss.plot(val_steps, val_losses, color="tab:orange")
    loss.set_ylabel("validation loss", color="tab:orange")
    if title:
        ax.set_title(title)
    return figure


def figure_image(figure) -> np.ndarray:
    """An RGB array of a matplotlib figure (``render()``'s return value)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
