"""Stop: SIGTERM raises Terminated inside the block; SIGALRM is borrowed only once a SIGTERM came, and given back."""

from __future__ import annotations

import os
import signal
import sys
import time
import weakref

import pytest

from mlm_bench.errors import Terminated
from mlm_bench.runs import stop
from mlm_bench.testing import faults


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


class _Box:
    pass


def _sigterm_inside_a_callback_then_work(seconds: float, monkeypatch) -> list[type]:
    """Within the block: SIGTERM sent from a weakref callback, where Python only prints what the handler raises (as
    in torch.compile's runs on the H200), then `seconds` of work for a repeat to land in; the exception types
    Python swallowed that way."""
    swallowed: list[type] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: swallowed.append(unraisable.exc_type))
    with stop.sigterm_as_interrupt():
        box = _Box()
        weakref.finalize(box, os.kill, os.getpid(), signal.SIGTERM)
        del box
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pass
    return swallowed


def test_a_sigterm_swallowed_by_a_callback_is_raised_again(monkeypatch) -> None:
    monkeypatch.setattr(stop, "REPEAT_SECONDS", 0.05)
    with pytest.raises(Terminated):
        _sigterm_inside_a_callback_then_work(2.0, monkeypatch)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_the_repeat_check_fails_without_the_repeat(monkeypatch) -> None:
    """Test of the test above: raised once, inside the callback, the SIGTERM is lost and the work goes on."""
    faults.sigterm_once.apply(patch=monkeypatch.setattr)
    assert _sigterm_inside_a_callback_then_work(0.3, monkeypatch) == [Terminated]
