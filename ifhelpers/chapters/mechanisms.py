"""How instruction tuning changes factual recall: the mechanistic analyses of paper §4 (App. D-F).

Geva et al. (2023) describe factual recall in three steps, and §4 of Fierro, Li & Søgaard (2024)
asks which of them instruction tuning changes, on ParaRel queries, averaged over Table 3's three
prompts:

(a) **subject enrichment** — the hidden state of the last subject token, read through the logit
    lens, ranks tokens related to the subject highly (Fig. 2, App. D): :func:`attribute_queries`,
    :func:`attribute_sets`, :func:`attribute_rates`;
(b) **relation propagation** — queries of the same relation are closer than queries of different
    relations in the relation layers (Fig. 3): :func:`relation_similarity_table`; paraphrases are
    closer than non-paraphrases, split by whether the model answers them consistently (Figs. 4, 6,
    7): :func:`paraphrase_gap_table`;
(c) **attribute extraction** — an MHSA (or MLP) update whose top-1 token is the final prediction
    (eq. 1, Figs. 5, 8): :func:`extraction_rates`, :func:`extraction_events`; its Pearson
    correlation with ParaRel consistency across instruction-tuned models (Table 7):
    :func:`extraction_correlation`.

The ParaRel pass itself is :func:`ifhelpers.model.probes.run_pararel` (shared with the other chapters),
its consistency is :mod:`ifhelpers.chapters.predictions`' (the predictions chapter's numbers), and the
paper's colour groups of Fig. 5 are :func:`consistency_groups`.

Layers and depth
    ``resid`` holds h^0 ... h^L (h^0 the token embedding, h^L before the final norm); the updates
    a^l, f^l (l = 0 ... L-1) are added to h^l to give h^{l+1}. Models of different depths are
    compared on *relative depth*: ``l / L`` for the state h^l and ``(l + 1) / L`` for an update of
    layer l (the depth of the state it writes into), :func:`relative_depth`. The paper's layer
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

from ifhelpers.model import lens, probes, tokens
from ifhelpers import metrics, stats
from ifhelpers.data import pararel, wikipedia
from ifhelpers import paper
from ifhelpers.model.models import LoadedModel

__all__ = [
    "BLOCKS",
    "GROUP_COLORS",
    "relative_depth",
    "with_model",
    "prompt_rows",
    "consistency_groups",
    "sample_query_rows",
    "top_dims_share",
    "relation_similarity_table",
    "paraphrase_gap_table",
    "extraction_rates",
    "extraction_events",
    "extraction_correlation",
    "attribute_queries",
    "unique_prefix_rows",
    "attribute_sets",
    "lens_token_strings",
    "attribute_rates",
    "mean_ci_by_layer",
    "compare_to_base",
    "relation_separation",
    "plot_layer_curves",
    "shade_paper_layers",
]

#: The two update blocks of eq. 1, as the paper names them, and the engine's array for each.
BLOCKS = {"MHSA": "attn_update", "MLP": "mlp_update"}

#: Fig. 5's colours: ParaRel consistency of a tuned model relative to the base model.
GROUP_COLORS = {"base": "#4C72B0", "lower": "#D4A017", "higher-close": "#55A868", "higher": "#C44E52",
                "instruction-tuned": "#DD8452"}



# --------------------------------------------------------------------------------------------------
# Small helpers


def relative_depth(layer, n_layers, kind: str = "state"):
    """Relative depth of a layer: ``l / L`` for the state h^l, ``(l + 1) / L`` for the update of layer l.

    ``kind`` is ``"state"`` (h^0 ... h^L, values 0 ... 1) or ``"update"`` (a^l, f^l of layers
    0 ... L-1, values 1/L ... 1). ``n_layers`` may be an array aligned with ``layer``.
    """
    n_layers = np.asarray(n_layers, dtype=np.float64)
    if np.any(n_layers < 1):
        raise ValueError(f"n_layers must be >= 1; got {n_layers}")
    layer = np.asarray(layer, dtype=np.float64)
    if kind == "state":
        return layer / n_layers
    if kind == "update":
        return (layer + 1) / n_layers
    raise ValueError(f"kind must be 'state' or 'update'; got {kind!r}")


def with_model(frame: pd.DataFrame, lm: LoadedModel, kind: str | None = None) -> pd.DataFrame:
    """``frame`` with ``model``, ``role`` and ``n_layers`` in front and, when it has a ``layer``
    column and ``kind`` is ``"state"`` or ``"update"``, the ``depth`` of :func:`relative_depth`."""
    out = frame.copy()
    for position, (name, value) in enumerate((("model", lm.name), ("role", lm.spec.role),
                                              ("n_layers", lm.n_layers))):
        out.insert(position, name, value)
    if kind is not None:
        out["depth"] = relative_depth(out["layer"].to_numpy(), lm.n_layers, kind)
    return out


def prompt_rows(frame: pd.DataFrame) -> dict[int, np.ndarray]:
    """Row positions of each prompt of a :func:`ifhelpers.model.probes.run_pararel` frame.

    Within a prompt the rows follow the query table's order, so position ``i`` of every prompt is
    the same query (checked).
    """
    out = {int(p): np.flatnonzero(frame["prompt_id"].to_numpy() == p) for p in pd.unique(frame["prompt_id"])}
    first = None
    for rows in out.values():
        q = frame["query"].to_numpy()[rows]
        if first is None:
            first = q
        elif len(q) != len(first) or not np.array_equal(q, first):
            raise ValueError("the prompts of this frame do not cover the same queries in the same order")
    return out


def _fact_key(frame: pd.DataFrame) -> pd.Series:
    return frame["relation"].astype(str) + ":" + frame["uuid"].astype(str)


def _query_key(frame: pd.DataFrame) -> pd.Series:
    return _fact_key(frame) + ":" + frame["template_id"].astype(str)


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


def sample_query_rows(frame: pd.DataFrame, n_queries: int | None, seed: int = 0) -> np.ndarray:
    """Rows of ``n_queries`` ParaRel queries, every prompt of each, spread evenly over relations.

    A query is a (fact, template); its rows are its prompts. Queries are drawn round-robin over
    relations in a seeded random order (so each relation gives about ``n_queries / n_relations``),
    which keeps the sample's relation mix close to the full pass's macro average. ``None`` (or a
    number at least the number of queries) keeps every row. Returned rows are sorted.
    """
    keys = _query_key(frame)
    unique = pd.DataFrame({"key": keys, "relation": frame["relation"]}).drop_duplicates("key")
    if n_queries is None or n_queries >= len(unique):
        return np.arange(len(frame))
    if n_queries < 1:
        raise ValueError(f"n_queries must be >= 1 or None; got {n_queries}")
    rng = np.random.default_rng(seed)
    unique = unique.iloc[rng.permutation(len(unique))]
    unique["rank"] = unique.groupby("relation").cumcount()
    unique["tiebreak"] = rng.random(len(unique))
    chosen = set(unique.sort_values(["rank", "tiebreak"])["key"].iloc[:n_queries])
    return np.flatnonzero(keys.isin(chosen).to_numpy())


# --------------------------------------------------------------------------------------------------
# (b) Relations: Fig. 3 and Figs. 4, 6, 7


def top_dims_share(resid, n_dims: int = 3) -> np.ndarray:
    """Share of each state's squared norm held by its ``n_dims`` largest dimensions, averaged over
    rows, per layer: ``(L+1,)`` for ``resid`` of shape ``(n, L+1, d)``.

    A diagnostic for both the cosines and the lens: when a few "massive" dimensions hold most of the
    norm (as in Gemma's residual stream), every pair of states has a cosine near 1, and the logit
    lens mostly reads those dimensions.
    """
    sq = np.square(np.asarray(resid, dtype=np.float64))
    top = np.sort(sq, axis=-1)[..., -n_dims:].sum(-1)
    return (top / sq.sum(-1)).mean(axis=0)



def relation_similarity_table(frame: pd.DataFrame, resid, pairs: pd.DataFrame, matched: bool = True) -> pd.DataFrame:
    """Cosine per layer of same-relation and different-relation query pairs, per prompt (§4, Fig. 3).

    ``pairs`` comes from :func:`ifhelpers.data.pararel.relation_query_pairs` on the query table of the
    pass (its ``row_a``/``row_b`` are positions within one prompt's rows; different subjects and
    objects, templates ending in different words, footnote 6). For each prompt and kind the cosine
    is averaged within each relation (:func:`ifhelpers.metrics.relations.relation_similarity`, per relation);
    averaging the relations gives the paper's macro average. With ``matched`` (default) only the
    relations that have pairs of both kinds are kept, so that the two macro averages cover the
    same relations (the final-word rule leaves many relations without same-relation pairs).

    Returns a tidy frame: ``prompt_id``, ``kind``, ``relation``, ``layer``, ``cos``, ``n_pairs``.
    """
    resid = np.asarray(resid)
    out = []
    for prompt_id, rows in prompt_rows(frame).items():
        reps = resid[rows]
        for kind, group in pairs.groupby("kind", sort=False):
            idx = group[["row_a", "row_b"]].to_numpy(dtype=np.intp)
            table = metrics.relations.relation_similarity(reps, idx, group["relation_a"].to_numpy(), per_relation=True)
            counts = group.groupby("relation_a").size()
            long = table.reset_index().melt(id_vars="group", var_name="layer", value_name="cos")
            long = long.rename(columns={"group": "relation"})
            long.insert(0, "kind", kind)
            long.insert(0, "prompt_id", prompt_id)
            long["n_pairs"] = long["relation"].map(counts).astype(int)
            out.append(long)
    result = pd.concat(out, ignore_index=True)
    result["layer"] = result["layer"].astype(int)
    if matched:
        kinds = result.groupby("relation")["kind"].nunique()
        result = result[result["relation"].isin(kinds.index[kinds == pairs["kind"].nunique()])]
    return result.reset_index(drop=True)


def paraphrase_gap_table(frame: pd.DataFrame, resid, n_nonparaphrase_pairs: int = 1000,
                         seed: int = 0) -> pd.DataFrame:
    """cos(paraph.) − cos(¬paraph.) per layer and prompt, for all, consistent and inconsistent pairs.

    §4 Fig. 4 and App. E Figs. 6-7. For each prompt, on the states ``resid`` (n, L+1, d) of its
    rows: cos(paraph.) is eq. 3, the macro average over facts of the mean cosine of the fact's
    paraphrase pairs, taking ``"all"`` pairs (:func:`ifhelpers.metrics.cosine.paraphrase_gap`), only the
    pairs the model answers ``"consistent"``-ly (same top-1 token) or only the ``"inconsistent"``
    ones (:func:`ifhelpers.metrics.pararel.pararel_query_pairs` on :func:`ifhelpers.model.probes.pararel_predictions`,
    :func:`~ifhelpers.metrics.cosine.grouped_pair_cosine`).
    cos(¬paraph.) is eq. 4 on random pairs of queries of different facts, the same draw for the
    three splits, so the splits differ only in their paraphrase pairs. Facts with a single query
    give no pair and are left out of eq. 3.

    Returns a tidy frame: ``prompt_id``, ``split``, ``layer``, ``cos_paraphrase``,
    ``cos_nonparaphrase``, ``gap``, ``n_pairs``, ``n_facts``.
    """
    resid = np.asarray(resid)
    out = []
    for prompt_id, rows in prompt_rows(frame).items():
        sub = frame.iloc[rows].reset_index(drop=True)
        reps = resid[rows]
        set_ids = _fact_key(sub).to_numpy()
        non = np.asarray(metrics.cosine.nonparaphrase_cosine(reps, set_ids, n_pairs=n_nonparaphrase_pairs, seed=seed))
        pairs = metrics.pararel.pararel_query_pairs(probes.pararel_predictions(sub))
        pairs["fact"] = pairs["relation"].astype(str) + ":" + pairs["fact_id"].astype(str)
        splits = {"all": pairs, "consistent": pairs[pairs["consistent"]], "inconsistent": pairs[~pairs["consistent"]]}
        for split, chosen in splits.items():
            if split == "all":
                gap = np.asarray(metrics.cosine.paraphrase_gap(reps, set_ids, n_pairs=n_nonparaphrase_pairs, seed=seed,
                                                        drop_singletons=True))
                para = gap + non
            elif len(chosen):
                table = metrics.cosine.grouped_pair_cosine(reps, chosen[["row_a", "row_b"]].to_numpy(dtype=np.intp),
                                                    chosen["fact"].to_numpy())
                para = table.to_numpy().mean(axis=0)
                gap = para - non
            else:
                para = gap = np.full(reps.shape[1], np.nan)
            out.append(pd.DataFrame({
                "prompt_id": prompt_id, "split": split, "layer": np.arange(reps.shape[1]),
                "cos_paraphrase": para, "cos_nonparaphrase": non, "gap": gap,
                "n_pairs": len(chosen), "n_facts": chosen["fact"].nunique(),
            }))
    return pd.concat(out, ignore_index=True)


# --------------------------------------------------------------------------------------------------
# (c) Extraction: Figs. 5, 8 and Table 7


def _check_top1(frame: pd.DataFrame, top1: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for block, values in top1.items():
        if block not in BLOCKS:
            raise ValueError(f"blocks are {list(BLOCKS)}; got {block!r}")
        values = np.asarray(values)
        if values.ndim == 3 and values.shape[-1] == 1:
            values = values[..., 0]
        if values.ndim != 2 or values.shape[0] != len(frame):
            raise ValueError(f"top-1 ids of {block} must be (n_rows={len(frame)}, L); got {values.shape}")
        out[block] = values.astype(np.int64)
    return out


def extraction_rates(frame: pd.DataFrame, top1: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Extraction rate per prompt, block and layer (eq. 1, Fig. 5 for MHSA, Fig. 8 for MLP).

    ``top1`` maps ``"MHSA"``/``"MLP"`` to the top-1 token ids of the projected updates, ``(n, L)``,
    row-aligned with ``frame`` (a ParaRel pass, or a subset of its rows). The rate is
    :func:`ifhelpers.metrics.extraction.extraction_rate` against the final prediction ``prediction_id``.

    Returns ``prompt_id``, ``block``, ``layer``, ``rate``, ``n``.
    """
    top1 = _check_top1(frame, top1)
    prediction = frame["prediction_id"].to_numpy(dtype=np.int64)
    prompt = frame["prompt_id"].to_numpy()
    out = []
    for block, values in top1.items():
        for prompt_id in pd.unique(prompt):
            mask = prompt == prompt_id
            rate = metrics.extraction.extraction_rate(values[mask], prediction[mask])
            out.append(pd.DataFrame({"prompt_id": int(prompt_id), "block": block, "layer": np.arange(len(rate)),
                                     "rate": rate, "n": int(mask.sum())}))
    return pd.concat(out, ignore_index=True)


def extraction_events(frame: pd.DataFrame, top1: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Extraction events per query, averaged over its prompts: the units to bootstrap (Figs. 5, 8).

    Returns ``query``, ``relation``, ``block``, ``layer``, ``event`` (share of the query's prompts
    with an extraction event at that layer).
    """
    top1 = _check_top1(frame, top1)
    prediction = frame["prediction_id"].to_numpy(dtype=np.int64)
    keys = _query_key(frame).to_numpy()
    out = []
    for block, values in top1.items():
        events = pd.DataFrame(values == prediction[:, None])
        events["query"] = keys
        events["relation"] = frame["relation"].to_numpy()
        per_query = events.groupby(["query", "relation"], sort=False).mean()
        long = per_query.reset_index().melt(id_vars=["query", "relation"], var_name="layer", value_name="event")
        long.insert(2, "block", block)
        out.append(long)
    result = pd.concat(out, ignore_index=True)
    result["layer"] = result["layer"].astype(int)
    return result


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


def unique_prefix_rows(lm: LoadedModel, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose text up to the last subject token differs, and each row's representative.

    The state at the last subject token depends only on the tokens up to it (causal attention), so
    queries whose templates start with the subject share it. Returns ``(representatives,
    inverse)`` with ``frame.iloc[representatives[inverse[i]]]`` having the same prefix as row i.
    """
    keys = [tuple(tokens.encode(lm.tokenizer, p)[: int(t) + 1]) for p, t in zip(frame["prompt"], frame["subject_token"])]
    codes, uniques = pd.factorize(pd.Series(keys, dtype=object))
    first = np.full(len(uniques), -1)
    for i, c in enumerate(codes):
        if first[c] < 0:
            first[c] = i
    return first, codes


def attribute_sets(tokenizer, snippets: Mapping[str, Sequence[str]], stopwords) -> dict[str, frozenset]:
    """A_s for each subject, from its snippets, in the model's own tokens (App. D).

    Each snippet is tokenized with the model's tokenizer and every token decoded on its own, then
    :func:`ifhelpers.metrics.attributes.attribute_set` deduplicates, drops NLTK stopwords and tokens under 3
    characters (Geva et al. 2023).
    """
    out = {}
    for subject, texts in snippets.items():
        decoded = []
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            decoded.append([tokenizer.decode([i]) for i in ids])
        out[subject] = metrics.attributes.attribute_set(decoded, stopwords)
    return out


def _kept_count(ranked: Sequence[str], stopwords: frozenset, k: int, min_chars: int = 3) -> int:
    kept = 0
    for tok in ranked:
        tok = metrics.attributes.clean_token(tok)
        if len(tok) >= min_chars and tok.lower() not in stopwords:
            kept += 1
            if kept == k:
                break
    return kept


def lens_token_strings(lm: LoadedModel, vectors, k: int, stopwords, rank: int = 200, max_rank: int = 12800,
                       min_chars: int = 3, apply_final_norm: bool = True) -> np.ndarray:
    """Ranked lens tokens of each vector, long enough for ``k`` to survive App. D's filters.

    The top ``rank`` tokens of E·norm(v) (:func:`ifhelpers.model.lens.top_tokens`) are decoded; where fewer than ``k``
    of them are kept after dropping stopwords and tokens under ``min_chars`` characters, that
    vector is ranked again four times deeper, up to ``max_rank``. Vocabularies rich in short
    sub-word pieces (SmolLM2's) need deeper rankings than Gemma's. Returns an object array of
    shape ``vectors.shape[:-1]`` holding lists of decoded tokens, best first.
    """
    vectors = np.asarray(vectors)
    flat = vectors.reshape(-1, vectors.shape[-1])
    stop = frozenset(w.lower() for w in stopwords)
    out = np.empty(flat.shape[0], dtype=object)
    todo, depth = np.arange(flat.shape[0]), int(rank)
    while len(todo):
        strings = lens.decode_tokens(lm, lens.top_tokens(lm, flat[todo], k=depth, apply_final_norm=apply_final_norm))
        short = []
        for j, ranked in zip(todo, strings):
            out[j] = list(ranked)
            if depth < max_rank and _kept_count(ranked, stop, k, min_chars) < k:
                short.append(j)
        todo, depth = np.asarray(short, dtype=np.intp), min(depth * 4, int(max_rank))
    return out.reshape(vectors.shape[:-1])


def attribute_rates(frame: pd.DataFrame, top_strings, attributes: Mapping[str, frozenset], stopwords,
                    k: int = 50) -> pd.DataFrame:
    """Subject attribute rate per row and layer (§4, Fig. 2): share of the top-``k`` lens tokens in A_s.

    ``top_strings[i][l]`` is the ranked list of decoded top tokens of E·norm(h^l) at the last subject
    token of row i, best first (an ``(n, L+1, n_rank)`` array, or the object array of
    :func:`lens_token_strings`), long enough for k tokens to survive the stopword and length filters
    of :func:`ifhelpers.metrics.attributes.subject_attribute_rate`.

    Returns ``subject``, ``relation``, ``template_id``, ``prompt_id``, ``layer``, ``rate``, ``n_kept``
    (how many of the k slots were filled).
    """
    if len(top_strings) != len(frame):
        raise ValueError(f"top_strings has {len(top_strings)} rows for {len(frame)} rows of frame")
    stop = frozenset(w.lower() for w in stopwords)
    out = []
    for i, row in enumerate(frame.itertuples(index=False)):
        layers = [list(layer) for layer in top_strings[i]]
        rates = metrics.attributes.subject_attribute_rate(layers, attributes[row.subject], stop, k=k)
        out.append(pd.DataFrame({"subject": row.subject, "relation": row.relation, "template_id": row.template_id,
                                 "prompt_id": row.prompt_id, "layer": np.arange(len(layers)), "rate": rates,
                                 "n_kept": [_kept_count(layer, stop, k) for layer in layers]}))
    return pd.concat(out, ignore_index=True)


# --------------------------------------------------------------------------------------------------
# Summaries and figures


def mean_ci_by_layer(table: pd.DataFrame, value: str, unit: str, by: Sequence[str] = (), confidence: float = 0.95,
                     n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Mean over units (after averaging each unit's rows, e.g. its prompts) with a bootstrap interval.

    For each group of ``by`` and each ``layer``: average ``value`` within each ``unit`` (relation,
    subject, query), then the mean over units and a percentile bootstrap interval resampling units
    (:func:`ifhelpers.stats.bootstrap_ci`). Units missing a layer (NaN) are left out of that layer.

    Returns ``by`` columns, ``layer``, ``estimate``, ``low``, ``high``, ``n``.
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
    return pd.concat(out, ignore_index=True)


def compare_to_base(table: pd.DataFrame, value: str, unit: str, where=None, seed: int = 0) -> pd.DataFrame:
    """Each instruction-tuned model against the base model on the same units (paired).

    ``table`` is tidy with ``model``, ``role``, ``unit`` and ``value`` columns (e.g. the attribute
    rate per subject, prompt and layer). Each unit's value is averaged over its rows (prompts and
    layers, or only the rows ``where`` keeps, a boolean Series), then
    :func:`ifhelpers.stats.paired_comparison` compares tuned − base over the units both models
    have. Returns one row per tuned model; empty without a base model.
    """
    if where is not None:
        table = table[where]
    means = table.groupby(["model", unit])[value].mean().unstack(unit)
    roles = table.groupby("model")["role"].first()
    bases = [m for m in dict.fromkeys(table["model"]) if roles[m] == "base"]
    if not bases:
        return pd.DataFrame()
    base = bases[0]
    rows = []
    for model in dict.fromkeys(table["model"]):
        if roles[model] != "instruction-tuned":
            continue
        pair = means.loc[[base, model]].dropna(axis=1)
        result = stats.paired_comparison(pair.loc[base], pair.loc[model], seed=seed)
        rows.append({"model": model, "base": base, **result.to_dict()})
    return pd.DataFrame(rows)


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
