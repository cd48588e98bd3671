"""Instruction-tune it yourself: does paraphrase-rich instruction data cause consistency? (the book's own experiment)

The paper's introduction (§1) posits, without testing it, that instruction data make models
consistent because they verbalise one task in many surface forms (the templates of T0 and Flan).
The chapter tests it as a designed experiment: one base model is LoRA-tuned in several *arms* of the
same size, tasks and settings that differ only in how many templates verbalise each task (1, 2, 4,
all: the dose) plus a free-form arm (:mod:`ifhelpers.train.tuning`), each arm with several training
seeds, and every model goes through the measures of the earlier chapters (ParaRel consistency of
§3, the cosine gap of §2, BECEL of §3 / App. C.2, MMLU of §3 and Table 7's correlation of §4).

* The design is stated before the results (:data:`DESIGN`, :func:`design_table`): the **primary
  outcome** is the slope of restricted ParaRel consistency (points) per doubling of templates per
  task over the T0 arms (:data:`PRIMARY`, :func:`contrast_weights`).
* Intervals resample training seeds within each arm and evaluation units once for all models
  (:func:`ifhelpers.design.hierarchical_bootstrap`); each result carries its minimum detectable
  effect from the run's own variance components (:func:`ifhelpers.design.variance_components`,
  :func:`ifhelpers.design.minimum_detectable_effect`), so "n.s." reads as "no effect larger than X".
* H2 (the paper's observation, Table 2, on one architecture): each arm − the base model.

The chapter's notebook runs the models through the other chapters' code; this module only takes the
tables they computed. Nothing here trains or runs a model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ifhelpers import design, findings, stats
from ifhelpers.model import registry, tuned

__all__ = [
    "SOURCE_LABELS", "LABELS", "DESIGN", "PRIMARY", "SLOPE", "H1", "BASE_ARM", "base_spec", "recipes", "design_frame",
    "design_table", "contamination_table", "dropped_example", "templates_used", "arm_doses", "training_cost",
    "plot_losses", "relation_wide", "gap_wide", "unit_measures", "arm_cubes", "contrast_weights", "dose_response",
    "projected_mde", "binding_constraint", "wall_by_model", "beside", "seed_values", "seed_spread", "plot_dose_response", "forest", "answer_sentence",
    "chance_interval", "table7_inputs", "table7_layout", "n_correlated", "plot_table7", "headlines",
]

#: How the training sources are printed.
SOURCE_LABELS = {"lima": "LIMA", "alpaca": "Alpaca", "t0": "T0"}
#: How the chapter's tables print the data columns named otherwise than they read (a notebook shows a
#: table as ``frame.rename(columns=LABELS)``).
LABELS = {"examples_fit": "examples that fit", "templates_per_task": "templates per task",
          "tokens_per_example": "tokens per example", "tokens_per_s": "tokens/s", "peak_memory_gib": "peak memory (GiB)",
          "seed_share": "seed share"}
#: The primary outcome: one measure, named before the results.
PRIMARY = "ParaRel consistency (restricted)"
#: The primary contrast (a slope over the T0 arms) and the two-point contrast the first version of
#: this chapter tested (all templates − one template).
SLOPE, H1 = "slope per doubling of templates", "templates-all − templates-1"
#: The base model's arm name in the design (it is not trained: one evaluation, no seed).
BASE_ARM = "base"
#: The design, as the chapter states it before any result.
DESIGN = {
    "primary outcome": f"{PRIMARY} (points), its {SLOPE} per task: the OLS slope of the arm means on "
                       "log2(templates per task), over the T0 arms",
    "secondary outcomes": "the same slope and each arm − base on ParaRel consistency (all predictions), ParaRel "
                          "accuracy, the ParaRel cosine gap, BECEL Sem per task, MMLU accuracy; "
                          f"{H1}; Table 7's correlation over every tuned model",
    "unit of resampling": "training seeds within each arm (data draw, template choice, LoRA initialisation, data "
                          "order), then evaluation units once for all models: relations (ParaRel), query sets "
                          "(gap), items (BECEL), questions (MMLU)",
    "test": "two-sided, alpha 0.05: an effect is reliable when its 95% interval excludes 0",
    "minimum detectable effect": "(z_0.975 + z_0.8) x SE = 2.80 x SE, 80% power at alpha 0.05; SE from the "
                                 "run's variance components (seed, arm x unit, residual)",
}
_NOTE = "same base model, tuned by this book; seeds and units resampled"


# --------------------------------------------------------------------------------------------------
# The models: one base, one recipe per arm and seed


def base_spec(models, roles: dict[str, str] | None = None):
    """The one base model this chapter tunes (its :class:`~ifhelpers.model.registry.ModelSpec`).

    Raises ValueError, before any model loads or trains, unless ``models`` names exactly one model
    and it is a base model."""
    specs = registry.specs(models, roles)
    if len(specs) != 1 or specs[0].role != "base":
        raise ValueError(f"This chapter tunes one base model: models=[NAME] with a base model; got {list(models)} "
                         f"with roles {[s.role for s in specs]}.")
    return specs[0]


def recipes(base: str, arms, seeds, *, n_examples: int, max_tokens: int = tuned.Recipe.max_tokens,
            epochs: int = tuned.Recipe.epochs, batch_size: int = tuned.Recipe.batch_size,
            learning_rate: float = tuned.Recipe.learning_rate, lora_r: int = tuned.Recipe.lora_r,
            min_templates: int = tuned.Recipe.min_templates) -> dict[tuple[str, int], tuned.Recipe]:
    """One :class:`~ifhelpers.model.tuned.Recipe` per (arm, seed), with the same settings for all
    (``lora_alpha`` = 2 × ``lora_r``; the settings not given are :class:`~ifhelpers.model.tuned.Recipe`'s,
    which are this chapter's defaults). A recipe the registry holds for ``base`` keeps the registry's
    name (e.g. ``gemma-3-270m-ift-free-form``), so it is trained once for every chapter; any other is
    named ``<base>-ift-<arm>-seed<seed>``. The recipes check the arm names."""
    registered = {tuned.recipe_of(registry.get(name)).key: name for name in tuned.registered_names(base)}
    stem = base.rstrip("/").split("/")[-1]
    out = {}
    for arm in arms:
        for seed in seeds:
            recipe = tuned.Recipe(name=f"{stem}-ift-{arm}-seed{seed}", base=base, mixture=arm, n_examples=n_examples,
                                  max_tokens=max_tokens, epochs=epochs, batch_size=batch_size,
                                  learning_rate=learning_rate, lora_r=lora_r, lora_alpha=2 * lora_r, seed=seed,
                                  min_templates=min_templates)
            out[arm, seed] = (tuned.Recipe(**{**recipe.__dict__, "name": registered[recipe.key]})
                              if recipe.key in registered else recipe)
    return out


def design_frame(recipes: dict[tuple[str, int], tuned.Recipe], base: str) -> pd.DataFrame:
    """The experiment's models: ``model``, ``arm``, ``seed``, the base model first (arm :data:`BASE_ARM`)."""
    rows = [{"model": base, "arm": BASE_ARM, "seed": 0}]
    rows += [{"model": r.name, "arm": arm, "seed": seed} for (arm, seed), r in recipes.items()]
    return pd.DataFrame(rows)


def design_table(arms, seeds, sizes: dict) -> pd.DataFrame:
    """The design as stated before the results: :data:`DESIGN`, the arms and seeds, and the sizes
    (``sizes``: name -> value, e.g. examples per arm and ParaRel facts per relation)."""
    rows = dict(DESIGN)
    rows["arms"] = ", ".join(arms)
    rows["seeds per arm"] = f"{len(seeds)} ({', '.join(map(str, seeds))})"
    rows.update({k: str(v) for k, v in sizes.items()})
    return pd.DataFrame({"": list(rows.values())}, index=list(rows))


# --------------------------------------------------------------------------------------------------
# Training data and training


def contamination_table(pool: pd.DataFrame) -> pd.DataFrame:
    """The contamination check by source (:func:`ifhelpers.train.tuning.candidate_pool`'s flags):
    examples that fit (``examples_fit``), and how many state a ParaRel fact, share an 8-gram with MMLU or
    BECEL, or either (``contaminated``); a last row ``all``."""
    source = pool["source"].replace(SOURCE_LABELS)
    check = pool.assign(source=source).groupby("source")[["pararel_fact", "mmlu_ngram", "becel_ngram",
                                                          "contaminated"]].sum()
    check.insert(0, "examples_fit", pool.groupby(source).size())
    check.loc["all"] = check.sum()
    return check


def dropped_example(pool: pd.DataFrame, n_prompt: int = 400, n_response: int = 80) -> str:
    """The first example the check drops for naming a ParaRel fact: its prompt and response, cut."""
    flagged = pool[pool["pararel_fact"]].iloc[0]
    return (flagged["prompt"][:n_prompt] + " ... -> " + flagged["response"][:n_response]).strip()


def templates_used(drawn: dict[tuple[str, int], pd.DataFrame], seed: int) -> list[str]:
    """For the most frequent task of the first T0 arm: which templates each T0 arm of ``seed`` used."""
    t0 = [(arm, s) for arm, s in drawn if arm != "free-form" and s == seed]
    if not t0:
        return []
    task = drawn[t0[0]]["task"].value_counts().index[0]
    lines = []
    for key in t0:
        rows = drawn[key][drawn[key]["task"] == task]
        lines.append(f"{key[0]} (seed {seed}): task {task!r}, templates used: {sorted(rows['template'].unique())}")
    return lines


def arm_doses(drawn: dict[tuple[str, int], pd.DataFrame]) -> dict[str, float]:
    """The dose of every T0 arm: log2 of its mean number of templates per task, averaged over seeds
    (:func:`ifhelpers.train.tuning.templates_dose`); ``templates-all`` gets the number it really drew."""
    from ifhelpers.train.tuning import templates_dose

    by_arm: dict[str, list[float]] = {}
    for (arm, _), frame in drawn.items():
        if arm != "free-form":
            by_arm.setdefault(arm, []).append(templates_dose(frame))
    return {arm: float(np.log2(np.mean(values))) for arm, values in by_arm.items()}


def training_cost(logs: dict[str, dict]) -> pd.DataFrame:
    """One row per tuned model (``logs`` by model name) from its training log
    (:func:`ifhelpers.model.tuned.training_log`): steps, examples, tokens, minutes, ``tokens_per_s``,
    ``peak_memory_gib`` (the peak resident size while it trained), device, threads and whether it resumed."""
    return pd.DataFrame({kind: {"steps": log["steps"], "examples": log["examples"], "tokens": log["tokens"],
                                "minutes": log["seconds"] / 60, "tokens_per_s": log["tokens"] / log["seconds"],
                                "peak_memory_gib": log["peak_rss_gib"], "device": log["device"],
                                "threads": log["torch_threads"], "resumed": bool(log["resumed_from"])}
                         for kind, log in logs.items()}).T


def plot_losses(logs: dict[str, dict], colors: dict[str, str]):
    """The training loss of each tuned model by optimiser step (``logs`` and ``colors`` by the same
    keys; seeds of one arm share a colour); the title gives the mean first and last loss."""
    import matplotlib.pyplot as plt

    losses = pd.concat([pd.DataFrame(log["losses"]).assign(mixture=kind) for kind, log in logs.items()])
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for kind, part in losses.groupby("mixture", sort=False):
        ax.plot(part["step"], part["loss"], marker="o", ms=2, lw=1, label=kind, color=colors[kind])
    first = losses.groupby("mixture")["loss"].first()
    last = losses.groupby("mixture")["loss"].last()
    ax.set(xlabel="optimiser step", ylabel="training loss (response tokens)",
           title=f"Training loss falls from {first.mean():.1f} to {last.mean():.1f} (mean over models)")
    ax.legend(fontsize=7, ncol=2)
    return fig


def wall_by_model(design_frame: pd.DataFrame, seconds: pd.DataFrame, cost: pd.DataFrame) -> pd.DataFrame:
    """Per model: arm, seed, training minutes and peak memory (from :func:`training_cost`, indexed by
    model; the base model is not trained) and evaluation minutes (``seconds``: ``model`` and ``seconds``, the
    wall time of its measurements in this run, :func:`ifhelpers.measure.runner.run`)."""
    out = design_frame.merge(seconds[["model", "seconds"]], on="model", how="left")
    out["evaluation_min"] = out.pop("seconds") / 60
    out["training_min"] = out["model"].map(cost["minutes"]).astype(float)
    out["peak_memory_gib"] = out["model"].map(cost["peak_memory_gib"]).astype(float)
    return out


# --------------------------------------------------------------------------------------------------
# The measures on their units, and the experiment's statistics


def relation_wide(by_relation: pd.DataFrame, metric: str, names) -> pd.DataFrame:
    """Relations × models of one ParaRel metric (§3), from
    :func:`ifhelpers.chapters.predictions.pararel_by_relation` (already averaged over prompts)."""
    return by_relation.pivot(index="relation", columns="model", values=metric)[list(names)]


def gap_wide(gap_units: pd.DataFrame, names) -> pd.DataFrame:
    """Query sets × models of the ParaRel cosine gap (§2, App. B.1 eq. 3), from
    :func:`ifhelpers.chapters.vector_space.prompt_average`."""
    return gap_units.pivot(index="unit_id", columns="model", values="gap")[list(names)]


def unit_measures(by_relation: pd.DataFrame, by_relation_restricted: pd.DataFrame, gap_units: pd.DataFrame,
                  becel_items: pd.DataFrame, mmlu_questions: pd.DataFrame, names) -> dict[str, pd.DataFrame]:
    """Every measure as units × models: ParaRel consistency, restricted consistency and accuracy per
    relation (×100, points), the cosine gap per query set, BECEL Sem per item of each task (×100,
    from :func:`ifhelpers.chapters.becel.item_scores`) and MMLU accuracy per question (×100, from
    :func:`ifhelpers.chapters.predictions.mmlu_by_question`)."""
    names = list(names)
    out = {
        PRIMARY: relation_wide(by_relation_restricted, "consistency", names) * 100,
        "ParaRel consistency": relation_wide(by_relation, "consistency", names) * 100,
        "ParaRel accuracy": relation_wide(by_relation, "accuracy", names) * 100,
        "ParaRel cosine gap": gap_wide(gap_units, names),
    }
    sem = becel_items[becel_items["metric"] == "semantic"]
    for task, part in sem.groupby("task", sort=False):
        out[f"BECEL Sem ({task})"] = part.pivot_table(index="row", columns="model", values="score")[names] * 100
    out["MMLU accuracy"] = mmlu_questions.pivot(index="question_id", columns="model", values="accuracy")[names] * 100
    return out


def arm_cubes(wide: pd.DataFrame, design_frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """One measure's units × models as {arm: (seeds, units)} for :mod:`ifhelpers.design`, seeds in
    ``design_frame`` order; units that any model did not score (NaN) are dropped for every arm."""
    wide = wide[design_frame["model"].tolist()].dropna()
    return {arm: wide[part["model"].tolist()].to_numpy().T for arm, part in design_frame.groupby("arm", sort=False)}


def contrast_weights(doses: dict[str, float], arms) -> dict[str, dict[str, float]]:
    """The contrasts of the chapter as weights on arm means: :data:`SLOPE` (over the T0 arms of
    ``doses``, with two distinct doses or more), :data:`H1` (when both arms ran) and each arm − base."""
    out = {}
    if len(set(doses.values())) >= 2:
        out[SLOPE] = design.slope_weights(doses)
    if {"templates-all", "templates-1"} <= set(arms):
        out[H1] = {"templates-all": 1.0, "templates-1": -1.0}
    for arm in arms:
        out[f"{arm} − base"] = {arm: 1.0, BASE_ARM: -1.0}
    return out


def dose_response(measures: dict[str, pd.DataFrame], design_frame: pd.DataFrame, weights: dict[str, dict],
                  n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Every contrast of ``weights`` on every measure: the estimate with its two-stage bootstrap 95%
    interval (:func:`ifhelpers.design.hierarchical_bootstrap`), the standard error from the run's
    variance components and the minimum detectable effect at 80% power (NaN with one seed per arm),
    the verdict against the predicted direction (above 0; :func:`ifhelpers.stats.verdict`), seeds per
    arm and units. Rows: ``measure``, ``contrast``, ``estimate``, ``low``, ``high``, ``se``, ``mde``,
    ``verdict``, ``n_seeds``, ``n_units``."""
    rows = []
    fixed = (BASE_ARM,)
    for measure, wide in measures.items():
        cubes = arm_cubes(wide, design_frame)
        trained = {arm: c for arm, c in cubes.items() if arm != BASE_ARM}
        components = design.variance_components(trained)
        n_seeds = min(len(c) for c in trained.values())
        n_units = next(iter(cubes.values())).shape[1]
        for name, w in weights.items():
            result = design.hierarchical_bootstrap(cubes, w, n_resamples=n_resamples, seed=seed)
            se = design.contrast_se(components, w, n_seeds, n_units, fixed=fixed)
            rows.append({"measure": measure, "contrast": name, "estimate": result["estimate"], "low": result["low"],
                         "high": result["high"], "se": se, "mde": design.minimum_detectable_effect(se),
                         "verdict": stats.verdict(result["estimate"], result["low"], result["high"]),
                         "n_seeds": n_seeds, "n_units": n_units})
    return pd.DataFrame(rows)


def projected_mde(wide: pd.DataFrame, design_frame: pd.DataFrame, weights: dict[str, float], seeds=(2, 3, 4, 6),
                  unit_factors=(1, 2)) -> pd.DataFrame:
    """The minimum detectable effect of one contrast in larger designs, from this run (the pilot):
    its variance components (:func:`ifhelpers.design.variance_components`) with ``seeds`` seeds per arm
    and the units × each of ``unit_factors``. More facts per relation shrink the arm × unit and residual
    components too, which this projection leaves as they are (so it is conservative for them).
    Rows: ``n_seeds``, ``n_units``, ``se``, ``mde``, and the share of the variance that is seed noise
    (``seed_share``; no rows without ``weights``: the arms give no such contrast)."""
    if not weights:
        return pd.DataFrame(columns=["n_seeds", "n_units", "se", "mde", "seed_share"])
    cubes = {arm: c for arm, c in arm_cubes(wide, design_frame).items() if arm != BASE_ARM}
    components = design.variance_components(cubes)
    n_units = next(iter(cubes.values())).shape[1]
    rows = []
    for factor in unit_factors:
        for n in seeds:
            se = design.contrast_se(components, weights, n, n_units * factor, fixed=(BASE_ARM,))
            seed_part = design.contrast_se({**components, "arm_unit": 0.0, "residual": 0.0, "unit": 0.0}, weights, n,
                                           n_units * factor, fixed=(BASE_ARM,))
            rows.append({"n_seeds": n, "n_units": n_units * factor, "se": se,
                         "mde": design.minimum_detectable_effect(se), "seed_share": seed_part ** 2 / se ** 2
                         if se > 0 else np.nan})
    return pd.DataFrame(rows)


def binding_constraint(projection: pd.DataFrame, n_seeds: int, n_units: int) -> str:
    """Which noise limits the design (n_seeds, n_units), from :func:`projected_mde`: seeds when more than
    half the contrast's variance is seed noise, evaluation otherwise; a sentence with the share."""
    rows = projection[(projection["n_seeds"] == n_seeds) & (projection["n_units"] == n_units)]
    if rows.empty or not np.isfinite(rows["seed_share"].iloc[0]):
        return "not estimable (one seed per arm cannot separate seed noise from the arms' effects)"
    share = float(rows["seed_share"].iloc[0])
    which = ("training seeds are the binding constraint: more seeds per arm shrink the MDE more than more "
             "facts per relation" if share > 0.5 else
             "evaluation noise is the binding constraint: more facts per relation shrink the MDE more than more seeds")
    return f"{100 * share:.0f}% of the slope's variance is seed noise, so {which}"


def seed_values(measures: dict[str, pd.DataFrame], design_frame: pd.DataFrame) -> pd.DataFrame:
    """Each model's mean over units of every measure, with its arm and seed (the seed-to-seed spread)."""
    rows = []
    for measure, wide in measures.items():
        wide = wide[design_frame["model"].tolist()].dropna()
        for row in design_frame.itertuples():
            rows.append({"measure": measure, "model": row.model, "arm": row.arm, "seed": row.seed,
                         "value": float(wide[row.model].mean())})
    return pd.DataFrame(rows)


def seed_spread(values: pd.DataFrame, measure: str = PRIMARY) -> pd.DataFrame:
    """Per trained arm on ``measure``: the mean over seeds, the seeds' standard deviation, min and max."""
    part = values[(values["measure"] == measure) & (values["arm"] != BASE_ARM)]
    return part.groupby("arm", sort=False)["value"].agg(mean="mean", sd="std", min="min", max="max", seeds="size")


def plot_dose_response(values: pd.DataFrame, doses: dict[str, float], result: pd.DataFrame, measure: str = PRIMARY):
    """The primary figure: ``measure`` of every tuned model against its arm's templates per task
    (log2 axis), one dot per seed, the arm means, the fitted slope (its interval and MDE in the
    title, from :func:`dose_response`), and the base model and the free-form arm as horizontal lines."""
    import matplotlib.pyplot as plt

    part = values[values["measure"] == measure]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    t0 = part[part["arm"].isin(doses)]
    x = t0["arm"].map(doses)
    ax.scatter(2 ** x, t0["value"], color="0.55", s=14, label="one seed", zorder=3)
    means = t0.groupby("arm")["value"].mean()
    xs = np.array([doses[a] for a in means.index])
    ax.plot(2 ** xs, means.to_numpy(), "o", color="black", ms=7, label="arm mean", zorder=4)
    row = result[(result["measure"] == measure) & (result["contrast"] == SLOPE)]
    if len(row):
        r = row.iloc[0]
        grid = np.linspace(xs.min(), xs.max(), 20)
        ax.plot(2 ** grid, means.mean() + r["estimate"] * (grid - xs.mean()), color="crimson", lw=1.5,
                label="OLS slope")
        ax.set_title(f"Slope {r['estimate']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}] points per doubling "
                     f"(MDE {r['mde']:.2f})", fontsize=10)
    for arm, style in ((BASE_ARM, ":"), ("free-form", "--")):
        level = part.loc[part["arm"] == arm, "value"]
        if len(level):
            ax.axhline(level.mean(), color="0.3", ls=style, lw=1, label=f"{arm} (mean)")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="templates per task (log scale)", ylabel=measure if "gap" in measure else f"{measure} (points)")
    ax.legend(fontsize=7)
    return fig


def forest(result: pd.DataFrame, measures, title: str):
    """One panel per measure: every contrast of :func:`dose_response` with its interval, 0 marked,
    and ± the MDE as a shaded band (effects inside it are too small for this design to see)."""
    import matplotlib.pyplot as plt

    shown = result[result["measure"].isin(measures)]
    n = shown["measure"].nunique()
    fig, axes = plt.subplots(1, n, figsize=(3.1 * n, 0.45 * shown["contrast"].nunique() + 1.4), sharey=True)
    for ax, (measure, part) in zip(np.atleast_1d(axes), shown.groupby("measure", sort=False)):
        y = np.arange(len(part))[::-1]
        for yi, (mde, color) in zip(y, zip(part["mde"], ["0.9"] * len(part))):
            if np.isfinite(mde):
                ax.fill_betweenx([yi - 0.3, yi + 0.3], -mde, mde, color=color, lw=0)
        ax.errorbar(part["estimate"], y, xerr=[part["estimate"] - part["low"], part["high"] - part["estimate"]],
                    fmt="o", color="0.15", ecolor="0.45", capsize=3)
        ax.axvline(0, color="crimson", lw=1)
        ax.set(title=measure, yticks=y, yticklabels=part["contrast"])
        ax.title.set_fontsize(9)
    fig.suptitle(title, fontsize=10, fontweight="bold")
    fig.tight_layout()
    return fig


def beside(book: pd.DataFrame, full: pd.DataFrame, measures=(PRIMARY, "ParaRel consistency", "ParaRel cosine gap"),
           ) -> pd.DataFrame:
    """Two runs' :func:`dose_response` tables side by side, as text (``estimate [low, high] (MDE m)``),
    for ``measures``: rows (measure, contrast), columns ``book-size run`` and ``full run``, with the
    seeds and units of each."""
    def cells(frame):
        part = frame[frame["measure"].isin(measures)].set_index(["measure", "contrast"])
        return pd.DataFrame({"text": [f"{r.estimate:+.2f} [{r.low:+.2f}, {r.high:+.2f}] (MDE {r.mde:.2f})"
                                      for r in part.itertuples()],
                             "design": [f"{r.n_seeds} seeds x {r.n_units} units" for r in part.itertuples()]},
                            index=part.index)
    a, b = cells(book), cells(full)
    return pd.concat({"book-size run": a["text"], "book-size design": a["design"], "full run": b["text"],
                      "full design": b["design"]}, axis=1)


def answer_sentence(result: pd.DataFrame, measure: str = PRIMARY, contrast: str = SLOPE) -> str:
    """The answer in words, from the interval and the MDE of one result of :func:`dose_response`."""
    rows = result[(result["measure"] == measure) & (result["contrast"] == contrast)]
    if rows.empty:
        return f"not computed (the arms give no {contrast})"
    r = rows.iloc[0]
    text = f"{measure}, {contrast}: {r['estimate']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}]"
    mde = f"no effect larger than {r['mde']:.2f} (the MDE at 80% power)" if np.isfinite(r["mde"]) else \
        "and with one seed per arm the MDE is not estimable"
    word = {"yes": "above 0: more templates per task make the model more consistent",
            "no": "below 0: more templates per task make the model less consistent"}.get(
        r["verdict"], f"the interval includes 0: {mde}")
    return f"{text}, {word}."


def chance_interval(n_questions: int, p: float = 0.25, confidence: float = 0.95) -> tuple[float, float]:
    """Where a model that guesses (accuracy ``p``) lands on ``n_questions`` questions in ``confidence``
    of samples: the binomial quantiles, as percentages."""
    from scipy.stats import binom

    alpha = (1 - confidence) / 2
    return (100 * binom.ppf(alpha, n_questions, p) / n_questions,
            100 * binom.ppf(1 - alpha, n_questions, p) / n_questions)


# --------------------------------------------------------------------------------------------------
# Table 7 with three tuned models (§4, App. F)


def table7_inputs(extraction: pd.DataFrame, scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Table 7's two variables: each model's extraction rate per block and layer (averaged over
    its rows) and its ParaRel consistency (mean of :func:`ifhelpers.measure.pararel.pararel_prompt_scores`),
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


def headlines(result: pd.DataFrame, base: str, arms, measure: str = PRIMARY) -> list[dict]:
    """The chapter's headlines on ``measure`` (:func:`ifhelpers.findings.row`, with the MDE): H2, one row
    per arm (arm − base, against Table 2's direction, §3), then the primary slope (the claim of §1)."""
    rows = []
    for arm in arms:
        r = result[(result["measure"] == measure) & (result["contrast"] == f"{arm} − base")]
        if len(r):
            r = r.iloc[0]
            rows.append(findings.row("§3, Table 2 (extension)",
                                     f"tuning {base} on the {arm} arm raises ParaRel consistency (same family)",
                                     "IFT models mostly more consistent (LLaMA pairs)",
                                     findings.diff_text(r["estimate"], r["low"], r["high"], "+.1f", " pts"),
                                     r["verdict"], estimate=r["estimate"], low=r["low"], high=r["high"], base=base,
                                     tuned=f"{arm} ({r['n_seeds']} seeds)", note=_NOTE, mde=r["mde"]))
    r = result[(result["measure"] == measure) & (result["contrast"] == SLOPE)]
    if len(r):
        r = r.iloc[0]
        rows.append(findings.row("§1 (posited, not tested)",
                                 "more templates per task in the instruction data make a model more consistent "
                                 "(slope per doubling)", "posited in the paper's introduction",
                                 findings.diff_text(r["estimate"], r["low"], r["high"], "+.2f", " pts"),
                                 r["verdict"], estimate=r["estimate"], low=r["low"], high=r["high"],
                                 base="templates-1", tuned="templates-all", note=_NOTE, mde=r["mde"]))
    return rows
