"""Stage logging: one line per stage with its duration, and progress inside Dask stages.

On a terminal the progress is Dask's bar; elsewhere (CI logs, nohup, notebooks) it is a
timestamped line every few seconds, so a long stage never looks hung.
"""
from __future__ import annotations

import contextlib
import sys
import time

from dask.callbacks import Callback

from contract.console import say


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
        if not self.quiet:
            say(message)

    @property
    def total(self) -> float:
        return round(time.perf_counter() - self.start, 3)


PROGRESS_EVERY_S = 5.0


def compute_with_progress(*tasks, client=None, quiet=False, every=PROGRESS_EVERY_S):
    """dask.compute that shows its progress: a bar on a terminal, else a line every `every` seconds."""
    import dask

    if quiet:
        return dask.compute(*tasks)
    if client is not None:
        return _compute_on_cluster(client, tasks, every)
    if sys.stderr.isatty():
        from dask.diagnostics import ProgressBar

        with ProgressBar(minimum=2, out=sys.stderr):
            return dask.compute(*tasks)
    with _TaskLines(every):
        return dask.compute(*tasks)


def _line(done: int, total: int, began: float) -> str:
    return f"  progress: {done:,}/{total:,} tasks ({done / max(total, 1):.0%}), {time.perf_counter() - began:.0f}s"


def _compute_on_cluster(client, tasks, every: float):
    from distributed import wait

    futures = client.compute(list(tasks))
    began = time.perf_counter()
    while True:
        try:
            wait(futures, timeout=every)
            break
        except TimeoutError:  # distributed raises the builtin (dask.distributed >= 2022)
            say(_line(sum(f.done() for f in futures), len(futures), began))
    return tuple(client.gather(futures))


class _TaskLines(Callback):
    """A Dask local-scheduler callback printing finished/total tasks at most every `every` seconds."""

    def __init__(self, every: float):
        super().__init__()
        self.every = every

    def _start_state(self, dsk, state):
        self.began = self.last = time.perf_counter()
        self.total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished"))

    def _posttask(self, key, result, dsk, state, worker_id):
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            say(_line(len(state["finished"]), self.total, self.began))
