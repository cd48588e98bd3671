"""What §4 reads layer by layer, one model at a time (App. D-F): the last token's states h^l of the shared
ParaRel pass (massive dimensions, relation similarity of Fig. 3, the paraphrase gap of Figs. 4, 6, 7), the MHSA
and MLP updates of a sample of its queries (extraction events of eq. 1, Figs. 5, 8) and the states at the last
subject token (the subject attribute rate of Fig. 2).

:func:`mechanisms` (chapter 4) and :func:`extraction` (chapter 5) are the measurements (for
:func:`ifhelpers.measure.runner.run`); every table is stamped (:func:`ifhelpers.measure.stamp.stamp`) with
the ``depth`` of its layers (``"state"`` for h^l, ``"update"`` for a^l, f^l).

Layers: ``resid`` holds h^0 ... h^L (h^0 the token embedding, h^L before the final norm); the updates a^l,
f^l (l = 0 ... L-1) are added to h^l to give h^{l+1}. Hidden states and updates are read with the logit lens
(:func:`ifhelpers.model.lens.top_tokens`: the final norm, then the output embedding).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ifhelpers import metrics
from ifhelpers.measure.pararel import pararel_prompt_scores
from ifhelpers.measure.runner import Measurement
from ifhelpers.measure.stamp import stamp
from ifhelpers.model import lens, probes, tokens
from ifhelpers.model.models import LoadedModel

#: The two update blocks of eq. 1, as the paper names them, and the engine's array for each.
BLOCKS = {"MHSA": "attn_update", "MLP": "mlp_update"}


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


def _gap_prompts(frame: pd.DataFrame, resid, n_nonparaphrase_pairs: int, seed: int):
    """Per prompt: ``(prompt_id, reps, set_ids, non, splits)``, what the paraphrase gap of Figs. 4, 6, 7
    reads: the prompt's states, its fact labels, cos(¬paraph.) of eq. 4 on random pairs of different
    facts (one draw for the three splits) and the paraphrase pairs of each split (``"all"``,
    ``"consistent"``, ``"inconsistent"``), with a ``fact`` column."""
    resid = np.asarray(resid)
    for prompt_id, rows in prompt_rows(frame).items():
        sub = frame.iloc[rows].reset_index(drop=True)
        reps = resid[rows]
        set_ids = _fact_key(sub).to_numpy()
        non = np.asarray(metrics.cosine.nonparaphrase_cosine(reps, set_ids, n_pairs=n_nonparaphrase_pairs, seed=seed))
        pairs = metrics.pararel.pararel_query_pairs(probes.pararel_predictions(sub))
        pairs["fact"] = pairs["relation"].astype(str) + ":" + pairs["fact_id"].astype(str)
        splits = {"all": pairs, "consistent": pairs[pairs["consistent"]], "inconsistent": pairs[~pairs["consistent"]]}
        yield prompt_id, reps, set_ids, non, splits


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
    give no pair and are left out of eq. 3. :func:`paraphrase_gap_per_fact` gives the same gaps per
    fact, the units of their bootstrap bands.

    Returns a tidy frame: ``prompt_id``, ``split``, ``layer``, ``cos_paraphrase``,
    ``cos_nonparaphrase``, ``gap``, ``n_pairs``, ``n_facts``.
    """
    out = []
    for prompt_id, reps, set_ids, non, splits in _gap_prompts(frame, resid, n_nonparaphrase_pairs, seed):
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


def paraphrase_gap_per_fact(frame: pd.DataFrame, resid, n_nonparaphrase_pairs: int = 1000,
                            seed: int = 0) -> pd.DataFrame:
    """The gap of :func:`paraphrase_gap_table` per fact: the units its bootstrap bands resample (§4,
    Figs. 4, 6, 7).

    For each prompt, split and fact with a pair: the mean cosine of the fact's paraphrase pairs of
    the split (``"all"``: cos(p_i) of eq. 2, :func:`ifhelpers.metrics.cosine.paraphrase_cosine_per_set`;
    ``"consistent"`` / ``"inconsistent"``: :func:`~ifhelpers.metrics.cosine.grouped_pair_cosine`) minus the
    prompt's cos(¬paraph.) (eq. 4, the same random pairs as the table's). The mean over facts is the
    table's ``gap`` exactly; a bootstrap over facts therefore holds the non-paraphrase baseline fixed
    and measures how much the gap moves with the facts drawn.

    Returns a tidy frame: ``prompt_id``, ``split``, ``fact``, ``layer``, ``cos_paraphrase``, ``gap``.
    """
    out = []
    for prompt_id, reps, set_ids, non, splits in _gap_prompts(frame, resid, n_nonparaphrase_pairs, seed):
        for split, chosen in splits.items():
            if split == "all":
                per_fact = metrics.cosine.paraphrase_cosine_per_set(reps, set_ids, drop_singletons=True)
            elif len(chosen):
                per_fact = metrics.cosine.grouped_pair_cosine(reps, chosen[["row_a", "row_b"]].to_numpy(dtype=np.intp),
                                                              chosen["fact"].to_numpy())
            else:
                continue
            long = pd.DataFrame(per_fact.to_numpy(), index=pd.Index(per_fact.index, name="fact"),
                                columns=np.arange(reps.shape[1])).rename_axis(columns="layer")
            long = long.stack().rename("cos_paraphrase").reset_index()
            long["gap"] = long["cos_paraphrase"] - non[long["layer"].to_numpy()]
            long.insert(0, "split", split)
            long.insert(0, "prompt_id", prompt_id)
            out.append(long)
    columns = ["prompt_id", "split", "fact", "layer", "cos_paraphrase", "gap"]
    return pd.concat(out, ignore_index=True)[columns] if out else pd.DataFrame(columns=columns)


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

    The event of each row and layer is :func:`ifhelpers.metrics.extraction.extraction_events` (eq. 1),
    whose mean over queries is :func:`~ifhelpers.metrics.extraction.extraction_rate`; ``top1`` is as in
    :func:`extraction_rates`.

    Returns ``query``, ``relation``, ``block``, ``layer``, ``event`` (share of the query's prompts
    with an extraction event at that layer).
    """
    top1 = _check_top1(frame, top1)
    prediction = frame["prediction_id"].to_numpy(dtype=np.int64)
    keys = _query_key(frame).to_numpy()
    out = []
    for block, values in top1.items():
        events = pd.DataFrame(metrics.extraction.extraction_events(values, prediction))
        events["query"] = keys
        events["relation"] = frame["relation"].to_numpy()
        per_query = events.groupby(["query", "relation"], sort=False).mean()
        long = per_query.reset_index().melt(id_vars=["query", "relation"], var_name="layer", value_name="event")
        long.insert(2, "block", block)
        out.append(long)
    result = pd.concat(out, ignore_index=True)
    result["layer"] = result["layer"].astype(int)
    return result


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


def lens_token_strings(lm: LoadedModel, vectors, k: int, stopwords, rank: int = 200, max_rank: int = 12800,
                       min_chars: int = metrics.attributes.MIN_CHARS, apply_final_norm: bool = True) -> np.ndarray:
    """Ranked lens tokens of each vector, long enough for ``k`` to survive App. D's filters.

    The top ``rank`` tokens of E·norm(v) (:func:`ifhelpers.model.lens.top_tokens`) are decoded; where fewer than ``k``
    of them are kept after dropping stopwords and tokens under ``min_chars`` characters, that
    vector is ranked again four times deeper, up to ``max_rank``. Vocabularies rich in short
    sub-word pieces (SmolLM2's) need deeper rankings than Gemma's. No ranking is deeper than the
    vocabulary. Returns an object array of shape ``vectors.shape[:-1]`` holding lists of decoded
    tokens, best first.
    """
    vectors = np.asarray(vectors)
    flat = vectors.reshape(-1, vectors.shape[-1])
    stop = frozenset(w.lower() for w in stopwords)
    out = np.empty(flat.shape[0], dtype=object)
    n_vocab = lm.model.get_output_embeddings().weight.shape[0]
    max_rank = min(int(max_rank), n_vocab)
    todo, depth = np.arange(flat.shape[0]), min(int(rank), max_rank)
    while len(todo):
        strings = lens.decode_tokens(lm, lens.top_tokens(lm, flat[todo], k=depth, apply_final_norm=apply_final_norm))
        short = []
        for j, ranked in zip(todo, strings):
            out[j] = list(ranked)
            if depth < max_rank and len(metrics.attributes.kept_tokens(ranked, stop, k, min_chars)) < k:
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
                                 "n_kept": [len(metrics.attributes.kept_tokens(layer, stop, k)) for layer in layers]}))
    return pd.concat(out, ignore_index=True)



# --------------------------------------------------------------------------------------------------
# The measurements


def relation_tables(lm: LoadedModel, frame: pd.DataFrame, resid, relation_pairs: pd.DataFrame,
                    n_nonparaphrase_pairs: int = 1000, seed: int = 0) -> dict[str, pd.DataFrame]:
    """(b) relations, from the last token's states h^l of a ParaRel pass (``frame`` and its ``resid``):
    ``massive`` (:func:`top_dims_share`), ``relation`` (:func:`relation_similarity_table`), ``gap``
    (:func:`paraphrase_gap_table`) and ``gap_facts`` (:func:`paraphrase_gap_per_fact`), stamped."""
    share = top_dims_share(resid, n_dims=3)
    return {
        "massive": stamp(pd.DataFrame({"layer": range(len(share)), "share": share}), lm, "state"),
        "relation": stamp(relation_similarity_table(frame, resid, relation_pairs), lm, "state"),
        "gap": stamp(paraphrase_gap_table(frame, resid, n_nonparaphrase_pairs, seed), lm, "state"),
        "gap_facts": stamp(paraphrase_gap_per_fact(frame, resid, n_nonparaphrase_pairs, seed), lm, "state"),
    }


def extraction_tables(lm: LoadedModel, frame: pd.DataFrame, n_queries: int | None = 150,
                      seed: int = 0, later_code: bool = False) -> dict[str, pd.DataFrame]:
    """(c) extraction: the MHSA and MLP updates of ``n_queries`` queries of a ParaRel pass
    (:func:`sample_query_rows`, :func:`ifhelpers.model.probes.run_updates`) read through the logit lens:
    ``extraction`` (:func:`extraction_rates`) and ``events`` (:func:`extraction_events`), stamped.

    With ``later_code``, also ``events_later_code``: the events as the first author's later
    extraction-rate code reads them (constanzafierro/multilingual_factual_memorization), a sensitivity
    variant of Fig. 5: each raw update projected by the output embedding with no final norm, on the
    prompts the model answers correctly only (``correct`` of the pass). Empty when it answers none."""
    rows = sample_query_rows(frame, n_queries, seed)
    sample = frame.iloc[rows]
    updates = probes.run_updates(lm, sample, progress=False)
    top1 = {block: lens.top_tokens(lm, updates[name], k=1) for block, name in BLOCKS.items()}
    tables = {"extraction": stamp(extraction_rates(sample, top1), lm, "update"),
              "events": stamp(extraction_events(sample, top1), lm, "update")}
    if later_code:
        known = sample["correct"].to_numpy(dtype=bool)
        raw = {block: lens.top_tokens(lm, updates[name][known], k=1, apply_final_norm=False)
               for block, name in BLOCKS.items()} if known.any() else {}
        events = extraction_events(sample[known], raw) if known.any() else \
            pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in EVENT_COLUMNS.items()})
        tables["events_later_code"] = stamp(events, lm, "update")
    return tables


#: The columns of :func:`extraction_events` and their types (an empty table has them too).
EVENT_COLUMNS = {"query": object, "relation": object, "block": object, "layer": int, "event": float}


def attribute_tables(lm: LoadedModel, subject_queries: pd.DataFrame, snippets: Mapping[str, Sequence[str]],
                     stopwords, prompt_ids=(0, 1, 2), top_k: int = 50, rank: int = 200,
                     max_rank: int = 12800) -> dict[str, pd.DataFrame]:
    """(a) subjects: the states at the last subject token of ``subject_queries`` (one forward pass per
    distinct prefix, :func:`unique_prefix_rows`) read through the logit lens (:func:`lens_token_strings`)
    against A_s (:func:`attribute_sets`): ``attributes`` (:func:`attribute_rates`), ``attribute_sets`` (the
    size of each A_s) and ``lens_examples`` (the first query's first eight lens tokens at every layer,
    ``top_tokens``), stamped."""
    subject_frame = probes.pararel_prompts(lm, subject_queries, prompt_ids)
    unique, inverse = unique_prefix_rows(lm, subject_frame)
    states = probes.run_subject_states(lm, subject_frame.iloc[unique], progress=False)
    top = lens_token_strings(lm, states, top_k, stopwords, rank, max_rank)[inverse]
    attributes = attribute_sets(lm.tokenizer, snippets, stopwords)
    sizes = pd.DataFrame({"subject": list(attributes), "n_attributes": [len(a) for a in attributes.values()]})
    example = pd.DataFrame({"subject": subject_frame["subject"].iloc[0], "prompt": subject_frame["prompt"].iloc[0],
                            "layer": range(top.shape[1]), "top_tokens": [t[:8] for t in top[0]]})
    return {"attributes": stamp(attribute_rates(subject_frame, top, attributes, stopwords, top_k), lm, "state"),
            "attribute_sets": stamp(sizes, lm),
            "lens_examples": stamp(example, lm, "state")}


def mechanisms(queries: pd.DataFrame, relation_pairs: pd.DataFrame, subject_queries: pd.DataFrame,
               snippets: Mapping[str, Sequence[str]], stopwords, prompt_ids=(0, 1, 2), n_nonparaphrase_pairs: int = 1000,
               extraction_n_queries: int | None = 150, top_k: int = 50, rank: int = 200, max_rank: int = 12800,
               seed: int = 0) -> Measurement:
    """Everything chapter 4 reads from one model (§4, App. D-F): the shared ParaRel pass
    (:func:`ifhelpers.model.probes.run_pararel`, every layer) scored per prompt and relation (``consistency``,
    :func:`ifhelpers.measure.pararel.pararel_prompt_scores`), then :func:`relation_tables`,
    :func:`extraction_tables` (with the later code's variant) and :func:`attribute_tables`."""
    def measure(lm: LoadedModel) -> dict[str, pd.DataFrame]:
        frame, arrays = probes.run_pararel(lm, queries, prompt_ids, progress=False)
        tables = {"consistency": stamp(pararel_prompt_scores(frame), lm),
                  **relation_tables(lm, frame, arrays["resid"], relation_pairs, n_nonparaphrase_pairs, seed),
                  **extraction_tables(lm, frame, extraction_n_queries, seed, later_code=True)}
        del arrays
        return {**tables, **attribute_tables(lm, subject_queries, snippets, stopwords, prompt_ids, top_k, rank,
                                             max_rank)}

    return measure


def extraction(queries: pd.DataFrame, prompt_ids=(0, 1, 2), n_queries: int | None = 150, seed: int = 0) -> Measurement:
    """Chapter 5's extraction measurement: :func:`extraction_tables` on the ParaRel pass of ``queries``
    (h^L only: the pass's predictions are what the events are compared with)."""
    def measure(lm: LoadedModel) -> dict[str, pd.DataFrame]:
        frame, arrays = probes.run_pararel(lm, queries, prompt_ids, resid_layers="last", progress=False)
        del arrays
        return extraction_tables(lm, frame, n_queries, seed)

    return measure
