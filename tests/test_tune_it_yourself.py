"""ifhelpers.chapters.tune_it_yourself on hand-made tables (no model is loaded or trained; seconds)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ifhelpers import stats  # noqa: E402
from ifhelpers.chapters import tune_it_yourself as tiy  # noqa: E402

BASE = "gemma-3-270m"
RICH, SINGLE, FREE = (f"{BASE}-ift-{k}" for k in ("paraphrase-rich", "single-template", "free-form"))
NAME_OF = {"paraphrase-rich": RICH, "single-template": SINGLE, "free-form": FREE}
NAMES = [BASE, RICH, SINGLE, FREE]
SETTINGS = dict(n_examples=270, max_tokens=160, epochs=1, batch_size=4, learning_rate=5e-4, lora_r=16, seed=0)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ----------------------------------------------------------------------------- models and recipes


def test_base_spec_takes_exactly_one_base_model():
    assert tiy.base_spec([BASE]).name == BASE
    with pytest.raises(ValueError, match="tunes one base model"):
        tiy.base_spec([BASE, FREE])
    with pytest.raises(ValueError, match="instruction-tuned"):
        tiy.base_spec([FREE])


def test_recipes_keep_the_registry_names_and_share_the_settings():
    recipes = tiy.recipes(BASE, ["paraphrase-rich", "free-form"], **{**SETTINGS, "lora_r": 8})
    assert list(recipes) == ["paraphrase-rich", "free-form"]
    assert [r.name for r in recipes.values()] == [RICH, FREE]
    assert {(r.base, r.n_examples, r.lora_r, r.lora_alpha, r.seed) for r in recipes.values()} == {(BASE, 270, 8, 16, 0)}
    assert [r.mixture for r in recipes.values()] == ["paraphrase-rich", "free-form"]


def test_recipes_of_an_unregistered_base_are_named_after_its_last_path_part():
    recipes = tiy.recipes("org/my-model/", ["single-template"], **SETTINGS)
    assert recipes["single-template"].name == "my-model-ift-single-template"


def test_recipes_check_the_mixture_names():
    with pytest.raises(Exception, match="paraphrase-rich"):
        tiy.recipes(BASE, ["paraphrase-poor"], **SETTINGS)


def test_same_as_registry_compares_recipe_keys():
    assert tiy.same_as_registry(tiy.recipes(BASE, list(NAME_OF), **SETTINGS)) == {k: True for k in NAME_OF}
    smaller = tiy.recipes(BASE, ["free-form"], **{**SETTINGS, "n_examples": 30})
    assert tiy.same_as_registry(smaller) == {"free-form": False}
    assert tiy.same_as_registry({}) == {}


# ----------------------------------------------------------------------------- training data and training


def pool():
    return pd.DataFrame({
        "source": ["t0", "t0", "t0", "lima", "alpaca"],
        "prompt": ["p0", "Paris is in", "p2", "p3", "p4"],
        "response": ["r0", "France", "r2", "r3", "r4"],
        "pararel_fact": [False, True, True, False, False],
        "mmlu_ngram": [False, False, True, False, True],
        "becel_ngram": [False, False, False, True, False],
    }).assign(contaminated=lambda t: t[["pararel_fact", "mmlu_ngram", "becel_ngram"]].any(axis=1))


def test_contamination_table_counts_by_source_and_all():
    check = tiy.contamination_table(pool())
    assert list(check.index) == ["Alpaca", "LIMA", "T0", "all"]
    assert list(check.columns) == ["examples that fit", "pararel_fact", "mmlu_ngram", "becel_ngram", "contaminated"]
    assert check.loc["T0"].tolist() == [3, 2, 1, 0, 2]
    assert check.loc["Alpaca"].tolist() == [1, 0, 1, 0, 1]
    assert check.loc["all"].tolist() == [5, 2, 2, 1, 4]


def test_dropped_example_is_the_first_pararel_fact_cut_to_size():
    assert tiy.dropped_example(pool()) == "Paris is in ... -> France"
    assert tiy.dropped_example(pool(), n_prompt=5, n_response=2) == "Paris ... -> Fr"


def test_templates_used_of_the_most_frequent_task():
    drawn = {
        "paraphrase-rich": pd.DataFrame({"task": ["a", "a", "b"], "template": ["a_2", "a_1", "b_1"]}),
        "single-template": pd.DataFrame({"task": ["a", "a", "b"], "template": ["a_1", "a_1", "b_1"]}),
        "free-form": pd.DataFrame({"task": ["lima"], "template": [""]}),
    }
    assert tiy.templates_used(drawn) == ["paraphrase-rich: task 'a', templates used: ['a_1', 'a_2']",
                                         "single-template: task 'a', templates used: ['a_1']"]
    assert tiy.templates_used({"free-form": drawn["free-form"]}) == []


def log(seconds, losses, resumed=None):
    return {"steps": 4, "examples": 27, "tokens": 600, "seconds": seconds, "peak_rss_gib": 6.0, "device": "cpu",
            "torch_threads": 2, "resumed_from": resumed, "losses": losses}


def test_training_cost_one_row_per_mixture():
    cost = tiy.training_cost({"free-form": log(60, []), "paraphrase-rich": log(120, [], resumed="ckpt-2")})
    assert list(cost.index) == ["free-form", "paraphrase-rich"]
    assert cost.loc["paraphrase-rich", "minutes"] == 2 and cost.loc["free-form", "tokens/s"] == 10
    assert cost.loc["paraphrase-rich", "resumed"] is True and cost.loc["free-form", "resumed"] is False
    assert list(cost.columns) == ["steps", "examples", "tokens", "minutes", "tokens/s", "peak memory (GiB)",
                                  "device", "threads", "resumed"]


def test_plot_losses_one_line_per_mixture_with_the_mean_first_and_last_loss():
    logs = {"paraphrase-rich": log(1, [{"step": 1, "loss": 4.0}, {"step": 2, "loss": 2.0}]),
            "free-form": log(1, [{"step": 1, "loss": 6.0}, {"step": 2, "loss": 3.0}])}
    fig = tiy.plot_losses(logs, {"paraphrase-rich": "#ff0000", "free-form": "#0000ff"})
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["paraphrase-rich", "free-form"]
    assert [line.get_color() for line in ax.lines] == ["#ff0000", "#0000ff"]
    assert ax.get_title() == "Training loss falls from 5.0 to 2.5 (mean over variants)"


# ----------------------------------------------------------------------------- measures


def by_relation(values):
    """pararel_by_relation's layout: (model, relation) rows; ``values[model]`` lists R1..R3."""
    return pd.DataFrame([{"model": m, "role": "x", "relation": f"R{i + 1}", "consistency": v, "accuracy": v / 2}
                         for m, vs in values.items() for i, v in enumerate(vs)])


def gap_units(values):
    return pd.DataFrame([{"model": m, "role": "x", "dataset": "pararel", "unit_id": u, "gap": v}
                         for m, vs in values.items() for u, v in zip(["u2", "u1", "u3"], vs)])


def measures(names=(BASE, RICH)):
    values = {BASE: [0.2, 0.4, 0.6], RICH: [0.3, 0.6, 0.6], SINGLE: [0.1, 0.4, 0.5], FREE: [0.2, 0.5, 0.9]}
    values = {m: values[m] for m in names}
    return tiy.paired_measures(by_relation(values), by_relation({m: [1 - v for v in vs] for m, vs in values.items()}),
                               gap_units(values), list(names))


def test_relation_and_gap_wide_are_units_by_models_in_the_given_order():
    wide = tiy.relation_wide(by_relation({BASE: [0.2, 0.4, 0.6], RICH: [0.3, 0.6, 0.6]}), "accuracy", [RICH, BASE])
    assert list(wide.columns) == [RICH, BASE] and list(wide.index) == ["R1", "R2", "R3"]
    assert wide[BASE].tolist() == [0.1, 0.2, 0.3]
    gaps = tiy.gap_wide(gap_units({BASE: [0.2, 0.4, 0.6]}), [BASE])
    assert list(gaps.index) == ["u1", "u2", "u3"] and gaps[BASE].tolist() == [0.4, 0.2, 0.6]


def test_paired_measures_scale_pararel_to_points_and_keep_the_gap():
    m = measures()
    assert tuple(m) == tiy.MEASURES
    assert m["ParaRel consistency"][RICH].tolist() == pytest.approx([30, 60, 60])
    assert m["ParaRel consistency (restricted)"][BASE].tolist() == pytest.approx([80, 60, 40])
    assert m["ParaRel accuracy"][BASE].tolist() == pytest.approx([10, 20, 30])
    assert m["ParaRel cosine gap"][BASE].tolist() == [0.4, 0.2, 0.6]


def mmlu_tables():
    mmlu_table = pd.DataFrame({"accuracy": [0.25, 0.5]}, index=[BASE, RICH])
    spread = pd.DataFrame({"estimate": [0.1, 0.3], "low": [0.0, 0.1], "high": [0.2, 0.5]}, index=[BASE, RICH])
    becel_table = pd.DataFrame({"model": [BASE, BASE, RICH], "metric": ["accuracy", "negational", "semantic"],
                                "value": [70.0, 10.0, 80.0], "low": [60.0, 5.0, 75.0], "high": [80.0, 15.0, 85.0]})
    return mmlu_table, spread, becel_table


def test_measure_table_intervals_mmlu_and_becel_rows():
    m = measures()
    table = tiy.measure_table(m, *mmlu_tables(), [BASE, RICH], n_resamples=200, seed=3)
    assert len(table) == 4 * 2 + 2 * 2 + 2  # paired measures, MMLU accuracy and spread, BECEL acc. and Sem
    row = table[(table["measure"] == "ParaRel cosine gap") & (table["model"] == RICH)].iloc[0]
    ci = stats.bootstrap_ci(m["ParaRel cosine gap"][RICH].to_numpy(), n_resamples=200, seed=3)
    assert (row["estimate"], row["low"], row["high"]) == (ci["estimate"], ci["low"], ci["high"])
    acc = table[table["measure"] == "MMLU accuracy"].set_index("model")
    assert acc.loc[RICH, "estimate"] == 50 and np.isnan(acc.loc[RICH, "low"])
    spread = table[table["measure"] == "MMLU spread"].set_index("model")
    assert spread.loc[RICH, ["estimate", "low", "high"]].tolist() == pytest.approx([30, 10, 50])
    becel = table[table["measure"].str.startswith("BECEL")]
    assert becel[["measure", "model", "estimate"]].values.tolist() == [["BECEL accuracy", BASE, 70.0],
                                                                       ["BECEL Sem", RICH, 80.0]]


def test_measure_cells_as_text():
    table = pd.DataFrame({"measure": ["ParaRel cosine gap", "MMLU accuracy", "ParaRel accuracy"],
                          "model": [BASE, BASE, BASE], "estimate": [0.12345, 25.0, 12.34],
                          "low": [0.1, np.nan, 10.0], "high": [0.2, np.nan, 14.56]})
    cells = tiy.measure_cells(table, [BASE])
    assert cells[BASE].to_dict() == {"MMLU accuracy": "25.0", "ParaRel accuracy": "12.3 [10.0, 14.6]",
                                     "ParaRel cosine gap": "0.123"}


# ----------------------------------------------------------------------------- contrasts


def becel_paired():
    """Rows of the BECEL chapter's compare_roles (stats.compare_roles' columns)."""
    def cell(task, metric, base, tuned, diff):
        return {"model": tuned, "role": "instruction-tuned", "task": task, "metric": metric, "base": base,
                "tuned": tuned, "n": 8, "mean_diff": diff, "diff_low": diff - 0.1, "diff_high": diff + 0.1,
                "wilcoxon_p": 0.5}
    return pd.DataFrame([cell("mrpc", "semantic", BASE, RICH, 0.25), cell("mrpc", "accuracy", BASE, RICH, 0.5),
                         cell("rte", "semantic", BASE, RICH, -0.125), cell("mrpc", "semantic", SINGLE, RICH, 0.5),
                         cell("mrpc", "semantic", BASE, SINGLE, 0.0)])


def test_contrast_pairs_h2_then_h1():
    assert tiy.contrast_pairs(BASE, NAME_OF) == [(BASE, RICH), (BASE, SINGLE), (BASE, FREE), (SINGLE, RICH)]
    assert tiy.contrast_pairs(BASE, {"free-form": FREE}) == [(BASE, FREE)]


def test_contrasts_pair_every_measure_and_becel_sem_per_task():
    m = measures()
    rows = pd.DataFrame(tiy.contrasts(m, becel_paired(), BASE, RICH, n_resamples=200, seed=1))
    assert rows["measure"].tolist() == [*tiy.MEASURES, "BECEL Sem (mrpc)", "BECEL Sem (rte)"]
    assert set(rows["minus"]) == {BASE} and set(rows["model"]) == {RICH}
    expected = stats.paired_comparison(m["ParaRel consistency"][BASE], m["ParaRel consistency"][RICH],
                                       n_resamples=200, seed=1)
    first = rows.iloc[0]
    assert (first["difference"], first["low"], first["high"], first["n"]) == (
        expected["mean_diff"], expected["diff_low"], expected["diff_high"], 3)
    assert first["difference"] == pytest.approx(10)
    becel = rows.iloc[4:]
    assert becel["difference"].tolist() == [25.0, -12.5]
    assert becel["low"].tolist() == pytest.approx([15.0, -22.5]) and becel["n"].tolist() == [8, 8]


def test_versus_base_and_h1_contrasts():
    m = measures(NAMES)
    mmlu_table, spread, _ = mmlu_tables()
    spread = pd.concat([spread, pd.DataFrame({"estimate": [0.25, 0.0], "low": 0.0, "high": 0.5}, index=[SINGLE, FREE])])
    versus = tiy.versus_base(m, becel_paired(), BASE, [RICH, SINGLE], n_resamples=100)
    assert versus.groupby("model", sort=False).size().to_dict() == {RICH: 6, SINGLE: 5}
    assert set(versus["minus"]) == {BASE}
    causal = tiy.h1_contrasts(m, becel_paired(), spread, NAME_OF, n_questions=6, n_resamples=100)
    assert causal["measure"].tolist() == [*tiy.MEASURES, "BECEL Sem (mrpc)", "MMLU spread (lower is more consistent)"]
    assert set(causal["minus"]) == {SINGLE} and set(causal["model"]) == {RICH}
    last = causal.iloc[-1]
    assert last["difference"] == pytest.approx(5.0) and np.isnan(last["low"]) and last["n"] == 6
    assert causal.iloc[4]["difference"] == 50.0
    assert tiy.h1_contrasts(m, becel_paired(), spread, {"free-form": FREE}, 6).empty


def contrast_table(rows):
    return pd.DataFrame(rows, columns=["measure", "minus", "model", "difference", "low", "high"])


def test_count_verdicts_reads_the_intervals():
    frame = contrast_table([["A", BASE, RICH, 2.0, 1.0, 3.0], ["A", BASE, SINGLE, -2.0, -3.0, -1.0],
                            ["A", BASE, FREE, 1.0, -1.0, 3.0], ["B", BASE, RICH, 2.0, 1.0, 3.0]])
    assert tiy.count_verdicts(frame, "A") == (1, 1, 3)
    assert tiy.count_verdicts(frame, "C") == (0, 0, 0)


def test_forest_one_panel_per_measure_without_becel():
    # every panel shows the same pairs (they share the y axis)
    frame = contrast_table([["A", BASE, RICH, 2.0, 1.0, 3.0], ["A", BASE, FREE, 1.0, -1.0, 3.0],
                            ["B", BASE, RICH, 2.0, 1.0, 3.0], ["B", BASE, FREE, 0.5, 0.0, 1.0],
                            ["BECEL Sem (mrpc)", BASE, RICH, 0.0, 0.0, 0.0]])
    fig = tiy.forest(frame, "title", {RICH: "paraphrase-rich", FREE: "free-form"})
    assert [ax.get_title() for ax in fig.axes] == ["A", "B"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [f"paraphrase-rich − {BASE}",
                                                                    f"free-form − {BASE}"]
    assert fig._suptitle.get_text() == "title"


def test_h1_sentence_says_what_each_interval_says():
    frame = contrast_table([["ParaRel consistency (restricted)", SINGLE, RICH, -1.0582, -3.7037, 0.3527],
                            ["ParaRel consistency", SINGLE, RICH, -6.702, -7.407, -6.349],
                            ["ParaRel cosine gap", SINGLE, RICH, 0.028, 0.016, 0.043]])
    assert tiy.h1_sentence(frame) == (
        "ParaRel consistency (restricted): -1.058 points [-3.704, 0.353], includes 0: no evidence either way; "
        "ParaRel consistency: -6.702 points [-7.407, -6.349], below 0: against H1; "
        "ParaRel cosine gap: +0.028 [0.016, 0.043], above 0: supports H1.")
    assert tiy.h1_sentence(pd.DataFrame()).startswith("not run")


def test_chance_interval_is_the_binomial_quantiles_in_percent():
    low, high = tiy.chance_interval(6)
    assert low == 0.0 and high == pytest.approx(100 * 4 / 6)
    assert tiy.chance_interval(100) == (pytest.approx(17.0), pytest.approx(34.0))


def test_spread_difference():
    frame = contrast_table([["A", SINGLE, RICH, 1.0, 0.0, 2.0],
                            ["MMLU spread (lower is more consistent)", SINGLE, RICH, -2.5, np.nan, np.nan]])
    assert tiy.spread_difference(frame) == -2.5
    assert np.isnan(tiy.spread_difference(frame.iloc[:1])) and np.isnan(tiy.spread_difference(pd.DataFrame()))


# ----------------------------------------------------------------------------- Table 7


def correlation(defined=True):
    return pd.DataFrame({"model": "a, b, c", "role": "instruction-tuned", "block": ["MHSA", "MHSA", "MLP", "MLP"],
                         "layer": [0, 1, 0, 1], "r": [0.123, np.nan, -0.5, 0.9] if defined else np.nan,
                         "p_value": 0.5, "n_models": 3, "defined": [True, False, True, True] if defined else False,
                         "message": ["", "an input is constant", "", ""] if defined else "at least 3 are needed"})


def test_table7_inputs_average_rates_and_consistency_per_model():
    extraction = pd.DataFrame({"model": ["a", "a", "a", "b"], "role": "instruction-tuned", "block": "MLP",
                               "layer": [0, 0, 1, 0], "rate": [0.2, 0.4, 0.5, 0.1]})
    scores = pd.DataFrame({"model": ["a", "a", "b"], "consistency": [0.5, 0.7, 0.2]})
    rates, consistency = tiy.table7_inputs(extraction, scores)
    assert rates[["model", "layer", "rate"]].values.tolist() == [["a", 0, pytest.approx(0.3)], ["a", 1, 0.5],
                                                                  ["b", 0, 0.1]]
    assert consistency.to_dict() == {"a": pytest.approx(0.6), "b": 0.2}


def test_table7_layout_blocks_by_layers_or_the_messages():
    wide = tiy.table7_layout(correlation())
    assert list(wide.index) == ["MHSA", "MLP"] and list(wide.columns) == [0, 1]
    assert wide.loc["MHSA", 0] == 0.12 and np.isnan(wide.loc["MHSA", 1]) and wide.loc["MLP", 1] == 0.9
    messages = tiy.table7_layout(correlation(defined=False))
    assert messages.values.tolist() == [["MHSA", "at least 3 are needed"], ["MLP", "at least 3 are needed"]]


def test_n_correlated_and_plot_table7():
    assert tiy.n_correlated(correlation()) == 3
    assert tiy.n_correlated(correlation().iloc[:0]) == 0
    fig = tiy.plot_table7(correlation())
    assert [line.get_label() for line in fig.axes[0].lines[:2]] == ["MHSA", "MLP"]
    assert fig.axes[0].get_title() == "Pearson r per layer over 3 tuned models (1 degree(s) of freedom)"
    assert tiy.plot_table7(correlation(defined=False)) is None


# ----------------------------------------------------------------------------- headlines


def test_headline_row_from_a_contrast():
    frame = contrast_table([["ParaRel consistency (restricted)", BASE, RICH, 0.5291, -18.5185, 10.9347],
                            ["ParaRel consistency (restricted)", BASE, RICH, 99.0, 98.0, 100.0]])
    row = tiy.headline(frame, "ParaRel consistency (restricted)", "result", BASE, RICH, "§3", "paper", " pts")
    assert row["ours"] == "+0.5 pts [-18.5, +10.9]" and row["direction_holds"] == "n.s. (same sign)"
    assert (row["estimate"], row["low"], row["high"]) == (0.5291, -18.5185, 10.9347)
    assert (row["base"], row["tuned"], row["paper_section"], row["paper"]) == (BASE, RICH, "§3", "paper")
    assert row["note"] == "same base model, tuned by this book; one seed per mixture"


def test_headline_rows_h2_per_mixture_then_h1():
    measure = "ParaRel consistency (restricted)"
    versus = contrast_table([[measure, BASE, RICH, 2.0, 1.0, 3.0], [measure, BASE, SINGLE, -1.0, -2.0, 1.0],
                             [measure, BASE, FREE, -2.0, -3.0, -1.0]])
    causal = contrast_table([["ParaRel consistency", SINGLE, RICH, 9.0, 8.0, 10.0], [measure, SINGLE, RICH, 3.0, 2.0, 4.0]])
    rows = tiy.headline_rows(versus, causal, BASE, NAME_OF)
    assert [r["result"] for r in rows] == [
        f"tuning {BASE} on the paraphrase-rich mixture raises ParaRel consistency (same family)",
        f"tuning {BASE} on the single-template mixture raises ParaRel consistency (same family)",
        f"tuning {BASE} on the free-form mixture raises ParaRel consistency (same family)",
        "paraphrase-rich instruction data make a model more consistent than single-template data"]
    assert [r["direction_holds"] for r in rows] == ["yes", "n.s. (opposite sign)", "no", "yes"]
    assert [r["paper_section"] for r in rows] == ["§3, Table 2 (extension)"] * 3 + ["§1 (posited, not tested)"]
    assert rows[1]["paper"] == "IFT models mostly more consistent (LLaMA pairs)"
    assert rows[3]["paper"] == "posited in the paper's introduction"
    assert (rows[3]["base"], rows[3]["tuned"], rows[3]["ours"]) == (SINGLE, RICH, "+3.0 pts [+2.0, +4.0]")
    assert len(tiy.headline_rows(versus, pd.DataFrame(), BASE, NAME_OF)) == 3
