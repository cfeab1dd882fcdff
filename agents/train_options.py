"""A training session's options and how they resolve into a run's configuration.

:class:`TrainOptions` are train.py's flags (and :func:`agents.training.train_controller`'s
input); :func:`resolve` turns them into the configuration, the run folder and the
checkpoint to continue from; a run that cannot start raises
:class:`agents.validators.UsageError`, which
train.py prints as a usage error.

:func:`check_train_options` checks each option on its own. This module imports no torch
and no stable-baselines3 at import time (the run folder and the configuration are imported
where they are used), so that train.py checks its command line before loading either.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents import validators
from agents.presets import DEFAULT_PRESET, get_preset
from agents.train_config import check_fields
from agents.validators import UsageError

if TYPE_CHECKING:
    from agents.run_folder import Checkpoint, RunDir
    from agents.train_config import TrainConfig

DEFAULT_CHECKPOINT_EVERY = 20
BASE_FILE = "base_selection.json"
"""The residual controller's base schedule, as chosen, and the configuration before it
(agents.training writes it)."""

CONFIG_FIELDS = (
    "preset",
    "env_id",
    "env_kwargs",
    "episodes",
    "n_envs",
    "seed",
    "recurrent",
    "select_every",
    "select_seeds",
    "confirm_seeds",
    "residual_over",
)


@dataclass
class TrainOptions:
    """What a training session is asked to do: train.py's flags (each field's docstring is
    its ``--help``). Unset task fields take the preset's value (the saved run's with
    ``resume``); the PPO settings, given apart, likewise."""

    preset: str | None = None
    """Named settings to start from, all listed at the end (default cpu)."""
    env_id: str | None = None
    """Gymnasium id of the trainee task, e.g. lrenv/FashionMNIST-CNN-v0."""
    env_kwargs: dict[str, Any] | None = None
    """Env keywords as JSON, merged over the preset's, e.g. '{"total_steps": 200}'."""
    episodes: int | None = None
    """Trainee episodes to train on, over all envs (paper: 1000)."""
    n_envs: int | None = None
    """Trainees trained at once, one process each (unless --batched). On 2 cores, 2 envs
    run ~1.3-1.5x as many episodes an hour as one; on a GPU use --batched."""
    batched: bool | None = None
    """Train the n_envs trainees in this process as one batched computation (lrenv.vector)
    instead of one process each; each trainee is the same as unbatched. The way to use a
    GPU, and the default when the trainees' device (env keyword "device") is one. On a
    CPU, batching measured ~1.2x for 8 cpu-preset MLP trainees in one process and nothing
    for the CNN. A runtime choice, not part of the run's configuration: a --resume may
    change it."""
    seed: int | None = None
    """Seed of the controller and of the trainees (default 0)."""
    recurrent: bool | None = None
    """An LSTM actor (sb3-contrib RecurrentPPO) instead of the MLP one."""
    select_every: int | None = None
    """Keep a controller snapshot every N episodes (and the untrained one); at the end the
    one with the best validation loss becomes the controller, as baselines are chosen from
    their grids (0: keep the last policy; the cpu preset: 50)."""
    select_seeds: int | None = None
    """Validation episodes per snapshot in that selection (default 4)."""
    confirm_seeds: int | None = None
    """Fresh validation episodes per task on which the snapshot chosen, if a trained one,
    must beat the untrained snapshot (paired t-test, p < 0.05) to become the controller;
    otherwise the untrained one does, which under residual control is the base schedule
    (0: keep the best score unconfirmed; the cpu preset: 8)."""
    residual_over: str | None = None
    """Comma-separated baseline families (wsd, schedule_free, cosine, ...): first choose the
    best member on validation, as evaluate.py does, then train a residual controller over
    it, whose action 0 is that schedule ("" for none; the cpu preset: wsd,schedule_free)."""
    out: str | None = None
    """Run folder (default runs/ENV-ALGO-seedS-TIMESTAMP); must not hold a run yet."""
    resume: str | None = None
    """Continue the run in this folder from its last checkpoint; flags given with it must
    match the run's configuration."""
    checkpoint_every: int | None = None
    """Save a checkpoint every N episodes (rounded up to whole rollouts; 0: only at the end;
    default 20, or what the resumed run used)."""
    figure_every: int = 25
    """Log the learning-rate schedule of every N-th episode as a figure (0: never)."""
    threads: int = 1
    """Torch threads per trainee process (with --batched: of this process). More than the
    free cores slows training by orders of magnitude; 2 threads help a LeNet at batch 1000
    on an idle 2-core machine."""
    ray: str | None = None
    """Run the n_envs trainees as Ray actors, one each, anywhere on a Ray cluster; PPO stays
    here. "local" starts Ray on this machine, "auto" joins the cluster this machine is part
    of, "ray://HOST:10001" joins one through Ray Client (pip install -e ".[ray]";
    docs/ray.md). A lost actor is started again and its episode redone. A runtime choice,
    not part of the run's configuration: a --resume may change it."""
    device: str = "cpu"
    """Device of the controller (the trainee's is the env keyword "device")."""
    progress: bool = True
    """Show a progress bar with an ETA."""
    trust_pickle: bool = False
    """With --resume: read a checkpoint of an older version, whose normalisation statistics
    are a pickle (vecnormalize.pkl). Unpickling runs code: only for run folders you made."""


def resolve(
    args: TrainOptions, task: dict[str, Any], ppo: dict[str, Any]
) -> tuple[TrainConfig, RunDir, Checkpoint | None]:
    """The run's configuration and folder, and the checkpoint to continue from.

    A new run starts from the preset and applies the flags given; a resumed one starts
    from its ``config.json`` and must not be changed by them.

    Args:
        args: the parsed arguments.
        task: the task flags given (see :data:`CONFIG_FIELDS`).
        ppo: the PPO settings given.

    Returns:
        The configuration, the run folder, and the latest checkpoint (None for a new run
        or one that has none yet).

    Raises:
        ValueError: for an impossible configuration, an --out that already holds a run,
            or a --resume whose flags differ from the run's configuration.
    """
    from agents.run_folder import RunDir
    from agents.train_config import TrainConfig, config_differences

    if args.resume is not None:
        run = RunDir(args.resume)
        if args.out is not None and Path(args.out).resolve() != run.path.resolve():
            raise ValueError("--out and --resume name different folders; give only --resume")
        saved = _saved_config(run)
        try:
            saved_config = TrainConfig.from_dict(saved)
            config = saved_config.with_overrides(task, ppo)
        except (TypeError, ValueError) as err:
            raise ValueError(f"cannot resume {run.path}: {err}") from err
        # a field added since the run was made reads as its default, as from_dict gives it
        differences = config_differences(
            saved_config.to_dict(complete=True), config.to_dict(complete=True)
        )
        if differences:
            raise ValueError(
                f"refusing to resume {run.path}: the flags given differ from the run's "
                "configuration (config.json): "
                + "; ".join(differences)
                + ". A resume continues the same run: drop those flags, or start a new "
                "run with another --out."
            )
        return config, run, run.last_checkpoint() if run.config_path.exists() else None
    preset = get_preset(task.pop("preset", DEFAULT_PRESET))
    config = TrainConfig.from_preset(preset).with_overrides(task, ppo)
    config.validate()
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run = RunDir(args.out or Path("runs") / config.run_name(stamp))
    if run.config_path.exists():
        raise ValueError(
            f"{run.path} already holds a training run; continue it with --resume "
            f"{run.path} or choose another --out"
        )
    return config, run, None


def _saved_config(run: RunDir) -> dict[str, Any]:
    """The configuration of the run in ``run``: its config.json's, or, for a run killed
    during its base selection (before config.json), the one saved with that selection."""
    from agents.checkpoints import read_json_file

    if not run.config_path.exists() and (run.path / BASE_FILE).is_file():
        document = read_json_file(run.path / BASE_FILE)
        if isinstance(document, dict) and isinstance(document.get("config"), dict):
            return document["config"]
    return run.read_config()["config"]


def use_batched(args: TrainOptions, config: TrainConfig) -> bool:
    """Whether to train the trainees batched: ``--batched`` if given, else whether the
    trainees' device resolves to a GPU.

    Args:
        args: the parsed arguments.
        config: the resolved configuration (its env id and keywords give the device).

    Returns:
        True to build the training envs with :func:`agents.vec_env.make_batched_sb3_vec_env`.

    Raises:
        ValueError: when the env keywords ask for a device that does not exist here.
    """
    if args.batched is not None:
        return args.batched
    from lrenv.vector import trainee_device  # torch

    return trainee_device(config.env_id, config.env_kwargs).type == "cuda"


def describe(config: TrainConfig, derived: dict[str, Any]) -> str:
    """The resolved configuration as a Markdown table (for TensorBoard's text tab).

    Args:
        config: the resolved configuration.
        derived: values derived from it (decisions per episode, n_steps, ...).

    Returns:
        A two-column Markdown table.
    """
    rows = {k: v for k, v in config.to_dict().items() if k != "ppo"}
    rows |= {f"ppo.{k}": v for k, v in config.to_dict()["ppo"].items()} | derived
    return "| setting | value |\n| --- | --- |\n" + "\n".join(
        f"| {k} | {v} |" for k, v in rows.items()
    )


def check_train_options(args: TrainOptions) -> None:
    """Check each option on its own, one validator each: those outside the run's
    configuration, and the configuration fields given
    (:func:`agents.train_config.check_fields`); the configuration as a whole, env id and
    keywords included, is :meth:`TrainConfig.validate`'s. Imports nothing heavy.

    Raises:
        UsageError: naming the first bad option.
    """
    if args.preset is not None:
        validators.check_preset(args.preset)
    if args.env_kwargs is not None and not isinstance(args.env_kwargs, dict):
        raise UsageError(f"env_kwargs must be a JSON object, got {args.env_kwargs!r}")
    for name, low in (("checkpoint_every", 0), ("figure_every", 0)):
        if getattr(args, name) is not None:
            validators.integer(name, getattr(args, name), low, note="0: off")
    check_fields({k: getattr(args, k) for k in CONFIG_FIELDS if getattr(args, k) is not None})
    validators.check_threads(args.threads)
    validators.check_ray_address(args.ray)
    validators.check_device(args.device)
    for name in ("batched", "progress", "trust_pickle"):
        if getattr(args, name) is not None:
            validators.boolean(name, getattr(args, name))
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a file; give a folder")
    if args.resume is not None and not Path(args.resume).is_dir():
        raise UsageError(f"--resume {args.resume}: no such folder")
