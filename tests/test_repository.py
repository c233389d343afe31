"""The checkout CI builds from holds every source file: none may hide behind a .gitignore pattern.

(A `data/` pattern once ignored training/data/, so a clean clone lacked a package that the
working tree had and CI failed on an import.)
"""
import subprocess

import pytest

from .helpers import ROOT

SOURCES = ("contract", "etl", "training", "serving", "bench", "tests", "notebooks", "feature_specs", "requirements")


def test_no_source_file_is_ignored_by_git():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "ls-files", "--others", "--ignored", "--exclude-standard", *SOURCES],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    sources = [f for f in ignored if f.endswith((".py", ".ipynb", ".yaml", ".txt", ".md"))]
    assert not sources, f"ignored by .gitignore, so missing from a clean clone: {sources}"


def test_no_pickle_is_tracked():
    """A fitted workflow is pickled code saved next to its data (DATA_DIR/workflow), never committed."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "--", "*.pkl"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    assert not tracked, f"tracked pickles (a fitted workflow belongs with its data, not in git): {tracked}"
