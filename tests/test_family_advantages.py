"""``family_advantages``: each rollout's advantages standardised within each task family
before PPO's update, through a resume; refused on an env that is one task; absent from a
default run's files."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from interruptions import Crash, CrashAfterCheckpoint
from stable_baselines3.common.callbacks import BaseCallback

from agents.family_advantages import FamilyAdvantages, standardized_by_group
from agents.run_folder import RunDir
from agents.validators import UsageError, check_ppo

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_each_group_gets_mean_zero_and_unit_spread_in_place_of_its_own():
    rng = np.random.default_rng(0)
    groups = np.array([["a", "b"], ["a", "c"], ["b", "b"], ["a", "b"]] * 5)
    values = rng.normal(size=groups.shape) * np.where(groups == "a", 10.0, 0.1) + 3.0
    out = standardized_by_group(values, groups)
    for group in "abc":
        member = out[groups == group]
        assert abs(member.mean()) < 1e-9 and abs(member.std() - 1.0) < 1e-6, group
        # the order within a group is kept
        assert np.array_equal(np.argsort(member), np.argsort(values[groups == group]))


def test_one_entry_or_constant_group_becomes_zero_and_shapes_must_agree():
    out = standardized_by_group(np.array([5.0, 1.0, 2.0, 2.0]), np.array(["x", "y", "z", "z"]))
    assert out[0] == 0.0 and np.all(out[2:] == 0.0)
    with pytest.raises(ValueError, match="shape"):
        standardized_by_group(np.zeros(3), np.array(["a", "b"]))


def _rollout(callback: BaseCallback, infos_per_step, advantages: np.ndarray) -> np.ndarray:
    """Drive the callback through one rollout as stable-baselines3 does."""
    buffer = SimpleNamespace(advantages=advantages.astype(np.float32))
    callback.model = SimpleNamespace(rollout_buffer=buffer, num_timesteps=0)
    callback.on_rollout_start()
    for infos in infos_per_step:
        callback.update_locals({"infos": infos})
        callback.on_step()
    callback.on_rollout_end()
    return buffer.advantages


def test_the_callback_standardises_the_buffer_by_the_family_each_step_reported():
    families = [["digits-mlp", "cifar10-mlp"], ["digits-mlp", "cifar10-mlp"]] * 4
    families[5] = ["cifar10-mlp", "cifar10-mlp"]  # a new episode of another family on env 0
    advantages = np.arange(16, dtype=np.float64).reshape(8, 2) ** 2
    infos = [[{"task_family": f} for f in row] for row in families]
    out = _rollout(FamilyAdvantages(), infos, advantages)
    assert np.allclose(out, standardized_by_group(advantages, np.array(families)), atol=1e-6)
    # the next rollout starts its record afresh
    out = _rollout(FamilyAdvantages(), infos[:2], advantages[:2])
    assert out.shape == (2, 2)


def test_an_env_that_names_no_family_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"task_family.*lrenv/TaskSet-v0"):
        _rollout(FamilyAdvantages(), [[{"task_family": "a"}, {}]], np.zeros((1, 2)))


@pytest.mark.parametrize("value", [1, "yes", None])
def test_only_a_boolean_is_accepted(value):
    with pytest.raises(UsageError, match="family_advantages"):
        check_ppo({"family_advantages": value})


class _AdvantageSpy(BaseCallback):
    """Keep each rollout's advantages as PPO's update will see them."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[np.ndarray] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.seen.append(self.model.rollout_buffer.advantages.copy())


def _train_smoke_tasks(out, *flags, callbacks=()):
    import train  # the script at the project root (pytest's pythonpath)

    spy = _AdvantageSpy()
    run = train.main(
        [
            "--preset",
            "smoke-tasks",
            "--episodes",
            "8",
            "--no-progress",
            "--figure-every",
            "0",
            "--out",
            str(out),
            *flags,
        ],
        callbacks=[spy, *callbacks],
    )
    return run, spy.seen


def test_a_task_set_run_updates_on_advantages_standardised_per_family(tmp_path):
    # the smoke set's training tasks are all one family (synthetic-mlp): each rollout's
    # advantages are standardised as a whole, which without the option they are not
    run, seen = _train_smoke_tasks(tmp_path / "on", "--family-advantages")
    assert len(seen) == 2
    for advantages in seen:
        assert abs(advantages.mean()) < 1e-5 and abs(advantages.std() - 1.0) < 1e-4
    assert json.loads((run / "config.json").read_text())["config"]["ppo"]["family_advantages"]
    run, seen = _train_smoke_tasks(tmp_path / "off")
    assert not any(abs(a.std() - 1.0) < 1e-3 and abs(a.mean()) < 1e-4 for a in seen)
    assert "family_advantages" not in json.loads((run / "config.json").read_text())["config"]["ppo"]


def test_a_single_task_env_refuses_the_option_before_training(tmp_path, capsys):
    import train

    with pytest.raises(SystemExit):
        train.main(["--preset", "smoke", "--family-advantages", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert "family_advantages" in err and "lrenv/TaskSet-v0" in err
    assert not (tmp_path / "r").exists()


def test_a_killed_run_resumes_with_the_option_on(tmp_path):
    import train

    run = RunDir(tmp_path / "run")
    with pytest.raises(Crash):
        _train_smoke_tasks(
            run.path, "--family-advantages", "--checkpoint-every", "4",
            callbacks=[CrashAfterCheckpoint(run)],
        )  # fmt: skip
    spy = _AdvantageSpy()
    train.main(["--resume", str(run.path), "--no-progress"], callbacks=[spy])
    assert run.read_config()["config"]["ppo"]["family_advantages"] is True
    assert len(spy.seen) == 1  # the second rollout, after the checkpoint at 4 episodes
    assert abs(spy.seen[0].mean()) < 1e-5 and abs(spy.seen[0].std() - 1.0) < 1e-4
