"""What decides a training run's numbers: :class:`TrainConfig`, saved in config.json and
compared on ``--resume`` (:func:`config_differences`). The run folder it is saved in is
:mod:`agents.run_folder`'s; the options a session is asked with, :mod:`agents.train_options`'s.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from agents import validators
from agents.presets import PPOSettings, Preset, without_task_keys

LATER_PPO_SETTINGS = {
    name: getattr(PPOSettings(), name)
    for name in ("use_sde", "target_kl", "sde_draw", "anneal_lr", "family_advantages")
}
"""PPO settings added after runs were first written, with their defaults: left out of
``to_dict`` at the default, so that such runs' files stay byte-identical."""

FIELD_CHECKS: dict[str, Callable[[Any], Any]] = {
    "episodes": lambda v: validators.integer("episodes", v, 1, note="trainee episodes"),
    "n_envs": lambda v: validators.integer("n_envs", v, 1, 256, "trainees trained at once"),
    "select_seeds": lambda v: validators.integer(
        "select_seeds", v, 1, note="validation episodes each"
    ),
    "select_every": lambda v: validators.integer(
        "select_every", v, 0, note="0: keep the last policy"
    ),
    "confirm_seeds": lambda v: validators.integer(
        "confirm_seeds", v, 0, note="fresh validation episodes per task; 0: no confirmation"
    ),
    "seed": validators.check_seed,
    "recurrent": lambda v: validators.boolean("recurrent", v),
    "residual_over": validators.check_residual_over,
    "env_id": validators.check_env_id,
}
"""The validator of each configuration field that is checked on its own (an env id in
Gymnasium's registry only; nothing heavy imported), in the order
:meth:`TrainConfig.validate` checks them."""


def check_fields(values: Mapping[str, Any]) -> None:
    """Check each field in ``values`` that :data:`FIELD_CHECKS` knows, on its own: what
    train.py checks before its heavy imports, and :meth:`TrainConfig.validate` again.

    Raises:
        UsageError: naming the first bad field.
    """
    for name, check in FIELD_CHECKS.items():
        if name in values:
            check(values[name])


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a training run computes (compared on ``--resume``)."""

    preset: str
    """Name of the preset the run started from."""
    env_id: str
    """Gymnasium id of the trainee task."""
    env_kwargs: dict[str, Any]
    """Keywords passed to ``gym.make`` (the preset's, merged with ``--env-kwargs``)."""
    episodes: int
    """Trainee episodes to train on, over all envs."""
    n_envs: int
    """Trainees trained at once (one process each when more than one)."""
    seed: int = 0
    """Seed of the controller and of the trainees."""
    recurrent: bool = False
    """LSTM actor (sb3-contrib RecurrentPPO) instead of an MLP one."""
    select_every: int = 0
    """Keep a snapshot of the controller every N episodes (and the untrained one) and make
    the one with the best validation loss the controller (agents.selection); 0: the last."""
    select_seeds: int = 4
    """Validation episodes per snapshot in that selection."""
    confirm_seeds: int = 0
    """Fresh validation episodes per task on which the snapshot chosen, if a trained one,
    must beat the untrained snapshot (paired, p < 0.05) to be kept; else the untrained one
    is (agents.selection.confirm_snapshot). 0: no confirmation, as runs made before it."""
    residual_over: str = ""
    """Comma-separated baseline families (e.g. "wsd,schedule_free"): before training, choose
    the best member on validation as evaluate.py does and train a residual controller over
    it (agents.selection.choose_base); "" trains the controller as the env keywords say."""
    ppo: PPOSettings = field(default_factory=PPOSettings)
    """The controller's PPO settings."""

    @classmethod
    def from_preset(cls, preset: Preset) -> TrainConfig:
        """The configuration a preset gives when no flag overrides it.

        Args:
            preset: a named preset.

        Returns:
            The preset's task, budget and PPO settings, seed 0, an MLP actor.
        """
        return cls(
            preset=preset.name,
            env_id=preset.env_id,
            env_kwargs=dict(preset.env_kwargs),
            episodes=preset.episodes,
            n_envs=preset.n_envs,
            select_every=preset.select_every,
            select_seeds=preset.select_seeds,
            confirm_seeds=preset.confirm_seeds,
            residual_over=preset.residual_over,
            ppo=preset.ppo,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Read back :meth:`to_dict` (e.g. from ``config.json``).

        Args:
            data: the mapping.

        Returns:
            The configuration.
        """
        data = dict(data)
        required = [
            f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
        ]
        missing = [name for name in required if name not in data]
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        ppo = data.get("ppo", {})
        if isinstance(ppo, Mapping):
            unknown += [
                f"ppo.{k}" for k in sorted(set(ppo) - {f.name for f in fields(PPOSettings)})
            ]
        if missing or unknown or not isinstance(ppo, Mapping):
            what = [f"lacks {', '.join(missing)}"] if missing else []
            what += [f"has unknown {', '.join(unknown)}"] if unknown else []
            what += [] if isinstance(ppo, Mapping) else ["its ppo is not an object"]
            raise ValueError(
                f"the configuration {' and '.join(what)}: it is not one train.py wrote"
            )
        data["ppo"] = PPOSettings(**ppo)
        return cls(**data)

    def to_dict(self, complete: bool = False) -> dict[str, Any]:
        """The configuration as plain JSON values (tuples become lists). The PPO settings
        of :data:`LATER_PPO_SETTINGS` are written only when they differ from their default,
        so that a run without them writes what runs before they existed wrote (config.json
        and the controller files); ``complete=True`` keeps them all, for comparing."""
        data = dataclasses.asdict(self)
        for name, default in LATER_PPO_SETTINGS.items():
            if data["ppo"][name] == default and not complete:
                del data["ppo"][name]
        return _canonical(data)

    def with_overrides(
        self, given: Mapping[str, Any], ppo_given: Mapping[str, Any] | None = None
    ) -> TrainConfig:
        """A copy with the given fields replaced; ``env_kwargs`` is merged, not replaced.

        A new ``env_id`` brings its own task: the keywords that define a task
        (:data:`lrenv.TASK_KEYS`: dataset, model, batch size, ...) of the current
        configuration are dropped rather than carried over to it, so that a preset's task
        never changes the trainee of an id the user names. Keywords given in
        ``given["env_kwargs"]`` still apply.

        Args:
            given: new values of top-level fields (``preset`` included).
            ppo_given: new values of :class:`PPOSettings` fields.

        Returns:
            The new configuration.
        """
        changes = dict(given)
        env_kwargs = dict(self.env_kwargs)
        if changes.get("env_id") not in (None, self.env_id):
            env_kwargs = without_task_keys(env_kwargs)
            changes["env_kwargs"] = {**env_kwargs, **changes.get("env_kwargs", {})}
        elif "env_kwargs" in changes:
            changes["env_kwargs"] = {**env_kwargs, **changes["env_kwargs"]}
        if ppo_given:
            changes["ppo"] = dataclasses.replace(self.ppo, **ppo_given)
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Raise ValueError (:class:`agents.validators.UsageError`), saying what to change,
        for a configuration that cannot run; the env keywords are checked apart
        (:func:`lrenv.keywords.check_env_kwargs`)."""
        validators.check_preset(self.preset)
        if not isinstance(self.env_kwargs, dict):
            raise validators.UsageError(f"env_kwargs must be an object, got {self.env_kwargs!r}")
        check_fields({name: getattr(self, name) for name in FIELD_CHECKS})
        validators.check_ppo(self.ppo)
        if self.ppo.family_advantages:
            from lrenv.keywords import is_task_set_id  # loads torch: only when asked

            if not is_task_set_id(self.env_id):
                raise validators.UsageError(
                    "family_advantages standardises advantages within each task family, "
                    f"which only a task set (lrenv/TaskSet-v0) reports; {self.env_id} is "
                    "one task: leave family_advantages off"
                )
        if self.episodes % self.n_envs:
            raise ValueError(
                f"episodes ({self.episodes}) must be a multiple of n_envs ({self.n_envs}): "
                "every env trains whole episodes"
            )
        if self.ppo.episodes_per_rollout % self.n_envs:
            raise ValueError(
                f"episodes_per_rollout ({self.ppo.episodes_per_rollout}) must be a multiple "
                f"of n_envs ({self.n_envs})"
            )

    @property
    def algorithm(self) -> str:
        """``"RecurrentPPO"`` or ``"PPO"``."""
        return "RecurrentPPO" if self.recurrent else "PPO"

    def run_name(self, stamp: str) -> str:
        """A folder name that says env, algorithm and seed, e.g. ``Synthetic-ppo-seed0-STAMP``.

        Args:
            stamp: a timestamp (or any suffix).

        Returns:
            The name.
        """
        env = self.env_id.split("/")[-1].removesuffix("-v0")
        return f"{env}-{self.algorithm.lower()}-seed{self.seed}-{stamp}"


def config_differences(saved: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two :meth:`TrainConfig.to_dict` mappings.

    Args:
        saved: the run's configuration.
        requested: the one asked for now.

    Returns:
        One ``"key: saved -> requested"`` line per differing (nested) key.
    """
    out = []
    for key in sorted(set(saved) | set(requested)):
        a, b = saved.get(key, "<unset>"), requested.get(key, "<unset>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{line}" for line in config_differences(a, b)]
        elif a != b:
            out.append(f"{key}: {json.dumps(a)} -> {json.dumps(b)}")
    return out


def _canonical(value: Any) -> Any:
    """``value`` as the JSON round trip gives it back (tuples as lists, str keys)."""
    return json.loads(json.dumps(value))
