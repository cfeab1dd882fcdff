"""Evaluation jobs as Ray tasks: the selection grid and the evaluation runs on a cluster.

:class:`RayRunner` has :class:`agents.comparison.Runner`'s interface (a context manager
whose ``run(jobs)`` returns the results in order) and is what ``evaluate.py --ray ADDRESS``
runs the comparison with. Each :class:`agents.comparison.Job` (one trainee) is one Ray
task, done by :func:`agents.jobs.run_job` exactly as a worker process does it, so the
results equal the local run's for the same seeds.

- Resources: a task asks for ``threads`` cores (and sets torch's thread count to it), a GPU
  when the task's device is ``"cuda"``, and is spread over the nodes (``"SPREAD"``).
- Each Ray worker process keeps its envs between tasks, as a pool worker does.
- The controller file is read here once and shipped to the workers through Ray's object
  store, so nodes other than this one need no copy of it.
- A task whose worker or node dies is retried by Ray (``max_retries``): a job is a function
  of its inputs (task, seed, schedule or controller), so the retry gives the same result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
from tqdm.auto import tqdm

from agents.jobs import EnvCache, Job, RunResult, run_job
from agents.ray_cluster import actor_options, check_schedulable, trainee_gpus

_WORKER_CACHE: EnvCache | None = None
"""Envs and controllers of this Ray worker process, kept between its tasks."""


def _local_controller(name: str, data: bytes) -> str:
    """A file on this node holding the controller ``data`` (written once per content)."""
    folder = Path(tempfile.gettempdir()) / "lrenv-controllers" / hashlib.sha256(data).hexdigest()
    path = folder / name
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(path)
    return str(path)


def _run_job(job: Job, threads: int, controller: bytes | None) -> RunResult:
    """One job in a Ray worker: :func:`agents.jobs.run_job` with this worker's cache."""
    global _WORKER_CACHE
    import torch

    torch.set_num_threads(threads)
    if _WORKER_CACHE is None:
        _WORKER_CACHE = EnvCache()
    if controller is not None:
        local = _local_controller(Path(job.controller).name, controller)
        job = dataclasses.replace(job, controller=local)
    return run_job(job, _WORKER_CACHE)


class RayRunner:
    """Runs :class:`agents.comparison.Job`\\ s as Ray tasks, one trainee each.

    Needs a connected Ray (:func:`agents.ray_cluster.connect`).

    Args:
        threads: cores (and torch threads) of each task.
        progress: show a tqdm progress bar.
        max_retries: times Ray redoes a task whose worker or node died.
    """

    def __init__(self, threads: int = 1, progress: bool = True, max_retries: int = 3) -> None:
        self.threads = threads
        self.progress = progress
        self.max_retries = max_retries
        self._remote = ray.remote(_run_job)

    def __enter__(self) -> RayRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        pass  # tasks hold nothing once their results are in

    def run(self, jobs: Sequence[Job], desc: str = "runs") -> list[RunResult]:
        """Results in the order of ``jobs``; the first failure is raised."""
        controllers: dict[str, Any] = {}
        futures = []
        for gpus in {trainee_gpus(job.task.env_kwargs) for job in jobs}:
            check_schedulable(ray, self.threads, gpus, "run")  # else it waits forever
        for job in jobs:
            blob = None
            if job.controller is not None:
                if job.controller not in controllers:
                    controllers[job.controller] = ray.put(Path(job.controller).read_bytes())
                blob = controllers[job.controller]
            options = actor_options(self.threads, trainee_gpus(job.task.env_kwargs))
            remote = self._remote.options(max_retries=self.max_retries, **options)
            futures.append(remote.remote(job, self.threads, blob))
        index = {future: i for i, future in enumerate(futures)}
        results: list[RunResult | None] = [None] * len(jobs)
        pending = list(futures)
        with tqdm(total=len(jobs), desc=desc, unit="run", disable=not self.progress) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for future in done:
                    results[index[future]] = ray.get(future)  # raises the task's error
                    bar.update()
        return results  # type: ignore[return-value]
