"""What a zero-shot evaluation writes: results.json, results.md and the regret figure.

Everything here reads a finished :class:`agents.zero_shot.ZeroShot`; nothing trains.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from agents.report import _jsonable
from agents.zero_shot import ZeroShot

LABELS = {
    "controller": "learned controller",
    "replay": "its replay (open loop)",
    "random": "random actions",
    "action_zero": "action 0",
    "schedule_free_default": "schedule-free SGD, defaults",
    "prodigy": "Prodigy, defaults",
    "dadaptation": "D-Adaptation SGD, defaults",
    "oracle": "oracle (tuned on the task)",
}


def label(method: str) -> str:
    """A method's name for tables and legends."""
    if method.startswith("transferred_"):
        return f"{method.removeprefix('transferred_').replace('_', ' ')} (transferred)"
    return LABELS.get(method, method)


def write_zero_shot_report(result: ZeroShot, out: str | os.PathLike) -> list[Path]:
    """Write results.json, results.md and regret.png into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = result.to_dict()
    paths = [out / "results.json", out / "results.md", out / "regret.png"]
    paths[0].write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")
    paths[1].write_text(zero_shot_markdown(data))
    regret_figure(data).savefig(paths[2])
    return paths


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def zero_shot_markdown(data: dict[str, Any]) -> str:
    """results.md: the per-task table, the controller's record and every method's scores."""
    methods = list(data["tasks"][0]["methods"])
    zero = data.get("zero_shot")
    lines = [
        f"# Zero-shot evaluation on {data['task_set']}, split {data['split']!r}",
        "",
        "Mean test loss over the seeds, per held-out task (lower is better). Against the "
        "controller, by a paired t-test over the seeds (p < 0.05): **W** the controller "
        "wins, **L** it loses, nothing for a tie.",
        "",
        "| task | " + " | ".join(label(m) for m in methods) + " |",
        "| --- |" + " --- |" * len(methods),
    ]
    per_task = {row["task"]: row for row in zero["per_task"]} if zero else {}
    for entry in data["tasks"]:
        cells = []
        for method in methods:
            cell = _fmt(entry["methods"][method]["mean"])
            versus = per_task.get(entry["task"], {}).get("versus", {}).get(method)
            if versus and versus["outcome"] != "tie":
                cell += " **W**" if versus["outcome"] == "win" else " **L**"
            cells.append(cell)
        lines.append(f"| {entry['task']} | " + " | ".join(cells) + " |")
    if zero:
        lines += [
            "",
            "## The controller against each method, over the tasks",
            "",
            "| method | wins | ties | losses |",
            "| --- | --- | --- | --- |",
        ]
        for method, record in zero["record"].items():
            lines.append(
                f"| {label(method)} | {record['wins']} | {record['ties']} | {record['losses']} |"
            )
    lines += [
        "",
        "## Regret against the oracle and normalized score",
        "",
        "Regret is (L - L_oracle) / L_oracle on each task's mean test loss; the normalized "
        f"score is 0 at {label(data['best_transferred'])} (the transferred setting that "
        "scored best on the training split) and 100 at the oracle, averaged over the tasks.",
        "",
        "| method | median regret | worst regret | normalized score |",
        "| --- | --- | --- | --- |",
    ]
    for method, scores in data["scores"].items():
        lines.append(
            f"| {label(method)} | {_fmt(100 * scores['median_regret'], 1)}% | "
            f"{_fmt(100 * scores['worst_regret'], 1)}% | {_fmt(scores['normalized_score'], 1)} |"
        )
    lines += ["", "![per-task regret](regret.png)", ""]
    return "\n".join(lines)


def regret_figure(data: dict[str, Any]) -> Any:
    """Per-task regret of each method against the oracle (grouped bars, in percent)."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # the object API: no pyplot, no GUI backend

    colours = colormaps["tab20"].colors  # 20 distinct: the protocol has 12 methods or more
    methods = [m for m in data["scores"] if m != "oracle"]
    tasks = [entry["task"] for entry in data["tasks"]]
    fig = Figure(figsize=(max(7.0, 1.1 * len(tasks)), 4.8), dpi=120, layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        regrets = 100 * np.asarray(data["scores"][method]["regret"], dtype=float)
        ax.bar(
            np.arange(len(tasks)) + i * width - 0.4 + width / 2,
            regrets,
            width,
            label=label(method),
            color=colours[i % len(colours)],
        )
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(tasks)), tasks, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("regret against the oracle (%)")
    ax.set_yscale("symlog", linthresh=5)
    ax.set_title(f"Zero-shot on {data['task_set']} ({data['split']} split)")
    ax.legend(fontsize=6, ncol=2)
    return fig
