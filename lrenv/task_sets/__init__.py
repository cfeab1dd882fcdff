"""Task sets: many trainee tasks with a training and a held-out split, as data.

A task set is a CSV file, one row per task, as DACBench's instance sets are. Its columns:

=================  ===========================================================================
column             meaning
=================  ===========================================================================
name               the task's name, unique in the set (``reset(options={"task": name})``)
split              ``train`` (the controller may learn and be tuned on it) or ``test``
                   (held out: read only to evaluate)
dataset            ``fashion_mnist``, ``cifar10``, ``digits`` or ``synthetic``
model              ``cnn`` (LeNet-5), ``mlp`` (one hidden layer of 128) or ``mlp-WxD``
batch_size         examples per SGD step
total_steps        SGD steps of one episode
steps_per_action   SGD steps between two decisions of the controller
val_size           validation examples the reward reads (empty: the whole validation split)
initial_lr         the rate the optimizer starts from: a practitioner's untuned default, which
                   differs by task
=================  ===========================================================================

Every column but ``name`` and ``split`` is a keyword of :class:`lrenv.env.LRScheduleEnv`;
together they are a task's :data:`TASK_SET_KEYS`. A row is parsed and checked only when
its split is asked for, so whatever the held-out rows hold can never change what is
learned on the training split (a test replaces them with garbage to prove it).

The sets shipped with lrenv live beside this module as ``NAME-vN.csv`` (a new version is a
new file; results name the version they used), each with the reference results of
:mod:`agents.references` in ``NAME-vN.references.json``. ``load_task_set("default")``
reads the newest version; a path reads any file of this format.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrenv.keyword_roles import TASK_KEYS

SPLITS = ("train", "test")
TASK_SET_KEYS = (*TASK_KEYS, "initial_lr")
"""The env keywords a task set's row fixes: the task (:data:`lrenv.TASK_KEYS`) and the rate
the optimizer starts from."""
COLUMNS = ("name", "split", *TASK_SET_KEYS)
HERE = Path(__file__).resolve().parent
_VERSIONED = re.compile(r"(?P<name>[a-z0-9_]+(?:-[a-z0-9_]+)*?)-v(?P<version>[0-9]+)\.csv")


class TaskSetError(ValueError):
    """A task set that cannot be read or a row that is not a task; the message names the
    file and the row."""


@dataclass(frozen=True)
class TaskSpec:
    """One task of a set: its name, split and the env keywords that define it."""

    name: str
    split: str
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:  # a plain dict: picklable for worker processes
        object.__setattr__(self, "env_kwargs", dict(self.env_kwargs))

    @property
    def family(self) -> str:
        """Dataset and kind of model, e.g. ``fashion_mnist-mlp``: what TensorBoard groups
        the training curves by."""
        model = str(self.env_kwargs["model"])
        return f"{self.env_kwargs['dataset']}-{'mlp' if model.startswith('mlp') else model}"

    @property
    def decisions(self) -> int:
        """Controller decisions in one episode."""
        return self.env_kwargs["total_steps"] // self.env_kwargs["steps_per_action"]

    def describe(self) -> str:
        """E.g. ``fashion_mnist, mlp-32x1, batch 32, 300 steps, lr 0.01``."""
        k = self.env_kwargs
        return (
            f"{k['dataset']}, {k['model']}, batch {k['batch_size']}, {k['total_steps']} steps, "
            f"lr {k['initial_lr']:g}"
        )


@dataclass(frozen=True)
class TaskSet:
    """A named set of tasks read from a CSV file (see the module docstring).

    Attributes:
        name: the set's name with its version, e.g. ``default-v1`` (the file's stem for a
            file given by path).
        path: the CSV file.
    """

    name: str
    path: Path
    _rows: tuple[tuple[int, dict[str, str]], ...]

    def names(self, split: str) -> list[str]:
        """The names of the tasks in ``split``, in file order (nothing else is parsed)."""
        check_split(split)
        return [row["name"] for _, row in self._rows if row["split"] == split]

    def tasks(self, split: str) -> list[TaskSpec]:
        """The tasks of ``split``, parsed and checked, in file order.

        Raises:
            TaskSetError: naming the file and row of a task that is not one.
        """
        check_split(split)
        tasks = [self._parse(line, row) for line, row in self._rows if row["split"] == split]
        if not tasks:
            raise TaskSetError(f"{self.path}: no task has split {split!r}")
        return tasks

    def task(self, name: str, split: str | None = None) -> TaskSpec:
        """The task called ``name`` (within ``split`` when given).

        Raises:
            TaskSetError: listing the names there are.
        """
        for line, row in self._rows:
            if row["name"] == name and (split is None or row["split"] == split):
                return self._parse(line, row)
        where = f" in split {split!r}" if split else ""
        names = self.names(split) if split else [row["name"] for _, row in self._rows]
        raise TaskSetError(
            f"{self.path}: no task {name!r}{where}; the tasks are: {', '.join(names)}"
        )

    @property
    def references_path(self) -> Path:
        """Where the set's reference results are kept (beside the CSV file)."""
        return self.path.with_name(f"{self.path.stem}.references.json")

    def _parse(self, line: int, row: Mapping[str, str]) -> TaskSpec:
        where = f"{self.path}, line {line} (task {row['name']!r})"
        kwargs: dict[str, Any] = {}
        try:
            for key in ("batch_size", "total_steps", "steps_per_action"):
                kwargs[key] = int(row[key])
            kwargs["val_size"] = int(row["val_size"]) if row["val_size"].strip() else None
            kwargs["initial_lr"] = float(row["initial_lr"])
        except (TypeError, ValueError, AttributeError) as err:
            raise TaskSetError(f"{where}: not a number where one is expected ({err})") from err
        kwargs["dataset"] = row["dataset"].strip()
        kwargs["model"] = row["model"].strip()
        kwargs = {key: kwargs[key] for key in TASK_SET_KEYS}
        from lrenv.env import env_defaults  # lrenv.env imports torch
        from lrenv.env_config import validate_config

        try:
            validate_config(**{**env_defaults(), **kwargs})
        except ValueError as err:
            raise TaskSetError(f"{where}: {err}") from err
        return TaskSpec(row["name"], row["split"], kwargs)


def mean_decisions(tasks: list[TaskSpec]) -> int:
    """Decisions per episode averaged over ``tasks``, rounded (at least 1): what rollouts
    of whole episodes are sized by when the tasks differ in length."""
    return max(1, round(sum(task.decisions for task in tasks) / len(tasks)))


def check_split(split: str) -> None:
    """ValueError unless ``split`` is ``"train"`` or ``"test"``."""
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def available_task_sets() -> dict[str, Path]:
    """The sets shipped with lrenv: every ``NAME-vN`` and, for each ``NAME``, its newest
    version, mapped to their files."""
    found: dict[str, Path] = {}
    newest: dict[str, tuple[int, Path]] = {}
    for path in sorted(HERE.glob("*.csv")):
        match = _VERSIONED.fullmatch(path.name)
        if match is None:
            continue
        found[path.stem] = path
        version = int(match["version"])
        if match["name"] not in newest or version > newest[match["name"]][0]:
            newest[match["name"]] = (version, path)
    return {**{name: path for name, (_, path) in newest.items()}, **found}


def load_task_set(name_or_path: str | Path) -> TaskSet:
    """Read a task set: a shipped one by name (``"default"``, ``"smoke"``, or a version such
    as ``"default-v1"``) or any CSV file of this format by path.

    Only the ``name`` and ``split`` columns are checked here; a split's rows are parsed when
    asked for (:meth:`TaskSet.tasks`).

    Raises:
        TaskSetError: for an unknown name, a missing or malformed file, unknown columns,
            duplicate names or a split that is neither train nor test.
    """
    shipped = available_task_sets()
    text = str(name_or_path)
    if text in shipped:
        path, name = shipped[text], shipped[text].stem
    else:
        path = Path(text).expanduser()
        if not (path.suffix == ".csv" or path.exists()):
            raise TaskSetError(
                f"unknown task set {text!r}; choose one of {', '.join(sorted(shipped))}, "
                "or give the path of a CSV file (docs/task-sets.md gives the format)"
            )
        name = path.stem
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = tuple(reader.fieldnames or ())
            rows = [(reader.line_num, row) for row in reader]
    except OSError as err:
        raise TaskSetError(f"cannot read task set {path}: {err}") from err
    missing = [c for c in COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in COLUMNS]
    if missing or unknown:
        raise TaskSetError(
            f"{path}: the columns must be {', '.join(COLUMNS)}; "
            + "; ".join(
                part
                for part in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"unknown {', '.join(unknown)}" if unknown else "",
                )
                if part
            )
        )
    seen: set[str] = set()
    for line, row in rows:
        if row["split"] not in SPLITS:
            raise TaskSetError(
                f"{path}, line {line}: split must be train or test, got {row['split']!r}"
            )
        if not row["name"] or row["name"] in seen:
            raise TaskSetError(f"{path}, line {line}: task names must be unique and non-empty")
        seen.add(row["name"])
    return TaskSet(name, path.resolve(), tuple(rows))
