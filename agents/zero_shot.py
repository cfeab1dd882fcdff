"""Zero-shot evaluation: a controller trained on a task set's training split, tested on its
held-out tasks against what a practitioner would carry over to a task never seen.

For each held-out task, on the same trainee seeds, every method trains once per seed and
tests its best-validation checkpoint once:

- ``controller``: the learned controller, untouched (no tuning on the task);
- ``transferred_<family>``: each family's setting chosen on the training split
  (:mod:`agents.references`);
- the tuning-free optimizers at their published defaults: ``schedule_free_default``
  (schedule-free SGD, rate 1, no warmup), ``prodigy`` and ``dadaptation`` (D-Adaptation's
  SGD; the tasks train with SGD);
- ``replay``: the controller's mean action at each stage of training over the training
  split, replayed open loop (:mod:`agents.open_loop`): what the controller gives without
  feedback;
- ``oracle``: the best member of every family's grid tuned on the task's own validation.

Statistics per task: the controller against each method by a paired t-test over the
seeds (two-sided, p < 0.05): a win when significant and its mean test loss is lower, a
loss when significant and higher, else a tie. Over the tasks: wins, ties and losses per
method; regret against the oracle ``(L - L_oracle) / L_oracle`` of the mean test losses
(median and worst); and the normalized score (0 at the best transferred setting, 100 at
the oracle), averaged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.baselines import ScheduleFree, TuningFree, schedule_to_dict
from agents.comparison import selection_seeds
from agents.jobs import Job, RunResult, finite_or_none
from agents.open_loop import actions_from_trace, progress_profile
from agents.pool import Runner
from agents.references import (
    best_transferred,
    choose_oracle,
    grids_for,
    normalized_score,
    read_references,
    runtime_kwargs,
    score_grid,
    task_of,
    transferred_settings,
)
from agents.statistics import SIGNIFICANCE, paired_t_test
from lrenv.task_sets import TaskSet, TaskSpec

TUNING_FREE = {
    "schedule_free_default": schedule_to_dict(ScheduleFree(lr=1.0, warmup_steps=0)),
    "prodigy": schedule_to_dict(TuningFree("prodigy")),
    "dadaptation": schedule_to_dict(TuningFree("dadapt_sgd")),
}
"""The tuning-free optimizers at their packages' defaults (rate 1)."""
EXTRA_POLICIES = {
    "random": {"kind": "random", "seed": 0},
    "action_zero": {"kind": "replay", "profile": [0.0]},
}
"""Open-loop references for RL researchers: uniform random actions, and action 0."""


def controller_kwargs(interface: Mapping[str, Any], spec: TaskSpec) -> dict[str, Any]:
    """The keywords of the controller's runs on one task: its own env's (how its actions
    and observations are read, the runtime) with the task's over them."""
    return {
        **{k: v for k, v in interface.items() if k not in ("task_set", "split")},
        **spec.env_kwargs,
    }


@dataclass
class ZeroShot:
    """Everything a zero-shot evaluation reports."""

    config: dict[str, Any]
    task_set: str
    split: str
    tasks: list[TaskSpec]
    results: dict[str, list[RunResult]]  # task name -> its runs
    methods: list[str]
    transferred: dict[str, Any]
    oracles: dict[str, Any]
    replay_profile: list[float] | list[list[float]]

    def losses(self, task: str, method: str) -> list[float]:
        """The test losses of ``method`` on ``task``, in seed order."""
        return [r.test_loss for r in self.results[task] if r.method == method]

    def task_entries(self) -> list[dict[str, Any]]:
        """results.json's ``"tasks"``: per task, each method's test losses and statistics."""
        entries = []
        for spec in self.tasks:
            methods = {}
            for method in self.methods:
                losses = self.losses(spec.name, method)
                values = np.asarray(losses, dtype=np.float64)
                methods[method] = {
                    "mean": float(values.mean()),
                    "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
                    "n": len(values),
                    "test_loss": losses,
                    "diverged": sum(
                        r.diverged for r in self.results[spec.name] if r.method == method
                    ),
                }
            entries.append({"task": spec.name, "description": spec.describe(), "methods": methods})
        return entries

    @property
    def carried(self) -> str:
        """The method name of the best transferred setting (the normalized score's 0)."""
        return f"transferred_{best_transferred(self.transferred)}"

    def regret_and_score(self, task: str, method: str) -> tuple[float, float]:
        """``method``'s regret against the oracle and normalized score on ``task``, from
        the mean test losses."""
        mean = float(np.mean(self.losses(task, method)))
        oracle = float(np.mean(self.losses(task, "oracle")))
        carried = float(np.mean(self.losses(task, self.carried)))
        return (mean - oracle) / oracle, normalized_score(mean, carried, oracle)

    def zero_shot(self, reference: str = "controller") -> dict[str, Any]:
        """results.json's ``"zero_shot"``: how ``reference`` fares over the tasks."""
        others = [m for m in self.methods if m != reference]
        record = {m: {"wins": 0, "ties": 0, "losses": 0} for m in others}
        per_task = []
        regrets, scores = [], []
        for spec in self.tasks:
            ours = self.losses(spec.name, reference)
            row: dict[str, Any] = {"task": spec.name, "versus": {}}
            for method in others:
                theirs = self.losses(spec.name, method)
                test = paired_t_test(ours, theirs)
                diff = float(np.mean(ours) - np.mean(theirs))
                outcome = "tie"
                if test.pvalue < SIGNIFICANCE:
                    outcome = "win" if diff < 0 else "loss"
                record[method][{"win": "wins", "tie": "ties", "loss": "losses"}[outcome]] += 1
                row["versus"][method] = {
                    "outcome": outcome,
                    "p": test.pvalue,
                    "mean_difference": diff,
                }
            row["regret"], row["normalized_score"] = self.regret_and_score(spec.name, reference)
            regrets.append(row["regret"])
            scores.append(row["normalized_score"])
            per_task.append(row)
        finite = [s for s in scores if math.isfinite(s)]
        return {
            "method": reference,
            "record": record,
            "regret": {"median": float(np.median(regrets)), "worst": float(np.max(regrets))},
            "normalized_score": float(np.mean(finite)) if finite else math.nan,
            "best_transferred": self.carried,
            "per_task": per_task,
        }

    def scores_by_method(self) -> dict[str, dict[str, float]]:
        """Every method's median and worst regret and mean normalized score over the tasks."""
        out = {}
        for method in self.methods:
            regrets, scores = zip(
                *(self.regret_and_score(spec.name, method) for spec in self.tasks), strict=True
            )
            regrets = list(regrets)
            finite = [s for s in scores if math.isfinite(s)]
            out[method] = {
                "median_regret": float(np.median(regrets)),
                "worst_regret": float(np.max(regrets)),
                "normalized_score": float(np.mean(finite)) if finite else math.nan,
                "regret": regrets,
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        """The content of results.json."""
        runs = [
            {**r.record(), "task": task} for task, results in self.results.items() for r in results
        ]
        return finite_or_none(
            {
                "protocol": "zero-shot",
                "task_set": self.task_set,
                "split": self.split,
                "runs": runs,
                "tasks": self.task_entries(),
                "zero_shot": self.zero_shot() if "controller" in self.methods else None,
                "scores": self.scores_by_method(),
                "significance": SIGNIFICANCE,
                "transferred": self.transferred,
                "best_transferred": self.carried,
                "oracle": self.oracles,
                "replay_profile": self.replay_profile,
                "config": self.config,
            }
        )


def replay_profile(
    runner: Runner,
    train: Sequence[TaskSpec],
    interface: Mapping[str, Any],
    controller: str,
) -> list[float] | list[list[float]]:
    """The controller's mean action at each stage of training over the training split: one
    validation-only episode per training task on a selection seed (never a test seed)."""
    from agents.tasks import Task

    seed = selection_seeds(1)[0]
    tasks = [Task("lrenv/LRSchedule-v0", controller_kwargs(interface, spec)) for spec in train]
    jobs = [Job("controller", task, seed, controller=controller, test=False) for task in tasks]
    runs = []
    for task, result in zip(
        tasks, runner.run(jobs, desc="replay profile (training split)"), strict=True
    ):
        kwargs = task.resolved_kwargs
        trace = result.trajectory
        start = float(np.clip(kwargs["initial_lr"], *kwargs["lr_bounds"]))
        runs.append(actions_from_trace(trace.lr, trace.lr_steps, start, kwargs, trace.beta))
    return progress_profile(runs)


def run_zero_shot(
    runner: Runner,
    task_set: TaskSet,
    split: str,
    interface: Mapping[str, Any],
    controller: str | None,
    runs: int,
    seed: int = 0,
    extra_policies: Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
) -> ZeroShot:
    """Evaluate a controller (and the protocol's methods) on the tasks of ``split``.

    Args:
        runner: where the runs go.
        task_set: the set.
        split: the tasks to evaluate on (``"test"``: the held-out ones).
        interface: the keywords of the controller's env (its action and observation
            interface, and the runtime); the baselines take only the runtime ones.
        controller: the controller file (``None``: the baselines only).
        runs: trainee seeds per task: ``seed .. seed + runs - 1``.
        seed: the first seed.
        extra_policies: names of :data:`EXTRA_POLICIES` to run too (reference scores).
        config: recorded in the results.

    Returns:
        The runs, grouped by task.
    """
    if runs < 2:
        raise ValueError(f"runs must be >= 2 for the paired tests, got {runs}")
    runtime = runtime_kwargs(interface)
    references = read_references(task_set)
    grids = references["protocol"]["grids"] if references else grids_for(task_set)
    grid_seeds = len(references["protocol"]["grid_seeds"]) if references else 2
    transferred = transferred_settings(task_set, grids, grid_seeds, runner, runtime)
    tasks = task_set.tasks(split)
    if references is not None and split == "test":
        oracles = {spec.name: references["held_out"][spec.name]["oracle"] for spec in tasks}
    else:  # no stored references: tune on each task's validation here
        scores = score_grid(runner, tasks, grids, selection_seeds(grid_seeds), runtime)
        oracles = {spec.name: choose_oracle(scores[spec.name])["oracle"] for spec in tasks}
    profile = (
        replay_profile(runner, task_set.tasks("train"), interface, controller) if controller else []
    )
    from agents.tasks import Task

    seeds = [seed + i for i in range(runs)]
    schedules = {
        **{f"transferred_{f}": transferred[f]["schedule"] for f in transferred},
        **TUNING_FREE,
    }
    jobs: list[Job] = []
    for spec in tasks:  # every task gets the same methods on the same seeds, in one order
        own = Task("lrenv/LRSchedule-v0", controller_kwargs(interface, spec))
        plain = task_of(spec, runtime)
        per_task = []
        if controller:
            per_task += [Job("controller", own, s, controller=controller) for s in seeds]
            per_task += [
                Job("replay", own, s, policy={"kind": "replay", "profile": profile}) for s in seeds
            ]
        for name in extra_policies:
            per_task += [Job(name, own, s, policy=EXTRA_POLICIES[name]) for s in seeds]
        for method, schedule in {**schedules, "oracle": oracles[spec.name]["schedule"]}.items():
            per_task += [Job(method, plain, s, schedule=schedule) for s in seeds]
        jobs += per_task
    methods = list(dict.fromkeys(job.method for job in per_task))
    results = runner.run(jobs, desc=f"{split} split (tested once)")
    size = len(per_task)
    grouped: dict[str, list[RunResult]] = {
        spec.name: results[i * size : (i + 1) * size] for i, spec in enumerate(tasks)
    }
    return ZeroShot(
        config=dict(config or {}),
        task_set=task_set.name,
        split=split,
        tasks=tasks,
        results=grouped,
        methods=methods,
        transferred=transferred,
        oracles=oracles,
        replay_profile=profile,
    )
