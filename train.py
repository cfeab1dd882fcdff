"""Train a learning-rate controller with PPO (Xu et al. 2019, "Learning an Adaptive
Learning Rate Schedule").

    python train.py                                   # the cpu preset, ~6.5 min on 2 cores
    python train.py --preset smoke                    # seconds, on the synthetic task
    python train.py --env-id lrenv/FashionMNIST-CNN-v0 --episodes 1000 --seed 1 \\
        --out runs/fmnist --preset paper               # the paper (a GPU job)
    python train.py --resume runs/fmnist              # continue an interrupted run
    tensorboard --logdir runs

The run folder holds controller.safetensors (the controller as a file that holds no code:
lrenv.controller.Controller.load, evaluate.py and the scheduler read it), controller.zip
(the same controller for stable-baselines3's PPO.load, or sb3-contrib's RecurrentPPO.load
for --recurrent; loading it unpickles, so trusted files only), vecnormalize.json,
config.json (the resolved configuration), tb/ (TensorBoard) and the latest checkpoint.
A resume reads the checkpoint as data (agents.checkpoints): nothing is unpickled.
SIGTERM (what cluster schedulers send) stops a run as Ctrl-C does: the last checkpoint
stays intact and the command that continues the run is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
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
from agents.callbacks import (
    NON_TENSORBOARD,
    EpisodeCheckpointer,
    EpisodeTracker,
    tensorboard_logger,
    write_now,
)
from agents.checkpoints import CheckpointError, load_model, pickled_entries, read_normalization
from agents.cli import add_dataclass_arguments
from agents.ppo import (
    TwoRatePPO,
    TwoRateRecurrentPPO,
    build_agent,
    close_envs,
    observation_normalization,
    rollout_shape,
    training_envs,
)
from agents.presets import DEFAULT_PRESET, PRESETS, PPOSettings, get_preset
from agents.ray_cluster import EnvActorLostError, RayMissingError, connect
from agents.runs import (
    Checkpoint,
    RunDir,
    TrainConfig,
    config_differences,
    save_model,
    write_json_atomic,
)
from agents.selection import (
    choose_base,
    describe_selection,
    scores_by_episode,
    select_snapshot,
    snapshot_path,
)
from agents.tasks import Task
from lrenv.env import check_env_kwargs
from lrenv.vector import trainee_device

DEFAULT_CHECKPOINT_EVERY = 20

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
    "residual_over",
)


@dataclass
class Args:
    """Command-line arguments. Unset task flags take the preset's value (the saved run's
    with --resume); the PPO settings below likewise."""

    preset: str | None = None
    """Named settings to start from: cpu, cpu-cnn, cpu-cifar, paper or smoke (listed at the
    end; default cpu)."""
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
    torch_threads: int = 1
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


def make_parser() -> argparse.ArgumentParser:
    """The command line: :class:`Args` and every :class:`PPOSettings` field as flags."""
    presets = "\n\n".join(preset.describe() for preset in PRESETS.values())
    parser = argparse.ArgumentParser(
        prog="train.py",
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog=f"presets (--preset; default {DEFAULT_PRESET}):\n\n{presets}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dataclass_arguments(parser.add_argument_group("run"), Args)
    add_dataclass_arguments(
        parser.add_argument_group(
            "controller (PPO)",
            "Unset flags take the preset's value; the defaults shown are the paper preset's.",
        ),
        PPOSettings,
    )
    return parser


def parse_args(
    argv: Sequence[str] | None = None,
) -> tuple[Args, dict[str, Any], dict[str, Any]]:
    """Parse the command line.

    Args:
        argv: arguments (default ``sys.argv[1:]``).

    Returns:
        The arguments, the task flags given (for :class:`TrainConfig`), and the PPO
        settings given.
    """
    given = vars(make_parser().parse_args(argv))
    ppo_names = {f.name for f in fields(PPOSettings)}
    args = Args(**{k: v for k, v in given.items() if k not in ppo_names})
    task = {k: v for k, v in given.items() if k in CONFIG_FIELDS}
    ppo = {k: v for k, v in given.items() if k in ppo_names}
    return args, task, ppo


def resolve(
    args: Args, task: dict[str, Any], ppo: dict[str, Any]
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
    if args.resume is not None:
        run = RunDir(args.resume)
        if args.out is not None and Path(args.out).resolve() != run.path.resolve():
            raise ValueError("--out and --resume name different folders; give only --resume")
        saved = run.read_config()["config"]
        config = TrainConfig.from_dict(saved).with_overrides(task, ppo)
        differences = config_differences(saved, config.to_dict())
        if differences:
            raise ValueError(
                f"refusing to resume {run.path}: the flags given differ from the run's "
                "configuration (config.json):\n  "
                + "\n  ".join(differences)
                + "\nA resume continues the same run: drop those flags, or start a new "
                "run with another --out."
            )
        return config, run, run.last_checkpoint()
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


def segment_seed(seed: int, episodes_done: int) -> int:
    """The seed of a run resumed after ``episodes_done`` episodes (a 32-bit integer).

    Args:
        seed: the run's seed.
        episodes_done: episodes before the resume.

    Returns:
        A seed that differs from the run's, so resumed trainees are new ones.
    """
    return int(np.random.SeedSequence([seed, episodes_done]).generate_state(1)[0])


def use_batched(args: Args, config: TrainConfig) -> bool:
    """Whether to train the trainees batched: ``--batched`` if given, else whether the
    trainees' device resolves to a GPU.

    Args:
        args: the parsed arguments.
        config: the resolved configuration (its env id and keywords give the device).

    Returns:
        True to build the training envs with :func:`agents.vec_env.make_batched_vec_env`.

    Raises:
        ValueError: when the env keywords ask for a device that does not exist here.
    """
    if args.batched is not None:
        return args.batched
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


def attach_controller_metadata(
    model: BaseAlgorithm, env: VecEnv, config: TrainConfig, extra: dict[str, Any]
) -> None:
    """Attach what agents/controller.py documents, so that it is saved with the model.

    Args:
        model: the controller being trained.
        env: the training env (its observation statistics are attached).
        config: the resolved configuration (attached as ``lrenv_config``).
        extra: more entries for ``lrenv_config`` (derived values, episodes done).
    """
    model.lrenv_obs_normalization = observation_normalization(env)
    model.lrenv_config = {**config.to_dict(), **extra}


def main(argv: Sequence[str] | None = None, callbacks: Sequence[BaseCallback] = ()) -> Path:
    """Train (or resume) a controller; return the run folder.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).
        callbacks: extra stable-baselines3 callbacks (tests use one to interrupt a run).

    Returns:
        The run folder.
    """
    parser = make_parser()
    args, task, ppo = parse_args(argv)
    try:
        config, run, checkpoint = resolve(args, task, ppo)
        check_env_kwargs(config.env_id, config.env_kwargs)
        batched = use_batched(args, config)
        normalization = _check_checkpoint(checkpoint, args.trust_pickle)
    except (ValueError, TypeError, FileNotFoundError, gymnasium.error.Error) as err:
        parser.error(str(err))
    if args.ray is not None and batched:
        if args.batched:
            parser.error("--ray runs each trainee in its own Ray actor; drop --batched")
        batched = False
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
        base = _choose_base(config, args.progress)
        config = config.with_overrides({"env_kwargs": base["env_kwargs"]})
    if batched and config.env_kwargs.get("optimizer", "sgd") != "sgd":
        # batched trainees run plain SGD only (lrenv.vector)
        if args.batched:
            parser.error(
                f"--batched trains plain SGD only, but this run's trainees use optimizer="
                f"{config.env_kwargs['optimizer']!r}; drop --batched"
            )
        batched = False

    cluster = contextlib.ExitStack()
    if args.ray is not None:
        try:
            cluster.enter_context(connect(args.ray))
        except (RayMissingError, ValueError) as err:
            raise SystemExit(str(err)) from None
    threads = torch.get_num_threads()
    torch.set_num_threads(args.torch_threads)
    sigterm = signal.signal(signal.SIGTERM, _interrupt)
    try:
        env = training_envs(
            config.env_id,
            config.env_kwargs,
            config.n_envs,
            config.ppo,
            torch_threads=args.torch_threads,
            normalization=normalization,
            trusted_vecnormalize=checkpoint.legacy_vecnormalize if checkpoint else None,
            batched=batched,
            seed=config.seed,
            ray=args.ray is not None,
        )
    except (ValueError, TypeError, FileNotFoundError, CheckpointError) as err:
        signal.signal(signal.SIGTERM, sigterm)
        torch.set_num_threads(threads)
        parser.error(f"cannot build the training envs: {err}")
    except (EOFError, ConnectionError) as err:
        signal.signal(signal.SIGTERM, sigterm)
        torch.set_num_threads(threads)
        raise SystemExit(
            f"train.py: error: an env worker process failed while building its env ({err!r}); "
            "its own error is printed above. Try --n-envs 1 to see it here."
        ) from None
    try:
        decisions = int(env.get_attr("decisions")[0])
        n_steps, batch_size = rollout_shape(config.ppo, decisions, config.n_envs)
        derived = {
            "algorithm": config.algorithm,
            "decisions_per_episode": decisions,
            "n_steps": n_steps,
            "batch_size": batch_size,
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
                    "command": ["train.py", *(sys.argv[1:] if argv is None else argv)],
                    "created": dt.datetime.now().isoformat(timespec="seconds"),
                }
            )
        return _train(args, config, run, checkpoint, env, derived, callbacks, batched)
    except KeyboardInterrupt:
        last = run.last_checkpoint()
        where = f"episode {last.progress['episodes_done']}" if last else "no checkpoint yet"
        print(f"\ninterrupted ({where}); continue with: python train.py --resume {run.path}")
        raise SystemExit(130) from None
    except CheckpointError as err:
        parser.error(str(err))
    except EnvActorLostError as err:
        last = run.last_checkpoint()
        where = f"episode {last.progress['episodes_done']}" if last else "no checkpoint yet"
        raise SystemExit(
            f"{err}\nthe run stopped (last checkpoint: {where}); continue it, on this or "
            f"another cluster, with: python train.py --resume {run.path} --ray ADDRESS"
        ) from None
    finally:
        # Ignore a second signal while the workers close; a worker a signal reached
        # already may be gone: closing its pipe fails.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        close_envs(env)
        signal.signal(signal.SIGTERM, sigterm)
        torch.set_num_threads(threads)
        cluster.close()


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM handler: stop as Ctrl-C does (the last checkpoint stays; the resume command
    is printed)."""
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


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


def _runtime_option(args: Args, run: RunDir, checkpoint: Checkpoint | None, name: str) -> Any:
    """A run-time option for a resumed run: the flag if given, else what the run last used
    (its checkpoint's progress, else config.json's ``runtime``), else the default."""
    given = getattr(args, name)
    if given is not None:
        return given
    if checkpoint is not None and name in checkpoint.progress:
        return checkpoint.progress[name]
    runtime = run.read_config().get("runtime") or {}
    return runtime.get(name, DEFAULT_CHECKPOINT_EVERY)


def _train(
    args: Args,
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
    remaining = derived["total_timesteps"] - model.num_timesteps
    model.learn(
        remaining,
        callback=[tracker, checkpointer, *snapshots, *callbacks],
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


def _choose_base(config: TrainConfig, progress: bool) -> dict[str, Any]:
    """The residual controller's base: the best of ``config.residual_over`` on validation."""
    families = [f for f in config.residual_over.split(",") if f]
    print(f"choosing the base schedule among {', '.join(families)} on validation")
    try:
        base = choose_base(
            Task(config.env_id, config.env_kwargs),
            get_preset(config.preset).evaluation.grids,
            families,
            workers=config.n_envs,
            progress=progress,
        )
    except ValueError as err:
        raise SystemExit(f"--residual-over: {err}") from err
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
    selection = select_snapshot(run.path, task, config.select_seeds, config.n_envs, progress)
    write_json_atomic(run.path / "selection.json", selection)
    step = model.num_timesteps
    write_now(model.logger, {"eval/selection": describe_selection(selection)}, step)
    for episodes, loss in scores_by_episode(selection):
        write_now(model.logger, {"eval/snapshot_val_loss": loss}, episodes * decisions)
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


if __name__ == "__main__":
    main()
