"""``target_kl``: PPO stops an update's epochs once the policy has moved far enough."""

import json

import pytest
from stable_baselines3 import PPO

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_tiny_target_runs_one_epoch_per_update(smoke_run_folders, tmp_path, train_smoke):
    run = train_smoke(tmp_path / "kl", "--target-kl", "1e-9")
    assert json.loads((run / "config.json").read_text())["config"]["ppo"]["target_kl"] == 1e-9
    stopped = PPO.load(run / "controller.zip", device="cpu")
    plain = PPO.load(smoke_run_folders["ppo"] / "controller.zip", device="cpu")
    assert stopped.target_kl == 1e-9 and plain.target_kl is None
    # the same rollouts; SB3 counts the epochs run: all of them without a target, and only
    # the first with one no step can stay under (the first minibatch's KL is 0, the next
    # one's is not)
    rollouts = plain._n_updates // plain.n_epochs
    assert plain.n_epochs > 1 and stopped._n_updates == rollouts


def test_a_run_without_it_writes_no_key(smoke_run_folders):
    config = json.loads((smoke_run_folders["ppo"] / "config.json").read_text())
    assert "target_kl" not in config["config"]["ppo"]
