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

With gSDE (``use_sde``) stable-baselines3 draws an env's exploration map at each
rollout's start; ``sde_draw="episode"`` adds :class:`EpisodeExplorationRedraw`, which
draws a fresh map for each env whose episode has just ended, so that a rollout of many
episodes gives PPO as many perturbations.

Rollouts hold whole episodes: ``n_steps * n_envs`` is a multiple of the episode length.
When the requested budget is not a whole number of rollouts, the last rollout is shortened
to what is left, so a run ends with exactly the episodes asked for.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch as th
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from agents.presets import PPOSettings
from lrenv.checks import check_integer

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

    anneal_lr = False
    """Scale each group's rate by the fraction of the budget left when the rollout that
    feeds the update began (``PPOSettings.anneal_lr``): 1 at the first update, one
    rollout's share at the last, as CleanRL's ``anneal_lr``. A class default:
    :func:`build_agent` sets it on the instance only when True, so a model without it
    saves what models saved before it existed."""

    def _update_learning_rate(
        self, optimizers: list[th.optim.Optimizer] | th.optim.Optimizer
    ) -> None:
        # SB3 would set every group to lr_schedule(progress); keep each group's own rate.
        if not isinstance(optimizers, list):
            optimizers = [optimizers]
        scale = self._budget_left_at_rollout_start() if self.anneal_lr else 1.0
        for optimizer in optimizers:
            for index, group in enumerate(optimizer.param_groups):
                rate = group.get(LR_KEY)
                if rate is None:  # a group we did not make: SB3's behaviour
                    rate = self.lr_schedule(self._current_progress_remaining)
                else:
                    rate = rate * scale
                group["lr"] = rate
                self.logger.record(f"train/learning_rate_{group.get('name', index)}", rate)

    def _budget_left_at_rollout_start(self) -> float:
        """The share of the budget left when the rollout just collected began: SB3's
        progress (counted after it) plus that rollout's own share."""
        collected = self.rollout_buffer.buffer_size * self.n_envs / self._total_timesteps
        return min(1.0, self._current_progress_remaining + collected)

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


class EpisodeExplorationRedraw(BaseCallback):
    """``sde_draw="episode"``: a new gSDE exploration map for each env whose episode has
    just ended; the other envs keep theirs until their own episodes end.

    stable-baselines3 draws the maps only at a rollout's start (or every
    ``sde_sample_freq`` steps on every env at once, whatever episode each is in).
    """

    def _on_step(self) -> bool:
        ended = np.asarray(self.locals["dones"], dtype=bool)
        if ended.any():
            redraw_exploration(self.model.policy, ended)
        return True


def redraw_exploration(policy: ActorCriticPolicy, ended: np.ndarray) -> None:
    """Draw new gSDE exploration maps for the envs marked in ``ended``, keep the others'.

    Args:
        policy: a policy built with ``use_sde`` whose maps were drawn for ``len(ended)``
            envs (``policy.reset_noise(n_envs)``).
        ended: one flag per env.
    """
    dist = policy.action_dist
    with th.no_grad():
        kept = dist.exploration_matrices.detach().clone()
        policy.reset_noise(len(ended))  # one env: SB3 then reads exploration_mat alone
        if len(ended) > 1:
            fresh = th.as_tensor(ended, device=kept.device).view(-1, 1, 1)
            dist.exploration_matrices = th.where(fresh, dist.exploration_matrices, kept)


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
        "target_kl": settings.target_kl,
        "seed": seed,
        "device": device,
        "verbose": 0,
        "stats_window_size": stats_window_size,
    }
    if settings.use_sde:  # one exploration map per rollout, drawn at its start
        common.update(use_sde=True, sde_sample_freq=-1)
    model = _build(env, settings, common, recurrent)
    if settings.anneal_lr:
        model.anneal_lr = True
    return model


def _build(
    env: VecEnv, settings: PPOSettings, common: dict[str, Any], recurrent: bool
) -> TwoRatePPO | TwoRateRecurrentPPO:
    """The untrained model of :func:`build_agent` (its policy and algorithm classes)."""
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
        :mod:`agents.sb3_controller` documents, or ``None`` when observations are not
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
