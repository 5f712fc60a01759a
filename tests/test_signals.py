"""Stopping signals: Ctrl-C, SIGTERM and SIGHUP handled alike, whatever the process inherited."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from remaster.signals import Interrupted, Stopping


@pytest.fixture
def inherited():
    """SIGINT ignored, as a background job of a script inherits it, and SIGHUP ignored, as under nohup; the test's
    own handlers come back afterwards."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def send(signum: int) -> None:
    """Send ``signum`` to this process and give its handler the moment to run."""
    os.kill(os.getpid(), signum)
    time.sleep(0.5)


def test_the_first_signal_asks_to_stop_and_a_second_stops_at_once_even_with_ctrl_c_inherited_ignored(inherited):
    stop, said = threading.Event(), []
    with Stopping(stop, on_first=said.append) as stopping:
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN, "nohup's SIGHUP stays ignored"
        send(signal.SIGINT)
        assert stop.is_set() and said == ["Ctrl-C"], "Ctrl-C reaches the job although it was inherited ignored"
        assert (stopping.name, stopping.exit_status) == ("Ctrl-C", 130)
        with pytest.raises(Interrupted) as second:
            send(signal.SIGTERM)
        assert isinstance(second.value, KeyboardInterrupt) and second.value.signum == signal.SIGTERM
        assert stopping.exit_status == 130, "the first signal decides the exit status"
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN, "the handlers from before come back"


def test_without_a_stop_event_the_first_signal_stops_at_once():
    saved = signal.getsignal(signal.SIGTERM)
    with Stopping() as stopping, pytest.raises(Interrupted) as stopped:
        send(signal.SIGTERM)
    assert stopped.value.signum == signal.SIGTERM and str(stopped.value) == "SIGTERM"
    assert (stopping.name, stopping.exit_status) == ("SIGTERM", 143)
    assert signal.getsignal(signal.SIGTERM) == saved
