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

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ifhelpers import findings, paper, stats
from ifhelpers.data import pararel, wikipedia
from ifhelpers.measure.layers import BLOCKS
from ifhelpers.measure.stamp import relative_depth

__all__ = [
    "GROUP_COLORS",
    "consistency_groups",
    "where_in_span",
    "subject_snippets",
    "query_counts",
    "most_snippets",
    "massive_dimensions",
    "extraction_correlation",
    "extraction_peaks",
    "extraction_comparison",
    "mlp_below_mhsa",
    "table7",
    "correlation_status",
    "attribute_queries",
    "attribute_set_sizes",
    "attribute_size_ratio",
    "attribute_peaks",
    "attribute_comparison",
    "example_layers",
    "mean_ci_by_layer",
    "compare_to_base",
    "comparison_values",
    "relation_separation",
    "relation_separation_per_relation",
    "relation_layers",
    "gap_over_prompts",
    "gap_positive_share",
    "gap_in_relation_layers",
    "gap_span_by_prompt",
    "plot_layer_curves",
    "shade_paper_layers",
    "summary_table",
    "headlines",
]


#: Fig. 5's colours: ParaRel consistency of a tuned model relative to the base model.
GROUP_COLORS = {"base": "#4C72B0", "lower": "#D4A017", "higher-close": "#55A868", "higher": "#C44E52",
                "instruction-tuned": "#DD8452"}


# --------------------------------------------------------------------------------------------------
# Small helpers


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


# --------------------------------------------------------------------------------------------------
# The queries and one pass per model


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


def massive_dimensions(massive: pd.DataFrame) -> pd.DataFrame:
    """Per model, the share of the last token's squared norm in its three largest dimensions
    (:func:`ifhelpers.measure.layers.top_dims_share`): at h^0, its maximum over the inner layers (0 < depth < 1) and where,
    the share of inner layers above 50%, and at h^L. A caution for the cosines and the lens of §4."""
    rows = []
    for model, part in massive.groupby("model", sort=False):
        part = part.sort_values("layer")
        inner = part[(part["depth"] > 0) & (part["depth"] < 1)]
        peak = inner.loc[inner["share"].idxmax()] if len(inner) else pd.Series({"share": np.nan, "depth": np.nan})
        rows.append({"model": model, "h^0": part["share"].iloc[0], "max (inner layers)": peak["share"],
                     "at depth": peak["depth"], "inner layers above 50%": f"{(inner['share'] > 0.5).mean():.0%}",
                     "h^L": part["share"].iloc[-1]})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# (b) Relations: Fig. 3 and Figs. 4, 6, 7


# --------------------------------------------------------------------------------------------------
# (c) Extraction: Figs. 5, 8 and Table 7


def extraction_correlation(rates: pd.DataFrame, consistency: pd.Series) -> pd.DataFrame:
    """Table 7: Pearson r and p-value per block and layer between the instruction-tuned models'
    extraction rates and their ParaRel consistency (:func:`ifhelpers.stats.pearson_by_layer`).

    ``rates`` is tidy with ``model``, ``role``, ``block``, ``layer``, ``rate`` (averaged over
    prompts); ``consistency`` is indexed by model. Only instruction-tuned models enter, as in the
    paper. With fewer than three of them, or models of different depths (layer l is then not the
    same place), no number is given: ``defined`` is False and ``message`` says why.

    Returns ``model`` (the tuned models, comma-separated), ``role``, ``block``, ``layer``, ``r``,
    ``p_value``, ``n_models``, ``defined``, ``message``.
    """
    tuned = rates[rates["role"] == "instruction-tuned"]
    models = list(dict.fromkeys(tuned["model"]))
    out = []
    for block in BLOCKS:
        table = tuned[tuned["block"] == block].pivot_table(index="model", columns="layer", values="rate")
        table = table.reindex(models)
        if table.empty:
            continue
        depths = tuned[tuned["block"] == block].groupby("model")["layer"].max()
        if depths.nunique() > 1:
            result = pd.DataFrame({"r": np.nan, "p_value": np.nan, "n_models": len(models), "defined": False,
                                   "message": "the instruction-tuned models have different depths"},
                                  index=pd.RangeIndex(int(depths.max()) + 1, name="layer"))
        else:
            result = stats.pearson_by_layer(table, consistency.reindex(models))
        result = result.reset_index()
        result.insert(0, "block", block)
        result.insert(0, "role", "instruction-tuned")
        result.insert(0, "model", ", ".join(models))
        out.append(result)
    if not out:
        return pd.DataFrame(columns=["model", "role", "block", "layer", "r", "p_value", "n_models", "defined",
                                     "message"])
    return pd.concat(out, ignore_index=True)


def extraction_peaks(ext: pd.DataFrame) -> pd.DataFrame:
    """Where each model's extraction rate peaks, per block (Figs. 5, 8): the rows of
    :func:`mean_ci_by_layer`'s curves (with ``depth``) at their maximum: ``model``, ``block``,
    ``layer``, ``depth``, ``estimate``, ``low``, ``high``, ``n``."""
    return ext.loc[ext.groupby(["model", "block"], sort=False)["estimate"].idxmax(),
                   ["model", "block", "layer", "depth", "estimate", "low", "high", "n"]]


def extraction_comparison(events: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Fig. 5's "LLaMA extracts as often as the best tuned models": each tuned model's MHSA extraction
    rate minus the base model's, averaged over layers, paired over the queries both read
    (:func:`compare_to_base` on :func:`ifhelpers.measure.layers.extraction_events`)."""
    return compare_to_base(events, "event", "query", where=events["block"] == "MHSA", seed=seed)


def mlp_below_mhsa(peaks: pd.DataFrame) -> tuple[int, int]:
    """How many models' MLP extraction peak is below their MHSA peak (Fig. 8 against Fig. 5; the paper
    and Geva et al. 2023 find MLP rates lower), and of how many models: ``(below, models)``."""
    by_block = peaks.pivot_table(index="model", columns="block", values="estimate")
    below = by_block["MLP"] < by_block["MHSA"]
    return int(below.sum()), len(below)


def table7(ext: pd.DataFrame, groups: pd.DataFrame) -> pd.DataFrame:
    """Table 7 from the chapter's tables: :func:`extraction_correlation` of the extraction-rate curves
    (``ext``, from :func:`mean_ci_by_layer` over queries) with the ParaRel consistency of
    :func:`consistency_groups`."""
    rates = ext.rename(columns={"estimate": "rate"})[["model", "role", "block", "layer", "rate"]]
    return extraction_correlation(rates, groups.set_index("model")["consistency"])


def correlation_status(correlation: pd.DataFrame) -> tuple[bool, str]:
    """Whether Table 7 has a number for these models (``defined`` somewhere in ``correlation``), and
    why not when it has none: ``(defined, message)``."""
    if len(correlation) and bool(correlation["defined"].any()):
        return True, ""
    return False, str(correlation["message"].iloc[0]) if len(correlation) else "there is no instruction-tuned model"


# --------------------------------------------------------------------------------------------------
# (a) Subjects: Fig. 2, App. D


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


def attribute_set_sizes(attribute_sets: pd.DataFrame, attributes: pd.DataFrame, top_k: int) -> pd.DataFrame:
    """Size of A_s per model (App. D: the paper's 1,936 ± 1,036 tokens per subject): ``mean``, ``std``,
    ``min``, ``max`` over subjects, and the share of (row, layer) readings of :func:`ifhelpers.measure.layers.attribute_rates`
    where fewer than ``top_k`` lens tokens survived the filters."""
    sizes = attribute_sets.groupby("model", sort=False)["n_attributes"].agg(["mean", "std", "min", "max"])
    short = attributes.assign(short=lambda t: t["n_kept"] < top_k)
    sizes["share of layer readings with < k tokens kept"] = short.groupby("model", sort=False)["short"].mean()
    return sizes


def attribute_size_ratio(sizes: pd.DataFrame) -> float:
    """How many times smaller our attribute sets are than the paper's (App. D's mean size over the
    mean of :func:`attribute_set_sizes`' per-model means)."""
    return paper.FINDINGS["attributes_per_subject"][0] / sizes["mean"].mean()


def attribute_peaks(attr: pd.DataFrame) -> pd.DataFrame:
    """Where each model's attribute rate peaks over the layer outputs h^1 ... h^L (Fig. 2, footnote 5:
    the paper's peaks at ≈30% and falls after layer 25), with the rate at h^0 and h^L.

    ``attr`` is :func:`mean_ci_by_layer`'s curve with ``depth``. h^0 is the subject token's own
    embedding: its lens tokens are the token itself and its neighbours, so it is left out of the peak.
    Returns ``model``, ``layer``, ``depth``, ``estimate``, ``low``, ``high``, ``h^0``, ``h^L``.
    """
    inner = attr[attr["layer"] > 0]
    peaks = inner.loc[inner.groupby("model", sort=False)["estimate"].idxmax(),
                      ["model", "layer", "depth", "estimate", "low", "high"]]
    peaks["h^0"] = peaks["model"].map(attr[attr["layer"] == 0].set_index("model")["estimate"])
    last = attr.loc[attr.groupby("model", sort=False)["layer"].idxmax()].set_index("model")["estimate"]
    peaks["h^L"] = peaks["model"].map(last)
    return peaks


def attribute_comparison(attributes: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Fig. 2's "higher for every tuned model": each tuned model's attribute rate minus the base
    model's, averaged over prompts, templates and the layers h^1 ... h^L, paired over subjects
    (:func:`compare_to_base` on :func:`ifhelpers.measure.layers.attribute_rates`)."""
    return compare_to_base(attributes, "rate", "subject", where=attributes["layer"] > 0, seed=seed)


def example_layers(examples: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """The rows of the lens examples at ``n`` evenly spaced layers of each model (h^0 to h^L)."""
    picked = []
    for _, part in examples.groupby("model", sort=False):
        wanted = np.linspace(0, part["layer"].max(), n).round().astype(int)
        picked.append(part[part["layer"].isin(wanted)])
    return pd.concat(picked)


# --------------------------------------------------------------------------------------------------
# Summaries and figures


def mean_ci_by_layer(table: pd.DataFrame, value: str, unit: str, by: Sequence[str] = (), confidence: float = 0.95,
                     n_resamples: int = 1000, seed: int = 0, depth_kind: str | None = None) -> pd.DataFrame:
    """Mean over units (after averaging each unit's rows, e.g. its prompts) with a bootstrap interval.

    For each group of ``by`` and each ``layer``: average ``value`` within each ``unit`` (relation,
    subject, query), then the mean over units and a percentile bootstrap interval resampling units
    (:func:`ifhelpers.stats.bootstrap_ci`). Units missing a layer (NaN) are left out of that layer.
    With ``depth_kind`` (``"state"`` or ``"update"``; ``by`` must include ``n_layers``) a ``depth`` column
    of :func:`ifhelpers.measure.stamp.relative_depth` is added: the curves of Figs. 2, 3, 5 and 8.

    Returns ``by`` columns, ``layer``, ``estimate``, ``low``, ``high``, ``n`` (and ``depth``).
    """
    by = list(by)
    out = []
    groups = table.groupby(by, sort=False) if by else [((), table)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        wide = group.groupby([unit, "layer"])[value].mean().unstack("layer")
        rows = []
        for layer in wide.columns:
            values = wide[layer].dropna().to_numpy()
            if len(values) >= 2:
                ci = stats.bootstrap_ci(values, n_resamples=n_resamples, confidence=confidence, seed=seed,
                                        method="percentile")
                rows.append((layer, float(ci["estimate"]), float(ci["low"]), float(ci["high"]), len(values)))
            else:
                est = float(values[0]) if len(values) else np.nan
                rows.append((layer, est, np.nan, np.nan, len(values)))
        frame = pd.DataFrame(rows, columns=["layer", "estimate", "low", "high", "n"])
        for name, v in zip(by, key):
            frame.insert(by.index(name), name, v)
        out.append(frame)
    result = pd.concat(out, ignore_index=True)
    if depth_kind is not None:
        result["depth"] = relative_depth(result["layer"], result["n_layers"], depth_kind)
    return result


def compare_to_base(table: pd.DataFrame, value: str, unit: str, where=None, seed: int = 0) -> pd.DataFrame:
    """Each instruction-tuned model against the base model on the same units (paired).

    ``table`` is tidy with ``model``, ``role``, ``unit`` and ``value`` columns (e.g. the attribute
    rate per subject, prompt and layer). Each unit's value is averaged over its rows (prompts and
    layers, or only the rows ``where`` keeps, a boolean Series), then
    :func:`ifhelpers.stats.compare_roles` compares tuned − base over the units both models have,
    taken in sorted order (the order the bootstrap resamples). Returns one row per (base, tuned) pair: ``base``, ``tuned`` and the fields
    of :func:`ifhelpers.stats.paired_comparison`; empty without a base model.
    """
    if where is not None:
        table = table[where]
    # each unit's mean (a sorted groupby), the models in their order of appearance and the units sorted
    # within each: compare_roles then pairs the units in sorted order
    order = {m: i for i, m in enumerate(dict.fromkeys(table["model"]))}
    means = table.groupby(["model", "role", unit])[value].mean().reset_index()
    means = means.sort_values("model", key=lambda c: c.map(order), kind="stable")
    return stats.compare_roles(means, value, unit, seed=seed)


def comparison_values(comparison: pd.DataFrame, scale: float = 100.0) -> dict:
    """The first (base, tuned) pair of :func:`compare_to_base` for the prose: ``diff``, ``diff_low``,
    ``diff_high`` (×``scale``, points), ``p`` (Wilcoxon), ``tuned`` and ``direction``: "higher" /
    "lower" when the 95% interval excludes 0, else "not different"; "n/a" (and NaN) without a pair."""
    if not len(comparison):
        return {"diff": np.nan, "diff_low": np.nan, "diff_high": np.nan, "p": np.nan, "tuned": "n/a",
                "direction": "n/a"}
    first = comparison.iloc[0]
    direction = "higher" if first["diff_low"] > 0 else "lower" if first["diff_high"] < 0 else "not different"
    return {"diff": scale * first["mean_diff"], "diff_low": scale * first["diff_low"],
            "diff_high": scale * first["diff_high"], "p": first["wilcoxon_p"], "tuned": first["tuned"],
            "direction": direction}


def relation_separation(summary: pd.DataFrame) -> pd.DataFrame:
    """Same-relation minus different-relation cosine per model and layer (Fig. 3's reading).

    ``summary`` has ``model``, ``kind``, ``layer``, ``depth``, ``estimate`` (e.g. from
    :func:`mean_ci_by_layer` over relations). The paper reads the relation layers where the
    different-relation cosine drops further than the same-relation one, i.e. where this
    separation grows. Returns ``model``, ``layer``, ``depth``, ``same``, ``different``,
    ``separation``.
    """
    wide = summary.pivot_table(index=["model", "layer", "depth"], columns="kind", values="estimate").reset_index()
    wide = wide.rename(columns={"same_relation": "same", "different_relation": "different"})
    wide["separation"] = wide["same"] - wide["different"]
    wide.columns.name = None
    order = {m: i for i, m in enumerate(dict.fromkeys(summary["model"]))}
    return wide.sort_values(["model", "layer"], key=lambda c: c.map(order) if c.name == "model" else c) \
        .reset_index(drop=True)[["model", "layer", "depth", "same", "different", "separation"]]


def relation_separation_per_relation(relation: pd.DataFrame) -> pd.DataFrame:
    """Same-relation minus different-relation cosine of each relation, per prompt and layer: the units
    of Fig. 3's separation (§4 "Relations"), for a bootstrap band over relations.

    ``relation`` is :func:`ifhelpers.measure.layers.relation_similarity_table`'s (with the model's columns of :func:`ifhelpers.measure.stamp.stamp`).
    With matched relations (its default) every relation has both kinds, so the mean over relations
    of this separation (after the mean over prompts, as :func:`mean_ci_by_layer` takes it) equals
    :func:`relation_separation` of the two macro averages. Returns the table's columns other than
    ``kind``, ``cos`` and ``n_pairs``, with ``same``, ``different`` and ``separation``.
    """
    keys = [c for c in relation.columns if c not in ("kind", "cos", "n_pairs")]
    wide = relation.pivot_table(index=keys, columns="kind", values="cos", sort=False).reset_index()
    wide = wide.rename(columns={"same_relation": "same", "different_relation": "different"})
    wide.columns.name = None
    wide["separation"] = wide["same"] - wide["different"]
    return wide[[*keys, "same", "different", "separation"]]


def relation_layers(separation: pd.DataFrame, span: tuple[float, float] | None = None) -> pd.DataFrame:
    """Where each model's relation layers are: the depth at which the same-minus-different separation
    (:func:`relation_separation`) first reaches half its maximum (§4 "Relations", Fig. 3).

    The paper reads its relation layers (3-8 of 32) where the different-relation cosine falls further
    than the same-relation one. The rule here: over the layer outputs h^1 ... h^L (h^0 is the last
    word's embedding, and footnote 6 makes the last words of a pair differ), the first depth where the
    separation is at least half its maximum. It is not defined, with the reason in ``note``, when no
    layer has a separation (no pairs), when the separation is the same at every layer, or when no
    layer has a positive separation. ``span`` (default: the paper's layers 3-8,
    :func:`ifhelpers.paper.layer_span`) gives the mean separation inside the paper's span.

    Returns one row per model: ``model``, ``max separation``, ``at depth``, ``half of max first at
    depth`` (NaN when not defined), ``mean in paper's span``, ``same at h^0`` (the same-relation cosine
    of the embeddings), ``defined``, ``note``.
    """
    lo, hi = span if span is not None else paper.layer_span(*paper.FINDINGS["relation_layers"])
    rows = []
    for model, sep in separation.groupby("model", sort=False):
        sep = sep.sort_values("layer")
        inner = sep[(sep["layer"] > 0) & np.isfinite(sep["separation"])]
        peak_value = peak_depth = half_depth = np.nan
        note = ""
        if inner.empty:
            note = "not defined: no layer after h^0 has a separation (no pairs of both kinds)"
        else:
            peak = inner.loc[inner["separation"].idxmax()]
            peak_value, peak_depth = float(peak["separation"]), float(peak["depth"])
            if np.ptp(inner["separation"].to_numpy()) == 0:
                note = "not defined: the separation is the same at every layer"
            elif peak_value <= 0:
                note = "not defined: no layer has a positive separation"
            else:
                half_depth = float(inner.loc[inner["separation"] >= peak_value / 2, "depth"].iloc[0])
        in_span = sep[(sep["depth"] >= lo) & (sep["depth"] <= hi)]["separation"].mean()
        first = sep[sep["layer"] == 0]["same"]
        rows.append({"model": model, "max separation": peak_value, "at depth": peak_depth,
                     "half of max first at depth": half_depth, "mean in paper's span": in_span,
                     "same at h^0": float(first.iloc[0]) if len(first) else np.nan,
                     "defined": not note, "note": note})
    return pd.DataFrame(rows)


def gap_over_prompts(gap: pd.DataFrame) -> pd.DataFrame:
    """The paraphrase gap of :func:`ifhelpers.measure.layers.paraphrase_gap_table` per model, split and layer: the mean over the
    prompts (``estimate``) and its lowest and highest prompt (``low``, ``high``) (Figs. 4, 6, 7)."""
    return (gap.groupby(["model", "role", "split", "layer", "depth"], sort=False)["gap"]
            .agg(estimate="mean", low="min", high="max").reset_index())


def gap_positive_share(gap_mean: pd.DataFrame, split: str = "all") -> float:
    """Share of the (model, layer) cells of :func:`gap_over_prompts` where paraphrases are closer than
    non-paraphrases (a positive mean gap), for one ``split`` (§4, Fig. 4)."""
    return float((gap_mean.loc[gap_mean["split"] == split, "estimate"] > 0).mean())


def gap_in_relation_layers(gap: pd.DataFrame, gap_mean: pd.DataFrame,
                           span: tuple[float, float] | None = None) -> pd.DataFrame:
    """Fig. 4's reading: the paraphrase gap per model averaged over the paper's relation layers.

    ``gap`` is :func:`ifhelpers.measure.layers.paraphrase_gap_table`'s (with the model's columns), ``gap_mean`` its
    :func:`gap_over_prompts`; ``span`` defaults to the paper's layers 3-8. Returns one row per model
    with the mean gap of each split (``consistent``, ``inconsistent``, ``all``) over the layers in the
    span, the share of all layers where consistent paraphrases have the larger gap, and the number of
    pairs of each split (summed over prompts).
    """
    lo, hi = span if span is not None else paper.layer_span(*paper.FINDINGS["relation_layers"])
    splits = ["consistent", "inconsistent", "all"]
    in_span = gap_mean[(gap_mean["depth"] >= lo) & (gap_mean["depth"] <= hi)]
    table = in_span.pivot_table(index="model", columns="split", values="estimate", sort=False).reindex(columns=splits)
    counts = gap.groupby(["model", "split"], sort=False)["n_pairs"].sum().unstack().reindex(columns=splits)
    counts.columns = [f"pairs: {c}" for c in counts.columns]
    wide = gap_mean.pivot_table(index=["model", "layer"], columns="split", values="estimate", sort=False)
    wide = wide.reindex(columns=splits)
    table["layers where consistent > inconsistent"] = (
        (wide["consistent"] > wide["inconsistent"]).groupby("model", sort=False).mean())
    table.columns.name = None
    return table.join(counts)


def gap_span_by_prompt(gap: pd.DataFrame, span: tuple[float, float] | None = None,
                       split: str = "consistent") -> pd.DataFrame:
    """The gap of one ``split`` averaged over the layers in ``span`` (default: the paper's relation
    layers), per model (rows) and prompt (columns): Fig. 4's "similar on average, for some prompts
    larger" (§4)."""
    lo, hi = span if span is not None else paper.layer_span(*paper.FINDINGS["relation_layers"])
    part = gap[(gap["split"] == split) & (gap["depth"] >= lo) & (gap["depth"] <= hi)]
    return part.groupby(["model", "prompt_id"], sort=False)["gap"].mean().unstack("prompt_id")


def plot_layer_curves(ax, data: pd.DataFrame, x: str = "depth", y: str = "estimate", hue: str = "model",
                      colors: Mapping[str, str] | None = None, band: tuple[str, str] | None = ("low", "high"),
                      style: str | None = None, styles: Mapping[str, str] | None = None, label_fmt: str = "{hue}",
                      marker: str | None = None):
    """One line per ``hue`` (and ``style``) value across layers, with a shaded band when given."""
    keys = [hue] + ([style] if style else [])
    for key, group in data.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        group = group.sort_values(x)
        color = (colors or {}).get(key[0])
        linestyle = (styles or {}).get(key[1], "-") if style else "-"
        label = label_fmt.format(hue=key[0], style=key[1] if style else "")
        ax.plot(group[x], group[y], color=color, linestyle=linestyle, label=label, marker=marker, markersize=3)
        if band and group[band[0]].notna().any():
            ax.fill_between(group[x], group[band[0]], group[band[1]], color=color, alpha=0.18, linewidth=0)
    return ax


def shade_paper_layers(ax, first: int, last: int, kind: str = "state", label: str = "paper", color: str = "0.3"):
    """Hatch the paper's layers ``first ... last`` (of 32) at their relative depth, labelled as the paper's."""
    lo, hi = paper.layer_span(first, last, kind)
    ax.axvspan(lo, hi, facecolor="none", edgecolor=color, hatch="///", linewidth=0, alpha=0.35, label=label,
               zorder=0)
    return ax


# --------------------------------------------------------------------------------------------------
# The chapter's findings beside the paper's


def _fmt(value, spec: str = ".2f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else format(value, spec)


def _per_model(frame: pd.DataFrame, column: str, spec: str) -> str:
    return "; ".join(f"{m}: {_fmt(v, spec)}" for m, v in frame.set_index("model")[column].items())


def _peak_text(table: pd.DataFrame) -> list[str]:
    return [f"{100 * e:.1f}% at depth {d:.2f}" for e, d in zip(table["estimate"], table["depth"])]


def summary_table(peaks: pd.DataFrame, set_sizes: pd.DataFrame, attr_cmp: pd.DataFrame, rel_summary: pd.DataFrame,
                  span_table: pd.DataFrame, peak_ext: pd.DataFrame, correlation: pd.DataFrame,
                  n_tuned: int) -> pd.DataFrame:
    """The chapter's findings beside the paper's, one row each (§4, App. D-F): the attribute rate's
    peak (:func:`attribute_peaks`) and the size of A_s (:func:`attribute_set_sizes`), tuned − base
    attribute rate (:func:`attribute_comparison`), the relation layers (:func:`relation_layers`), the
    consistent-paraphrase gap in them (:func:`gap_in_relation_layers`), the MHSA and MLP extraction
    peaks (:func:`extraction_peaks`) and Table 7 (:func:`table7`). Columns ``finding``,
    ``paper (LLaMA-7b family)``, ``ours``; the paper's numbers come from :mod:`ifhelpers.paper`."""
    found = paper.FINDINGS
    paper_col = "paper (LLaMA-7b family)"
    decrease_depth = float(relative_depth(found["attribute_decrease_after"], paper.N_LAYERS))
    rel_lo, rel_hi = paper.layer_span(*found["relation_layers"])
    ext_lo, ext_hi = paper.layer_span(*found["extraction_layers"], kind="update")
    mean, sd = found["attributes_per_subject"]
    table_7 = paper.table(7)
    defined, _ = correlation_status(correlation)
    mhsa = peak_ext[peak_ext["block"] == "MHSA"]
    rows = [
        {"finding": "attribute rate peak (Fig. 2, fn. 5)",
         paper_col: f"≈{100 * found['attribute_rate_peak']:.0f}%, falls after layer "
                    f"{found['attribute_decrease_after']} (depth ≈{decrease_depth:.2f})",
         "ours": _per_model(peaks.assign(text=_peak_text(peaks)), "text", "s")},
        {"finding": "attributes per subject (App. D)", paper_col: f"{mean:,} ± {sd:,}",
         "ours": "; ".join(f"{m}: {r['mean']:.0f} ± {r['std']:.0f}" for m, r in set_sizes.iterrows())},
        {"finding": "tuned − base attribute rate (Fig. 2)",
         paper_col: f"> 0 for all {found['n_tuned_models']} tuned models",
         "ours": "n/a" if attr_cmp.empty else "; ".join(
             f"{r['tuned']}: {100 * r['mean_diff']:+.1f} pts [{100 * r['diff_low']:+.1f}, {100 * r['diff_high']:+.1f}]"
             for _, r in attr_cmp.iterrows())},
        {"finding": "relation layers (Fig. 3)",
         paper_col: f"layers {found['relation_layers'][0]}-{found['relation_layers'][1]} "
                    f"(depth {rel_lo:.2f}-{rel_hi:.2f})",
         "ours": _per_model(rel_summary, "half of max first at depth", ".2f")
                 + " (separation first at half its maximum)"},
        {"finding": "consistent-paraphrase gap in relation layers (Fig. 4)",
         paper_col: "similar for base and tuned on average",
         "ours": "; ".join(f"{m}: {v:.3f}" for m, v in span_table["consistent"].items())},
        {"finding": "MHSA extraction peak (Fig. 5)",
         paper_col: f"correlated with consistency in layers {found['extraction_layers'][0]}-"
                    f"{found['extraction_layers'][1]} (depth {ext_lo:.2f}-{ext_hi:.2f})",
         "ours": _per_model(mhsa.assign(text=_peak_text(mhsa)), "text", "s")},
        {"finding": "MLP vs MHSA extraction (Fig. 8)", paper_col: "MLP lower overall",
         "ours": "; ".join(f"{m}: MLP peak {100 * g.set_index('block').loc['MLP', 'estimate']:.1f}% vs MHSA "
                           f"{100 * g.set_index('block').loc['MHSA', 'estimate']:.1f}%"
                           for m, g in peak_ext.groupby("model", sort=False))},
        {"finding": "extraction rate vs consistency (Table 7)",
         paper_col: f"r = {table_7['Pearson'].min():.2f}-{table_7['Pearson'].max():.2f}, "
                    f"p ≤ 0.05, {found['n_tuned_models']} tuned models",
         "ours": "computed above" if defined else f"not defined ({n_tuned} tuned model(s))"},
    ]
    return pd.DataFrame(rows)


def headlines(attr_cmp: pd.DataFrame, rel_summary: pd.DataFrame, gap: pd.DataFrame, mhsa_cmp: pd.DataFrame,
              correlation: pd.DataFrame, ext: pd.DataFrame, base: str, n_tuned: int, n_subjects: int) -> list[dict]:
    """The chapter's headline rows (:func:`ifhelpers.findings.row`): the attribute rate (Fig. 2,
    :func:`attribute_comparison`), the relation layers (Fig. 3, :func:`relation_layers`), the
    paraphrase gap in those layers (Fig. 4, :func:`gap_span_by_prompt`), the MHSA extraction rate
    (Fig. 5, :func:`extraction_comparison`) and its correlation with consistency (Table 7,
    :func:`table7`), against the paper's findings (:data:`ifhelpers.paper.FINDINGS`, Table 7)."""
    found = paper.FINDINGS
    n_paper = found["n_tuned_models"]
    lo_d, hi_d = paper.layer_span(*found["relation_layers"])
    extraction_span = paper.layer_span(*found["extraction_layers"], kind="update")
    tuned_label = ", ".join(m for m in rel_summary["model"] if m != base)
    rows = []
    for _, c in attr_cmp.iterrows():
        d, lo, hi = 100 * c["mean_diff"], 100 * c["diff_low"], 100 * c["diff_high"]
        rows.append(findings.row(
            "§4, Fig. 2", "subject attribute rate, tuned − base (points)",
            f"higher for all {n_paper} tuned LLaMA-7b models "
            f"(rate peaks at ≈{100 * found['attribute_rate_peak']:.0f}%)",
            findings.diff_text(d, lo, hi, "+.1f"), stats.verdict(d, lo, hi), estimate=d, low=lo, high=hi, base=base,
            tuned=c["tuned"],
            note=f"{n_subjects} subjects, layers h^1 ... h^L; paired bootstrap over subjects; "
                 + (f"Wilcoxon p = {c['wilcoxon_p']:.2g}" if np.isfinite(c["wilcoxon_p"])
                    else f"Wilcoxon p not defined ({c.get('note') or 'no pairs'})")
                 + "; attribute sets from a small offline corpus"))
    first, last = found["relation_layers"]
    by_model = rel_summary.set_index("model")
    depths = by_model["half of max first at depth"]
    where = where_in_span(depths, lo_d, hi_d)
    defined = [w for w in where if w != "n/a"]
    inside = sum(w == "within" for w in defined)
    rows.append(findings.row(
        "§4, Fig. 3", "relation layers: where same- and different-relation queries separate",
        f"layers {first}-{last} of 32 (relative depth {lo_d:.2f}-{hi_d:.2f})",
        "; ".join(f"{m}: depth {x:.2f} ({where[m]})" if np.isfinite(x) else f"{m}: {by_model.loc[m, 'note']}"
                  for m, x in depths.items()),
        "not defined" if not defined else "yes" if inside == len(defined) else "no" if inside == 0 else "mixed",
        base=base, tuned=tuned_label,
        note="depth where the separation first reaches half its maximum; a location, not a direction"))
    per_prompt = gap_span_by_prompt(gap, (lo_d, hi_d))
    if base in per_prompt.index:
        b = per_prompt.loc[base]
        for model in per_prompt.index.drop(base):
            t = per_prompt.loc[model]
            overlap = t.min() <= b.max() and b.min() <= t.max()
            rows.append(findings.row(
                "§4, Fig. 4",
                "paraphrase gap in the relation layers (consistent paraphrases): similar for base and tuned",
                "similar for LLaMA-7b and its tuned models on average (no better relation representation)",
                f"base {b.mean():.3f} (prompts {b.min():.3f}-{b.max():.3f}), tuned {t.mean():.3f} "
                f"(prompts {t.min():.3f}-{t.max():.3f})",
                "yes" if overlap else "no", estimate=t.mean() - b.mean(), base=base, tuned=model,
                note="'similar' read as: the ranges over the three prompts overlap; levels differ across families"))
    for _, c in mhsa_cmp.iterrows():
        d, lo, hi = 100 * c["mean_diff"], 100 * c["diff_low"], 100 * c["diff_high"]
        rows.append(findings.row(
            "§4, Fig. 5", "MHSA extraction rate, tuned − base (points, mean over layers)",
            f"LLaMA-7b extracts as often as the best of its {n_paper} tuned models (tuned not higher)",
            findings.diff_text(d, lo, hi, "+.1f"), stats.verdict(d, lo, hi, paper_sign=-1), estimate=d, low=lo, high=hi,
            base=base, tuned=c["tuned"],
            note="the paper's claim is 'not higher': an interval containing 0 agrees with it"))
    table_7 = paper.table(7)
    paper7 = (f"r = {table_7['Pearson'].min():.2f}-{table_7['Pearson'].max():.2f} (p ≤ 0.05) in MHSA layers "
              f"{found['extraction_layers'][0]}-{found['extraction_layers'][1]} and some MLP layers, "
              f"over {n_paper} tuned models")
    is_defined, message = correlation_status(correlation)
    if is_defined:
        depth = ext[["block", "layer", "depth"]].drop_duplicates(["block", "layer"])
        ours7 = correlation[correlation["defined"]].merge(depth, on=["block", "layer"], how="left")
        ours7 = ours7[(ours7["block"] == "MHSA") & ours7["depth"].between(*extraction_span)]
        if ours7.empty:
            is_defined, message = False, (f"no MHSA layer with a defined correlation lies in the paper's span "
                                          f"(relative depth {extraction_span[0]:.2f}-{extraction_span[1]:.2f})")
    if is_defined:
        positive = int(((ours7["r"] > 0) & (ours7["p_value"] <= 0.05)).sum())
        negative = int(((ours7["r"] < 0) & (ours7["p_value"] <= 0.05)).sum())
        ours = (f"MHSA layers in the paper's span: r {ours7['r'].min():.2f} to {ours7['r'].max():.2f}; "
                f"{positive} of {len(ours7)} positive with p ≤ 0.05, {negative} negative")
        holds = "mixed" if positive and negative else "yes" if positive else "no" if negative else "n.s."
        note = f"{int(ours7['n_models'].max()) if len(ours7) else n_tuned} tuned models"
    else:
        ours, holds, note = f"not defined: {n_tuned} tuned model(s)", "not defined", message
    rows.append(findings.row("§4, Table 7", "extraction rate vs ParaRel consistency across tuned models (Pearson r)",
                    paper7, ours, holds, base=base, tuned=tuned_label, note=note))
    return rows
