"""The SDK's own error types: what the user can act on, as opposed to bugs.

Every failure on bad input raises one of these, with a message that names the file, field or argument, what was
expected and what came. The CLI prints such an error as one line and exits with its ``exit_code``; any other
exception is a bug in vla-sdk, and the CLI shows its traceback and asks for a report (exit code 3).

Each type also derives from the builtin it refines (``UsageError`` is a ``ValueError``, ``NotFound`` a
``FileNotFoundError``, ...), so code that catches the builtin keeps working.

    exit 1  InputError, NotFound, RuntimeFailure: the input or the world is not as it must be
    exit 2  UsageError, AlreadyExists: a command-line argument or config value is wrong (so are argparse's own)
    exit 3  anything else: a bug
"""

from __future__ import annotations

EXIT_RUNTIME, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 1, 2, 3, 130


class VlaError(Exception):
    """Base of the SDK's user-facing errors."""

    exit_code = EXIT_RUNTIME


class UsageError(VlaError, ValueError):
    """A command-line argument, option value or config field is invalid."""

    exit_code = EXIT_USAGE


class InputError(VlaError, ValueError):
    """The content of something the user gave (a dataset, checkpoint, artifact, mapping, observation) is invalid."""


class NotFound(VlaError, FileNotFoundError):
    """A file or folder the command needs does not exist."""


class AlreadyExists(VlaError, FileExistsError):
    """A file or folder the command would create already exists (nothing was overwritten): choose another path."""

    exit_code = EXIT_USAGE


class RuntimeFailure(VlaError, RuntimeError):
    """Something outside the SDK failed while running: an encoder, a simulator, a device."""


class EpisodeStop(RuntimeFailure):
    """Ends one episode with a reason instead of ending the program (the runner's ``UnsafeStop`` and
    ``InferenceFailed``); :func:`vla_sdk.episode.run_episode` reports it in the result's ``stopped``."""
