"""A trained controller as a drop-in learning-rate scheduler for any PyTorch training loop.

Users who train their own models add two lines to the loop they have, as with
``torch.optim.lr_scheduler``::

    scheduler = LearnedLRScheduler(optimizer, "runs/x", model=model,
                                   val_data=(x_val, y_val), total_steps=len(batches))
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step(loss)

Every ``every`` steps (the controller's ``steps_per_action`` by default) the scheduler
computes the env's observation with :func:`lrenv.features.compute_features` (the same
code as :class:`lrenv.env.LRScheduleEnv`), asks the controller for its deterministic
action, and sets the learning rate of the first parameter group as the env would
(:func:`lrenv.env.scaled_lr`, :func:`lrenv.env.residual_lr`); every other group keeps its
initial ratio to the first.

**Your rate is the scale.** As with ``torch.optim.lr_scheduler``, the scheduler scales the
rate you configured (``base_lrs``); it never imposes the controller's training rates on
your optimizer. The controller's contract (``scheduler.contract``, a
:class:`lrenv.controller_contract.ControllerContract`) names the optimizer family it was
trained on and its reference rate: a residual controller's base schedule is drawn with your rate as
its peak, so ``lr = your lr x base(t) / base peak x factor_base ** a``. The controller
observes and sets rates in its training units (``your rate / scale``), so it sees the
rates it learned on. An optimizer of the other family (schedule-free SGD for a controller
trained on plain SGD, or the other way round) is refused when the scheduler is made, in
one line that says what to pass.

**The first decision.** The env observes once at reset, before any SGD step (the training
loss of the first batch without a step, a validation pass, prediction-change variance 0),
and acts before each chunk of ``every`` steps. The scheduler makes its validation pass of
that initial observation when it is constructed, so build it right before the loop, with
the model in its initial state. Then either:

- call ``scheduler.start(first_batch_loss)`` before the first ``optimizer.step()``, with
  the loss of the first batch computed without a step: the first decision sets the
  learning rate of the very first step, and the whole decision sequence is the env's
  exactly (the equality test in ``tests/test_scheduler.py`` checks this); or
- just call ``step(loss)``: the first call takes its loss (the first batch's, computed
  before that update) as the initial training loss and makes the first decision then.
  The only difference from the env is that the first optimizer step runs at the rate
  the scheduler set when made (yours, or under residual control the base schedule's
  first rate at your scale, as the env's reset sets it); the decisions after it fall on
  the same steps as the env's (``every``, ``2 * every``, ...).

With ``total_steps`` given, decisions stop where the env's episode ends: the last one is
made at step ``total_steps - every`` and the rate stays as it is after that.
"""

from __future__ import annotations

import math
import warnings
from os import PathLike
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from lrenv.checks import is_real
from lrenv.controller import Controller
from lrenv.controller_contract import ControllerContract, trained_env_kwargs
from lrenv.data import Split
from lrenv.env import looks_diverged, residual_lr, resolve_divergence_loss, scaled_lr
from lrenv.env_config import check_action
from lrenv.features import FeatureReference, compute_features, feature_names_of
from lrenv.keyword_roles import SCHEDULER_SETTINGS
from lrenv.schedule_families import schedule_from_dict
from lrenv.scheduler_inputs import (
    cpu,
    device_of,
    evaluated_weights,
    find_feature_layer,
    loss_value,
    positive_int,
    validation_tensors,
)
from lrenv.trainee import Evaluation, evaluate_module


class LearnedLRScheduler(LRScheduler):
    """A trained lrenv controller driving the learning rate of any optimizer.

    Follows ``torch.optim.lr_scheduler``: call :meth:`step` with the batch's training loss
    after each ``optimizer.step()``; :meth:`get_last_lr`, :meth:`state_dict` and
    :meth:`load_state_dict` work as there (the state resumes training exactly). See the
    module docstring for how the first decision lines up with the env's.

    The features are the env's, computed by :func:`lrenv.features.compute_features`:

    - training loss: the mean of the losses passed to the last ``every`` :meth:`step` calls;
    - validation loss (cross-entropy, so ``model`` must return class logits ``(N, C)``)
      and softmax predictions: one forward pass over ``val_data`` in eval mode under
      ``torch.inference_mode``; each module's train/eval mode is restored afterwards;
    - mean and variance of the weights of the model's last ``nn.Linear`` (or of
      ``feature_layer``);
    - log10 of the first parameter group's learning rate;
    - with controllers trained with ``progress_feature``: ``steps done / total_steps``;
    - with controllers trained with ``epochs_feature``: ``log2(1 + total_steps /
      steps_per_epoch)``, the passes over your training set the whole run makes.

    The env settings that matter (``factor_base``, ``lr_bounds``, ``feature_transform``,
    ``progress_feature``, ``epochs_feature``, ``steps_per_action``) are the controller's
    training env's, from :func:`trained_env_kwargs`; ``settings`` holds them, and
    ``contract`` what they mean for your optimizer.

    Args:
        optimizer: an optimizer of the family the controller was trained on
            (``scheduler.contract``; ``Controller.load(path).contract.optimizer_class``
            before making one): for plain SGD any optimizer that is not schedule-free
            (SGD, Adam, AdamW, ...), for schedule-free SGD ``schedulefree.SGDScheduleFree``.
            Its first group's rate is the scale of the controller's rates (see the module
            docstring). A scale-mode controller (the paper's) keeps the rate inside its
            ``lr_bounds``, as the env's reset does; a warning says so when it has to.
        controller: a run folder train.py wrote (or its ``controller.safetensors``, a
            file that holds no code), or a loaded :class:`lrenv.controller.Controller`
            (``agents.sb3_controller.load_untrusted_zip`` reads a ``controller.zip`` you trust).
        model: the model being trained; its device is where the validation pass runs.
        val_data: the validation examples the features are measured on: ``(x, y)``
            tensors (or arrays), an object with ``images`` and ``labels`` (a
            :class:`lrenv.data.Split`), or an iterable of ``(x, y)`` batches (e.g. a
            ``DataLoader``), which is read once here and kept. ``y`` holds class indices.
            A subset of a few thousand examples is plenty (the cpu preset uses 2000).
        every: optimizer steps between decisions (default: the controller's
            ``steps_per_action``).
        total_steps: optimizer steps of the whole training run. Required for a
            controller trained with ``progress_feature``; when given, decisions stop
            where the env's episode would end.
        steps_per_epoch: optimizer steps per pass over your training set (``len`` of
            your ``DataLoader``). Required, with ``total_steps``, for a controller trained
            with ``epochs_feature``, and read only by it.
        feature_layer: the layer whose weights give the weight features, by name
            (``model.get_submodule(name)``) or as the module itself (default: the
            model's last ``nn.Linear``).
        controller_device: where a controller loaded from a path runs.

    Raises:
        lrenv.controller.ControllerFileError: ``controller`` is a path that does not hold
            a controller, or a zip with no code-free file beside it (never unpickled).
        ValueError: the model has no ``nn.Linear`` layer and no ``feature_layer`` is
            given; ``val_data`` has the wrong shape; the controller needs ``total_steps``
            or ``steps_per_epoch`` and it is missing; a learning rate is not positive.
        TypeError: ``optimizer`` has no ``param_groups``, or is not of the family the
            controller was trained on (the message says what to pass).

    Attributes:
        controller: the :class:`~lrenv.controller.Controller` deciding.
        settings: the controller's training-env settings (:data:`SCHEDULER_SETTINGS`).
        contract: the controller's :class:`~lrenv.controller_contract.ControllerContract`.
        base_lrs: each parameter group's rate when the scheduler was made (yours).
        scale: your first group's rate over the controller's reference rate (1 for a
            scale-mode controller): the controller's rates times this are yours.
        feature_names: the names of the observation entries.
        last_observation: the raw features of the last decision (``None`` before it).
        last_action: the controller's last action, clipped to [-1, 1].

    Example:
        >>> scheduler = LearnedLRScheduler(optimizer, "runs/cpu", model=model,
        ...                                val_data=(x_val, y_val), total_steps=5000)
        >>> # in the loop, after optimizer.step():
        >>> scheduler.step(loss)
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        controller: Controller | str | PathLike[str],
        *,
        model: nn.Module,
        val_data: Any,
        every: int | None = None,
        total_steps: int | None = None,
        steps_per_epoch: float | None = None,
        feature_layer: str | nn.Module | None = None,
        controller_device: str = "cpu",
    ) -> None:
        # torch.optim.lr_scheduler.LRScheduler.__init__ is not called (as in torch's own
        # ReduceLROnPlateau): it would take a step without a loss.
        if not hasattr(optimizer, "param_groups") or not optimizer.param_groups:
            raise TypeError(f"{type(optimizer).__name__} has no param_groups; pass an optimizer")
        self.optimizer = optimizer
        if not isinstance(controller, Controller):
            controller = Controller.load(controller, device=controller_device)
        self.controller = controller
        self.contract = ControllerContract.from_config(controller.config)
        if self.contract.beta_factor is not None:
            raise ValueError(
                f"this controller also sets schedule-free SGD's beta every decision "
                f"(beta_factor={self.contract.beta_factor:g}); the scheduler drives the "
                "rate only: run the controller in its env (evaluate.py) instead"
            )
        self.contract.check_optimizer(optimizer)
        env_kwargs = trained_env_kwargs(controller.config)
        self.settings = {name: env_kwargs[name] for name in SCHEDULER_SETTINGS}
        self.feature_names = feature_names_of(self.settings)
        if controller.observation_size != len(self.feature_names):
            raise ValueError(
                f"the controller's policy reads {controller.observation_size} features but "
                f"its training config gives {len(self.feature_names)} "
                f"({', '.join(self.feature_names)}); is the controller from train.py?"
            )
        self.every = positive_int(
            self.settings["steps_per_action"] if every is None else every, "every"
        )
        if total_steps is not None:
            total_steps = positive_int(total_steps, "total_steps")
        elif self.settings["progress_feature"]:
            raise ValueError(
                "this controller reads training progress (it was trained with "
                "progress_feature=True), so the scheduler needs total_steps: the number of "
                "optimizer steps of your whole run (the controller was trained on runs of "
                f"{self.settings['total_steps']} steps with a decision every "
                f"{self.settings['steps_per_action']})"
            )
        self.total_steps = total_steps
        self.steps_per_epoch = self._check_steps_per_epoch(steps_per_epoch)
        self.model = model
        self.layer = find_feature_layer(model, feature_layer)
        x, y = validation_tensors(val_data)
        self._val = (x.to(device_of(model)), y.to(device_of(model)))
        self._check_outputs()

        lr = float(optimizer.param_groups[0]["lr"])
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"the first parameter group's learning rate must be positive: {lr}")
        self.base_lrs = [float(group["lr"]) for group in optimizer.param_groups]
        # The user's rate stands for the controller's reference rate (see
        # lrenv.controller_contract): every rate of the controller, in its training units,
        # is multiplied by ``scale`` on this optimizer, as torch's schedulers scale base_lrs.
        reference = self.contract.reference_lr
        self.scale = 1.0 if reference is None else lr / reference
        self._ratios: list[float] = []
        self._extend_ratios(lr)
        first = self._reset_lr(lr / self.scale)
        if first * self.scale == lr:
            self._last_lr = [float(group["lr"]) for group in optimizer.param_groups]
        else:
            self._set_first_lr(first)

        self.last_epoch = 0  # torch's name for the number of step() calls
        self.started = False
        self.last_observation: np.ndarray | None = None
        self.last_action: float | None = None
        self._loss_sum: torch.Tensor | float = 0.0
        self._loss_count = 0
        self._prev_probs: torch.Tensor | None = None
        self._lstm_state: tuple[np.ndarray, ...] | None = None
        self._warned_past_end = False
        # The initial observation's validation pass and weights, before any step; used by
        # start() or the first step() (see the module docstring).
        with evaluated_weights(optimizer):
            evaluation = self._evaluate()
        self._initial_probe: dict[str, Any] | None = {
            "val_loss": evaluation.loss,
            "probs": evaluation.probs,
            "weight": self._weight().clone(),
        }
        # what feature_transform="relative" divides by: the env takes it at reset, the
        # same moment (the model before its first step)
        self._reference = FeatureReference.at_reset(evaluation.loss, self._weight())

    # ----- the torch.optim.lr_scheduler interface -----

    def start(self, first_batch_loss: torch.Tensor | float) -> None:
        """Make the first decision before the first optimizer step, as the env's reset does.

        Args:
            first_batch_loss: the training loss of the first batch, computed without a
                step (e.g. the loss of the first iteration, before ``optimizer.step()``).

        Raises:
            RuntimeError: when the scheduler has started already (by ``start`` or ``step``).
        """
        if self.started:
            raise RuntimeError("start() comes once, before the first step()")
        self._start(loss_value(first_batch_loss))

    def step(self, train_loss: torch.Tensor | float | None = None) -> None:  # type: ignore[override]
        """Count one optimizer step; every ``every`` steps, let the controller decide.

        Args:
            train_loss: the training loss of the batch of this step (a float or a
                one-element tensor; a tensor is read back only at decisions).

        Raises:
            TypeError: without ``train_loss``: the call of a per-epoch scheduler, which
                must move into the batch loop.
        """
        if train_loss is None:
            raise TypeError(
                "LearnedLRScheduler.step(train_loss) needs the training loss of the batch: "
                "call scheduler.step(loss) right after every optimizer.step(), inside the "
                "batch loop, not once per epoch (and give total_steps=epochs * "
                "len(train_loader) when you make the scheduler); see docs/scheduler.md"
            )
        loss = loss_value(train_loss)
        if not self.started:
            self._start(float(loss))
        self._loss_sum = self._loss_sum + loss
        self._loss_count += 1
        self.last_epoch += 1
        if self.last_epoch % self.every:
            return
        mean_loss = float(self._loss_sum) / self._loss_count
        self._loss_sum, self._loss_count = 0.0, 0
        if self.total_steps is not None and self.last_epoch >= self.total_steps:
            if self.last_epoch > self.total_steps and not self._warned_past_end:
                self._warned_past_end = True
                warnings.warn(
                    f"step() past total_steps={self.total_steps}: the learning rate stays "
                    f"at {self.get_last_lr()[0]:g}",
                    UserWarning,
                    stacklevel=2,
                )
            return
        with evaluated_weights(self.optimizer):
            evaluation = self._evaluate()
            self._decide(mean_loss, evaluation.loss, evaluation.probs, self._weight())

    def get_last_lr(self) -> list[float]:
        """The learning rate of each parameter group, as the scheduler last set it."""
        return list(self._last_lr)

    def get_lr(self) -> list[float]:
        """The learning rate of each parameter group now (decisions need a loss: see
        :meth:`step`)."""
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: step count, losses since the last decision,
        the last predictions, the controller's recurrent state, the current rates.

        Holds only tensors and Python values, so ``torch.save`` / ``torch.load`` (with
        ``weights_only=True``) round-trip it.
        """
        probe = self._initial_probe
        return {
            "last_epoch": self.last_epoch,
            "every": self.every,
            "total_steps": self.total_steps,
            "started": self.started,
            "loss_sum": float(self._loss_sum),
            "loss_count": self._loss_count,
            "prev_probs": cpu(self._prev_probs),
            "initial_probe": None
            if probe is None
            else {**probe, "probs": cpu(probe["probs"]), "weight": cpu(probe["weight"])},
            "lstm_state": None
            if self._lstm_state is None
            else tuple(torch.from_numpy(np.array(s)) for s in self._lstm_state),
            "ratios": list(self._ratios),
            "base_lrs": list(self.base_lrs),
            "scale": self.scale,
            "last_lr": list(self._last_lr),
            "last_observation": None
            if self.last_observation is None
            else torch.from_numpy(self.last_observation.copy()),
            "last_action": self.last_action,
            "warned_past_end": self._warned_past_end,
            "feature_reference": [self._reference.loss, self._reference.weight_std],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`, and set each parameter group's rate to the saved one.

        Args:
            state_dict: a dict from :meth:`state_dict`.

        Raises:
            ValueError: when the optimizer has a different number of parameter groups.
        """
        if len(state_dict["last_lr"]) != len(self.optimizer.param_groups):
            raise ValueError(
                f"the state has {len(state_dict['last_lr'])} parameter groups, the optimizer "
                f"{len(self.optimizer.param_groups)}"
            )
        self.last_epoch = int(state_dict["last_epoch"])
        self.every = int(state_dict["every"])
        self.total_steps = state_dict["total_steps"]
        self.started = bool(state_dict["started"])
        self._loss_sum = float(state_dict["loss_sum"])
        self._loss_count = int(state_dict["loss_count"])
        self._prev_probs = state_dict["prev_probs"]
        probe = state_dict["initial_probe"]
        self._initial_probe = None if probe is None else dict(probe)
        lstm = state_dict["lstm_state"]
        self._lstm_state = None if lstm is None else tuple(s.numpy().copy() for s in lstm)
        self._ratios = [float(r) for r in state_dict["ratios"]]
        # states saved before the scheduler scaled to the user's rate have neither
        self.base_lrs = [float(lr) for lr in state_dict.get("base_lrs", self.base_lrs)]
        self.scale = float(state_dict.get("scale", self.scale))
        observation = state_dict["last_observation"]
        self.last_observation = None if observation is None else observation.numpy().copy()
        self.last_action = state_dict["last_action"]
        self._warned_past_end = bool(state_dict["warned_past_end"])
        if "feature_reference" in state_dict:  # states saved before it was kept have none
            loss, weight_std = state_dict["feature_reference"]
            self._reference = FeatureReference(loss=float(loss), weight_std=float(weight_std))
        for group, lr in zip(self.optimizer.param_groups, state_dict["last_lr"], strict=True):
            group["lr"] = float(lr)
        self._last_lr = [float(lr) for lr in state_dict["last_lr"]]

    @property
    def last_features(self) -> dict[str, float] | None:
        """The last decision's raw features by name (for logging), or ``None``."""
        if self.last_observation is None:
            return None
        return dict(zip(self.feature_names, self.last_observation.tolist(), strict=True))

    # ----- decisions -----

    def _start(self, first_loss: float) -> None:
        probe = self._initial_probe
        self._initial_probe = None
        self.started = True
        # the env observes its reset without a divergence test on the loss: nor do we here
        self._decide(
            first_loss, probe["val_loss"], probe["probs"], probe["weight"], after_training=False
        )

    def _decide(
        self,
        train_loss: float,
        val_loss: float,
        probs: torch.Tensor,
        weight: torch.Tensor,
        after_training: bool = True,
    ) -> None:
        """Observe as the env does, ask the controller, and set the rates."""
        # the controller sees, and sets, rates in its training units
        lr = float(self.optimizer.param_groups[0]["lr"]) / self.scale
        prev_probs = probs if self._prev_probs is None else self._prev_probs.to(probs.device)
        progress = epochs = None
        if self.settings["progress_feature"]:
            progress = self.last_epoch / self.total_steps
        if self.settings["epochs_feature"]:
            epochs = self.total_steps / self.steps_per_epoch
        obs = compute_features(
            train_loss=train_loss,
            val_loss=val_loss,
            probs=probs,
            prev_probs=prev_probs,
            weight=weight,
            lr=lr,
            progress=progress,
            epochs=epochs,
            transform=self.settings["feature_transform"],
            reference=self._reference,
        )
        self._prev_probs = probs
        self.last_observation = obs
        divergence_loss = (
            resolve_divergence_loss(self.settings["divergence_loss"], int(probs.shape[-1]))
            if after_training
            else math.inf
        )
        if looks_diverged(val_loss, obs, divergence_loss):
            warnings.warn(
                f"training looks diverged at step {self.last_epoch} (features "
                f"{self.last_features}); the learning rate stays at "
                f"{self.optimizer.param_groups[0]['lr']:g}",
                RuntimeWarning,
                stacklevel=3,
            )
            return
        action, self._lstm_state = self.controller.predict(
            obs,
            state=self._lstm_state,
            episode_start=np.array([self._lstm_state is None]),
            deterministic=True,
        )
        self.last_action = check_action(action)
        if self.settings["action_mode"] == "residual":
            # the base schedule over this run's length, in training units (scaled on setting)
            total = self.total_steps or self.settings["total_steps"]
            base = schedule_from_dict(self.settings["base_schedule"]).lr_at(self.last_epoch, total)
            self._set_first_lr(residual_lr(base, self.last_action, self.settings["factor_base"]))
            return
        self._set_first_lr(
            scaled_lr(
                lr,
                self.last_action,
                self.settings["factor_base"],
                self.settings["lr_bounds"],
                self.settings["action_mode"],
            )
        )

    def _reset_lr(self, lr: float) -> float:
        """The rate the env's reset would start at, in training units, given the user's
        (``lr``, in training units): the base schedule's first rate under residual
        control, else the user's; kept in ``lr_bounds`` as the env does."""
        low, high = self.settings["lr_bounds"]
        if self.settings["action_mode"] == "residual":
            total = self.total_steps or self.settings["total_steps"]
            lr = schedule_from_dict(self.settings["base_schedule"]).lr_at(0, total)
        elif self.settings["action_mode"] == "scale" and not low <= lr <= high:
            warnings.warn(
                f"the initial learning rate {lr:g} is outside the controller's lr_bounds "
                f"{self.settings['lr_bounds']}; using {min(max(lr, low), high):g}, as the "
                "env does",
                UserWarning,
                stacklevel=3,
            )
        return min(max(lr, low), high)

    def _set_first_lr(self, lr: float) -> None:
        """Set the first group's rate to ``lr`` in training units (times :attr:`scale`);
        every other group keeps its initial ratio to it."""
        self._extend_ratios(float(self.optimizer.param_groups[0]["lr"]))
        for group, ratio in zip(self.optimizer.param_groups, self._ratios, strict=True):
            group["lr"] = lr * self.scale * ratio
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]

    def _extend_ratios(self, first_lr: float) -> None:
        """Record the ratio to the first group of groups not seen yet (``add_param_group``)."""
        groups = self.optimizer.param_groups
        self._ratios += [float(g["lr"]) / first_lr for g in groups[len(self._ratios) :]]

    # ----- measurements -----

    def _evaluate(self) -> Evaluation:
        """The validation pass: eval mode, inference mode; each module's mode restored."""
        device = device_of(self.model)
        if self._val[0].device != device:  # the model moved: the data follows it
            self._val = (self._val[0].to(device), self._val[1].to(device))
        modes = [(module, module.training) for module in self.model.modules()]
        try:
            return evaluate_module(self.model, Split(*self._val))
        finally:
            for module, training in modes:
                module.training = training

    def _weight(self) -> torch.Tensor:
        """The feature layer's weights as a matrix (a Linear's weight as it is)."""
        weight = self.layer.weight.detach()
        return weight if weight.dim() == 2 else weight.reshape(1, -1)

    def _check_steps_per_epoch(self, steps_per_epoch: Any) -> float | None:
        """``steps_per_epoch`` as a float, where the controller reads epochs; refused as
        missing or not a positive number there."""
        if not self.settings["epochs_feature"]:
            return None
        if steps_per_epoch is None or self.total_steps is None:
            raise ValueError(
                "this controller reads how many passes over its data a run makes (it was "
                "trained with epochs_feature=True), so the scheduler needs total_steps and "
                "steps_per_epoch: the optimizer steps of your whole run and of one pass over "
                "your training set (len(train_loader))"
            )
        if not (
            is_real(steps_per_epoch) and math.isfinite(steps_per_epoch) and steps_per_epoch > 0
        ):
            raise ValueError(f"steps_per_epoch must be a positive number, got {steps_per_epoch!r}")
        return float(steps_per_epoch)

    def _check_outputs(self) -> None:
        """ValueError unless the model maps the validation inputs to ``(N, C)`` logits that
        cover the labels."""
        x, y = self._val
        modes = [(module, module.training) for module in self.model.modules()]
        self.model.eval()
        try:
            with torch.inference_mode():
                logits = self.model(x[:2])
        except RuntimeError as err:  # e.g. inputs of the wrong size for the model
            raise ValueError(
                f"the model could not run on val_data inputs of shape {tuple(x.shape)}: {err}"
            ) from err
        finally:
            for module, training in modes:
                module.training = training
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or len(logits) != 2:
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits)
            raise ValueError(
                f"the model must map val_data inputs {tuple(x.shape)} to class logits of shape "
                f"(N, C); on 2 examples it returned {shape}"
            )
        classes = logits.shape[1]
        if int(y.max()) >= classes:
            raise ValueError(
                f"val_data labels go up to {int(y.max())} but the model gives {classes} logits"
            )
