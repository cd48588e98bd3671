"""Chapter 6's analyses on hand-made results (no model): many prompts, agreement across prompts and
orderings, the wrapper comparison and ParaRel's variants."""

import numpy as np
import pandas as pd
import pytest

from ifhelpers.chapters import predictions as pred
from ifhelpers.chapters import sensitivity as sens
from ifhelpers.measure import responses as measure_responses
from ifhelpers.measure import pararel as measure_pararel
from ifhelpers.measure import mmlu as measure_mmlu


def _questions(n=4):
    return pd.DataFrame({"question_id": [f"q{i}" for i in range(n)], "subject": "anatomy", "split": "test",
                         "question": [f"Question {i}?" for i in range(n)], "A": "a", "B": "b", "C": "c", "D": "d",
                         "answer": "B", "answer_index": 1})


def _setups():
    return sens.with_formats(measure_mmlu.mmlu_setups(_questions(), 2, (0, 3), seed=0), 2, seed=0)


def _answer(setups, model, role, choose):
    """Results of a model that answers displayed position ``choose(row)``."""
    out = setups.copy()
    out["model"], out["role"] = model, role
    out["prediction_index"] = [choose(r) for _, r in out.iterrows()]
    out["correct"] = out["prediction_index"] == out["answer_index"]
    out["letter_mass"] = 0.5
    return out


def _gold(row):
    return row["answer_index"]


def _always_a(row):
    return 0


def test_with_formats_crosses_instructions_and_formats_in_the_original_order():
    setups = _setups()
    first = setups[setups["shuffle"] == 0]
    assert sorted(first["prompt_id"].unique()) == [0, 1, 2, 3]           # 2 instructions x 2 formats
    assert len(first) == 4 * 4                                            # questions x prompts
    assert set(setups.loc[setups["shuffle"] == 1, "format_id"]) == {0}    # orderings only in App. C.1's format
    table = sens.prompt_table(setups)
    assert list(table["from"]) == ["App. C.1", "App. C.1", "this book", "this book"]


def test_agreement_of_a_model_that_always_answers_a_and_of_one_that_knows():
    setups = _setups()
    results = pd.concat([_answer(setups, "base", "base", _always_a), _answer(setups, "tuned", "instruction-tuned", _gold)])
    table = sens.item_summary(sens.item_measures(results))
    # "A" under every prompt in the original order: the same option every time, wrong every time
    assert table.loc["base", "prompt_consistency"] == 1.0 and table.loc["base", "pss"] == 0.0
    assert table.loc["base", "accuracy"] == 0.0
    # across orderings, "A" names original option perm[0] of the shuffled ordering: agreement only where that is 0
    shuffled = setups[(setups["shuffle"] == 1) & (setups["instruction"] == 0)]
    expected = np.mean([p[0] == 0 for p in shuffled["permutation"]])
    assert table.loc["base", "order_consistency"] == pytest.approx(expected)
    # the gold option, mapped back through every permutation, is always the same option
    assert table.loc["tuned", ["accuracy", "prompt_consistency", "order_consistency"]].tolist() == [1.0, 1.0, 1.0]
    assert table.loc["tuned", "pss"] == 0.0


def test_pss_and_spread_of_a_model_right_under_half_the_prompts():
    setups = _setups()
    half = _answer(setups, "m", "base", lambda r: r["answer_index"] if r["prompt_id"] in (0, 1) else 3)
    items = sens.item_measures(half)
    pss = items[items["measure"] == "pss"]["value"]
    assert pss.tolist() == pytest.approx([4 / 6] * 4)  # 2 right of 4 prompts: 2*2 of 6 pairs differ
    dist = sens.prompt_distribution(half).loc["m"]
    assert dist["spread"] == 1.0 and dist["MaxP"] == 1.0 and dist["AvgP"] == 0.5 and dist["CPS"] == 0.5


def test_comparisons_go_the_papers_way_for_the_knowing_model():
    setups = _setups()
    results = pd.concat([_answer(setups, "base", "base", lambda r: int(r["prompt_id"]) % 4),
                         _answer(setups, "tuned", "instruction-tuned", _gold)])
    cmp = sens.item_comparison(sens.item_measures(results), n_resamples=200).set_index("measure")
    assert cmp.loc["prompt_consistency", "mean_diff"] > 0 and cmp.loc["pss", "paper_sign"] == -1
    dist = sens.distribution_comparison(results, "base", "tuned", n_resamples=200).set_index("measure")
    assert dist.loc["AvgP", "mean_diff"] == pytest.approx(1.0 - 0.25)
    assert dist.loc["spread", "tuned_value"] == 0.0
    with pytest.raises(ValueError, match="same questions"):
        sens.distribution_comparison(results[~((results["model"] == "tuned") & (results["question_id"] == "q0"))],
                                     "base", "tuned", n_resamples=10)


def test_wrapper_comparison_pairs_each_choice_of_the_evaluator():
    rows = []
    for model, role, wrappers in (("b", "base", ("base", "open-instruct")),
                                  ("t", "instruction-tuned", ("chat-template", "base", "open-instruct"))):
        for w in wrappers:
            for q in range(5):
                value = {"b": {"base": 0.2, "open-instruct": 0.9}, "t": {"chat-template": 0.6, "base": 0.4,
                                                                        "open-instruct": 0.5}}[model][w] + 0.01 * q
                rows.append({"model": model, "role": role, "wrapper": w, "question_id": q, "value": value})
    out = sens.wrapper_comparison(pd.DataFrame(rows), {"b": "base", "t": "chat-template"}, n_resamples=200)
    by = out.set_index("choice")["mean_diff"]
    assert by["each in its own (the paper's)"] == pytest.approx(0.4)   # 0.6 - 0.2
    assert by["both base"] == pytest.approx(0.2) and by["both open-instruct"] == pytest.approx(-0.4)
    assert "both chat-template" not in by                            # the base model has no chat template here


def test_pararel_variants_of_a_shared_pass():
    frame = pd.DataFrame({
        "relation": ["R"] * 4, "uuid": ["f1", "f1", "f2", "f2"], "template_id": [0, 1, 0, 1], "prompt_id": 0,
        "prediction_id": [5, 5, 7, 8], "object_first_ids": [(5,), (5,), (9,), (9,)],
        "final_word": ["in", "an", "in", "in"], "object": ["Paris", "Paris", "Oslo", "Oslo"]})
    out = measure_pararel.pararel_variants(frame).iloc[0]
    assert out["consistency"] == 0.5 and out["known_consistency"] == 1.0
    # the a/an filter drops f1's "an Paris" query, leaving f1 without a pair: only f2's disagreeing pair counts
    assert out["consistency_a_an"] == 0.0


def test_each_model_is_read_from_a_pass_an_earlier_chapter_computed():
    passes = sens.pararel_passes(["gemma", "smollm2"], ["gemma-ift-a", "gemma-ift-b"], "gemma", 12, 4)
    assert passes == {"gemma": [4, 12], "smollm2": [12], "gemma-ift-a": [4], "gemma-ift-b": [4]}
    assert sens.pararel_passes(["gemma", "smollm2"], [], None, 12, 4) == {"gemma": [12], "smollm2": [12]}


def test_orderings_are_asked_under_app_c1_instructions():
    assert sens.split_instructions([0, 3, 2, 5]) == ([0, 2], [3, 5])
    with pytest.raises(ValueError, match="at least one of App. C.1's"):
        sens.split_instructions([3, 4])


# ------------------------------------------------------------------------------------------------
# Scoring by generation, and POSIX


def _responses(model, role, letter, said):
    """Hand-made :func:`ifhelpers.measure.responses.run_responses` rows: questions q0, q1 under prompts 0-2, gold B (1)."""
    rows = [{"model": model, "role": role, "question_id": q, "prompt_id": p, "answer_index": 1,
             "prediction_index": letter[k][p], "generated_index": said[k][p]}
            for k, q in enumerate(["q0", "q1"]) for p in range(3)]
    out = pd.DataFrame(rows)
    out["generated_correct"] = out["generated_index"] == out["answer_index"]
    return out


def _pairs(model, role, grid, length=2):
    """Hand-made :func:`ifhelpers.measure.responses.posix_pairs` rows: ``grid`` per token, every response ``length``
    tokens long."""
    return pd.DataFrame([{"model": model, "role": role, "question_id": q, "prompt_i": i, "prompt_j": j,
                          "logprob": length * grid[k][i][j], "mean_logprob": grid[k][i][j]}
                         for k, q in enumerate(["q0", "q1"]) for i in range(3) for j in range(3)])


def test_response_measures_by_hand():
    flat = [[-1.0] * 3] * 3
    # letter scoring: always B (consistent, right); generation: q0 says B, B, nothing; q1 says A, C, B
    responses = _responses("m", "base", [[1, 1, 1], [1, 1, 1]], [[1, 1, -1], [0, 2, 1]])
    pairs = _pairs("m", "base", [flat, [[-1.0, -2.0, -1.0], [-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]]])
    table = sens.response_measures(responses, pairs).pivot_table(index="question_id", columns="measure",
                                                                 values="value")
    np.testing.assert_allclose(table["instruction_consistency"], [1.0, 1.0])
    np.testing.assert_allclose(table["generated_consistency"], [1 / 3, 0.0])  # the non-answer agrees with nothing
    np.testing.assert_allclose(table["generated_accuracy"], [2 / 3, 1 / 3])
    np.testing.assert_allclose(table["answered"], [2 / 3, 1.0])
    # q0: the prompt changes nothing; q1: y_1 under x_0 is 1 nat per token less likely than under x_1
    np.testing.assert_allclose(table["posix"], [0.0, 1.0 / 6])
    # the released code holds the prompt fixed: under x_0, y_1's summed log P (-4) against x_0's own y_0 (-2)
    # differs by 2 nats, every other pair by 0; over the generation limit and the 6 pairs
    np.testing.assert_allclose(table["posix_released_code"], [0.0, 2.0 / sens.RESPONSE_TOKENS / 6])


def test_posix_pairs_score_each_response_under_each_prompt():
    import torch

    from conftest import make_tiny_bpe_tokenizer, make_tiny_family
    from ifhelpers.model.models import wrap
    from ifhelpers.model.tokens import encode

    lm = wrap(make_tiny_family("llama"), make_tiny_bpe_tokenizer(), "tiny-llama-bpe")
    prompts_ = ["The capital of France is", "Everyone knows that the capital of France is"]
    responses = pd.DataFrame({"question_id": "q0", "prompt_id": [0, 1], "prompt": prompts_,
                              "response": [" Paris.", ""]})
    pairs = measure_responses.posix_pairs(lm, responses, cache=False)
    assert list(pairs["scored"]) == [True, False, True, False]  # the empty response is scored nowhere

    def by_hand(prompt, response):
        ids = encode(lm.tokenizer, prompt + response)
        n = len(ids) - len(encode(lm.tokenizer, prompt))
        with torch.inference_mode():
            logprobs = torch.log_softmax(lm.model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
        return float(sum(logprobs[k - 1, ids[k]] for k in range(len(ids) - n, len(ids)))) / n

    got = pairs.set_index(["prompt_i", "prompt_j"])["mean_logprob"]
    assert got[(0, 0)] == pytest.approx(by_hand(prompts_[0], " Paris."), rel=1e-5)
    assert got[(1, 0)] == pytest.approx(by_hand(prompts_[1], " Paris."), rel=1e-5)
    scored = pairs[pairs["scored"]]
    np.testing.assert_allclose(scored["logprob"], scored["mean_logprob"] * scored["n_tokens"], rtol=1e-6)


def test_where_models_side_groups_headlines_by_finding():
    rows = [{"paper": f"{sens.PAPER_CLAIM}; against: {sens.CONTRARY[c]}", "tuned": "t", "base": "b", "result": c,
             "ours": "+1", "direction_holds": v}
            for c, v in (("posix", "yes"), ("pss", "no"), ("scoring", "mixed"), ("spread", "n.s. (same sign)"))]
    sides = sens.where_models_side(rows).set_index("result")
    assert sides.loc["posix", "sides_with"] == "the paper"
    assert sides.loc["pss", "sides_with"] == "the contrary finding"
    assert sides.loc["scoring", "sides_with"] == "each, under a different choice"
    assert sides.loc["spread", "sides_with"] == "neither at this size"
    assert sides.loc["posix", "finding"] == sens.CONTRARY["posix"]


def test_responses_need_two_instructions_that_were_asked():
    assert measure_responses.check_response_instructions([0, 1, 2, 3], [0, 3]) == [0, 3]
    with pytest.raises(ValueError, match="not asked: \\[4\\]"):
        measure_responses.check_response_instructions([0, 1, 2, 3], [0, 4])
    with pytest.raises(ValueError, match="at least two"):
        measure_responses.check_response_instructions([0, 1, 2], [1])
