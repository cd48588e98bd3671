"""Data loaders: every dataset of the paper, from its online source or the offline mirror (layer 1).

Submodules load on first attribute access (``ifh.data.<module>``), as in :mod:`ifhelpers`.
"""

from ifhelpers import lazy_submodules

__getattr__ = lazy_submodules(__name__)
