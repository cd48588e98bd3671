"""The model registry: which models and pairs the book knows, read from ``models.yaml``.

The registry is declarative: ``models.yaml`` beside this file lists each model's source (a Hub id,
a GGUF file inside a PyPI package, or a weight difference against a base), family, role (base or
instruction-tuned), prompt format (the paper's Table 3) and dtype. Any Hub id or local path that is
not in the registry works too, with its role given by the caller (:func:`resolve`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from ifhelpers.model import folders

REGISTRY_FILE = Path(__file__).with_name("models.yaml")
ROLES = ("base", "instruction-tuned")
PROMPT_FORMATS = ("base", "open-instruct", "chat-template")


class UnknownModelError(KeyError):
    """A model or pair name that is neither in the registry nor a Hub id / local path."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0])


@dataclass(frozen=True)
class ModelSpec:
    """One model of the registry (or one built on the fly for a Hub id / local path)."""

    name: str
    source: dict[str, Any]
    family: str
    role: str
    prompt_format: str
    dtype: dict[str, str] = field(default_factory=lambda: {"cpu": "float32", "gpu": "bfloat16"})
    architecture: str = "decoder-only"
    reference: str | None = None
    notes: str = ""

    @property
    def is_instruction_tuned(self) -> bool:
        return self.role == "instruction-tuned"


@dataclass(frozen=True)
class PairSpec:
    """A base model and the instruction-tuned models compared with it."""

    name: str
    base: str
    tuned: tuple[str, ...]
    same_family: bool
    notes: str = ""

    @property
    def members(self) -> tuple[str, ...]:
        return (self.base, *self.tuned)


@lru_cache(maxsize=1)
def _load_yaml() -> dict[str, Any]:
    with open(REGISTRY_FILE, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _spec_from_entry(name: str, entry: dict[str, Any], defaults: dict[str, Any]) -> ModelSpec:
    merged = {**defaults, **entry}
    spec = ModelSpec(name=name, **merged)
    if spec.role not in ROLES:
        raise ValueError(f"models.yaml: {name}: role must be one of {ROLES}, got {spec.role!r}")
    if spec.prompt_format not in PROMPT_FORMATS:
        raise ValueError(
            f"models.yaml: {name}: prompt_format must be one of {PROMPT_FORMATS}, got {spec.prompt_format!r}"
        )
    return spec


@lru_cache(maxsize=1)
def models() -> dict[str, ModelSpec]:
    """Every registry model by name."""
    data = _load_yaml()
    return {name: _spec_from_entry(name, entry, data.get("defaults", {})) for name, entry in data["models"].items()}


@lru_cache(maxsize=1)
def pairs() -> dict[str, PairSpec]:
    """Every registry pair by name (a base model and its instruction-tuned counterparts)."""
    return {
        name: PairSpec(name=name, base=p["base"], tuned=tuple(p["tuned"]), same_family=p["same_family"],
                       notes=p.get("notes", ""))
        for name, p in _load_yaml()["pairs"].items()
    }


def _unknown(kind: str, name: str, known: list[str]) -> UnknownModelError:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return UnknownModelError(
        f"Unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(sorted(known))}. "
        + ("A Hugging Face Hub id (owner/name) or a local folder also works, with role='base' or "
           "role='instruction-tuned'." if kind == "model" else "")
    )


def get(name: str) -> ModelSpec:
    """The registry entry called ``name``; an unknown name lists the known ones."""
    try:
        return models()[name]
    except KeyError:
        raise _unknown("model", name, list(models())) from None


def pair(name: str) -> PairSpec:
    """The registry pair called ``name`` (e.g. ``"pocket"``)."""
    try:
        return pairs()[name]
    except KeyError:
        raise _unknown("pair", name, list(pairs())) from None


def resolve(name_or_path: str, role: str | None = None, prompt_format: str | None = None,
            trust_remote_code: bool | None = None) -> ModelSpec:
    """A registry name, a Hub id (``owner/name``) or a local folder, as a :class:`ModelSpec`.

    Registry names win; a :class:`ModelSpec` (e.g. :func:`ifhelpers.train.tuning.spec_for`) passes
    through. A local folder is checked first (:func:`ifhelpers.model.folders.check_folder`: config,
    weights as safetensors, tokenizer, no remote code unless allowed). For a Hub id or a local path
    the caller must say the ``role``; the prompt
    format defaults to the model's chat template for instruction-tuned models and to the plain base
    prompts of Table 3 otherwise.
    """
    if isinstance(name_or_path, ModelSpec):
        return name_or_path
    if name_or_path in models():
        spec = get(name_or_path)
        if role is not None and role != spec.role:
            raise ValueError(f"{name_or_path} is registered as {spec.role!r}, not {role!r}")
        return spec
    is_path = Path(name_or_path).expanduser().exists() or folders.looks_like_path(name_or_path)
    looks_like_hub_id = name_or_path.count("/") == 1 and not folders.looks_like_path(name_or_path)
    if not (is_path or looks_like_hub_id):
        raise _unknown("model", name_or_path, list(models()))
    if is_path:
        folders.check_folder(name_or_path, trust_remote_code)
    if role not in ROLES:
        raise ValueError(
            f"{name_or_path!r} is not in the registry, so its role must be given: "
            f"role='base' or role='instruction-tuned'."
        )
    if prompt_format is None:
        prompt_format = "chat-template" if role == "instruction-tuned" else "base"
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}")
    source = ({"kind": "local", "path": str(Path(name_or_path).expanduser().resolve())} if is_path
              else {"kind": "hub", "hub_id": name_or_path})
    return ModelSpec(name=name_or_path, source=source, family="unknown", role=role, prompt_format=prompt_format)


def table():
    """The registry as a pandas DataFrame (one row per model), for the book's appendix."""
    import pandas as pd

    rows = []
    for spec in models().values():
        src = spec.source
        where = (src.get("hub_id") or src.get("diff_hub_id")
                 or (f"trained by this book: LoRA on {src['base']}" if src["kind"] == "lora_tuned" else None)
                 or f"PyPI: {src.get('package')}")
        rows.append({"model": spec.name, "role": spec.role, "family": spec.family,
                     "prompt format": spec.prompt_format, "source": src["kind"], "where": where,
                     "notes": " ".join(spec.notes.split())})
    return pd.DataFrame(rows)


def specs(names, roles: dict[str, str] | None = None) -> list[ModelSpec]:
    """The specs of a chapter's ``models`` parameter, validated before any model loads."""
    roles = roles or {}
    if not names:
        raise ValueError("The models parameter is empty: give at least one registry name, Hub id or local folder.")
    return [resolve(name, role=roles.get(name) if isinstance(name, str) else None) for name in names]


class RolesError(ValueError):
    """A chapter's models whose roles do not make the comparison the chapter computes (no base, no tuned
    model, a model given twice)."""


def check_roles(specs: list[ModelSpec], one_base: bool = False) -> None:
    """:class:`RolesError` unless ``specs`` name each model once and hold at least one base and one
    instruction-tuned model (``one_base``: exactly one base model and nothing else, for the chapter that
    tunes its own). Two specs are one model when their names or their sources (folder, Hub id,
    registry source) are equal."""
    seen: dict[str, str] = {}
    for spec in specs:
        source = yaml.safe_dump(spec.source, sort_keys=True)
        for key in (spec.name, source):
            if key in seen:
                raise RolesError(f"{spec.name} is given twice (also as {seen[key]}): compare each model once, "
                                 f"e.g. --models base=BASE,ift=TUNED.")
            seen[key] = spec.name
    got = ", ".join(f"{s.name} ({s.role})" for s in specs)
    if one_base:
        if len(specs) != 1 or specs[0].role != "base":
            raise RolesError(f"This chapter tunes one base model: give exactly one, --models base=NAME "
                             f"(got {got}).")
        return
    for role in ROLES:
        if not any(s.role == role for s in specs):
            raise RolesError(f"This chapter compares a base model with instruction-tuned ones and got no "
                             f"{role} model ({got}): give both, --models base=BASE,ift=TUNED or pair=NAME.")


def family_note(names, roles: dict[str, str] | None = None) -> str:
    """A warning sentence when the compared base and instruction-tuned models come from different families."""
    all_specs = specs(names, roles)
    bases = {s.family for s in all_specs if s.role == "base"}
    tuned = [s for s in all_specs if s.role == "instruction-tuned" and s.family not in bases]
    if not bases or not tuned:
        return ""
    return (
        f"Caution: {', '.join(s.name for s in tuned)} {'is' if len(tuned) == 1 else 'are'} not from the base "
        f"model's family ({', '.join(sorted(bases))}); differences mix instruction tuning with differences "
        f"of architecture, training data and tokenizer."
    )
