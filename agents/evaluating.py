"""One comparison of a controller with the tuned baselines, as a library function.

:func:`evaluate_controller` is evaluate.py without the command line: it reads the
controller file (never unpickling), resolves the tasks (the controller's, the evaluation's
and, for transfer, the one the baselines are chosen on), runs the protocol of
:mod:`agents.comparison` in this process, a worker pool or on a Ray cluster, and writes the
report (:mod:`agents.report`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

from agents import validators
from agents.comparison import candidates, run_comparison
from agents.evaluate_options import EvaluateOptions, check_evaluate_options
from agents.pool import Runner
from agents.presets import DEFAULT_PRESET, get_preset
from agents.report import write_report
from agents.tasks import BASELINES, Task, check_controller_fits, resolve_tasks
from agents.validators import UsageError
from lrenv.keywords import check_env_kwargs, is_task_set_id
from lrenv.vector import trainee_device


def _cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _ray_runner(args: EvaluateOptions, stack: contextlib.ExitStack) -> Any:
    """A :class:`agents.ray_pool.RayRunner` on the cluster ``--ray`` names, connected for
    the life of ``stack``.

    Raises:
        RayMissingError: Ray is not installed.
        UsageError: an address Ray cannot take.
    """
    from agents.ray_cluster import connect

    try:
        stack.enter_context(connect(args.ray))
    except ValueError as err:
        raise UsageError(str(err)) from err
    from agents.ray_pool import RayRunner  # imports ray

    return RayRunner(threads=args.threads, progress=args.progress)


@dataclass
class Plan:
    """A comparison as :func:`prepare` resolved it: what :func:`evaluate_controller` runs."""

    options: EvaluateOptions
    """The options with the controller resolved to its code-free file."""
    task: Task
    baseline_task: Task
    controller_task: Task | None
    families: dict[str, Any]
    runs: int
    workers: int
    batched: bool
    out: Path
    config: dict[str, Any]


def prepare(args: EvaluateOptions, command: Sequence[str] = ("evaluate.py",)) -> Plan:
    """Check every option, the controller file and every task's env keywords, and resolve
    the comparison; nothing is started or written (evaluate.py's checks, callable alone).

    Args:
        args: the options (evaluate.py's flags), left as they were (the plan's copy names
            the controller's code-free file).
        command: the command line recorded in results.json.

    Returns:
        The resolved comparison.

    Raises:
        UsageError: naming the first option that cannot make a comparison.
    """
    try:
        return _prepare(dataclasses.replace(args), command)
    except UsageError:
        raise
    except (ValueError, TypeError, FileNotFoundError, gym.error.Error) as err:
        raise UsageError(str(err)) from err


def _prepare(args: EvaluateOptions, command: Sequence[str]) -> Plan:
    check_evaluate_options(args)
    controller_config: dict[str, Any] = {}
    if args.controller:
        from lrenv.controller import Controller, controller_file

        # the code-free file, which each worker reads again (nothing is unpickled)
        args.controller = str(controller_file(args.controller))
        controller = Controller.load(args.controller)
        controller_config = controller.config
    preset = get_preset(
        validators.check_preset(args.preset or controller_config.get("preset") or DEFAULT_PRESET)
    )
    settings = preset.evaluation
    runs = args.runs if args.runs is not None else settings.runs

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
        check_controller_fits(controller.observation_size, task)
        del controller  # each worker loads its own copy

    wanted = validators.check_baselines(args.baselines)
    try:
        families = candidates(settings.grids, [b for b in BASELINES if b in wanted])
    except ValueError as err:
        raise UsageError(f"preset {preset.name!r}: {err}") from err

    started = time.time()
    out = Path(
        args.out
        or f"runs/eval__{task.env_id.split('/')[-1]}__{preset.name}__{args.seed}__{int(started)}"
    )
    for each in (task, baseline_task, controller_task):
        if each is not None:  # here, not as a worker's traceback
            check_env_kwargs(each.env_id, each.env_kwargs)
    batched = (
        args.batched
        if args.batched is not None
        else trainee_device(task.env_id, task.env_kwargs).type == "cuda"
    )
    if args.ray is not None:  # a Ray task per trainee, never batched
        if args.batched:
            raise UsageError("--ray runs each trainee as its own Ray task; drop --batched")
        batched = False
    workers = args.workers if args.workers is not None else 1 if batched else _cores()
    config = {
        **dataclasses.asdict(args),
        "preset": preset.name,
        "runs": runs,
        "threads": args.threads,
        "workers": workers,
        "batched": batched,
        "baseline_grids": {
            family: {k: list(v) for k, v in spec.items()} for family, spec in settings.grids.items()
        },
        "controller_config": controller_config,
        "command": " ".join(command),
    }
    return Plan(
        args, task, baseline_task, controller_task, families, runs, workers, batched, out, config
    )


def _zero_shot_target(
    args: EvaluateOptions,
) -> tuple[Any, dict[str, Any], str, int, int | None] | None:
    """``(preset, controller config, env id, runs, the controller's observation size)``
    when the comparison is on a task set (the controller was trained on one, or
    ``--env-id`` names one): the zero-shot protocol; else ``None``.

    Raises:
        UsageError: for a bad option or controller file.
    """
    check_evaluate_options(args)
    controller_config: dict[str, Any] = {}
    observation_size = None
    try:
        if args.controller:
            from lrenv.controller import Controller, controller_file

            args.controller = str(controller_file(args.controller))
            controller = Controller.load(args.controller)
            controller_config, observation_size = controller.config, controller.observation_size
        preset = get_preset(
            validators.check_preset(
                args.preset or controller_config.get("preset") or DEFAULT_PRESET
            )
        )
        env_id = args.env_id or controller_config.get("env_id") or preset.env_id
        if not is_task_set_id(env_id):
            return None
    except UsageError:
        raise
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from err
    runs = args.runs if args.runs is not None else preset.evaluation.runs
    return preset, controller_config, env_id, runs, observation_size


def evaluate_controller(args: EvaluateOptions, command: Sequence[str] = ("evaluate.py",)) -> Path:
    """Run the comparison and write the report: options in, results folder out.

    A library function: it neither exits, nor installs signal handlers, nor changes
    torch's thread count (evaluate.py sets it: :func:`agents.cli.script_session`), and it
    leaves ``args`` as it was.

    Args:
        args: the options (evaluate.py's flags).
        command: the command line recorded in results.json.

    Returns:
        The output folder (results.json, results.md, trajectories.json, figures).

    Raises:
        UsageError: for options that cannot make a comparison, before any work starts
            (:func:`prepare`).
        RayMissingError: ``args.ray`` is given and Ray is not installed.
        UnschedulableError: the Ray cluster cannot place a run.
    """
    started = time.time()
    args = dataclasses.replace(args)  # the caller's options stay as they were
    target = _zero_shot_target(args)
    if target is not None:
        return _evaluate_zero_shot(args, *target, started, command)
    plan = prepare(args, command)
    args = plan.options
    print(
        f"evaluating on {plan.task.describe()}; baselines chosen on {plan.baseline_task.describe()}"
    )
    with contextlib.ExitStack() as stack:
        if args.ray is None:
            runner = Runner(
                plan.workers,
                threads=args.threads,
                progress=args.progress,
                batched=plan.batched,
                max_batch=args.max_batch,
            )
        else:
            runner = _ray_runner(args, stack)
        stack.enter_context(runner)
        comparison = run_comparison(
            runner,
            plan.task,
            plan.baseline_task,
            plan.families,
            runs=plan.runs,
            seed=args.seed,
            grid_seeds=args.grid_seeds,
            controller=str(Path(args.controller).resolve()) if args.controller else None,
            controller_task=plan.controller_task,
            config=plan.config,
        )
    comparison.config["wall_seconds"] = round(time.time() - started, 1)
    write_report(comparison, plan.out)
    print((plan.out / "results.md").read_text())
    print(f"wrote {plan.out} in {comparison.config['wall_seconds']:.0f} s")
    return plan.out


def _evaluate_zero_shot(
    args: EvaluateOptions,
    preset: Any,
    controller_config: dict[str, Any],
    env_id: str,
    runs: int,
    observation_size: int | None,
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
            check_controller_fits(observation_size, Task(env_id, given))
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from err
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
