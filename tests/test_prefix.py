"""Shared-prefix reuse: the plan (pure) and the engine's results with and without it, on tiny random
models of each decoder family the book meets (Llama, Gemma 3 with sliding-window layers, Qwen2, OLMo 2)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_tiny_llama, make_tiny_tokenizer
from ifhelpers.model import anatomy, engine, prefix
from ifhelpers.model.models import wrap
from ifhelpers.model.tokens import encode

# ------------------------------------------------------------------------------------------------
# The plan


def test_plan_shares_a_branching_prefix_once():
    ids = [[1, 5, 6, 7, 8, 9], [1, 5, 6, 7, 8, 10, 11], [1, 5, 6, 2], [3, 4]]
    shared = prefix.plan(ids, [len(s) - 1 for s in ids], min_segment=2, min_saving=2)
    # [1 5 6] is shared by three texts; [7 8] below it by two: (2 - 1) * 2 >= 2.
    assert shared.nodes == (prefix.Node(-1, 2, 0, 3), prefix.Node(0, 0, 3, 5))  # text: whose tokens it is
    assert shared.leaf_parent == (1, 1, 0, -1)
    assert shared.leaf_start == (5, 5, 3, 0)
    assert shared.tokens_computed([len(s) for s in ids]) == 3 + 2 + 1 + 2 + 1 + 2
    assert shared.depth() == 2


def test_plan_keeps_the_captured_token_in_the_suffix():
    ids = [[1, 5, 6, 7, 8, 9], [1, 5, 6, 7, 8, 10]]
    shared = prefix.plan(ids, [5, 2], min_segment=1, min_saving=1)
    # text 1 captures token 2, so no ancestor of it may end after token 2
    assert shared.leaf_start[1] <= 2
    assert all(node.end <= 5 for node in shared.nodes)
    for seq, start, pos in zip(ids, shared.leaf_start, [5, 2]):
        assert start <= pos < len(seq)


def test_plan_without_sharing_and_thresholds():
    ids = [[1, 2, 3], [4, 5, 6]]
    assert prefix.plan(ids, [2, 2]).nodes == ()
    # a shared segment too short or saving too little is not worth a pass
    ids = [[1, 2, 3, 4], [1, 2, 3, 5]]
    assert prefix.plan(ids, [3, 3], min_segment=4, min_saving=1).nodes == ()
    assert prefix.plan(ids, [3, 3], min_segment=1, min_saving=4).nodes == ()
    assert prefix.plan(ids, [3, 3], min_segment=1, min_saving=3).nodes == (prefix.Node(-1, 0, 0, 3),)
    with pytest.raises(IndexError):
        prefix.plan([[1, 2]], [2])


# ------------------------------------------------------------------------------------------------
# The engine, on each family


def tiny_model(family: str, sliding_window: int | None = None):
    import torch
    import transformers as tf

    torch.manual_seed(0)
    common = dict(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    if family == "llama":
        return make_tiny_llama(n_layers=4)
    if family == "gemma3":
        config = tf.Gemma3TextConfig(**common, head_dim=8, sliding_window=sliding_window or 512,
                                     layer_types=["sliding_attention", "sliding_attention", "full_attention",
                                                  "sliding_attention"])
        return tf.Gemma3ForCausalLM(config).float()
    if family == "qwen2":
        return tf.Qwen2ForCausalLM(tf.Qwen2Config(**common)).float()
    if family == "olmo2":
        return tf.Olmo2ForCausalLM(tf.Olmo2Config(**common)).float()
    raise ValueError(family)


STEM = "everyone known that the capital of italy is"
TEXTS = [STEM + tail for tail in (" rome", " rome , a city in europe", " paris", " berlin was born", "")] + [
    "the capital of france is", "paris", "the capital of france is paris", "it widely known that berlin",
    "it widely known that berlin was born in germany", "it widely known that rome is a city"]
FULL = engine.Request(resid=True, updates=True, top_k=5, candidates=(4, 9, 10))


def assert_same(shared: dict, plain: dict, rtol: float = 1e-5):
    assert shared.keys() == plain.keys()
    np.testing.assert_array_equal(shared["top_ids"], plain["top_ids"])
    for name in plain:
        scale = np.abs(plain[name]).max()
        assert np.abs(shared[name] - plain[name]).max() <= rtol * scale, name


@pytest.mark.parametrize("family,window", [("llama", None), ("gemma3", None), ("gemma3", 3), ("qwen2", None),
                                           ("olmo2", None)])
def test_shared_prefixes_equal_the_plain_pass(family, window, monkeypatch):
    lm = wrap(tiny_model(family, window), make_tiny_tokenizer(), f"tiny-{family}")
    monkeypatch.setitem(engine.PREFIX_RULE, "min_segment", 1)
    monkeypatch.setitem(engine.PREFIX_RULE, "min_saving", 1)
    ids = [encode(lm.tokenizer, t) for t in TEXTS]
    shared_plan = prefix.plan(ids, [len(s) - 1 for s in ids], **engine.PREFIX_RULE)
    assert shared_plan.depth() >= 2  # the case exercises prefixes on prefixes
    if window:  # a window narrower than the rows: continuations of a prefix batch by length
        assert anatomy.narrowest_window(lm.model) == window < max(map(len, ids))
    plain = engine.run(lm, TEXTS, FULL, cache=False, share_prefixes=False)
    assert_same(engine.run(lm, TEXTS, FULL, cache=False, share_prefixes=True), plain)
    # small batches: several prefix batches, continuations split across batches
    assert_same(engine.run(lm, TEXTS, FULL, cache=False, share_prefixes=True, max_batch_size=1,
                           max_batch_tokens=8), plain)


def test_captured_position_inside_a_shared_prefix(tiny_lm, monkeypatch):
    monkeypatch.setitem(engine.PREFIX_RULE, "min_segment", 1)
    monkeypatch.setitem(engine.PREFIX_RULE, "min_saving", 1)
    positions = [2, -1, 3, -2, 1] + [-1] * (len(TEXTS) - 5)
    request = engine.Request(resid=True, updates=True)
    plain = engine.run(tiny_lm, TEXTS, request, positions, cache=False, share_prefixes=False)
    shared = engine.run(tiny_lm, TEXTS, request, positions, cache=False, share_prefixes=True)
    for name in plain:
        np.testing.assert_allclose(shared[name], plain[name], rtol=1e-5, atol=1e-6)


def test_cached_results_do_not_depend_on_sharing(tiny_lm, tmp_path, monkeypatch):
    shared = engine.run(tiny_lm, TEXTS, FULL, cache=tmp_path, share_prefixes=True)
    calls = []
    monkeypatch.setattr(engine, "_forward_batch", lambda *a, **k: calls.append(a) or {})
    again = engine.run(tiny_lm, TEXTS, FULL, cache=tmp_path, share_prefixes=False)
    assert calls == []
    for name in shared:
        np.testing.assert_array_equal(shared[name], again[name])


def test_sharing_can_be_switched_off(tiny_lm, monkeypatch):
    monkeypatch.setitem(engine.PREFIX_RULE, "min_segment", 1)
    monkeypatch.setitem(engine.PREFIX_RULE, "min_saving", 1)
    seen = []
    real = engine._forward_batch

    def spy(lm, recorder, ids, positions, context=None, parents=None):
        seen.append(context is not None)
        return real(lm, recorder, ids, positions, context, parents)

    monkeypatch.setattr(engine, "_forward_batch", spy)
    engine.run(tiny_lm, TEXTS, FULL, cache=False)
    assert any(seen)
    seen.clear()
    monkeypatch.setenv("IFHELPERS_SHARE_PREFIXES", "0")
    engine.run(tiny_lm, TEXTS, FULL, cache=False)
    assert seen and not any(seen)


# ------------------------------------------------------------------------------------------------
# The log-likelihood of a text's own continuation (chapter 6's POSIX)


def full_logprobs(lm, text):
    """log P of every next token of ``text``, from one unbatched call of the model itself."""
    import torch

    ids = torch.tensor([encode(lm.tokenizer, text)])
    with torch.inference_mode():
        logits = lm.model(input_ids=ids).logits[0].float()
    return torch.log_softmax(logits, -1)[:-1].gather(1, ids[0, 1:, None])[:, 0].numpy()


@pytest.mark.parametrize("family,window", [("llama", None), ("gemma3", 3), ("qwen2", None), ("olmo2", None)])
@pytest.mark.parametrize("share", [False, True])
def test_continuation_logprobs_are_the_models_own(family, window, share, monkeypatch):
    model = tiny_model(family, window)
    if family == "gemma3":  # exercise the final logit soft-capping of Gemma 2-style configs
        model.config.final_logit_softcapping = 3.0
    lm = wrap(model, make_tiny_tokenizer(), f"tiny-{family}")
    monkeypatch.setitem(engine.PREFIX_RULE, "min_segment", 1)
    monkeypatch.setitem(engine.PREFIX_RULE, "min_saving", 1)
    texts = [t for t in TEXTS if len(encode(lm.tokenizer, t)) >= 4]
    positions = [2, -3, 1, -2] + [-4] * (len(texts) - 4)
    request = engine.Request(continuation=3, top_k=2)
    out = engine.run(lm, texts, request, positions, cache=False, share_prefixes=share, max_batch_size=3)
    for row, (text, p) in enumerate(zip(texts, positions)):
        expected = full_logprobs(lm, text)
        start = p % len(encode(lm.tokenizer, text))
        want = np.full(3, np.nan)
        take = expected[start:start + 3]
        want[:len(take)] = take
        np.testing.assert_allclose(out["continuation_logprobs"][row], want, rtol=1e-5, atol=1e-5)
    # the next-token outputs of the same pass are those of a request without the continuation
    plain = engine.run(lm, texts, engine.Request(top_k=2), cache=False, share_prefixes=False)
    np.testing.assert_array_equal(out["top_ids"], plain["top_ids"])
    np.testing.assert_allclose(out["top_logprobs"], plain["top_logprobs"], rtol=1e-5, atol=1e-5)


def test_earlier_request_keys_do_not_change():
    # the cache of every chapter is keyed by the request: a new field must not move the old keys
    assert engine.Request(candidates=(4, 9)).key() == engine.content_key(
        "request-v1", {"resid": False, "updates": False, "top_k": 0, "candidates": (4, 9), "next_token_logits": False})
    assert engine.Request(continuation=2).key() != engine.Request(continuation=3).key()
    assert engine.Request(resid=True, top_k=10).key() == engine.content_key(
        "request-v1", {"resid": True, "updates": False, "top_k": 10, "candidates": (), "next_token_logits": False})
    assert engine.Request(resid=True, resid_layers="last").key() != engine.Request(resid=True).key()
    assert engine.Request(resid=True, states_dtype="bfloat16").key() != engine.Request(resid=True).key()
