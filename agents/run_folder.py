"""A training run on disk: its files, atomic checkpoints, and resuming.

A run folder ``DIR`` holds::

    config.json          the resolved configuration (what --resume compares against)
    controller.safetensors  the trained controller, a file that holds no code
                         (agents.sb3_controller; written at the end)
    controller.pending   present until the run marks itself finished, so that loading
                         the folder's controller refuses a killed run's
                         (lrenv.controller.PENDING_FILE)
    controller.zip       the same controller as stable-baselines3 saves it (PPO.load; it
                         unpickles: trusted files only), with the optimizer state
    vecnormalize.json    the final VecNormalize statistics as plain numbers (when training
                         normalised; agents.checkpoints)
    tb/                  TensorBoard logs
    checkpoint.json      which checkpoint is the latest, and the progress it holds
    checkpoints/NAME/    controller.zip (and .safetensors), vecnormalize.json,
                         episode_stats.json, progress.json of one checkpoint

Every file is written to a temporary name and moved into place with ``os.replace``, and a
checkpoint folder is complete before ``checkpoint.json`` points at it, so a run killed at
any moment leaves the previous checkpoint intact; the temporary files a killed write
leaves are removed when the run is resumed (:meth:`RunDir.remove_leftovers`). Resuming
reads the checkpoint as data (:mod:`agents.checkpoints`): nothing in it is unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from agents.checkpoints import (
    EPISODE_STATS_FILE,
    LEGACY_NORMALIZATION_FILE,
    NORMALIZATION_FILE,
    CheckpointError,
    episode_stats,
    normalization_state,
    read_json_file,
)
from agents.sb3_controller import save_controller
from lrenv.controller import CONTROLLER_FILE, PENDING_FILE, ZIP_FILE
from lrenv.files import atomic_path, umask


@dataclass(frozen=True)
class Checkpoint:
    """One saved checkpoint: its folder and the progress it records."""

    path: Path
    progress: dict[str, Any]

    @property
    def controller(self) -> Path:
        """The checkpoint's ``controller.zip``."""
        return self.path / ZIP_FILE

    @property
    def vecnormalize(self) -> Path | None:
        """The checkpoint's ``vecnormalize.json``, or None when training did not normalise
        (or the checkpoint is an older version's, see :attr:`legacy_vecnormalize`)."""
        path = self.path / NORMALIZATION_FILE
        return path if path.is_file() else None

    @property
    def legacy_vecnormalize(self) -> Path | None:
        """An older version's pickled ``vecnormalize.pkl`` (read only behind
        ``--trust-pickle``), or None."""
        path = self.path / LEGACY_NORMALIZATION_FILE
        return path if path.is_file() and self.vecnormalize is None else None

    @property
    def episode_stats(self) -> Path:
        """The checkpoint's ``episode_stats.json`` (what ``rollout/ep_rew_mean`` averages)."""
        return self.path / EPISODE_STATS_FILE


class RunDir:
    """The files of one training run (see the module docstring for the layout).

    Args:
        path: the run folder.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        """The resolved configuration, ``config.json``."""
        return self.path / "config.json"

    @property
    def controller(self) -> Path:
        """The final controller as stable-baselines3 saves it, ``controller.zip`` (unpickles
        on load: trusted files only)."""
        return self.path / ZIP_FILE

    @property
    def controller_file(self) -> Path:
        """The final controller as a file that holds no code, ``controller.safetensors``."""
        return self.path / CONTROLLER_FILE

    @property
    def vecnormalize(self) -> Path:
        """The final normalisation statistics, ``vecnormalize.json``."""
        return self.path / NORMALIZATION_FILE

    @property
    def tb(self) -> Path:
        """The TensorBoard log folder."""
        return self.path / "tb"

    @property
    def checkpoints(self) -> Path:
        """The folder of checkpoint folders."""
        return self.path / "checkpoints"

    @property
    def pointer(self) -> Path:
        """``checkpoint.json``: the latest checkpoint's name and progress."""
        return self.path / "checkpoint.json"

    def read_config(self) -> dict[str, Any]:
        """The ``config.json`` document.

        Raises:
            FileNotFoundError: when the folder holds no run.
        """
        if not self.config_path.is_file():
            raise FileNotFoundError(f"{self.path} holds no training run (no config.json)")
        document = read_json_file(self.config_path)
        if not isinstance(document, dict) or not isinstance(document.get("config"), dict):
            raise CheckpointError(
                f"{self.config_path} is damaged (no 'config' object); restore it from a "
                "backup, or start a new run with another --out"
            )
        return document

    def write_config(self, document: Mapping[str, Any]) -> None:
        """Write ``config.json`` atomically.

        Args:
            document: the resolved configuration and what was derived from it.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        self._mark_pending()
        write_json_atomic(self.config_path, document)

    @property
    def pending_marker(self) -> Path:
        """``controller.pending``: there until the run marks itself finished, so that
        :func:`lrenv.controller.controller_file` refuses the folder with its text."""
        return self.path / PENDING_FILE

    def _mark_pending(self) -> None:
        if not self.pending_marker.is_file():
            with atomic_path(self.pending_marker) as tmp:
                tmp.write_text(
                    f"the training run in {self.path} has not finished; continue it with: "
                    f"python train.py --resume {self.path}\n"
                )

    def last_checkpoint(self) -> Checkpoint | None:
        """The latest complete checkpoint, or None when the run has none yet."""
        if not self.pointer.is_file():
            return None
        progress = read_json_file(self.pointer)
        name = progress.get("checkpoint") if isinstance(progress, dict) else None
        if not isinstance(name, str) or Path(name).name != name or name.startswith("."):
            raise CheckpointError(
                f"{self.pointer} is damaged (no checkpoint name in it); restore it from a "
                "backup, or start a new run with another --out"
            )
        checkpoint = Checkpoint(self.checkpoints / name, progress)
        if not checkpoint.path.is_dir():
            raise CheckpointError(
                f"{self.pointer} points at {checkpoint.path}, which is missing; restore it "
                "from a backup, or start a new run with another --out"
            )
        return checkpoint

    def remove_leftovers(self) -> list[Path]:
        """Remove what writes killed midway left: ``.NAME.*.tmp`` files of
        :func:`atomic_path` and unfinished ``checkpoints/.NAME.*`` staging folders.

        Call it only when no other process writes this run (train.py does, on resume).

        Returns:
            The paths removed.
        """
        removed = []
        if not self.path.is_dir():
            return removed
        for tmp in self.path.rglob(".*.tmp"):
            if tmp.is_file():
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
        if self.checkpoints.is_dir():
            for staging in self.checkpoints.glob(".*"):
                if staging.is_dir():
                    shutil.rmtree(staging, ignore_errors=True)
                    removed.append(staging)
        return removed

    def save_checkpoint(
        self, model: BaseAlgorithm, env: VecEnv, progress: Mapping[str, Any]
    ) -> Checkpoint:
        """Save model, normalisation statistics and progress; then point at them.

        The folder is written under a temporary name and renamed when complete; only then
        is ``checkpoint.json`` replaced, and older checkpoints removed.

        Args:
            model: the controller being trained.
            env: the training env (its statistics are saved when it is a VecNormalize).
            progress: counters to resume from (``episodes_done``, ``num_timesteps``, ...).

        Returns:
            The new checkpoint.
        """
        name = f"episode-{progress['episodes_done']:06d}-step-{progress['num_timesteps']:09d}"
        progress = {**progress, "checkpoint": name}
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.checkpoints))
        staging.chmod(0o777 & ~umask())
        save_model(model, staging / ZIP_FILE)
        if isinstance(env, VecNormalize):
            write_json_atomic(staging / NORMALIZATION_FILE, normalization_state(env))
        write_json_atomic(staging / EPISODE_STATS_FILE, episode_stats(model))
        write_json_atomic(staging / "progress.json", progress)
        final = self.checkpoints / name
        if final.exists():  # the same point saved again (a resume that saved at once)
            shutil.rmtree(final)
        os.replace(staging, final)
        write_json_atomic(self.pointer, progress)
        if progress.get("finished"):
            self.pending_marker.unlink(missing_ok=True)
        else:  # also for a run an older version started, which wrote no marker
            self._mark_pending()
        for old in self.checkpoints.iterdir():
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)
        return Checkpoint(final, progress)

    def save_final(self, model: BaseAlgorithm, env: VecEnv) -> None:
        """Write ``controller.zip``, ``controller.safetensors`` (and ``vecnormalize.json``)
        into the run folder, each atomically.

        Args:
            model: the trained controller.
            env: the training env.
        """
        save_model(model, self.controller)
        if isinstance(env, VecNormalize):
            write_json_atomic(self.vecnormalize, normalization_state(env))


def save_model(model: BaseAlgorithm, path: Path) -> None:
    """``model.save`` to ``path``, and the code-free controller file beside it.

    The code-free file (:func:`agents.sb3_controller.save_controller`, ``x.zip`` ->
    ``x.safetensors``) is written first, so that a zip is never left without it; each
    goes through a temporary file and ``os.replace``.

    Args:
        model: a PPO or RecurrentPPO model.
        path: the zip to write.
    """
    save_controller(model, path)
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        model.save(file)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON through a temporary file and ``os.replace``.

    Args:
        path: the file to write.
        data: JSON-serialisable data.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
