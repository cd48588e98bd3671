"""Short greedy responses, cached on disk like the engine's forward passes (chapter 6).

A response is what the model says after a prompt when it picks its likeliest next token, a few tokens
at a time (``transformers``' ``generate`` with ``do_sample=False``), stopping at an end-of-sequence
token. Chapter 6 reads two things from it: which option it names (scoring by generation instead of
the letter log-likelihood) and, scored back under the other prompts of a question, how much its
likelihood depends on the prompt (POSIX).

Texts are tokenized as the engine tokenizes them (:func:`ifhelpers.model.tokens.encode`), cut to their
last tokens where they and the response would not fit the model's context
(:func:`ifhelpers.model.engine.fit_context`), grouped by length under a padded-token budget
(:func:`ifhelpers.model.engine.plan_batches`) and left-padded (:func:`ifhelpers.model.engine.pad_left`). Every batch is saved to the cache as it finishes, in a store
of the model's activation cache keyed by ``"greedy"`` and the number of tokens, so a repeated or
interrupted run generates nothing twice. An encoder-decoder model (T5) reads the text with its encoder and
its decoder writes the response from its start token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ifhelpers.model import engine
from ifhelpers.model.cache import content_key, missing_keys, store_for
from ifhelpers.model.models import LoadedModel
from ifhelpers.model.tokens import encode

#: Generation version, part of the cache key: change it when the decoding rule changes.
GREEDY_VERSION = "greedy-v1"


def stop_ids(lm: LoadedModel) -> list[int]:
    """The token ids that end a response: the tokenizer's end-of-sequence token and those of the model's
    generation config (Gemma's ``<end_of_turn>``, a chat model's end-of-message token)."""
    ids = getattr(lm.model.generation_config, "eos_token_id", None)
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if lm.tokenizer.eos_token_id is not None:
        ids.append(lm.tokenizer.eos_token_id)
    return sorted(set(int(i) for i in ids))


def greedy_responses(lm: LoadedModel, texts: Sequence[str], max_new_tokens: int = 5, *, cache: bool | str | Path = True,
                     max_batch_tokens: int | None = None, max_batch_size: int = 32,
                     progress: bool | None = None) -> list[list[int]]:
    """The greedy response of ``lm`` to every text: at most ``max_new_tokens`` token ids each, the
    end-of-sequence token (:func:`stop_ids`) and what follows it left out. ``cache`` as for
    :func:`ifhelpers.model.engine.run`."""
    import torch
    from transformers import GenerationConfig

    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string")
    texts = list(texts)
    if not texts:
        raise ValueError("No texts given: pass a non-empty list of strings.")
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be >= 1")
    if max_batch_tokens is None:
        max_batch_tokens = engine.default_batch_tokens(lm)
    keys = [content_key(text) for text in texts]
    engine.count_cut(lm, texts, room=max_new_tokens)
    store = store_for(lm.fingerprint, content_key(GREEDY_VERSION, max_new_tokens),
                      None if cache is True else cache) if cache else None
    found: dict[str, np.ndarray] = {}
    stops = stop_ids(lm)
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                              pad_token_id=lm.tokenizer.pad_token_id, eos_token_id=stops)
    with missing_keys(store, keys) as todo:
        if todo:
            from tqdm.auto import tqdm

            text_of = dict(zip(keys, texts))
            ids = [engine.fit_context(lm, encode(lm.tokenizer, text_of[k]), room=max_new_tokens) for k in todo]
            batches = engine.plan_batches([len(seq) for seq in ids], max_batch_tokens, max_batch_size)
            show = progress if progress is not None else len(batches) > 4
            for batch in tqdm(batches, desc=f"{lm.name} responses", disable=not show, leave=False):
                input_ids, mask, _ = engine.pad_left([ids[i] for i in batch], lm.tokenizer.pad_token_id, lm.device)
                with torch.inference_mode():
                    out = lm.model.generate(input_ids=input_ids, attention_mask=mask, generation_config=config)
                # a decoder continues its input; an encoder-decoder's decoder writes after its start token
                new = out[:, 1 if lm.anatomy.encoder_decoder else input_ids.shape[1]:].cpu().numpy()
                response = np.full((len(batch), max_new_tokens), -1, dtype=np.int64)
                for row, tokens in enumerate(new):
                    stop = next((n for n, t in enumerate(tokens) if int(t) in stops), len(tokens))
                    response[row, :stop] = tokens[:stop]
                batch_keys = [todo[i] for i in batch]
                if store is not None:
                    store.write(batch_keys, {"response_ids": response})
                else:
                    found.update(zip(batch_keys, response))
    table = store.read(keys)["response_ids"] if store is not None else np.stack([found[k] for k in keys])
    return [[int(t) for t in row if t >= 0] for row in table]
