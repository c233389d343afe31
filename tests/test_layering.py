"""Layering rules that import-linter's contracts (pyproject.toml, run by `make test`) cannot state.

1. No import cycle between the project's modules, counting imports written inside functions and under
   TYPE_CHECKING. The `acyclic_siblings` contract finds cycles between siblings, but not one through a
   package's own `__init__` (e.g. training.tasks -> training.tasks.neumf -> training.tasks); this test,
   on grimp's graph (import-linter's), finds every one and prints its chain with line numbers.
2. Only training/tasks/ and training/models/ name a model family: the rest of training/ and serving/
   reach a family through the task registry. The family names come from that registry (each task's
   variants, the task and model modules, their classes), so a new family is covered when it is added.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import grimp

from .helpers import ROOT

ROOT_PACKAGES = ("contract", "etl", "workflows", "training", "serving")  # [tool.importlinter] root_packages
FAMILY_HOMES = ("training/tasks", "training/models")
CHECKED = ("training", "serving")


# ---- 1. no import cycles ------------------------------------------------------------------------
def _line(graph: grimp.ImportGraph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    return f"{importer}:{min(d['line_number'] for d in details)}" if details else importer


def find_cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """Each import that lies on a cycle, with the shortest way back to its importer; one entry per cycle."""
    cycles = set()
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back:
                cycle = (importer, *back[:-1])
                start = cycle.index(min(cycle))
                cycles.add(cycle[start:] + cycle[:start])
    return sorted(cycles)


def test_no_import_cycles():
    graph = grimp.build_graph(*ROOT_PACKAGES, cache_dir=None)
    cycles = find_cycles(graph)
    shown = [" -> ".join(_line(graph, a, b) for a, b in zip(c, c[1:] + c[:1])) + f" -> {c[0]}" for c in cycles]
    assert not cycles, "import cycles (module:line of each import, function-level ones included):\n" + "\n".join(shown)


# ---- 2. only tasks/ and models/ name a family ---------------------------------------------------
def family_names() -> tuple[set[str], set[str], set[str]]:
    """(words, class names, module paths) that name a family, read from the task registry."""
    from training.tasks import TASKS

    words = {variant.lower() for task in TASKS for variant in task.variants}
    modules = {importlib.import_module(task.__module__) for task in TASKS}
    words |= {m.__name__.rsplit(".", 1)[-1] for m in modules}
    models = importlib.import_module("training.models")
    modules |= {importlib.import_module(f"training.models.{info.name}")
                for info in pkgutil.iter_modules(models.__path__) if info.name in words}
    classes = {name for m in modules for name, obj in inspect.getmembers(m, inspect.isclass)
               if obj.__module__ == m.__name__}
    assert words and classes, "the task registry names no family"
    return words, classes, {m.__name__ for m in modules}


def _docstrings(tree: ast.Module) -> set[int]:
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))]
    return {id(n.body[0].value) for n in nodes
            if n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)
            and isinstance(n.body[0].value.value, str)}


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")[: len(module.split(".")) - node.level + is_package]
    return ".".join(base + ([node.module] if node.module else []))


def family_mentions(source: str, rel: str, module: str, names: tuple[set[str], set[str], set[str]]) -> list[str]:
    """rel:line: what, for each string literal, f-string text, identifier or import in `source` (module `module`,
    a package's `__init__` when rel ends so) that names a family; docstrings and comments are not looked at."""
    words, classes, modules = names
    is_package = rel.endswith("__init__.py")
    tree = ast.parse(source, filename=rel)
    skip = _docstrings(tree)
    # f-string text: a --model name as a whole word, spelled as the registry spells it ("gmf/", " mf " but not "NeuMF").
    word = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(sorted(map(re.escape, words), key=len, reverse=True))
                      + r")(?![A-Za-z0-9])")

    def is_family_module(name: str) -> bool:
        return any(name == m or name.startswith(m + ".") for m in modules)

    def is_family_identifier(name: str) -> bool:
        return name in classes or any(part.lower() in words for part in name.split("_"))

    found = set()
    in_fstring = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            text = node.value
            if id(node) in in_fstring:
                if word.search(text):
                    found.add((node.lineno, f"f-string text {text!r}"))
            elif text.lower() in words or text in classes or is_family_module(text):
                found.add((node.lineno, f"string {text!r}"))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            base = _absolute(node, module, is_package) if isinstance(node, ast.ImportFrom) else ""
            for alias in node.names:
                full = f"{base}.{alias.name}" if base else alias.name
                if is_family_module(base) or is_family_module(full) or is_family_identifier(alias.name):
                    found.add((node.lineno, f"import {full}"))
                elif alias.asname and is_family_identifier(alias.asname):
                    found.add((node.lineno, f"import {full} as {alias.asname}"))
        else:
            found.update((node.lineno, f"identifier {name}") for name in _identifiers(node) if is_family_identifier(name))
    return [f"{rel}:{line}: {what}" for line, what in sorted(found)]


def _identifiers(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, ast.keyword) and node.arg:
        return [node.arg]
    if isinstance(node, (ast.Global, ast.Nonlocal)):
        return list(node.names)
    return []


def checked_files() -> list[Path]:
    return sorted(p for top in CHECKED for p in (ROOT / top).rglob("*.py")
                  if not any(p.relative_to(ROOT).as_posix().startswith(home + "/") for home in FAMILY_HOMES))


def test_only_tasks_and_models_name_a_family():
    names = family_names()
    found = []
    for path in checked_files():
        rel = path.relative_to(ROOT)
        module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        found += family_mentions(path.read_text(), rel.as_posix(), module, names)
    assert not found, (f"outside {' and '.join(FAMILY_HOMES)}, {len(found)} mentions of a family "
                       f"({', '.join(sorted(names[0] | names[1]))}); reach it through training.tasks instead:\n"
                       + "\n".join(found))


# ---- the checks themselves see what they must -------------------------------------------------
def test_cycles_through_function_imports_and_package_inits_are_found(tmp_path, monkeypatch):
    package = tmp_path / "cycleprobe"
    package.mkdir()
    (package / "__init__.py").write_text("from .c import g\n")
    (package / "a.py").write_text("def f():\n    from .b import h\n    return h\n")
    (package / "b.py").write_text("from .a import f\n\n\ndef h():\n    return f\n")
    (package / "c.py").write_text('"""No cycle in a docstring: import cycleprobe.a"""\n\n\ndef g():\n'
                                  "    from cycleprobe import g as again\n    return again\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("cycleprobe", cache_dir=None)
    assert find_cycles(graph) == [("cycleprobe", "cycleprobe.c"), ("cycleprobe.a", "cycleprobe.b")]


def test_family_mentions_skip_docstrings_and_comments_and_see_the_rest():
    names = ({"neumf", "gmf", "mlp", "mf", "multvae"}, {"NeuMF", "NeuMFTask"}, {"training.tasks.neumf", "training.models.neumf"})
    source = '''"""The NeuMF report: neumf, gmf and mlp."""
import training.models  # the neumf model


def run(args, mlp_layers):
    """'neumf' in a docstring is prose."""
    from .tasks.neumf import NeuMFTask
    label = f"{args.name} loss of a NeuMF state_dict"
    folder = f"{args.checkpoint_dir}/gmf/best.pth"
    key = "pretrained_gmf"
    return label, folder, key, training.models.build_model("mlp"), "MultVAE"
'''
    assert family_mentions(source, "training/probe.py", "training.probe", names) == [
        "training/probe.py:5: identifier mlp_layers",
        "training/probe.py:7: import training.tasks.neumf.NeuMFTask",
        "training/probe.py:9: f-string text '/gmf/best.pth'",
        "training/probe.py:11: string 'MultVAE'",
        "training/probe.py:11: string 'mlp'",
    ]
