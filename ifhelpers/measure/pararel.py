"""The shared ParaRel pass read as predictions (§3, Table 2, footnote 4; chapter 6's variants).

:func:`scores` and :func:`variants` are the measurements (a function of one model, for
:func:`ifhelpers.measure.runner.run`); the pass itself is :func:`ifhelpers.model.probes.run_pararel`, one
cached pass per (model, query, prompt) that every chapter shares.

How a prediction is compared with a gold object: a prediction is one token, the model's top-1 next
token after the prompt. An object is compared through its *first token as it follows the prompt*
(:func:`ifhelpers.model.tokens.first_continuation_id` of ``" " + object``): ``"Paris"`` after ``"... is
located in"`` is ``▁Paris`` for Gemma 3 and ``ĠParis`` for SmolLM2; ``"New York"`` is judged on ``▁New``.
A query with several gold objects (N-M relations such as P47 "shares border with") is answered correctly
when the prediction is the first token of any of them. Consistency compares the predicted *token ids* of
two paraphrases, so two different correct objects of an N-M fact count as inconsistent, as in Elazar et
al. (2021). :func:`object_token_stats` measures how often the first-token rule is lenient (objects of
several tokens, distinct objects sharing a first token, and objects whose first token is bare whitespace,
which happens for numbers: ``" 1990"`` -> ``▁``, ``1``...).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ifhelpers import metrics
from ifhelpers.data import pararel
from ifhelpers.measure.runner import Measurement
from ifhelpers.measure.stamp import stamp
from ifhelpers.model import probes, tokens
from ifhelpers.model.models import LoadedModel


def pararel_prompt_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-prompt, per-relation ParaRel accuracy and consistency of one model (§3, Table 2).

    ``frame`` is :func:`ifhelpers.model.probes.run_pararel`'s. Each prompt of Table 3 is scored on its own with
    :func:`ifhelpers.metrics.pararel.pararel_scores` (pairs of paraphrases are formed within a prompt). A
    relation with a single usable template has no pair of paraphrases, so its consistency is undefined
    (NaN), while its accuracy counts (``attrs["single_template_relations"]`` lists them).

    Returns
    -------
    DataFrame with ``prompt_id``, ``relation``, ``n_facts``, ``n_queries``, ``n_pairs``,
    ``accuracy``, ``consistency`` (fractions).
    """
    tidy = probes.pararel_predictions(frame)
    n_templates = tidy.groupby("relation")["template_id"].nunique()
    if (n_templates < 2).all():
        raise ValueError("no relation has two templates: consistency is undefined for every relation")
    parts = []
    for prompt_id, part in tidy.groupby("prompt_id", sort=True):
        scores = metrics.pararel.pararel_scores(part.reset_index(drop=True)).reset_index()
        scores.insert(0, "prompt_id", prompt_id)
        parts.append(scores)
    out = pd.concat(parts, ignore_index=True)
    out.attrs["single_template_relations"] = sorted(n_templates.index[n_templates < 2])
    return out


def object_token_stats(lm: LoadedModel, frame: pd.DataFrame) -> pd.DataFrame:
    """How lenient the first-token rule is for this tokenizer on these queries (module docstring).

    Counts, over the distinct gold objects of ``frame`` (first prompt only): objects of several tokens,
    objects whose first token is also the first token of another object of the same relation (a
    prediction of that token is "correct" for both), and objects whose first token is whitespace only.
    One row: ``n_objects``, ``multi_token``, ``shared_first_token``, ``blank_first_token``, ``examples``.
    """
    first_prompt = frame[frame["prompt_id"] == frame["prompt_id"].min()]
    rows = {}
    for prompt, objects, relation in zip(first_prompt["prompt"], first_prompt["objects"], first_prompt["relation"]):
        for obj in objects:
            if (relation, obj) not in rows:
                ids = tokens.continuation_ids(lm.tokenizer, prompt, " " + obj)
                rows[(relation, obj)] = ids
    table = pd.DataFrame([(r, o, ids[0], len(ids)) for (r, o), ids in rows.items()],
                         columns=["relation", "object", "first_id", "n_tokens"])
    shared = table.groupby(["relation", "first_id"])["object"].transform("nunique") > 1
    blank = table["first_id"].map(lambda i: lm.tokenizer.decode([int(i)]).strip() == "")
    return pd.DataFrame([{
        "n_objects": len(table),
        "multi_token": float((table["n_tokens"] > 1).mean()),
        "shared_first_token": float(shared.mean()),
        "blank_first_token": int(blank.sum()),
        "examples": "; ".join(
            f"{o} -> {lm.tokenizer.convert_ids_to_tokens(int(i))!s}+{n - 1}"
            for o, i, n in table.loc[table["n_tokens"] > 1, ["object", "first_id", "n_tokens"]].head(3).itertuples(index=False)),
    }])


def relation_candidates(lm: LoadedModel, frame: pd.DataFrame, data_dir=None) -> dict[str, frozenset[int]]:
    """Each relation's candidate set as first token ids: every object of the relation in T-REx.

    Elazar et al. (2021) score ParaRel with the prediction restricted to the objects that occur in the
    relation's data (their ``--use_targets``). Here an object is its first token after the relation's
    first prompt in ``frame`` (the queries end in a word, so the preceding text does not change how
    ``" " + object`` starts).
    """
    out = {}
    for relation, part in frame.groupby("relation", sort=False):
        facts = pararel.load_facts(relation, data_dir=data_dir)
        objects = sorted({o for objs in facts["objects"] for o in objs})
        prompt = part["prompt"].iloc[0]
        out[relation] = frozenset(tokens.first_continuation_id(lm.tokenizer, prompt, " " + o) for o in objects)
    return out


def restrict_to_candidates(frame: pd.DataFrame, top_ids: np.ndarray, candidates: dict) -> pd.DataFrame:
    """Predictions restricted to the relation's candidate objects, read from the cached top-k tokens.

    The restricted prediction is the best-ranked token of ``top_ids`` (``(n, k)``, the shared pass keeps
    k = 10) that is in the relation's candidate set (:func:`relation_candidates`). When one is in the top
    k it is exactly the argmax over the candidates. When none is, the restricted prediction is unknown:
    it gets a distinct negative id, so it counts as wrong and agrees with no other query (a lower bound
    on both metrics); ``in_top_k`` says which queries were found.
    """
    top_ids = np.asarray(top_ids)
    if len(top_ids) != len(frame):
        raise ValueError(f"top_ids has {len(top_ids)} rows, frame {len(frame)}")
    restricted, found = [], []
    for row, (relation, ranked) in enumerate(zip(frame["relation"], top_ids)):
        hit = next((int(t) for t in ranked if int(t) in candidates[relation]), None)
        found.append(hit is not None)
        restricted.append(hit if hit is not None else -1 - row)
    out = frame.drop(columns=[c for c in ("prediction",) if c in frame.columns])
    out["prediction_id"] = restricted
    out["in_top_k"] = found
    out["correct"] = [p in ids for p, ids in zip(out["prediction_id"], out["object_first_ids"])]
    return out


def pararel_variants(frame: pd.DataFrame) -> pd.DataFrame:
    """One model's shared ParaRel pass (:func:`ifhelpers.model.probes.run_pararel`) read every way of
    :func:`ifhelpers.metrics.pararel.pararel_variants`, per (prompt, relation), plus ``consistency_a_an``:
    Table 2's consistency after ParaRel's a/an filter (:func:`ifhelpers.metrics.pararel.a_an_mismatch`).
    Columns ``relation``, the variants and ``prompt_id`` (fractions)."""
    tidy = probes.pararel_predictions(frame)
    kept = ~metrics.pararel.a_an_mismatch(frame["final_word"], frame["object"])
    rows = []
    for prompt_id in sorted(tidy["prompt_id"].unique()):
        here = (tidy["prompt_id"] == prompt_id).to_numpy()
        variants = metrics.pararel.pararel_variants(tidy[here].reset_index(drop=True))
        variants["consistency_a_an"] = metrics.pararel.pararel_scores(
            tidy[here & kept].reset_index(drop=True))["consistency"]
        rows.append(variants.reset_index().assign(prompt_id=prompt_id))
    return pd.concat(rows, ignore_index=True)



def scores(queries: pd.DataFrame, prompt_ids=(0, 1, 2), *, resid_layers: str = "all", restricted: bool = False,
           token_stats: bool = False, predictions: bool = False, progress=None) -> Measurement:
    """The ParaRel measurement of §3: the shared pass over ``queries`` under ``prompt_ids``
    (:func:`ifhelpers.model.probes.run_pararel`, keeping ``resid_layers``) scored per prompt and relation.

    Tables (each stamped): ``pararel_scores`` (:func:`pararel_prompt_scores`); with ``restricted``,
    ``restricted_scores`` (the same on the predictions restricted to the relation's objects,
    :func:`restrict_to_candidates`) and ``pararel_coverage`` (``in_top_k``: the share of queries with a
    candidate among the top 10); with ``token_stats``, ``object_tokens`` (:func:`object_token_stats`); with
    ``predictions``, ``pararel_predictions`` (the pass's tidy frame, one row per query and prompt).
    """
    def measure(lm: LoadedModel) -> dict[str, pd.DataFrame]:
        frame, arrays = probes.run_pararel(lm, queries, prompt_ids, resid_layers=resid_layers, progress=progress)
        top_ids = arrays["top_ids"]
        del arrays  # the states serve the other measurements through the engine's cache
        out = {"pararel_scores": stamp(pararel_prompt_scores(frame), lm)}
        if restricted:
            kept = restrict_to_candidates(frame, top_ids, relation_candidates(lm, frame))
            out["restricted_scores"] = stamp(pararel_prompt_scores(kept), lm)
            out["pararel_coverage"] = stamp(pd.DataFrame({"in_top_k": [kept["in_top_k"].mean()]}), lm)
        if token_stats:
            out["object_tokens"] = stamp(object_token_stats(lm, frame), lm)
        if predictions:
            out["pararel_predictions"] = stamp(frame.drop(columns=["pattern"]), lm)
        return out

    return measure


def variants(queries: Mapping[int, pd.DataFrame], passes: Mapping[str, Sequence[int]], prompt_ids=(0, 1, 2),
             *, progress=False) -> Measurement:
    """Chapter 6's ParaRel measurement: each model's passes (``passes``: model -> facts per relation, keys
    of ``queries``), h^L only, read every way of :func:`pararel_variants`. Table ``pararel_variants``
    (stamped) with ``facts_per_relation``."""
    def measure(lm: LoadedModel) -> dict[str, pd.DataFrame]:
        parts = []
        for n in passes[lm.name]:
            frame, arrays = probes.run_pararel(lm, queries[n], prompt_ids, resid_layers="last", progress=progress)
            del arrays
            parts.append(stamp(pararel_variants(frame), lm).assign(facts_per_relation=n))
        return {"pararel_variants": pd.concat(parts, ignore_index=True)}

    return measure
