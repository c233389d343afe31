"""The runtime: one object decides device, backend, autocast and the loader's cpu flag."""
import torch

from training.runtime import Runtime, shutdown, start_runtime


def test_single_process_defaults():
    runtime = start_runtime()
    try:
        assert (runtime.rank, runtime.world, runtime.is_main) == (0, 1, True)
        assert runtime.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
        assert runtime.backend == ("nccl" if runtime.device.type == "cuda" else "gloo")
        assert runtime.nvtabular_cpu == (runtime.device.type == "cpu")
        assert runtime.sum(1.5, 2) == [1.5, 2.0] and runtime.max_int(7) == 7
    finally:
        shutdown(runtime)


def test_autocast_follows_the_amp_flag_on_cpu():
    layer = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with Runtime(amp=True).autocast():
        assert layer(x).dtype == torch.bfloat16
    with Runtime(amp=False).autocast():
        assert layer(x).dtype == torch.float32
    assert Runtime(amp=True).amp_dtype == torch.bfloat16 and Runtime().amp_dtype is None


def test_cuda_runtime_chooses_nccl_and_fp16():
    runtime = Runtime(device=torch.device("cuda", 1), amp=True)  # described, not started: no GPU needed
    assert runtime.backend == "nccl" and runtime.amp_dtype == torch.float16 and not runtime.nvtabular_cpu
