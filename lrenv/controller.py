"""A trained controller as data: a file that holds no code, and the object that runs it.

``controller.zip``, stable-baselines3's save, cloudpickles classes and objects, so that
loading one runs whatever code it names. train.py therefore writes, next to
every ``controller.zip``, a ``controller.safetensors`` (a snapshot's is named after its
zip: ``episode-000004.zip`` -> ``episode-000004.safetensors``) that holds:

- the actor's weights as tensors (safetensors: a JSON header and raw little-endian
  arrays; reading one parses the header and copies bytes, nothing else), under
  ``actor.`` (``actor.mlp.0.weight``, ``actor.action_net.weight``, ``actor.log_std``,
  ``actor.lstm.weight_ih_l0``, ...), and the observation statistics as
  ``normalization.mean`` / ``normalization.var`` (float32, exact);
- in the header's metadata, under the key ``"lrenv_controller"``, one JSON document:
  ``format`` / ``version``; ``algorithm`` ("PPO" or "RecurrentPPO"); ``actor``
  (``observation_size``, ``hidden_sizes``, ``activation``, ``action_size`` and ``lstm``:
  ``null`` or ``{"hidden_size", "num_layers"}``); ``action_space`` (``low``, ``high``);
  ``normalization`` (``null``, or ``{"epsilon", "clip"}`` with the arrays above as
  tensors); ``exploration`` (only ``"state-dependent"``, for a policy trained with gSDE,
  which then acts deterministically only; absent otherwise); ``config`` (train.py's
  resolved configuration: ``env_id``, ``env_kwargs``, ``preset``, ``recurrent``,
  ``episodes_done``, ...).

The description lives in the safetensors metadata rather than in a separate
``controller.json`` so that a controller is one file: it is written atomically as a
whole, weights and description can never come from different moments (a run killed
between two writes, or a snapshot copied without its partner), and sharing a controller
means sharing one file. The header is plain JSON at the start of the file
(``safetensors.safe_open(path, "pt").metadata()["lrenv_controller"]`` reads it).

:class:`Controller` rebuilds the actor in plain torch (``nn.Linear``, ``nn.Tanh``,
``nn.LSTM``) from that description and loads the weights; its deterministic ``predict``
gives stable-baselines3's deterministic actions (the Gaussian mean, clipped to the
action space; an LSTM state carried and reset at ``episode_start``), after the saved
observation normalisation ``clip((obs - mean) / sqrt(var + epsilon), -clip, clip)``, as
``VecNormalize`` applies it in training.

Nothing here imports stable-baselines3. Reading a ``controller.zip`` (which unpickles) is
possible only through the explicit :func:`agents.sb3_controller.load_untrusted_zip`, for files
the user trusts; ``load_untrusted_zip(zip).save(path)`` converts one into the code-free
format once. Evaluation, the drop-in scheduler and users all go through
:class:`Controller`, so they see the same statistics as training did.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch as th
from torch import nn

from lrenv.checks import is_integer

if TYPE_CHECKING:
    from lrenv.controller_contract import ControllerContract

CONTROLLER_FILE = "controller.safetensors"
"""Name of the code-free controller file in a run folder."""
ZIP_FILE = "controller.zip"
"""Name of stable-baselines3's save in a run folder (unpickles on load: trusted only)."""
PENDING_FILE = "controller.pending"
"""A folder that holds this file is still being made (a training run that has not
finished): :func:`controller_file` refuses the folder, giving the file's text as the
reason. Whoever makes the folder writes and removes it (train.py:
:class:`agents.run_folder.RunDir`); this module knows no run folder's other files."""
SUFFIX = ".safetensors"
FORMAT = "lrenv-controller"
VERSION = 1
METADATA_KEY = "lrenv_controller"
STATE_DEPENDENT = "state-dependent"
"""The description's ``"exploration"`` of a policy trained with gSDE (PPO's ``use_sde``):
its noise is a map of the actor's hidden layer, which the file does not hold, so the
controller acts deterministically only. Files of other policies have no such key."""

# Activations an actor may use, by the name the file gives. Only parameterless modules
# in their default configuration (checked on export), so the name says all there is.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}


class ControllerFileError(ValueError):
    """The file is missing, damaged, or not a controller saved by train.py."""


class Actor(nn.Module):
    """The deterministic part of a PPO / RecurrentPPO policy, in plain torch.

    ``observation -> [lstm] -> mlp -> action_net``: the Gaussian's mean. The critic is not
    kept: deciding needs only the actor.

    Args:
        observation_size: length of the (normalised) observation.
        hidden_sizes: widths of the MLP's hidden layers (stable-baselines3's
            ``net_arch["pi"]``; empty for the paper's LSTM actor).
        activation: the MLP's activation, a key of :data:`ACTIVATIONS`.
        action_size: length of the action.
        lstm: ``None`` for an MLP actor, else ``{"hidden_size", "num_layers"}`` of the LSTM
            in front of the MLP (sb3-contrib's ``lstm_actor``).

    Attributes:
        lstm: the ``nn.LSTM`` (``None`` for an MLP actor).
        mlp: ``nn.Sequential`` of ``nn.Linear`` and activation layers.
        action_net: the mean head, an ``nn.Linear`` (stable-baselines3's ``action_net``).
        log_std: the Gaussian's log standard deviation (used only when sampling).
    """

    def __init__(
        self,
        observation_size: int,
        hidden_sizes: list[int],
        activation: str,
        action_size: int,
        lstm: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        # The weights are loaded right after; building must not draw from torch's global
        # generator, which PPO samples from (train.py saves snapshots mid-training).
        with th.random.fork_rng(devices=[]):
            self.lstm = (
                None
                if lstm is None
                else nn.LSTM(observation_size, lstm["hidden_size"], num_layers=lstm["num_layers"])
            )
            last = observation_size if lstm is None else lstm["hidden_size"]
            layers: list[nn.Module] = []
            for size in hidden_sizes:
                layers += [nn.Linear(last, size), ACTIVATIONS[activation]()]
                last = size
            self.mlp = nn.Sequential(*layers)
            self.action_net = nn.Linear(last, action_size)
        self.log_std = nn.Parameter(th.zeros(action_size), requires_grad=False)
        self.requires_grad_(False)
        self.eval()

    def forward(
        self,
        obs: th.Tensor,
        state: tuple[th.Tensor, th.Tensor] | None = None,
        episode_start: th.Tensor | None = None,
    ) -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor] | None]:
        """The mean action of each observation, and the LSTM's next state.

        Args:
            obs: ``(n, observation_size)`` normalised observations, one per env.
            state: ``(h, c)``, each ``(num_layers, n, hidden_size)`` (LSTM only).
            episode_start: ``(n,)``; 1 where an episode starts, which zeroes that env's
                state first, as sb3-contrib does (LSTM only).

        Returns:
            ``(n, action_size)`` means and the new state (``None`` for an MLP actor).
        """
        features = obs
        if self.lstm is not None:
            assert state is not None and episode_start is not None
            keep = (1.0 - episode_start).view(1, -1, 1)
            output, (h, c) = self.lstm(obs.unsqueeze(0), (keep * state[0], keep * state[1]))
            features, state = output.squeeze(0), (h, c)
        return self.action_net(self.mlp(features)), state


class Controller:
    """Learning-rate decisions from a controller file that holds no code.

    Implements ``predict(obs, state, episode_start, deterministic)`` like a
    stable-baselines3 model, with the saved normalisation applied first.

    Args:
        actor: the actor network.
        description: the file's JSON document (see the module docstring).
        normalization: ``{"mean", "var", "epsilon", "clip"}``, or ``None``.

    Attributes:
        actor: the :class:`Actor` (``actor.action_net`` is the mean head).
        description: the file's JSON document.
        normalization: the observation statistics, or ``None``.
        config: the training configuration (``env_id``, ``env_kwargs``, ``preset``, ...).
        action_low: the action space's lower bounds.
        action_high: the action space's upper bounds.
    """

    def __init__(
        self,
        actor: Actor,
        description: dict[str, Any],
        normalization: dict[str, Any] | None,
    ) -> None:
        self.actor = actor
        self.description = description
        self.normalization = normalization
        self.config: dict[str, Any] = dict(description.get("config") or {})
        space = description["action_space"]
        self.action_low = np.asarray(space["low"], dtype=np.float32)
        self.action_high = np.asarray(space["high"], dtype=np.float32)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Controller:
        """Load a controller without running any code from the file.

        Args:
            path: a run folder, a ``controller.safetensors``, or a ``controller.zip`` (its
                sibling ``.safetensors`` is read instead).
            device: where the actor runs.

        Returns:
            The controller.

        Raises:
            ControllerFileError: when there is no controller at ``path``, the file is
                damaged or not a controller, or it is a zip with no code-free sibling
                (:func:`agents.sb3_controller.load_untrusted_zip` reads one you trust).
        """
        return cls._read(controller_file(path), device)

    def save(self, path: str | Path) -> None:
        """Write the code-free controller file (atomically).

        Args:
            path: the ``.safetensors`` file to write.
        """
        from safetensors.torch import save_file

        from lrenv.files import atomic_path

        tensors = {
            f"actor.{name}": tensor.detach().to("cpu", th.float32).contiguous().clone()
            for name, tensor in self.actor.state_dict().items()
        }
        if self.normalization is not None:
            for key in ("mean", "var"):
                array = np.asarray(self.normalization[key], dtype=np.float32)
                tensors[f"normalization.{key}"] = th.from_numpy(array.copy())
        metadata = {METADATA_KEY: json.dumps(self.description, sort_keys=True)}
        with atomic_path(Path(path)) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)

    @property
    def contract(self) -> ControllerContract:
        """The optimizer family and base schedule the controller was trained with, and
        what its action means (computed from :attr:`config`, the one source).

        Raises:
            ValueError: when the config's ``env_id`` is not a registered lrenv environment.
        """
        from lrenv.controller_contract import ControllerContract  # the env's keywords

        return ControllerContract.from_config(self.config)

    @property
    def is_recurrent(self) -> bool:
        """Whether the policy carries an LSTM state between decisions."""
        return self.actor.lstm is not None

    @property
    def observation_size(self) -> int:
        """Length of the observation vector the policy was trained on."""
        return int(self.description["actor"]["observation_size"])

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
        state: tuple[np.ndarray, np.ndarray] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
        """The action for a raw env observation (single or batched), and the next state.

        Args:
            observation: ``(observation_size,)`` or ``(n_envs, observation_size)``.
            state: the recurrent state the last call returned (``(h, c)``, each
                ``(num_layers, n_envs, hidden_size)``); ``None`` starts from zeros.
                Ignored (and returned as given) by an MLP controller.
            episode_start: ``(n_envs,)`` booleans; True resets that env's state.
            deterministic: the Gaussian's mean (True, what evaluation uses), or a sample
                of it drawn with torch's global generator.

        Returns:
            The action, ``(action_size,)`` or ``(n_envs, action_size)``, clipped to the
            action space, and the next state.

        Raises:
            ValueError: when the observation has the wrong shape, or ``deterministic`` is
                False for a controller trained with state-dependent exploration.
        """
        if not deterministic and self.description.get("exploration") == STATE_DEPENDENT:
            raise ValueError(
                "this controller was trained with state-dependent exploration (use_sde), "
                "whose noise its file does not hold: call predict with deterministic=True"
            )
        obs = self.normalize(observation)
        size = self.observation_size
        if obs.shape == (size,):
            vectorized = False
        elif obs.ndim == 2 and obs.shape[1] == size:
            vectorized = True
        else:
            raise ValueError(
                f"unexpected observation shape {obs.shape}; the controller reads "
                f"({size},) or (n_envs, {size})"
            )
        obs = obs.reshape(-1, size)
        n_envs = obs.shape[0]
        device = self.actor.action_net.weight.device
        tensors = None
        if self.is_recurrent:
            assert self.actor.lstm is not None
            shape = (self.actor.lstm.num_layers, n_envs, self.actor.lstm.hidden_size)
            if state is None:
                state = (np.zeros(shape, np.float32), np.zeros(shape, np.float32))
            if episode_start is None:
                episode_start = np.zeros(n_envs, dtype=bool)
            h, c = (th.as_tensor(np.asarray(s), dtype=th.float32, device=device) for s in state)
            if tuple(h.shape) != shape or tuple(c.shape) != shape:
                raise ValueError(f"the recurrent state must be two arrays of shape {shape}")
            starts = th.as_tensor(np.asarray(episode_start), dtype=th.float32, device=device)
            tensors = ((h, c), starts.reshape(n_envs))
        with th.no_grad():
            x = th.as_tensor(obs, device=device)
            mean, new_state = self.actor(x, *(tensors or ()))
            if not deterministic:
                mean = mean + th.randn_like(mean) * self.actor.log_std.exp()
        actions = np.clip(mean.cpu().numpy(), self.action_low, self.action_high)
        if new_state is not None:
            state = (new_state[0].cpu().numpy(), new_state[1].cpu().numpy())
        return (actions if vectorized else actions[0]), state

    @classmethod
    def _read(cls, path: Path, device: str) -> Controller:
        """Read a code-free controller file (see the module docstring)."""
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as file:
                metadata = file.metadata() or {}
                tensors = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118
        except Exception as err:  # the library's own error type varies by version
            raise ControllerFileError(
                f"{path} is not a readable controller file (damaged or not safetensors): {err}"
            ) from err
        if METADATA_KEY not in metadata:
            raise ControllerFileError(
                f"{path} holds tensors but no controller description; is it a "
                f"{CONTROLLER_FILE} written by train.py?"
            )
        try:
            description = json.loads(metadata[METADATA_KEY])
        except ValueError as err:
            raise ControllerFileError(f"{path}: the controller description is not JSON") from err
        _check_description(description, str(path))
        spec = description["actor"]
        actor = Actor(
            spec["observation_size"],
            spec["hidden_sizes"],
            spec["activation"],
            spec["action_size"],
            spec["lstm"],
        )
        weights = {
            k.removeprefix("actor."): v for k, v in tensors.items() if k.startswith("actor.")
        }
        try:
            actor.load_state_dict(weights, strict=True)
        except RuntimeError as err:
            raise ControllerFileError(
                f"{path}: the weights do not fit the described actor: {err}"
            ) from err
        normalization = None
        if description["normalization"] is not None:
            size = spec["observation_size"]
            arrays = {}
            for key in ("mean", "var"):
                tensor = tensors.get(f"normalization.{key}")
                if tensor is None or tuple(tensor.shape) != (size,):
                    raise ControllerFileError(
                        f"{path}: normalization.{key} is missing or not of shape ({size},)"
                    )
                arrays[key] = tensor.to(th.float32).numpy().copy()
            normalization = {**arrays, **description["normalization"]}
        return cls(actor.to(device), description, normalization)


class UntrustedZipError(ControllerFileError):
    """A stable-baselines3 zip with no code-free file beside it: loading it would unpickle."""


def code_free_path(path: str | Path) -> Path:
    """The code-free file that goes with a controller zip (``x.zip`` -> ``x.safetensors``)."""
    return Path(path).with_suffix(SUFFIX)


def controller_file(path: str | Path) -> Path:
    """The code-free controller file that ``path`` names.

    Args:
        path: a run folder, a ``.safetensors`` file, or a ``.zip`` with a code-free sibling.

    Returns:
        The ``.safetensors`` file to read.

    Raises:
        ControllerFileError: when nothing is there (the message names the path).
        UntrustedZipError: when ``path`` is (or the folder holds only) a zip with no
            code-free sibling.
    """
    path = Path(path)
    if path.is_dir():
        _refuse_pending(path)
        if (path / CONTROLLER_FILE).is_file():
            return path / CONTROLLER_FILE
        if (path / ZIP_FILE).is_file():
            raise _untrusted(path / ZIP_FILE)
        raise ControllerFileError(
            f"no controller in {path} (no {CONTROLLER_FILE}); train one with train.py"
        )
    if path.suffix == SUFFIX:
        if not path.is_file():
            raise ControllerFileError(f"no controller file at {path}; train one with train.py")
        return path
    sibling = code_free_path(path)
    if path.suffix == ".zip" and sibling.is_file():
        return sibling
    if not path.is_file():
        raise ControllerFileError(f"no controller file at {path}; train one with train.py")
    if zipfile.is_zipfile(path):
        raise _untrusted(path)
    return path  # another name: read it as a code-free file (it says if it is not one)


def _refuse_pending(folder: Path) -> None:
    """Refuse a folder that holds :data:`PENDING_FILE`: its controller files, if any, are
    not yet what the folder is being made for (a killed run's last policy, say)."""
    marker = folder / PENDING_FILE
    if not marker.is_file():
        return
    try:
        reason = marker.read_text().strip()
    except (OSError, UnicodeDecodeError):
        reason = ""
    raise ControllerFileError(
        f"{reason or f'{folder} is still being made'}  (or name {folder / CONTROLLER_FILE} "
        "to use the file as it is)"
    )


def _untrusted(path: Path) -> UntrustedZipError:
    return UntrustedZipError(
        f"{path} is a stable-baselines3 zip with no {code_free_path(path).name} beside it. "
        "Loading a zip unpickles it, which runs any code it holds, so it is not loaded by "
        "default. If you trust the file (e.g. your own run), load it with "
        "agents.sb3_controller.load_untrusted_zip(path), or convert it once: "
        f"load_untrusted_zip(path).save('{code_free_path(path).name}')."
    )


def _check_description(description: Any, where: str) -> None:
    """Raise ControllerFileError unless ``description`` is a controller description."""

    def fail(what: str) -> ControllerFileError:
        return ControllerFileError(f"{where}: bad controller description: {what}")

    def positive_int(value: Any) -> bool:
        return is_integer(value) and value > 0

    def finite(value: Any) -> bool:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )

    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise fail(f"format is not {FORMAT!r}")
    if description.get("version") != VERSION:
        raise fail(
            f"version {description.get('version')!r}; this lrenv reads version {VERSION} "
            "(a newer lrenv wrote it?)"
        )
    spec = description.get("actor")
    if not isinstance(spec, dict):
        raise fail("no actor")
    if not positive_int(spec.get("observation_size")) or not positive_int(spec.get("action_size")):
        raise fail("observation_size and action_size must be positive integers")
    hidden = spec.get("hidden_sizes")
    if not isinstance(hidden, list) or not all(positive_int(h) for h in hidden):
        raise fail("hidden_sizes must be a list of positive integers")
    if spec.get("activation") not in ACTIVATIONS:
        raise fail(f"activation must be one of {', '.join(ACTIVATIONS)}")
    lstm = spec.get("lstm")
    if lstm is not None and (
        not isinstance(lstm, dict)
        or set(lstm) != {"hidden_size", "num_layers"}
        or not all(positive_int(v) for v in lstm.values())
    ):
        raise fail("lstm must be null or {hidden_size, num_layers} (positive integers)")
    space = description.get("action_space")
    size = spec["action_size"]
    if not isinstance(space, dict) or not all(
        isinstance(space.get(k), list)
        and len(space[k]) == size
        and all(finite(x) for x in space[k])
        for k in ("low", "high")
    ):
        raise fail(f"action_space needs low and high: {size} finite numbers each")
    if any(lo > hi for lo, hi in zip(space["low"], space["high"], strict=True)):
        raise fail("action_space low exceeds high")
    norm = description.get("normalization", "missing")
    if norm is not None and (
        not isinstance(norm, dict)
        or set(norm) != {"epsilon", "clip"}
        or not all(finite(v) and v >= 0 for v in norm.values())
    ):
        raise fail("normalization must be null or {epsilon, clip} (finite, >= 0)")
    if description.get("exploration", STATE_DEPENDENT) != STATE_DEPENDENT:
        raise fail(f"exploration must be absent or {STATE_DEPENDENT!r}")
    if not isinstance(description.get("config", {}), dict):
        raise fail("config must be a JSON object")
    if not isinstance(description.get("contract", {}), dict):
        raise fail("contract must be a JSON object")
