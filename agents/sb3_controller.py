"""A stable-baselines3 model as a code-free controller, and the one way to read a zip.

The code-free format and :class:`~lrenv.controller.Controller` that runs it live in
:mod:`lrenv.controller` (no RL library). Here, where stable-baselines3 is at hand:

- :func:`controller_from_model` and :func:`save_controller`: train.py's export of a PPO
  or RecurrentPPO model (its actor, the observation statistics and the run's config);
- :func:`load_untrusted_zip`: reading a stable-baselines3 ``controller.zip``, which
  **unpickles** it, for files the user trusts only.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from torch import nn

import lrenv
from lrenv.controller import (
    ACTIVATIONS,
    FORMAT,
    STATE_DEPENDENT,
    VERSION,
    Actor,
    Controller,
    ControllerFileError,
    _check_description,
    code_free_path,
)
from lrenv.controller_contract import ControllerContract


def controller_from_model(model: Any, device: str = "cpu") -> Controller:
    """The controller of a stable-baselines3 PPO or RecurrentPPO model (weights copied).

    Reads ``model.lrenv_obs_normalization`` and ``model.lrenv_config`` where train.py
    attached them.

    Args:
        model: the model.
        device: where the actor runs.

    Returns:
        The controller.

    Raises:
        ValueError: for a policy this format cannot describe (image or dict
            observations, state-dependent exploration, squashed actions, an actor that
            is not Linear and activation layers, a non-default LSTM).
    """
    policy = model.policy
    description, actor = _describe_policy(policy)
    norm = getattr(model, "lrenv_obs_normalization", None)
    normalization = None
    if norm is not None:
        normalization = {
            "mean": np.asarray(norm["mean"], dtype=np.float32).copy(),
            "var": np.asarray(norm["var"], dtype=np.float32).copy(),
            "epsilon": float(norm["epsilon"]),
            "clip": float(norm["clip"]),
        }
    description["normalization"] = (
        None
        if normalization is None
        else {"epsilon": normalization["epsilon"], "clip": normalization["clip"]}
    )
    description["config"] = json.loads(json.dumps(getattr(model, "lrenv_config", None) or {}))
    # the file states what the controller needs of a training loop (computed from config)
    description["contract"] = ControllerContract.from_config(description["config"]).to_dict()
    _check_description(description, "the model")
    return Controller(actor.to(device), description, normalization)


def load_untrusted_zip(path: str | Path, device: str = "cpu") -> Controller:
    """Load a stable-baselines3 ``controller.zip``, **unpickling it**.

    Unpickling runs any code the file names: use this only for files you trust
    (your own runs). ``load_untrusted_zip(zip).save(path)`` converts one
    into the code-free format, which everything else reads.

    Args:
        path: the zip (PPO or RecurrentPPO, whichever it holds).
        device: where the actor runs.

    Returns:
        The controller, with the same actor as the code-free file would give.

    Raises:
        ControllerFileError: when the file is missing or is not a saved controller.
    """
    path = Path(path)
    if not path.is_file():
        raise ControllerFileError(f"no controller file at {path}")
    if not zipfile.is_zipfile(path):
        raise ControllerFileError(f"{path} is not a stable-baselines3 zip")
    algorithm = _algorithm_of(path)
    try:
        model = algorithm.load(path, device="cpu")
    except Exception as err:  # a zip of something else: say so plainly
        raise ControllerFileError(f"{path} could not be loaded as a controller: {err}") from err
    return controller_from_model(model, device=device)


def save_controller(model: Any, path: str | Path) -> Path:
    """Write the code-free controller file of a stable-baselines3 model (atomically).

    Args:
        model: a PPO or RecurrentPPO model, with train.py's ``lrenv_obs_normalization``
            and ``lrenv_config`` attached where they exist.
        path: the ``.safetensors`` file, or a ``.zip`` path whose sibling to write.

    Returns:
        The file written.
    """
    path = code_free_path(path)
    controller_from_model(model).save(path)
    return path


def _describe_policy(policy: nn.Module) -> tuple[dict[str, Any], Actor]:
    """The JSON description of a policy's actor, and the actor with its weights copied."""
    from gymnasium import spaces
    from stable_baselines3.common.torch_layers import FlattenExtractor

    obs_space, action_space = policy.observation_space, policy.action_space
    if not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1:
        raise ValueError(f"only 1-D Box observations can be saved, not {obs_space}")
    if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
        raise ValueError(f"only 1-D Box actions can be saved, not {action_space}")
    if getattr(policy, "squash_output", False):
        raise ValueError("policies with squashed actions")
    state_dependent = bool(getattr(policy, "use_sde", False))
    extractor = getattr(policy, "pi_features_extractor", policy.features_extractor)
    if not isinstance(extractor, FlattenExtractor):
        raise ValueError(f"the actor's features extractor must be Flatten, not {extractor}")
    hidden: list[int] = []
    activation = "tanh"
    modules = list(policy.mlp_extractor.policy_net)
    for index, module in enumerate(modules):
        if index % 2 == 0:
            if not isinstance(module, nn.Linear):
                raise ValueError(f"the actor's layer {index} is {module}, not nn.Linear")
            hidden.append(module.out_features)
            continue
        name = next((k for k, v in ACTIVATIONS.items() if repr(module) == repr(v())), None)
        if name is None or (index > 1 and name != activation):
            raise ValueError(f"unsupported activation {module} in the actor")
        activation = name
    if len(modules) % 2:
        raise ValueError("the actor's MLP must alternate Linear and activation layers")
    lstm_module = getattr(policy, "lstm_actor", None)
    lstm = None
    if lstm_module is not None:
        m = lstm_module
        if not m.bias or m.batch_first or m.bidirectional or m.proj_size or m.dropout:
            raise ValueError(f"only default LSTMs can be saved, not {lstm_module}")
        lstm = {"hidden_size": lstm_module.hidden_size, "num_layers": lstm_module.num_layers}
    spec = {
        "observation_size": int(obs_space.shape[0]),
        "hidden_sizes": hidden,
        "activation": activation,
        "action_size": int(action_space.shape[0]),
        "lstm": lstm,
    }
    actor = Actor(**spec)
    with th.no_grad():
        actor.mlp.load_state_dict(policy.mlp_extractor.policy_net.state_dict())
        actor.action_net.load_state_dict(policy.action_net.state_dict())
        if not state_dependent:  # gSDE's log_std is a map, not one std per action entry
            actor.log_std.copy_(policy.log_std.detach().reshape(-1))
        if lstm_module is not None:
            assert actor.lstm is not None
            actor.lstm.load_state_dict(lstm_module.state_dict())
    actor.to("cpu")
    description = {
        "format": FORMAT,
        "version": VERSION,
        "algorithm": "RecurrentPPO" if lstm is not None else "PPO",
        "lrenv_version": lrenv.__version__,
        "actor": spec,
        "action_space": {
            "low": [float(x) for x in action_space.low],
            "high": [float(x) for x in action_space.high],
        },
    }
    if state_dependent:
        description["exploration"] = STATE_DEPENDENT
    return description, actor


def _algorithm_of(path: Path) -> type:
    """PPO, or sb3-contrib's RecurrentPPO when the saved policy is recurrent (unpickles)."""
    from sb3_contrib import RecurrentPPO
    from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
    from stable_baselines3 import PPO
    from stable_baselines3.common.save_util import load_from_zip_file

    try:
        data, _, _ = load_from_zip_file(path, load_data=True, device="cpu")
    except Exception as err:
        raise ControllerFileError(f"{path} is not a stable-baselines3 save: {err}") from err
    policy_class = (data or {}).get("policy_class")
    if not isinstance(policy_class, type):
        raise ControllerFileError(f"{path} holds no policy class; is it a controller.zip?")
    return RecurrentPPO if issubclass(policy_class, RecurrentActorCriticPolicy) else PPO
