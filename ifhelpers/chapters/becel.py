"""The BECEL chapter's analysis: how consistent the fine-tuned classifiers' predictions are
(paper §3 Table 2 "BECEL", App. C.2 Table 6; Jang et al. 2022).

The classifiers come from :mod:`ifhelpers.train.classifier` (inputs, data, the probe / LoRA / full
backends, the training loop, :func:`~ifhelpers.train.classifier.finetune_task`); their predictions
on BECEL's perturbed pairs are scored here with the formulas of :mod:`ifhelpers.metrics.becel`:
how often the predictions stay the same under a paraphrase (Sem) or a swap of the two sentences
(Sym), and how often they change under a negation (Neg), next to the accuracy (Acc.). Then Table 6
(per task) and Table 2's BECEL columns (averaged over tasks) with bootstrap intervals, the paired
base-vs-tuned comparison, a label-aware diagnostic of negation, the figure, the numbers the prose
quotes and the chapter's headline findings (:func:`headlines`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ifhelpers import metrics, stats
from ifhelpers import paper as paper_tables
from ifhelpers.data import becel
from ifhelpers.findings import NAN, combine, diff_text, row
from ifhelpers.paper import TABLE6_NAMES
from ifhelpers.train.classifier import MODE_DESCRIPTIONS

__all__ = [
    "METRICS",
    "TABLE2_NAMES",
    "LABELS",
    "mode_sentence",
    "chosen_runs",
    "item_scores",
    "table6_scores",
    "table6_wide",
    "table6_with_paper",
    "table2_becel",
    "table2_with_paper",
    "model_difference",
    "paired_table",
    "paired_counts",
    "negation_label_aware",
    "role_mean",
    "change_rates",
    "accuracy_vs_chance",
    "paper_base_lowest",
    "paper_table6_summary",
    "paper_table2_summary",
    "table6_title",
    "plot_table6",
    "task_average_difference",
    "headlines",
]

#: The columns of Table 6 per task, in the paper's order (their names there: :data:`ifhelpers.paper.TABLE6_NAMES`).
METRICS = ("symmetric", "semantic", "negational", "accuracy")
#: Table 2's BECEL columns, as the chapter's table names them.
TABLE2_NAMES = {"accuracy": "Acc.", "semantic": "Cons. semantic", "negational": "Cons. negation"}
#: How the chapter's tables print the data columns named otherwise than they read (a notebook shows a
#: table as ``frame.rename(columns=LABELS)``).
LABELS = {"becel_rule": "BECEL rule (changes)", "label_aware": "label-aware",
          "gold_flip_share": "share of pairs whose gold label flips"}
#: The layout columns of a tidy table of ours or the paper's, when present.
_ROW_INDEX = ("source", "model", "role", "mode")


def mode_sentence(mode: str) -> str:
    """The sentence that says which way of fitting the classifier (App. C.2 or a cheaper one) produced
    the chapter's numbers."""
    return (f"These numbers come from finetune_mode = \"{mode}\": {MODE_DESCRIPTIONS[mode]}."
            + ("" if mode == "full" else " The paper fine-tuned every model (App. C.2), so ours measure something "
                                         "cheaper."))


def chosen_runs(runs: pd.DataFrame, paper_lr: dict) -> pd.DataFrame:
    """The learning rate each (model, task) kept (best held-out accuracy, §C.2), beside the paper's
    (``paper_lr``: task -> learning rate, App. C.2), as text."""
    chosen = runs[runs["chosen"]].assign(paper_lr=lambda t: t["task"].map(paper_lr))
    chosen = chosen[["model", "role", "mode", "task", "lr", "paper_lr", "best_dev_accuracy", "best_epoch",
                     "epochs_run"]]
    return chosen.assign(lr=chosen["lr"].map("{:g}".format), paper_lr=chosen["paper_lr"].map("{:g}".format))


# --------------------------------------------------------------------------------------------------
# 1. Scores: Table 6 (per task) and Table 2 (averaged over tasks), with bootstrap intervals
# --------------------------------------------------------------------------------------------------


def item_scores(predictions: pd.DataFrame) -> pd.DataFrame:
    """One 0/1 score per item (§3, App. C.2): ``accuracy`` on the "eval" rows
    (:func:`ifhelpers.metrics.becel.item_accuracy`) and BECEL's consistency indicator on the rows of
    each consistency set (:func:`ifhelpers.metrics.becel.becel_item_consistency`: 1 when the two
    predictions agree, semantic and symmetric, or differ, negational). The mean of ``score`` over a
    (model, task, metric) cell is its Table 6 number."""
    frame = predictions.copy()
    sets = frame["set"].to_numpy()
    unknown = set(sets) - {"eval", *metrics.becel.BECEL_KINDS}
    if unknown:
        raise ValueError(f"unknown BECEL sets {sorted(unknown)}; expected 'eval' or one of {metrics.becel.BECEL_KINDS}")
    original = frame["pred_original"].to_numpy()
    score = np.zeros(len(frame), dtype=int)
    is_eval = sets == "eval"
    if is_eval.any():
        score[is_eval] = metrics.becel.item_accuracy(original[is_eval], frame["label"].to_numpy()[is_eval])
    for kind in metrics.becel.BECEL_KINDS:
        rows = sets == kind
        if rows.any():
            score[rows] = metrics.becel.becel_item_consistency(original[rows],
                                                               frame["pred_perturbed"].to_numpy()[rows], kind)
    frame["metric"] = np.where(is_eval, "accuracy", sets)
    frame["score"] = score
    return frame


def _group_keys(frame: pd.DataFrame) -> list[str]:
    return [c for c in ("model", "role", "mode") if c in frame]


def table6_scores(predictions: pd.DataFrame, n_resamples: int = 2000, confidence: float = 0.95,
                  seed: int = 0) -> pd.DataFrame:
    """Table 6 in long form (App. C.2): one row per (model, task, metric) with ``value`` and a
    bootstrap interval over items (``low``, ``high``, BCa, :func:`ifhelpers.stats.bootstrap_ci`), ``n``,
    and ``majority_share``: the share of the most frequent prediction on the evaluation pairs
    (a classifier that always says the same label scores Sym = Sem = 1 and Neg = 0).

    ``value`` is the mean of :func:`item_scores`, i.e. :func:`ifhelpers.metrics.becel.becel_consistency`
    / :func:`ifhelpers.metrics.becel.accuracy` (BECEL's own definitions).
    """
    scored = item_scores(predictions)
    keys = _group_keys(scored) + ["task", "metric"]
    rows = []
    for key, group in scored.groupby(keys, sort=False):
        score = group["score"].to_numpy(float)
        value = float(np.mean(score))
        ci = (stats.bootstrap_ci(score, n_resamples=n_resamples, confidence=confidence, seed=seed)
              if len(group) > 1 else pd.Series({"low": value, "high": value}))
        rows.append({**dict(zip(keys, key)), "value": value, "low": float(ci["low"]), "high": float(ci["high"]),
                     "n": len(group)})
    out = pd.DataFrame(rows)
    evals = scored[scored["set"] == "eval"]
    share = evals.groupby(_group_keys(scored) + ["task"])["pred_original"].agg(
        lambda p: p.value_counts(normalize=True).iloc[0]).rename("majority_share").reset_index()
    out = out.merge(share, on=_group_keys(scored) + ["task"], how="left")
    order = {m: i for i, m in enumerate(METRICS)}
    tasks = {t: i for i, t in enumerate(becel.TASKS)}
    out = out.sort_values(by=["task", "metric"], key=lambda s: s.map(tasks if s.name == "task" else order),
                          kind="stable")
    return out.reset_index(drop=True)


def table6_wide(scores: pd.DataFrame, with_intervals: bool = False) -> pd.DataFrame:
    """Table 6's layout: one row per model, columns ``(task, Sym/Sem/Neg/Acc.)``.

    ``scores`` is :func:`table6_scores` (ours) or :func:`ifhelpers.paper.becel_table6` (paper's); the
    ``source``/``mode`` columns, when present, stay in the row index.
    """
    frame = scores.copy()
    frame["col"] = frame["metric"].map(TABLE6_NAMES)
    frame["task_name"] = frame["task"].str.upper().replace({"WIC": "WiC"})
    if with_intervals:
        frame["value"] = [f"{v:.3f} [{lo:.2f}, {hi:.2f}]" for v, lo, hi in zip(frame["value"], frame["low"],
                                                                             frame["high"])]
    index = [c for c in _ROW_INDEX if c in frame]
    wide = frame.pivot_table(index=index, columns=["task_name", "col"], values="value", aggfunc="first", sort=False)
    tasks = [t for t in ("SNLI", "RTE", "MRPC", "WiC") if t in wide.columns.get_level_values(0)]
    cols = [(t, TABLE6_NAMES[m]) for t in tasks for m in METRICS if (t, TABLE6_NAMES[m]) in wide.columns]
    wide = wide[cols]
    wide.columns.names = [None, None]
    return wide


def table6_with_paper(scores: pd.DataFrame, paper6: pd.DataFrame, mode: str) -> pd.DataFrame:
    """Our Table 6 (:func:`table6_scores`, labelled with the ``mode``) above the paper's
    (:func:`ifhelpers.paper.becel_table6`, fine-tuned as in App. C.2), in Table 6's layout."""
    return pd.concat([table6_wide(scores.assign(source=f"ours ({mode})")),
                      table6_wide(paper6.assign(mode="fine-tuned (App. C.2)"))])


def table2_becel(predictions: pd.DataFrame, n_resamples: int = 2000, confidence: float = 0.95,
                 seed: int = 0) -> pd.DataFrame:
    """Table 2's BECEL columns (§3): accuracy and semantic / negational consistency averaged over tasks
    (×100, as printed), with a percentile bootstrap that resamples items within each task
    (:func:`ifhelpers.stats.stratified_mean_bootstrap`; one random stream serves the cells in order).

    One row per (model, metric) with ``value``, ``low``, ``high`` and ``tasks`` (how many tasks
    were averaged; the paper averages four).
    """
    scored = item_scores(predictions)
    scored = scored[scored["metric"].isin(["accuracy", "semantic", "negational"])]
    rng = np.random.default_rng(seed)
    keys = _group_keys(scored) + ["metric"]
    rows = []
    for key, group in scored.groupby(keys, sort=False):
        per_task = [g["score"].to_numpy(float) for _, g in group.groupby("task", sort=False)]
        res = stats.stratified_mean_bootstrap(per_task, n_resamples, confidence, seed=rng)
        rows.append({**dict(zip(keys, key)), "value": 100 * res["estimate"], "low": 100 * res["low"],
                     "high": 100 * res["high"], "tasks": res["strata"]})
    return pd.DataFrame(rows)


def table2_with_paper(ours2: pd.DataFrame, paper2: pd.DataFrame, mode: str) -> pd.DataFrame:
    """Table 2's BECEL columns, ours (:func:`table2_becel`, value with its interval, labelled with the
    ``mode``) above the paper's (:func:`ifhelpers.paper.becel_table2`), columns :data:`TABLE2_NAMES`."""
    index = list(_ROW_INDEX)
    ours = ours2.assign(source=f"ours ({mode})", cell=[f"{v:.1f} [{lo:.1f}, {hi:.1f}]" for v, lo, hi in
                                                       zip(ours2["value"], ours2["low"], ours2["high"])])
    theirs = paper2.assign(mode="fine-tuned (App. C.2)", cell=paper2["value"].map("{:.1f}".format))
    table = pd.concat([frame.pivot_table(index=index, columns="metric", values="cell", aggfunc="first", sort=False)
                       for frame in (ours, theirs)])[list(TABLE2_NAMES)].rename(columns=TABLE2_NAMES)
    table.columns.name = None
    return table


def model_difference(predictions: pd.DataFrame, base: str, tuned: str, n_resamples: int = 2000,
                  seed: int = 0) -> pd.DataFrame:
    """Model ``tuned`` minus model ``base`` on the same items (``set``, ``row``), per task and metric
    (:func:`ifhelpers.stats.compare_roles`: paired bootstrap interval and Wilcoxon test of the
    :func:`item_scores`). Any two models can be compared: ``base`` plays the base role here whatever
    its registry role. ``model`` / ``role`` name the tuned model of each row."""
    scored = item_scores(predictions)
    tuned_role = scored.loc[scored["model"] == tuned, "role"].iloc[0] if (scored["model"] == tuned).any() else ""
    scored["role"] = np.where(scored["model"] == base, "base",
                              np.where(scored["model"] == tuned, "instruction-tuned", "other"))
    out = stats.compare_roles(scored, "score", ["set", "row"], by=["task", "metric"], n_resamples=n_resamples,
                              seed=seed)
    out.insert(0, "role", tuned_role)
    out.insert(0, "model", tuned)
    return out


def paired_table(predictions: pd.DataFrame, base: str | None, tuned_names, mode: str, n_resamples: int = 2000,
                 seed: int = 0) -> pd.DataFrame:
    """:func:`model_difference` of every tuned model against the base model, one after the other, with the
    ``mode`` in front (empty, with the columns the chapter shows, without both roles)."""
    if not (base and tuned_names):
        return pd.DataFrame(columns=["mode", "task", "metric", "tuned", "base_mean", "tuned_mean", "mean_diff",
                                     "diff_low", "diff_high", "wilcoxon_p"])
    paired = pd.concat([model_difference(predictions, base, t, n_resamples=n_resamples, seed=seed) for t in tuned_names],
                       ignore_index=True)
    paired.insert(0, "mode", mode)
    return paired


def paired_counts(paired: pd.DataFrame) -> dict:
    """How many (task, consistency measure) cells of :func:`paired_table` there are, and in how many the
    tuned model is higher (point estimate; interval above 0), lower (interval below 0), and the
    Wilcoxon p-value is below :data:`ifhelpers.stats.SIGNIFICANCE`."""
    cons = paired[paired["metric"].isin(["semantic", "negational", "symmetric"])]
    return {"n_cons_cells": len(cons), "n_tuned_higher": int((cons["diff_low"] > 0).sum()),
            "n_tuned_lower": int((cons["diff_high"] < 0).sum()),
            "n_tuned_higher_point": int((cons["mean_diff"] > 0).sum()),
            "n_wilcoxon_05": int((cons["wilcoxon_p"] < stats.SIGNIFICANCE).sum())}


# --------------------------------------------------------------------------------------------------
# 2. A diagnostic (not the paper's measure)
# --------------------------------------------------------------------------------------------------


def negation_label_aware(predictions: pd.DataFrame) -> pd.DataFrame:
    """Diagnostic, not the paper's measure: negational consistency that follows the gold labels
    (``label_aware``, :func:`ifhelpers.metrics.becel.becel_label_consistency`: the prediction should change
    exactly when BECEL's ``neg_label`` differs from ``label``), next to BECEL's rule (``becel_rule``), the
    share of pairs whose gold label flips (``gold_flip_share``) and the pairs (``n``), per model and task."""
    neg = predictions[predictions["set"] == "negational"]
    rows = []
    for key, g in neg.groupby(_group_keys(neg) + ["task"], sort=False):
        rows.append({**dict(zip(_group_keys(neg) + ["task"], key)),
                     "becel_rule": metrics.becel.becel_consistency(g["pred_original"], g["pred_perturbed"],
                                                                   "negational"),
                     "label_aware": metrics.becel.becel_label_consistency(g["pred_original"], g["pred_perturbed"],
                                                                          g["label"], g["perturbed_label"].astype(int)),
                     "gold_flip_share": float(np.mean(g["label"] != g["perturbed_label"])),
                     "n": len(g)})
    return pd.DataFrame(rows)

# --------------------------------------------------------------------------------------------------
# 3. The numbers the prose quotes: ours per role, the paper's per table
# --------------------------------------------------------------------------------------------------


def role_mean(scores: pd.DataFrame, metric: str, role: str) -> float:
    """Mean of one Table 6 measure over a role's (model, task) cells of :func:`table6_scores`
    (NaN when the role has none)."""
    rows = scores[(scores["metric"] == metric) & (scores["role"] == role)]
    return float(rows["value"].mean()) if len(rows) else NAN


def change_rates(scores: pd.DataFrame) -> dict:
    """How often a perturbation changes the prediction, per role, averaged over tasks (App. C.2's τ
    read the other way): a paraphrase 1 − Sem, a swap 1 − Sym, a negation Neg."""
    return {role: {"paraphrase": 1 - role_mean(scores, "semantic", role),
                   "swap": 1 - role_mean(scores, "symmetric", role),
                   "negation": role_mean(scores, "negational", role)}
            for role in ("base", "instruction-tuned")}


def accuracy_vs_chance(scores: pd.DataFrame) -> pd.DataFrame:
    """The accuracy cells of :func:`table6_scores` with ``chance`` (a uniform guess: 1 / number of
    labels of the task) and ``above`` (the interval's lower end is above it)."""
    acc = scores[scores["metric"] == "accuracy"]
    acc = acc.assign(chance=acc["task"].map(lambda t: 1 / len(becel.LABEL_NAMES[t])))
    return acc.assign(above=acc["low"] > acc["chance"])


def paper_base_lowest(paper6: pd.DataFrame) -> dict:
    """In how many of Table 6's tasks the paper's LLaMA-7b has the lowest score of the 11 LLaMA models,
    per consistency measure (``paper6``: :func:`ifhelpers.paper.becel_table6`)."""
    llama6 = paper6[paper6["family"] == "llama"]
    lowest = llama6.loc[llama6.groupby(["task", "metric"])["value"].idxmin()]
    return {m: int((lowest[lowest["metric"] == m]["role"] == "base").sum())
            for m in ("symmetric", "semantic", "negational")}


def paper_table6_summary(paper6: pd.DataFrame) -> dict:
    """The paper's Table 6 numbers the prose quotes (LLaMA rows): the range of Sem and of the accuracy,
    in how many tasks the base model is lowest (:func:`paper_base_lowest`), and how often a paraphrase
    (1 − Sem) and a negation (Neg) change the base model's prediction, in percent, averaged over tasks."""
    llama6 = paper6[paper6["family"] == "llama"]
    sem = llama6[llama6["metric"] == "semantic"]["value"]
    acc = llama6[llama6["metric"] == "accuracy"]["value"]
    base = llama6[llama6["role"] == "base"].groupby("metric")["value"].mean()
    return {"paper_sem_min": float(sem.min()), "paper_sem_max": float(sem.max()),
            "paper_acc_min": float(acc.min()), "paper_acc_max": float(acc.max()),
            **{f"paper_base_lowest_{m}": n for m, n in paper_base_lowest(paper6).items()},
            "paper_change_paraphrase_base": 100 * (1 - float(base["semantic"])),
            "paper_change_negation_base": 100 * float(base["negational"])}


def paper_table2_summary(paper2: pd.DataFrame) -> dict:
    """The paper's Table 2 BECEL numbers the prose quotes (``paper2``: :func:`ifhelpers.paper.becel_table2`):
    ``paper_<metric>_base`` (LLaMA-7b) and ``paper_<metric>_tuned`` (the mean of its tuned models)."""
    tuned = paper2.groupby(["role", "metric"])["value"].mean()
    base = paper2[paper2["role"] == "base"].set_index("metric")["value"]
    out = {}
    for metric in ("accuracy", "semantic", "negational"):
        out[f"paper_{metric}_base"] = float(base[metric])
        out[f"paper_{metric}_tuned"] = float(tuned[("instruction-tuned", metric)])
    return out


def table6_title(change: dict, n_above: int, n_cells: int) -> str:
    """The figure's title: it says the classifiers are insensitive when, on average over the roles, a
    negation changes fewer than 20% of their predictions (:func:`change_rates`) and fewer than half the
    accuracy cells are above chance (:func:`accuracy_vs_chance`)."""
    insensitive = np.nanmean([rates["negation"] for rates in change.values()]) < 0.2 and n_above < n_cells / 2
    return ("Near-chance classifiers rarely change their label: high Sem and Sym, low Neg" if insensitive
            else "BECEL consistency per task: our classifiers and the paper's")


# --------------------------------------------------------------------------------------------------
# 4. Figure
# --------------------------------------------------------------------------------------------------


def plot_table6(scores: pd.DataFrame, colors: dict, paper: pd.DataFrame | None = None, title: str = ""):
    """Table 6 as a figure: one panel per measure (Sym, Sem, Neg, Acc.), tasks on the x axis, our
    models as points with bootstrap intervals (colour per model), and the paper's LLaMA-7b (base)
    and the mean of its 10 instruction-tuned LLaMA models as hollow black markers labelled paper."""
    import matplotlib.pyplot as plt

    from ifhelpers.plots import PAPER_STYLE

    tasks = [t for t in becel.TASKS if t in set(scores["task"])]
    models = list(dict.fromkeys(scores["model"]))
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.4), sharey=True)
    width = 0.5 / max(1, len(models))
    for ax, metric in zip(axes, METRICS):
        for m, model in enumerate(models):
            sub = scores[(scores["model"] == model) & (scores["metric"] == metric)].set_index("task").reindex(tasks)
            x = np.arange(len(tasks)) + (m - (len(models) - 1) / 2) * width
            ax.errorbar(x, sub["value"], yerr=[sub["value"] - sub["low"], sub["high"] - sub["value"]], fmt="o",
                        color=colors.get(model), capsize=3, label=model)
        if paper is not None:
            llama = paper[(paper["family"] == "llama") & (paper["metric"] == metric)]
            base = llama[llama["role"] == "base"].set_index("task")["value"].reindex(tasks)
            tuned = llama[llama["role"] == "instruction-tuned"].groupby("task")["value"].mean().reindex(tasks)
            x = np.arange(len(tasks)) + 0.33
            ax.scatter(x, base, **{**PAPER_STYLE, "label": "paper: llama-7b (base)"})
            ax.scatter(x, tuned, **{**PAPER_STYLE, "marker": "s", "label": "paper: mean of 10 IFT LLaMA-7b"})
        ax.set_xticks(np.arange(len(tasks)), [t.upper() if t != "wic" else "WiC" for t in tasks])
        ax.set_title(TABLE6_NAMES[metric])
        ax.set_ylim(-0.03, 1.03)
    axes[0].set_ylabel("score (higher is better)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), bbox_to_anchor=(0.5, -0.1),
               frameon=False)
    if title:
        fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# 5. Headlines (Table 2's BECEL columns, Table 6)
# --------------------------------------------------------------------------------------------------


def task_average_difference(predictions: pd.DataFrame, base: str, tuned: str, metric: str,
                            n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> dict:
    """Table 2's BECEL number (§3: mean over tasks of the per-task mean, ×100), tuned − base, with a paired
    percentile bootstrap that resamples the items of each task (both models score the same items):
    :func:`ifhelpers.stats.stratified_mean_bootstrap` of the per-item differences, tasks as strata.

    Returns ``diff``, ``low``, ``high`` (×100) and ``tasks`` (how many tasks both models scored)."""
    scored = item_scores(predictions)
    scored = scored[scored["metric"] == metric]
    diffs = []
    for _, group in scored.groupby("task", sort=False):
        b = group[group["model"] == base].set_index(["set", "row"])["score"]
        t = group[group["model"] == tuned].set_index(["set", "row"])["score"]
        diff = (t - b).dropna().to_numpy(float)
        if len(diff):
            diffs.append(diff)
    if not diffs:
        return {"diff": NAN, "low": NAN, "high": NAN, "tasks": 0}
    res = stats.stratified_mean_bootstrap(diffs, n_resamples, confidence, seed=seed)
    return {"diff": 100 * res["estimate"], "low": 100 * res["low"], "high": 100 * res["high"],
            "tasks": res["strata"]}


def headlines(predictions: pd.DataFrame, table2: pd.DataFrame, paired: pd.DataFrame, base: str,
              tuned_names: list[str], mode: str, n_resamples: int = 2000, seed: int = 0) -> list[dict]:
    """The chapter's headline rows: BECEL accuracy and semantic / negational consistency averaged over
    tasks (§3, Table 2; :func:`task_average_difference`) and the per-task cells (App. C.2, Table 6;
    :func:`paired_table`), tuned − base, against the paper's LLaMA (and T5, Falcon) numbers."""
    paper_all = pd.concat([paper_tables.becel_table2(2), paper_tables.becel_table2(5)], ignore_index=True)
    paper_all = paper_all.pivot_table(index=["model", "role"], columns="metric", values="value",
                                      sort=False).reset_index()
    ours = table2.set_index(["model", "metric"])
    rows = []
    names = {"accuracy": "BECEL accuracy", "semantic": "BECEL semantic consistency (paraphrase)",
             "negational": "BECEL negational consistency (negation)"}
    for tuned in tuned_names:
        for metric, label in names.items():
            res = task_average_difference(predictions, base, tuned, metric, n_resamples, seed=seed)
            b, t = ours["value"].get((base, metric), NAN), ours["value"].get((tuned, metric), NAN)
            rows.append(row(
                "§3, Table 2", f"{label}, mean over tasks, tuned − base (×100)",
                paper_tables.direction_text(paper_all, metric),
                f"{diff_text(res['diff'], res['low'], res['high'], '+.1f')} (base {b:.1f}, tuned {t:.1f})",
                stats.verdict(res["diff"], res["low"], res["high"]), estimate=res["diff"], low=res["low"],
                high=res["high"], base=base, tuned=tuned,
                note=f"{res['tasks']} of the paper's 4 tasks; classifier: {mode}; paired bootstrap over items "
                     f"within tasks"))
    counts = paper_base_lowest(paper_tables.becel_table6())
    cons = paired[paired["metric"].isin(["semantic", "symmetric", "negational"])] if len(paired) else paired
    for tuned in tuned_names:
        part = cons[cons["tuned"] == tuned] if len(cons) else cons
        cells = [stats.verdict(r["mean_diff"], r["diff_low"], r["diff_high"]) for _, r in part.iterrows()]
        up = sum(c == "yes" for c in cells)
        down = sum(c == "no" for c in cells)
        higher = int((part["mean_diff"] > 0).sum()) if len(part) else 0
        rows.append(row(
            "§3, App. C.2, Table 6", "BECEL consistency per task and measure, tuned − base",
            "LLaMA-7b is the least consistent of the 11 LLaMA models in "
            f"{counts['semantic']} of 4 tasks under Sem, {counts['symmetric']} under Sym, "
            f"{counts['negational']} under Neg: mixed per task",
            f"tuned higher in {higher} of {len(part)} (task, measure) cells; "
            f"interval above 0 in {up}, below 0 in {down}",
            combine(cells), base=base, tuned=tuned,
            note=f"classifier: {mode}; paired bootstrap over items per cell"))
    return rows
