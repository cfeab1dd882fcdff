"""Many trainees as one batched computation, behind Gymnasium's vector-env interface.

N environments of one configuration keep their own episode logic (the
:class:`~lrenv.env.LRScheduleEnv` code, unchanged: seeds, initial rates, actions,
features, rewards, divergence, info), while their trainees live as the N slots of one
:class:`~lrenv.batched_trainee.BatchedTrainee` and train together: the SGD steps of all N, and
their validation passes, are single batched computations (``torch.vmap`` over
``torch.func.functional_call``). Each env equals a single ``LRScheduleEnv`` made with the
same keywords and seed, within float tolerance (``tests/test_vector.py``).

- :class:`BatchedEnvs` is the core: N envs and their batched trainee;
  :meth:`BatchedEnvs.step` advances any subset of them at once.
- :class:`BatchedVectorEnv` is a Gymnasium ``SyncVectorEnv`` whose step trains all N at
  once; everything else (every autoreset mode, seeding) is SyncVectorEnv's own code.
- :func:`make_batched_vector_env` builds one from an id; :func:`make_vector_env` is every
  lrenv id's registered ``vector_entry_point``, so ``gym.make_vec(id, num_envs=N)`` gives
  batched trainees.
- The stable-baselines3 adapter over the same core is :mod:`agents.vec_env` (this package
  imports no RL library).
- :func:`trainee_device` says where a task's trainees would live; ``train.py`` and
  ``evaluate.py`` batch by default when that is a GPU.

How the adapters stay thin: before the parent's step loop runs, the core computes every
env's step result at once and hands each env its own; the env's ``step`` then returns that
result instead of training alone. So the parents' auto-reset logic is reused verbatim.

>>> import gymnasium as gym
>>> import lrenv
>>> envs = gym.make_vec("lrenv/Synthetic-v0", num_envs=4, vectorization_mode="vector_entry_point")
>>> envs.reset(seed=0)[0].shape
(4, 7)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.vector.utils import iterate

from lrenv.batched_trainee import BatchedTrainee, TraineeSlot
from lrenv.checks import check_integer
from lrenv.env import LRScheduleEnv
from lrenv.env_config import check_action
from lrenv.keywords import is_task_set_id, resolve_env_kwargs, task_set_kwargs
from lrenv.threads import torch_threads
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


def max_episode_steps(env_id: str, env_kwargs: Mapping[str, Any]) -> int | None:
    """The decisions per episode of ``gym.make(env_id, **env_kwargs)`` (``None`` for a task
    set, whose tasks differ in length: the env ends each episode itself).

    A named id's spec holds its own task's count; pass this to ``gym.make`` as
    ``max_episode_steps`` when the keywords change ``total_steps`` or
    ``steps_per_action``, so that gym.make's ``TimeLimit`` ends the episode where the env
    does (and the spec tells the truth).
    """
    if is_task_set_id(env_id):
        return None
    kwargs = resolve_env_kwargs(env_id, env_kwargs)
    return kwargs["total_steps"] // kwargs["steps_per_action"]


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
    if is_task_set_id(env_id):
        return resolve_device(task_set_kwargs(env_id, env_kwargs).get("device", "auto"))
    return resolve_device(resolve_env_kwargs(env_id, env_kwargs)["device"])


class BatchedEnvs:
    """``num_envs`` ``LRScheduleEnv`` of one configuration whose trainees train as one computation.

    Args:
        num_envs: number of environments (trainees); lrenv says ``num_envs`` as
            Gymnasium does (agents, on the stable-baselines3 side, says ``n_envs``).
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
        self, num_envs: int, env_id: str | None = None, strategy: str = "auto", **env_kwargs: Any
    ) -> None:
        check_integer(num_envs, "num_envs")
        kwargs = resolve_env_kwargs(env_id, env_kwargs) if env_id else dict(env_kwargs)
        # each env validates the keywords and shares the process's one copy of the data
        self.envs = [BatchSlotEnv(**kwargs) for _ in range(num_envs)]
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
            num_envs,
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
        with torch_threads(self.envs[0].torch_threads):
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
        # Which envs ended at the last step: under NEXT_STEP, SyncVectorEnv resets them in
        # the next step instead of stepping them. Kept here from what step() and reset()
        # return (the documented autoreset rule), not read from SyncVectorEnv's internals.
        self._ended = np.zeros(self.num_envs, dtype=np.bool_)

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """SyncVectorEnv's reset; the envs it resets (all, or ``options["reset_mask"]``)
        step normally at the next step."""
        mask = None if options is None else options.get("reset_mask")  # before: reset pops it
        result = super().reset(seed=seed, options=options)
        if mask is None:
            self._ended[:] = False
        else:
            self._ended[np.asarray(mask, dtype=np.bool_)] = False
        return result

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Train the envs that step this call at once, then run SyncVectorEnv's step."""
        actions_list = list(iterate(self.action_space, actions))
        stepping = list(range(self.num_envs))
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            stepping = [i for i in stepping if not self._ended[i]]
        self.batch.prepare([actions_list[i] for i in stepping], stepping)
        result = super().step(actions)
        self._ended = np.logical_or(result[2], result[3])
        return result

    def close_extras(self, **kwargs: Any) -> None:
        """Close the envs."""
        self.batch.close()


def make_batched_vector_env(
    env_id: str,
    num_envs: int,
    autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    strategy: str = "auto",
    **env_kwargs: Any,
) -> BatchedVectorEnv:
    """A Gymnasium vector env of ``num_envs`` batched envs; ``reset(seed=s)`` seeds env i with
    s + i."""
    batch = BatchedEnvs(num_envs, env_id, strategy, **env_kwargs)
    return BatchedVectorEnv(batch, autoreset_mode=autoreset_mode)


def make_vector_env(
    num_envs: int,
    *,
    max_episode_steps: int | None = None,
    autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    strategy: str = "auto",
    **env_kwargs: Any,
) -> BatchedVectorEnv:
    """Every lrenv id's ``vector_entry_point``: what ``gym.make_vec(id, num_envs=N)`` builds.

    ``gym.make_vec`` passes the id's registered keywords merged with the user's, and the
    spec's ``max_episode_steps``. The batched envs end their episodes themselves after
    ``total_steps / steps_per_action`` decisions, so a different ``max_episode_steps`` is
    refused rather than silently ignored.

    Args:
        num_envs: trainees trained together.
        max_episode_steps: the decisions per episode the spec promises (``None``: none).
        autoreset_mode: as for ``SyncVectorEnv``.
        strategy: ``"auto"``, ``"vmap"`` or ``"loop"``
            (:class:`~lrenv.batched_trainee.BatchedTrainee`).
        **env_kwargs: keywords of :class:`~lrenv.env.LRScheduleEnv`, the same for every env.

    Raises:
        ValueError: when ``max_episode_steps`` disagrees with the keywords' episode length.
    """
    batch = BatchedEnvs(num_envs, None, strategy, **env_kwargs)
    decisions = batch.envs[0].total_steps // batch.steps_per_action
    if max_episode_steps is not None and max_episode_steps != decisions:
        batch.close()
        raise ValueError(
            f"max_episode_steps={max_episode_steps} but these keywords make episodes of "
            f"{decisions} decisions (total_steps / steps_per_action): a named id's spec "
            "holds its own task's length, so when you change total_steps or steps_per_action "
            f"pass max_episode_steps={decisions} as well, or use lrenv/LRSchedule-v0"
        )
    return BatchedVectorEnv(batch, autoreset_mode=autoreset_mode)
