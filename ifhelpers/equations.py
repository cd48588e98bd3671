"""Where each equation lives: the one function of the package behind every quantity of the paper.

Each function that computes a quantity of :data:`ifhelpers.paper.QUANTITIES` says so in a ``paper:``
line of its docstring (``paper: Table 1; Table 4``). :func:`homes` reads those lines from the source
(nothing is imported or run) and finds the chapters that use each function (a chapter uses it when a
call in the chapter reaches it through the package's call graph), for the appendix page "Where each
equation lives"; a test fails when a quantity has no function or two.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pandas as pd

from ifhelpers import paper

PACKAGE = Path(__file__).resolve().parent
_TAG = re.compile(r"^\s*paper:\s*(.+?)\s*$", re.M)


def tagged_functions(package: Path = PACKAGE) -> pd.DataFrame:
    """Every ``paper:`` tag in the package: one row per (quantity, function), with ``module``,
    ``function`` (qualified name) and ``quantity`` (the tag, a key of :data:`ifhelpers.paper.QUANTITIES`)."""
    rows = []
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                doc = ast.get_docstring(node) or ""
                for tag in _TAG.findall(doc):
                    for quantity in (q.strip() for q in tag.split(";") if q.strip()):
                        rows.append({"quantity": quantity, "module": module, "function": node.name})
    return pd.DataFrame(rows, columns=["quantity", "module", "function"])


_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")


def call_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Which names each function of the package calls (by name; methods included), read from the source. A
    function defined inside another (a measurement of :mod:`ifhelpers.measure`) counts as its enclosing
    function's calls, so the runner that calls each measurement reaches none of them by the inner name."""
    graph: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in [*tree.body, *(n for c in tree.body if isinstance(c, ast.ClassDef) for n in c.body)]:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                called = {c.func.id if isinstance(c.func, ast.Name) else c.func.attr
                          for c in ast.walk(node) if isinstance(c, ast.Call)
                          and isinstance(c.func, (ast.Name, ast.Attribute))}
                graph.setdefault(node.name, set()).update(called)
    return graph


def reachable(names, graph: dict[str, set[str]]) -> set[str]:
    """Every function name reached from ``names`` through the call graph (the names themselves included)."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph.get(name, ()))
    return seen


def homes(package: Path = PACKAGE, notebooks_dir: Path | None = None) -> pd.DataFrame:
    """One row per quantity of the paper, in the paper's order: ``quantity``, ``what``, ``function``
    (``module.name``; "" when none), ``n_functions`` (must be 1) and ``chapters`` (the notebooks using it)."""
    notebooks_dir = notebooks_dir or package.parent / "notebooks"
    graph = call_graph(package)
    used = {p.stem: reachable(set(_CALL.findall(p.read_text())), graph)
            for p in sorted(notebooks_dir.glob("[0-9][0-9]_*.md"))}
    tags = tagged_functions(package)
    rows = []
    for quantity, what in paper.QUANTITIES.items():
        found = tags[tags["quantity"] == quantity]
        users = sorted({stem for stem, names in used.items() if set(found["function"]) & names})
        rows.append({"quantity": quantity, "what": what,
                     "function": ", ".join(f"{r['module']}.{r['function']}" for _, r in found.iterrows()),
                     "n_functions": len(found), "chapters": users})
    return pd.DataFrame(rows)


def markdown_table(table: pd.DataFrame) -> str:
    """The appendix table in MyST Markdown, chapters as links."""
    lines = ["| paper | what it is | the one function | used in |", "|---|---|---|---|"]
    for _, r in table.iterrows():
        used = ", ".join(f"{{doc}}`../notebooks/{c}`" for c in r["chapters"]) or "(the library only)"
        lines.append(f"| {r['quantity']} | {r['what']} | `{r['function'] or '(none)'}` | {used} |")
    return "\n".join(lines)
