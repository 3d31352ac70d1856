"""Ctrl-C during training: the first one asks the loop to stop at the next step boundary, where it saves the
step it reached; a second one interrupts at once (KeyboardInterrupt), for a user who cannot wait for the save.

A KeyboardInterrupt raised anywhere in the loop could land while a train step owns the state (the step donates its
input buffers), losing every step since the last checkpoint; a flag checked between steps cannot.
"""

from __future__ import annotations

import signal
import threading


class StopRequest:
    """``requested`` turns True on the first SIGINT between :meth:`install` and :meth:`restore`. Outside the main
    thread (where Python cannot install signal handlers) it does nothing and Ctrl-C raises KeyboardInterrupt."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def install(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def restore(self) -> None:
        """Put back the SIGINT handler that was there before :meth:`install`."""
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
