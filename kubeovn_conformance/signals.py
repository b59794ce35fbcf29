"""SIGTERM handled as Ctrl-C, and cleanup that a second signal cannot cut short.

CI cancellation, `timeout` and container stops send SIGTERM; Python's default for it ends
the process at once, so no `finally`, no fixture teardown and no JUnit. `interrupts()` turns
the first SIGTERM or SIGINT into KeyboardInterrupt, the path Ctrl-C takes (the runner and
the backends tear down on it, pytest finishes its session and writes JUnit). Every later
SIGTERM or SIGINT is ignored with one line on stderr, so the cleanup the first one started
is never left half done; SIGKILL still stops the process at once.

With pytest-xdist the main process also passes the signal on to its workers (its direct
children), as a terminal passes Ctrl-C to the whole process group: each worker then tears
its own backend down.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

HANDLED = (signal.SIGTERM, signal.SIGINT)


def child_pids(pid: int | None = None) -> list[int]:
    """Direct children of `pid` (default: this process), from /proc."""
    parent = os.getpid() if pid is None else pid
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(parent):
            found.append(int(entry.name))
    return found


class Interrupts:
    """The installed handlers: `restore()` puts the previous ones back."""

    def __init__(self, prog: str, forward: Callable[[], bool] | None = None,
                 announce: bool = True) -> None:
        self.prog = prog
        self.announce = announce  # say so on the first SIGTERM (pytest says it itself)
        self.forward = forward  # -> whether to pass SIGTERM on to the children (xdist)
        self.received: list[int] = []
        self._previous: dict[int, Any] = {}

    def install(self) -> Interrupts:
        if threading.current_thread() is not threading.main_thread():
            return self  # only the main thread may set handlers (and only it gets signals)
        for sig in HANDLED:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.received.append(signum)
        if len(self.received) > 1:
            print(f"\n{self.prog}: {name} while cleaning up after an interrupt: ignored, the "
                  f"cleanup goes on (SIGKILL stops at once and leaves things behind)",
                  file=sys.stderr, flush=True)
            return
        if signum == signal.SIGTERM and self.forward is not None and self.forward():
            for pid in child_pids():
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass
        if signum == signal.SIGTERM and self.announce:
            print(f"\n{self.prog}: {SIGTERM_NOTE}", file=sys.stderr, flush=True)
        raise KeyboardInterrupt


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Run a cleanup (a lab's stop) to its end: SIGINT and SIGTERM that arrive meanwhile are
    held and handed, once it is done, to the handler that was in place (the first one then
    raises KeyboardInterrupt as usual). Main thread only; elsewhere it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _f: held.append(signum)) for sig in HANDLED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for sig in held:
            handler = previous[sig]
            if callable(handler):
                handler(sig, None)
            elif handler != signal.SIG_IGN:
                os.kill(os.getpid(), sig)  # the default action, now that the cleanup is done


SIGTERM_NOTE = "SIGTERM: stopping as on Ctrl-C (cleaning up, keeping the results so far)"


def interrupts(prog: str = "kubeovn-conformance", forward: Callable[[], bool] | None = None,
               announce: bool = True) -> Interrupts:
    """Install the handlers (main thread only; elsewhere a no-op) and return them."""
    return Interrupts(prog, forward, announce).install()


__all__ = ["SIGTERM_NOTE", "Interrupts", "child_pids", "interrupts", "shielded"]
