"""The chapter's findings beside the paper's: the summary table and the headline rows; how its tables print."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ifhelpers import findings, paper, stats
from ifhelpers.measure.stamp import relative_depth
from ifhelpers.chapters.mechanisms.extraction import correlation_status
from ifhelpers.chapters.mechanisms.queries import where_in_span
from ifhelpers.chapters.mechanisms.relations import gap_span_by_prompt, relation_layers

__all__ = ["LABELS", "summary_table", "headlines"]

#: How the chapter's tables print the data columns named otherwise than they read (a notebook shows a
#: table as ``frame.rename(columns=LABELS)``).
LABELS = {"h0": "h^0", "h_last": "h^L", "max_inner": "max (inner layers)", "max_depth": "at depth",
          "inner_above_half": "inner layers above 50%",
          "short_share": "share of layer readings with < k tokens kept", "top_tokens": "top tokens",
          "max_separation": "max separation", "half_max_depth": "half of max first at depth",
          "span_mean": "mean in paper's span", "same_h0": "same at h^0",
          "consistent_above_share": "layers where consistent > inconsistent",
          **{f"n_pairs_{split}": f"pairs: {split}" for split in ("consistent", "inconsistent", "all")}}


def _fmt(value, spec: str = ".2f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else format(value, spec)


def _per_model(frame: pd.DataFrame, column: str, spec: str) -> str:
    return "; ".join(f"{m}: {_fmt(v, spec)}" for m, v in frame.set_index("model")[column].items())


def _peak_text(table: pd.DataFrame) -> list[str]:
    return [f"{100 * e:.1f}% at depth {d:.2f}" for e, d in zip(table["estimate"], table["depth"])]


def summary_table(peaks: pd.DataFrame, set_sizes: pd.DataFrame, attr_cmp: pd.DataFrame, rel_summary: pd.DataFrame,
                  span_table: pd.DataFrame, peak_ext: pd.DataFrame, correlation: pd.DataFrame,
                  n_tuned: int) -> pd.DataFrame:
    """The chapter's findings beside the paper's, one row each (§4, App. D-F): the attribute rate's
    peak (:func:`attribute_peaks`) and the size of A_s (:func:`attribute_set_sizes`), tuned − base
    attribute rate (:func:`attribute_comparison`), the relation layers (:func:`relation_layers`), the
    consistent-paraphrase gap in them (:func:`gap_in_relation_layers`), the MHSA and MLP extraction
    peaks (:func:`extraction_peaks`) and Table 7 (:func:`table7`). Columns ``finding``,
    ``paper (LLaMA-7b family)``, ``ours``; the paper's numbers come from :mod:`ifhelpers.paper`."""
    found = paper.FINDINGS
    paper_col = "paper (LLaMA-7b family)"
    decrease_depth = float(relative_depth(found["attribute_decrease_after"], paper.N_LAYERS))
    rel_lo, rel_hi = paper.layer_span(*found["relation_layers"])
    ext_lo, ext_hi = paper.layer_span(*found["extraction_layers"], kind="update")
    mean, sd = found["attributes_per_subject"]
    table_7 = paper.table(7)
    defined, _ = correlation_status(correlation)
    mhsa = peak_ext[peak_ext["block"] == "MHSA"]
    rows = [
        {"finding": "attribute rate peak (Fig. 2, fn. 5)",
         paper_col: f"≈{100 * found['attribute_rate_peak']:.0f}%, falls after layer "
                    f"{found['attribute_decrease_after']} (depth ≈{decrease_depth:.2f})",
         "ours": _per_model(peaks.assign(text=_peak_text(peaks)), "text", "s")},
        {"finding": "attributes per subject (App. D)", paper_col: f"{mean:,} ± {sd:,}",
         "ours": "; ".join(f"{m}: {r['mean']:.0f} ± {r['std']:.0f}" for m, r in set_sizes.iterrows())},
        {"finding": "tuned − base attribute rate (Fig. 2)",
         paper_col: f"> 0 for all {found['n_tuned_models']} tuned models",
         "ours": "n/a" if attr_cmp.empty else "; ".join(
             f"{r['tuned']}: {100 * r['mean_diff']:+.1f} pts [{100 * r['diff_low']:+.1f}, {100 * r['diff_high']:+.1f}]"
             for _, r in attr_cmp.iterrows())},
        {"finding": "relation layers (Fig. 3)",
         paper_col: f"layers {found['relation_layers'][0]}-{found['relation_layers'][1]} "
                    f"(depth {rel_lo:.2f}-{rel_hi:.2f})",
         "ours": _per_model(rel_summary, "half_max_depth", ".2f")
                 + " (separation first at half its maximum)"},
        {"finding": "consistent-paraphrase gap in relation layers (Fig. 4)",
         paper_col: "similar for base and tuned on average",
         "ours": "; ".join(f"{m}: {v:.3f}" for m, v in span_table["consistent"].items())},
        {"finding": "MHSA extraction peak (Fig. 5)",
         paper_col: f"correlated with consistency in layers {found['extraction_layers'][0]}-"
                    f"{found['extraction_layers'][1]} (depth {ext_lo:.2f}-{ext_hi:.2f})",
         "ours": _per_model(mhsa.assign(text=_peak_text(mhsa)), "text", "s")},
        {"finding": "MLP vs MHSA extraction (Fig. 8)", paper_col: "MLP lower overall",
         "ours": "; ".join(f"{m}: MLP peak {100 * g.set_index('block').loc['MLP', 'estimate']:.1f}% vs MHSA "
                           f"{100 * g.set_index('block').loc['MHSA', 'estimate']:.1f}%"
                           for m, g in peak_ext.groupby("model", sort=False))},
        {"finding": "extraction rate vs consistency (Table 7)",
         paper_col: f"r = {table_7['Pearson'].min():.2f}-{table_7['Pearson'].max():.2f}, "
                    f"p ≤ {stats.SIGNIFICANCE:g}, {found['n_tuned_models']} tuned models",
         "ours": "computed above" if defined else f"not defined ({n_tuned} tuned model(s))"},
    ]
    return pd.DataFrame(rows)


def headlines(attr_cmp: pd.DataFrame, rel_summary: pd.DataFrame, gap: pd.DataFrame, mhsa_cmp: pd.DataFrame,
              correlation: pd.DataFrame, ext: pd.DataFrame, base: str, n_tuned: int, n_subjects: int) -> list[dict]:
    """The chapter's headline rows (:func:`ifhelpers.findings.row`): the attribute rate (Fig. 2,
    :func:`attribute_comparison`), the relation layers (Fig. 3, :func:`relation_layers`), the
    paraphrase gap in those layers (Fig. 4, :func:`gap_span_by_prompt`), the MHSA extraction rate
    (Fig. 5, :func:`extraction_comparison`) and its correlation with consistency (Table 7,
    :func:`table7`), against the paper's findings (:data:`ifhelpers.paper.FINDINGS`, Table 7)."""
    found = paper.FINDINGS
    n_paper = found["n_tuned_models"]
    lo_d, hi_d = paper.layer_span(*found["relation_layers"])
    extraction_span = paper.layer_span(*found["extraction_layers"], kind="update")
    tuned_label = ", ".join(m for m in rel_summary["model"] if m != base)
    rows = []
    for _, c in attr_cmp.iterrows():
        d, lo, hi = 100 * c["mean_diff"], 100 * c["diff_low"], 100 * c["diff_high"]
        rows.append(findings.row(
            "§4, Fig. 2", "subject attribute rate, tuned − base (points)",
            f"higher for all {n_paper} tuned LLaMA-7b models "
            f"(rate peaks at ≈{100 * found['attribute_rate_peak']:.0f}%)",
            findings.diff_text(d, lo, hi, "+.1f"), stats.verdict(d, lo, hi), estimate=d, low=lo, high=hi, base=base,
            tuned=c["tuned"],
            note=f"{n_subjects} subjects, layers h^1 ... h^L; paired bootstrap over subjects; "
                 + (f"Wilcoxon p = {c['wilcoxon_p']:.2g}" if np.isfinite(c["wilcoxon_p"])
                    else f"Wilcoxon p not defined ({c.get('note') or 'no pairs'})")
                 + "; attribute sets from a small offline corpus"))
    first, last = found["relation_layers"]
    by_model = rel_summary.set_index("model")
    depths = by_model["half_max_depth"]
    where = where_in_span(depths, lo_d, hi_d)
    defined = [w for w in where if w != "n/a"]
    inside = sum(w == "within" for w in defined)
    rows.append(findings.row(
        "§4, Fig. 3", "relation layers: where same- and different-relation queries separate",
        f"layers {first}-{last} of 32 (relative depth {lo_d:.2f}-{hi_d:.2f})",
        "; ".join(f"{m}: depth {x:.2f} ({where[m]})" if np.isfinite(x) else f"{m}: {by_model.loc[m, 'note']}"
                  for m, x in depths.items()),
        "not defined" if not defined else "yes" if inside == len(defined) else "no" if inside == 0 else "mixed",
        base=base, tuned=tuned_label,
        note="depth where the separation first reaches half its maximum; a location, not a direction"))
    per_prompt = gap_span_by_prompt(gap, (lo_d, hi_d))
    if base in per_prompt.index:
        b = per_prompt.loc[base]
        for model in per_prompt.index.drop(base):
            t = per_prompt.loc[model]
            overlap = t.min() <= b.max() and b.min() <= t.max()
            rows.append(findings.row(
                "§4, Fig. 4",
                "paraphrase gap in the relation layers (consistent paraphrases): similar for base and tuned",
                "similar for LLaMA-7b and its tuned models on average (no better relation representation)",
                f"base {b.mean():.3f} (prompts {b.min():.3f}-{b.max():.3f}), tuned {t.mean():.3f} "
                f"(prompts {t.min():.3f}-{t.max():.3f})",
                "yes" if overlap else "no", estimate=t.mean() - b.mean(), base=base, tuned=model,
                note="'similar' read as: the ranges over the three prompts overlap; levels differ across families"))
    for _, c in mhsa_cmp.iterrows():
        d, lo, hi = 100 * c["mean_diff"], 100 * c["diff_low"], 100 * c["diff_high"]
        rows.append(findings.row(
            "§4, Fig. 5", "MHSA extraction rate, tuned − base (points, mean over layers)",
            f"LLaMA-7b extracts as often as the best of its {n_paper} tuned models (tuned not higher)",
            findings.diff_text(d, lo, hi, "+.1f"), stats.verdict(d, lo, hi, paper_sign=-1), estimate=d, low=lo, high=hi,
            base=base, tuned=c["tuned"],
            note="the paper's claim is 'not higher': an interval containing 0 agrees with it"))
    table_7 = paper.table(7)
    paper7 = (f"r = {table_7['Pearson'].min():.2f}-{table_7['Pearson'].max():.2f} (p ≤ {stats.SIGNIFICANCE:g}) in MHSA layers "
              f"{found['extraction_layers'][0]}-{found['extraction_layers'][1]} and some MLP layers, "
              f"over {n_paper} tuned models")
    is_defined, message = correlation_status(correlation)
    if is_defined:
        depth = ext[["block", "layer", "depth"]].drop_duplicates(["block", "layer"])
        ours7 = correlation[correlation["defined"]].merge(depth, on=["block", "layer"], how="left")
        ours7 = ours7[(ours7["block"] == "MHSA") & ours7["depth"].between(*extraction_span)]
        if ours7.empty:
            is_defined, message = False, (f"no MHSA layer with a defined correlation lies in the paper's span "
                                          f"(relative depth {extraction_span[0]:.2f}-{extraction_span[1]:.2f})")
    if is_defined:
        positive = int(((ours7["r"] > 0) & (ours7["p_value"] <= stats.SIGNIFICANCE)).sum())
        negative = int(((ours7["r"] < 0) & (ours7["p_value"] <= stats.SIGNIFICANCE)).sum())
        ours = (f"MHSA layers in the paper's span: r {ours7['r'].min():.2f} to {ours7['r'].max():.2f}; "
                f"{positive} of {len(ours7)} positive with p ≤ {stats.SIGNIFICANCE:g}, {negative} negative")
        holds = "mixed" if positive and negative else "yes" if positive else "no" if negative else "n.s."
        note = f"{int(ours7['n_models'].max()) if len(ours7) else n_tuned} tuned models"
    else:
        ours, holds, note = f"not defined: {n_tuned} tuned model(s)", "not defined", message
    rows.append(findings.row("§4, Table 7", "extraction rate vs ParaRel consistency across tuned models (Pearson r)",
                    paper7, ours, holds, base=base, tuned=tuned_label, note=note))
    return rows
