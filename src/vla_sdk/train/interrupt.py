"""Moved to :mod:`vla_sdk.interrupt` (the one Ctrl-C helper of the recorder, keyboard teleop and the trainer). This
re-export stays only until train/loop.py imports ``from vla_sdk.interrupt import StopRequest``; then delete it."""

from vla_sdk.interrupt import StopRequest

__all__ = ["StopRequest"]
