"""A trained controller as one object: the PPO model, its saved observation
normalisation, and the configuration it was trained with.

``controller.zip`` is a plain stable-baselines3 save. train.py attaches two attributes to
the model before saving, which stable-baselines3 stores with it and restores on load:

- ``lrenv_obs_normalization``: ``{"mean", "var", "epsilon", "clip"}`` of the running
  observation statistics (``None`` when training did not normalise), applied as
  ``clip((obs - mean) / sqrt(var + epsilon), -clip, clip)``, as ``VecNormalize`` does;
- ``lrenv_config``: ``{"env_id", "env_kwargs", "preset", "recurrent", ...}``.

Evaluation, the drop-in scheduler and users all go through :class:`Controller`, so they
see the same statistics as training did.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.save_util import load_from_zip_file


class ControllerFileError(ValueError):
    """The file is not a controller saved by train.py."""


class Controller:
    """Deterministic learning-rate decisions from a trained PPO or RecurrentPPO model.

    Implements ``predict(obs, state, episode_start, deterministic)`` like a
    stable-baselines3 model, with the saved normalisation applied first.
    """

    def __init__(self, model: BaseAlgorithm) -> None:
        self.model = model
        self.normalization: dict[str, Any] | None = getattr(model, "lrenv_obs_normalization", None)
        self.config: dict[str, Any] = dict(getattr(model, "lrenv_config", {}) or {})

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Controller:
        """Load ``controller.zip`` (PPO or RecurrentPPO, whichever it holds).

        Raises:
            ControllerFileError: when the file is missing or is not a saved controller.
        """
        path = Path(path)
        if not path.is_file():
            raise ControllerFileError(f"no controller file at {path}; train one with train.py")
        if not zipfile.is_zipfile(path):
            raise ControllerFileError(
                f"{path} is not a stable-baselines3 zip; pass the controller.zip train.py wrote"
            )
        algorithm = _algorithm_of(path)
        try:
            model = algorithm.load(path, device=device)
        except Exception as err:  # a zip of something else: say so plainly
            raise ControllerFileError(f"{path} could not be loaded as a controller: {err}") from err
        return cls(model)

    @property
    def is_recurrent(self) -> bool:
        """Whether the policy carries an LSTM state between decisions."""
        return bool(getattr(self.model.policy, "lstm_actor", None) is not None)

    @property
    def observation_size(self) -> int:
        """Length of the observation vector the policy was trained on."""
        return int(self.model.observation_space.shape[0])

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """Apply the saved observation normalisation (identity when there is none)."""
        obs = np.asarray(obs, dtype=np.float32)
        if self.normalization is None:
            return obs
        n = self.normalization
        scaled = (obs - n["mean"]) / np.sqrt(n["var"] + n["epsilon"])
        return np.clip(scaled, -n["clip"], n["clip"]).astype(np.float32)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """The action for a raw env observation (single or batched), and the next state."""
        return self.model.predict(
            self.normalize(observation),
            state=state,
            episode_start=episode_start,
            deterministic=deterministic,
        )


def _algorithm_of(path: Path) -> type[BaseAlgorithm]:
    """PPO, or sb3-contrib's RecurrentPPO when the saved policy is recurrent."""
    from sb3_contrib import RecurrentPPO
    from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
    from stable_baselines3 import PPO

    try:
        data, _, _ = load_from_zip_file(path, load_data=True, device="cpu")
    except Exception as err:
        raise ControllerFileError(f"{path} is not a stable-baselines3 save: {err}") from err
    policy_class = (data or {}).get("policy_class")
    if not isinstance(policy_class, type):
        raise ControllerFileError(f"{path} holds no policy class; is it a controller.zip?")
    return RecurrentPPO if issubclass(policy_class, RecurrentActorCriticPolicy) else PPO
