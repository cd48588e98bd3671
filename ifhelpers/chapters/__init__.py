"""Chapter analyses: one module per chapter, what the chapter computes and finds (layer 4). No chapter imports another.

Submodules load on first attribute access (``ifh.chapters.<module>``), as in :mod:`ifhelpers`.
"""

from ifhelpers import lazy_submodules

__getattr__ = lazy_submodules(__name__)
