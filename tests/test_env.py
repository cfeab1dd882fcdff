"""The environment's public contract (DESIGN.md, "The public contract")."""

from __future__ import annotations

import itertools
import math
import os
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

import lrenv
from lrenv.data import DEBIAN_FASHION_MNIST
from lrenv.env import LRScheduleEnv

HAVE_FASHION = DEBIAN_FASHION_MNIST.exists()


def run_episode(env, actions):
    """Step through ``actions``; return the list of (obs, reward, terminated, truncated, info)."""
    out = []
    for a in actions:
        out.append(env.step(np.array([a], dtype=np.float32)))
        if out[-1][2] or out[-1][3]:
            break
    return out


def test_gymnasium_checker_passes_without_warnings():
    env = gym.make("lrenv/Synthetic-v0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env.unwrapped, skip_render_check=True)


def test_sb3_checker_passes_without_warnings():
    env = LRScheduleEnv(dataset="synthetic", model="mlp", batch_size=64, total_steps=200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(env, warn=True)


@pytest.mark.parametrize(
    "env_id",
    [
        "lrenv/LRSchedule-v0",
        "lrenv/FashionMNIST-CNN-v0",
        "lrenv/FashionMNIST-ResNet-v0",
    ],
)
@pytest.mark.skipif(not HAVE_FASHION, reason="needs Debian's dataset-fashion-mnist")
def test_fashion_mnist_ids_make(env_id):
    env = gym.make(env_id, device="cpu")
    assert env.observation_space.shape == (7,)
    assert env.unwrapped.trainee.val_data.images.shape == (10_000, 1, 28, 28)


@pytest.mark.parametrize("env_id", ["lrenv/CIFAR10-CNN-v0", "lrenv/CIFAR10-ResNet-v0"])
def test_cifar_ids_are_registered_with_paper_settings(env_id):
    spec = gym.spec(env_id)
    assert spec.kwargs["dataset"] == "cifar10"
    assert spec.entry_point == "lrenv.env:LRScheduleEnv"


def test_reset_observation_and_info(synthetic_env):
    obs, info = synthetic_env.reset(seed=1)
    assert obs.dtype == np.float32 and obs.shape == (len(lrenv.PAPER_FEATURES),)
    assert np.isfinite(obs).all()
    assert info["lr"] in (1e-2, 1e-3, 1e-4)
    assert obs[6] == pytest.approx(math.log10(info["lr"]), abs=1e-6)
    assert {"lr", "train_loss", "val_loss", "val_accuracy", "sgd_step"} <= set(info)
    assert info["sgd_step"] == 0


def test_step_scales_lr_and_returns_minus_val_loss(synthetic_env):
    synthetic_env.reset(seed=0, options={"initial_lr": 0.01})
    _, reward, terminated, truncated, info = synthetic_env.step(np.array([1.0], np.float32))
    assert info["lr"] == pytest.approx(0.02)
    assert isinstance(reward, float) and reward == pytest.approx(-info["val_loss"])
    assert info["sgd_step"] == 10 and not terminated and not truncated
    _, _, _, _, info = synthetic_env.step(np.array([-1.0], np.float32))
    assert info["lr"] == pytest.approx(0.01)
    _, _, _, _, info = synthetic_env.step(np.array([0.0], np.float32))
    assert info["lr"] == pytest.approx(0.01)


def test_out_of_range_actions_are_clipped(synthetic_env):
    synthetic_env.reset(seed=0, options={"initial_lr": 0.01})
    *_, info = synthetic_env.step(np.array([7.0], np.float32))
    assert info["lr"] == pytest.approx(0.02)


def test_episode_truncates_after_total_steps(synthetic_env):
    synthetic_env.reset(seed=0)
    steps = run_episode(synthetic_env, [0.0] * 100)
    assert len(steps) == 20
    assert steps[-1][3] and not steps[-1][2]
    assert steps[-1][4]["sgd_step"] == 200


def test_same_seed_and_actions_give_same_trajectory():
    actions = np.random.default_rng(0).uniform(-1, 1, 20)
    trajectories = []
    for _ in range(2):
        env = gym.make("lrenv/Synthetic-v0")
        first, _ = env.reset(seed=42)
        steps = run_episode(env, actions)
        trajectories.append((first, [(s[0], s[1], s[4]["lr"]) for s in steps]))
    (first_a, steps_a), (first_b, steps_b) = trajectories
    np.testing.assert_array_equal(first_a, first_b)
    for (oa, ra, la), (ob, rb, lb) in zip(steps_a, steps_b, strict=True):
        np.testing.assert_array_equal(oa, ob)
        assert ra == rb and la == lb


def test_different_seeds_give_different_trainees(synthetic_env):
    a, _ = synthetic_env.reset(seed=1, options={"initial_lr": 0.01})
    b, _ = synthetic_env.reset(seed=2, options={"initial_lr": 0.01})
    assert not np.array_equal(a, b)


def test_reset_does_not_touch_global_torch_rng(synthetic_env):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    synthetic_env.reset(seed=0)
    synthetic_env.step(np.array([0.0], np.float32))
    np.testing.assert_array_equal(torch.rand(3), expected)


def test_divergence_ends_episode_with_finite_penalty():
    env = gym.make("lrenv/Synthetic-v0", initial_lr=0.5, lr_bounds=(1e-6, 1e8), factor_base=100.0)
    obs, _ = env.reset(seed=0)
    steps = run_episode(env, [1.0] * 20)
    obs, reward, terminated, truncated, info = steps[-1]
    assert terminated and not truncated and info["diverged"]
    assert np.isfinite(obs).all() and obs in env.observation_space
    assert math.isfinite(reward)
    # the penalty charges every decision lost, so diverging never beats training on
    decisions_left = 20 - len(steps) + 1
    assert reward == pytest.approx(-2 * math.log(10) * decisions_left)


@pytest.mark.parametrize(
    "action",
    [
        np.array([np.nan], np.float32),
        np.array([np.inf]),
        np.zeros(2),
        np.zeros((1, 1)),
        "up",
        "0.5",
        0.5j,
        np.array([0.5 + 0j]),
        True,
        np.array([False]),
        None,
        [[0.5], 0.5],
    ],
)
def test_bad_action_raises_and_leaves_env_unchanged(synthetic_env, action):
    synthetic_env.reset(seed=0)
    trainee = synthetic_env.unwrapped.trainee
    before = (trainee.lr, trainee.sgd_step, trainee.final_weight().clone())
    with pytest.raises(ValueError):
        synthetic_env.step(action)
    assert trainee.lr == before[0] and trainee.sgd_step == before[1]
    assert torch.equal(trainee.final_weight(), before[2])
    # and it still steps normally afterwards
    *_, info = synthetic_env.step(np.array([0.0], np.float32))
    assert info["sgd_step"] == 10


@pytest.mark.parametrize("action", [0.5, 1, np.float32(0.5), np.array(0.5), np.array([-1], int)])
def test_numeric_actions_of_shape_scalar_or_one_are_accepted(synthetic_env, action):
    synthetic_env.reset(seed=0, options={"initial_lr": 0.01})
    *_, info = synthetic_env.step(action)
    assert info["lr"] == pytest.approx(0.01 * 2.0 ** float(np.asarray(action).reshape(())))


def _snapshot(env):
    """What a refused call must leave as it was: the rate, the step count, the weights,
    the observation and the RNG."""
    unwrapped = env.unwrapped
    trainee = unwrapped.trainee
    return (
        trainee.lr,
        trainee.sgd_step,
        trainee.final_weight().clone(),
        unwrapped._obs.copy(),
        unwrapped.np_random.bit_generator.state,
    )


def _assert_unchanged(env, before):
    lr, sgd_step, weight, obs, rng = _snapshot(env)
    assert (lr, sgd_step) == before[:2]
    torch.testing.assert_close(weight, before[2], rtol=0, atol=0, equal_nan=True)  # diverged
    np.testing.assert_array_equal(obs, before[3])
    assert rng == before[4]


@pytest.mark.parametrize("end", ["truncated", "terminated"])
def test_step_after_the_episode_ended_raises_and_leaves_env_unchanged(end):
    if end == "truncated":
        env = gym.make("lrenv/Synthetic-v0")
        actions = [0.0] * 20
    else:  # a huge factor diverges the trainee within a few decisions
        env = gym.make(
            "lrenv/Synthetic-v0", initial_lr=0.5, lr_bounds=(1e-6, 1e8), factor_base=100.0
        )
        actions = [1.0] * 20
    env.reset(seed=0)
    last = run_episode(env, actions)[-1]
    assert last[2 if end == "terminated" else 3]
    before = _snapshot(env)
    for _ in range(2):
        with pytest.raises(RuntimeError, match=f"episode has ended.*{end}.*call reset"):
            env.step(np.array([1.0], np.float32))
    _assert_unchanged(env, before)
    env.reset(seed=1)  # and a reset starts a new episode that steps normally
    *_, info = env.step(np.array([0.0], np.float32))
    assert info["sgd_step"] == 10


@pytest.mark.parametrize(
    "options",
    [
        {"initial_lr": math.nan},
        {"initial_lr": math.inf},
        {"initial_lr": -0.01},
        {"initial_lr": 0.0},
        {"initial_lr": "0.01"},
        {"initial_lr": None},
        {"initial_lr": True},
        {"initial_lr": [0.01]},
        {"initial_rate": 0.01},
        {"initial_lr": 0.01, "seed": 3},
        ["initial_lr"],
    ],
)
def test_bad_reset_options_raise_and_leave_the_episode_running(synthetic_env, options):
    synthetic_env.reset(seed=0)
    synthetic_env.step(np.array([0.5], np.float32))
    before = _snapshot(synthetic_env)
    with pytest.raises(ValueError, match="initial_lr"):
        synthetic_env.reset(seed=5, options=options)
    _assert_unchanged(synthetic_env, before)
    *_, info = synthetic_env.step(np.array([0.0], np.float32))  # mid-episode, it steps on
    assert info["sgd_step"] == 20


@pytest.mark.parametrize(("options", "lr"), [(None, 0.3), ({}, 0.3), ({"initial_lr": 0.05}, 0.05)])
def test_reset_initial_lr_option_overrides_the_residual_base_rate(options, lr):
    env = gym.make(
        "lrenv/Synthetic-v0",
        action_mode="residual",
        base_schedule={"kind": "constant", "lr": 0.3},
    )
    _, info = env.reset(seed=0, options=options)
    assert info["lr"] == pytest.approx(lr)


def test_reset_initial_lr_option_is_clipped_to_lr_bounds(synthetic_env):
    _, info = synthetic_env.reset(seed=0, options={"initial_lr": 50.0})
    assert info["lr"] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset": "mnist"}, "unknown dataset"),
        ({"model": "vgg"}, "unknown model"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"total_steps": -10}, "total_steps must be a positive integer"),
        ({"steps_per_action": 0}, "steps_per_action must be a positive integer"),
        ({"total_steps": 205}, "must be a multiple of steps_per_action"),
        ({"initial_lr": -0.1}, "initial learning rates .* positive"),
        ({"factor_base": 1.0}, "factor_base"),
        ({"lr_bounds": (1.0, 0.1)}, "lr_bounds"),
        ({"feature_transform": "sqrt"}, "unknown feature_transform"),
        ({"action_mode": "set"}, "unknown action_mode"),
        ({"momentum": 1.5}, "momentum"),
        ({"precision": "fp16"}, "precision must be one of"),
        ({"action_mode": "residual"}, "residual.*base_schedule"),
        ({"base_schedule": {"kind": "constant", "lr": 0.1}}, "residual.*base_schedule"),
        (
            {"action_mode": "residual", "base_schedule": {"kind": "onecycle"}},
            "unknown schedule kind",
        ),
        ({"reward": "best"}, "unknown reward"),
        ({"optimizer": "adam"}, "unknown optimizer"),
        ({"warmup_steps": 10}, "warmup_steps is schedule-free"),
        ({"device": "cuda"} if not torch.cuda.is_available() else {"val_size": 1}, "cuda|val_size"),
        ({"final_reward_weight": -1.0}, "final_reward_weight must be a finite number >= 0"),
        ({"final_reward_weight": math.nan}, "final_reward_weight must be a finite number >= 0"),
        ({"final_reward_weight": math.inf}, "final_reward_weight must be a finite number >= 0"),
        ({"final_reward_weight": True}, "final_reward_weight must be a finite number >= 0"),
        ({"divergence_loss": 0.0}, "divergence_loss must be None .* >= the chance-level"),
        ({"divergence_loss": math.inf}, "divergence_loss must be None .* >= the chance-level"),
        ({"divergence_loss": math.nan}, "divergence_loss must be None .* >= the chance-level"),
        ({"divergence_loss": 2.0}, "divergence_loss must be None .* >= the chance-level"),
        ({"divergence_loss": "4"}, "divergence_loss must be None .* >= the chance-level"),
        ({"initial_lr": math.nan}, "initial learning rates .* positive, finite"),
        ({"initial_lr": math.inf}, "initial learning rates .* positive, finite"),
        ({"initial_lr": True}, "initial learning rates .* positive, finite"),
        ({"initial_lrs": (0.01, math.nan)}, "initial learning rates .* positive, finite"),
        ({"initial_lrs": ()}, "initial learning rates .* positive, finite"),
        ({"initial_lrs": ("0.01",)}, "initial learning rates .* positive, finite"),
        ({"momentum": math.nan}, "momentum must be a number in"),
        ({"momentum": True}, "momentum must be a number in"),
        ({"momentum": -0.1}, "momentum must be a number in"),
        ({"factor_base": math.nan}, "factor_base must be a finite number > 1"),
        ({"factor_base": math.inf}, "factor_base must be a finite number > 1"),
        ({"factor_base": True}, "factor_base must be a finite number > 1"),
        ({"lr_bounds": (math.nan, 1.0)}, "lr_bounds must be two numbers"),
        ({"lr_bounds": (1e-6, math.nan)}, "lr_bounds must be two numbers"),
        ({"lr_bounds": (1e-6, math.inf)}, "lr_bounds must be two numbers"),
        ({"lr_bounds": (False, True)}, "lr_bounds must be two numbers"),
        ({"lr_bounds": (1e-6, 1.0, 2.0)}, "lr_bounds must be two numbers"),
        ({"lr_bounds": 1.0}, "lr_bounds must be two numbers"),
    ],
)
def test_bad_configuration_raises_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make("lrenv/Synthetic-v0", **kwargs)


def test_features_on_a_tiny_case_by_hand():
    from lrenv.features import compute_features

    probs = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]])
    prev = torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    weight = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    obs = compute_features(
        train_loss=0.7, val_loss=0.9, probs=probs, prev_probs=prev, weight=weight, lr=0.01
    )
    # each class column of probs is (0.5, 1, 0) / (0.5, 0, 1): variance 1/6
    # changes are (0, .5, -.5) / (0, -.5, .5): variance 1/6 as well
    expected = [0.7, 0.9, 1 / 6, 1 / 6, 3.0, np.var([1, 2, 3, 6]), -2.0]
    np.testing.assert_allclose(obs, expected, rtol=1e-6)
    logged = compute_features(
        train_loss=0.7,
        val_loss=0.9,
        probs=probs,
        prev_probs=prev,
        weight=weight,
        lr=0.01,
        progress=0.25,
        transform="log",
    )
    np.testing.assert_allclose(logged[[2, 3, 5]], np.log10(np.array(expected)[[2, 3, 5]] + 1e-10))
    assert logged[7] == pytest.approx(0.25)


def test_a_loss_beyond_float32_is_its_largest_value_without_an_overflow_warning():
    from lrenv.env import OBS_LIMIT, looks_diverged
    from lrenv.features import compute_features

    probs = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    weight = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "overflow encountered in cast" would raise
        obs = compute_features(
            train_loss=1e300, val_loss=-1e300, probs=probs, prev_probs=probs,
            weight=weight, lr=0.01,
        )  # fmt: skip
    largest = np.finfo(np.float32).max
    assert obs[0] == largest and obs[1] == -largest and np.isfinite(obs).all()
    assert looks_diverged(1.0, obs, divergence_loss=1e3)  # beyond OBS_LIMIT still
    assert largest > OBS_LIMIT
    nan = compute_features(
        train_loss=math.nan, val_loss=0.9, probs=probs, prev_probs=probs, weight=weight, lr=0.01
    )
    assert math.isnan(nan[0])


def test_observation_matches_trainee_state(synthetic_env):
    obs, info = synthetic_env.reset(seed=3)
    weight = synthetic_env.unwrapped.trainee.final_weight()
    assert obs[1] == pytest.approx(info["val_loss"], rel=1e-6)
    assert obs[3] == 0.0  # no change of predictions at reset
    assert obs[4] == pytest.approx(weight.mean().item(), rel=1e-5)
    assert obs[5] == pytest.approx(weight.var(unbiased=False).item(), rel=1e-5)


def test_progress_feature_and_feature_names():
    env = gym.make("lrenv/Synthetic-v0", progress_feature=True, feature_transform="log")
    obs, _ = env.reset(seed=0)
    assert env.unwrapped.feature_names == lrenv.FEATURE_NAMES
    assert obs.shape == (8,) and obs[7] == 0.0
    obs, *_ = env.step(np.array([0.0], np.float32))
    assert obs[7] == pytest.approx(10 / 200)


def test_epochs_feature_gives_the_run_epochs_from_the_start():
    env = gym.make("lrenv/Synthetic-v0", epochs_feature=True, progress_feature=True)
    base = env.unwrapped
    runs = base.total_steps * base.trainee.batch_size / len(base.trainee.train_data)
    obs, _ = env.reset(seed=0)
    assert base.feature_names[-2:] == ("progress", "log2_run_epochs")
    assert obs.shape == (9,) and obs[8] == pytest.approx(np.log2(1 + runs))
    obs, *_ = env.step(np.array([0.0], np.float32))
    assert obs[7] == pytest.approx(10 / 200) and obs[8] == pytest.approx(np.log2(1 + runs))
    alone = gym.make("lrenv/Synthetic-v0", epochs_feature=True, total_steps=400)
    obs, _ = alone.reset(seed=0)
    assert alone.unwrapped.feature_names[-1] == "log2_run_epochs"
    assert obs.shape == (8,) and obs[7] == pytest.approx(np.log2(1 + 2 * runs))
    with pytest.raises(ValueError, match="epochs_feature must be True or False, got 1"):
        gym.make("lrenv/Synthetic-v0", epochs_feature=1)


def test_keep_best_tests_the_best_validation_checkpoint():
    env = gym.make("lrenv/Synthetic-v0", keep_best=True, initial_lr=0.05)
    env.reset(seed=0)
    steps = run_episode(env, [0.0] * 20)
    best = min(s[4]["val_loss"] for s in steps)
    result = env.unwrapped.test_best()
    assert result["best_val_loss"] == pytest.approx(best)
    assert 0 < result["test_loss"] < 2.3 and 0.1 < result["test_accuracy"] <= 1


def test_runs_inside_subproc_vec_env():
    vec = make_vec_env("lrenv:lrenv/Synthetic-v0", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)
    try:
        obs = vec.reset()
        assert obs.shape == (2, 7)
        for step in range(1, 26):  # past the end of an episode: auto-reset works
            obs, rewards, dones, infos = vec.step(np.zeros((2, 1), np.float32))
            assert np.isfinite(obs).all() and np.isfinite(rewards).all()
            assert dones.all() == (step == 20)
        assert [info["sgd_step"] for info in infos] == [50, 50]
    finally:
        vec.close()


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_FASHION, reason="needs Debian's dataset-fashion-mnist")
def test_real_fashion_mnist_episode_reaches_sane_accuracy():
    env = gym.make(
        "lrenv/FashionMNIST-CNN-v0",
        device="cpu",
        batch_size=128,
        total_steps=300,
        initial_lr=0.1,
        momentum=0.9,
        val_size=2000,
    )
    env.reset(seed=0)
    steps = run_episode(env, [0.0] * 30)
    info = steps[-1][4]
    assert steps[-1][3] and not info["diverged"]
    assert info["val_accuracy"] > 0.75, info


def test_render_rgb_array_draws_the_episode():
    env = gym.make("lrenv/Synthetic-v0", render_mode="rgb_array")
    env.reset(seed=0)
    env.step(np.array([0.5], np.float32))
    image = env.render()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.std() > 0  # something was drawn


def test_each_rate_is_drawn_over_the_sgd_steps_it_applied_to():
    """render(), train.py's TensorBoard figure and the report share one rate line: the rate
    chosen at a decision covers the SGD steps up to the next decision, not the ones after."""
    from lrenv.trace import rate_line

    env = gym.make("lrenv/Synthetic-v0", render_mode="rgb_array").unwrapped
    _, info0 = env.reset(seed=0, options={"initial_lr": 0.01})
    _, _, _, _, info1 = env.step(np.array([1.0], np.float32))  # rate x2 for steps 1-10
    _, _, _, _, info2 = env.step(np.array([-1.0], np.float32))  # back for steps 11-20
    trace = env.episode_trace()
    assert trace["ends"] == [10, 20] and trace["val_steps"] == [0, 10, 20]
    assert trace["lrs"] == pytest.approx([info1["lr"], info2["lr"]])
    assert trace["val_losses"] == pytest.approx(
        [info0["val_loss"], info1["val_loss"], info2["val_loss"]]
    )
    steps, rates = rate_line(trace["ends"], trace["lrs"])
    assert steps == [0, 10, 10, 20]
    assert rates == pytest.approx([0.02, 0.02, 0.01, 0.01])


def test_make_vec_env_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vec = make_vec_env("lrenv/Synthetic-v0", n_envs=1, seed=0)
        vec.reset()
        vec.close()


def test_validation_loss_above_divergence_loss_counts_as_divergence():
    # the synthetic task starts near chance (loss ~2.5); at a tiny rate it stays there
    env = gym.make("lrenv/Synthetic-v0", initial_lr=1e-6, divergence_loss=2.31)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(np.array([0.0], np.float32))
    assert terminated and info["diverged"]
    assert reward == pytest.approx(-2.31 * 20)


@pytest.mark.parametrize(("action", "expected"), [(-1.0, 0.001), (0.0, 0.01), (1.0, 0.1)])
def test_absolute_action_mode_maps_action_onto_rate(action, expected):
    # bounds low enough that no rate diverges: a diverged episode could not step twice
    env = gym.make(
        "lrenv/Synthetic-v0", action_mode="absolute", lr_bounds=(0.001, 0.1), initial_lr=0.005
    )
    env.reset(seed=0)
    *_, info = env.step(np.array([action], np.float32))
    assert info["lr"] == pytest.approx(expected)
    *_, info = env.step(np.array([action], np.float32))  # no accumulation over decisions
    assert info["lr"] == pytest.approx(expected)


WSD_BASE = {"kind": "wsd", "peak_lr": 0.08, "cooldown": 0.5}


def test_residual_action_scales_the_base_schedule_without_accumulating():
    env = gym.make("lrenv/Synthetic-v0", action_mode="residual", base_schedule=WSD_BASE)
    _, info = env.reset(seed=0)
    assert info["lr"] == pytest.approx(0.08)  # the base schedule's rate at step 0
    rates = [run_episode(env, [a])[0][-1]["lr"] for a in (1.0, 1.0, -1.0, 0.0)]
    assert rates == pytest.approx([0.16, 0.16, 0.04, 0.08])  # factor 2 ** a, never compounded
    steps = run_episode(env, [0.0] * 20)
    base = [WSD_BASE["peak_lr"] * min(1.0, 2 * (1 - s / 200)) for s in range(40, 200, 10)]
    assert [info["lr"] for *_, info in steps] == pytest.approx(base)


def test_residual_action_zero_reproduces_the_schedule_run_through_set_lr():
    """Action 0 under the residual action is the base schedule itself: the same trajectory
    as the evaluation's exact schedule path (set_lr, then action 0 under 'scale')."""
    from lrenv.schedule_families import schedule_from_dict

    schedule = schedule_from_dict(WSD_BASE)
    residual = gym.make("lrenv/Synthetic-v0", action_mode="residual", base_schedule=WSD_BASE)
    exact = gym.make("lrenv/Synthetic-v0", initial_lr=0.08)
    residual.reset(seed=3)
    _, info = exact.reset(seed=3)
    for _ in range(20):
        exact.unwrapped.set_lr(schedule.lr_at(info["sgd_step"], 200))
        a = residual.step(np.zeros(1, np.float32))
        b = exact.step(np.zeros(1, np.float32))
        info = b[-1]
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1] == b[1]


def test_delta_reward_telescopes_to_the_change_of_the_validation_loss():
    env = gym.make("lrenv/Synthetic-v0", reward="delta", initial_lr=0.05)
    _, info = env.reset(seed=0)
    first = info["val_loss"]
    steps = run_episode(env, [0.0] * 20)
    assert steps[-1][3]  # truncated: a full episode
    assert sum(r for _, r, *_ in steps) == pytest.approx(first - steps[-1][-1]["val_loss"])
    rewards = [r for _, r, *_ in steps]
    losses = [first, *(info["val_loss"] for *_, info in steps)]
    assert rewards == pytest.approx([a - b for a, b in itertools.pairwise(losses)])


def test_delta_reward_charges_a_divergence_as_ending_at_the_threshold():
    env = gym.make(
        "lrenv/Synthetic-v0",
        reward="delta",
        initial_lr=0.5,
        lr_bounds=(1e-6, 1e8),
        factor_base=100.0,
    )
    _, info = env.reset(seed=0)
    steps = run_episode(env, [1.0] * 20)
    assert steps[-1][2] and steps[-1][-1]["diverged"]
    total = sum(r for _, r, *_ in steps)
    assert total == pytest.approx(info["val_loss"] - 2 * math.log(10))


def test_schedule_free_optimizer_evaluates_its_averaged_weights():
    """Schedule-free SGD trains at y and is evaluated at x (its eval mode): the validation
    loss the env reports is the averaged weights' loss, not the training point's."""
    env = gym.make(
        "lrenv/Synthetic-v0",
        optimizer="schedule_free",
        warmup_steps=10,
        initial_lr=0.05,
        keep_best=True,
    )
    env.reset(seed=0)
    for _ in range(5):
        *_, info = env.step(np.zeros(1, np.float32))
    trainee = env.unwrapped.trainee
    optimizer = trainee.optimizer
    assert type(optimizer).__name__ == "SGDScheduleFree"
    assert not optimizer.param_groups[0]["train_mode"]  # left in eval mode after validation
    assert trainee.evaluate().loss == pytest.approx(info["val_loss"])
    optimizer.train()  # the training point y differs from the average x
    training_point = trainee.evaluate(model=trainee.model).loss
    assert training_point != pytest.approx(info["val_loss"], rel=1e-6)
    assert math.isfinite(env.unwrapped.test_best()["test_loss"])


def test_compiled_validation_gives_the_same_observations():
    plain = gym.make("lrenv/Synthetic-v0", initial_lr=0.05)
    compiled = gym.make("lrenv/Synthetic-v0", initial_lr=0.05, compile="eval")
    for env in (plain, compiled):
        env.reset(seed=0)
    for _ in range(3):
        a, *_ = plain.step(np.array([0.2], np.float32))
        b, *_ = compiled.step(np.array([0.2], np.float32))
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_bf16_precision_rounds_differently_but_trains_the_same_network():
    """bf16 autocast: the same seed gives a nearby trajectory, not the same one (so the
    forward passes did run in bfloat16), and the weights stay float32."""
    envs = [
        gym.make("lrenv/Synthetic-v0", initial_lr=0.05, precision=precision)
        for precision in ("fp32", "bf16")
    ]
    for env in envs:
        env.reset(seed=0)
    for _ in range(5):
        fp32, bf16 = (env.step(np.array([0.2], np.float32)) for env in envs)
    np.testing.assert_allclose(bf16[0][:2], fp32[0][:2], rtol=1e-2)  # train and val loss
    assert bf16[1] == pytest.approx(fp32[1], rel=1e-2)
    assert not np.array_equal(bf16[0], fp32[0])
    assert envs[1].unwrapped.trainee.final_weight().dtype == torch.float32


def test_set_lr_refuses_absolute_action_mode():
    env = gym.make("lrenv/Synthetic-v0", action_mode="absolute", lr_bounds=(0.01, 1.0))
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match="action_mode='scale'"):
        env.unwrapped.set_lr(0.3)


CIFAR_ROOT = Path(os.environ.get("LRENV_DATA", Path.home() / ".cache" / "lrenv"))
HAVE_CIFAR = (CIFAR_ROOT / "cifar-10-batches-py" / "test_batch").exists()


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_CIFAR, reason="build CIFAR-10 with shared/data/get-cifar10.sh")
@pytest.mark.parametrize("env_id", ["lrenv/CIFAR10-CNN-v0", "lrenv/CIFAR10-ResNet-v0"])
def test_cifar10_ids_make_and_step(env_id):
    env = gym.make(env_id, device="cpu", batch_size=32, total_steps=20, val_size=200)
    trainee = env.unwrapped.trainee
    assert len(trainee.train_data) == 40_000
    assert trainee.dataset.val.images.shape == (10_000, 3, 32, 32)
    assert trainee.dataset.test.labels[:5].tolist() == [3, 8, 8, 0, 6]  # the official order
    env.reset(seed=0, options={"initial_lr": 0.01})
    obs, reward, *_ = env.step(np.array([0.0], np.float32))
    assert np.isfinite(obs).all() and -3 < reward < 0


@pytest.mark.parametrize("channels_last", [False, True])
def test_split_rows_gathers_the_indexed_examples(channels_last):
    from lrenv.data import Split

    images = torch.randn(20, 3, 4, 4)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    split = Split(images, torch.arange(20))
    for idx in (torch.tensor([3, 0, 17]), torch.tensor([[1, 2], [19, 5]])):
        rows = split.rows(idx)
        assert torch.equal(rows.images, images[idx])
        assert torch.equal(rows.labels, idx)
    assert split.rows(idx[0]).images.is_contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )


def test_the_env_records_its_episode_once_and_hands_it_over_at_the_end():
    """The trace the report, TensorBoard and render() read is the env's own: each
    decision's rate and validation loss as the infos said, the last info carrying it."""
    env = gym.make("lrenv/Synthetic-v0", total_steps=50)
    _, first = env.reset(seed=0)
    infos, done = [], False
    while not done:
        _, _, terminated, truncated, info = env.step(np.array([0.3], np.float32))
        infos.append(info)
        done = terminated or truncated
    trace = infos[-1]["episode_trace"]
    assert trace is env.unwrapped.trace and all("episode_trace" not in i for i in infos[:-1])
    assert trace.lr == [i["lr"] for i in infos]
    assert trace.lr_steps == [0, *(i["sgd_step"] for i in infos[:-1])]
    assert trace.val_steps == [0, *(i["sgd_step"] for i in infos)]
    assert trace.val_loss == [first["val_loss"], *(i["val_loss"] for i in infos)]
    assert trace.end_step == 50 and trace.best_val_loss == infos[-1]["best_val_loss"]
    env.reset(seed=1)
    assert env.unwrapped.trace is not trace and trace.end_step == 50  # kept as it was


def test_a_diverged_decision_is_traced_with_its_rate_and_no_validation_loss():
    env = gym.make("lrenv/Synthetic-v0", total_steps=50, action_mode="absolute")
    env.reset(seed=0, options={"initial_lr": 1e-3})
    # The top of lr_bounds (1.0) diverges this trainee in its first decision (seed 0, on
    # the CPU): the whole episode's penalty, one divergence_loss for each of 5 decisions.
    _, reward, terminated, _, info = env.step(np.array([1.0], np.float32))
    assert terminated and info["diverged"]
    assert reward == pytest.approx(-5 * env.unwrapped.divergence_loss)
    trace = info["episode_trace"]
    assert trace.diverged and len(trace.lr) == len(trace.val_loss)  # reset's loss, no last
    assert trace.lr[-1] == info["lr"] and trace.end_step == info["sgd_step"]
