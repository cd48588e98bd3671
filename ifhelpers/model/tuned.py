"""Models this book tunes itself: what decides one (:class:`Recipe`) and where it is stored.

A registry entry with ``source: {kind: lora_tuned, base: ..., mixture: ...}`` names a model that
:mod:`ifhelpers.train.tuning` trains from a base model. Its mixture is one of chapter 5's T0 arms
(:data:`MIXTURES`) or one of the paper's instruction datasets
(:data:`ifhelpers.data.instruction_sets.SETS`: offline, the mirror's subset or labelled stand-in),
all trained by one recipe. Its folder in the user cache holds what
tuning changed, not a copy of the base: the LoRA adapter (peft's ``save_pretrained``), the chat
template it was trained with and its provenance (a few megabytes, where a merged copy of
gemma-3-270m takes 1.1 GB); :func:`ifhelpers.model.models.load` rebuilds the tuned model as base +
adapter. This module only *finds* such a model: its recipe, its folder and a fingerprint of its
weights. Loading a name that has not been trained yet raises :class:`ModelNotTrainedError`, which
says how to train it; nothing in the model layer starts a training run (the chapters and
``ifhelpers run`` train what they need first, through :func:`ifhelpers.train.tuning.ensure_tuned`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ifhelpers.data import sources
from ifhelpers.data.instruction_sets import SETS
from ifhelpers.model import folders as model_folders, registry
from ifhelpers.model.anatomy import PROJECTIONS
from ifhelpers.model.registry import ModelSpec

#: The training arms of chapter 5 (:func:`ifhelpers.train.tuning.mixture`): the same T0 tasks through
#: 1, 2, 4 or all of their templates each (the dose of the dose-response), and free-form data without
#: templates. Any ``templates-<k>`` with 1 <= k <= a recipe's ``min_templates`` is also valid.
MIXTURES = ("templates-1", "templates-2", "templates-4", "templates-all", "free-form")


def templates_per_task(mixture: str) -> int | None:
    """How many templates a mixture draws per T0 task: ``k`` for ``templates-<k>``, None for
    ``templates-all`` (every eligible template); ValueError for ``free-form`` and for a name that is
    not a mixture (the message lists the valid forms)."""
    if mixture == "templates-all":
        return None
    head, _, k = mixture.partition("templates-")
    if head == "" and k.isdigit() and int(k) >= 1:
        return int(k)
    raise ValueError(f"Unknown mixture {mixture!r}: give 'templates-<k>' (k >= 1 templates per T0 task), "
                     f"'templates-all', 'free-form' (e.g. {', '.join(MIXTURES)}) or one of the paper's "
                     f"instruction datasets ({', '.join(SETS)}).")


def check_mixture(mixture: str, min_templates: int) -> str:
    """``mixture`` if it is ``free-form``, an instruction dataset of :data:`SETS`, ``templates-all``
    or ``templates-<k>`` with k <= ``min_templates``."""
    if mixture == "free-form" or mixture in SETS:
        return mixture
    k = templates_per_task(mixture)
    if k is not None and k > min_templates:
        raise ValueError(f"Mixture {mixture!r} needs tasks with {k} templates, but the recipe keeps tasks with "
                         f"at least min_templates={min_templates}: raise min_templates to {k} or lower k.")
    return mixture


#: The files of a tuned model's folder besides the adapter's weights (``adapter_model.safetensors``): the
#: adapter's config, the chat template and the provenance (recipe, base fingerprint, training log).
ADAPTER_CONFIG = "adapter_config.json"
CHAT_TEMPLATE = "chat_template.jinja"
PROVENANCE = "ifhelpers_provenance.json"
#: What a stored tuned model's folder must hold to be whole, besides its adapter's safetensors.
STORED_FILES = (ADAPTER_CONFIG, CHAT_TEMPLATE, PROVENANCE)


#: What a recipe trains: a LoRA adapter (what the book stores) or every weight (measured beside it by
#: ``benchmarks/lora_vs_full.py``).
METHODS = ("lora", "full")
#: Where an instruction dataset's examples come from (:func:`check_data`): the offline mirror's subset or
#: labelled stand-in, or the dataset itself as open-instruct downloaded it (the network, no mirror set).
DATA_ORIGINS = ("mirror", "online")
#: Fields that enter a recipe's key only when they differ from these values: recipes that leave them
#: at their default keep the key they are stored and committed under.
_KEYED_WHEN_SET = {"method": "lora", "data": "mirror"}


class DataOriginError(sources.DataNotFoundError):
    """A tuned model whose recipe names one origin of its data (:data:`DATA_ORIGINS`) asked for where only the
    other can be read; the message says what to set."""


class ModelNotTrainedError(FileNotFoundError):
    """A ``lora_tuned`` registry model that is not stored on this machine yet; the message says how to train it."""


@dataclass(frozen=True)
class Recipe:
    """Everything that decides a tuned model: the base, the mixture and the training settings.

    ``n_examples`` is the size of every mixture (a T0 arm rounds it down to a multiple of the number
    of T0 tasks, so that each task gets the same share; an instruction dataset gives exactly that
    many); every variant trains ``epochs`` passes over its examples in batches of ``batch_size``,
    hence the same number of optimiser steps. ``seed`` draws the data (which templates, which
    examples), the LoRA initialisation and the data order. ``method`` is ``lora`` (the LoRA fields
    apply) or ``full`` (every weight trained; the LoRA fields are ignored). ``data`` says where an
    instruction dataset's examples come from (:func:`check_data`): ``mirror`` (its subset or labelled
    stand-in in the offline mirror) or ``online`` (the dataset open-instruct downloaded); a model of each
    origin is stored apart (``data`` enters the key when it is ``online``). ``target_modules`` are
    module names; the default, Llama's names for every projection of attention and the MLP, tunes the same
    projections in a family that names them otherwise (:func:`ifhelpers.model.anatomy.lora_targets`).
    """

    name: str
    base: str = "gemma-3-270m"  # a registry name, Hub id or local folder of a base model
    mixture: str = "templates-all"
    n_examples: int = 270
    max_tokens: int = 160
    epochs: int = 1
    batch_size: int = 4
    learning_rate: float = 5e-4
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = PROJECTIONS  # in a family that names them otherwise, its names
    seed: int = 0
    min_templates: int = 4  # the T0 tasks every arm uses: those with this many templates that fit
    method: str = "lora"
    data: str = "mirror"

    def __post_init__(self):
        check_mixture(self.mixture, self.min_templates)
        sources.choose("training method", self.method, METHODS)
        sources.choose("data origin", self.data, DATA_ORIGINS)
        if self.data == "online" and self.mixture not in SETS:
            raise ValueError(f"{self.name}: data='online' names one of the paper's instruction datasets "
                             f"({', '.join(SETS)}), not the mixture {self.mixture!r}")
        if self.n_examples < 1 or self.max_tokens < 8 or self.batch_size < 1 or self.epochs < 1:
            raise ValueError(f"{self.name}: n_examples, batch_size, epochs must be >= 1 and max_tokens >= 8")

    @property
    def key(self) -> str:
        """A short hash of every field but the name (and of :data:`_KEYED_WHEN_SET`'s fields only when they
        differ from their default): two recipes with the same key train the same model."""
        fields = {k: v for k, v in dataclasses.asdict(self).items()
                  if k != "name" and (k not in _KEYED_WHEN_SET or v != _KEYED_WHEN_SET[k])}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=list).encode()).hexdigest()[:10]


def recipe_of(spec: ModelSpec) -> Recipe:
    """The :class:`Recipe` of a registry entry whose source is ``{kind: lora_tuned, ...}``."""
    fields = {k: v for k, v in spec.source.items() if k != "kind"}
    if "target_modules" in fields:
        fields["target_modules"] = tuple(fields["target_modules"])
    return Recipe(name=spec.name, **fields)


def spec_for(recipe: Recipe) -> ModelSpec:
    """A model spec for a recipe (a registry entry's, or one with other sizes), loadable like any model."""
    base = registry.resolve(recipe.base, role="base")
    fields = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(recipe).items() if k != "name"}
    return ModelSpec(name=recipe.name, source={"kind": "lora_tuned", **fields}, family=base.family,
                     role="instruction-tuned", prompt_format="chat-template", dtype=base.dtype,
                     reference=None, notes=f"{recipe.base} + {'LoRA' if recipe.method == 'lora' else 'full fine-tuning'}"
                                           f" on {data_label(recipe.mixture, recipe.data)} (this book).")


def data_label(mixture: str, data: str = "mirror") -> str:
    """What a mixture's training data is called: an instruction dataset's offline label (its subset or
    stand-in, :data:`SETS`), or with ``data="online"`` its name and online source; chapter 5's name for a
    T0 arm."""
    if mixture not in SETS:
        return f"the {mixture} mixture"
    return f"{mixture} ({SETS[mixture].online})" if data == "online" else SETS[mixture].label


def check_data(recipe: Recipe, data_dir=None) -> None:
    """:class:`DataOriginError`, before any work starts, when an instruction-dataset recipe cannot read the
    data it names: ``data="online"`` (the dataset itself) with the offline mirror set, or ``data="mirror"``
    (the mirror's subset or labelled stand-in) with no mirror set. A T0 arm of chapter 5 reads the mirror
    when it is set and the online sources otherwise."""
    if recipe.mixture not in SETS:
        return
    root = sources.mirror_root(data_dir)
    other = "mirror" if recipe.data == "online" else "online"
    twins = [name for name in registered_names(recipe.base)
             if (r := recipe_of(registry.get(name))).mixture == recipe.mixture and r.data == other]
    entry = SETS[recipe.mixture]
    if twins:
        twin = f"or name {twins[0]}, its {'offline' if other == 'mirror' else 'online'} twin"
    else:
        twin = ("the mirror holds none of it" if other == "mirror" and entry.offline == "online only"
                else f"or use a recipe with data={other!r}")
    if recipe.data == "online" and root is not None:
        raise DataOriginError(f"{recipe.name} is tuned on {recipe.mixture} itself, online ({entry.online}), which the "
                              f"offline mirror does not hold: unset {sources.ENV_DATA} and HF_HUB_OFFLINE on a "
                              f"machine with the network to train it; {twin}.")
    if recipe.data == "mirror" and root is None:
        raise DataOriginError(f"{recipe.name} is tuned on the offline mirror's data ({entry.label}) and no mirror is "
                              f"set: set {sources.ENV_DATA} to the mirror (a folder laid out as shared/data), {twin}.")


def registered_names(base: str) -> list[str]:
    """The registry's tuned models of ``base``, e.g. ``["gemma-3-270m-ift-free-form", ...]``."""
    return [name for name, spec in registry.models().items()
            if spec.source["kind"] == "lora_tuned" and spec.source["base"] == base]


def folders(recipe: Recipe) -> tuple[Path, Path]:
    """(checkpoint folder while training, folder of the stored adapter) in the user cache."""
    name = f"{recipe.name}-{recipe.key}"
    return sources.cache_root("tuning", name), sources.cache_root("models", name)


def is_stored(recipe: Recipe) -> bool:
    """Whether the adapter of ``recipe`` is stored on this machine and reads back whole (a damaged one, or
    one of the older layout, is said on one line and removed: it is trained again)."""
    return model_folders.stored_whole(folders(recipe)[1], f"tuned model {recipe.name}", STORED_FILES)


def is_trained(spec: ModelSpec) -> bool:
    """Whether the tuned model of ``spec`` is stored on this machine and reads back whole (:func:`is_stored`)."""
    return is_stored(recipe_of(spec))


def training_log(recipe: Recipe) -> dict:
    """What training recorded for a tuned model: time, steps, peak memory, losses, data check."""
    return json.loads((folders(recipe)[1] / PROVENANCE).read_text())["training"]


def location(spec: ModelSpec) -> tuple[str, str]:
    """(folder of its adapter, fingerprint) of a stored ``lora_tuned`` model; :class:`ModelNotTrainedError`
    if not trained. The fingerprint hashes the adapter's file names and sizes and the provenance, which
    holds the recipe and the base model's fingerprint: the weights that base + adapter give."""
    recipe = recipe_of(spec)
    target = folders(recipe)[1]
    if not is_stored(recipe):
        raise ModelNotTrainedError(
            f"{spec.name} is a model this book tunes itself and it is not trained on this machine yet "
            f"(expected in {target}). Train it with `ifhelpers.train.tuning.ensure_tuned("
            f"ifhelpers.model.registry.get({spec.name!r}))`; `ifhelpers run` and the chapters do this for you.")
    weights = sorted(target.glob("*.safetensors"))
    stamp = hashlib.sha256("".join(f"{p.name}:{p.stat().st_size}" for p in weights).encode())
    stamp.update((target / PROVENANCE).read_bytes())
    return str(target), f"{spec.name}@{recipe.key}:{stamp.hexdigest()[:12]}"
