"""train.py and agents/ppo.py on the synthetic task with the smoke preset (seconds each)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from interruptions import Crash, CrashAfterCheckpoint
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from tensorboard_scalars import scalars, steps

import train
from agents.ppo import TwoRatePPO, group_rates
from agents.presets import PRESETS
from agents.run_folder import RunDir
from agents.vec_env import BatchedVecEnv
from lrenv.controller import Controller

PAPER_RATES = {"actor": 1e-3, "critic": 5e-3}


def smoke(out, *flags: str) -> list[str]:
    return ["--preset", "smoke", "--out", str(out), "--no-progress", "--figure-every", "4", *flags]


@pytest.mark.parametrize(
    ("flags", "algorithm"),
    [((), PPO), (("--recurrent", "--n-envs", "2", "--episodes", "4"), RecurrentPPO)],
    ids=["ppo", "recurrent-2-envs"],
)
def test_train_saves_a_controller_that_loads_and_predicts(tmp_path, flags, algorithm):
    run = RunDir(train.main(smoke(tmp_path / "run", *flags)))
    config = run.read_config()
    episodes = config["config"]["episodes"]
    assert run.controller.is_file() and run.vecnormalize.is_file()
    assert run.controller_file.is_file()  # the code-free controller beside the zip
    assert run.last_checkpoint().progress["episodes_done"] == episodes

    # Plain stable-baselines3 loading, as DESIGN promises; the optimizer state comes along.
    model = algorithm.load(run.controller, device="cpu")
    assert group_rates(model) == PAPER_RATES
    adam_state = model.policy.optimizer.state_dict()["state"]
    assert len(adam_state) == len(list(model.policy.parameters()))
    assert all(float(s["step"]) > 0 for s in adam_state.values())

    controller = Controller.load(run.path)  # reads controller.safetensors
    assert controller.is_recurrent == (algorithm is RecurrentPPO)
    assert controller.config["env_id"] == "lrenv/Synthetic-v0"
    assert controller.config["episodes"] == episodes and controller.config["seed"] == 0
    norm = controller.normalization
    assert norm["mean"].dtype == np.float32 and norm["mean"].shape == (7,)
    assert np.all(norm["var"] > 0) and norm["clip"] == 10.0
    raw = np.array([2.0, 2.1, 0.01, 1e-4, 0.0, 0.01, -2.0], dtype=np.float32)
    action, _ = controller.predict(raw)
    assert action.shape == (1,) and -1 <= action[0] <= 1
    expected, _ = model.predict(controller.normalize(raw), deterministic=True)
    np.testing.assert_allclose(action, expected)

    # One trainee/ point per episode, SB3's own scalars, both rates in TensorBoard.
    assert len(scalars(run.path, "trainee/best_val_loss")) == episodes
    assert len(scalars(run.path, "trainee/return")) == episodes
    assert scalars(run.path, "rollout/ep_rew_mean")
    updates = scalars(run.path, "train/learning_rate_actor")
    assert updates == pytest.approx([1e-3] * len(updates)) and updates
    assert scalars(run.path, "train/learning_rate_critic") == pytest.approx([5e-3] * len(updates))


@pytest.mark.parametrize("every", ["0", "4"], ids=["no-checkpoints", "checkpoint-every-4"])
def test_every_update_is_logged_at_the_step_its_rollout_ended(tmp_path, every):
    # 7 episodes, 2 a rollout: 4 updates; SB3 writes time/fps once per rollout, as it ends.
    run = RunDir(
        train.main(smoke(tmp_path / "run", "--episodes", "7", "--checkpoint-every", every))
    )
    rollout_ends = steps(run.path, "time/fps")
    assert len(rollout_ends) == 4 and rollout_ends == sorted(set(rollout_ends))
    assert steps(run.path, "train/learning_rate_actor") == rollout_ends
    assert steps(run.path, "train/value_loss") == rollout_ends


class RecordEnv(BaseCallback):
    """Keep the innermost training VecEnv (under VecNormalize and VecMonitor)."""

    def __init__(self) -> None:
        super().__init__()
        self.venv = None

    def _on_training_start(self) -> None:
        self.venv = self.training_env.unwrapped

    def _on_step(self) -> bool:
        return True


class RecordNormalization(BaseCallback):
    """Keep the training env's VecNormalize, as it is when training ends."""

    def __init__(self) -> None:
        super().__init__()
        self.vecnormalize = None

    def _on_training_end(self) -> None:
        self.vecnormalize = self.model.get_vec_normalize_env()

    def _on_step(self) -> bool:
        return True


def test_the_saved_controller_normalises_as_training_did(tmp_path):
    """The statistics in controller.safetensors are those VecNormalize applied in training:
    the controller's normalisation equals VecNormalize's own on the same observations."""
    record = RecordNormalization()
    run = RunDir(train.main(smoke(tmp_path / "run", "--episodes", "4"), callbacks=[record]))
    vecnormalize = record.vecnormalize
    assert vecnormalize is not None and vecnormalize.obs_rms.count > 4 * 20
    controller = Controller.load(run.path)
    raw = np.random.default_rng(0).normal(0, 3, size=(16, 7)).astype(np.float32)
    np.testing.assert_allclose(
        controller.normalize(raw), vecnormalize.normalize_obs(raw), rtol=1e-6, atol=1e-6
    )


def test_batched_training_saves_a_controller_that_loads(tmp_path, capsys):
    record = RecordEnv()
    flags = smoke(tmp_path / "run", "--batched", "--n-envs", "2", "--episodes", "4")
    run = RunDir(train.main(flags, callbacks=[record]))
    assert isinstance(record.venv, BatchedVecEnv) and record.venv.num_envs == 2
    config = run.read_config()
    assert config["runtime"] == {"batched": True, "checkpoint_every": 20}
    assert "batched" not in config["config"]
    progress = run.last_checkpoint().progress
    assert progress["batched"] and progress["finished"] and progress["episodes_done"] == 4
    # VecMonitor's episode records reach the tracker once per episode, as Monitor's do
    assert len(scalars(run.path, "trainee/return")) == 4

    controller = Controller.load(run.controller)
    assert controller.normalization["mean"].shape == (7,)
    action, _ = controller.predict(np.zeros(7, dtype=np.float32))
    assert action.shape == (1,) and -1 <= action[0] <= 1

    # A runtime choice, not configuration: a resume may change it without being refused.
    train.main(["--resume", str(run.path), "--no-batched"])
    assert "is finished" in capsys.readouterr().out


def test_two_rates_survive_updates_and_reloading(tmp_path):
    run = RunDir(train.main(smoke(tmp_path / "run", "--actor-lr", "2e-4", "--critic-lr", "3e-3")))
    model = TwoRatePPO.load(run.controller, env=None, device="cpu")
    model.set_logger(Logger(folder=None, output_formats=[]))
    assert group_rates(model) == {"actor": 2e-4, "critic": 3e-3}
    # SB3 resets every group to learning_rate at each update; ours restores each group's.
    for group in model.policy.optimizer.param_groups:
        group["lr"] = 0.5
    model._update_learning_rate(model.policy.optimizer)
    assert group_rates(model) == {"actor": 2e-4, "critic": 3e-3}
    names = [n for n, _ in model.policy.named_parameters()]
    actor, critic = (group["params"] for group in model.policy.optimizer.param_groups)
    assert len(actor) + len(critic) == len(names)
    critic_names = {n for n, p in model.policy.named_parameters() if any(p is q for q in critic)}
    assert critic_names == {
        "mlp_extractor.value_net.0.weight",
        "mlp_extractor.value_net.0.bias",
        "value_net.weight",
        "value_net.bias",
    }


def test_interrupted_run_resumes_to_the_episodes_asked_for(tmp_path, capsys):
    run = RunDir(tmp_path / "run")
    # 7 episodes, 2 a rollout: the last rollout is shortened to one episode.
    flags = smoke(run.path, "--episodes", "7", "--checkpoint-every", "2")
    with pytest.raises(Crash):
        train.main(flags, callbacks=[CrashAfterCheckpoint(run)])
    checkpoint = run.last_checkpoint()
    assert checkpoint.progress["episodes_done"] == 4 and not checkpoint.progress["finished"]
    assert not run.controller.exists()
    assert sorted(p.name for p in run.checkpoints.iterdir()) == [checkpoint.path.name]

    # A resume that changes the configuration is refused, saying what differs.
    with pytest.raises(SystemExit):
        train.main(["--resume", str(run.path), "--seed", "3", "--episodes", "7"])
    err = capsys.readouterr().err
    assert "refusing to resume" in err and "seed: 0 -> 3" in err
    # As is a fresh run into a folder that holds one.
    with pytest.raises(SystemExit):
        train.main(smoke(run.path))
    assert "already holds a training run" in capsys.readouterr().err

    threads = torch.get_num_threads()
    train.main(["--resume", str(run.path), "--no-progress", "--episodes", "7"])
    assert torch.get_num_threads() == threads
    progress = json.loads(run.pointer.read_text())
    assert progress["finished"] and progress["episodes_done"] == 7
    assert progress["num_timesteps"] == progress["total_timesteps"] == 7 * 20
    model = PPO.load(run.controller, device="cpu")
    assert model.num_timesteps == 140 and model.lrenv_config["episodes_done"] == 7
    # The 4 episodes before the crash and the 3 after it, each logged once.
    assert len(scalars(run.path, "trainee/return")) == 7


def test_help_lists_every_preset_and_ppo_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for text in (*(f"\n{name}: " for name in PRESETS), "--actor-lr", "--env-kwargs"):
        assert text in out
    assert "--confirm-seeds" in out and "confirm_seeds=8" in out  # the cpu preset's


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--n-envs", "3"), "must be a multiple of n_envs"),
        (("--env-kwargs", "[1]"), "expected a JSON object"),
        (("--preset", "laptop"), "unknown preset 'laptop'"),
        (("--select-every", "-1"), "select_every must be an integer >= 0"),
        (("--select-seeds", "0"), "select_seeds must be a positive integer"),
        (
            ("--batched", "--env-kwargs", '{"optimizer": "schedule_free"}'),
            "--batched trains plain SGD only",
        ),
    ],
)
def test_bad_configurations_are_refused_before_training(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit):
        train.main([*smoke(tmp_path / "run"), *flags])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_snapshot_selection_keeps_the_best_snapshot_on_validation(tmp_path):
    run = RunDir(train.main(smoke(tmp_path / "run", "--select-every", "4", "--select-seeds", "2")))
    selection = json.loads((run.path / "selection.json").read_text())
    assert [s["episodes"] for s in selection["scores"]] == [0, 4, 8]
    assert selection["seeds"] == [1_000_000, 1_000_001]  # the baselines' selection seeds
    best = min(selection["scores"], key=lambda s: s["best_val_loss"])
    assert selection["chosen"] == best["snapshot"]
    # controller.zip is that snapshot, byte for byte, and loads like any controller; so is
    # the code-free file, which every snapshot has beside its zip
    chosen = run.path / "snapshots" / selection["chosen"]
    assert run.controller.read_bytes() == chosen.read_bytes()
    snapshots = sorted((run.path / "snapshots").iterdir())
    assert [p.suffix for p in snapshots] == [".safetensors", ".zip"] * 3
    assert run.controller_file.read_bytes() == chosen.with_suffix(".safetensors").read_bytes()
    assert Controller.load(run.controller).config["episodes_done"] == best["episodes"]
    # its score is the validation loss the snapshot really gets on those seeds
    from agents.jobs import Job, run_job
    from agents.tasks import Task

    task = Task("lrenv/Synthetic-v0", run.read_config()["config"]["env_kwargs"])
    rerun = [
        run_job(Job("controller", task, seed, controller=str(run.controller), test=False))
        for seed in selection["seeds"]
    ]
    assert np.mean([r.best_val_loss for r in rerun]) == pytest.approx(best["best_val_loss"])
    assert len(scalars(run.path, "eval/snapshot_val_loss")) == 3
