"""One picture of one episode, drawn the same way everywhere: ``render()``, the TensorBoard
figure of train.py and the schedules of evaluate.py's report. Imported only when drawing.

An episode's rates are piecewise constant: the rate chosen at a decision applies to the
SGD steps that follow it, up to the next decision. :func:`lrenv.trace.rate_line` gives the
points that draw each rate over exactly those steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lrenv.trace import rate_line


def episode_figure(
    ends: Sequence[int],
    lrs: Sequence[float],
    val_steps: Sequence[int],
    val_losses: Sequence[float],
    title: str = "",
):
    """A matplotlib figure (made without pyplot, so no GUI backend is needed): the
    learning rate (log scale, :func:`lrenv.trace.rate_line`) and the validation loss
    against SGD steps.

    Args:
        ends, lrs: the rates and where each stopped applying, as for :func:`lrenv.trace.rate_line`.
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
