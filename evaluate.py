"""Compare a learned learning-rate controller with tuned baseline schedules.

    python evaluate.py --controller runs/<run>            # the run folder train.py wrote
    python evaluate.py --controller runs/ctrl --env-id lrenv/FashionMNIST-CNN-v0 \\
        --runs 10 --out runs/eval [--preset cpu]

The baselines a practitioner would pick instead (the paper's 48 step-decay schedules;
constant, cosine, linear and warmup-stable-decay schedules; reduce-on-plateau; schedule-free
SGD), each family over the preset's grid, are chosen on validation loss only, on the task
the controller was trained on; the winners and the controller then train ``--runs`` times on
the same seeds, and each run's best-validation checkpoint is tested once. Writes
results.json, results.md (the paper's table with t-test p-values), trajectories.json,
val_loss.png and lr_schedule.png into ``--out``. Without ``--controller`` only the baselines
are compared. The session is agents.evaluating.evaluate_controller (the protocol:
agents/comparison.py; the files written: agents/report.py). """

from __future__ import annotations

import sys
from pathlib import Path

# Light imports only (no torch): the command line is parsed and each option checked before
# the session's imports, so that a bad one fails at once.
from agents.cli import Parser, add_dataclass_arguments, script_session, usage_error, wrap
from agents.evaluate_options import EvaluateOptions, check_evaluate_options
from agents.presets import DEFAULT_PRESET, PRESETS, Preset
from agents.validators import UsageError


def describe_evaluation(preset: Preset) -> str:
    """What ``--preset`` sets in evaluate.py: the task compared on (without a controller,
    or with one trained on another), the runs per method and each baseline family's grid.

    Args:
        preset: a named preset.

    Returns:
        A few lines for ``--help``.
    """
    settings = preset.evaluation
    grids = "; ".join(
        f"{family} " + " x ".join(f"{k} {list(v)}" for k, v in grid.items())
        for family, grid in settings.grids.items()
    )
    return (
        f"{preset.name}: task {preset.env_id} env_kwargs={dict(preset.env_kwargs)}\n"
        f"  runs={settings.runs} per method; grids (each family's best on validation): {grids}"
    )


def make_parser() -> Parser:
    """The command line: every :class:`EvaluateOptions` field as a flag."""
    return Parser(
        prog="evaluate.py",
        description=wrap(__doc__),
        epilog=wrap(
            "presets (--preset; default: the controller's preset, else "
            f"{DEFAULT_PRESET}). A preset sets the task (unless the controller's own or "
            "--env-id), the runs per method and the baselines' grids; --runs, --env-id and "
            "--env-kwargs override them:\n\n"
            + "\n\n".join(describe_evaluation(preset) for preset in PRESETS.values())
        ),
    )


def parse_args(argv: list[str] | None = None) -> EvaluateOptions:
    """Parse the command line and check each option on its own (a usage error exits with
    one line and code 2), before anything heavy is imported; the docstrings of
    EvaluateOptions' fields are the help texts."""
    parser = make_parser()
    add_dataclass_arguments(parser, EvaluateOptions)
    options = EvaluateOptions(**vars(parser.parse_args(argv)))
    try:
        check_evaluate_options(options)
    except UsageError as err:
        usage_error("evaluate.py", str(err))
    return options


def check(argv: list[str] | None = None) -> EvaluateOptions:
    """Parse and check the command line as :func:`main` does before any work, without
    starting or writing anything; a usage error exits with one line and code 2.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        The options.
    """
    options = parse_args(argv)
    from agents.evaluating import prepare  # torch

    try:
        prepare(options)
    except UsageError as err:
        usage_error("evaluate.py", str(err))
    return options


def main(argv: list[str] | None = None) -> Path:
    """Run the comparison and write the report; return the output folder."""
    command = [Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)]
    options = parse_args(argv)
    with script_session("evaluate.py", options.threads):
        from agents.evaluating import evaluate_controller  # torch

        return evaluate_controller(options, command)


if __name__ == "__main__":
    main()
