"""What each env keyword is for: the one place that classifies them.

An env's keywords play four roles, and every part of lrenv and agents that treats a
keyword by its role reads the lists here:

- :data:`TASK_KEYS` define the trainee task. Every registered id pins them, so presets
  never override them for an id the user names, and a task set's row fixes them.
- :data:`CONTROLLER_INTERFACE_KEYS` say how a controller's actions and observations are
  read. A controller keeps the values it was trained with wherever it is evaluated.
- :data:`SCHEDULER_SETTINGS` are what the drop-in scheduler needs to map decisions onto a
  user's training loop: the interface keys less the optimizer family and its warmup
  (which :mod:`lrenv.controller_contract` checks against the user's optimizer instead)
  and ``beta_factor`` with ``beta_once`` (a controller that sets schedule-free SGD's beta
  runs in the env only; the scheduler refuses it),
  plus the run's length and the divergence test.
- :data:`RUNTIME_KEYS` change where or how a run executes, never what it computes.

Every other keyword (the reward, the starting rate, ...) belongs to the training setup
and is free to change between training and evaluation.
"""

from __future__ import annotations

TASK_KEYS = ("dataset", "model", "batch_size", "total_steps", "steps_per_action", "val_size")
"""The keywords that define a trainee task. Every named id pins all of them, so a change of
:class:`lrenv.env.LRScheduleEnv`'s defaults can never silently change an id, and presets
never override them for an id the user names."""

CONTROLLER_INTERFACE_KEYS = (
    "steps_per_action",
    "factor_base",
    "action_mode",
    "base_schedule",
    "optimizer",
    "warmup_steps",
    "beta_factor",
    "beta_once",
    "lr_bounds",
    "feature_transform",
    "progress_feature",
    "epochs_feature",
)
"""Env keywords that say how a controller's actions and observations are read."""

SCHEDULER_SETTINGS = (
    "factor_base",
    "action_mode",
    "base_schedule",
    "lr_bounds",
    "feature_transform",
    "progress_feature",
    "epochs_feature",
    "steps_per_action",
    "total_steps",
    "divergence_loss",
)
"""The env keywords that decide how a controller's decisions map onto a training loop."""

RUNTIME_KEYS = ("device", "data_root", "keep_best", "torch_threads")
"""Env keywords that change where or how a run executes, not what task it is."""
