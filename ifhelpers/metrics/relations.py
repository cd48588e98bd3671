"""Relation similarity of query pairs per layer (paper §4 "Relations", Fig. 3).

Pure: arrays or tidy frames in, numbers out; nothing here imports the rest of the package
except its sibling metric modules.
"""

from __future__ import annotations

import pandas as pd

from ifhelpers.metrics.cosine import grouped_pair_cosine


def relation_similarity(reps, pairs, relations, per_relation: bool = False):
    """Cosine of query pairs per layer, macro-averaged over relations (§4, Fig. 3).

    ``pairs`` (int array (K, 2)) index rows of ``reps``; ``relations`` (length K) labels
    each pair (for cross-relation pairs, any label the caller groups by, e.g. the first
    query's relation). Choosing the pairs (different subjects and objects; templates
    ending in different tokens, footnote 6) is the caller's job. Returns the macro
    average, a float or ``(L,)`` array, or with ``per_relation=True`` the per-relation
    table of :func:`grouped_pair_cosine`.

    paper: Fig. 3
    """
    table = grouped_pair_cosine(reps, pairs, relations)
    if per_relation:
        return table
    values = table.to_numpy().mean(axis=0)
    return float(values[0]) if table.columns.equals(pd.Index(["cos"])) else values
