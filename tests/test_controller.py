"""agents/sb3_controller.py: the controller file that holds no code, read without unpickling."""

from __future__ import annotations

import base64
import json
import pathlib
import pickle
import zipfile
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO

import evaluate
from agents.run_folder import RunDir
from agents.sb3_controller import load_untrusted_zip, save_controller
from lrenv.controller import CONTROLLER_FILE, Controller, ControllerFileError, controller_file
from lrenv.data import load_dataset
from lrenv.models import MLP
from lrenv.scheduler import LearnedLRScheduler


@pytest.fixture(scope="module")
def runs(smoke_run_folders):
    """A PPO and a RecurrentPPO run folder, two smoke episodes each."""
    return {kind: RunDir(path) for kind, path in smoke_run_folders.items()}


def observations(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Raw observations of the scale the env gives (losses, variances, log10 rates)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, size)) * [2.0] * size).astype(np.float32)


def small_trainee() -> tuple[torch.nn.Module, torch.optim.Optimizer, object]:
    """A synthetic-task MLP, its optimizer and 50 validation examples, for the scheduler."""
    data = load_dataset("synthetic")
    model = MLP(int(np.prod(data.image_shape)), data.num_classes, hidden=16)
    return model, torch.optim.SGD(model.parameters(), lr=0.01), data.val.head(50)


def sharpened(model, scale: float = 200.0):
    """The model with its mean head scaled up, so that actions reach the clipping bounds."""
    with torch.no_grad():
        model.policy.action_net.weight.mul_(scale)
        model.policy.action_net.bias.add_(0.5)
    return model


@pytest.mark.parametrize("sharpen", [False, True], ids=["trained", "clipped"])
def test_mlp_controller_acts_as_ppo_load_predict(runs, tmp_path, sharpen):
    run = runs["ppo"]
    assert run.controller_file.is_file() and run.controller.is_file()
    model = PPO.load(run.controller, device="cpu")
    path = run.controller_file
    if sharpen:
        save_controller(sharpened(model), tmp_path / "sharp.zip")
        path = tmp_path / "sharp.safetensors"
    controller = Controller.load(path)
    assert not controller.is_recurrent and controller.observation_size == 7
    raw = observations(16, 7)
    actions, state = controller.predict(raw)
    expected, _ = model.predict(controller.normalize(raw), deterministic=True)
    assert actions.shape == (16, 1) and state is None
    np.testing.assert_allclose(actions, expected, rtol=1e-6, atol=1e-7)
    if sharpen:  # the test reaches the bounds, where SB3 clips
        assert np.any(np.abs(actions) == 1.0) and np.any(np.abs(actions) < 1.0)
    single, _ = controller.predict(raw[3])
    assert single.shape == (1,)
    np.testing.assert_allclose(single, expected[3], rtol=1e-6, atol=1e-7)


def test_recurrent_controller_carries_and_resets_its_state_as_sb3(runs):
    run = runs["recurrent"]
    model = RecurrentPPO.load(run.controller, device="cpu")
    sharpened(model, 20.0)
    path = run.path / "sharp.safetensors"
    save_controller(model, path)
    controller = Controller.load(path)
    assert controller.is_recurrent and controller.observation_size == 8
    # four envs over six decisions; episodes start at different times
    starts = np.array(
        [[1, 1, 1, 1], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1], [0, 0, 0, 0]],
        dtype=bool,
    )
    ours, theirs = None, None
    for t, start in enumerate(starts):
        raw = observations(4, 8, seed=t)
        action, ours = controller.predict(raw, ours, start)
        expected, theirs = model.predict(
            controller.normalize(raw), theirs, start, deterministic=True
        )
        np.testing.assert_allclose(action, expected, rtol=1e-5, atol=1e-6)
        for a, b in zip(ours, theirs, strict=True):
            assert a.shape == b.shape == (1, 4, 32)
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # a single observation with its state, as the scheduler and the evaluation call it
    state = tuple(s[:, :1] for s in ours)
    raw = observations(1, 8, seed=9)[0]
    one, _ = controller.predict(raw, state, np.array([False]))
    expected, _ = model.predict(controller.normalize(raw), state, np.array([False]), True)
    assert one.shape == (1,)
    np.testing.assert_allclose(one, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["ppo", "recurrent"])
def test_the_file_holds_the_description_and_statistics(runs, kind):
    run = runs[kind]
    controller = Controller.load(run.path)
    trusted = load_untrusted_zip(run.controller)  # the same model, unpickled
    assert controller.description == trusted.description
    assert controller.config == trusted.config
    assert controller.config["env_id"] == "lrenv/Synthetic-v0"
    assert controller.config["recurrent"] == (kind == "recurrent")
    spec = controller.description["actor"]
    assert spec["activation"] == "tanh"
    if kind == "ppo":  # the paper's actor: one hidden layer of 32
        assert spec["hidden_sizes"] == [32] and spec["lstm"] is None
    else:  # the LSTM of 32 feeds the mean head directly
        assert spec["hidden_sizes"] == [] and spec["lstm"] == {"hidden_size": 32, "num_layers": 1}
    assert controller.description["action_space"] == {"low": [-1.0], "high": [1.0]}
    model = PPO.load(run.controller, device="cpu") if kind == "ppo" else None
    if model is not None:
        saved = model.lrenv_obs_normalization
        np.testing.assert_array_equal(controller.normalization["mean"], saved["mean"])
        np.testing.assert_array_equal(controller.normalization["var"], saved["var"])
        assert controller.normalization["clip"] == saved["clip"] == 10.0
        assert controller.normalization["mean"].dtype == np.float32
        assert torch.equal(controller.actor.log_std, model.policy.log_std.detach())
    # the zip path and the run folder name the same code-free file
    assert controller_file(run.controller) == controller_file(run.path) == run.controller_file


def test_loading_and_predicting_never_unpickle(runs, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("unpickling while loading a controller")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(cloudpickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    for kind, run in runs.items():
        for path in (run.path, run.controller_file, run.controller):  # the zip: its sibling
            controller = Controller.load(path)
            size = controller.observation_size
            action, state = controller.predict(observations(1, size)[0], None, np.array([True]))
            assert action.shape == (1,) and np.isfinite(action).all()
            assert (state is not None) == (kind == "recurrent")
    # the scheduler reads it the same way
    model, optimizer, val = small_trainee()
    scheduler = LearnedLRScheduler(optimizer, runs["ppo"].path, model=model, val_data=val)
    scheduler.start(2.3)
    assert scheduler.last_action is not None


def test_saving_does_not_draw_from_torchs_generator(runs, tmp_path):
    """train.py saves snapshots mid-training; PPO samples from the global generator."""
    for run in runs.values():
        model = (RecurrentPPO if "lstm" in run.path.name else PPO).load(run.controller)
        state = torch.get_rng_state()
        save_controller(model, tmp_path / f"{run.path.name}.safetensors")
        Controller.load(tmp_path / f"{run.path.name}.safetensors")
        assert torch.equal(torch.get_rng_state(), state)


class WritesMarker:
    """Unpickling this creates ``path``: a harmless stand-in for an attacker's payload."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def poisoned_zip(path: Path, marker: Path) -> Path:
    """A stable-baselines3-style zip whose ``data`` entry holds a cloudpickled payload."""
    payload = base64.b64encode(cloudpickle.dumps(WritesMarker(marker))).decode()
    data = {"policy_class": {":type:": "<class 'abc.ABCMeta'>", ":serialized:": payload}}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", json.dumps(data))
        archive.writestr("_stable_baselines3_version", "2.3.0")
    return path


def test_a_poisoned_zip_is_refused_everywhere_without_running(tmp_path, capsys):
    marker = tmp_path / "pwned"
    run = tmp_path / "downloaded"
    zip_path = poisoned_zip(run / "controller.zip", marker)
    for path in (zip_path, run):
        with pytest.raises(ControllerFileError) as refused:
            Controller.load(path)
        message = str(refused.value)
        assert str(zip_path) in message and "unpickles" in message
        assert "agents.sb3_controller.load_untrusted_zip" in message
    model, optimizer, val = small_trainee()
    with pytest.raises(ControllerFileError):
        LearnedLRScheduler(optimizer, zip_path, model=model, val_data=val)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["--controller", str(run), "--out", str(tmp_path / "eval")])
    assert exit_info.value.code == 2 and "unpickles" in capsys.readouterr().err
    assert not marker.exists()
    # the file really is poisoned: the explicit opt-in runs its payload
    with pytest.raises(ControllerFileError):
        load_untrusted_zip(zip_path)
    assert marker.exists()


def test_a_trusted_zip_loads_on_request_and_converts(runs, tmp_path):
    run = runs["recurrent"]
    copy = tmp_path / "controller.zip"
    copy.write_bytes(run.controller.read_bytes())
    with pytest.raises(ControllerFileError):
        Controller.load(copy)
    trusted = load_untrusted_zip(copy)
    trusted.save(tmp_path / CONTROLLER_FILE)
    converted = Controller.load(copy)  # now the sibling exists
    original = Controller.load(run.path)
    raw = observations(3, 8)
    start = np.ones(3, dtype=bool)
    for controller in (trusted, converted):
        np.testing.assert_array_equal(
            controller.predict(raw, None, start)[0], original.predict(raw, None, start)[0]
        )
    assert (tmp_path / CONTROLLER_FILE).read_bytes() == run.controller_file.read_bytes()


def corrupt(good: bytes, path: Path, how: str) -> None:
    if how == "garbage":
        path.write_bytes(b"\x00\x01not a safetensors file at all" * 10)
    elif how == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "no description":
        save_file({"actor.action_net.weight": torch.zeros(1, 32)}, str(path))
    else:  # a description that does not fit the weights, or does not parse
        from safetensors import safe_open

        with safe_open(str(path.with_name("good.safetensors")), "pt") as file:
            tensors = {k: file.get_tensor(k) for k in file.keys()}  # noqa: SIM118
            description = json.loads(file.metadata()["lrenv_controller"])
        if how == "wrong shapes":
            description["actor"]["hidden_sizes"] = [16]
            text = json.dumps(description)
        elif how == "bad activation":
            description["actor"]["activation"] = "os.system"
            text = json.dumps(description)
        elif how == "bad exploration":
            description["exploration"] = "curious"
            text = json.dumps(description)
        else:
            text = "{not json"
        save_file(tensors, str(path), metadata={"lrenv_controller": text})


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("garbage", "not a readable controller file"),
        ("truncated", "not a readable controller file"),
        ("empty", "not a readable controller file"),
        ("no description", "no controller description"),
        ("wrong shapes", "do not fit"),
        ("bad activation", "activation must be one of"),
        ("bad exploration", "exploration must be absent or"),
        ("bad json", "not JSON"),
    ],
)
def test_a_damaged_file_gives_a_clear_error(runs, tmp_path, how, says):
    good = runs["ppo"].controller_file.read_bytes()
    (tmp_path / "good.safetensors").write_bytes(good)
    path = tmp_path / CONTROLLER_FILE
    corrupt(good, path, how)
    for where in (path, tmp_path):
        with pytest.raises(ControllerFileError) as error:
            Controller.load(where)
        assert says in str(error.value) and str(path) in str(error.value)


@pytest.mark.parametrize("name", ["nothing", "nothing.safetensors", "nothing.zip", "empty-run"])
def test_a_missing_controller_names_the_path(tmp_path, name):
    path = tmp_path / name
    if name == "empty-run":
        path.mkdir()
    with pytest.raises(ControllerFileError) as error:
        Controller.load(path)
    assert str(path) in str(error.value)
