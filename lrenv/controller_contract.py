"""What a trained controller promises, and what it needs of the training loop it drives.

A controller learned its decisions on one optimizer and, for a residual controller, over
one base schedule, both at absolute rates (e.g. schedule-free SGD at 1.5). The drop-in
scheduler must not carry those absolute rates to a user's optimizer: a rate of 1.5 is
right for schedule-free SGD and a thousand times too high for Adam. So it follows
``torch.optim.lr_scheduler``, where a scheduler scales the rate the user configured
(``base_lrs``), and :class:`ControllerContract` says how:

- **the optimizer family**: the controller's decisions were learned on plain SGD
  (``torch.optim.SGD``, the env's ``optimizer="sgd"``) or on schedule-free SGD
  (``schedulefree.SGDScheduleFree``, ``optimizer="schedule_free"``). The two are not
  interchangeable: schedule-free SGD averages its iterates, evaluates at the average
  (``optimizer.eval()``) and runs at rates about ten times plain SGD's, with no decay; a
  schedule learned over it is no schedule for plain SGD, and a decaying schedule learned
  on plain SGD fights schedule-free's averaging. :meth:`ControllerContract.check_optimizer`
  refuses the other family in one line that names what to pass. Any non-schedule-free
  optimizer (SGD, Adam, AdamW, ...) counts as plain, since the scheduler only scales its
  rate.
- **the reference rate**: the rate, in the controller's training units, that the user's
  own rate stands for. Residual control (``lr = base(t) * factor_base ** a``): the base
  schedule's peak, so the user's rate replaces the base's peak and the base's shape is
  kept. Absolute control (``lr = low * (high / low) ** ((a + 1) / 2)``): the rate of
  action 0, the geometric centre of ``lr_bounds``. Scale control (the paper's
  ``lr *= factor_base ** a``): none, since every action already multiplies the rate in
  effect, which starts at the user's.

The contract is computed from the training configuration a controller file holds (its
``config``), so it can never disagree with the env the controller was trained in;
:meth:`lrenv.controller.Controller.save` also writes it into the file, as a statement
for people reading it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lrenv.env import env_defaults
from lrenv.keywords import is_task_set_id, resolve_env_kwargs, task_set_kwargs
from lrenv.schedule_families import schedule_from_dict

OPTIMIZER_CLASSES = {
    "sgd": "torch.optim.SGD (or any optimizer that is not schedule-free: Adam, AdamW, ...)",
    "schedule_free": "schedulefree.SGDScheduleFree",
}
"""What the env's ``optimizer`` keyword means, as a user's class."""


def trained_env_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """The keywords of the env a controller was trained on, every default filled in:
    :func:`lrenv.keywords.resolve_env_kwargs` of ``config["env_id"]`` and
    ``config["env_kwargs"]`` (an empty config gives the env's defaults).

    Args:
        config: a controller's training configuration (``Controller.config``).

    Returns:
        Every keyword of ``LRScheduleEnv`` (``lr_bounds`` as a tuple of floats).

    Raises:
        ValueError: when ``env_id`` is not a registered lrenv environment here.
    """
    env_id = config.get("env_id")
    env_kwargs = dict(config.get("env_kwargs") or {})
    if env_id:
        try:
            if is_task_set_id(str(env_id)):  # the keywords its tasks share (each row adds
                shared = task_set_kwargs(str(env_id), env_kwargs)  # its task's own)
                kwargs = {**env_defaults(), **shared}
            else:
                kwargs = resolve_env_kwargs(str(env_id), env_kwargs)
        except ValueError as err:
            raise ValueError(f"the controller was trained on {env_id!r}: {err}") from err
    else:
        kwargs = {**env_defaults(), **env_kwargs}
    kwargs["lr_bounds"] = tuple(float(bound) for bound in kwargs["lr_bounds"])
    return kwargs


def is_schedule_free(optimizer: Any) -> bool:
    """Whether ``optimizer`` is a schedule-free one (``schedulefree``'s classes: they have
    ``train()``/``eval()`` and a ``train_mode`` in their parameter groups)."""
    groups = getattr(optimizer, "param_groups", None) or [{}]
    return (
        callable(getattr(optimizer, "train", None))
        and callable(getattr(optimizer, "eval", None))
        and "train_mode" in groups[0]
    )


@dataclass(frozen=True)
class ControllerContract:
    """The optimizer family and base a controller was trained with, and its action's meaning.

    Args:
        optimizer: the env's ``optimizer``: ``"sgd"`` or ``"schedule_free"``.
        momentum: plain SGD's momentum in training.
        warmup_steps: schedule-free SGD's own warmup in training, in optimizer steps.
        action_mode: ``"scale"``, ``"absolute"`` or ``"residual"``.
        factor_base: the action's factor is ``factor_base ** a``, ``a`` in [-1, 1].
        lr_bounds: the env's ``lr_bounds``.
        base_schedule: a residual controller's base (a :mod:`lrenv.schedule_families`
            description), else ``None``.
        total_steps: optimizer steps of the training runs the controller learned on.
        beta_factor: the env's ``beta_factor``: the controller also sets schedule-free
            SGD's beta (None: it does not).
    """

    optimizer: str
    momentum: float
    warmup_steps: int
    action_mode: str
    factor_base: float
    lr_bounds: tuple[float, float]
    base_schedule: dict[str, Any] | None
    total_steps: int
    beta_factor: float | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ControllerContract:
        """The contract of a controller trained with ``config`` (``Controller.config``).

        Raises:
            ValueError: when ``config["env_id"]`` is not a registered lrenv environment.
        """
        kwargs = trained_env_kwargs(config)
        base = kwargs["base_schedule"] if kwargs["action_mode"] == "residual" else None
        return cls(
            optimizer=str(kwargs["optimizer"]),
            momentum=float(kwargs["momentum"]),
            warmup_steps=int(kwargs["warmup_steps"]),
            action_mode=str(kwargs["action_mode"]),
            factor_base=float(kwargs["factor_base"]),
            lr_bounds=kwargs["lr_bounds"],
            base_schedule=None if base is None else dict(base),
            total_steps=int(kwargs["total_steps"]),
            beta_factor=kwargs.get("beta_factor"),
        )

    @property
    def reference_lr(self) -> float | None:
        """The rate, in training units, that the user's configured rate stands for: the
        base schedule's peak (residual), the rate of action 0 (absolute), or ``None``
        (scale: the action multiplies the rate in effect, the user's own)."""
        if self.action_mode == "residual":
            return float(schedule_from_dict(self.base_schedule or {}).peak_lr)
        if self.action_mode == "absolute":
            low, high = self.lr_bounds
            return math.sqrt(low * high)
        return None

    @property
    def optimizer_class(self) -> str:
        """The optimizer to pass, by its import name."""
        return OPTIMIZER_CLASSES[self.optimizer]

    def describe_optimizer(self) -> str:
        """E.g. ``schedule-free SGD (warmup 50 steps)`` or ``plain SGD (momentum 0)``."""
        if self.optimizer == "schedule_free":
            return f"schedule-free SGD (warmup {self.warmup_steps} steps)"
        return f"plain SGD (momentum {self.momentum:g})"

    def describe_action(self) -> str:
        """What an action ``a`` in [-1, 1] does to the learning rate, in the user's terms."""
        factor = f"{self.factor_base:g} ** a"
        if self.action_mode == "residual":
            base = schedule_from_dict(self.base_schedule or {})
            return (
                f"lr = your lr x base(t) / {base.peak_lr:g} x {factor}, where base is the "
                f"{base.kind} schedule {base.describe()} it was trained over: a = 0 follows "
                "that schedule's shape with your rate as its peak"
            )
        if self.action_mode == "absolute":
            low, high = self.lr_bounds
            return (
                f"lr = your lr x r(a) / r(0), r(a) = {low:g} x ({high:g} / {low:g}) ** "
                "((a + 1) / 2): a = 0 sets your rate"
            )
        low, high = self.lr_bounds
        return f"lr = previous lr x {factor}, kept in [{low:g}, {high:g}]; it starts at yours"

    def check_optimizer(self, optimizer: Any) -> None:
        """Refuse an optimizer of the other family, in one line that says what to pass.

        Raises:
            TypeError: ``optimizer`` is schedule-free and the controller was trained on
                plain SGD, or the other way round, or the controller was trained on
                schedule-free SGD and ``optimizer`` is another schedule-free optimizer.
        """
        name = type(optimizer).__name__
        schedule_free = is_schedule_free(optimizer)
        if self.optimizer == "schedule_free":
            if schedule_free and name.startswith("SGDScheduleFree"):
                return
            raise TypeError(
                f"this controller was trained on {self.describe_optimizer()} and scales that "
                f"optimizer's rate; pass schedulefree.SGDScheduleFree(params, lr=..., "
                f"warmup_steps={self.warmup_steps}), not {name}"
            )
        if schedule_free:
            raise TypeError(
                f"this controller was trained on {self.describe_optimizer()} and schedules "
                f"plain optimizers; pass torch.optim.SGD (or Adam, AdamW, ...), not {name}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready statement of the contract, for the controller file."""
        return {
            "optimizer": self.optimizer,
            "optimizer_class": self.optimizer_class,
            "optimizer_settings": (
                {"warmup_steps": self.warmup_steps}
                if self.optimizer == "schedule_free"
                else {"momentum": self.momentum}
            ),
            "action_mode": self.action_mode,
            "base_schedule": self.base_schedule,
            "factor_base": self.factor_base,
            "reference_lr": self.reference_lr,
            "total_steps": self.total_steps,
            "action": self.describe_action(),
        } | (
            {}
            if self.beta_factor is None
            else {
                "beta_factor": self.beta_factor,
                "beta_action": f"schedule-free SGD's beta = 1 - 0.1 x {self.beta_factor:g} ** "
                "a[1]: a[1] = 0 keeps 0.9",
            }
        )
