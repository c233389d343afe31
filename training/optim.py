"""The optimizer: Adam as in DeepLearningExamples (fused where the device and torch support it), or plain SGD,
which the NCF paper uses to fine-tune a NeuMF built from pretrained parts (Adam's first steps, with no
moment estimates yet, move every weight by about the learning rate and undo the pretraining)."""
from __future__ import annotations

import torch

OPTIMIZERS = ("adam", "sgd")


def adam(parameters, learning_rate: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
    parameters = list(parameters)
    kwargs = dict(lr=learning_rate, betas=(beta1, beta2), eps=eps)
    try:
        return torch.optim.Adam(parameters, fused=True, **kwargs)
    except (RuntimeError, TypeError):  # fused Adam is missing for this device or torch version
        return torch.optim.Adam(parameters, **kwargs)


def build(name: str, parameters, learning_rate: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
    """The optimizer called `name` (one of OPTIMIZERS) over `parameters`."""
    if name == "sgd":
        return torch.optim.SGD(list(parameters), lr=learning_rate)
    return adam(parameters, learning_rate, beta1, beta2, eps)
