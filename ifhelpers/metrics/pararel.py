"""ParaRel factual accuracy and consistency (paper §3, Table 2; Elazar et al. 2021; App. E).

Pure: arrays or tidy frames in, numbers out; nothing here imports the rest of the package
except its sibling metric modules.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from ifhelpers.metrics.validation import check_columns


_PARAREL_COLUMNS = ("relation", "fact_id", "template_id", "prediction", "gold")


def _check_pararel(frame: pd.DataFrame) -> None:
    check_columns(frame, _PARAREL_COLUMNS, "ParaRel predictions")
    keys = ["relation", "fact_id", "template_id"]
    dup = frame.duplicated(keys)
    if dup.any():
        row = frame.loc[dup, keys].iloc[0].to_dict()
        raise ValueError(f"duplicate (relation, fact_id, template_id) query, e.g. {row}")
    if frame["prediction"].isna().any():
        raise ValueError("prediction contains missing values")


def _gold_set(gold) -> frozenset:
    if isinstance(gold, str):
        return frozenset([gold])
    if not isinstance(gold, Iterable) and pd.isna(gold):
        raise ValueError("gold contains a missing value")
    if isinstance(gold, Iterable):
        gold = frozenset(gold)
        if not gold:
            raise ValueError("gold contains an empty set of objects")
        return gold
    return frozenset([gold])


def pararel_query_pairs(predictions: pd.DataFrame) -> pd.DataFrame:
    """All pairs of paraphrased queries of the same fact, labelled consistent or not.

    §3 (Elazar et al. 2021): two queries of one fact (same relation and subject, two
    different templates) are *consistent* when their top-1 predictions are the same
    string. App. E / §4 Fig. 4 split the paraphrase cosines by this label.

    Parameters
    ----------
    predictions : DataFrame with columns ``relation``, ``fact_id``, ``template_id``,
        ``prediction`` (one row per query; normalise the strings beforehand, the
        comparison is exact) and ``gold`` (unused here).

    Returns
    -------
    DataFrame with one row per unordered pair: ``relation``, ``fact_id``,
    ``template_a``, ``template_b``, ``row_a``, ``row_b`` (positional rows of
    ``predictions``, i.e. of an aligned representation array), ``prediction_a``,
    ``prediction_b`` and ``consistent`` (bool). Facts with a single query give no pair.

    paper: §3 ParaRel pairs
    """
    _check_pararel(predictions)
    left = predictions[["relation", "fact_id", "template_id", "prediction"]].copy()
    left["row"] = np.arange(len(left))
    merged = left.merge(left, on=["relation", "fact_id"], suffixes=("_a", "_b"))
    merged = merged[merged["row_a"] < merged["row_b"]]
    out = pd.DataFrame(
        {
            "relation": merged["relation"].to_numpy(),
            "fact_id": merged["fact_id"].to_numpy(),
            "template_a": merged["template_id_a"].to_numpy(),
            "template_b": merged["template_id_b"].to_numpy(),
            "row_a": merged["row_a"].to_numpy(dtype=np.intp),
            "row_b": merged["row_b"].to_numpy(dtype=np.intp),
            "prediction_a": merged["prediction_a"].to_numpy(),
            "prediction_b": merged["prediction_b"].to_numpy(),
        }
    )
    out["consistent"] = out["prediction_a"].to_numpy() == out["prediction_b"].to_numpy()
    return out.sort_values(["row_a", "row_b"], kind="stable").reset_index(drop=True)


def pararel_scores(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per-relation ParaRel accuracy and consistency (§3, Table 2; Elazar et al. 2021).

    * accuracy: share of queries whose top-1 prediction is a correct object. ``gold``
      holds one object string or, for N-M relations, a collection of objects; any of
      them counts as correct.
    * consistency: share of pairs of paraphrased queries of the same fact (all
      unordered template pairs) whose top-1 predictions agree, pooled over the facts of
      the relation (Elazar et al.'s per-relation definition). A relation with a single template
      has no pair: its ``n_pairs`` is 0 and its consistency NaN, while its accuracy is kept.

    Returns
    -------
    DataFrame indexed by ``relation`` with columns ``n_facts``, ``n_queries``,
    ``n_pairs``, ``accuracy``, ``consistency`` (fractions in [0, 1]).

    paper: Table 2 ParaRel
    """
    _check_pararel(predictions)
    gold = predictions["gold"].map(_gold_set)
    correct = [p in g for p, g in zip(predictions["prediction"], gold)]
    queries = pd.DataFrame(
        {
            "relation": predictions["relation"].to_numpy(),
            "fact_id": predictions["fact_id"].to_numpy(),
            "correct": np.asarray(correct, dtype=float),
        }
    )
    by_rel = queries.groupby("relation", sort=True)
    scores = pd.DataFrame(
        {
            "n_facts": by_rel["fact_id"].nunique(),
            "n_queries": by_rel.size(),
            "accuracy": by_rel["correct"].mean(),
        }
    )
    pairs = pararel_query_pairs(predictions)
    pair_stats = pairs.groupby("relation", sort=True)["consistent"].agg(["size", "mean"])
    scores["n_pairs"] = pair_stats["size"].reindex(scores.index).fillna(0).astype(int)
    scores["consistency"] = pair_stats["mean"].reindex(scores.index).astype(float)
    return scores[["n_facts", "n_queries", "n_pairs", "accuracy", "consistency"]]


def pararel_macro(predictions_or_scores: pd.DataFrame) -> pd.Series:
    """ParaRel accuracy and consistency over relations (Table 2), as fractions (Table 2 shows percent).

    * ``accuracy``: the macro average over *every* relation, those with a single template included
      (accuracy exists for one query; Table 2 averages per relation, as Elazar et al. do), the headline;
    * ``accuracy_micro``: the share of all queries answered correctly (relations weighted by their
      number of queries), beside it;
    * ``consistency``: the macro average over the relations that have pairs of paraphrased queries
      (a relation with one template has none, so no consistency);
    * ``n_relations`` and ``n_relations_with_pairs``.

    Accepts the tidy predictions (passed through :func:`pararel_scores`) or its per-relation table.

    paper: Table 2 ParaRel macro
    """
    frame = predictions_or_scores
    if not {"accuracy", "consistency"}.issubset(getattr(frame, "columns", [])):
        frame = pararel_scores(frame)
    with_pairs = frame["consistency"].notna()
    if not with_pairs.any():
        raise ValueError("no relation has a fact queried with two templates; consistency is undefined")
    weights = frame["n_queries"] if "n_queries" in frame else pd.Series(1.0, index=frame.index)
    return pd.Series(
        {
            "accuracy": float(frame["accuracy"].mean()),
            "accuracy_micro": float(np.average(frame["accuracy"], weights=weights)),
            "consistency": float(frame.loc[with_pairs, "consistency"].mean()),
            "n_relations": int(len(frame)),
            "n_relations_with_pairs": int(with_pairs.sum()),
        }
    )


#: The vowels of ParaRel's a/an filter (Elazar et al. 2021, ``filter_a_an_vowel_mismatch``).
_VOWELS = ("a", "e", "i", "o", "u")


def a_an_mismatch(final_words, objects) -> np.ndarray:
    """ParaRel's a/an filter: True where the template's word before ``[Y]`` is "a" and the gold object
    starts with a vowel, or "an" and it does not (the article gives the object away, or rules it out).

    ``final_words`` are the queries' last words (lower-cased; the word before ``[Y]`` of a template that
    ends in ``[Y]``), ``objects`` the gold objects (the first one for N-M facts). ParaRel's own probe drops
    such (template, subject) queries before it counts consistency; its accuracy functions do not.
    """
    words = [str(w).lower() for w in final_words]
    firsts = [str(o).lower().startswith(_VOWELS) for o in objects]
    if len(words) != len(firsts):
        raise ValueError(f"{len(words)} final words for {len(firsts)} objects")
    return np.array([(w == "a" and v) or (w == "an" and not v) for w, v in zip(words, firsts)], dtype=bool)


def pararel_variants(predictions: pd.DataFrame) -> pd.DataFrame:
    """ParaRel consistency the other ways it is reported, per relation (chapter 6; the columns of
    :func:`pararel_query_pairs`'s input).

    * ``consistency``: Table 2's reading (:func:`pararel_scores`): agreeing pairs over all unordered pairs
      of paraphrased queries, pooled over the relation's facts. ParaRel's probe counts *directed* pairs
      (each pattern against each of its paraphrases, both ways): every unordered pair twice, so the same
      share.
    * ``consistency_per_fact``: each fact's share of agreeing pairs, then the mean over facts (the first
      author's mParaRel code, Fierro & Søgaard 2022); weights a fact with few templates like one with many.
    * ``consistent_subjects``: the share of facts whose every query gives the same prediction (ParaRel's
      ``consistent_subjects``).
    * ``all_patterns_accuracy``: the share of facts answered correctly under *every* template (ParaRel's
      group accuracy: "knows the fact under every paraphrase").
    * ``known_consistency`` / ``unknown_consistency``: pooled pair agreement over the facts answered
      correctly under at least one template, and over the others (ParaRel's knowledgeable consistency);
      ``share_known``: the share of facts that are known.

    Facts with one query give no pair and count only in ``all_patterns_accuracy`` and ``share_known``.

    paper: beyond: ParaRel variants
    """
    _check_pararel(predictions)
    gold = predictions["gold"].map(_gold_set)
    queries = pd.DataFrame({"relation": predictions["relation"].to_numpy(), "fact_id": predictions["fact_id"].to_numpy(),
                            "prediction": predictions["prediction"].to_numpy(),
                            "correct": [p in g for p, g in zip(predictions["prediction"], gold)]})
    same = (queries.groupby(["relation", "fact_id", "prediction"], sort=True).size()
            .pipe(lambda c: c * (c - 1) / 2).groupby(level=["relation", "fact_id"]).sum())
    facts = queries.groupby(["relation", "fact_id"], sort=True).agg(
        n=("correct", "size"), n_correct=("correct", "sum"), n_predictions=("prediction", "nunique"))
    facts["agreeing"] = same.reindex(facts.index).to_numpy()
    facts["pairs"] = facts["n"] * (facts["n"] - 1) / 2
    facts["known"] = facts["n_correct"] > 0
    paired = facts[facts["pairs"] > 0]

    def pooled(part: pd.DataFrame) -> pd.Series:
        sums = part.groupby(level="relation")[["agreeing", "pairs"]].sum()
        return sums["agreeing"] / sums["pairs"]

    by_relation = facts.groupby(level="relation")
    out = pd.DataFrame({
        "consistency": pararel_scores(predictions)["consistency"],
        "consistency_per_fact": (paired["agreeing"] / paired["pairs"]).groupby(level="relation").mean(),
        "consistent_subjects": (paired["n_predictions"] == 1).groupby(level="relation").mean(),
        "all_patterns_accuracy": (facts["n_correct"] == facts["n"]).groupby(level="relation").mean(),
        "known_consistency": pooled(paired[paired["known"]]),
        "unknown_consistency": pooled(paired[~paired["known"]]),
        "share_known": by_relation["known"].mean(),
    })
    out.index.name = "relation"
    return out
