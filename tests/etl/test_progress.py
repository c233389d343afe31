"""Progress inside Dask stages reaches logs that are not terminals (CI, nohup) as timestamped lines."""
import re
import time

import dask
import distributed

from etl.progress import compute_with_progress

LINE = re.compile(r"^\d\d:\d\d:\d\d   progress: \d+/\d+ tasks \(\d+%\), \d+s$")


def _tasks():
    return [dask.delayed(time.sleep)(0.02) for _ in range(10)]


def test_local_scheduler_prints_progress_lines_when_stderr_is_not_a_terminal(capsys):
    assert len(compute_with_progress(*_tasks(), every=0)) == 10
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 5 and all(LINE.match(line) for line in lines), lines


def test_quiet_prints_nothing(capsys):
    compute_with_progress(*_tasks(), quiet=True, every=0)
    assert capsys.readouterr().err == ""


def test_a_cluster_stage_prints_lines_while_it_runs(capsys):
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
        results = compute_with_progress(*[dask.delayed(time.sleep)(0.3) for _ in range(3)], client=client, every=0.2)
    assert len(results) == 3
    lines = capsys.readouterr().err.splitlines()
    assert [line for line in lines if LINE.match(line)], lines
