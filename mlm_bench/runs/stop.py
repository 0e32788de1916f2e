"""Stop: SIGTERM (what schedulers and `kill` send) stops a run as Ctrl-C does, wherever it lands."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any, NoReturn

from mlm_bench.errors import Terminated

# An exception raised inside a weakref or GC callback (torch.compile's run has many) is only printed ("Exception
# ignored"): so after a SIGTERM, Terminated is raised again every REPEAT_SECONDS (by SIGALRM) until the run takes
# it (`taken`). 0: raise once.
REPEAT_SECONDS = 1.0
_REPEATS = hasattr(signal, "setitimer")  # POSIX only


def taken() -> None:
    """The stop reached the run: no more repeats, which would break off its cleanup."""
    if _REPEATS:
        signal.setitimer(signal.ITIMER_REAL, 0)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM raises Terminated: checkpoints are kept and the resume command printed. SIGALRM is
    taken over only once a SIGTERM has come, and given back after."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous_alarm = signal.getsignal(signal.SIGALRM) if _REPEATS else None

    def terminate(signum: int, frame: Any) -> NoReturn:
        if _REPEATS and REPEAT_SECONDS and signum == signal.SIGTERM:
            signal.signal(signal.SIGALRM, terminate)
            signal.setitimer(signal.ITIMER_REAL, REPEAT_SECONDS, REPEAT_SECONDS)
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        repeating = _REPEATS and signal.getsignal(signal.SIGALRM) is terminate
        if repeating:
            taken()
        signal.signal(signal.SIGTERM, previous)
        if repeating:
            signal.signal(signal.SIGALRM, previous_alarm)
