"""``python -m agents.seed_table``: a design's zero-shot record over its training seeds."""

import json

import pytest

from agents.seed_table import design_rows, main, markdown, read_evaluations, seed_row

CARRIED = "transferred_schedule_free"
METHODS = ("replay", CARRIED, "schedule_free_default", "prodigy", "dadaptation", "oracle")
BASE = [1.0, 1.1, 0.9, 1.05, 0.95]  # one loss per trainee seed
JITTER = [0.0, 0.004, -0.004, 0.002, -0.002]  # the controller's own noise (mean 0)
OFFSETS = {  # each method's loss above the carried setting's
    "replay": 0.0,
    CARRIED: 0.0,
    "schedule_free_default": 0.2,
    "prodigy": 0.3,
    "dadaptation": 1.0,
    "oracle": -0.1,
}


def evaluation(folder, controller_offset: float, carried: str = CARRIED, tasks=("a", "b")):
    """A results.json as evaluate.py writes it, with the controller ``controller_offset``
    above the carried setting on every trainee seed of every task."""
    offsets = {"controller": controller_offset, **OFFSETS}
    losses = {m: [x + off for x in BASE] for m, off in offsets.items()}
    losses["controller"] = [x + j for x, j in zip(losses["controller"], JITTER, strict=True)]
    entries = [
        {"task": t, "methods": {m: {"test_loss": v, "n": len(v)} for m, v in losses.items()}}
        for t in tasks
    ]
    outcome = {m: ("win" if controller_offset < off else "loss") for m, off in OFFSETS.items()}
    record = {
        m: {"wins": 2 * (o == "win"), "ties": 0, "losses": 2 * (o == "loss")}
        for m, o in outcome.items()
    }
    per_task = [
        {"task": t, "versus": {m: {"outcome": o} for m, o in outcome.items()}} for t in tasks
    ]
    data = {
        "protocol": "zero-shot",
        "task_set": "default-v1",
        "split": "test",
        "best_transferred": carried,
        "tasks": entries,
        "zero_shot": {
            "record": record,
            "per_task": per_task,
            "regret": {"median": 0.01, "worst": 0.02},
            "normalized_score": 50.0,
        },
    }
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(data))
    return folder


def test_the_design_is_the_mean_of_its_controllers_paired_by_trainee_seed(tmp_path):
    folders = [evaluation(tmp_path / "s1", -0.02), evaluation(tmp_path / "s2", -0.04)]
    rows = design_rows(read_evaluations(folders))
    assert [row["task"] for row in rows] == ["a", "b"]
    row = rows[0]
    assert row["design"] == pytest.approx(1.0 - 0.03)
    assert row["range"] == pytest.approx((1.0 - 0.04, 1.0 - 0.02))
    outcomes = {m: v["outcome"] for m, v in row["methods"].items()}
    # a gap of 0.03 or more against noise of 0.004 is significant; the oracle is better
    assert outcomes == {
        "replay": "win",
        "carried": "win",
        "schedule_free_default": "win",
        "prodigy": "win",
        "dadaptation": "win",
        "oracle": "loss",
    }
    assert row["regret"] == pytest.approx((0.97 - 0.9) / 0.9)
    assert row["normalized_score"] == pytest.approx(100 * 0.03 / 0.1)
    summary = "The design: median regret 7.8%, worst 7.8%, normalized score 30.0"
    assert summary in markdown(folders, read_evaluations(folders))


def test_each_seed_keeps_its_own_record(tmp_path):
    folders = [evaluation(tmp_path / "s1", -0.02), evaluation(tmp_path / "s2", 0.5)]
    data = read_evaluations(folders)
    assert seed_row(data[0])["beats_all"] == 2 and seed_row(data[1])["beats_all"] == 0
    assert seed_row(data[1])["carried"] == {"wins": 0, "ties": 0, "losses": 2}
    text = markdown(folders, data)
    assert "| s1 | 2 of 2 | 2/0/0 |" in text and "| s2 | 0 of 2 | 0/0/2 |" in text


@pytest.mark.parametrize(
    "other",
    [{"carried": "transferred_cosine"}, {"tasks": ("a", "c")}],
    ids=["another carried setting", "other tasks"],
)
def test_evaluations_of_different_things_are_refused(tmp_path, other):
    folders = [evaluation(tmp_path / "s1", 0.0), evaluation(tmp_path / "s2", 0.0, **other)]
    with pytest.raises(ValueError, match=r"s2 evaluated other tasks.*compare like with like"):
        read_evaluations(folders)


def test_a_folder_without_results_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "results.json does not exist" in err and err.count("\n") == 1
