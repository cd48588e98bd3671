"""How instruction tuning changes factual recall: the mechanistic analyses of paper §4 (App. D-F).

Geva et al. (2023) describe factual recall in three steps, and §4 of Fierro, Li & Søgaard (2024)
asks which of them instruction tuning changes, on ParaRel queries, averaged over Table 3's three
prompts:

(a) **subject enrichment** — the hidden state of the last subject token, read through the logit
    lens, ranks tokens related to the subject highly (Fig. 2, App. D): :func:`attribute_queries`,
    :func:`ifhelpers.measure.layers.attribute_sets`, :func:`ifhelpers.measure.layers.attribute_rates`; read as :func:`attribute_peaks` and
    :func:`attribute_comparison` (tuned − base);
(b) **relation propagation** — queries of the same relation are closer than queries of different
    relations in the relation layers (Fig. 3): :func:`ifhelpers.measure.layers.relation_similarity_table`, read as
    :func:`relation_separation` (per relation: :func:`relation_separation_per_relation`, the units of
    its band) and :func:`relation_layers` (where the separation first reaches half its maximum);
    paraphrases are closer than non-paraphrases, split by whether the model answers them consistently
    (Figs. 4, 6, 7): :func:`ifhelpers.measure.layers.paraphrase_gap_table`, per fact :func:`ifhelpers.measure.layers.paraphrase_gap_per_fact` (the units
    of its bands), :func:`gap_in_relation_layers`;
(c) **attribute extraction** — an MHSA (or MLP) update whose top-1 token is the final prediction
    (eq. 1, Figs. 5, 8): :func:`ifhelpers.measure.layers.extraction_rates`, :func:`ifhelpers.measure.layers.extraction_events` (both through
    :mod:`ifhelpers.metrics.extraction`), :func:`extraction_peaks`, :func:`extraction_comparison`; its
    Pearson correlation with ParaRel consistency across instruction-tuned models (Table 7):
    :func:`extraction_correlation`, :func:`table7`.

One model's measurement is :func:`ifhelpers.measure.layers.mechanisms` (the shared ParaRel pass of
:func:`ifhelpers.model.probes.run_pararel` scored as in the predictions chapter, then the updates and the
subject states); this module reads its tables, and the paper's colour groups of Fig. 5 are
:func:`consistency_groups`. Tuned − base
comparisons go through :func:`ifhelpers.stats.compare_roles` (:func:`compare_to_base`);
:func:`summary_table` and :func:`headlines` set the findings beside the paper's.

The package follows the chapter's sections: :mod:`~ifhelpers.chapters.mechanisms.queries` (the queries, the
consistency groups, the massive dimensions), :mod:`~ifhelpers.chapters.mechanisms.subjects` (a),
:mod:`~ifhelpers.chapters.mechanisms.relations` (b), :mod:`~ifhelpers.chapters.mechanisms.extraction` (c),
:mod:`~ifhelpers.chapters.mechanisms.curves` (curves over layers, comparisons, plotting helpers) and
:mod:`~ifhelpers.chapters.mechanisms.report` (findings and headlines, and the printed names of the tables'
columns, :data:`LABELS`, applied as ``frame.rename(columns=LABELS)`` where a table is shown); every name is available here.

Layers and depth
    ``resid`` holds h^0 ... h^L (h^0 the token embedding, h^L before the final norm); the updates
    a^l, f^l (l = 0 ... L-1) are added to h^l to give h^{l+1}. Models of different depths are
    compared on *relative depth*: ``l / L`` for the state h^l and ``(l + 1) / L`` for an update of
    layer l (the depth of the state it writes into), :func:`ifhelpers.measure.stamp.relative_depth`. The paper's layer
    numbers (a 32-layer LLaMA-7b) convert the same way, to within ±1/32 since the paper does not
    say whether its layers count from 0 or 1.

The logit lens
    Hidden states and updates are read with :func:`ifhelpers.model.lens.top_tokens`: the model's final
    norm, then its output embedding E (untied for LLaMA, tied for Gemma and SmolLM2). For the
    updates of eq. 1 the paper writes ``E a``; Geva et al. (2023), whose analysis it follows,
    project through the final norm as the logit lens does, and so do we (see the chapter).
"""

from ifhelpers.chapters.mechanisms.queries import *  # noqa: F401,F403
from ifhelpers.chapters.mechanisms.curves import *  # noqa: F401,F403
from ifhelpers.chapters.mechanisms.subjects import *  # noqa: F401,F403
from ifhelpers.chapters.mechanisms.relations import *  # noqa: F401,F403
from ifhelpers.chapters.mechanisms.extraction import *  # noqa: F401,F403
from ifhelpers.chapters.mechanisms.report import *  # noqa: F401,F403
from ifhelpers.measure.layers import BLOCKS  # noqa: F401  (the blocks the chapter's tables name)
from ifhelpers.measure.stamp import relative_depth  # noqa: F401  (the depth of the chapter's curves)
