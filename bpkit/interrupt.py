"""Ctrl-C and SIGTERM end a bpkit command at once: one line, exit 128 + the signal's number, no traceback.

Python runs a signal's handler in the main thread between two bytecodes.  While the main thread
waits in compiled code (an XLA compile or a chunk of runs, which can take minutes) a Ctrl-C
waits too; and a ``KeyboardInterrupt`` lands wherever Python happens to be: in a garbage
collector callback, which swallows it (the command runs on), or in a thread's shutdown, which
aborts.  So for the command line (:func:`install`), the signal's C-level handler only writes its
number to a pipe (:func:`signal.set_wakeup_fd`, which Python does at the instant the signal
arrives), and a watcher thread reads it at once, prints one line and ends the process with
:func:`os._exit`.  Ending there is as safe for a results store as a ``kill -9``, which the store is
built for: every write is one SQLite transaction, all or nothing.  Pressed again, Ctrl-C finds the
process already ending.  The library itself never installs this: a program importing bpkit keeps
its own handlers.

Example:
    >>> from bpkit import interrupt
    >>> interrupt.say(lambda: "bpkit: interrupted; run the same command again to resume")
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_message: Callable[[], str] = lambda: "bpkit: interrupted"


def say(message: Callable[[], str]) -> None:
    """What the one line says when a signal ends the command (called then, in the watcher thread)."""
    global _message
    _message = message


def install() -> None:
    """From now on, SIGINT and SIGTERM end this process at once with the line :func:`say` set (a signal
    ignored when the process started, as a shell does for a background job, stays ignored).  Call it
    from the main thread, once, before the work starts."""
    read, write = os.pipe()
    os.set_blocking(write, False)
    for sig in SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:  # a signal the caller had ignored stays ignored
            signal.signal(sig, lambda signum, frame: None)  # Python code never sees the signal
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(read,), name="bpkit-signals", daemon=True).start()


def _watch(fd: int) -> None:
    signum = os.read(fd, 1)[0]
    try:
        line = _message()
    except Exception:  # the line must never keep the process from ending
        line = "bpkit: interrupted"
    os.write(2, f"\n{line}\n".encode())
    os._exit(128 + signum)
