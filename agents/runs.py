"""A training run on disk: its resolved configuration, atomic checkpoints, and resuming.

A run folder ``DIR`` holds::

    config.json          the resolved configuration (what --resume compares against)
    controller.safetensors  the trained controller, a file that holds no code
                         (agents.controller; written at the end)
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

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from agents import validators
from agents.checkpoints import (
    EPISODE_STATS_FILE,
    LEGACY_NORMALIZATION_FILE,
    NORMALIZATION_FILE,
    CheckpointError,
    episode_stats,
    normalization_state,
    read_json_file,
)
from agents.controller import save_controller
from agents.presets import PPOSettings, Preset, without_task_keys
from lrenv.controller import CONTROLLER_FILE, ZIP_FILE
from lrenv.files import atomic_path, umask


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a training run computes (compared on ``--resume``)."""

    preset: str
    """Name of the preset the run started from."""
    env_id: str
    """Gymnasium id of the trainee task."""
    env_kwargs: dict[str, Any]
    """Keywords passed to ``gym.make`` (the preset's, merged with ``--env-kwargs``)."""
    episodes: int
    """Trainee episodes to train on, over all envs."""
    n_envs: int
    """Trainees trained at once (one process each when more than one)."""
    seed: int = 0
    """Seed of the controller and of the trainees."""
    recurrent: bool = False
    """LSTM actor (sb3-contrib RecurrentPPO) instead of an MLP one."""
    select_every: int = 0
    """Keep a snapshot of the controller every N episodes (and the untrained one) and make
    the one with the best validation loss the controller (agents.selection); 0: the last."""
    select_seeds: int = 4
    """Validation episodes per snapshot in that selection."""
    residual_over: str = ""
    """Comma-separated baseline families (e.g. "wsd,schedule_free"): before training, choose
    the best member on validation as evaluate.py does and train a residual controller over
    it (agents.selection.choose_base); "" trains the controller as the env keywords say."""
    ppo: PPOSettings = field(default_factory=PPOSettings)
    """The controller's PPO settings."""

    @classmethod
    def from_preset(cls, preset: Preset) -> TrainConfig:
        """The configuration a preset gives when no flag overrides it.

        Args:
            preset: a named preset.

        Returns:
            The preset's task, budget and PPO settings, seed 0, an MLP actor.
        """
        return cls(
            preset=preset.name,
            env_id=preset.env_id,
            env_kwargs=dict(preset.env_kwargs),
            episodes=preset.episodes,
            n_envs=preset.n_envs,
            select_every=preset.select_every,
            select_seeds=preset.select_seeds,
            residual_over=preset.residual_over,
            ppo=preset.ppo,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Read back :meth:`to_dict` (e.g. from ``config.json``).

        Args:
            data: the mapping.

        Returns:
            The configuration.
        """
        data = dict(data)
        required = [
            f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
        ]
        missing = [name for name in required if name not in data]
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        ppo = data.get("ppo", {})
        if isinstance(ppo, Mapping):
            unknown += [
                f"ppo.{k}" for k in sorted(set(ppo) - {f.name for f in fields(PPOSettings)})
            ]
        if missing or unknown or not isinstance(ppo, Mapping):
            what = [f"lacks {', '.join(missing)}"] if missing else []
            what += [f"has unknown {', '.join(unknown)}"] if unknown else []
            what += [] if isinstance(ppo, Mapping) else ["its ppo is not an object"]
            raise ValueError(
                f"the configuration {' and '.join(what)}: it is not one train.py wrote"
            )
        data["ppo"] = PPOSettings(**ppo)
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON values (tuples become lists)."""
        return _canonical(dataclasses.asdict(self))

    def with_overrides(
        self, given: Mapping[str, Any], ppo_given: Mapping[str, Any] | None = None
    ) -> TrainConfig:
        """A copy with the given fields replaced; ``env_kwargs`` is merged, not replaced.

        A new ``env_id`` brings its own task: the keywords that define a task
        (:data:`lrenv.TASK_KEYS`: dataset, model, batch size, ...) of the current
        configuration are dropped rather than carried over to it, so that a preset's task
        never changes the trainee of an id the user names. Keywords given in
        ``given["env_kwargs"]`` still apply.

        Args:
            given: new values of top-level fields (``preset`` included).
            ppo_given: new values of :class:`PPOSettings` fields.

        Returns:
            The new configuration.
        """
        changes = dict(given)
        env_kwargs = dict(self.env_kwargs)
        if changes.get("env_id") not in (None, self.env_id):
            env_kwargs = without_task_keys(env_kwargs)
            changes["env_kwargs"] = {**env_kwargs, **changes.get("env_kwargs", {})}
        elif "env_kwargs" in changes:
            changes["env_kwargs"] = {**env_kwargs, **changes["env_kwargs"]}
        if ppo_given:
            changes["ppo"] = dataclasses.replace(self.ppo, **ppo_given)
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Raise ValueError (:class:`agents.validators.UsageError`), saying what to change,
        for a configuration that cannot run; the env keywords are checked apart
        (:func:`lrenv.keywords.check_env_kwargs`)."""
        validators.check_preset(self.preset)
        validators.check_env_id(self.env_id)
        if not isinstance(self.env_kwargs, dict):
            raise validators.UsageError(f"env_kwargs must be an object, got {self.env_kwargs!r}")
        validators.integer("episodes", self.episodes, 1, note="trainee episodes")
        validators.integer("n_envs", self.n_envs, 1, 256, "trainees trained at once")
        validators.integer("select_seeds", self.select_seeds, 1, note="validation episodes each")
        validators.integer("select_every", self.select_every, 0, note="0: keep the last policy")
        validators.check_seed(self.seed)
        validators.boolean("recurrent", self.recurrent)
        validators.check_residual_over(self.residual_over)
        validators.check_ppo(self.ppo)
        if self.episodes % self.n_envs:
            raise ValueError(
                f"episodes ({self.episodes}) must be a multiple of n_envs ({self.n_envs}): "
                "every env trains whole episodes"
            )
        if self.ppo.episodes_per_rollout % self.n_envs:
            raise ValueError(
                f"episodes_per_rollout ({self.ppo.episodes_per_rollout}) must be a multiple "
                f"of n_envs ({self.n_envs})"
            )

    @property
    def algorithm(self) -> str:
        """``"RecurrentPPO"`` or ``"PPO"``."""
        return "RecurrentPPO" if self.recurrent else "PPO"

    def run_name(self, stamp: str) -> str:
        """A folder name that says env, algorithm and seed, e.g. ``Synthetic-ppo-seed0-STAMP``.

        Args:
            stamp: a timestamp (or any suffix).

        Returns:
            The name.
        """
        env = self.env_id.split("/")[-1].removesuffix("-v0")
        return f"{env}-{self.algorithm.lower()}-seed{self.seed}-{stamp}"


def config_differences(saved: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two :meth:`TrainConfig.to_dict` mappings.

    Args:
        saved: the run's configuration.
        requested: the one asked for now.

    Returns:
        One ``"key: saved -> requested"`` line per differing (nested) key.
    """
    out = []
    for key in sorted(set(saved) | set(requested)):
        a, b = saved.get(key, "<unset>"), requested.get(key, "<unset>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{line}" for line in config_differences(a, b)]
        elif a != b:
            out.append(f"{key}: {json.dumps(a)} -> {json.dumps(b)}")
    return out


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
        write_json_atomic(self.config_path, document)

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

    The code-free file (:func:`agents.controller.save_controller`, ``x.zip`` ->
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


def _canonical(value: Any) -> Any:
    """``value`` as the JSON round trip gives it back (tuples as lists, str keys)."""
    return json.loads(json.dumps(value))
