"""After reuse_freed_memory(), a training step reuses the pages of the step before instead of faulting fresh ones."""
import platform
import subprocess
import sys

import pytest

PROBE = """
import resource, sys, torch
from training.host_memory import reuse_freed_memory
from training.models.neumf import NeuMF
if sys.argv[1] == "reuse":
    assert reuse_freed_memory()
if sys.argv[1] == "runtime":  # what training, evaluation and recommend start with
    from training.runtime import start_runtime
    start_runtime()
torch.manual_seed(0)
model = NeuMF(1000, 1000, 64, (256, 256, 128, 64), dropout=0.0)
optimizer = torch.optim.Adam(model.parameters())
users, items = torch.randint(0, 1000, (65536,)), torch.randint(0, 1000, (65536,))
labels = torch.rand(65536).round()
def step():
    torch.nn.functional.binary_cross_entropy_with_logits(model(users, items), labels).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):  # warm-up: the heap grows to a step's working set once
    step()
before = faults()
for _ in range(4):
    step()
print((faults() - before) / 4)
"""


def _page_faults_per_step(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="needs glibc malloc")
def test_a_training_step_reuses_the_pages_of_the_one_before():
    fresh = _page_faults_per_step("default")  # measured ~166k: glibc maps every tensor above 32 MB afresh
    reused = _page_faults_per_step("reuse")  # measured ~6k
    assert fresh > 10_000 and reused < 0.1 * fresh, (fresh, reused)
    assert _page_faults_per_step("runtime") < 0.1 * fresh  # the CPU runtime asks for it
