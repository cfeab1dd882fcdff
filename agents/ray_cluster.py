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
