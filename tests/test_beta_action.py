"""``beta_factor``: a second action entry sets schedule-free SGD's beta each decision."""

import numpy as np
import pytest
import torch
from schedule_free_task import SCHEDULE_FREE
from tensorboard_scalars import scalars

from agents.open_loop import RandomPolicy, ReplayPolicy, actions_from_trace, progress_profile
from lrenv.env import LRScheduleEnv, beta_action, schedule_free_beta

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def val_losses(env: LRScheduleEnv, actions, seed: int = 3) -> list[float]:
    env.reset(seed=seed)
    return [env.step(np.asarray(a, np.float32))[4]["val_loss"] for a in actions]


def test_the_beta_entry_at_zero_is_the_env_without_it():
    plain = val_losses(LRScheduleEnv(**SCHEDULE_FREE), [[0.3], [-0.4]] * 3)
    env = LRScheduleEnv(**SCHEDULE_FREE, beta_factor=5)
    assert env.action_space.shape == (2,)
    assert val_losses(env, [[0.3, 0.0], [-0.4, 0.0]] * 3) == plain
    assert env.trace.beta == [0.9] * 6


def test_the_beta_entry_sets_beta_and_changes_training():
    env = LRScheduleEnv(**SCHEDULE_FREE, beta_factor=5)
    base = val_losses(env, [[0.0, 0.0]] * 6)
    low = val_losses(env, [[0.0, 1.0]] * 3 + [[0.0, -1.0]] * 3)
    assert env.trace.beta == pytest.approx([0.5] * 3 + [0.98] * 3)
    assert env.unwrapped.trainee.optimizer.param_groups[0]["momentum"] == pytest.approx(0.98)
    assert low != base


def test_with_beta_once_the_first_decisions_beta_holds_for_the_run():
    env = LRScheduleEnv(**SCHEDULE_FREE, beta_factor=5, beta_once=True)
    held = val_losses(env, [[0.2, 1.0]] + [[0.2, -1.0], [0.2, 0.5]] * 2 + [[0.2, 0.0]])
    assert env.trace.beta == pytest.approx([0.5] * 6)
    # the same run as one that asks for the first beta at every decision
    every = val_losses(LRScheduleEnv(**SCHEDULE_FREE, beta_factor=5), [[0.2, 1.0]] * 6)
    assert held == every
    # and a new episode takes its own first beta
    val_losses(env, [[0.2, -1.0]] + [[0.2, 1.0]] * 5)
    assert env.trace.beta == pytest.approx([0.98] * 6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beta_once": True}, "beta_once=True .* needs beta_factor"),
        ({"beta_once": 1, "beta_factor": 5}, "beta_once must be True or False, got 1"),
    ],
)
def test_a_bad_beta_once_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LRScheduleEnv(**SCHEDULE_FREE, **kwargs)


def test_the_mapping_and_its_inverse():
    assert schedule_free_beta(0.0, 5) == 0.9
    assert schedule_free_beta(1.0, 5) == pytest.approx(0.5)
    assert schedule_free_beta(-1.0, 5) == pytest.approx(0.98)
    for a in (-1.0, -0.3, 0.0, 0.7, 1.0):
        assert beta_action(schedule_free_beta(a, 3), 3) == pytest.approx(a)
    assert beta_action(0.01, 5) == 1.0  # beyond the reach: the action that reaches it


def test_a_new_beta_keeps_the_averaged_weights():
    """The change of beta happens on the averaged weights, so the weights evaluated stay
    the averaged iterate; setting the library's momentum in train mode would not."""
    env = LRScheduleEnv(**SCHEDULE_FREE, beta_factor=5)
    val_losses(env, [[0.0, 0.0]] * 2)
    trainee = env.unwrapped.trainee
    averaged = [p.detach().clone() for p in trainee.model.parameters()]  # eval mode: x
    trainee.optimizer.train()  # the gradient point y of beta 0.9, as mid-decision
    trainee.set_beta(0.5)
    trainee.optimizer.train()  # the gradient point y from the new beta
    trainee.optimizer.eval()  # and back to x
    for before, after in zip(averaged, trainee.model.parameters(), strict=True):
        torch.testing.assert_close(after, before)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beta_factor": 5, "optimizer": "sgd", "warmup_steps": 0}, "optimizer='schedule_free'"),
        ({"beta_factor": 10}, r"\(1, 9\]"),
        ({"beta_factor": 1}, r"\(1, 9\]"),
        ({"beta_factor": True}, r"\(1, 9\]"),
        ({"beta_factor": float("nan")}, r"\(1, 9\]"),
    ],
)
def test_a_bad_beta_factor_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LRScheduleEnv(**{**SCHEDULE_FREE, **kwargs})


def test_a_rate_only_action_is_refused_and_changes_nothing():
    env = LRScheduleEnv(**SCHEDULE_FREE, beta_factor=5)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        env.step(np.zeros(1, np.float32))
    assert env.unwrapped.trainee.sgd_step == 0


def test_the_replay_recovers_and_replays_both_entries():
    kwargs = {**SCHEDULE_FREE, "factor_base": 2.0, "lr_bounds": (1e-6, 1.0), "beta_factor": 5}
    env = LRScheduleEnv(**SCHEDULE_FREE, beta_factor=5)
    actions = [[0.5, -0.5], [-1.0, 1.0], [0.0, 0.25]]
    val_losses(env, actions)
    trace = env.trace
    recovered = actions_from_trace(trace.lr, trace.lr_steps, 0.1, kwargs, trace.beta)
    np.testing.assert_allclose(recovered, actions, atol=1e-9)
    profile = progress_profile([recovered], bins=3)
    np.testing.assert_allclose(profile, actions, atol=1e-9)
    replay = ReplayPolicy(profile, decisions=3, action_size=2)
    assert val_losses(env, [replay.action_at(k) for k in range(3)]) == val_losses(env, actions)


def test_a_rate_profile_pads_the_other_entries_with_zero():
    policy = ReplayPolicy([0.0], decisions=4, action_size=2)
    assert policy.predict(np.zeros(8))[0].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="2 action entries"):
        ReplayPolicy([[0.0, 0.0]], decisions=4, action_size=1)
    assert RandomPolicy(0, action_size=2).predict(np.zeros(8))[0].shape == (2,)


@pytest.fixture(scope="module")
def beta_run(train_smoke, tmp_path_factory):
    """A controller trained by train.py with the beta action (two synthetic episodes)."""
    return train_smoke(
        tmp_path_factory.mktemp("beta") / "run",
        "--env-kwargs",
        '{"optimizer": "schedule_free", "warmup_steps": 5, "beta_factor": 5}',
    )


def test_training_logs_the_mean_beta_of_each_episode(beta_run):
    betas = scalars(beta_run, "trainee/mean_beta")
    assert len(betas) == 2 and all(0.5 <= b <= 0.98 for b in betas)


def test_the_scheduler_refuses_a_controller_that_sets_beta(beta_run):
    import schedulefree

    from lrenv.scheduler import LearnedLRScheduler

    model = torch.nn.Linear(4, 2)
    optimizer = schedulefree.SGDScheduleFree(model.parameters(), lr=0.1, warmup_steps=5)
    val = (torch.zeros(8, 4), torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="sets schedule-free SGD's beta"):
        LearnedLRScheduler(optimizer, beta_run, model=model, val_data=val)
