"""Child processes that do not outlive us, and telling whether a process has gone."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A Popen `preexec_fn` asking the kernel to send the child `sig` when we die, even by
    kill -9 (Linux; None elsewhere). The kernel sends it when the *thread* that forked exits,
    so call Popen from the main thread, or the child dies with a short-lived thread."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    except (OSError, AttributeError):
        return None
    argument = ctypes.c_ulong(int(sig))  # prctl reads unsigned longs
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, argument)  # if refused, the owner lock still finds the orphan later
        if os.getppid() != parent:
            raise OSError("the parent died before the child started")  # the signal would never come

    return preexec


def pid_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): kill(0) is all we know
    return state not in ("Z", "X")


def wait_gone(is_gone: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not is_gone():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def cmdline_of(pid: int) -> bytes | None:
    """The process's command line (NUL-separated), or None without /proc."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
