"""The ablation script end to end on the synthetic task (agents/ablation.py)."""

from __future__ import annotations

import json

import pytest

from agents import ablation
from agents.run_folder import RunDir
from agents.selection import SNAPSHOTS


def test_quick_ablation_writes_table_and_resumes(tmp_path):
    argv = ["--out", str(tmp_path), "--preset", "smoke", "--quick", "--episodes", "2"]
    ablation.main([*argv, "--workers", "1"])
    table = (tmp_path / "table.md").read_text()
    for row in ("| paper |", "| start-0.1 |", "| step_decay: ", "| wsd: ", "| schedule_free: "):
        assert row in table
    report = json.loads((tmp_path / "ablation.json").read_text())
    assert set(report["controllers"]) == {"paper", "start-0.1"}
    runs = report["controllers"]["start-0.1"]["0"]
    assert len(runs) == ablation.QUICK.runs
    assert all(r["method"] == "controller" and r["test_loss"] > 0 for r in runs)

    controller = tmp_path / "controllers" / "paper-seed0" / "controller.zip"
    stamp = controller.stat().st_mtime_ns
    ablation.main([*argv, "--workers", "1"])  # everything cached: nothing retrained
    assert controller.stat().st_mtime_ns == stamp
    assert (tmp_path / "table.md").read_text() == table


def test_a_training_killed_between_save_final_and_the_finished_mark_is_finished_on_resume(
    tmp_path, monkeypatch
):
    """A kill after the final controller.zip is written but before the run is marked
    finished (snapshot selection still to come): the ablation's next pass finishes the run
    (the snapshot chosen on validation becomes the controller) instead of taking that
    controller.zip, the last policy, as the result."""
    design = ablation.DESIGNS["residual-sf-delta+select"]
    folder = tmp_path / "controller"
    save_final = RunDir.save_final

    def killed_after_save_final(self, model, env):
        save_final(self, model, env)
        raise Killed

    monkeypatch.setattr(RunDir, "save_final", killed_after_save_final)
    with pytest.raises(Killed):
        ablation.train_design(design, 0, 2, "smoke", folder)
    monkeypatch.undo()
    run = RunDir(folder)
    assert run.controller.exists() and not (folder / "selection.json").exists()
    assert run.last_checkpoint() is None  # two episodes: the finished mark is the first

    assert ablation.train_design(design, 0, 2, "smoke", folder) == run.controller
    assert run.last_checkpoint().progress["finished"]
    chosen = json.loads((folder / "selection.json").read_text())["chosen"]
    assert run.controller.read_bytes() == (folder / SNAPSHOTS / chosen).read_bytes()


class Killed(Exception):
    """Stands for the process killed at that moment."""
