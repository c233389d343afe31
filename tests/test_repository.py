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


def test_the_readme_module_table_names_every_module():
    """The README's table of modules ("The design") is the map a newcomer reads first: every module is on it."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| package | module | concern |"):readme.index("\n\n", readme.index("| package |"))]
    missing = []
    for package in ("contract", "etl", "workflows", "training", "serving"):
        for module in sorted((ROOT / package).rglob("*.py")):
            if module.name in ("__init__.py", "__main__.py"):
                continue
            if f"`{module.name}`" not in table and f"{module.parent.name}/{module.name}`" not in table \
                    and f"`{module.relative_to(ROOT / package).as_posix()}`" not in table:
                missing.append(module.relative_to(ROOT).as_posix())
    assert not missing, f"modules the README's table does not name: {missing}"
