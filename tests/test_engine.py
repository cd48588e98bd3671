"""The forward-pass engine on a tiny random-weight Llama built in the test (no download)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ifhelpers.model import engine

TEXTS = [
    "the capital of france is",
    "paris",
    "everyone known that the capital of italy is rome , a city in europe",
    "berlin was born located in germany",
]
FULL = engine.Request(resid=True, updates=True, top_k=5, candidates=(4, 9, 10))


def test_padded_batch_equals_single_runs(tiny_lm):
    batched = engine.run(tiny_lm, TEXTS, FULL, cache=False)
    singles = [engine.run(tiny_lm, [t], FULL, cache=False) for t in TEXTS]
    for name, values in batched.items():
        single = np.concatenate([s[name] for s in singles])
        if name == "top_ids":
            np.testing.assert_array_equal(values, single)
        else:
            np.testing.assert_allclose(values, single, atol=1e-5, rtol=0, err_msg=name)


def test_outputs_match_a_plain_transformers_forward(tiny_lm):
    out = engine.run(tiny_lm, TEXTS[:1], FULL, cache=False)
    ids = tiny_lm.tokenizer(TEXTS[0], return_tensors="pt")
    with torch.no_grad():
        ref = tiny_lm.model(**ids, output_hidden_states=True)
    logprobs = torch.log_softmax(ref.logits[0, -1], -1).numpy()
    np.testing.assert_allclose(out["candidate_logprobs"][0], logprobs[[4, 9, 10]], atol=1e-5)
    np.testing.assert_array_equal(out["top_ids"][0], np.argsort(-logprobs)[:5])
    # hidden_states[l] for l < L is the residual stream before layer l (the last one is normed).
    for layer in range(tiny_lm.n_layers):
        np.testing.assert_allclose(out["resid"][0, layer], ref.hidden_states[layer][0, -1].numpy(), atol=1e-5)


def test_residual_decomposition_eq1(tiny_lm):
    """Paper eq. 1: h^{l+1} = h^l + a^l + f^l at the captured position."""
    out = engine.run(tiny_lm, TEXTS, engine.Request(resid=True, updates=True), cache=False)
    assert out["resid"].shape == (4, tiny_lm.n_layers + 1, 32)
    assert out["attn_update"].shape == out["mlp_update"].shape == (4, tiny_lm.n_layers, 32)
    np.testing.assert_allclose(out["resid"][:, 1:], out["resid"][:, :-1] + out["attn_update"] + out["mlp_update"],
                               atol=1e-5)


def test_captured_position(tiny_lm):
    """A given token position (e.g. the last subject token) equals the last token of the truncated text."""
    text, prefix = "the capital of france is paris", "the capital of france"
    at_subject = engine.run(tiny_lm, [text], engine.Request(resid=True), positions=[4], cache=False)
    truncated = engine.run(tiny_lm, [prefix], engine.Request(resid=True), cache=False)
    np.testing.assert_allclose(at_subject["resid"], truncated["resid"], atol=1e-5)
    with pytest.raises(IndexError, match="outside"):
        engine.run(tiny_lm, [prefix], engine.Request(resid=True), positions=[50], cache=False)


def test_cache_hit_runs_no_forward_pass(tiny_lm, tmp_path, monkeypatch):
    first = engine.run(tiny_lm, TEXTS, FULL, cache=tmp_path)
    calls = []
    monkeypatch.setattr(engine, "_forward_batch", lambda *a, **k: calls.append(a) or {})
    second = engine.run(tiny_lm, list(reversed(TEXTS)), FULL, cache=tmp_path)
    assert calls == []
    for name in first:
        np.testing.assert_array_equal(first[name][::-1], second[name])


LAST = engine.Request(resid=True, top_k=5, resid_layers="last")


def test_last_layer_request_keeps_h_L_only(tiny_lm):
    every = engine.run(tiny_lm, TEXTS, engine.Request(resid=True, top_k=5), cache=False)
    last = engine.run(tiny_lm, TEXTS, LAST, cache=False)
    assert last["resid"].shape == (4, 1, 32)
    np.testing.assert_array_equal(last["resid"][:, 0], every["resid"][:, -1])
    np.testing.assert_array_equal(last["top_ids"], every["top_ids"])


def test_a_fuller_cached_pass_serves_a_last_layer_request(tiny_lm, tmp_path, monkeypatch):
    """h^L is read from the all-layer pass of the same texts; only the texts it lacks are run, and stored
    under the last-layer request (one copy of each state on disk)."""
    every = engine.run(tiny_lm, TEXTS[:3], engine.Request(resid=True, top_k=5), cache=tmp_path)
    real, run_texts = engine._forward_batch, []

    def count(lm, recorder, ids, positions, *args):
        run_texts.append(len(ids))
        return real(lm, recorder, ids, positions, *args)

    monkeypatch.setattr(engine, "_forward_batch", count)
    texts = [TEXTS[3], TEXTS[0], TEXTS[3], TEXTS[2]]
    last = engine.run(tiny_lm, texts, LAST, cache=tmp_path)
    assert sum(run_texts) == 1
    assert last["resid"].shape == (4, 1, 32)
    for row, text in enumerate(texts):
        if text in TEXTS[:3]:
            np.testing.assert_array_equal(last["resid"][row, 0], every["resid"][TEXTS.index(text), -1])
    alone = engine.run(tiny_lm, [TEXTS[3]], LAST, cache=False)
    np.testing.assert_allclose(last["resid"][[0, 2]], np.repeat(alone["resid"], 2, axis=0), atol=1e-6)
    stored = engine.store_for(tiny_lm.fingerprint, LAST.key(), tmp_path)
    assert len(stored) == 1
    run_texts.clear()
    again = engine.run(tiny_lm, texts, LAST, cache=tmp_path)
    assert run_texts == []
    for name in last:
        np.testing.assert_array_equal(again[name], last[name])


def test_bfloat16_bits_round_to_nearest_and_back_exactly():
    values = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-10, -3.140625, 46422.0, 1e-30, 0.0],
                      dtype=np.float32)
    bits = engine.bfloat16_bits(values)
    assert bits.dtype == np.uint16 and bits.shape == values.shape
    # near 1 bfloat16's step is 2^-7: 1 + 2^-8 and 1 + 3 * 2^-8 are ties and go to the even neighbour
    # (1 and 1 + 2^-6), 1 + 2^-8 + 2^-10 is nearer 1 + 2^-7
    np.testing.assert_array_equal(engine.from_bfloat16_bits(bits)[:5], [1.0, 1.0, 1 + 2**-6, 1 + 2**-7, -3.140625])
    np.testing.assert_array_equal(bits[[0, 4]], [0x3F80, 0xC049])
    np.testing.assert_allclose(engine.from_bfloat16_bits(bits), values, rtol=2**-8, atol=0)
    np.testing.assert_array_equal(engine.bfloat16_bits(engine.from_bfloat16_bits(bits)), bits)


BF16 = engine.Request(resid=True, top_k=5, states_dtype="bfloat16")


def test_bfloat16_states_are_the_float32_states_rounded(tiny_lm, tmp_path):
    """The states are rounded, nothing else: predictions are the float32 pass's, bit for bit; the cache
    keeps half the bytes and returns what a run without the cache returns."""
    exact = engine.run(tiny_lm, TEXTS, engine.Request(resid=True, top_k=5), cache=False)
    rounded = engine.run(tiny_lm, TEXTS, BF16, cache=False)
    assert rounded["resid"].dtype == np.float32
    np.testing.assert_array_equal(rounded["resid"], engine.from_bfloat16_bits(engine.bfloat16_bits(exact["resid"])))
    for name in ("top_ids", "top_logprobs"):
        np.testing.assert_array_equal(rounded[name], exact[name])
    cached = engine.run(tiny_lm, TEXTS, BF16, cache=tmp_path)
    for name in rounded:
        np.testing.assert_array_equal(cached[name], rounded[name])
    (part,) = engine.store_for(tiny_lm.fingerprint, BF16.key(), tmp_path).folder.glob("part-*.npz")
    with np.load(part) as data:
        assert data["resid"].dtype == np.uint16


def test_a_float32_cached_pass_serves_a_bfloat16_request(tiny_lm, tmp_path, monkeypatch):
    """Followed in turn, the fuller requests of a last-layer bfloat16 request reach an all-layer float32 pass."""
    exact = engine.run(tiny_lm, TEXTS[:2], engine.Request(resid=True, top_k=5), cache=tmp_path)
    rounded = engine.run(tiny_lm, TEXTS[2:3], BF16, cache=tmp_path)
    last_bf16 = engine.Request(resid=True, top_k=5, resid_layers="last", states_dtype="bfloat16")
    assert last_bf16.fuller() == BF16 and BF16.fuller() == engine.Request(resid=True, top_k=5)
    real, run_texts = engine._forward_batch, []
    monkeypatch.setattr(engine, "_forward_batch",
                        lambda lm, rec, ids, *a: run_texts.append(len(ids)) or real(lm, rec, ids, *a))
    served = engine.run(tiny_lm, TEXTS, last_bf16, cache=tmp_path)
    assert sum(run_texts) == 1  # TEXTS[3] only
    np.testing.assert_array_equal(served["resid"][:2, 0],
                                  engine.from_bfloat16_bits(engine.bfloat16_bits(exact["resid"][:, -1])))
    np.testing.assert_array_equal(served["resid"][2, 0], rounded["resid"][0, -1])
    np.testing.assert_array_equal(served["top_ids"][:2], exact["top_ids"])
    alone = engine.run(tiny_lm, TEXTS[3:], last_bf16, cache=False)
    np.testing.assert_allclose(served["resid"][3:], alone["resid"], rtol=2**-8)
    np.testing.assert_array_equal(served["top_ids"][3:], alone["top_ids"])


def test_interrupted_run_resumes(tiny_lm, tmp_path, monkeypatch):
    real = engine._forward_batch
    done = []

    def crash_on_second_batch(*args, **kwargs):
        if len(done) == 1:
            raise KeyboardInterrupt
        done.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "_forward_batch", crash_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        engine.run(tiny_lm, TEXTS, FULL, cache=tmp_path, max_batch_size=1)
    monkeypatch.setattr(engine, "_forward_batch", real)

    seen = []

    def count(lm, recorder, ids, positions, *args):
        seen.append(len(ids))
        return real(lm, recorder, ids, positions, *args)

    monkeypatch.setattr(engine, "_forward_batch", count)
    resumed = engine.run(tiny_lm, TEXTS, FULL, cache=tmp_path, max_batch_size=1)
    assert sum(seen) == len(TEXTS) - 1  # the batch saved before the interruption is not recomputed
    fresh = engine.run(tiny_lm, TEXTS, FULL, cache=False)
    for name in fresh:
        np.testing.assert_allclose(resumed[name], fresh[name], atol=1e-6)


def test_cache_separates_models_and_requests(tiny_lm, tmp_path):
    from conftest import make_tiny_llama, make_tiny_tokenizer
    from ifhelpers.model.models import wrap

    other = wrap(make_tiny_llama(seed=1), make_tiny_tokenizer(), "tiny-llama")
    a = engine.run(tiny_lm, TEXTS, engine.Request(top_k=3), cache=tmp_path)
    b = engine.run(other, TEXTS, engine.Request(top_k=3), cache=tmp_path)
    assert not np.allclose(a["top_logprobs"], b["top_logprobs"])
    c = engine.run(tiny_lm, TEXTS, engine.Request(top_k=2), cache=tmp_path)
    assert c["top_ids"].shape == (4, 2)


def test_bad_input_is_explained(tiny_lm):
    with pytest.raises(ValueError, match="No texts"):
        engine.run(tiny_lm, [], FULL, cache=False)
    with pytest.raises(TypeError, match="list of strings"):
        engine.run(tiny_lm, "the capital", FULL, cache=False)
    with pytest.raises(ValueError, match="collects nothing"):
        engine.Request()
    with pytest.raises(ValueError, match="'all'"):
        engine.Request(resid=True, resid_layers="first")
    with pytest.raises(ValueError, match="eq. 1"):
        engine.Request(resid=True, updates=True, resid_layers="last")
    with pytest.raises(ValueError, match="needs resid=True"):
        engine.Request(top_k=3, resid_layers="last")
    with pytest.raises(ValueError, match="states_dtype='float16'"):
        engine.Request(resid=True, states_dtype="float16")


def test_plan_batches_sorts_and_respects_budget():
    lengths = [3, 10, 4, 9, 2]
    batches = engine.plan_batches(lengths, max_batch_tokens=20, max_batch_size=8)
    assert sorted(i for b in batches for i in b) == list(range(5))
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 20 or len(batch) == 1
    assert batches[0][0] == 1  # longest first


def test_plan_batches_finds_the_cheapest_cut():
    # Sorted: 10, 9, 4, 3, 2 (indices 1, 3, 2, 0, 4); budget 20 padded tokens. Costs by hand with a pass
    # costing 4: [10 9][4 3 2] = (4 + 20) + (4 + 12) = 40; [10][9][4 3 2] = 43; [10 9][4 3][2] = 42.
    lengths = [3, 10, 4, 9, 2]
    assert engine.plan_batches(lengths, 20, 8, pass_cost=4) == [[1, 3], [2, 0, 4]]
    assert engine.plan_batches(lengths, 20, 8, pass_cost=0) == [[1], [3], [2], [0], [4]]  # padding only
    # At most 2 rows, lengths 10, 9, 5, 3, 2: [10 9][5][3 2] = 24 + 9 + 10 = 43 beats [10 9][5 3][2] = 44.
    assert engine.plan_batches([3, 10, 5, 9, 2], 20, 2, pass_cost=4) == [[1, 3], [2], [0, 4]]
    # One long text and three short ones: together 32 padded tokens, apart 8 + 6 and a pass more.
    assert engine.plan_batches([8, 2, 2, 2], 100, 8, pass_cost=4) == [[0], [1, 2, 3]]  # 36 vs 22
    assert engine.plan_batches([8, 2, 2, 2], 100, 8, pass_cost=20) == [[0, 1, 2, 3]]  # 52 vs 54
    assert engine.plan_batches([30, 2], 20, 8) == [[0], [1]]  # a text over the budget runs alone


def test_wrong_update_modules_fail_loudly():
    out = {"resid": np.zeros((1, 3, 2)), "attn_update": np.ones((1, 2, 2)), "mlp_update": np.zeros((1, 2, 2))}
    with pytest.raises(RuntimeError, match="wrong attention/MLP modules"):
        engine.check_decomposition(out)
