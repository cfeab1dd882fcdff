"""``python -m agents.probe``: what a controller does on each training task, beside its
untrained snapshot."""

import pytest

from agents import probe
from agents.selection import named_selection_tasks, selection_tasks
from agents.tasks import Task

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def task_set_run(tmp_path_factory):
    import train

    out = tmp_path_factory.mktemp("probe") / "run"
    train.main(
        [
            *("--preset", "smoke-tasks", "--episodes", "8", "--select-every", "4"),
            *("--no-progress", "--figure-every", "0", "--checkpoint-every", "0"),
            *("--out", str(out)),
        ]
    )
    return out


def test_a_row_per_training_task_with_the_untrained_snapshot_against_itself(task_set_run):
    rows = probe.probe(task_set_run, snapshot=0, workers=1)
    names = [
        name for name, _ in named_selection_tasks(Task("lrenv/TaskSet-v0", {"task_set": "smoke"}))
    ]
    assert [row.task for row in rows] == names and len(names) == 4
    # the same controller on the same seeds: the same rates and losses, exactly
    for row in rows:
        assert row.rate_ratio == 1.0 and row.change == 0.0 and row.beta is None


def test_the_kept_controller_and_the_printed_table(task_set_run, capsys):
    rows = probe.main([str(task_set_run), "--workers", "1", "--seeds", "2"])
    text = capsys.readouterr().out
    assert "the kept controller against the untrained snapshot" in text
    for row in rows:
        assert f"| `{row.task}` | {row.rate_ratio:.2f} |" in text
        assert row.untrained_loss > 0 and row.probed_loss > 0
    assert f"of {len(rows)} tasks" in text


def test_a_named_selection_task_is_the_task_selection_scores():
    task = Task("lrenv/TaskSet-v0", {"task_set": "smoke"})
    assert [t for _, t in named_selection_tasks(task)] == selection_tasks(task)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--snapshot", "3"], "episode-000003.safetensors does not exist; snapshots kept after"),
        (["--seeds", "0"], "--seeds and --workers must be >= 1"),
    ],
)
def test_bad_input_is_one_line(task_set_run, capsys, argv, message):
    with pytest.raises(SystemExit) as stop:
        probe.main([str(task_set_run), *argv])
    error = capsys.readouterr().err
    assert stop.value.code == 2 and message in error and len(error.strip().splitlines()) == 1


def test_a_folder_without_a_run_or_snapshots_is_refused(tmp_path, capsys, smoke_run_folders):
    with pytest.raises(SystemExit):
        probe.main([str(tmp_path)])
    assert "is not a run folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the smoke preset keeps no snapshots
        probe.main([str(smoke_run_folders["ppo"])])
    assert "train with --select-every > 0" in capsys.readouterr().err
