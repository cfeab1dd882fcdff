"""``python -m agents.probe``: what a controller does on each training task, beside its
untrained snapshot."""

import json
import shutil

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


def test_another_task_sets_training_split_is_probed_with_the_runs_interface(
    task_set_run, tmp_path, capsys
):
    between = tmp_path / "between.csv"
    between.write_text(
        "name,split,dataset,model,batch_size,total_steps,steps_per_action,val_size,initial_lr\n"
        "syn-mlp16-b32-s120,train,synthetic,mlp-16x1,32,120,10,200,0.01\n"
        "syn-mlp-b64-s30,train,synthetic,mlp,64,30,10,200,0.1\n"
        "never-read,test,synthetic,mlp,1,1,1,1,not-a-rate\n"  # held out: never parsed
    )
    rows = probe.main([str(task_set_run), "--workers", "1", "--task-set", str(between)])
    assert [row.task for row in rows] == ["syn-mlp16-b32-s120", "syn-mlp-b64-s30"]
    assert f"on {between}'s training split" in capsys.readouterr().out
    # the untrained snapshot on the run's own set gives what it gives without --task-set
    own = probe.probe(task_set_run, snapshot=0, workers=1, task_set="smoke")
    assert own == probe.probe(task_set_run, snapshot=0, workers=1)


def test_a_task_set_for_a_run_on_one_task_or_a_missing_set_is_one_line(
    task_set_run, tmp_path, capsys
):
    single = tmp_path / "single"
    shutil.copytree(task_set_run, single)
    config = json.loads((single / "config.json").read_text())
    config["config"]["env_id"] = "lrenv/Synthetic-v0"
    (single / "config.json").write_text(json.dumps(config))
    for run, task_set, message in [
        (single, "smoke", "--task-set needs a run trained on a task set"),
        (task_set_run, str(tmp_path / "none.csv"), "cannot read task set"),
    ]:
        with pytest.raises(SystemExit) as stop:
            probe.main([str(run), "--task-set", task_set])
        error = capsys.readouterr().err.strip().splitlines()
        assert stop.value.code == 2 and message in error[0] and len(error) == 1
