"""Many trainees as one batched computation, behind stable-baselines3's and Gymnasium's
vector-env interfaces (issue 5, item 2).

N environments of one configuration keep their own episode logic (the
:class:`~lrenv.env.LRScheduleEnv` code, unchanged: seeds, initial rates, actions,
features, rewards, divergence, info), while their trainees live as the N slots of one
:class:`~lrenv.batched_trainee.BatchedTrainee` and train together: the SGD steps of all N, and
their validation passes, are single batched computations (``torch.vmap`` over
``torch.func.functional_call``). Each env equals a single ``LRScheduleEnv`` made with the
same keywords and seed, within float tolerance (``tests/test_vector.py``).

- :class:`BatchedEnvs` is the core: N envs and their batched trainee;
  :meth:`BatchedEnvs.step` advances any subset of them at once.
- :class:`BatchedVecEnv` is a stable-baselines3 ``DummyVecEnv`` whose step trains all N at
  once; everything else (auto-reset with ``terminal_observation``, seeding, ``env_method``,
  ``get_attr``) is DummyVecEnv's own code.
- :class:`BatchedVectorEnv` is a Gymnasium ``SyncVectorEnv`` likewise (every autoreset mode).
- :func:`make_batched_vec_env` and :func:`make_batched_vector_env` build them from an id.
- :func:`trainee_device` says where a task's trainees would live; ``train.py`` and
  ``evaluate.py`` batch by default when that is a GPU.

How the adapters stay thin: before the parent's step loop runs, the core computes every
env's step result at once and hands each env its own; the env's ``step`` then returns that
result instead of training alone. So the parents' auto-reset logic is reused verbatim.

>>> import lrenv.vector
>>> venv = lrenv.vector.make_batched_vec_env("lrenv/Synthetic-v0", n=4, seed=0)
>>> venv.reset().shape
(4, 7)
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.vector.utils import iterate
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor

from lrenv.batched_trainee import BatchedTrainee, TraineeSlot
from lrenv.env import LRScheduleEnv, check_action, env_defaults
from lrenv.trainee import resolve_device

StepResult = tuple[np.ndarray, float, bool, bool, dict[str, Any]]


class BatchSlotEnv(LRScheduleEnv):
    """An :class:`LRScheduleEnv` whose trainee is one slot of a :class:`BatchedTrainee`.

    Its ``step`` returns the result that :meth:`BatchedEnvs.prepare` computed for it, if
    there is one; otherwise it steps alone (training only its own slot).
    """

    _prepared: StepResult | None = None

    def step(self, action: np.ndarray) -> StepResult:
        """The prepared result of a batched step, or one step of this env alone."""
        if self._prepared is not None:
            result, self._prepared = self._prepared, None
            return result
        return super().step(action)


def resolve_env_kwargs(env_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keywords ``gym.make(env_id, **env_kwargs)`` would pass to ``LRScheduleEnv``.

    Raises:
        ValueError: if ``env_id`` is not made by :class:`~lrenv.env.LRScheduleEnv`.
    """
    if ":" in env_id:  # "module:id", as gym.make accepts: import the module, which registers
        module, env_id = env_id.split(":", 1)
        importlib.import_module(module)
    spec = gym.spec(env_id)
    entry = spec.entry_point
    if isinstance(entry, str):
        module, name = entry.split(":")
        entry = getattr(importlib.import_module(module), name)
    if not (isinstance(entry, type) and issubclass(entry, LRScheduleEnv)):
        raise ValueError(f"{env_id} is not an lrenv LRScheduleEnv id; batched envs need one")
    return {**spec.kwargs, **env_kwargs}


def trainee_device(env_id: str, env_kwargs: Mapping[str, Any]) -> torch.device:
    """The device the trainees of ``gym.make(env_id, **env_kwargs)`` would train on.

    Args:
        env_id: a registered lrenv id.
        env_kwargs: keywords over the id's registered ones (``"device"`` among them, or not).

    Returns:
        The resolved device (``"auto"`` is CUDA when available).

    Raises:
        ValueError: if ``env_id`` is not an lrenv id, or asks for CUDA where there is none.
    """
    kwargs = resolve_env_kwargs(env_id, dict(env_kwargs))
    return resolve_device(kwargs.get("device", env_defaults()["device"]))


class BatchedEnvs:
    """N ``LRScheduleEnv`` of one configuration whose trainees train as one computation.

    Args:
        n: number of environments (trainees).
        env_id: a registered lrenv id whose keywords are the defaults (``None``: the
            general ``LRScheduleEnv`` defaults).
        strategy: how the trainees compute, ``"auto"``, ``"vmap"`` or ``"loop"`` (see
            :class:`~lrenv.batched_trainee.BatchedTrainee`).
        **env_kwargs: keywords of :class:`~lrenv.env.LRScheduleEnv`, as for ``gym.make``.
            Every env gets the same ones.

    Attributes:
        envs: the N environments (:class:`BatchSlotEnv`), usable one by one as well.
        trainee: the :class:`~lrenv.batched_trainee.BatchedTrainee` behind them.
    """

    def __init__(
        self, n: int, env_id: str | None = None, strategy: str = "auto", **env_kwargs: Any
    ) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        kwargs = resolve_env_kwargs(env_id, env_kwargs) if env_id else dict(env_kwargs)
        # each env validates the keywords and shares the process's one copy of the data
        self.envs = [BatchSlotEnv(**kwargs) for _ in range(n)]
        single = self.envs[0].trainee
        if single.optimizer_name != "sgd":
            raise ValueError(
                f"batched trainees train with plain SGD only, not optimizer="
                f"{single.optimizer_name!r}: train these envs unbatched (train.py without "
                "--batched; evaluate.py --batched false)"
            )
        self.trainee = BatchedTrainee(
            single.dataset,
            single.model_name,
            single.batch_size,
            n,
            momentum=single.momentum,
            val_size=len(single.val_data),
            device=single.device,
            strategy=strategy,
            precision=single.precision,
        )
        for i, env in enumerate(self.envs):
            env.trainee = TraineeSlot(self.trainee, i)
        self.steps_per_action = self.envs[0].steps_per_action

    @property
    def num_envs(self) -> int:
        """The number of environments."""
        return len(self.envs)

    def step(
        self, actions: Sequence[Any], indices: Sequence[int] | None = None
    ) -> list[StepResult]:
        """Step the envs in ``indices`` (default all) with ``actions``, training them at once.

        All actions are checked before any env changes: a bad one raises ``ValueError``
        and leaves every env as it was; so does an env whose episode has ended
        (``RuntimeError``).

        Returns:
            One ``(obs, reward, terminated, truncated, info)`` per env in ``indices``, each
            what that env's own ``step`` would have returned.
        """
        indices = list(range(self.num_envs)) if indices is None else list(indices)
        if len(actions) != len(indices):
            raise ValueError(f"expected {len(indices)} actions, got {len(actions)}")
        for action in actions:
            check_action(action)
        for i in indices:  # a finished episode refuses before any env changes
            self.envs[i].check_can_step()
        for i, action in zip(indices, actions, strict=True):
            self.envs[i].begin_step(action)
        losses = self.trainee.train_steps(self.steps_per_action, indices)
        finite = self.trainee.is_finite(indices)
        healthy = [
            i
            for i, loss, ok in zip(indices, losses, finite, strict=True)
            if ok and math.isfinite(loss)
        ]
        evaluations = dict(zip(healthy, self.trainee.evaluate(None, healthy), strict=True))
        return [
            self.envs[i].finish_step(loss, evaluations.get(i))
            for i, loss in zip(indices, losses, strict=True)
        ]

    def prepare(self, actions: Sequence[Any], indices: Sequence[int] | None = None) -> None:
        """Compute the steps of the envs in ``indices`` at once; each env's next ``step``
        call returns its result. Results not yet collected are dropped first."""
        for env in self.envs:
            env._prepared = None
        indices = list(range(self.num_envs)) if indices is None else list(indices)
        if not indices:
            return
        for i, result in zip(indices, self.step(actions, indices), strict=True):
            self.envs[i]._prepared = result

    def close(self) -> None:
        """Close every env."""
        for env in self.envs:
            env.close()


class BatchedVecEnv(DummyVecEnv):
    """A stable-baselines3 VecEnv of :class:`BatchedEnvs`: one batched computation per step.

    Behaves as ``DummyVecEnv`` over the same envs (auto-reset on done, with
    ``info["terminal_observation"]`` and ``info["TimeLimit.truncated"]``; ``seed``,
    ``env_method``, ``get_attr``), only faster.
    """

    def __init__(self, batch: BatchedEnvs) -> None:
        self.batch = batch
        super().__init__([lambda env=env: env for env in batch.envs])

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Train all envs at once, then let DummyVecEnv collect the results and auto-reset."""
        self.batch.prepare(list(self.actions))
        return super().step_wait()


class BatchedVectorEnv(SyncVectorEnv):
    """A Gymnasium vector env of :class:`BatchedEnvs`: one batched computation per step.

    Behaves as ``SyncVectorEnv`` over the same envs, in each ``autoreset_mode`` (by default
    ``NEXT_STEP``: an env that finished is reset by the following ``step`` call, which does
    not train it).
    """

    def __init__(
        self,
        batch: BatchedEnvs,
        copy: bool = True,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    ) -> None:
        self.batch = batch
        super().__init__(
            [lambda env=env: env for env in batch.envs], copy=copy, autoreset_mode=autoreset_mode
        )

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Train the envs that step this call at once, then run SyncVectorEnv's step."""
        actions_list = list(iterate(self.action_space, actions))
        stepping = list(range(self.num_envs))
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            stepping = [i for i in stepping if not self._autoreset_envs[i]]
        self.batch.prepare([actions_list[i] for i in stepping], stepping)
        return super().step(actions)

    def close_extras(self, **kwargs: Any) -> None:
        """Close the envs."""
        self.batch.close()


def make_batched_vec_env(
    env_id: str,
    n: int,
    seed: int | None = None,
    monitor: bool = True,
    strategy: str = "auto",
    **env_kwargs: Any,
) -> VecEnv:
    """A stable-baselines3 VecEnv of ``n`` batched envs; a drop-in for ``make_vec_env``.

    Seeds like ``make_vec_env(env_id, n, seed)``: env ``i`` is reset with ``seed + i`` and
    its action space seeded with ``seed + i``, so each env follows the same trajectory as
    in ``make_vec_env`` (within float tolerance).

    Args:
        env_id: a registered lrenv id (``"lrenv/FashionMNIST-CNN-v0"``, ...).
        n: number of envs (trainees trained together).
        seed: the first env's seed, or ``None``.
        monitor: wrap in ``VecMonitor``, which records episode returns and lengths in
            ``info["episode"]`` as ``make_vec_env``'s per-env ``Monitor`` does.
        strategy: ``"auto"``, ``"vmap"`` or ``"loop"``
            (:class:`~lrenv.batched_trainee.BatchedTrainee`).
        **env_kwargs: keywords for every env, as for ``gym.make``.
    """
    vec: VecEnv = BatchedVecEnv(BatchedEnvs(n, env_id, strategy, **env_kwargs))
    if seed is not None:
        for i, env in enumerate(vec.envs):
            env.action_space.seed(seed + i)
    vec.seed(seed)
    return VecMonitor(vec) if monitor else vec


def make_batched_vector_env(
    env_id: str,
    n: int,
    autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    strategy: str = "auto",
    **env_kwargs: Any,
) -> BatchedVectorEnv:
    """A Gymnasium vector env of ``n`` batched envs; ``reset(seed=s)`` seeds env i with s + i."""
    batch = BatchedEnvs(n, env_id, strategy, **env_kwargs)
    return BatchedVectorEnv(batch, autoreset_mode=autoreset_mode)
