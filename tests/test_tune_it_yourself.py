"""ifhelpers.chapters.tune_it_yourself on hand-made tables (no model is loaded or trained; seconds)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ifhelpers.chapters import tune_it_yourself as tiy  # noqa: E402

BASE = "gemma-3-270m"
RICH, SINGLE, FREE = (f"{BASE}-ift-{k}" for k in ("paraphrase-rich", "single-template", "free-form"))
SETTINGS = dict(n_examples=270, max_tokens=160, epochs=1, batch_size=4, learning_rate=5e-4, lora_r=16)


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


def test_recipes_one_per_arm_and_seed_registry_names_where_the_recipe_is_the_registrys():
    recipes = tiy.recipes(BASE, ["templates-all", "templates-2", "free-form"], [0, 1], **SETTINGS)
    assert list(recipes) == [(a, s) for a in ("templates-all", "templates-2", "free-form") for s in (0, 1)]
    names = {key: r.name for key, r in recipes.items()}
    assert names[("templates-all", 0)] == RICH and names[("free-form", 0)] == FREE  # the registry's recipes
    assert names[("templates-all", 1)] == f"{BASE}-ift-templates-all-seed1"
    assert names[("templates-2", 0)] == f"{BASE}-ift-templates-2-seed0"
    assert {(r.n_examples, r.lora_alpha) for r in recipes.values()} == {(270, 32)}
    assert [r.seed for r in recipes.values()] == [0, 1] * 3
    assert len({r.key for r in recipes.values()}) == 6
    other = tiy.recipes("org/my-model/", ["templates-1"], [3], **SETTINGS)
    assert other[("templates-1", 3)].name == "my-model-ift-templates-1-seed3"
    with pytest.raises(ValueError, match="templates-all"):
        tiy.recipes(BASE, ["paraphrase-poor"], [0], **SETTINGS)


def test_design_frame_and_table():
    recipes = tiy.recipes(BASE, ["templates-1", "free-form"], [0, 1], **{**SETTINGS, "n_examples": 30})
    frame = tiy.design_frame(recipes, BASE)
    assert frame[["arm", "seed"]].values.tolist() == [["base", 0], ["templates-1", 0], ["templates-1", 1],
                                                      ["free-form", 0], ["free-form", 1]]
    assert frame["model"].iloc[0] == BASE and frame["model"].iloc[1] == f"{BASE}-ift-templates-1-seed0"
    table = tiy.design_table(["templates-1", "free-form"], [0, 1], {"facts per relation": 4})
    assert table.loc["primary outcome", ""].startswith(tiy.PRIMARY)
    assert table.loc["seeds per arm", ""] == "2 (0, 1)" and table.loc["facts per relation", ""] == "4"
    assert {"unit of resampling", "minimum detectable effect", "test"} <= set(table.index)


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
    assert list(check.columns) == ["examples_fit", "pararel_fact", "mmlu_ngram", "becel_ngram", "contaminated"]
    assert list(check.rename(columns=tiy.LABELS).columns)[0] == "examples that fit"  # the label, where the table is shown
    assert check.loc["T0"].tolist() == [3, 2, 1, 0, 2]
    assert check.loc["Alpaca"].tolist() == [1, 0, 1, 0, 1]
    assert check.loc["all"].tolist() == [5, 2, 2, 1, 4]


def test_dropped_example_is_the_first_pararel_fact_cut_to_size():
    assert tiy.dropped_example(pool()) == "Paris is in ... -> France"
    assert tiy.dropped_example(pool(), n_prompt=5, n_response=2) == "Paris ... -> Fr"


def drawn():
    t = lambda templates: pd.DataFrame({"task": ["a", "a", "b", "b"], "template": templates})  # noqa: E731
    return {("templates-1", 0): t(["a1", "a1", "b2", "b2"]), ("templates-1", 1): t(["a2", "a2", "b1", "b1"]),
            ("templates-all", 0): t(["a1", "a2", "b1", "b2"]), ("templates-all", 1): t(["a1", "a2", "b1", "b1"]),
            ("free-form", 0): pd.DataFrame({"task": ["free-form"], "template": ["free-form"]})}


def test_templates_used_and_arm_doses():
    assert tiy.templates_used(drawn(), 1) == ["templates-1 (seed 1): task 'a', templates used: ['a2']",
                                              "templates-all (seed 1): task 'a', templates used: ['a1', 'a2']"]
    assert tiy.templates_used({("free-form", 0): drawn()[("free-form", 0)]}, 0) == []
    doses = tiy.arm_doses(drawn())
    assert doses == {"templates-1": 0.0, "templates-all": pytest.approx(np.log2(1.75))}  # (2 + 1.5) / 2 per task


def log(seconds, losses, resumed=None):
    return {"steps": 4, "examples": 27, "tokens": 600, "seconds": seconds, "peak_rss_gib": 6.0, "device": "cpu",
            "torch_threads": 2, "resumed_from": resumed, "losses": losses}


def test_training_cost_one_row_per_model():
    cost = tiy.training_cost({"free-form": log(60, []), "paraphrase-rich": log(120, [], resumed="ckpt-2")})
    assert list(cost.index) == ["free-form", "paraphrase-rich"]
    assert cost.loc["paraphrase-rich", "minutes"] == 2 and cost.loc["free-form", "tokens_per_s"] == 10
    assert cost.loc["paraphrase-rich", "resumed"] is True and cost.loc["free-form", "resumed"] is False
    assert list(cost.columns) == ["steps", "examples", "tokens", "minutes", "tokens_per_s", "peak_memory_gib",
                                  "device", "threads", "resumed"]
    assert list(cost.rename(columns=tiy.LABELS).columns) == ["steps", "examples", "tokens", "minutes", "tokens/s", "peak memory (GiB)",
                                             "device", "threads", "resumed"]


def test_plot_losses_one_line_per_model_with_the_mean_first_and_last_loss():
    logs = {"paraphrase-rich": log(1, [{"step": 1, "loss": 4.0}, {"step": 2, "loss": 2.0}]),
            "free-form": log(1, [{"step": 1, "loss": 6.0}, {"step": 2, "loss": 3.0}])}
    fig = tiy.plot_losses(logs, {"paraphrase-rich": "#ff0000", "free-form": "#0000ff"})
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["paraphrase-rich", "free-form"]
    assert [line.get_color() for line in ax.lines] == ["#ff0000", "#0000ff"]
    assert ax.get_title() == "Training loss falls from 5.0 to 2.5 (mean over models)"


def test_wall_by_model_joins_training_and_evaluation():
    frame = pd.DataFrame({"model": [BASE, "m1"], "arm": ["base", "templates-1"], "seed": [0, 0]})
    cost = tiy.training_cost({"m1": log(120, [])})
    seconds = pd.DataFrame({"model": [BASE, "m1"], "role": ["base", "instruction-tuned"], "seconds": [30.0, 90.0]})
    wall = tiy.wall_by_model(frame, seconds, cost)
    assert wall["evaluation_min"].tolist() == [0.5, 1.5]
    assert np.isnan(wall["training_min"].iloc[0]) and wall["training_min"].iloc[1] == 2.0
    assert wall["peak_memory_gib"].iloc[1] == 6.0


# ----------------------------------------------------------------------------- measures and statistics


def by_relation(values):
    """pararel_by_relation's layout: (model, relation) rows; ``values[model]`` lists R1..R3."""
    return pd.DataFrame([{"model": m, "role": "x", "relation": f"R{i + 1}", "consistency": v, "accuracy": v / 2}
                         for m, vs in values.items() for i, v in enumerate(vs)])


def gap_units(values):
    return pd.DataFrame([{"model": m, "role": "x", "dataset": "pararel", "unit_id": u, "gap": v}
                         for m, vs in values.items() for u, v in zip(["u2", "u1", "u3"], vs)])


def test_relation_and_gap_wide_are_units_by_models_in_the_given_order():
    wide = tiy.relation_wide(by_relation({BASE: [0.2, 0.4, 0.6], RICH: [0.3, 0.6, 0.6]}), "accuracy", [RICH, BASE])
    assert list(wide.columns) == [RICH, BASE] and list(wide.index) == ["R1", "R2", "R3"]
    assert wide[BASE].tolist() == [0.1, 0.2, 0.3]
    gaps = tiy.gap_wide(gap_units({BASE: [0.2, 0.4, 0.6]}), [BASE])
    assert list(gaps.index) == ["u1", "u2", "u3"] and gaps[BASE].tolist() == [0.4, 0.2, 0.6]


def test_unit_measures_every_measure_units_by_models():
    names = [BASE, RICH]
    values = {BASE: [0.2, 0.4, 0.6], RICH: [0.3, 0.6, 0.6]}
    becel = pd.DataFrame({"model": [BASE, BASE, RICH, RICH, BASE], "task": "mrpc",
                          "metric": ["semantic", "semantic", "semantic", "semantic", "accuracy"],
                          "row": [7, 8, 7, 8, 1], "score": [1, 0, 1, 1, 1]})
    mmlu = pd.DataFrame({"model": [BASE, RICH], "question_id": ["q1", "q1"], "accuracy": [0.25, 0.5]})
    m = tiy.unit_measures(by_relation(values), by_relation({k: [1 - v for v in vs] for k, vs in values.items()}),
                          gap_units(values), becel, mmlu, names)
    assert list(m) == [tiy.PRIMARY, "ParaRel consistency", "ParaRel accuracy", "ParaRel cosine gap",
                       "BECEL Sem (mrpc)", "MMLU accuracy"]
    assert m[tiy.PRIMARY][BASE].tolist() == pytest.approx([80, 60, 40])
    assert m["ParaRel consistency"][RICH].tolist() == pytest.approx([30, 60, 60])
    assert m["ParaRel accuracy"][BASE].tolist() == pytest.approx([10, 20, 30])
    assert m["ParaRel cosine gap"][BASE].tolist() == [0.4, 0.2, 0.6]
    assert m["BECEL Sem (mrpc)"].loc[8].tolist() == [0, 100]
    assert m["MMLU accuracy"].loc["q1"].tolist() == [25, 50]


def experiment(slope=2.0, seed_sd=0.0, n_units=30, seeds=(0, 1, 2)):
    """A design with a known slope per doubling: arm means 50 + slope * log2(dose), units shared."""
    rng = np.random.default_rng(0)
    doses = {"templates-1": 0.0, "templates-2": 1.0, "templates-all": 2.5}
    units = rng.normal(0, 5, n_units)
    columns, rows = {BASE: 40 + units}, [{"model": BASE, "arm": "base", "seed": 0}]
    for arm, x in doses.items():
        for s in seeds:
            name = f"{arm}-seed{s}"
            columns[name] = 50 + slope * x + units + rng.normal(0, seed_sd) + rng.normal(0, 0.5, n_units)
            rows.append({"model": name, "arm": arm, "seed": s})
    return {tiy.PRIMARY: pd.DataFrame(columns)}, pd.DataFrame(rows), doses


def test_arm_cubes_are_seeds_by_units_and_drop_units_any_model_missed():
    measures, frame, _ = experiment()
    wide = measures[tiy.PRIMARY].copy()
    wide.iloc[3, 2] = np.nan
    cubes = tiy.arm_cubes(wide, frame)
    assert {k: v.shape for k, v in cubes.items()} == {"base": (1, 29), "templates-1": (3, 29), "templates-2": (3, 29),
                                                      "templates-all": (3, 29)}


def test_contrast_weights_slope_h1_and_versus_base():
    weights = tiy.contrast_weights({"templates-1": 0.0, "templates-all": 2.0}, ["templates-1", "templates-all", "free-form"])
    assert list(weights) == [tiy.SLOPE, tiy.H1, "templates-1 − base", "templates-all − base", "free-form − base"]
    assert weights[tiy.SLOPE] == {"templates-1": -0.5, "templates-all": 0.5}
    assert weights["free-form − base"] == {"free-form": 1.0, "base": -1.0}
    assert tiy.SLOPE not in tiy.contrast_weights({"templates-1": 0.0}, ["templates-1"])


def test_dose_response_recovers_a_known_slope_and_says_when_it_cannot_see_one():
    measures, frame, doses = experiment(slope=2.0)
    arms = ["templates-1", "templates-2", "templates-all"]
    result = tiy.dose_response(measures, frame, tiy.contrast_weights(doses, arms), n_resamples=500)
    slope = result[result["contrast"] == tiy.SLOPE].iloc[0]
    assert slope["low"] < slope["estimate"] < slope["high"] and abs(slope["estimate"] - 2.0) < 3 * slope["se"]
    assert slope["verdict"] == "yes" and slope["mde"] < 1.0 and (slope["n_seeds"], slope["n_units"]) == (3, 30)
    versus = result[result["contrast"] == "templates-1 − base"].iloc[0]
    assert versus["estimate"] == pytest.approx(10.0, abs=0.3)
    null = tiy.dose_response(*experiment(slope=0.0, seed_sd=3.0)[:2], tiy.contrast_weights(doses, arms), n_resamples=500)
    row = null[null["contrast"] == tiy.SLOPE].iloc[0]
    assert row["verdict"].startswith("n.s.") and row["mde"] > 1.0  # seed noise: a larger MDE
    assert "no effect larger than" in tiy.answer_sentence(null) and "above 0" in tiy.answer_sentence(result)
    one_seed = tiy.dose_response(*experiment(seeds=(0,))[:2], tiy.contrast_weights(doses, arms), n_resamples=200)
    assert one_seed["mde"].isna().all()  # seed noise is not estimable from one seed
    assert "not computed" in tiy.answer_sentence(result, contrast="nothing")


def test_projected_mde_shrinks_with_seeds_and_reports_the_seed_share():
    measures, frame, doses = experiment(slope=0.0, seed_sd=2.0)
    table = tiy.projected_mde(measures[tiy.PRIMARY], frame, tiy.contrast_weights(doses, list(doses))[tiy.SLOPE],
                              seeds=(2, 4), unit_factors=(1, 2))
    assert table[["n_seeds", "n_units"]].values.tolist() == [[2, 30], [4, 30], [2, 60], [4, 60]]
    assert table["mde"].iloc[1] < table["mde"].iloc[0] and table["mde"].iloc[2] <= table["mde"].iloc[0]
    assert (table["seed_share"] > 0.5).all()
    assert table["mde"].tolist() == pytest.approx((2.8016 * table["se"]).tolist(), rel=1e-4)
    assert tiy.binding_constraint(table, 2, 30).startswith(f"{100 * table['seed_share'].iloc[0]:.0f}% of the slope")
    assert "training seeds are the binding constraint" in tiy.binding_constraint(table, 2, 30)
    quiet_measures, quiet_frame, _ = experiment(slope=0.0, seed_sd=0.0)
    quiet = tiy.projected_mde(quiet_measures[tiy.PRIMARY], quiet_frame, {"templates-1": -1.0, "templates-all": 1.0})
    assert "evaluation noise is the binding constraint" in tiy.binding_constraint(quiet, 2, 30)
    assert tiy.binding_constraint(table, 5, 30).startswith("not estimable")
    assert tiy.projected_mde(measures[tiy.PRIMARY], frame, {}).empty
    assert list(table.rename(columns=tiy.LABELS).columns) == ["n_seeds", "n_units", "se", "mde", "seed share"]


def test_seed_values_spread_and_the_figures():
    measures, frame, doses = experiment(slope=2.0, seed_sd=1.0)
    values = tiy.seed_values(measures, frame)
    assert len(values) == len(frame) and set(values["arm"]) == {"base", *doses}
    spread = tiy.seed_spread(values)
    assert list(spread.index) == list(doses) and spread["seeds"].tolist() == [3, 3, 3]
    assert (spread["max"] >= spread["mean"]).all() and (spread["sd"] > 0).all()
    result = tiy.dose_response(measures, frame, tiy.contrast_weights(doses, list(doses)), n_resamples=200)
    fig = tiy.plot_dose_response(values, doses, result)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_title().startswith("Slope +")
    assert {"one seed", "arm mean", "OLS slope", "base (mean)"} <= {h.get_label() for h in ax.get_lines() + ax.collections}
    fig = tiy.forest(result, [tiy.PRIMARY], "title")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][0] == tiy.SLOPE
    assert len(fig.axes[0].collections) >= 4  # the MDE bands


def test_beside_puts_two_runs_side_by_side():
    measures, frame, doses = experiment()
    book = tiy.dose_response(measures, frame, tiy.contrast_weights(doses, list(doses)), n_resamples=100)
    table = tiy.beside(book, book.assign(n_seeds=5))
    assert list(table.columns) == ["book-size run", "book-size design", "full run", "full design"]
    assert table.loc[(tiy.PRIMARY, tiy.SLOPE), "full design"] == "5 seeds x 30 units"
    assert table.loc[(tiy.PRIMARY, tiy.SLOPE), "book-size run"].startswith("+")


def test_the_committed_full_run_is_read_with_the_names_the_chapter_uses():
    from pathlib import Path

    from ifhelpers import results

    full = results.committed_run(Path(__file__).resolve().parents[1] / "results" / "tune_it_yourself_full",
                                 "tune_dose_response").table
    book = full.assign(n_seeds=2)
    table = tiy.beside(book, full)
    first = full[(full["measure"] == tiy.PRIMARY) & (full["contrast"] == tiy.SLOPE)].iloc[0]
    assert table.loc[(tiy.PRIMARY, tiy.SLOPE), "full run"] == (f"{first['estimate']:+.2f} [{first['low']:+.2f}, "
                                                             f"{first['high']:+.2f}] (MDE {first['mde']:.2f})")
    assert table.loc[(tiy.PRIMARY, tiy.SLOPE), "book-size design"].startswith("2 seeds x ")


def test_chance_interval_is_the_binomial_quantiles_in_percent():
    low, high = tiy.chance_interval(6)
    assert low == 0.0 and high == pytest.approx(100 * 4 / 6)
    assert tiy.chance_interval(100) == (pytest.approx(17.0), pytest.approx(34.0))


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


def test_headlines_h2_per_arm_then_the_slope_with_its_mde():
    measures, frame, doses = experiment(slope=2.0)
    arms = list(doses)
    result = tiy.dose_response(measures, frame, tiy.contrast_weights(doses, arms), n_resamples=200)
    rows = tiy.headlines(result, BASE, arms)
    assert [r["paper_section"] for r in rows] == ["§3, Table 2 (extension)"] * 3 + ["§1 (posited, not tested)"]
    assert rows[-1]["direction_holds"] == "yes" and rows[-1]["mde"] == pytest.approx(
        result.loc[result["contrast"] == tiy.SLOPE, "mde"].iloc[0])
    assert rows[0]["tuned"] == "templates-1 (3 seeds)" and rows[0]["ours"].endswith("]")
