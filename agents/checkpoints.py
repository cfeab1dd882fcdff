"""A run's resume state read as data: nothing in a checkpoint is unpickled
(a run folder may come from someone else, and unpickling runs the code it names).

A checkpoint holds three kinds of state, each read here without running code from it:

- the PPO model, ``controller.zip`` as stable-baselines3 saves it. Its tensors
  (``policy.pth``, ``policy.optimizer.pth``, ``pytorch_variables.pth``) are read by
  stable-baselines3 with ``torch.load(weights_only=True)``; its ``data`` entry is JSON in
  which some values are cloudpickled (``":serialized:"``): the policy class, the spaces,
  the schedules, the episode buffers. :func:`load_model` hands stable-baselines3 every one
  of them as a ``custom_objects`` entry, rebuilt from the run's configuration (a fresh
  model of the same configuration), so none of them is ever unpickled; a zip with a
  pickled entry we do not know is refused.
- the observation and return statistics of ``VecNormalize``, ``vecnormalize.json``:
  plain numbers (:func:`normalization_state`, :func:`restore_normalization`); an old
  run's ``vecnormalize.pkl`` is read only behind ``train.py --trust-pickle``.
- the recent episodes that ``rollout/ep_rew_mean`` averages, ``episode_stats.json``.

Every reader raises :class:`CheckpointError`, naming the file and what to do, for a file
that is missing, damaged or not what it should be.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

NORMALIZATION_FILE = "vecnormalize.json"
LEGACY_NORMALIZATION_FILE = "vecnormalize.pkl"
EPISODE_STATS_FILE = "episode_stats.json"

# The entries of a PPO / RecurrentPPO zip's "data" that stable-baselines3 cloudpickles,
# and what replaces each on load: taken from a fresh model of the same configuration, or
# reset (the envs are reset on resume, the buffers come from episode_stats.json).
REBUILT = (
    "policy_class",
    "observation_space",
    "action_space",
    "lr_schedule",
    "clip_range",
    "clip_range_vf",
    "rollout_buffer_class",
    "policy_kwargs",
    "rollout_buffer_kwargs",
)
RESET = (
    "_last_obs",
    "_last_episode_starts",
    "_last_original_obs",
    "ep_info_buffer",
    "ep_success_buffer",
    "lrenv_obs_normalization",
)


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged, or holds what it must not; the message names
    the file and the remedy."""


def _damaged(path: Path, what: str) -> CheckpointError:
    return CheckpointError(
        f"{path} is damaged ({what}). Restore it from a backup, or start a new run with "
        "another --out; this checkpoint cannot be resumed."
    )


def read_json_file(path: Path) -> Any:
    """A JSON document, or :class:`CheckpointError` naming the file when it is missing or
    not JSON.

    Args:
        path: the file.

    Returns:
        The decoded document.
    """
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; the run folder is incomplete") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _damaged(Path(path), f"not a JSON document: {err}") from None


# --- VecNormalize statistics ----------------------------------------------------------


def normalization_state(env: VecNormalize) -> dict[str, Any]:
    """What a resumed run needs of a ``VecNormalize``, as JSON values (floats are exact:
    Python's repr of a float64 reads back to the same bits).

    Args:
        env: the training env's normalisation wrapper.

    Returns:
        Its settings and running statistics.
    """

    def stats(rms: RunningMeanStd) -> dict[str, Any]:
        return {
            "mean": np.asarray(rms.mean, dtype=np.float64).reshape(-1).tolist(),
            "var": np.asarray(rms.var, dtype=np.float64).reshape(-1).tolist(),
            "count": float(rms.count),
            "shape": list(np.shape(rms.mean)),
        }

    return {
        "format": "lrenv-vecnormalize-1",
        "norm_obs": bool(env.norm_obs),
        "norm_reward": bool(env.norm_reward),
        "clip_obs": float(env.clip_obs),
        "clip_reward": float(env.clip_reward),
        "gamma": float(env.gamma),
        "epsilon": float(env.epsilon),
        "obs_rms": stats(env.obs_rms),
        "ret_rms": stats(env.ret_rms),
    }


def read_normalization(path: Path) -> dict[str, Any]:
    """Read and check a :func:`normalization_state` file.

    Args:
        path: a ``vecnormalize.json``.

    Returns:
        The state.

    Raises:
        CheckpointError: naming the file, for a missing or malformed one.
    """
    state = read_json_file(path)
    try:
        _check_normalization(state)
    except (KeyError, TypeError, ValueError) as err:
        raise _damaged(Path(path), f"not normalisation statistics: {err}") from None
    return state


def _check_normalization(state: Any) -> None:
    if not isinstance(state, dict) or state.get("format") != "lrenv-vecnormalize-1":
        raise ValueError("no 'format': 'lrenv-vecnormalize-1' entry")
    for key in ("norm_obs", "norm_reward"):
        if not isinstance(state[key], bool):
            raise TypeError(f"{key} must be true or false")
    for key in ("clip_obs", "clip_reward", "gamma", "epsilon"):
        if not _finite(state[key]):
            raise ValueError(f"{key} must be a finite number")
    for key in ("obs_rms", "ret_rms"):
        rms = state[key]
        size = math.prod(rms["shape"])
        if not all(isinstance(n, int) and n >= 0 for n in rms["shape"]):
            raise ValueError(f"{key}.shape must be sizes")
        for part in ("mean", "var"):
            values = rms[part]
            if len(values) != size or not all(_finite(v) for v in values):
                raise ValueError(f"{key}.{part} must be {size} finite numbers")
        if not _finite(rms["count"]):
            raise ValueError(f"{key}.count must be a finite number")


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def restore_normalization(state: Mapping[str, Any], venv: VecEnv) -> VecNormalize:
    """Wrap ``venv`` in a ``VecNormalize`` that continues from ``state`` (training mode).

    Args:
        state: a checked :func:`normalization_state`.
        venv: the unnormalised training envs.

    Returns:
        The wrapper, its statistics as saved.

    Raises:
        CheckpointError: when the statistics do not fit the envs' observations.
    """
    env = VecNormalize(
        venv,
        training=True,
        norm_obs=state["norm_obs"],
        norm_reward=state["norm_reward"],
        clip_obs=state["clip_obs"],
        clip_reward=state["clip_reward"],
        gamma=state["gamma"],
        epsilon=state["epsilon"],
    )
    for key in ("obs_rms", "ret_rms"):
        rms: RunningMeanStd = getattr(env, key)
        saved = state[key]
        shape = tuple(saved["shape"])
        if shape != tuple(np.shape(rms.mean)):
            raise CheckpointError(
                f"the saved {key} has shape {shape}, but the envs' is {np.shape(rms.mean)}: "
                "the normalisation statistics belong to another task"
            )
        rms.mean = np.asarray(saved["mean"], dtype=np.float64).reshape(shape)
        rms.var = np.asarray(saved["var"], dtype=np.float64).reshape(shape)
        rms.count = float(saved["count"])
    return env


# --- episode statistics -----------------------------------------------------------------


def episode_stats(model: BaseAlgorithm) -> list[dict[str, float]]:
    """The episodes ``rollout/ep_rew_mean`` averages now (``{"r", "l", "t"}`` each).

    Args:
        model: the model being trained.

    Returns:
        Plain JSON values.
    """
    return [
        {key: float(value) for key, value in info.items() if _finite(float(value))}
        for info in model.ep_info_buffer or ()
    ]


def read_episode_stats(path: Path, maxlen: int) -> deque:
    """The ``ep_info_buffer`` saved by :func:`episode_stats` (empty when the file is absent:
    a checkpoint of an older version).

    Args:
        path: an ``episode_stats.json``.
        maxlen: the model's stats window.

    Returns:
        The buffer.
    """
    if not Path(path).exists():
        return deque(maxlen=maxlen)
    stats = read_json_file(path)
    if not isinstance(stats, list) or not all(
        isinstance(info, dict) and all(_finite(v) for v in info.values()) for info in stats
    ):
        raise _damaged(Path(path), "not a list of episodes of numbers")
    return deque(
        ({k: (int(v) if k == "l" else v) for k, v in info.items()} for info in stats),
        maxlen=maxlen,
    )


# --- the PPO model ----------------------------------------------------------------------


def pickled_entries(path: Path) -> list[str]:
    """Check a stable-baselines3 zip and name the ``data`` entries that are pickled.

    Reads the archive's CRCs and its ``data`` JSON; unpickles nothing.

    Args:
        path: a ``controller.zip``.

    Returns:
        The keys whose values are cloudpickled.

    Raises:
        CheckpointError: when the file is missing, not a zip, damaged, or lacks the entries
            of a stable-baselines3 save.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the checkpoint is incomplete")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise _damaged(path, f"entry {bad!r} fails its CRC check")
            names = set(archive.namelist())
            missing = {"data", "policy.pth"} - names
            if missing:
                raise _damaged(path, f"no {', '.join(sorted(missing))} entry")
            data = json.loads(archive.read("data"))
    except (zipfile.BadZipFile, OSError, EOFError, UnicodeDecodeError) as err:
        raise _damaged(path, f"not a readable zip: {err}") from None
    except json.JSONDecodeError as err:
        raise _damaged(path, f"its 'data' entry is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise _damaged(path, "its 'data' entry is not a JSON object")
    return [k for k, v in data.items() if isinstance(v, dict) and ":serialized:" in v]


def load_model(
    path: Path,
    algorithm: type[BaseAlgorithm],
    template: Callable[[], BaseAlgorithm],
    env: VecEnv,
    *,
    device: str = "cpu",
    episode_stats_path: Path | None = None,
) -> BaseAlgorithm:
    """Load a checkpoint's model without unpickling any of it.

    Args:
        path: the checkpoint's ``controller.zip``.
        algorithm: the class to load it as (``TwoRatePPO`` or ``TwoRateRecurrentPPO``).
        template: builds a fresh model of the run's configuration on ``env``; its spaces,
            schedules, policy class and keywords replace the zip's pickled ones.
        env: the training envs.
        device: where the model runs.
        episode_stats_path: the checkpoint's ``episode_stats.json`` (None: start empty).

    Returns:
        The model, its weights, optimizer state and counters as saved.

    Raises:
        CheckpointError: for a damaged zip, or one holding a pickled entry this loader
            does not know (it would have to be unpickled to be read).
    """
    pickled = pickled_entries(path)
    unknown = sorted(set(pickled) - set(REBUILT) - set(RESET))
    if unknown:
        raise CheckpointError(
            f"{path} holds pickled entries this project does not write ({', '.join(unknown)}); "
            "reading them would run code from the file. It is not a train.py checkpoint."
        )
    fresh = template()
    custom: dict[str, Any] = {key: getattr(fresh, key, None) for key in REBUILT}
    custom |= {key: None for key in RESET}
    window = fresh._stats_window_size
    custom["ep_info_buffer"] = (
        read_episode_stats(episode_stats_path, window)
        if episode_stats_path is not None
        else deque(maxlen=window)
    )
    custom["ep_success_buffer"] = deque(maxlen=window)
    del fresh
    try:
        return algorithm.load(path, env=env, device=device, custom_objects=custom)
    except (KeyError, ValueError, RuntimeError, zipfile.BadZipFile, EOFError) as err:
        raise _damaged(Path(path), f"{type(err).__name__}: {err}") from None
