"""Where jobs run: in this process, or over a pool of spawned worker processes.

:class:`Runner` hands each job (or, batched, each group of :func:`batches`) to a worker and
collects the results in order; the first failure is raised with the worker's own error.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from tqdm.auto import tqdm

import lrenv  # noqa: F401  (registers the environments, here and in every worker)
from agents.jobs import EnvCache, Job, RunResult, run_batch, run_job, task_key
from agents.lifeline import die_with_parent
from lrenv.checks import check_integer


def _init_worker(threads: int | None, main_pid: int | None = None) -> None:
    global _WORKER_CACHE
    die_with_parent(main_pid)  # no worker outlives the process that started the pool
    _WORKER_CACHE = EnvCache()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _run_one(jobs: list[Job], cache: EnvCache | None = None) -> list[RunResult]:
    """The one job of an unbatched unit of work, as a list like :func:`run_batch`'s."""
    (job,) = jobs
    return [run_job(job, cache)]


def _run_one_in_worker(jobs: list[Job]) -> list[RunResult]:
    return _run_one(jobs, _WORKER_CACHE)


def _run_batch_in_worker(jobs: list[Job]) -> list[RunResult]:
    return run_batch(jobs, _WORKER_CACHE)


def batches(jobs: Sequence[Job], max_batch: int | None = None) -> list[list[int]]:
    """The indices of ``jobs`` in groups that can train batched.

    A group holds the jobs of one method on one task (with one controller and ``test``
    flag), e.g. a method's evaluation runs on all seeds, or one baseline family's
    selection runs; a group larger than ``max_batch`` is split into near-equal parts. Jobs
    of another optimizer than plain SGD (schedule-free SGD) go one per group: batched
    trainees train with plain SGD only.

    Args:
        jobs: the jobs.
        max_batch: the most jobs in one group (``None``: no limit).

    Returns:
        Index lists, in the order of each group's first job.
    """
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, job in enumerate(jobs):
        key = (job.method, task_key(job.task), job.test, job.controller)
        groups.setdefault(key, []).append(i)
    out = []
    for group in groups.values():
        if jobs[group[0]].task.resolved_kwargs.get("optimizer", "sgd") != "sgd":
            out += [[i] for i in group]  # batched trainees run plain SGD only
            continue
        parts = 1 if max_batch is None else math.ceil(len(group) / max_batch)
        size, extra = divmod(len(group), parts)
        start = 0
        for k in range(parts):
            end = start + size + (k < extra)
            out.append(group[start:end])
            start = end
    return out


class Runner:
    """Runs jobs in this process (``workers=1``) or over a pool of spawned processes.

    Use as a context manager; the pool (and every worker's envs) lives until exit.

    Args:
        workers: processes; 1 runs everything here.
        threads: torch threads per worker process, or while an env computes in this one
            (``None``: the process's count). One thread
            per process is fastest on a shared CPU: with other jobs running, two threads
            made a synthetic episode 6x slower than one (1.2 s against 0.2 s).
        progress: show a tqdm progress bar.
        batched: train the jobs of one method on one task together, their trainees as one
            batched computation (:func:`batches`, :func:`run_batch`); each group is one
            unit of work for a worker. The results equal unbatched ones within float
            tolerance. The way to use a GPU.
        max_batch: the most jobs trained together (``None``: all of a group).
    """

    def __init__(
        self,
        workers: int = 1,
        threads: int | None = None,
        progress: bool = True,
        batched: bool = False,
        max_batch: int | None = None,
    ) -> None:
        check_integer(workers, "workers")
        if max_batch is not None:
            check_integer(max_batch, "max_batch", allowed="a positive integer or None")
        self.workers = workers
        self.threads = threads
        self.progress = progress
        self.batched = batched
        self.max_batch = max_batch
        self._pool: ProcessPoolExecutor | None = None
        # in this process, the envs compute with `threads` (their keyword torch_threads,
        # which gives the caller's count back after each call): a library call leaves the
        # process's thread count alone
        self._cache = EnvCache(torch_threads=threads)

    def __enter__(self) -> Runner:
        if self.workers > 1:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.threads, os.getpid()),
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._cache.close()

    def run(self, jobs: Sequence[Job], desc: str = "runs") -> list[RunResult]:
        """Results in the order of ``jobs``; the first failure is raised.

        Unbatched, each job is its own unit of work; batched, each group of
        :func:`batches`. One loop hands the units out and collects their results.
        """
        if self.batched:
            groups = batches(jobs, self.max_batch)
            local, remote = run_batch, _run_batch_in_worker
        else:
            groups = [[i] for i in range(len(jobs))]
            local, remote = _run_one, _run_one_in_worker
        results: list[RunResult | None] = [None] * len(jobs)
        bar = tqdm(total=len(jobs), desc=desc, unit="run", disable=not self.progress)

        def keep(group: list[int], done: list[RunResult]) -> None:
            for i, result in zip(group, done, strict=True):
                results[i] = result
            bar.update(len(group))

        try:
            if self._pool is None:
                for group in groups:
                    keep(group, local([jobs[i] for i in group], self._cache))
            else:
                futures = {
                    self._pool.submit(remote, [jobs[i] for i in group]): k
                    for k, group in enumerate(groups)
                }
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:  # result() raises the worker's own error
                        keep(groups[futures[future]], future.result())
            return results  # type: ignore[return-value]
        finally:
            bar.close()
