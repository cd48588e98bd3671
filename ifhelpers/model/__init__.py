"""Models: the registry, loading, the batched forward-pass engine with its on-disk cache, the logit lens and the shared probes (layer 2).

Submodules load on first attribute access (``ifh.model.<module>``), as in :mod:`ifhelpers`.
"""

from ifhelpers import lazy_submodules

__getattr__ = lazy_submodules(__name__)
