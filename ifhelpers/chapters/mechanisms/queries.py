"""The chapter's queries and what they cover (§4, App. D), the consistency groups of Fig. 5 and the massive
dimensions that caution every reading of the layers."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ifhelpers.data import pararel, wikipedia

__all__ = ["consistency_groups", "where_in_span", "subject_snippets", "query_counts", "most_snippets", "attribute_queries", "massive_dimensions"]


def consistency_groups(summary: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
    """Fig. 5's groups: each tuned model's ParaRel consistency relative to the base model.

    ``summary`` is :func:`ifhelpers.chapters.predictions.pararel_summary` (indexed by model, with ``role``,
    ``consistency`` and ``consistency_std``, the standard deviation over the three prompts). A tuned
    model is ``"lower"`` when its consistency is below the base model's, ``"higher-close"`` when it is
    higher by at most ``threshold`` and ``"higher"`` above that. The paper's threshold (footnote 4)
    is the base model's standard deviation over the prompts (1.4 points for LLaMA); ``threshold=None``
    takes it from ``summary``. With no base model every model keeps its role as group; with several,
    the first one is the reference.

    Returns one row per model: ``model``, ``role``, ``consistency``, ``consistency_std``,
    ``difference`` (minus the base model's), ``threshold``, ``group``.
    """
    for column in ("role", "consistency", "consistency_std"):
        if column not in summary.columns:
            raise ValueError(f"summary lacks column {column!r}")
    out = summary[["role", "consistency", "consistency_std"]].rename_axis("model").reset_index()
    bases = out.index[out["role"] == "base"]
    if len(bases) == 0:
        out["difference"] = np.nan
        out["threshold"] = np.nan
        out["group"] = out["role"]
        return out
    base = out.loc[bases[0]]
    if threshold is None:
        threshold = float(base["consistency_std"]) if np.isfinite(base["consistency_std"]) else 0.0
    out["difference"] = out["consistency"] - base["consistency"]
    out["threshold"] = threshold

    def group(row):
        if row["role"] == "base":
            return "base"
        if row["difference"] < 0:
            return "lower"
        return "higher-close" if row["difference"] <= threshold else "higher"

    out["group"] = out.apply(group, axis=1)
    return out


def where_in_span(depth, low: float, high: float, inside: str = "within"):
    """Where a relative depth lies against the paper's span ``[low, high]``: ``"before"``, ``inside``
    (``"within"`` by default) or ``"after"``; ``"n/a"`` for a missing depth. ``depth`` may be a number
    or a Series (a Series of words comes back)."""
    if isinstance(depth, pd.Series):
        return depth.map(lambda d: where_in_span(d, low, high, inside))
    if depth is None or not np.isfinite(depth):
        return "n/a"
    return "before" if depth < low else inside if depth <= high else "after"


def subject_snippets(subject_queries: pd.DataFrame, data_dir=None) -> dict[str, list[str]]:
    """The Wikipedia snippets of each subject of :func:`attribute_queries` (App. D), in order of
    first appearance (:func:`ifhelpers.data.wikipedia.load_snippets`)."""
    return {s: wikipedia.load_snippets(s, data_dir=data_dir)["snippet"].tolist()
            for s in subject_queries["subject"].unique()}


def query_counts(queries: pd.DataFrame, relation_pairs: pd.DataFrame, subject_queries: pd.DataFrame,
                 usable: pd.DataFrame, snippets: Mapping[str, Sequence[str]]) -> dict:
    """What the chapter's queries cover: the shared ParaRel pass (queries, facts, relations, the
    relations with same-relation pairs of Fig. 3) and step (a)'s subjects (App. D: how many have
    snippets, how many were drawn, their queries and relations, snippets per subject, mean and sd)."""
    n_snippets = np.array([len(v) for v in snippets.values()])
    same = relation_pairs[relation_pairs["kind"] == "same_relation"]
    return {
        "n_queries": len(queries), "n_facts": queries[["relation", "uuid"]].drop_duplicates().shape[0],
        "n_relations": queries["relation"].nunique(), "n_same_relations": same["relation_a"].nunique(),
        "n_subjects_all": usable.attrs["n_subjects"], "n_subjects_usable": usable.attrs["n_usable"],
        "n_subjects": subject_queries["subject"].nunique(), "n_subject_queries": len(subject_queries),
        "n_subject_relations": subject_queries["relation"].nunique(),
        "snippets_mean": n_snippets.mean(), "snippets_sd": n_snippets.std(ddof=1),
    }


def most_snippets(snippets: Mapping[str, Sequence[str]], n: int = 5) -> str:
    """The ``n`` subjects with the most snippets, as text: ``'United Kingdom' (65), 'Bay' (31)``."""
    most = sorted(snippets, key=lambda s: -len(snippets[s]))[:n]
    return ", ".join(f"{s!r} ({len(snippets[s])})" for s in most)


def attribute_queries(min_snippets: int = 5, n_subjects: int | None = 100, seed: int = 0, relations=None,
                      max_gap: int = 3, min_letters: int = 3, data_dir=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ParaRel queries of subjects that have Wikipedia snippets (§4 "Subjects", App. D).

    The subject attribute set A_s needs snippets mentioning the subject. The offline corpus (a
    stand-in for MediaWiki search) covers few ParaRel subjects, so this analysis draws its own
    query set: among the subjects of every fact of ``relations`` (None: all usable relations) that
    have at least ``min_snippets`` snippets, ``n_subjects`` are drawn (seeded), each with one of
    its facts (a seeded choice among its relations) and every kept template of that fact.
    Subjects with fewer than ``min_letters`` letters (``".de"``, whose one word "de" matches
    snippets about anything) are left out.

    Returns ``(queries, usable)``: the query table (columns of
    :func:`ifhelpers.data.pararel.load_queries`) and :func:`ifhelpers.data.wikipedia.usable_subjects`'s
    table over all subjects (its ``attrs`` say how many are usable and the snippet source).
    """
    if relations is None:
        relations = pararel.load_relations(data_dir)
    facts = pd.concat([pararel.load_facts(r, data_dir=data_dir) for r in relations], ignore_index=True)
    usable = wikipedia.usable_subjects(facts["subject"], min_snippets=min_snippets, max_gap=max_gap,
                                       data_dir=data_dir)
    letters = usable["subject"].map(lambda s: sum(c.isalpha() for c in s))
    usable["usable"] &= letters >= min_letters
    usable.attrs["n_usable"] = int(usable["usable"].sum())
    pool = usable.loc[usable["usable"], "subject"].to_numpy()
    if len(pool) == 0:
        raise ValueError(f"no ParaRel subject has {min_snippets} snippets or more; lower min_snippets")
    rng = np.random.default_rng(seed)
    if n_subjects is not None and n_subjects < len(pool):
        pool = np.sort(rng.choice(pool, size=n_subjects, replace=False))
    candidates = facts[facts["subject"].isin(set(pool))]
    chosen = (candidates.assign(_r=rng.random(len(candidates))).sort_values(["subject", "_r"])
              .drop_duplicates("subject"))
    parts = []
    for relation, group in chosen.groupby("relation", sort=False):
        queries = pararel.load_queries([relation], data_dir=data_dir)
        parts.append(queries[queries["uuid"].isin(set(group["uuid"]))])
    queries = pd.concat(parts, ignore_index=True).sort_values(["subject", "template_id"]).reset_index(drop=True)
    return queries, usable


def massive_dimensions(massive: pd.DataFrame) -> pd.DataFrame:
    """Per model, the share of the last token's squared norm in its three largest dimensions
    (:func:`ifhelpers.measure.layers.top_dims_share`): at h^0 (``h0``), its maximum over the inner layers
    (0 < depth < 1, ``max_inner``) and where (``max_depth``), the share of inner layers above 50%
    (``inner_above_half``, as a percentage), and at h^L (``h_last``). A caution for the cosines and the lens of §4."""
    rows = []
    for model, part in massive.groupby("model", sort=False):
        part = part.sort_values("layer")
        inner = part[(part["depth"] > 0) & (part["depth"] < 1)]
        peak = inner.loc[inner["share"].idxmax()] if len(inner) else pd.Series({"share": np.nan, "depth": np.nan})
        rows.append({"model": model, "h0": part["share"].iloc[0], "max_inner": peak["share"],
                     "max_depth": peak["depth"], "inner_above_half": f"{(inner['share'] > 0.5).mean():.0%}",
                     "h_last": part["share"].iloc[-1]})
    return pd.DataFrame(rows)
