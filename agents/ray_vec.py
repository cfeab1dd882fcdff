"""Trainees as Ray actors behind a stable-baselines3 VecEnv: training beyond one machine.

:class:`RayVecEnv` is what ``train.py --ray ADDRESS`` trains on: ``n_envs`` envs, each in
its own Ray actor (:class:`EnvWorker`, anywhere on the cluster), stepped together as
``SubprocVecEnv`` steps its processes; the PPO learner stays in the driver. The envs are
those :func:`agents.env_factory.make_env` builds for ``SubprocVecEnv``, stepped the same way
(an ended episode resets at once, its last observation in ``info["terminal_observation"]``),
so the same seed gives the same trainee episodes as without Ray.

Placement: each actor asks for the cores its trainee uses (``torch_threads``) and sets
torch's thread count itself; actors are spread over the nodes (``"SPREAD"``); a trainee
whose env keyword ``device`` is ``"cuda"`` asks for a GPU
(:func:`agents.ray_cluster.actor_options`).

A lost actor (its process or its node died): the actor is started again, elsewhere if
need be, and its episode is redone. Every episode's start is recorded (the reset seed, or
the state of the env's ``np_random`` before an unseeded reset) with the actions taken
since; the new actor replays them and then takes the step that was lost. An episode is a
deterministic function of those on a CPU, so the run continues with the same numbers, at
the cost of the episode's steps so far. One env's actor is restarted ``max_restarts``
times; the loss after that ends the run with :class:`EnvActorLostError`, which train.py
turns into a message naming the last checkpoint that ``--resume`` continues. What
``set_attr`` or ``env_method`` changed in an env is not replayed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import ray
from ray.exceptions import ActorUnavailableError, RayActorError
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from agents.ray_cluster import (
    SCHEDULE_TIMEOUT,
    EnvActorLostError,
    UnschedulableError,
    actor_options,
    check_schedulable,
    wait_started,
)
from lrenv.checks import check_integer

LOST = (RayActorError, ActorUnavailableError)
"""What ``ray.get`` raises when an actor's process or node is gone."""


class EnvWorker:
    """One training env in a Ray actor; the calls :class:`RayVecEnv` makes on it.

    Args:
        env_id: the trainee task.
        env_kwargs: keywords for ``gym.make``.
        torch_threads: torch threads of this actor (its ``num_cpus``).
    """

    def __init__(self, env_id: str, env_kwargs: Mapping[str, Any], torch_threads: int) -> None:
        from agents.env_factory import make_env  # in the actor: torch and lrenv load there

        self.env = make_env(env_id, env_kwargs, torch_threads)

    def spaces(self) -> tuple[gym.Space, gym.Space]:
        """The observation and action spaces."""
        return self.env.observation_space, self.env.action_space

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
        """Reset; also return the episode's *start*, from which :meth:`replay` redoes it."""
        if seed is not None:
            start: dict[str, Any] = {"seed": seed}
        else:  # the generator an unseeded reset draws from, as it is now
            start = {"rng": self.env.unwrapped.np_random.bit_generator.state}
        start["options"] = options
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, info, start

    def step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, float, bool, dict[str, Any], dict[str, Any] | None]:
        """One step as ``DummyVecEnv`` takes it (an ended episode resets at once).

        Returns:
            ``(obs, reward, done, info, start)``: ``start`` is the new episode's start
            (see :meth:`reset`) when the episode ended, else None.
        """
        obs, reward, terminated, truncated, info = self.env.step(action)
        done = terminated or truncated
        info["TimeLimit.truncated"] = truncated and not terminated
        start = None
        if done:
            info["terminal_observation"] = obs
            obs, _, start = self.reset()
        return obs, float(reward), done, info, start

    def replay(self, start: Mapping[str, Any], actions: Sequence[np.ndarray]) -> None:
        """Bring the env to where a lost actor was: the episode from ``start``, then
        ``actions`` (all within that episode)."""
        if "seed" in start:
            self.env.reset(seed=start["seed"], options=start["options"])
        else:
            state = start["rng"]
            generator = np.random.Generator(getattr(np.random, state["bit_generator"])())
            generator.bit_generator.state = state
            self.env.unwrapped.np_random = generator
            self.env.reset(options=start["options"])
        for action in actions:
            self.env.step(action)

    def get_attr(self, name: str) -> Any:
        """An attribute of the env (through its wrappers)."""
        return self.env.get_wrapper_attr(name)

    def set_attr(self, name: str, value: Any) -> None:
        """Set an attribute of the env."""
        setattr(self.env, name, value)

    def env_method(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Call a method of the env (through its wrappers)."""
        return self.env.get_wrapper_attr(name)(*args, **kwargs)

    def is_wrapped(self, wrapper_class: type[gym.Wrapper]) -> bool:
        """Whether the env is wrapped in ``wrapper_class``."""
        from stable_baselines3.common.env_util import is_wrapped

        return is_wrapped(self.env, wrapper_class)

    def node_id(self) -> str:
        """The Ray node this actor runs on."""
        return ray.get_runtime_context().get_node_id()

    def close(self) -> None:
        """Close the env."""
        self.env.close()


RemoteEnvWorker = ray.remote(EnvWorker)


class RayVecEnv(VecEnv):
    """``n_envs`` training envs, each in a Ray actor, as one stable-baselines3 VecEnv.

    Needs a connected Ray (:func:`agents.ray_cluster.connect`). See the module docstring
    for placement and what happens to a lost actor.

    Args:
        env_id: the trainee task.
        env_kwargs: keywords for ``gym.make``.
        n_envs: envs (actors).
        torch_threads: cores (and torch threads) of each actor.
        gpus: GPUs of each actor (1 for a CUDA trainee).
        max_restarts: how often one env's actor may be lost and started again before the
            run ends with :class:`EnvActorLostError`.
        schedule_timeout: seconds the actors may take to start; then
            :class:`agents.ray_cluster.UnschedulableError` names the resources missing
            (at once when no node has them).
    """

    def __init__(
        self,
        env_id: str,
        env_kwargs: Mapping[str, Any],
        n_envs: int,
        torch_threads: int = 1,
        gpus: float = 0.0,
        max_restarts: int = 3,
        schedule_timeout: float = SCHEDULE_TIMEOUT,
    ) -> None:
        check_integer(n_envs, "n_envs")
        self._make = lambda: RemoteEnvWorker.options(**actor_options(torch_threads, gpus)).remote(
            env_id, dict(env_kwargs), torch_threads
        )
        check_schedulable(ray, torch_threads, gpus)
        self.actors = [self._make() for _ in range(n_envs)]
        self.max_restarts = max_restarts
        self.restarts = [0] * n_envs
        self._starts: list[dict[str, Any] | None] = [None] * n_envs
        self._actions: list[list[np.ndarray]] = [[] for _ in range(n_envs)]
        self._pending: list[ray.ObjectRef] = []
        started = [actor.spaces.remote() for actor in self.actors]
        try:
            wait_started(ray, started, torch_threads, gpus, schedule_timeout)
        except UnschedulableError:
            for actor in self.actors:
                ray.kill(actor, no_restart=True)
            raise
        observation_space, action_space = ray.get(started[0])
        super().__init__(n_envs, observation_space, action_space)

    # --- stepping -------------------------------------------------------------------------

    def reset(self) -> VecEnvObs:
        args = [(self._seeds[i], self._options[i] or None) for i in range(self.num_envs)]
        futures = [actor.reset.remote(*a) for actor, a in zip(self.actors, args, strict=True)]
        observations = []
        for i, future in enumerate(futures):
            obs, info, start = self._get(
                i, future, lambda actor, a=args[i]: self._redo_reset(actor, *a), replay=False
            )
            self.reset_infos[i] = info
            self._starts[i] = start
            self._actions[i] = []
            observations.append(obs)
        self._reset_seeds()
        self._reset_options()
        return np.stack(observations)

    def step_async(self, actions: np.ndarray) -> None:
        self._step_actions = [np.array(action, copy=True) for action in actions]
        self._pending = [
            actor.step.remote(action)
            for actor, action in zip(self.actors, self._step_actions, strict=True)
        ]

    def step_wait(self) -> VecEnvStepReturn:
        observations, rewards, dones, infos = [], [], [], []
        for i, future in enumerate(self._pending):
            action = self._step_actions[i]
            obs, reward, done, info, start = self._get(
                i, future, lambda actor, a=action: actor.step.remote(a)
            )
            if start is None:
                self._actions[i].append(action)
            else:  # a new episode began: its start, no actions yet
                self._starts[i] = start
                self._actions[i] = []
            observations.append(obs)
            rewards.append(reward)
            dones.append(done)
            infos.append(info)
        self._pending = []
        return (
            np.stack(observations),
            np.array(rewards, dtype=np.float32),
            np.array(dones, dtype=bool),
            infos,
        )

    # --- lost actors ------------------------------------------------------------------------

    def _get(
        self,
        i: int,
        future: ray.ObjectRef,
        redo: Callable[[Any], ray.ObjectRef],
        replay: bool = True,
    ) -> Any:
        """The result of ``future`` (a call on env ``i``'s actor); when the actor is lost,
        start it again, replay its episode (``replay``) and ``redo`` the call on it."""
        while True:
            try:
                return ray.get(future)
            except LOST as err:
                self._restart(i, err, replay)
                future = redo(self.actors[i])

    @staticmethod
    def _redo_reset(actor: Any, seed: int | None, options: dict[str, Any] | None) -> Any:
        if seed is None:  # a fresh actor would draw another episode: not the same run
            raise EnvActorLostError(
                "a Ray actor was lost during an unseeded reset, which cannot be redone "
                "exactly; seed the env (VecEnv.seed) before resetting it"
            )
        return actor.reset.remote(seed, options)

    def _restart(self, i: int, err: Exception, replay: bool) -> None:
        self.restarts[i] += 1
        if self.restarts[i] > self.max_restarts:
            raise EnvActorLostError(
                f"the Ray actor of env {i} was lost {self.restarts[i]} times (at most "
                f"{self.max_restarts} are restarted); last cause: {type(err).__name__}: {err}"
            ) from err
        ray.kill(self.actors[i], no_restart=True)
        self.actors[i] = self._make()
        if replay and self._starts[i] is not None:
            ray.get(self.actors[i].replay.remote(self._starts[i], self._actions[i]))

    def _call_all(self, calls: Sequence[tuple[int, str, tuple[Any, ...]]], replay: bool) -> list:
        """``calls`` of ``(env index, method, args)``, made at once; their results."""
        futures = [getattr(self.actors[i], name).remote(*args) for i, name, args in calls]
        return [
            self._get(i, future, lambda actor, n=name, a=args: getattr(actor, n).remote(*a), replay)
            for (i, name, args), future in zip(calls, futures, strict=True)
        ]

    # --- the rest of the VecEnv interface ---------------------------------------------------

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self._call_all(
            [(i, "get_attr", (attr_name,)) for i in self._get_indices(indices)], True
        )

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        self._call_all(
            [(i, "set_attr", (attr_name, value)) for i in self._get_indices(indices)], True
        )

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        calls = [
            (i, "env_method", (method_name, method_args, method_kwargs))
            for i in self._get_indices(indices)
        ]
        return self._call_all(calls, True)

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        calls = [(i, "is_wrapped", (wrapper_class,)) for i in self._get_indices(indices)]
        return self._call_all(calls, True)

    def node_ids(self) -> list[str]:
        """The Ray node of each env's actor."""
        return ray.get([actor.node_id.remote() for actor in self.actors])
