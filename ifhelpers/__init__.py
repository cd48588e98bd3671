"""ifhelpers: the machinery behind the ifbook chapters.

The book reproduces *Does Instruction Tuning Make LLMs More Consistent?* (Fierro, Li,
Søgaard, 2024). Notebooks import this package in one line and call one function per step
of the method, in the spirit of d2l's helper library::

    import ifhelpers as ifh
    gap = ifh.metrics.paraphrase_gap(...)

Submodules are imported lazily on first attribute access, so ``import ifhelpers`` is cheap
and does not import torch.
"""

import importlib

__version__ = "0.1.0"


def __getattr__(name):
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
