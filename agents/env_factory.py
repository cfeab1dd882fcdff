"""One training env, and the worker processes that hold them (``SubprocVecEnv``).

:func:`make_env` is the env every training process steps: in the caller's process, in a
``SubprocVecEnv`` worker (:func:`worker_env`, which leaves Ctrl-C and SIGTERM to the main
process and dies with it), or in a Ray actor (:class:`agents.ray_vec.EnvWorker`).
:func:`close_envs` closes the workers without leaving one computing.
:func:`agents.training_envs.training_envs` chooses among them.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import time
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import torch as th
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import SubprocVecEnv, VecEnv

from agents.lifeline import die_with_parent
from lrenv.vector import max_episode_steps


def make_env(
    env_id: str, env_kwargs: Mapping[str, Any], torch_threads: int | None = None
) -> gym.Env:
    """One training env: ``gym.make`` wrapped in SB3's ``Monitor`` (episode returns).

    Importable by reference, so ``SubprocVecEnv`` workers can build it; the id gets the
    ``"lrenv:"`` prefix (unless it has a module already) so each worker imports lrenv.

    Args:
        env_id: a registered id, e.g. ``"lrenv/Synthetic-v0"``.
        env_kwargs: keywords for ``gym.make``.
        torch_threads: set torch's intra-op threads in this process first (None: leave).

    Returns:
        The wrapped env.
    """
    if torch_threads is not None:
        th.set_num_threads(torch_threads)
    env_id = env_id if ":" in env_id else f"lrenv:{env_id}"
    # torch_threads=None: a worker's env computes with the count set just above; an env
    # in the caller's process gets train.py's --threads in env_kwargs (training_envs)
    kwargs = {"torch_threads": None, **env_kwargs}
    # the spec's episode length is its own task's: say this one's, so that gym.make's
    # TimeLimit ends the episode where the env does when total_steps is overridden
    return Monitor(gym.make(env_id, max_episode_steps=max_episode_steps(env_id, kwargs), **kwargs))


def subproc_vec_env(factory: functools.partial, n_envs: int) -> SubprocVecEnv:
    """``SubprocVecEnv([factory] * n_envs)``, reporting why a worker failed.

    A worker whose env cannot be made dies, and the parent sees only a closed connection
    (``ConnectionResetError`` or ``EOFError``). Then the env is made here, in this process,
    to raise the worker's own error (an unregistered id, a missing dataset, a bad keyword).
    """
    try:
        return SubprocVecEnv([factory] * n_envs)
    except (ConnectionError, EOFError) as err:
        # raises the error the worker met, with its traceback (make_env, not the worker's
        # factory, which would make this process ignore Ctrl-C; and without the worker's
        # thread count, which would set this process's)
        make_env(*factory.args[:2]).close()
        raise RuntimeError(
            f"a SubprocVecEnv worker died while making {factory.args[0]!r}, though the env "
            "can be made in this process; see the worker's output above"
        ) from err


def worker_env(
    env_id: str,
    env_kwargs: Mapping[str, Any],
    torch_threads: int | None = None,
    main_pid: int | None = None,
) -> gym.Env:
    """:func:`make_env` in a ``SubprocVecEnv`` worker, which leaves Ctrl-C and SIGTERM to
    the main process: it saves, prints how to continue and closes the workers, which then
    exit quietly instead of each printing a traceback. The worker dies with the main
    process ``main_pid`` (:func:`agents.lifeline.die_with_parent`), however that dies.
    """
    die_with_parent(main_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return make_env(env_id, env_kwargs, torch_threads)


def close_envs(env: VecEnv, timeout: float = 60.0) -> None:
    """Close training envs, waiting for each worker process to finish what it was doing.

    ``SubprocVecEnv.close`` joins its workers, but a join returns at once when the
    multiprocessing forkserver is gone (a SIGTERM sent to the whole process group, as
    schedulers do, ends it too); the main process then exits while a worker still
    computes, and the worker dies on a broken pipe with a traceback. Here the end of each
    worker is read from its pipe instead (it closes its end when it exits), and any reply
    still on the way is read and dropped.

    Args:
        env: the training envs (``VecNormalize`` around them or not).
        timeout: seconds to wait for all workers before killing the ones left.
    """
    inner = env
    while not isinstance(inner, SubprocVecEnv) and hasattr(inner, "venv"):
        inner = inner.venv
    if not isinstance(inner, SubprocVecEnv) or inner.closed:
        env.close()
        return
    deadline = time.monotonic() + timeout
    for remote in inner.remotes:
        with contextlib.suppress(OSError):  # a worker already gone
            remote.send(("close", None))
    for remote in inner.remotes:
        with contextlib.suppress(EOFError, OSError):
            while remote.poll(max(0.0, deadline - time.monotonic())):
                remote.recv()  # a reply to a step or reset the main process left
            # poll timed out: fall through and kill the stragglers below
    for process in inner.processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
    for remote in inner.remotes:
        remote.close()
    inner.closed = True
