"""(a) Subjects: the attribute rate of Fig. 2 read from :func:`ifhelpers.measure.layers.attribute_tables` (App. D)."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from ifhelpers import paper
from ifhelpers.measure.stamp import relative_depth
from ifhelpers.chapters.mechanisms.curves import compare_to_base, plot_layer_curves

__all__ = ["attribute_set_sizes", "attribute_size_ratio", "attribute_peaks", "attribute_comparison", "example_layers", "example_table", "ATTRIBUTE_TITLES", "plot_attribute_rates"]


def attribute_set_sizes(attribute_sets: pd.DataFrame, attributes: pd.DataFrame, top_k: int) -> pd.DataFrame:
    """Size of A_s per model (App. D: the paper's 1,936 ± 1,036 tokens per subject): ``mean``, ``std``,
    ``min``, ``max`` over subjects, and the share of (row, layer) readings of :func:`ifhelpers.measure.layers.attribute_rates`
    where fewer than ``top_k`` lens tokens survived the filters (``short_share``)."""
    sizes = attribute_sets.groupby("model", sort=False)["n_attributes"].agg(["mean", "std", "min", "max"])
    short = attributes.assign(short=lambda t: t["n_kept"] < top_k)
    sizes["short_share"] = short.groupby("model", sort=False)["short"].mean()
    return sizes


def attribute_size_ratio(sizes: pd.DataFrame) -> float:
    """How many times smaller our attribute sets are than the paper's (App. D's mean size over the
    mean of :func:`attribute_set_sizes`' per-model means)."""
    return paper.FINDINGS["attributes_per_subject"][0] / sizes["mean"].mean()


def attribute_peaks(attr: pd.DataFrame) -> pd.DataFrame:
    """Where each model's attribute rate peaks over the layer outputs h^1 ... h^L (Fig. 2, footnote 5:
    the paper's peaks at ≈30% and falls after layer 25), with the rate at h^0 and h^L.

    ``attr`` is :func:`mean_ci_by_layer`'s curve with ``depth``. h^0 is the subject token's own
    embedding: its lens tokens are the token itself and its neighbours, so it is left out of the peak.
    Returns ``model``, ``layer``, ``depth``, ``estimate``, ``low``, ``high``, ``h0`` (the rate at h^0),
    ``h_last`` (at h^L).
    """
    inner = attr[attr["layer"] > 0]
    peaks = inner.loc[inner.groupby("model", sort=False)["estimate"].idxmax(),
                      ["model", "layer", "depth", "estimate", "low", "high"]]
    peaks["h0"] = peaks["model"].map(attr[attr["layer"] == 0].set_index("model")["estimate"])
    last = attr.loc[attr.groupby("model", sort=False)["layer"].idxmax()].set_index("model")["estimate"]
    peaks["h_last"] = peaks["model"].map(last)
    return peaks


def attribute_comparison(attributes: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Fig. 2's "higher for every tuned model": each tuned model's attribute rate minus the base
    model's, averaged over prompts, templates and the layers h^1 ... h^L, paired over subjects
    (:func:`compare_to_base` on :func:`ifhelpers.measure.layers.attribute_rates`)."""
    return compare_to_base(attributes, "rate", "subject", where=attributes["layer"] > 0, seed=seed)


def example_layers(examples: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """The rows of the lens examples at ``n`` evenly spaced layers of each model (h^0 to h^L)."""
    picked = []
    for _, part in examples.groupby("model", sort=False):
        wanted = np.linspace(0, part["layer"].max(), n).round().astype(int)
        picked.append(part[part["layer"].isin(wanted)])
    return pd.concat(picked)


def example_table(examples: pd.DataFrame) -> pd.DataFrame:
    """The lens examples of :func:`example_layers` as the chapter prints them: ``model``, ``layer``,
    ``depth`` (two decimals) and ``top_tokens``, each token stripped and quoted, joined by " | "."""
    return examples.assign(depth=examples["depth"].round(2), top_tokens=examples["top_tokens"].map(
        lambda tokens: " | ".join(repr(token.strip()) for token in tokens)))[["model", "layer", "depth", "top_tokens"]]


#: Fig. 2's title for each direction of :func:`attribute_comparison` (tuned − base).
ATTRIBUTE_TITLES = {"higher": "The tuned model's lens finds more subject attributes",
                    "lower": "The tuned model's lens finds fewer subject attributes",
                    "not different": "Base and tuned models find as many subject attributes"}


def plot_attribute_rates(attr: pd.DataFrame, colors: Mapping[str, str], direction: str, top_k: int):
    """Fig. 2: each model's attribute rate across the states h^l (:func:`mean_ci_by_layer` with ``depth``), the
    paper's peak marked, titled by the direction of :func:`attribute_comparison`."""
    import matplotlib.pyplot as plt

    from ifhelpers.plots import PAPER_STYLE

    found = paper.FINDINGS
    px, py = relative_depth(found["attribute_decrease_after"], paper.N_LAYERS), found["attribute_rate_peak"]
    fig, ax = plt.subplots(figsize=(7, 4))
    plot_layer_curves(ax, attr, colors=colors)
    ax.scatter([px], [py], **{**PAPER_STYLE, "label": f"paper: LLaMA-family peak ≈{100 * py:.0f}%, falls after layer "
                                                      f"{found['attribute_decrease_after']}"})
    ax.set(xlabel="relative depth l / L of the state h^l", ylabel=f"attribute rate (top-{top_k} lens tokens in A_s)",
           title=ATTRIBUTE_TITLES.get(direction, "Subject attribute rate"))
    ax.legend(fontsize=8, loc="upper left")
    return fig
