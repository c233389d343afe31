"""The precision policy: fp16 + GradScaler on CUDA, bf16 without a scaler on CPU."""
import torch

from training import precision


def test_policy_per_device():
    assert precision.amp_dtype("cuda") == torch.float16 and precision.amp_dtype("cpu") == torch.bfloat16
    assert precision.needs_grad_scaler("cuda", amp=True)
    assert not precision.needs_grad_scaler("cuda", amp=False) and not precision.needs_grad_scaler("cpu", amp=True)


def test_cpu_scaler_is_a_pass_through():
    scaler = precision.grad_scaler("cpu", amp=True)
    loss = torch.tensor(3.0, requires_grad=True)
    assert scaler.scale(loss).item() == 3.0 and not scaler.is_enabled()


def test_native_bf16_means_avx512_bf16_or_amx_not_just_avx512(tmp_path):
    """oneDNN says bf16 is supported on any AVX-512 CPU, where it is emulated and --amp is slower than fp32."""
    assert not precision.cpu_has_native_bf16({"avx512f", "avx512bw", "avx512vl", "avx512_vnni"})
    assert precision.cpu_has_native_bf16({"avx512f", "avx512_bf16"}) and precision.cpu_has_native_bf16({"amx_bf16"})
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f amx_bf16 amx_tile\n\nprocessor\t: 1\n")
    assert precision.cpu_flags(str(cpuinfo)) == {"fpu", "sse2", "avx512f", "amx_bf16", "amx_tile"}
    assert precision.cpu_flags(str(tmp_path / "missing")) is None
