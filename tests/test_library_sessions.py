"""train_controller and evaluate_controller as a notebook or a sweep calls them: results
back, no exit, and the caller's process as it was (torch threads, SIGTERM, the options)."""

from __future__ import annotations

import copy
import json
import signal

import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

from agents.errors import RunInterrupted
from agents.evaluate_options import EvaluateOptions
from agents.evaluating import evaluate_controller
from agents.train_options import TrainOptions
from agents.training import train_controller
from agents.validators import UsageError
from lrenv.controller import Controller


class CtrlCAfter(BaseCallback):
    """Press Ctrl-C (raise KeyboardInterrupt) once ``episodes`` episodes have finished."""

    def __init__(self, episodes: int) -> None:
        super().__init__()
        self.episodes, self.seen = episodes, 0

    def _on_step(self) -> bool:
        self.seen += int(sum(self.locals["dones"]))
        if self.seen >= self.episodes:
            raise KeyboardInterrupt
        return True


class ThreadCounts(BaseCallback):
    """Record torch's thread count in this process at each step of training."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[int] = set()

    def _on_step(self) -> bool:
        self.seen.add(torch.get_num_threads())
        return True


def _caller_state() -> tuple[int, object]:
    return torch.get_num_threads(), signal.getsignal(signal.SIGTERM)


@pytest.fixture
def two_threads():
    """The caller runs with two torch threads, the sessions with one (``threads=1``): a
    session that set the process's count and left it would show."""
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(saved)


def smoke_options(out, **changes) -> TrainOptions:
    fields = {"episodes": 2, "figure_every": 0, "checkpoint_every": 0, "threads": 1, **changes}
    return TrainOptions(preset="smoke", out=str(out), progress=False, **fields)


def test_train_and_evaluate_from_python_return_results_and_leave_the_caller_alone(
    tmp_path, two_threads
):
    before = _caller_state()
    options = smoke_options(tmp_path / "run", checkpoint_every=None)
    given = copy.deepcopy(options)
    counts = ThreadCounts()
    run = train_controller(options, callbacks=[counts])
    assert counts.seen == {2}  # the caller's count, while training too
    assert _caller_state() == before
    assert options == given  # the caller's options are not changed
    assert Controller.load(run).observation_size == 7

    evaluation = EvaluateOptions(
        controller=str(run),
        out=str(tmp_path / "eval"),
        baselines="constant",
        runs=2,
        grid_seeds=1,
        workers=1,
        progress=False,
    )
    given = copy.deepcopy(evaluation)
    out = evaluate_controller(evaluation)
    assert _caller_state() == before
    assert evaluation == given
    methods = {r["method"] for r in json.loads((out / "results.json").read_text())["runs"]}
    assert methods == {"controller", "constant"}


def test_a_bad_option_is_an_exception_not_an_exit(tmp_path, two_threads):
    before = _caller_state()
    with pytest.raises(UsageError, match="threads"):
        train_controller(smoke_options(tmp_path / "run", threads=0))
    with pytest.raises(UsageError, match="runs"):
        evaluate_controller(EvaluateOptions(preset="smoke", runs=-3, out=str(tmp_path / "e")))
    assert _caller_state() == before
    assert not (tmp_path / "run").exists() and not (tmp_path / "e").exists()


def test_ctrl_c_is_run_interrupted_naming_the_resume_command(tmp_path, two_threads):
    """A KeyboardInterrupt still (a caller's ``except Exception`` does not swallow it),
    whose message is the command that continues the run."""
    before = _caller_state()
    out = tmp_path / "run"
    options = smoke_options(out, episodes=4, checkpoint_every=2)
    with pytest.raises(RunInterrupted) as interrupted:
        train_controller(options, callbacks=[CtrlCAfter(3)])
    assert isinstance(interrupted.value, KeyboardInterrupt)
    assert str(interrupted.value) == (
        f"interrupted (episode 2); continue with: python train.py --resume {out}"
    )
    assert _caller_state() == before
