"""Training: the BECEL classifier backends and instruction tuning of a base model (layer 3).

Submodules load on first attribute access (``ifh.train.<module>``), as in :mod:`ifhelpers`.
"""

from ifhelpers import lazy_submodules

__getattr__ = lazy_submodules(__name__)
