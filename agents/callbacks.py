"""stable-baselines3 callbacks for training a controller: trainee episodes as the unit.

:class:`EpisodeTracker` counts finished trainee episodes, writes one set of ``trainee/``
scalars per episode through the SB3 logger, draws an episode's learning-rate schedule as
a figure every so often, and keeps a progress bar with an ETA in episodes.
:class:`EpisodeCheckpointer` saves a checkpoint between rollouts every few episodes.
:class:`UpdateLogWriter` writes each update's ``train/`` scalars at the step its rollout ended.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Figure, Logger, TensorBoardOutputFormat
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from lrenv.plotting import episode_figure
from lrenv.trace import EpisodeTrace

NON_TENSORBOARD = ("stdout", "log", "json", "csv")


def write_now(
    logger: Logger,
    values: Mapping[str, Any],
    step: int,
    exclude: Sequence[str] | None = None,
) -> None:
    """Write ``values`` to every output of an SB3 logger at ``step``, at once.

    ``logger.record`` keeps only the last value of a key until the next dump (once per
    rollout); per-episode values need their own points, and must not flush the values
    SB3 has recorded but not yet dumped.

    Args:
        logger: the model's logger.
        values: key -> value (scalars, strings, :class:`~stable_baselines3.common.logger.Figure`).
        step: the x coordinate (SB3 uses the number of time steps).
        exclude: output formats to skip (e.g. :data:`NON_TENSORBOARD` for figures).
    """
    excluded = {key: tuple(exclude) if exclude else None for key in values}
    for output in logger.output_formats:
        output.write(dict(values), excluded, step)


class _TensorBoardOutput(TensorBoardOutputFormat):
    """SB3's TensorBoard output with a ``purge_step`` (a new event file)."""

    def __init__(self, folder: str, purge_step: int | None) -> None:
        self.writer = SummaryWriter(log_dir=folder, purge_step=purge_step)
        self._is_closed = False


def tensorboard_logger(folder: str | os.PathLike, purge_step: int | None = None) -> Logger:
    """An SB3 logger that writes TensorBoard event files into ``folder``.

    Args:
        folder: the log folder.
        purge_step: for a resumed run, its first new step: TensorBoard hides whatever
            earlier event files of ``folder`` logged at this step or later (the episodes
            an interrupted session ran past its last checkpoint, which the resumed run
            replays), so each episode is shown once. None for a new run.

    Returns:
        The logger.
    """
    os.makedirs(folder, exist_ok=True)
    return Logger(folder=str(folder), output_formats=[_TensorBoardOutput(str(folder), purge_step)])


class EpisodeTracker(BaseCallback):
    """Count trainee episodes and log each one.

    Per finished episode (``dones[i]``), from the env's ``info``: ``trainee/final_val_loss``
    and ``trainee/final_val_accuracy`` (skipped for a diverged episode, whose final loss
    is not finite), ``trainee/best_val_loss``, ``trainee/mean_lr`` (over the episode's
    decisions), ``trainee/diverged`` (0 or 1) and ``trainee/return`` (the raw return, from
    the Monitor wrapper). On a task set (``info["task_family"]``), the return, final
    validation loss and divergence again as ``tasks/<family>/...``: one curve per dataset
    and kind of model. The x coordinate is the number of time steps, as for SB3's own
    scalars. Every ``figure_every`` episodes, ``trainee/lr_schedule``: that episode's
    learning rate and validation loss against the SGD step.

    Args:
        episodes: episodes the whole run trains on (for the progress bar).
        episodes_done: episodes already done (a resumed run).
        figure_every: draw the schedule of every N-th episode (0: never).
        progress: show a progress bar on the terminal.
    """

    def __init__(
        self, episodes: int, episodes_done: int = 0, figure_every: int = 25, progress: bool = True
    ) -> None:
        super().__init__()
        self.episodes = episodes
        self.episodes_done = episodes_done
        self.episodes_run = 0
        """Episodes finished in this process (``episodes_done`` counts the resumed ones too)."""
        self.figure_every = figure_every
        self.progress = progress
        self.last_episode: dict[str, float] = {}
        self._bar: tqdm | None = None

    def _on_training_start(self) -> None:
        self._bar = tqdm(
            total=self.episodes,
            initial=self.episodes_done,
            unit="episode",
            desc="training",
            dynamic_ncols=True,
            smoothing=0.05,
            disable=not self.progress,
        )

    def _on_step(self) -> bool:
        for info, done in zip(self.locals["infos"], self.locals["dones"], strict=True):
            if done:  # the env's own record of the episode rides in its final info
                self._episode_end(info, info.get("episode_trace") or EpisodeTrace())
        return True

    def _on_training_end(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def _episode_end(self, info: Mapping[str, Any], trace: EpisodeTrace) -> None:
        self.episodes_done += 1
        self.episodes_run += 1
        diverged = bool(info.get("diverged", False))
        values: dict[str, float] = {
            "trainee/best_val_loss": float(info.get("best_val_loss", math.nan)),
            "trainee/mean_lr": float(np.mean(trace.lr)) if trace.lr else math.nan,
            "trainee/diverged": float(diverged),
        }
        if trace.beta:  # the env's beta_factor: the controller sets schedule-free SGD's beta
            values["trainee/mean_beta"] = float(np.mean(trace.beta))
        if not diverged:
            values["trainee/final_val_loss"] = float(info.get("val_loss", math.nan))
            values["trainee/final_val_accuracy"] = float(info.get("val_accuracy", math.nan))
        if "episode" in info:  # stable-baselines3's Monitor wrapper
            values["trainee/return"] = float(info["episode"]["r"])
        family = info.get("task_family")
        if family:  # a task set: each family of tasks gets its own curves too
            values |= {
                f"tasks/{family}/{key.split('/')[1]}": values[key]
                for key in (
                    "trainee/return",
                    "trainee/final_val_loss",
                    "trainee/diverged",
                    "trainee/mean_beta",
                )
                if key in values
            }
        values = {key: value for key, value in values.items() if math.isfinite(value)}
        write_now(self.logger, values, self.num_timesteps)
        self.last_episode = values
        if self.figure_every and (
            self.episodes_done == 1 or self.episodes_done % self.figure_every == 0
        ):
            figure = episode_figure(
                trace.ends(),
                trace.lr,
                trace.val_steps,
                trace.val_loss,
                title=f"episode {self.episodes_done}",
            )
            write_now(
                self.logger,
                {"trainee/lr_schedule": Figure(figure, close=True)},
                self.num_timesteps,
                exclude=NON_TENSORBOARD,
            )
        if self._bar is not None:
            postfix = {"diverged": "yes"} if diverged else {}
            for key, label in (("trainee/return", "return"), ("trainee/final_val_loss", "val")):
                if key in values:
                    postfix[label] = f"{values[key]:.4g}"
            self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(1)


class UpdateLogWriter(BaseCallback):
    """Write each PPO update's ``train/`` scalars at the step its rollout ended.

    SB3 records an update's values after training on a rollout but writes them only with
    the next rollout's ``time/`` values, one rollout later on TensorBoard's x axis; the
    last update, and any written early for a checkpoint, would land a rollout before the
    rest. Writing them as the next rollout starts puts every update at the step it learned
    up to, beside ``time/fps`` of the rollout it trained on, and before a checkpoint
    is saved, so a run resumed from it keeps them. Put it before
    :class:`EpisodeCheckpointer` in the callback list.
    """

    def _on_rollout_start(self) -> None:
        self.logger.dump(self.num_timesteps)

    def _on_step(self) -> bool:
        return True


class EpisodeCheckpointer(BaseCallback):
    """Call ``save`` between rollouts once ``every`` more episodes have finished.

    Checkpoints are taken at the start of a rollout, when the previous rollout has been
    trained on, so a resumed run neither repeats nor skips an update.

    Args:
        tracker: the episode counter.
        every: episodes between checkpoints (rounded up to whole rollouts).
        save: writes the checkpoint.
    """

    def __init__(self, tracker: EpisodeTracker, every: int, save: Callable[[], None]) -> None:
        super().__init__()
        self.tracker = tracker
        self.every = every
        self.save = save
        self.last_saved = tracker.episodes_done

    def _on_training_start(self) -> None:
        self.last_saved = self.tracker.episodes_done

    def _on_rollout_start(self) -> None:
        if self.every > 0 and self.tracker.episodes_done - self.last_saved >= self.every:
            self.save()
            self.last_saved = self.tracker.episodes_done

    def _on_step(self) -> bool:
        return True
