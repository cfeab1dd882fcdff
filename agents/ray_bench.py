"""What Ray costs and gives: trainees as Ray actors against SubprocVecEnv.

    python -m agents.ray_bench                      # both parts, on a local Ray instance
    python -m agents.ray_bench --parts overhead --steps 200
    python -m agents.ray_bench --parts throughput --task lrenv/FashionMNIST-MLP-v0

Parts (``--parts``, default both), printed as markdown tables:

- ``overhead``: the time of one env step with the env in this process (``DummyVecEnv``),
  in a worker process (``SubprocVecEnv``) and in a Ray actor (:class:`RayVecEnv`), one env
  each, the same env and actions. The three run round-robin, block after block, and the
  medians are compared, so that load from other processes hits all of them alike; a
  round trip's overhead is a step's time minus the in-process one. Two workloads: the
  synthetic task as it is, and a light step (one SGD step, a small validation set) where
  the round trip weighs most.
- ``throughput``: trainee episodes per hour on ``--task`` with 1 and 2 Ray actors and
  with 2 worker processes, each env running ``--episodes`` whole episodes (action 0).
  PPO's updates are not counted: they take milliseconds against an episode's seconds.

The machine's load average is printed beside the figures: other work may share it.
Lives with the agents because lrenv must not import Ray.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from agents.env_factory import make_env
from agents.ray_cluster import connect

LIGHT = {"steps_per_action": 1, "total_steps": 200, "val_size": 64}
"""The light workload of the overhead part: one SGD step and 64 validation images."""


def _load() -> str:
    return "load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _vec_env(kind: str, env_id: str, env_kwargs: dict[str, Any], n_envs: int) -> VecEnv:
    """``n_envs`` envs, one torch thread each: ``"here"``, ``"subproc"`` or ``"ray"``."""
    if kind == "ray":
        from agents.ray_vec import RayVecEnv

        return RayVecEnv(env_id, env_kwargs, n_envs, torch_threads=1)
    factory = functools.partial(make_env, env_id, env_kwargs, 1)
    if kind == "subproc":
        return SubprocVecEnv([factory] * n_envs)
    return DummyVecEnv([factory] * n_envs)


def step_times(
    envs: dict[str, VecEnv], steps: int, block: int = 10, seed: int = 0
) -> dict[str, list[float]]:
    """Seconds per step of each env, measured round-robin in blocks of ``block`` steps.

    Args:
        envs: name -> a one-env VecEnv; all are stepped with the same actions.
        steps: steps measured per env.
        block: steps per turn.
        seed: seed of the envs and the actions.

    Returns:
        name -> the per-step time of each block.
    """
    actions = np.random.default_rng(seed).uniform(-0.2, 0.2, (steps, 1, 1)).astype(np.float32)
    for venv in envs.values():
        venv.seed(seed)
        venv.reset()
        venv.step(actions[0])  # warm: first-step allocations are not a round trip
    times: dict[str, list[float]] = {name: [] for name in envs}
    for start in range(0, steps, block):
        for name, venv in envs.items():
            began = time.perf_counter()
            for action in actions[start : start + block]:
                venv.step(action)
            times[name].append((time.perf_counter() - began) / len(actions[start : start + block]))
    return times


def overhead(env_id: str, steps: int) -> None:
    """Print the overhead table (see the module docstring)."""
    print(f"\n## Round trip per env step ({env_id}, {steps} steps each, one env)\n")
    print(f"{_load()}\n")
    print(
        "| workload | in process | SubprocVecEnv | Ray actor "
        "| overhead: Subproc | Ray | Ray / Subproc |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, kwargs in (("as registered", {}), ("light", LIGHT)):
        envs = {kind: _vec_env(kind, env_id, kwargs, 1) for kind in ("here", "subproc", "ray")}
        try:
            median = {k: statistics.median(v) for k, v in step_times(envs, steps).items()}
        finally:
            for venv in envs.values():
                venv.close()
        sub, ray_ = median["subproc"] - median["here"], median["ray"] - median["here"]
        ms = {k: f"{v * 1e3:.2f} ms" for k, v in median.items()}
        print(
            f"| {label} | {ms['here']} | {ms['subproc']} | {ms['ray']} | {sub * 1e3:.2f} ms "
            f"| {ray_ * 1e3:.2f} ms | {f'{ray_ / sub:.1f}x' if sub > 0 else 'n/a: below noise'} |"
        )
    print(f"\n{_load()}")


def episodes_per_hour(venv: VecEnv, episodes: int, seed: int = 0) -> float:
    """Trainee episodes per hour of ``venv``, each env running ``episodes`` episodes."""
    venv.seed(seed)
    began = time.perf_counter()
    venv.reset()
    finished = np.zeros(venv.num_envs, dtype=int)
    action = np.zeros((venv.num_envs, 1), dtype=np.float32)
    while finished.min() < episodes:
        _, _, dones, _ = venv.step(action)
        finished += dones
    return float(finished.sum()) / (time.perf_counter() - began) * 3600


def throughput(task: str, episodes: int, configs: Sequence[tuple[str, int]]) -> None:
    """Print the episodes-per-hour table (see the module docstring)."""
    print(f"\n## Episodes per hour ({task}, {episodes} episodes per env)\n")
    print(f"{_load()}\n")
    print("| trainees | how | episodes / hour | per episode |")
    print("|---|---|---|---|")
    for kind, n in configs:
        venv = _vec_env(kind, task, {}, n)
        try:
            rate = episodes_per_hour(venv, episodes)
        finally:
            venv.close()
        how = {"ray": "Ray actors", "subproc": "SubprocVecEnv", "here": "this process"}[kind]
        print(f"| {n} | {how} | {rate:.0f} | {3600 / rate * n:.1f} s per env |")
    print(f"\n{_load()}")


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the flags, start a local Ray instance (or join ``--ray``) and run the parts."""
    parser = argparse.ArgumentParser(
        prog="python -m agents.ray_bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--parts", default="overhead,throughput", help="comma-separated parts")
    parser.add_argument("--env-id", default="lrenv/Synthetic-v0", help="overhead part's env")
    parser.add_argument("--steps", type=int, default=300, help="steps per env (overhead)")
    parser.add_argument("--task", default="lrenv/FashionMNIST-MLP-v0", help="throughput task")
    parser.add_argument("--episodes", type=int, default=2, help="episodes per env (throughput)")
    parser.add_argument("--ray", default="local", help="local, auto or ray://HOST:10001")
    args = parser.parse_args(argv)
    parts: dict[str, Callable[[], None]] = {
        "overhead": lambda: overhead(args.env_id, args.steps),
        "throughput": lambda: throughput(
            args.task, args.episodes, [("ray", 1), ("ray", 2), ("subproc", 2)]
        ),
    }
    wanted = [p for p in args.parts.split(",") if p]
    unknown = set(wanted) - set(parts)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(parts)}")
    torch.set_num_threads(1)
    with connect(args.ray):
        print(f"# Ray against SubprocVecEnv ({os.cpu_count()} cores here)")
        for part in wanted:
            parts[part]()


if __name__ == "__main__":
    main()
