"""ifhelpers.chapters.mechanisms on hand-made arrays and frames (no real model; seconds)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from ifhelpers.chapters import mechanisms as mech
from ifhelpers import metrics
from ifhelpers.measure import stamp
from ifhelpers.measure import pararel as measure_pararel
from ifhelpers.measure import layers


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
    np.testing.assert_allclose(stamp.relative_depth([0, 9, 18], 18), [0, 0.5, 1])
    np.testing.assert_allclose(stamp.relative_depth([0, 17], 18, "update"), [1 / 18, 1])
    with pytest.raises(ValueError):
        stamp.relative_depth(1, 4, "block")


def test_prompt_rows_checks_alignment():
    frame = fake_pass([[1] * 8, [1] * 8])
    rows = layers.prompt_rows(frame)
    np.testing.assert_array_equal(rows[1], np.arange(8, 16))
    bad = frame.copy()
    bad.loc[9, "query"] = "other"
    with pytest.raises(ValueError, match="same queries"):
        layers.prompt_rows(bad)


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
    summary = predictions.pararel_summary(measure_pararel.pararel_prompt_scores(frame).assign(model="m", role="base"))
    groups = mech.consistency_groups(summary)
    assert groups["consistency"].item() == pytest.approx(11 / 12)
    assert groups["group"].item() == "base"


def test_sample_query_rows_keeps_all_prompts_and_spreads_relations():
    frame = fake_pass([[1] * 8, [1] * 8, [1] * 8])
    rows = layers.sample_query_rows(frame, 2, seed=3)
    chosen = frame.iloc[rows]
    assert len(rows) == 6  # 2 queries x 3 prompts
    assert chosen.groupby(["relation", "uuid", "template_id"]).size().eq(3).all()
    assert set(chosen["relation"]) == {"R1", "R2"}  # round-robin: one query per relation first
    np.testing.assert_array_equal(layers.sample_query_rows(frame, None), np.arange(24))
    np.testing.assert_array_equal(layers.sample_query_rows(frame, 2, seed=3), rows)


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
    table = layers.paraphrase_gap_table(frame, reps, n_nonparaphrase_pairs=200, seed=0).set_index("split")
    non = metrics.cosine.nonparaphrase_cosine(reps, layers._fact_key(frame), n_pairs=200, seed=0)
    assert table.loc["consistent", "cos_paraphrase"] == pytest.approx(2 / 3)
    assert table.loc["inconsistent", "cos_paraphrase"] == pytest.approx(1 / 2)
    assert table.loc["all", "cos_paraphrase"] == pytest.approx(5 / 9)
    np.testing.assert_allclose(table["cos_nonparaphrase"], float(non[0]))
    assert table.loc["consistent", "gap"] == pytest.approx(2 / 3 - float(non[0]))
    assert table.loc["consistent", "n_pairs"] == 4 and table.loc["inconsistent", "n_pairs"] == 3
    assert table.loc["inconsistent", "n_facts"] == 2


def test_paraphrase_gap_per_fact_averages_to_the_table():
    # the hand-made pass of test_paraphrase_gap_table_splits: facts a (consistent 1, inconsistent 0, all 1/3),
    # b (consistent 1/3, all 1/3), c (inconsistent 1, all 1), less the prompt's non-paraphrase cosine
    e1, e2 = [1.0, 0.0], [0.0, 1.0]
    reps = np.array([e1, e1, e2, e1, e2, e2, e1, e1])[:, None, :]
    frame = fake_pass([[1, 1, 4, 2, 2, 2, 3, 5]])
    facts = layers.paraphrase_gap_per_fact(frame, reps, n_nonparaphrase_pairs=200, seed=0)
    assert list(facts.columns) == ["prompt_id", "split", "fact", "layer", "cos_paraphrase", "gap"]
    cos = facts.set_index(["split", "fact"])["cos_paraphrase"]
    assert cos[("consistent", "R1:a")] == pytest.approx(1) and cos[("consistent", "R1:b")] == pytest.approx(1 / 3)
    assert cos[("inconsistent", "R2:c")] == pytest.approx(1) and cos[("all", "R1:a")] == pytest.approx(1 / 3)
    assert ("consistent", "R2:c") not in cos.index  # fact c has no consistent pair
    # several layers and prompts, random states: the mean over facts is the table's gap exactly
    reps = np.random.default_rng(1).normal(size=(16, 3, 4))
    frame = fake_pass([[1, 1, 4, 2, 2, 2, 3, 5], [1, 2, 1, 2, 2, 5, 3, 3]])
    table = layers.paraphrase_gap_table(frame, reps, n_nonparaphrase_pairs=30, seed=2).set_index(
        ["prompt_id", "split", "layer"])["gap"]
    facts = layers.paraphrase_gap_per_fact(frame, reps, n_nonparaphrase_pairs=30, seed=2)
    means = facts.groupby(["prompt_id", "split", "layer"])["gap"].mean()
    np.testing.assert_allclose(means.to_numpy(), table.reindex(means.index).to_numpy(), rtol=1e-12)
    assert table.dropna().index.sort_values().equals(means.index.sort_values())


def test_paraphrase_gap_table_empty_split_is_nan():
    reps = np.random.default_rng(0).normal(size=(8, 2, 3))
    frame = fake_pass([[7] * 8])  # every pair consistent
    table = layers.paraphrase_gap_table(frame, reps, n_nonparaphrase_pairs=50)
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
    table = layers.relation_similarity_table(frame, reps, pairs)
    same0 = table[(table.prompt_id == 0) & (table.kind == "same_relation") & (table.layer == 1)]
    assert same0["cos"].item() == pytest.approx(0.5)  # pairs cos 0 and 1
    assert same0["n_pairs"].item() == 2
    assert table[(table.prompt_id == 1)]["cos"].eq(1.0).all()
    diff0 = table[(table.prompt_id == 0) & (table.kind == "different_relation")]
    assert diff0["cos"].eq(1.0).all()
    # R2 has no same-relation pair: left out unless matched=False
    assert set(table["relation"]) == {"R1"}
    unmatched = layers.relation_similarity_table(frame, reps, pairs, matched=False)
    assert set(unmatched["relation"]) == {"R1", "R2"}


# ----------------------------------------------------------------------------- extraction


def test_extraction_rates_and_events():
    frame = fake_pass([[1, 1, 1, 2, 2, 2, 3, 3], [1, 1, 1, 2, 2, 2, 3, 3]])
    pred = frame["prediction_id"].to_numpy()
    top_attn = np.stack([pred, np.where(np.arange(16) < 8, pred, 0)], axis=1)  # layer 0 always, layer 1 prompt 0
    top_mlp = np.zeros((16, 2), dtype=int)
    rates = layers.extraction_rates(frame, {"MHSA": top_attn, "MLP": top_mlp[..., None]})
    attn = rates[rates.block == "MHSA"].set_index(["prompt_id", "layer"])["rate"]
    assert attn[(0, 0)] == 1 and attn[(0, 1)] == 1 and attn[(1, 1)] == 0
    assert rates[rates.block == "MLP"]["rate"].eq(0).all()
    events = layers.extraction_events(frame, {"MHSA": top_attn})
    assert len(events) == 8 * 2
    assert events[events.layer == 1]["event"].eq(0.5).all()  # one of two prompts
    with pytest.raises(ValueError, match="blocks"):
        layers.extraction_rates(frame, {"attn": top_attn})


def test_extraction_tables_later_code_variant(tiny_lm):
    import torch

    from ifhelpers.model import probes

    torch.manual_seed(0)  # a final norm whose gain differs per dimension: with it, argmaxes change
    tiny_lm.model.model.norm.weight.data = torch.rand(tiny_lm.model.config.hidden_size) * 3
    texts = ["the capital of france is", "rome is located in", "berlin was born in", "paris is a city in"]
    frame = fake_pass([[5] * 8, [6] * 8, [7] * 8])
    frame["prompt"] = [texts[i % 4] for i in range(len(frame))]
    frame["correct"] = frame["prompt_id"].eq(0) & frame["relation"].eq("R1")  # 6 rows answered correctly
    # row 0's a^l read by hand, raw (E a^l) and through the final norm (E norm(a^l)); its prediction is set to
    # the raw top token of a layer where the two readings differ, so only the raw reading has an event there
    attn = torch.as_tensor(probes.run_updates(tiny_lm, frame.loc[[0]])["attn_update"][0])
    with torch.inference_mode():
        raw_top = tiny_lm.model.get_output_embeddings()(attn).argmax(-1).numpy()
        normed_top = tiny_lm.model.get_output_embeddings()(tiny_lm.model.model.norm(attn)).argmax(-1).numpy()
    layer = int(np.flatnonzero(raw_top != normed_top)[0])
    frame.loc[0, "prediction_id"] = raw_top[layer]
    later = layers.extraction_tables(tiny_lm, frame, n_queries=None, later_code=True)["events_later_code"]
    # only queries with a correctly answered prompt, each read from that prompt alone
    assert set(later["query"]) == {"R1:a:0", "R1:a:1", "R1:a:2", "R1:b:0", "R1:b:1", "R1:b:2"}
    assert {"model", "role", "n_layers", "depth"} <= set(later.columns)
    got = later[(later["query"] == "R1:a:0") & (later["block"] == "MHSA")].sort_values("layer")["event"].to_numpy()
    np.testing.assert_array_equal(got, (raw_top == raw_top[layer]).astype(float))
    assert got[layer] == 1 and normed_top[layer] != raw_top[layer]
    # a model that answers nothing: an empty table with the events' columns, and an empty summary
    frame["correct"] = False
    empty = layers.extraction_tables(tiny_lm, frame, n_queries=None, later_code=True)["events_later_code"]
    assert empty.empty and {"query", "block", "layer", "event"} <= set(empty.columns)
    summary = mech.later_code_extraction(empty)
    assert all(t.empty for t in summary.values())
    # its saved curves read back, with the columns a run with events writes
    assert list(pd.read_csv(io.StringIO(summary["curves"].to_csv(index=False))).columns) == list(
        mech.later_code_extraction(later)["curves"].columns)
    assert "events_later_code" not in layers.extraction_tables(tiny_lm, frame, n_queries=None)


def _rates(models):
    rows = []
    for model, role, values in models:
        for block in layers.BLOCKS:
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
    sets = layers.attribute_sets(tok, {"paris": ["the capital of france is paris", "paris is a city"]}, stop)
    # tokens: the capital of france is paris paris is a city -> minus stopwords and < 3 chars ("of")
    assert sets["paris"] == frozenset({"capital", "france", "paris", "city"})
    frame = pd.DataFrame({"subject": ["paris"], "relation": ["R"], "template_id": [0], "prompt_id": [0]})
    # layer 0 top tokens: "the" (stop), "france" (in), "rome" (out), "of" (short), "city" (in)
    # layer 1: "rome", "italy"
    top = np.empty((1, 2, 5), dtype=object)
    top[0, 0] = ["the", " france", "rome", "of", "city"]
    top[0, 1] = ["rome", "italy", "the", "is", "a"]
    table = layers.attribute_rates(frame, top, sets, stop, k=2)
    assert table["rate"].tolist() == pytest.approx([0.5, 0.0])  # {france, rome} ; {rome, italy}
    assert table["n_kept"].tolist() == [2, 2]
    table = layers.attribute_rates(frame, top, sets, stop, k=10)
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
    out = layers.lens_token_strings(tiny_lm, vectors, k=4, stopwords=stop, rank=2, max_rank=40)
    assert out.shape == (2, 3)
    full = lens.decode_tokens(tiny_lm, lens.top_tokens(tiny_lm, vectors, k=40))
    for i in range(2):
        for j in range(3):
            ranked = out[i, j]
            assert ranked == list(full[i, j][: len(ranked)])  # a prefix of the full ranking
            assert len(metrics.attributes.kept_tokens(ranked, stop, 4)) == 4  # deep enough for k = 4
            assert len(ranked) in (2, 8, 32, 40)


def test_top_dims_share():
    # row 0: [3, 4, 0] -> squares 9, 16, 0: top-1 share 16/25 ; row 1: [1, 1, 1] -> 1/3
    resid = np.array([[[3.0, 4.0, 0.0]], [[1.0, 1.0, 1.0]]])
    np.testing.assert_allclose(layers.top_dims_share(resid, 1), [(16 / 25 + 1 / 3) / 2])
    np.testing.assert_allclose(layers.top_dims_share(resid, 3), [1.0])


def test_unique_prefix_rows(tiny_lm):
    # rows 0 and 1 share everything up to the subject ("paris"); row 2 has another prefix
    frame = pd.DataFrame({"prompt": ["paris is the capital of", "paris was born in", "it is known that paris is"],
                          "subject_token": [1, 1, 4]})  # token 0 is <bos>
    first, inverse = layers.unique_prefix_rows(tiny_lm, frame)
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


def test_attribute_snippets_and_counts_from_the_mirror():
    queries, usable = mech.attribute_queries(min_snippets=5, n_subjects=3, seed=0, relations=["P36", "P17"])
    snippets = mech.subject_snippets(queries)
    assert list(snippets) == list(queries["subject"].unique())
    assert all(len(v) >= 5 and all(isinstance(t, str) for t in v) for v in snippets.values())
    pararel_queries = pd.DataFrame({"relation": ["R1", "R1", "R2"], "uuid": ["a", "a", "b"]})
    pairs = pd.DataFrame({"kind": ["same_relation", "different_relation"], "relation_a": ["R1", "R2"]})
    counts = mech.query_counts(pararel_queries, pairs, queries, usable, snippets)
    sizes = np.array([len(v) for v in snippets.values()])
    assert counts["n_queries"] == 3 and counts["n_facts"] == 2 and counts["n_relations"] == 2
    assert counts["n_same_relations"] == 1 and counts["n_subjects"] == 3
    assert counts["n_subjects_usable"] == usable.attrs["n_usable"]
    assert counts["snippets_mean"] == pytest.approx(sizes.mean())
    assert counts["snippets_sd"] == pytest.approx(sizes.std(ddof=1))


def test_most_snippets():
    assert mech.most_snippets({"A": ["x"], "B": ["x", "y", "z"], "C": ["x", "y"]}, n=2) == "'B' (3), 'C' (2)"


def test_where_in_span():
    assert [mech.where_in_span(d, 0.25, 0.5) for d in (0.1, 0.25, 0.5, 0.6, float("nan"))] == [
        "before", "within", "within", "after", "n/a"]
    words = mech.where_in_span(pd.Series({"a": 0.3, "b": 0.9}), 0.25, 0.5, inside="inside")
    assert words.to_dict() == {"a": "inside", "b": "after"}


def test_massive_dimensions():
    massive = pd.DataFrame({"model": "m", "layer": [0, 1, 2, 3], "depth": [0, 1 / 3, 2 / 3, 1],
                            "share": [0.1, 0.6, 0.4, 0.2]})
    (row,) = mech.massive_dimensions(massive).to_dict("records")
    assert row == {"model": "m", "h0": 0.1, "max_inner": 0.6, "max_depth": pytest.approx(1 / 3),
                   "inner_above_half": "50%", "h_last": 0.2}
    assert list(pd.DataFrame([row]).rename(columns=mech.LABELS).columns) == ["model", "h^0", "max (inner layers)", "at depth",
                                                              "inner layers above 50%", "h^L"]


# ----------------------------------------------------------------------------- relation layers and the gap


def _separation(model, values, n_layers=None):
    n_layers = n_layers or len(values) - 1
    return pd.DataFrame({"model": model, "layer": range(len(values)), "depth": np.arange(len(values)) / n_layers,
                         "same": 0.5, "different": 0.5 - np.asarray(values, dtype=float),
                         "separation": np.asarray(values, dtype=float)})


def test_relation_layers_first_depth_at_half_the_maximum():
    # layers 1..4 (depth 0.25 ... 1): 0.1, 0.3, 0.6, 0.4 -> max 0.6 at depth 0.75; first >= 0.3 at depth 0.5
    sep = pd.concat([_separation("m", [0.9, 0.1, 0.3, 0.6, 0.4]), _separation("n", [0.0, 0.4, 0.2, 0.1, 0.0])])
    table = mech.relation_layers(sep, span=(0.2, 0.5)).set_index("model")
    assert table.loc["m", "max_separation"] == pytest.approx(0.6) and table.loc["m", "max_depth"] == 0.75
    assert table.loc["m", "half_max_depth"] == 0.5  # h^0's 0.9 is left out
    assert table.loc["m", "span_mean"] == pytest.approx(0.2)  # depths 0.25, 0.5
    assert table.loc["m", "same_h0"] == 0.5
    assert table.loc["n", "half_max_depth"] == 0.25
    assert table["defined"].all() and (table["note"] == "").all()
    assert list(table.rename(columns=mech.LABELS).columns) == ["max separation", "at depth", "half of max first at depth",
                                               "mean in paper's span", "same at h^0", "defined", "note"]


@pytest.mark.parametrize(("values", "reason"), [
    ([0.2, -0.1, -0.3, -0.2], "no layer has a positive separation"),
    ([0.0, 0.1, 0.1, 0.1], "the separation is the same at every layer"),
    ([0.0, 0.0, 0.0, 0.0], "the separation is the same at every layer"),
    ([0.3, np.nan, np.nan, np.nan], "no layer after h^0"),
])
def test_relation_layers_not_defined_says_why(values, reason):
    (row,) = mech.relation_layers(_separation("m", values), span=(0.2, 0.5)).to_dict("records")
    assert not row["defined"] and np.isnan(row["half_max_depth"])
    assert row["note"].startswith("not defined: ") and reason in row["note"]


def test_relation_separation_and_layers_from_curves():
    rel = pd.DataFrame({"model": "m", "kind": ["same_relation"] * 3 + ["different_relation"] * 3,
                        "layer": [0, 1, 2] * 2, "depth": [0, 0.5, 1] * 2, "estimate": [0.5, 0.8, 0.9, 0.5, 0.4, 0.3]})
    sep = mech.relation_separation(rel)
    np.testing.assert_allclose(sep["separation"], [0.0, 0.4, 0.6])
    assert mech.relation_layers(sep)["half_max_depth"].item() == 0.5


def test_relation_separation_per_relation_averages_to_the_curves():
    # two relations, two prompts, two layers: the mean over relations (after prompts) of same − different
    # is relation_separation of the two macro averages, and bootstrapping relations gives it a band
    rows = []
    for relation, offset in (("R1", 0.0), ("R2", 0.2)):
        for prompt in (0, 1):
            for layer in (0, 1):
                rows += [{"model": "m", "role": "base", "n_layers": 2, "prompt_id": prompt, "kind": kind,
                          "relation": relation, "layer": layer, "cos": value, "n_pairs": 3, "depth": layer / 2}
                         for kind, value in (("same_relation", 0.5 + offset + 0.1 * layer + 0.05 * prompt),
                                             ("different_relation", 0.4 - 0.2 * layer))]
    relation = pd.DataFrame(rows)
    per_relation = mech.relation_separation_per_relation(relation)
    assert len(per_relation) == 2 * 2 * 2 and "kind" not in per_relation.columns
    by = ["model", "role", "n_layers"]
    band = mech.mean_ci_by_layer(per_relation, "separation", "relation", by=by, depth_kind="state")
    curves = mech.relation_separation(mech.mean_ci_by_layer(relation, "cos", "relation", by=[*by, "kind"],
                                                            depth_kind="state"))
    np.testing.assert_allclose(band["estimate"], curves["separation"])
    np.testing.assert_allclose(band["estimate"], [0.225, 0.525])
    assert (band["low"] < band["estimate"]).all() and (band["estimate"] < band["high"]).all()


def _gap_table():
    rows = []
    for model, shift in (("b", 0.0), ("t", 0.1)):
        for prompt in (0, 1):
            for split, base in (("consistent", 0.3), ("inconsistent", 0.1), ("all", 0.2)):
                for layer in range(3):
                    rows.append({"model": model, "role": "base" if model == "b" else "instruction-tuned",
                                 "prompt_id": prompt, "split": split, "layer": layer, "depth": layer / 2,
                                 "gap": base + shift + 0.1 * prompt - 0.3 * (layer == 0), "n_pairs": 2})
    return pd.DataFrame(rows)


def test_gap_over_prompts_and_in_relation_layers():
    gap = _gap_table()
    mean = mech.gap_over_prompts(gap)
    cell = mean[(mean["model"] == "b") & (mean["split"] == "consistent") & (mean["layer"] == 1)].iloc[0]
    assert (cell["estimate"], cell["low"], cell["high"]) == pytest.approx((0.35, 0.3, 0.4))
    # "all": b at layer 0 is 0.2 - 0.3 + 0.05 < 0, everything else positive: 5 of 6 cells
    assert mech.gap_positive_share(mean) == pytest.approx(5 / 6)
    table = mech.gap_in_relation_layers(gap, mean, span=(0.4, 1.0))
    assert list(table.columns) == ["consistent", "inconsistent", "all", "consistent_above_share",
                                   "n_pairs_consistent", "n_pairs_inconsistent", "n_pairs_all"]
    assert table.loc["b", "consistent"] == pytest.approx(0.35) and table.loc["t", "inconsistent"] == pytest.approx(0.25)
    assert table.loc["b", "consistent_above_share"] == 1.0 and table.loc["b", "n_pairs_all"] == 12
    assert list(table.rename(columns=mech.LABELS).columns) == ["consistent", "inconsistent", "all",  # as the chapter prints it
                                               "layers where consistent > inconsistent", "pairs: consistent",
                                               "pairs: inconsistent", "pairs: all"]
    per_prompt = mech.gap_span_by_prompt(gap, (0.4, 1.0))
    assert per_prompt.loc["t"].tolist() == pytest.approx([0.4, 0.5])


# ----------------------------------------------------------------------------- extraction, Table 7


def _ext_curves():
    rows = []
    for model, role, mhsa, mlp in (("b", "base", [0.1, 0.5, 0.2], [0.0, 0.1, 0.05]),
                                   ("t", "instruction-tuned", [0.2, 0.1, 0.4], [0.3, 0.5, 0.0])):
        for block, values in (("MHSA", mhsa), ("MLP", mlp)):
            rows += [{"model": model, "role": role, "n_layers": 3, "block": block, "layer": l, "depth": (l + 1) / 3,
                      "estimate": v, "low": v, "high": v, "n": 4} for l, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_extraction_peaks_and_mlp_below_mhsa():
    peaks = mech.extraction_peaks(_ext_curves())
    assert peaks[["model", "block", "layer"]].values.tolist() == [["b", "MHSA", 1], ["b", "MLP", 1],
                                                                  ["t", "MHSA", 2], ["t", "MLP", 1]]
    assert mech.mlp_below_mhsa(peaks) == (1, 2)  # t's MLP peak 0.5 is above its MHSA peak 0.4


def test_table7_and_correlation_status():
    groups = pd.DataFrame({"model": ["b", "t"], "consistency": [0.5, 0.6]})
    correlation = mech.table7(_ext_curves(), groups)
    assert set(correlation["block"]) == {"MHSA", "MLP"} and correlation["model"].eq("t").all()
    defined, message = mech.correlation_status(correlation)
    assert not defined and "at least 3" in message
    assert mech.correlation_status(correlation.assign(defined=True)) == (True, "")
    assert mech.correlation_status(correlation.iloc[:0])[0] is False


def _events():
    # 4 queries; MHSA events per layer: base 1,0 / 1,1 / 0,0 / 1,0 ; tuned 0,0 / 1,0 / 0,0 / 0,0
    rows = []
    for model, role, events in (("b", "base", [(1, 0), (1, 1), (0, 0), (1, 0)]),
                                ("t", "instruction-tuned", [(0, 0), (1, 0), (0, 0), (0, 0)])):
        for q, pair in zip(["q3", "q1", "q2", "q0"], events):
            for layer, e in enumerate(pair):
                rows.append({"model": model, "role": role, "query": q, "block": "MHSA", "layer": layer, "event": e})
                rows.append({"model": model, "role": role, "query": q, "block": "MLP", "layer": layer, "event": 1})
    return pd.DataFrame(rows)


def test_extraction_comparison_pairs_queries_in_sorted_order():
    from ifhelpers import stats

    events = _events()
    cmp = mech.extraction_comparison(events, seed=0)
    # per query (sorted q0 .. q3): base 0.5, 1, 0, 0.5 ; tuned 0, 0.5, 0, 0
    expected = stats.paired_comparison(pd.Series([0.5, 1.0, 0.0, 0.5]), pd.Series([0.0, 0.5, 0.0, 0.0]), seed=0)
    (row,) = cmp.to_dict("records")
    assert (row["base"], row["tuned"], row["n"]) == ("b", "t", 4)
    for key in ("mean_diff", "diff_low", "diff_high", "wilcoxon_p"):
        assert row[key] == pytest.approx(expected[key])
    values = mech.comparison_values(cmp)
    assert values["diff"] == pytest.approx(-37.5) and values["tuned"] == "t"
    assert values["direction"] == ("lower" if row["diff_high"] < 0 else "not different")


def test_compare_to_base_matches_compare_roles_on_unit_means():
    from ifhelpers import stats

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"model": np.repeat(["t2", "b", "t1"], 30), "unit": np.tile(list("edcbafghij"), 9),
                          "prompt": np.tile(np.repeat([0, 1, 2], 10), 3), "v": rng.random(90)})
    table["role"] = np.where(table["model"] == "b", "base", "instruction-tuned")
    cmp = mech.compare_to_base(table, "v", "unit", seed=3)
    assert cmp["tuned"].tolist() == ["t2", "t1"]  # the models' order of appearance
    means = table.groupby(["model", "unit"])["v"].mean()
    expected = stats.paired_comparison(means.loc["b"], means.loc["t1"], seed=3)  # units sorted
    assert cmp.iloc[1]["mean_diff"] == expected["mean_diff"] and cmp.iloc[1]["diff_low"] == expected["diff_low"]
    assert mech.compare_to_base(table[table["role"] != "base"], "v", "unit").empty
    assert mech.comparison_values(cmp.iloc[:0]) == {"diff": pytest.approx(np.nan, nan_ok=True),
                                                   "diff_low": pytest.approx(np.nan, nan_ok=True),
                                                   "diff_high": pytest.approx(np.nan, nan_ok=True),
                                                   "p": pytest.approx(np.nan, nan_ok=True), "tuned": "n/a",
                                                   "direction": "n/a"}


def test_mean_ci_by_layer_adds_the_depth():
    table = pd.DataFrame({"model": "m", "n_layers": 4, "unit": ["u1", "u2"] * 2, "layer": [0, 0, 3, 3],
                          "v": [0.0, 1.0, 1.0, 1.0]})
    state = mech.mean_ci_by_layer(table, "v", "unit", by=["model", "n_layers"], depth_kind="state")
    update = mech.mean_ci_by_layer(table, "v", "unit", by=["model", "n_layers"], depth_kind="update")
    assert state["depth"].tolist() == [0.0, 0.75] and update["depth"].tolist() == [0.25, 1.0]


# ----------------------------------------------------------------------------- subjects: summaries


def _attribute_curves():
    rows = []
    for model, values in (("b", [0.5, 0.1, 0.3, 0.2]), ("t", [0.0, 0.2, 0.1, 0.4])):
        rows += [{"model": model, "role": "base" if model == "b" else "instruction-tuned", "n_layers": 3, "layer": l,
                  "depth": l / 3, "estimate": v, "low": v, "high": v, "n": 2} for l, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_attribute_peaks_leave_out_the_embedding():
    peaks = mech.attribute_peaks(_attribute_curves()).set_index("model")
    assert peaks.loc["b", "layer"] == 2 and peaks.loc["b", "estimate"] == 0.3  # not h^0's 0.5
    assert peaks.loc["t", "layer"] == 3
    assert peaks.loc["b", "h0"] == 0.5 and peaks.loc["b", "h_last"] == 0.2


def test_example_table_prints_the_first_tokens_at_each_depth():
    examples = pd.DataFrame({"model": "m", "subject": "paris", "layer": [0, 3], "depth": [0.0, 1 / 3],
                             "top_tokens": [[" the", "Paris "], ["France"]]})
    table = mech.example_table(examples).rename(columns=mech.LABELS)
    assert table.to_dict("list") == {"model": ["m", "m"], "layer": [0, 3], "depth": [0.0, 0.33],
                                     "top tokens": ["'the' | 'Paris'", "'France'"]}


def test_attribute_set_sizes_and_ratio():
    sets = pd.DataFrame({"model": ["b", "b", "t", "t"], "subject": ["x", "y", "x", "y"], "n_attributes": [10, 20, 30, 50]})
    rates = pd.DataFrame({"model": ["b", "b", "t", "t"], "n_kept": [50, 49, 50, 50]})
    sizes = mech.attribute_set_sizes(sets, rates, top_k=50)
    assert sizes.loc["b", "mean"] == 15 and sizes.loc["t", "max"] == 50
    assert sizes.loc["b", "short_share"] == 0.5
    assert mech.attribute_size_ratio(sizes) == pytest.approx(1936 / 27.5)


def test_attribute_comparison_leaves_out_h0():
    rows = []
    for model, role, by_subject in (("b", "base", {"s1": [1.0, 0.2], "s2": [1.0, 0.4], "s3": [1.0, 0.1]}),
                                    ("t", "instruction-tuned", {"s1": [0.0, 0.4], "s2": [0.0, 0.5], "s3": [0.0, 0.3]})):
        for subject, values in by_subject.items():
            rows += [{"model": model, "role": role, "subject": subject, "layer": l, "rate": v}
                     for l, v in enumerate(values)]
    (row,) = mech.attribute_comparison(pd.DataFrame(rows)).to_dict("records")
    assert row["mean_diff"] == pytest.approx(0.5 / 3)  # layer 1 only: +0.2, +0.1, +0.2


def test_example_layers():
    examples = pd.DataFrame({"model": ["a"] * 9 + ["b"] * 3, "layer": list(range(9)) + [0, 1, 2]})
    picked = mech.example_layers(examples, n=3)
    assert picked.values.tolist() == [["a", 0], ["a", 4], ["a", 8], ["b", 0], ["b", 1], ["b", 2]]


# ----------------------------------------------------------------------------- summary and headlines


def _chapter_tables():
    attr_cmp = pd.DataFrame([{"base": "b", "tuned": "t", "n": 10, "mean_diff": 0.04, "diff_low": 0.01,
                              "diff_high": 0.08, "wilcoxon_p": 0.05}])
    mhsa_cmp = attr_cmp.assign(mean_diff=-0.02, diff_low=-0.03, diff_high=-0.01, wilcoxon_p=0.002)
    sep = pd.concat([_separation("b", [0.0, 0.1, 0.3, 0.2]), _separation("t", [0.0, -0.1, -0.2, -0.1])])
    rel_summary = mech.relation_layers(sep)
    gap = _gap_table()
    ext = _ext_curves()
    correlation = mech.table7(ext, pd.DataFrame({"model": ["b", "t"], "consistency": [0.5, 0.6]}))
    return attr_cmp, rel_summary, gap, mhsa_cmp, correlation, ext


def test_headlines_rows():
    attr_cmp, rel_summary, gap, mhsa_cmp, correlation, ext = _chapter_tables()
    rows = mech.headlines(attr_cmp, rel_summary, gap, mhsa_cmp, correlation, ext, "b", 1, 10)
    by = {r["paper_section"]: r for r in rows}
    # no layer of the gap table lies in the paper's relation span (depths 0, 0.5, 1): no Fig. 4 row
    assert list(by) == ["§4, Fig. 2", "§4, Fig. 3", "§4, Fig. 5", "§4, Table 7"]
    assert by["§4, Fig. 2"]["ours"] == "+4.0 [+1.0, +8.0]" and by["§4, Fig. 2"]["direction_holds"] == "yes"
    assert by["§4, Fig. 2"]["tuned"] == "t"
    # b: first at half its maximum (0.15) at depth 2/3: after the paper's 0.09-0.25; t: no positive separation
    assert by["§4, Fig. 3"]["ours"] == ("b: depth 0.67 (after); "
                                        "t: not defined: no layer has a positive separation")
    assert by["§4, Fig. 3"]["direction_holds"] == "no" and by["§4, Fig. 3"]["tuned"] == "t"
    assert by["§4, Fig. 5"]["direction_holds"] == "yes"  # tuned lower: the paper says "not higher"
    assert by["§4, Table 7"]["direction_holds"] == "not defined" and "at least 3" in by["§4, Table 7"]["note"]
    assert by["§4, Table 7"]["paper"].startswith("r = 0.65-0.94 (p ≤ 0.05) in MHSA layers 13-21")
    # a relation row with no defined model says "not defined"
    none = rel_summary.assign(**{"half_max_depth": np.nan, "note": "not defined: x"})
    rows = mech.headlines(attr_cmp, none, gap, mhsa_cmp, correlation, ext, "b", 1, 10)
    assert rows[1]["direction_holds"] == "not defined"


def test_headlines_fig4_reads_the_ranges_over_prompts():
    attr_cmp, rel_summary, gap, mhsa_cmp, correlation, ext = _chapter_tables()
    gap = gap.assign(depth=gap["depth"] * 0.25)  # depths 0, 0.125, 0.25: layers 1-2 in the paper's span
    rows = [r for r in mech.headlines(attr_cmp, rel_summary, gap, mhsa_cmp, correlation, ext, "b", 1, 10)
            if r["paper_section"] == "§4, Fig. 4"]
    (row,) = rows
    # consistent gap in the span: b 0.3 / 0.4 (prompts), t 0.4 / 0.5 -> ranges overlap
    assert row["ours"] == "base 0.350 (prompts 0.300-0.400), tuned 0.450 (prompts 0.400-0.500)"
    assert row["direction_holds"] == "yes" and row["estimate"] == pytest.approx(0.1)


def test_summary_table():
    attr_cmp, rel_summary, gap, mhsa_cmp, correlation, ext = _chapter_tables()
    peaks = mech.attribute_peaks(_attribute_curves())
    sets = pd.DataFrame({"model": ["b", "b", "t", "t"], "n_attributes": [10, 20, 30, 50]})
    sizes = mech.attribute_set_sizes(sets, pd.DataFrame({"model": ["b", "t"], "n_kept": [50, 50]}), 50)
    span_table = mech.gap_in_relation_layers(gap, mech.gap_over_prompts(gap))
    table = mech.summary_table(peaks, sizes, attr_cmp, rel_summary, span_table, mech.extraction_peaks(ext),
                               correlation, 1).set_index("finding")["ours"]
    assert table["attribute rate peak (Fig. 2, fn. 5)"] == "b: 30.0% at depth 0.67; t: 40.0% at depth 1.00"
    assert table["attributes per subject (App. D)"] == "b: 15 ± 7; t: 40 ± 14"
    assert table["tuned − base attribute rate (Fig. 2)"] == "t: +4.0 pts [+1.0, +8.0]"
    assert table["relation layers (Fig. 3)"] == "b: 0.67; t: n/a (separation first at half its maximum)"
    assert table["MLP vs MHSA extraction (Fig. 8)"] == "b: MLP peak 10.0% vs MHSA 50.0%; t: MLP peak 50.0% vs MHSA 40.0%"
    assert table["extraction rate vs consistency (Table 7)"] == "not defined (1 tuned model(s))"


def _curve(model, split, values):
    return pd.DataFrame({"model": model, "split": split, "layer": range(len(values)),
                         "depth": np.linspace(0, 1, len(values)), "estimate": values, "low": values, "high": values,
                         "n": 3})


def test_figures_say_what_the_curves_show():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gap_mean = pd.concat([_curve("m", split, [0.1, -0.1, 0.2, 0.3]) for split in ("all", "consistent", "inconsistent")])
    fig = mech.plot_paraphrase_gap(gap_mean, {"m": "red"})
    assert fig._suptitle.get_text().startswith("Paraphrases are closer than non-paraphrases in 75% of the layers")
    assert [ax.get_title() for ax in fig.axes] == ["consistent paraphrases", "inconsistent paraphrases", "all paraphrases"]
    attr = _curve("m", "all", [0.0, 0.2, 0.1])
    assert mech.plot_attribute_rates(attr, {}, "lower", 5).axes[0].get_title() == mech.ATTRIBUTE_TITLES["lower"]
    assert mech.plot_attribute_rates(attr, {}, "n/a", 5).axes[0].get_title() == "Subject attribute rate"
    ext = pd.concat([_curve("m", "all", [0.1, 0.4, 0.2]).assign(block=b) for b in ("MHSA", "MLP")], ignore_index=True)
    fig = mech.plot_extraction(ext, {"m": "base"})
    assert fig._suptitle.get_text().endswith("peaks at relative depth 0.50")
    assert fig.axes[0].get_lines()[0].get_color() == mech.GROUP_COLORS["base"]
    plt.close("all")


def test_kept_tokens_are_app_d_filters():
    ranked = ["▁the", "Pa", "▁Paris", "ĠLondon", "x", "▁Rome"]
    assert metrics.attributes.kept_tokens(ranked, {"THE"}, 5) == ["Paris", "London", "Rome"]
    assert metrics.attributes.kept_tokens(ranked, {"the"}, 2) == ["Paris", "London"]
    assert metrics.attributes.kept_tokens(ranked, set(), 9, min_chars=2) == ["the", "Pa", "Paris", "London", "Rome"]
    assert metrics.attributes.MIN_CHARS == 3
