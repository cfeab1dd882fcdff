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
agents/evaluation.py; the files written: agents/report.py). """

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agents.cli import add_dataclass_arguments
from agents.evaluating import EvaluateOptions, evaluate_controller
from agents.presets import PRESETS


def parse_args(argv: list[str] | None = None) -> EvaluateOptions:
    """Parse the command line; the docstrings of EvaluateOptions' fields are the help texts."""
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="presets (--preset):\n\n"
        + "\n\n".join(preset.describe() for preset in PRESETS.values()),
    )
    add_dataclass_arguments(parser, EvaluateOptions)
    return EvaluateOptions(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> Path:
    """Run the comparison and write the report; return the output folder."""
    command = [Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)]
    return evaluate_controller(parse_args(argv), command)


if __name__ == "__main__":
    main()
