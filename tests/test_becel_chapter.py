"""The BECEL chapter's analysis (paper §3 Table 2, App. C.2 Table 6; ifhelpers.chapters.becel): item
scores, Table 6 and Table 2 with their intervals, the paired comparison, the negation diagnostic, the
numbers the prose quotes and the headline rows, on hand-made prediction tables."""

import numpy as np
import pandas as pd
import pytest

from ifhelpers import metrics, stats
from ifhelpers.chapters import becel as ft


def _predictions(orig, pert, labels, kind, model="m", role="base", task="rte"):
    n = len(orig)
    return pd.DataFrame({"model": model, "role": role, "mode": "probe", "task": task, "set": kind,
                         "row": np.arange(n), "label": labels, "perturbed_label": pd.array([pd.NA] * n, "Int64"),
                         "pred_original": orig, "pred_perturbed": pert})


def _two_models():
    """Base "b" and tuned "t" on two tasks, semantic / negational / eval sets of 20 random items."""
    rng = np.random.default_rng(1)
    frames = []
    for model, role in (("b", "base"), ("t", "instruction-tuned")):
        for task in ("rte", "mrpc"):
            for kind in ("semantic", "negational", "eval"):
                frames.append(_predictions(rng.integers(0, 2, 20), rng.integers(0, 2, 20), rng.integers(0, 2, 20),
                                           kind, model, role, task))
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------------------------------ item scores


def test_item_scores_are_becels_indicators():
    frame = pd.concat([_predictions([0, 1, 2], [0, 2, 2], [0, 0, 0], "semantic"),
                       _predictions([0, 1, 2], [0, 2, 2], [0, 0, 0], "symmetric"),
                       _predictions([0, 1, 2], [0, 2, 2], [0, 0, 0], "negational"),
                       _predictions([0, 1, 2], [-1, -1, -1], [0, 1, 0], "eval")], ignore_index=True)
    scored = ft.item_scores(frame)
    assert scored["metric"].tolist() == ["semantic"] * 3 + ["symmetric"] * 3 + ["negational"] * 3 + ["accuracy"] * 3
    assert scored["score"].tolist() == [1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 1, 0]
    with pytest.raises(ValueError, match="unknown BECEL sets"):
        ft.item_scores(_predictions([0], [0], [0], "transitive"))


def test_table6_scores_follow_becel_code():
    rng = np.random.default_rng(0)
    o, p, y = rng.integers(0, 2, 30), rng.integers(0, 2, 30), rng.integers(0, 2, 30)
    frames = [_predictions(o, p, y, k) for k in ("symmetric", "semantic", "negational")]
    frames.append(_predictions(o, np.full(30, -1), y, "eval"))
    scores = ft.table6_scores(pd.concat(frames, ignore_index=True), n_resamples=200).set_index("metric")
    assert scores.loc["semantic", "value"] == metrics.becel.becel_consistency(o, p, "semantic")
    assert scores.loc["negational", "value"] == metrics.becel.becel_consistency(o, p, "negational")
    assert scores.loc["accuracy", "value"] == metrics.becel.accuracy(o, y)
    assert (scores["low"] <= scores["value"]).all() and (scores["value"] <= scores["high"]).all()
    assert list(scores.index) == ["symmetric", "semantic", "negational", "accuracy"]
    assert (scores["n"] == 30).all()


def test_constant_classifier_is_trivially_consistent():
    ones = np.ones(10, dtype=int)
    frames = [_predictions(ones, ones, ones, k) for k in ("symmetric", "semantic", "negational")]
    frames.append(_predictions(ones, -ones, np.arange(10) % 2, "eval"))
    scores = ft.table6_scores(pd.concat(frames, ignore_index=True), n_resamples=100).set_index("metric")
    assert scores.loc["semantic", "value"] == 1 and scores.loc["symmetric", "value"] == 1
    assert scores.loc["negational", "value"] == 0 and scores.loc["accuracy", "value"] == 0.5
    assert (scores["majority_share"] == 1).all()


def test_table6_wide_and_with_paper_layout():
    scores = ft.table6_scores(_two_models(), n_resamples=50)
    wide = ft.table6_wide(scores)
    assert list(wide.columns) == [(t, m) for t in ("RTE", "MRPC") for m in ("Sem", "Neg", "Acc.")]
    assert wide.index.names == ["model", "role", "mode"]
    paper6 = pd.DataFrame({"source": "paper", "model": "llama-7b (base model)", "role": "base", "family": "llama",
                           "task": "rte", "metric": ["semantic", "negational", "accuracy"], "value": [0.9, 0.4, 0.7]})
    both = ft.table6_with_paper(scores, paper6, "probe")
    assert both.index.get_level_values("source").tolist() == ["ours (probe)", "ours (probe)", "paper"]
    assert both.index.get_level_values("mode").tolist()[-1] == "fine-tuned (App. C.2)"
    assert both.loc[("paper", "llama-7b (base model)", "base", "fine-tuned (App. C.2)"), ("RTE", "Sem")] == 0.9


# ------------------------------------------------------------------------------------------ Table 2


def test_table2_averages_task_means_with_one_stream_of_draws():
    preds = _two_models()
    t2 = ft.table2_becel(preds, n_resamples=200, seed=3)
    six = ft.table6_scores(preds, n_resamples=100)
    for (model, metric), value in t2.set_index(["model", "metric"])["value"].items():
        assert value == pytest.approx(100 * six[(six.model == model) & (six.metric == metric)]["value"].mean())
    assert (t2["tasks"] == 2).all()
    # the intervals: items resampled within each task, one generator for the cells in order
    scored = ft.item_scores(preds)
    rng = np.random.default_rng(3)
    for _, r in t2.iterrows():
        cell = scored[(scored["model"] == r["model"]) & (scored["metric"] == r["metric"])]
        strata = [g["score"].to_numpy(float) for _, g in cell.groupby("task", sort=False)]
        expected = stats.stratified_mean_bootstrap(strata, 200, seed=rng)
        assert (r["low"], r["high"]) == (100 * expected["low"], 100 * expected["high"])


def test_table2_with_paper_cells():
    ours2 = pd.DataFrame({"model": "b", "role": "base", "mode": "probe", "metric": ["accuracy", "semantic", "negational"],
                          "value": [50.0, 90.0, 10.0], "low": [40.0, 80.0, 0.0], "high": [60.0, 100.0, 20.0],
                          "tasks": 2})
    paper2 = pd.DataFrame({"source": "paper, Table 2", "model": "LLaMA-7b", "role": "base", "family": "llama",
                           "metric": ["accuracy", "semantic", "negational"], "value": [74.4, 84.7, 42.3]})
    table = ft.table2_with_paper(ours2, paper2, "probe")
    assert list(table.columns) == ["Acc.", "Cons. semantic", "Cons. negation"]
    assert table.iloc[0].tolist() == ["50.0 [40.0, 60.0]", "90.0 [80.0, 100.0]", "10.0 [0.0, 20.0]"]
    assert table.iloc[1].tolist() == ["74.4", "84.7", "42.3"]


def test_paper_table2_summary():
    paper2 = pd.DataFrame({"model": ["L", "L", "L", "A", "A", "A", "B", "B", "B"],
                           "role": ["base"] * 3 + ["instruction-tuned"] * 6,
                           "metric": ["accuracy", "semantic", "negational"] * 3,
                           "value": [70.0, 80.0, 40.0, 72.0, 84.0, 44.0, 74.0, 86.0, 50.0]})
    assert ft.paper_table2_summary(paper2) == {
        "paper_accuracy_base": 70.0, "paper_accuracy_tuned": 73.0, "paper_semantic_base": 80.0,
        "paper_semantic_tuned": 85.0, "paper_negational_base": 40.0, "paper_negational_tuned": 47.0}


# ------------------------------------------------------------------------------------------ comparisons


def test_compare_roles_is_stats_compare_roles_on_items():
    preds = _two_models()
    cmp = ft.model_difference(preds, "b", "t", n_resamples=200)
    assert len(cmp) == 6 and (cmp["model"] == "t").all() and (cmp["role"] == "instruction-tuned").all()
    assert list(cmp[["task", "metric"]].itertuples(index=False, name=None)) == [
        (t, m) for t in ("rte", "mrpc") for m in ("semantic", "negational", "accuracy")]
    scored = ft.item_scores(preds)
    cell = scored[(scored["task"] == "mrpc") & (scored["metric"] == "negational")]
    b = cell[cell["model"] == "b"].set_index(["set", "row"])["score"]
    t = cell[cell["model"] == "t"].set_index(["set", "row"])["score"]
    expected = stats.paired_comparison(b, t, n_resamples=200)
    got = cmp[(cmp["task"] == "mrpc") & (cmp["metric"] == "negational")].iloc[0]
    for key in ("n", "base_mean", "tuned_mean", "mean_diff", "diff_low", "diff_high", "wilcoxon_p"):
        assert got[key] == expected[key] or (np.isnan(got[key]) and np.isnan(expected[key])), key


def test_model_difference_of_two_tuned_models_and_the_other_way_round():
    preds = _two_models()
    third = preds[preds["model"] == "t"].assign(model="u", pred_original=lambda f: 1 - f["pred_original"])
    preds = pd.concat([preds, third], ignore_index=True)
    tuned_pair = ft.model_difference(preds, "t", "u", n_resamples=100)
    assert len(tuned_pair) == 6 and (tuned_pair["base"] == "t").all() and (tuned_pair["role"] == "instruction-tuned").all()
    reverse = ft.model_difference(preds, "t", "b", n_resamples=100)
    forward = ft.model_difference(preds, "b", "t", n_resamples=100)
    assert reverse["mean_diff"].tolist() == pytest.approx((-forward["mean_diff"]).tolist())
    assert (reverse["role"] == "base").all()


def test_paired_table_and_counts():
    preds = _two_models()
    paired = ft.paired_table(preds, "b", ["t"], "probe", n_resamples=100)
    assert paired.columns[0] == "mode" and (paired["mode"] == "probe").all() and len(paired) == 6
    empty = ft.paired_table(preds, None, ["t"], "probe")
    assert empty.empty and ft.paired_counts(empty) == {"n_cons_cells": 0, "n_tuned_higher": 0, "n_tuned_lower": 0,
                                                       "n_tuned_higher_point": 0, "n_wilcoxon_05": 0}
    hand = pd.DataFrame({"metric": ["semantic", "negational", "symmetric", "accuracy"],
                         "mean_diff": [0.2, -0.1, 0.05, 0.5], "diff_low": [0.1, -0.2, -0.05, 0.4],
                         "diff_high": [0.3, -0.01, 0.1, 0.6], "wilcoxon_p": [0.01, 0.2, 0.5, 0.001]})
    assert ft.paired_counts(hand) == {"n_cons_cells": 3, "n_tuned_higher": 1, "n_tuned_lower": 1,
                                      "n_tuned_higher_point": 2, "n_wilcoxon_05": 1}


def test_negation_label_aware_diagnostic():
    o, p = np.array([0, 0, 1, 1]), np.array([1, 0, 1, 0])
    frame = _predictions(o, p, np.array([0, 0, 1, 1]), "negational")
    frame["perturbed_label"] = pd.array([1, 1, 1, 1], dtype="Int64")  # labels flip on rows 0, 1 only
    table = ft.negation_label_aware(frame)
    out = table.iloc[0]
    assert out["becel_rule"] == pytest.approx(0.5)
    assert out["label_aware"] == pytest.approx(metrics.becel.becel_label_consistency(o, p, [0, 0, 1, 1], [1, 1, 1, 1]))
    assert out["label_aware"] == pytest.approx(0.5) and out["gold_flip_share"] == 0.5 and out["n"] == 4
    assert list(table.rename(columns=ft.LABELS).columns)[-4:] == ["BECEL rule (changes)", "label-aware",  # as the chapter prints it
                                                  "share of pairs whose gold label flips", "n"]


# ------------------------------------------------------------------------------------------ prose numbers


def _scores():
    rows = []
    for model, role, values in (("b", "base", {"semantic": 0.9, "symmetric": 0.8, "negational": 0.1}),
                                ("t", "instruction-tuned", {"semantic": 0.7, "symmetric": 0.6, "negational": 0.3})):
        for task, acc_low in (("snli", 0.4), ("rte", 0.45)):
            for metric, value in values.items():
                rows.append({"model": model, "role": role, "task": task, "metric": metric, "value": value,
                             "low": value - 0.1, "high": value + 0.1})
            rows.append({"model": model, "role": role, "task": task, "metric": "accuracy", "value": 0.6,
                         "low": acc_low, "high": 0.7})
    return pd.DataFrame(rows)


def test_role_means_and_change_rates():
    scores = _scores()
    assert ft.role_mean(scores, "semantic", "base") == pytest.approx(0.9)
    assert np.isnan(ft.role_mean(scores, "semantic", "nobody"))
    change = ft.change_rates(scores)
    assert change["base"] == pytest.approx({"paraphrase": 0.1, "swap": 0.2, "negation": 0.1})
    assert change["instruction-tuned"] == pytest.approx({"paraphrase": 0.3, "swap": 0.4, "negation": 0.3})


def test_accuracy_vs_chance_uses_the_number_of_labels():
    acc = ft.accuracy_vs_chance(_scores())
    assert acc["chance"].tolist() == pytest.approx([1 / 3, 1 / 2, 1 / 3, 1 / 2])
    assert acc["above"].tolist() == [True, False, True, False]  # 0.4 > 1/3, 0.45 < 1/2


def test_table6_title():
    quiet = {"base": {"negation": 0.1}, "instruction-tuned": {"negation": 0.2}}
    assert ft.table6_title(quiet, 1, 4).startswith("Near-chance classifiers")
    assert ft.table6_title(quiet, 2, 4).startswith("BECEL consistency per task")
    loud = {"base": {"negation": 0.3}, "instruction-tuned": {"negation": 0.2}}
    assert ft.table6_title(loud, 0, 4).startswith("BECEL consistency per task")


def _paper6():
    rows = []
    for model, role, sem, acc in (("llama-7b (base model)", "base", 0.80, 0.70), ("A", "instruction-tuned", 0.85, 0.75),
                                  ("B", "instruction-tuned", 0.90, 0.60)):
        for task in ("snli", "rte"):
            neg = (0.30 if task == "snli" else 0.50) if role == "base" else 0.55  # lowest in SNLI and RTE
            for metric, value in (("semantic", sem), ("symmetric", 0.95 if role == "base" else 0.9),
                                  ("negational", neg), ("accuracy", acc)):
                rows.append({"model": model, "role": role, "family": "llama", "task": task, "metric": metric,
                             "value": value})
    rows.append({"model": "T5", "role": "base", "family": "t5", "task": "snli", "metric": "semantic", "value": 0.1})
    return pd.DataFrame(rows)


def test_paper_table6_summary():
    assert ft.paper_base_lowest(_paper6()) == {"symmetric": 0, "semantic": 2, "negational": 2}
    summary = ft.paper_table6_summary(_paper6())
    assert summary["paper_sem_min"] == 0.80 and summary["paper_sem_max"] == 0.90  # the T5 row is not LLaMA
    assert summary["paper_acc_min"] == 0.60 and summary["paper_acc_max"] == 0.75
    assert summary["paper_base_lowest_semantic"] == 2 and summary["paper_base_lowest_negational"] == 2
    assert summary["paper_change_paraphrase_base"] == pytest.approx(20.0)
    assert summary["paper_change_negation_base"] == pytest.approx(40.0)


def test_mode_sentence():
    assert ft.mode_sentence("full").endswith("as in the paper's App. C.2.")
    probe = ft.mode_sentence("probe")
    assert probe.startswith('These numbers come from finetune_mode = "probe": a linear head')
    assert probe.endswith("so ours measure something cheaper.")


def test_chosen_runs():
    runs = pd.DataFrame({"model": "m", "role": "base", "mode": "probe", "task": ["rte", "rte"], "lr": [1e-4, 5e-5],
                         "best_dev_accuracy": [0.5, 0.625], "best_epoch": [1, 2], "epochs_run": [2, 2],
                         "stopped_early": False, "chosen": [False, True]})
    chosen = ft.chosen_runs(runs, {"rte": 1e-4})
    assert chosen[["lr", "paper_lr", "best_dev_accuracy"]].values.tolist() == [["5e-05", "0.0001", 0.625]]


# ------------------------------------------------------------------------------------------ headlines


def test_task_average_difference_is_a_stratified_bootstrap_of_item_differences():
    preds = _two_models()
    res = ft.task_average_difference(preds, "b", "t", "semantic", n_resamples=200, seed=0)
    scored = ft.item_scores(preds)
    scored = scored[scored["metric"] == "semantic"]
    diffs = []
    for task in ("rte", "mrpc"):
        cell = scored[scored["task"] == task]
        diffs.append(cell[cell["model"] == "t"]["score"].to_numpy(float) - cell[cell["model"] == "b"]["score"].to_numpy(float))
    expected = stats.stratified_mean_bootstrap(diffs, 200, seed=0)
    assert res == {"diff": 100 * expected["estimate"], "low": 100 * expected["low"], "high": 100 * expected["high"],
                   "tasks": 2}
    assert res["diff"] == pytest.approx(100 * np.mean([d.mean() for d in diffs]))
    nothing = ft.task_average_difference(preds, "b", "nobody", "semantic")
    assert nothing["tasks"] == 0 and np.isnan(nothing["diff"])


def test_headlines_rows():
    preds = _two_models()
    t2 = ft.table2_becel(preds, n_resamples=100)
    paired = ft.paired_table(preds, "b", ["t"], "probe", n_resamples=100)
    rows = ft.headlines(preds, t2, paired, "b", ["t"], "probe", n_resamples=100)
    assert [r["paper_section"] for r in rows] == ["§3, Table 2"] * 3 + ["§3, App. C.2, Table 6"]
    first = rows[0]
    res = ft.task_average_difference(preds, "b", "t", "accuracy", 100)
    assert first["estimate"] == res["diff"] and first["low"] == res["low"] and first["high"] == res["high"]
    assert first["direction_holds"] == stats.verdict(res["diff"], res["low"], res["high"])
    assert first["paper"].startswith("LLaMA-7b 74.4; 10 tuned") and first["note"].startswith("2 of the paper's 4 tasks")
    cells = paired[paired["metric"] != "accuracy"]
    assert rows[3]["ours"].startswith(f"tuned higher in {int((cells['mean_diff'] > 0).sum())} of {len(cells)} ")
    assert rows[3]["paper"].startswith("LLaMA-7b is the least consistent of the 11 LLaMA models in ")
