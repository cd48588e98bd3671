"""Chapter 6, beyond the paper: prompt sensitivity as the field measures it now, on the book's models.

The paper's evidence that instruction tuning lowers prompt sensitivity is an MMLU spread over three
instructions and ParaRel consistency over its paraphrases (§3). Later work measures more, and two lines of
it conclude the other way (FormatSpread: format sensitivity persists after instruction tuning, Sclar et al.
2024; POSIX: instruction tuning does not necessarily reduce it, Chatterjee et al. 2024). This module puts
those measures on the same models and the same cached forward passes:

* **Many prompts.** MMLU under every (instruction, format) of a seeded set (:func:`with_formats`): App. C.1's
  three instructions and three of the book's (:data:`ifhelpers.data.prompts.EXTRA_MMLU_INSTRUCTIONS`),
  crossed with formats of a FormatSpread-style grammar (:mod:`ifhelpers.data.formats`). Per model: the
  distribution of accuracy over prompts (:func:`prompt_distribution`: spread, PromptEval quantiles,
  Mizrahi et al.'s MaxP/AvgP/CPS).
* **Agreement.** Per question (:func:`item_measures`): the consistency rate over prompts, the consistency
  rate over orderings of the options (answers mapped back through each permutation), ProSA's PSS.
* **The wrapper as a perturbation.** The same App. C.1 prompts in every dialogue wrapper a model can take
  (plain text, open-instruct's ``<|user|>``/``<|assistant|>``, the tokenizer's chat template):
  :func:`ifhelpers.measure.mmlu.with_wrappers`, :func:`wrapper_comparison`.
* **Scoring by generation and POSIX.** Each model's short greedy response to App. C.1's format under
  each of a set of instructions (App. C.1's three in the book; :func:`ifhelpers.measure.responses.run_responses`): the option it names (the answer scored by generation instead of the
  letter log-likelihood) and, scored back under the question's other prompts, how much the response's
  likelihood depends on the prompt (:func:`ifhelpers.measure.responses.posix_pairs`, Chatterjee et al. 2024); per question in
  :func:`response_measures`.
* **ParaRel the other ways** (:func:`ifhelpers.measure.pararel.pararel_variants`): the shared ParaRel pass read as ParaRel's probe and
  the first author's later code read it (:func:`ifhelpers.metrics.pararel.pararel_variants`).

Every comparison is tuned − base on the same units (questions, relations), paired, with a bootstrap
interval (:func:`ifhelpers.stats.compare_roles` for per-unit means; :func:`distribution_comparison`
for statistics over prompts, resampling questions). The forward passes are the measure layer's
(:func:`ifhelpers.measure.responses.answers_and_responses`, :func:`ifhelpers.measure.mmlu.answers_in_wrappers`,
:func:`ifhelpers.measure.pararel.variants`), taken by :func:`ifhelpers.measure.runner.run`; this module only
reads their results.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ifhelpers import findings, metrics, stats
from ifhelpers.data import formats, prompts
from ifhelpers.measure import mmlu
from ifhelpers.measure.mmlu import WRAPPERS
from ifhelpers.measure.responses import RESPONSE_TOKENS
from ifhelpers.model.registry import ModelSpec

#: Direction of each per-question measure that the paper's claim predicts for tuned − base
#: (+1: tuned higher; -1: tuned lower), and how the book names it.
ITEM_MEASURES = {
    "accuracy": (+1, "MMLU accuracy over prompts"),
    "prompt_consistency": (+1, "consistency rate across prompts"),
    "order_consistency": (+1, "consistency rate across option orders"),
    "pss": (-1, "ProSA PSS (lower: less sensitive)"),
    "instruction_consistency": (+1, "consistency rate across instructions, letter log-likelihood"),
    "generated_consistency": (+1, "consistency rate across instructions, generated answers"),
    "generated_accuracy": (+1, "MMLU accuracy, generated answers"),
    "answered": (0, "share of responses that name an option"),
    "posix": (-1, "POSIX (lower: less sensitive)"),
    "posix_released_code": (-1, "POSIX as the authors' released code computes it (lower: less sensitive)"),
}
#: Statistics of the distribution of accuracy over prompts (:func:`prompt_distribution`), and the
#: paper's direction for tuned − base (the spread is Table 2's claim; the paper claims nothing of the others).
DISTRIBUTION_MEASURES = {
    "spread": (-1, "spread over prompts (max − min)"),
    "q05": (+1, "5th percentile over prompts"),
    "median": (+1, "median over prompts"),
    "q95": (+1, "95th percentile over prompts"),
    "MaxP": (+1, "MaxP"),
    "AvgP": (+1, "AvgP"),
    "CPS": (+1, "CPS"),
}


# --------------------------------------------------------------------------------------------------
# The models


def base_model(specs: Sequence[ModelSpec], tuned_arms) -> str | None:
    """The base model that chapter 5's arms are tuned from (the first base model of ``specs``), or None
    without ``tuned_arms``; a clear error when arms are asked for and no base model is given."""
    if not tuned_arms:
        return None
    bases = [s.name for s in specs if s.role == "base"]
    if not bases:
        raise ValueError(f"tuned_arms={list(tuned_arms)} needs a base model among the models to tune from; "
                         f"got {[s.name for s in specs]} (or set tuned_arms=None).")
    return bases[0]


def pair_kinds(specs: Sequence[ModelSpec]) -> dict[tuple[str, str], str]:
    """For every (base, tuned) pair of ``specs``: "same family" or "different families"."""
    family = {s.name: s.family for s in specs}
    return {(b.name, t.name): "same family" if family[b.name] == family[t.name] else "different families"
            for b in specs if b.role == "base" for t in specs if t.role == "instruction-tuned"}


def pararel_passes(models: Sequence[str], tuned_models: Sequence[str], base: str | None, n_models: int,
                   n_tuned: int) -> dict[str, list[int]]:
    """The ParaRel passes each model is read from, as facts per relation: ``n_models`` for the models given
    (the predictions chapter's pass), ``n_tuned`` for chapter 5's tuned models and their ``base`` (chapter
    5's pass), so that every pass is one the earlier chapters already computed and every comparison pairs
    models on the same queries."""
    out = {name: [n_models] for name in models}
    for name in [*([base] if base else []), *tuned_models]:
        out[name] = sorted({*out.get(name, []), n_tuned})
    return out


# --------------------------------------------------------------------------------------------------
# The prompts


def split_instructions(instruction_ids: Sequence[int]) -> tuple[list[int], list[int]]:
    """``instruction_ids`` as (App. C.1's, the book's): App. C.1's are asked under every ordering of the
    options (the predictions chapter's setups), the book's in the original order only. At least one of
    App. C.1's is needed (the consistency rate across orderings is read from them)."""
    paper_ids = [i for i in instruction_ids if i < len(prompts.MMLU_INSTRUCTIONS)]
    if not paper_ids:
        raise ValueError(f"instruction_ids={list(instruction_ids)} needs at least one of App. C.1's instructions "
                         f"(0, 1, 2): the orderings of the options are asked under them.")
    return paper_ids, [i for i in instruction_ids if i not in paper_ids]


def with_formats(setups: pd.DataFrame, n_formats: int, seed: int = 0) -> pd.DataFrame:
    """The MMLU setups of :func:`ifhelpers.measure.mmlu.mmlu_setups` (App. C.1's format, every
    ordering; with the predictions chapter's questions, seed and orderings they are its prompts, served from
    the cache) and, in the original option order, every other format of
    :func:`ifhelpers.data.formats.sample_formats`: every (instruction, format) is one prompt.

    Adds ``format_id`` (0: App. C.1's), ``layout`` (the :class:`~ifhelpers.data.formats.MMLUFormat`) and
    ``prompt_id`` (one id per (instruction, format)); ``attrs["formats"]`` lists the formats.
    """
    layouts = formats.sample_formats(n_formats, seed)
    original = setups[setups["shuffle"] == 0]
    out = pd.concat([setups.assign(format_id=0), *(original.assign(format_id=k) for k in range(1, len(layouts)))],
                    ignore_index=True)
    out["layout"] = [layouts[k] for k in out["format_id"]]
    instructions = list(dict.fromkeys(setups["instruction"]))
    prompt_ids = {key: i for i, key in enumerate((i, k) for i in instructions for k in range(len(layouts)))}
    out["prompt_id"] = [prompt_ids[(i, k)] for i, k in zip(out["instruction"], out["format_id"])]
    out.attrs["formats"] = layouts
    return out


def mmlu_prompts(questions: pd.DataFrame, instruction_ids: Sequence[int], n_orderings: int, n_formats: int,
                 seed: int = 0) -> pd.DataFrame:
    """The chapter's MMLU prompts: App. C.1's instructions of ``instruction_ids`` under ``n_orderings`` orderings
    of the options and the book's in the original order (:func:`split_instructions`,
    :func:`ifhelpers.measure.mmlu.mmlu_setups`), each in ``n_formats`` formats (:func:`with_formats`)."""
    paper_ids, own_ids = split_instructions(instruction_ids)
    asked = [mmlu.mmlu_setups(questions, n_orderings, paper_ids, seed=seed),
             *([mmlu.mmlu_setups(questions, 1, own_ids, seed=seed)] if own_ids else [])]
    return with_formats(pd.concat(asked), n_formats, seed)


def prompt_table(setups: pd.DataFrame) -> pd.DataFrame:
    """The prompts of :func:`with_formats`, one row each: instruction (its text, with "{subject}"),
    whose instruction it is, and the format written out (:func:`ifhelpers.data.formats.format_table`)."""
    layouts = formats.format_table(setups.attrs["formats"])
    rows = setups[["prompt_id", "instruction", "format_id"]].drop_duplicates().sort_values("prompt_id")
    rows["instruction_text"] = [prompts.mmlu_instruction("{subject}", i) for i in rows["instruction"]]
    rows["from"] = ["App. C.1" if i < len(prompts.MMLU_INSTRUCTIONS) else "this book" for i in rows["instruction"]]
    return rows.join(layouts, on="format_id").set_index("prompt_id")


# --------------------------------------------------------------------------------------------------
# What the model does under them


def _by_question(results: pd.DataFrame, values: str, over: str) -> pd.DataFrame:
    """``values`` of one model's results as a (questions × ``over``) table: one row per question, one column
    per prompt (or ordering, instruction), sorted; what the per-question measures read."""
    return results.pivot_table(index="question_id", columns=over, values=values, aggfunc="first")


def _original_choice(results: pd.DataFrame) -> np.ndarray:
    return metrics.multiprompt.original_option(results["prediction_index"], np.stack(results["permutation"].to_numpy()))


def correctness_matrix(results: pd.DataFrame) -> tuple[np.ndarray, list, list]:
    """One model's 0/1 correctness in the original option order as ``(questions, prompts)``, with the
    question ids and prompt ids of its axes (sorted); every question needs every prompt."""
    part = results[results["shuffle"] == 0]
    table = _by_question(part, "correct", "prompt_id")
    if table.isna().any().any():
        raise ValueError("every question needs a result under every prompt")
    return table.to_numpy(dtype=float), list(table.index), list(table.columns)


def distribution_statistics(matrix) -> dict[str, np.ndarray | float]:
    """The statistics of :data:`DISTRIBUTION_MEASURES` from a ``(..., questions, prompts)`` 0/1 array
    (leading axes kept: bootstrap resamples): each prompt's accuracy over the questions, then the spread
    (:func:`ifhelpers.metrics.mmlu.mmlu_spread`, the prompts in the role of Table 2's instructions), the
    PromptEval quantiles and MaxP / AvgP / CPS (:mod:`ifhelpers.metrics.multiprompt`)."""
    arr = np.asarray(matrix, dtype=float)
    accuracy = arr.mean(axis=-2)
    q = metrics.multiprompt.prompt_quantiles(accuracy)
    spread = metrics.mmlu.mmlu_spread(arr[..., :, None, :])
    return {"spread": spread if np.ndim(spread) else float(spread), "q05": q[0.05], "median": q[0.5],
            "q95": q[0.95], **metrics.multiprompt.max_avg_combined(accuracy)}


def prompt_distribution(results: pd.DataFrame) -> pd.DataFrame:
    """Per model, the distribution of accuracy over the prompts in the original option order
    (:func:`distribution_statistics`), with ``n_prompts`` and ``n_questions``. Fractions."""
    rows = []
    for (model, role), part in results.groupby(["model", "role"], sort=False):
        matrix, questions, prompt_ids = correctness_matrix(part)
        rows.append({"model": model, "role": role, "n_prompts": len(prompt_ids), "n_questions": len(questions),
                     **distribution_statistics(matrix)})
    return pd.DataFrame(rows).set_index("model")


def item_measures(results: pd.DataFrame) -> pd.DataFrame:
    """Per (model, question), tidy: ``accuracy`` over the prompts (original order), ``prompt_consistency``
    (:func:`ifhelpers.metrics.multiprompt.consistency_rate` of the chosen option over the prompts),
    ``pss`` (:func:`ifhelpers.metrics.multiprompt.prompt_sensitivity_score` of correctness over the prompts)
    and ``order_consistency`` (the consistency rate over the orderings of App. C.1's format, the chosen
    option mapped back through each permutation, averaged over the instructions asked in several orderings). Columns ``model``,
    ``role``, ``question_id``, ``measure``, ``value``."""
    rows = []
    for (model, role), part in results.groupby(["model", "role"], sort=False):
        part = part.assign(choice=_original_choice(part))
        first = part[part["shuffle"] == 0]
        choice = _by_question(first, "choice", "prompt_id")
        correct, questions, _ = correctness_matrix(part)
        ordered = part[part["format_id"] == 0]
        by_order = {i: _by_question(g, "choice", "shuffle")
                    for i, g in ordered.groupby("instruction") if g["shuffle"].nunique() >= 2}
        values = {"accuracy": correct.mean(axis=1),
                  "prompt_consistency": metrics.multiprompt.consistency_rate(choice.loc[questions].to_numpy()),
                  "pss": metrics.multiprompt.prompt_sensitivity_score(correct)}
        if by_order:
            values["order_consistency"] = np.mean(
                [metrics.multiprompt.consistency_rate(t.loc[questions].to_numpy()) for t in by_order.values()], axis=0)
        for measure, array in values.items():
            rows.append(pd.DataFrame({"model": model, "role": role, "question_id": questions, "measure": measure,
                                      "value": array}))
    return pd.concat(rows, ignore_index=True)


def item_summary(items: pd.DataFrame) -> pd.DataFrame:
    """Each model's mean of every per-question measure (:func:`item_measures`): models × measures (NaN where a
    measure is not defined for a model, e.g. POSIX when none of its responses could be scored)."""
    return items.pivot_table(index="model", columns="measure", values="value", aggfunc="mean", sort=False,
                             dropna=False)


def item_comparison(items: pd.DataFrame, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """tuned − base of every per-question measure for every (base, tuned) pair, paired over questions
    (:func:`ifhelpers.stats.compare_roles`), with the paper's direction and :func:`ifhelpers.stats.verdict`."""
    out = stats.compare_roles(items, "value", "question_id", by="measure", n_resamples=n_resamples, seed=seed)
    out["paper_sign"] = out["measure"].map(lambda m: ITEM_MEASURES[m][0])
    out["direction_holds"] = [stats.verdict(d, lo, hi, s) for d, lo, hi, s in
                              zip(out["mean_diff"], out["diff_low"], out["diff_high"], out["paper_sign"])]
    return out


def distribution_comparison(results: pd.DataFrame, base: str, tuned: str, n_resamples: int = 2000,
                            seed: int = 0) -> pd.DataFrame:
    """tuned − base of every statistic of :func:`distribution_statistics`, with a percentile bootstrap
    interval that resamples questions (the same draw for both models: paired), for statistics over prompts
    (a max, a quantile) that have no per-question value. One row per statistic."""
    b, b_questions, b_prompts = correctness_matrix(results[results["model"] == base])
    t, t_questions, t_prompts = correctness_matrix(results[results["model"] == tuned])
    if b_questions != t_questions or b_prompts != t_prompts:
        raise ValueError(f"{base} and {tuned} must answer the same questions under the same prompts")
    units = np.stack([b, t], axis=1)  # (questions, 2, prompts)

    def differences(draws):  # (k, questions, 2, prompts)
        base_stats = distribution_statistics(draws[:, :, 0, :])
        tuned_stats = distribution_statistics(draws[:, :, 1, :])
        return np.stack([tuned_stats[m] - base_stats[m] for m in DISTRIBUTION_MEASURES], axis=1)

    draws = stats.resample_statistic(units, differences, n_resamples=n_resamples, seed=seed)
    point_b, point_t = distribution_statistics(b), distribution_statistics(t)
    rows = []
    for k, (measure, (sign, label)) in enumerate(DISTRIBUTION_MEASURES.items()):
        diff = point_t[measure] - point_b[measure]
        low, high = stats.percentile_interval(draws[:, k])
        rows.append({"measure": measure, "label": label, "base": base, "tuned": tuned, "base_value": point_b[measure],
                     "tuned_value": point_t[measure], "mean_diff": diff, "diff_low": low, "diff_high": high,
                     "paper_sign": sign, "direction_holds": stats.verdict(diff, low, high, sign)})
    return pd.DataFrame(rows)


def wrapper_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per (model, wrapper): accuracy, the spread over App. C.1's instructions and the consistency rate of the
    chosen option over them (per question, then the mean). Fractions."""
    consistency = wrapper_items(results).groupby(["model", "wrapper"], sort=False)["value"].mean()
    rows = []
    for (model, role, wrapper), part in results.groupby(["model", "role", "prompt_format"], sort=False):
        cube, _, _, _ = metrics.mmlu.mmlu_cube(part)
        rows.append({"model": model, "role": role, "wrapper": wrapper, "accuracy": float(cube.mean()),
                     "spread": float(metrics.mmlu.mmlu_spread(cube)),
                     "consistency_rate": float(consistency[model, wrapper]),
                     "letter_mass": float(part["letter_mass"].mean())})
    return pd.DataFrame(rows)


def wrapper_items(results: pd.DataFrame) -> pd.DataFrame:
    """Per (model, wrapper, question), tidy: the consistency rate of the chosen option over App. C.1's
    instructions (``value``), the unit of :func:`wrapper_comparison`."""
    rows = []
    for (model, role, wrapper), part in results.groupby(["model", "role", "prompt_format"], sort=False):
        choice = _by_question(part, "prediction_index", "instruction")
        rows.append(pd.DataFrame({"model": model, "role": role, "wrapper": wrapper, "question_id": choice.index,
                                  "value": metrics.multiprompt.consistency_rate(choice.to_numpy())}))
    return pd.concat(rows, ignore_index=True)


def wrapper_comparison(items: pd.DataFrame, own_wrapper: dict[str, str], n_resamples: int = 2000,
                       seed: int = 0) -> pd.DataFrame:
    """tuned − base consistency rate over instructions under each *evaluator's choice* of wrappers, paired
    over questions: the paper's choice (each model in its own wrapper: plain for the base model, the tuned
    model's dialogue format), and both models in the same wrapper (each of :data:`ifhelpers.measure.mmlu.WRAPPERS` both can take).
    ``own_wrapper`` maps each model to its own wrapper. One row per (choice, base, tuned)."""
    rows = []
    models = items[["model", "role"]].drop_duplicates()
    bases = models.loc[models["role"] == "base", "model"]
    tuned_models = models.loc[models["role"] == "instruction-tuned", "model"]
    for base in bases:
        for tuned in tuned_models:
            choices = {"each in its own (the paper's)": (own_wrapper[base], own_wrapper[tuned])}
            for w in WRAPPERS:
                if ((items["model"] == base) & (items["wrapper"] == w)).any() and                         ((items["model"] == tuned) & (items["wrapper"] == w)).any():
                    choices[f"both {w}"] = (w, w)
            for choice, (wb, wt) in choices.items():
                b = items[(items["model"] == base) & (items["wrapper"] == wb)].set_index("question_id")["value"]
                t = items[(items["model"] == tuned) & (items["wrapper"] == wt)].set_index("question_id")["value"]
                p = stats.paired_comparison(b, t, n_resamples=n_resamples, seed=seed)
                rows.append({"choice": choice, "base": base, "tuned": tuned, "base_wrapper": wb, "tuned_wrapper": wt,
                             **p.to_dict(), "direction_holds": stats.verdict(p["mean_diff"], p["diff_low"], p["diff_high"])})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# Responses: scoring by generation, and POSIX


def response_measures(responses: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Per (model, question), tidy like :func:`item_measures`, over the prompts of :func:`ifhelpers.measure.responses.response_prompts`:
    the consistency rate of the option chosen by letter log-likelihood (``instruction_consistency``) and of
    the option the response names (``generated_consistency``; a response naming none agrees with nothing),
    the accuracy of the generated answers (``generated_accuracy``), the share of responses that name an
    option (``answered``), POSIX (``posix``, :func:`ifhelpers.metrics.multiprompt.posix` of
    :func:`ifhelpers.measure.responses.posix_pairs`) and, beside it, POSIX as the authors' released code
    computes it (``posix_released_code``, :func:`ifhelpers.metrics.multiprompt.posix_released_code`, over
    :data:`ifhelpers.measure.responses.RESPONSE_TOKENS`)."""
    rows = []
    for (model, role), part in responses.groupby(["model", "role"], sort=False):
        letter = _by_question(part, "prediction_index", "prompt_id")
        said = _by_question(part, "generated_index", "prompt_id")
        questions = list(letter.index)
        mine = pairs[pairs["model"] == model]
        values = {"instruction_consistency": metrics.multiprompt.consistency_rate(letter.to_numpy()),
                  "generated_consistency": metrics.multiprompt.consistency_rate(said.loc[questions].to_numpy()),
                  "generated_accuracy": part.groupby("question_id")["generated_correct"].mean().loc[questions].to_numpy(),
                  "answered": (said.loc[questions] >= 0).mean(axis=1).to_numpy(),
                  "posix": metrics.multiprompt.posix(_pair_cube(mine, "mean_logprob", questions, list(letter.columns))),
                  "posix_released_code": metrics.multiprompt.posix_released_code(
                      _pair_cube(mine, "logprob", questions, list(letter.columns)), RESPONSE_TOKENS)}
        for measure, array in values.items():
            rows.append(pd.DataFrame({"model": model, "role": role, "question_id": questions, "measure": measure,
                                      "value": np.asarray(array, dtype=float)}))
    return pd.concat(rows, ignore_index=True)


def _pair_cube(pairs: pd.DataFrame, value: str, questions: list, prompt_ids: list) -> np.ndarray:
    """``value`` of one model's :func:`ifhelpers.measure.responses.posix_pairs` as ``(questions, N, N)``: entry
    ``[q, i, j]`` is the pair (prompt x_i, response y_j) of question q (NaN: not scored)."""
    grid = (pairs.pivot_table(index=["question_id", "prompt_i"], columns="prompt_j", values=value, aggfunc="first",
                              dropna=False)
            .reindex(pd.MultiIndex.from_product([questions, prompt_ids]), columns=prompt_ids))
    return grid.to_numpy().reshape(len(questions), len(prompt_ids), len(prompt_ids))


# --------------------------------------------------------------------------------------------------
# ParaRel, the other ways


def pararel_variant_comparison(variants: pd.DataFrame, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """tuned − base of every ParaRel variant (:func:`ifhelpers.measure.pararel.pararel_variants` with a ``facts_per_relation`` column: the
    pass, :func:`pararel_passes`), each relation's value averaged over the prompts, paired over relations within a
    pass (:func:`ifhelpers.stats.compare_roles`); the paper's direction is +1
    (tuned more consistent) for the consistencies and none for the accuracy and the share of known facts."""
    measures = [c for c in PARAREL_VARIANTS if c in variants]
    tidy = variants.melt(id_vars=["model", "role", "facts_per_relation", "prompt_id", "relation"], value_vars=measures,
                         var_name="measure")
    out = stats.compare_roles(tidy.dropna(subset=["value"]), "value", "relation", by=["facts_per_relation", "measure"],
                              n_resamples=n_resamples, seed=seed)
    out["paper_sign"] = out["measure"].map(lambda m: PARAREL_VARIANTS[m][0])
    out["direction_holds"] = [stats.verdict(d, lo, hi, s) for d, lo, hi, s in
                              zip(out["mean_diff"], out["diff_low"], out["diff_high"], out["paper_sign"])]
    return out


#: The ParaRel variants of :func:`ifhelpers.measure.pararel.pararel_variants`: the paper's direction for tuned − base (0: none) and name.
PARAREL_VARIANTS = {
    "consistency": (+1, "Table 2's reading: pairs pooled per relation (= ParaRel's directed pairs)"),
    "consistency_a_an": (+1, "ParaRel's probe: the same after its a/an filter"),
    "consistency_per_fact": (+1, "per fact, then over facts (mParaRel, Fierro & Søgaard 2022)"),
    "consistent_subjects": (+1, "facts whose every paraphrase agrees (ParaRel)"),
    "known_consistency": (+1, "consistency on known facts (right under some paraphrase)"),
    "unknown_consistency": (+1, "consistency on unknown facts"),
    "all_patterns_accuracy": (0, "accuracy under every paraphrase (ParaRel's group accuracy)"),
    "share_known": (0, "share of facts known under some paraphrase"),
}

#: The claim each headline of this chapter tests, and the later finding that cuts against it.
PAPER_CLAIM = "IFT makes models more robust to semantically equivalent inputs (§3)"
CONTRARY = {
    "prompt_consistency": "FormatSpread (Sclar et al. 2024): format sensitivity persists after instruction tuning",
    "order_consistency": "option-order sensitivity persists in tuned models (Pezeshkpour & Hruschka 2024)",
    "pss": "ProSA (Zhuo et al. 2024): item-level sensitivity does not necessarily fall with tuning",
    "posix": "POSIX (Chatterjee et al. 2024): instruction tuning does not necessarily reduce prompt sensitivity",
    "spread": "FormatSpread (Sclar et al. 2024): the spread persists after instruction tuning",
    "known_consistency": "agreement may be a repeated guess, not knowledge (Elazar et al. 2021 split known facts)",
    "wrapper": "scoring and format are choices of the evaluator; a conclusion should survive them",
    "scoring": "letter log-likelihood scores answers a model would not give (scoring-artifact critiques); "
               "a conclusion should survive scoring by generation",
}


def _points(value: float) -> float:
    return 100 * float(value)


def headlines(items_cmp: pd.DataFrame, distribution_cmp: pd.DataFrame, pararel_cmp: pd.DataFrame,
              wrapper_cmp: pd.DataFrame, kinds: dict, n_prompts: int, n_questions: int,
              n_instructions: int) -> list[dict]:
    """The chapter's headline rows (:func:`ifhelpers.findings.row`), one set per (base, tuned) pair: the
    consistency rates across prompts and option orders, ProSA's PSS, POSIX over the ``n_instructions``
    instructions, the spread over the prompts, ParaRel consistency on known facts, and whether the sign of
    tuned − base of the consistency rate survives the evaluator's choice of wrapper and of scoring method.
    Values in points (POSIX in nats per token × 100); ``kinds`` is :func:`pair_kinds`."""
    rows = []
    for (base, tuned_name), kind in kinds.items():
        def pick(table, measure):
            hit = table[(table["base"] == base) & (table["tuned"] == tuned_name) & (table["measure"] == measure)]
            return None if hit.empty else hit.iloc[0]

        def add(result, contrary, r, values, note, unit="points"):
            d, lo, hi = _points(r["mean_diff"]), _points(r["diff_low"]), _points(r["diff_high"])
            rows.append(findings.row(
                "beyond the paper", f"{result}, tuned − base ({unit})", f"{PAPER_CLAIM}; against: {CONTRARY[contrary]}",
                f"{findings.diff_text(d, lo, hi, '+.1f')} (base {_points(r[values[0]]):.1f}, tuned "
                f"{_points(r[values[1]]):.1f})", r["direction_holds"], estimate=d, low=lo, high=hi, base=base,
                tuned=tuned_name, note=f"{kind}; {note}"))

        for measure, result in (("prompt_consistency", f"MMLU consistency rate across {n_prompts} prompts"),
                                ("order_consistency", "MMLU consistency rate across option orders"),
                                ("pss", f"ProSA PSS across {n_prompts} prompts (lower: less sensitive)")):
            if (r := pick(items_cmp, measure)) is not None:
                add(result, measure, r, ("base_mean", "tuned_mean"),
                    f"{n_questions} questions; paired bootstrap over questions")
        if (r := pick(items_cmp, "posix")) is not None:
            add(f"POSIX across {n_instructions} instructions (lower: less sensitive)", "posix", r,
                ("base_mean", "tuned_mean"), f"{n_questions} questions, greedy responses of {RESPONSE_TOKENS} tokens; "
                "paired bootstrap over questions", unit="nats per token × 100")
        scoring = [pick(items_cmp, m) for m in ("instruction_consistency", "generated_consistency")]
        if all(r is not None for r in scoring):
            cells = "; ".join(f"{how}: {findings.diff_text(_points(r['mean_diff']), _points(r['diff_low']), _points(r['diff_high']), '+.1f')}"
                              for how, r in zip(("letter log-likelihood", "generated answer"), scoring))
            rows.append(findings.row(
                "beyond the paper", f"MMLU consistency rate across {n_instructions} instructions under each scoring "
                "method, tuned − base (points)", f"{PAPER_CLAIM}; against: {CONTRARY['scoring']}", cells,
                findings.combine([r["direction_holds"] for r in scoring]), base=base, tuned=tuned_name,
                note=f"{kind}; {n_questions} questions; one paired bootstrap per scoring; the verdict combines them"))
        if (r := pick(distribution_cmp, "spread")) is not None:
            add(f"MMLU accuracy spread across {n_prompts} prompts", "spread", r, ("base_value", "tuned_value"),
                f"percentile bootstrap over {n_questions} questions, paired", unit="points; lower = more robust")
        if (r := pick(pararel_cmp, "known_consistency")) is not None:
            add("ParaRel consistency on known facts", "known_consistency", r, ("base_mean", "tuned_mean"),
                f"{int(r['n'])} relations with known facts for both; paired bootstrap over relations")
        w = wrapper_cmp[(wrapper_cmp["base"] == base) & (wrapper_cmp["tuned"] == tuned_name)]
        if not w.empty:
            cells = "; ".join(f"{c}: {findings.diff_text(_points(d), _points(lo), _points(hi), '+.1f')}"
                              for c, d, lo, hi in zip(w["choice"], w["mean_diff"], w["diff_low"], w["diff_high"]))
            rows.append(findings.row(
                "beyond the paper", "MMLU consistency rate over App. C.1's instructions under each choice of "
                "wrapper, tuned − base (points)", f"{PAPER_CLAIM}; against: {CONTRARY['wrapper']}", cells,
                findings.combine(list(w["direction_holds"])), base=base, tuned=tuned_name,
                note=f"{kind}; {n_questions} questions; one paired bootstrap per choice; the verdict combines them"))
    return rows


#: Which side a headline's verdict takes (:func:`where_models_side`).
SIDES = {"yes": "the paper", "no": "the contrary finding", "mixed": "each, under a different choice"}


def where_models_side(rows: Sequence[dict]) -> pd.DataFrame:
    """The chapter's headline rows (:func:`headlines`) grouped by the later finding each answers: per
    finding and comparison, the result, our number, the verdict and the side it takes (:data:`SIDES`;
    "neither at this size" when the interval includes 0)."""
    table = pd.DataFrame(list(rows))
    return pd.DataFrame({
        "finding": table["paper"].str.split("; against: ", n=1).str[1],
        "comparison": table["tuned"] + " − " + table["base"],
        "result": table["result"],
        "ours": table["ours"],
        "direction_holds": table["direction_holds"],
        "sides_with": table["direction_holds"].map(SIDES).fillna("neither at this size"),
    }).sort_values(["finding", "comparison"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Figures


def prompt_accuracy(results: pd.DataFrame) -> pd.DataFrame:
    """Each (model, prompt)'s accuracy in the original option order, with its instruction and format."""
    first = results[results["shuffle"] == 0]
    return (first.groupby(["model", "role", "prompt_id", "instruction", "format_id"], sort=False)["correct"].mean()
            .rename("accuracy").reset_index())


def plot_prompt_accuracy(results: pd.DataFrame, colors: dict, ax=None):
    """One dot per prompt and model: accuracy in the original option order (App. C.1's format as a ring),
    the model's median as a bar and chance (25%) as a line; the vertical extent of a model's dots is its spread."""
    import matplotlib.pyplot as plt

    table = prompt_accuracy(results)
    ax = ax or plt.subplots(figsize=(6.4, 3.6))[1]
    models = list(dict.fromkeys(table["model"]))
    rng = np.random.default_rng(0)
    for x, model in enumerate(models):
        part = table[table["model"] == model]
        jitter = rng.uniform(-0.15, 0.15, len(part))
        paper_format = (part["format_id"] == 0).to_numpy()
        ax.scatter(x + jitter[~paper_format], 100 * part["accuracy"][~paper_format], s=18, color=colors.get(model), alpha=0.7)
        ax.scatter(x + jitter[paper_format], 100 * part["accuracy"][paper_format], s=30, facecolors="none",
                   edgecolors=colors.get(model), linewidths=1.5)
        ax.hlines(100 * part["accuracy"].median(), x - 0.3, x + 0.3, color="0.2")
    ax.axhline(25, color="0.6", linestyle=":", linewidth=1)
    ax.set_xticks(range(len(models)), [m.replace("-ift-", "\n-ift-") for m in models], fontsize=8)
    ax.set_ylabel("MMLU accuracy per prompt (%)")
    ax.set_title("Accuracy under every prompt (ring: App. C.1's format; bar: median)", fontsize=10)
    return ax.figure
