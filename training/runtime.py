"""The runtime of one process, built once: rank, device, DDP backend, precision, loader flags.

Every CPU/GPU decision of training, evaluation and recommend is read from here: CUDA with NCCL
when a GPU is visible (the process's GPU is LOCAL_RANK), else CPU with gloo and host memory kept
for reuse between steps (host_memory.py); `python -m training` without torchrun is a world of one.
"""
from __future__ import annotations

import contextlib
import gc
import importlib
import os
import sys
import time
from dataclasses import dataclass, field

import torch
import torch.distributed as torch_dist

from . import precision
from .host_memory import reuse_freed_memory


@dataclass(frozen=True)
class Runtime:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    amp: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def backend(self) -> str:
        return "nccl" if self.device.type == "cuda" else "gloo"

    @property
    def nvtabular_cpu(self) -> bool:
        """NVTabular's `cpu` flag: pandas-backed datasets unless batches go to a GPU."""
        return self.device.type == "cpu"

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return precision.amp_dtype(self.device.type) if self.amp else None

    def autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self):
        return precision.grad_scaler(self.device.type, self.amp)

    def describe(self) -> str:
        text = self.device.type + (f" ({self.backend}, {self.world} ranks)" if self.world > 1 else "")
        return text + (f", AMP {str(self.amp_dtype).replace('torch.', '')}" if self.amp else "")

    # ---- collectives (no-ops in a world of one) ------------------------------------------
    def sum(self, *values: float) -> list[float]:
        """Sum scalars over ranks (float64 so counts stay exact)."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.world > 1:
            self._all_reduce(t, torch_dist.ReduceOp.SUM)
        return t.tolist()

    def max_int(self, value: int) -> int:
        t = torch.tensor([value], dtype=torch.int64, device=self.device)
        if self.world > 1:
            self._all_reduce(t, torch_dist.ReduceOp.MAX)
        return int(t.item())

    def _all_reduce(self, t: torch.Tensor, op) -> None:
        torch_dist.all_reduce(t, op=op)
        if self.backend == "gloo":
            released_by_gloo(t)

    def barrier(self) -> None:
        if self.world > 1:
            torch_dist.barrier()


def released_by_gloo(t: torch.Tensor, timeout_s: float = 10.0) -> None:
    """Wait until gloo's worker thread has dropped its reference to a reduced tensor (torch's private
    Tensor._use_count(), torch 2.x). It drops it only after all_reduce has returned; had the main thread
    let go of the tensor first, the worker's drop would need the GIL, and during the interpreter's exit
    that aborts the process ("terminate called without an active exception": about one 2-rank run in six
    ended so when a collective was a rank's last step)."""
    use_count = getattr(t, "_use_count", None)
    deadline = time.monotonic() + timeout_s
    while use_count is not None and use_count() > 1 and time.monotonic() < deadline:
        time.sleep(1e-4)


def start_runtime(amp: bool = False) -> Runtime:
    """Read torchrun's environment, pick the device, join the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)  # the NVTabular loader puts batches on the current device
        device = torch.device("cuda", local_rank)
        precision.allow_tf32()
    else:
        device = torch.device("cpu")
        reuse_freed_memory()
    runtime = Runtime(rank, world, local_rank, device, amp)
    if world > 1:
        # Imported before the group exists, on purpose: torch.distributed.nn.functional's functions take
        # `group=group.WORLD` as default arguments, evaluated at import. Imported later (DDP imports it through
        # torch._dynamo) they hold the default group for good: destroy_process_group cannot free it, gloo's
        # three threads outlive it and are torn down during the interpreter's exit, which sometimes aborted a
        # rank ("terminate called without an active exception"). Seen in torch 2.13; harmless where fixed.
        importlib.import_module("torch.distributed.nn.functional")

        torch_dist.init_process_group(runtime.backend)
    if amp and device.type == "cpu" and runtime.is_main and not precision.cpu_has_native_bf16():
        print("warning: this CPU has no native bf16 (AVX512-BF16/AMX); PyTorch emulates it and --amp "
              "will be slower than fp32", file=sys.stderr)
    return runtime


def shutdown(runtime: Runtime) -> None:
    """Leave the process group. Whatever holds it (a DDP wrapper and its reducer) must be released first:
    gloo's threads end only when the last reference goes, and gc.collect() frees those caught in cycles."""
    if runtime.world > 1 and torch_dist.is_initialized():
        gc.collect()
        torch_dist.destroy_process_group()
