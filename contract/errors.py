"""The one exception type that means "the user's input is wrong", and how entry points report it."""
from __future__ import annotations

import sys


class UserError(ValueError):
    """Bad input. Command-line entry points print the message on one line and exit 2.

    Subclasses ValueError so that it survives a round trip through Dask workers
    and still reads as a data problem to library callers.
    """


def root_cause(exc: BaseException) -> str:
    """The first line of the innermost cause: Dask and torch wrap the error that names the problem."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def print_error(exc: BaseException, prefix: str = "") -> int:
    """Print one `error: ...` line for a user-facing failure; returns the exit code (2)."""
    print(f"error: {prefix}{exc if isinstance(exc, UserError) else root_cause(exc)}", file=sys.stderr)
    return 2


def interrupted() -> int:
    """Ctrl-C: one line, and 130 (128 + SIGINT) as a shell reports it; atomic writes left nothing half-written."""
    print("interrupted", file=sys.stderr)
    return 130
