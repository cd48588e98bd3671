"""Instruction-tune it yourself: does paraphrase-rich instruction data cause consistency? (the book's own experiment)

The paper's introduction (§1) posits, without testing it, that instruction data make models
consistent because they verbalise one task in many surface forms (the templates of T0 and Flan).
The chapter tests it: one base model is LoRA-tuned on three mixtures of the same size, with the same
settings (:mod:`ifhelpers.train.tuning`), and the four models go through the measures of the earlier
chapters (the cosine gap of §2, ParaRel consistency and MMLU spread of §3, BECEL of §3 / App. C.2,
and Table 7's correlation of §4).

* **H1** (the causal claim): paraphrase-rich minus single-template is above 0 (:func:`h1_contrasts`,
  :func:`h1_sentence`).
* **H2** (the paper's observation, Table 2, on one architecture): every tuned model minus the base
  model is above 0 (:func:`versus_base`, :func:`count_verdicts`).

The chapter's notebook runs the models through the other chapters' code; this module only takes the
tables they computed. Paired differences come from :func:`ifhelpers.stats.paired_comparison` and
:func:`ifhelpers.stats.compare_roles`, the verdict word from :func:`ifhelpers.stats.verdict`, and the
headline rows from :func:`ifhelpers.findings.row`. Nothing here trains or runs a model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ifhelpers import findings, stats
from ifhelpers.model import registry, tuned

__all__ = [
    "SOURCE_LABELS", "MEASURES", "H1_PAIR", "HEADLINE_MEASURE", "base_spec", "recipes", "same_as_registry",
    "contamination_table", "dropped_example", "templates_used", "training_cost", "plot_losses",
    "relation_wide", "gap_wide", "paired_measures", "measure_table", "measure_cells", "contrast_pairs", "contrasts",
    "versus_base", "h1_contrasts", "forest", "count_verdicts", "h1_sentence", "chance_interval",
    "spread_difference", "table7_inputs", "table7_layout", "n_correlated", "plot_table7", "headline",
    "headline_rows",
]

#: How the training sources are printed.
SOURCE_LABELS = {"lima": "LIMA", "alpaca": "Alpaca", "t0": "T0"}
#: The measures compared on paired units (:func:`paired_measures`), in display order.
MEASURES = ("ParaRel consistency", "ParaRel consistency (restricted)", "ParaRel accuracy", "ParaRel cosine gap")
#: H1's contrast: (minus, model), the mixtures whose models are compared.
H1_PAIR = ("single-template", "paraphrase-rich")
#: The measure the headlines (H1 and H2) are read on.
HEADLINE_MEASURE = "ParaRel consistency (restricted)"
_NOTE = "same base model, tuned by this book; one seed per mixture"


# --------------------------------------------------------------------------------------------------
# The models: one base, one recipe per mixture


def base_spec(models, roles: dict[str, str] | None = None):
    """The one base model this chapter tunes (its :class:`~ifhelpers.model.registry.ModelSpec`).

    Raises ValueError, before any model loads or trains, unless ``models`` names exactly one model
    and it is a base model."""
    specs = registry.specs(models, roles)
    if len(specs) != 1 or specs[0].role != "base":
        raise ValueError(f"This chapter tunes one base model: models=[NAME] with a base model; got {list(models)} "
                         f"with roles {[s.role for s in specs]}.")
    return specs[0]


def recipes(base: str, mixtures, *, n_examples: int, max_tokens: int, epochs: int, batch_size: int,
            learning_rate: float, lora_r: int, seed: int) -> dict[str, tuned.Recipe]:
    """One :class:`~ifhelpers.model.tuned.Recipe` per mixture, with the same settings for all
    (``lora_alpha`` = 2 × ``lora_r``). A mixture the registry names for ``base`` keeps the registry's
    name (e.g. ``gemma-3-270m-ift-free-form``); any other is named ``<base>-ift-<mixture>``. The
    recipes check the mixture names."""
    registered = tuned.registered_names(base)
    stem = base.rstrip("/").split("/")[-1]
    return {kind: tuned.Recipe(name=registered.get(kind, f"{stem}-ift-{kind}"), base=base, mixture=kind,
                               n_examples=n_examples, max_tokens=max_tokens, epochs=epochs, batch_size=batch_size,
                               learning_rate=learning_rate, lora_r=lora_r, lora_alpha=2 * lora_r, seed=seed)
            for kind in mixtures}


def same_as_registry(recipes: dict[str, tuned.Recipe]) -> dict[str, bool]:
    """For each mixture the registry names a model of: whether our recipe trains that same model
    (same :attr:`~ifhelpers.model.tuned.Recipe.key`), so that it is stored once for every chapter."""
    if not recipes:
        return {}
    base = next(iter(recipes.values())).base
    return {kind: recipes[kind].key == tuned.recipe_of(registry.get(name)).key
            for kind, name in tuned.registered_names(base).items() if kind in recipes}


# --------------------------------------------------------------------------------------------------
# Training data and training


def contamination_table(pool: pd.DataFrame) -> pd.DataFrame:
    """The contamination check by source (:func:`ifhelpers.train.tuning.candidate_pool`'s flags):
    examples that fit, and how many state a ParaRel fact, share an 8-gram with MMLU or BECEL, or
    either (``contaminated``); a last row ``all``."""
    source = pool["source"].replace(SOURCE_LABELS)
    check = pool.assign(source=source).groupby("source")[["pararel_fact", "mmlu_ngram", "becel_ngram",
                                                          "contaminated"]].sum()
    check.insert(0, "examples that fit", pool.groupby(source).size())
    check.loc["all"] = check.sum()
    return check


def dropped_example(pool: pd.DataFrame, n_prompt: int = 400, n_response: int = 80) -> str:
    """The first example the check drops for naming a ParaRel fact: its prompt and response, cut."""
    flagged = pool[pool["pararel_fact"]].iloc[0]
    return (flagged["prompt"][:n_prompt] + " ... -> " + flagged["response"][:n_response]).strip()


def templates_used(drawn: dict[str, pd.DataFrame]) -> list[str]:
    """For the most frequent task of the first T0 mixture: which templates each T0 mixture used
    (all of them for paraphrase-rich, one for single-template). Empty without a T0 mixture."""
    t0_kinds = [k for k in drawn if k != "free-form"]
    if not t0_kinds:
        return []
    task = drawn[t0_kinds[0]]["task"].value_counts().index[0]
    lines = []
    for kind in t0_kinds:
        rows = drawn[kind][drawn[kind]["task"] == task]
        lines.append(f"{kind}: task {task!r}, templates used: {sorted(rows['template'].unique())}")
    return lines


def training_cost(logs: dict[str, dict]) -> pd.DataFrame:
    """One row per mixture from its training log (:func:`ifhelpers.model.tuned.training_log`): steps,
    examples, tokens, minutes, tokens/s, peak memory, device, threads and whether it resumed."""
    return pd.DataFrame({kind: {"steps": log["steps"], "examples": log["examples"], "tokens": log["tokens"],
                                "minutes": log["seconds"] / 60, "tokens/s": log["tokens"] / log["seconds"],
                                "peak memory (GiB)": log["peak_rss_gib"], "device": log["device"],
                                "threads": log["torch_threads"], "resumed": bool(log["resumed_from"])}
                         for kind, log in logs.items()}).T


def plot_losses(logs: dict[str, dict], colors: dict[str, str]):
    """The training loss of each mixture by optimiser step (``colors`` by mixture); the title gives
    the mean first and last loss over the mixtures."""
    import matplotlib.pyplot as plt

    losses = pd.concat([pd.DataFrame(log["losses"]).assign(mixture=kind) for kind, log in logs.items()])
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for kind, part in losses.groupby("mixture", sort=False):
        ax.plot(part["step"], part["loss"], marker="o", ms=3, label=kind, color=colors[kind])
    first = losses.groupby("mixture")["loss"].first()
    last = losses.groupby("mixture")["loss"].last()
    ax.set(xlabel="optimiser step", ylabel="training loss (response tokens)",
           title=f"Training loss falls from {first.mean():.1f} to {last.mean():.1f} (mean over variants)")
    ax.legend()
    return fig


# --------------------------------------------------------------------------------------------------
# The measures of every model, with intervals


def relation_wide(by_relation: pd.DataFrame, metric: str, names) -> pd.DataFrame:
    """Relations × models of one ParaRel metric (§3), from
    :func:`ifhelpers.chapters.predictions.pararel_by_relation` (already averaged over prompts)."""
    return by_relation.pivot(index="relation", columns="model", values=metric)[list(names)]


def gap_wide(gap_units: pd.DataFrame, names) -> pd.DataFrame:
    """Query sets × models of the ParaRel cosine gap (§2, App. B.1 eq. 3), from
    :func:`ifhelpers.chapters.vector_space.prompt_average`."""
    return gap_units.pivot(index="unit_id", columns="model", values="gap")[list(names)]


def paired_measures(by_relation: pd.DataFrame, by_relation_restricted: pd.DataFrame, gap_units: pd.DataFrame,
                    names) -> dict[str, pd.DataFrame]:
    """The measures compared on paired units (:data:`MEASURES`), each units × models: ParaRel
    consistency, restricted consistency and accuracy per relation (×100, points), and the cosine
    gap per query set."""
    return {
        "ParaRel consistency": relation_wide(by_relation, "consistency", names) * 100,
        "ParaRel consistency (restricted)": relation_wide(by_relation_restricted, "consistency", names) * 100,
        "ParaRel accuracy": relation_wide(by_relation, "accuracy", names) * 100,
        "ParaRel cosine gap": gap_wide(gap_units, names),
    }


def measure_table(measures: dict[str, pd.DataFrame], mmlu_table: pd.DataFrame, spread: pd.DataFrame,
                  becel_table: pd.DataFrame, names, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (measure, model) with ``estimate``, ``low``, ``high`` (95%).

    The paired measures get a BCa interval over their units (:func:`ifhelpers.stats.bootstrap_ci`);
    MMLU accuracy (``mmlu_table``, indexed by model, a share) has none; MMLU spread comes from
    ``spread`` (indexed by model: ``estimate``, ``low``, ``high``, shares), BECEL accuracy and Sem
    from ``becel_table`` (Table 2's BECEL columns, ×100). MMLU values are given ×100."""
    rows = []
    for measure, wide in measures.items():
        for model in names:
            ci = stats.bootstrap_ci(np.asarray(wide[model].dropna(), float), n_resamples=n_resamples, seed=seed)
            rows.append({"measure": measure, "model": model, "estimate": ci["estimate"], "low": ci["low"],
                         "high": ci["high"]})
    for model in names:
        rows.append({"measure": "MMLU accuracy", "model": model, "estimate": 100 * mmlu_table.loc[model, "accuracy"],
                     "low": np.nan, "high": np.nan})
        rows.append({"measure": "MMLU spread", "model": model,
                     **{k: 100 * spread.loc[model, k] for k in ("estimate", "low", "high")}})
    for _, row in becel_table.iterrows():
        if row["metric"] in ("accuracy", "semantic"):
            rows.append({"measure": f"BECEL {'Sem' if row['metric'] == 'semantic' else 'accuracy'}",
                         "model": row["model"], "estimate": row["value"], "low": row["low"], "high": row["high"]})
    return pd.DataFrame(rows)


def measure_cells(table: pd.DataFrame, names) -> pd.DataFrame:
    """:func:`measure_table` as text, measures × models: ``48.3 [31.0, 81.5]`` (the gap as ``0.275``)."""
    cells = [f"{e:.3f}" if "gap" in m else f"{e:.1f}" + ("" if np.isnan(lo) else f" [{lo:.1f}, {hi:.1f}]")
             for m, e, lo, hi in zip(table["measure"], table["estimate"], table["low"], table["high"])]
    return table.assign(cell=cells).pivot(index="measure", columns="model", values="cell")[list(names)]


# --------------------------------------------------------------------------------------------------
# Paired contrasts: H2 (tuned − base) and H1 (paraphrase-rich − single-template)


def _contrast_row(measure: str, minus: str, model: str, result, scale: float = 1.0) -> dict:
    return {"measure": measure, "minus": minus, "model": model, "difference": scale * result["mean_diff"],
            "low": scale * result["diff_low"], "high": scale * result["diff_high"],
            "wilcoxon_p": result["wilcoxon_p"], "n": result["n"]}


def contrast_pairs(base: str, name_of: dict[str, str]) -> list[tuple[str, str]]:
    """The (minus, model) pairs the chapter compares: H2's (base, tuned model) for every mixture of
    ``name_of`` (model by mixture), then H1's (single-template, paraphrase-rich) when both are there."""
    pairs = [(base, name) for name in name_of.values()]
    if set(H1_PAIR) <= set(name_of):
        pairs.append(tuple(name_of[k] for k in H1_PAIR))
    return pairs


def contrasts(measures: dict[str, pd.DataFrame], becel_paired: pd.DataFrame, minus: str, model: str,
              n_resamples: int = 2000, seed: int = 0) -> list[dict]:
    """``model`` − ``minus`` on every paired measure and on BECEL Sem per task, with a paired
    bootstrap interval and a Wilcoxon test.

    ``measures`` is :func:`paired_measures` (units × models), paired here by
    :func:`ifhelpers.stats.paired_comparison`. ``becel_paired`` holds the BECEL chapter's item-paired
    comparisons (:func:`ifhelpers.chapters.becel.compare_roles`, columns of
    :func:`ifhelpers.stats.compare_roles`) of the pairs of :func:`contrast_pairs`; the semantic rows
    of (``minus``, ``model``) are taken, ×100. Rows: ``measure``, ``minus``, ``model``,
    ``difference``, ``low``, ``high``, ``wilcoxon_p``, ``n``."""
    out = []
    for measure, wide in measures.items():
        pair = wide[[minus, model]].dropna()  # a relation with one template has no consistency
        result = stats.paired_comparison(pair[minus], pair[model], n_resamples=n_resamples, seed=seed)
        out.append(_contrast_row(measure, minus, model, result))
    sem = becel_paired[(becel_paired["metric"] == "semantic") & (becel_paired["base"] == minus)
                       & (becel_paired["tuned"] == model)]
    for _, row in sem.iterrows():
        out.append(_contrast_row(f"BECEL Sem ({row['task']})", minus, model, row, scale=100))
    return out


def versus_base(measures: dict[str, pd.DataFrame], becel_paired: pd.DataFrame, base: str, tuned_names,
                n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """H2: each tuned model − the base model (:func:`contrasts`), tuned models in the order given."""
    return pd.DataFrame([r for name in tuned_names
                         for r in contrasts(measures, becel_paired, base, name, n_resamples, seed)])


def h1_contrasts(measures: dict[str, pd.DataFrame], becel_paired: pd.DataFrame, spread: pd.DataFrame,
                 name_of: dict[str, str], n_questions: int, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """H1: paraphrase-rich − single-template (:func:`contrasts`), plus the difference of their MMLU
    spreads (×100, ``spread`` indexed by model) without an interval: a max − min over setups is not a
    mean over paired units. Empty when ``name_of`` (model by mixture) lacks one of :data:`H1_PAIR`."""
    if not set(H1_PAIR) <= set(name_of):
        return pd.DataFrame()
    minus, model = (name_of[k] for k in H1_PAIR)
    rows = contrasts(measures, becel_paired, minus, model, n_resamples, seed)
    rows.append({"measure": "MMLU spread (lower is more consistent)", "minus": minus, "model": model,
                 "difference": 100 * (spread.loc[model, "estimate"] - spread.loc[minus, "estimate"]),
                 "low": np.nan, "high": np.nan, "wilcoxon_p": np.nan, "n": n_questions})
    return pd.DataFrame(rows)


def forest(frame: pd.DataFrame, title: str, labels: dict[str, str] | None = None):
    """One panel per measure (BECEL rows left out): each difference of :func:`contrasts` with its
    interval, 0 marked. ``labels`` shortens model names on the axis (e.g. tuned model -> mixture)."""
    import matplotlib.pyplot as plt

    labels = labels or {}
    shown = frame[~frame["measure"].str.startswith("BECEL")]
    n = shown["measure"].nunique()
    fig, axes = plt.subplots(1, n, figsize=(3.0 * n, 2.8), sharey=True)
    for ax, (measure, part) in zip(np.atleast_1d(axes), shown.groupby("measure", sort=False)):
        y = np.arange(len(part))
        ax.errorbar(part["difference"], y, xerr=[part["difference"] - part["low"], part["high"] - part["difference"]],
                    fmt="o", color="0.2", ecolor="0.5", capsize=3)
        ax.axvline(0, color="crimson", lw=1)
        ax.set(title=measure, yticks=y, yticklabels=[f"{labels.get(m, m)} − {labels.get(b, b)}"
                                                     for m, b in zip(part["model"], part["minus"])])
        ax.title.set_fontsize(9)
    fig.suptitle(title, fontsize=10, fontweight="bold")
    fig.tight_layout()
    return fig


def count_verdicts(frame: pd.DataFrame, measure: str) -> tuple[int, int, int]:
    """For one measure of :func:`contrasts`: how many differences have an interval above 0, below 0
    (:func:`ifhelpers.stats.verdict` "yes" / "no"), and how many there are."""
    words = [stats.verdict(d, lo, hi) for d, lo, hi in frame.loc[frame["measure"] == measure,
                                                                  ["difference", "low", "high"]].to_numpy()]
    return words.count("yes"), words.count("no"), len(words)


def h1_sentence(frame: pd.DataFrame) -> str:
    """H1 in words, from the intervals of :func:`h1_contrasts` (never from a point estimate alone):
    restricted and plain ParaRel consistency and the cosine gap, each with its interval and what it
    says; a sentence saying it was not run when ``frame`` is empty."""
    if frame.empty:
        return "not run (the mixtures parameter lacks one of the two T0 variants)"
    parts = []
    for measure in ("ParaRel consistency (restricted)", "ParaRel consistency", "ParaRel cosine gap"):
        row = frame[frame["measure"] == measure].iloc[0]
        where = {"yes": "above 0: supports H1", "no": "below 0: against H1"}.get(
            stats.verdict(row["difference"], row["low"], row["high"]), "includes 0: no evidence either way")
        scale = "" if "gap" in measure else " points"
        parts.append(f"{measure}: {row['difference']:+.3f}{scale} [{row['low']:.3f}, {row['high']:.3f}], {where}")
    return "; ".join(parts) + "."


def chance_interval(n_questions: int, p: float = 0.25, confidence: float = 0.95) -> tuple[float, float]:
    """Where a model that guesses (accuracy ``p``) lands on ``n_questions`` questions in ``confidence``
    of samples: the binomial quantiles, as percentages."""
    from scipy.stats import binom

    alpha = (1 - confidence) / 2
    return (100 * binom.ppf(alpha, n_questions, p) / n_questions,
            100 * binom.ppf(1 - alpha, n_questions, p) / n_questions)


def spread_difference(frame: pd.DataFrame) -> float:
    """The MMLU spread difference of :func:`h1_contrasts` (points), NaN when it was not computed."""
    if frame.empty:
        return float("nan")
    rows = frame[frame["measure"].str.startswith("MMLU spread")]
    return float(rows["difference"].iloc[0]) if len(rows) else float("nan")


# --------------------------------------------------------------------------------------------------
# Table 7 with three tuned models (§4, App. F)


def table7_inputs(extraction: pd.DataFrame, scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Table 7's two variables: each model's extraction rate per block and layer (averaged over
    its rows) and its ParaRel consistency (mean of :func:`ifhelpers.chapters.predictions.pararel_prompt_scores`),
    for :func:`ifhelpers.chapters.mechanisms.extraction_correlation`."""
    rates = extraction.groupby(["model", "role", "block", "layer"], as_index=False)["rate"].mean()
    consistency = scores.groupby("model")["consistency"].mean()
    return rates, consistency


def table7_layout(correlation: pd.DataFrame) -> pd.DataFrame:
    """Table 7 as the paper prints it: blocks × layers of Pearson r (rounded), the defined cells only;
    where no cell is defined, each block's message instead."""
    defined = correlation[correlation["defined"]]
    if len(defined):
        return defined.pivot_table(index="layer", columns="block", values="r").round(2).T
    return correlation[["block", "message"]].drop_duplicates()


def n_correlated(correlation: pd.DataFrame) -> int:
    """How many tuned models Table 7's correlation runs over (0 without any)."""
    return int(correlation["n_models"].max()) if len(correlation) else 0


def plot_table7(correlation: pd.DataFrame):
    """Pearson r per layer and block over the tuned models (its degrees of freedom in the title);
    None when no cell is defined."""
    import matplotlib.pyplot as plt

    defined = correlation[correlation["defined"]]
    if not len(defined):
        return None
    n = n_correlated(correlation)
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    for block, part in defined.groupby("block"):
        ax.plot(part["layer"], part["r"], marker="o", ms=3, label=block)
    ax.axhline(0, color="0.4", lw=0.8)
    ax.set(xlabel="layer", ylabel="Pearson r over tuned models", ylim=(-1.05, 1.05),
           title=f"Pearson r per layer over {n} tuned models ({max(n - 2, 0)} degree(s) of freedom)")
    ax.legend()
    return fig


# --------------------------------------------------------------------------------------------------
# Headlines


def headline(frame: pd.DataFrame, measure: str, result: str, minus: str, model: str, section: str, paper: str,
             unit: str = "") -> dict:
    """One headline row (:func:`ifhelpers.findings.row`) from the first row of ``measure`` in a
    :func:`contrasts` table: the difference with its interval, and :func:`ifhelpers.stats.verdict`
    against the predicted direction (above 0)."""
    row = frame[frame["measure"] == measure].iloc[0]
    d, lo, hi = row["difference"], row["low"], row["high"]
    return findings.row(section, result, paper, findings.diff_text(d, lo, hi, "+.1f", unit), stats.verdict(d, lo, hi),
                        estimate=d, low=lo, high=hi, base=minus, tuned=model, note=_NOTE)


def headline_rows(versus_base: pd.DataFrame, causal: pd.DataFrame, base: str, name_of: dict[str, str]) -> list[dict]:
    """The chapter's headlines on restricted ParaRel consistency: one row per mixture for H2 (tuned −
    base, against Table 2's direction, §3) and one for H1 (paraphrase-rich − single-template, the
    claim of §1) when ``causal`` (:func:`h1_contrasts`) is not empty."""
    rows = [headline(versus_base[versus_base["model"] == name], HEADLINE_MEASURE,
                     f"tuning {base} on the {kind} mixture raises ParaRel consistency (same family)", base, name,
                     "§3, Table 2 (extension)", "IFT models mostly more consistent (LLaMA pairs)", " pts")
            for kind, name in name_of.items()]
    if len(causal):
        minus, model = (name_of[k] for k in H1_PAIR)
        rows.append(headline(causal, HEADLINE_MEASURE,
                             "paraphrase-rich instruction data make a model more consistent than single-template data",
                             minus, model, "§1 (posited, not tested)", "posited in the paper's introduction", " pts"))
    return rows
