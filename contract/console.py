"""What every command prints: timestamped progress lines on stderr, and one way to end an entry point.

Progress is a line with the time of day, so a long step reads the same on a terminal, in CI logs and in
nohup runs. An entry point runs its body through `entry_point`: bad input is one `error: ...` line and exit
2, Ctrl-C one `interrupted` line and 130, and a result is one JSON line on stdout (rank 0 only under torchrun).
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable

from .errors import UserError, interrupted, print_error


def say(message: str) -> None:
    """A timestamped line on stderr."""
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def entry_point(body: Callable[[], Any], also: tuple[type[BaseException], ...] = (), prefix: str = "") -> int:
    """Run a command's body; its result (if not None) as one JSON line on stdout. `also`: further exception
    types that mean bad input here (reported with `prefix`, e.g. parse errors surfacing from Dask tasks)."""
    try:
        result = body()
    except UserError as exc:
        return print_error(exc)
    except KeyboardInterrupt:
        return interrupted()
    except also as exc:
        return print_error(exc, prefix)
    if result is not None and int(os.environ.get("RANK", "0")) == 0:
        print(result if isinstance(result, str) else json.dumps(result), flush=True)
    return 0
