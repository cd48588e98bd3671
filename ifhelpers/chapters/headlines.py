"""Headline findings: one row per result of the paper, built from the tables a chapter computed.

Each chapter ends with a cell that passes its own tables to one function of this module and hands
the rows to :func:`ifhelpers.results.save_headlines`; the reproduction summary page
(``notebooks/summary.md``) gathers them. The paper's numbers come from its transcribed tables
(:mod:`ifhelpers.paper`) and fill the ``paper`` column only;
every number in ``ours`` is the chapter's. Pure pandas: nothing here runs a model.

``direction_holds`` compares our tuned − base difference with the paper's direction using the 95%
interval the chapter computed (:func:`verdict`); its words are
:data:`ifhelpers.findings.DIRECTION_VALUES`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ifhelpers import paper as paper_tables
from ifhelpers.findings import NAN, combine, diff_text, row
from ifhelpers.stats import verdict

# --------------------------------------------------------------------------------------------------
# Chapter 1: consistency in vector space (Table 1, Table 4)


def vector_space(comparison: pd.DataFrame, labels: dict[str, str] | None = None,
                 representation: str = "") -> list[dict]:
    """One row per dataset and base/tuned pair of :func:`ifhelpers.chapters.vector_space.compare_roles`:
    the cosine gap, tuned − base, against the paper's Table 1 (and Table 4)."""
    from ifhelpers.chapters import vector_space as vs

    labels = labels or {}
    directions = paper_tables.gap_directions()
    rows = []
    for _, c in comparison.iterrows():
        dataset = c["dataset"]
        pd_rows = directions[directions["dataset"] == dataset]
        parts, singles = [], {True: [], False: []}
        for _, p in pd_rows.iterrows():
            if p["n_tuned"] > 1:
                parts.append(f"{p['family']} {p['base_gap']:.3f}; {p['n_tuned']} tuned "
                             f"{p['tuned_min']:.3f}-{p['tuned_max']:.3f}, {p['n_tuned_above']} larger")
            else:
                singles[bool(p["n_tuned_above"])].append(p["family"])
        parts += [f"{', '.join(f)}: tuned {'larger' if up else 'not larger'} (Table 4)"
                  for up, f in singles.items() if f]
        paper = "; ".join(parts)
        label = labels.get(dataset, vs.DATASET_LABELS.get(dataset, dataset))
        rows.append(row(
            "§2, Table 1", f"cos(paraph.) − cos(¬paraph.), tuned − base: {label}", paper,
            f"{diff_text(c['mean_diff'], c['diff_low'], c['diff_high'])} (base {c['base_gap']:.3f}, "
            f"tuned {c['tuned_gap']:.3f})",
            verdict(c["mean_diff"], c["diff_low"], c["diff_high"]),
            estimate=c["mean_diff"], low=c["diff_low"], high=c["diff_high"], base=c["base"], tuned=c["tuned"],
            note=f"{int(c['n_sets'])} paraphrase sets; paired bootstrap interval; Wilcoxon p = {c['wilcoxon_p']:.2g}"
                 + (f"; representation {representation}" if representation else "")))
    return rows


# --------------------------------------------------------------------------------------------------
# Chapter 2: consistent predictions (Table 2, Table 5: ParaRel and MMLU)


def predictions(pararel_paired: pd.DataFrame, pararel_summary: pd.DataFrame, footnote4: pd.DataFrame,
                mmlu_table: pd.DataFrame, mmlu_paired: pd.Series, base: str, tuned: str, at_chance: bool,
                spread_noise: bool, n_relations: int, n_questions: int) -> list[dict]:
    """ParaRel consistency and accuracy, MMLU accuracy and spread: tuned − base, against Table 2
    (LLaMA) and Table 5 (T5, Falcon). Values in percent / points, as the paper prints them."""

    paper = pd.concat([paper_tables.predictions_table(2), paper_tables.predictions_table(5)], ignore_index=True)
    sd = footnote4.loc[tuned, "threshold"] * 100 if tuned in footnote4.index else NAN
    rows = []
    for metric, column, label in (("consistency", "PARAREL Cons.", "ParaRel consistency"),
                                  ("accuracy", "PARAREL Acc.", "ParaRel accuracy")):
        for (model, m), p in pararel_paired.iterrows():
            if m != metric:
                continue
            d, lo, hi = 100 * p["mean_diff"], 100 * p["diff_low"], 100 * p["diff_high"]
            holds = verdict(d, lo, hi) if metric == "consistency" else "not defined"
            note = f"{n_relations} relations; paired bootstrap over relations; Wilcoxon p = {p['wilcoxon_p']:.2g}"
            if metric == "consistency":
                beyond = "beyond" if abs(d) > sd else "within"
                note += f"; footnote 4's threshold (base sd over prompts) {sd:.1f} points: {beyond} it"
            else:
                note += "; the paper claims no direction for ParaRel accuracy"
            threshold = paper_tables.FINDINGS["base_consistency_sd"] if metric == "consistency" else None
            rows.append(row(
                "§3, Table 2", f"{label}, tuned − base (points)",
                paper_tables.direction_text(paper, column, threshold=threshold),
                f"{diff_text(d, lo, hi, '+.1f')} (base {100 * pararel_summary.loc[base, metric]:.1f}%, "
                f"tuned {100 * pararel_summary.loc[model, metric]:.1f}%)",
                holds, estimate=d, low=lo, high=hi, base=base, tuned=model, note=note))
    d, lo, hi = (100 * mmlu_paired[k] for k in ("mean_diff", "diff_low", "diff_high"))
    chance_note = ("both models at chance: every accuracy interval contains 25%" if at_chance
                   else "not every model at chance")
    rows.append(row(
        "§3, Table 2", "MMLU accuracy, tuned − base (points)", paper_tables.direction_text(paper, "MMLU Acc."),
        f"{diff_text(d, lo, hi, '+.1f')} (base {mmlu_table.loc[base, 'accuracy']:.1f}%, "
        f"tuned {mmlu_table.loc[tuned, 'accuracy']:.1f}%)",
        verdict(d, lo, hi), estimate=d, low=lo, high=hi, base=base, tuned=tuned,
        note=f"{n_questions} questions × 9 setups; paired bootstrap over questions; {chance_note}"))
    b, t = mmlu_table.loc[base], mmlu_table.loc[tuned]
    if at_chance or spread_noise:
        holds = "not testable"
        why = (f"{chance_note}, so a spread is noise" if at_chance else "") + (
            "; " if at_chance and spread_noise else "") + (
            "both spreads within the permutation null (instruction makes no difference)" if spread_noise else "")
    else:
        holds = ("yes" if t["spread_high"] < b["spread_low"] else "no" if t["spread_low"] > b["spread_high"]
                 else "n.s. (same sign)" if t["spread"] < b["spread"] else "n.s. (opposite sign)")
        why = "compared by the two spreads' bootstrap intervals"
    rows.append(row(
        "§3, Table 2", "MMLU accuracy spread across instructions (points; lower = more robust)",
        paper_tables.direction_text(paper, "MMLU Spread", higher=False),
        f"base {b['spread']:.1f} [{b['spread_low']:.1f}, {b['spread_high']:.1f}], tuned {t['spread']:.1f} "
        f"[{t['spread_low']:.1f}, {t['spread_high']:.1f}]; no-effect null {b['null_mean']:.1f} / {t['null_mean']:.1f}",
        holds, estimate=t["spread"] - b["spread"], base=base, tuned=tuned,
        note=f"{why}; permutation p = {b['p_value']:.2f} (base), {t['p_value']:.2f} (tuned)"))
    return rows


# --------------------------------------------------------------------------------------------------
# Chapter 3: BECEL after fine-tuning (Table 2's BECEL columns, Table 6)


def becel_task_average_difference(predictions: pd.DataFrame, base: str, tuned: str, metric: str,
                                  n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> dict:
    """Table 2's BECEL number (mean over tasks of the per-task mean, ×100), tuned − base, with a paired
    percentile bootstrap that resamples the items of each task (both models score the same items)."""
    from ifhelpers.chapters.becel import item_scores

    scored = item_scores(predictions)
    scored = scored[scored["metric"] == metric]
    rng = np.random.default_rng(seed)
    means, boots = [], []
    for _, group in scored.groupby("task", sort=False):
        b = group[group["model"] == base].set_index(["set", "row"])["score"]
        t = group[group["model"] == tuned].set_index(["set", "row"])["score"]
        diff = (t - b).dropna().to_numpy(float)
        if len(diff) == 0:
            continue
        means.append(diff.mean())
        boots.append(diff[rng.integers(0, len(diff), size=(n_resamples, len(diff)))].mean(1))
    if not means:
        return {"diff": NAN, "low": NAN, "high": NAN, "tasks": 0}
    boot = np.mean(boots, axis=0)
    alpha = (1 - confidence) / 2
    return {"diff": 100 * float(np.mean(means)), "low": 100 * float(np.quantile(boot, alpha)),
            "high": 100 * float(np.quantile(boot, 1 - alpha)), "tasks": len(means)}


def becel(predictions: pd.DataFrame, table2: pd.DataFrame, paired: pd.DataFrame, base: str, tuned_names: list[str],
          mode: str, n_resamples: int = 2000, seed: int = 0) -> list[dict]:
    """BECEL accuracy and semantic / negational consistency averaged over tasks (Table 2), and the
    per-task cells (Table 6): tuned − base, against the paper's LLaMA (and T5, Falcon) numbers."""
    paper_all = pd.concat([paper_tables.becel_table2(2), paper_tables.becel_table2(5)], ignore_index=True)
    paper_all = paper_all.pivot_table(index=["model", "role"], columns="metric", values="value",
                                      sort=False).reset_index()
    ours = table2.set_index(["model", "metric"])
    rows = []
    names = {"accuracy": "BECEL accuracy", "semantic": "BECEL semantic consistency (paraphrase)",
             "negational": "BECEL negational consistency (negation)"}
    for tuned in tuned_names:
        for metric, label in names.items():
            res = becel_task_average_difference(predictions, base, tuned, metric, n_resamples, seed=seed)
            b, t = ours["value"].get((base, metric), NAN), ours["value"].get((tuned, metric), NAN)
            rows.append(row(
                "§3, Table 2", f"{label}, mean over tasks, tuned − base (×100)",
                paper_tables.direction_text(paper_all, metric),
                f"{diff_text(res['diff'], res['low'], res['high'], '+.1f')} (base {b:.1f}, tuned {t:.1f})",
                verdict(res["diff"], res["low"], res["high"]), estimate=res["diff"], low=res["low"], high=res["high"],
                base=base, tuned=tuned,
                note=f"{res['tasks']} of the paper's 4 tasks; classifier: {mode}; paired bootstrap over items "
                     f"within tasks"))
    paper6 = paper_tables.becel_table6()
    llama6 = paper6[paper6["family"] == "llama"]
    lowest = llama6.loc[llama6.groupby(["task", "metric"])["value"].idxmin()]
    counts = {m: int((lowest[lowest["metric"] == m]["role"] == "base").sum()) for m in ("semantic", "symmetric",
                                                                                        "negational")}
    cons = paired[paired["metric"].isin(["semantic", "symmetric", "negational"])] if len(paired) else paired
    for tuned in tuned_names:
        part = cons[cons["tuned"] == tuned] if len(cons) else cons
        cells = [verdict(r["mean_diff"], r["diff_low"], r["diff_high"]) for _, r in part.iterrows()]
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


# --------------------------------------------------------------------------------------------------
# Chapter 4: mechanisms of factual recall (Figs. 2-5, Table 7)


def mechanisms(attr_cmp: pd.DataFrame, rel_summary: pd.DataFrame, gap: pd.DataFrame, mhsa_cmp: pd.DataFrame,
               correlation: pd.DataFrame, ext: pd.DataFrame, findings: dict, relation_span: tuple[float, float],
               extraction_span: tuple[float, float], base: str, n_tuned: int, n_subjects: int) -> list[dict]:
    """The attribute rate (Fig. 2), the relation layers (Fig. 3), the paraphrase gap in those layers
    (Fig. 4), the MHSA extraction rate and its correlation with consistency (Fig. 5, Table 7)."""
    n_paper = findings["n_tuned_models"]
    rows = []
    for _, c in attr_cmp.iterrows():
        d, lo, hi = 100 * c["mean_diff"], 100 * c["diff_low"], 100 * c["diff_high"]
        rows.append(row(
            "§4, Fig. 2", "subject attribute rate, tuned − base (points)",
            f"higher for all {n_paper} tuned LLaMA-7b models "
            f"(rate peaks at ≈{100 * findings['attribute_rate_peak']:.0f}%)",
            diff_text(d, lo, hi, "+.1f"), verdict(d, lo, hi), estimate=d, low=lo, high=hi, base=base,
            tuned=c["model"],
            note=f"{n_subjects} subjects, layers h^1 ... h^L; paired bootstrap over subjects; Wilcoxon p = "
                 f"{c['wilcoxon_p']:.2g}; attribute sets from a small offline corpus"))
    lo_d, hi_d = relation_span
    first, last = findings["relation_layers"]
    where = {m: ("within" if lo_d <= x <= hi_d else "before" if x < lo_d else "after")
             for m, x in zip(rel_summary["model"], rel_summary["half of max first at depth"])}
    inside = sum(w == "within" for w in where.values())
    rows.append(row(
        "§4, Fig. 3", "relation layers: where same- and different-relation queries separate",
        f"layers {first}-{last} of 32 (relative depth {lo_d:.2f}-{hi_d:.2f})",
        "; ".join(f"{m}: depth {x:.2f} ({where[m]})" for m, x in
                  zip(rel_summary["model"], rel_summary["half of max first at depth"])),
        "yes" if inside == len(where) else "no" if inside == 0 else "mixed", base=base,
        tuned=", ".join(m for m in rel_summary["model"] if m != base),
        note="depth where the separation first reaches half its maximum; a location, not a direction"))
    span = gap[(gap["split"] == "consistent") & (gap["depth"] >= lo_d) & (gap["depth"] <= hi_d)]
    per_prompt = span.groupby(["model", "prompt_id"], sort=False)["gap"].mean().unstack("prompt_id")
    if base in per_prompt.index:
        b = per_prompt.loc[base]
        for model in per_prompt.index.drop(base):
            t = per_prompt.loc[model]
            overlap = t.min() <= b.max() and b.min() <= t.max()
            rows.append(row(
                "§4, Fig. 4",
                "paraphrase gap in the relation layers (consistent paraphrases): similar for base and tuned",
                "similar for LLaMA-7b and its tuned models on average (no better relation representation)",
                f"base {b.mean():.3f} (prompts {b.min():.3f}-{b.max():.3f}), tuned {t.mean():.3f} "
                f"(prompts {t.min():.3f}-{t.max():.3f})",
                "yes" if overlap else "no", estimate=t.mean() - b.mean(), base=base, tuned=model,
                note="'similar' read as: the ranges over the three prompts overlap; levels differ across families"))
    for _, c in mhsa_cmp.iterrows():
        d, lo, hi = 100 * c["mean_diff"], 100 * c["diff_low"], 100 * c["diff_high"]
        rows.append(row(
            "§4, Fig. 5", "MHSA extraction rate, tuned − base (points, mean over layers)",
            f"LLaMA-7b extracts as often as the best of its {n_paper} tuned models (tuned not higher)",
            diff_text(d, lo, hi, "+.1f"), verdict(d, lo, hi, paper_sign=-1), estimate=d, low=lo, high=hi,
            base=base, tuned=c["model"],
            note="the paper's claim is 'not higher': an interval containing 0 agrees with it"))
    table7 = paper_tables.table(7)
    paper7 = (f"r = {table7['Pearson'].min():.2f}-{table7['Pearson'].max():.2f} (p ≤ 0.05) in MHSA layers "
              f"{findings['extraction_layers'][0]}-{findings['extraction_layers'][1]} and some MLP layers, "
              f"over {n_paper} tuned models")
    defined = bool(correlation["defined"].any()) if len(correlation) else False
    if defined:
        depth = ext[["block", "layer", "depth"]].drop_duplicates(["block", "layer"])
        ours7 = correlation[correlation["defined"]].merge(depth, on=["block", "layer"], how="left")
        ours7 = ours7[(ours7["block"] == "MHSA") & ours7["depth"].between(*extraction_span)]
        positive = int(((ours7["r"] > 0) & (ours7["p_value"] <= 0.05)).sum())
        negative = int(((ours7["r"] < 0) & (ours7["p_value"] <= 0.05)).sum())
        ours = (f"MHSA layers in the paper's span: r {ours7['r'].min():.2f} to {ours7['r'].max():.2f}; "
                f"{positive} of {len(ours7)} positive with p ≤ 0.05, {negative} negative")
        holds = "mixed" if positive and negative else "yes" if positive else "no" if negative else "n.s."
        note = f"{int(ours7['n_models'].max()) if len(ours7) else n_tuned} tuned models"
    else:
        message = correlation["message"].iloc[0] if len(correlation) else "no instruction-tuned model"
        ours, holds = f"not defined: {n_tuned} tuned model(s)", "not defined"
        note = str(message)
    rows.append(row("§4, Table 7", "extraction rate vs ParaRel consistency across tuned models (Pearson r)",
                    paper7, ours, holds, base=base, tuned=", ".join(m for m in rel_summary["model"] if m != base),
                    note=note))
    return rows
