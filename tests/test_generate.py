"""Greedy responses (chapter 6): the model's own greedy continuation, batched, stopped and cached."""

from __future__ import annotations

import numpy as np
import pytest

from ifhelpers.model import engine, generate
from ifhelpers.model.tokens import encode

TEXTS = ["the capital of france is", "everyone known that the capital of italy is", "it widely known that berlin",
         "paris"]


def greedy_by_hand(lm, text, n):
    """One token at a time, unbatched: the argmax of the model's own logits, stopping at a stop id."""
    import torch

    ids = encode(lm.tokenizer, text)
    out = []
    for _ in range(n):
        with torch.inference_mode():
            logits = lm.model(input_ids=torch.tensor([ids])).logits[0, -1]
        token = int(logits.argmax())
        if token in generate.stop_ids(lm):
            break
        out.append(token)
        ids.append(token)
    return out


def test_greedy_responses_equal_a_token_by_token_loop(tiny_lm, tmp_path, monkeypatch):
    expected = [greedy_by_hand(tiny_lm, t, 4) for t in TEXTS]
    assert generate.greedy_responses(tiny_lm, TEXTS, 4, cache=False, max_batch_size=2) == expected
    assert generate.greedy_responses(tiny_lm, TEXTS, 4, cache=tmp_path) == expected
    # a second call reads the cache and generates nothing
    monkeypatch.setattr(tiny_lm.model, "generate", lambda *a, **k: pytest.fail("generated again"))
    assert generate.greedy_responses(tiny_lm, TEXTS[::-1], 4, cache=tmp_path) == expected[::-1]


def test_a_response_stops_at_the_end_of_sequence_token(tiny_lm):
    import torch

    with torch.no_grad():  # make <eos> (id 2) the likeliest next token everywhere
        tiny_lm.model.lm_head.bias = torch.nn.Parameter(torch.zeros(tiny_lm.model.config.vocab_size))
        tiny_lm.model.lm_head.bias[2] = 1e4
    assert generate.stop_ids(tiny_lm) == [2]
    assert generate.greedy_responses(tiny_lm, TEXTS, 3, cache=False) == [[]] * len(TEXTS)


def test_bad_input_is_refused(tiny_lm):
    with pytest.raises(TypeError):
        generate.greedy_responses(tiny_lm, "one string", 2, cache=False)
    with pytest.raises(ValueError):
        generate.greedy_responses(tiny_lm, TEXTS, 0, cache=False)
