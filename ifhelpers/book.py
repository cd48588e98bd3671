"""What every chapter does before and after its analysis: the preamble, the glue, the headlines.

A chapter's first code cell is ``ch = ifh.book.setup(models, roles)``: it checks every model name
before anything loads, trains the book's own tuned models that are named but not stored yet, sets the
plotting defaults, gives each model its colour (:func:`model_colors`), says where the
data come from and warns when the compared models come from different families. Values for the prose
go through :func:`glue`; the last cell hands the chapter's headline rows to :func:`finish`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ifhelpers import plots, results
from ifhelpers.data import sources
from ifhelpers.model import registry, tuned

__all__ = ["Chapter", "Plain", "setup", "model_colors", "glue", "glue_by_role", "finish"]


class Plain:
    """Text the book prints as it is ({glue:text} of a ``str`` would show its quotes)."""

    def __init__(self, text):
        self.text = str(text)

    def __repr__(self):
        return self.text


@dataclass
class Chapter:
    """The models of one chapter execution: names, roles, colours and the family caution."""

    models: list[str]
    role_of: dict[str, str]
    colors: dict[str, str]
    caution: str
    started: float = field(default_factory=time.time)

    @property
    def base_name(self) -> str | None:
        """The first base model, or None."""
        return next((m for m in self.models if self.role_of[m] == "base"), None)

    @property
    def tuned_names(self) -> list[str]:
        """The instruction-tuned models, in the order given."""
        return [m for m in self.models if self.role_of[m] == "instruction-tuned"]

    @property
    def tuned_name(self) -> str | None:
        """The first instruction-tuned model, or None."""
        return next(iter(self.tuned_names), None)


def setup(models, roles: dict[str, str] | None = None, *, require_pair: bool = True, quiet: bool = False) -> Chapter:
    """The chapter preamble: check ``models`` (and ``roles`` of names outside the registry), train the
    book's tuned models that are named but not stored, set the plotting defaults and colours, print the
    data source and the family caution, and glue ``base_name``, ``tuned_name`` and ``caution``.

    With ``require_pair`` a chapter that compares a base model with tuned ones says so at once when
    either role is missing, before any model loads.
    """
    started = time.time()
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without widgets
    import transformers

    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bars
    plots.setup()
    models = list(models)
    specs = registry.specs(models, roles)  # fails here, before any model loads, on a bad name
    role_of = {spec.name: spec.role for spec in specs}
    if require_pair:
        registry.check_roles(specs)
    for spec in specs:
        if spec.source.get("kind") == "lora_tuned" and not tuned.is_trained(spec):
            from ifhelpers.train.tuning import ensure_tuned

            ensure_tuned(spec)
    chapter = Chapter(models=[s.name for s in specs], role_of=role_of,
                      colors=model_colors(list(role_of), role_of),
                      caution=registry.family_note(models, roles), started=started)
    glue("base_name", chapter.base_name or "(no base model)")
    glue("tuned_name", chapter.tuned_name or "(no tuned model)")
    glue("caution", chapter.caution or "Every instruction-tuned model is from the base model's family.")
    if not quiet:
        print("Data:", sources.describe_source())
        if chapter.caution:
            from IPython.display import Markdown, display

            display(Markdown(f"**{chapter.caution}**"))
        else:
            print("Every instruction-tuned model is from the base model's family.")
    return chapter


def model_colors(models: list[str], roles: dict[str, str]) -> dict[str, str]:
    """A stable colour per model: base models in blues, instruction-tuned ones in oranges/reds.

    A registry model's colour is fixed by its rank among the registry's models of its role (registry
    order), so it is the same in every chapter and in every list it appears in; other models (Hub ids,
    local folders) take the shades after the registry's, in the order given.
    """
    listed = registry.models()
    rank = {role: [name for name, spec in listed.items() if spec.role == role] for role in ("base", "instruction-tuned")}
    colors, extra = {}, {"base": 0, "instruction-tuned": 0}
    for name in models:
        role = roles[name]
        shades = plots.BASE_SHADES if role == "base" else plots.TUNED_SHADES
        if name in rank[role]:
            index = rank[role].index(name)
        else:
            index = len(rank[role]) + extra[role]
            extra[role] += 1
        colors[name] = shades[index % len(shades)]
    return colors


def glue(name: str, value, display: bool = False):
    """myst_nb's glue for the prose: numpy scalars as Python numbers (so ``{glue:text}`name:.1f``` formats
    them) and strings as :class:`Plain` text (no quotes). Returns ``value``."""
    from myst_nb import glue as myst_glue

    shown = value.item() if isinstance(value, np.generic) else Plain(value) if isinstance(value, str) else value
    myst_glue(name, shown, display=display)
    return value


def glue_by_role(chapter: Chapter, key: str, values, scale: float = 1.0) -> None:
    """Glue ``<key>_base`` and ``<key>_tuned``: the value of the chapter's base and first tuned model."""
    for role, name in (("base", chapter.base_name), ("tuned", chapter.tuned_name)):
        glue(f"{key}_{role}", scale * float(values.get(name, np.nan)) if name else np.nan)


def finish(chapter: Chapter, rows, name: str, results_dir=None):
    """Write the chapter's headline rows for the reproduction summary (:func:`ifhelpers.results.save_headlines`),
    with this execution's wall time, and return them as a table."""
    return results.save_headlines(rows, name, results_dir, started=chapter.started)
