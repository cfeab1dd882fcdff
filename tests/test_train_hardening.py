"""train.py against damaged, poisoned and interrupted run folders: a resume
unpickles nothing, names a damaged file in one line, handles SIGTERM as Ctrl-C, cleans
up what killed writes left, keeps its run-time options and logs each episode once."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import shutil
import signal
import zipfile
from collections.abc import Callable
from pathlib import Path

import cloudpickle
import pytest
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv
from tensorboard_scalars import scalars

import train
from agents.checkpoints import read_normalization, restore_normalization
from agents.env_factory import make_env
from agents.run_folder import RunDir
from lrenv.controller import Controller, ControllerFileError

EPISODES = 6  # the smoke preset: 20 decisions an episode, 2 episodes a rollout


class WritesMarker:
    """Unpickling this creates ``path``: a harmless stand-in for an attacker's payload."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


class Stop(Exception):
    """Stands for a run killed mid-rollout."""


class AfterEpisodes(BaseCallback):
    """Call ``action`` once, at the step that finishes this session's ``episodes``-th
    episode."""

    def __init__(self, episodes: int, action: Callable[[], None]) -> None:
        super().__init__()
        self.episodes, self.action, self.seen = episodes, action, 0

    def _on_step(self) -> bool:
        self.seen += int(sum(self.locals["dones"]))
        if self.seen >= self.episodes and self.action is not None:
            action, self.action = self.action, None
            action()
        return True


def flags(out: Path, *extra: str) -> list[str]:
    return [
        *("--preset", "smoke", "--out", str(out), "--no-progress", "--figure-every", "0"),
        *("--episodes", str(EPISODES), "--checkpoint-every", "2", *extra),
    ]


def stop() -> None:
    raise Stop


@pytest.fixture(scope="module")
def interrupted_once(tmp_path_factory) -> Path:
    """A run killed after 3 of its 6 episodes; its last checkpoint holds 2."""
    out = tmp_path_factory.mktemp("interrupted") / "run"
    with pytest.raises(Stop):
        train.main(flags(out), callbacks=[AfterEpisodes(3, stop)])
    return out


@pytest.fixture
def interrupted(interrupted_once, tmp_path) -> RunDir:
    """A private copy of :func:`interrupted_once`."""
    shutil.copytree(interrupted_once, tmp_path / "run")
    run = RunDir(tmp_path / "run")
    assert run.last_checkpoint().progress["episodes_done"] == 2
    return run


def returns_logged(run: RunDir) -> int:
    return len(scalars(run.path, "trainee/return"))


def rewrite_data(zip_path: Path, change: Callable[[dict], None]) -> None:
    """Rewrite the ``data`` entry of a stable-baselines3 zip."""
    with zipfile.ZipFile(zip_path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(entries["data"])
    change(data)
    entries["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(zip_path, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)


def payload(marker: Path) -> dict[str, str]:
    serialized = base64.b64encode(cloudpickle.dumps(WritesMarker(marker))).decode()
    return {":type:": "<class 'abc.ABCMeta'>", ":serialized:": serialized}


def test_resume_unpickles_nothing_and_logs_each_episode_once(interrupted, tmp_path):
    marker = tmp_path / "pwned"
    checkpoint = interrupted.last_checkpoint()

    def poison(data: dict) -> None:
        for key, value in data.items():
            if isinstance(value, dict) and ":serialized:" in value:
                data[key] = payload(marker)

    rewrite_data(checkpoint.controller, poison)
    assert returns_logged(interrupted) == 3  # the third episode is past the checkpoint
    train.main(["--resume", str(interrupted.path), "--no-progress"])
    assert not marker.exists()
    progress = interrupted.last_checkpoint().progress
    assert progress["finished"] and progress["episodes_done"] == EPISODES
    # the third episode, replayed after the resume, is shown once
    assert returns_logged(interrupted) == EPISODES


def test_resume_removes_leftovers_and_keeps_checkpoint_every(interrupted):
    stale = [
        interrupted.path / ".controller.zip.abc123.tmp",
        interrupted.last_checkpoint().path / ".progress.json.x.tmp",
    ]
    for path in stale:
        path.write_bytes(b"half a write")
    staging = interrupted.checkpoints / ".episode-000004-step-000000080.q1w2e3"
    staging.mkdir()
    (staging / "controller.zip").write_bytes(b"half")
    every = []
    callback = AfterEpisodes(0, lambda: every.append(0))
    train.main(["--resume", str(interrupted.path), "--no-progress"], callbacks=[callback])
    assert not any(path.exists() for path in [*stale, staging])
    assert not list(interrupted.path.rglob("*.tmp"))
    assert not [p for p in interrupted.checkpoints.iterdir() if p.name.startswith(".")]
    assert interrupted.last_checkpoint().progress["checkpoint_every"] == 2


def test_sigterm_stops_like_ctrl_c_and_the_run_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exit_info:
        train.main(flags(out), callbacks=[AfterEpisodes(3, lambda: os.kill(os.getpid(), 15))])
    assert exit_info.value.code == 130
    assert signal.getsignal(signal.SIGTERM) is before
    printed = capsys.readouterr().out
    assert f"interrupted (episode 2); continue with: python train.py --resume {out}" in printed
    run = RunDir(out)
    train.main(["--resume", str(out), "--no-progress"])
    assert run.last_checkpoint().progress["finished"]
    assert Controller.load(out).observation_size == 7


def test_a_run_killed_before_it_marked_itself_finished_is_not_finished(interrupted):
    with pytest.raises(ControllerFileError, match="has not finished"):
        Controller.load(interrupted.path)
    train.main(["--resume", str(interrupted.path), "--no-progress"])
    Controller.load(interrupted.path)
    # killed between writing the final controller and marking the run finished: the
    # pointer says unfinished and the folder still holds its pending marker
    progress = json.loads(interrupted.pointer.read_text())
    interrupted.pointer.write_text(json.dumps({**progress, "finished": False}))
    interrupted._mark_pending()
    with pytest.raises(ControllerFileError, match=r"train\.py --resume"):
        Controller.load(interrupted.path)
    train.main(["--resume", str(interrupted.path), "--no-progress"])
    assert interrupted.last_checkpoint().progress["finished"]
    Controller.load(interrupted.path)


def _unknown_entry(run: RunDir, marker: Path) -> Path:
    path = run.last_checkpoint().controller
    rewrite_data(path, lambda data: data.update(lrenv_extra=payload(marker)))
    return path


def _truncated_zip(run: RunDir, marker: Path) -> Path:
    path = run.last_checkpoint().controller
    path.write_bytes(path.read_bytes()[:300])
    return path


def _corrupt_entry(run: RunDir, marker: Path) -> Path:
    path = run.last_checkpoint().controller
    content = bytearray(path.read_bytes())
    start = content.find(b"policy.pth") + 200  # inside that entry's compressed bytes
    content[start : start + 50] = bytes(50)
    path.write_bytes(bytes(content))
    return path


def _pointer(run: RunDir, marker: Path) -> Path:
    run.pointer.write_text('{"checkpoint": ')
    return run.pointer


def _pointer_elsewhere(run: RunDir, marker: Path) -> Path:
    run.pointer.write_text(json.dumps({"checkpoint": "../../etc"}))
    return run.pointer


def _statistics(run: RunDir, marker: Path) -> Path:
    path = run.last_checkpoint().vecnormalize
    state = json.loads(path.read_text())
    state["obs_rms"]["mean"] = state["obs_rms"]["mean"][:3]
    path.write_text(json.dumps(state))
    return path


def _legacy_pickle(run: RunDir, marker: Path) -> Path:
    checkpoint = run.last_checkpoint()
    checkpoint.vecnormalize.unlink()
    path = checkpoint.path / "vecnormalize.pkl"
    path.write_bytes(cloudpickle.dumps(WritesMarker(marker)))
    return path


def _config(run: RunDir, marker: Path) -> Path:
    run.config_path.write_text("[]")
    return run.config_path


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (_unknown_entry, "holds pickled entries this project does not write (lrenv_extra)"),
        (_truncated_zip, "not a readable zip"),
        (_corrupt_entry, "is damaged"),
        (_pointer, "not a JSON document"),
        (_pointer_elsewhere, "no checkpoint name"),
        (_statistics, "obs_rms.mean must be 7 finite numbers"),
        (_legacy_pickle, "resume with --trust-pickle"),
        (_config, "no 'config' object"),
    ],
    ids=lambda value: getattr(value, "__name__", "").strip("_") or None,
)
def test_damaged_or_foreign_resume_state_is_one_clear_line(
    interrupted, tmp_path, capsys, damage, says
):
    marker = tmp_path / "pwned"
    path = damage(interrupted, marker)
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--resume", str(interrupted.path), "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    message = err.strip().splitlines()[-1]
    assert message.startswith("train.py: error: ") and says in message
    assert str(path) in message
    assert not marker.exists()


@pytest.mark.parametrize("n_envs", ["1", "2"])
@pytest.mark.parametrize(
    ("env_kwargs", "says"),
    [
        ('{"total_steps": "20"}', "total_steps must be a positive integer"),
        ('{"final_reward_weight": NaN}', "final_reward_weight must be a finite number"),
        ('{"stepz": 3}', "unknown env keyword(s) 'stepz'"),
        ('{"dataset": "fashion_mnist", "data_root": "/no/such/dir"}', "not an existing folder"),
    ],
)
def test_bad_env_kwargs_are_one_line_before_any_worker_starts(
    tmp_path, capsys, env_kwargs, says, n_envs
):
    with pytest.raises(SystemExit) as exit_info:
        train.main([*flags(tmp_path / "run"), "--env-kwargs", env_kwargs, "--n-envs", n_envs])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and says in err.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("n_envs", ["1", "2"])
def test_a_trainee_that_cannot_load_its_data_is_reported(tmp_path, capsys, n_envs):
    """The damaged file is named in one line, also when it is a worker process that met it
    (agents.env_factory.subproc_vec_env makes the env here to raise the worker's own error)."""
    says = "is damaged or not a dataset file"
    data = tmp_path / "fmnist"
    data.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (data / name).write_bytes(b"\x00\x00\x08\x01garbage")
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (data / name).write_bytes(b"")
    env_kwargs = json.dumps({"dataset": "fashion_mnist", "model": "mlp", "data_root": str(data)})
    with pytest.raises(SystemExit) as exit_info:
        train.main([*flags(tmp_path / "run"), "--env-kwargs", env_kwargs, "--n-envs", n_envs])
    printed = capsys.readouterr().err.strip().splitlines()
    message = printed[-1] if printed else str(exit_info.value.code)
    assert says in message and "Traceback" not in message


def test_an_older_checkpoint_resumes_with_trust_pickle(interrupted, capsys):
    """A checkpoint of an older version keeps its statistics as vecnormalize.pkl."""
    checkpoint = interrupted.last_checkpoint()
    config = interrupted.read_config()["config"]
    state = read_normalization(checkpoint.vecnormalize)
    envs = DummyVecEnv([lambda: make_env(config["env_id"], config["env_kwargs"])])
    restore_normalization(state, envs).save(str(checkpoint.path / "vecnormalize.pkl"))
    checkpoint.vecnormalize.unlink()
    with pytest.raises(SystemExit):
        train.main(["--resume", str(interrupted.path), "--no-progress"])
    assert "--trust-pickle" in capsys.readouterr().err
    train.main(["--resume", str(interrupted.path), "--no-progress", "--trust-pickle"])
    assert interrupted.last_checkpoint().progress["finished"]
    assert (interrupted.last_checkpoint().path / "vecnormalize.json").is_file()


def test_training_on_a_held_out_split_is_refused_before_any_work(tmp_path, capsys):
    """A task set's held-out split stays unseen: train.py refuses ``split="test"``."""
    argv = ["--preset", "smoke-tasks", "--out", str(tmp_path / "run"), "--no-progress"]
    with pytest.raises(SystemExit) as exit_info:
        train.main([*argv, "--env-kwargs", '{"split": "test"}'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "training split only" in err.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()
