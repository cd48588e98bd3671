"""Per-model measurements (layer 4, between ``model``/``train`` and ``chapters``): every forward pass the
book reads, reduced to tidy frames stamped with the model they measure.

A measurement is made by a function of its parameters (the queries, the setups, the seed) that returns a
function of one loaded model; :func:`ifhelpers.measure.runner.run` loads each model once, applies every
measurement to it and stacks the frames model by model. Each frame carries the model's ``model``,
``role``, ``family`` and ``n_layers`` in front (:func:`ifhelpers.measure.stamp.stamp`). The chapters only
report what these frames hold.

* :mod:`~ifhelpers.measure.units`: the §2 representations and their gap per paraphrase set (Table 1);
* :mod:`~ifhelpers.measure.pararel`: the shared ParaRel pass and its scores (§3 Table 2, App. C.1's variants);
* :mod:`~ifhelpers.measure.mmlu`: zero-shot MMLU under every setup (§3, App. C.1), and in other wrappers;
* :mod:`~ifhelpers.measure.becel`: the BECEL classifiers (§3, App. C.2);
* :mod:`~ifhelpers.measure.layers`: what §4 reads layer by layer (relation similarity, the paraphrase gap,
  extraction events, subject attribute rates);
* :mod:`~ifhelpers.measure.responses`: greedy responses and their POSIX scores (chapter 6).

Submodules load on first attribute access (``ifh.measure.<module>``), as in :mod:`ifhelpers`.
"""

from ifhelpers import lazy_submodules

__getattr__ = lazy_submodules(__name__)
