"""(b) Relations: Fig. 3's separation by relation and the paraphrase gap of Figs. 4, 6, 7, read from
:func:`ifhelpers.measure.layers.relation_tables`."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ifhelpers import paper
from ifhelpers.chapters.mechanisms.curves import plot_layer_curves, shade_paper_layers

__all__ = ["relation_separation", "relation_separation_per_relation", "relation_layers", "gap_over_prompts", "gap_positive_share", "gap_in_relation_layers", "gap_span_by_prompt", "plot_relation_similarity", "plot_paraphrase_gap", "plot_gap_per_prompt"]


def relation_separation(summary: pd.DataFrame) -> pd.DataFrame:
    """Same-relation minus different-relation cosine per model and layer (Fig. 3's reading).

    ``summary`` has ``model``, ``kind``, ``layer``, ``depth``, ``estimate`` (e.g. from
    :func:`mean_ci_by_layer` over relations). The paper reads the relation layers where the
    different-relation cosine drops further than the same-relation one, i.e. where this
    separation grows. Returns ``model``, ``layer``, ``depth``, ``same``, ``different``,
    ``separation``.
    """
    wide = summary.pivot_table(index=["model", "layer", "depth"], columns="kind", values="estimate").reset_index()
    wide = wide.rename(columns={"same_relation": "same", "different_relation": "different"})
    wide["separation"] = wide["same"] - wide["different"]
    wide.columns.name = None
    order = {m: i for i, m in enumerate(dict.fromkeys(summary["model"]))}
    return wide.sort_values(["model", "layer"], key=lambda c: c.map(order) if c.name == "model" else c) \
        .reset_index(drop=True)[["model", "layer", "depth", "same", "different", "separation"]]


def relation_separation_per_relation(relation: pd.DataFrame) -> pd.DataFrame:
    """Same-relation minus different-relation cosine of each relation, per prompt and layer: the units
    of Fig. 3's separation (§4 "Relations"), for a bootstrap band over relations.

    ``relation`` is :func:`ifhelpers.measure.layers.relation_similarity_table`'s (with the model's columns of :func:`ifhelpers.measure.stamp.stamp`).
    With matched relations (its default) every relation has both kinds, so the mean over relations
    of this separation (after the mean over prompts, as :func:`mean_ci_by_layer` takes it) equals
    :func:`relation_separation` of the two macro averages. Returns the table's columns other than
    ``kind``, ``cos`` and ``n_pairs``, with ``same``, ``different`` and ``separation``.
    """
    keys = [c for c in relation.columns if c not in ("kind", "cos", "n_pairs")]
    wide = relation.pivot_table(index=keys, columns="kind", values="cos", sort=False).reset_index()
    wide = wide.rename(columns={"same_relation": "same", "different_relation": "different"})
    wide.columns.name = None
    wide["separation"] = wide["same"] - wide["different"]
    return wide[[*keys, "same", "different", "separation"]]


def relation_layers(separation: pd.DataFrame, span: tuple[float, float] | None = None) -> pd.DataFrame:
    """Where each model's relation layers are: the depth at which the same-minus-different separation
    (:func:`relation_separation`) first reaches half its maximum (§4 "Relations", Fig. 3).

    The paper reads its relation layers (3-8 of 32) where the different-relation cosine falls further
    than the same-relation one. The rule here: over the layer outputs h^1 ... h^L (h^0 is the last
    word's embedding, and footnote 6 makes the last words of a pair differ), the first depth where the
    separation is at least half its maximum. It is not defined, with the reason in ``note``, when no
    layer has a separation (no pairs), when the separation is the same at every layer, or when no
    layer has a positive separation. ``span`` (default: the paper's layers 3-8,
    :func:`ifhelpers.paper.layer_span`) gives the mean separation inside the paper's span.

    Returns one row per model: ``model``, ``max_separation``, where it is (``max_depth``), where the
    separation first reaches half of it (``half_max_depth``, NaN when not defined), the mean in the paper's
    span (``span_mean``), the same-relation cosine of the embeddings at h^0 (``same_h0``), ``defined``,
    ``note``.
    """
    lo, hi = span if span is not None else paper.layer_span(*paper.FINDINGS["relation_layers"])
    rows = []
    for model, sep in separation.groupby("model", sort=False):
        sep = sep.sort_values("layer")
        inner = sep[(sep["layer"] > 0) & np.isfinite(sep["separation"])]
        peak_value = peak_depth = half_depth = np.nan
        note = ""
        if inner.empty:
            note = "not defined: no layer after h^0 has a separation (no pairs of both kinds)"
        else:
            peak = inner.loc[inner["separation"].idxmax()]
            peak_value, peak_depth = float(peak["separation"]), float(peak["depth"])
            if np.ptp(inner["separation"].to_numpy()) == 0:
                note = "not defined: the separation is the same at every layer"
            elif peak_value <= 0:
                note = "not defined: no layer has a positive separation"
            else:
                half_depth = float(inner.loc[inner["separation"] >= peak_value / 2, "depth"].iloc[0])
        in_span = sep[(sep["depth"] >= lo) & (sep["depth"] <= hi)]["separation"].mean()
        first = sep[sep["layer"] == 0]["same"]
        rows.append({"model": model, "max_separation": peak_value, "max_depth": peak_depth,
                     "half_max_depth": half_depth, "span_mean": in_span,
                     "same_h0": float(first.iloc[0]) if len(first) else np.nan,
                     "defined": not note, "note": note})
    return pd.DataFrame(rows)


def gap_over_prompts(gap: pd.DataFrame) -> pd.DataFrame:
    """The paraphrase gap of :func:`ifhelpers.measure.layers.paraphrase_gap_table` per model, split and layer: the mean over the
    prompts (``estimate``) and its lowest and highest prompt (``low``, ``high``) (Figs. 4, 6, 7)."""
    return (gap.groupby(["model", "role", "split", "layer", "depth"], sort=False)["gap"]
            .agg(estimate="mean", low="min", high="max").reset_index())


def gap_positive_share(gap_mean: pd.DataFrame, split: str = "all") -> float:
    """Share of the (model, layer) cells of :func:`gap_over_prompts` where paraphrases are closer than
    non-paraphrases (a positive mean gap), for one ``split`` (§4, Fig. 4)."""
    return float((gap_mean.loc[gap_mean["split"] == split, "estimate"] > 0).mean())


def gap_in_relation_layers(gap: pd.DataFrame, gap_mean: pd.DataFrame,
                           span: tuple[float, float] | None = None) -> pd.DataFrame:
    """Fig. 4's reading: the paraphrase gap per model averaged over the paper's relation layers.

    ``gap`` is :func:`ifhelpers.measure.layers.paraphrase_gap_table`'s (with the model's columns), ``gap_mean`` its
    :func:`gap_over_prompts`; ``span`` defaults to the paper's layers 3-8. Returns one row per model
    with the mean gap of each split (``consistent``, ``inconsistent``, ``all``) over the layers in the
    span, the share of all layers where consistent paraphrases have the larger gap (``consistent_above_share``),
    and the number of pairs of each split (summed over prompts: ``n_pairs_consistent``, ``n_pairs_inconsistent``,
    ``n_pairs_all``).
    """
    lo, hi = span if span is not None else paper.layer_span(*paper.FINDINGS["relation_layers"])
    splits = ["consistent", "inconsistent", "all"]
    in_span = gap_mean[(gap_mean["depth"] >= lo) & (gap_mean["depth"] <= hi)]
    table = in_span.pivot_table(index="model", columns="split", values="estimate", sort=False).reindex(columns=splits)
    counts = gap.groupby(["model", "split"], sort=False)["n_pairs"].sum().unstack().reindex(columns=splits)
    counts.columns = [f"n_pairs_{c}" for c in counts.columns]
    wide = gap_mean.pivot_table(index=["model", "layer"], columns="split", values="estimate", sort=False)
    wide = wide.reindex(columns=splits)
    table["consistent_above_share"] = (
        (wide["consistent"] > wide["inconsistent"]).groupby("model", sort=False).mean())
    table.columns.name = None
    return table.join(counts)


def gap_span_by_prompt(gap: pd.DataFrame, span: tuple[float, float] | None = None,
                       split: str = "consistent") -> pd.DataFrame:
    """The gap of one ``split`` averaged over the layers in ``span`` (default: the paper's relation
    layers), per model (rows) and prompt (columns): Fig. 4's "similar on average, for some prompts
    larger" (§4)."""
    lo, hi = span if span is not None else paper.layer_span(*paper.FINDINGS["relation_layers"])
    part = gap[(gap["split"] == split) & (gap["depth"] >= lo) & (gap["depth"] <= hi)]
    return part.groupby(["model", "prompt_id"], sort=False)["gap"].mean().unstack("prompt_id")


def plot_relation_similarity(rel: pd.DataFrame, separation_band: pd.DataFrame, colors: Mapping[str, str]):
    """Fig. 3: the same- and different-relation cosines per layer (:func:`mean_ci_by_layer` of
    :func:`ifhelpers.measure.layers.relation_similarity_table`) and their separation, with the paper's relation
    layers hatched."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    plot_layer_curves(axes[0], rel, colors=colors, style="kind", styles={"same_relation": "-", "different_relation": "--"},
                      label_fmt="{hue}, {style}")
    plot_layer_curves(axes[1], separation_band, colors=colors)
    for ax in axes:
        shade_paper_layers(ax, *paper.FINDINGS["relation_layers"], label="paper: relation layers 3-8 of 32")
    axes[0].set(xlabel="relative depth l / L", ylabel="cosine of the last-token states",
                title="Queries of one relation stay closer")
    axes[1].set(xlabel="relative depth l / L", ylabel="same − different relation", title="Separation by relation, per layer")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fig.suptitle("Where the relation is encoded (Fig. 3)", y=1.02)
    return fig


def plot_paraphrase_gap(gap_mean: pd.DataFrame, colors: Mapping[str, str]):
    """Figs. 4, 7: the gap of consistent, inconsistent and all paraphrases per layer (:func:`gap_over_prompts`),
    titled by the share of layers where it is positive (:func:`gap_positive_share`)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    for ax, split in zip(axes, ["consistent", "inconsistent", "all"]):
        plot_layer_curves(ax, gap_mean[gap_mean["split"] == split], colors=colors)
        shade_paper_layers(ax, *paper.FINDINGS["relation_layers"], label="paper: relation layers")
        ax.axhline(0, color="0.6", linewidth=0.8)
        ax.set(title=f"{split} paraphrases", xlabel="relative depth l / L")
    axes[0].set_ylabel("cos(paraph.) − cos(¬paraph.)")
    axes[0].legend(fontsize=7)
    positive = gap_positive_share(gap_mean, "all")
    fig.suptitle(("Paraphrases are closer than non-paraphrases at every depth" if positive == 1 else
                  f"Paraphrases are closer than non-paraphrases in {positive:.0%} of the layers") + " (Figs. 4, 7)",
                 y=1.03)
    return fig


def plot_gap_per_prompt(gap_band: pd.DataFrame, colors: Mapping[str, str], prompt_ids: Sequence[int]):
    """Figs. 6, 7 per prompt: the gap of consistent and inconsistent paraphrases with its bootstrap band over
    facts (:func:`mean_ci_by_layer` of :func:`ifhelpers.measure.layers.paraphrase_gap_per_fact`)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(prompt_ids), figsize=(4.2 * len(prompt_ids), 6.5), sharex=True, sharey=True,
                             squeeze=False)
    for i, split in enumerate(["consistent", "inconsistent"]):
        for j, prompt_id in enumerate(prompt_ids):
            part = gap_band[(gap_band["split"] == split) & (gap_band["prompt_id"] == prompt_id)]
            plot_layer_curves(axes[i, j], part, colors=colors)
            shade_paper_layers(axes[i, j], *paper.FINDINGS["relation_layers"], label="paper: relation layers")
            axes[i, j].set_title(f"{split}, prompt {prompt_id}", fontsize=10)
        axes[i, 0].set_ylabel("cos(paraph.) − cos(¬paraph.)")
    for ax in axes[-1]:
        ax.set_xlabel("relative depth l / L")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("The gap per prompt (Figs. 6 and 7)", y=1.01)
    return fig
