"""``use_sde``: PPO with exploration that persists through an episode (gSDE), and the
controller file such a policy leaves (deterministic only)."""

import json

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from agents.sb3_controller import save_controller
from lrenv.controller import Controller

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def sde_run(tmp_path_factory, train_smoke):
    return train_smoke(tmp_path_factory.mktemp("sde") / "run", "--use-sde", "--seed", "3")


def test_the_run_trains_with_one_exploration_map_per_rollout(sde_run):
    config = json.loads((sde_run / "config.json").read_text())
    assert config["config"]["ppo"]["use_sde"] is True
    model = PPO.load(sde_run / "controller.zip", device="cpu")
    assert model.use_sde and model.sde_sample_freq == -1
    policy = model.policy
    obs = torch.zeros((1, policy.observation_space.shape[0]))
    policy.reset_noise(1)
    first, again = (policy.get_distribution(obs).get_actions() for _ in range(2))
    assert torch.equal(first, again)  # the same map until the next rollout draws one
    policy.reset_noise(1)
    assert not torch.equal(first, policy.get_distribution(obs).get_actions())


def test_its_file_acts_as_sb3_and_refuses_to_sample(sde_run):
    model = PPO.load(sde_run / "controller.zip", device="cpu")
    controller = Controller.load(sde_run)
    assert controller.description["exploration"] == "state-dependent"
    raw = np.random.default_rng(0).normal(size=(8, controller.observation_size))
    actions, _ = controller.predict(raw)
    expected, _ = model.predict(controller.normalize(raw), deterministic=True)
    np.testing.assert_allclose(actions, expected, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="deterministic=True"):
        controller.predict(raw, deterministic=False)


def test_a_policy_without_it_writes_no_exploration_key(smoke_run_folders, tmp_path):
    model = PPO.load(smoke_run_folders["ppo"] / "controller.zip", device="cpu")
    save_controller(model, tmp_path / "plain.zip")
    assert "exploration" not in Controller.load(tmp_path / "plain.safetensors").description
