"""Choices made on validation around a controller's training, as the baselines are chosen
among their grids: the schedule a residual controller starts from, and the snapshot of
the trained controller that is kept.

**The base schedule.** With ``residual_over`` train.py first runs evaluate.py's selection
on the named baseline families (:func:`choose_base`) and trains a residual controller over
the winner, so that its action 0 is the best baseline and PPO only learns where to deviate.

**The snapshot.** On a task set, each snapshot runs on every task of the training split
and scores the mean over tasks of its best validation loss relative to the untrained
snapshot's on that task (so that no task's loss scale dominates the choice).

PPO's updates move a policy by amounts that the noise of one trainee seed can hide, so the
last policy of a run is not reliably its best (the same command gave a winner on
one machine and a loser on another). train.py therefore keeps a snapshot of the controller
every ``select_every`` episodes, including the untrained one, and afterwards runs each on
``select_seeds`` validation-only episodes (the selection seeds of the baselines,
:data:`agents.comparison.SELECTION_SEED_OFFSET` + j; the test split is never read). The
snapshot with the lowest mean best-validation loss becomes ``controller.safetensors`` and
``controller.zip`` (each snapshot is kept in both formats, as train.py writes controllers).

Under the residual action (``action_mode="residual"``) the untrained snapshot is, up to
its initial action of about 0.01, the base schedule itself: the selection then keeps the
learned deviations only where they beat the schedule on validation.

**The confirmation.** The lowest of many noisy scores is biased low (the winner's curse):
a trained snapshot can top the list by luck, inside the seed spread, and then do worse
than its base where it is used. With ``confirm_seeds`` > 0 the snapshot chosen, when it is
a trained one, runs again beside the untrained snapshot on fresh validation episodes
(seeds :data:`CONFIRMATION_SEED_OFFSET` + j, on every selection task) that chose nothing.
It is kept only when it is better there, paired episode by episode (a two-sided paired
t-test on the log of the best validation loss, p < 0.05, as evaluate.py counts wins);
otherwise the untrained snapshot (under residual control, the base schedule) becomes the
controller.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.comparison import (
    best_candidate,
    candidates,
    select_baselines,
    selection_seeds,
)
from agents.jobs import Job, RunResult
from agents.pool import Runner
from agents.statistics import paired_t_test
from agents.tasks import Task
from lrenv.controller import CONTROLLER_FILE, ZIP_FILE, code_free_path
from lrenv.files import atomic_path
from lrenv.keywords import is_task_set_id, task_set_kwargs
from lrenv.schedule_families import SCHEDULES
from lrenv.task_sets import load_task_set

SNAPSHOTS = "snapshots"
CONFIRMATION_SEED_OFFSET = 2_000_000
"""Seeds of the confirmation episodes: ``CONFIRMATION_SEED_OFFSET + j``, apart from every
selection seed (``1_000_000 + seed + j``) and evaluation seed."""
CONFIRMATION_P = 0.05
"""The paired test's level below which a trained snapshot's lead counts as confirmed."""


def snapshot_path(run: Path, episodes_done: int) -> Path:
    """Where the snapshot taken after ``episodes_done`` episodes is kept."""
    return Path(run) / SNAPSHOTS / f"episode-{episodes_done:06d}.zip"


def snapshot_episodes(path: Path) -> int:
    """The episodes after which the snapshot at ``path`` was taken (:func:`snapshot_path`)."""
    return int(Path(path).stem.split("-")[1])


def select_snapshot(
    run: Path,
    task: Task,
    n_seeds: int,
    workers: int = 1,
    progress: bool = False,
    confirm_seeds: int = 0,
) -> dict[str, Any]:
    """Score every snapshot of ``run`` on validation and copy the best to
    ``controller.safetensors`` and ``controller.zip``.

    Each snapshot is read from its code-free file (``episode-N.safetensors``).

    Args:
        run: the run folder (its ``snapshots/`` holds the candidates).
        task: the task the controller trains on.
        n_seeds: validation episodes per snapshot.
        workers: evaluation processes.
        progress: show a progress bar.
        confirm_seeds: fresh validation episodes per task on which a trained snapshot that
            scored best must beat the untrained one to be kept (0: no confirmation).

    Returns:
        The selection, JSON-ready: ``seeds``, ``scores`` (one per snapshot: name, episodes,
        mean and per-seed best validation loss, divergences) and ``chosen``; with
        ``confirm_seeds``, also ``confirmation`` (:func:`confirm_snapshot`'s result, or
        None when the untrained snapshot scored best and there was nothing to confirm).

    Raises:
        FileNotFoundError: when the run has no snapshots.
    """
    snapshots = sorted((Path(run) / SNAPSHOTS).glob("episode-*.zip"))
    if not snapshots:
        raise FileNotFoundError(f"no snapshots in {Path(run) / SNAPSHOTS} to select from")
    seeds = selection_seeds(n_seeds)
    tasks = selection_tasks(task)
    results = iter(
        validation_runs(snapshots, tasks, seeds, workers, progress, "snapshots (validation)")
    )
    per_task = [[[next(results) for _ in seeds] for _ in tasks] for _ in snapshots]
    # one task: its mean best validation loss; a task set's training split: each task's
    # loss relative to the untrained snapshot's there, so that no task's scale dominates
    first = [np.mean([r.best_val_loss for r in runs]) for runs in per_task[0]]
    scale = first if len(tasks) > 1 else [1.0]
    scores = []
    for path, by_task in zip(snapshots, per_task, strict=True):
        per_seed = [
            float(
                np.mean([runs[j].best_val_loss / s for runs, s in zip(by_task, scale, strict=True)])
            )
            for j in range(len(seeds))
        ]
        scores.append(
            {
                "snapshot": path.name,
                "episodes": snapshot_episodes(path),
                "best_val_loss": float(np.mean(per_seed)),
                "per_seed": per_seed,
                "diverged": [any(runs[j].diverged for runs in by_task) for j in range(len(seeds))],
            }
        )
    best = best_candidate(scores)
    confirmation = None
    if confirm_seeds and best != 0:  # snapshot 0, the first taken, is the untrained one
        confirmation = confirm_snapshot(
            snapshots[best], snapshots[0], tasks, confirm_seeds, workers, progress
        )
        best = best if confirmation["confirmed"] else 0
    # the code-free file first, as agents.run_folder.save_model writes them
    for source, name in (
        (code_free_path(snapshots[best]), CONTROLLER_FILE),
        (snapshots[best], ZIP_FILE),
    ):
        with atomic_path(Path(run) / name) as tmp:
            shutil.copyfile(source, tmp)
    selection = {"seeds": seeds, "scores": scores, "chosen": scores[best]["snapshot"]}
    return {**selection, "confirmation": confirmation} if confirm_seeds else selection


def validation_runs(
    snapshots: Sequence[Path],
    tasks: Sequence[Task],
    seeds: Sequence[int],
    workers: int,
    progress: bool,
    desc: str,
) -> list[RunResult]:
    """Validation-only episodes of each snapshot (its code-free file) on every task and
    seed, in that order: snapshot by snapshot, task by task, seed by seed."""
    jobs = [
        Job("controller", each, seed, controller=str(code_free_path(path).resolve()), test=False)
        for path in snapshots
        for each in tasks
        for seed in seeds
    ]
    with Runner(workers, threads=1, progress=progress) as runner:
        return runner.run(jobs, desc=desc)


def confirmation_seeds(n: int) -> list[int]:
    """The seeds of ``n`` confirmation episodes per task (:data:`CONFIRMATION_SEED_OFFSET`
    + j)."""
    return [CONFIRMATION_SEED_OFFSET + j for j in range(n)]


def confirm_snapshot(
    candidate: Path,
    untrained: Path,
    tasks: Sequence[Task],
    n_seeds: int,
    workers: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """Whether ``candidate`` beats the ``untrained`` snapshot on fresh validation episodes.

    Both run every task on the same :func:`confirmation_seeds`; each pair of episodes gives
    the log-ratio of their best validation losses (scale-free, so no task dominates).

    Args:
        candidate: the trained snapshot that scored best (its ``.zip`` path).
        untrained: the untrained snapshot's path.
        tasks: the selection tasks.
        n_seeds: confirmation episodes per task.
        workers: evaluation processes.
        progress: show a progress bar.

    Returns:
        JSON-ready: ``candidate``, ``seeds``, ``candidate_losses`` and ``untrained_losses``
        (task by task, seed by seed), ``mean_log_ratio`` (below 0: the candidate is
        better), ``p_value`` (two-sided paired t-test; NaN for fewer than two pairs or a
        non-finite loss) and ``confirmed`` (better, with p < :data:`CONFIRMATION_P`).
    """
    seeds = confirmation_seeds(n_seeds)
    results = validation_runs(
        (candidate, untrained), tasks, seeds, workers, progress, "confirmation (validation)"
    )
    losses = np.array([r.best_val_loss for r in results], dtype=np.float64).reshape(2, -1)
    if np.isfinite(losses).all() and (losses > 0).all():
        logs = np.log(losses)
        test = paired_t_test(logs[0], logs[1])
        mean_log_ratio, p_value = float(np.mean(logs[0] - logs[1])), test.pvalue
    else:  # a loss that is not a positive number cannot be compared: nothing is confirmed
        mean_log_ratio = p_value = math.nan
    return {
        "candidate": candidate.name,
        "seeds": seeds,
        "candidate_losses": losses[0].tolist(),
        "untrained_losses": losses[1].tolist(),
        "mean_log_ratio": mean_log_ratio,
        "p_value": p_value,
        "confirmed": bool(mean_log_ratio < 0 and p_value < CONFIRMATION_P),
    }


def selection_tasks(task: Task) -> list[Task]:
    """The tasks snapshots are scored on: ``task``, or for a task set every task of its
    training split (whatever split ``task`` names: the held-out one is never read)."""
    return [each for _, each in named_selection_tasks(task)]


def named_selection_tasks(task: Task) -> list[tuple[str, Task]]:
    """:func:`selection_tasks` with their names (a task set's task names, else the env id)."""
    if not is_task_set_id(task.env_id):
        return [(task.env_id, task)]
    from agents.references import task_of

    kwargs = task_set_kwargs(task.env_id, task.env_kwargs)
    interface = {k: v for k, v in kwargs.items() if k not in ("task_set", "split")}
    specs = load_task_set(kwargs["task_set"]).tasks("train")
    return [(spec.name, task_of(spec, interface)) for spec in specs]


def describe_selection(selection: dict[str, Any]) -> str:
    """A Markdown table of the snapshots' validation scores (for TensorBoard and the log)."""
    rows = [
        f"| {s['episodes']} | {s['best_val_loss']:.4f} | "
        f"{'**chosen**' if s['snapshot'] == selection['chosen'] else ''} |"
        for s in selection["scores"]
    ]
    table = (
        f"Snapshots scored on {len(selection['seeds'])} validation episodes each "
        f"(seeds {selection['seeds'][0]}-{selection['seeds'][-1]}):\n\n"
        "| episodes trained | mean best validation loss | |\n| --- | --- | --- |\n"
        + "\n".join(rows)
    )
    confirmation = selection.get("confirmation")
    return table + (f"\n\n{describe_confirmation(confirmation)}" if confirmation else "")


def describe_confirmation(confirmation: dict[str, Any]) -> str:
    """One sentence: how the best trained snapshot did against the untrained one on the
    fresh episodes, and which was kept."""
    pairs = len(confirmation["candidate_losses"])
    ratio = math.exp(confirmation["mean_log_ratio"])
    verdict = (
        "kept" if confirmation["confirmed"] else "not confirmed, so the untrained snapshot is kept"
    )
    return (
        f"Confirmation of {confirmation['candidate']} against the untrained snapshot on "
        f"{pairs} fresh validation episodes: best validation loss x{ratio:.4f} on the "
        f"geometric mean, p = {confirmation['p_value']:.3g}: {verdict}."
    )


def scores_by_episode(selection: dict[str, Any]) -> Sequence[tuple[int, float]]:
    """``(episodes trained, mean best validation loss)`` per snapshot, in training order."""
    return [(s["episodes"], s["best_val_loss"]) for s in selection["scores"]]


def residual_base(schedule: dict[str, Any]) -> dict[str, Any]:
    """The env keywords that make a residual controller's action 0 reproduce ``schedule``.

    Args:
        schedule: a baseline's description (:func:`agents.baselines.schedule_to_dict`).

    Returns:
        ``action_mode="residual"``, the ``base_schedule`` (a :mod:`lrenv.schedule_families`
        description) and, for schedule-free SGD, its optimizer and warmup.

    Raises:
        ValueError: for a family that is not a function of the step (reduce on plateau).
    """
    schedule = dict(schedule)
    kind = schedule.pop("kind")
    if kind == "schedule_free":
        return {
            "action_mode": "residual",
            "base_schedule": {"kind": "constant", "lr": schedule["lr"]},
            "optimizer": "schedule_free",
            "warmup_steps": schedule["warmup_steps"],
        }
    if kind not in SCHEDULES:
        raise ValueError(
            f"a residual controller needs a schedule that is a function of the step; "
            f"{kind!r} is not one (choose from {', '.join([*SCHEDULES, 'schedule_free'])})"
        )
    return {"action_mode": "residual", "base_schedule": {"kind": kind, **schedule}}


def choose_base(
    task: Task,
    grids: Mapping[str, Mapping[str, Sequence[Any]]],
    families: Sequence[str],
    n_seeds: int = 2,
    workers: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """The best schedule on validation among ``families``, chosen as evaluate.py chooses
    baselines (the same grids, seeds and score), to be the base of a residual controller.

    Args:
        task: the training task.
        grids: family -> parameter -> values (the preset's evaluation grids).
        families: the families to search.
        n_seeds: selection seeds per candidate (evaluate.py's ``--grid-seeds``).
        workers: evaluation processes.
        progress: show a progress bar.

    Returns:
        JSON-ready: ``family``, ``schedule`` (the chosen member), ``best_val_loss`` and
        ``env_kwargs`` (:func:`residual_base` of it).

    On a task set (``lrenv/TaskSet-v0``) the base is chosen on its training split only,
    whatever split the task names, with the set's own grids
    (:func:`agents.references.grids_for`, not ``grids``): the transferred setting
    (:func:`agents.references.transferred_settings`) of the named family with the lowest
    mean normalized validation loss, which is then ``best_val_loss``.
    """
    if is_task_set_id(task.env_id):
        return _choose_base_on_task_set(task, grids, families, n_seeds, workers, progress)
    wanted = candidates(grids, families)
    with Runner(workers, threads=1, progress=progress) as runner:
        selections = select_baselines(runner, wanted, task, selection_seeds(n_seeds))
    scored = [
        (min(s["best_val_loss"] for s in sel.scores), family, sel.best)
        for family, sel in selections.items()
    ]
    loss, family, schedule = min(scored, key=lambda x: x[0])
    return {
        "family": family,
        "schedule": schedule,
        "best_val_loss": loss,
        "env_kwargs": residual_base(schedule),
    }


def _choose_base_on_task_set(
    task: Task,
    grids: Mapping[str, Mapping[str, Sequence[Any]]],
    families: Sequence[str],
    n_seeds: int,
    workers: int,
    progress: bool,
) -> dict[str, Any]:
    from agents.references import grids_for, runtime_kwargs, transferred_settings

    kwargs = task_set_kwargs(task.env_id, task.env_kwargs)
    task_set = load_task_set(kwargs["task_set"])
    grids = grids_for(task_set)  # a set's transferred settings come from its own protocol
    wanted = {family: grids[family] for family in candidates(grids, families)}
    with Runner(workers, threads=1, progress=progress) as runner:
        transferred = transferred_settings(
            task_set, wanted, n_seeds, runner, env_kwargs=runtime_kwargs(kwargs)
        )
    family = min(transferred, key=lambda f: transferred[f]["mean_normalized_val_loss"])
    schedule = transferred[family]["schedule"]
    return {
        "family": family,
        "schedule": schedule,
        "best_val_loss": transferred[family]["mean_normalized_val_loss"],
        "env_kwargs": residual_base(schedule),
    }
