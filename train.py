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
import sys
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Light imports only (no torch, no stable-baselines3): the command line is parsed and each
# option checked before the session's imports, so that a bad one fails at once.
from agents import validators
from agents.cli import Parser, add_dataclass_arguments, script_session, usage_error, wrap
from agents.presets import DEFAULT_PRESET, PRESETS, PPOSettings
from agents.train_options import TrainOptions, check_train_options
from agents.validators import UsageError

if TYPE_CHECKING:
    from stable_baselines3.common.callbacks import BaseCallback


def make_parser() -> argparse.ArgumentParser:
    """The command line: :class:`Args` and every :class:`PPOSettings` field as flags."""
    presets = "\n\n".join(preset.describe() for preset in PRESETS.values())
    parser = Parser(
        prog="train.py",
        description=wrap(__doc__.split("\n\n")[0].replace("\n", " ")),
        epilog=wrap(f"presets (--preset; default {DEFAULT_PRESET}):\n\n{presets}"),
    )
    add_dataclass_arguments(parser.add_argument_group("run"), TrainOptions)
    add_dataclass_arguments(
        parser.add_argument_group(
            "controller (PPO)",
            wrap(
                f"Unset flags take the preset's value; the defaults shown are the "
                f"{DEFAULT_PRESET} preset's, which a plain run uses."
            ),
        ),
        PPOSettings,
        default_label=f"{DEFAULT_PRESET}",
        defaults=asdict(PRESETS[DEFAULT_PRESET].ppo),
    )
    return parser


def parse_args(
    argv: Sequence[str] | None = None,
) -> tuple[TrainOptions, dict[str, Any]]:
    """Parse the command line and check each option on its own (a usage error exits with
    one line and code 2), before anything heavy is imported.

    Args:
        argv: arguments (default ``sys.argv[1:]``).

    Returns:
        The options, and the PPO settings given (``None`` where unset).
    """
    given = vars(make_parser().parse_args(argv))
    ppo_names = {f.name for f in fields(PPOSettings)}
    options = TrainOptions(**{k: v for k, v in given.items() if k not in ppo_names})
    ppo = {k: v for k, v in given.items() if k in ppo_names}
    try:
        check_train_options(options)
        validators.check_ppo({k: v for k, v in ppo.items() if v is not None})
    except UsageError as err:
        usage_error("train.py", str(err))
    return options, ppo


def check(argv: Sequence[str] | None = None) -> tuple[TrainOptions, dict[str, Any]]:
    """Parse and check the command line as :func:`main` does before any work, without
    starting or writing anything; a usage error exits with one line and code 2.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        The options and the PPO settings given.
    """
    options, ppo = parse_args(argv)
    from agents.training import prepare  # torch, stable-baselines3

    try:
        prepare(options, ppo)
    except UsageError as err:
        usage_error("train.py", str(err))
    return options, ppo


def main(argv: Sequence[str] | None = None, callbacks: Sequence[BaseCallback] = ()) -> Path:
    """Train (or resume) a controller; return the run folder.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).
        callbacks: extra stable-baselines3 callbacks (tests use one to interrupt a run).
    """
    options, ppo = parse_args(argv)
    command = ["train.py", *(sys.argv[1:] if argv is None else argv)]
    with script_session("train.py", options.threads, sigterm=True):
        from agents.training import train_controller  # torch, stable-baselines3

        return train_controller(options, ppo, callbacks, command)


if __name__ == "__main__":
    main()
