"""The paper's controller with stable-baselines3: PPO whose actor and critic learn at their
own Adam rates (Xu et al. 2019, "Learning an Adaptive Learning Rate Schedule", sec. 4).

The paper trains an actor (an MLP with one hidden layer of 32 units, or an LSTM of 32)
with Adam at 1e-3 and a separate critic (an MLP with one hidden layer of 32) at 5e-3.
stable-baselines3 keeps one optimizer per policy and, at every update, sets *every*
parameter group to the one ``learning_rate`` (``BaseAlgorithm._update_learning_rate``).
Here:

- :class:`TwoRatePolicy` and :class:`TwoRateRecurrentPolicy` build Adam with two parameter
  groups, ``"actor"`` and ``"critic"``; each group carries its own rate under the key
  ``"lrenv_lr"``, which the optimizer's state dict saves and restores with the model;
- :class:`TwoRatePPO` and :class:`TwoRateRecurrentPPO` set each group back to its own rate
  at every update (and log both as ``train/learning_rate_actor`` / ``_critic``).

A ``controller.zip`` saved from these classes loads with plain ``PPO.load`` /
``RecurrentPPO.load`` (in a Python where ``agents`` is importable, e.g. started at the
project root), the optimizer's two groups and their state included. To *continue
training* a loaded controller, load it with :class:`TwoRatePPO` /
:class:`TwoRateRecurrentPPO` instead: plain PPO would reset both groups to
``learning_rate`` at its first update.

The recurrent controller (``--recurrent``) follows the paper's "LSTM 32" actor and MLP
critic: the actor is an LSTM of ``hidden`` units feeding the Gaussian action head
directly (``net_arch["pi"] = []``); the critic has no LSTM (``enable_critic_lstm=False``,
``shared_lstm=False``): sb3-contrib maps the observation linearly to ``hidden`` units and
our ``net_arch["vf"] = [hidden]`` adds one tanh layer before the value head, which is an
MLP with one hidden layer of ``hidden`` units (two stacked linear maps are one linear map).
A critic LSTM would give the value function a memory the paper's critic does not have.

Rollouts hold whole episodes: ``n_steps * n_envs`` is a multiple of the episode length.
When the requested budget is not a whole number of rollouts, the last rollout is shortened
to what is left, so a run ends with exactly the episodes asked for.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

from agents.checkpoints import restore_normalization
from agents.lifeline import die_with_parent
from agents.presets import PPOSettings
from agents.vec_env import make_batched_vec_env
from lrenv.checks import check_integer
from lrenv.vector import max_episode_steps

# Parameters whose names start with one of these belong to the critic; all others (the
# actor's layers, the action head and log_std) to the actor. FlattenExtractor, the
# features extractor of a vector observation, has no parameters.
CRITIC_PREFIXES = (
    "mlp_extractor.value_net.",
    "value_net.",
    "critic.",
    "lstm_critic.",
    "vf_features_extractor.",
)
LR_KEY = "lrenv_lr"
"""Key of a parameter group's own learning rate in the optimizer's param groups."""


def two_rate_optimizer(
    policy: ActorCriticPolicy, actor_lr: float, critic_lr: float
) -> th.optim.Optimizer:
    """The policy's optimizer class (Adam) with an actor and a critic parameter group.

    Args:
        policy: the policy whose parameters are split by :data:`CRITIC_PREFIXES`.
        actor_lr: learning rate of the actor group.
        critic_lr: learning rate of the critic group.

    Returns:
        An optimizer with groups ``"actor"`` and ``"critic"`` (in that order), each with
        its rate as ``lr`` and as ``lrenv_lr``.
    """
    actor: list[th.nn.Parameter] = []
    critic: list[th.nn.Parameter] = []
    for name, parameter in policy.named_parameters():
        (critic if name.startswith(CRITIC_PREFIXES) else actor).append(parameter)
    groups = [
        {"params": actor, "lr": actor_lr, LR_KEY: actor_lr, "name": "actor"},
        {"params": critic, "lr": critic_lr, LR_KEY: critic_lr, "name": "critic"},
    ]
    return policy.optimizer_class(groups, lr=actor_lr, **policy.optimizer_kwargs)


class _TwoRatePolicyMixin:
    """Separate Adam rates for actor and critic, for either policy class below.

    Args:
        *args: passed to the policy class.
        actor_lr: Adam learning rate of the actor, LSTM included (paper: 1e-3).
        critic_lr: Adam learning rate of the critic (paper: 5e-3).
        **kwargs: passed to the policy class.
    """

    def __init__(
        self, *args: Any, actor_lr: float = 1e-3, critic_lr: float = 5e-3, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.actor_lr = float(actor_lr)
        self.critic_lr = float(critic_lr)
        self.optimizer = two_rate_optimizer(self, self.actor_lr, self.critic_lr)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(actor_lr=self.actor_lr, critic_lr=self.critic_lr)
        return data


class TwoRatePolicy(_TwoRatePolicyMixin, ActorCriticPolicy):
    """SB3's MLP actor-critic policy with separate Adam rates for actor and critic."""


class TwoRateRecurrentPolicy(_TwoRatePolicyMixin, RecurrentActorCriticPolicy):
    """sb3-contrib's LSTM actor-critic policy with separate Adam rates for actor and critic."""


class _TwoRateMixin:
    """Per-group learning rates and a shortened last rollout, for PPO and RecurrentPPO."""

    def _update_learning_rate(
        self, optimizers: list[th.optim.Optimizer] | th.optim.Optimizer
    ) -> None:
        # SB3 would set every group to lr_schedule(progress); keep each group's own rate.
        if not isinstance(optimizers, list):
            optimizers = [optimizers]
        for optimizer in optimizers:
            for index, group in enumerate(optimizer.param_groups):
                rate = group.get(LR_KEY)
                if rate is None:  # a group we did not make: SB3's behaviour
                    rate = self.lr_schedule(self._current_progress_remaining)
                group["lr"] = rate
                self.logger.record(f"train/learning_rate_{group.get('name', index)}", rate)

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        # The last rollout of a budget that is not a whole number of rollouts is shortened
        # to what is left (whole episodes still), so the run ends exactly on budget.
        left = (self._total_timesteps - self.num_timesteps) // env.num_envs
        size = self.n_steps if left >= self.n_steps or left <= 0 else left
        if rollout_buffer.buffer_size != size:
            rollout_buffer = self.rollout_buffer = resized_buffer(rollout_buffer, size)
        return super().collect_rollouts(env, callback, rollout_buffer, size)


class TwoRatePPO(_TwoRateMixin, PPO):
    """PPO that keeps the actor's and the critic's learning rates apart (see module doc)."""


class TwoRateRecurrentPPO(_TwoRateMixin, RecurrentPPO):
    """RecurrentPPO that keeps the actor's and the critic's learning rates apart."""


def resized_buffer(buffer: RolloutBuffer, size: int) -> RolloutBuffer:
    """A copy of a (recurrent) rollout buffer holding ``size`` steps per env, emptied.

    Args:
        buffer: the algorithm's rollout buffer.
        size: steps per env the new buffer holds.

    Returns:
        The new buffer (the old one is untouched).
    """
    resized = copy.copy(buffer)
    resized.buffer_size = size
    if hasattr(resized, "hidden_state_shape"):  # sb3-contrib's RecurrentRolloutBuffer
        resized.hidden_state_shape = (size, *buffer.hidden_state_shape[1:])
    resized.reset()
    return resized


def build_agent(
    env: VecEnv,
    settings: PPOSettings,
    *,
    decisions: int,
    recurrent: bool = False,
    seed: int | None = None,
    device: str = "cpu",
    stats_window_size: int = 20,
) -> TwoRatePPO | TwoRateRecurrentPPO:
    """PPO (or RecurrentPPO) set up as in the paper, rollouts of whole episodes.

    Args:
        env: the (vectorised, possibly normalised) training environments.
        settings: the controller's PPO settings.
        decisions: controller decisions per episode (the episode length).
        recurrent: an LSTM actor (RecurrentPPO) instead of an MLP one.
        seed: seed of PPO's random generators (and of ``env``).
        device: where the controller runs ("cpu" is right for these tiny networks).
        stats_window_size: episodes averaged in ``rollout/ep_rew_mean``.

    Returns:
        An untrained :class:`TwoRatePPO` or :class:`TwoRateRecurrentPPO`.

    Raises:
        ValueError: when the rollout cannot hold whole episodes on every env, or does not
            split into equal minibatches.
    """
    n_steps, batch_size = rollout_shape(settings, decisions, env.num_envs)
    common: dict[str, Any] = {
        "n_steps": n_steps,
        "batch_size": batch_size,
        "n_epochs": settings.n_epochs,
        "learning_rate": settings.actor_lr,  # logged by SB3 only; the groups keep their own
        "gamma": settings.gamma,
        "gae_lambda": settings.gae_lambda,
        "clip_range": settings.clip_range,
        "ent_coef": settings.ent_coef,
        "seed": seed,
        "device": device,
        "verbose": 0,
        "stats_window_size": stats_window_size,
    }
    rates = {"actor_lr": settings.actor_lr, "critic_lr": settings.critic_lr}
    if recurrent:
        policy_kwargs = {
            "net_arch": {"pi": [], "vf": [settings.hidden]},
            "lstm_hidden_size": settings.hidden,
            "n_lstm_layers": 1,
            "shared_lstm": False,
            "enable_critic_lstm": False,
            "log_std_init": settings.log_std_init,
            **rates,
        }
        return TwoRateRecurrentPPO(
            TwoRateRecurrentPolicy, env, policy_kwargs=policy_kwargs, **common
        )
    policy_kwargs = {
        "net_arch": {"pi": [settings.hidden], "vf": [settings.hidden]},
        "log_std_init": settings.log_std_init,
        **rates,
    }
    return TwoRatePPO(TwoRatePolicy, env, policy_kwargs=policy_kwargs, **common)


def rollout_shape(settings: PPOSettings, decisions: int, n_envs: int) -> tuple[int, int]:
    """``n_steps`` per env and the minibatch size for rollouts of whole episodes.

    Args:
        settings: gives ``episodes_per_rollout`` and ``minibatches``.
        decisions: controller decisions per episode.
        n_envs: environments stepped together.

    Returns:
        ``(n_steps, batch_size)`` with ``n_steps * n_envs = decisions * episodes_per_rollout``.

    Raises:
        ValueError: when the episodes of a rollout do not share out evenly over the envs or
            the rollout does not split into ``minibatches`` equal minibatches.
    """
    check_integer(settings.episodes_per_rollout, "episodes_per_rollout")
    check_integer(settings.minibatches, "minibatches")
    if settings.episodes_per_rollout % n_envs:
        raise ValueError(
            f"episodes_per_rollout ({settings.episodes_per_rollout}) must be a multiple of "
            f"n_envs ({n_envs}) so that every env runs whole episodes in a rollout"
        )
    rollout = decisions * settings.episodes_per_rollout
    if rollout % settings.minibatches:
        raise ValueError(
            f"a rollout of {rollout} decisions ({settings.episodes_per_rollout} episodes of "
            f"{decisions}) does not split into {settings.minibatches} equal minibatches; "
            "change minibatches or episodes_per_rollout"
        )
    return rollout // n_envs, rollout // settings.minibatches


def observation_normalization(env: VecEnv) -> dict[str, Any] | None:
    """The running observation statistics of ``env``, in the controller-file format.

    Args:
        env: the training env, a ``VecNormalize`` or anything else.

    Returns:
        ``{"mean", "var", "epsilon", "clip"}`` (float32 arrays, floats) as
        :mod:`agents.controller` documents, or ``None`` when observations are not
        normalised.
    """
    if not isinstance(env, VecNormalize) or not env.norm_obs:
        return None
    return {
        "mean": np.asarray(env.obs_rms.mean, dtype=np.float32).copy(),
        "var": np.asarray(env.obs_rms.var, dtype=np.float32).copy(),
        "epsilon": float(env.epsilon),
        "clip": float(env.clip_obs),
    }


def group_rates(model: PPO | RecurrentPPO) -> dict[str, float]:
    """The current learning rate of each named parameter group of the model's optimizer.

    Args:
        model: a PPO or RecurrentPPO model.

    Returns:
        ``{group name: lr}``, e.g. ``{"actor": 1e-3, "critic": 5e-3}``.
    """
    return {
        str(group.get("name", index)): float(group["lr"])
        for index, group in enumerate(model.policy.optimizer.param_groups)
    }


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


def training_envs(
    env_id: str,
    env_kwargs: Mapping[str, Any],
    n_envs: int,
    settings: PPOSettings,
    *,
    torch_threads: int | None = None,
    normalization: Mapping[str, Any] | None = None,
    trusted_vecnormalize: str | Path | None = None,
    batched: bool = False,
    seed: int | None = None,
    ray: bool = False,
) -> VecEnv:
    """``n_envs`` trainees, normalised as configured.

    Args:
        env_id: the trainee task.
        env_kwargs: keywords for ``gym.make``.
        n_envs: trainees trained at once. Unbatched, more than one runs each in its own
            process (``SubprocVecEnv``) and one is stepped in this process
            (``DummyVecEnv``); batched, all of them train in this process as one batched
            computation (:func:`agents.vec_env.make_batched_vec_env`).
        settings: gives ``normalize_observations``, ``normalize_rewards`` and ``gamma``.
        torch_threads: torch threads while a trainee computes: in each worker process,
            or (one env, or batched) the env keyword ``torch_threads`` in this one, which
            gives the caller's count back after each call (None: the process's count).
        normalization: saved ``VecNormalize`` statistics to continue from (a resumed run;
            :func:`agents.checkpoints.normalization_state`).
        trusted_vecnormalize: an older run's pickled ``vecnormalize.pkl`` to continue from
            instead; loading it unpickles (``train.py --trust-pickle`` only).
        batched: train the trainees as one batched computation: the way to use a
            GPU; each trainee is the same as an unbatched one with the same seed.
        seed: seed the envs now (batched only; unbatched envs are seeded by the model).
        ray: each trainee in a Ray actor, anywhere on the connected Ray cluster
            (:class:`agents.ray_vec.RayVecEnv`), with ``torch_threads`` cores.

    Returns:
        The vectorised env, wrapped in ``VecNormalize`` when either normalisation is on.
    """
    venv: VecEnv
    if ray and batched:
        raise ValueError("trainees run either batched in this process or as Ray actors")
    if ray:
        from agents.ray_cluster import trainee_gpus
        from agents.ray_vec import RayVecEnv  # Ray only when asked: it is an optional extra

        venv = RayVecEnv(env_id, env_kwargs, n_envs, torch_threads or 1, trainee_gpus(env_kwargs))
    elif batched:
        # VecMonitor (monitor=True) records info["episode"] as the per-env Monitor does;
        # the batched envs are made without gym.make, so there is no Monitor to double.
        # --threads while the trainees compute, the caller's count given back after each
        # call (the env keyword; one of the user's wins)
        kwargs = {"torch_threads": torch_threads, **env_kwargs}
        venv = make_batched_vec_env(env_id, n_envs, seed=seed, monitor=True, **kwargs)
    elif n_envs > 1:
        factory = functools.partial(
            worker_env, env_id, dict(env_kwargs), torch_threads, os.getpid()
        )
        venv = subproc_vec_env(factory, n_envs)
    else:  # in this process, as batched trainees are
        kwargs = {"torch_threads": torch_threads, **env_kwargs}
        venv = DummyVecEnv([functools.partial(make_env, env_id, kwargs, None)])
    if normalization is not None:
        venv = restore_normalization(normalization, venv)
    elif trusted_vecnormalize is not None:
        venv = VecNormalize.load(str(trusted_vecnormalize), venv)  # unpickles: opted in
        venv.training = True
    elif settings.normalize_observations or settings.normalize_rewards:
        venv = VecNormalize(
            venv,
            norm_obs=settings.normalize_observations,
            norm_reward=settings.normalize_rewards,
            gamma=settings.gamma,
        )
    return venv
