"""An env id means its trainee: ids pin their task, presets never override it."""

from __future__ import annotations

import gymnasium as gym
import pytest

import lrenv
from agents.presets import PRESETS, get_preset
from agents.tasks import Task, resolve_tasks
from agents.train_config import TrainConfig

LRENV_IDS = [env_id for env_id in gym.registry if env_id.startswith("lrenv/")]
NAMED_IDS = [e for e in LRENV_IDS if e not in ("lrenv/LRSchedule-v0", "lrenv/TaskSet-v0")]


@pytest.mark.parametrize("env_id", NAMED_IDS)
def test_every_named_id_pins_its_whole_task(env_id):
    assert set(lrenv.TASK_KEYS) <= set(gym.spec(env_id).kwargs)


def test_the_cpu_preset_trains_the_mlp_id_it_names():
    preset = get_preset("cpu")
    assert preset.env_id == "lrenv/FashionMNIST-MLP-v0"
    assert not set(preset.env_kwargs) & set(lrenv.TASK_KEYS)
    kwargs = Task(preset.env_id, dict(preset.env_kwargs)).resolved_kwargs
    assert (kwargs["dataset"], kwargs["model"], kwargs["batch_size"]) == (
        "fashion_mnist",
        "mlp",
        128,
    )


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("env_id", ["lrenv/CIFAR10-CNN-v0", "lrenv/FashionMNIST-ResNet-v0"])
def test_a_preset_never_changes_the_trainee_of_a_named_id(preset, env_id):
    config = TrainConfig.from_preset(get_preset(preset)).with_overrides({"env_id": env_id})
    resolved = Task(config.env_id, config.env_kwargs).resolved_kwargs
    for key in lrenv.TASK_KEYS:
        assert resolved[key] == gym.spec(env_id).kwargs[key], key
    task, baseline, _ = resolve_tasks(
        get_preset(preset).env_id, get_preset(preset).env_kwargs, env_id=env_id
    )
    for key in lrenv.TASK_KEYS:
        assert task.resolved_kwargs[key] == gym.spec(env_id).kwargs[key], key
    assert baseline == task


def test_keywords_the_user_gives_still_apply_to_a_named_id():
    config = TrainConfig.from_preset(get_preset("cpu")).with_overrides(
        {"env_id": "lrenv/CIFAR10-CNN-v0", "env_kwargs": {"batch_size": 64}}
    )
    resolved = Task(config.env_id, config.env_kwargs).resolved_kwargs
    assert (resolved["model"], resolved["batch_size"]) == ("cnn", 64)
    # the preset's other keywords (reward, features) still apply
    assert resolved["reward"] == get_preset("cpu").env_kwargs["reward"] == "delta"


def test_titles_name_the_trainee_not_only_the_id():
    assert (
        Task("lrenv/FashionMNIST-MLP-v0").label == "lrenv/FashionMNIST-MLP-v0 (fashion_mnist, mlp)"
    )
