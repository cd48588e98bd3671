"""What each chapter parameter may be: one declaration, in the chapter's own ``parameters`` cell.

Every assignment of a chapter's ``parameters`` cell ends its comment with a bracketed declaration::

    n_examples = 100        # training examples per arm [int ≥ 1]
    mmlu_subjects = None    # None: all 57 subjects [mmlu subjects or None]
    finetune_mode = "probe" # ... [one of: probe, lora, full, auto]

The same cell gives papermill its defaults and ``ifhelpers run`` / ``sweep`` their checks
(:func:`declarations`, :func:`check`), so there is one list. A declaration is a *kind*, optionally
``or None``. Kinds: ``int`` / ``float`` with an optional bound (``≥ 1``, ``> 0``, ``≤ 5``, ``in 0..2``;
not ``>=``: papermill reads a second ``=`` on a line as a second assignment and then ignores the
parameter),
``bool``, ``str``, ``dict``, ``one of: a, b``, ``list of <kind>``, and the data kinds ``mmlu subjects``,
``pararel relations``, ``becel tasks``, ``pararel prompt ids``, ``mmlu instruction ids`` and
``tuning arms`` (lists of names checked against the mirror and the code). :func:`check` returns one
line per bad value: the parameter, the value and what is valid. Sizes whose large values can only be
mistakes (a bootstrap of 10^10 resamples runs until killed) also have a ceiling, :data:`CEILINGS`, by
parameter name across the chapters.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Declaration", "ParameterError", "CEILINGS", "declarations", "check_value", "check"]

_DECLARATION = re.compile(r"\[([^\[\]]+)\]\s*$")
_BOUND = re.compile(r"^(int|float)(?:\s*(≥|>|≤|<)\s*(-?[\d.e+-]+)|\s+in\s+(-?[\d.]+)\.\.(-?[\d.]+))?$")


_DATA = "more than any of the book's data sets holds"
#: The largest value a size parameter (by name, in whichever chapter declares it) may take, and why a
#: larger one can only be a mistake. Counts of data items are capped where no data set reaches.
CEILINGS = {
    "n_resamples": (100_000, "bootstrap intervals settle long before 10^5 resamples"),
    "epochs": (1_000, "a fine-tuning run of more than 1000 epochs only overfits"),
    "max_epochs": (1_000, "a fine-tuning run of more than 1000 epochs only overfits"),
    "patience": (1_000, "above max_epochs' ceiling"),
    "batch_size": (65_536, "above what any one device holds for these models"),
    "lora_r": (65_536, "above any model's width"),
    "max_tokens": (1_000_000, "above any model's context length"),
    "attribute_top_k": (1_000_000, "above any vocabulary"),
    "attribute_rank": (1_000_000, "above any vocabulary"),
    **{name: (10_000_000, _DATA) for name in (
        "n_examples", "n_mrpc_pairs", "n_paraphrase_sets", "n_nonparaphrase_per_set", "pararel_n_per_relation",
        "tuned_pararel_n_per_relation", "mmlu_n_questions", "n_train", "n_eval", "becel_n_train", "becel_n_eval",
        "n_relation_pairs", "n_nonparaphrase_pairs", "extraction_n_queries", "attribute_n_subjects", "min_snippets")},
}


class ParameterError(ValueError):
    """A chapter parameter with a value it may not take; the message says which and what is valid."""


@dataclass(frozen=True)
class Declaration:
    """One parameter of a chapter: its name, default, what it may be (``spec``) and its comment."""

    name: str
    default: object
    spec: str
    comment: str


def declarations(source: str) -> dict[str, Declaration]:
    """The declarations of a ``parameters`` cell's source: every ``name = value  # text [spec]`` line.

    Raises ParameterError for an assignment without a declaration (every parameter needs one)."""
    out = {}
    for line in source.splitlines():
        code, _, comment = line.partition("#")
        if "=" not in code or code.startswith((" ", "\t")):
            continue
        name, _, value = code.partition("=")
        name = name.strip()
        if not name.isidentifier():
            continue
        if "=" in comment:
            raise ParameterError(f"parameter {name!r}: its comment holds '=' ({comment.strip()!r}); papermill reads that "
                                 f"line as two assignments and ignores the parameter. Write ≥ / ≤ instead of >= / <=.")
        match = _DECLARATION.search(comment)
        if not match:
            raise ParameterError(f"parameter {name!r} has no declaration: end its comment with [kind], e.g. [int ≥ 1]")
        out[name] = Declaration(name, ast.literal_eval(value.strip()), match.group(1).strip(),
                                _DECLARATION.sub("", comment).strip())
    return out


def _names(kind: str) -> list[str]:
    """The valid names of a data kind (read from the mirror or the code)."""
    if kind == "mmlu subjects":
        from ifhelpers.data.mmlu import load_subjects

        return load_subjects()
    if kind == "pararel relations":
        from ifhelpers.data.pararel import load_relations

        return load_relations()
    if kind == "becel tasks":
        from ifhelpers.data.becel import TASKS

        return list(TASKS)
    if kind == "pararel prompt ids":
        from ifhelpers.data.prompts import BASE_PROMPTS

        return list(range(len(BASE_PROMPTS["pararel"])))
    if kind == "mmlu instruction ids":
        from ifhelpers.data.prompts import MMLU_INSTRUCTION_IDS

        return list(MMLU_INSTRUCTION_IDS)
    raise ParameterError(f"unknown kind {kind!r} in a declaration")


def _number_problem(value, kind: str, op, bound, low, high) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int if kind == "int" else (int, float)):
        return f"must be {'an int' if kind == 'int' else 'a number'}"
    if op is not None:
        b = float(bound)
        ok = {"≥": value >= b, ">": value > b, "≤": value <= b, "<": value < b}[op]
        if not ok:
            return f"must be {op} {bound}"
    if low is not None and not float(low) <= value <= float(high):
        return f"must be in {low}..{high}"
    return None


def _repeat(value) -> str | None:
    """Why a list repeats an item ("repeats X: give each once"), or None. Every list a chapter takes names
    things to run once each (prompts, seeds, arms, tasks, relations): a repeat would count one twice, e.g. a seed
    given twice reuses one tuned model as two and narrows the interval over seeds."""
    if isinstance(value, (list, tuple)):
        seen = set()
        for item in value:
            key = repr(item)
            if key in seen:
                return f"repeats {item!r}: give each once"
            seen.add(key)
    return None


def check_value(value, spec: str) -> str | None:
    """Why ``value`` does not fit ``spec`` (a phrase such as "must be an int ≥ 1"), or None when it fits; a list
    that repeats an item never fits (:func:`_repeat`)."""
    spec = spec.strip()
    if spec.endswith(" or None"):
        return None if value is None else check_value(value, spec[: -len(" or None")])
    if value is None:
        return f"must be {spec}, not None"
    repeat = _repeat(value)
    if repeat:
        return repeat
    if spec.startswith("list of "):
        if not isinstance(value, (list, tuple)) or not value:
            return f"must be a non-empty list of {spec[len('list of '):]}"
        for item in value:
            problem = check_value(item, spec[len("list of "):])
            if problem:
                return f"item {item!r} {problem}"
        return None
    if spec.startswith("one of:"):
        choices = [c.strip() for c in spec[len("one of:"):].split(",")]
        return None if value in choices else f"must be one of {', '.join(choices)}"
    if spec == "bool":
        return None if isinstance(value, bool) else "must be True or False"
    if spec == "str":
        return None if isinstance(value, str) else "must be a string"
    if spec == "dict":
        return None if isinstance(value, dict) else "must be a mapping, e.g. {name: value}"
    if spec == "tuning arms":
        from ifhelpers.model.tuned import check_mixture

        if not isinstance(value, (list, tuple)) or not value:
            return "must be a non-empty list of arms (templates-<k>, templates-all, free-form)"
        for arm in value:
            try:
                check_mixture(str(arm), min_templates=10**6)
            except ValueError:
                return f"item {arm!r} is not an arm: give templates-<k>, templates-all or free-form"
        return None
    if spec in ("mmlu subjects", "pararel relations", "becel tasks", "pararel prompt ids", "mmlu instruction ids"):
        valid = _names(spec)
        if not isinstance(value, (list, tuple)) or not value:
            return f"must be a non-empty list of {spec}"
        bad = [v for v in value if v not in valid]
        shown = ", ".join(map(str, valid[:12])) + (" ..." if len(valid) > 12 else "")
        return None if not bad else f"has unknown {spec} {bad}; valid ({len(valid)}): {shown}"
    match = _BOUND.match(spec)
    if match:
        return _number_problem(value, *match.groups())
    raise ParameterError(f"cannot read the declaration [{spec}]")


def check(declared: dict[str, Declaration], values: dict, chapter: str = "") -> list[str]:
    """One line per value of ``values`` that its declaration (or its ceiling, :data:`CEILINGS`) refuses:
    ``chapter: name=value must be ... (comment; default ...)``. Names without a declaration are left to the
    caller (unknown parameters)."""
    lines = []
    for name, value in values.items():
        if name not in declared:
            continue
        problem = check_value(value, declared[name].spec)
        ceiling, why = CEILINGS.get(name, (None, ""))
        if not problem and ceiling is not None and isinstance(value, (int, float)) and value > ceiling:
            problem = f"is above the ceiling {ceiling:,} ({why}), so it can only be a mistake"
        if problem:
            d = declared[name]
            where = f"{chapter}: " if chapter else ""
            lines.append(f"{where}{name}={value!r} {problem} ({d.comment}; default {d.default!r})"
                         if d.comment else f"{where}{name}={value!r} {problem} (default {d.default!r})")
    return lines


def cell_source(path: str | Path) -> str:
    """The source of a chapter's ``parameters`` cell (ParameterError when it has none)."""
    import jupytext

    for cell in jupytext.read(path).cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return cell.source
    raise ParameterError(f"{path} has no cell tagged 'parameters'")
