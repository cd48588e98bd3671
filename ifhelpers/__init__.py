"""ifhelpers: the machinery behind the ifbook chapters.

The book reproduces *Does Instruction Tuning Make LLMs More Consistent?* (Fierro, Li,
Søgaard, 2024). Notebooks import this package in one line and call one function per step
of the method, in the spirit of d2l's helper library::

    import ifhelpers as ifh
    per_set = ifh.metrics.cosine.paraphrase_gap_per_set(reps, set_ids, pair_a, pair_b, pair_sets)
    table1_gap = per_set["gap"].mean()          # Table 1: cos(paraph.) - cos(¬paraph.)

The package is in layers, each importing only those below it (``tests/test_layers.py``):

* ``metrics`` (one module per section of the paper: the only home of each formula), ``stats``,
  ``paper`` (the paper's own numbers); then ``findings`` and ``plots``;
* ``data`` (every dataset, online or from the offline mirror);
* ``model`` (registry, loading, the forward-pass engine and its cache, the logit lens);
* ``train`` (the BECEL classifiers, instruction tuning);
* ``measure`` (every per-model measurement, stamped with its model, and the one runner that loads each
  model once and takes them);
* ``chapters`` (one module per chapter: what it reports and finds; no forward pass);
* ``results``, ``summary``, ``equations``, then ``book`` (the chapter preamble and glue) and ``cli``.

The appendix page "Where each equation lives" (``book/equations.md``) maps every equation, table
and figure of the paper to its one function. Submodules are imported lazily on first attribute
access, so ``import ifhelpers`` is cheap and does not import torch.
"""

import importlib

__version__ = "0.1.0"


def lazy_submodules(package: str):
    """A module ``__getattr__`` that imports ``package.<name>`` on first access (PEP 562)."""

    def __getattr__(name):
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{package}.{name}":
                raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    return __getattr__


__getattr__ = lazy_submodules(__name__)
