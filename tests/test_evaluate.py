"""Baselines, validation-only selection, statistics and the report of evaluate.py.

Everything runs on ``lrenv/Synthetic-v0`` cut to a few decisions, in this process.
"""

from __future__ import annotations

import dataclasses
import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from scipy import stats

import agents.jobs
import evaluate
import lrenv.env
from agents.baselines import (
    WSD,
    Constant,
    Cosine,
    Linear,
    Plateau,
    ScheduleFree,
    SchedulePolicy,
    StepDecay,
    grid,
    schedule_from_dict,
    schedule_to_dict,
)
from agents.comparison import SELECTION_SEED_OFFSET, candidates, select_baselines
from agents.episodes import run_episode, run_episodes
from agents.jobs import Job, run_job
from agents.pool import Runner, batches
from agents.presets import PAPER_STEP_DECAY_GRID
from agents.sb3_controller import save_controller
from agents.statistics import t_test
from agents.tasks import BASELINES, Task, resolve_tasks
from lrenv.data import Split, load_dataset
from lrenv.trainee import Trainee

SHORT = {"total_steps": 40, "device": "cpu"}  # 4 decisions of 10 SGD steps


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        # step 0, 10, 20, 30, 40, 50 of a 60-step episode
        (StepDecay(0.1, every=20, factor=0.5), [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]),
        (StepDecay(0.1, every=25, factor=0.5), [0.1, 0.1, 0.1, 0.05, 0.05, 0.025]),
        (Constant(0.03), [0.03] * 6),
        (Cosine(0.2), [0.2, 0.2 * (1 + math.sqrt(3) / 2) / 2, 0.15, 0.1, 0.05, 0.2 * 0.0669873]),
        (Linear(0.6), [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]),
        # cooldown over the last half: steps 30, 40, 50 at 1, 2/3, 1/3 of the peak
        (WSD(0.3, cooldown=0.5), [0.3, 0.3, 0.3, 0.3, 0.2, 0.1]),
        # a warmup over the first third (20 steps): (step + 1) / 20 of the peak until step 19
        (WSD(0.3, cooldown=0.5, warmup=1 / 3), [0.015, 0.165, 0.3, 0.3, 0.2, 0.1]),
        (ScheduleFree(0.5, warmup_steps=20), [0.5] * 6),  # the optimizer warms itself up
    ],
)
def test_schedules_at_decision_boundaries(schedule, expected):
    got = [schedule.lr_at(step, 60) for step in range(0, 60, 10)]
    assert got == pytest.approx(expected, rel=1e-6)
    assert schedule_from_dict(json.loads(json.dumps(schedule_to_dict(schedule)))) == schedule


def test_plateau_policy_follows_torch_reduce_on_plateau():
    policy = SchedulePolicy(Plateau(0.4, factor=0.5, patience=1))
    rates = [policy.lr_at(0, 60)]
    for val_loss in (1.0, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8):
        policy.observe(val_loss)
        rates.append(policy.lr_at(0, 60))
    # halves after the second flat loss in a row, and again after the next two
    assert rates == pytest.approx([0.4, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2, 0.1])
    fresh = SchedulePolicy(Plateau(0.4, factor=0.5, patience=1))
    assert fresh.lr_at(0, 60) == 0.4  # each policy is one episode's rule


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "wsd", "peak_lr": 0.3, "cooldown": 0.0},
        {"kind": "wsd", "peak_lr": 0.3, "cooldown": 0.5, "warmup": 0.6},
        {"kind": "plateau", "initial_lr": 0.3, "factor": 1.0, "patience": 2},
        {"kind": "plateau", "initial_lr": 0.3, "factor": 0.5, "patience": -1},
        {"kind": "schedule_free", "lr": 0.3, "warmup_steps": 2.5},
        {"kind": "linear", "initial_lr": -1.0},
        {"kind": "onecycle", "lr": 0.3},
    ],
)
def test_bad_baseline_schedules_are_refused(bad):
    with pytest.raises(ValueError, match=r"must|unknown"):
        schedule_from_dict(bad)


def test_default_grids_cover_every_family_and_reach_past_the_winners():
    from agents.presets import DEFAULT_BASELINE_GRIDS

    families = candidates(DEFAULT_BASELINE_GRIDS)
    assert list(families) == list(BASELINES)
    assert max(s.lr for s in families["constant"]) > 0.3  # the cpu preset's best is 0.3
    assert max(s.peak_lr for s in families["wsd"]) > 0.3
    assert {s.cooldown for s in families["wsd"]} == {0.1, 0.2, 0.4}


def test_paper_grid_has_48_schedules():
    schedules = grid("step_decay", PAPER_STEP_DECAY_GRID)
    assert len(schedules) == len(set(schedules)) == 48
    assert {s.initial_lr for s in schedules} == {0.1, 0.01, 0.001, 0.0001}
    assert {s.every for s in schedules} == {10, 20, 50, 100}
    assert {s.factor for s in schedules} == {0.99, 0.9, 0.88}


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        # decay every 25 steps lands on the first decision boundary at or after 25, 50, 75
        (StepDecay(0.1, every=25, factor=0.5), [0.1] * 3 + [0.05] * 2 + [0.025] * 3 + [0.0125] * 2),
        # below the env's lr_bounds (1e-6): still exactly as scheduled, never clipped
        (StepDecay(1e-5, every=10, factor=0.1), [1e-5 * 0.1**k for k in range(10)]),
        (Constant(2.0), [2.0] * 10),  # above lr_bounds too (this one diverges: ends early)
    ],
)
def test_schedule_policy_sets_exactly_the_scheduled_rates(schedule, expected):
    env = gym.make("lrenv/Synthetic-v0", total_steps=100, device="cpu")
    seen = []
    step = env.step

    def recording_step(action):
        assert np.all(np.asarray(action) == 0)  # the rate is never set through the action
        result = step(action)
        seen.append(result[4]["lr"])
        return result

    env.step = recording_step
    trajectory = run_episode(env, SchedulePolicy(schedule), seed=0)
    n = len(seen)
    assert seen == expected[:n]  # exact equality: set_lr, not a clipped factor
    assert trajectory.lr == seen
    assert trajectory.lr_steps == list(range(0, 10 * n, 10))
    assert n == 10 or trajectory.diverged
    env.close()


def test_policy_predict_matches_the_sb3_interface():
    policy = SchedulePolicy(Constant(0.1))
    action, state = policy.predict(np.zeros(7, np.float32), None, np.ones(1, bool), True)
    assert action.shape == (1,) and action[0] == 0 and state is None
    actions, _ = policy.predict(np.zeros((3, 7), np.float32))
    assert actions.shape == (3, 1)


class _SpyRecurrentPolicy:
    """Records what the runner passes to ``predict`` and returns a counting state."""

    is_recurrent = True

    def __init__(self):
        self.calls = []

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        self.calls.append((state, bool(episode_start[0]), deterministic))
        return np.array([0.5], np.float32), (0 if state is None else state + 1)


def test_runner_carries_recurrent_state_and_marks_episode_start():
    env = gym.make("lrenv/Synthetic-v0", **SHORT)
    policy = _SpyRecurrentPolicy()
    trajectory = run_episode(env, policy, seed=1)
    states, starts, deterministic = zip(*policy.calls, strict=True)
    assert states == (None, 0, 1, 2)
    assert starts == (True, False, False, False)
    assert all(deterministic)
    initial = trajectory.lr[0] / 2**0.5  # the controller path goes through the action
    assert trajectory.lr == pytest.approx([initial * 2 ** (0.5 * k) for k in range(1, 5)])
    run_episode(env, policy, seed=1)  # a second episode starts afresh
    assert policy.calls[4][:2] == (None, True)
    env.close()


def _garbage_test_split(monkeypatch):
    """Make every new env's test split random noise with random labels."""
    real = load_dataset("synthetic")
    gen = torch.Generator().manual_seed(123)
    garbage = Split(
        torch.randn(real.test.images.shape, generator=gen) * 100,
        torch.randint(real.num_classes, real.test.labels.shape, generator=gen),
    )
    fake = dataclasses.replace(real, test=garbage)
    monkeypatch.setattr(lrenv.env, "load_dataset", lambda name, root=None: fake)


def test_selection_never_reads_the_test_split(monkeypatch):
    task = Task("lrenv/Synthetic-v0", SHORT)
    families = candidates(
        {
            "step_decay": {"initial_lr": (0.1, 0.01), "every": (20,), "factor": (0.5,)},
            "constant": {"lr": (0.05,)},
            "plateau": {"initial_lr": (0.1,), "factor": (0.5,), "patience": (1,)},
            "schedule_free": {"lr": (0.1,), "warmup_steps": (10,)},
        }
    )
    seeds = [SELECTION_SEED_OFFSET]
    with Runner(1, progress=False) as runner:
        clean = select_baselines(runner, families, task, seeds)
        clean_eval = runner.run([Job("step_decay", task, 0, clean["step_decay"].best)])

    tested = []
    monkeypatch.setattr(Trainee, "test_best", lambda self: tested.append(1) or 1 / 0)
    _garbage_test_split(monkeypatch)
    with Runner(1, progress=False) as runner:
        dirty = select_baselines(runner, families, task, seeds)
    assert tested == []
    for method in families:
        assert dirty[method].scores == clean[method].scores
        assert dirty[method].best == clean[method].best

    # the garbage does reach evaluation runs (so the check above could have failed)
    monkeypatch.undo()
    _garbage_test_split(monkeypatch)
    with Runner(1, progress=False) as runner:
        dirty_eval = runner.run([Job("step_decay", task, 0, clean["step_decay"].best)])
    assert dirty_eval[0].best_val_loss == clean_eval[0].best_val_loss
    assert dirty_eval[0].test_loss != pytest.approx(clean_eval[0].test_loss, rel=0.1)


def test_t_test_agrees_with_scipy_and_a_hand_computation():
    a, b = [1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 4.0, 6.0, 8.0, 10.0]
    # by hand: means 3 and 6, variances 2.5 and 10, pooled (4*2.5 + 4*10)/8 = 6.25,
    # standard error sqrt(6.25 * (1/5 + 1/5)) = sqrt(2.5), t = -3/sqrt(2.5), df = 8
    result = t_test(a, b)
    assert result.statistic == pytest.approx(-3 / math.sqrt(2.5), rel=1e-12)
    assert result.df == 8
    assert result.pvalue == pytest.approx(0.0944, abs=1e-4)  # a t table: t = 1.897, df = 8
    assert result.pvalue == pytest.approx(2 * stats.t.sf(3 / math.sqrt(2.5), 8), rel=1e-12)
    assert not result.significant

    # Unequal sizes and spreads, Student's and Welch's, against the formulas written out
    # (not against scipy.stats.ttest_ind, which t_test calls).
    rng = np.random.default_rng(0)
    x, y = rng.normal(0.40, 0.01, 10), rng.normal(0.39, 0.03, 6)
    va, vb = x.var(ddof=1) / 10, y.var(ddof=1) / 6
    pooled = (9 * x.var(ddof=1) + 5 * y.var(ddof=1)) / 14
    student_t = (x.mean() - y.mean()) / math.sqrt(pooled * (1 / 10 + 1 / 6))
    welch_t = (x.mean() - y.mean()) / math.sqrt(va + vb)
    welch_df = (va + vb) ** 2 / (va**2 / 9 + vb**2 / 5)
    for got, t, df in [
        (t_test(x, y), student_t, 14),
        (t_test(x, y, equal_var=False), welch_t, welch_df),
    ]:
        assert (got.statistic, got.df) == pytest.approx((t, df), rel=1e-12)
        assert got.pvalue == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-9)
        assert got.significant == (got.pvalue < 0.05)


@pytest.mark.parametrize(
    ("a", "b", "p"),
    [
        ([0.3], [0.2, 0.1], math.nan),
        ([0.1, 0.1], [0.1, 0.1], 1.0),
        ([0.1, 0.1], [0.2, 0.2], 0.0),
        # one sample without spread: pooled variance (0 + 0.02) / 2, t = -0.1 / sqrt(0.01) = -1,
        # df = 2, where the two-sided p is 1 - |t| / sqrt(t^2 + 2) in closed form
        ([0.1, 0.1], [0.1, 0.3], 1 - 1 / math.sqrt(3)),
    ],
)
def test_t_test_without_spread_or_samples(a, b, p):
    assert t_test(a, b).pvalue == pytest.approx(p, nan_ok=True)


def test_welch_t_test_agrees_with_scipy_and_a_hand_computation():
    a, b = [1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 4.0, 6.0, 8.0, 10.0]
    # by hand: standard error sqrt(2.5/5 + 10/5) = sqrt(2.5), t = -3/sqrt(2.5) as Student's
    # here (equal sizes), but df = 2.5^2 / ((0.5^2 + 2^2) / 4) = 5.882..., so p is larger
    welch = t_test(a, b, equal_var=False)
    assert welch.statistic == pytest.approx(-3 / math.sqrt(2.5), rel=1e-12)
    assert welch.df == pytest.approx(6.25 / (4.25 / 4), rel=1e-12)
    assert welch.pvalue == pytest.approx(2 * stats.t.sf(3 / math.sqrt(2.5), 6.25 / 1.0625))
    assert welch.pvalue > t_test(a, b).pvalue
    # one sample without spread: Welch's standard error is the other sample's alone
    lone = t_test([0.1, 0.1], [0.1, 0.3], equal_var=False)
    assert lone.statistic == pytest.approx(-0.1 / math.sqrt(0.02 / 2))
    assert lone.df == pytest.approx(1.0)


def test_comparison_reports_student_and_welch_p_values():
    from agents.jobs import RunResult
    from agents.statistics import compare_methods
    from lrenv.trace import EpisodeTrace

    def runs(method, losses):
        return [
            RunResult(method, i, x, x, 1 - x, False, None, EpisodeTrace())
            for i, x in enumerate(losses)
        ]

    ours, theirs = [0.30, 0.31, 0.29, 0.30], [0.35, 0.31, 0.39, 0.33]
    tests = compare_methods(runs("controller", ours) + runs("wsd", theirs), "controller")
    loss = tests["wsd"]["test_loss"]
    assert loss["p"] == pytest.approx(stats.ttest_ind(ours, theirs).pvalue)
    assert loss["welch_p"] == pytest.approx(stats.ttest_ind(ours, theirs, equal_var=False).pvalue)
    assert loss["welch_p"] != pytest.approx(loss["p"])


def test_transfer_tasks_follow_the_controller_config():
    preset_kwargs = {"device": "cpu", "total_steps": 40}
    config = {
        "env_id": "lrenv/CIFAR10-CNN-v0",
        "env_kwargs": {"model": "mlp", "device": "cuda", "factor_base": 1.25},
    }
    task, baseline, trained = resolve_tasks(
        "lrenv/Synthetic-v0", preset_kwargs, config, env_id="lrenv/FashionMNIST-CNN-v0"
    )
    assert task.env_id == "lrenv/FashionMNIST-CNN-v0"
    assert task.env_kwargs["factor_base"] == 1.25  # the controller's action semantics
    assert "model" not in task.env_kwargs  # but not its task
    assert baseline.env_id == trained.env_id == "lrenv/CIFAR10-CNN-v0"
    assert baseline.env_kwargs["model"] == "mlp" and baseline.env_kwargs["device"] == "cpu"
    assert not baseline.same_task_as(task)

    same, baseline, _ = resolve_tasks("lrenv/Synthetic-v0", preset_kwargs, {})
    assert baseline is same
    # an id with the same registered keywords is the same task
    general = {"dataset": "synthetic", "model": "mlp", "batch_size": 64, "total_steps": 40}
    assert Task("lrenv/LRSchedule-v0", general).same_task_as(same)


@pytest.fixture
def controller_zip(tmp_path):
    """An untrained PPO saved the way train.py saves controllers, trained on a short task."""
    from stable_baselines3 import PPO

    env = gym.make("lrenv/Synthetic-v0", **SHORT)
    model = PPO("MlpPolicy", env, n_steps=8, batch_size=8, seed=0, device="cpu")
    model.lrenv_obs_normalization = {
        "mean": np.zeros(7),
        "var": np.ones(7),
        "epsilon": 1e-8,
        "clip": 10.0,
    }
    model.lrenv_config = {
        "env_id": "lrenv/Synthetic-v0",
        "env_kwargs": {"total_steps": 40},
        "preset": "smoke",
        "recurrent": False,
    }
    path = tmp_path / "controller.zip"
    model.save(path)
    save_controller(model, path)  # controller.safetensors beside it, which is what is read
    env.close()
    return path


def test_evaluate_writes_results_and_figures_for_a_transferred_controller(tmp_path, controller_zip):
    out = tmp_path / "eval"
    evaluate.main(
        [
            "--controller",
            str(controller_zip.parent),  # the run folder, as train.py's last lines say
            "--env-kwargs",
            '{"batch_size": 32, "total_steps": 40}',  # another task: transfer
            "--runs",
            "2",
            "--workers",
            "1",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    results = json.loads((out / "results.json").read_text())
    runs = results["runs"]
    methods = ("controller", *BASELINES)
    assert sorted({r["method"] for r in runs}) == sorted(methods)
    for method in methods:
        mine = [r for r in runs if r["method"] == method]
        assert [r["seed"] for r in mine] == [0, 1]
        for r in mine:
            assert set(r) >= {"method", "seed", "test_loss", "test_accuracy", "best_val_loss"}
            assert math.isfinite(r["test_loss"]) and 0 <= r["test_accuracy"] <= 1
    assert len(results["selection"]["step_decay"]["scores"]) == 8  # the smoke grid
    chosen = results["chosen"]["step_decay"]
    best = min(results["selection"]["step_decay"]["scores"], key=lambda s: s["best_val_loss"])
    assert chosen == best["schedule"]
    assert set(results["p_values"]) == set(BASELINES)
    for tests in results["p_values"].values():
        assert set(tests["test_loss"]) >= {"p", "welch_p"}
    assert results["baseline_task"]["env_kwargs"].get("batch_size") != 32
    assert results["task"]["env_kwargs"]["batch_size"] == 32
    assert results["config"]["preset"] == "smoke"  # taken from the controller

    markdown = (out / "results.md").read_text()
    assert "Paper format (Table 2)" in markdown
    assert "**Against every family**" in markdown
    assert "| warmup-stable-decay | peak_lr 0.1; cooldown 0.2; warmup 0 |" in markdown
    assert "Controller tuned (trained) on:** `lrenv/Synthetic-v0 (total_steps=40)` (transfer)" in (
        markdown
    )
    assert "Baselines tuned on:** `lrenv/Synthetic-v0 (total_steps=40)` (transfer" in markdown
    for name in ("val_loss.png", "lr_schedule.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / name).stat().st_size > 20_000
    trajectories = json.loads((out / "trajectories.json").read_text())
    assert len(trajectories) == len(runs)


def test_worker_processes_give_the_same_runs_as_one_process():
    task = Task("lrenv/Synthetic-v0", SHORT)
    jobs = [Job("constant", task, seed, schedule_to_dict(Constant(0.05))) for seed in (0, 1)]
    with Runner(1, progress=False) as runner:
        here = runner.run(jobs)
    with Runner(2, threads=1, progress=False) as runner:
        there = runner.run(jobs)
    assert [r.record() for r in there] == [r.record() for r in here]
    assert here[0].test_loss != here[1].test_loss


def test_batched_runs_equal_unbatched_runs(controller_zip):
    """Controller and schedule runs, tested or not, one diverging early: the batched
    runner gives every run what the unbatched one gives, within float tolerance."""
    task = Task("lrenv/Synthetic-v0", SHORT)
    seeds = (0, 1, 2)
    jobs = [Job("controller", task, seed, controller=str(controller_zip)) for seed in seeds]
    jobs += [Job("constant", task, seed, schedule_to_dict(Constant(0.05))) for seed in seeds]
    jobs += [  # selection-like: two schedules in one batch; 1e3 diverges at once
        Job("step_decay", task, 5, schedule_to_dict(schedule), test=False)
        for schedule in (StepDecay(0.1, every=20, factor=0.5), Constant(1e3))
    ]
    assert batches(jobs, max_batch=2) == [[0, 1], [2], [3, 4], [5], [6, 7]]
    with Runner(1, progress=False) as runner:
        single = runner.run(jobs)
    with Runner(1, progress=False, batched=True, max_batch=2) as runner:
        batched = runner.run(jobs)

    assert [r.trajectory.diverged for r in single] == [False] * 7 + [True]
    for a, b in zip(single, batched, strict=True):
        for key in ("method", "seed", "diverged", "schedule"):
            assert getattr(b, key) == getattr(a, key)
        assert b.best_val_loss == pytest.approx(a.best_val_loss, rel=1e-4)
        for key in ("test_loss", "test_accuracy"):
            got, expected = getattr(b, key), getattr(a, key)
            assert got == expected if expected is None else got == pytest.approx(expected, rel=1e-4)
        ta, tb = a.trajectory, b.trajectory
        assert (tb.val_steps, tb.lr_steps, tb.end_step) == (ta.val_steps, ta.lr_steps, ta.end_step)
        assert tb.lr == pytest.approx(ta.lr, rel=1e-4)
        assert tb.val_loss == pytest.approx(ta.val_loss, rel=1e-4)
    assert single[0].test_loss != single[1].test_loss  # the seeds differ, in both


def test_evaluate_batched_runs_in_this_process(tmp_path):
    out = tmp_path / "eval"
    flags = ["--preset", "smoke", "--baselines", "constant", "--runs", "2", "--batched"]
    flags += ["--env-kwargs", '{"total_steps": 40}', "--no-progress", "--out", str(out)]
    evaluate.main(flags)
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["batched"] is True and results["config"]["workers"] == 1
    assert [(r["method"], r["seed"]) for r in results["runs"]] == [("constant", 0), ("constant", 1)]


@pytest.mark.slow
def test_cpu_preset_comparison_on_real_fashion_mnist(tmp_path):
    out = tmp_path / "eval"
    evaluate.main(
        [
            "--preset",
            "cpu",
            "--env-kwargs",
            '{"total_steps": 200}',
            "--baselines",
            "step_decay,constant",
            "--runs",
            "3",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    results = json.loads((out / "results.json").read_text())
    assert len(results["selection"]["step_decay"]["scores"]) == 48
    # plain SGD for 200 steps: the largest rates of the grid win on validation
    assert results["chosen"]["step_decay"]["initial_lr"] == 0.1
    for method in ("step_decay", "constant"):
        assert results["summary"][method]["test_accuracy_mean"] > 0.75
        assert results["summary"][method]["runs"] == 3


def test_schedules_run_exactly_on_a_task_whose_controller_acts_absolutely():
    """A controller trained with action_mode='absolute' carries that into the evaluation
    task; the baseline schedules must still train at exactly their rates there."""
    task = Task("lrenv/Synthetic-v0", {"action_mode": "absolute", "lr_bounds": [0.01, 1.0]})
    schedule = schedule_to_dict(StepDecay(0.3, 20, 0.5))
    result = run_job(Job("step_decay", task, seed=0, schedule=schedule, test=False))
    expected = [0.3 * 0.5 ** (step // 20) for step in result.trajectory.lr_steps]
    np.testing.assert_allclose(result.trajectory.lr, expected, rtol=1e-12)


def test_baselines_run_their_own_optimizer_whatever_the_controller_drives():
    """A residual controller over schedule-free SGD carries that optimizer and its base in
    its task; the baselines evaluated beside it must not inherit them."""
    task = Task(
        "lrenv/Synthetic-v0",
        {
            **SHORT,
            "action_mode": "residual",
            "base_schedule": {"kind": "constant", "lr": 1.5},
            "optimizer": "schedule_free",
            "warmup_steps": 50,
        },
    )
    wsd = Job("wsd", task, 0, schedule=schedule_to_dict(WSD(0.05, cooldown=0.2)))
    assert wsd.task.env_kwargs["optimizer"] == "sgd" and wsd.task.env_kwargs["warmup_steps"] == 0
    assert "base_schedule" not in wsd.task.env_kwargs
    assert wsd.task.env_kwargs["action_mode"] == "scale"
    free = Job("schedule_free", task, 0, schedule=schedule_to_dict(ScheduleFree(0.3, 10)))
    assert free.task.env_kwargs["optimizer"] == "schedule_free"
    assert free.task.env_kwargs["warmup_steps"] == 10
    result = run_job(wsd)
    assert math.isfinite(result.test_loss)
    assert result.trajectory.lr[:2] == pytest.approx([0.05, 0.05]) and not result.diverged


def test_batched_runner_runs_schedule_free_jobs_unbatched_with_the_same_results(monkeypatch):
    """Batched trainees train with plain SGD only: beside plain-SGD runs that do train as
    one batch, the batched runner trains schedule-free runs one at a time (run_job), and
    they end as the unbatched runner's do."""
    task = Task("lrenv/Synthetic-v0", SHORT)
    jobs = [Job("schedule_free", task, s, schedule_to_dict(ScheduleFree(0.1, 10))) for s in (0, 1)]
    jobs += [Job("constant", task, s, schedule_to_dict(Constant(0.05))) for s in (0, 1)]
    assert batches(jobs) == [[0], [1], [2, 3]]
    with Runner(1, progress=False) as runner:
        plain = runner.run(jobs)

    one_by_one, batched_sizes = [], []

    def spy_run_job(job, cache=None):
        one_by_one.append(job.method)
        return run_job(job, cache)

    def spy_run_episodes(batch, policies, seeds):
        batched_sizes.append(len(policies))
        return run_episodes(batch, policies, seeds)

    monkeypatch.setattr(agents.jobs, "run_job", spy_run_job)
    monkeypatch.setattr(agents.jobs, "run_episodes", spy_run_episodes)
    with Runner(1, progress=False, batched=True) as runner:
        batched = runner.run(jobs)
    assert one_by_one == ["schedule_free", "schedule_free"] and batched_sizes == [2]
    assert [r.record() for r in batched[:2]] == [r.record() for r in plain[:2]]
    for a, b in zip(plain[2:], batched[2:], strict=True):
        assert b.test_loss == pytest.approx(a.test_loss, rel=1e-4)
