"""The base schedule of a residual controller is chosen once: it is saved in the run folder
(base_selection.json) before training starts, so that a run stopped after the choice (and
before config.json was written) resumes with ``--resume`` without choosing again."""

from __future__ import annotations

import json

import pytest

import agents.training
import train
from agents.run_folder import RunDir
from tests.test_train import smoke


class Stopped(Exception):
    """Where a killed run would have died."""


def test_a_run_stopped_after_the_base_selection_resumes_without_redoing_it(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    chosen = []
    real_choose = agents.training.choose_base

    def choose(*args, **kwargs):
        chosen.append(args[2])
        return real_choose(*args, **kwargs)

    def stop(*args, **kwargs):
        raise Stopped

    monkeypatch.setattr(agents.training, "choose_base", choose)
    monkeypatch.setattr(agents.training, "training_envs", stop)
    with pytest.raises(Stopped):
        train.main(smoke(run.path, "--residual-over", "wsd", "--episodes", "2"))
    assert chosen == [["wsd"]] and not run.config_path.exists()
    saved = json.loads((run.path / "base_selection.json").read_text())
    assert saved["base"]["family"] == "wsd"

    monkeypatch.undo()
    monkeypatch.setattr(agents.training, "choose_base", choose)
    train.main(["--resume", str(run.path), "--no-progress"])
    assert chosen == [["wsd"]]  # not chosen again
    document = run.read_config()
    assert document["base_selection"] == saved["base"]
    assert document["config"]["env_kwargs"]["base_schedule"]["kind"] == "wsd"
    assert run.last_checkpoint().progress["finished"]
