"""Where the ETL computes: pandas or cuDF, and which Dask scheduler. The one place that knows."""
from __future__ import annotations

import contextlib

from contract.errors import UserError


def gpu_available() -> bool:
    try:
        import cudf  # noqa: F401
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no cuDF, no driver, or no device: all mean "CPU"
        return False


def resolve_device(device: str) -> str:
    if device == "auto":
        return "gpu" if gpu_available() else "cpu"
    if device == "gpu" and not gpu_available():
        raise UserError("--device gpu needs cuDF and a visible GPU (use the Merlin container)")
    return device


def dataset(files: list[str], device: str):
    """An NVTabular Dataset over parquet files, backed by cuDF on "gpu" and pandas on "cpu"."""
    import nvtabular as nvt

    return nvt.Dataset(files, engine="parquet", cpu=device == "cpu")


def to_host(df):
    """A pandas frame from a pandas or cuDF partition (the split and the writers run on host)."""
    return df.to_pandas() if hasattr(df, "to_pandas") else df


@contextlib.contextmanager
def dask_client(device: str, workers: int | None, scheduler: str | None):
    """A distributed Client for --workers/--scheduler, else Dask's local threaded scheduler.

    Merlin picks up a live Client globally, so creating it here is all it takes.
    """
    if not workers and not scheduler:
        yield None
        return
    from distributed import Client

    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise UserError(f"cannot reach the Dask scheduler at {scheduler}: {exc}")
        with client:
            yield client
        return
    if device == "gpu":
        from dask_cuda import LocalCUDACluster

        cluster = LocalCUDACluster(n_workers=workers)
    else:
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, Client(cluster) as client:
        yield client
