"""Task sets: the CSV format, the shipped sets, the env over them, and their references."""

from __future__ import annotations

import json
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import lrenv
from lrenv.data import DIGITS_TEST_SIZE, VALIDATION_SIZE
from lrenv.models import build_model, check_model, mlp_shape
from lrenv.task_sets import COLUMNS, TaskSetError, available_task_sets, load_task_set

pytestmark = pytest.mark.usefixtures("one_torch_thread")


SMOKE_ROWS = (Path(lrenv.__file__).parent / "task_sets" / "smoke-v1.csv").read_text()


def _write(tmp_path: Path, text: str, name: str = "mine.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_sets_resolve_to_their_newest_version():
    shipped = available_task_sets()
    assert shipped["default"] == shipped["default-v1"]
    assert shipped["smoke"] == shipped["smoke-v1"]
    assert load_task_set("default").name == "default-v1"


def test_the_default_set_spans_what_a_zero_shot_benchmark_needs():
    task_set = load_task_set("default")
    train, test = task_set.tasks("train"), task_set.tasks("test")
    assert len(train) >= 16 and len(test) >= 8
    every = [t.env_kwargs for t in train + test]
    assert {k["dataset"] for k in every} >= {"fashion_mnist", "cifar10", "digits"}
    assert {"cnn", "mlp"} <= {"mlp" if k["model"].startswith("mlp") else k["model"] for k in every}
    assert min(k["batch_size"] for k in every) == 32 and max(k["batch_size"] for k in every) == 512
    assert min(k["total_steps"] for k in every) == 100
    assert max(k["total_steps"] for k in every) == 1000
    rates = [k["initial_lr"] for k in every]
    assert max(rates) / min(rates) >= 100
    # the held-out split asks for what training never showed
    seen_pairs = {(t.env_kwargs["dataset"], t.env_kwargs["model"]) for t in train}
    assert any((t.env_kwargs["dataset"], t.env_kwargs["model"]) not in seen_pairs for t in test)
    assert max(t.env_kwargs["total_steps"] for t in test) > max(
        t.env_kwargs["total_steps"] for t in train
    )
    assert max(t.env_kwargs["batch_size"] for t in test) > max(
        t.env_kwargs["batch_size"] for t in train
    )


# Training examples a trainee sees: each dataset's training split less its validation part.
TRAINING_EXAMPLES = {
    "fashion_mnist": 60_000 - VALIDATION_SIZE["fashion_mnist"],
    "cifar10": 50_000 - VALIDATION_SIZE["cifar10"],
    "digits": 1_797 - DIGITS_TEST_SIZE - VALIDATION_SIZE["digits"],
}


def _passes(task) -> float:
    kwargs = task.env_kwargs
    return kwargs["total_steps"] * kwargs["batch_size"] / TRAINING_EXAMPLES[kwargs["dataset"]]


def test_the_default_v2_draft_breaks_the_link_between_dataset_and_run_length():
    draft_path = Path(__file__).parents[1] / "docs" / "default-v2-draft.csv"
    draft, v1 = load_task_set(draft_path), load_task_set("default-v1")
    held_out = [line for line in draft_path.read_text().splitlines() if ",test," in line]
    assert held_out == [line for line in v1.path.read_text().splitlines() if ",test," in line]
    assert set(v1.names("train")) < set(draft.names("train"))
    for split_set, linked in ((v1, True), (draft, False)):
        passes = {}
        for task in split_set.tasks("train"):
            passes.setdefault(task.env_kwargs["dataset"], []).append(_passes(task))
        # v1: every digits task makes more passes than any other task; the draft: each
        # dataset has runs of under 2 passes and of over 3
        assert (min(passes["digits"]) > max(passes["fashion_mnist"] + passes["cifar10"])) == linked
        assert all(min(p) < 2 and max(p) > 3 for p in passes.values()) != linked


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,split\nx,train\n", "missing dataset"),
        (SMOKE_ROWS.replace("initial_lr", "initial_lr,extra", 1), "unknown extra"),
        (SMOKE_ROWS.replace(",train,", ",valid,", 1), "line 2: split must be train or test"),
        (SMOKE_ROWS.replace("syn-mlp32x2-b64-s40", "syn-mlp16-b32-s60"), "names must be unique"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_file_and_line(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(TaskSetError, match=message) as caught:
        load_task_set(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [(",32,60,", ",many,60,", "not a number"), ("mlp-16x1", "transformer", "unknown model")],
)
def test_a_bad_row_is_refused_when_its_split_is_read(tmp_path, old, new, message):
    task_set = load_task_set(_write(tmp_path, SMOKE_ROWS.replace(old, new, 1)))
    with pytest.raises(TaskSetError, match=f"line 2 \\(task 'syn-mlp16-b32-s60'\\): .*{message}"):
        task_set.tasks("train")
    assert len(task_set.tasks("test")) == 2  # the other split never reads that row


def test_unknown_names_say_what_there_is():
    with pytest.raises(TaskSetError, match="choose one of default"):
        load_task_set("nope")
    with pytest.raises(TaskSetError, match="the tasks are: syn-mlp32x2-b32-s100"):
        load_task_set("smoke").task("syn-mlp16-b32-s60", split="test")


def test_columns_are_documented_in_order():
    assert SMOKE_ROWS.splitlines()[0].split(",") == list(COLUMNS)


@pytest.mark.parametrize(
    ("name", "shape"), [("mlp", (128,)), ("mlp-32x1", (32,)), ("mlp-64x3", (64, 64, 64))]
)
def test_mlp_names_give_their_shape(name, shape):
    assert mlp_shape(name) == shape
    widths = [
        m.out_features
        for m in build_model(name, (1, 8, 8), 10).modules()
        if hasattr(m, "out_features")
    ]
    assert widths == [*shape, 10]


@pytest.mark.parametrize("name", ["mlp-0x2", "mlp-64x", "mlp-99999x1", "mlpx", "MLP"])
def test_bad_model_names_are_refused(name):
    with pytest.raises(ValueError, match="mlp-WxD"):
        check_model(name)


def test_the_digits_dataset_needs_no_download():
    from lrenv.data import load_dataset

    data = load_dataset("digits")
    assert data.image_shape == (1, 8, 8)
    assert (len(data.train), len(data.val), len(data.test)) == (1197, 300, 300)
    assert data.num_classes == 10


# --- the env ---------------------------------------------------------------------------------


def test_the_task_set_env_passes_both_checkers():
    check_env(gym.make("lrenv/TaskSet-v0", task_set="smoke").unwrapped)
    sb3_check_env(gym.make("lrenv/TaskSet-v0", task_set="smoke").unwrapped)


def test_reset_draws_the_task_from_the_seed_and_names_it():
    names = [
        gym.make("lrenv/TaskSet-v0", task_set="smoke").reset(seed=s)[1]["task"] for s in range(12)
    ]
    assert set(names) == set(load_task_set("smoke").names("train"))  # all four are drawn
    env = gym.make("lrenv/TaskSet-v0", task_set="smoke")
    first = [env.reset(seed=3)[0] for _ in range(2)]
    np.testing.assert_array_equal(*first)  # the same seed, the same task and trainee
    seed = next(s for s in range(12) if names[s] != "syn-mlp16-b64-s80")  # that one diverges
    _, info = env.reset(seed=seed)
    trajectory = []
    while True:
        _obs, reward, terminated, truncated, step_info = env.step(np.array([0.1], np.float32))
        assert step_info["task"] == info["task"]
        assert step_info["task_family"] == "synthetic-mlp"
        trajectory.append(reward)
        if terminated or truncated:
            break
    assert len(trajectory) == load_task_set("smoke").task(info["task"]).decisions


def test_reset_options_pick_a_task_by_name_only_from_the_split():
    env = gym.make("lrenv/TaskSet-v0", task_set="smoke", split="test")
    _obs, info = env.reset(seed=0, options={"task": "syn-mlp-b128-s40", "initial_lr": 0.02})
    assert info["task"] == "syn-mlp-b128-s40"
    assert info["lr"] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="must name a task of split 'test'"):
        env.reset(options={"task": "syn-mlp16-b32-s60"})


def test_every_task_gives_the_same_scale_free_observation_at_reset():
    env = gym.make("lrenv/TaskSet-v0", task_set="smoke").unwrapped
    for name in env.task_names:
        obs, _ = env.reset(seed=0, options={"task": name})
        assert obs.shape == env.observation_space.shape
        names = env.feature_names
        assert obs[names.index("val_loss")] == pytest.approx(1.0)  # relative to the start
        assert obs[names.index("progress")] == 0.0


@pytest.mark.parametrize(
    "key", ["dataset", "batch_size", "total_steps", "initial_lr", "initial_lrs"]
)
def test_a_task_keyword_is_never_overridden(key):
    with pytest.raises(ValueError, match="fixed by each task of a task set"):
        gym.make("lrenv/TaskSet-v0", task_set="smoke", **{key: 1})


def test_make_vec_steps_several_tasks():
    envs = gym.make_vec("lrenv/TaskSet-v0", num_envs=2, task_set="smoke")
    obs, info = envs.reset(seed=1)
    assert obs.shape == (2, 8) and len(info["task"]) == 2
    envs.step(np.zeros((2, 1), np.float32))
    envs.close()


def test_sb3_ppo_learns_on_the_task_set_env():
    from stable_baselines3 import PPO

    env = gym.make("lrenv/TaskSet-v0", task_set="smoke", device="cpu")
    model = PPO("MlpPolicy", env, n_steps=16, batch_size=8, n_epochs=1, seed=0, device="cpu")
    model.learn(32)
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert action.shape == (1,)


# --- references -------------------------------------------------------------------------------


def _close(a, b, path="") -> None:
    """Equal structure and choices; numbers equal to 1e-6 relative (other CPUs round
    differently)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-6), (path, a, b)
    else:
        assert a == b, path


def _regenerate(out: Path) -> dict:
    from agents import references

    references.main(["--task-set", "smoke", "--out", str(out), "--no-progress"])
    return json.loads(out.read_text())


def test_the_smoke_references_regenerate(tmp_path):
    stored = json.loads(load_task_set("smoke").references_path.read_text())
    _close(_regenerate(tmp_path / "refs.json"), stored)


@pytest.mark.slow
def test_the_smoke_references_regenerate_bit_identically(tmp_path):
    """On one machine the command is deterministic: the same bytes twice (and the stored
    file's, where that file was made on a CPU that rounds alike)."""
    _regenerate(tmp_path / "a.json")
    _regenerate(tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
