"""Precision policy: which dtype autocast uses on which device, and when a GradScaler is needed.

CUDA: fp16 autocast + GradScaler (fp16 gradients underflow without loss scaling), TF32 matmuls
for the fp32 parts. CPU: bf16 autocast, no scaler (bf16 has fp32's exponent range); fast only
where the CPU has native bf16 (AVX512-BF16 or AMX), otherwise PyTorch emulates it.
"""
from __future__ import annotations

import torch


def amp_dtype(device_type: str) -> torch.dtype:
    return torch.float16 if device_type == "cuda" else torch.bfloat16


def needs_grad_scaler(device_type: str, amp: bool) -> bool:
    return amp and amp_dtype(device_type) == torch.float16


def grad_scaler(device_type: str, amp: bool):
    enabled = needs_grad_scaler(device_type, amp)
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)  # torch < 2.3


NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str] | None:
    """The CPU's feature flags as Linux reports them; None where it does not."""
    try:
        with open(cpuinfo) as f:
            line = next((line for line in f if line.startswith("flags")), None)
    except OSError:
        return None
    return set(line.split(":", 1)[1].split()) if line else None


def cpu_has_native_bf16(flags: set[str] | None = None) -> bool:
    """AVX512-BF16 or AMX. oneDNN's own check (`_is_mkldnn_bf16_supported`) also says yes on AVX-512 CPUs
    that only emulate bf16 (seen on an Intel Xeon without either flag, where --amp ran at half fp32's speed),
    so it is asked only where the flags cannot be read."""
    flags = cpu_flags() if flags is None else flags
    if flags is not None:
        return bool(flags & NATIVE_BF16_FLAGS)
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def allow_tf32() -> None:
    """Free speed for fp32 matmuls on Ampere and later; called only on CUDA."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
