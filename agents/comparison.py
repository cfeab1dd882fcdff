"""Compare a learned controller with tuned baseline schedules, as the paper does.

The protocol (Xu et al. 2019, section 4; the machinery behind ``evaluate.py``):

1. **Selection, on validation only.** Every member of every baseline family's grid (the
   preset's ``evaluation.grids``: step decay, constant, cosine, linear, WSD, plateau,
   schedule-free SGD) trains ``grid_seeds`` times on the *baseline task*; each is scored
   by the best validation loss of its run. The test split is never read in this phase:
   the envs are made with ``keep_best=False`` and ``test_best`` is never called.
2. **Evaluation.** The best schedule of each family, and the controller, each train
   ``runs`` times on the *evaluation task*, on the same seeds. Every run keeps the
   checkpoint with the best validation loss (``keep_best=True``) and tests it once.
3. **Statistics.** Mean and sample standard deviation (n - 1) of test loss and accuracy;
   independent two-sample t-tests (two-sided, ``scipy.stats.ttest_ind``), Student's and
   Welch's, of the controller against each baseline, significant at p < 0.05 (``*``).

The baseline task is the evaluation task, except for transfer (the paper's Table 2): a
controller trained on one task and evaluated on another is compared with the baseline
schedule chosen on the task it was trained on.

Seeds: evaluation run ``i`` uses seed ``seed + i`` for every method; selection runs use
``SELECTION_SEED_OFFSET + seed + j``, so the schedules are never chosen on the trainee
initialisations and batch orders they are then evaluated on.

Runs are independent and spread over worker processes (``spawn``), each holding its own
envs; with one worker everything runs in this process. Batched (``Runner(batched=True)``),
the runs of one method on one task train together, their trainees as one batched
computation (:mod:`lrenv.vector`), with the same results within float tolerance.
:mod:`agents.report` writes the results files and figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import lrenv  # noqa: F401  (registers the environments, here and in every worker)
from agents.baselines import (
    BaselineSchedule,
    grid,
    schedule_to_dict,
)
from agents.jobs import Job, RunResult, finite_or_none
from agents.pool import Runner
from agents.statistics import SIGNIFICANCE, compare_methods, methods_in, summarize
from agents.tasks import Task
from lrenv.checks import check_integer

SELECTION_SEED_OFFSET = 1_000_000


@dataclass
class Selection:
    """The candidates of one baseline family, their validation scores and the winner."""

    method: str
    task: Task
    seeds: list[int]
    scores: list[dict[str, Any]]
    best: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "method": self.method,
            "task": self.task.to_dict(),
            "seeds": self.seeds,
            "chosen": self.best,
            "scores": self.scores,
        }


def selection_seeds(n: int, seed: int = 0) -> list[int]:
    """The seeds of ``n`` validation-only selection runs for evaluation seed ``seed``:
    ``SELECTION_SEED_OFFSET + seed + j``, never the seeds of an evaluation run."""
    return [SELECTION_SEED_OFFSET + seed + j for j in range(n)]


def validation_score(runs: Sequence[RunResult]) -> dict[str, Any]:
    """How a candidate (a baseline schedule, a controller snapshot) did on its selection
    runs: the mean best validation loss (its score), each run's, and which diverged."""
    per_seed = [r.best_val_loss for r in runs]
    return {
        "best_val_loss": float(np.mean(per_seed)),
        "per_seed": per_seed,
        "diverged": [r.diverged for r in runs],
    }


def best_candidate(scores: Sequence[Mapping[str, Any]]) -> int:
    """The index of the lowest ``best_val_loss`` among ``scores``; ties go to the earlier."""
    return min(range(len(scores)), key=lambda i: scores[i]["best_val_loss"])


def candidates(
    grids: Mapping[str, Mapping[str, Iterable[Any]]], families: Iterable[str] | None = None
) -> dict[str, list[BaselineSchedule]]:
    """The baseline families and their candidate schedules.

    Args:
        grids: family -> parameter -> values (e.g. a preset's ``evaluation.grids``).
        families: the families wanted (default: every one in ``grids``), in report order.

    Raises:
        ValueError: for a family without a grid or an unknown family.
    """
    wanted = list(grids) if families is None else list(families)
    missing = [f for f in wanted if f not in grids]
    if missing:
        raise ValueError(f"no grid for baseline families {missing}; grids exist for {list(grids)}")
    return {family: grid(family, grids[family]) for family in wanted}


def select_baselines(
    runner: Runner,
    families: Mapping[str, Sequence[BaselineSchedule]],
    task: Task,
    seeds: Sequence[int],
) -> dict[str, Selection]:
    """Score every candidate by its best validation loss (mean over ``seeds``); keep the best.

    All candidates run as one batch of jobs with ``test=False``: nothing reads the test
    split. Ties go to the earlier candidate.
    """
    jobs = [
        Job(method, task, seed, schedule=schedule_to_dict(schedule), test=False)
        for method, schedules in families.items()
        for schedule in schedules
        for seed in seeds
    ]
    results = iter(runner.run(jobs, desc="selection (validation)"))
    selections = {}
    for method, schedules in families.items():
        scores = []
        for schedule in schedules:
            runs = [next(results) for _ in seeds]
            scores.append(
                {
                    "schedule": schedule_to_dict(schedule),
                    "description": schedule.describe(),
                    **validation_score(runs),
                }
            )
        best = best_candidate(scores)
        selections[method] = Selection(method, task, list(seeds), scores, scores[best]["schedule"])
    return selections


@dataclass
class Comparison:
    """Everything evaluate.py reports: settings, selections, runs and statistics."""

    config: dict[str, Any]
    task: Task
    baseline_task: Task
    controller_task: Task | None
    selections: dict[str, Selection]
    results: list[RunResult]
    summary: dict[str, dict[str, float]] = field(init=False)
    reference: str = field(init=False)
    p_values: dict[str, dict[str, dict[str, float]]] = field(init=False)

    def __post_init__(self) -> None:
        self.summary = summarize(self.results)
        methods = methods_in(self.results)
        self.reference = "controller" if "controller" in methods else methods[0]
        self.p_values = compare_methods(self.results, self.reference)

    def to_dict(self) -> dict[str, Any]:
        """The content of results.json."""
        return finite_or_none(
            {
                "runs": [r.record() for r in self.results],
                "summary": self.summary,
                "reference": self.reference,
                "p_values": self.p_values,
                "significance": SIGNIFICANCE,
                "chosen": {m: s.best for m, s in self.selections.items()},
                "selection": {m: s.to_dict() for m, s in self.selections.items()},
                "task": self.task.to_dict(),
                "baseline_task": self.baseline_task.to_dict(),
                "controller_task": None
                if self.controller_task is None
                else self.controller_task.to_dict(),
                "config": self.config,
            }
        )


def evaluate_methods(
    runner: Runner,
    task: Task,
    seeds: Sequence[int],
    chosen: Mapping[str, Mapping[str, Any]],
    controller: str | None = None,
) -> list[RunResult]:
    """Run the controller (if given) and each chosen schedule on ``seeds``; test each run once."""
    jobs = [Job("controller", task, seed, controller=controller) for seed in seeds if controller]
    jobs += [
        Job(method, task, seed, schedule=schedule)
        for method, schedule in chosen.items()
        for seed in seeds
    ]
    return runner.run(jobs, desc="evaluation (tested once)")


def run_comparison(
    runner: Runner,
    task: Task,
    baseline_task: Task,
    families: Mapping[str, Sequence[BaselineSchedule]],
    runs: int,
    seed: int = 0,
    grid_seeds: int = 1,
    controller: str | None = None,
    controller_task: Task | None = None,
    config: Mapping[str, Any] | None = None,
) -> Comparison:
    """Select the baselines on ``baseline_task`` (validation), then evaluate on ``task``."""
    check_integer(runs, "runs")
    check_integer(grid_seeds, "grid_seeds")
    if controller is None and not families:
        raise ValueError("nothing to evaluate: give a controller or at least one baseline")
    selections = select_baselines(
        runner, families, baseline_task, selection_seeds(grid_seeds, seed)
    )
    chosen = {method: s.best for method, s in selections.items()}
    seeds = [seed + i for i in range(runs)]
    results = evaluate_methods(runner, task, seeds, chosen, controller)
    return Comparison(
        config=dict(config or {}),
        task=task,
        baseline_task=baseline_task,
        controller_task=controller_task,
        selections=selections,
        results=results,
    )
