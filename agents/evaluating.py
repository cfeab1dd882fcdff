"""One comparison of a controller with the tuned baselines, as a library function.

:func:`evaluate_controller` is evaluate.py without the command line: it reads the
controller file (never unpickling), resolves the tasks (the controller's, the evaluation's
and, for transfer, the one the baselines are chosen on), runs the protocol of
:mod:`agents.evaluation` in this process, a worker pool or on a Ray cluster, and writes the
report (:mod:`agents.report`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

from agents.evaluation import candidates, run_comparison
from agents.presets import DEFAULT_PRESET, PRESETS, get_preset
from agents.report import write_report
from agents.runner import Runner
from agents.tasks import BASELINES, Task, check_controller_fits, resolve_tasks
from lrenv.keywords import check_env_kwargs, is_task_set_id
from lrenv.vector import trainee_device


def _cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class EvaluateOptions:
    """What a comparison is asked to do: evaluate.py's flags (each field's docstring is its
    ``--help``)."""

    controller: str | None = None
    """The run folder train.py wrote (or its controller.safetensors, or a controller.zip with
    that file beside it: a zip is never unpickled); without it, only the baselines are
    compared."""
    env_id: str | None = None
    """Task to evaluate on (default: the controller's training env, else the preset's)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keywords for gym.make as a JSON object, merged over the preset's env_kwargs."""
    preset: str | None = None
    """Named settings: cpu, cpu-cnn, cpu-cifar, paper or smoke (default: the controller's
    preset, else cpu)."""
    runs: int | None = None
    """Evaluation runs per method, on seeds seed..seed+runs-1 (default: the preset's, 10)."""
    out: str | None = None
    """Output folder (default: runs/eval__ENV__PRESET__SEED__TIME)."""
    baseline_from: str | None = None
    """Env id to choose the baselines on, for transfer (default: the controller's training env)."""
    baseline_env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keywords of the baseline-selection task as JSON, merged over the evaluation ones."""
    baselines: str = ",".join(BASELINES)
    """Comma-separated baseline families (default all: step_decay, constant, cosine, linear,
    wsd, plateau, schedule_free), or none."""
    grid_seeds: int = 2
    """Seeds per candidate schedule in the validation-only selection (the paper: 1)."""
    seed: int = 0
    """First evaluation seed; selection runs use seeds 1_000_000 + seed + j."""
    workers: int | None = None
    """Worker processes, each with its own envs (default: the core count; 1 with
    --batched); 1 runs here."""
    threads: int = 1
    """Torch threads per worker process (one is fastest on a shared CPU)."""
    batched: bool | None = None
    """Train the runs of one method on one task together (its evaluation runs on all
    seeds, a baseline family's selection runs), their trainees as one batched computation
    (lrenv.vector); same results within float tolerance. The way to use a GPU, and the
    default when the trainees' device (env keyword "device") is one. On a CPU, worker
    processes are usually faster: batching measured ~1.2x for 8 MLP trainees in one
    process and nothing for the CNN."""
    max_batch: int = 16
    """With --batched: the most runs trained together (a memory bound on a GPU)."""
    ray: str | None = None
    """Run the selection grid and the evaluation runs as Ray tasks, one trainee each with
    --threads cores, anywhere on a Ray cluster: "local" starts Ray on this machine, "auto"
    joins the cluster this machine is part of, "ray://HOST:10001" joins one through Ray
    Client (pip install -e ".[ray]"; docs/ray.md). Same results as without it."""
    progress: bool = True
    """Show progress bars."""
    split: str = "test"
    """For a controller trained on a task set (lrenv/TaskSet-v0): the split to evaluate on
    zero-shot (default the held-out "test"; "train" shows how it does where it learned)."""
    reference_policies: str = ""
    """For a task set: open-loop policies to score beside the methods, comma-separated:
    random (uniform random actions), action_zero (action 0 throughout); for reference
    scores."""


def _ray_runner(args: EvaluateOptions, stack: contextlib.ExitStack) -> Any:
    """A :class:`agents.ray_pool.RayRunner` on the cluster ``--ray`` names, connected for
    the life of ``stack``; exits with one line when Ray is missing."""
    from agents.ray_cluster import RayMissingError, connect

    try:
        stack.enter_context(connect(args.ray))
    except (RayMissingError, ValueError) as err:
        raise SystemExit(str(err)) from None
    from agents.ray_pool import RayRunner  # imports ray

    return RayRunner(threads=args.threads, progress=args.progress)


def evaluate_controller(args: EvaluateOptions, command: Sequence[str] = ("evaluate.py",)) -> Path:
    """Run the comparison and write the report: options in, results folder out.

    Args:
        args: the options (evaluate.py's flags).
        command: the command line recorded in results.json.

    Returns:
        The output folder (results.json, results.md, trajectories.json, figures).

    Raises:
        SystemExit: with a one-line message, for options that cannot make a comparison.
    """
    started = time.time()

    controller_config: dict[str, Any] = {}
    if args.controller:
        from lrenv.controller import Controller, ControllerFileError, controller_file

        try:
            # the code-free file, which each worker reads again (nothing is unpickled)
            args.controller = str(controller_file(args.controller))
            controller = Controller.load(args.controller)
        except ControllerFileError as err:
            raise SystemExit(str(err)) from err
        controller_config = controller.config
    preset_name = args.preset or controller_config.get("preset") or DEFAULT_PRESET
    if preset_name not in PRESETS:
        raise SystemExit(f"unknown preset {preset_name!r}; choose one of {', '.join(PRESETS)}")
    preset = get_preset(preset_name)
    settings = preset.evaluation
    runs = args.runs if args.runs is not None else settings.runs
    evaluated_id = args.env_id or controller_config.get("env_id") or preset.env_id
    try:
        on_task_set = is_task_set_id(evaluated_id)
    except ValueError as err:
        raise SystemExit(str(err)) from err
    if on_task_set:
        return _evaluate_zero_shot(
            args, preset, controller_config, evaluated_id, runs, started, command
        )

    task, baseline_task, controller_task = resolve_tasks(
        preset.env_id,
        preset.env_kwargs,
        controller_config,
        env_id=args.env_id,
        env_kwargs=args.env_kwargs,
        baseline_from=args.baseline_from,
        baseline_env_kwargs=args.baseline_env_kwargs,
    )
    if args.controller:
        try:
            check_controller_fits(controller.observation_size, task)
        except ValueError as err:
            raise SystemExit(str(err)) from err
        del controller  # each worker loads its own copy

    wanted = [b for b in args.baselines.split(",") if b and b != "none"]
    unknown = set(wanted) - set(BASELINES)
    if unknown:
        raise SystemExit(f"unknown baselines {sorted(unknown)}; choose from {', '.join(BASELINES)}")
    try:
        families = candidates(settings.grids, [b for b in BASELINES if b in wanted])
    except ValueError as err:
        raise SystemExit(f"preset {preset.name!r}: {err}") from err

    out = Path(
        args.out
        or f"runs/eval__{task.env_id.split('/')[-1]}__{preset.name}__{args.seed}__{int(started)}"
    )
    threads = args.threads
    try:
        for each in (task, baseline_task, controller_task):
            if each is not None:  # here, not as a worker's traceback
                check_env_kwargs(each.env_id, each.env_kwargs)
        batched = (
            args.batched
            if args.batched is not None
            else trainee_device(task.env_id, task.env_kwargs).type == "cuda"
        )
    except (ValueError, TypeError, FileNotFoundError, gym.error.Error) as err:
        raise SystemExit(str(err)) from err
    if args.ray is not None:  # a Ray task per trainee, never batched
        if args.batched:
            raise SystemExit("--ray runs each trainee as its own Ray task; drop --batched")
        batched = False
    workers = args.workers if args.workers is not None else 1 if batched else _cores()
    config = {
        **dataclasses.asdict(args),
        "preset": preset.name,
        "runs": runs,
        "threads": threads,
        "workers": workers,
        "batched": batched,
        "baseline_grids": {
            family: {k: list(v) for k, v in spec.items()} for family, spec in settings.grids.items()
        },
        "controller_config": controller_config,
        "command": " ".join(command),
    }
    print(f"evaluating on {task.describe()}; baselines chosen on {baseline_task.describe()}")
    with contextlib.ExitStack() as stack:
        if args.ray is None:
            runner = Runner(
                workers,
                threads=threads,
                progress=args.progress,
                batched=batched,
                max_batch=args.max_batch,
            )
        else:
            runner = _ray_runner(args, stack)
        stack.enter_context(runner)
        comparison = run_comparison(
            runner,
            task,
            baseline_task,
            families,
            runs=runs,
            seed=args.seed,
            grid_seeds=args.grid_seeds,
            controller=str(Path(args.controller).resolve()) if args.controller else None,
            controller_task=controller_task,
            config=config,
        )
    comparison.config["wall_seconds"] = round(time.time() - started, 1)
    write_report(comparison, out)
    print((out / "results.md").read_text())
    print(f"wrote {out} in {comparison.config['wall_seconds']:.0f} s")
    return out


def _evaluate_zero_shot(
    args: EvaluateOptions,
    preset: Any,
    controller_config: dict[str, Any],
    env_id: str,
    runs: int,
    started: float,
    command: Sequence[str],
) -> Path:
    """The zero-shot protocol (:mod:`agents.zero_shot`) on a task set's split."""
    from agents.presets import without_task_keys
    from agents.zero_shot import EXTRA_POLICIES, run_zero_shot
    from agents.zero_shot_report import write_zero_shot_report
    from lrenv.keywords import task_set_kwargs
    from lrenv.task_sets import check_split, load_task_set

    given = {
        **without_task_keys(preset.env_kwargs),
        **(controller_config.get("env_kwargs") or {}),
        **args.env_kwargs,
        "split": args.split,
    }
    extra = [p for p in args.reference_policies.split(",") if p]
    try:
        check_split(args.split)
        check_env_kwargs(env_id, given)
        interface = task_set_kwargs(env_id, given)
        task_set = load_task_set(interface["task_set"])
        unknown = sorted(set(extra) - set(EXTRA_POLICIES))
        if unknown:
            raise ValueError(
                f"unknown reference policies {unknown}; choose from {', '.join(EXTRA_POLICIES)}"
            )
        if args.controller:
            check_controller_fits(controller_observation_size(args.controller), Task(env_id, given))
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(str(err)) from err
    workers = args.workers if args.workers is not None else _cores()
    out = Path(
        args.out
        or f"runs/eval__{task_set.name}-{args.split}__{preset.name}__{args.seed}__{int(started)}"
    )
    config = {
        **dataclasses.asdict(args),
        "preset": preset.name,
        "runs": runs,
        "workers": workers,
        "env_id": env_id,
        "interface": interface,
        "controller_config": controller_config,
        "command": " ".join(command),
    }
    print(f"zero-shot evaluation on {task_set.name}, split {args.split!r}, {runs} seeds a task")
    with Runner(workers, threads=args.threads, progress=args.progress) as runner:
        result = run_zero_shot(
            runner,
            task_set,
            args.split,
            interface,
            str(Path(args.controller).resolve()) if args.controller else None,
            runs=runs,
            seed=args.seed,
            extra_policies=extra,
            config=config,
        )
    result.config["wall_seconds"] = round(time.time() - started, 1)
    write_zero_shot_report(result, out)
    print((out / "results.md").read_text())
    print(f"wrote {out} in {result.config['wall_seconds']:.0f} s")
    return out


def controller_observation_size(path: str) -> int:
    """The observation length the controller file at ``path`` reads."""
    from lrenv.controller import Controller

    return Controller.load(path).observation_size
