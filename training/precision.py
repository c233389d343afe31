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


def cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def allow_tf32() -> None:
    """Free speed for fp32 matmuls on Ampere and later; called only on CUDA."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
