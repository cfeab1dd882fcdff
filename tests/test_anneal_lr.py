"""``anneal_lr``: both Adam rates decay linearly with the budget left, through a resume,
and a run without it writes what runs wrote before it existed."""

import json
import zipfile

import pytest
from interruptions import Crash, CrashAfterCheckpoint
from stable_baselines3.common.callbacks import BaseCallback
from tensorboard_scalars import scalars

import train
from agents.run_folder import RunDir
from agents.validators import UsageError, check_ppo
from lrenv.threads import torch_threads

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# 7 smoke episodes, 2 a rollout: updates after rollouts that start with 7, 5, 3, 1 left.
SHARES = [7 / 7, 5 / 7, 3 / 7, 1 / 7]


def smoke(out, *flags: str) -> list[str]:
    return [
        "--preset", "smoke", "--out", str(out), "--no-progress", "--figure-every", "0",
        "--episodes", "7", *flags,
    ]  # fmt: skip


def logged_rates(run: RunDir, group: str) -> list[float]:
    return scalars(run.path, f"train/learning_rate_{group}")


def saved_data(run: RunDir) -> dict:
    with zipfile.ZipFile(run.controller) as archive:
        return json.loads(archive.read("data"))


@pytest.mark.parametrize("flags", [(), ("--recurrent",)], ids=["ppo", "recurrent"])
def test_each_update_takes_the_share_of_the_budget_left_at_its_rollout_start(tmp_path, flags):
    run = RunDir(train.main(smoke(tmp_path / "run", "--anneal-lr", *flags)))
    assert run.read_config()["config"]["ppo"]["anneal_lr"] is True
    assert logged_rates(run, "actor") == pytest.approx([1e-3 * s for s in SHARES], rel=1e-6)
    assert logged_rates(run, "critic") == pytest.approx([5e-3 * s for s in SHARES], rel=1e-6)
    assert saved_data(run)["anneal_lr"] is True


class RecordRates(BaseCallback):
    """The actor's rate as each rollout starts (the last update's) and when training ends."""

    def __init__(self) -> None:
        super().__init__()
        self.rates: list[float] = []

    def _record(self) -> None:
        self.rates.append(self.model.policy.optimizer.param_groups[0]["lr"] / 1e-3)

    def _on_rollout_start(self) -> None:
        self._record()

    def _on_training_end(self) -> None:
        self._record()

    def _on_step(self) -> bool:
        return True


def test_a_resumed_run_goes_on_down_the_same_line(tmp_path, capsys):
    run = RunDir(tmp_path / "run")
    before, after = RecordRates(), RecordRates()
    with pytest.raises(Crash):
        train.main(
            smoke(run.path, "--anneal-lr", "--checkpoint-every", "2"),
            callbacks=[before, CrashAfterCheckpoint(run)],
        )
    # The optimizer's own rate, then the first two updates'; killed after the second.
    assert before.rates == pytest.approx([1.0, *SHARES[:2]], rel=1e-6)
    with pytest.raises(SystemExit):
        train.main(["--resume", str(run.path), "--no-anneal-lr"])
    assert "ppo.anneal_lr: true -> false" in capsys.readouterr().err
    with torch_threads(1):
        train.main(["--resume", str(run.path), "--no-progress"], callbacks=[after])
    # The checkpoint's rate (the second update's), then the last two updates'.
    assert after.rates == pytest.approx(SHARES[1:], rel=1e-6)
    # TensorBoard shows each update once, the one trained just before the kill included
    assert logged_rates(run, "actor") == pytest.approx([1e-3 * s for s in SHARES], rel=1e-6)


def test_without_it_the_files_hold_no_trace_of_it(smoke_run_folders):
    run = RunDir(smoke_run_folders["ppo"])
    assert "anneal_lr" not in run.read_config()["config"]["ppo"]
    assert "anneal_lr" not in saved_data(run)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_anything_but_true_or_false_is_refused(value):
    with pytest.raises(UsageError, match="anneal_lr"):
        check_ppo({"anneal_lr": value})
