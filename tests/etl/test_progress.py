"""Progress inside Dask stages reaches logs that are not terminals (CI, nohup) as timestamped lines."""
import re
import time

import dask
import distributed

from etl.progress import compute_with_progress

LINE = re.compile(r"^\d\d:\d\d:\d\d   progress: (\d+)/(\d+) tasks \((\d+)%\), \d+s$")


def _square(i: int, seconds: float) -> int:
    time.sleep(seconds)
    return i * i


def _tasks(n=10, seconds=0.02):
    return [dask.delayed(_square)(i, seconds) for i in range(n)]


def _computed(results) -> list:
    """The values computed, never Dask collections handed back uncomputed."""
    assert all(isinstance(r, int) for r in results), results
    return list(results)


def _progress(err: str) -> list[tuple[int, int, int]]:
    """(done, total, percent) of each progress line; every line on stderr must be one."""
    lines = err.splitlines()
    assert all(LINE.match(line) for line in lines), lines
    return [tuple(int(g) for g in LINE.match(line).groups()) for line in lines]


def test_local_scheduler_computes_and_prints_a_line_per_finished_task_when_stderr_is_not_a_terminal(capsys):
    assert _computed(compute_with_progress(*_tasks(), every=0)) == [i * i for i in range(10)]
    progress = _progress(capsys.readouterr().err)
    # every=0: a line after each task, counting the finished ones up to all ten
    assert [done for done, _, _ in progress] == list(range(1, 11)), progress
    assert {total for _, total, _ in progress} == {10} and [p for _, _, p in progress] == list(range(10, 101, 10))


def test_quiet_computes_the_results_and_prints_nothing(capsys):
    assert _computed(compute_with_progress(*_tasks(), quiet=True, every=0)) == [i * i for i in range(10)]
    assert capsys.readouterr().err == ""


def test_a_cluster_stage_computes_and_prints_lines_while_it_runs(capsys):
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
        results = compute_with_progress(*_tasks(3, seconds=0.3), client=client, every=0.2)
    assert _computed(results) == [0, 1, 4]
    lines = capsys.readouterr().err.splitlines()
    progress = [tuple(int(g) for g in LINE.match(line).groups()) for line in lines if LINE.match(line)]
    # one task at a time for 0.9 s, a line every 0.2 s while any is unfinished
    assert progress and {total for _, total, _ in progress} == {3}, lines
    done = [d for d, _, _ in progress]
    assert done == sorted(done), lines
