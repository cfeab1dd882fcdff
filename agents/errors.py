"""The exceptions a library session raises where a script prints a line and exits.

:func:`agents.training.train_controller` and :func:`agents.evaluating.evaluate_controller`
return results and raise exceptions, so that a notebook or a sweep can call them; train.py
and evaluate.py (:func:`agents.cli.script_session`) turn these into one line and an exit
code. Options that cannot make a run raise :class:`agents.validators.UsageError` (exit 2);
Ray's failures are :mod:`agents.ray_cluster`'s exceptions (exit 1).
"""

from __future__ import annotations


class RunInterrupted(KeyboardInterrupt):
    """A training run stopped by Ctrl-C (or SIGTERM, which train.py turns into one) after
    its last checkpoint was left intact.

    A ``KeyboardInterrupt`` still, so that a caller's ``except Exception`` does not swallow
    the user's Ctrl-C; its message names where the run stopped and the command that
    continues it (train.py prints it and exits with code 130).

    Args:
        message: where the run stopped and how to continue it.
        run: the run folder.
    """

    def __init__(self, message: str, run: object) -> None:
        super().__init__(message)
        self.run = run


class EnvWorkerError(RuntimeError):
    """A training env's worker process died while building its env (the worker's own
    error went to its stderr); train.py prints the message as one error line, exit 1."""
