"""The confirmation of a chosen snapshot (agents.selection.confirm_snapshot): a trained
snapshot that scored best is kept only when it beats the untrained one again, on fresh
validation episodes; otherwise the untrained snapshot, the base schedule, is the
controller. The lowest of many noisy scores is biased low, and a snapshot kept by luck
then does worse than its base where it is used."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import train
from agents import selection
from agents.run_folder import RunDir
from agents.tasks import Task
from agents.train_options import TrainOptions, resolve
from tests.test_train import smoke


class FakeRunner:
    """Stands in for agents.pool.Runner: every job's best validation loss comes from
    ``loss(snapshot file name, seed)``."""

    def __init__(self, loss):
        self.loss = loss
        self.jobs = []

    def __call__(self, *args, **kwargs):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def run(self, jobs, desc=""):
        self.jobs += jobs
        return [_Result(self.loss(Path(job.controller).stem, job.seed)) for job in jobs]


class _Result:
    def __init__(self, best_val_loss):
        self.best_val_loss = best_val_loss
        self.diverged = False


def snapshot_run(tmp_path: Path, episodes=(0, 4, 8)) -> Path:
    """A run folder whose snapshots are empty files (the fake runner never reads them)."""
    folder = tmp_path / "run" / selection.SNAPSHOTS
    folder.mkdir(parents=True)
    for n in episodes:
        for suffix in (".zip", ".safetensors"):
            (folder / f"episode-{n:06d}{suffix}").write_bytes(f"{n}{suffix}".encode())
    return tmp_path / "run"


def losses(selection_scores, confirmation_offsets):
    """A loss function: on selection seeds each snapshot's fixed score; on confirmation
    seeds the untrained snapshot's 1.0 plus the candidate's offset for that seed."""

    def loss(stem, seed):
        if seed < selection.CONFIRMATION_SEED_OFFSET:
            return selection_scores[stem]
        j = seed - selection.CONFIRMATION_SEED_OFFSET
        return 1.0 if stem == "episode-000000" else 1.0 + confirmation_offsets[j]

    return loss


SCORES = {"episode-000000": 1.0, "episode-000004": 0.9, "episode-000008": 0.95}
TASK = Task("lrenv/Synthetic-v0", {})


@pytest.mark.parametrize(
    ("offsets", "kept"),
    [
        # better on every fresh episode: the trained snapshot is kept
        ([-0.02, -0.03, -0.025, -0.02], "episode-000004"),
        # better on the mean, inside the spread: the untrained one is kept
        ([-0.08, 0.05, -0.06, 0.04], "episode-000000"),
        # worse again: the untrained one is kept
        ([0.01, 0.02, 0.015, 0.01], "episode-000000"),
        # a loss that is not a number cannot confirm anything
        ([-0.02, math.nan, -0.025, -0.02], "episode-000000"),
    ],
)
def test_the_best_trained_snapshot_is_kept_only_when_fresh_episodes_confirm_it(
    tmp_path, monkeypatch, offsets, kept
):
    run = snapshot_run(tmp_path)
    runner = FakeRunner(losses(SCORES, offsets))
    monkeypatch.setattr(selection, "Runner", runner)
    result = selection.select_snapshot(run, TASK, n_seeds=2, confirm_seeds=len(offsets))
    assert result["chosen"] == f"{kept}.zip"
    assert (run / "controller.zip").read_bytes() == (run / "snapshots" / f"{kept}.zip").read_bytes()
    confirmation = result["confirmation"]
    assert confirmation["candidate"] == "episode-000004.zip"  # the best score, confirmed or not
    assert confirmation["seeds"] == [2_000_000 + j for j in range(len(offsets))]
    assert confirmation["confirmed"] == (kept != "episode-000000")
    # the two snapshots ran on the same fresh seeds, which no selection episode used
    fresh = [job for job in runner.jobs if job.seed >= selection.CONFIRMATION_SEED_OFFSET]
    assert sorted({Path(job.controller).stem for job in fresh}) == [
        "episode-000000",
        "episode-000004",
    ]
    assert not set(confirmation["seeds"]) & set(result["seeds"])
    if all(math.isfinite(o) for o in offsets):  # the p-value is scipy's paired t-test's
        logs = np.log(confirmation["candidate_losses"]), np.log(confirmation["untrained_losses"])
        assert confirmation["p_value"] == pytest.approx(stats.ttest_rel(*logs).pvalue)
    else:
        assert math.isnan(confirmation["p_value"])


def test_nothing_is_confirmed_when_the_untrained_snapshot_scores_best(tmp_path, monkeypatch):
    run = snapshot_run(tmp_path)
    scores = {**SCORES, "episode-000000": 0.5}
    runner = FakeRunner(losses(scores, [-0.5] * 4))
    monkeypatch.setattr(selection, "Runner", runner)
    result = selection.select_snapshot(run, TASK, n_seeds=2, confirm_seeds=4)
    assert result["chosen"] == "episode-000000.zip" and result["confirmation"] is None
    assert all(job.seed < selection.CONFIRMATION_SEED_OFFSET for job in runner.jobs)


def test_without_confirmation_the_selection_is_as_before(tmp_path, monkeypatch):
    run = snapshot_run(tmp_path)
    monkeypatch.setattr(selection, "Runner", FakeRunner(losses(SCORES, [0.5] * 4)))
    result = selection.select_snapshot(run, TASK, n_seeds=2)
    assert result["chosen"] == "episode-000004.zip" and "confirmation" not in result


def test_train_confirms_the_chosen_snapshot_on_real_episodes(tmp_path):
    flags = ("--select-every", "4", "--select-seeds", "2", "--confirm-seeds", "3")
    run = RunDir(train.main(smoke(tmp_path / "run", *flags)))
    chosen = json.loads((run.path / "selection.json").read_text())
    assert run.read_config()["config"]["confirm_seeds"] == 3
    best = min(chosen["scores"], key=lambda s: s["best_val_loss"])
    confirmation = chosen["confirmation"]
    if best["episodes"] == 0:
        assert confirmation is None and chosen["chosen"] == best["snapshot"]
        return
    assert confirmation["candidate"] == best["snapshot"]
    expected = best["snapshot"] if confirmation["confirmed"] else "episode-000000.zip"
    assert chosen["chosen"] == expected
    assert run.controller.read_bytes() == (run.path / "snapshots" / expected).read_bytes()
    # the confirmation's losses are what the two snapshots really get on those seeds
    from agents.jobs import Job, run_job

    task = Task("lrenv/Synthetic-v0", run.read_config()["config"]["env_kwargs"])
    for name, recorded in (
        (best["snapshot"], confirmation["candidate_losses"]),
        ("episode-000000.zip", confirmation["untrained_losses"]),
    ):
        snapshot = run.path / "snapshots" / name
        rerun = [
            run_job(Job("controller", task, seed, controller=str(snapshot), test=False))
            for seed in confirmation["seeds"]
        ]
        assert [r.best_val_loss for r in rerun] == pytest.approx(recorded)


def test_a_run_made_before_the_confirmation_resumes_without_it(tmp_path):
    run = RunDir(train.main(smoke(tmp_path / "run")))
    saved = json.loads(run.config_path.read_text())
    saved["config"].pop("confirm_seeds")  # as config.json was written before the field
    run.config_path.write_text(json.dumps(saved))
    config, _, _ = resolve(TrainOptions(resume=str(run.path)), {}, {})
    assert config.confirm_seeds == 0  # the field's default: no confirmation, as then
    train.main(["--resume", str(run.path), "--no-progress"])  # accepted, not refused


def test_bad_confirm_seeds_is_refused_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main(smoke(tmp_path / "run", "--confirm-seeds", "-1"))
    assert "confirm_seeds must be an integer >= 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_confirmation_runs_the_training_split_only(tmp_path, monkeypatch):
    """On a task set the fresh episodes are the training split's tasks, whatever split the
    run's task names: the held-out split chooses nothing."""
    from lrenv.task_sets import load_task_set

    run = snapshot_run(tmp_path)
    runner = FakeRunner(losses(SCORES, [-0.02, -0.03]))
    monkeypatch.setattr(selection, "Runner", runner)
    held_out = Task("lrenv/TaskSet-v0", {"task_set": "smoke", "split": "test"})
    selection.select_snapshot(run, held_out, n_seeds=1, confirm_seeds=2)
    fresh = [job for job in runner.jobs if job.seed >= selection.CONFIRMATION_SEED_OFFSET]
    train_rows = load_task_set("smoke").tasks("train")
    assert fresh and len(fresh) == 2 * 2 * len(train_rows)
    expected = {
        json.dumps(t.env_kwargs, sort_keys=True, default=str)
        for t in selection.selection_tasks(Task("lrenv/TaskSet-v0", {"task_set": "smoke"}))
    }
    seen = {json.dumps(job.task.env_kwargs, sort_keys=True, default=str) for job in fresh}
    assert seen == expected
    assert all(job.task.env_kwargs.get("split") != "test" for job in fresh)
