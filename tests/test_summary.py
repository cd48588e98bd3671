"""The reproduction summary page's pieces, on hand-made headlines and a hand-made book folder."""

import numpy as np
import pandas as pd
import pytest

from ifhelpers import findings, summary


def _headlines():
    rows = [findings.row("§2", "gap", "paper says | more", "+0.1 [0.0, 0.2]", "yes", base="gemma-3-270m",
                         tuned="smollm2-135m-instruct", note="8 sets"),
            findings.row("§3", "acc", "p", "o", "n.s. (same sign)", base="gemma-3-270m",
                         tuned="smollm2-135m-instruct")]
    frame = pd.DataFrame(rows)
    frame["chapter"] = ["01_a", "02_b"]
    frame["elapsed_s"], frame["cache"], frame["executed_at"], frame["cpus"] = [60.0, 120.0], "warm", "t", 2
    return frame


def test_results_tables_escape_pipes_and_tally():
    text = summary.results_tables(_headlines())
    assert "| 1 | §2 | gap | paper says \\| more | +0.1 [0.0, 0.2] | **yes** |" in text
    assert "*Notes.* (1) 8 sets." in text
    assert text.endswith("Tally over the 2 results: **yes** 1; **n.s. (same sign)** 1.")


def test_model_pairs_warn_about_different_families():
    (line,) = summary.model_pairs(_headlines())
    assert "**gemma-3-270m** (base) against **smollm2-135m-instruct**" in line and "different families" in line
    same = _headlines().assign(tuned="gemma-3-270m-ift-free-form")
    assert "same family" in summary.model_pairs(same)[0]


def test_missing_and_silent_chapters(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_toc.yml").write_text("parts:\n  - chapters:\n      - file: notebooks/01_a\n"
                                       "      - file: notebooks/03_c\n      - file: notebooks/04_d\n")
    (tmp_path / "notebooks" / "01_a.md").write_text("ifh.book.finish(ch, rows)")
    (tmp_path / "notebooks" / "03_c.md").write_text("ifh.book.finish(ch, rows)")
    (tmp_path / "notebooks" / "04_d.md").write_text("no headlines here")
    notes = summary.missing_notes(_headlines(), tmp_path, "F")
    assert len(notes) == 2 and "Missing: no headlines from {doc}`03_c`" in notes[0] and "`04_d` records no" in notes[1]
    assert summary.chapter_times(_headlines())["minutes"].tolist() == [1.0, 2.0]


def _forest_headlines():
    """Three chapters: differences with intervals (two with an MDE, one of them without an interval),
    a paper claim of no direction, and a row with no number."""
    def r(chapter, section, verdict, estimate=float("nan"), low=float("nan"), high=float("nan"),
          mde=float("nan"), ours="o", base="gemma-3-270m", tuned="smollm2-135m-instruct"):
        return {**findings.row(section, f"result {section}", "p", ours, verdict, estimate=estimate, low=low,
                               high=high, mde=mde, base=base, tuned=tuned), "chapter": chapter}

    rows = [r("01_a", "§2", "yes", 0.05, 0.02, 0.08, mde=0.03),
            r("01_a", "§2", "no", -0.2, -0.3, -0.1),
            r("02_b", "§3", "n.s. (opposite sign)", -2.0, -5.0, 1.0, mde=4.0),
            r("02_b", "§3", "not defined", 1.0, -1.0, 3.0),
            r("02_b", "§3", "not testable", 2.0, mde=1.0, ours="base 1.7, tuned 3.9"),  # no interval: no point
            r("05_c", "§3 (extension)", "yes", -1.5, -2.0, -1.0, base="gemma-3-270m", tuned="gemma-3-270m-ift-free-form"),
            r("05_c", "§1 (posited, not tested)", "n.s. (same sign)", 4.4, -1.7, 9.6, ours="+4.4 pts [-1.7, +9.6]",
              base="gemma-3-270m", tuned="gemma-3-270m-ift-free-form")]
    return pd.DataFrame(rows).reindex(columns=findings.HEADLINE_COLUMNS)


def _artists(fig, gid):
    return [a for ax in fig.axes for a in [*ax.lines, *ax.collections, *ax.patches, *ax.texts] if a.get_gid() == gid]


def test_paper_side_is_read_back_from_the_verdict():
    assert summary.paper_side("yes", 0.05, 0.02, 0.08) == 1
    assert summary.paper_side("yes", -1.5, -2.0, -1.0) == -1  # the paper's claim is "tuned lower"
    assert summary.paper_side("no", -0.2, -0.3, -0.1) == 1
    assert summary.paper_side("n.s. (opposite sign)", -2.0, -5.0, 1.0) == 1
    assert summary.paper_side("not defined", 1.0, -1.0, 3.0) == 0
    assert summary.paper_side("yes", 0.05, -0.02, 0.08) == 0  # a verdict this interval does not give
    assert summary.paper_side("no", float("nan"), float("nan"), float("nan")) == 0


def test_forest_plot_draws_every_headline_by_chapter():
    import matplotlib.pyplot as plt

    headlines = _forest_headlines()
    rows = summary.forest_rows(headlines)
    assert rows["drawn"].tolist() == [True, True, True, True, False, True, True]
    assert rows["side"].tolist() == [1, 1, 1, 0, 0, -1, 1]
    fig = summary.plot_headline_forest(headlines)
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["01_a", "02_b", "05_c"]
    assert len(_artists(fig, "estimate")) == 6 and len(_artists(fig, "interval")) == 6
    mde = _artists(fig, "mde")  # the finite MDEs of drawn rows only: 0.03 and 4.0, at ± each
    assert sorted(tuple(line.get_xdata()) for line in mde) == [(-4.0, 4.0), (-0.03, 0.03)]
    assert len(_artists(fig, "paper side")) == 5
    (note,) = _artists(fig, "not drawn")
    assert "not testable" in note.get_text() and "base 1.7, tuned 3.9" in note.get_text()
    assert [len(ax.get_yticks()) for ax in fig.axes] == [2, 3, 2]
    for ax in fig.axes:  # each chapter on its own axis, symmetric about zero
        low, high = ax.get_xlim()
        assert low == -high
    assert fig.axes[0].get_xlim()[1] < 1 < fig.axes[1].get_xlim()[1]
    assert fig.get_suptitle() == "2 of 7 headlines go the paper's way, 1 against it, 2 are not significant"
    plt.close(fig)
    no_mde = summary.plot_headline_forest(headlines.assign(mde=float("nan")))
    assert not _artists(no_mde, "mde") and "minimum detectable" not in str(no_mde.legends[0].get_texts())
    plt.close(no_mde)
    plt.close(summary.plot_headline_forest(headlines.iloc[:0]))


def test_front_page_text_counts_the_headlines_and_reads_the_own_experiment():
    headlines = _forest_headlines()
    assert summary.verdict_tally(headlines) == {"holds": 2, "against": 1, "n.s.": 2, "mixed": 0, "cannot tell": 2,
                                                "total": 7}
    text = summary.front_page_text(headlines)
    assert text.startswith("Of the 7 headline results of this build, 2 go the paper's way")
    assert "1 goes against it, 2 are not significant (the interval contains zero) and 2 cannot be read" in text
    assert " 5 of the 7 compare models from different families" in text
    assert text.endswith("but does not test: result §1 (posited, not tested). Ours: +4.4 pts [-1.7, +9.6], in "
                         "the claimed direction, but its 95% interval contains zero (not significant).")
    assert "{" not in text and "*" not in text  # plain text: the front page pastes it with {glue:text}
    without_own = summary.front_page_text(headlines.iloc[:5])
    assert without_own.endswith("The book's own experiment (chapter 5) has recorded no result in this build.")
    assert summary.front_page_text(headlines.iloc[:0]).startswith("No chapter has recorded its headlines")


def test_results_beyond_the_paper_are_tallied_apart():
    paper_rows = _forest_headlines()
    beyond = paper_rows.iloc[:3].assign(chapter="06_sensitivity", paper_section="beyond the paper",
                                        base="gemma-3-270m", tuned="gemma-3-270m-ift-templates-1-seed0",
                                        note="same family; 20 questions")
    headlines = pd.concat([paper_rows, beyond], ignore_index=True)
    text = summary.front_page_text(headlines)
    assert text.startswith("Of the 7 headline results of this build that reproduce the paper, 2 go the paper's way")
    t = summary.verdict_tally(beyond)
    assert text.endswith(f"Beyond the paper (chapter 6: the paper's claim measured as later work measures it), of 3 "
                         f"results {t['holds']} side with the paper, {t['against']} with the findings against it and "
                         f"{3 - t['holds'] - t['against']} with neither.")
    lines = summary.beyond_text(headlines)
    assert lines.startswith("- **gemma-3-270m-ift-templates-1-seed0 − gemma-3-270m** (same family): of 3 results")
    assert summary.beyond_text(paper_rows).startswith("*No result beyond the paper")


# --- the paper's design at pocket scale: our datasets beside the paper's ---------------------------------------

PARAREL_GAP = "cos(paraph.) − cos(¬paraph.), tuned − base: ParaRel"
DATASET_MODELS = {"cot": "gemma-3-270m-ift-cot-stand-in", "flan-v2": "gemma-3-270m-ift-flan-v2-stand-in",
                  "gpt4-alpaca": "gemma-3-270m-ift-gpt4-alpaca-stand-in",
                  "stanford-alpaca": "gemma-3-270m-ift-stanford-alpaca-5k"}


def _design_headlines(ours=None):
    """The ParaRel gap of Table 1 for the four tuned models of pair=pocket-datasets (our estimates ``ours``), a
    row of the cross-family pair and a result the paper does not print per model (both left out)."""
    ours = ours or {"gpt4-alpaca": 0.01, "stanford-alpaca": 0.02, "cot": 0.03, "flan-v2": 0.04}
    rows = [findings.row("§2, Table 1", PARAREL_GAP, "p", f"{v:+.2f}", "yes", estimate=v, low=v - 0.01,
                         high=v + 0.01, base="gemma-3-270m", tuned=DATASET_MODELS[d]) for d, v in ours.items()]
    rows.append(findings.row("§2, Table 1", PARAREL_GAP, "p", "+0.5", "yes", estimate=0.5, low=0.4, high=0.6,
                             base="gemma-3-270m", tuned="smollm2-135m-instruct"))
    rows.append(findings.row("§4", "subject attribute rate, tuned − base (points)", "p", "+1", "n.s. (same sign)",
                             estimate=1.0, low=-1.0, high=3.0, base="gemma-3-270m", tuned=DATASET_MODELS["cot"]))
    return pd.DataFrame(rows).assign(chapter="01_vector_space")


def test_the_paper_effect_of_a_dataset_is_its_tuned_llama_minus_llama():
    # Table 1, ParaRel: stanford-alpaca-7b 0.591, LLaMA-7b 0.474. Table 2, ParaRel consistency: gpt4-alpaca-7b
    # 84.5, LLaMA-7b 81.9. Table 2, BECEL consistency "semantic / negational": cot-7b 86.1 / 51.9, LLaMA 84.7 / 42.3.
    assert summary.paper_per_model_effect(PARAREL_GAP, "stanford-alpaca") == pytest.approx(0.117)
    assert summary.paper_per_model_effect("ParaRel consistency, tuned − base (points)", "gpt4-alpaca") == \
        pytest.approx(2.6)
    negation = "BECEL negational consistency (negation), mean over tasks, tuned − base (×100)"
    assert summary.paper_per_model_effect(negation, "cot") == pytest.approx(9.6)
    assert summary.paper_per_model_effect(negation.replace("negational", "semantic").replace("negation)", "paraphrase)"),
                                          "cot") == pytest.approx(1.4)
    assert np.isnan(summary.paper_per_model_effect("subject attribute rate, tuned − base (points)", "cot"))
    assert np.isnan(summary.paper_per_model_effect(PARAREL_GAP, "lima"))  # no LLaMA model of the paper


def test_per_dataset_table_keeps_the_datasets_the_paper_tuned_on_beside_its_effects():
    table = summary.per_dataset_table(_design_headlines())
    assert table["dataset"].tolist() == ["gpt4-alpaca", "stanford-alpaca", "cot", "flan-v2"]
    assert table["paper (LLaMA-7b)"].tolist() == pytest.approx([0.111, 0.117, 0.141, 0.129])
    assert table["ours"].tolist() == [0.01, 0.02, 0.03, 0.04]
    assert "stand-in" in table.set_index("dataset").loc["cot", "ours_label"]


def _seeded_consistency(values: dict[tuple[str, int], float]) -> pd.DataFrame:
    """Chapter 2's ParaRel consistency headline for models of pair=pocket-datasets by (dataset, seed)."""
    rows = [findings.row("§3, Table 2", "ParaRel consistency, tuned − base (points)", "p", f"{v:+.1f}", "n.s.",
                         estimate=v, low=v - 2.0, high=v + 2.0, base="gemma-3-270m",
                         tuned=DATASET_MODELS[d] + ("-seed1" if seed else "")) for (d, seed), v in values.items()]
    return pd.DataFrame(rows).assign(chapter="02_predictions")


def test_seeds_against_datasets_is_a_one_way_anova_of_the_seeds_by_dataset():
    # cot 1, 3; flan-v2 5, 7: seed SD sqrt((2 + 2) / 2) = 1.414; means 2, 6: SD 2.828; MS between 2 x 8 / 1 = 16,
    # MS within 4 / 2 = 2: F = 8 on (1, 2) df = t^2 on 2 df, so p = 1 - t / sqrt(t^2 + 2) = 1 - sqrt(8 / 10) = 0.10557
    table = summary.per_dataset_table(_seeded_consistency({("cot", 0): 1.0, ("cot", 1): 3.0, ("flan-v2", 0): 5.0,
                                                           ("flan-v2", 1): 7.0, ("gpt4-alpaca", 0): 9.0}))
    assert table["seed"].tolist() == [0, 1, 0, 1, 0]
    (row,) = summary.seeds_against_datasets(table).to_dict("records")  # gpt4-alpaca has one seed: left out
    assert (row["datasets"], row["seeds"]) == (2, 2)
    assert row["seed_sd"] == pytest.approx(np.sqrt(2)) and row["dataset_sd"] == pytest.approx(np.sqrt(8))
    assert row["F"] == pytest.approx(8.0) and row["p"] == pytest.approx(0.105573, abs=1e-6)
    means = summary.dataset_means(table).set_index("dataset")
    assert means["ours"].tolist() == [2.0, 6.0, 9.0] and means["seeds"].tolist() == [2, 2, 1]
    assert summary.seeds_against_datasets(summary.per_dataset_table(_design_headlines())).empty  # one seed each


def test_rank_agreement_is_spearman_with_fishers_interval():
    # Paper's ranks (gpt4, stanford, flan, cot) = 1, 2, 3, 4; ours 1, 2, 4, 3: rho = 1 - 6 * 2 / (4 * 15) = 0.8.
    # t = 0.8 * sqrt(2 / 0.36) on 2 degrees of freedom: p = 1 - t / sqrt(t^2 + 2) = 0.2. Fisher: atanh(0.8) ± 1.96.
    (row,) = summary.rank_agreement(summary.per_dataset_table(_design_headlines())).to_dict("records")
    assert row["datasets"] == 4 and row["spearman"] == pytest.approx(0.8) and row["p"] == pytest.approx(0.2)
    z = np.arctanh(0.8)
    assert (row["low"], row["high"]) == pytest.approx((np.tanh(z - 1.959964), np.tanh(z + 1.959964)), abs=1e-6)
    three = summary.per_dataset_table(_design_headlines({"gpt4-alpaca": 0.03, "stanford-alpaca": 0.02, "cot": 0.01}))
    (row,) = summary.rank_agreement(three).to_dict("records")
    assert row["spearman"] == pytest.approx(-1.0) and np.isnan(row["low"])  # ranks 1, 2, 3 against 3, 2, 1; no interval
    # two seeds: a dataset's mean over them is ranked. Paper (Table 2, consistency): gpt4-alpaca +2.6, cot +0.0,
    # flan-v2 +0.4; ours: gpt4 9, cot mean 2, flan-v2 mean 6: ranks 3, 1, 2 both ways
    seeded = summary.per_dataset_table(_seeded_consistency({("cot", 0): 1.0, ("cot", 1): 3.0, ("flan-v2", 0): 5.0,
                                                            ("flan-v2", 1): 7.0, ("gpt4-alpaca", 0): 9.0}))
    (row,) = summary.rank_agreement(seeded).to_dict("records")
    assert row["datasets"] == 3 and row["spearman"] == pytest.approx(1.0)


def test_the_front_page_reports_the_committed_runs_beside_the_build(tmp_path):
    own = findings.row("§1 (posited, not tested)", "more templates (slope per doubling)", "posited",
                       "+1.70 pts [-0.18, +3.79]", "n.s. (same sign)", estimate=1.7, low=-0.18, high=3.79, mde=2.66,
                       base="gemma-3-270m", tuned="gemma-3-270m-ift-templates-all-seed0")
    full = pd.DataFrame([own]).assign(chapter="05_tune_it_yourself")
    full.attrs["stale"] = "code commit 0000 is older than the last change"
    text = summary.front_page_text(_headlines(), {"full": full, "design": _design_headlines()})
    # the design run follows the build's tally; the own experiment's full run follows the own experiment
    assert text.index("(results/design)") < text.index("The book's own experiment") < \
        text.index("(results/full)")
    assert ("In the committed full run (results/full) (flagged: code commit 0000 is older than the last change), "
            "the same slope is +1.70 pts [-0.18, +3.79] (minimum detectable effect 2.66), in the claimed direction"
            in text)
    assert ("(results/design) compares the base model tuned on 4 instruction datasets (cot, flan-v2, gpt4-alpaca, "
            "stanford-alpaca; " in text) and "of its 6 results (one per result and tuned model), 5 go the paper's way" \
        in text
    assert "(Spearman) ranges from +0.80 to +0.80 over 1 result (4 datasets" in text
    consistency = findings.row("§3, Table 2", "ParaRel consistency, tuned − base (points)", "p", "+1.0 [-2.0, +4.0]",
                               "n.s. (same sign)", estimate=1.0, low=-2.0, high=4.0, mde=3.5, base="gemma-3-270m",
                               tuned=DATASET_MODELS["cot"])
    design = pd.concat([_design_headlines(), pd.DataFrame([consistency]).assign(chapter="02_predictions")])
    text = summary.committed_run_text("design", design)
    assert ("ParaRel consistency, tuned − base per dataset: cot +1.0 [-2.0, +4.0] (minimum detectable effect 3.50) "
            "(the paper, for LLaMA-7b tuned on the same datasets: cot +0.0 points). Each minimum detectable effect "
            "(80% power, two-sided test at 0.05) is read from its interval, which holds the evaluation's noise only: "
            "with one model trained per dataset") in text  # cot-7b 81.9 = LLaMA
    twice = pd.concat([design, pd.DataFrame([{**consistency, "tuned": DATASET_MODELS["cot"]}]).assign(
        chapter="02_predictions")])  # two models of one dataset: no claim of one model per dataset
    assert "one model trained per dataset" not in summary.committed_run_text("design", twice)
    text = summary.committed_run_text("design", _seeded_consistency(
        {("cot", 0): 1.0, ("cot", 1): 3.0, ("flan-v2", 0): 5.0, ("flan-v2", 1): 7.0}))
    assert ("per dataset: cot +1.0 [-1.0, +3.0] (seed 0) and +3.0 [+1.0, +5.0] (seed 1); flan-v2 +5.0 [+3.0, +7.0] "
            "(seed 0) and +7.0 [+5.0, +9.0] (seed 1) (the paper, for LLaMA-7b tuned on the same datasets: cot +0.0, "
            "flan-v2 +0.4 points).") in text
    assert ("with different seeds, this effect moves by 1.4 points (pooled SD) against 2.8 between the datasets' "
            "means (one-way ANOVA over 2 datasets: F = 8.00, p = 0.11): the datasets' differences are not told "
            "apart from seed noise.") in text


def test_committed_headlines_read_each_runs_headline_files_and_flag_a_stale_run(tmp_path):
    from ifhelpers import results

    run = tmp_path / "design"
    run.mkdir()
    _design_headlines().to_csv(run / "headlines_01_vector_space.csv", index=False)
    pd.DataFrame({"x": [1]}).to_csv(run / "vector_space_gaps.csv", index=False)  # another table: not a headline
    (run / "01_vector_space.provenance.yaml").write_text("chapter: 01_vector_space\n")
    (tmp_path / "empty").mkdir()
    found = results.committed_headlines(tmp_path)
    assert list(found) == ["design"] and len(found["design"]) == 6
    assert found["design"].attrs["stale"] == "no code commit recorded"
    assert results.committed_headlines(None) == {} and results.committed_headlines(tmp_path / "absent") == {}


def test_the_front_page_says_when_no_comparison_mixes_families():
    same = summary.front_page_text(_headlines().assign(tuned="gemma-3-270m-ift-free-form"))
    assert "Every comparison is within one model family, so it isolates instruction tuning." in same
    # chapter 5's arms are not registry names: the known pair is counted, and no family mix is claimed
    partly = summary.front_page_text(_headlines().assign(tuned=["gemma-3-270m-ift-free-form", "templates-1 (2 seeds)"]))
    assert ("1 of the 2 compare a base model with a tuned model of its own family (by the registry) and none "
            "compares two families") in partly and "different families" not in partly


def test_footnote4_and_table7_of_the_committed_runs():
    # base consistency 0.60 with SD 0.01 over prompts: the threshold is 1.0 point; the tuned model is 2.0 points lower
    frame = pd.DataFrame({"run": "r", "model": ["b", "t"], "role": ["base", "instruction-tuned"],
                          "consistency": [0.60, 0.58], "consistency_std": [0.01, 0.02]})
    (rule,) = summary.footnote4_by_run(frame).values()
    assert rule.loc["t", ["difference", "threshold"]].tolist() == pytest.approx([-2.0, 1.0])
    assert bool(rule.loc["t", "beyond_threshold"]) and summary.footnote4_by_run(pd.DataFrame()) == {}
    correlations = pd.DataFrame({"run": "r", "model": ["t1", "t2", "t1"], "block": "MHSA", "layer": [3, 3, 4],
                                 "r": [0.5, 0.5, np.nan], "p_value": [0.2, 0.2, np.nan], "n_models": 3,
                                 "defined": [True, True, False]})
    assert summary.defined_correlations(correlations)[["layer", "r"]].values.tolist() == [[3, 0.5]]
    assert summary.defined_correlations(correlations.assign(defined=False)).empty
