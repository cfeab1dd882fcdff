"""``use_sde``: PPO with exploration that persists through an episode (gSDE), and the
controller file such a policy leaves (deterministic only)."""

import json

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

import agents.ppo
from agents.sb3_controller import save_controller
from agents.validators import UsageError, check_ppo
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


def test_a_new_map_for_each_ended_episode_and_only_for_it(sde_run):
    policy = PPO.load(sde_run / "controller.zip", device="cpu").policy
    torch.manual_seed(0)
    policy.reset_noise(3)
    before = policy.action_dist.exploration_matrices.clone()
    agents.ppo.redraw_exploration(policy, np.array([True, False, True]))
    after = policy.action_dist.exploration_matrices
    assert after.shape == before.shape and not after.requires_grad
    assert torch.equal(after[1], before[1])
    assert not torch.equal(after[0], before[0]) and not torch.equal(after[2], before[2])
    # one env: stable-baselines3 reads the single map, which an ended episode redraws
    policy.reset_noise(1)
    single = policy.action_dist.exploration_mat.clone()
    agents.ppo.redraw_exploration(policy, np.array([True]))
    assert not torch.equal(single, policy.action_dist.exploration_mat)


def test_an_episode_draw_run_redraws_once_per_episode(tmp_path, train_smoke, monkeypatch):
    ended = []
    redraw = agents.ppo.redraw_exploration
    monkeypatch.setattr(
        agents.ppo, "redraw_exploration", lambda p, e: (ended.append(e.sum()), redraw(p, e))
    )
    run = train_smoke(tmp_path / "run", "--use-sde", "--sde-draw", "episode", "--episodes", "4")
    assert json.loads((run / "config.json").read_text())["config"]["ppo"]["sde_draw"] == "episode"
    (progress,) = run.glob("checkpoints/*/progress.json")
    # every episode's end, none other (a diverged episode ends early: more than 4 may run)
    assert sum(ended) == json.loads(progress.read_text())["episodes_done"] >= 4


def test_a_rollout_draw_run_writes_no_key(sde_run):
    assert "sde_draw" not in json.loads((sde_run / "config.json").read_text())["config"]["ppo"]


def test_an_episode_draw_without_gsde_is_refused():
    from agents.presets import PPOSettings

    with pytest.raises(UsageError, match="use_sde"):
        check_ppo(PPOSettings(sde_draw="episode"))
    with pytest.raises(UsageError, match="sde_draw"):
        check_ppo({"sde_draw": "sometimes"})
    check_ppo(PPOSettings(use_sde=True, sde_draw="episode"))
