"""The zero-shot protocol: training on a task set's training split, evaluation on its
held-out split, and proof that the held-out split is never read before that."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import lrenv  # noqa: F401  (registers the environments)
from agents.open_loop import ReplayPolicy, actions_from_trace, progress_profile
from agents.statistics import paired_t_test
from agents.tasks import BASELINES
from lrenv.env import residual_lr, scaled_lr
from lrenv.task_sets import load_task_set

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _train(out: Path, *flags: str) -> Path:
    import train  # the script at the project root (pytest's pythonpath)

    return train.main(
        [
            "--preset",
            "smoke-tasks",
            "--no-progress",
            "--figure-every",
            "0",
            "--out",
            str(out),
            *flags,
        ]
    )


@pytest.fixture(scope="module")
def zero_shot_results(tmp_path_factory) -> tuple[Path, dict]:
    """``python train.py --preset smoke-tasks`` then ``python evaluate.py --controller RUN``."""
    import evaluate

    root = tmp_path_factory.mktemp("zero-shot")
    run = _train(root / "run")
    out = evaluate.main(
        ["--controller", str(run), "--out", str(root / "eval"), "--no-progress", "--workers", "1"]
    )
    return run, json.loads((Path(out) / "results.json").read_text())


def test_evaluate_runs_every_method_of_the_protocol_on_every_held_out_task(zero_shot_results):
    _, results = zero_shot_results
    held_out = load_task_set("smoke").names("test")
    assert [entry["task"] for entry in results["tasks"]] == held_out
    expected = {
        "controller",
        "replay",
        "schedule_free_default",
        "prodigy",
        "dadaptation",
        "oracle",
        *(f"transferred_{family}" for family in BASELINES),
    }
    for entry in results["tasks"]:
        assert set(entry["methods"]) == expected
        for method in entry["methods"].values():
            assert method["n"] >= 5 and len(method["test_loss"]) == method["n"]
            assert method["mean"] == pytest.approx(np.mean(method["test_loss"]))
    seeds = {}
    for run in results["runs"]:  # the same seeds, in the same order, for every method
        seeds.setdefault((run["task"], run["method"]), []).append(run["seed"])
    assert len({tuple(s) for s in seeds.values()}) == 1


def test_the_zero_shot_summary_counts_every_task(zero_shot_results):
    _, results = zero_shot_results
    zero = results["zero_shot"]
    for record in zero["record"].values():
        assert record["wins"] + record["ties"] + record["losses"] == len(results["tasks"])
    regrets = [row["regret"] for row in zero["per_task"]]
    assert zero["regret"]["median"] == pytest.approx(np.median(regrets))
    assert zero["regret"]["worst"] == pytest.approx(max(regrets))
    for row, entry in zip(zero["per_task"], results["tasks"], strict=True):
        oracle = entry["methods"]["oracle"]["mean"]
        assert row["regret"] == pytest.approx(
            (entry["methods"]["controller"]["mean"] - oracle) / oracle
        )


def test_the_report_shows_the_table_and_the_figure(zero_shot_results, tmp_path):
    _run, results = zero_shot_results
    folder = Path(results["config"]["out"])
    text = (folder / "results.md").read_text()
    assert "| syn-mlp32x2-b32-s100 |" in text and "wins | ties | losses" in text
    assert (folder / "regret.png").stat().st_size > 10_000


def test_training_never_reads_the_held_out_split(tmp_path):
    """Replace every held-out row of a task set with garbage: the controller trained on the
    training split is the same, weight for weight, and so is its base."""
    source = load_task_set("smoke").path.read_text().splitlines()
    garbage = [source[0]]
    for i, line in enumerate(source[1:]):
        fields = line.split(",")
        if fields[1] == "test":
            line = f"junk-{i},test,??,{{}},-1,x,0,,nan"
        garbage.append(line)
    clean, dirty = tmp_path / "clean.csv", tmp_path / "dirty.csv"
    clean.write_text("\n".join(source) + "\n")
    dirty.write_text("\n".join(garbage) + "\n")
    runs = []
    for path in (clean, dirty):
        kwargs = json.dumps({"task_set": str(path), "device": "cpu"})
        runs.append(_train(tmp_path / path.stem, "--env-kwargs", kwargs, "--episodes", "8"))
    weights = [load_file(run / "controller.safetensors") for run in runs]
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
    bases = [json.loads((run / "config.json").read_text())["config"]["env_kwargs"] for run in runs]
    for base in bases:
        base.pop("task_set")
    assert bases[0] == bases[1] and bases[0]["action_mode"] == "residual"


# --- open-loop replay -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["scale", "residual", "absolute"])
def test_actions_are_recovered_from_the_rates_they_set(mode):
    kwargs = {
        "action_mode": mode,
        "factor_base": 2.0,
        "lr_bounds": (1e-6, 1.0),
        "base_schedule": {"kind": "wsd", "peak_lr": 0.1, "cooldown": 0.2, "warmup": 0.0}
        if mode == "residual"
        else None,
        "total_steps": 50,
    }
    actions = [0.3, -0.5, 0.0, 1.0, -0.2]
    lrs, steps, lr = [], [], 0.01
    from lrenv.schedule_families import schedule_from_dict

    for k, action in enumerate(actions):
        if mode == "residual":
            base = schedule_from_dict(kwargs["base_schedule"]).lr_at(10 * k, 50)
            lr = residual_lr(base, action, 2.0)
        else:
            lr = scaled_lr(lr, action, 2.0, (1e-6, 1.0), mode)
        lrs.append(lr)
        steps.append(10 * k)
    recovered = actions_from_trace(lrs, steps, 0.01, kwargs)
    np.testing.assert_allclose(recovered, actions, atol=1e-9)


def test_a_profile_averages_actions_by_stage_of_training():
    profile = progress_profile([[1.0, 1.0, -1.0, -1.0], [0.0, 0.0]], bins=2)
    assert profile == [pytest.approx(2 / 3), pytest.approx(-2 / 3)]
    policy = ReplayPolicy(profile, decisions=6)
    state, actions = None, []
    for k in range(6):
        action, state = policy.predict(np.zeros(8), state, np.array([k == 0]))
        actions.append(float(action[0]))
    assert actions == [pytest.approx(2 / 3)] * 3 + [pytest.approx(-2 / 3)] * 3


def test_the_paired_t_test_is_scipys_and_handles_no_spread():
    from scipy import stats

    a, b = [1.0, 2.0, 3.5, 4.0], [1.5, 2.1, 3.0, 5.0]
    assert paired_t_test(a, b).pvalue == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert paired_t_test([1.0, 2.0], [1.0, 2.0]).pvalue == 1.0
    assert paired_t_test([1.0, 2.0], [0.5, 1.5]).pvalue == 0.0


def test_each_method_of_the_regret_figure_has_its_own_colour(zero_shot_results):
    from agents.zero_shot_report import regret_figure

    _run, results = zero_shot_results
    axes = regret_figure(results).axes[0]
    colours = {tuple(bars.patches[0].get_facecolor()) for bars in axes.containers}
    assert len(axes.containers) >= 12 and len(colours) == len(axes.containers)
