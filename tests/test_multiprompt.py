"""Chapter 6's measures on hand-made cases: many-prompt summaries, agreement, ProSA's PSS, ParaRel's
variants and the MMLU format grammar."""

import numpy as np
import pandas as pd
import pytest

from ifhelpers.data import formats, prompts
from ifhelpers.metrics import multiprompt as mp
from ifhelpers.metrics import pararel as pr


def test_quantiles_interpolate_between_prompts():
    q = mp.prompt_quantiles([0.2, 0.4, 0.6, 0.8, 1.0], (0.05, 0.5, 0.95))
    # 5 prompts: position 0.05 * 4 = 0.2 between the lowest two
    assert q[0.05] == pytest.approx(0.2 + 0.2 * 0.2)
    assert q[0.5] == pytest.approx(0.6)
    assert q[0.95] == pytest.approx(0.8 + 0.8 * 0.2)


def test_maxp_avgp_cps_by_hand():
    out = mp.max_avg_combined([0.5, 0.3, 0.4])
    assert out["MaxP"] == pytest.approx(0.5)
    assert out["AvgP"] == pytest.approx(0.4)
    assert out["CPS"] == pytest.approx((1 - 0.1) * 0.5)
    flat = mp.max_avg_combined([0.6, 0.6])
    assert flat["CPS"] == pytest.approx(0.6)  # saturation 1 when every prompt scores the same
    with pytest.raises(ValueError, match="at least 2 prompts"):
        mp.max_avg_combined([0.5])


def test_consistency_rate_counts_agreeing_pairs():
    answers = np.array([[0, 0, 0, 0],    # 6 of 6 pairs agree
                        [0, 0, 1, 1],    # 2 of 6
                        [0, 1, 2, 3],    # 0 of 6
                        [2, 2, 2, 3]])   # 3 of 6
    assert mp.consistency_rate(answers) == pytest.approx([1.0, 2 / 6, 0.0, 0.5])


def test_remapping_through_a_permutation_where_gold_and_displaced_option_swap():
    # Original options: 0 is gold. The shuffled ordering swaps options 0 and 2: position 0 shows original
    # option 2, position 2 shows original option 0 (the gold).
    permutation = np.array([[2, 1, 0, 3]])
    # A model that picks the gold option in both orderings answers position 0 in the original ordering and
    # position 2 in the shuffled one: the displayed letters differ (A vs C), the chosen option is the same.
    shuffled_choice = mp.original_option([2], permutation)
    assert shuffled_choice.tolist() == [0]
    assert mp.consistency_rate(np.array([[0, shuffled_choice[0]]])).tolist() == [1.0]
    # Comparing displayed letters instead would call it inconsistent, and would call "A then A" consistent
    # although A shows option 0 first and option 2 second.
    assert mp.original_option([0], permutation).tolist() == [2]
    assert mp.consistency_rate(np.array([[0, mp.original_option([0], permutation)[0]]])).tolist() == [0.0]
    with pytest.raises(ValueError, match="permutation"):
        mp.original_option([0], np.array([[0, 0, 1, 2]]))


def test_prompt_sensitivity_score_is_mean_absolute_pair_difference():
    scores = np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0], [0.5, 0.0, 1.0]])
    # pairs (0,1), (0,2), (1,2)
    assert mp.prompt_sensitivity_score(scores) == pytest.approx([0.0, 2 / 3, 2 / 3, (0.5 + 0.5 + 1.0) / 3])


def _pararel_frame():
    rows = []
    # relation R: fact f1 known and consistent under 3 templates; f2 unknown, predictions x, x, y; f3 one query
    for fact, preds, gold in (("f1", ["o1", "o1", "o1"], "o1"), ("f2", ["x", "x", "y"], "o2"), ("f3", ["o3"], "o3")):
        for t, p in enumerate(preds):
            rows.append({"relation": "R", "fact_id": fact, "template_id": t, "prediction": p, "gold": gold})
    # relation S: fact g1 with two templates, one correct (known), predictions disagree
    rows += [{"relation": "S", "fact_id": "g1", "template_id": 0, "prediction": "a", "gold": "a"},
             {"relation": "S", "fact_id": "g1", "template_id": 1, "prediction": "b", "gold": "a"}]
    return pd.DataFrame(rows)


def test_no_answer_agrees_with_nothing():
    # item 0: two "no answer" (-1) and two B: one agreeing pair of 6; item 1: all four answer C
    answers = np.array([[-1, -1, 1, 1], [2, 2, 2, 2]])
    np.testing.assert_allclose(mp.consistency_rate(answers), [1 / 6, 1.0])


def test_posix_by_hand():
    # one item, two prompts: (1/L) log P(y_j | x_i) as [i, j]
    grid = np.array([[[-1.0, -3.0],
                      [-2.0, -0.5]]])
    # pairs i != j: |(-3.0) - (-0.5)| (y_1 under x_0 vs its own prompt) and |(-2.0) - (-1.0)|
    np.testing.assert_allclose(mp.posix(grid), [(2.5 + 1.0) / 2])
    # three prompts, a prompt that changes nothing: 0; a NaN pair is left out of the mean
    same = np.full((1, 3, 3), -1.2)
    np.testing.assert_allclose(mp.posix(same), [0.0])
    grid3 = np.array([[[-1.0, -2.0, np.nan],
                       [-1.5, -1.0, -1.0],
                       [-1.0, -1.0, -1.0]]])
    # off-diagonal gaps against the column's own value: (0,1) |-2+1|=1, (1,0) |-1.5+1|=.5, (1,2) 0, (2,0) 0,
    # (2,1) 0; (0,2) NaN
    np.testing.assert_allclose(mp.posix(grid3), [1.5 / 5])
    assert np.isnan(mp.posix(np.full((1, 2, 2), np.nan)))[0]
    with pytest.raises(ValueError):
        mp.posix(np.zeros((2, 3)))


def test_posix_released_code_by_hand():
    # one item, two prompts, summed log P(y_j | x_i) as [i, j]; max_new_tokens = 5
    grid = np.array([[[-1.0, -3.0],
                      [-2.0, -0.5]]])
    # the released code holds the prompt fixed: under x_0, |log P(y_1|x_0) - log P(y_0|x_0)| = |-3 + 1| = 2;
    # under x_1, |log P(y_0|x_1) - log P(y_1|x_1)| = |-2 + 0.5| = 1.5; (2 + 1.5) / 5 / (2 * 1)
    np.testing.assert_allclose(mp.posix_released_code(grid, 5), [(2.0 + 1.5) / 5 / 2])
    # the book's reading holds the response fixed: |-3 + 0.5| = 2.5 and |-2 + 1| = 1 (not divided by 5)
    np.testing.assert_allclose(mp.posix(grid), [(2.5 + 1.0) / 2])
    grid3 = np.array([[[-1.0, -2.0, np.nan],
                       [-1.5, -1.0, -1.0],
                       [-1.0, -1.0, -1.0]]])
    # gaps against the row's own value: (0,1) 1, (0,2) NaN, (1,0) .5, (1,2) 0, (2,0) 0, (2,1) 0
    np.testing.assert_allclose(mp.posix_released_code(grid3, 1), [1.5 / 5])
    with pytest.raises(ValueError, match="max_new_tokens"):
        mp.posix_released_code(grid, 0)
    with pytest.raises(ValueError, match="items, N, N"):
        mp.posix_released_code(np.zeros((2, 3)), 5)


@pytest.mark.parametrize("response,expected", [(" B", 1), ("(C) Paris", 2), ("The answer is D.", 3), ("A.", 0),
                                               (" Answer: B", 1), ("\n\nQuestion", -1), ("", -1), ("Because", -1),
                                               ("ABC", -1), ("b", -1)])
def test_answer_in_response(response, expected):
    assert mp.answer_in_response(response) == expected


def test_pararel_variants_by_hand():
    out = pr.pararel_variants(_pararel_frame())
    r, s = out.loc["R"], out.loc["S"]
    # pooled over f1 (3 of 3 pairs) and f2 (1 of 3): 4 / 6; per fact: (1 + 1/3) / 2
    assert r["consistency"] == pytest.approx(4 / 6)
    assert r["consistency_per_fact"] == pytest.approx((1 + 1 / 3) / 2)
    assert r["consistent_subjects"] == pytest.approx(0.5)          # f1 of {f1, f2}
    assert r["all_patterns_accuracy"] == pytest.approx(2 / 3)      # f1 and f3 (its one query) of 3 facts
    assert r["known_consistency"] == pytest.approx(1.0)
    assert r["unknown_consistency"] == pytest.approx(1 / 3)
    assert r["share_known"] == pytest.approx(2 / 3)
    assert s["consistency"] == 0 and s["known_consistency"] == 0 and np.isnan(s["unknown_consistency"])
    # Table 2's reading is pararel_scores' own number
    assert out["consistency"].equals(pr.pararel_scores(_pararel_frame())["consistency"])


def test_directed_pairs_give_the_pooled_share():
    frame = _pararel_frame()
    pairs = pr.pararel_query_pairs(frame)
    directed = pd.concat([pairs, pairs.rename(columns={"prediction_a": "prediction_b", "prediction_b": "prediction_a"})])
    share = directed.groupby("relation")["consistent"].mean()
    assert share.to_dict() == pytest.approx(pr.pararel_variants(frame)["consistency"].to_dict())


def test_a_an_filter():
    mismatch = pr.a_an_mismatch(["a", "a", "an", "an", "in"], ["Apple", "banana", "orange", "pear", "Oslo"])
    assert mismatch.tolist() == [True, False, False, True, False]


def test_appendix_c1_layout_is_the_papers_prompt():
    text = prompts.format_mmlu("anatomy", "What is it? ", ["w", "x", "y", "z"], 0, "base")
    assert text == ("The following are multiple choice questions (with answers) about anatomy.\n\n"
                    "What is it?\nA. w\nB. x\nC. y\nD. z\nAnswer:")


def test_every_format_keeps_the_instruction_and_question_as_a_shared_prefix():
    head = "The following are multiple choice questions (with answers) about anatomy.\n\nWhat is it?"
    texts = {f.name: prompts.format_mmlu("anatomy", "What is it?", ["w", "x", "y", "z"], 0, "base", layout=f)
             for f in formats.all_formats()}
    assert len(set(texts.values())) == len(formats.all_formats()) == 144
    assert all(t.startswith(head) for t in texts.values())
    assert texts["(A) | semicolon | blank line | ANSWER::"].endswith("What is it?\n\n(A) w; (B) x; (C) y; (D) z\nANSWER::")


def test_sample_formats_is_seeded_and_starts_with_the_papers():
    drawn = formats.sample_formats(6, seed=3)
    assert drawn[0] == formats.APPENDIX_C1 and len(set(drawn)) == 6
    assert drawn == formats.sample_formats(6, seed=3) and drawn != formats.sample_formats(6, seed=4)
    assert formats.sample_formats(12, seed=3)[:6] == drawn  # a larger draw begins with the smaller one
    with pytest.raises(ValueError, match="between 1 and 144"):
        formats.sample_formats(145)
    with pytest.raises(ValueError, match="not in the grammar"):
        formats.MMLUFormat(label="[{}]")


def test_extra_instructions_are_numbered_after_the_papers():
    assert prompts.mmlu_instruction("anatomy", 0).startswith("The following are multiple choice questions (with")
    assert "anatomy" in prompts.mmlu_instruction("anatomy", 3)
    with pytest.raises(ValueError, match="instruction_id must be among"):
        prompts.mmlu_instruction("anatomy", 6)
