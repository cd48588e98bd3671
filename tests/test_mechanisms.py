"""ifhelpers.chapters.mechanisms on hand-made arrays and frames (no real model; seconds)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ifhelpers.chapters import mechanisms as mech
from ifhelpers import metrics


# ----------------------------------------------------------------------------- a fake ParaRel pass


def fake_pass(predictions_by_prompt):
    """Two facts of relation R1 with templates 0-2, one fact of R2 with templates 0-1.

    ``predictions_by_prompt[p]`` lists the 8 predicted ids in query order.
    """
    queries = pd.DataFrame({
        "relation": ["R1"] * 6 + ["R2"] * 2,
        "uuid": ["a", "a", "a", "b", "b", "b", "c", "c"],
        "subject": ["Sa"] * 3 + ["Sb"] * 3 + ["Sc"] * 2,
        "objects": [("x",)] * 3 + [("y",)] * 3 + [("z",)] * 2,
        "template_id": [0, 1, 2, 0, 1, 2, 0, 1],
        "final_word": ["in", "of", "at", "in", "of", "at", "is", "was"],
    })
    queries["query"] = queries["subject"] + " q" + queries["template_id"].astype(str)
    frames = []
    for p, preds in enumerate(predictions_by_prompt):
        f = queries.copy()
        f["prompt_id"] = p
        f["prediction_id"] = preds
        f["object_first_ids"] = [(1,)] * 3 + [(2,)] * 3 + [(3,)] * 2
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def test_relative_depth():
    np.testing.assert_allclose(mech.relative_depth([0, 9, 18], 18), [0, 0.5, 1])
    np.testing.assert_allclose(mech.relative_depth([0, 17], 18, "update"), [1 / 18, 1])
    with pytest.raises(ValueError):
        mech.relative_depth(1, 4, "block")


def test_prompt_rows_checks_alignment():
    frame = fake_pass([[1] * 8, [1] * 8])
    rows = mech.prompt_rows(frame)
    np.testing.assert_array_equal(rows[1], np.arange(8, 16))
    bad = frame.copy()
    bad.loc[9, "query"] = "other"
    with pytest.raises(ValueError, match="same queries"):
        mech.prompt_rows(bad)


def test_consistency_groups_follow_fig5():
    # base: mean 0.82, sd over prompts 0.02 (the threshold)
    summary = pd.DataFrame({"role": ["base", "instruction-tuned", "instruction-tuned", "instruction-tuned"],
                            "consistency": [0.82, 0.81, 0.83, 0.90], "consistency_std": [0.02, 0.0, 0.0, 0.0]},
                           index=pd.Index(["base", "low", "close", "high"], name="model"))
    groups = mech.consistency_groups(summary).set_index("model")
    assert groups["threshold"].iloc[0] == pytest.approx(0.02)
    assert groups["group"].to_dict() == {"base": "base", "low": "lower", "close": "higher-close", "high": "higher"}
    assert groups.loc["high", "difference"] == pytest.approx(0.08)
    # a given threshold wins; without a base model the role is the group
    assert mech.consistency_groups(summary, threshold=0.1).set_index("model").loc["high", "group"] == "higher-close"
    assert set(mech.consistency_groups(summary.iloc[1:])["group"]) == {"instruction-tuned"}


def test_consistency_groups_from_a_pass():
    from ifhelpers.chapters import predictions

    # prompt 0: fact a predicts 1,1,1 (3 of 3 pairs agree), fact b 2,2,5 (1 of 3), fact c 3,3 (1 of 1)
    #   -> R1 4/6, R2 1 -> macro 5/6 ; prompt 1: everything 9 -> 1. Mean 11/12.
    frame = fake_pass([[1, 1, 1, 2, 2, 5, 3, 3], [9] * 8])
    frame.attrs.update(model="m", role="base")
    summary = predictions.pararel_summary(predictions.pararel_scores(frame))
    groups = mech.consistency_groups(summary)
    assert groups["consistency"].item() == pytest.approx(11 / 12)
    assert groups["group"].item() == "base"


def test_sample_query_rows_keeps_all_prompts_and_spreads_relations():
    frame = fake_pass([[1] * 8, [1] * 8, [1] * 8])
    rows = mech.sample_query_rows(frame, 2, seed=3)
    chosen = frame.iloc[rows]
    assert len(rows) == 6  # 2 queries x 3 prompts
    assert chosen.groupby(["relation", "uuid", "template_id"]).size().eq(3).all()
    assert set(chosen["relation"]) == {"R1", "R2"}  # round-robin: one query per relation first
    np.testing.assert_array_equal(mech.sample_query_rows(frame, None), np.arange(24))
    np.testing.assert_array_equal(mech.sample_query_rows(frame, 2, seed=3), rows)


# ----------------------------------------------------------------------------- relations


def test_paraphrase_gap_table_splits():
    # One layer (L+1 = 1), d = 2. Prompt 0 predictions: fact a 1,1,4 ; fact b 2,2,2 ; fact c 3,5.
    #   reps: fact a: e1, e1, e2 -> pairs (0,1) cons cos 1, (0,2) inc 0, (1,2) inc 0
    #         fact b: e1, e2, e2 -> all consistent: cos 0, 0, 1 -> mean 1/3
    #         fact c: e1, e1     -> inconsistent, cos 1
    # consistent:   facts a (1), b (1/3)  -> cos(paraph.) = 2/3
    # inconsistent: facts a (0), c (1)    -> 1/2
    # all:          a 1/3, b 1/3, c 1     -> 5/9
    e1, e2 = [1.0, 0.0], [0.0, 1.0]
    reps = np.array([e1, e1, e2, e1, e2, e2, e1, e1])[:, None, :]
    frame = fake_pass([[1, 1, 4, 2, 2, 2, 3, 5]])
    table = mech.paraphrase_gap_table(frame, reps, n_nonparaphrase_pairs=200, seed=0).set_index("split")
    non = metrics.cosine.nonparaphrase_cosine(reps, mech._fact_key(frame), n_pairs=200, seed=0)
    assert table.loc["consistent", "cos_paraphrase"] == pytest.approx(2 / 3)
    assert table.loc["inconsistent", "cos_paraphrase"] == pytest.approx(1 / 2)
    assert table.loc["all", "cos_paraphrase"] == pytest.approx(5 / 9)
    np.testing.assert_allclose(table["cos_nonparaphrase"], float(non[0]))
    assert table.loc["consistent", "gap"] == pytest.approx(2 / 3 - float(non[0]))
    assert table.loc["consistent", "n_pairs"] == 4 and table.loc["inconsistent", "n_pairs"] == 3
    assert table.loc["inconsistent", "n_facts"] == 2


def test_paraphrase_gap_table_empty_split_is_nan():
    reps = np.random.default_rng(0).normal(size=(8, 2, 3))
    frame = fake_pass([[7] * 8])  # every pair consistent
    table = mech.paraphrase_gap_table(frame, reps, n_nonparaphrase_pairs=50)
    inc = table[table["split"] == "inconsistent"]
    assert inc["gap"].isna().all() and (inc["n_pairs"] == 0).all()
    assert len(table) == 3 * 2


def test_relation_similarity_table_per_prompt_and_relation():
    frame = fake_pass([[1] * 8, [1] * 8])
    pairs = pd.DataFrame({"kind": ["same_relation", "same_relation", "different_relation", "different_relation"],
                          "relation_a": ["R1", "R1", "R1", "R2"], "row_a": [0, 1, 0, 6], "row_b": [4, 5, 6, 2]})
    # prompt 0 states: all e1 except row 4 = e2 ; prompt 1: all e1
    reps = np.tile(np.array([[1.0, 0.0]]), (16, 1))
    reps[4] = [0.0, 1.0]
    reps = np.stack([reps, reps], axis=1)  # two layers, identical
    table = mech.relation_similarity_table(frame, reps, pairs)
    same0 = table[(table.prompt_id == 0) & (table.kind == "same_relation") & (table.layer == 1)]
    assert same0["cos"].item() == pytest.approx(0.5)  # pairs cos 0 and 1
    assert same0["n_pairs"].item() == 2
    assert table[(table.prompt_id == 1)]["cos"].eq(1.0).all()
    diff0 = table[(table.prompt_id == 0) & (table.kind == "different_relation")]
    assert diff0["cos"].eq(1.0).all()
    # R2 has no same-relation pair: left out unless matched=False
    assert set(table["relation"]) == {"R1"}
    unmatched = mech.relation_similarity_table(frame, reps, pairs, matched=False)
    assert set(unmatched["relation"]) == {"R1", "R2"}


# ----------------------------------------------------------------------------- extraction


def test_extraction_rates_and_events():
    frame = fake_pass([[1, 1, 1, 2, 2, 2, 3, 3], [1, 1, 1, 2, 2, 2, 3, 3]])
    pred = frame["prediction_id"].to_numpy()
    top_attn = np.stack([pred, np.where(np.arange(16) < 8, pred, 0)], axis=1)  # layer 0 always, layer 1 prompt 0
    top_mlp = np.zeros((16, 2), dtype=int)
    rates = mech.extraction_rates(frame, {"MHSA": top_attn, "MLP": top_mlp[..., None]})
    attn = rates[rates.block == "MHSA"].set_index(["prompt_id", "layer"])["rate"]
    assert attn[(0, 0)] == 1 and attn[(0, 1)] == 1 and attn[(1, 1)] == 0
    assert rates[rates.block == "MLP"]["rate"].eq(0).all()
    events = mech.extraction_events(frame, {"MHSA": top_attn})
    assert len(events) == 8 * 2
    assert events[events.layer == 1]["event"].eq(0.5).all()  # one of two prompts
    with pytest.raises(ValueError, match="blocks"):
        mech.extraction_rates(frame, {"attn": top_attn})


def _rates(models):
    rows = []
    for model, role, values in models:
        for block in mech.BLOCKS:
            rows += [{"model": model, "role": role, "block": block, "layer": l, "rate": v}
                     for l, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_extraction_correlation_undefined_below_three_models():
    rates = _rates([("base", "base", [0.1, 0.2]), ("it", "instruction-tuned", [0.3, 0.4])])
    table = mech.extraction_correlation(rates, pd.Series({"base": 0.8, "it": 0.9}))
    assert not table["defined"].any() and table["r"].isna().all()
    assert "at least 3" in table["message"].iloc[0]


def test_extraction_correlation_matches_scipy():
    import scipy.stats

    rates = _rates([("base", "base", [0.9, 0.9]), ("a", "instruction-tuned", [0.1, 0.5]),
                    ("b", "instruction-tuned", [0.2, 0.1]), ("c", "instruction-tuned", [0.4, 0.3])])
    consistency = pd.Series({"base": 0.1, "a": 0.7, "b": 0.8, "c": 0.9})
    table = mech.extraction_correlation(rates, consistency)
    row = table[(table.block == "MHSA") & (table.layer == 0)].iloc[0]
    ref = scipy.stats.pearsonr([0.1, 0.2, 0.4], [0.7, 0.8, 0.9])
    assert row["r"] == pytest.approx(ref.statistic) and row["p_value"] == pytest.approx(ref.pvalue)
    assert row["n_models"] == 3  # the base model is left out
    assert row["model"] == "a, b, c" and row["role"] == "instruction-tuned"


def test_extraction_correlation_different_depths():
    rates = pd.concat([_rates([(m, "instruction-tuned", [0.1, 0.2])]) for m in "ab"]
                      + [_rates([("c", "instruction-tuned", [0.1, 0.2, 0.3])])])
    table = mech.extraction_correlation(rates, pd.Series({"a": 0.1, "b": 0.2, "c": 0.3}))
    assert not table["defined"].any() and "depths" in table["message"].iloc[0]


# ----------------------------------------------------------------------------- subjects


def test_attribute_sets_and_rates():
    from conftest import make_tiny_tokenizer

    tok = make_tiny_tokenizer()
    stop = {"the", "is", "a"}
    sets = mech.attribute_sets(tok, {"paris": ["the capital of france is paris", "paris is a city"]}, stop)
    # tokens: the capital of france is paris paris is a city -> minus stopwords and < 3 chars ("of")
    assert sets["paris"] == frozenset({"capital", "france", "paris", "city"})
    frame = pd.DataFrame({"subject": ["paris"], "relation": ["R"], "template_id": [0], "prompt_id": [0]})
    # layer 0 top tokens: "the" (stop), "france" (in), "rome" (out), "of" (short), "city" (in)
    # layer 1: "rome", "italy"
    top = np.empty((1, 2, 5), dtype=object)
    top[0, 0] = ["the", " france", "rome", "of", "city"]
    top[0, 1] = ["rome", "italy", "the", "is", "a"]
    table = mech.attribute_rates(frame, top, sets, stop, k=2)
    assert table["rate"].tolist() == pytest.approx([0.5, 0.0])  # {france, rome} ; {rome, italy}
    assert table["n_kept"].tolist() == [2, 2]
    table = mech.attribute_rates(frame, top, sets, stop, k=10)
    assert table["rate"].tolist() == pytest.approx([2 / 3, 0.0])  # {france, rome, city}
    assert table["n_kept"].tolist() == [3, 2]


def test_mean_ci_by_layer_averages_units_first():
    # unit u1: prompts give 0 and 1 -> 0.5 ; unit u2: 1 -> mean over units 0.75
    table = pd.DataFrame({"model": "m", "unit": ["u1", "u1", "u2"], "layer": 0, "v": [0.0, 1.0, 1.0]})
    out = mech.mean_ci_by_layer(table, "v", "unit", by=["model"])
    assert list(out.columns) == ["model", "layer", "estimate", "low", "high", "n"]
    assert out["estimate"].item() == pytest.approx(0.75)
    assert out["low"].item() <= 0.75 <= out["high"].item()
    assert out["n"].item() == 2


def test_lens_token_strings_ranks_deeper_until_k_survive(tiny_lm):
    from ifhelpers.model import lens

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(2, 3, 32)).astype(np.float32)
    stop = {"the", "of", "is", "a", "in", "that", "it"}
    out = mech.lens_token_strings(tiny_lm, vectors, k=4, stopwords=stop, rank=2, max_rank=40)
    assert out.shape == (2, 3)
    full = lens.decode_tokens(tiny_lm, lens.top_tokens(tiny_lm, vectors, k=40))
    for i in range(2):
        for j in range(3):
            ranked = out[i, j]
            assert ranked == list(full[i, j][: len(ranked)])  # a prefix of the full ranking
            assert mech._kept_count(ranked, frozenset(stop), 4) == 4  # deep enough for k = 4
            assert len(ranked) in (2, 8, 32, 40)


def test_top_dims_share():
    # row 0: [3, 4, 0] -> squares 9, 16, 0: top-1 share 16/25 ; row 1: [1, 1, 1] -> 1/3
    resid = np.array([[[3.0, 4.0, 0.0]], [[1.0, 1.0, 1.0]]])
    np.testing.assert_allclose(mech.top_dims_share(resid, 1), [(16 / 25 + 1 / 3) / 2])
    np.testing.assert_allclose(mech.top_dims_share(resid, 3), [1.0])


def test_unique_prefix_rows(tiny_lm):
    # rows 0 and 1 share everything up to the subject ("paris"); row 2 has another prefix
    frame = pd.DataFrame({"prompt": ["paris is the capital of", "paris was born in", "it is known that paris is"],
                          "subject_token": [1, 1, 4]})  # token 0 is <bos>
    first, inverse = mech.unique_prefix_rows(tiny_lm, frame)
    np.testing.assert_array_equal(first, [0, 2])
    np.testing.assert_array_equal(inverse, [0, 0, 1])


def test_attribute_queries_from_the_mirror():
    queries, usable = mech.attribute_queries(min_snippets=5, n_subjects=3, seed=0, relations=["P36", "P17"])
    assert queries["subject"].nunique() == 3
    assert queries.groupby("subject")["uuid"].nunique().eq(1).all()  # one fact per subject, all its templates
    assert usable.attrs["n_usable"] == int(usable["usable"].sum()) >= 3
    assert set(queries["subject"]) <= set(usable.loc[usable["usable"], "subject"])
    assert (usable.loc[usable["usable"], "n_snippets"] >= 5).all()
    again, _ = mech.attribute_queries(min_snippets=5, n_subjects=3, seed=0, relations=["P36", "P17"])
    pd.testing.assert_frame_equal(queries, again)
