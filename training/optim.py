"""The optimizer: Adam as in DeepLearningExamples, fused where the device and torch support it."""
from __future__ import annotations

import torch


def adam(parameters, learning_rate: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
    parameters = list(parameters)
    kwargs = dict(lr=learning_rate, betas=(beta1, beta2), eps=eps)
    try:
        return torch.optim.Adam(parameters, fused=True, **kwargs)
    except (RuntimeError, TypeError):  # fused Adam is missing for this device or torch version
        return torch.optim.Adam(parameters, **kwargs)
