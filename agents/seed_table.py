"""A design's zero-shot record over its training seeds: one table from several evaluations.

    python -m agents.seed_table runs/eval-s10 runs/eval-s11 ... [--out seeds.md]

Each folder is what ``evaluate.py --controller RUN`` wrote for one training seed of the same
design (its ``results.json``), on the same held-out tasks and trainee seeds. A claim for a
design is a claim for its seeds, not for the best one, so this prints two tables:

- **per training seed**, each controller judged on its own, as ``evaluate.py`` judged it
  (wins over the carried setting and all three tuning-free optimizers, W/T/L against each,
  regret and normalized score);
- **per task, the design**: its test loss on each trainee seed is the mean over its
  controllers, compared trainee seed by trainee seed with each method's (paired t-test,
  p < 0.05; **W** the design wins, **L** it loses), with the range of the controllers'
  means, and the regret and normalized score of the design's mean. Its replay is the mean
  of the controllers' replays.

Nothing runs: it reads the folders. Methods other than the controller and its replay are
the same runs in every folder when the folders come from one machine; they are averaged
over the folders all the same, so that folders from machines that round differently
still give one number.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.references import normalized_score
from agents.statistics import SIGNIFICANCE, paired_t_test
from agents.zero_shot import TUNING_FREE

COLUMNS = {
    "replay": "its replay",
    "carried": "carried over",
    "schedule_free_default": "schedule-free SGD, defaults",
    "prodigy": "Prodigy",
    "dadaptation": "D-Adaptation",
    "oracle": "oracle",
}


def read_evaluations(folders: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Each folder's results.json; ValueError unless they are zero-shot evaluations of a
    controller on the same task set, split, tasks and trainee seeds."""
    if not folders:
        raise ValueError("give at least one evaluate.py output folder")
    data = []
    for folder in folders:
        path = Path(folder) / "results.json"
        if not path.is_file():
            raise ValueError(f"{path} does not exist: give folders that evaluate.py wrote")
        entry = json.loads(path.read_text())
        if entry.get("protocol") != "zero-shot" or not entry.get("zero_shot"):
            raise ValueError(
                f"{path} is not a zero-shot evaluation of a controller (evaluate.py "
                "--controller RUN on a task set)"
            )
        data.append(entry)
    first = _shape(data[0])
    for folder, entry in zip(folders[1:], data[1:], strict=True):
        if _shape(entry) != first:
            raise ValueError(
                f"{folder} evaluated other tasks, trainee seeds or carried setting than "
                f"{folders[0]}: {_shape(entry)} against {first}; compare like with like"
            )
    return data


def _shape(entry: dict[str, Any]) -> tuple:
    seeds = {}
    for task in entry["tasks"]:
        seeds[task["task"]] = task["methods"]["controller"]["n"]
    return entry["task_set"], entry["split"], entry["best_transferred"], tuple(seeds.items())


def seed_row(entry: dict[str, Any]) -> dict[str, Any]:
    """One controller's record, as evaluate.py judged it."""
    zero = entry["zero_shot"]
    carried = entry["best_transferred"]
    beats_all = sum(
        all(row["versus"][m]["outcome"] == "win" for m in (carried, *TUNING_FREE))
        for row in zero["per_task"]
    )
    record = zero["record"]
    return {
        "beats_all": beats_all,
        "tasks": len(zero["per_task"]),
        **{m: record[m] for m in ("replay", *TUNING_FREE)},
        "carried": record[carried],
        "median_regret": zero["regret"]["median"],
        "worst_regret": zero["regret"]["worst"],
        "normalized_score": zero["normalized_score"],
    }


def _losses(entry: dict[str, Any], task: str, method: str) -> np.ndarray:
    for row in entry["tasks"]:
        if row["task"] == task:
            return np.asarray(row["methods"][method]["test_loss"], dtype=np.float64)
    raise KeyError(task)


def design_rows(data: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per task: the design's mean loss, its controllers' range, and each method's mean
    with the paired outcome of the design against it."""
    carried = data[0]["best_transferred"]
    rows = []
    for task in (row["task"] for row in data[0]["tasks"]):
        per_seed = np.array([_losses(entry, task, "controller") for entry in data])
        design = per_seed.mean(axis=0)  # one loss per trainee seed
        row: dict[str, Any] = {
            "task": task,
            "design": float(design.mean()),
            "range": (float(per_seed.mean(axis=1).min()), float(per_seed.mean(axis=1).max())),
            "methods": {},
        }
        means = {}
        for column in COLUMNS:
            method = carried if column == "carried" else column
            theirs = np.mean([_losses(entry, task, method) for entry in data], axis=0)
            test = paired_t_test(design, theirs)
            outcome = "tie"
            if test.pvalue < SIGNIFICANCE:
                outcome = "win" if design.mean() < theirs.mean() else "loss"
            means[column] = float(theirs.mean())
            row["methods"][column] = {"mean": means[column], "outcome": outcome, "p": test.pvalue}
        oracle = means["oracle"]
        row["regret"] = (row["design"] - oracle) / oracle
        row["normalized_score"] = normalized_score(row["design"], means["carried"], oracle)
        rows.append(row)
    return rows


def _wtl(record: dict[str, int]) -> str:
    return f"{record['wins']}/{record['ties']}/{record['losses']}"


def _score(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.0f}"


def markdown(folders: Sequence[str | Path], data: Sequence[dict[str, Any]]) -> str:
    """Both tables, in markdown."""
    lines = [
        f"# Zero-shot over {len(data)} training seeds: {data[0]['task_set']}, "
        f"split {data[0]['split']!r}",
        "",
        "Each controller on its own (paired t-test over the trainee seeds, p < 0.05; W/T/L = "
        "wins/ties/losses over the tasks):",
        "",
        "| evaluation | beats carried and all three tuning-free | vs carried | vs its replay | "
        "vs schedule-free SGD, defaults | vs Prodigy | vs D-Adaptation | median regret | "
        "worst regret | normalized score |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for folder, entry in zip(folders, data, strict=True):
        r = seed_row(entry)
        lines.append(
            f"| {Path(folder).name} | {r['beats_all']} of {r['tasks']} | {_wtl(r['carried'])} | "
            f"{_wtl(r['replay'])} | {_wtl(r['schedule_free_default'])} | {_wtl(r['prodigy'])} | "
            f"{_wtl(r['dadaptation'])} | {r['median_regret']:.1%} | {r['worst_regret']:.1%} | "
            f"{r['normalized_score']:.1f} |"
        )
    lines += [
        "",
        "The design: on each trainee seed the mean over its controllers, against each method "
        "(W: the design is significantly better, L: worse); in brackets the range of the "
        "controllers' own means:",
        "",
        "| held-out task | the design (range) | "
        + " | ".join(COLUMNS.values())
        + " | regret | score |",
        "| --- |" + " --- |" * (len(COLUMNS) + 3),
    ]
    rows = design_rows(data)
    for row in rows:
        cells = [f"{row['design']:.4f} ({row['range'][0]:.4f} to {row['range'][1]:.4f})"]
        for column in COLUMNS:
            method = row["methods"][column]
            mark = {"win": " W", "loss": " L", "tie": ""}[method["outcome"]]
            cells.append(f"{method['mean']:.4f}{mark}")
        cells += [f"{row['regret']:.1%}", _score(row["normalized_score"])]
        lines.append(f"| `{row['task']}` | " + " | ".join(cells) + " |")
    regrets = [row["regret"] for row in rows]
    summary = f"The design: median regret {np.median(regrets):.1%}, worst {max(regrets):.1%}"
    scores = [row["normalized_score"] for row in rows if math.isfinite(row["normalized_score"])]
    if scores:  # defined only where the carried setting and the oracle differ
        summary += f", normalized score {np.mean(scores):.1f}"
    lines += ["", summary, ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m agents.seed_table",
        description="One zero-shot table for a design from its training seeds' evaluations.",
    )
    parser.add_argument("folders", nargs="+", help="evaluate.py output folders, one a seed")
    parser.add_argument("--out", help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    try:
        data = read_evaluations(args.folders)
    except ValueError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    text = markdown(args.folders, data)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
