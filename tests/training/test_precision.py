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
