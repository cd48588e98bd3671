"""Curves across layers: the mean over units with a bootstrap band, tuned − base comparisons, and the two
plotting helpers every figure of the chapter uses."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ifhelpers import paper, stats
from ifhelpers.measure.stamp import relative_depth

__all__ = ["mean_ci_by_layer", "compare_to_base", "comparison_values", "plot_layer_curves", "shade_paper_layers"]


def mean_ci_by_layer(table: pd.DataFrame, value: str, unit: str, by: Sequence[str] = (), confidence: float = 0.95,
                     n_resamples: int = 1000, seed: int = 0, depth_kind: str | None = None) -> pd.DataFrame:
    """Mean over units (after averaging each unit's rows, e.g. its prompts) with a bootstrap interval.

    For each group of ``by`` and each ``layer``: average ``value`` within each ``unit`` (relation,
    subject, query), then the mean over units and a percentile bootstrap interval resampling units
    (:func:`ifhelpers.stats.bootstrap_ci`). Units missing a layer (NaN) are left out of that layer.
    With ``depth_kind`` (``"state"`` or ``"update"``; ``by`` must include ``n_layers``) a ``depth`` column
    of :func:`ifhelpers.measure.stamp.relative_depth` is added: the curves of Figs. 2, 3, 5 and 8.

    Returns ``by`` columns, ``layer``, ``estimate``, ``low``, ``high``, ``n`` (and ``depth``).
    """
    by = list(by)
    out = []
    groups = table.groupby(by, sort=False) if by else [((), table)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        wide = group.groupby([unit, "layer"])[value].mean().unstack("layer")
        rows = []
        for layer in wide.columns:
            values = wide[layer].dropna().to_numpy()
            if len(values) >= 2:
                ci = stats.bootstrap_ci(values, n_resamples=n_resamples, confidence=confidence, seed=seed,
                                        method="percentile")
                rows.append((layer, float(ci["estimate"]), float(ci["low"]), float(ci["high"]), len(values)))
            else:
                est = float(values[0]) if len(values) else np.nan
                rows.append((layer, est, np.nan, np.nan, len(values)))
        frame = pd.DataFrame(rows, columns=["layer", "estimate", "low", "high", "n"])
        for name, v in zip(by, key):
            frame.insert(by.index(name), name, v)
        out.append(frame)
    result = pd.concat(out, ignore_index=True)
    if depth_kind is not None:
        result["depth"] = relative_depth(result["layer"], result["n_layers"], depth_kind)
    return result


def compare_to_base(table: pd.DataFrame, value: str, unit: str, where=None, seed: int = 0) -> pd.DataFrame:
    """Each instruction-tuned model against the base model on the same units (paired).

    ``table`` is tidy with ``model``, ``role``, ``unit`` and ``value`` columns (e.g. the attribute
    rate per subject, prompt and layer). Each unit's value is averaged over its rows (prompts and
    layers, or only the rows ``where`` keeps, a boolean Series), then
    :func:`ifhelpers.stats.compare_roles` compares tuned − base over the units both models have,
    taken in sorted order (the order the bootstrap resamples). Returns one row per (base, tuned) pair: ``base``, ``tuned`` and the fields
    of :func:`ifhelpers.stats.paired_comparison`; empty without a base model.
    """
    if where is not None:
        table = table[where]
    # each unit's mean (a sorted groupby), the models in their order of appearance and the units sorted
    # within each: compare_roles then pairs the units in sorted order
    order = {m: i for i, m in enumerate(dict.fromkeys(table["model"]))}
    means = table.groupby(["model", "role", unit])[value].mean().reset_index()
    means = means.sort_values("model", key=lambda c: c.map(order), kind="stable")
    return stats.compare_roles(means, value, unit, seed=seed)


def comparison_values(comparison: pd.DataFrame, scale: float = 100.0) -> dict:
    """The first (base, tuned) pair of :func:`compare_to_base` for the prose: ``diff``, ``diff_low``,
    ``diff_high`` (×``scale``, points), ``p`` (Wilcoxon), ``tuned`` and ``direction``: "higher" /
    "lower" when the 95% interval excludes 0, else "not different"; "n/a" (and NaN) without a pair."""
    if not len(comparison):
        return {"diff": np.nan, "diff_low": np.nan, "diff_high": np.nan, "p": np.nan, "tuned": "n/a",
                "direction": "n/a"}
    first = comparison.iloc[0]
    direction = "higher" if first["diff_low"] > 0 else "lower" if first["diff_high"] < 0 else "not different"
    return {"diff": scale * first["mean_diff"], "diff_low": scale * first["diff_low"],
            "diff_high": scale * first["diff_high"], "p": first["wilcoxon_p"], "tuned": first["tuned"],
            "direction": direction}


def plot_layer_curves(ax, data: pd.DataFrame, x: str = "depth", y: str = "estimate", hue: str = "model",
                      colors: Mapping[str, str] | None = None, band: tuple[str, str] | None = ("low", "high"),
                      style: str | None = None, styles: Mapping[str, str] | None = None, label_fmt: str = "{hue}",
                      marker: str | None = None):
    """One line per ``hue`` (and ``style``) value across layers, with a shaded band when given."""
    keys = [hue] + ([style] if style else [])
    for key, group in data.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        group = group.sort_values(x)
        color = (colors or {}).get(key[0])
        linestyle = (styles or {}).get(key[1], "-") if style else "-"
        label = label_fmt.format(hue=key[0], style=key[1] if style else "")
        ax.plot(group[x], group[y], color=color, linestyle=linestyle, label=label, marker=marker, markersize=3)
        if band and group[band[0]].notna().any():
            ax.fill_between(group[x], group[band[0]], group[band[1]], color=color, alpha=0.18, linewidth=0)
    return ax


def shade_paper_layers(ax, first: int, last: int, kind: str = "state", label: str = "paper", color: str = "0.3"):
    """Hatch the paper's layers ``first ... last`` (of 32) at their relative depth, labelled as the paper's."""
    lo, hi = paper.layer_span(first, last, kind)
    ax.axvspan(lo, hi, facecolor="none", edgecolor=color, hatch="///", linewidth=0, alpha=0.35, label=label,
               zorder=0)
    return ax
