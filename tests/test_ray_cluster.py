"""``--ray`` without Ray, and its addresses: no Ray needed (agents/ray_cluster.py)."""

from __future__ import annotations

import re
import sys

import pytest

import evaluate
import train
from agents.ray_cluster import RAY_MISSING, actor_options, connect, trainee_gpus


@pytest.fixture
def no_ray(monkeypatch):
    """``import ray`` fails, as where the extra is not installed."""
    monkeypatch.setitem(sys.modules, "ray", None)


def test_train_ray_flag_without_ray_says_how_to_install_it(no_ray, tmp_path, capsys):
    flags = ["--preset", "smoke", "--no-progress", "--out", str(tmp_path / "run")]
    with pytest.raises(SystemExit, match=re.escape('pip install -e ".[ray]"')):
        train.main([*flags, "--ray", "local"])
    assert not (tmp_path / "run" / "config.json").exists()


def test_evaluate_ray_flag_without_ray_says_how_to_install_it(no_ray, tmp_path):
    flags = ["--preset", "smoke", "--baselines", "constant", "--no-progress"]
    with pytest.raises(SystemExit, match=re.escape(RAY_MISSING)):
        evaluate.main([*flags, "--out", str(tmp_path / "eval"), "--ray", "local"])
    assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize("address", ["localhost:6379", "", "ray:/head:10001"])
def test_an_address_that_is_not_local_auto_or_ray_client_is_refused(address):
    with pytest.raises(ValueError, match=r"'local'.*'auto'.*'ray://HOST:10001'"), connect(address):
        pass


def test_trainees_ask_for_their_cores_a_gpu_on_cuda_and_spread_over_nodes():
    assert actor_options(2, trainee_gpus({"device": "cuda"})) == {
        "num_cpus": 2,
        "num_gpus": 1.0,
        "scheduling_strategy": "SPREAD",
    }
    assert trainee_gpus({}) == trainee_gpus({"device": "auto"}) == 0.0
    with pytest.raises(ValueError, match="at least one core"):
        actor_options(0)
