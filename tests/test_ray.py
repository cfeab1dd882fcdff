"""Trainees, selection grids and evaluation runs on a (local) Ray instance.

One local Ray instance serves the whole module; everything skips where Ray is absent.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file
from stable_baselines3.common.vec_env import DummyVecEnv
from tensorboard_scalars import scalars

import evaluate
from agents.env_factory import make_env

ray = pytest.importorskip("ray")

from agents.ray_cluster import EnvActorLostError, connect  # noqa: E402
from agents.ray_vec import RayVecEnv  # noqa: E402  (imports ray)

ENV_ID = "lrenv/Synthetic-v0"
SHORT = {"total_steps": 40}  # 4 decisions an episode


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray instance for this module's tests. Eight logical CPUs on two cores:
    the module's actors (held through several tests) must not leave the next test's
    trainees waiting for a free CPU forever; each uses one torch thread."""
    with connect("local", num_cpus=8) as module:
        yield module


def _actions(n_steps: int, n_envs: int) -> np.ndarray:
    return np.random.default_rng(7).uniform(-1, 1, (n_steps, n_envs, 1)).astype(np.float32)


def _roll(venv, actions: np.ndarray, kill_at: int | None = None) -> list[tuple]:
    """Step ``venv`` through ``actions`` from a seeded reset; kill env 1's actor before
    step ``kill_at``."""
    venv.seed(3)
    out = [(venv.reset(),)]
    for t, action in enumerate(actions):
        if t == kill_at:
            ray.kill(venv.actors[1], no_restart=True)
        obs, rewards, dones, infos = venv.step(action)
        terminal = [info.get("terminal_observation") for info in infos]
        out.append((obs, rewards, dones, terminal, [info["val_loss"] for info in infos]))
    return out


def _assert_same(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            if isinstance(u, list):
                for p, q in zip(u, v, strict=True):
                    np.testing.assert_allclose(p, q, rtol=1e-6) if p is not None else None
                    assert (p is None) == (q is None)
            else:
                np.testing.assert_allclose(u, v, rtol=1e-6)


@pytest.fixture(scope="module")
def venv(ray_local):
    """Two synthetic envs as Ray actors, shared by the tests below (an actor takes seconds
    to start on a busy two-core machine)."""
    envs = RayVecEnv(ENV_ID, SHORT, 2)
    yield envs
    envs.close()


@pytest.mark.slow
def test_ray_vec_env_steps_as_dummy_vec_env_does(venv):
    actions = _actions(10, 2)  # two and a half episodes: auto-resets included
    dummy = DummyVecEnv([lambda: make_env(ENV_ID, SHORT, 1)] * 2)
    _assert_same(_roll(venv, actions), _roll(dummy, actions))
    assert venv.get_attr("decisions") == [4, 4]


@pytest.mark.slow
def test_a_killed_actor_is_restarted_and_its_episode_redone(venv):
    actions = _actions(7, 2)
    expected = _roll(venv, actions)
    for kill_at in (2, 4):  # mid-episode; on the step that ends an episode
        first, restarts = venv.actors[1], venv.restarts[1]
        _assert_same(_roll(venv, actions, kill_at=kill_at), expected)
        assert venv.restarts == [0, restarts + 1] and venv.actors[1] != first


@pytest.mark.slow
def test_an_actor_lost_too_often_ends_the_run_with_a_clear_error(venv):
    venv.max_restarts = venv.restarts[1]
    with pytest.raises(EnvActorLostError, match=r"env 1 was lost \d+ times"):
        _roll(venv, _actions(3, 2), kill_at=1)


@pytest.mark.slow
def test_train_with_ray_gives_the_same_episodes_and_controller(ray_local, tmp_path, train_smoke):
    flags = ("--n-envs", "2", "--episodes", "4")
    local = train_smoke(tmp_path / "local", *flags)  # SubprocVecEnv
    remote = train_smoke(tmp_path / "ray", *flags, "--ray", "local")
    assert json.loads((remote / "config.json").read_text())["runtime"]["ray"] == "local"
    for tag in ("trainee/return", "trainee/best_val_loss", "trainee/final_val_loss"):
        expected = scalars(local, tag)
        assert len(expected) == 4
        np.testing.assert_allclose(scalars(remote, tag), expected, rtol=1e-5)
    ours, theirs = (load_file(str(run / "controller.safetensors")) for run in (remote, local))
    assert ours.keys() == theirs.keys()
    for name, tensor in theirs.items():
        np.testing.assert_allclose(ours[name], tensor, rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.slow
def test_evaluate_with_ray_writes_the_local_results(ray_local, tmp_path, smoke_run_folders):
    flags = ["--preset", "smoke", "--controller", str(smoke_run_folders["ppo"]), "--runs", "2"]
    flags += ["--baselines", "constant,cosine", "--grid-seeds", "1", "--no-progress"]
    flags += ["--env-kwargs", '{"total_steps": 40}']
    local = evaluate.main([*flags, "--workers", "1", "--out", str(tmp_path / "local")])
    remote = evaluate.main([*flags, "--ray", "local", "--out", str(tmp_path / "ray")])
    ours, theirs = (json.loads((out / "results.json").read_text()) for out in (remote, local))
    assert ours["config"]["ray"] == "local"
    assert len(theirs["runs"]) == 6
    for key in ("runs", "summary", "p_values", "chosen", "selection"):
        assert ours[key] == theirs[key], key


@pytest.mark.parametrize(
    ("threads", "gpus", "says"),
    [(1, 1.0, "missing: a node with 1 GPU"), (64, 0.0, "missing: a node with 64 CPU")],
)
def test_an_actor_no_node_can_hold_is_refused_at_once(ray_local, threads, gpus, says):
    from agents.ray_cluster import UnschedulableError

    with pytest.raises(UnschedulableError, match=says):
        RayVecEnv(ENV_ID, SHORT, 1, torch_threads=threads, gpus=gpus)


def test_actors_that_cannot_start_time_out_naming_the_resources(ray_local):
    """Two actors of 8 CPUs each on an 8-CPU instance: the second never starts."""
    from agents.ray_cluster import UnschedulableError

    with pytest.raises(UnschedulableError, match=r"did not start within 5 s: each asks for 8 CPU"):
        RayVecEnv(ENV_ID, SHORT, 2, torch_threads=8, schedule_timeout=5)
