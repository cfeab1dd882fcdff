"""Property-based fuzz of the env's contract, with hypothesis: actions, env
configurations and reset options, valid and hostile, on the synthetic task with tiny
episodes. Valid input gives an observation inside the space and a finite reward within
the documented bound; invalid input raises ValueError or TypeError with a message, and
nothing else ever escapes.

The default run tries 40 fixed examples a property (tests/conftest.py's "lrenv" profile,
a few seconds); a long fuzz with fresh inputs and the counts of each outcome::

    python -m pytest tests/test_fuzz.py --hypothesis-profile lrenv-long \
        --hypothesis-show-statistics
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import lrenv  # noqa: F401  (registers the ids)
from lrenv.keywords import check_env_kwargs

FAST = {"dataset": "synthetic", "model": "mlp", "batch_size": 16, "val_size": 64}

hostile = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=5),
    st.complex_numbers(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.lists(st.floats(allow_nan=True), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
numbers = st.floats(-1e3, 1e3, allow_nan=False) | st.sampled_from([0.5, 2.0, -1.0, 1e-3])
actions = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    numbers.map(lambda x: np.array([x], dtype=np.float32)),
    st.lists(st.floats(allow_nan=True, width=32), min_size=0, max_size=3).map(
        lambda xs: np.array(xs, dtype=np.float32)
    ),
    hostile,
)


def plausible(*values) -> st.SearchStrategy:
    """Mostly one of ``values`` (valid ones and near misses), one draw in five hostile."""
    # .map keeps `hostile` one branch (one_of would flatten its eight into the choice)
    return st.one_of(*[st.sampled_from(values)] * 4, hostile.map(lambda x: x))


config_values = {  # valid values and one near miss each; the hostile draws do the rest
    "total_steps": plausible(20, 30, 40, 25),
    "steps_per_action": plausible(10, 5, 10, 0),
    "initial_lr": plausible(None, 0.05, 1e-4, 0.3, -1.0),
    "factor_base": plausible(2.0, 1.25, 10.0, 1.0),
    "lr_bounds": plausible((1e-6, 1.0), (1e-4, 0.5), [1e-6, 1.0], (0.1, 0.01)),
    "momentum": plausible(0.0, 0.9, 0.5, 1.0),
    "final_reward_weight": plausible(0.0, 1.0, 5.0, -1.0),
    "action_cost": plausible(0.0, 0.05, 3.0, -0.5),
    "divergence_loss": plausible(None, 3.0, 1e9, 0.0),
    "reward": plausible("loss", "delta", "loss", "accuracy"),
    "feature_transform": plausible("raw", "log", "raw", "exp"),
    "action_mode": plausible("scale", "absolute", "scale", "residual"),
    "progress_feature": plausible(True, False),
    "epochs_feature": plausible(False, True, False, 1),
    "trainee_seeds": plausible(None, 3, 1, 0),
    "beta_once": plausible(False, False, False, True),  # True: refused without beta_factor
}
valid_values = {
    "total_steps": st.sampled_from([20, 30, 40]),
    "steps_per_action": st.sampled_from([5, 10]),
    "initial_lr": st.none() | st.floats(1e-6, 1.0),
    "factor_base": st.floats(1.01, 100.0),
    "lr_bounds": st.sampled_from([(1e-6, 1.0), (1e-4, 0.5), [1e-3, 10.0]]),
    "momentum": st.floats(0.0, 0.99),
    "final_reward_weight": st.floats(0.0, 10.0),
    "action_cost": st.floats(0.0, 10.0),
    "divergence_loss": st.none() | st.floats(0.5, 1e6),
    "reward": st.sampled_from(["loss", "delta"]),
    "feature_transform": st.sampled_from(["raw", "log"]),
    "action_mode": st.sampled_from(["scale", "absolute"]),
    "progress_feature": st.booleans(),
    "epochs_feature": st.booleans(),
    "trainee_seeds": st.none() | st.integers(1, 4),
}
# half the configurations valid throughout (the contract must hold for each), half with
# hostile and near-miss values (each must be refused clearly or hold the contract)
configs = st.fixed_dictionaries({}, optional=valid_values) | st.fixed_dictionaries(
    {}, optional=config_values
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(**kwargs) -> gym.Env:
    return gym.make("lrenv/Synthetic-v0", **{**FAST, "total_steps": 20, **kwargs})


def check_valid_step(env: gym.Env, obs, reward, diverged: bool = False) -> None:
    """The contract for an accepted step: observation in the space, finite bounded reward."""
    base = env.unwrapped
    assert env.observation_space.contains(obs), obs
    assert isinstance(reward, float) and math.isfinite(reward)
    # the bound the env's docstring guarantees: every loss an episode pays on is at most
    # divergence_loss (beyond it the trainee has diverged; the env refuses a divergence_loss
    # below the chance-level loss, where a fresh network starts)
    bound = base.divergence_loss * (base.decisions + 1) * (1 + base.final_reward_weight)
    bound += base.action_cost * env.action_space.shape[0] / base.decisions
    assert abs(reward) <= bound, (reward, bound)
    if base.reward == "loss" or diverged:  # a divergence never pays
        assert reward <= 0, (reward, diverged)


def expect_refusal(call) -> bool:
    """Run ``call``; True if it passed, False if it refused with a ValueError/TypeError
    that says something. Any other exception fails the test."""
    try:
        call()
    except (ValueError, TypeError) as err:
        assert str(err), f"{type(err).__name__} without a message"
        event(f"refused: {type(err).__name__}")
        return False
    event("accepted")
    return True


@given(st.lists(actions, min_size=1, max_size=6), st.integers(0, 3))
def test_any_action_sequence_keeps_the_contract(sequence, seed):
    env = make()
    obs, _ = env.reset(seed=seed)
    ended = False
    for action in sequence:
        before = obs
        try:
            obs, reward, terminated, truncated, info = env.step(action)
        except RuntimeError as err:  # stepping an ended episode
            assert ended and "call reset()" in str(err)
            event("step after the end: refused")
            continue
        except (ValueError, TypeError) as err:
            assert str(err)
            event("action refused")
            assert not ended  # an ended episode refuses with RuntimeError first
            assert env.unwrapped._obs is not None and (env.unwrapped._obs == before).all()
            continue
        assert not ended, "a step after the episode ended was accepted"
        event("action accepted")
        check_valid_step(env, obs, reward, bool(info.get("diverged")))
        ended = terminated or truncated
    env.close()


@given(configs)
def test_any_configuration_is_refused_clearly_or_keeps_the_contract(kwargs):
    checked = expect_refusal(lambda: check_env_kwargs("lrenv/Synthetic-v0", {**FAST, **kwargs}))
    made: list[gym.Env] = []
    built = expect_refusal(lambda: made.append(make(**kwargs)))
    assert checked == built, "check_env_kwargs and the env disagree"
    if not built:
        return
    env = made[0]
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    for _ in range(env.unwrapped.decisions):
        obs, reward, terminated, truncated, info = env.step(np.array([1.0], dtype=np.float32))
        check_valid_step(env, obs, reward, bool(info.get("diverged")))
        if terminated or truncated:
            break
    env.close()


@given(
    st.one_of(
        hostile.map(lambda x: x),
        st.fixed_dictionaries({"initial_lr": st.floats(1e-9, 1e3) | numbers | hostile}),
        st.fixed_dictionaries({"initial_lr": st.floats(1e-9, 1e3)}, optional={"seed": hostile}),
    )
)
def test_any_reset_option_is_refused_clearly_or_starts_a_valid_episode(options):
    env = make()
    env.reset(seed=0)
    result: list = []
    if expect_refusal(lambda: result.append(env.reset(seed=1, options=options))):
        obs, _ = result[0]
        assert env.observation_space.contains(obs)
        low, high = env.unwrapped.lr_bounds
        assert low <= env.unwrapped.trainee.lr <= high
        obs, reward, *_ = env.step(np.zeros(1, dtype=np.float32))
        check_valid_step(env, obs, reward)
    else:  # the running episode is untouched and still steps
        obs, reward, *_ = env.step(np.zeros(1, dtype=np.float32))
        check_valid_step(env, obs, reward)
    env.close()


@pytest.mark.parametrize("reward", ["loss", "delta"])
def test_a_divergence_never_pays_whatever_divergence_loss_is_accepted(reward):
    """Whatever threshold the env accepts, a divergence at the first decision (a rate of
    1e4) pays at most 0, also when the loss at reset is above the threshold (3.26 here)."""
    for limit in (2.31, 2.5, 3.0, 5.0):
        env = make(
            initial_lr=1.0,
            lr_bounds=(1e-6, 1e4),
            factor_base=1e4,
            reward=reward,
            divergence_loss=limit,
        )
        env.reset(seed=0)
        _, paid, terminated, _, info = env.step(np.ones(1, dtype=np.float32))
        assert terminated and info["diverged"] and paid <= 0, (limit, paid)
        env.close()
    with pytest.raises(ValueError, match="divergence_loss"):
        make(divergence_loss=0.5)


@pytest.mark.parametrize("end", ["truncated", "terminated"])
def test_no_reward_after_the_end_whatever_is_sent(end):
    env = make(initial_lr=1.0 if end == "terminated" else 0.05, divergence_loss=2.5)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(np.ones(1, dtype=np.float32))
        done = terminated or truncated
    for action in (0.0, np.ones(1, np.float32), "x", None):
        with pytest.raises((RuntimeError, ValueError)):
            env.step(action)
