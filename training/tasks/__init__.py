"""Model families as tasks of the one training loop: which family trains on which data layout.

`python -m training --data D` trains the default family of D's layout; `--model` picks among the
families that fit it. A family is one model module (`training/models/`) and one task here, registered
below; everything else reads the registry (`registry.py`).
"""
from __future__ import annotations

from .base import Task
from .multvae import MultVAETask
from .neumf import NeuMFTask
from .registry import (
                       TASKS,
                       build_model,
                       by_variant,
                       check_layout,
                       compared,
                       default_for_layout,
                       model_for,
                       model_names,
                       register,
                       registered,
                       task_for,
)

register(NeuMFTask)
register(MultVAETask)

__all__ = ["TASKS", "Task", "build_model", "by_variant", "check_layout", "compared", "default_for_layout", "model_for",
           "model_names", "register", "registered", "task_for"]
