"""The logit lens (ifhelpers.model.lens) on a tiny random-weight Llama with planted directions.

Paper §4 reads hidden states and MHSA/MLP updates through ``E · norm(v)``. If a vector *is* a
(scaled) row of the output embedding, the lens must return that row's token, for untied (LLaMA)
and tied (Gemma, SmolLM2) embeddings alike; and a direction planted in a layer's update must come
out of the engine's ``attn_update``/``mlp_update`` and be found there.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_tiny_llama, make_tiny_tokenizer
from ifhelpers.model import engine, lens
from ifhelpers import metrics
from ifhelpers.model.models import wrap

PLANTED = 17  # a token id of the tiny vocabulary ("is" is 8; any id works)


def _lm(tie: bool):
    model = make_tiny_llama(tie=tie, seed=1)
    with torch.no_grad():
        # Make the planted row the longest one, so E·(c E_t) peaks at t by Cauchy-Schwarz:
        # E_v·E_t <= |E_v||E_t| < |E_t|^2 for every other v.
        head = model.get_output_embeddings().weight
        head[PLANTED] *= 4.0
    return wrap(model, make_tiny_tokenizer(), f"tiny-llama-{'tied' if tie else 'untied'}")


@pytest.mark.parametrize("tie", [False, True])
def test_tied_or_untied_is_what_the_lens_reads(tie):
    lm = _lm(tie)
    head = lm.model.get_output_embeddings().weight
    embed = lm.model.get_input_embeddings().weight
    assert (head.data_ptr() == embed.data_ptr()) is tie


@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("apply_final_norm", [False, True])
def test_planted_hidden_vector_is_found(tie, apply_final_norm):
    lm = _lm(tie)
    row = lm.model.get_output_embeddings().weight[PLANTED].detach().numpy()
    vectors = np.stack([row, 3.0 * row, 0.01 * row])  # the scale must not matter
    top = lens.top_tokens(lm, vectors, k=1, apply_final_norm=apply_final_norm)
    assert top.shape == (3, 1)
    assert (top[:, 0] == PLANTED).all()
    # batch shapes are kept: (n, L, d) -> (n, L, k)
    assert lens.top_tokens(lm, vectors.reshape(1, 3, -1), k=2).shape == (1, 3, 2)
    assert lens.decode_tokens(lm, top)[0, 0] == lm.tokenizer.decode([PLANTED])


@pytest.mark.parametrize("tie", [False, True])
def test_planted_update_is_found_and_extracted(tie):
    """Plant c·E_t in the MLP update of the last layer: the lens finds t in ``mlp_update`` there,
    the model predicts t, and the extraction rate (eq. 1) of that layer is 1."""
    lm = _lm(tie)
    direction = lm.model.get_output_embeddings().weight[PLANTED].detach().clone()
    last = lm.anatomy.decoder_layers(lm.model)[-1]

    def plant(module, args, output):
        return output + 100.0 * direction

    handle = last.mlp.register_forward_hook(plant)
    try:
        out = engine.run(lm, ["the capital of france is", "berlin was born in"],
                         engine.Request(resid=True, updates=True, top_k=1), cache=False)
    finally:
        handle.remove()
    top = lens.top_tokens(lm, out["mlp_update"], k=1)[..., 0]  # (n, L)
    assert (top[:, -1] == PLANTED).all()
    assert (out["top_ids"][:, 0] == PLANTED).all()
    rate = metrics.extraction.extraction_rate(top, out["top_ids"][:, 0])
    assert rate[-1] == 1.0
    # the final state read through the lens gives the model's own prediction
    assert (lens.top_tokens(lm, out["resid"][:, -1], k=1)[:, 0] == out["top_ids"][:, 0]).all()


@pytest.mark.parametrize("tie", [False, True])
def test_lens_on_final_state_equals_the_model_logits(tie):
    lm = _lm(tie)
    out = engine.run(lm, ["the capital of italy is rome", "everyone known that"],
                     engine.Request(resid=True, top_k=5), cache=False)
    np.testing.assert_array_equal(lens.top_tokens(lm, out["resid"][:, -1], k=5), out["top_ids"])
