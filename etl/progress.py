"""Stage logging: one line per stage with its duration, and a Dask progress bar."""
from __future__ import annotations

import contextlib
import sys
import time


class StageLog:
    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.timings: dict[str, float] = {}
        self.start = time.perf_counter()

    @contextlib.contextmanager
    def stage(self, name: str, what: str):
        self.say(f"[{name}] {what} ...")
        begin = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - begin, 3)
        self.say(f"[{name}] done in {self.timings[name]:.1f}s")

    def say(self, message: str) -> None:
        if not self.quiet:  # timestamped: readable in CI logs and nohup runs too
            print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    @property
    def total(self) -> float:
        return round(time.perf_counter() - self.start, 3)


def compute_with_progress(*tasks, client=None, quiet=False):
    """dask.compute with a progress bar on the local scheduler (a Client has its dashboard)."""
    import dask

    if client is not None or quiet or not sys.stderr.isatty():
        return dask.compute(*tasks)
    from dask.diagnostics import ProgressBar

    with ProgressBar(minimum=2, out=sys.stderr):
        return dask.compute(*tasks)
