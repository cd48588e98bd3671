"""(c) Extraction: Figs. 5, 8 and Table 7, read from :func:`ifhelpers.measure.layers.extraction_tables`."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from ifhelpers import paper, stats
from ifhelpers.measure.layers import BLOCKS
from ifhelpers.chapters.mechanisms.curves import compare_to_base, mean_ci_by_layer, plot_layer_curves, shade_paper_layers

__all__ = ["GROUP_COLORS", "extraction_correlation", "extraction_peaks", "extraction_comparison", "mlp_below_mhsa", "table7", "correlation_status", "plot_extraction", "later_code_extraction"]


#: Fig. 5's colours: ParaRel consistency of a tuned model relative to the base model.
GROUP_COLORS = {"base": "#4C72B0", "lower": "#D4A017", "higher-close": "#55A868", "higher": "#C44E52",
                "instruction-tuned": "#DD8452"}


def extraction_correlation(rates: pd.DataFrame, consistency: pd.Series) -> pd.DataFrame:
    """Table 7: Pearson r and p-value per block and layer between the instruction-tuned models'
    extraction rates and their ParaRel consistency (:func:`ifhelpers.stats.pearson_by_layer`).

    ``rates`` is tidy with ``model``, ``role``, ``block``, ``layer``, ``rate`` (averaged over
    prompts); ``consistency`` is indexed by model. Only instruction-tuned models enter, as in the
    paper. With fewer than three of them, or models of different depths (layer l is then not the
    same place), no number is given: ``defined`` is False and ``message`` says why.

    Returns ``model`` (the tuned models, comma-separated), ``role``, ``block``, ``layer``, ``r``,
    ``p_value``, ``n_models``, ``defined``, ``message``.
    """
    tuned = rates[rates["role"] == "instruction-tuned"]
    models = list(dict.fromkeys(tuned["model"]))
    out = []
    for block in BLOCKS:
        table = tuned[tuned["block"] == block].pivot_table(index="model", columns="layer", values="rate")
        table = table.reindex(models)
        if table.empty:
            continue
        depths = tuned[tuned["block"] == block].groupby("model")["layer"].max()
        if depths.nunique() > 1:
            result = pd.DataFrame({"r": np.nan, "p_value": np.nan, "n_models": len(models), "defined": False,
                                   "message": "the instruction-tuned models have different depths"},
                                  index=pd.RangeIndex(int(depths.max()) + 1, name="layer"))
        else:
            result = stats.pearson_by_layer(table, consistency.reindex(models))
        result = result.reset_index()
        result.insert(0, "block", block)
        result.insert(0, "role", "instruction-tuned")
        result.insert(0, "model", ", ".join(models))
        out.append(result)
    if not out:
        return pd.DataFrame(columns=["model", "role", "block", "layer", "r", "p_value", "n_models", "defined",
                                     "message"])
    return pd.concat(out, ignore_index=True)


def extraction_peaks(ext: pd.DataFrame) -> pd.DataFrame:
    """Where each model's extraction rate peaks, per block (Figs. 5, 8): the rows of
    :func:`mean_ci_by_layer`'s curves (with ``depth``) at their maximum: ``model``, ``block``,
    ``layer``, ``depth``, ``estimate``, ``low``, ``high``, ``n``."""
    return ext.loc[ext.groupby(["model", "block"], sort=False)["estimate"].idxmax(),
                   ["model", "block", "layer", "depth", "estimate", "low", "high", "n"]]


def extraction_comparison(events: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Fig. 5's "LLaMA extracts as often as the best tuned models": each tuned model's MHSA extraction
    rate minus the base model's, averaged over layers, paired over the queries both read
    (:func:`compare_to_base` on :func:`ifhelpers.measure.layers.extraction_events`)."""
    return compare_to_base(events, "event", "query", where=events["block"] == "MHSA", seed=seed)


def mlp_below_mhsa(peaks: pd.DataFrame) -> tuple[int, int]:
    """How many models' MLP extraction peak is below their MHSA peak (Fig. 8 against Fig. 5; the paper
    and Geva et al. 2023 find MLP rates lower), and of how many models: ``(below, models)``."""
    by_block = peaks.pivot_table(index="model", columns="block", values="estimate")
    below = by_block["MLP"] < by_block["MHSA"]
    return int(below.sum()), len(below)


def table7(ext: pd.DataFrame, groups: pd.DataFrame) -> pd.DataFrame:
    """Table 7 from the chapter's tables: :func:`extraction_correlation` of the extraction-rate curves
    (``ext``, from :func:`mean_ci_by_layer` over queries) with the ParaRel consistency of
    :func:`consistency_groups`."""
    rates = ext.rename(columns={"estimate": "rate"})[["model", "role", "block", "layer", "rate"]]
    return extraction_correlation(rates, groups.set_index("model")["consistency"])


def correlation_status(correlation: pd.DataFrame) -> tuple[bool, str]:
    """Whether Table 7 has a number for these models (``defined`` somewhere in ``correlation``), and
    why not when it has none: ``(defined, message)``."""
    if len(correlation) and bool(correlation["defined"].any()):
        return True, ""
    return False, str(correlation["message"].iloc[0]) if len(correlation) else "there is no instruction-tuned model"


def plot_extraction(ext: pd.DataFrame, group_of: Mapping[str, str]):
    """Figs. 5, 8: the MHSA and MLP extraction rates per layer (:func:`mean_ci_by_layer` of
    :func:`ifhelpers.measure.layers.extraction_events`), each model coloured by its group of
    :func:`consistency_groups` (:data:`GROUP_COLORS`), titled by where the MHSA rates peak
    (:func:`extraction_peaks`)."""
    import matplotlib.pyplot as plt

    peaks = extraction_peaks(ext)
    mhsa_depths = peaks[peaks["block"] == "MHSA"]["depth"]
    colors = {f"{m} ({g})": GROUP_COLORS[g] for m, g in group_of.items()}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, block in zip(axes, BLOCKS):
        part = ext[ext["block"] == block].assign(label=lambda t: t["model"] + " (" + t["model"].map(group_of) + ")")
        plot_layer_curves(ax, part, hue="label", colors=colors)
        shade_paper_layers(ax, *paper.FINDINGS["extraction_layers"], kind="update",
                           label="paper: layers 13-21 where extraction tracks consistency")
        ax.set(title=f"{block} updates ({'Fig. 5' if block == 'MHSA' else 'Fig. 8'})",
               xlabel="relative depth (l + 1) / L of the update")
    axes[0].set_ylabel("extraction rate")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"MHSA updates extract the answer late: peaks at relative depth "
                 f"{', '.join(f'{d:.2f}' for d in mhsa_depths)}", y=1.02)
    return fig


def later_code_extraction(events: pd.DataFrame, seed: int = 0) -> dict[str, pd.DataFrame]:
    """The sensitivity variant of Figs. 5, 8 that the first author's later extraction-rate code reads
    (``events_later_code`` of :func:`ifhelpers.measure.layers.extraction_tables`: raw updates, no final norm,
    only prompts the model answers correctly), summarised as the paper's reading is: ``curves``
    (:func:`mean_ci_by_layer` over queries, per model and block), ``peaks`` (:func:`extraction_peaks`) and
    ``comparison`` (:func:`extraction_comparison`, MHSA, tuned − base). Models that answer no prompt
    correctly have no rows; with none at all every table is empty (``curves`` with its columns, so that its
    saved table reads back)."""
    if events.empty:
        curves = pd.DataFrame(columns=["model", "role", "n_layers", "block", "layer", "estimate", "low", "high", "n",
                                       "depth"])
        return {"curves": curves, "peaks": pd.DataFrame(), "comparison": pd.DataFrame()}
    curves = mean_ci_by_layer(events, "event", "query", by=["model", "role", "n_layers", "block"], seed=seed,
                              depth_kind="update")
    return {"curves": curves, "peaks": extraction_peaks(curves.dropna(subset=["estimate"])),
            "comparison": extraction_comparison(events, seed)}
