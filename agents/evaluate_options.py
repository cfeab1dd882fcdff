"""A comparison's options: evaluate.py's flags, and the check of each on its own.

:class:`EvaluateOptions` is :func:`agents.evaluating.evaluate_controller`'s input (each
field's docstring is its ``--help``); :func:`check_evaluate_options` checks each option
alone, before the tasks and the controller are (:func:`agents.evaluating.prepare`). This
module imports no torch, so that evaluate.py checks its command line before loading it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents import validators
from agents.tasks import BASELINES
from agents.validators import UsageError


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
    """Named settings, all listed at the end (default: the controller's preset, else cpu)."""
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


def check_evaluate_options(args: EvaluateOptions) -> None:
    """Check each option on its own (one validator each); the tasks are checked by
    :func:`prepare`.

    Raises:
        UsageError: naming the first bad option.
    """
    if args.preset is not None:
        validators.check_preset(args.preset)
    for name in ("env_kwargs", "baseline_env_kwargs"):
        if not isinstance(getattr(args, name), dict):
            raise UsageError(f"{name} must be a JSON object, got {getattr(args, name)!r}")
    if args.runs is not None:
        validators.integer("runs", args.runs, 1, 10_000, "evaluation runs per method")
    validators.integer("grid_seeds", args.grid_seeds, 1, 1000, "seeds per candidate schedule")
    validators.check_seed(args.seed)
    if args.workers is not None:
        validators.integer("workers", args.workers, 1, 1024, "1 runs here")
    validators.check_threads(args.threads)
    validators.integer("max_batch", args.max_batch, 1, note="runs trained together")
    validators.check_ray_address(args.ray)
    validators.check_baselines(args.baselines)
    for name in ("env_id", "baseline_from"):
        if getattr(args, name) is not None:
            validators.check_env_id(getattr(args, name))
    for name in ("batched", "progress"):
        if getattr(args, name) is not None:
            validators.boolean(name, getattr(args, name))
    if args.split not in ("train", "test"):
        raise UsageError(f"split must be train or test, got {args.split!r}")
    unknown = sorted(
        {p for p in args.reference_policies.split(",") if p} - {"random", "action_zero"}
    )
    if unknown:
        raise UsageError(f"unknown reference policies {unknown}; choose from random, action_zero")
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a file; give a folder")
