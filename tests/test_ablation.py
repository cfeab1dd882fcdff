"""The ablation script end to end on the synthetic task (agents/ablation.py)."""

from __future__ import annotations

import json

from agents import ablation


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
