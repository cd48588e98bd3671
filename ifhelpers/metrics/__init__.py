"""The paper's formulas, each in one function: arrays or tidy frames in, numbers out.

One module per section of the paper; each function's docstring names its equation, table or figure
in a ``paper:`` line, from which the book's appendix "Where each equation lives" is generated.
Nothing here loads a model or imports the rest of the package.

* :mod:`~ifhelpers.metrics.cosine`: §2, App. B.1 eq. 2-4, Tables 1 and 4, §4 Fig. 4
* :mod:`~ifhelpers.metrics.pararel`: §3, Table 2 (ParaRel)
* :mod:`~ifhelpers.metrics.mmlu`: §3, Table 2, App. C.1 (MMLU)
* :mod:`~ifhelpers.metrics.becel`: §3, App. C.2, Tables 2 and 6 (BECEL)
* :mod:`~ifhelpers.metrics.attributes`: §4, App. D, Fig. 2
* :mod:`~ifhelpers.metrics.relations`: §4, Fig. 3
* :mod:`~ifhelpers.metrics.extraction`: §4 eq. 1, Fig. 5, App. F Fig. 8
"""

from ifhelpers import lazy_submodules

__getattr__ = lazy_submodules(__name__)
