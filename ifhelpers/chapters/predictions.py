"""Consistent predictions: ParaRel factual consistency and MMLU accuracy spread (paper §3, Table 2, Table 5, App. C.1).

The paper asks whether instruction tuning makes a model's *predictions* less sensitive to meaning-preserving
changes of the input, with two zero-shot probes:

* **ParaRel** (Elazar et al. 2021; §3 and footnote 4). Every fact is asked through several paraphrased
  templates; *consistency* is the share of pairs of paraphrased queries of the same fact whose top-1
  predictions agree, *accuracy* the share of queries whose top-1 prediction is a gold object. Both are
  computed per relation, macro-averaged over relations, and averaged over the three prompts of Table 3;
  the standard deviation over the prompts is the paper's yardstick of a significant difference (footnote 4).
* **MMLU** (Hendrycks et al. 2021; §3, footnote 3, App. C.1). Zero-shot accuracy under the three
  instructions of App. C.1 and three orderings of the answer options (nine setups); the *spread*
  (Sclar et al. 2024) is the max − min accuracy across the instructions, averaged over the orderings.

The forward passes are elsewhere: ParaRel uses the one pass all chapters share
(:func:`ifhelpers.model.probes.run_pararel`), MMLU one cached pass per prompt scoring the answer letters
(:func:`ifhelpers.measure.mmlu.run_mmlu`). The metrics themselves are :mod:`ifhelpers.metrics` (``pararel_scores``,
``mmlu_spread``, ``mmlu_summary``) and the intervals :mod:`ifhelpers.stats`; this module joins them into
the per-model tables of Table 2, adds what the paper leaves implicit (intervals over relations and
questions, a permutation null for the spread) and writes the chapter's findings (:func:`summary_lines`)
and headline rows (:func:`headlines`), with directions read by :func:`ifhelpers.stats.verdict`.

How a prediction is compared with a gold object
------------------------------------------------
A prediction is one token, the model's top-1 next token after the prompt. An object is compared through
its *first token as it follows the prompt* (:func:`ifhelpers.model.tokens.first_continuation_id` of
``" " + object``): ``"Paris"`` after ``"... is located in"`` is ``▁Paris`` for Gemma 3 and ``ĠParis`` for
SmolLM2; ``"New York"`` is judged on ``▁New``. A query with several gold objects (N-M relations such as
P47 "shares border with") is answered correctly when the prediction is the first token of any of them.
Consistency compares the predicted *token ids* of two paraphrases, so two different correct objects of an
N-M fact count as inconsistent, as in Elazar et al. (2021). :func:`ifhelpers.measure.pararel.object_token_stats` measures how often
the first-token rule is lenient (objects of several tokens, distinct objects sharing a first token, and
objects whose first token is bare whitespace, which happens for numbers: ``" 1990"`` -> ``▁``, ``1``...).
"""

from __future__ import annotations

import textwrap
from typing import Sequence

import numpy as np
import pandas as pd

from ifhelpers.model import probes
from ifhelpers import metrics
from ifhelpers.data import pararel
from ifhelpers import findings, paper, stats

__all__ = ["LABELS", "pararel_summary", "pararel_by_relation", "pair_breakdown", "mmlu_setup_accuracy", "mmlu_model_summary", "mmlu_by_question", "spread_interval", "spread_null",
    "pararel_wide", "pararel_intervals", "pararel_comparison", "relation_wins", "mmlu_comparison", "mmlu_intervals", "all_at_chance",
    "spreads_within_null", "footnote4_rule", "table2_layout", "paper_predictions", "comparison_title",
    "plot_points", "plot_metric", "summary_lines", "headlines",
]


#: How the chapter's tables print the data columns named otherwise than they read (a notebook shows a
#: table as ``frame.rename(columns=LABELS)``).
LABELS = {"same_ids": "same ids for every prompt", "mean_letter_mass": "probability on A-D"}


# --------------------------------------------------------------------------------------------------
# ParaRel (§3, Table 2 "PARAREL", footnote 4)


def pararel_summary(scores: pd.DataFrame, ddof: int = 1) -> pd.DataFrame:
    """Table 2's ParaRel "Acc." and "Cons." per model, with the spread over prompts (footnote 4).

    ``scores`` is :func:`ifhelpers.measure.pararel.pararel_prompt_scores` (one or several models concatenated). For each prompt the metrics
    are macro-averaged over relations (:func:`ifhelpers.metrics.pararel.pararel_macro`: accuracy over every
    relation, consistency over those with pairs); Table 2's value is the mean over the prompts, and ``*_std``
    the standard deviation over the prompts (``ddof=1``: the paper does not say which; with three prompts
    the sample standard deviation is the more cautious). ``accuracy_micro`` is the share of all queries
    answered correctly, beside the macro average.

    Returns
    -------
    DataFrame indexed by ``model`` with ``role``, ``accuracy``, ``consistency``, ``accuracy_std``,
    ``consistency_std``, ``accuracy_micro``, ``n_prompts``, ``n_relations`` (with accuracy) and
    ``n_relations_with_pairs`` (with consistency) (fractions).
    """
    rows = []
    for (model, role), part in scores.groupby(["model", "role"], sort=False):
        per_prompt = pd.DataFrame({p: metrics.pararel.pararel_macro(g) for p, g in part.groupby("prompt_id")}).T
        rows.append({
            "model": model, "role": role,
            "accuracy": per_prompt["accuracy"].mean(), "consistency": per_prompt["consistency"].mean(),
            "accuracy_std": per_prompt["accuracy"].std(ddof=ddof) if len(per_prompt) > ddof else np.nan,
            "consistency_std": per_prompt["consistency"].std(ddof=ddof) if len(per_prompt) > ddof else np.nan,
            "accuracy_micro": per_prompt["accuracy_micro"].mean(),
            "n_prompts": len(per_prompt), "n_relations": int(part["relation"].nunique()),
            "n_relations_with_pairs": int(part.loc[part["n_pairs"] > 0, "relation"].nunique()),
        })
    return pd.DataFrame(rows).set_index("model")


def pararel_by_relation(scores: pd.DataFrame) -> pd.DataFrame:
    """Accuracy and consistency of each (model, relation), averaged over prompts: the bootstrap units.

    The mean of this table over relations equals :func:`pararel_summary`'s values when every prompt
    covers the same relations (it does: relations and facts do not depend on the prompt).
    """
    return (scores.groupby(["model", "role", "relation"], sort=False)[["accuracy", "consistency"]]
            .mean().reset_index())


def pararel_wide(scores: pd.DataFrame) -> pd.DataFrame:
    """:func:`pararel_by_relation` with one row per relation (sorted) and columns ``(metric, model)``:
    the paired units of the ParaRel comparisons (§3, Table 2; both models answer the same relations)."""
    return pararel_by_relation(scores).pivot(index="relation", columns="model", values=["accuracy", "consistency"])


def pararel_intervals(wide: pd.DataFrame, models: Sequence[str], n_resamples: int = 2000,
                      seed: int = 0) -> pd.DataFrame:
    """Each model's ParaRel accuracy and consistency (Table 2's macro averages) with a BCa bootstrap interval
    over relations (:func:`ifhelpers.stats.bootstrap_ci`; the paper gives point estimates only).

    ``wide`` is :func:`pararel_wide`. Returns ``model``, ``metric`` and the fields of ``bootstrap_ci``
    (fractions), models in the order given.
    """
    rows = {(m, metric): stats.bootstrap_ci(wide[(metric, m)].dropna().to_numpy(), n_resamples=n_resamples, seed=seed)
            for m in models for metric in ("accuracy", "consistency")}
    return pd.DataFrame(rows).T.rename_axis(["model", "metric"]).reset_index()


def pararel_comparison(wide: pd.DataFrame, base: str, models: Sequence[str], n_resamples: int = 2000,
                       seed: int = 0) -> pd.DataFrame:
    """Every other model against ``base`` on ParaRel accuracy and consistency, paired over relations
    (:func:`ifhelpers.stats.paired_comparison`, tuned − base; §3, Table 2 and footnote 4's question).

    ``wide`` is :func:`pararel_wide`. Returns a table indexed by ``(model, metric)`` with the fields of
    ``paired_comparison``.
    """
    out = pd.DataFrame({
        (m, metric): stats.paired_comparison(wide[(metric, base)].dropna(), wide[(metric, m)].dropna(),
                                             n_resamples=n_resamples, seed=seed)
        for m in models if m != base for metric in ("accuracy", "consistency")}).T
    out.index.names = ["model", "metric"]
    return out


def mmlu_comparison(by_question: pd.DataFrame, base: str, models: Sequence[str], n_resamples: int = 2000,
                    seed: int = 0) -> pd.DataFrame:
    """Every other model against ``base`` on MMLU accuracy, paired over questions
    (:func:`ifhelpers.stats.paired_comparison` of :func:`mmlu_by_question`, tuned − base, fractions; §3,
    Table 2). Indexed by ``model``, with the fields of ``paired_comparison``."""
    accuracy = {m: part.set_index("question_id")["accuracy"] for m, part in by_question.groupby("model", sort=False)}
    out = pd.DataFrame({m: stats.paired_comparison(accuracy[base], accuracy[m], n_resamples=n_resamples, seed=seed)
                        for m in models if m != base}).T
    out.index.name = "model"
    return out


def relation_wins(wide: pd.DataFrame, base: str, tuned: str, metric: str = "consistency") -> tuple[int, int]:
    """In how many relations ``tuned`` scores higher than ``base``, and in how many lower (ties in neither).

    ``wide`` is :func:`pararel_wide`; the per-relation view of Table 2's ParaRel difference."""
    t, b = wide[(metric, tuned)], wide[(metric, base)]
    return int((t > b).sum()), int((t < b).sum())


def pair_breakdown(frame: pd.DataFrame) -> pd.Series:
    """What the consistent pairs are made of: the same correct object, or the same wrong token.

    Over all pairs of paraphrased queries (every prompt, relations with two templates or more, pooled):
    the share that agree on a correct object, that agree on a wrong token, and that disagree; and the
    most frequent token among the wrong agreements.
    """
    tidy = probes.pararel_predictions(frame)  # a relation with one template gives no pair
    correct = np.array([p in g for p, g in zip(tidy["prediction"], tidy["gold"])])
    parts = []
    for _, part in tidy.groupby("prompt_id", sort=False):
        pairs = metrics.pararel.pararel_query_pairs(part)
        rows = part.index.to_numpy()
        parts.append(pairs.assign(correct_a=correct[rows[pairs["row_a"]]], text=part["prediction_text"].to_numpy()[pairs["row_a"]]
                                  if "prediction_text" in part else ""))
    pairs = pd.concat(parts, ignore_index=True)
    same_wrong = pairs["consistent"] & ~pairs["correct_a"]
    top = pairs.loc[same_wrong, "text"].replace("", "(whitespace)").value_counts()
    return pd.Series({
        "n_pairs": len(pairs),
        "agree_correct": float((pairs["consistent"] & pairs["correct_a"]).mean()),
        "agree_wrong": float(same_wrong.mean()),
        "disagree": float((~pairs["consistent"]).mean()),
        "top_wrong_agreement": f"{top.index[0]!r} ({top.iloc[0] / len(pairs):.0%} of pairs)" if len(top) else "",
    })


# --------------------------------------------------------------------------------------------------
# MMLU (§3, footnote 3, App. C.1)


def mmlu_setup_accuracy(results: pd.DataFrame) -> pd.DataFrame:
    """Accuracy of every (model, instruction, shuffle) setup, with its number of questions."""
    return (results.groupby(["model", "role", "instruction", "shuffle"], sort=False)["correct"]
            .agg(accuracy="mean", n_questions="size").reset_index())


def mmlu_model_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Table 2's MMLU "Acc." and "Spread" per model (:func:`ifhelpers.metrics.mmlu.mmlu_summary`), fractions.

    Also ``letter_mass``: the mean probability the model puts on the four answer letters (how well a
    zero-shot model takes up the answer format).
    """
    rows = []
    for (model, role), part in results.groupby(["model", "role"], sort=False):
        summary = metrics.mmlu.mmlu_summary(part)
        rows.append({"model": model, "role": role, "accuracy": summary["accuracy"], "spread": summary["spread"],
                     "spread_per_shuffle": summary["spread_per_shuffle"],
                     "n_setups": int(summary["n_setups"]), "n_questions": int(part["question_id"].nunique()),
                     "letter_mass": float(part["letter_mass"].mean())})
    return pd.DataFrame(rows).set_index("model")


def mmlu_by_question(results: pd.DataFrame) -> pd.DataFrame:
    """Each (model, question)'s accuracy over the setups: the bootstrap units of MMLU accuracy."""
    return (results.groupby(["model", "role", "question_id"], sort=False)["correct"].mean()
            .rename("accuracy").reset_index())


def spread_interval(results: pd.DataFrame, n_resamples: int = 2000, confidence: float = 0.95,
                    seed: int = 0, reading: str | None = None) -> pd.DataFrame:
    """Percentile bootstrap interval of the spread (:func:`ifhelpers.metrics.mmlu.mmlu_spread`, in
    ``reading``, default its headline reading) per model, resampling questions.

    A max − min is not a smooth statistic (BCa's jackknife is unreliable for it), so this is the plain
    percentile interval (:func:`ifhelpers.stats.resample_statistic`). Read it with :func:`spread_null`:
    with a few dozen questions even identical instructions show a spread of several points.
    """
    reading = reading or metrics.mmlu.HEADLINE_READING
    rows = []
    for (model, role), part in results.groupby(["model", "role"], sort=False):
        cube = metrics.mmlu.mmlu_cube(part)[0]
        draws = stats.resample_statistic(cube, lambda c: metrics.mmlu.mmlu_spread(c, reading), n_resamples,
                                         seed=seed, batch=200)
        low, high = stats.percentile_interval(draws, confidence)
        rows.append({"model": model, "role": role, "estimate": float(metrics.mmlu.mmlu_spread(cube, reading)),
                     "low": low, "high": high, "se": float(draws.std(ddof=1)), "n": len(cube),
                     "confidence": confidence, "reading": reading})
    return pd.DataFrame(rows)


def spread_null(results: pd.DataFrame, n_permutations: int = 2000, seed: int = 0,
                reading: str | None = None) -> pd.DataFrame:
    """How large the spread is when the instructions make no difference: a permutation null per model.

    Under the null that the instruction does not matter, the labels of the instructions are exchangeable
    within each (question, ordering); permuting them independently gives the spread that sampling noise
    alone produces with these questions. ``p_value`` is the share of permuted spreads at least as large
    as the observed one (with the usual +1 correction). The spread is read as in :func:`spread_interval`.
    """
    reading = reading or metrics.mmlu.HEADLINE_READING
    rows = []
    for (model, role), part in results.groupby(["model", "role"], sort=False):
        cube = metrics.mmlu.mmlu_cube(part)[0]
        observed = float(metrics.mmlu.mmlu_spread(cube, reading))
        rng = np.random.default_rng(seed)
        null = []
        for b in range(0, n_permutations, 200):
            k = min(200, n_permutations - b)
            keys = rng.random((k, *cube.shape))
            permuted = np.take_along_axis(np.broadcast_to(cube, keys.shape), keys.argsort(axis=-1), axis=-1)
            null.append(metrics.mmlu.mmlu_spread(permuted, reading))
        null = np.concatenate(null)
        rows.append({"model": model, "role": role, "spread": observed, "null_mean": float(null.mean()),
                     "null_q95": float(np.quantile(null, 0.95)),
                     "p_value": float((1 + (null >= observed - 1e-12).sum()) / (1 + len(null))),
                     "n_questions": len(cube)})
    return pd.DataFrame(rows)


def mmlu_intervals(results: pd.DataFrame, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Table 2's MMLU accuracy and spread per model, in percent, with what the book adds to them (§3).

    ``accuracy`` with a BCa bootstrap interval over questions (``acc_low``, ``acc_high``;
    :func:`ifhelpers.stats.bootstrap_ci` of :func:`mmlu_by_question`), ``spread`` with its percentile
    interval (:func:`spread_interval`), the permutation null of the spread (``null_mean``, ``null_q95``,
    ``p_value``: :func:`spread_null`) and ``n_questions``. Indexed by ``model``, with ``role``.
    """
    summary = mmlu_model_summary(results)
    by_question = mmlu_by_question(results)
    accuracy_ci = pd.DataFrame({
        m: stats.bootstrap_ci(by_question.loc[by_question["model"] == m, "accuracy"].to_numpy(),
                              n_resamples=n_resamples, seed=seed) for m in summary.index}).T
    spread_ci = spread_interval(results, n_resamples=n_resamples, seed=seed).set_index("model")
    null = spread_null(results, n_permutations=n_resamples, seed=seed).set_index("model")
    return pd.DataFrame({
        "role": summary["role"],
        "accuracy": 100 * summary["accuracy"], "acc_low": 100 * accuracy_ci["low"],
        "acc_high": 100 * accuracy_ci["high"],
        "spread": 100 * summary["spread"], "spread_low": 100 * spread_ci["low"], "spread_high": 100 * spread_ci["high"],
        "spread_per_shuffle": 100 * summary["spread_per_shuffle"],
        "null_mean": 100 * null["null_mean"], "null_q95": 100 * null["null_q95"],
        "p_value": null["p_value"], "n_questions": summary["n_questions"]})


def all_at_chance(table: pd.DataFrame, chance: float = 25.0) -> bool:
    """Whether every model's MMLU accuracy interval contains chance (25% with four options), so that no
    model is distinguishable from guessing. ``table`` is :func:`mmlu_intervals` (percent)."""
    return bool(((table["acc_low"] <= chance) & (chance <= table["acc_high"])).all())


def spreads_within_null(table: pd.DataFrame, alpha: float = stats.SIGNIFICANCE) -> bool:
    """Whether every model's MMLU spread is within its permutation null (``p_value`` > ``alpha``): spreads
    that instructions making no difference would give. ``table`` is :func:`mmlu_intervals`."""
    return bool((table["p_value"] > alpha).all())


# --------------------------------------------------------------------------------------------------
# Comparing with the base model, and with the paper


def footnote4_rule(summary: pd.DataFrame, base: str, metric: str = "consistency") -> pd.DataFrame:
    """The paper's significance rule (footnote 4) for each model against ``base``.

    The paper calls a ParaRel consistency difference significant when it exceeds the base model's
    standard deviation over the three prompts (1.4 points for LLaMA). ``summary`` is :func:`pararel_summary`.

    paper: footnote 4
    """
    threshold = float(summary.loc[base, f"{metric}_std"])
    out = summary[["role", metric, f"{metric}_std"]].copy()
    out["difference"] = out[metric] - float(summary.loc[base, metric])
    out["threshold"] = threshold
    out["beyond_threshold"] = out["difference"].abs() > threshold
    return out.drop(index=base)


def table2_layout(pararel: pd.DataFrame | None, mmlu_: pd.DataFrame | None) -> pd.DataFrame:
    """Our numbers in Table 2's layout, in percent: ``source``, ``model``, ``role`` and :data:`paper.TABLE2_COLUMNS`."""
    parts = []
    if mmlu_ is not None:
        parts.append(pd.DataFrame({"MMLU Acc.": 100 * mmlu_["accuracy"], "MMLU Spread": 100 * mmlu_["spread"],
                                   "role": mmlu_["role"]}))
    if pararel is not None:
        parts.append(pd.DataFrame({"PARAREL Acc.": 100 * pararel["accuracy"],
                                   "PARAREL Cons.": 100 * pararel["consistency"], "role": pararel["role"]}))
    if not parts:
        raise ValueError("give the ParaRel or the MMLU summary")
    table = parts[0]
    for part in parts[1:]:
        table = table.combine_first(part)
    table = table.rename_axis("model").reset_index()
    table.insert(0, "source", "ours")
    return table[["source", "model", "role", *[c for c in paper.TABLE2_COLUMNS if c in table.columns]]]


def paper_predictions() -> pd.DataFrame:
    """The paper's Table 2 (LLaMA-7b and its tuned models) and Table 5 (T5, Falcon) rows, MMLU and ParaRel
    columns (:func:`ifhelpers.paper.predictions_table`)."""
    return pd.concat([paper.predictions_table(2), paper.predictions_table(5)], ignore_index=True)


def comparison_title(tuned: str, base: str, diff: float, low: float, high: float, what: str) -> str:
    """A figure title that states a tuned − base difference (points) with its direction, read by
    :func:`ifhelpers.stats.verdict`: "more"/"less" ``what`` when the interval excludes 0, else "about equally"."""
    word = {"yes": "more", "no": "less"}.get(stats.verdict(diff, low, high))
    if word:
        return f"{tuned} is {word} {what} than {base} ({diff:+.1f} points)"
    return f"{tuned} and {base} are about equally {what} ({diff:+.1f} points, interval spans 0)"


def plot_points(table: pd.DataFrame, role_of: dict, estimate: str = "estimate", low: str = "low", high: str = "high",
                *, metric: str | None = None, scale: float = 1.0) -> pd.DataFrame:
    """The rows :func:`plot_metric` draws: ``model``, ``role``, ``estimate``, ``low``, ``high`` (× ``scale``).

    ``table`` has one row per model (a ``model`` column or index) and the three named columns, e.g.
    :func:`mmlu_intervals`; with ``metric``, only its rows of a long table with a ``metric`` column
    (:func:`pararel_intervals`).
    """
    part = table if metric is None else table[table["metric"] == metric]
    part = part.set_index("model") if "model" in part.columns else part
    return pd.DataFrame({"model": list(part.index), "role": [role_of[m] for m in part.index],
                         "estimate": scale * part[estimate].to_numpy(dtype=float),
                         "low": scale * part[low].to_numpy(dtype=float),
                         "high": scale * part[high].to_numpy(dtype=float)})


def plot_metric(ours: pd.DataFrame, column: str, paper: pd.DataFrame | None = None, *, colors: dict | None = None,
                title: str = "", ylabel: str | None = None, chance: float | None = None, ax=None):
    """One metric per role: our models with their intervals beside the paper's models (hollow, "paper").

    ``ours`` has ``model``, ``role``, ``estimate``, ``low``, ``high`` (percent); ``paper`` has ``model``,
    ``role`` and ``column`` (percent). Base models on the left, instruction-tuned ones on the right; our
    models at the left of each slot, the paper's at the right.
    """
    import matplotlib.pyplot as plt

    from ifhelpers.plots import PAPER_STYLE, ROLE_COLORS

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.8))
    roles = ["base", "instruction-tuned"]
    for x, role in enumerate(roles):
        mine = ours[ours["role"] == role].reset_index(drop=True)
        offsets = np.linspace(-0.3, -0.1, len(mine)) if len(mine) > 1 else [-0.2]
        for dx, row in zip(offsets, mine.itertuples(index=False)):
            color = (colors or {}).get(row.model, ROLE_COLORS[role])
            ax.errorbar(x + dx, row.estimate, yerr=[[row.estimate - row.low], [row.high - row.estimate]], fmt="o",
                        color=color, capsize=3, markersize=7, label=row.model)
        if paper is not None:
            values = paper.loc[paper["role"] == role, column].astype(float).to_numpy()
            if len(values):
                xs = x + 0.2 + np.linspace(-0.08, 0.08, len(values)) if len(values) > 1 else [x + 0.2]
                style = dict(PAPER_STYLE)
                style["label"] = style["label"] if x == 0 or not any(paper["role"] == "base") else None
                ax.scatter(xs, values, **style)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", linewidth=1)
        ax.annotate("chance", (-0.55, chance), fontsize=8, color="grey", va="bottom", ha="left")
    ax.set_xticks(range(len(roles)), roles)
    ax.set_xlim(-0.6, len(roles) - 0.4)
    ax.set_ylabel(ylabel or column)
    ax.set_title(textwrap.fill(title, 60), fontsize=11)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return ax


# --------------------------------------------------------------------------------------------------
# What holds for our pair: the chapter's findings in words, and its headline rows


def summary_lines(pararel_paired: pd.DataFrame, footnote4: pd.DataFrame, restricted_paired: pd.Series, base: str,
                  tuned: str, at_chance: bool, spread_noise: bool, caution: str = "") -> str:
    """The chapter's findings for one base/tuned pair as a Markdown list (§3, Table 2, footnote 4).

    ``pararel_paired`` is :func:`pararel_comparison`, ``footnote4`` :func:`footnote4_rule`,
    ``restricted_paired`` the :func:`ifhelpers.stats.paired_comparison` of the restricted consistency;
    ``at_chance`` and ``spread_noise`` are :func:`all_at_chance` and :func:`spreads_within_null`. The
    direction is :func:`ifhelpers.stats.verdict`'s against the paper's (tuned at least as consistent).
    """
    c = pararel_paired.loc[(tuned, "consistency")]
    direction = {"yes": "in the same direction", "no": "in the opposite direction"}.get(
        stats.verdict(c["mean_diff"], c["diff_low"], c["diff_high"]), "not distinguishable from zero")
    lines = [f"- **ParaRel consistency**: {tuned} − {base} = {100 * c['mean_diff']:+.1f} points "
             f"(interval {100 * c['diff_low']:+.1f} to {100 * c['diff_high']:+.1f}); footnote 4's threshold "
             f"{footnote4.loc[tuned, 'threshold'] * 100:.1f} points: "
             f"{'beyond' if footnote4.loc[tuned, 'beyond_threshold'] else 'within'} it.",
             f"- **ParaRel restricted to the relation's objects** (top-10 lower bound): {tuned} − {base} = "
             f"{100 * restricted_paired['mean_diff']:+.1f} points (interval {100 * restricted_paired['diff_low']:+.1f} "
             f"to {100 * restricted_paired['diff_high']:+.1f}).",
             f"- **Direction**: the paper finds tuned models at least as consistent as their base; here the "
             f"unrestricted difference is {direction}.",
             f"- **MMLU**: {'no model distinguishable from chance' if at_chance else 'not all models at chance'}; "
             f"spreads {'within' if spread_noise else 'not all within'} the no-effect null.",
             f"- {caution}" if caution else "- Same family: the comparison isolates instruction tuning."]
    return "\n".join(lines)


def headlines(pararel_paired: pd.DataFrame, pararel_summary: pd.DataFrame, footnote4: pd.DataFrame,
              mmlu_table: pd.DataFrame, mmlu_paired: pd.DataFrame, base: str, at_chance: bool,
              spread_noise: bool, n_relations: int, n_questions: int, n_pair_relations: int | None = None) -> list[dict]:
    """The chapter's headline rows (:func:`ifhelpers.findings.row`): ParaRel consistency and accuracy, MMLU
    accuracy and spread, tuned − base, against Table 2 (LLaMA) and Table 5 (T5, Falcon) (§3). Values in
    percent / points, as the paper prints them.

    ``pararel_paired`` is :func:`pararel_comparison` (one consistency and one accuracy row per tuned model),
    ``pararel_summary`` :func:`pararel_summary`, ``footnote4`` :func:`footnote4_rule` (whether a difference
    is beyond footnote 4's threshold), ``mmlu_table`` :func:`mmlu_intervals`, ``mmlu_paired``
    :func:`mmlu_comparison` (one row per tuned model, fractions), so the MMLU rows come per tuned model too.
    Directions are :func:`ifhelpers.stats.verdict`'s; the paper claims none for ParaRel accuracy. The spread is "not testable" when the models are at chance
    or their spreads within the no-effect null; otherwise the two spreads' intervals are compared (tuned
    lower when its interval lies wholly below the base model's).
    """
    paper_rows = paper_predictions()
    rows = []
    for metric, column, label in (("consistency", "PARAREL Cons.", "ParaRel consistency"),
                                  ("accuracy", "PARAREL Acc.", "ParaRel accuracy")):
        for (model, m), p in pararel_paired.iterrows():
            if m != metric:
                continue
            d, lo, hi = 100 * p["mean_diff"], 100 * p["diff_low"], 100 * p["diff_high"]
            holds = stats.verdict(d, lo, hi) if metric == "consistency" else "not defined"
            n = n_relations if metric == "accuracy" or n_pair_relations is None else n_pair_relations
            note = f"{n} relations; paired bootstrap over relations; Wilcoxon p = {p['wilcoxon_p']:.2g}"
            if metric == "consistency":
                beyond = "beyond" if footnote4.loc[model, "beyond_threshold"] else "within"
                note += (f"; footnote 4's threshold (base sd over prompts) {100 * footnote4.loc[model, 'threshold']:.1f} "
                         f"points: {beyond} it")
            else:
                note += (f"; macro average over relations (micro, over queries: base "
                         f"{100 * pararel_summary.loc[base, 'accuracy_micro']:.1f}%, tuned "
                         f"{100 * pararel_summary.loc[model, 'accuracy_micro']:.1f}%); the paper claims no direction "
                         "for ParaRel accuracy")
            threshold = paper.FINDINGS["base_consistency_sd"] if metric == "consistency" else None
            rows.append(findings.row(
                "§3, Table 2", f"{label}, tuned − base (points)",
                paper.direction_text(paper_rows, column, threshold=threshold),
                f"{findings.diff_text(d, lo, hi, '+.1f')} (base {100 * pararel_summary.loc[base, metric]:.1f}%, "
                f"tuned {100 * pararel_summary.loc[model, metric]:.1f}%)",
                holds, estimate=d, low=lo, high=hi, base=base, tuned=model, note=note))
    every = "both models" if len(mmlu_paired) == 1 else f"all {1 + len(mmlu_paired)} models"
    chance_note = (f"{every} at chance: every accuracy interval contains 25%" if at_chance
                   else "not every model at chance")
    for tuned, paired in mmlu_paired.iterrows():
        d, lo, hi = (100 * paired[k] for k in ("mean_diff", "diff_low", "diff_high"))
        rows.append(findings.row(
            "§3, Table 2", "MMLU accuracy, tuned − base (points)", paper.direction_text(paper_rows, "MMLU Acc."),
            f"{findings.diff_text(d, lo, hi, '+.1f')} (base {mmlu_table.loc[base, 'accuracy']:.1f}%, "
            f"tuned {mmlu_table.loc[tuned, 'accuracy']:.1f}%)",
            stats.verdict(d, lo, hi), estimate=d, low=lo, high=hi, base=base, tuned=tuned,
            note=f"{n_questions} questions × 9 setups; paired bootstrap over questions; {chance_note}"))
    b = mmlu_table.loc[base]
    for tuned in mmlu_paired.index:
        t = mmlu_table.loc[tuned]
        if at_chance or spread_noise:
            holds = "not testable"
            why = (f"{chance_note}, so a spread is noise" if at_chance else "") + (
                "; " if at_chance and spread_noise else "") + (
                "both spreads within the permutation null (instruction makes no difference)" if spread_noise else "")
        else:  # the widest interval of tuned − base the two intervals allow: they overlap iff it contains 0
            holds = stats.verdict(t["spread"] - b["spread"], t["spread_low"] - b["spread_high"],
                                  t["spread_high"] - b["spread_low"], paper_sign=-1)
            why = "compared by the two spreads' bootstrap intervals"
        rows.append(findings.row(
            "§3, Table 2", "MMLU accuracy spread across instructions (points; lower = more robust)",
            paper.direction_text(paper_rows, "MMLU Spread", higher=False),
            f"base {b['spread']:.1f} [{b['spread_low']:.1f}, {b['spread_high']:.1f}], tuned {t['spread']:.1f} "
            f"[{t['spread_low']:.1f}, {t['spread_high']:.1f}]; no-effect null {b['null_mean']:.1f} / {t['null_mean']:.1f}",
            holds, estimate=t["spread"] - b["spread"], base=base, tuned=tuned,
            note=f"{why}; permutation p = {b['p_value']:.2f} (base), {t['p_value']:.2f} (tuned); spread = max − min "
                 f"over instructions of their accuracy averaged over orderings (max − min within each ordering, "
                 f"averaged: base {b['spread_per_shuffle']:.1f}, tuned {t['spread_per_shuffle']:.1f})"))
    return rows
