"""Worker processes that end when the process that started them dies, however it dies.

A worker blocked on a pipe read outlives a parent killed with SIGKILL: a
``ProcessPoolExecutor`` worker holds the write end of its own call queue, so its read never
sees end-of-file, and a ``SubprocVecEnv`` worker started by the multiprocessing forkserver
has the forkserver, not the main process, as its parent. :func:`die_with_parent`, called
first thing in a worker, makes the worker follow its parent in two ways:

- on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the worker when its
  parent exits (for a forkserver child, the forkserver, which exits when the main process
  is gone);
- a daemon thread that checks every ``poll`` seconds whether the parent has changed (the
  worker was re-parented) or the main process is gone, and then kills the worker: the
  fallback where prctl does not exist, and for the moment between the fork and the prctl
  call.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
"""``prctl`` option: the signal this process gets when its parent dies (linux/prctl.h)."""


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (a killed parent stays one until
    its own parent reaps it, and ``kill(pid, 0)`` still succeeds then).

    Args:
        pid: a process id.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    return True


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def die_with_parent(main_pid: int | None = None, poll: float = 1.0) -> None:
    """Make this process die when its parent (and ``main_pid``) dies.

    Call it first thing in a worker process (a pool initializer, an env factory).

    Args:
        main_pid: the process that owns the worker (``os.getpid()`` there, passed along);
            for a forkserver child, the main process rather than the forkserver.
        poll: seconds between the watchdog's checks.
    """
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    watched = [pid for pid in (parent, main_pid) if pid is not None and pid > 1]

    def gone() -> bool:
        return parent <= 1 or os.getppid() != parent or not all(alive(p) for p in watched)

    if gone():  # the parent died before prctl took effect
        _kill_self()

    def watch() -> None:
        while True:
            time.sleep(poll)
            if gone():
                _kill_self()

    threading.Thread(target=watch, name="lrenv-die-with-parent", daemon=True).start()
