"""The manual names what exists: every dotted ``lrenv.…`` and ``agents.…`` name in the docs
pages, the README and the packages' docstrings is an importable module or an attribute of
one, and docs/index.md lists every page."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md"))
# a dotted name that starts a word (not inside a path, a URL or another dotted name)
NAME = re.compile(r"(?<![\w./:-])((?:lrenv|agents)(?:\.[A-Za-z_]\w*)+)")
FILE_SUFFIXES = (".py", ".md", ".json", ".zip", ".safetensors")


def names_in(text: str) -> set[str]:
    """The dotted ``lrenv``/``agents`` names in ``text``; file names such as
    ``lrenv.data.py`` are paths, not names, and are left out."""
    names = {match.group(1) for match in NAME.finditer(text)}
    return {name for name in names if not name.endswith(FILE_SUFFIXES)}


def docstrings(path: Path) -> str:
    """Every docstring of a module: its own, its classes', functions' and methods'."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = [tree, *ast.walk(tree)]
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return "\n".join(ast.get_docstring(n) or "" for n in nodes if isinstance(n, kinds))


def resolves(name: str) -> bool:
    """Whether ``name`` is a module, or an attribute (of an attribute...) of a module."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as err:
            if err.name is not None and not name.startswith(err.name):
                raise  # the module exists but needs something missing: not a docs error
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def sources() -> dict[str, str]:
    texts = {str(p.relative_to(ROOT)): p.read_text() for p in [ROOT / "README.md", *PAGES]}
    for package in ("lrenv", "agents"):
        for path in sorted((ROOT / package).glob("*.py")):
            texts[str(path.relative_to(ROOT))] = docstrings(path)
    return texts


REFERENCES = sorted({(name, where) for where, text in sources().items() for name in names_in(text)})


@pytest.mark.parametrize(("name", "where"), REFERENCES)
def test_every_dotted_name_in_the_docs_exists(name, where):
    assert resolves(name), f"{where} names {name}, which does not exist"


def test_the_check_finds_names_and_refuses_a_wrong_one():
    assert names_in("see `lrenv.vector.BatchedEnvs` and agents/ablation.py") == {
        "lrenv.vector.BatchedEnvs"
    }
    assert resolves("lrenv.vector.BatchedEnvs.step") and resolves("agents.jobs")
    assert not resolves("agents.comparison.run_job")  # it lives in agents.jobs
    assert not resolves("lrenv.no_such_module")


def test_the_index_lists_every_page():
    index = (ROOT / "docs" / "index.md").read_text()
    listed = set(re.findall(r"\]\(([\w.-]+\.md)(?:#[\w-]*)?\)", index))
    missing = {p.name for p in PAGES} - listed - {"index.md"}
    assert not missing, f"docs/index.md does not list {sorted(missing)}"
