"""The learning-rate schedule environment (Xu et al. 2019, "Learning an Adaptive Learning
Rate Schedule", arXiv:1909.09712)."""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from lrenv.data import load_dataset
from lrenv.env_config import RENDER_MODES, check_actions, check_reset_options, validate_config
from lrenv.features import FeatureReference, compute_features, feature_names
from lrenv.schedule_families import Schedule, schedule_from_dict
from lrenv.threads import with_torch_threads
from lrenv.trace import EpisodeTrace
from lrenv.trainee import Evaluation, Trainee, resolve_device

PAPER_INITIAL_LRS = (1e-2, 1e-3, 1e-4)
OBS_LIMIT = 1e6  # any feature beyond this (a loss of 1e6, say) means the trainee has diverged
SCHEDULE_FREE_BETA = 0.9
"""Schedule-free SGD's beta (the library's ``momentum``) at its default, and at action 0 of
``beta_factor``'s second action entry."""


class LRScheduleEnv(gym.Env):
    """
    ## Description

    A neural network (the *trainee*) trains with SGD; the agent is its learning-rate
    controller. Every ``steps_per_action`` SGD steps the agent sees the training dynamics
    and multiplies the learning rate by a factor of its choice; its reward is minus the
    validation loss. One episode is one training run of ``total_steps`` SGD steps, from a
    freshly initialised network. This is the environment of Xu, Dai, Kemp and Metz
    (2019), "Learning an Adaptive Learning Rate Schedule".

    ## Action Space

    ``Box(-1, 1, (1,), float32)``. The new learning rate is
    ``clip(lr * factor_base ** a, *lr_bounds)``: monotone in ``a``, unchanged at ``a = 0``.
    With the default ``factor_base=2`` one decision at most halves or doubles the rate.
    ``factor_base = 10 ** c`` is the same as an additive log-rate action
    ``log10(lr) += c * a``.

    ``action_mode="absolute"`` (an option beyond the paper, and outside the v0 contract's
    "factor of the previous rate") maps the action straight onto the rate, log-uniformly
    over ``lr_bounds``: ``lr = low * (high / low) ** ((a + 1) / 2)``. Exploration noise
    then does not accumulate over decisions, and a schedule is a plain function of the
    observation (with ``progress_feature``, of training progress).

    ``action_mode="residual"`` (beyond the paper) scales a fixed schedule instead of the
    previous rate: ``lr = base(t) * factor_base ** a``, where ``base`` is
    ``base_schedule`` (a :mod:`lrenv.schedule_families` description such as
    ``{"kind": "wsd", "peak_lr": 0.3, "cooldown": 0.2}``) at the decision's first SGD step.
    An action of 0 reproduces that schedule exactly; deviations do not accumulate.
    ``beta_factor=f`` (beyond the paper; needs ``optimizer="schedule_free"``) widens the
    action to ``Box(-1, 1, (2,))``: the first entry sets the rate as above, the second
    schedule-free SGD's beta (its interpolation between the averaged and the latest
    iterate, ``momentum`` in the library) for the decision's steps:
    ``1 - beta = 0.1 * f ** a[1]``, so ``a[1] = 0`` keeps the library's default 0.9 and
    ``f = 5`` reaches 0.5 to 0.98. A low beta moves the gradient toward the latest iterate,
    which some tasks want and others do not (docs/zero-shot.md). With ``beta_once=True``
    the first decision's beta holds for the whole run: later decisions' second entries
    are checked but change nothing, so beta is a choice per run made from what the
    controller sees at reset, and the rate alone is steered after it.
    Actions outside [-1, 1] are clipped; a non-finite or wrongly shaped action (anything
    but shape ``()`` or ``(1,)``; ``(2,)`` with ``beta_factor``), or one that is not a real
    number (a string, complex number, bool or None), raises ``ValueError`` and leaves the
    environment as it was.

    ## Observation Space

    ``Box(-1e6, 1e6, (n,), float32)``; ``n`` is 7, plus one with
    ``progress_feature=True`` and one with ``epochs_feature=True``.
    ``env.unwrapped.feature_names`` names the entries.

    | Num | Observation       | Definition                                                |
    |-----|-------------------|-----------------------------------------------------------|
    | 0   | train_loss        | mean training cross-entropy over the last chunk of steps  |
    | 1   | val_loss          | cross-entropy on the validation subset                    |
    | 2   | pred_var          | mean over classes of the variance over validation         |
    |     |                   | examples of the softmax predictions                       |
    | 3   | pred_change_var   | the same variance of the change of the predictions since  |
    |     |                   | the previous decision (0 at reset)                        |
    | 4   | weight_mean       | mean of the final dense layer's weights                   |
    | 5   | weight_var        | variance of the final dense layer's weights               |
    | 6   | log10_lr          | log10 of the learning rate in effect                      |
    | 7   | progress          | fraction of ``total_steps`` done (``progress_feature``)   |
    | 8   | log2_run_epochs   | ``log2(1 + E)``, ``E`` the passes over the training set   |
    |     |                   | the whole episode makes: ``total_steps * batch_size`` /   |
    |     |                   | training examples (``epochs_feature``; entry 7 without    |
    |     |                   | ``progress``)                                             |

    With ``feature_transform="log"``, entries 2, 3 and 5 are ``log10(v + 1e-10)`` instead.
    ``feature_transform="relative"`` (for task sets: the same meaning on every task) gives
    the losses as ratios to the validation loss at reset, the variances as under "log", and
    the weight statistics relative to their values at reset (:mod:`lrenv.features`).
    At reset, the training loss is measured on one batch without a step. The variance
    features use the same validation forward pass as the reward (one pass per decision).

    ## Rewards

    ``-val_loss`` after each step (a Python float). With ``final_reward_weight=w > 0`` the
    last step adds ``-w * val_loss``, so the final loss counts more.

    ``reward="delta"`` (beyond the paper) pays the decrease of the validation loss instead,
    ``L_{t-1} - L_t``: dense, and undiscounted it sums to ``L_0 - L_T``, so the return is
    the final loss (up to the start, which no action changes), the quantity the
    evaluation scores, rather than the area under the validation curve. A divergence
    then pays ``L_{t-1} - divergence_loss``, as if the run had ended at that loss.
    ``reward="log_delta"`` pays ``log L_{t-1} - log L_t`` (a divergence
    ``log L_{t-1} - log divergence_loss``): it sums to ``log(L_0 / L_T)``, the same scale
    on every task whatever its loss level, so that on a task set no task dominates the
    return.
    ``reward="vs_base"`` (with ``action_mode="residual"``) pays ``log_delta`` minus the
    base schedule's own ``log_delta`` at the same decision, the base run alone (action 0
    throughout) on the episode's seed at reset: same weights, same batch order. It sums to
    ``log(Lb_T / L_T)``, the log-ratio of the base's final loss to the controller's, and is
    exactly 0 at action 0; the trainee noise the two runs share, which dwarfs a schedule's
    effect on a single run, cancels out of every reward. The price: each reset trains the
    base episode first, so an episode costs two trainee runs, unless ``trainee_seeds=K``
    draws every trainee seed from K fixed ones: the env then trains each base run once
    (per seed and starting rate) and reuses it, so that once each seed has come up an
    episode costs one run. A divergence pays as under ``log_delta``, less the base's
    log-decrease from that decision to its end.

    With ``action_cost=c > 0`` every decision also pays ``c * sum(|a_i|) / n`` (``n``
    decisions, the action clipped to [-1, 1]), so an episode pays ``c`` times its mean
    absolute action (summed over the entries): a price for leaving "no change" (the base
    schedule, under ``action_mode="residual"``) that a controller pays back only where
    moving earns more. It is charged under every reward, a diverging decision included.

    Under ``reward="loss"`` a diverging trainee pays ``-divergence_loss`` for the decision
    that diverged and for every decision it did not get to make, at once:
    ``-divergence_loss * (remaining + 1)``, so diverging is never cheaper than training
    on. A step that does not diverge pays ``-val_loss``, in ``[-divergence_loss, 0]``; the
    diverging step pays down to ``-divergence_loss * decisions`` (a divergence at the first
    decision). The episode's return therefore lies in ``[-divergence_loss * decisions, 0]``
    (a bounded scale PPO's critic can learn), apart from the optional final term and
    the action cost.

    The bound the env guarantees: with ``D = divergence_loss``, ``w =
    final_reward_weight``, ``n`` decisions, ``c = action_cost`` and ``k`` action entries,
    every reward lies in ``[-D (n + 1) (1 + w) - c k / n, D]``; under ``reward="loss"``
    it is at most 0, and a divergence never pays (its reward is at most 0 under every
    reward). "delta" measures from the loss at reset capped at ``D`` (a fresh network can
    start above a low threshold), and ``D`` below the chance-level loss ``ln C``, where a
    network that has learned nothing stands, is refused.

    ## Starting State

    A freshly initialised network (from a seed drawn with ``self.np_random``: any
    31-bit seed, or with ``trainee_seeds=K`` one of 0 to K-1) and an
    initial learning rate: the reset option ``initial_lr`` when given, else under
    ``action_mode="residual"`` the base schedule's first rate, else ``initial_lr``, or when
    that is ``None`` one of ``initial_lrs`` drawn uniformly with ``self.np_random``.

    ## Episode End

    Truncation after ``total_steps`` SGD steps (``total_steps / steps_per_action``
    decisions). Termination when the trainee diverges: a non-finite loss or weight, a
    validation loss above ``divergence_loss`` (default twice the chance-level loss
    ``2 ln C``: worse than guessing by far), or a feature beyond +-1e6; then
    ``info["diverged"]`` is True and the observation is the last finite
    one with the learning rate updated. Once the episode has ended, ``step()`` raises
    ``RuntimeError`` (it would train on past the end) until ``reset()`` starts a new one;
    vector envs reset finished envs themselves.

    ## Arguments

    | keyword             | default            | meaning                                       |
    |---------------------|--------------------|-----------------------------------------------|
    | dataset             | "fashion_mnist"    | "fashion_mnist", "cifar10" or "synthetic"     |
    | model               | "cnn"              | "cnn" (LeNet-5), "resnet" (ResNet-18), "mlp"  |
    | batch_size          | 1000               | examples per SGD step                         |
    | steps_per_action    | 10                 | SGD steps between decisions                   |
    | total_steps         | 1000               | SGD steps per episode                         |
    | initial_lr          | None               | a float, or None to draw from initial_lrs     |
    | initial_lrs         | (1e-2, 1e-3, 1e-4) | the paper's initial rates                     |
    | lr_bounds           | (1e-6, 1.0)        | the learning rate is kept inside              |
    | factor_base         | 2.0                | factor = factor_base ** action                |
    | action_mode         | "scale"            | "scale" (paper), "absolute" or "residual"     |
    |                     |                    | (see above)                                   |
    | base_schedule       | None               | the schedule a residual action scales         |
    | reward              | "loss"             | "loss" (paper: -L_t), "delta" (L_{t-1}-L_t)   |
    |                     |                    | or "log_delta" (log L_{t-1} - log L_t), or    |
    |                     |                    | "vs_base" (log_delta less the base's)         |
    | momentum            | 0.0                | SGD momentum (the paper: plain SGD)           |
    | optimizer           | "sgd"              | "sgd" (paper), or a baseline's:               |
    |                     |                    | "schedule_free", "prodigy", "dadapt_sgd"      |
    | warmup_steps        | 0                  | schedule-free SGD's own warmup, in SGD steps  |
    | beta_factor         | None               | a second action entry sets schedule-free      |
    |                     |                    | SGD's beta: 1 - beta = 0.1 * f ** a[1]        |
    | beta_once           | False              | with beta_factor: the first decision's beta   |
    |                     |                    | holds for the whole run                       |
    | val_size            | None               | validation examples used (None: all 10k)      |
    | feature_transform   | "raw"              | "raw" (paper), "log" (log10 of variances) or  |
    |                     |                    | "relative" (scale-free, for task sets)        |
    | progress_feature    | False              | append the fraction of training done          |
    | epochs_feature      | False              | append log2(1 + the episode's epochs): how    |
    |                     |                    | many passes over its data the task makes      |
    | final_reward_weight | 0.0                | extra weight on the final validation loss     |
    |                     |                    | (finite, >= 0)                                |
    | action_cost         | 0.0                | price of leaving "no change": each decision   |
    |                     |                    | pays c * sum(abs(action)) / decisions, so an  |
    |                     |                    | episode pays c x its mean abs action (>= 0)   |
    | divergence_loss     | None               | divergence threshold on the validation loss,  |
    |                     |                    | and the loss charged per lost decision        |
    |                     |                    | (finite, >= ln C; None: 2 ln C)               |
    | trainee_seeds       | None               | None: a new trainee seed every episode; K:    |
    |                     |                    | one of K fixed seeds, so "vs_base" trains     |
    |                     |                    | each base run once and reuses it              |
    | keep_best           | False              | keep the best-validation weights (for tests)  |
    | data_root           | None               | where to look for the dataset first           |
    | device              | "auto"             | "auto", "cpu" or "cuda"                       |
    | compile             | False              | torch.compile the trainee: True, or "eval"    |
    |                     |                    | for the validation pass only (1.6x faster on  |
    |                     |                    | a CPU for the CNN; costs seconds to compile)  |
    | precision           | "fp32"             | "fp32", or "bf16" for bfloat16 mixed-precision|
    |                     |                    | forward passes (faster on GPUs and AMX CPUs;  |
    |                     |                    | weights and updates stay fp32)                |
    | torch_threads       | 1                  | torch's CPU threads while the env computes    |
    |                     |                    | (the caller's count is restored after each    |
    |                     |                    | call); None: the process's own setting. More  |
    |                     |                    | than the free cores slows training many times |
    | render_mode         | None               | "rgb_array": ``render()`` draws the episode   |

    Every number is checked when the env is made: a bool, a NaN or infinity where a
    finite number is expected, or a value out of range raises ``ValueError`` naming the
    keyword. ``reset(options={"initial_lr": x})`` takes a positive, finite ``x`` (clipped
    to ``lr_bounds``; it also overrides ``base_schedule``'s first rate); any other option
    raises ``ValueError`` and leaves the env as it was.

    ``info`` holds ``lr``, ``train_loss``, ``val_loss``, ``val_accuracy``, ``sgd_step``,
    ``best_val_loss`` and ``diverged``. The test split is never read for observations or
    rewards; ``test_best()`` evaluates the best-validation checkpoint on it once
    (with ``keep_best=True``), for evaluation scripts.

    ## Version History

    * v0: initial version. Since then, options only (defaults unchanged): ``action_mode``
      "absolute" and "residual" with ``base_schedule``, ``reward="delta"``, ``optimizer``
      and ``warmup_steps``, ``feature_transform``, ``progress_feature``,
      ``final_reward_weight``, ``precision``, ``compile``, ``beta_factor`` (a second
      action entry), ``beta_once``, ``epochs_feature``, ``trainee_seeds``, ``action_cost``,
      ``torch_threads`` (new: the trainee computes with 1 thread unless told otherwise).
      Every named id now pins its whole task in ``register()`` (``lrenv.TASK_KEYS``), with
      the values it had; the cpu preset's task got its own id,
      ``lrenv/FashionMNIST-MLP-v0``. Inputs outside the contract are now refused (no
      learning result changes): ``step()`` after the episode ended, NaN, infinite or
      bool keyword values, reset options other than a valid ``initial_lr``, and string,
      complex, bool or None actions.

    ## Example

    >>> import gymnasium as gym
    >>> import lrenv
    >>> env = gym.make("lrenv/Synthetic-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape
    (7,)
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": list(RENDER_MODES), "render_fps": 4}

    def __init__(
        self,
        dataset: str = "fashion_mnist",
        model: str = "cnn",
        batch_size: int = 1000,
        steps_per_action: int = 10,
        total_steps: int = 1000,
        initial_lr: float | None = None,
        initial_lrs: tuple[float, ...] = PAPER_INITIAL_LRS,
        lr_bounds: tuple[float, float] = (1e-6, 1.0),
        factor_base: float = 2.0,
        action_mode: str = "scale",
        base_schedule: dict[str, Any] | None = None,
        reward: str = "loss",
        momentum: float = 0.0,
        optimizer: str = "sgd",
        warmup_steps: int = 0,
        beta_factor: float | None = None,
        beta_once: bool = False,
        val_size: int | None = None,
        feature_transform: str = "raw",
        progress_feature: bool = False,
        epochs_feature: bool = False,
        final_reward_weight: float = 0.0,
        action_cost: float = 0.0,
        divergence_loss: float | None = None,
        trainee_seeds: int | None = None,
        keep_best: bool = False,
        data_root: str | None = None,
        device: str = "auto",
        compile: bool | str = False,
        precision: str = "fp32",
        torch_threads: int | None = 1,
        render_mode: str | None = None,
    ) -> None:
        validate_config(
            dataset=dataset,
            model=model,
            batch_size=batch_size,
            steps_per_action=steps_per_action,
            total_steps=total_steps,
            initial_lr=initial_lr,
            initial_lrs=initial_lrs,
            lr_bounds=lr_bounds,
            factor_base=factor_base,
            action_mode=action_mode,
            base_schedule=base_schedule,
            reward=reward,
            momentum=momentum,
            optimizer=optimizer,
            warmup_steps=warmup_steps,
            beta_factor=beta_factor,
            beta_once=beta_once,
            val_size=val_size,
            feature_transform=feature_transform,
            epochs_feature=epochs_feature,
            final_reward_weight=final_reward_weight,
            action_cost=action_cost,
            divergence_loss=divergence_loss,
            trainee_seeds=trainee_seeds,
            precision=precision,
            torch_threads=torch_threads,
            render_mode=render_mode,
        )
        self.render_mode = render_mode
        self.torch_threads = torch_threads
        self.steps_per_action = steps_per_action
        self.total_steps = total_steps
        self.initial_lr = initial_lr
        self.initial_lrs = tuple(float(lr) for lr in initial_lrs)
        self.lr_bounds = (float(lr_bounds[0]), float(lr_bounds[1]))
        self.factor_base = float(factor_base)
        self.action_mode = action_mode
        self.base_schedule: Schedule | None = (
            None if base_schedule is None else schedule_from_dict(base_schedule)
        )
        self.reward = reward
        self.feature_transform = feature_transform
        self.progress_feature = progress_feature
        self.epochs_feature = epochs_feature
        self.final_reward_weight = final_reward_weight
        self.action_cost = float(action_cost)
        self.trainee_seeds = trainee_seeds
        self.keep_best = keep_best
        self.feature_names = feature_names(progress_feature, epochs_feature)

        data = load_dataset(dataset, data_root)
        self.divergence_loss = resolve_divergence_loss(divergence_loss, data.num_classes)
        self.trainee = Trainee(
            data,
            model,
            batch_size,
            momentum,
            val_size,
            resolve_device(device),
            compile=compile,
            precision=precision,
            optimizer=optimizer,
            warmup_steps=warmup_steps,
        )
        self.run_epochs = total_steps * batch_size / len(self.trainee.train_data)
        """Passes over the training set an episode makes (``epochs_feature`` reads it)."""
        self.beta_factor = None if beta_factor is None else float(beta_factor)
        self.beta_once = beta_once
        self.action_space = spaces.Box(-1.0, 1.0, (action_size(beta_factor),), np.float32)
        n = len(self.feature_names)
        self.observation_space = spaces.Box(-OBS_LIMIT, OBS_LIMIT, (n,), np.float32)
        self._obs: np.ndarray | None = None
        self._probs = None
        self._reference: FeatureReference | None = None  # feature_transform="relative"
        self.trace = EpisodeTrace()
        """This episode so far (a new object at every reset); the final info carries it."""
        self._step_start = 0
        self._step_cost = 0.0  # action_cost's charge for the decision being taken
        self._ended: str | None = None  # why the episode ended, once it has
        self._base_losses: list[float] = []  # reward="vs_base": the base run's, at reset
        self._base_runs: dict[tuple[int, float], list[float]] = {}  # by (seed, rate)

    @property
    def decisions(self) -> int:
        """Decisions per episode."""
        return self.total_steps // self.steps_per_action

    @with_torch_threads
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new training run: fresh weights, a new batch order, an initial rate.

        ``options={"initial_lr": x}`` (``x`` positive and finite, clipped to ``lr_bounds``)
        sets this episode's initial rate; it is the only option, and anything else raises
        ``ValueError`` and leaves the env as it was.
        """
        lr = check_reset_options(options)  # before anything changes: a bad option leaves
        super().reset(seed=seed)  # the env as it was, mid-episode or not
        seeds = 2**31 - 1 if self.trainee_seeds is None else self.trainee_seeds
        trainee_seed = int(self.np_random.integers(seeds))
        if lr is None and self.base_schedule is not None:
            lr = self.base_schedule.lr_at(0, self.total_steps)
        if lr is None:
            lr = self.initial_lr
        if lr is None:
            lr = self.initial_lrs[int(self.np_random.integers(len(self.initial_lrs)))]
        lr = float(np.clip(lr, *self.lr_bounds))
        if self.reward == "vs_base":
            self._base_losses = self._base_losses_for(trainee_seed, lr)
        self.trainee.reset(trainee_seed, lr)
        train_loss = self.trainee.peek_train_loss()
        evaluation = self.trainee.evaluate()
        self._probs = evaluation.probs
        self._reference = FeatureReference.at_reset(evaluation.loss, self.trainee.final_weight())
        self.trainee.record_validation(evaluation.loss, self.keep_best)
        self._obs = self._features(train_loss, evaluation.loss, evaluation.probs)
        self.trace = EpisodeTrace(val_steps=[self.trainee.sgd_step], val_loss=[evaluation.loss])
        # losses above divergence_loss count as divergence_loss (a fresh network can start
        # above a low threshold): "delta" then never pays for a first-step divergence
        self._last_val_loss = min(evaluation.loss, self.divergence_loss)
        self._ended = None
        info = self._info(train_loss, evaluation.loss, evaluation.accuracy, diverged=False)
        return self._obs.copy(), info

    @with_torch_threads
    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Scale the learning rate by the action's factor and train ``steps_per_action`` steps."""
        self.begin_step(action)
        trainee = self.trainee
        train_loss = trainee.train_steps(self.steps_per_action)
        evaluation = None
        if math.isfinite(train_loss) and trainee.is_finite():
            evaluation = trainee.evaluate()
        return self.finish_step(train_loss, evaluation)

    def check_can_step(self) -> None:
        """RuntimeError unless an episode is running: before any reset, or after it ended."""
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        if self._ended is not None:
            raise RuntimeError(f"the episode has ended ({self._ended}); call reset() first")

    def begin_step(self, action: np.ndarray) -> float:
        """The first half of :meth:`step`: check the action and set the rate it asks for.

        Split from ``step`` so that :mod:`lrenv.vector` can train many trainees at once
        between the two halves. Returns the new learning rate.
        """
        self.check_can_step()
        a, *more = check_actions(action, self.action_space.shape[0])
        self._step_start = self.trainee.sgd_step
        self._step_cost = self.action_cost * (abs(a) + sum(map(abs, more))) / self.decisions
        if self.beta_factor is not None and not (self.beta_once and self.trainee.sgd_step):
            self.trainee.set_beta(schedule_free_beta(more[0], self.beta_factor))
        if self.action_mode == "residual":
            base = self.base_schedule.lr_at(self.trainee.sgd_step, self.total_steps)
            lr = residual_lr(base, a, self.factor_base)
        else:
            lr = scaled_lr(self.trainee.lr, a, self.factor_base, self.lr_bounds, self.action_mode)
        self.trainee.set_lr(lr)
        return lr

    def finish_step(
        self, train_loss: float, evaluation: Evaluation | None
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """The second half of :meth:`step`, after ``steps_per_action`` SGD steps.

        Args:
            train_loss: the mean training loss of those steps (may be non-finite).
            evaluation: the validation pass after them; ``None`` when the trainee's loss or
                weights are not finite (it diverged).
        """
        trainee = self.trainee
        truncated = trainee.sgd_step >= self.total_steps
        if evaluation is not None:
            obs = self._features(train_loss, evaluation.loss, evaluation.probs)
        if evaluation is None or looks_diverged(evaluation.loss, obs, self.divergence_loss):
            return self._diverged(train_loss)
        self._probs = evaluation.probs
        self._obs = obs
        self.trace.decision(
            self._step_start, trainee.lr, trainee.sgd_step, evaluation.loss, self._beta()
        )
        trainee.record_validation(evaluation.loss, self.keep_best)
        if self.reward == "delta":
            reward = self._last_val_loss - evaluation.loss
        elif self.reward in ("log_delta", "vs_base"):
            reward = math.log(self._last_val_loss) - math.log(evaluation.loss)
            if self.reward == "vs_base":
                reward -= self._base_log_decrease(trainee.sgd_step // self.steps_per_action)
        else:
            reward = -evaluation.loss
        reward -= self._step_cost
        self._last_val_loss = evaluation.loss
        if truncated:
            reward -= self.final_reward_weight * evaluation.loss
            self._ended = f"truncated after total_steps={self.total_steps} SGD steps"
        info = self._info(train_loss, evaluation.loss, evaluation.accuracy, diverged=False)
        if truncated:
            self.trace.finish(trainee.sgd_step, trainee.best_val_loss)
            info["episode_trace"] = self.trace
        return obs.copy(), float(reward), False, truncated, info

    def render(self) -> np.ndarray | None:
        """With ``render_mode="rgb_array"``: this episode's learning rate and validation
        loss over SGD steps, as an RGB image."""
        if self.render_mode != "rgb_array":
            return None
        from lrenv.plotting import episode_figure, figure_image

        return figure_image(episode_figure(**self.episode_trace()))

    def episode_trace(self) -> dict[str, list]:
        """This episode so far, as :func:`lrenv.plotting.episode_figure` draws it: each
        decision's rate with the SGD step where it stopped applying (``ends``, ``lrs``), and
        the validation losses from reset on (``val_steps``, ``val_losses``)."""
        trace = self.trace
        return {
            "ends": trace.ends(now=self.trainee.sgd_step),
            "lrs": list(trace.lr),
            "val_steps": list(trace.val_steps),
            "val_losses": list(trace.val_loss),
        }

    def set_lr(self, lr: float) -> None:
        """Set the learning rate exactly, bypassing the action and ``lr_bounds``.

        For hand-written schedules (step decay, cosine) that must run exactly as scheduled:
        call it, then ``step`` with action 0 (factor 1) to train at that rate.
        """
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"learning rate must be positive and finite, got {lr}")
        if self._obs is None:
            raise RuntimeError("call reset() before set_lr()")
        if self.action_mode != "scale":
            raise RuntimeError(
                f"set_lr needs action_mode='scale': under {self.action_mode!r} the next action "
                "sets the rate anew, so a rate set here would not hold"
            )
        self.trainee.set_lr(float(lr))
        self._obs[self.feature_names.index("log10_lr")] = math.log10(lr)

    @with_torch_threads
    def test_best(self) -> dict[str, float]:
        """Test loss and accuracy of this episode's best-validation checkpoint (``keep_best``)."""
        if not self.keep_best:
            raise RuntimeError("test_best() needs the env made with keep_best=True")
        result = self.trainee.test_best()
        return {
            "test_loss": result.loss,
            "test_accuracy": result.accuracy,
            "best_val_loss": self.trainee.best_val_loss,
        }

    def _diverged(self, train_loss: float) -> tuple[np.ndarray, float, bool, bool, dict]:
        remaining = (self.total_steps - self.trainee.sgd_step) // self.steps_per_action
        if self.reward == "delta":  # as if the run ended at the divergence threshold
            reward = self._last_val_loss - self.divergence_loss
        elif self.reward in ("log_delta", "vs_base"):
            reward = math.log(self._last_val_loss) - math.log(self.divergence_loss)
            if self.reward == "vs_base":  # the base's decrease from here to its end
                done = self.trainee.sgd_step // self.steps_per_action
                reward -= self._base_log_decrease(done, until=self.decisions)
        else:
            reward = -self.divergence_loss * (remaining + 1)
        reward -= self.final_reward_weight * self.divergence_loss + self._step_cost
        obs = self._obs.copy()
        obs[self.feature_names.index("log10_lr")] = math.log10(self.trainee.lr)
        if self.progress_feature:
            obs[self.feature_names.index("progress")] = self.trainee.sgd_step / self.total_steps
        self._obs = obs
        self._ended = "terminated: the trainee diverged"
        info = self._info(train_loss, math.nan, math.nan, diverged=True)
        self.trace.decision(
            self._step_start, self.trainee.lr, self.trainee.sgd_step, None, self._beta()
        )
        self.trace.finish(self.trainee.sgd_step, self.trainee.best_val_loss)
        info["episode_trace"] = self.trace
        return obs.copy(), float(reward), True, False, info

    def _base_losses_for(self, trainee_seed: int, lr: float) -> list[float]:
        """The base run's losses from ``trainee_seed`` at ``lr``: trained afresh, or with
        ``trainee_seeds`` set, trained once per seed and rate and then read back (the
        run is the same function of the seed and the rate every time)."""
        if self.trainee_seeds is None:
            return self._run_base(trainee_seed, lr)
        key = (trainee_seed, lr)
        if key not in self._base_runs:
            self._base_runs[key] = self._run_base(trainee_seed, lr)
        return self._base_runs[key]

    def _run_base(self, trainee_seed: int, lr: float) -> list[float]:
        """``reward="vs_base"``: the validation loss at reset and after each decision of
        the base schedule run alone (action 0) from ``trainee_seed``, with the same calls
        on the trainee as an episode makes; capped at ``divergence_loss``, which also
        stands for every decision after a divergence."""
        trainee = self.trainee
        trainee.reset(trainee_seed, lr)
        trainee.peek_train_loss()
        losses = [min(trainee.evaluate().loss, self.divergence_loss)]
        while len(losses) <= self.decisions:
            trainee.set_lr(self.base_schedule.lr_at(trainee.sgd_step, self.total_steps))
            train_loss = trainee.train_steps(self.steps_per_action)
            finite = math.isfinite(train_loss) and trainee.is_finite()
            loss = trainee.evaluate().loss if finite else math.inf
            if not loss < self.divergence_loss:
                losses += [self.divergence_loss] * (self.decisions + 1 - len(losses))
                break
            losses.append(loss)
        return losses

    def _base_log_decrease(self, decision: int, until: int | None = None) -> float:
        """``log Lb_{decision-1} - log Lb_until`` of the base run (``until``: ``decision``)."""
        losses = self._base_losses
        end = decision if until is None else until
        return math.log(losses[decision - 1]) - math.log(losses[end])

    def _beta(self) -> float | None:
        """Schedule-free SGD's beta in effect, for the trace; None without ``beta_factor``."""
        return None if self.beta_factor is None else self.trainee.beta

    def _features(self, train_loss: float, val_loss: float, probs) -> np.ndarray:
        progress = self.trainee.sgd_step / self.total_steps if self.progress_feature else None
        return compute_features(
            train_loss=train_loss,
            val_loss=val_loss,
            probs=probs,
            prev_probs=probs if self._probs is None or self.trainee.sgd_step == 0 else self._probs,
            weight=self.trainee.final_weight(),
            lr=self.trainee.lr,
            progress=progress,
            epochs=self.run_epochs if self.epochs_feature else None,
            transform=self.feature_transform,
            reference=self._reference,
        )

    def _info(self, train_loss: float, val_loss: float, val_accuracy: float, diverged: bool):
        return {
            "lr": self.trainee.lr,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "sgd_step": self.trainee.sgd_step,
            "best_val_loss": self.trainee.best_val_loss,
            "diverged": diverged,
        }


def resolve_divergence_loss(divergence_loss: float | None, num_classes: int) -> float:
    """``divergence_loss``, or by default twice the chance-level loss ``2 ln C``."""
    return 2.0 * math.log(num_classes) if divergence_loss is None else float(divergence_loss)


def looks_diverged(val_loss: float, obs: np.ndarray, divergence_loss: float) -> bool:
    """The divergence test after a decision's finite training steps: a validation loss
    above ``divergence_loss`` (or NaN), or a feature beyond ``OBS_LIMIT``.

    Shared with the drop-in scheduler, so both call the same runs diverged.
    """
    return not val_loss <= divergence_loss or not (np.abs(obs) <= OBS_LIMIT).all()


def scaled_lr(
    lr: float,
    action: float,
    factor_base: float,
    lr_bounds: tuple[float, float],
    action_mode: str = "scale",
) -> float:
    """The learning rate after an action.

    ``"scale"``: ``lr * factor_base ** action`` kept in ``lr_bounds``; an action of exactly
    0 keeps the rate as it is, even one set outside the bounds by ``set_lr``.
    ``"absolute"``: ``low * (high / low) ** ((action + 1) / 2)``, whatever ``lr`` was.
    Shared with the drop-in scheduler so both map actions alike.
    """
    low, high = lr_bounds
    if action_mode == "absolute":
        return float(low * (high / low) ** ((action + 1.0) / 2.0))
    if action == 0.0:
        return lr
    return float(np.clip(lr * factor_base**action, low, high))


def residual_lr(base_lr: float, action: float, factor_base: float) -> float:
    """The residual action's rate: ``base_lr * factor_base ** action`` (``base_lr`` at 0).

    Shared with the drop-in scheduler so both map actions alike. A base rate of 0 (the end
    of a decay to zero) stays 0 whatever the action.
    """
    return float(base_lr * factor_base**action)


def action_size(beta_factor: float | None) -> int:
    """Entries of the action: the rate's, and schedule-free SGD's beta's with ``beta_factor``."""
    return 1 if beta_factor is None else 2


def schedule_free_beta(action: float, beta_factor: float) -> float:
    """Schedule-free SGD's beta for the second action entry: ``1 - 0.1 * f ** action``."""
    return float(1.0 - (1.0 - SCHEDULE_FREE_BETA) * beta_factor**action)


def beta_action(beta: float, beta_factor: float) -> float:
    """The second action entry that sets ``beta`` (the inverse of
    :func:`schedule_free_beta`), clipped to [-1, 1]."""
    action = math.log((1.0 - beta) / (1.0 - SCHEDULE_FREE_BETA)) / math.log(beta_factor)
    return float(np.clip(action, -1.0, 1.0))


@functools.cache
def _env_defaults() -> tuple[tuple[str, Any], ...]:
    parameters = inspect.signature(LRScheduleEnv.__init__).parameters.values()
    return tuple((p.name, p.default) for p in parameters if p.default is not p.empty)


def env_defaults() -> dict[str, Any]:
    """The default of every keyword of :class:`LRScheduleEnv` (read from its signature):
    what an id's registered keywords and a user's keywords are merged over."""
    return dict(_env_defaults())
