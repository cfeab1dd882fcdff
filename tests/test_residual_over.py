"""The default preset's defining step, on the synthetic task: ``train.py --residual-over``
first picks the best baseline on validation (:func:`agents.selection.choose_base`, which
is evaluate.py's selection), then trains a controller residual over it, so that the
controller's action 0 is that baseline exactly."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from agents.baselines import schedule_to_dict
from agents.comparison import candidates, selection_seeds
from agents.jobs import Job, run_job
from agents.presets import get_preset
from agents.selection import choose_base, residual_base
from agents.tasks import Task
from lrenv.schedule_families import schedule_from_dict

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Three rates far apart (one best on validation) and two families
GRIDS = {
    "constant": {"lr": (0.5, 0.05, 0.005)},
    "wsd": {"peak_lr": (0.05,), "cooldown": (0.5,)},
}
TASK = Task("lrenv/Synthetic-v0", {"device": "cpu", "total_steps": 40})


def test_choose_base_keeps_the_candidate_with_the_lowest_validation_loss_over_families():
    base = choose_base(TASK, GRIDS, ["constant", "wsd"], n_seeds=1)
    (seed,) = selection_seeds(1)
    scores = {}  # each candidate on the selection seed, run on its own, test split unread
    for family, schedules in candidates(GRIDS).items():
        for schedule in schedules:
            described = schedule_to_dict(schedule)
            result = run_job(Job(family, TASK, seed, schedule=described, test=False))
            scores[family, json.dumps(described)] = result.best_val_loss
    best = min(scores, key=scores.get)
    assert len(set(scores.values())) == len(scores)  # no ties: the choice means something
    assert (base["family"], json.dumps(base["schedule"])) == best
    assert base["best_val_loss"] == scores[best]
    assert base["env_kwargs"] == residual_base(base["schedule"])


def test_a_base_must_be_a_function_of_the_step():
    with pytest.raises(ValueError, match="function of the step"):
        residual_base({"kind": "plateau", "initial_lr": 0.1, "factor": 0.5, "patience": 2})
    sf = residual_base({"kind": "schedule_free", "lr": 0.3, "warmup_steps": 10})
    assert sf == {
        "action_mode": "residual",
        "base_schedule": {"kind": "constant", "lr": 0.3},
        "optimizer": "schedule_free",
        "warmup_steps": 10,
    }


def test_train_residual_over_trains_over_the_base_chosen_on_validation(tmp_path, train_smoke):
    run = train_smoke(tmp_path / "run", "--residual-over", "constant,wsd")
    saved = json.loads((run / "config.json").read_text())
    config, base = saved["config"], saved["base_selection"]
    preset = get_preset("smoke")
    # the same choice as choose_base on the preset's task and grids (two selection seeds)
    task = Task(preset.env_id, dict(preset.env_kwargs))
    assert base == choose_base(task, preset.evaluation.grids, ["constant", "wsd"])
    assert base["family"] in ("constant", "wsd")
    for key, value in residual_base(base["schedule"]).items():
        assert config["env_kwargs"][key] == value

    # action 0 of the trained controller's env is the chosen baseline, step by step
    env = gym.make(config["env_id"], **config["env_kwargs"])
    schedule = schedule_from_dict(config["env_kwargs"]["base_schedule"])
    _, info = env.reset(seed=0)
    total, done = env.unwrapped.total_steps, False
    while not done:
        start = info["sgd_step"]
        _, _, terminated, truncated, info = env.step(np.zeros(1, np.float32))
        assert info["lr"] == schedule.lr_at(start, total)
        done = terminated or truncated
    env.close()
