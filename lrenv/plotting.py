"""Pictures of one episode, for ``render()``: imported only when rendering."""

from __future__ import annotations

import numpy as np


def episode_image(history: list[tuple[int, float, float]]) -> np.ndarray:
    """An RGB array of the learning rate and validation loss against SGD steps.

    Args:
        history: ``(sgd_step, lr, val_loss)`` at each decision of the episode so far.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps, lrs, losses = (np.asarray(column, dtype=float) for column in zip(*history, strict=True))
    fig = Figure(figsize=(6, 3), dpi=80, layout="constrained")
    lr_axis, loss_axis = fig.subplots(1, 2)
    lr_axis.semilogy(steps, lrs, drawstyle="steps-post")
    lr_axis.set(xlabel="SGD step", ylabel="learning rate")
    loss_axis.plot(steps, losses)
    loss_axis.set(xlabel="SGD step", ylabel="validation loss")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
