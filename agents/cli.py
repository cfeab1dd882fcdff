"""What only the scripts do: command lines from dataclasses, and the session around a call.

Command lines, CleanRL style: each field is a flag, its docstring the help. A field
``n_envs: int | None = None`` with the string literal under it as its docstring becomes
``--n-envs N`` with that text in ``--help``. Flags the user does not give are left out of
the parsed result, so that callers can tell "not given" (take the preset's value) from
"given".

:func:`script_session` is what a script does around a library session and the library
never does: torch's thread count, SIGTERM, and exceptions turned into one line and an exit
code. This module imports no torch at import time, so that a bad command line fails fast.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import inspect
import itertools
import json
import shutil
import signal
import sys
import textwrap
import types
import typing
from collections.abc import Iterator
from typing import Any


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (the string literal after it).

    Args:
        cls: a dataclass defined in a source file.

    Returns:
        ``{field name: docstring}`` for the fields that have one.
    """
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


HELP_WIDTH = 100
"""The widest line ``--help`` prints (narrower on a narrower terminal)."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help at most :data:`HELP_WIDTH` columns wide; the description and epilog keep their
    line breaks (write them with :func:`wrap`)."""

    def __init__(self, prog: str) -> None:
        width = min(HELP_WIDTH, shutil.get_terminal_size((HELP_WIDTH, 24)).columns) - 2
        super().__init__(prog, width=width, max_help_position=32)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr, exit code 2: the message
    and a pointer to ``--help``, without the usage block above it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        """Print ``PROG: error: MESSAGE (see PROG --help)`` and exit with code 2."""
        usage_error(self.prog, message)


def usage_error(prog: str, message: str) -> typing.NoReturn:
    """Exit with code 2 after one line (a few for a message of several) on stderr.

    Args:
        prog: the script's name.
        message: what was wrong and how to fix it.
    """
    sys.stderr.write(f"{prog}: error: {message.strip()} (see {prog} --help)\n")
    raise SystemExit(2)


def wrap(text: str, width: int = HELP_WIDTH - 2) -> str:
    """Wrap each line of ``text`` to ``width`` columns, keeping its indentation (a
    continuation is indented two more).

    Args:
        text: lines of a description or an epilog.
        width: the widest line.

    Returns:
        The wrapped text.
    """
    out = []
    for line in text.splitlines():
        indent = line[: len(line) - len(line.lstrip())]
        out.append(
            textwrap.fill(
                line,
                width,
                subsequent_indent=indent + "  ",
                break_long_words=True,
                break_on_hyphens=False,
            )
            if line.strip()
            else ""
        )
    return "\n".join(out)


def json_object(text: str) -> dict[str, Any]:
    """Parse a JSON object given on the command line (argparse ``type``).

    Args:
        text: the flag's value.

    Returns:
        The decoded dict.

    Raises:
        argparse.ArgumentTypeError: for anything but a JSON object.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object like '{{\"key\": 1}}', got {text!r}"
        )
    return value


def add_dataclass_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    default_label: str | None = "default",
    defaults: dict[str, Any] | None = None,
) -> list[str]:
    """Add one ``--flag`` per field of ``cls``; unset flags stay out of the namespace.

    ``bool`` fields become ``--flag/--no-flag``; ``dict`` fields take a JSON object;
    ``X | None`` fields take an ``X``.

    Args:
        parser: a parser or an argument group.
        cls: the dataclass.
        default_label: append ``(LABEL: default)`` to each help; None to leave it out.
        defaults: the values to show instead of the fields' defaults (e.g. a preset's).

    Returns:
        The field names added (the ``dest`` of each flag).
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    names = []
    for f in dataclasses.fields(cls):
        kind = _base_type(hints[f.name])
        help_text = docs.get(f.name, "")
        default = f.default if f.default is not dataclasses.MISSING else None
        if defaults is not None and f.name in defaults:
            default = defaults[f.name]
        if default_label and default is not None:
            help_text += f" ({default_label}: {default})"
        flag = "--" + f.name.replace("_", "-")
        common = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
        elif kind is dict:
            parser.add_argument(flag, type=json_object, metavar="JSON", **common)
        else:
            parser.add_argument(flag, type=kind, metavar=f.name.upper(), **common)
        names.append(f.name)
    return names


def _base_type(hint: Any) -> type:
    """``int`` for ``int`` or ``int | None``; the origin for ``dict[str, Any]``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return typing.get_origin(hint) or hint


@contextlib.contextmanager
def script_session(prog: str, threads: int, *, sigterm: bool = False) -> Iterator[None]:
    """Within: a library session as a script runs it.

    - torch computes with ``threads`` threads in this process (the library leaves the
      count to its caller); the count before is restored after, for a caller of a
      script's ``main`` such as a test;
    - with ``sigterm``, SIGTERM (what cluster schedulers send) stops the session as Ctrl-C
      does, and later ones are ignored while it cleans up (closing its workers);
    - the session's exceptions become one line and an exit code: a usage error
      (:class:`agents.validators.UsageError`) 2, an interrupted run
      (:class:`agents.errors.RunInterrupted`, its continue command on stdout) 130, Ray's
      failures and a dead env worker 1.

    Args:
        prog: the script's name, as its error lines start.
        threads: torch's intra-op threads in this process (checked first: a bad count is
            a usage error).
        sigterm: handle SIGTERM as Ctrl-C.
    """
    from agents.errors import EnvWorkerError, RunInterrupted
    from agents.ray_cluster import EnvActorLostError, RayMissingError, UnschedulableError
    from agents.validators import UsageError, check_threads

    try:
        check_threads(threads)
    except UsageError as err:
        usage_error(prog, str(err))
    import torch

    saved_threads = torch.get_num_threads()
    saved_handler = signal.getsignal(signal.SIGTERM)
    torch.set_num_threads(threads)
    if sigterm:
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    except UsageError as err:
        usage_error(prog, str(err))
    except RunInterrupted as err:
        print(f"\n{err}")
        raise SystemExit(130) from None
    except (RayMissingError, EnvActorLostError) as err:  # their messages name what to do
        raise SystemExit(str(err)) from None
    except (UnschedulableError, EnvWorkerError) as err:
        raise SystemExit(f"{prog}: error: {err}") from None
    finally:
        if sigterm:
            signal.signal(signal.SIGTERM, saved_handler)
        torch.set_num_threads(saved_threads)


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM handler: stop as Ctrl-C does (a training run keeps its last checkpoint and
    prints the command that continues it); a second SIGTERM, while the session closes its
    workers, is ignored (a worker a signal reached already may be gone: closing its pipe
    fails)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")
