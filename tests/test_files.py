"""lrenv.files.atomic_path: a file is written whole or not at all."""

from __future__ import annotations

import pytest

from lrenv.files import atomic_path


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_finished_write_replaces_the_file_with_the_usual_mode(tmp_path):
    path = tmp_path / "sub" / "state.json"
    with atomic_path(path) as tmp:
        assert tmp.parent == path.parent and tmp != path
        tmp.write_text("new")
    assert path.read_text() == "new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]
    assert path.stat().st_mode & 0o777 != 0o600  # not mkstemp's private mode
