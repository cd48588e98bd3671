"""The §2 representations, one model at a time: h^L at the last token of every text under Table 3's
prompts, and the paraphrase gap of every paraphrase set (Table 1, App. B.1-B.2).

A *design* (:class:`ifhelpers.chapters.vector_space.Design`: ``items`` with ``text`` and ``set_id``,
``nonparaphrase`` pairs, ``units``, ``source``, ``label``) says which texts are compared; :func:`per_set_gaps` is the
measurement (for :func:`ifhelpers.measure.runner.run`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ifhelpers import metrics
from ifhelpers.data import prompts
from ifhelpers.measure.runner import Measurement
from ifhelpers.measure.stamp import stamp
from ifhelpers.model import engine, lens, probes
from ifhelpers.model.models import LoadedModel

#: h^L at the last token after the model's final norm (default), or the raw residual stream before it.
REPRESENTATIONS = ("final_norm", "pre_norm")


def sentence_prompts(lm: LoadedModel, texts: Sequence[str], prompt_ids=(0, 1, 2)) -> pd.DataFrame:
    """Every text inside each Table 3 prompt for MRPC / TaPaCo, in the model's format (App. B.2).

    Returns a frame with ``prompt_id``, ``item`` (the text's position in ``texts``) and ``prompt``,
    prompt-major (all texts of prompt 0, then of prompt 1, ...).
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string")
    texts = list(texts)
    frames = []
    for prompt_id in prompt_ids:
        frames.append(pd.DataFrame({
            "prompt_id": prompt_id, "item": np.arange(len(texts)),
            "prompt": [prompts.format_prompt(t, "sentence", prompt_id, lm.spec.prompt_format, lm.tokenizer)
                       for t in texts],
        }))
    return pd.concat(frames, ignore_index=True)


def outermost_states(lm: LoadedModel, resid: np.ndarray, representation: str = "final_norm") -> np.ndarray:
    """h^L, the outermost representation of the captured token (§2), as float64 ``(n, d)``.

    ``resid`` is the engine's ``(n, L+1, d)`` array (h^0..h^L before the final norm) or already its
    last layer ``(n, d)``. ``"final_norm"`` applies the model's final norm (what the unembedding
    sees and what Hugging Face's last ``hidden_states`` entry holds); ``"pre_norm"`` returns the raw
    residual stream. The norm's elementwise weight changes cosines; its scaling does not.
    """
    if representation not in REPRESENTATIONS:
        raise ValueError(f"representation must be one of {REPRESENTATIONS}; got {representation!r}")
    resid = np.asarray(resid)
    h = resid[:, -1] if resid.ndim == 3 else resid
    if h.ndim != 2:
        raise ValueError(f"resid must be (n, L+1, d) or (n, d); got shape {resid.shape}")
    if representation == "pre_norm":
        return h.astype(np.float64)
    return lens.normed(lm, h).float().cpu().numpy().astype(np.float64)


def _by_prompt(lm, resid_last: np.ndarray, prompt_of_row: np.ndarray, prompt_ids) -> dict:
    states = {}
    for representation in REPRESENTATIONS:
        h = outermost_states(lm, resid_last, representation)
        states[representation] = {p: h[prompt_of_row == p] for p in prompt_ids}
    return states


def embed_sentences(lm: LoadedModel, design, prompt_ids=(0, 1, 2), *, cache=True,
                    progress=None) -> dict:
    """Last-token h^L of every item of ``design`` under each prompt (one cached engine pass).

    Returns ``{representation: {prompt_id: array (n_items, d)}}`` for both :data:`REPRESENTATIONS`.
    """
    frame = sentence_prompts(lm, design.items["text"], prompt_ids)
    out = engine.run(lm, frame["prompt"].tolist(), probes.LAST_STATE_REQUEST, cache=cache, progress=progress)
    return _by_prompt(lm, out["resid"][:, -1], frame["prompt_id"].to_numpy(), prompt_ids)


def embed_pararel(lm: LoadedModel, queries: pd.DataFrame, prompt_ids=(0, 1, 2), *, resid_layers: str = "all",
                  cache=True, progress=None) -> dict:
    """Last-token h^L of every ParaRel query under each prompt, from the shared ParaRel pass.

    Reads the last layer of ``resid`` from :func:`ifhelpers.model.probes.run_pararel` (so the forward
    passes are those of the predictions and mechanisms chapters; ``resid_layers`` as there) and keeps
    nothing else. Returns ``{representation: {prompt_id: array (n_queries, d)}}``, rows in ``queries`` order.
    """
    frame, arrays = probes.run_pararel(lm, queries, tuple(prompt_ids), resid_layers=resid_layers, cache=cache,
                                       progress=progress)
    last = np.ascontiguousarray(arrays["resid"][:, -1])
    del arrays
    states = _by_prompt(lm, last, frame["prompt_id"].to_numpy(), prompt_ids)
    for by_prompt in states.values():
        for p, h in by_prompt.items():
            if len(h) != len(queries):
                raise RuntimeError(f"prompt {p}: {len(h)} ParaRel states for {len(queries)} queries")
    return states


def unit_table(reps: np.ndarray, design) -> pd.DataFrame:
    """One row per paraphrase set: eq. 2, its non-paraphrase pairs' mean cosine, and the gap.

    ``reps`` holds one representation per item of ``design`` (``(n_items, d)``). Columns
    ``unit_id``, ``n_members``, ``cos_para`` (eq. 2, mean over pairs), ``cos_para_literal`` (eq. 2
    as printed, ``1/M`` times the ordered-pair sum), ``cos_nonpara`` (mean over the set's eq. 4
    pairs), ``n_nonpara`` and ``gap = cos_para − cos_nonpara``: Table 1's gap per set,
    :func:`ifhelpers.metrics.cosine.paraphrase_gap_per_set`. With equally many pairs per set the mean of
    ``gap`` is eq. 3 − eq. 4.
    """
    reps = np.asarray(reps)
    if reps.ndim != 2 or reps.shape[0] != len(design.items):
        raise ValueError(f"reps must be (n_items={len(design.items)}, d); got {reps.shape}")
    units = design.units
    member = design.items["set_id"].isin(units).to_numpy()
    non = design.nonparaphrase
    table = metrics.cosine.paraphrase_gap_per_set(reps[member], design.items["set_id"].to_numpy()[member],
                                                  reps[non["row_a"].to_numpy()], reps[non["row_b"].to_numpy()],
                                                  non["unit_id"].to_numpy())
    return table.reindex(units).rename_axis("unit_id").reset_index()[
        ["unit_id", "n_members", "cos_para", "cos_para_literal", "cos_nonpara", "n_nonpara", "gap"]]


def model_units(lm: LoadedModel, designs: dict, pararel_queries: pd.DataFrame | None = None,
                prompt_ids=(0, 1, 2), *, pararel_resid_layers: str = "all", cache=True,
                progress=None) -> pd.DataFrame:
    """The tidy per-set frame of one model over all ``designs`` (``{dataset: Design}``).

    MRPC and TaPaCo items go through :func:`embed_sentences`; ParaRel (``designs["pararel"]``,
    built by :func:`ifhelpers.chapters.vector_space.design_pararel` from ``pararel_queries``) through :func:`embed_pararel`, with
    ``resid_layers=pararel_resid_layers``.
    Columns: the model's (:func:`ifhelpers.measure.stamp.stamp`), ``dataset``, ``dataset_label``,
    ``source``, ``representation``, ``prompt_id`` and those of :func:`unit_table`.
    """
    frames = []
    for dataset, design in designs.items():
        if dataset == "pararel":
            if pararel_queries is None:
                raise ValueError("the ParaRel design needs pararel_queries (the queries it was built from)")
            if len(pararel_queries) != len(design.items):
                raise ValueError("pararel_queries do not match the ParaRel design")
            states = embed_pararel(lm, pararel_queries, prompt_ids, resid_layers=pararel_resid_layers, cache=cache,
                                   progress=progress)
        else:
            states = embed_sentences(lm, design, prompt_ids, cache=cache, progress=progress)
        for representation, by_prompt in states.items():
            for prompt_id, reps in by_prompt.items():
                table = unit_table(reps, design)
                table.insert(0, "prompt_id", prompt_id)
                table.insert(0, "representation", representation)
                table.insert(0, "source", design.source)
                table.insert(0, "dataset_label", design.label)
                table.insert(0, "dataset", dataset)
                frames.append(table)
    return stamp(pd.concat(frames, ignore_index=True), lm)



def per_set_gaps(designs: dict, pararel_queries: pd.DataFrame | None = None, prompt_ids=(0, 1, 2), *,
          pararel_resid_layers: str = "all", progress=None) -> Measurement:
    """The §2 measurement: :func:`model_units` of every design, table ``units``."""
    def measure(lm: LoadedModel) -> dict[str, pd.DataFrame]:
        return {"units": model_units(lm, designs, pararel_queries, prompt_ids,
                                     pararel_resid_layers=pararel_resid_layers, progress=progress)}

    return measure
