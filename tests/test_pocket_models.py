"""The engine on the two real embedded pocket models (GGUF from PyPI packages; about a minute each
the first time, while the GGUF is dequantised into the cache)."""

from __future__ import annotations

import numpy as np
import pytest

from ifhelpers.model import engine, lens, models, tokens

TEXTS = ["The capital of France is", "Water is made of hydrogen and",
         "Everyone knows that the Eiffel Tower is located in the city of"]


@pytest.fixture(scope="module", params=["gemma-3-270m", "smollm2-135m-instruct"])
def pocket(request):
    return models.load(request.param, device="cpu")


@pytest.mark.slow
def test_pocket_model_engine_agrees_with_single_runs_and_eq1(pocket):
    request = engine.Request(resid=True, updates=True, top_k=5)
    batched = engine.run(pocket, TEXTS, request, cache=False)
    singles = [engine.run(pocket, [t], request, cache=False) for t in TEXTS]
    np.testing.assert_array_equal(batched["top_ids"], np.concatenate([s["top_ids"] for s in singles]))
    for name in ("resid", "attn_update", "mlp_update"):
        single = np.concatenate([s[name] for s in singles])
        scale = np.abs(single).max(axis=-1, keepdims=True) + 1.0  # massive activations: compare relative
        assert (np.abs(batched[name] - single) / scale).max() < 1e-5, name
    # eq. 1 with Gemma's post-norms and Llama's plain residual adds (checked in run() too)
    engine.check_decomposition(batched)
    # the logit lens of the last residual state reproduces the model's own top-1 prediction
    lens_top = lens.top_tokens(pocket, batched["resid"][:, -1], k=1)[:, 0]
    np.testing.assert_array_equal(lens_top, batched["top_ids"][:, 0])


@pytest.mark.slow
def test_pocket_model_knows_a_fact(pocket):
    prompt = "The capital of France is"
    out = engine.run(pocket, [prompt], engine.Request(top_k=10), cache=False)
    paris = tokens.first_continuation_id(pocket.tokenizer, prompt, " Paris")
    assert paris in out["top_ids"][0]
