"""Where each equation lives: the one function of the package behind every quantity of the paper.

Each function that computes a quantity of :data:`ifhelpers.paper.QUANTITIES` says so in a ``paper:``
line of its docstring (``paper: Table 1; Table 4; Fig. 4``). :func:`homes` reads those lines from
the source (nothing is imported or run) and finds the chapters that use each function, for the
appendix page "Where each equation lives"; a test fails when a quantity has no function or two.
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


def _users(function: str, module: str, notebooks: dict[str, str], chapter_sources: dict[str, str]) -> list[str]:
    """The chapters (notebook stems) that call ``function``: by name, or through a chapter module that calls it."""
    call = re.compile(rf"\b{re.escape(function)}\b")
    via = [m for m, text in chapter_sources.items() if call.search(text) or module == m]
    used = []
    for stem, text in notebooks.items():
        if call.search(text) or any(re.search(rf"\b{re.escape(m.rsplit('.', 1)[1])}\b", text) and
                                    (f"chapters import {m.rsplit('.', 1)[1]}" in text or m in text) for m in via):
            used.append(stem)
    return used


def homes(package: Path = PACKAGE, notebooks_dir: Path | None = None) -> pd.DataFrame:
    """One row per quantity of the paper, in the paper's order: ``quantity``, ``what``, ``function``
    (``module.name``; "" when none), ``n_functions`` (must be 1) and ``chapters`` (the notebooks using it)."""
    notebooks_dir = notebooks_dir or package.parent / "notebooks"
    notebooks = {p.stem: p.read_text() for p in sorted(notebooks_dir.glob("[0-9][0-9]_*.md"))}
    chapter_sources = {".".join(p.relative_to(package.parent).with_suffix("").parts): p.read_text()
                       for p in sorted((package / "chapters").glob("*.py")) if p.name != "__init__.py"}
    tags = tagged_functions(package)
    rows = []
    for quantity, what in paper.QUANTITIES.items():
        found = tags[tags["quantity"] == quantity]
        users = sorted({u for _, r in found.iterrows()
                        for u in _users(r["function"], r["module"], notebooks, chapter_sources)})
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
