"""Hand-computed checks of ifhelpers.metrics; the arithmetic is written beside each case."""

import math

import numpy as np
import pandas as pd
import pytest

from ifhelpers import metrics as m

R2 = math.sqrt(2.0)

# ----------------------------------------------------------------------------- cosine


def test_mean_pairwise_cosine_pairs_and_paper_literal():
    # [1,0], [1,0], [0,1]: unordered pair cosines 1, 0, 0
    # pairs:         ordered sum 2*(1+0+0) = 2, divided by M(M-1) = 6  -> 1/3
    # paper_literal: ordered sum 2, divided by M = 3                   -> 2/3
    v = [[1, 0], [1, 0], [0, 1]]
    assert m.cosine.mean_pairwise_cosine(v) == pytest.approx(1 / 3, abs=1e-12)
    assert m.cosine.mean_pairwise_cosine(v, normalisation="paper_literal") == pytest.approx(2 / 3, abs=1e-12)


def test_mean_pairwise_cosine_literal_scales_with_set_size():
    # e1, e2, (1,1): unordered cosines 0, 1/sqrt2, 1/sqrt2 -> mean sqrt2/3
    # literal = ordered sum / M = 2*sqrt2/3 = (M-1) * mean
    v = [[1, 0], [0, 1], [1, 1]]
    mean = m.cosine.mean_pairwise_cosine(v)
    assert mean == pytest.approx(R2 / 3, abs=1e-12)
    assert m.cosine.mean_pairwise_cosine(v, "paper_literal") == pytest.approx(2 * mean, abs=1e-12)
    # for M = 2 the two normalisations agree: 2*cos / 2 = cos / 1
    pair = [[1, 0], [1, 1]]
    assert m.cosine.mean_pairwise_cosine(pair) == pytest.approx(1 / R2)
    assert m.cosine.mean_pairwise_cosine(pair, "paper_literal") == pytest.approx(1 / R2)


def test_mean_pairwise_cosine_per_layer():
    # (M=2, L=2, d=2). layer 0: [1,0],[1,0] -> 1 ; layer 1: [1,0],[0,1] -> 0
    v = np.array([[[1, 0], [1, 0]], [[1, 0], [0, 1]]], dtype=float)
    np.testing.assert_allclose(m.cosine.mean_pairwise_cosine(v), [1.0, 0.0], atol=1e-12)


def test_mean_pairwise_cosine_errors():
    with pytest.raises(ValueError, match="at least 2 members"):
        m.cosine.mean_pairwise_cosine([[1, 0]])
    with pytest.raises(ValueError, match="normalisation"):
        m.cosine.mean_pairwise_cosine([[1, 0], [0, 1]], normalisation="mean")
    with pytest.raises(ValueError, match="NaN"):
        m.cosine.mean_pairwise_cosine([[1, np.nan], [0, 1]])
    with pytest.raises(ValueError, match="2-D"):
        m.cosine.mean_pairwise_cosine([1, 0])


# rows interleave two sets: a = rows 0, 2 ; b = rows 1, 3, 4
REPS = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [1, 1]], dtype=float)
SETS = ["a", "b", "a", "b", "b"]
# set a: [1,0],[1,0] -> cos 1
# set b: [1,0],[0,1],[1,1] -> cosines 0, 1/sqrt2, 1/sqrt2 -> mean sqrt2/3 ; literal 2*sqrt2/3
COS_A, COS_B = 1.0, R2 / 3


def test_paraphrase_cosine_per_set_and_macro():
    per_set = m.cosine.paraphrase_cosine_per_set(REPS, SETS)
    assert list(per_set.index) == ["a", "b"]
    assert list(per_set.columns) == ["cos"]
    np.testing.assert_allclose(per_set["cos"], [COS_A, COS_B], atol=1e-12)
    # eq. 3: macro average (1 + sqrt2/3) / 2, not the pair-weighted mean (1 + 3*sqrt2/3)/4
    assert m.cosine.paraphrase_cosine(REPS, SETS) == pytest.approx((COS_A + COS_B) / 2, abs=1e-12)
    literal = m.cosine.paraphrase_cosine(REPS, SETS, normalisation="paper_literal")
    # set a: 2*1/2 = 1 ; set b: 2*sqrt2/3 -> macro (1 + 2*sqrt2/3) / 2
    assert literal == pytest.approx((1 + 2 * R2 / 3) / 2, abs=1e-12)


def test_paraphrase_cosine_per_layer():
    # layer 0 = REPS ; layer 1: every vector [1,0] -> both sets 1
    reps3 = np.stack([REPS, np.tile([1.0, 0.0], (5, 1))], axis=1)
    per_set = m.cosine.paraphrase_cosine_per_set(reps3, SETS)
    assert list(per_set.columns) == [0, 1]
    np.testing.assert_allclose(per_set.to_numpy(), [[COS_A, 1], [COS_B, 1]], atol=1e-12)
    np.testing.assert_allclose(m.cosine.paraphrase_cosine(reps3, SETS), [(COS_A + COS_B) / 2, 1], atol=1e-12)


def test_paraphrase_cosine_singletons():
    reps = np.vstack([REPS, [[3, 4]]])
    sets = SETS + ["c"]
    with pytest.raises(ValueError, match="single member"):
        m.cosine.paraphrase_cosine_per_set(reps, sets)
    per_set = m.cosine.paraphrase_cosine_per_set(reps, sets, drop_singletons=True)
    assert list(per_set.index) == ["a", "b"]
    with pytest.raises(ValueError, match="every paraphrase set"):
        m.cosine.paraphrase_cosine(REPS[:2], ["x", "y"], drop_singletons=True)


def test_paraphrase_cosine_errors():
    with pytest.raises(ValueError, match="length"):
        m.cosine.paraphrase_cosine(REPS, SETS[:4])
    with pytest.raises(ValueError, match="missing"):
        m.cosine.paraphrase_cosine(REPS, ["a", None, "a", "b", "b"])
    with pytest.raises(ValueError, match="empty"):
        m.cosine.paraphrase_cosine(np.zeros((0, 2)), [])


def test_sample_nonparaphrase_pairs_deterministic_and_cross_set():
    sets = np.array([0, 0, 1, 1, 1, 2, 3, 3])  # set 2 has one member: not a paraphrase set
    p1 = m.cosine.sample_nonparaphrase_pairs(sets, 501, seed=3)
    p2 = m.cosine.sample_nonparaphrase_pairs(sets, 501, seed=3)
    p3 = m.cosine.sample_nonparaphrase_pairs(sets, 501, seed=4)
    assert list(p1.columns) == ["set_id", "row_a", "row_b"] and len(p1) == 501
    assert p1.equals(p2) and not p1.equals(p3)
    a, b = p1["row_a"].to_numpy(), p1["row_b"].to_numpy()
    assert np.all(sets[a] != sets[b]) and np.all(sets[a] == p1["set_id"].to_numpy())
    # the first set runs over the three paraphrase sets in turn: 167 pairs each
    assert p1["set_id"].value_counts().to_dict() == {0: 167, 1: 167, 3: 167}
    # the singleton's row (5) is never drawn, every other row is, and every ordered pair of sets is
    assert 5 not in set(a) | set(b) and set(a) | set(b) == {0, 1, 2, 3, 4, 6, 7}
    assert len({(sets[i], sets[j]) for i, j in zip(a, b)}) == 3 * 2


def test_sample_nonparaphrase_pairs_weighs_every_set_alike():
    sets = np.array([0, 0, 1, 1, 2, 2])  # N = 3 paraphrase sets
    # K = qN + r: the first qN pairs run over the sets in turn, the last r pairs take r distinct sets
    pairs = m.cosine.sample_nonparaphrase_pairs(sets, 8, seed=1)  # q = 2, r = 2
    assert pairs["set_id"].tolist()[:6] == [0, 1, 2, 0, 1, 2]
    tail = pairs["set_id"].tolist()[6:]
    assert len(set(tail)) == 2 and sorted(pairs["set_id"].value_counts().tolist()) == [2, 3, 3]
    # every set is p_i of K/N pairs in expectation, whatever K: with K = 2 < N = 3, each set is drawn
    # first in 2/3 of the seeds (cycling in data order would draw sets 0 and 1 always, set 2 never)
    drawn = np.zeros(3)
    for seed in range(600):
        drawn += np.bincount(m.cosine.sample_nonparaphrase_pairs(sets, 2, seed=seed)["set_id"].astype(int), minlength=3)
    np.testing.assert_allclose(drawn / 600, [2 / 3] * 3, atol=0.06)


def test_eq4_expectation_with_a_singleton_set():
    # sets A = {a1, a2}, B = {b1, b2}, C = {c} (one member). Every A-B cosine is 0 (a1, a2 span x and y,
    # b1 = b2 = z), every cosine with c = (1, 1, 1)/sqrt(3) is 1/sqrt(3). The symmetric eq. 4 draws p_i and
    # p_j among the paraphrase sets A and B only, so every draw has cosine 0: the expectation, and any
    # estimate, is exactly 0. Drawing C as a partner of A or B (p_j among all sets) would give
    # (1/2)(0) + (1/2)(1/sqrt(3)) = 0.289 instead.
    reps = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [1, 1, 1]], dtype=float)
    sets = ["A", "A", "B", "B", "C"]
    pairs = m.cosine.sample_nonparaphrase_pairs(sets, 1000, seed=0)
    assert set(pairs["set_id"]) == {"A", "B"} and 4 not in set(pairs["row_a"]) | set(pairs["row_b"])
    assert m.cosine.nonparaphrase_cosine(reps, sets, n_pairs=1000, seed=0) == pytest.approx(0.0, abs=1e-12)
    # eq. 3 over the same two sets: cos(A) = 0, cos(B) = 1, so the gap is 0.5 - 0 exactly
    gap = m.cosine.paraphrase_gap(reps, sets, n_pairs=1000, seed=0, drop_singletons=True)
    assert gap == pytest.approx(0.5, abs=1e-12)


def test_paraphrase_gap_per_set_by_hand():
    # set A = {e1, e1}: cos 1; set B = {e1, e2}: cos 0; C = {e2} has one member and is left out.
    reps = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
    sets = ["A", "A", "B", "B", "C"]
    # pairs: A gets (e1, e2) -> 0 and (e1, e1) -> 1 (mean 0.5); B gets (e2, e2) -> 1
    a = reps[[0, 1, 3]]
    b = reps[[3, 2, 4]]
    table = m.cosine.paraphrase_gap_per_set(reps, sets, a, b, ["A", "A", "B"])
    assert list(table.index) == ["A", "B"]
    np.testing.assert_allclose(table["cos_para"], [1.0, 0.0])
    np.testing.assert_allclose(table["cos_nonpara"], [0.5, 1.0])
    np.testing.assert_allclose(table["gap"], [0.5, -1.0])
    assert table["n_nonpara"].tolist() == [2, 1] and table["n_members"].tolist() == [2, 2]
    with pytest.raises(ValueError, match="without non-paraphrase pairs"):
        m.cosine.paraphrase_gap_per_set(reps, sets, a[:2], b[:2], ["A", "A"])


def test_sample_nonparaphrase_pairs_errors():
    with pytest.raises(ValueError, match="at least 2 distinct sets"):
        m.cosine.sample_nonparaphrase_pairs(["a", "a", "a"], 10)
    with pytest.raises(ValueError, match="at least 2 distinct sets"):
        m.cosine.sample_nonparaphrase_pairs(["a", "a", "b"], 10)  # b has one member
    with pytest.raises(ValueError, match="n_pairs"):
        m.cosine.sample_nonparaphrase_pairs(["a", "a", "b", "b"], 0)


def test_pair_cosines_and_nonparaphrase_with_explicit_pairs():
    reps = np.array([[1, 0], [0, 1], [1, 1]], dtype=float)
    # cos(row0,row1) = 0 ; cos(row0,row2) = 1/sqrt2 -> mean 1/(2 sqrt2)
    np.testing.assert_allclose(m.cosine.pair_cosines(reps[[0, 0]], reps[[1, 2]]), [0, 1 / R2], atol=1e-12)
    got = m.cosine.nonparaphrase_cosine(reps, None, pairs=np.array([[0, 1], [0, 2]]))
    assert got == pytest.approx(1 / (2 * R2), abs=1e-12)
    with pytest.raises(ValueError, match="shape mismatch"):
        m.cosine.pair_cosines(reps[:2], reps)
    with pytest.raises(ValueError, match=r"\(K, 2\)"):
        m.cosine.nonparaphrase_cosine(reps, None, pairs=np.array([0, 1]))
    with pytest.raises(ValueError, match="lie in"):
        m.cosine.nonparaphrase_cosine(reps, None, pairs=np.array([[0, 3]]))
    with pytest.raises(ValueError, match="give set_ids"):
        m.cosine.nonparaphrase_cosine(reps, None)


def test_nonparaphrase_cosine_sampled_exact_when_cross_cosines_equal():
    # set a: all [1,0] ; set b: all [1,1] -> every cross-set pair has cosine 1/sqrt2
    reps = np.array([[1, 0], [2, 0], [1, 1], [3, 3], [5, 5]], dtype=float)
    sets = ["a", "a", "b", "b", "b"]
    assert m.cosine.nonparaphrase_cosine(reps, sets, n_pairs=50, seed=1) == pytest.approx(1 / R2)
    # gap (Table 1 sign): cos(paraph.) = (1 + 1)/2 = 1 ; minus 1/sqrt2
    assert m.cosine.paraphrase_gap(reps, sets, n_pairs=50) == pytest.approx(1 - 1 / R2)


def test_paraphrase_gap_explicit_nonparaphrase_pairs_mrpc_style():
    # paraphrase pairs: set 0 = [1,0],[1,1] (cos 1/sqrt2) ; set 1 = [0,1],[0,2] (cos 1)
    reps = np.array([[1, 0], [1, 1], [0, 1], [0, 2]], dtype=float)
    # non-paraphrase pairs: ([1,0],[0,1]) cos 0 ; ([0,1],[1,1]) cos 1/sqrt2 -> mean 1/(2 sqrt2)
    non_a = np.array([[1, 0], [0, 1]], dtype=float)
    non_b = np.array([[0, 1], [1, 1]], dtype=float)
    # gap = (1/sqrt2 + 1)/2 - 1/(2 sqrt2) = 1/2
    gap = m.cosine.paraphrase_gap(reps, [0, 0, 1, 1], nonparaphrase=(non_a, non_b))
    assert gap == pytest.approx(0.5, abs=1e-12)
    with pytest.raises(ValueError, match="layer axis"):
        m.cosine.paraphrase_gap(reps, [0, 0, 1, 1], nonparaphrase=(non_a[:, None, :], non_b[:, None, :]))


def test_paraphrase_gap_per_layer():
    # layer 0: set a = [1,0]s, set b = [0,1]s -> para 1, non-para 0 -> gap 1
    # layer 1: everything [1,0] -> para 1, non-para 1 -> gap 0
    layer0 = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
    reps3 = np.stack([layer0, np.tile([1.0, 0.0], (4, 1))], axis=1)
    gap = m.cosine.paraphrase_gap(reps3, ["a", "a", "b", "b"], n_pairs=20, seed=0)
    np.testing.assert_allclose(gap, [1.0, 0.0], atol=1e-12)


def test_grouped_pair_cosine_and_relation_similarity():
    reps = np.array([[1, 0], [0, 1], [1, 1], [2, 0]], dtype=float)
    pairs = np.array([[0, 3], [0, 1], [1, 2]])
    # r1: cos([1,0],[2,0]) = 1 ; r2: (cos([1,0],[0,1]) + cos([0,1],[1,1]))/2 = (0 + 1/sqrt2)/2
    table = m.cosine.grouped_pair_cosine(reps, pairs, ["r1", "r2", "r2"])
    np.testing.assert_allclose(table["cos"], [1.0, 1 / (2 * R2)], atol=1e-12)
    # macro over relations: (1 + 1/(2 sqrt2)) / 2 (the pair-pooled mean would be (1 + 1/sqrt2)/3)
    sim = m.relations.relation_similarity(reps, pairs, ["r1", "r2", "r2"])
    assert sim == pytest.approx((1 + 1 / (2 * R2)) / 2, abs=1e-12)
    per_rel = m.relations.relation_similarity(reps, pairs, ["r1", "r2", "r2"], per_relation=True)
    assert list(per_rel.index) == ["r1", "r2"]
    # per layer: duplicate the layer -> same value twice
    reps3 = np.stack([reps, reps], axis=1)
    np.testing.assert_allclose(m.relations.relation_similarity(reps3, pairs, ["r1", "r2", "r2"]), [sim, sim])
    with pytest.raises(ValueError, match="groups has length"):
        m.cosine.grouped_pair_cosine(reps, pairs, ["r1"])
    with pytest.raises(ValueError, match="integer"):
        m.cosine.grouped_pair_cosine(reps, pairs.astype(float), ["r1", "r2", "r2"])


def test_grouped_pair_cosine_matches_per_set_with_all_pairs():
    # all unordered pairs of each set reproduce eq. 2 with normalisation="pairs"
    pairs = np.array([[0, 2], [1, 3], [1, 4], [3, 4]])
    table = m.cosine.grouped_pair_cosine(REPS, pairs, ["a", "b", "b", "b"])
    np.testing.assert_allclose(table["cos"], [COS_A, COS_B], atol=1e-12)


# ----------------------------------------------------------------------------- ParaRel


def pararel_frame():
    rows = [
        # relation P1 (1-1): f1 with three templates, f2 with two
        ("P1", "f1", "t1", "Paris", "Paris"),
        ("P1", "f1", "t2", "Paris", "Paris"),
        ("P1", "f1", "t3", "Lyon", "Paris"),
        ("P1", "f2", "t1", "Rome", "Milan"),
        ("P1", "f2", "t2", "Rome", "Milan"),
        # relation P2 (N-M): either language is correct
        ("P2", "f3", "u1", "English", ["English", "French"]),
        ("P2", "f3", "u2", "French", ["English", "French"]),
    ]
    return pd.DataFrame(rows, columns=["relation", "fact_id", "template_id", "prediction", "gold"])


def test_pararel_query_pairs_labels():
    pairs = m.pararel.pararel_query_pairs(pararel_frame())
    # f1: (t1,t2) same, (t1,t3) differ, (t2,t3) differ ; f2: (t1,t2) same ; f3: differ
    assert list(zip(pairs["row_a"], pairs["row_b"])) == [(0, 1), (0, 2), (1, 2), (3, 4), (5, 6)]
    assert list(pairs["consistent"]) == [True, False, False, True, False]
    assert list(pairs["template_a"]) == ["t1", "t1", "t2", "t1", "u1"]


def test_pararel_scores_and_macro():
    scores = m.pararel.pararel_scores(pararel_frame())
    p1, p2 = scores.loc["P1"], scores.loc["P2"]
    # P1 consistency pooled over pairs: f1 1/3 agreeing, f2 1/1 -> (1 + 1) / (3 + 1) = 0.5
    # P1 accuracy: f1 2 of 3 correct, f2 0 of 2 -> 2/5 = 0.4
    assert (p1["n_facts"], p1["n_queries"], p1["n_pairs"]) == (2, 5, 4)
    assert p1["consistency"] == pytest.approx(0.5)
    assert p1["accuracy"] == pytest.approx(0.4)
    # P2: both predictions in the gold set -> accuracy 1 ; the one pair disagrees -> 0
    assert p2["accuracy"] == pytest.approx(1.0)
    assert p2["consistency"] == pytest.approx(0.0)
    macro = m.pararel.pararel_macro(pararel_frame())
    # macro over relations: accuracy (0.4 + 1)/2 = 0.7 ; consistency (0.5 + 0)/2 = 0.25
    assert macro["accuracy"] == pytest.approx(0.7)
    assert macro["consistency"] == pytest.approx(0.25)
    assert macro["n_relations"] == 2 and macro["n_relations_with_pairs"] == 2
    # micro: 2 + 2 correct of 7 queries
    assert macro["accuracy_micro"] == pytest.approx(4 / 7)
    # the per-relation table is accepted too
    assert m.pararel.pararel_macro(scores)["consistency"] == pytest.approx(0.25)


def test_a_relation_with_one_template_keeps_its_accuracy():
    one = pararel_frame().drop(index=6)  # P2 left with one template (u1, correct): no pair
    scores = m.pararel.pararel_scores(one)
    assert scores.loc["P2", "n_pairs"] == 0 and np.isnan(scores.loc["P2", "consistency"])
    assert scores.loc["P2", "accuracy"] == 1.0
    macro = m.pararel.pararel_macro(one)
    # accuracy over both relations (0.4 + 1)/2 = 0.7; consistency over P1 only = 0.5; micro 3 of 6
    assert (macro["accuracy"], macro["consistency"], macro["accuracy_micro"]) == pytest.approx((0.7, 0.5, 0.5))
    assert (macro["n_relations"], macro["n_relations_with_pairs"]) == (2, 1)
    with pytest.raises(ValueError, match="no relation has a fact queried with two templates"):
        m.pararel.pararel_macro(one[one["relation"] == "P2"])


def test_pararel_errors():
    df = pararel_frame()
    with pytest.raises(ValueError, match="lacks column"):
        m.pararel.pararel_scores(df.drop(columns="gold"))
    with pytest.raises(ValueError, match="duplicate"):
        m.pararel.pararel_scores(pd.concat([df, df.iloc[[0]]]))
    with pytest.raises(ValueError, match="empty"):
        m.pararel.pararel_scores(df.iloc[:0])
    bad = df.copy()
    bad.loc[0, "prediction"] = None
    with pytest.raises(ValueError, match="missing"):
        m.pararel.pararel_scores(bad)
    with pytest.raises(TypeError):
        m.pararel.pararel_scores(df.to_dict())


# ----------------------------------------------------------------------------- MMLU


def test_mmlu_predictions():
    lp = [[-1, -2, -3, -4], [-3, -1, -2, -5], [-2, -2, -1, -9]]
    np.testing.assert_array_equal(m.mmlu.mmlu_predictions(lp), [0, 1, 2])
    # a tie goes to the first option
    assert m.mmlu.mmlu_predictions([[-1, -1, -2, -3]])[0] == 0
    with pytest.raises(ValueError, match="choice_logprobs"):
        m.mmlu.mmlu_predictions(np.zeros((0, 4)))


def mmlu_frame():
    correct = {
        (0, "i1"): [1, 1, 0, 0],  # 0.50
        (0, "i2"): [1, 1, 1, 0],  # 0.75
        (0, "i3"): [1, 0, 0, 0],  # 0.25  -> spread 0.75 - 0.25 = 0.50
        (1, "i1"): [1, 1, 1, 1],  # 1.00
        (1, "i2"): [1, 1, 1, 0],  # 0.75
        (1, "i3"): [1, 1, 1, 0],  # 0.75  -> spread 1.00 - 0.75 = 0.25
    }
    rows = [
        (shuffle, instr, q, bool(c))
        for (shuffle, instr), cs in correct.items()
        for q, c in enumerate(cs)
    ]
    return pd.DataFrame(rows, columns=["shuffle", "instruction", "question", "correct"])


def test_mmlu_spread_readings_differ_and_summary():
    frame = mmlu_frame().rename(columns={"question": "question_id"})
    cube, questions, shuffles, instructions = m.mmlu.mmlu_cube(frame)
    assert cube.shape == (4, 2, 3) and shuffles == [0, 1] and instructions == ["i1", "i2", "i3"]
    # each instruction averaged over shufflings: i1 (0.5 + 1)/2 = 0.75, i2 0.75, i3 (0.25 + 0.75)/2 = 0.5
    # -> max - min = 0.75 - 0.5 = 0.25
    assert m.mmlu.mmlu_spread(cube, "instruction_mean") == pytest.approx(0.25)
    # secondary: max - min within each shuffling (0.5 and 0.25), averaged -> 0.375 (never smaller)
    assert m.mmlu.mmlu_spread(cube, "per_shuffle") == pytest.approx(0.375)
    # leading axes are kept: two stacked copies give two spreads
    np.testing.assert_allclose(m.mmlu.mmlu_spread(np.stack([cube, cube]), "instruction_mean"), [0.25, 0.25])
    assert m.mmlu.mmlu_spread(cube) == m.mmlu.mmlu_spread(cube, m.mmlu.HEADLINE_READING)
    summary = m.mmlu.mmlu_summary(frame)
    # accuracy: mean of 6 setups (0.5+0.75+0.25+1+0.75+0.75)/6 = 4/6
    assert summary["accuracy"] == pytest.approx(4 / 6) and summary["n_setups"] == 6
    assert (summary["spread_instruction_mean"], summary["spread_per_shuffle"]) == pytest.approx((0.25, 0.375))
    assert summary["spread"] == summary[f"spread_{m.mmlu.HEADLINE_READING}"]


def test_mmlu_spread_errors():
    df = mmlu_frame().rename(columns={"question": "question_id"})
    with pytest.raises(ValueError, match="at least 2 instructions"):
        m.mmlu.mmlu_cube(df[df["instruction"] == "i1"])
    with pytest.raises(ValueError, match="every"):
        m.mmlu.mmlu_cube(df[~((df["shuffle"] == 1) & (df["instruction"] == "i3"))])
    bad = df.assign(correct=df["correct"].astype(int) * 2)
    with pytest.raises(ValueError, match="0/1"):
        m.mmlu.mmlu_cube(bad)
    with pytest.raises(ValueError, match="lacks column"):
        m.mmlu.mmlu_cube(df.drop(columns="shuffle"))
    with pytest.raises(ValueError, match="reading"):
        m.mmlu.mmlu_spread(np.zeros((2, 2, 2)), "median")


# ----------------------------------------------------------------------------- BECEL

ORIG = [0, 1, 2, 0, 1]
PERT = [0, 1, 1, 2, 1]  # agree at items 0, 1, 4 -> 3/5


def test_becel_semantic_symmetric_negational():
    assert m.becel.becel_consistency(ORIG, PERT, "semantic") == pytest.approx(0.6)
    assert m.becel.becel_consistency(ORIG, PERT, "symmetric") == pytest.approx(0.6)
    # negation: consistent when the prediction changes -> 2/5 ; any change counts,
    # including 2 -> 1 (contradiction -> neutral) at item 2
    assert m.becel.becel_consistency(ORIG, PERT, "negational") == pytest.approx(0.4)


def test_becel_item_indicators_and_their_means():
    # ORIG vs PERT: equal at items 0, 1, 4; different at 2 (2 -> 1) and 3 (0 -> 2)
    for kind in ("semantic", "symmetric"):
        items = m.becel.becel_item_consistency(ORIG, PERT, kind)
        assert items.tolist() == [1, 1, 0, 0, 1] and items.dtype.kind == "i"
        assert m.becel.becel_consistency(ORIG, PERT, kind) == items.mean() == 0.6
    negated = m.becel.becel_item_consistency(ORIG, PERT, "negational")
    assert negated.tolist() == [0, 0, 1, 1, 0]
    assert m.becel.becel_consistency(ORIG, PERT, "negational") == negated.mean() == 0.4
    correct = m.becel.item_accuracy([1, 0, 1, 1], [1, 0, 0, 1])
    assert correct.tolist() == [1, 1, 0, 1]
    assert m.becel.accuracy([1, 0, 1, 1], [1, 0, 0, 1]) == correct.mean() == 0.75
    with pytest.raises(ValueError, match="kind"):
        m.becel.becel_item_consistency(ORIG, PERT, "transitive")
    with pytest.raises(ValueError, match="length mismatch"):
        m.becel.item_accuracy([1, 0], [1])


def test_becel_conditioned_on_original_prediction():
    # original prediction 0 at items 0, 3: agree at 0 only -> 1/2
    assert m.becel.becel_consistency(ORIG, PERT, "symmetric", condition_on=0) == pytest.approx(0.5)
    assert m.becel.becel_consistency(ORIG, PERT, "negational", condition_on=0) == pytest.approx(0.5)
    # original prediction 1 at items 1, 4: both agree -> symmetric 1, negational 0
    assert m.becel.becel_consistency(ORIG, PERT, "symmetric", condition_on=1) == pytest.approx(1.0)
    assert m.becel.becel_consistency(ORIG, PERT, "negational", condition_on=1) == pytest.approx(0.0)


def test_becel_errors():
    with pytest.raises(ValueError, match="kind"):
        m.becel.becel_consistency(ORIG, PERT, "transitive")
    with pytest.raises(ValueError, match="length mismatch"):
        m.becel.becel_consistency(ORIG, PERT[:4], "semantic")
    with pytest.raises(ValueError, match="empty"):
        m.becel.becel_consistency([], [], "semantic")
    with pytest.raises(ValueError, match="symmetric and negational only"):
        m.becel.becel_consistency(ORIG, PERT, "semantic", condition_on=0)
    with pytest.raises(ValueError, match="no item"):
        m.becel.becel_consistency(ORIG, PERT, "symmetric", condition_on=7)


def test_becel_label_consistency_and_accuracy():
    # WiC-like negation: labels unchanged. Predictions change only at item 2.
    po, pp = [1, 0, 1, 0], [1, 0, 0, 0]
    lo = lp = [1, 0, 1, 0]
    # label-aware: consistent where predictions stay the same -> 3/4
    assert m.becel.becel_label_consistency(po, pp, lo, lp) == pytest.approx(0.75)
    # BECEL's negational rule rewards the single change -> 1/4
    assert m.becel.becel_consistency(po, pp, "negational") == pytest.approx(0.25)
    # SNLI-like negation where every label flips: the two rules agree (0.4 both)
    assert m.becel.becel_label_consistency(ORIG, PERT, [0] * 5, [2] * 5) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="length mismatch"):
        m.becel.becel_label_consistency(po, pp, lo[:3], lp[:3])
    # accuracy: 3 of 4 equal
    assert m.becel.accuracy([1, 0, 1, 1], [1, 0, 0, 1]) == pytest.approx(0.75)


# ----------------------------------------------------------------------------- attributes

STOP = {"the", "is", "in", "of"}


def test_clean_token():
    assert m.attributes.clean_token("\u2581Paris") == "Paris"  # sentencepiece
    assert m.attributes.clean_token("\u0120Paris") == "Paris"  # GPT-2 byte-level BPE
    assert m.attributes.clean_token(" the \n") == "the"
    assert m.attributes.clean_token("\u010a") == ""
    with pytest.raises(TypeError):
        m.attributes.clean_token(3)


def test_attribute_set():
    toks = ["▁The", "▁Eiffel", "▁Tower", "▁is", "▁in", "▁Paris", ".", "▁Paris", "▁France", "ĠFrance", "▁of", "▁Fr"]
    # "The" is a stopword despite the capital; "." and "Fr" are shorter than 3; duplicates collapse
    assert m.attributes.attribute_set(toks, STOP) == {"Eiffel", "Tower", "Paris", "France"}
    assert m.attributes.attribute_set(toks, STOP, lowercase=True) == {"eiffel", "tower", "paris", "france"}
    # one list per snippet is flattened
    assert m.attributes.attribute_set([["▁Paris"], ["▁Seine", "▁of"]], STOP) == {"Paris", "Seine"}
    with pytest.raises(TypeError):
        m.attributes.attribute_set("Paris France", STOP)
    with pytest.raises(TypeError):
        m.attributes.attribute_set(["Paris"], "the")


def test_subject_attribute_rate():
    top = ["▁the", "▁Paris", "▁of", "▁France", "▁xy", "▁London", "▁Tower"]
    attrs = {"Paris", "France", "Tower"}
    # survivors in rank order: Paris, France, London, Tower ("the", "of" stopwords; "xy" < 3)
    # k = 3 -> Paris, France, London -> 2/3 ; k = 50 -> all 4 survivors -> 3/4
    assert m.attributes.subject_attribute_rate(top, attrs, STOP, k=3) == pytest.approx(2 / 3)
    assert m.attributes.subject_attribute_rate(top, attrs, STOP) == pytest.approx(3 / 4)
    # one list per layer; a layer with no survivor is NaN
    rates = m.attributes.subject_attribute_rate([top, ["▁the", "▁of"]], attrs, STOP, k=3)
    np.testing.assert_allclose(rates, [2 / 3, np.nan])
    # case: exact by default, case-insensitive when both sides are lower-cased
    assert m.attributes.subject_attribute_rate(["▁paris"], {"Paris"}, STOP) == 0.0
    lower_attrs = m.attributes.attribute_set(["Paris"], STOP, lowercase=True)
    assert m.attributes.subject_attribute_rate(["▁Paris"], lower_attrs, STOP, lowercase=True) == 1.0


def test_subject_attribute_rate_errors():
    with pytest.raises(TypeError):
        m.attributes.subject_attribute_rate("Paris", {"Paris"}, STOP)
    with pytest.raises(ValueError, match="empty"):
        m.attributes.subject_attribute_rate([], {"Paris"}, STOP)
    with pytest.raises(ValueError, match="k must"):
        m.attributes.subject_attribute_rate(["Paris"], {"Paris"}, STOP, k=0)
    with pytest.raises(TypeError):
        m.attributes.subject_attribute_rate(["Paris", ["London"]], {"Paris"}, STOP)


# ----------------------------------------------------------------------------- extraction


def test_extraction_rate():
    top1 = np.array([[5, 7, 9], [5, 5, 9], [1, 7, 2], [9, 9, 9]])
    final = np.array([9, 5, 7, 9])
    # layer 0: hits at queries 1, 3 -> 2/4 ; layer 1: 1, 2, 3 -> 3/4 ; layer 2: 0, 3 -> 2/4
    np.testing.assert_allclose(m.extraction.extraction_rate(top1, final), [0.5, 0.75, 0.5])


def test_extraction_events_are_the_rate_per_query():
    top1 = np.array([[5, 7, 9], [5, 5, 9], [1, 7, 2], [9, 9, 9]])
    final = np.array([9, 5, 7, 9])
    events = m.extraction.extraction_events(top1, final)
    assert events.dtype == bool
    np.testing.assert_array_equal(events, [[False, False, True], [True, True, False], [False, True, False],
                                           [True, True, True]])
    np.testing.assert_array_equal(events.mean(axis=0), m.extraction.extraction_rate(top1, final))
    with pytest.raises(ValueError, match="integer"):
        m.extraction.extraction_events(np.zeros((3, 2)), np.zeros(3, int))


def test_extraction_rate_errors():
    with pytest.raises(ValueError, match="queries"):
        m.extraction.extraction_rate(np.zeros((3, 2), int), np.zeros(2, int))
    with pytest.raises(ValueError, match=r"\(n, L\)"):
        m.extraction.extraction_rate(np.zeros(3, int), np.zeros(3, int))
    with pytest.raises(ValueError, match="integer"):
        m.extraction.extraction_rate(np.zeros((3, 2)), np.zeros(3, int))
    with pytest.raises(ValueError, match="empty"):
        m.extraction.extraction_rate(np.zeros((0, 2), int), np.zeros(0, int))
