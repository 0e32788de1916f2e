"""Stop: SIGTERM raises Terminated inside the block; SIGALRM is borrowed only once a SIGTERM came, and given back."""

from __future__ import annotations

import os
import signal
import time

import pytest

from mlm_bench import stop
from mlm_bench.errors import Terminated


def _own_alarm(signum, frame) -> None:
    pass


def test_sigterm_raises_and_sigalrm_is_given_back_untouched() -> None:
    previous = signal.signal(signal.SIGALRM, _own_alarm)
    try:
        with stop.sigterm_as_interrupt():
            assert signal.getsignal(signal.SIGALRM) is _own_alarm  # no SIGTERM yet: the caller's alarm is its own
        with pytest.raises(Terminated), stop.sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
        assert signal.getsignal(signal.SIGALRM) is _own_alarm
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # no repeat left armed
    finally:
        signal.signal(signal.SIGALRM, previous)
