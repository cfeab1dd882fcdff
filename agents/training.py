"""One training session of a learning-rate controller, as a library function.

:func:`train_controller` is train.py without the command line: it resolves the options
(:mod:`agents.train_options`), chooses a residual controller's base schedule on
validation, builds the training envs, trains PPO with checkpoints, resumes from the last
one, keeps the snapshot chosen on validation and writes the run folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import sb3_contrib
import stable_baselines3
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import HParam
from stable_baselines3.common.vec_env import VecEnv

import lrenv
from agents import validators
from agents.callbacks import (
    NON_TENSORBOARD,
    EpisodeCheckpointer,
    EpisodeTracker,
    UpdateLogWriter,
    tensorboard_logger,
    write_now,
)
from agents.checkpoints import (
    CheckpointError,
    load_model,
    pickled_entries,
    read_json_file,
    read_normalization,
)
from agents.env_factory import close_envs
from agents.errors import EnvWorkerError, RunInterrupted
from agents.family_advantages import FamilyAdvantages
from agents.ppo import (
    EpisodeExplorationRedraw,
    TwoRatePPO,
    TwoRateRecurrentPPO,
    build_agent,
    observation_normalization,
    rollout_shape,
)
from agents.presets import get_preset
from agents.ray_cluster import EnvActorLostError, connect
from agents.run_folder import Checkpoint, RunDir, save_model, write_json_atomic
from agents.selection import (
    choose_base,
    describe_confirmation,
    describe_selection,
    scores_by_episode,
    select_snapshot,
    snapshot_path,
)
from agents.tasks import Task
from agents.train_config import TrainConfig
from agents.train_options import (
    BASE_FILE,
    CONFIG_FIELDS,
    DEFAULT_CHECKPOINT_EVERY,
    TrainOptions,
    check_train_options,
    describe,
    resolve,
    use_batched,
)
from agents.training_envs import training_envs
from agents.validators import UsageError
from lrenv.keywords import check_env_kwargs
from lrenv.vector import max_episode_steps

BASE_SEEDS = 2
"""Selection seeds per candidate of the base (evaluate.py's default ``--grid-seeds``)."""
# keywords the base selection sets (a residual action over a schedule), to check the
# user's keywords with them before the selection runs
RESIDUAL_PROBE = {"action_mode": "residual", "base_schedule": {"kind": "constant", "lr": 0.1}}


def segment_seed(seed: int, episodes_done: int) -> int:
    """The seed of a run resumed after ``episodes_done`` episodes (a 32-bit integer).

    Args:
        seed: the run's seed.
        episodes_done: episodes before the resume.

    Returns:
        A seed that differs from the run's, so resumed trainees are new ones.
    """
    return int(np.random.SeedSequence([seed, episodes_done]).generate_state(1)[0])


def attach_controller_metadata(
    model: BaseAlgorithm, env: VecEnv, config: TrainConfig, extra: dict[str, Any]
) -> None:
    """Attach what agents/sb3_controller.py documents, so that it is saved with the model.

    Args:
        model: the controller being trained.
        env: the training env (its observation statistics are attached).
        config: the resolved configuration (attached as ``lrenv_config``).
        extra: more entries for ``lrenv_config`` (derived values, episodes done).
    """
    model.lrenv_obs_normalization = observation_normalization(env)
    model.lrenv_config = {**config.to_dict(), **extra}


def train_controller(
    args: TrainOptions,
    ppo: Mapping[str, Any] | None = None,
    callbacks: Sequence[BaseCallback] = (),
    command: Sequence[str] = ("train.py",),
) -> Path:
    """Train (or resume) a controller: options in, run folder out.

    A library function: it neither exits nor installs signal handlers nor changes torch's
    thread count (train.py does those: :func:`agents.cli.script_session`), and it leaves
    ``args`` and ``ppo`` as they were. Trainees that compute in this process (one env, or
    batched ones) use ``args.threads`` threads through the env keyword ``torch_threads``,
    which gives the caller's count back after each call; PPO's updates use the caller's
    count.

    Args:
        args: the options (train.py's flags); unset task fields take the preset's values.
        ppo: PPO settings to change from the preset's (:class:`PPOSettings` fields).
        callbacks: extra stable-baselines3 callbacks (tests use one to interrupt a run).
        command: the command line recorded in config.json.

    Returns:
        The run folder.

    Raises:
        UsageError: options that cannot make a run (nothing is trained).
        RunInterrupted: on Ctrl-C (a ``KeyboardInterrupt``), after the last checkpoint;
            its message is the command that continues the run.
        RayMissingError: ``args.ray`` is given and Ray is not installed.
        UnschedulableError: the Ray cluster cannot place the trainees.
        EnvActorLostError: a trainee's Ray actor was lost too often (the message says
            how to continue the run).
        EnvWorkerError: an env worker process died while building its env.
    """
    args = dataclasses.replace(args)  # the caller's options stay as they were
    config, run, checkpoint, batched, normalization = prepare(args, ppo)
    if checkpoint is not None and checkpoint.progress.get("finished"):
        print(f"{run.path} is finished ({checkpoint.progress['episodes_done']} episodes).")
        return run.path
    if args.resume is not None:
        for path in run.remove_leftovers():
            print(f"removed {path} (left by an interrupted write)")
        args.checkpoint_every = _runtime_option(args, run, checkpoint, "checkpoint_every")
    elif args.checkpoint_every is None:
        args.checkpoint_every = DEFAULT_CHECKPOINT_EVERY

    base = None
    if checkpoint is None and not run.config_path.exists() and config.residual_over:
        try:
            base = _base_for(run, config, args.progress)
        except KeyboardInterrupt:
            raise RunInterrupted(
                f"interrupted while choosing the base; continue with: "
                f"python train.py --resume {run.path}",
                run.path,
            ) from None
        config = config.with_overrides({"env_kwargs": base["env_kwargs"]})
    if batched and config.env_kwargs.get("optimizer", "sgd") != "sgd":
        batched = False  # batched trainees run plain SGD only (lrenv.vector)

    with contextlib.ExitStack() as cluster:
        if args.ray is not None:
            try:
                cluster.enter_context(connect(args.ray))
            except ValueError as err:
                raise UsageError(str(err)) from err
        try:
            env = training_envs(
                config.env_id,
                config.env_kwargs,
                config.n_envs,
                config.ppo,
                torch_threads=args.threads,
                normalization=normalization,
                trusted_vecnormalize=checkpoint.legacy_vecnormalize if checkpoint else None,
                batched=batched,
                seed=config.seed,
                ray=args.ray is not None,
            )
        except (ValueError, TypeError, FileNotFoundError, CheckpointError) as err:
            raise UsageError(f"cannot build the training envs: {err}") from err
        except (EOFError, ConnectionError) as err:
            raise EnvWorkerError(
                f"an env worker process failed while building its env ({err!r}); "
                "its own error is printed above. Try --n-envs 1 to see it here."
            ) from None
        try:
            return _write_config_and_train(
                args, config, run, checkpoint, env, base, batched, callbacks, command
            )
        except KeyboardInterrupt:
            last = run.last_checkpoint()
            where = f"episode {last.progress['episodes_done']}" if last else "no checkpoint yet"
            raise RunInterrupted(
                f"interrupted ({where}); continue with: python train.py --resume {run.path}",
                run.path,
            ) from None
        except CheckpointError as err:
            raise UsageError(str(err)) from err
        except EnvActorLostError as err:
            last = run.last_checkpoint()
            where = f"episode {last.progress['episodes_done']}" if last else "no checkpoint yet"
            raise EnvActorLostError(
                f"{err}\nthe run stopped (last checkpoint: {where}); continue it, on this or "
                f"another cluster, with: python train.py --resume {run.path} --ray ADDRESS"
            ) from None
        finally:
            close_envs(env)


def _write_config_and_train(
    args: TrainOptions,
    config: TrainConfig,
    run: RunDir,
    checkpoint: Checkpoint | None,
    env: VecEnv,
    base: dict[str, Any] | None,
    batched: bool,
    callbacks: Sequence[BaseCallback],
    command: Sequence[str],
) -> Path:
    """Write config.json (a new run) and train: :func:`train_controller` once its envs
    are built."""
    decisions = int(env.get_attr("decisions")[0])
    n_steps, minibatch_size = rollout_shape(config.ppo, decisions, config.n_envs)
    derived = {
        "algorithm": config.algorithm,
        "decisions_per_episode": decisions,
        "n_steps": n_steps,
        "ppo_minibatch_size": minibatch_size,  # the trainee's batch_size is an env keyword
        "total_timesteps": config.episodes * decisions,
    }
    if checkpoint is None and not run.config_path.exists():
        run.write_config(
            {
                "config": config.to_dict(),
                "derived": derived,
                # how the trainees ran, outside "config": a resume may change it
                # (each checkpoint's progress records its session's choice)
                "runtime": {"batched": batched, "checkpoint_every": args.checkpoint_every}
                | ({"ray": args.ray} if args.ray else {}),
                "base_selection": base,
                "versions": {
                    "lrenv": lrenv.__version__,
                    "stable_baselines3": stable_baselines3.__version__,
                    "sb3_contrib": sb3_contrib.__version__,
                    "torch": torch.__version__,
                    "gymnasium": gymnasium.__version__,
                },
                "command": list(command),
                "created": dt.datetime.now().isoformat(timespec="seconds"),
            }
        )
    return _train(args, config, run, checkpoint, env, derived, callbacks, batched)


def prepare(
    args: TrainOptions, ppo: Mapping[str, Any] | None = None
) -> tuple[TrainConfig, RunDir, Checkpoint | None, bool, dict[str, Any] | None]:
    """Check every option, PPO setting and env keyword, and resolve the run; nothing is
    started or written (train.py's checks, callable on their own).

    Args:
        args: the options (train.py's flags).
        ppo: PPO settings to change from the preset's.

    Returns:
        The configuration, the run folder, the checkpoint to continue from, whether the
        trainees train batched, and the checkpoint's normalisation statistics.

    Raises:
        UsageError: naming the first option that cannot make a run.
    """
    try:
        check_train_options(args)
        task = {k: getattr(args, k) for k in CONFIG_FIELDS if getattr(args, k) is not None}
        ppo = {k: v for k, v in (ppo or {}).items() if v is not None}
        validators.check_ppo(ppo)
        config, run, checkpoint = resolve(args, task, ppo)
        config.validate()
        if config.residual_over:  # with the base's keywords, as the selection will set them
            probe = RESIDUAL_PROBE
            if config.env_kwargs.get("beta_factor") is not None:
                if config.residual_over != "schedule_free":
                    raise UsageError(
                        "beta_factor sets schedule-free SGD's beta, so the base must be "
                        "schedule-free SGD: pass --residual-over schedule_free, not "
                        f"{config.residual_over!r}"
                    )
                probe = {**RESIDUAL_PROBE, "optimizer": "schedule_free"}
            check_env_kwargs(config.env_id, {**config.env_kwargs, **probe})
        else:
            check_env_kwargs(config.env_id, config.env_kwargs)
        decisions = max_episode_steps(config.env_id, config.env_kwargs)
        if decisions is None:  # a task set: episodes differ, rollouts are sized by the mean
            from lrenv.keywords import task_set_kwargs
            from lrenv.task_sets import load_task_set, mean_decisions

            kwargs = task_set_kwargs(config.env_id, config.env_kwargs)
            if kwargs.get("split", "train") != "train":
                raise UsageError(
                    f"split={kwargs['split']!r}: train.py learns on a task set's training "
                    'split only, so that its held-out split stays unseen; drop "split" '
                    "from --env-kwargs (evaluate.py --split chooses where to test)"
                )
            tasks = load_task_set(kwargs.get("task_set", "default")).tasks("train")
            decisions = mean_decisions(tasks)
        rollout_shape(config.ppo, decisions, config.n_envs)
        batched = use_batched(args, config)
        normalization = _check_checkpoint(checkpoint, args.trust_pickle)
    except UsageError:
        raise
    except (ValueError, TypeError, FileNotFoundError, gymnasium.error.Error) as err:
        raise UsageError(str(err)) from err
    if args.ray is not None and batched:
        if args.batched:
            raise UsageError("--ray runs each trainee in its own Ray actor; drop --batched")
        batched = False
    optimizer = config.env_kwargs.get("optimizer", "sgd")
    if args.batched and optimizer != "sgd":
        raise UsageError(
            f"--batched trains plain SGD only, but this run's trainees use optimizer="
            f"{optimizer!r}; drop --batched"
        )
    if args.batched and checkpoint is None and "schedule_free" in config.residual_over:
        raise UsageError(
            "--batched trains plain SGD only, and a schedule_free base (--residual-over) "
            "trains with its own optimizer; drop --batched or schedule_free"
        )
    return config, run, checkpoint, batched, normalization


def _check_checkpoint(checkpoint: Checkpoint | None, trust_pickle: bool) -> dict[str, Any] | None:
    """Check the checkpoint to resume from before any env starts; return its normalisation
    statistics (None when it has none).

    Raises:
        CheckpointError: for a damaged checkpoint, or an older version's pickled
            statistics without ``--trust-pickle``.
    """
    if checkpoint is None:
        return None
    pickled_entries(checkpoint.controller)  # a readable stable-baselines3 zip
    if checkpoint.legacy_vecnormalize is not None and not trust_pickle:
        raise CheckpointError(
            f"{checkpoint.legacy_vecnormalize} is a pickle (an older version's checkpoint), "
            "and reading it would run any code it holds. If you made this run folder "
            "yourself, resume with --trust-pickle."
        )
    if checkpoint.vecnormalize is None:
        return None
    return read_normalization(checkpoint.vecnormalize)


def _runtime_option(
    args: TrainOptions, run: RunDir, checkpoint: Checkpoint | None, name: str
) -> Any:
    """A run-time option for a resumed run: the flag if given, else what the run last used
    (its checkpoint's progress, else config.json's ``runtime``), else the default."""
    given = getattr(args, name)
    if given is not None:
        return given
    if checkpoint is not None and name in checkpoint.progress:
        return checkpoint.progress[name]
    runtime = (run.read_config().get("runtime") if run.config_path.exists() else None) or {}
    return runtime.get(name, DEFAULT_CHECKPOINT_EVERY)


def _train(
    args: TrainOptions,
    config: TrainConfig,
    run: RunDir,
    checkpoint: Checkpoint | None,
    env: VecEnv,
    derived: dict[str, Any],
    callbacks: Sequence[BaseCallback],
    batched: bool,
) -> Path:
    started = time.monotonic()
    progress0 = checkpoint.progress if checkpoint else {}
    episodes_done = int(progress0.get("episodes_done", 0))
    wall0 = float(progress0.get("wall_seconds", 0.0))
    if checkpoint is None:
        model = build_agent(
            env,
            config.ppo,
            decisions=derived["decisions_per_episode"],
            recurrent=config.recurrent,
            seed=config.seed,
            device=args.device,
        )
    else:
        algorithm = TwoRateRecurrentPPO if config.recurrent else TwoRatePPO

        def template() -> BaseAlgorithm:
            return build_agent(
                env,
                config.ppo,
                decisions=derived["decisions_per_episode"],
                recurrent=config.recurrent,
                device=args.device,
            )

        model = load_model(
            checkpoint.controller,
            algorithm,
            template,
            env,
            device=args.device,
            episode_stats_path=checkpoint.episode_stats,
        )
        model._last_obs = None  # fresh trainees: reset the envs when learning starts
        # Resumed trainees must not replay the episodes of the run's start.
        model.set_random_seed(segment_seed(config.seed, episodes_done))
    step = model.num_timesteps
    # A resumed run replays the episodes after its checkpoint: TensorBoard drops what the
    # interrupted session logged past it (every point logged at a later step).
    model.set_logger(tensorboard_logger(run.tb, purge_step=step + 1 if checkpoint else None))
    resumed = f"resumed at episode {episodes_done}\n\n" if checkpoint else ""
    write_now(model.logger, {"config/resolved": resumed + describe(config, derived)}, step)
    flat = {k: v for k, v in config.to_dict().items() if k != "ppo"}
    flat |= config.to_dict()["ppo"] | derived
    hparams = {k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in flat.items()}
    metrics = {"rollout/ep_rew_mean": 0.0, "trainee/final_val_loss": 0.0}
    write_now(model.logger, {"hparams": HParam(hparams, metrics)}, step, NON_TENSORBOARD)

    tracker = EpisodeTracker(config.episodes, episodes_done, args.figure_every, args.progress)

    def progress(finished: bool) -> dict[str, Any]:
        return {
            "episodes_done": tracker.episodes_done,
            "num_timesteps": int(model.num_timesteps),
            "episodes": config.episodes,
            "total_timesteps": derived["total_timesteps"],
            "finished": finished,
            "batched": batched,
            "checkpoint_every": args.checkpoint_every,
            "wall_seconds": round(wall0 + time.monotonic() - started, 1),
            "saved_at": dt.datetime.now().isoformat(timespec="seconds"),
        }

    def save_checkpoint(finished: bool = False) -> None:
        extra = {**derived, "episodes_done": tracker.episodes_done}
        attach_controller_metadata(model, env, config, extra)
        run.save_checkpoint(model, env, progress(finished))

    def save_snapshot() -> None:
        path = snapshot_path(run.path, tracker.episodes_done)
        if not path.exists():
            attach_controller_metadata(
                model, env, config, {**derived, "episodes_done": tracker.episodes_done}
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            save_model(model, path)

    checkpointer = EpisodeCheckpointer(tracker, args.checkpoint_every, save_checkpoint)
    snapshots = []
    if config.select_every:
        save_snapshot()  # the untrained controller (or where a resumed run stands)
        snapshots.append(EpisodeCheckpointer(tracker, config.select_every, save_snapshot))
    exploration = [EpisodeExplorationRedraw()] if config.ppo.sde_draw == "episode" else []
    advantages = [FamilyAdvantages()] if config.ppo.family_advantages else []
    remaining = derived["total_timesteps"] - model.num_timesteps
    logs = UpdateLogWriter()  # before the checkpointer: a checkpoint keeps the last update's
    model.learn(
        remaining,
        callback=[tracker, logs, checkpointer, *snapshots, *exploration, *advantages, *callbacks],
        reset_num_timesteps=checkpoint is None,
    )
    model.logger.dump(model.num_timesteps)  # the last update's train/ values
    attach_controller_metadata(
        model, env, config, {**derived, "episodes_done": tracker.episodes_done}
    )
    run.save_final(model, env)
    if config.select_every:
        save_snapshot()
        _select(run, config, model, derived["decisions_per_episode"], args.progress)
    save_checkpoint(finished=True)
    model.logger.close()
    _report(run, config, tracker, time.monotonic() - started)
    return run.path


def base_request(config: TrainConfig) -> dict[str, Any]:
    """What decides a residual controller's base: the task, the families, their grids."""
    grids = get_preset(config.preset).evaluation.grids
    families = [f for f in config.residual_over.split(",") if f]
    return {
        "env_id": config.env_id,
        "env_kwargs": config.to_dict()["env_kwargs"],
        "families": families,
        "grids": {f: {k: list(v) for k, v in grids[f].items()} for f in families if f in grids},
        "n_seeds": BASE_SEEDS,
    }


def _base_for(run: RunDir, config: TrainConfig, progress: bool) -> dict[str, Any]:
    """The base schedule, chosen once: saved in the run folder (:data:`BASE_FILE`) with the
    configuration before it is applied, so that a run killed after the choice resumes
    without making it again (``--resume`` reads the configuration from that file until
    config.json exists)."""
    path = run.path / BASE_FILE
    request = base_request(config)
    if path.is_file():
        saved = read_json_file(path)
        if isinstance(saved, dict) and saved.get("request") == request and saved.get("base"):
            base = saved["base"]
            print(f"the base schedule chosen before ({path}): {base['family']} {base['schedule']}")
            return base
    run.path.mkdir(parents=True, exist_ok=True)
    document = {"config": config.to_dict(), "request": request, "base": None}
    write_json_atomic(path, document)
    print(f"(if interrupted, continue with: python train.py --resume {run.path})")
    base = _choose_base(config, progress)
    write_json_atomic(path, {**document, "base": base})
    return base


def _choose_base(config: TrainConfig, progress: bool) -> dict[str, Any]:
    """The residual controller's base: the best of ``config.residual_over`` on validation."""
    families = [f for f in config.residual_over.split(",") if f]
    print(f"choosing the base schedule among {', '.join(families)} on validation")
    base = choose_base(
        Task(config.env_id, config.env_kwargs),
        get_preset(config.preset).evaluation.grids,
        families,
        n_seeds=BASE_SEEDS,
        workers=config.n_envs,
        progress=progress,
    )
    print(
        f"  base: {base['family']} {base['schedule']} "
        f"(mean best validation loss {base['best_val_loss']:.4f})"
    )
    return base


def _select(
    run: RunDir, config: TrainConfig, model: BaseAlgorithm, decisions: int, progress: bool
) -> None:
    """Make the snapshot with the best validation loss the run's controller; log the scores
    (``eval/snapshot_val_loss`` at the time step each snapshot was taken)."""
    print(f"choosing among the snapshots on {config.select_seeds} validation episodes each")
    task = Task(config.env_id, config.env_kwargs)
    selection = select_snapshot(
        run.path, task, config.select_seeds, config.n_envs, progress, config.confirm_seeds
    )
    write_json_atomic(run.path / "selection.json", selection)
    step = model.num_timesteps
    write_now(model.logger, {"eval/selection": describe_selection(selection)}, step)
    for episodes, loss in scores_by_episode(selection):
        write_now(model.logger, {"eval/snapshot_val_loss": loss}, episodes * decisions)
    if selection.get("confirmation"):
        print(f"  {describe_confirmation(selection['confirmation'])}")
    chosen = next(s for s in selection["scores"] if s["snapshot"] == selection["chosen"])
    print(
        f"  chose the snapshot after {chosen['episodes']} episodes "
        f"(mean best validation loss {chosen['best_val_loss']:.4f})"
    )


def _report(run: RunDir, config: TrainConfig, tracker: EpisodeTracker, seconds: float) -> None:
    minutes, secs = divmod(round(seconds), 60)
    last = tracker.last_episode
    print(
        f"\nTrained {tracker.episodes_done} trainee episodes ({tracker.episodes_run} in "
        f"{minutes}m{secs:02d}s this session)."
    )
    if "trainee/return" in last:
        print(f"  last episode: return {last['trainee/return']:.4g}", end="")
        if "trainee/final_val_loss" in last:
            print(f", final validation loss {last['trainee/final_val_loss']:.4g}", end="")
        print()
    print(f"  controller:    {run.controller_file}")
    print(f"  for SB3:       {run.controller} (PPO.load unpickles it: trusted files only)")
    if run.vecnormalize.exists():
        print(f"  normalisation: {run.vecnormalize} (also inside the controller files)")
    print(f"  config:        {run.config_path}")
    print(f"  TensorBoard:   tensorboard --logdir {run.tb}")
    print(f"  evaluate:      python evaluate.py --controller {run.path}")
