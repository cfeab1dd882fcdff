"""Reference results of a task set: what a practitioner would carry to a new task, and the
best any of the baseline families does when tuned on the task itself.

Computed once per set by ``python -m agents.references --task-set NAME`` and kept beside
the set's CSV file (``NAME-vN.references.json``); :mod:`agents.zero_shot` reads them.

1. **Transferred settings, from the training split only.** Every member of every family's
   grid (:data:`agents.presets.TASK_SET_GRIDS`) trains on every training task, on the
   selection seeds (validation only; the test split is never read). A member's
   *normalized validation loss* on a task is its mean best validation loss divided by the
   lowest any member reached on that task (1 is the best there is).
   ``transferred_<family>`` is the member of the family with the lowest mean normalized
   validation loss over the training tasks: the one setting of that family a practitioner
   would carry to a task never seen.
2. **Oracle, per held-out task.** The same grid on each held-out task's own validation;
   the best member of each family, and the best of those (the *oracle*): what tuning on
   the task would give.
3. **Test losses on the evaluation seeds** of the oracle and of each transferred setting
   on every held-out task, each run tested once at its best-validation checkpoint.
4. **Normalized score** per held-out task, as D4RL normalizes its scores: 0 for the best
   transferred setting (the transferred setting of the family that scored best over the
   training split: the one a practitioner would carry), 100 for the oracle:
   ``100 * (L_transferred - L) / (L_transferred - L_oracle)`` on mean test losses. Where
   the two are equal (the carried setting is the oracle) the score is undefined (null).

Nothing in step 1 reads the held-out split, and training reads only step 1
(:func:`transferred_settings`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines import grid, schedule_to_dict
from agents.comparison import selection_seeds
from agents.jobs import Job, RunResult, finite_or_none
from agents.pool import Runner
from agents.presets import SMOKE_TASK_SET_GRIDS, TASK_SET_GRIDS
from agents.tasks import BASELINES, RUNTIME_KEYS, Task
from lrenv.files import atomic_path
from lrenv.task_sets import TaskSet, TaskSpec, load_task_set

GENERAL_ID = "lrenv/LRSchedule-v0"
EVAL_SEEDS = 5


def grids_for(task_set: TaskSet) -> dict[str, dict[str, tuple]]:
    """The grids a set's references use: :data:`agents.presets.SMOKE_TASK_SET_GRIDS` for
    the smoke sets, else :data:`agents.presets.TASK_SET_GRIDS`."""
    return SMOKE_TASK_SET_GRIDS if task_set.name.startswith("smoke") else TASK_SET_GRIDS


def runtime_kwargs(env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The runtime keywords (device, data root, threads) among ``env_kwargs``: all that a
    baseline's run on a task takes from the env it is compared in."""
    return {k: v for k, v in env_kwargs.items() if k in RUNTIME_KEYS}


def task_of(spec: TaskSpec, env_kwargs: Mapping[str, Any] | None = None) -> Task:
    """The evaluation task of one task of a set: the general env with the task's keywords
    (``env_kwargs`` may add runtime or interface keywords, never the task's own)."""
    return Task(GENERAL_ID, {**dict(env_kwargs or {}), **spec.env_kwargs})


def _members(grids: Mapping[str, Mapping[str, Sequence[Any]]]) -> list[tuple[str, dict]]:
    return [
        (family, schedule_to_dict(schedule))
        for family in BASELINES
        if family in grids
        for schedule in grid(family, grids[family])
    ]


def _describe(schedule: Mapping[str, Any]) -> str:
    from agents.baselines import schedule_from_dict

    return schedule_from_dict(schedule).describe()


def score_grid(
    runner: Runner,
    tasks: Sequence[TaskSpec],
    grids: Mapping[str, Mapping[str, Sequence[Any]]],
    seeds: Sequence[int],
    env_kwargs: Mapping[str, Any] | None = None,
    desc: str = "grid (validation)",
) -> dict[str, list[dict[str, Any]]]:
    """Every grid member's mean best validation loss on every task (never the test split).

    Returns:
        task name -> one entry per member, in grid order: ``family``, ``schedule``,
        ``best_val_loss`` (mean over ``seeds``), ``per_seed``.
    """
    members = _members(grids)
    jobs = [
        Job(family, task_of(spec, env_kwargs), seed, schedule=schedule, test=False)
        for spec in tasks
        for family, schedule in members
        for seed in seeds
    ]
    results = iter(runner.run(jobs, desc=desc))
    scores: dict[str, list[dict[str, Any]]] = {}
    for spec in tasks:
        entries = []
        for family, schedule in members:
            per_seed = [next(results).best_val_loss for _ in seeds]
            entries.append(
                {
                    "family": family,
                    "schedule": schedule,
                    "best_val_loss": float(np.mean(per_seed)),
                    "per_seed": per_seed,
                }
            )
        scores[spec.name] = entries
    return scores


def choose_transferred(scores: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """Each family's member with the lowest mean normalized validation loss over the tasks
    of ``scores`` (:func:`score_grid` of the training split); ties go to the earlier member.

    Returns:
        family -> ``schedule``, ``description``, ``mean_normalized_val_loss``.
    """
    tasks = list(scores)
    best = {t: min(e["best_val_loss"] for e in scores[t]) for t in tasks}
    n_members = len(scores[tasks[0]])
    normalized = [
        float(np.mean([scores[t][i]["best_val_loss"] / best[t] for t in tasks]))
        for i in range(n_members)
    ]
    chosen: dict[str, Any] = {}
    for i, entry in enumerate(scores[tasks[0]]):
        family = entry["family"]
        if family not in chosen or normalized[i] < chosen[family]["mean_normalized_val_loss"]:
            chosen[family] = {
                "schedule": entry["schedule"],
                "description": _describe(entry["schedule"]),
                "mean_normalized_val_loss": normalized[i],
            }
    return chosen


def best_transferred(transferred: Mapping[str, Mapping[str, Any]]) -> str:
    """The family whose transferred setting scored best over the training split: the one
    setting a practitioner would carry to a new task (the normalized score's 0)."""
    return min(transferred, key=lambda f: transferred[f]["mean_normalized_val_loss"])


def choose_oracle(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The best member of each family on one task's validation, and the best of those.

    Returns:
        ``tuned`` (family -> schedule and best validation loss) and ``oracle`` (the best
        family's ``family``, ``schedule``, ``description``, ``best_val_loss``).
    """
    tuned: dict[str, dict[str, Any]] = {}
    for entry in entries:
        family = entry["family"]
        if family not in tuned or entry["best_val_loss"] < tuned[family]["best_val_loss"]:
            tuned[family] = {"schedule": entry["schedule"], "best_val_loss": entry["best_val_loss"]}
    family = min(tuned, key=lambda f: tuned[f]["best_val_loss"])
    oracle = {
        "family": family,
        "schedule": tuned[family]["schedule"],
        "description": _describe(tuned[family]["schedule"]),
        "best_val_loss": tuned[family]["best_val_loss"],
    }
    return {"tuned": tuned, "oracle": oracle}


def normalized_score(loss: float, transferred: float, oracle: float) -> float:
    """D4RL-style: 0 at the best transferred setting's loss, 100 at the oracle's (NaN when
    the two are equal: no headroom to score against)."""
    gap = transferred - oracle
    return float("nan") if gap == 0 else float(100.0 * (transferred - loss) / gap)


def transferred_settings(
    task_set: TaskSet,
    grids: Mapping[str, Mapping[str, Sequence[Any]]],
    grid_seeds: int,
    runner: Runner,
    env_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``transferred_<family>`` for a set, from its training split only: read from its
    stored references when they were made with these grids and seeds, else computed.

    Returns:
        family -> ``schedule``, ``description``, ``mean_normalized_val_loss``.
    """
    stored = read_references(task_set)
    protocol = {"grids": _jsonable(grids), "grid_seeds": selection_seeds(grid_seeds)}
    if stored is not None:
        used = {f: v for f, v in stored["protocol"]["grids"].items() if f in grids}
        if used == protocol["grids"] and stored["protocol"]["grid_seeds"] == protocol["grid_seeds"]:
            # the families asked for, with the grids and seeds the references used
            return {f: t for f, t in stored["transferred"].items() if f in grids}
    train = task_set.tasks("train")
    scores = score_grid(runner, train, grids, selection_seeds(grid_seeds), env_kwargs)
    return choose_transferred(scores)


def _jsonable(value: Any) -> Any:
    """``value`` as JSON reads it back (mappings as dicts, tuples as lists)."""

    def plain(item: Any) -> Any:
        if isinstance(item, Mapping):
            return {k: plain(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [plain(v) for v in item]
        return item

    return json.loads(json.dumps(plain(value)))


def compute_references(
    task_set: TaskSet,
    runner: Runner,
    grids: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
    grid_seeds: int = 2,
    eval_seeds: int = EVAL_SEEDS,
    env_kwargs: Mapping[str, Any] | None = None,
    command: str = "",
) -> dict[str, Any]:
    """The reference results of ``task_set`` (see the module docstring), JSON-ready."""
    grids = grids or grids_for(task_set)
    seeds = selection_seeds(grid_seeds)
    train, test = task_set.tasks("train"), task_set.tasks("test")
    train_scores = score_grid(runner, train, grids, seeds, env_kwargs, "training split (val)")
    transferred = choose_transferred(train_scores)
    test_scores = score_grid(runner, test, grids, seeds, env_kwargs, "held-out split (val)")
    oracles = {spec.name: choose_oracle(test_scores[spec.name]) for spec in test}
    methods = {f"transferred_{f}": transferred[f]["schedule"] for f in transferred}
    carried = f"transferred_{best_transferred(transferred)}"
    test_seeds = list(range(eval_seeds))
    jobs = [
        Job(method, task_of(spec, env_kwargs), seed, schedule=schedule)
        for spec in test
        for method, schedule in {
            **methods,
            "oracle": oracles[spec.name]["oracle"]["schedule"],
        }.items()
        for seed in test_seeds
    ]
    results = iter(runner.run(jobs, desc="held-out split (tested once)"))
    held_out = {}
    for spec in test:
        losses: dict[str, list[float]] = {}
        for method in [*methods, "oracle"]:
            runs: list[RunResult] = [next(results) for _ in test_seeds]
            losses[method] = [r.test_loss for r in runs]
        means = {m: float(np.mean(v)) for m, v in losses.items()}
        held_out[spec.name] = {
            **oracles[spec.name],
            "test_loss": losses,
            "mean_test_loss": means,
            "normalized_score": {
                m: normalized_score(means[m], means[carried], means["oracle"]) for m in means
            },
        }
    return {
        "task_set": task_set.name,
        "command": command,
        "protocol": {
            "grids": _jsonable(grids),
            "grid_seeds": seeds,
            "eval_seeds": test_seeds,
            "env_kwargs": dict(env_kwargs or {}),
        },
        "train_scores": train_scores,
        "transferred": transferred,
        "best_transferred": carried,
        "held_out": held_out,
    }


def read_references(task_set: TaskSet) -> dict[str, Any] | None:
    """A set's stored references, or None when it has none."""
    path = task_set.references_path
    if not path.exists():
        return None
    return json.loads(path.read_text())


def write_references(references: Mapping[str, Any], path: Path) -> None:
    """Write references as JSON (atomically: a crash leaves the old file)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(finite_or_none(references), indent=1) + "\n")


def main(argv: Sequence[str] | None = None) -> Path:
    """``python -m agents.references``: compute a set's references and write them."""
    parser = argparse.ArgumentParser(
        prog="python -m agents.references",
        description="Compute a task set's reference results (transferred settings, oracle, "
        "normalized scores) and write them beside its CSV file.",
    )
    parser.add_argument("--task-set", default="default", help="a set's name or CSV path")
    parser.add_argument("--grid-seeds", type=int, default=2, help="selection seeds per member")
    parser.add_argument("--eval-seeds", type=int, default=EVAL_SEEDS, help="test runs per task")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--out", default=None, help="output file (default: beside the set)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.grid_seeds < 1 or args.eval_seeds < 2 or args.workers < 1:
        parser.error("--grid-seeds and --workers must be >= 1, --eval-seeds >= 2")
    task_set = load_task_set(args.task_set)
    command = f"python -m agents.references --task-set {args.task_set}"
    if args.grid_seeds != 2:
        command += f" --grid-seeds {args.grid_seeds}"
    if args.eval_seeds != EVAL_SEEDS:
        command += f" --eval-seeds {args.eval_seeds}"
    with Runner(args.workers, threads=1, progress=not args.no_progress) as runner:
        references = compute_references(
            task_set,
            runner,
            grid_seeds=args.grid_seeds,
            eval_seeds=args.eval_seeds,
            env_kwargs={"device": "cpu"},
            command=command,
        )
    out = Path(args.out) if args.out else task_set.references_path
    write_references(references, out)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
