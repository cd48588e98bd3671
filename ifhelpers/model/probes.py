"""The ParaRel forward passes that several chapters share (§2 Table 1, §3 Table 2, §4 Figs. 2-8).

Every chapter that looks at ParaRel queries calls :func:`run_pararel` with the same request
(:data:`PARAREL_REQUEST`), so the engine's cache serves one pass per (model, query, prompt) to all of
them: the vector-space chapter reads the last layer of ``resid``, the predictions chapter the top-1
token, the mechanisms chapter every layer. A model the mechanisms chapter does not read (chapter 5's
tuned models) asks for ``resid_layers="last"``: its pass stores h^L only, a 1/(L+1) of the states, and
the engine serves that request from an all-layer pass where one is cached. The MHSA and MLP updates
are read for a sample of queries only (the extraction rates of §4), so they come from a pass of their
own over that sample (:func:`run_updates`), and the cache keeps a third of what it would keep if the
shared pass held them.

A prediction is the model's top-1 next token after the prompt. The object is compared through its
*first token as it follows the prompt* (``" Paris"`` after ``"... is located in"``, tokenized with the
prompt, see :func:`ifhelpers.model.tokens.first_continuation_id`), so objects of several tokens for
LLaMA-style tokenizers are judged on their first token, and an N-M fact is answered correctly when
the prediction is the first token of any of its objects.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ifhelpers.model import engine, tokens
from ifhelpers.data import prompts
from ifhelpers.model.models import LoadedModel

#: One request for all ParaRel chapters: states at every layer and the top-10 next tokens. The states are
#: kept in bfloat16 (the predictions are not rounded): this pass is most of what a book build caches, and
#: a cold build at the default sizes moved no headline by more than 4.1e-4 of its scale against a float32
#: build, and the smoke-size headlines by up to 2.7e-3 (one bootstrap bound over 9 sets).
PARAREL_REQUEST = engine.Request(resid=True, top_k=10, states_dtype="bfloat16")
#: The MHSA and MLP updates at the last token (§4 extraction), with the states so that the engine
#: checks eq. 1 on them.
UPDATES_REQUEST = engine.Request(resid=True, updates=True)
#: The residual stream at the last subject token (§4 subject attribute rate).
SUBJECT_REQUEST = engine.Request(resid=True)
#: h^L alone at the captured token: all that the sentence embeddings of §2 (Table 1) and the BECEL
#: probe's features (§3) read.
LAST_STATE_REQUEST = engine.Request(resid=True, resid_layers="last")


def pararel_request(resid_layers: str = "all", states_dtype: str = PARAREL_REQUEST.states_dtype) -> engine.Request:
    """:data:`PARAREL_REQUEST`, keeping every layer of ``resid`` (``"all"``) or h^L only (``"last"``), its
    states in ``states_dtype`` (the benchmarks of the engine's arithmetic ask for ``"float32"``)."""
    return dataclasses.replace(PARAREL_REQUEST, resid_layers=resid_layers, states_dtype=states_dtype)


def pararel_prompts(lm: LoadedModel, queries: pd.DataFrame, prompt_ids=(0, 1, 2)) -> pd.DataFrame:
    """``queries`` (from :func:`ifhelpers.data.pararel.load_queries`) crossed with Table 3's ParaRel prompts.

    Adds ``prompt_id``, ``prompt`` (the text the model reads), ``subject_token`` (index of the last
    subject token in the prompt's token ids), ``object_first_ids`` (first token id of each gold object
    after the prompt) and ``object_first_id`` (the same for the first object).
    """
    frames = []
    for prompt_id in prompt_ids:
        frame = queries.copy()
        frame["prompt_id"] = prompt_id
        frame["prompt"] = [prompts.format_prompt(q, "pararel", prompt_id, lm.spec.prompt_format, lm.tokenizer)
                           for q in frame["query"]]
        spans = [prompts.subject_span(p, q, s, e) for p, q, s, e in
                 zip(frame["prompt"], frame["query"], frame["subject_start"], frame["subject_end"])]
        frame["subject_token"] = [tokens.token_index_at_char(lm.tokenizer, p, end - 1)
                                  for p, (_, end) in zip(frame["prompt"], spans)]
        frame["object_first_ids"] = [tuple(tokens.first_continuation_id(lm.tokenizer, p, " " + o) for o in objs)
                                     for p, objs in zip(frame["prompt"], frame["objects"])]
        frame["object_first_id"] = [ids[0] for ids in frame["object_first_ids"]]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def run_pararel(lm: LoadedModel, queries: pd.DataFrame, prompt_ids=(0, 1, 2), *, resid_layers: str = "all",
                cache=True, progress=None) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """One cached pass over every (query, prompt): a tidy frame and the arrays of :data:`PARAREL_REQUEST`.

    The frame has the columns of :func:`pararel_prompts` plus ``prediction_id`` (top-1 next token),
    ``prediction`` (its text, stripped) and ``correct`` (the prediction is the first token of a gold
    object). Array rows align with the frame's rows. ``resid_layers="last"`` keeps h^L only (``resid``
    of shape ``(n, 1, d)``), for a model whose other layers no chapter reads.
    """
    frame = pararel_prompts(lm, queries, prompt_ids)
    arrays = engine.run(lm, frame["prompt"].tolist(), pararel_request(resid_layers), cache=cache, progress=progress)
    frame["prediction_id"] = arrays["top_ids"][:, 0]
    frame["prediction"] = [lm.tokenizer.decode([int(i)]).strip() for i in frame["prediction_id"]]
    frame["correct"] = [int(p) in ids for p, ids in zip(frame["prediction_id"], frame["object_first_ids"])]
    frame.attrs["model"] = lm.name
    frame.attrs["role"] = lm.spec.role
    return frame, arrays


def run_updates(lm: LoadedModel, frame: pd.DataFrame, *, cache=True, progress=None) -> dict[str, np.ndarray]:
    """a^0 ... a^{L-1} and f^0 ... f^{L-1} at the last token of each prompt in ``frame`` (§4), each ``(n, L, d)``.

    ``frame`` is (a subset of the rows of) :func:`run_pararel`'s frame; keys ``attn_update`` and ``mlp_update``.
    """
    out = engine.run(lm, frame["prompt"].tolist(), UPDATES_REQUEST, cache=cache, progress=progress)
    return {name: out[name] for name in ("attn_update", "mlp_update")}


def run_subject_states(lm: LoadedModel, frame: pd.DataFrame, *, cache=True, progress=None) -> np.ndarray:
    """h^0 ... h^L at the last subject token of each prompt in ``frame`` (§4, App. D), ``(n, L+1, d)``."""
    out = engine.run(lm, frame["prompt"].tolist(), SUBJECT_REQUEST, positions=frame["subject_token"].tolist(),
                     cache=cache, progress=progress)
    return out["resid"]


def pararel_predictions(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame of :func:`ifhelpers.model.probes.run_pararel` in the columns :func:`ifhelpers.metrics.pararel.pararel_scores` reads.

    ``fact_id`` is the T-REx uuid, ``prediction`` the top-1 token *id* and ``gold`` the tuple of the gold
    objects' first token ids (``object_first_ids``), so accuracy is exactly the frame's ``correct`` and
    two paraphrases agree when they predict the same token. ``prompt_id`` and the decoded
    ``prediction_text`` are kept.
    """
    missing = [c for c in ("relation", "uuid", "template_id", "prompt_id", "prediction_id", "object_first_ids")
               if c not in frame.columns]
    if missing:
        raise ValueError(f"not a run_pararel frame: missing {missing}")
    out = pd.DataFrame({
        "prompt_id": frame["prompt_id"].to_numpy(),
        "relation": frame["relation"].to_numpy(),
        "fact_id": frame["uuid"].to_numpy(),
        "template_id": frame["template_id"].to_numpy(),
        "prediction": frame["prediction_id"].astype(int).to_numpy(),
        "gold": [tuple(int(i) for i in ids) for ids in frame["object_first_ids"]],
    })
    if "prediction" in frame.columns:
        out["prediction_text"] = frame["prediction"].to_numpy()
    return out
