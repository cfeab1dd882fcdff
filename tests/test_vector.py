"""Batched trainees (lrenv.vector): each env equals a single env with the same seed."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

from agents.vec_env import BatchedVecEnv, make_batched_sb3_vec_env
from lrenv.batched_trainee import BatchedTrainee
from lrenv.data import make_synthetic
from lrenv.env import LRScheduleEnv
from lrenv.trainee import Trainee
from lrenv.vector import BatchedEnvs, make_batched_vector_env

# Batched and single trainees sum in different orders, so they agree to float rounding,
# which SGD amplifies a little over an episode.
RTOL, ATOL = 1e-4, 1e-5


def assert_same_step(single, batched, rtol=RTOL, atol=ATOL):
    """Two ``(obs, reward, terminated, truncated, info)`` agree within tolerance."""
    obs_a, rew_a, term_a, trunc_a, info_a = single
    obs_b, rew_b, term_b, trunc_b, info_b = batched
    np.testing.assert_allclose(obs_b, obs_a, rtol=rtol, atol=atol)
    assert rew_b == pytest.approx(rew_a, rel=rtol, abs=atol)
    assert (term_a, trunc_a) == (term_b, trunc_b)
    assert set(info_a) == set(info_b)
    assert info_a["lr"] == pytest.approx(info_b["lr"], rel=1e-12)
    assert info_a["sgd_step"] == info_b["sgd_step"]
    assert info_a["diverged"] == info_b["diverged"]
    np.testing.assert_allclose(info_b["val_loss"], info_a["val_loss"], rtol=rtol, atol=atol)


def test_sb3_adapter_equals_dummy_vec_env_over_episodes_with_divergence():
    """Two episodes and more of Synthetic-v0 (an MLP), auto-resets included; single
    trainees are made to diverge (the rate jumps to 1e8) at different times, so
    divergence and early resets of single slots are covered too."""
    kwargs = {"factor_base": 1e12, "lr_bounds": (1e-6, 1e8)}
    single = make_vec_env(
        "lrenv/Synthetic-v0", n_envs=3, seed=7, vec_env_cls=DummyVecEnv, env_kwargs=kwargs
    )
    batched = make_batched_sb3_vec_env("lrenv/Synthetic-v0", 3, seed=7, **kwargs)
    np.testing.assert_allclose(batched.reset(), single.reset(), rtol=RTOL, atol=ATOL)
    rng = np.random.default_rng(0)
    diverged = dones = 0
    for step in range(45):
        actions = rng.uniform(-0.01, 0.005, (3, 1)).astype(np.float32)  # x0.76 to x1.15
        if step in (4, 30):
            actions[step % 3] = 1.0
        obs_a, rew_a, done_a, infos_a = single.step(actions)
        obs_b, rew_b, done_b, infos_b = batched.step(actions)
        np.testing.assert_array_equal(done_a, done_b)
        np.testing.assert_allclose(obs_b, obs_a, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(rew_b, rew_a, rtol=RTOL, atol=ATOL)
        for info_a, info_b in zip(infos_a, infos_b, strict=True):
            assert info_a.keys() == info_b.keys()
            assert info_a["lr"] == pytest.approx(info_b["lr"], rel=1e-12)
            assert info_a["diverged"] == info_b["diverged"]
            diverged += info_a["diverged"]
            if "episode" in info_a:  # Monitor per env there, VecMonitor here: the same record
                assert info_b["episode"]["l"] == info_a["episode"]["l"]
                assert info_b["episode"]["r"] == pytest.approx(info_a["episode"]["r"], rel=RTOL)
            if "terminal_observation" in info_a:
                np.testing.assert_allclose(
                    info_b["terminal_observation"],
                    info_a["terminal_observation"],
                    rtol=RTOL,
                    atol=ATOL,
                )
        dones += done_a.sum()
    assert diverged >= 1 and dones > diverged  # both kinds of episode end happened
    single.close()
    batched.close()


def _compare_envs(n, env_kwargs, actions, seed=0, rtol=RTOL, atol=ATOL, strategy="auto"):
    """Step ``n`` single envs and one BatchedEnvs side by side, resetting on episode end."""
    singles = [LRScheduleEnv(**env_kwargs) for _ in range(n)]
    batch = BatchedEnvs(n, strategy=strategy, **env_kwargs)
    for i in range(n):
        obs_a, _ = singles[i].reset(seed=seed + i)
        obs_b, _ = batch.envs[i].reset(seed=seed + i)
        np.testing.assert_allclose(obs_b, obs_a, rtol=rtol, atol=atol)
    for row in actions:
        results = batch.step(list(row))
        for i, (env, action, result) in enumerate(zip(singles, row, results, strict=True)):
            expected = env.step(action)
            assert_same_step(expected, result, rtol, atol)
            if expected[2] or expected[3]:
                env.reset()
                batch.envs[i].reset()
    return singles, batch


@pytest.mark.parametrize("strategy", ["vmap", "loop"])
def test_cnn_with_momentum_equals_single_envs(strategy):
    kwargs = {
        "dataset": "synthetic",
        "model": "cnn",
        "batch_size": 32,
        "total_steps": 40,
        "momentum": 0.9,
        "initial_lr": 0.02,
        "val_size": 200,
        "progress_feature": True,
        "epochs_feature": True,
        "feature_transform": "log",
        "device": "cpu",
    }
    actions = np.random.default_rng(1).uniform(-1, 1, (6, 3, 1)).astype(np.float32)
    _compare_envs(3, kwargs, actions, strategy=strategy)


BF16_KWARGS = {
    "dataset": "synthetic",
    "batch_size": 32,
    "total_steps": 40,
    "initial_lr": 0.05,
    "val_size": 200,
    "precision": "bf16",
    "device": "cpu",
}


def test_bf16_loop_strategy_equals_bf16_single_envs():
    """Under bf16 autocast, looping runs the single trainee's kernels: fp32's tolerance."""
    actions = np.random.default_rng(2).uniform(-1, 1, (5, 3, 1)).astype(np.float32)
    _compare_envs(3, {**BF16_KWARGS, "model": "cnn"}, actions, strategy="loop")


def test_bf16_vmap_strategy_equals_bf16_single_envs_to_bf16_resolution():
    """vmap's batched products round to bfloat16 from sums taken in another order: one
    bf16 ulp is 0.4%, as large as the whole difference between bf16 and fp32 after a few
    steps, so the comparison is to bf16's resolution (1e-2), and a second check shows the
    batched forward did run in bf16 (it differs from the fp32 batched one)."""
    kwargs = {**BF16_KWARGS, "model": "mlp"}
    actions = np.zeros((4, 3, 1), np.float32)
    _compare_envs(3, kwargs, actions, rtol=1e-2, atol=1e-4, strategy="vmap")
    final_obs = {}
    for precision in ("bf16", "fp32"):
        batch = BatchedEnvs(3, strategy="vmap", **{**kwargs, "precision": precision})
        for i, env in enumerate(batch.envs):
            env.reset(seed=i)
        for row in actions:
            results = batch.step(list(row))
        final_obs[precision] = results[0][0]
    assert not np.array_equal(final_obs["bf16"], final_obs["fp32"])


@pytest.mark.parametrize("strategy", ["vmap", "loop"])
@pytest.mark.parametrize("model", ["cnn", "resnet"])
def test_batched_trainee_equals_single_trainees(model, strategy):
    """Weights, BatchNorm statistics (ResNet) and losses after a few steps with momentum.

    ResNet: BatchNorm in training mode on each trainee's own batch, running statistics per
    trainee. Its bias gradients are sums that cancel to small numbers over a batch of 8,
    so their rounding differences are relatively large and grow from step to step: the
    weights are compared by relative norm, after two steps.
    """
    data = make_synthetic()
    # vmap computes channels-first; loop uses the single trainee's layout
    layout = None if strategy == "loop" else False
    singles = [Trainee(data, model, 8, 0.9, val_size=32, channels_last=layout) for _ in range(3)]
    batched = BatchedTrainee(data, model, 8, 3, momentum=0.9, val_size=32, strategy=strategy)
    assert batched.strategy == strategy
    for i, single in enumerate(singles):
        single.reset(seed=i, lr=0.02 * (i + 1))
        batched.reset_slot(i, seed=i, lr=0.02 * (i + 1))
    batched.train_steps(1, [1])  # a subset steps alone; the others must not move
    singles[1].train_steps(1)
    losses = batched.train_steps(2)
    for i, single in enumerate(singles):
        assert losses[i] == pytest.approx(single.train_steps(2), rel=1e-5)
        expected, got = single.model.state_dict(), batched.state_dict(i)
        assert expected.keys() == got.keys()
        for key, value in expected.items():  # weights, running means and variances, counts
            if key.endswith("num_batches_tracked"):
                assert got[key].item() == value.item() == 2 + (i == 1)
            else:
                error = (got[key] - value).norm() / value.norm().clamp_min(1e-12)
                assert error < 1e-2, key
    for single, evaluation in zip(singles, batched.evaluate(), strict=True):
        assert evaluation.loss == pytest.approx(single.evaluate().loss, rel=1e-3)


def test_resnet_batchnorm_equals_single_envs():
    """The env level, with BatchNorm and keep_best's checkpoint."""
    kwargs = {
        "dataset": "synthetic",
        "model": "resnet",
        "batch_size": 8,
        "steps_per_action": 2,
        "total_steps": 4,
        "momentum": 0.9,
        "initial_lr": 0.01,
        "val_size": 32,
        "keep_best": True,
        "device": "cpu",
    }
    actions = np.zeros((2, 2, 1), np.float32)
    singles, batch = _compare_envs(2, kwargs, actions)
    for env, slot_env in zip(singles, batch.envs, strict=True):
        expected, got = env.test_best(), slot_env.test_best()
        assert got["test_loss"] == pytest.approx(expected["test_loss"], rel=RTOL)


def test_gymnasium_adapter_equals_sync_vector_env_next_step_autoreset():
    kwargs = {"total_steps": 50}
    single = gym.make_vec("lrenv/Synthetic-v0", num_envs=2, vectorization_mode="sync", **kwargs)
    batched = make_batched_vector_env("lrenv/Synthetic-v0", 2, **kwargs)
    assert batched.single_observation_space == single.single_observation_space
    obs_a, _ = single.reset(seed=3)
    obs_b, _ = batched.reset(seed=3)
    np.testing.assert_allclose(obs_b, obs_a, rtol=RTOL, atol=ATOL)
    actions = np.random.default_rng(2).uniform(-1, 1, (12, 2, 1)).astype(np.float32)
    steps, truncations = [], []
    for row in actions:
        obs_a, rew_a, term_a, trunc_a, info_a = single.step(row)
        obs_b, rew_b, term_b, trunc_b, info_b = batched.step(row)
        np.testing.assert_allclose(obs_b, obs_a, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(rew_b, rew_a, rtol=RTOL, atol=ATOL)
        np.testing.assert_array_equal(trunc_a, trunc_b)
        np.testing.assert_array_equal(term_a, term_b)
        np.testing.assert_array_equal(info_a["sgd_step"], info_b["sgd_step"])
        steps.append(info_b["sgd_step"].tolist())
        truncations.append(trunc_b.tolist())
    # Two whole episodes of 5 decisions: truncated at SGD step 50, then the next step is
    # the reset (NextStep autoreset: SGD step 0), and the second episode runs like the first.
    episode = [10, 20, 30, 40, 50, 0]
    assert steps == [[s, s] for s in episode * 2]
    assert truncations == [[s == 50, s == 50] for s in episode * 2]
    single.close()
    batched.close()


def test_gymnasium_adapter_same_step_autoreset_reports_final_obs():
    venv = make_batched_vector_env("lrenv/Synthetic-v0", 2, autoreset_mode="SameStep")
    venv.reset(seed=0)
    for _ in range(20):
        _, _, _, truncated, info = venv.step(np.zeros((2, 1), np.float32))
    assert truncated.all() and "final_obs" in info
    assert (info["sgd_step"] == 0).all()  # the returned observation is the new episode's
    venv.close()


def test_bad_action_raises_and_leaves_every_env_unchanged():
    batch = BatchedEnvs(2, "lrenv/Synthetic-v0")
    for i, env in enumerate(batch.envs):
        env.reset(seed=i)
    before = [(env.trainee.lr, env.trainee.sgd_step) for env in batch.envs]
    with pytest.raises(ValueError):
        batch.step([np.array([0.5], np.float32), np.array([np.nan], np.float32)])
    assert [(env.trainee.lr, env.trainee.sgd_step) for env in batch.envs] == before


def test_sb3_ppo_trains_on_batched_vec_env_and_env_methods_work():
    venv = make_batched_sb3_vec_env("lrenv/Synthetic-v0", 2, seed=0, keep_best=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = PPO("MlpPolicy", venv, n_steps=20, batch_size=20, n_epochs=1, seed=0)
        model.learn(total_timesteps=40)
    assert venv.get_attr("decisions") == [20, 20]
    results = venv.env_method("test_best")
    assert all(0 < r["test_loss"] < 10 for r in results)
    assert isinstance(venv.unwrapped, BatchedVecEnv)
    venv.close()


def test_only_lrenv_ids_can_be_batched():
    with pytest.raises(ValueError, match="LRScheduleEnv"):
        BatchedEnvs(2, "CartPole-v1")
    with pytest.raises(ValueError, match="positive integer"):
        BatchedEnvs(0, "lrenv/Synthetic-v0")


def test_batched_envs_refuse_an_optimizer_they_do_not_run():
    from lrenv.vector import BatchedEnvs

    with pytest.raises(ValueError, match="plain SGD only"):
        BatchedEnvs(2, "lrenv/Synthetic-v0", optimizer="schedule_free")


def test_a_finished_env_in_a_batched_step_leaves_every_env_unchanged():
    from lrenv.vector import BatchedEnvs

    batch = BatchedEnvs(2, "lrenv/Synthetic-v0", total_steps=20)
    for env in batch.envs:
        env.reset(seed=0)
    batch.step([np.zeros(1, np.float32)], [1])
    batch.step([np.zeros(1, np.float32)], [1])  # env 1 is truncated now
    before = [(env.trainee.lr, env.trainee.sgd_step) for env in batch.envs]
    with pytest.raises(RuntimeError, match="episode has ended"):
        batch.step([np.ones(1, np.float32), np.ones(1, np.float32)])
    assert [(env.trainee.lr, env.trainee.sgd_step) for env in batch.envs] == before


def test_both_trainees_implement_the_declared_trainee_interface():
    """Every member of TraineeInterface exists on Trainee and on TraineeSlot, taking the same
    parameters, so the env's logic runs on either."""
    import inspect

    from lrenv.batched_trainee import TraineeSlot
    from lrenv.trainee import TraineeInterface

    members = {
        name
        for name in (*vars(TraineeInterface), *TraineeInterface.__annotations__)
        if not name.startswith("_")
    }
    assert {"reset", "train_steps", "evaluate", "test_best", "device"} <= members
    dataset = make_synthetic()
    single = Trainee(dataset, "mlp", 8)
    slot = TraineeSlot(BatchedTrainee(dataset, "mlp", 8, n=2), 1)
    for trainee in (single, slot):
        trainee.reset(seed=0, lr=0.1)
        for name in sorted(members):
            assert hasattr(trainee, name), f"{type(trainee).__name__} lacks {name}"
            wanted = getattr(TraineeInterface, name, None)
            if inspect.isfunction(wanted):
                # the interface's parameters first; extra ones only with defaults
                got = list(inspect.signature(getattr(trainee, name)).parameters.values())
                asked = list(inspect.signature(wanted).parameters)[1:]
                assert [p.name for p in got[: len(asked)]] == asked, (type(trainee), name)
                assert all(p.default is not p.empty for p in got[len(asked) :]), name


def test_gymnasium_adapter_partial_reset_equals_sync_vector_env():
    """After both episodes end, a reset of env 0 only (``reset_mask``): the next step trains
    env 0 and resets env 1, in the batched adapter as in SyncVectorEnv."""
    kwargs = {"total_steps": 20}
    single = gym.make_vec("lrenv/Synthetic-v0", num_envs=2, vectorization_mode="sync", **kwargs)
    batched = make_batched_vector_env("lrenv/Synthetic-v0", 2, **kwargs)
    zeros = np.zeros((2, 1), np.float32)
    for venv in (single, batched):
        venv.reset(seed=1)
        venv.step(zeros)
        *_, truncated, _ = venv.step(zeros)
        assert truncated.all()
    obs_a, _ = single.reset(options={"reset_mask": np.array([True, False])})
    obs_b, _ = batched.reset(options={"reset_mask": np.array([True, False])})
    np.testing.assert_allclose(obs_b, obs_a, rtol=RTOL, atol=ATOL)
    obs_a, rew_a, _, _, info_a = single.step(zeros)
    obs_b, rew_b, _, _, info_b = batched.step(zeros)
    assert info_a["sgd_step"].tolist() == info_b["sgd_step"].tolist() == [10, 0]
    np.testing.assert_allclose(obs_b, obs_a, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(rew_b, rew_a, rtol=RTOL, atol=ATOL)
    single.close()
    batched.close()
