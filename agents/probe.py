"""What a trained controller does on each task it trained on, beside its untrained self.

    python -m agents.probe RUN                   # the controller train.py kept
    python -m agents.probe RUN --snapshot 350    # the snapshot after 350 episodes
    python -m agents.probe RUN --task-set my.csv # on my.csv's training split instead

A run's return curve says whether PPO learned; it does not say what. The probe runs a
snapshot of the run deterministically on every task its snapshots are scored on (a task
set's training split, or the run's one task), beside the run's untrained snapshot on the
same trainee seeds (the selection seeds: validation only, the test split is never read),
and prints one Markdown row per task: the mean rate over the untrained run's, the mean
schedule-free beta where the controller sets it, both best validation losses and the
change. Under residual control the untrained snapshot is the base schedule up to its small
initial actions, so a row reads "where it departs from the base, and what that did".

The rows are one or a few trainee seeds each: a reading aid, not a test. Whether a
snapshot's lead holds is what train.py's confirmation and evaluate.py measure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.cli import Parser
from agents.comparison import selection_seeds
from agents.jobs import RunResult
from agents.selection import (
    SNAPSHOTS,
    named_selection_tasks,
    snapshot_episodes,
    snapshot_path,
    validation_runs,
)
from agents.tasks import Task
from lrenv.controller import ZIP_FILE, code_free_path
from lrenv.keywords import is_task_set_id


@dataclass(frozen=True)
class ProbeRow:
    """One task: the probed controller's runs against the untrained snapshot's."""

    task: str
    rate_ratio: float
    """Mean over seeds of (mean rate of the probed run) / (mean rate of the untrained run)."""
    beta: float | None
    """Mean schedule-free beta the probed controller set (None: it sets none)."""
    untrained_loss: float
    """Mean over seeds of the untrained snapshot's best validation loss."""
    probed_loss: float
    """The same for the probed controller."""
    diverged: int
    """Probed runs that diverged."""

    @property
    def change(self) -> float:
        """Relative change of the best validation loss (negative: the probe is better)."""
        return self.probed_loss / self.untrained_loss - 1.0


def probed_file(run: Path, snapshot: int | None) -> Path:
    """The controller to probe, as the zip path whose code-free sibling is read (as
    snapshot selection names them): the run's controller, or a snapshot.

    Raises:
        FileNotFoundError: naming the code-free file that is missing, and the snapshots kept.
    """
    path = run / ZIP_FILE if snapshot is None else snapshot_path(run, snapshot)
    if not code_free_path(path).exists():
        kept = sorted(snapshot_episodes(p) for p in (run / SNAPSHOTS).glob("episode-*.zip"))
        hint = f"; snapshots kept after {kept} episodes" if kept else ""
        raise FileNotFoundError(f"{code_free_path(path)} does not exist{hint}")
    return path


def probe(
    run: Path,
    snapshot: int | None = None,
    seeds: int = 1,
    workers: int = 2,
    task_set: str | None = None,
) -> list[ProbeRow]:
    """Run a snapshot of ``run`` and its untrained snapshot on every selection task.

    Args:
        run: a train.py run folder that kept snapshots (``--select-every`` > 0).
        snapshot: the episodes after which the probed snapshot was taken (None: the
            controller train.py kept).
        seeds: trainee seeds per task (the selection seeds, validation only).
        workers: evaluation processes.
        task_set: probe on this task set's training split instead of the run's own (a
            shipped set's name or a CSV file of your own), with the run's env keywords
            otherwise: for example tasks between those it trained on. Only for a run
            trained on a task set.

    Returns:
        One row per task, in the order of the task set's training split.

    Raises:
        FileNotFoundError: when the run has no untrained snapshot or no such snapshot.
        ValueError: a ``task_set`` for a run that did not train on a task set.
    """
    run = Path(run)
    untrained = snapshot_path(run, 0)
    if not code_free_path(untrained).exists():
        raise FileNotFoundError(
            f"{run} has no untrained snapshot ({code_free_path(untrained)}): "
            "train with --select-every > 0"
        )
    probed = probed_file(run, snapshot)
    config = json.loads((run / "config.json").read_text())["config"]
    env_kwargs = config["env_kwargs"]
    if task_set is not None:
        if not is_task_set_id(config["env_id"]):
            raise ValueError(
                f"--task-set needs a run trained on a task set; {run} trained on "
                f"{config['env_id']}: leave --task-set out to probe its own task"
            )
        env_kwargs = {**env_kwargs, "task_set": task_set}
    names, tasks = zip(*named_selection_tasks(Task(config["env_id"], env_kwargs)), strict=True)
    trainee_seeds = selection_seeds(seeds)
    results = iter(
        validation_runs([untrained, probed], tasks, trainee_seeds, workers, False, "probe")
    )
    # snapshot by snapshot, task by task, seed by seed
    base = [[next(results) for _ in trainee_seeds] for _ in tasks]
    trained = [[next(results) for _ in trainee_seeds] for _ in tasks]
    return [_row(*task_runs) for task_runs in zip(names, base, trained, strict=True)]


def _row(name: str, base: Sequence[RunResult], trained: Sequence[RunResult]) -> ProbeRow:
    ratios = [
        np.mean(t.trajectory.lr) / np.mean(b.trajectory.lr)
        for b, t in zip(base, trained, strict=True)
    ]
    betas = [b for t in trained for b in t.trajectory.beta]
    return ProbeRow(
        task=name,
        rate_ratio=float(np.mean(ratios)),
        beta=float(np.mean(betas)) if betas else None,
        untrained_loss=float(np.mean([r.best_val_loss for r in base])),
        probed_loss=float(np.mean([r.best_val_loss for r in trained])),
        diverged=sum(r.diverged for r in trained),
    )


def format_probe(rows: Sequence[ProbeRow], title: str) -> str:
    """The rows as a Markdown table under ``title``, with a one-line summary after it."""
    lines = [
        title,
        "",
        "| task | rate x | beta | untrained | probed | change |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        beta = "" if row.beta is None else f"{row.beta:.2f}"
        flag = f" ({row.diverged} diverged)" if row.diverged else ""
        lines.append(
            f"| `{row.task}` | {row.rate_ratio:.2f} | {beta} | {row.untrained_loss:.4f} | "
            f"{row.probed_loss:.4f}{flag} | {row.change:+.1%} |"
        )
    better = sum(row.change < 0 for row in rows)
    mean_log = float(np.mean([np.log(row.probed_loss / row.untrained_loss) for row in rows]))
    lines += [
        "",
        f"Lower on {better} of {len(rows)} tasks; mean log ratio {mean_log:+.4f} "
        "(one row per task: a reading aid, not a test).",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[ProbeRow]:
    """``python -m agents.probe``: print the probe of a run's controller or snapshot."""
    parser = Parser(
        prog="python -m agents.probe",
        description="What a trained controller does on each training task, beside the "
        "run's untrained snapshot (validation only).",
    )
    parser.add_argument("run", type=Path, help="a train.py run folder with snapshots")
    parser.add_argument(
        "--snapshot", type=int, default=None, help="episodes of the snapshot (default: kept)"
    )
    parser.add_argument("--seeds", type=int, default=1, help="trainee seeds per task")
    parser.add_argument("--workers", type=int, default=2, help="evaluation processes")
    parser.add_argument(
        "--task-set",
        default=None,
        help="probe on this task set's training split instead of the run's own (a shipped "
        "set's name or a CSV file of your own: tasks between those it trained on, say)",
    )
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.workers < 1 or (args.snapshot is not None and args.snapshot < 0):
        parser.error("--seeds and --workers must be >= 1, --snapshot >= 0")
    if not (args.run / "config.json").is_file():
        parser.error(f"{args.run} is not a run folder (no config.json): give train.py's --out")
    try:
        rows = probe(args.run, args.snapshot, args.seeds, args.workers, args.task_set)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    which = "the kept controller" if args.snapshot is None else f"snapshot {args.snapshot}"
    where = "" if args.task_set is None else f", on {args.task_set}'s training split"
    print(format_probe(rows, f"{args.run}: {which} against the untrained snapshot{where}"))
    return rows


if __name__ == "__main__":
    main()
