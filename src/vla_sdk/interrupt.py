"""Ctrl-C as a request to stop at the next safe point: the one SIGINT helper of the recorder, keyboard teleop and
the trainer.

The first SIGINT only sets :attr:`StopRequest.requested`; the code polls it where stopping is safe (between
episodes or control ticks: the recorder discards the episode in progress and keeps the committed ones; between train
steps: the trainer saves the step it reached). A second SIGINT is for a user who cannot wait: it puts the previous
handler back and raises KeyboardInterrupt at once (so a third goes to that previous handler, usually Python's
default, even while the code unwinds).

Why a flag and not KeyboardInterrupt: an exception raised at an arbitrary bytecode can land while a train step owns
the state (it donates its input buffers) or while an episode's files are half-written; a flag checked at the safe
points cannot.

    with StopRequest() as stop:        # or: stop = StopRequest().install(); try: ... finally: stop.restore()
        while not stop.requested:
            work()
"""

from __future__ import annotations

import signal
import threading


class StopRequest:
    """``requested`` turns True on the first SIGINT between :meth:`install` and :meth:`restore`; a second SIGINT
    restores the previous handler and raises KeyboardInterrupt.

    Python can install signal handlers only in the main thread: elsewhere :meth:`install` does nothing (``installed``
    stays False) and Ctrl-C keeps raising KeyboardInterrupt in the main thread as before. :meth:`install` on an
    installed request and :meth:`restore` on one that is not installed (or was already restored, by a second
    Ctrl-C or an earlier call) do nothing."""

    def __init__(self):
        self.requested = False  # a SIGINT arrived since install()
        self.installed = False  # our handler is the SIGINT handler now
        self._previous = None  # the handler install() replaced

    def install(self) -> StopRequest:
        """Make SIGINT set :attr:`requested` (main thread only); returns self."""
        if not self.installed and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self.installed = True
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:  # the second Ctrl-C: stop at once
            self.restore()
            raise KeyboardInterrupt
        self.requested = True

    def restore(self) -> None:
        """Put back the SIGINT handler that was there before :meth:`install` (the default one if that handler was not
        installed from Python, which ``signal`` reports as None)."""
        if self.installed:
            signal.signal(signal.SIGINT, signal.SIG_DFL if self._previous is None else self._previous)
            self.installed, self._previous = False, None

    def __enter__(self) -> StopRequest:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.restore()
