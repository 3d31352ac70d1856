"""Plain-dict registries with errors that list what exists and suggest the closest name."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from vla_sdk.errors import UsageError


class UnknownNameError(UsageError, KeyError):
    """A name that is not in a registry; the message lists close matches and every valid name."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        close = difflib.get_close_matches(name, self.valid, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        self.message = f"{kind} {name!r} not found.{hint} Valid {kind}s: {', '.join(self.valid)}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


def lookup(registry: dict, kind: str, name: str):
    """``registry[name]``, or an :class:`UnknownNameError` that lists what exists."""
    try:
        return registry[name]
    except KeyError:
        raise UnknownNameError(kind, name, registry) from None
