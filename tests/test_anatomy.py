"""Every family of the anatomy table (ifhelpers.model.anatomy) on a tiny random model saved as a researcher's
folder: eq. 1 holds at every layer, the prefix-reuse pass equals the plain pass, and the logit lens on h^L gives
the model's own logits; the general rule for families the table does not know (found, found wrongly, not
found); the refusals before any work (post-LN OPT, BART); and the model's context (GPT-2's learned positions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import (ANATOMY_FAMILIES, CHAPTER_5_FAMILIES, RULE_FAMILIES, RUN_FAMILIES, make_tiny_bpe_tokenizer,
                      make_tiny_family, save_tiny_family)
from ifhelpers import cli, results
from ifhelpers.model import anatomy, engine, generate, lens, models
from ifhelpers.model.tokens import encode

TEXTS = ["Everyone knows that Rome is located in Italy.", "Everyone knows that Rome is located in",
         "Everyone knows that Berlin was born in Germany, a city in Europe.", "The capital of France is Paris.",
         "The capital of France is", "Please finish the sentence. Answer: A", "Berlin"]
FULL = engine.Request(resid=True, updates=True, top_k=3, continuation=2)


def loaded(tmp_path, family: str, **kwargs):
    save_tiny_family(tmp_path / family, family, **kwargs)
    return models.load(str(tmp_path / family), role="base", device="cpu")


def own_logits(lm, text: str) -> torch.Tensor:
    """The next-token logits of one unbatched call of the model itself."""
    with torch.inference_mode():
        return lm.model(input_ids=torch.tensor([encode(lm.tokenizer, text)])).logits[0, -1].float()


def test_every_table_entry_has_a_tiny_model():
    built = {anatomy.meta_model(make_tiny_family(f).config).config.model_type for f in ANATOMY_FAMILIES}
    assert built == set(anatomy.TABLE)
    assert not {anatomy.meta_model(make_tiny_family(f).config).config.model_type for f in RULE_FAMILIES} & built
    # the families that run the chapters (tests/test_any_architecture.py) are those the book's appendix says do
    model_type = {f: anatomy.meta_model(make_tiny_family(f).config).config.model_type for f in RUN_FAMILIES}
    assert set(anatomy.TABLE) <= set(model_type.values())
    smoke_book = {"gemma3_text"}  # the smoke book's gemma-3-270m runs chapter 5 (tests/test_book.py)
    assert {model_type[f] for f in CHAPTER_5_FAMILIES} | smoke_book == {
        family for family, run in anatomy.CHAPTERS_RUN.items() if run == "1-6 through ifhelpers run"}
    assert {family for family, run in anatomy.CHAPTERS_RUN.items()
            if "through ifhelpers run" in run} - set(anatomy.ENCODER_DECODER) == set(anatomy.TABLE)


@pytest.mark.parametrize("family", ANATOMY_FAMILIES)
def test_eq1_prefix_reuse_and_lens_hold_for_each_family(tmp_path, family, monkeypatch):
    lm = loaded(tmp_path, family)
    assert lm.anatomy is anatomy.TABLE[lm.model.config.model_type] and not lm.anatomy.by_rule
    assert lm.n_layers == 3
    monkeypatch.setitem(engine.PREFIX_RULE, "min_segment", 1)
    monkeypatch.setitem(engine.PREFIX_RULE, "min_saving", 1)
    plain = engine.run(lm, TEXTS, FULL, cache=False, share_prefixes=False)
    shared = engine.run(lm, TEXTS, FULL, cache=False, share_prefixes=True, max_batch_size=3)
    resid, attn, mlp = plain["resid"], plain["attn_update"], plain["mlp_update"]
    assert resid.shape == (len(TEXTS), 4, 32) and attn.shape == mlp.shape == (len(TEXTS), 3, 32)
    # eq. 1 at every layer of every text, and no update is zero (a hook on the wrong module would show)
    np.testing.assert_allclose(resid[:, 1:], resid[:, :-1] + attn + mlp, rtol=0, atol=1e-4 * np.abs(resid).max())
    assert (np.abs(attn).max(axis=-1) > 0).all() and (np.abs(mlp).max(axis=-1) > 0).all()
    for name in ("resid", "attn_update", "mlp_update", "top_logprobs", "continuation_logprobs"):
        np.testing.assert_allclose(shared[name], plain[name], rtol=1e-5, atol=1e-5, err_msg=name)
    np.testing.assert_array_equal(shared["top_ids"], plain["top_ids"])
    own = torch.stack([own_logits(lm, text) for text in TEXTS])
    read = lens.unembed(lm, resid[:, -1])  # h^L through the final norm, the output embedding and its scaling
    torch.testing.assert_close(read, own, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(plain["top_logprobs"], torch.log_softmax(own, -1).topk(3).values.numpy(),
                               rtol=1e-5, atol=1e-5)


def test_general_rule_finds_and_proves_a_family_the_table_does_not_know(tmp_path):
    lm = loaded(tmp_path, "stablelm")
    assert lm.anatomy.by_rule and lm.anatomy.describe() == (
        "decoder layers model.layers, a^l from each layer's self_attn, f^l from its mlp, final norm model.norm")
    with pytest.warns(UserWarning, match="the general rule chose decoder layers model.layers.*hold on a probe batch"):
        out = engine.run(lm, TEXTS[:3], engine.Request(resid=True, updates=True, top_k=1), cache=False)
    assert lm.anatomy_proved
    engine.check_decomposition(out)


def test_general_rule_found_wrongly_is_refused_on_the_probe_batch(tmp_path):
    # Bloom's attention adds the residual inside itself: the rule's choice fails eq. 1 before any other pass
    lm = loaded(tmp_path, "bloom")
    with pytest.raises(anatomy.AnatomyError, match=r"the general rule chose decoder layers transformer\.h, a\^l from "
                                                    r"each layer's self_attention.*on a probe batch h\^\(l\+1\) != "):
        engine.run(lm, TEXTS[:2], engine.Request(top_k=1), cache=False)
    assert not lm.anatomy_proved


def test_parts_not_found_are_refused_before_any_work(tmp_path, capsys, monkeypatch):
    folder = save_tiny_family(tmp_path / "xglm", "xglm")
    expected = (f"{folder}: 'xglm' is not in the anatomy table (ifhelpers/model/anatomy.py) and the general rule "
                f"finds no MLP module in its XGLMDecoderLayer (children: self_attn, activation_fn, "
                f"self_attn_layer_norm, fc1, fc2, final_layer_norm); add the family to TABLE there.")
    with pytest.raises(anatomy.AnatomyError) as refused:
        anatomy.check_config(make_tiny_family("xglm").config, str(folder))
    assert str(refused.value) == expected
    tuned = save_tiny_family(tmp_path / "llama-it", "llama", tuned=True)  # a pair: the roles are right
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert cli.main(["run", "predictions", "--models", f"base={folder},ift={tuned}"]) == 2
    assert capsys.readouterr().err == f"ifhelpers: {expected}\n"
    assert not (tmp_path / "runs").exists()  # no kernel started


def test_an_update_read_without_the_final_norm_goes_through_opts_projection(tmp_path):
    """OPT's embeddings are narrower than its stream (project_out): §4's raw update is read through it."""
    lm = loaded(tmp_path, "opt")
    update = engine.run(lm, TEXTS[:2], engine.Request(updates=True), cache=False)["attn_update"][:, 1]
    assert update.shape[-1] == 32 and lm.model.get_output_embeddings().weight.shape[1] == 16
    with torch.inference_mode():
        expected = lm.model.get_output_embeddings()(lm.model.model.decoder.project_out(torch.tensor(update)))
    np.testing.assert_array_equal(lens.top_tokens(lm, update, k=1, apply_final_norm=False)[:, 0],
                                  expected.argmax(-1).numpy())


def test_post_ln_opt_is_refused_with_one_line():
    model = make_tiny_family("opt")
    model.config.do_layer_norm_before = False
    with pytest.raises(anatomy.AnatomyError) as refused:
        anatomy.check_config(model.config, "opt-350m")
    assert str(refused.value) == (
        "opt-350m: a 'opt' model the engine cannot read: it normalises the residual stream after each update "
        "(do_layer_norm_before=False, post-LN, as OPT-350m does), so h^(l+1) = h^l + a^l + f^l (paper eq. 1) does "
        "not hold; use an OPT model with do_layer_norm_before=True (every OPT size but 350m).")


def test_an_encoder_decoder_family_the_engine_does_not_read_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    import transformers as tf

    config = tf.BartConfig(vocab_size=40, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32)
    with pytest.raises(anatomy.AnatomyError) as refused:
        anatomy.check_config(config, "my-bart")
    assert str(refused.value) == (
        "my-bart is an encoder-decoder model (bart): the engine reads the encoder-decoder families t5 only. Use one "
        "of those, or a decoder model (e.g. llama, qwen2, gemma3_text, olmo2).")
    # the paper's T5 pair is read (tests/test_t5.py): without its weights here it stops at the weights, one line
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "predictions", "--models", "pair=paper-t5"]) == 2
    assert capsys.readouterr().err.startswith("ifhelpers: t5-xl-lm-adapt: google/t5-xl-lm-adapt is not in the "
                                              "Hugging Face cache and the Hub is off")
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------------------------ context


LONG = "Everyone knows that Berlin was born in Germany, a city in Europe. " * 3


def test_a_text_longer_than_learned_positions_keeps_its_last_tokens(tmp_path, monkeypatch):
    """GPT-2 has learned positions: a text longer than them ended in an IndexError (chapter 3, issue #33)."""
    lm = loaded(tmp_path, "gpt2", context=16)
    monkeypatch.setattr(engine, "CUT_TO_CONTEXT", {})
    ids = encode(lm.tokenizer, LONG)
    assert len(ids) > 16 and anatomy.context_length(lm.model) == 16
    with pytest.warns(UserWarning, match="1 texts are longer than .* context of 16 tokens: each is read from its "
                                         "last 16 tokens"):
        out = engine.run(lm, [LONG, "Berlin"], engine.Request(resid=True, updates=True, top_k=3), cache=False)
    with torch.inference_mode():
        last16 = lm.model(input_ids=torch.tensor([ids[-16:]]), output_hidden_states=True)
    np.testing.assert_allclose(out["resid"][0, :-1], torch.stack(last16.hidden_states[:-1])[:, 0, -1].numpy(),
                               rtol=1e-5, atol=1e-5)
    assert out["top_ids"][0, 0] == int(last16.logits[0, -1].argmax())
    assert engine.CUT_TO_CONTEXT == {lm.name: {engine.content_key(LONG)}}
    assert results.context_note() == f"texts longer than the model's context, read from their last tokens: {lm.name} 1"
    # a captured token among those cut is refused with one line, before any pass
    with pytest.raises(ValueError, match="token 2 of .* is not among the last 16 tokens that fit"):
        engine.run(lm, [LONG], engine.Request(resid=True), positions=[2], cache=False)
    # generation leaves room for its tokens, and the BECEL classifier reads what the engine reads
    assert len(generate.greedy_responses(lm, [LONG], max_new_tokens=3, cache=False)[0]) <= 3


@pytest.mark.parametrize("family", ["gpt2", "opt"])  # learned positions; OPT's h^L projected to 16 dimensions
def test_chapter_3_classifier_runs_on_texts_longer_than_the_context(tmp_path, monkeypatch, family):
    from ifhelpers.train import classifier

    lm = loaded(tmp_path, family, context=32)
    monkeypatch.setattr(engine, "CUT_TO_CONTEXT", {})
    data = classifier.task_data("rte", n_train=4, n_eval=4)
    for mode in ("probe", "lora"):
        config = classifier.FinetuneConfig(mode=mode, learning_rates=(1e-4,), max_epochs=1)
        result = classifier.finetune_task(lm, data, config, progress=False, checkpoint_root=tmp_path / mode)
        assert len(result.predictions) and result.predictions["pred_original"].between(0, 1).all()
    assert len(engine.CUT_TO_CONTEXT[lm.name]) > 0
