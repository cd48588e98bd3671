"""The vector-space pipeline (paper §2, App. B.1-B.2): designs, per-set tables, estimates, figure.

Small hand-made arrays check the arithmetic; the tiny random Llama of ``conftest.py`` checks the
engine path and that h^L after the final norm is Hugging Face's last ``hidden_states`` entry.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from ifhelpers import paper
from ifhelpers import metrics, stats
from ifhelpers.data import paraphrases, pararel
from ifhelpers.chapters import vector_space as vs
from ifhelpers.data.sources import DataSelectionError
from ifhelpers.measure import units as measure_units
from ifhelpers.model import engine, probes

R2 = math.sqrt(2.0)


def _mrpc_pairs(n_pos=6, n_neg=5):
    rows = [(f"test/{i}", f"pos a {i}", f"pos b {i}", True) for i in range(n_pos)]
    rows += [(f"test/{n_pos + i}", f"neg a {i}", f"neg b {i}", False) for i in range(n_neg)]
    frame = pd.DataFrame(rows, columns=["pair_id", "text_a", "text_b", "is_paraphrase"])
    frame.attrs["source"] = "mrpc"
    return frame


def _sets():
    # three sets of sizes 3, 2, 1 (the singleton only serves as a non-paraphrase partner)
    frame = pd.DataFrame({"set_id": ["a", "a", "a", "b", "b", "c"], "text": list("uvwxyz"), "source": "toy"})
    frame.attrs["source"] = "toy"
    return frame


# ----------------------------------------------------------------------------------------- designs


def test_design_mrpc_matches_each_paraphrase_pair_with_one_negative_pair():
    design = vs.design_mrpc(_mrpc_pairs(), n_pairs=4, seed=0)
    assert len(design.items) == 16 and len(design.units) == 4
    members = design.items[design.items["set_id"] != ""]
    assert members["text"].str.startswith("pos").all() and members.groupby("set_id").size().eq(2).all()
    non = design.nonparaphrase
    assert list(non["unit_id"]) == list(design.units)
    negatives = _mrpc_pairs().set_index("pair_id")
    assert design.items["text"].to_numpy()[non["row_a"]].tolist() == negatives.loc[non["pair_id"], "text_a"].tolist()
    assert (non["row_b"] == non["row_a"] + 1).all()
    # deterministic, and a different seed draws different pairs
    again = vs.design_mrpc(_mrpc_pairs(), n_pairs=4, seed=0)
    pd.testing.assert_frame_equal(design.items, again.items)
    with pytest.raises(DataSelectionError, match="n_mrpc_pairs"):
        vs.design_mrpc(_mrpc_pairs(), n_pairs=6)  # only 5 negatives


def test_design_paraphrase_sets_draws_k_cross_set_pairs_per_set():
    design = vs.design_paraphrase_sets(_sets(), n_nonparaphrase_per_set=50, seed=1, dataset="toy")
    assert list(design.units) == ["a", "b"]  # the singleton c is not a unit
    non = design.nonparaphrase
    assert non.groupby("unit_id").size().to_dict() == {"a": 50, "b": 50}
    sid = design.items["set_id"].to_numpy()
    assert (sid[non["row_a"]] == non["unit_id"]).all()  # the anchor is a member of its set
    assert (sid[non["row_a"]] != sid[non["row_b"]]).all()  # and the partner is from another set
    # the singleton is not a paraphrase set of eq. 3, so eq. 4 never draws it (symmetric draw);
    # all members of a set are drawn as anchors
    assert "c" not in set(sid[non["row_b"]]) | set(sid[non["row_a"]])
    assert set(non.loc[non["unit_id"] == "a", "row_a"]) == {0, 1, 2}
    same = vs.design_paraphrase_sets(_sets(), 50, seed=1, dataset="toy")
    pd.testing.assert_frame_equal(non, same.nonparaphrase)
    with pytest.raises(ValueError, match=">= 1"):
        vs.design_paraphrase_sets(_sets(), 0)


def test_design_needs_two_sets_with_pairs():
    one = pd.DataFrame({"set_id": ["a", "a", "b"], "text": ["x", "y", "z"], "source": "toy"})
    with pytest.raises(DataSelectionError, match="at least 2"):
        vs.design_paraphrase_sets(one, 3)


def test_stand_in_label_says_so():
    sets = paraphrases.load_tapaco_sets(n_sets=5, seed=0)
    design = vs.design_paraphrase_sets(sets, 2)
    assert design.source == paraphrases.STAND_IN_SOURCE
    assert design.label == "TaPaCo stand-in (msrp/opinosis paraphrase groups)"


def test_design_pararel_follows_query_order():
    queries = pararel.load_queries(["P19", "P103"], n_per_relation=3, seed=0)
    design = vs.design_pararel(queries, 4, seed=0)
    assert design.items["text"].tolist() == queries["query"].tolist()
    assert design.items["set_id"].tolist() == (queries["relation"] + ":" + queries["uuid"]).tolist()
    assert design.label == "ParaRel" and design.source == "pararel"


# ------------------------------------------------------------------------------------ per-set table


def test_unit_table_hand_values():
    # set a: e1, e1, e2 -> pair cosines 1, 0, 0 -> eq. 2 (pairs) = 1/3; printed 1/M form = 2/3
    # set b: e1, (1,1)  -> cos = 1/sqrt2
    # non-paraphrase pairs: a with (e2 vs (1,1)) = 1/sqrt2 ; b with (e1 vs e2) = 0 and (e1 vs -e1) = -1
    items = pd.DataFrame({"text": list("pqrst") + ["u"], "set_id": ["a", "a", "a", "b", "b", ""]})
    reps = np.array([[1, 0], [1, 0], [0, 1], [1, 0], [1, 1], [-1, 0]], dtype=float)
    non = pd.DataFrame({"unit_id": ["a", "b", "b"], "row_a": [2, 3, 3], "row_b": [4, 2, 5]})
    design = vs.Design("toy", items, non, "toy", "Toy")
    table = measure_units.unit_table(reps, design).set_index("unit_id")
    assert table.loc["a", "cos_para"] == pytest.approx(1 / 3)
    assert table.loc["a", "cos_para_literal"] == pytest.approx(2 / 3)  # (M - 1) x the mean
    assert table.loc["b", "cos_para"] == pytest.approx(1 / R2)
    assert table.loc["a", "cos_nonpara"] == pytest.approx(1 / R2)
    assert table.loc["b", "cos_nonpara"] == pytest.approx(-0.5)
    assert table.loc["b", "gap"] == pytest.approx(1 / R2 + 0.5)
    assert table["n_members"].tolist() == [3, 2] and table["n_nonpara"].tolist() == [1, 2]


def test_mean_of_set_gaps_is_eq3_minus_eq4():
    rng = np.random.default_rng(0)
    sets = pd.DataFrame({"set_id": np.repeat([f"s{i}" for i in range(12)], [2, 3, 4] * 4),
                         "text": [f"t{i}" for i in range(36)], "source": "toy"})
    design = vs.design_paraphrase_sets(sets, n_nonparaphrase_per_set=7, seed=3, dataset="toy")
    reps = rng.normal(size=(len(design.items), 8)) + 0.5
    table = measure_units.unit_table(reps, design)
    non = design.nonparaphrase
    expected = metrics.cosine.paraphrase_gap(reps, design.items["set_id"],
                                      nonparaphrase=(reps[non["row_a"]], reps[non["row_b"]]))
    assert table["gap"].mean() == pytest.approx(expected, abs=1e-12)
    # eq. 3 alone: the macro average of eq. 2 over sets
    assert table["cos_para"].mean() == pytest.approx(metrics.cosine.paraphrase_cosine(reps, design.items["set_id"]))


def test_mrpc_gap_is_difference_of_pair_means():
    design = vs.design_mrpc(_mrpc_pairs(8, 8), 8, seed=2)
    reps = np.random.default_rng(1).normal(size=(len(design.items), 5))
    table = measure_units.unit_table(reps, design)
    pos = np.arange(0, 16, 2)
    neg = np.arange(16, 32, 2)
    expected = metrics.cosine.pair_cosines(reps[pos], reps[pos + 1]).mean() - \
        metrics.cosine.pair_cosines(reps[neg], reps[neg + 1]).mean()
    assert table["gap"].mean() == pytest.approx(expected, abs=1e-12)


def test_unit_table_checks_shapes():
    design = vs.design_paraphrase_sets(_sets(), 2, dataset="toy")
    with pytest.raises(ValueError, match="n_items"):
        measure_units.unit_table(np.ones((3, 2)), design)


# ---------------------------------------------------------------------------------------- estimates


def _synthetic_units(shift=0.1, n_sets=30):
    rng = np.random.default_rng(0)
    rows = []
    base = rng.normal(0.2, 0.05, size=(n_sets, 3))
    for model, role, delta in (("b", "base", 0.0), ("t", "instruction-tuned", shift)):
        for representation in measure_units.REPRESENTATIONS:
            for p in range(3):
                for i in range(n_sets):
                    para = 0.9
                    gap = base[i, p] + delta
                    rows.append({"model": model, "role": role, "family": "x", "dataset": "toy",
                                 "dataset_label": "Toy", "source": "toy", "representation": representation,
                                 "prompt_id": p, "unit_id": f"s{i}", "n_members": 2, "cos_para": para,
                                 "cos_para_literal": para, "cos_nonpara": para - gap, "n_nonpara": 1, "gap": gap})
    return pd.DataFrame(rows), base


def test_summarise_gaps_per_prompt_and_prompt_mean():
    units, base = _synthetic_units()
    summary = vs.summarise_gaps(units, n_resamples=500)
    assert set(summary["prompt"]) == {"0", "1", "2", "mean"}
    b = summary[summary["model"] == "b"].set_index("prompt")
    for p in range(3):
        assert b.loc[str(p), "gap"] == pytest.approx(base[:, p].mean())
    assert b.loc["mean", "gap"] == pytest.approx(base.mean())
    assert (summary["low"] <= summary["gap"]).all() and (summary["gap"] <= summary["high"]).all()
    assert (summary["n_sets"] == 30).all()
    np.testing.assert_allclose(summary["cos_para"] - summary["cos_nonpara"], summary["gap"], atol=1e-12)
    averaged = vs.prompt_average(units)
    assert len(averaged) == 60
    assert averaged.loc[averaged["model"] == "t", "gap"].mean() == pytest.approx(base.mean() + 0.1)


def test_gap_comparison_is_paired_on_sets():
    units, _ = _synthetic_units(shift=0.1)
    comparison = vs.gap_comparison(units, n_resamples=500)
    row = comparison.iloc[0]
    assert (row["base"], row["tuned"], row["n_sets"]) == ("b", "t", 30)
    # every set moves by exactly 0.1: the paired interval collapses onto it
    assert row["mean_diff"] == pytest.approx(0.1)
    assert row["diff_low"] == pytest.approx(0.1) and row["diff_high"] == pytest.approx(0.1)
    assert row["direction"] == "same as paper (interval excludes 0)"
    lower, _ = _synthetic_units(shift=-0.05)
    assert vs.gap_comparison(lower, n_resamples=200).iloc[0]["direction"].startswith("opposite to paper")


def test_direction_words():
    assert vs.direction(0.1, 0.05, 0.2) == "same as paper (interval excludes 0)"
    assert vs.direction(0.1, -0.05, 0.2) == "same sign as paper (interval includes 0)"
    assert vs.direction(-0.1, -0.2, -0.05) == "opposite to paper (interval excludes 0)"
    assert vs.direction(-0.1, -0.2, 0.05) == "opposite sign (interval includes 0)"
    assert vs.direction(float("nan"), 0, 0) == "undefined"


# ------------------------------------------------------------------------------------ paper numbers






def test_side_by_side_labels_sources():
    units, _ = _synthetic_units()
    table = vs.side_by_side(vs.summarise_gaps(units, n_resamples=200))
    assert {"ours (this run)", "paper (Fierro et al. 2024)"} == set(table["source"])
    assert "Toy" in table.columns and "MRPC" in table.columns and "TaPaCo" in table.columns
    paper_rows = table[table["table"] == "Table 4"]
    assert paper_rows["MRPC"].iloc[0] == "1.24e-04"  # as printed
    assert table.loc[table["source"] == "ours (this run)", "Toy"].str.contains(r"\[").all()


def test_plot_gaps_draws_one_panel_per_dataset():
    units, _ = _synthetic_units()
    more = units.assign(dataset="mrpc", dataset_label="MRPC")
    summary = vs.summarise_gaps(pd.concat([units, more]), n_resamples=200)
    fig = vs.plot_gaps(summary, paper_gaps_frame=paper.gaps(), title="t")
    main_axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in main_axes] == ["MRPC", "Toy"]
    assert len(fig.axes) == 3  # MRPC has the paper's twin axis, the toy dataset none
    import matplotlib.pyplot as plt

    plt.close(fig)


# ------------------------------------------------------------------------------- tiny model (engine)


def test_final_norm_state_is_hugging_face_last_hidden_state(tiny_lm):
    import torch

    texts = ["the capital of france is paris", "rome is a city in italy ."]
    out = engine.run(tiny_lm, texts, probes.LAST_STATE_REQUEST, cache=False)
    normed = measure_units.outermost_states(tiny_lm, out["resid"], "final_norm")
    raw = measure_units.outermost_states(tiny_lm, out["resid"], "pre_norm")
    for i, text in enumerate(texts):
        ids = tiny_lm.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            hidden = tiny_lm.model(**ids, output_hidden_states=True).hidden_states
        np.testing.assert_allclose(normed[i], hidden[-1][0, -1].numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(raw[i], out["resid"][i, -1], rtol=1e-6)
    with pytest.raises(ValueError, match="representation"):
        measure_units.outermost_states(tiny_lm, out["resid"], "post")


def test_sentence_prompts_are_table_3(tiny_lm):
    frame = measure_units.sentence_prompts(tiny_lm, ["paris is a city"], prompt_ids=(0, 1, 2))
    assert frame["prompt"].tolist() == ["paris is a city", "Consider the following sentence: paris is a city",
                                        "Summarize the main message of the following sentence.\nparis is a city"]


def test_model_units_on_a_tiny_model(tiny_lm, tmp_path):
    sets = pd.DataFrame({"set_id": ["a", "a", "b", "b", "b", "c", "c"],
                         "text": ["paris is a city", "the capital of france is paris", "rome is in italy",
                                  "rome is a city in italy", "italy . rome", "berlin was born", "germany berlin"],
                         "source": "toy"})
    designs = {"tapaco": vs.design_paraphrase_sets(sets, 3, dataset="tapaco"),
               "mrpc": vs.design_mrpc(_mrpc_pairs(3, 3), 3)}
    units = measure_units.model_units(tiny_lm, designs, prompt_ids=(0, 2), cache=tmp_path)
    assert set(units["representation"]) == set(measure_units.REPRESENTATIONS)
    assert set(units["prompt_id"]) == {0, 2} and set(units["dataset"]) == {"tapaco", "mrpc"}
    assert units[["model", "role"]].drop_duplicates().values.tolist() == [["tiny-llama", "base"]]
    assert units.groupby(["dataset", "representation", "prompt_id"]).size().to_dict()[("tapaco", "final_norm", 0)] == 3
    assert np.isfinite(units["gap"]).all()
    # the second call is served from the cache and gives the same numbers
    again = measure_units.model_units(tiny_lm, designs, prompt_ids=(0, 2), cache=tmp_path)
    pd.testing.assert_frame_equal(units, again)
    with pytest.raises(ValueError, match="pararel_queries"):
        measure_units.model_units(tiny_lm, {"pararel": designs["tapaco"]}, prompt_ids=(0,), cache=tmp_path)


def test_pararel_states_come_from_the_shared_pass(tiny_lm, tmp_path):
    queries = pararel.load_queries(["P19", "P103"], n_per_relation=2, seed=0)
    design = vs.design_pararel(queries, 2)
    units = measure_units.model_units(tiny_lm, {"pararel": design}, queries, prompt_ids=(0, 1), cache=tmp_path)
    assert set(units["dataset"]) == {"pararel"} and set(units["prompt_id"]) == {0, 1}
    # the states are the last layer of run_pararel's resid, prompt block by prompt block
    frame, arrays = probes.run_pararel(tiny_lm, queries, (0, 1), cache=tmp_path)
    states = measure_units.embed_pararel(tiny_lm, queries, (0, 1), cache=tmp_path)
    np.testing.assert_allclose(states["pre_norm"][1], arrays["resid"][frame["prompt_id"].to_numpy() == 1, -1])
    expected = measure_units.unit_table(states["final_norm"][1], design)
    got = units[(units["representation"] == "final_norm") & (units["prompt_id"] == 1)]
    np.testing.assert_allclose(got["gap"].to_numpy(), expected["gap"].to_numpy())


def test_finding_title_states_the_direction():
    up, _ = _synthetic_units(shift=0.1)
    down, _ = _synthetic_units(shift=-0.1)
    assert vs.finding_title(vs.gap_comparison(up, n_resamples=100)).endswith(
        "more on every dataset (1 significantly)")
    assert vs.finding_title(vs.gap_comparison(down, n_resamples=100)).startswith("t vs b:\n")
    assert "less on every dataset" in vs.finding_title(vs.gap_comparison(down, n_resamples=100))
    mixed = pd.concat([up, down.assign(dataset="other")])
    assert vs.finding_title(vs.gap_comparison(mixed, n_resamples=100)).endswith(
        "more on 1 of 2 datasets (1 significantly), less on 1 (1 significantly)")
    assert vs.finding_title(pd.DataFrame()) .startswith("Gap")


# ------------------------------------------------------------------------------------- parameters


def test_check_parameters_refuses_unknown_datasets_and_representations():
    vs.check_parameters(["mrpc", "pararel"], "pre_norm")  # no error
    with pytest.raises(ValueError, match=r"unknown datasets \['sst2'\]"):
        vs.check_parameters(["mrpc", "sst2"], "final_norm")
    with pytest.raises(ValueError, match="representation must be one of"):
        vs.check_parameters(["mrpc"], "hidden")
    with pytest.raises(ValueError, match="empty"):
        vs.check_parameters([], "final_norm")
    with pytest.raises(TypeError, match="not one string"):
        vs.check_parameters("mrpc", "final_norm")
    vs.check_parameters(["mrpc"], "final_norm", "decoder")  # an encoder-decoder model read from its decoder
    with pytest.raises(ValueError, match="encoder_decoder_state='last': use one of encoder, decoder"):
        vs.check_parameters(["mrpc"], "final_norm", "last")


# ------------------------------------------------------------------------------- building the data


def test_build_designs_makes_the_asked_datasets_in_table_1_order(monkeypatch):
    calls = []
    queries = pd.DataFrame({"relation": "P1", "template_id": [0, 1, 0, 1], "subject": ["a", "a", "b", "b"]})

    def mrpc(split):
        calls.append(("mrpc", split))
        return _mrpc_pairs(6, 5)

    def tapaco(n_sets, seed):
        calls.append(("tapaco", n_sets, seed))
        return _sets()

    def load_queries(relations, n_per_relation, seed):
        calls.append(("pararel", relations, n_per_relation, seed))
        return queries

    monkeypatch.setattr(vs.paraphrases, "load_mrpc_pairs", mrpc)
    monkeypatch.setattr(vs.paraphrases, "load_tapaco_sets", tapaco)
    monkeypatch.setattr(vs.pararel, "load_queries", load_queries)
    monkeypatch.setattr(vs.pararel, "paraphrase_sets",
                        lambda q: pd.DataFrame({"set_id": ["a", "a", "b", "b"], "text": list("wxyz"), "source": "pararel"}))
    kwargs = dict(n_mrpc_pairs=3, n_paraphrase_sets=7, n_nonparaphrase_per_set=2, pararel_relations=["P1"],
                  pararel_n_per_relation=2, seed=4)
    designs, got_queries = vs.build_designs(["pararel", "mrpc", "tapaco"], **kwargs)
    assert list(designs) == ["mrpc", "tapaco", "pararel"]
    assert calls == [("mrpc", "test"), ("tapaco", 7, 4), ("pararel", ["P1"], 2, 4)]
    assert got_queries is queries
    pd.testing.assert_frame_equal(designs["mrpc"].items, vs.design_mrpc(_mrpc_pairs(6, 5), 3, 4).items)
    pd.testing.assert_frame_equal(designs["tapaco"].nonparaphrase,
                                  vs.design_paraphrase_sets(_sets(), 2, 4).nonparaphrase)
    assert len(designs["pararel"].units) == 2 and designs["pararel"].label == "ParaRel"
    only, none = vs.build_designs(["mrpc"], **kwargs)
    assert list(only) == ["mrpc"] and none is None
    table = vs.describe_designs(designs)
    assert table["dataset"].tolist() == ["mrpc", "tapaco", "pararel"]
    assert table["n_sets"].tolist() == [3, 2, 2] and table["n_nonparaphrase_pairs"].tolist() == [3, 4, 4]
    assert vs.sample_sizes(designs) == {"n_mrpc_pairs": 3, "n_tapaco_sets": 2, "n_pararel_sets": 2}
    assert vs.sample_sizes(only) == {"n_mrpc_pairs": 3, "n_tapaco_sets": 0, "n_pararel_sets": 0}


def test_share_found_ignores_case_spacing_and_punctuation():
    assert vs.text_key("It's 3 p.m. , OK") == "its3pmok"
    assert vs.share_found(["It's here.", "it s here", "Other one", "x"], ["its HERE", "x!"]) == 0.75
    assert math.isnan(vs.share_found([], ["a"]))


def test_stand_in_overlap_counts_msrp_sentences_found_in_mrpc(monkeypatch):
    mrpc = pd.DataFrame({"text_a": ["The cat sat .", "b"], "text_b": ["c", "A dog , barking"]})
    msrp = pd.DataFrame({"text": ["the cat sat", "a dog barking", "new sentence", "c."]})
    monkeypatch.setattr(vs.paraphrases, "load_mrpc_pairs", lambda split: mrpc if split == "all" else None)
    monkeypatch.setattr(vs.paraphrases, "load_grouped_paraphrases", lambda name: msrp if name == "msrp" else None)
    stand_in = _sets().assign(source=paraphrases.STAND_IN_SOURCE)
    stand_in.attrs["source"] = paraphrases.STAND_IN_SOURCE
    designs = {"tapaco": vs.design_paraphrase_sets(stand_in, 1)}
    assert vs.stand_in_overlap(designs) == 0.75
    assert math.isnan(vs.stand_in_overlap({"tapaco": vs.design_paraphrase_sets(_sets(), 1)}))  # real TaPaCo
    assert math.isnan(vs.stand_in_overlap({}))


# ------------------------------------------------------------------------------ comparison (stats)


def _noisy_units(n_sets=12, tuned=(("t", 0.05),)):
    """Per-set gaps with noise, one base ``b`` and the ``tuned`` models (name, mean shift), two datasets."""
    rng = np.random.default_rng(3)
    rows = []
    for dataset in ("mrpc", "toy"):
        for model, role, shift in (("b", "base", 0.0), *((m, "instruction-tuned", s) for m, s in tuned)):
            gaps = rng.normal(0.2 + shift, 0.05, size=(n_sets, 2))
            for representation in measure_units.REPRESENTATIONS:
                sign = 1 if representation == "final_norm" else -1
                for p in range(2):
                    for i in range(n_sets):
                        gap = sign * gaps[i, p]
                        rows.append({"model": model, "role": role, "dataset": dataset, "dataset_label": dataset,
                                     "representation": representation, "prompt_id": p, "unit_id": f"s{i}",
                                     "n_members": 2 + i % 3, "cos_para": 0.9, "cos_para_literal": 0.9 * (1 + i % 3),
                                     "cos_nonpara": 0.9 - gap, "gap": gap})
    return pd.DataFrame(rows)


def test_gap_comparison_is_the_paired_comparison_of_prompt_averaged_set_gaps():
    units = _noisy_units(tuned=(("t1", 0.05), ("t2", -0.02)))
    comparison = vs.gap_comparison(units, n_resamples=300, seed=5)
    assert list(comparison.columns) == vs.COMPARISON_COLUMNS + ["representation", "confidence"]
    assert comparison[["dataset", "base", "tuned"]].values.tolist() == [
        ["mrpc", "b", "t1"], ["mrpc", "b", "t2"], ["toy", "b", "t1"], ["toy", "b", "t2"]]
    averaged = vs.prompt_average(units)
    for _, row in comparison.iterrows():
        gaps = averaged[averaged["dataset"] == row["dataset"]]
        b = gaps[gaps["model"] == "b"].set_index("unit_id")["gap"]
        t = gaps[gaps["model"] == row["tuned"]].set_index("unit_id")["gap"]
        expected = stats.paired_comparison(b, t, n_resamples=300, seed=5)
        assert row["n_sets"] == 12
        for ours, theirs in (("base_gap", "base_mean"), ("tuned_gap", "tuned_mean"), ("mean_diff", "mean_diff"),
                             ("diff_low", "diff_low"), ("diff_high", "diff_high"), ("wilcoxon_p", "wilcoxon_p")):
            assert row[ours] == expected[theirs]
        assert row["direction"] == vs.direction(row["mean_diff"], row["diff_low"], row["diff_high"])
    assert (comparison["representation"] == "final_norm").all() and (comparison["confidence"] == 0.95).all()
    # one role only: no rows, the same columns
    alone = vs.gap_comparison(units[units["model"] == "b"], n_resamples=100)
    assert alone.empty and list(alone.columns) == list(comparison.columns)


def test_compare_representations_and_sign_changes():
    units = _noisy_units()
    both = vs.compare_representations(units, n_resamples=200, seed=1)
    assert both["representation"].tolist() == ["final_norm", "final_norm", "pre_norm", "pre_norm"]
    pd.testing.assert_frame_equal(both.iloc[:2], vs.gap_comparison(units, "final_norm", 200, seed=1))
    # pre_norm gaps are the negated final_norm gaps here, so every difference changes sign
    np.testing.assert_allclose(both["mean_diff"].iloc[2:].to_numpy(), -both["mean_diff"].iloc[:2].to_numpy())
    assert vs.sign_changes(both) == 2
    assert vs.sign_changes(both.assign(mean_diff=0.1)) == 0
    assert vs.sign_changes(both.iloc[:0]) == 0
    table = vs.representation_table(both)
    assert table.shape == (2, 6) and table.loc[("mrpc", "b", "t"), ("mean_diff", "pre_norm")] == round(
        -both["mean_diff"].iloc[0], 3)


def test_gap_table_and_mean_cosines_for_reading():
    summary = pd.DataFrame({"dataset_label": "Toy", "model": "b", "role": "base", "prompt": ["0", "mean"],
                            "gap": [0.1234, 0.2], "low": [0.1, 0.15], "high": [0.2, 0.25]})
    assert vs.gap_table(summary).loc[("Toy", "b", "base")].to_dict() == {"0": "0.123 [0.100, 0.200]",
                                                                        "mean": "0.200 [0.150, 0.250]"}
    units = _noisy_units()
    cosines = vs.mean_cosines(units)
    chosen = units[(units["model"] == "t") & (units["dataset"] == "toy") & (units["representation"] == "pre_norm")]
    assert cosines.loc[("t", "toy"), ("gap", "pre_norm")] == round(chosen["gap"].mean(), 3)
    assert set(cosines.index) == {("b", "mrpc"), ("b", "toy"), ("t", "mrpc"), ("t", "toy")}


# --------------------------------------------------------------------------------- values for the prose


def _comparison_table():
    return pd.DataFrame([
        {"dataset": "mrpc", "base": "b", "tuned": "t", "base_gap": 0.1, "tuned_gap": 0.3, "mean_diff": 0.2,
         "diff_low": 0.1, "diff_high": 0.3, "wilcoxon_p": 0.01, "direction": "same as paper (interval excludes 0)"},
        {"dataset": "mrpc", "base": "b", "tuned": "u", "base_gap": 0.1, "tuned_gap": 0.0, "mean_diff": -0.1,
         "diff_low": -0.2, "diff_high": -0.05, "wilcoxon_p": 0.02, "direction": "opposite to paper (interval excludes 0)"},
        {"dataset": "pararel", "base": "b", "tuned": "t", "base_gap": 0.2, "tuned_gap": 0.25, "mean_diff": 0.05,
         "diff_low": -0.01, "diff_high": 0.1, "wilcoxon_p": 0.3, "direction": "same sign as paper (interval includes 0)"},
    ])


def test_comparison_values_quote_the_first_pair_per_dataset_and_count_all_rows():
    values = vs.comparison_values(_comparison_table(), suffix="_x")
    assert values["mean_diff_x_mrpc"] == 0.2 and values["tuned_gap_x_mrpc"] == 0.3  # the first pair, b vs t
    assert values["direction_x_pararel"] == "same sign as paper (interval includes 0)"
    assert math.isnan(values["base_gap_x_tapaco"]) and values["direction_x_tapaco"] == "n/a"
    assert (values["n_same_x"], values["n_same_significant_x"], values["n_opposite_significant_x"],
            values["n_comparisons_x"]) == (2, 1, 1, 3)
    assert len(values) == 3 * 7 + 4
    empty = vs.comparison_values(_comparison_table().iloc[:0])
    assert empty["n_comparisons"] == 0 and empty["n_same"] == 0 and math.isnan(empty["mean_diff_mrpc"])


def test_nonparaphrase_cosines_per_model_and_dataset():
    units = _noisy_units()
    values = vs.nonparaphrase_cosines(units, "final_norm", "b", "t")
    assert set(values) == {f"{k}_cos_nonpara_{d}" for k in ("base", "tuned") for d in vs.DATASETS}  # not "toy"
    chosen = units[(units["model"] == "t") & (units["dataset"] == "mrpc") & (units["representation"] == "final_norm")]
    assert len(chosen) == 24 and values["tuned_cos_nonpara_mrpc"] == pytest.approx(chosen["cos_nonpara"].mean())
    assert math.isnan(values["base_cos_nonpara_pararel"])
    assert math.isnan(vs.nonparaphrase_cosines(units, "final_norm", None, None)["base_cos_nonpara_mrpc"])


def test_paper_values_are_table_1():
    values = vs.paper_values()
    assert values["paper_base_mrpc"] == 0.010 and values["paper_n_above_mrpc"] == 10
    assert values["paper_tuned_mean_mrpc"] == pytest.approx(0.0302)
    assert (values["paper_n_above_tapaco"], values["paper_n_equal_tapaco"]) == (8, 1)
    assert values["paper_base_pararel"] == 0.474 and values["paper_n_above_pararel"] == 10


def test_representation_values():
    units = _noisy_units()
    both = vs.compare_representations(units, n_resamples=200)
    values = vs.representation_values(both, units, "final_norm", "b", "t")
    other = vs.comparison_values(both[both["representation"] == "pre_norm"], suffix="_other")
    assert {k: values[k] for k in other} == other
    assert (values["main_representation"], values["other_representation"]) == ("final-norm", "pre-norm")
    assert values["n_sign_changes"] == 2 and values["representation_phrase"].startswith("a direction that changes")
    pre = units[(units["model"] == "b") & (units["representation"] == "pre_norm")]["cos_nonpara"].mean()
    assert values["base_cos_nonpara_pre"] == pytest.approx(pre)
    flipped = vs.representation_values(both, units, "pre_norm", "b", "t")
    assert flipped["other_representation"] == "final-norm"
    assert flipped["mean_diff_other_mrpc"] == both.iloc[0]["mean_diff"]
    same = vs.representation_values(both.assign(mean_diff=0.1), units, "final_norm", "b", "t")
    assert same["n_sign_changes"] == 0 and same["representation_phrase"].startswith("one vector of two")


def test_printed_eq2_values_on_the_tapaco_sets_of_one_model():
    units = _noisy_units().replace({"dataset": {"toy": "tapaco"}})
    values = vs.printed_eq2_values(units, "final_norm", "b")
    chosen = units[(units["model"] == "b") & (units["dataset"] == "tapaco") & (units["representation"] == "final_norm")]
    assert (values["tapaco_min_size"], values["tapaco_max_size"]) == (2, 4)
    assert values["pairs_gap_tapaco"] == pytest.approx(chosen["gap"].mean())
    assert values["literal_gap_tapaco"] == pytest.approx((chosen["cos_para_literal"] - chosen["cos_nonpara"]).mean())
    missing = vs.printed_eq2_values(units, "final_norm", "nobody")
    assert missing["tapaco_min_size"] == 0 and math.isnan(missing["literal_gap_tapaco"])


# ---------------------------------------------------------------------------------------- headlines


def test_headlines_rows_come_from_the_comparison():
    comparison = pd.DataFrame([{"dataset": "mrpc", "base": "b", "tuned": "t", "n_sets": 5, "base_gap": 0.1,
                                "tuned_gap": 0.3, "mean_diff": 0.2, "diff_low": 0.1, "diff_high": 0.3,
                                "wilcoxon_p": 0.01}])
    (row,) = vs.headlines(comparison, {"mrpc": "MRPC"})
    assert row["estimate"] == pytest.approx(0.2) and row["direction_holds"] == "yes"
    assert row["ours"] == "+0.200 [+0.100, +0.300] (base 0.100, tuned 0.300)"
    assert row["paper"] == ("LLaMA-7b 0.010; 10 tuned 0.014-0.045, 10 larger; "
                            "T5-XL, Falcon-7b: tuned larger (Table 4)")
    assert row["result"] == "cos(paraph.) − cos(¬paraph.), tuned − base: MRPC"
    assert row["note"] == "5 paraphrase sets; paired bootstrap interval; Wilcoxon p = 0.01"
    (labelled,) = vs.headlines(comparison.assign(dataset="tapaco", mean_diff=-0.2, diff_low=-0.3, diff_high=-0.1),
                               {"tapaco": "TaPaCo stand-in"}, "final_norm")
    assert labelled["direction_holds"] == "no" and labelled["result"].endswith("TaPaCo stand-in")
    assert labelled["note"].endswith("; representation final_norm")
    assert vs.headlines(comparison.iloc[:0]) == []


