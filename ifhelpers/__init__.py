"""ifhelpers: the machinery behind the ifbook chapters.

The book reproduces *Does Instruction Tuning Make LLMs More Consistent?* (Fierro, Li,
Søgaard, 2024). Notebooks import this package in one line and call one function per step
of the method, in the spirit of d2l's helper library::

    import ifhelpers as ifh
    gap = ifh.metrics.cosine.paraphrase_gap(...)

Submodules are imported lazily on first attribute access, so ``import ifhelpers`` is cheap
and does not import torch.
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
