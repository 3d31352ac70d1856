"""vla_sdk.interrupt.StopRequest with real SIGINTs sent to this process: the first sets the flag, the second raises
KeyboardInterrupt and puts the previous handler back, restore() puts it back too."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from vla_sdk.interrupt import StopRequest


class _Seen:
    """A SIGINT handler of our own, so the tests can tell it apart from pytest's and count what reaches it."""

    def __init__(self):
        self.calls = 0

    def __call__(self, signum, frame):
        self.calls += 1


@pytest.fixture
def previous():
    """Our own handler as the one StopRequest replaces; pytest's comes back afterwards whatever the test did."""
    saved = signal.signal(signal.SIGINT, seen := _Seen())
    yield seen
    signal.signal(signal.SIGINT, saved)


def _sigint(wait_for=lambda: False) -> None:
    """A real SIGINT to this process; Python runs the handler in the main thread at its next check."""
    os.kill(os.getpid(), signal.SIGINT)
    deadline = time.monotonic() + 5
    while not wait_for() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_first_sigint_sets_the_flag_second_raises_and_restores(previous):
    stop = StopRequest().install()
    assert stop.installed and not stop.requested
    assert signal.getsignal(signal.SIGINT) is not previous
    _sigint(lambda: stop.requested)
    assert stop.requested and previous.calls == 0  # the flag only: nothing raised, nothing passed on
    with pytest.raises(KeyboardInterrupt):
        _sigint()  # the handler raises inside the wait
    assert signal.getsignal(signal.SIGINT) is previous and not stop.installed
    _sigint(lambda: previous.calls == 1)  # a third Ctrl-C goes to the handler that was there before
    assert previous.calls == 1
    stop.restore()  # already restored: nothing to do
    assert signal.getsignal(signal.SIGINT) is previous


def test_restore_puts_the_old_handler_back_and_the_with_block(previous):
    stop = StopRequest().install()
    stop.install()  # a second install must not remember our own handler as "the previous one"
    stop.restore()
    assert signal.getsignal(signal.SIGINT) is previous and not stop.installed
    _sigint(lambda: previous.calls == 1)
    assert previous.calls == 1 and not stop.requested  # after restore() SIGINT is not ours any more
    with StopRequest() as stop:
        _sigint(lambda: stop.requested)
        assert stop.requested
    assert signal.getsignal(signal.SIGINT) is previous and previous.calls == 1


def test_outside_the_main_thread_it_does_nothing(previous):
    """Python installs signal handlers only in the main thread: there install() is a no-op, not a ValueError."""
    made = []
    worker = threading.Thread(target=lambda: made.append(StopRequest().install()))
    worker.start()
    worker.join()
    assert not made[0].installed and signal.getsignal(signal.SIGINT) is previous
    made[0].restore()
    assert signal.getsignal(signal.SIGINT) is previous


def test_a_previous_handler_not_set_from_python_comes_back_as_the_default(previous, monkeypatch):
    """signal.signal reports such a handler as None; restore() then installs SIG_DFL rather than failing."""
    stop = StopRequest().install()
    monkeypatch.setattr(stop, "_previous", None)
    stop.restore()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL
