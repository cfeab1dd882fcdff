"""Policies that never look at the trainee: what a controller's feedback is measured against.

- :class:`ReplayPolicy`: a fixed sequence of actions indexed by training progress, e.g. a
  controller's mean action at each stage of training over the training split, replayed
  open loop (``profile=[0.0]`` is action 0 throughout: the env's own default behaviour).
  A stage's action is a number (the rate's entry) or, for an env whose action has more
  entries (``beta_factor``), a list of them; a number stands for ``[number, 0, ...]``;
- :class:`RandomPolicy`: uniform random actions from a seeded generator.

Both have the ``predict(obs, state, episode_start, deterministic)`` interface of a
stable-baselines3 model, so :func:`agents.episodes.run_episode` runs them like any other.
A job describes them as data (:func:`open_loop_policy`), so that worker processes build
their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

REPLAY_BINS = 20
"""Stages of training a replayed profile distinguishes (bins of equal progress)."""


class ReplayPolicy:
    """Actions that depend only on the progress of the episode.

    Args:
        profile: the action for each of ``len(profile)`` equal stages of training: numbers,
            or lists of ``action_size`` numbers.
        decisions: decisions in an episode of the task it runs on.
        action_size: entries of the env's action; the entries a stage does not give are 0.
    """

    is_recurrent = False

    def __init__(
        self, profile: Sequence[float | Sequence[float]], decisions: int, action_size: int = 1
    ) -> None:
        if not profile:
            raise ValueError("a replay profile needs at least one action")
        stages = np.asarray(profile, dtype=np.float32).reshape(len(profile), -1)
        if stages.shape[1] > action_size:
            raise ValueError(
                f"a replay profile of {stages.shape[1]} action entries for an env whose "
                f"action has {action_size}"
            )
        padded = np.zeros((len(profile), action_size), dtype=np.float32)
        padded[:, : stages.shape[1]] = stages
        self.profile = np.clip(padded, -1.0, 1.0)
        self.decisions = int(decisions)

    def action_at(self, decision: int) -> np.ndarray:
        """The action of decision ``decision`` (0-based), of shape ``(action_size,)``."""
        stage = min(len(self.profile) - 1, decision * len(self.profile) // self.decisions)
        return self.profile[stage].copy()

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """The action of the next decision; ``state`` counts decisions."""
        decision = (
            0 if state is None or (episode_start is not None and episode_start.any()) else state
        )
        return self.action_at(decision), decision + 1


class RandomPolicy:
    """Uniform random actions in [-1, 1], from a generator seeded per episode.

    Args:
        seed: mixed with the episode's seed (see :meth:`start`).
        action_size: entries of the env's action.
    """

    is_recurrent = False

    def __init__(self, seed: int = 0, action_size: int = 1) -> None:
        self.seed = int(seed)
        self.action_size = int(action_size)
        self._rng = np.random.default_rng(self.seed)

    def start(self, episode_seed: int) -> None:
        """A fresh generator for the episode with this reset seed."""
        self._rng = np.random.default_rng([self.seed, int(episode_seed)])

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """A random action (``deterministic`` does not change it: it is the policy)."""
        return self._rng.uniform(-1.0, 1.0, size=(self.action_size,)).astype(np.float32), state


def open_loop_policy(
    spec: Mapping[str, Any], decisions: int, episode_seed: int, action_size: int = 1
) -> Any:
    """The policy a job's ``policy`` description asks for.

    Args:
        spec: ``{"kind": "replay", "profile": [...]}`` or ``{"kind": "random", "seed": s}``.
        decisions: decisions per episode of the job's task.
        episode_seed: the job's reset seed.
        action_size: entries of the task's action.

    Raises:
        ValueError: for an unknown kind.
    """
    if spec.get("kind") == "replay":
        return ReplayPolicy(spec["profile"], decisions, action_size)
    if spec.get("kind") == "random":
        policy = RandomPolicy(spec.get("seed", 0), action_size)
        policy.start(episode_seed)
        return policy
    raise ValueError(f"unknown open-loop policy {spec!r}; kinds: replay, random")


def actions_from_trace(
    lrs: Sequence[float],
    lr_steps: Sequence[int],
    start_lr: float,
    kwargs: Mapping[str, Any],
    betas: Sequence[float] = (),
) -> list[float] | list[list[float]]:
    """The actions that produced a run's rates, recovered from its trace.

    Args:
        lrs: the rate of each decision (an episode trace's ``lr``).
        lr_steps: the SGD step each decision's rate began at.
        start_lr: the rate in effect at reset.
        kwargs: the env's resolved keywords (``action_mode``, ``factor_base``,
            ``lr_bounds``, ``base_schedule``, ``total_steps``, ``beta_factor``).
        betas: schedule-free SGD's beta of each decision (the trace's ``beta``), for an env
            with ``beta_factor``.

    Returns:
        One action per decision, clipped to [-1, 1]: a number, or with ``beta_factor`` the
        pair ``[rate entry, beta entry]``; rates held at a bound give the action that
        reaches it.
    """
    from lrenv.schedule_families import schedule_from_dict

    mode, base = kwargs["action_mode"], float(kwargs["factor_base"])
    low, high = (float(b) for b in kwargs["lr_bounds"])
    actions = []
    previous = start_lr
    for lr, step in zip(lrs, lr_steps, strict=True):
        if mode == "absolute":
            action = 2.0 * np.log(lr / low) / np.log(high / low) - 1.0
        elif mode == "residual":
            schedule = schedule_from_dict(kwargs["base_schedule"])
            reference = schedule.lr_at(step, kwargs["total_steps"])
            action = np.log(lr / reference) / np.log(base) if reference > 0 else 0.0
        else:
            action = np.log(lr / previous) / np.log(base)
        actions.append(float(np.clip(action, -1.0, 1.0)))
        previous = lr
    beta_factor = kwargs.get("beta_factor")
    if beta_factor is None:
        return actions
    from lrenv.env import beta_action

    if len(betas) != len(actions):
        raise ValueError(f"{len(betas)} betas for {len(actions)} decisions")
    return [[a, beta_action(b, beta_factor)] for a, b in zip(actions, betas, strict=True)]


def progress_profile(
    runs: Sequence[Sequence[float] | Sequence[Sequence[float]]], bins: int = REPLAY_BINS
) -> list[float] | list[list[float]]:
    """The mean action in each of ``bins`` equal stages of training over ``runs`` (each
    one episode's actions, of any length; numbers, or lists of entries); a stage no
    decision fell in takes the previous stage's mean (0 before any)."""
    first = next((actions[0] for actions in runs if len(actions)), 0.0)
    size = len(first) if isinstance(first, Sequence) else None
    sums, counts = np.zeros((bins, size or 1)), np.zeros(bins)
    for actions in runs:
        n = len(actions)
        for k, action in enumerate(actions):
            stage = min(bins - 1, k * bins // n)
            sums[stage] += action
            counts[stage] += 1
    profile, last = [], np.zeros(size or 1)
    for total, count in zip(sums, counts, strict=True):
        last = total / count if count else last
        profile.append([float(v) for v in last] if size else float(last[0]))
    return profile
