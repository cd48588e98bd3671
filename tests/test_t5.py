"""The encoder-decoder path on a tiny random T5 pair saved as a researcher's folders (issue #33): §2's
representation is the encoder's output at the last input token, predictions the decoder's first step, no prefix
is shared, chapters 1 and 2 run in process, and chapters 4 and 5 (decoder-only in the paper) are refused with one
line before any work."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import make_tiny_bpe_tokenizer, run_chapter, save_tiny_t5
from ifhelpers import cli
from ifhelpers.model import anatomy, engine, models, tokens
from ifhelpers.model.tokens import encode

TEXTS = ["Everyone knows that Rome is located in Italy.", "Everyone knows that Rome is located in",
         "The capital of France is Paris.", "The capital of France is", "Berlin"]


@pytest.fixture
def t5_pair(tmp_path):
    """(base folder, tuned folder) of two tiny random T5 models."""
    return (str(save_tiny_t5(tmp_path / "t5-base", seed=0)), str(save_tiny_t5(tmp_path / "t5-it", tuned=True, seed=1)))


def test_representation_is_the_encoder_output_and_predictions_the_first_decoder_step(t5_pair):
    lm = models.load(t5_pair[0], role="base", device="cpu")
    assert lm.anatomy is anatomy.ENCODER_DECODER["t5"] and lm.n_layers == 2
    out = engine.run(lm, TEXTS, engine.Request(resid=True, top_k=3, candidates=(5, 7), next_token_logits=True),
                     cache=False)
    assert out["resid"].shape == (len(TEXTS), 3, 16)
    for row, text in enumerate(TEXTS):  # each text alone, no padding, as transformers computes it
        ids = torch.tensor([encode(lm.tokenizer, text)])
        assert ids[0, -1] == lm.tokenizer.eos_token_id  # the tokenizer closes every input, as T5's does
        with torch.inference_mode():
            encoder = lm.model.encoder(input_ids=ids, output_hidden_states=True)
            first = lm.model(input_ids=ids, decoder_input_ids=torch.tensor([[0]])).logits[0, 0]
        # h^0 ... h^(L-1) are the encoder's states before each block; h^L through the final norm is its output
        np.testing.assert_allclose(out["resid"][row, :-1], torch.stack(encoder.hidden_states[:-1])[:, 0, -1].numpy(),
                                   rtol=1e-5, atol=1e-5)
        with torch.inference_mode():
            normed = lm.anatomy.apply_final_norm(lm.model, torch.as_tensor(out["resid"][row, -1]))
        torch.testing.assert_close(normed, encoder.last_hidden_state[0, -1], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out["next_token_logits"][row], first.numpy(), rtol=1e-5, atol=1e-5)
        logprobs = torch.log_softmax(first, -1)
        assert out["top_ids"][row].tolist() == logprobs.topk(3).indices.tolist()
        np.testing.assert_allclose(out["candidate_logprobs"][row], logprobs[[5, 7]].numpy(), rtol=1e-5, atol=1e-5)
    # h^L alone (the sentence embeddings' and BECEL's request) is the same state
    last = engine.run(lm, TEXTS, engine.Request(resid=True, resid_layers="last"), cache=False)
    np.testing.assert_allclose(last["resid"][:, 0], out["resid"][:, -1], rtol=1e-5, atol=1e-5)


def test_the_decoder_state_variant_reads_the_decoders_first_step(t5_pair):
    """The other reading of §2's "outermost representation of the last token" (anatomy.DECODER_STATE): the
    decoder's residual stream at its first step; its final-normed h^L is the state its output embedding reads.
    Predictions are the same first step's; the variant is cached apart from the encoder's reading."""
    encoder_lm = models.load(t5_pair[0], role="base", device="cpu")
    lm = models.load(t5_pair[0], role="base", device="cpu", encoder_decoder_state="decoder")
    assert lm.anatomy is anatomy.DECODER_STATE["t5"] and lm.n_layers == 2
    assert lm.fingerprint == encoder_lm.fingerprint + "|decoder-state"
    request = engine.Request(resid=True, top_k=3)
    out = engine.run(lm, TEXTS, request, cache=False)
    for row, text in enumerate(TEXTS):
        ids = torch.tensor([encode(lm.tokenizer, text)])
        with torch.inference_mode():
            full = lm.model(input_ids=ids, decoder_input_ids=torch.tensor([[0]]), output_hidden_states=True)
            normed = lm.anatomy.apply_final_norm(lm.model, torch.as_tensor(out["resid"][row, -1]))
        np.testing.assert_allclose(out["resid"][row, :-1],
                                   torch.stack(full.decoder_hidden_states[:-1])[:, 0, 0].numpy(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(normed, full.decoder_hidden_states[-1][0, 0], rtol=1e-5, atol=1e-5)
    read_from_encoder = engine.run(encoder_lm, TEXTS, request, cache=False)
    assert (out["top_ids"] == read_from_encoder["top_ids"]).all()
    assert not np.allclose(out["resid"][:, -1], read_from_encoder["resid"][:, -1])
    with pytest.raises(ValueError, match="capture the last token"):
        engine.run(lm, TEXTS, engine.Request(resid=True), positions=[1] * len(TEXTS), cache=False)
    with pytest.raises(ValueError, match="encoder_decoder_state='both': use one of encoder, decoder"):
        models.load(t5_pair[0], role="base", device="cpu", encoder_decoder_state="both")


def test_no_prefix_is_shared_for_an_encoder(t5_pair, monkeypatch):
    """Bidirectional attention: a prefix computed alone is not the prefix of a longer text, so the plan of shared
    prefixes is never made, even when asked for with the loosest rule."""
    lm = models.load(t5_pair[0], role="base", device="cpu")
    plain = engine.run(lm, TEXTS, engine.Request(resid=True, top_k=2), cache=False, share_prefixes=False)
    monkeypatch.setitem(engine.PREFIX_RULE, "min_segment", 1)
    monkeypatch.setitem(engine.PREFIX_RULE, "min_saving", 1)
    monkeypatch.setattr(engine, "plan", lambda *args, **kwargs: pytest.fail("shared prefixes planned for T5"))
    shared = engine.run(lm, TEXTS, engine.Request(resid=True, top_k=2), cache=False, share_prefixes=True)
    np.testing.assert_array_equal(shared["resid"], plain["resid"])
    np.testing.assert_array_equal(shared["top_ids"], plain["top_ids"])


def test_a_t5_without_a_decoder_start_token_is_refused_with_one_line():
    from conftest import make_tiny_t5

    config = make_tiny_t5().config
    config.decoder_start_token_id = None
    with pytest.raises(anatomy.AnatomyError) as refused:
        anatomy.check_config(config, "my-t5")
    assert str(refused.value) == ("my-t5: its config sets no decoder_start_token_id, the token its decoder starts from "
                                  "(0, the pad token, for T5): set it in config.json.")


def test_updates_are_refused_with_one_line(t5_pair):
    lm = models.load(t5_pair[0], role="base", device="cpu")
    with pytest.raises(anatomy.AnatomyError) as refused:
        engine.run(lm, TEXTS[:1], engine.Request(resid=True, updates=True), cache=False)
    assert str(refused.value) == f"{lm.name}: {anatomy.UPDATES_OF_ENCODER_DECODER}." and "\n" not in str(refused.value)


def test_the_logit_lens_is_refused_on_encoder_states(t5_pair):
    from ifhelpers.model import lens

    lm = models.load(t5_pair[0], role="base", device="cpu")
    states = engine.run(lm, TEXTS[:2], engine.Request(resid=True), cache=False)["resid"]
    with pytest.raises(anatomy.AnatomyError, match="^the logit lens reads decoder states"):
        lens.top_tokens(lm, states[:, -1])


def test_a_continuation_is_scored_as_the_decoder_output_after_the_prompt(t5_pair):
    """Chapter 6's log P(y | x): the encoder reads x (closed by <eos>), the decoder is scored on y's tokens."""
    lm = models.load(t5_pair[0], role="base", device="cpu")
    prompts, responses = ["The capital of France is", "Everyone knows that Rome is located in"], [" Paris.", " Italy"]
    texts = [x + y for x, y in zip(prompts, responses)]
    positions = [len(encode(lm.tokenizer, x)) - 2 for x in prompts]  # x's last token before its closing <eos>
    out = engine.run(lm, texts, engine.Request(continuation=4, top_k=1, resid=True), positions, cache=False)
    for row, (x, y) in enumerate(zip(prompts, responses)):
        target = tokens.continuation_ids(lm.tokenizer, x, y)
        encoder_ids = torch.tensor([encode(lm.tokenizer, x)])
        decoder_ids = torch.tensor([[0, *target[:-1]]])
        with torch.inference_mode():
            logits = lm.model(input_ids=encoder_ids, decoder_input_ids=decoder_ids).logits[0]
            states = lm.model.encoder(input_ids=encoder_ids, output_hidden_states=True).hidden_states
        expected = torch.log_softmax(logits, -1)[torch.arange(len(target)), target].numpy()
        np.testing.assert_allclose(out["continuation_logprobs"][row, :len(target)], expected, rtol=1e-5, atol=1e-5)
        # the token after y is the closing <eos>; nothing after it
        assert np.isfinite(out["continuation_logprobs"][row, len(target)])
        assert np.isnan(out["continuation_logprobs"][row, len(target) + 1:]).all()
        assert out["top_ids"][row, 0] == int(logits[0].argmax())
        np.testing.assert_allclose(out["resid"][row, 0], states[0][0, positions[row]].numpy(), rtol=1e-5, atol=1e-5)


def test_a_closing_eos_is_left_out_of_a_continuation():
    tokenizer = make_tiny_bpe_tokenizer(closing_eos=True)
    eos = tokenizer.eos_token_id
    assert tokens.closing_ids(tokenizer) == [eos] and tokens.closing_ids(make_tiny_bpe_tokenizer()) == []
    prompt = "The capital of France is"
    bare = tokenizer(prompt + " Paris", add_special_tokens=False)["input_ids"]
    head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert tokens.continuation_ids(tokenizer, prompt, " Paris") == bare[len(head):]
    assert eos not in bare


def test_chapters_1_and_2_run_in_process(t5_pair):
    from ifhelpers import measure
    from ifhelpers.chapters import predictions as pred
    from ifhelpers.chapters import vector_space as vs
    from ifhelpers.data import pararel

    roles = {t5_pair[0]: "base", t5_pair[1]: "instruction-tuned"}
    designs, queries = vs.build_designs(["mrpc", "tapaco", "pararel"], n_mrpc_pairs=4, n_paraphrase_sets=4,
                                        n_nonparaphrase_per_set=2, pararel_relations=["P17", "P19"],
                                        pararel_n_per_relation=3, seed=0)
    by_state = {state: measure.runner.run(list(t5_pair), [measure.units.per_set_gaps(designs, queries, [0, 1, 2])],
                                          roles, encoder_decoder_state=state)["units"]
                for state in anatomy.ENCODER_DECODER_STATES}  # chapter 1's encoder_decoder_state parameter
    for units in by_state.values():
        rows = pd.DataFrame(vs.headlines(vs.gap_comparison(units, "final_norm", 200, seed=0),
                                         {d: design.label for d, design in designs.items()}, "final_norm"))
        assert len(rows) == 3 and not rows["ours"].astype(str).str.contains("nan").any()
    assert not np.allclose(by_state["encoder"]["gap"], by_state["decoder"]["gap"])

    queries = pararel.load_queries(["P17", "P19"], 3, 0)
    setups = measure.mmlu.mmlu_setups(measure.mmlu.sample_questions(["astronomy"], 2, 0), 1, seed=0)
    measured = measure.runner.run(list(t5_pair), [
        measure.pararel.scores(queries, [0, 1, 2], restricted=True, token_stats=True, predictions=True),
        measure.mmlu.answers(setups, letters=True)], roles)
    scores, mmlu = measured["pararel_scores"], measured["mmlu"]
    assert set(scores["model"]) == set(mmlu["model"]) == set(t5_pair)
    letters = mmlu[[f"logprob_{x}" for x in "ABCD"]].to_numpy()
    assert np.isfinite(letters).all() and (letters < 0).all() and (mmlu["letter_mass"] <= 1).all()
    # the chapter's paired comparisons (its headlines' numbers) have no nan
    paired = pred.pararel_comparison(pred.pararel_wide(scores), t5_pair[0], list(t5_pair), n_resamples=50, seed=0)
    table = pred.mmlu_intervals(mmlu, n_resamples=50, seed=0)
    for frame in (paired, table):
        assert len(frame) and not frame.select_dtypes("number").isna().any().any(), frame


@pytest.mark.parametrize("chapter", ["mechanisms", "tune_it_yourself"])
def test_chapters_4_and_5_are_refused_before_any_work(t5_pair, tmp_path, capsys, monkeypatch, chapter):
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    models_arg = f"base={t5_pair[0]}" if chapter == "tune_it_yourself" else f"base={t5_pair[0]},ift={t5_pair[1]}"
    assert cli.main(["run", chapter, "--models", models_arg]) == 2
    why = anatomy.decoder_only(chapter, {})
    assert capsys.readouterr().err == f"ifhelpers: {anatomy.chapter_refusal(t5_pair[0], 't5', why)}\n"
    # the paper's pair, whose weights are not on this machine, is refused for the same reason before the weights
    # are looked for
    assert cli.main(["run", chapter, "--models", "pair=paper-t5" if chapter == "mechanisms" else
                     "base=t5-xl-lm-adapt"]) == 2
    assert capsys.readouterr().err == f"ifhelpers: {anatomy.chapter_refusal('t5-xl-lm-adapt', 't5', why)}\n"
    assert not (tmp_path / "runs").exists()  # no kernel started


def test_chapter_4s_refusal_says_why_in_one_line(t5_pair, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert cli.main(["run", "mechanisms", "--models", f"base={t5_pair[0]},ift={t5_pair[1]}"]) == 2
    assert capsys.readouterr().err == (
        f"ifhelpers: {t5_pair[0]} is an encoder-decoder model (t5): chapter 4 reads eq. 1's updates of a decoder's "
        f"residual stream and their logit lens, which the paper measured on decoder models only; run chapters 1, 2, "
        f"3 and 6 for it, or give this chapter decoder models.\n")


def test_chapter_6_tunes_no_encoder_decoder(t5_pair, tmp_path, capsys, monkeypatch):
    """Chapter 6 runs on T5 (tests below), but its default tuned_arms would tune the base with chapter 5's recipe."""
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    models_arg = f"base={t5_pair[0]},ift={t5_pair[1]}"
    assert cli.main(["run", "sensitivity", "--models", models_arg]) == 2
    assert capsys.readouterr().err == f"ifhelpers: {t5_pair[0]} is an encoder-decoder model (t5): the run's " \
        f"tuned_arms tune its base model with chapter 5's recipe (LoRA on a decoder); set tuned_arms=None " \
        f"(--set tuned_arms=null) to run it on encoder-decoder models.\n"
    assert not (tmp_path / "runs").exists()
    assert anatomy.decoder_only("sensitivity", {"tuned_arms": None}) is None
    assert anatomy.decoder_only("predictions", {}) is None


def test_the_appendix_lists_t5_with_what_these_tests_check():
    row = anatomy.table().set_index("model_type").loc["t5"]
    assert row["decoder layers"] == "encoder.block (the encoder's)" and row["final norm"] == "encoder.final_layer_norm"
    assert row["checked on a tiny random model"] == "; ".join(anatomy.CHECKED_FOR_ENCODER_DECODER)
    assert row["chapters run on a tiny random model"] == anatomy.CHAPTERS_RUN["t5"]


def test_chapter_3_classifier_reads_the_encoder_output(t5_pair, tmp_path):
    from ifhelpers.train import classifier

    lm = models.load(t5_pair[0], role="base", device="cpu")
    probe = classifier.ProbeBackend(lm, 2, cache=False)
    probe.prepare(TEXTS)
    for text in TEXTS:
        with torch.inference_mode():
            output = lm.model.encoder(input_ids=torch.tensor([encode(lm.tokenizer, text)])).last_hidden_state[0, -1]
        np.testing.assert_allclose(probe.features[text], output.numpy(), rtol=1e-5, atol=1e-5)
    data = classifier.task_data("rte", n_train=4, n_eval=4)
    for mode in ("probe", "lora"):
        config = classifier.FinetuneConfig(mode=mode, learning_rates=(1e-4,), max_epochs=1)
        result = classifier.finetune_task(lm, data, config, progress=False, checkpoint_root=tmp_path / mode)
        assert len(result.predictions) and result.predictions["pred_original"].between(0, 1).all()


def test_chapter_6_runs_in_process(t5_pair):
    from ifhelpers import measure
    from ifhelpers.chapters import sensitivity as sens

    roles = {t5_pair[0]: "base", t5_pair[1]: "instruction-tuned"}
    questions = measure.mmlu.sample_questions(["astronomy"], 2, 0)
    setups = sens.mmlu_prompts(questions, [0, 3], 2, 2, 0)
    measured = measure.runner.run(list(t5_pair), [measure.responses.answers_and_responses(setups, [0, 3])], roles)
    responses = measured["responses"]
    assert set(responses["model"]) == set(t5_pair) and (responses["response_ids"].map(len) > 0).all()
    assert np.isfinite(measured["mmlu"][[f"logprob_{x}" for x in "ABCD"]].to_numpy()).all()
    # a random T5 answers in bytes that decode to no text, so POSIX is scored here on written answers
    lm = models.load(t5_pair[0], role="base", device="cpu")
    mine = responses[responses["model"] == t5_pair[0]].copy()
    mine["response"] = [" The answer is B" if i % 2 else " C" for i in range(len(mine))]
    posix = measure.responses.posix_pairs(lm, mine, cache=False)
    assert posix["scored"].all() and (posix["logprob"] < 0).all()
    first = posix.iloc[1]  # prompt i's text, prompt j's response
    group = mine[mine["question_id"] == first["question_id"]].set_index("prompt_id")
    x, y = group.loc[first["prompt_i"], "prompt"], group.loc[first["prompt_j"], "response"]
    target = tokens.continuation_ids(lm.tokenizer, x, y)
    with torch.inference_mode():
        logits = lm.model(input_ids=torch.tensor([encode(lm.tokenizer, x)]),
                          decoder_input_ids=torch.tensor([[0, *target[:-1]]])).logits[0]
    expected = float(torch.log_softmax(logits, -1)[torch.arange(len(target)), target].sum())
    assert first["n_tokens"] == len(target) and first["logprob"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("chapter, settings", [("vector_space", ["--set", "encoder_decoder_state=decoder"]),
                                               ("sensitivity", ["--set", "tuned_arms=null"])])
def test_chapters_1_and_6_run_through_ifhelpers_run(t5_pair, tmp_path, chapter, settings):
    """End to end for a T5 pair: chapter 1 with the decoder-state variant (the parameter reaches the engine), and
    chapter 6, whose random T5 answers in bytes that decode to no text, so no POSIX pair is scored: the chapter
    says POSIX is not defined instead of failing."""
    out = run_chapter(chapter, f"base={t5_pair[0]},ift={t5_pair[1]}", tmp_path / "runs", tmp_path / "cache",
                      *settings, name="t5")
    headlines = pd.read_csv(out / f"headlines_{cli.chapter_path(chapter).stem}.csv")
    assert len(headlines) and not headlines["ours"].astype(str).str.contains("nan").any()
    if chapter == "vector_space":  # every pass of both models read the decoder's states
        passes = [json.loads(p.read_text())["model"] for p in (tmp_path / "cache" / "activations").rglob("about.json")]
        assert len(passes) >= 2 and all(model.endswith("|decoder-state") for model in passes)
