"""Connect to a Ray cluster (or start a local one) for train.py and evaluate.py.

Ray is an optional extra (``pip install -e ".[ray]"``); this module imports it only when
asked, so that the scripts run without it and ``--ray`` says how to install it.

``--ray ADDRESS`` takes:

- ``local``: start a Ray instance on this machine for the run (about 5 s), stopped at exit;
- ``auto``: join the cluster this machine belongs to (``ray start`` ran here);
- ``ray://HOST:10001``: join a cluster through Ray Client, from outside it.

The driver ships its own ``lrenv`` and ``agents`` packages to the workers
(``runtime_env={"py_modules": ...}``), so every node runs the driver's code, not whatever
copy it has installed. Datasets are not shipped: each node reads its own (Fashion-MNIST
from Debian's ``dataset-fashion-mnist``, CIFAR-10 under ``data_root``); see docs/ray.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

RAY_MISSING = 'Ray is not installed: pip install -e ".[ray]" (or pip install "ray[default]")'
"""What ``--ray`` says when Ray cannot be imported."""


class EnvActorLostError(RuntimeError):
    """A trainee's Ray actor was lost more often than :class:`agents.ray_vec.RayVecEnv`
    starts it again (defined here, where no Ray import is needed to catch it)."""


class RayMissingError(ImportError):
    """Ray is needed (``--ray``) but cannot be imported."""


class UnschedulableError(RuntimeError):
    """Trainees (Ray actors or tasks) that the cluster cannot place: no node has the
    resources one asks for, or they did not start within the timeout."""


SCHEDULE_TIMEOUT = 300.0
"""Seconds the trainees' actors may take to start before :func:`wait_started` gives up
(a busy cluster frees resources within minutes; a cluster that lacks them never does)."""


def _resources_text(resources: dict[str, float]) -> str:
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    return f"{cpus:g} CPU(s), {gpus:g} GPU(s)"


def check_schedulable(ray: ModuleType, cpus: int, gpus: float, what: str = "trainee") -> None:
    """Raise :class:`UnschedulableError` when no live node of the connected cluster has
    the resources one trainee asks for (it would wait forever).

    Args:
        ray: the connected ``ray`` module.
        cpus: CPUs one trainee asks for.
        gpus: GPUs one trainee asks for.
        what: what is being placed, for the message.
    """
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(n.get("CPU", 0.0) >= cpus and n.get("GPU", 0.0) >= gpus for n in nodes):
        return
    largest = max(nodes, key=lambda n: (n.get("GPU", 0.0), n.get("CPU", 0.0)), default={})
    missing = []
    if not any(n.get("CPU", 0.0) >= cpus for n in nodes):
        missing.append(f"a node with {cpus} CPU(s)")
    if gpus and not any(n.get("GPU", 0.0) >= gpus for n in nodes):
        missing.append(f"a node with {gpus:g} GPU(s)")
    raise UnschedulableError(
        f"no node of the Ray cluster can run a {what}: it asks for {cpus} CPU(s) and {gpus:g} "
        f"GPU(s); missing: {' and '.join(missing) or 'both on one node'} (largest node: "
        f"{_resources_text(largest)}). Lower --threads, or use the env keyword "
        '"device": "cpu", or add such a node.'
    )


def wait_started(
    ray: ModuleType,
    refs: list[Any],
    cpus: int,
    gpus: float,
    timeout: float = SCHEDULE_TIMEOUT,
    what: str = "trainee actors",
) -> None:
    """Wait until every one of ``refs`` (a first call to each actor) has returned.

    Raises:
        UnschedulableError: after ``timeout`` seconds, naming what each asks for and what
            the cluster has free.
    """
    _, pending = ray.wait(refs, num_returns=len(refs), timeout=timeout)
    if pending:
        raise UnschedulableError(
            f"{len(pending)} of {len(refs)} {what} did not start within {timeout:g} s: each "
            f"asks for {cpus} CPU(s) and {gpus:g} GPU(s); the cluster has "
            f"{_resources_text(ray.available_resources())} free of "
            f"{_resources_text(ray.cluster_resources())}. Free resources, lower --n-envs or "
            "--threads, or add nodes."
        )


def import_ray() -> ModuleType:
    """Import Ray, or say how to install it.

    Returns:
        The ``ray`` module.

    Raises:
        RayMissingError: when Ray is not installed; its message is :data:`RAY_MISSING`.
    """
    try:
        import ray
    except ImportError as err:
        raise RayMissingError(RAY_MISSING) from err
    return ray


def runtime_env() -> dict[str, Any]:
    """The job's runtime environment: this process's ``lrenv`` and ``agents`` packages,
    uploaded to every worker so that all nodes run the driver's code."""
    import agents
    import lrenv

    return {"py_modules": [lrenv, agents]}


@contextlib.contextmanager
def connect(address: str, num_cpus: int | None = None) -> Iterator[ModuleType]:
    """Be connected to a Ray cluster for the duration of the ``with`` block.

    A Ray already initialised in this process (a test session, a notebook) is used as it
    is and left running; otherwise the connection made here is shut down at exit.

    Args:
        address: ``"local"`` (start a local instance), ``"auto"`` (join the cluster of
            this machine) or ``"ray://HOST:PORT"`` (join through Ray Client).
        num_cpus: cores a local instance may use (default: all of them); ignored when
            joining a cluster, whose nodes declare their own.

    Yields:
        The ``ray`` module.

    Raises:
        RayMissingError: when Ray is not installed.
        ValueError: for an address that is none of the above.
    """
    if address != "local" and address != "auto" and not address.startswith("ray://"):
        raise ValueError(
            f"--ray {address!r}: give 'local' (start Ray here), 'auto' (join the cluster "
            "this machine is part of) or 'ray://HOST:10001' (join one through Ray Client)"
        )
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {"runtime_env": runtime_env(), "log_to_driver": True}
    if address == "local":
        ray.init(num_cpus=num_cpus, include_dashboard=False, **options)
    else:
        ray.init(address=address, **options)
    try:
        yield ray
    finally:
        ray.shutdown()


def actor_options(cpus: int, gpus: float = 0.0) -> dict[str, Any]:
    """Resources and placement of one trainee (a Ray actor or task).

    Args:
        cpus: cores the trainee uses (its torch threads). Ray sets ``OMP_NUM_THREADS``
            from this; the trainee sets torch's thread count itself as well, because more
            threads than free cores slow training many times (two threads made a LeNet
            step 5.2x slower than one on a busy two-core machine: docs/benchmarks.md).
        gpus: GPUs the trainee uses (1 when its device is ``cuda``).

    Returns:
        Keywords for ``.options(...)``: ``num_cpus``, ``num_gpus`` and the ``"SPREAD"``
        scheduling strategy, which puts trainees on different nodes before it piles them
        on one (the head node included).
    """
    if cpus < 1:
        raise ValueError(f"a trainee needs at least one core, got {cpus}")
    return {"num_cpus": cpus, "num_gpus": gpus, "scheduling_strategy": "SPREAD"}


def trainee_gpus(env_kwargs: dict[str, Any]) -> float:
    """GPUs to ask for per trainee: 1 when the env keyword ``device`` names a CUDA device.

    ``"auto"`` asks for none: it resolves on the node the trainee lands on, which is a
    GPU node only by chance; write ``"device": "cuda"`` to ask for one.
    """
    return 1.0 if str(env_kwargs.get("device", "cpu")).startswith("cuda") else 0.0
