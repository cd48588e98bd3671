"""The package's shape: imports point downward through its layers, with no cycle and no private name
crossing modules, and the chapters define nothing (their code lives in ifhelpers).

Layers, bottom to top (a module may import the layers below it, and its own subpackage's modules,
except that no chapter imports another chapter; the modules of one chapter's package import each other):

0. ``ifhelpers`` (lazy submodule access), ``metrics/*``, ``stats``, ``paper``: pure, nothing of the package
1. ``findings``, ``plots``, ``data/*``
2. ``model/*``
3. ``train/*``
4. ``measure/*`` (every per-model measurement: the forward passes the chapters read)
5. ``chapters/*`` (report only: no chapter runs a forward pass itself, so none imports ``model.engine``,
   ``model.lens`` or ``model.generate``, nor calls the passes of ``model.probes``)
6. ``results``, ``summary``, ``equations`` (reading and writing what chapters found; the equation map)
7. ``book`` (the chapter preamble), ``cli``
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "ifhelpers"
LAYERS = {"ifhelpers": 0, "ifhelpers.metrics": 0, "ifhelpers.stats": 0, "ifhelpers.design": 0, "ifhelpers.paper": 0,
          "ifhelpers.findings": 1, "ifhelpers.plots": 1, "ifhelpers.data": 1, "ifhelpers.notebooks": 1,
          "ifhelpers.model": 2, "ifhelpers.train": 3, "ifhelpers.measure": 4, "ifhelpers.chapters": 5,
          "ifhelpers.results": 6, "ifhelpers.parameters": 6, "ifhelpers.summary": 6, "ifhelpers.equations": 6,
          "ifhelpers.book": 7, "ifhelpers.cli": 7}
#: The model modules that run or read a forward pass: the measure layer's, never a chapter's.
FORWARD_PASSES = {"ifhelpers.model.engine", "ifhelpers.model.lens", "ifhelpers.model.generate"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def group(module: str) -> str:
    """The layer entry a module belongs to: its subpackage (``ifhelpers.data``) or itself (``ifhelpers.stats``)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def chapter(module: str) -> str:
    """The chapter a module of ``chapters/`` belongs to: itself, or its package (``ifhelpers.chapters.mechanisms``)."""
    return ".".join(module.split(".")[:3])


def imports(path: Path) -> list[tuple[str, str]]:
    """(imported module, imported name or "") for every ifhelpers import in a file, relative ones resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.startswith("ifhelpers"):
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    is_module = (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").exists() or \
                        (PACKAGE.parent / sub.replace(".", "/")).is_dir()
                    found.append((sub, "") if is_module else (base, alias.name))
        elif isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name.startswith("ifhelpers")]
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_has_a_layer():
    assert all(group(m) in LAYERS for m in MODULES), sorted(m for m in MODULES if group(m) not in LAYERS)


def test_imports_point_downward():
    wrong = []
    for module, path in MODULES.items():
        for target, _ in imports(path):
            if target == "ifhelpers" or target == module:
                continue
            mine, theirs = group(module), group(target)
            same_subpackage = mine == theirs and mine != module
            if same_subpackage and mine == "ifhelpers.chapters" and target != "ifhelpers.chapters" \
                    and chapter(target) != chapter(module):
                wrong.append(f"{module} imports {target}: no chapter imports another chapter")
            elif not same_subpackage and LAYERS[theirs] >= LAYERS[mine]:
                wrong.append(f"{module} (layer {LAYERS[mine]}) imports {target} (layer {LAYERS[theirs]})")
    assert not wrong, "\n".join(wrong)


def test_chapters_run_no_forward_pass():
    wrong = [f"{module} imports {target}" for module, path in MODULES.items() if group(module) == "ifhelpers.chapters"
             for target, _ in imports(path) if target in FORWARD_PASSES or target.rpartition(".")[0] in FORWARD_PASSES]
    wrong += [f"{module}:{node.lineno} calls probes.{node.func.attr}" for module, path in MODULES.items()
              if group(module) == "ifhelpers.chapters" for node in ast.walk(ast.parse(path.read_text()))
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr.startswith("run_") and getattr(node.func.value, "id", "") == "probes"]
    assert not wrong, "\n".join(wrong)


def test_notebooks_measure_through_the_runner():
    """No notebook loads models in a loop of its own (``ifh.model.models.each``): ``ifh.measure.runner.run``
    loads each model once and takes every measurement."""
    found = [f"{nb.name}:{i}: {line.strip()[:60]}" for nb in sorted((REPO / "notebooks").glob("*.md"))
             for i, line in enumerate(nb.read_text().splitlines(), 1) if "models.each(" in line]
    assert not found, "\n".join(found)


def test_no_private_name_crosses_modules():
    wrong = [f"{module} imports {target}.{name}" for module, path in MODULES.items()
             for target, name in imports(path) if name.startswith("_") and not name.startswith("__") and target != module]
    wrong += [f"{module} imports private module {target}" for module, path in MODULES.items()
              for target, _ in imports(path) if target.rpartition(".")[2].startswith("_")
              and not target.endswith("__init__")]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    graph = {m: {t for t, _ in imports(p) if t in MODULES and t != m and not m.startswith(t + ".")} for m, p in MODULES.items()}
    done, cycles = set(), []

    def visit(m, stack):
        if m in stack:
            cycles.append(stack[stack.index(m):] + [m])
            return
        if m in done:
            return
        for d in sorted(graph[m]):
            visit(d, stack + [m])
        done.add(m)

    for m in sorted(graph):
        visit(m, [])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_chapters_define_no_function_or_class():
    found = [f"{nb.name}:{i}: {line.strip()[:60]}" for nb in sorted((REPO / "notebooks").glob("*.md"))
             for i, line in enumerate(nb.read_text().splitlines(), 1) if re.match(r"(def|class) \w", line)]
    assert not found, "\n".join(found)
