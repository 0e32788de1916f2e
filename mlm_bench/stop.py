"""Stop: SIGTERM (what schedulers and `kill` send) stops a run as Ctrl-C does, wherever it lands."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any, NoReturn

from mlm_bench.errors import Terminated

# An exception raised inside a weakref or GC callback (torch.compile's run has many) is only printed ("Exception
# ignored"): so a SIGTERM is raised again every REPEAT_SECONDS until the run takes it (`taken`). 0: raise once.
REPEAT_SECONDS = 1.0
_REPEATS = hasattr(signal, "setitimer")  # POSIX only


def _terminate(signum: int, frame: Any) -> NoReturn:
    if _REPEATS and REPEAT_SECONDS:
        signal.setitimer(signal.ITIMER_REAL, REPEAT_SECONDS, REPEAT_SECONDS)
    raise Terminated


def taken() -> None:
    """The stop reached the run: no more repeats, which would break off its cleanup."""
    if _REPEATS:
        signal.setitimer(signal.ITIMER_REAL, 0)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM raises Terminated: checkpoints are kept and the resume command printed."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    alarm = signal.signal(signal.SIGALRM, _terminate) if _REPEATS else None
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        taken()
        signal.signal(signal.SIGTERM, previous)
        if _REPEATS:
            signal.signal(signal.SIGALRM, alarm)
