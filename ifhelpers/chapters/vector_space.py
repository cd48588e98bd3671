"""Consistency in vector space: how much closer paraphrases are than non-paraphrases (paper §2, App. B).

Fierro, Li & Søgaard (2024) represent a text by the *outermost representation of its last token*
(§2) and compare, per model and dataset, the gap

    cos(paraph.) − cos(¬paraph.)                                     (Table 1, Table 4)

where cos(paraph.) is the macro average over paraphrase sets of the mean cosine within each set
(App. B.1 eq. 2-3) and cos(¬paraph.) the mean cosine of random pairs of texts from two different
sets (eq. 4; MRPC brings its own non-paraphrase pairs). Each gap is averaged over the three prompts
of Table 3 (App. B.2). The pure metrics live in :mod:`ifhelpers.metrics`; this module is the
pipeline around them, one function per step:

0. **Parameters**: :func:`check_parameters` refuses unknown datasets and representations before any
   model loads.
1. **What is compared** (model-independent): :func:`design_mrpc`, :func:`design_paraphrase_sets`
   and :func:`design_pararel` give a :class:`Design`: the texts to embed and, for every paraphrase
   set, the non-paraphrase pairs attached to it; :func:`build_designs` makes those the chapter asks
   for, :func:`describe_designs` counts them and :func:`stand_in_overlap` says how much of the
   offline TaPaCo stand-in is MRPC.
2. **Representations**: :func:`ifhelpers.measure.units.sentence_prompts` puts each text in the Table 3 prompts,
   :func:`ifhelpers.measure.units.embed_sentences` runs the engine (h^L at the last token,
   :data:`ifhelpers.model.probes.LAST_STATE_REQUEST`) and
   :func:`ifhelpers.measure.units.embed_pararel` reads the last layer of the one shared ParaRel pass
   (:func:`ifhelpers.model.probes.run_pararel`). :func:`ifhelpers.measure.units.outermost_states` takes h^L at the last token,
   with or without the final norm.
3. **Per-set table**: :func:`ifhelpers.measure.units.unit_table` / :func:`ifhelpers.measure.units.model_units` give one row per (model, dataset,
   prompt, representation, paraphrase set) with eq. 2's ``cos_para``, the mean cosine of its
   non-paraphrase pairs ``cos_nonpara`` and their difference ``gap``. The mean of ``gap`` over sets
   is eq. 3 − eq. 4 exactly. :func:`ifhelpers.measure.units.per_set_gaps` is the measurement the runner takes of
   every model of the chapter (:func:`ifhelpers.measure.runner.run`).
4. **Estimates**: :func:`summarise_gaps` (bootstrap intervals over paraphrase sets),
   :func:`gap_comparison` (paired base vs instruction-tuned test on the same sets, through
   :func:`ifhelpers.stats.compare_roles`), :func:`compare_representations`,
   :func:`ifhelpers.paper.gaps` (the paper's Tables 1 and 4, labelled as the paper's), :func:`side_by_side` and the figure :func:`plot_gaps`.
5. **Values for the prose**: :func:`sample_sizes`, :func:`comparison_values`,
   :func:`nonparaphrase_cosines`, :func:`paper_values`, :func:`representation_values` and
   :func:`printed_eq2_values` return the numbers the chapter's text quotes, keyed by their glue names.
6. **Headlines**: :func:`headlines`, one row per dataset for the reproduction summary.

Design choices (the chapter explains them)
    * **Representation.** h^L is taken *after* the model's final norm by default
      (``representation="final_norm"``): that is the last entry of Hugging Face's
      ``output_hidden_states``, the "outermost representation" that the works the paper cites
      read, and the vector the unembedding sees. The engine's ``resid[:, -1]`` is before the
      final norm; ``"pre_norm"`` keeps it, and both are always computed (it costs nothing).
    * **Eq. 2 normalisation.** The mean over pairs (``normalisation="pairs"`` of
      :func:`ifhelpers.metrics.cosine.mean_pairwise_cosine`), not the printed ``1/M`` which grows with the
      set size; ``cos_para_literal`` keeps the printed form for comparison.
    * **Eq. 4 sampling, stratified.** The paper draws K random pairs (set p_i, set p_j ≠ p_i, one
      member of each). :func:`ifhelpers.metrics.cosine.sample_nonparaphrase_pairs` draws them so,
      symmetrically among the paraphrase sets of eq. 3 (those with two or more members), with p_i
      running over every paraphrase set ``n_nonparaphrase_per_set`` times, so each set carries its own
      non-paraphrase pairs. The average over sets is still eq. 3 − eq. 4, and a bootstrap over sets
      resamples both terms.
      For MRPC, paraphrase pair i is matched with MRPC non-paraphrase pair i (equal numbers are
      drawn), which leaves the gap unchanged and makes the two samples resample together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ifhelpers.measure.units import REPRESENTATIONS
from ifhelpers import findings, metrics, paper, stats
from ifhelpers.data import paraphrases, pararel, prompts
from ifhelpers.data.sources import DataSelectionError, rng_for
from ifhelpers.model import anatomy

__all__ = [
    "DATASETS",
    "DATASET_LABELS",
    "check_parameters",
    "Design",
    "design_mrpc",
    "design_paraphrase_sets",
    "design_pararel",
    "build_designs",
    "describe_designs",
    "text_key",
    "share_found",
    "stand_in_overlap",
    "prompt_average",
    "summarise_gaps",
    "gap_table",
    "COMPARISON_COLUMNS",
    "gap_comparison",
    "compare_representations",
    "representation_table",
    "mean_cosines",
    "sign_changes",
    "direction",
    "finding_title",
    "side_by_side",
    "plot_gaps",
    "sample_sizes",
    "comparison_values",
    "nonparaphrase_cosines",
    "paper_values",
    "representation_values",
    "printed_eq2_values",
    "headlines",
]

#: The datasets of Table 1, in its column order.
DATASETS = ("mrpc", "tapaco", "pararel")
#: How tables and figures name each dataset (the TaPaCo stand-in gets its own label, see designs).
DATASET_LABELS = {"mrpc": "MRPC", "tapaco": "TaPaCo", "pararel": "ParaRel"}
NAN = float("nan")


def check_parameters(datasets: Sequence[str], representation: str, encoder_decoder_state: str = "encoder") -> None:
    """Refuse, before any model loads, a ``datasets`` parameter outside Table 1's columns
    (:data:`DATASETS`), a ``representation`` outside :data:`ifhelpers.measure.units.REPRESENTATIONS` (§2) or an
    ``encoder_decoder_state`` outside :data:`ifhelpers.model.anatomy.ENCODER_DECODER_STATES`."""
    if isinstance(datasets, str):
        raise TypeError(f"datasets must be a list of names, e.g. [{datasets!r}], not one string")
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown:
        raise ValueError(f"unknown datasets {unknown}; choose among {DATASETS}")
    if not datasets:
        raise ValueError(f"datasets is empty; choose at least one of {DATASETS}")
    if representation not in REPRESENTATIONS:
        raise ValueError(f"representation must be one of {REPRESENTATIONS}; got {representation!r}")
    anatomy.check_state(encoder_decoder_state)

# --------------------------------------------------------------------------------------------------
# 1. What is compared


@dataclass
class Design:
    """The texts of one dataset and the comparisons made on them (App. B.1).

    ``items``: one row per text to embed, with ``text`` and ``set_id`` (its paraphrase set; ``""``
    for a text that only appears in non-paraphrase pairs, as MRPC's negatives). Sets with at least
    two members are the *units*: eq. 2 is computed on each, and the bootstrap resamples them.

    ``nonparaphrase``: one row per non-paraphrase pair (eq. 4), ``unit_id`` (the paraphrase set it is
    attached to), ``row_a``, ``row_b`` (positions in ``items``).

    ``dataset`` is a key of :data:`DATASETS`; ``source`` says where the texts come from (the offline
    TaPaCo stand-in says so); ``label`` is what tables print.
    """

    dataset: str
    items: pd.DataFrame
    nonparaphrase: pd.DataFrame
    source: str
    label: str

    @property
    def units(self) -> pd.Index:
        """The paraphrase sets with at least two members, in first-appearance order."""
        sizes = self.items.loc[self.items["set_id"] != "", "set_id"].value_counts(sort=False)
        return pd.Index([s for s in dict.fromkeys(self.items["set_id"]) if s != "" and sizes.get(s, 0) >= 2],
                        name="unit_id")

    def describe(self) -> dict:
        """Counts for a notebook table: texts, paraphrase sets, their sizes, non-paraphrase pairs."""
        members = self.items[self.items["set_id"].isin(self.units)]
        sizes = members.groupby("set_id").size()
        return {"dataset": self.dataset, "label": self.label, "source": self.source, "n_texts": len(self.items),
                "n_sets": len(self.units), "mean_set_size": float(sizes.mean()),
                "max_set_size": int(sizes.max()), "n_nonparaphrase_pairs": len(self.nonparaphrase)}


def _check_design(design: Design) -> Design:
    items, non = design.items, design.nonparaphrase
    if not {"text", "set_id"} <= set(items.columns):
        raise ValueError("Design.items needs columns 'text' and 'set_id'")
    if not {"unit_id", "row_a", "row_b"} <= set(non.columns):
        raise ValueError("Design.nonparaphrase needs columns 'unit_id', 'row_a' and 'row_b'")
    units = design.units
    if len(units) < 2:
        raise DataSelectionError(
            f"{design.dataset}: {len(units)} paraphrase set(s) with two or more members; at least 2 are "
            "needed for a gap with an interval. Ask for more sets or pairs."
        )
    if len(non) == 0 or not non["unit_id"].isin(units).all():
        raise ValueError(f"{design.dataset}: every non-paraphrase pair must belong to a paraphrase set")
    missing = units.difference(pd.Index(non["unit_id"].unique()))
    if len(missing):
        raise ValueError(f"{design.dataset}: paraphrase sets without non-paraphrase pairs, e.g. {list(missing[:3])}")
    rows = non[["row_a", "row_b"]].to_numpy()
    if rows.min() < 0 or rows.max() >= len(items):
        raise ValueError(f"{design.dataset}: non-paraphrase rows outside the {len(items)} items")
    same = items["set_id"].to_numpy()[rows[:, 0]] == items["set_id"].to_numpy()[rows[:, 1]]
    same &= items["set_id"].to_numpy()[rows[:, 0]] != ""
    if same.any():
        raise ValueError(f"{design.dataset}: a non-paraphrase pair lies inside one paraphrase set")
    return design


def design_mrpc(pairs: pd.DataFrame, n_pairs: int, seed: int = 0) -> Design:
    """MRPC: ``n_pairs`` paraphrase pairs and as many of MRPC's own non-paraphrase pairs (§2, Table 1).

    ``pairs`` is :func:`ifhelpers.data.paraphrases.load_mrpc_pairs`. Each paraphrase pair is a set of two
    (eq. 2 is then its cosine); non-paraphrase pair i is attached to paraphrase pair i, so the mean
    over sets of ``cos_para − cos_nonpara`` is the difference of the two means. Both samples are
    drawn without replacement with a generator seeded by ``seed``.
    """
    n_pairs = int(n_pairs)
    pos = pairs[pairs["is_paraphrase"]]
    neg = pairs[~pairs["is_paraphrase"]]
    if n_pairs < 2 or n_pairs > min(len(pos), len(neg)):
        raise DataSelectionError(
            f"n_mrpc_pairs must lie in [2, {min(len(pos), len(neg))}] for these MRPC pairs "
            f"({len(pos)} paraphrase, {len(neg)} non-paraphrase pairs); got {n_pairs}"
        )
    rng = rng_for(seed, "vector-space", "mrpc")
    pos = pos.iloc[np.sort(rng.choice(len(pos), n_pairs, replace=False))]
    neg = neg.iloc[np.sort(rng.choice(len(neg), n_pairs, replace=False))]
    texts, set_ids = [], []
    for a, b, pid in zip(pos["text_a"], pos["text_b"], pos["pair_id"]):
        texts += [a, b]
        set_ids += [f"mrpc:{pid}"] * 2
    start = len(texts)
    for a, b in zip(neg["text_a"], neg["text_b"]):
        texts += [a, b]
        set_ids += ["", ""]
    items = pd.DataFrame({"text": texts, "set_id": set_ids})
    rows_a = start + 2 * np.arange(n_pairs)
    nonpara = pd.DataFrame({"unit_id": [f"mrpc:{pid}" for pid in pos["pair_id"]], "row_a": rows_a,
                            "row_b": rows_a + 1, "pair_id": neg["pair_id"].to_numpy()})
    source = pairs.attrs.get("source", "mrpc")
    return _check_design(Design("mrpc", items, nonpara, source, DATASET_LABELS["mrpc"]))


def design_paraphrase_sets(sets: pd.DataFrame, n_nonparaphrase_per_set: int, seed: int = 0,
                           dataset: str = "tapaco", label: str | None = None) -> Design:
    """Paraphrase sets (TaPaCo or its stand-in, ParaRel facts) with eq. 4 pairs drawn per set.

    ``sets`` has the tidy columns of :mod:`ifhelpers.data.paraphrases` (``set_id``, ``text``, ``source``).
    Every set with two or more members is a unit (a paraphrase set of eq. 3); a set of one member (a
    ParaRel fact of a relation with a single usable template) has no pair and is not a paraphrase
    set, so eq. 4 does not draw it either. Each unit p_i gets ``n_nonparaphrase_per_set`` pairs from
    :func:`ifhelpers.metrics.cosine.sample_nonparaphrase_pairs`, the one eq. 4 sampler (p_j uniform
    among the other units, one member of each uniformly). The generator is seeded by
    ``(seed, dataset)``, so the pairs do not depend on the model.

    ``label`` defaults to the dataset's name, with the source appended when it is not the dataset
    itself (the offline TaPaCo stand-in: ``"TaPaCo stand-in (msrp/opinosis paraphrase groups)"``).
    """
    k = int(n_nonparaphrase_per_set)
    if k < 1:
        raise ValueError(f"n_nonparaphrase_per_set must be >= 1; got {k}")
    s = sets.reset_index(drop=True)
    items = pd.DataFrame({"text": s["text"].astype(str).to_numpy(), "set_id": s["set_id"].astype(str).to_numpy()})
    if (items["set_id"] == "").any():
        raise ValueError("set_id must not be empty")
    n_units = int((items["set_id"].value_counts() >= 2).sum())
    if n_units < 2:
        raise DataSelectionError(f"{dataset}: non-paraphrase pairs need at least 2 sets with two or more members; "
                                 f"got {n_units}")
    pairs = metrics.cosine.sample_nonparaphrase_pairs(items["set_id"], k * n_units,
                                                      rng_for(seed, "vector-space", "nonparaphrase", dataset))
    nonpara = pairs.rename(columns={"set_id": "unit_id"})
    source = sets.attrs.get("source") or str(s["source"].iloc[0])
    if label is None:
        label = DATASET_LABELS.get(dataset, dataset)
        if source.startswith("stand-in:"):
            label = f"{label} stand-in ({source[len('stand-in:'):].strip()})"
        elif source.lower() != dataset.lower():
            label = f"{label} ({source})"
    return _check_design(Design(dataset, items, nonpara, source, label))


def design_pararel(queries: pd.DataFrame, n_nonparaphrase_per_set: int, seed: int = 0) -> Design:
    """ParaRel: one paraphrase set per fact, all its queries (§2, Table 1 "PARAREL").

    ``queries`` is :func:`ifhelpers.data.pararel.load_queries`; item rows follow its row order, which is
    the order of each prompt's block in :func:`ifhelpers.model.probes.run_pararel`. Non-paraphrases are
    random queries of two different facts (possibly the same relation and template with another
    subject), drawn as in :func:`design_paraphrase_sets`.
    """
    sets = pararel.paraphrase_sets(queries)
    return design_paraphrase_sets(sets, n_nonparaphrase_per_set, seed, dataset="pararel",
                                  label=DATASET_LABELS["pararel"])


def build_designs(datasets: Sequence[str], *, n_mrpc_pairs: int, n_paraphrase_sets: int,
                  n_nonparaphrase_per_set: int, pararel_relations=None, pararel_n_per_relation: int = 8,
                  seed: int = 0) -> tuple[dict, pd.DataFrame | None]:
    """The designs of the chapter's ``datasets`` (Table 1's columns), in Table 1's order, and the ParaRel
    queries the ParaRel design was built from (None without ParaRel).

    MRPC: :func:`design_mrpc` on the test split; TaPaCo: ``n_paraphrase_sets`` sets of
    :func:`ifhelpers.data.paraphrases.load_tapaco_sets` (the offline stand-in when TaPaCo is absent)
    through :func:`design_paraphrase_sets`; ParaRel: :func:`ifhelpers.data.pararel.load_queries`
    through :func:`design_pararel`. Every draw is seeded by ``seed``.
    """
    designs, queries = {}, None
    if "mrpc" in datasets:
        designs["mrpc"] = design_mrpc(paraphrases.load_mrpc_pairs("test"), n_mrpc_pairs, seed)
    if "tapaco" in datasets:
        tapaco_sets = paraphrases.load_tapaco_sets(n_sets=n_paraphrase_sets, seed=seed)
        designs["tapaco"] = design_paraphrase_sets(tapaco_sets, n_nonparaphrase_per_set, seed)
    if "pararel" in datasets:
        queries = pararel.load_queries(pararel_relations, pararel_n_per_relation, seed)
        designs["pararel"] = design_pararel(queries, n_nonparaphrase_per_set, seed)
    return designs, queries


def describe_designs(designs: dict) -> pd.DataFrame:
    """One row of :meth:`Design.describe` per design: texts, paraphrase sets, their sizes, eq. 4 pairs."""
    return pd.DataFrame([design.describe() for design in designs.values()])


def text_key(text: str) -> str:
    """A text up to case, spacing and punctuation (its letters and digits, lower-cased), so that
    differently tokenised copies of one sentence compare equal."""
    return "".join(ch for ch in str(text).lower() if ch.isalnum())


def share_found(texts, reference) -> float:
    """The share of ``texts`` that occur in ``reference`` up to :func:`text_key` (NaN without texts)."""
    keys = set(map(text_key, reference))
    found = [text_key(t) in keys for t in texts]
    return float(np.mean(found)) if found else NAN


def stand_in_overlap(designs: dict) -> float:
    """How much of the offline TaPaCo stand-in's MSRP part occurs in MRPC (either side of any pair, any
    split), up to tokenisation; NaN when the TaPaCo design is absent or is not the stand-in.

    The stand-in's MSRP groups are regrouped MRPC sentences, so the chapter's MRPC and "TaPaCo"
    columns are less independent than Table 1's.
    """
    design = designs.get("tapaco")
    if design is None or design.source != paraphrases.STAND_IN_SOURCE:
        return NAN
    mrpc = paraphrases.load_mrpc_pairs("all")
    msrp = paraphrases.load_grouped_paraphrases("msrp")
    return share_found(msrp["text"], [*mrpc["text_a"], *mrpc["text_b"]])


# --------------------------------------------------------------------------------------------------
# 2. Representations


# --------------------------------------------------------------------------------------------------
# 3. The per-set table


# --------------------------------------------------------------------------------------------------
# 4. Estimates


_KEYS = ["model", "role", "dataset"]
_VALUES = ["cos_para", "cos_nonpara", "gap"]
#: The columns of :func:`gap_comparison` (before ``representation`` and ``confidence``).
COMPARISON_COLUMNS = ["dataset", "base", "tuned", "n_sets", "base_gap", "tuned_gap", "mean_diff", "diff_low",
                      "diff_high", "wilcoxon_p", "direction", "note"]


def prompt_average(units: pd.DataFrame, representation: str = "final_norm") -> pd.DataFrame:
    """Per (model, dataset, set): ``cos_para``, ``cos_nonpara`` and ``gap`` averaged over prompts (App. B.2)."""
    chosen = units[units["representation"] == representation]
    if chosen.empty:
        raise ValueError(f"no rows with representation {representation!r}")
    n_prompts = chosen.groupby(_KEYS + ["unit_id"])["prompt_id"].nunique()
    if n_prompts.nunique() != 1:
        raise ValueError("paraphrase sets were scored under different numbers of prompts")
    return chosen.groupby(_KEYS + ["unit_id"], sort=False)[_VALUES].mean().reset_index()


def _summary_row(values: pd.DataFrame, n_resamples, confidence, seed) -> dict:
    ci = stats.bootstrap_ci(values["gap"].to_numpy(), n_resamples=n_resamples, confidence=confidence, seed=seed)
    return {"gap": ci["estimate"], "low": ci["low"], "high": ci["high"], "se": ci["se"],
            "cos_para": values["cos_para"].mean(), "cos_nonpara": values["cos_nonpara"].mean(),
            "n_sets": int(ci["n"])}


def summarise_gaps(units: pd.DataFrame, representation: str = "final_norm", n_resamples: int = 2000,
                   confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """The gap per model, dataset and prompt, and averaged over prompts, with bootstrap intervals.

    ``gap`` is cos(paraph.) − cos(¬paraph.) (eq. 3 − eq. 4). Intervals resample paraphrase sets
    (:func:`ifhelpers.stats.bootstrap_ci`, BCa), each with its own non-paraphrase pairs; for
    ``prompt == "mean"`` a set's value is first averaged over the prompts, so the interval is that
    of the prompt-averaged gap that Table 1 reports. Columns ``model``, ``role``, ``dataset``,
    ``dataset_label``, ``prompt`` (``"0"``, ``"1"``, ``"2"``, ``"mean"``), ``gap``, ``low``, ``high``,
    ``se``, ``cos_para``, ``cos_nonpara``, ``n_sets``, ``representation``, ``confidence``.
    """
    chosen = units[units["representation"] == representation]
    rows = []
    for (model, role, dataset), group in chosen.groupby(_KEYS, sort=False):
        label = group["dataset_label"].iloc[0]
        for prompt_id, by_prompt in group.groupby("prompt_id"):
            rows.append({"model": model, "role": role, "dataset": dataset, "dataset_label": label,
                         "prompt": str(prompt_id), **_summary_row(by_prompt, n_resamples, confidence, seed)})
        averaged = group.groupby("unit_id", sort=False)[_VALUES].mean()
        rows.append({"model": model, "role": role, "dataset": dataset, "dataset_label": label, "prompt": "mean",
                     **_summary_row(averaged, n_resamples, confidence, seed)})
    out = pd.DataFrame(rows)
    out["representation"] = representation
    out["confidence"] = confidence
    return out


def gap_table(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`summarise_gaps` for reading: ``gap [low, high]`` per dataset, model and role (rows) and
    prompt (columns, ``"mean"`` being Table 1's prompt average)."""
    cells = summary.assign(cell=[f"{g:.3f} [{lo:.3f}, {hi:.3f}]"
                                 for g, lo, hi in zip(summary["gap"], summary["low"], summary["high"])])
    return cells.pivot_table(index=["dataset_label", "model", "role"], columns="prompt", values="cell",
                             aggfunc="first", sort=False)


_DIRECTION_WORDS = {
    "yes": "same as paper (interval excludes 0)", "no": "opposite to paper (interval excludes 0)",
    "n.s. (same sign)": "same sign as paper (interval includes 0)",
    "n.s. (opposite sign)": "opposite sign (interval includes 0)", "n.s.": "no difference", "not defined": "undefined",
}


def direction(mean_diff: float, low: float, high: float) -> str:
    """Words for a tuned − base difference and its interval, against the paper's direction (tuned > base):
    :func:`ifhelpers.stats.verdict`, spelled out for the chapter's tables."""
    return _DIRECTION_WORDS[stats.verdict(mean_diff, low, high)]


def gap_comparison(units: pd.DataFrame, representation: str = "final_norm", n_resamples: int = 2000,
                  confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Paired comparison of each instruction-tuned model with each base model, per dataset (§2, Table 1).

    The units are the paraphrase sets both models scored (the same sets and non-paraphrase pairs,
    read through each model's own prompts), with each set's gap averaged over prompts
    (:func:`prompt_average`). :func:`ifhelpers.stats.compare_roles` gives the mean difference
    tuned − base with a paired bootstrap interval and a Wilcoxon signed-rank test; ``direction``
    compares it with the paper's finding that instruction-tuned models have the bigger gap.
    Columns :data:`COMPARISON_COLUMNS`, ``representation`` and ``confidence``; no rows without both roles.
    """
    averaged = prompt_average(units, representation)
    paired = stats.compare_roles(averaged, "gap", "unit_id", by="dataset", n_resamples=n_resamples,
                                 confidence=confidence, seed=seed)
    out = paired.rename(columns={"n": "n_sets", "base_mean": "base_gap", "tuned_mean": "tuned_gap"})
    out["direction"] = [direction(d, lo, hi) for d, lo, hi in zip(out["mean_diff"], out["diff_low"], out["diff_high"])]
    out = out[COMPARISON_COLUMNS].copy()
    out["representation"] = representation
    out["confidence"] = confidence
    return out


def compare_representations(units: pd.DataFrame, n_resamples: int = 2000, confidence: float = 0.95,
                            seed: int = 0) -> pd.DataFrame:
    """:func:`gap_comparison` with h^L after and before the final norm (:data:`ifhelpers.measure.units.REPRESENTATIONS`), stacked:
    does the direction of §2's finding depend on which of the two vectors is "the outermost
    representation"?"""
    return pd.concat([gap_comparison(units, r, n_resamples, confidence, seed) for r in REPRESENTATIONS])


def representation_table(by_representation: pd.DataFrame) -> pd.DataFrame:
    """:func:`compare_representations` for reading: base and tuned gaps and their difference per
    dataset and pair (rows) and representation (columns), to three decimals."""
    return by_representation.pivot_table(index=["dataset", "base", "tuned"], columns="representation",
                                         values=["base_gap", "tuned_gap", "mean_diff"], sort=False).round(3)


def sign_changes(by_representation: pd.DataFrame) -> int:
    """On how many (dataset, base, tuned) comparisons of :func:`compare_representations` the sign of
    tuned − base differs between the two representations (0 without comparisons)."""
    if by_representation.empty:
        return 0
    signs = by_representation.pivot_table(index=["dataset", "base", "tuned"], columns="representation",
                                          values="mean_diff")
    first, second = REPRESENTATIONS
    return int((np.sign(signs[first]) != np.sign(signs[second])).sum())


def mean_cosines(units: pd.DataFrame) -> pd.DataFrame:
    """Mean ``cos_para``, ``cos_nonpara`` and ``gap`` over sets and prompts (eq. 3, eq. 4 and their
    difference) per model and dataset (rows) and representation (columns), to three decimals."""
    return (units.groupby(["model", "dataset", "representation"], sort=False)[_VALUES]
            .mean().unstack("representation").round(3))


def finding_title(comparison: pd.DataFrame) -> str:
    """A figure title that states the finding of :func:`gap_comparison` (first base/tuned pair).

    "Significantly" means the paired bootstrap interval of the difference excludes zero.
    """
    if comparison.empty:
        return "Gap between paraphrases and non-paraphrases"
    first = comparison.iloc[0]
    rows = comparison[(comparison["base"] == first["base"]) & (comparison["tuned"] == first["tuned"])]
    n, more = len(rows), int((rows["mean_diff"] > 0).sum())
    sig_more = int((rows["diff_low"] > 0).sum())
    sig_less = int((rows["diff_high"] < 0).sum())
    head = f"{first['tuned']} vs {first['base']}:\nthe instruction-tuned model separates paraphrases"
    if more == n:
        return f"{head} more on every dataset ({sig_more} significantly)"
    if more == 0:
        return f"{head} less on every dataset ({sig_less} significantly)"
    return (f"{head} more on {more} of {n} datasets ({sig_more} significantly), "
            f"less on {n - more} ({sig_less} significantly)")


# --------------------------------------------------------------------------------------------------
# The paper's numbers (always labelled as the paper's)

def side_by_side(summary: pd.DataFrame, gaps: pd.DataFrame | None = None) -> pd.DataFrame:
    """Our prompt-averaged gaps beside the paper's Tables 1 and 4: one row per model, one column per dataset.

    Our cells read ``gap [low, high]``; the paper's are its printed numbers. The ``source`` column
    says whose number each row is.
    """
    gaps = paper.gaps() if gaps is None else gaps
    ours = summary[summary["prompt"] == "mean"].copy()
    ours["cell"] = [f"{g:.3f} [{lo:.3f}, {hi:.3f}]" for g, lo, hi in zip(ours["gap"], ours["low"], ours["high"])]
    ours_wide = ours.pivot_table(index=["model", "role"], columns="dataset", values="cell", aggfunc="first",
                                 sort=False).reset_index()
    ours_wide.insert(0, "source", "ours (this run)")
    theirs = gaps.copy()
    # as printed: three decimals in Table 1, scientific notation in Table 4
    theirs["cell"] = [f"{g:.2e}" if t == "Table 4" else f"{g:.3f}" for g, t in zip(theirs["gap"], theirs["table"])]
    theirs_wide = theirs.pivot_table(index=["source", "table", "model", "role"], columns="dataset", values="cell",
                                     aggfunc="first", sort=False).reset_index()
    out = pd.concat([ours_wide, theirs_wide], ignore_index=True)
    ours_order = list(dict.fromkeys(summary["dataset"]))
    datasets = [d for d in DATASETS if d in out.columns] + [d for d in ours_order if d not in DATASETS]
    out = out[["source", "table", "model", "role", *datasets]].fillna("")
    out.columns.name = None
    labels = dict(zip(summary["dataset"], summary["dataset_label"]))
    names = {}
    for d in datasets:
        ours = labels.get(d, DATASET_LABELS.get(d, d))
        paper_name = DATASET_LABELS.get(d)
        names[d] = ours if paper_name in (None, ours) else f"{paper_name} | ours: {ours}"
    return out.rename(columns=names)


def plot_gaps(summary: pd.DataFrame, colors: dict | None = None, paper_gaps_frame: pd.DataFrame | None = None,
              title: str | None = None):
    """One panel per dataset: each model's prompt-averaged gap with its interval, base → tuned.

    Our models are filled circles in their colour (``colors``, default by role) with the bootstrap
    interval, the three single prompts as small dots, and a line from the base to each tuned model.
    With ``paper_gaps_frame`` (from :func:`ifhelpers.paper.gaps`) the paper's LLaMA-7b family (Table 1) is
    drawn on a second y-axis of each panel in :data:`ifhelpers.plots.PAPER_STYLE` (hollow black
    diamonds, "paper"): its gaps are on another scale, only the direction base → tuned compares.
    Returns the figure.
    """
    import matplotlib.pyplot as plt

    from ifhelpers.plots import PAPER_STYLE, ROLE_COLORS

    means = summary[summary["prompt"] == "mean"]
    singles = summary[summary["prompt"] != "mean"]
    datasets = [d for d in DATASETS if d in set(means["dataset"])] + \
        [d for d in dict.fromkeys(means["dataset"]) if d not in DATASETS]
    roles = ["base", "instruction-tuned"]
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.6 * len(datasets) + 0.6, 3.8), squeeze=False)
    handles = {}
    for ax, dataset in zip(axes[0], datasets):
        d = means[means["dataset"] == dataset]
        models_here = list(dict.fromkeys(d["model"]))
        offsets = {m: (i - (len(models_here) - 1) / 2) * 0.12 for i, m in enumerate(models_here)}
        points = {}
        for _, row in d.iterrows():
            x = roles.index(row["role"]) + offsets[row["model"]]
            color = (colors or {}).get(row["model"], ROLE_COLORS.get(row["role"], "grey"))
            ax.errorbar(x, row["gap"], yerr=[[row["gap"] - row["low"]], [row["high"] - row["gap"]]], fmt="o",
                        color=color, ms=7, capsize=4, lw=1.6, zorder=4)
            handles[row["model"]] = plt.Line2D([], [], color=color, marker="o", ls="", label=row["model"])
            s = singles[(singles["dataset"] == dataset) & (singles["model"] == row["model"])]
            ax.scatter(np.full(len(s), x + 0.05), s["gap"], s=10, color=color, alpha=0.6, zorder=3)
            points[row["model"]] = (x, row["gap"], row["role"])
        for b, (xb, yb, rb) in points.items():
            for t, (xt, yt, rt) in points.items():
                if rb == "base" and rt == "instruction-tuned":
                    ax.plot([xb, xt], [yb, yt], color="grey", lw=1, ls="-", zorder=2)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(range(len(roles)), ["base", "instruction-\ntuned"])
        ax.set_xlim(-0.5, len(roles) - 0.5)
        ax.set_title(d["dataset_label"].iloc[0] if len(d) else dataset, fontsize=10)
        ax.set_ylabel("cos(paraph.) − cos(¬paraph.)" if ax is axes[0][0] else "")
        if paper_gaps_frame is not None:
            p = paper_gaps_frame[(paper_gaps_frame["dataset"] == dataset) & (paper_gaps_frame["family"] == "llama")]
            if len(p):
                twin = ax.twinx()
                xs = [roles.index(r) + 0.3 for r in p["role"]]
                twin.scatter(xs, p["gap"], **PAPER_STYLE)
                base = p.loc[p["role"] == "base", "gap"]
                tuned = p.loc[p["role"] == "instruction-tuned", "gap"]
                if len(base) and len(tuned):
                    twin.plot([0.3, 1.3], [base.iloc[0], tuned.mean()], color="black", lw=0.8, ls=":")
                # the paper's zero on our zero: both axes start from "no gap"
                low, high = ax.get_ylim()
                top = max(p["gap"].max() * 1.15, 1e-9)
                if high <= 0:
                    twin.set_ylim(0, top)
                else:
                    ratio = top / high if high > 0 else 1.0
                    twin.set_ylim(min(low, 0) * ratio, top)
                twin.grid(False)
                twin.tick_params(axis="y", labelsize=8, colors="dimgray")
                if ax is axes[0][-1]:
                    twin.set_ylabel("paper, LLaMA-7b family (Table 1)", color="dimgray", fontsize=9)
                handles["paper"] = plt.Line2D([], [], marker=PAPER_STYLE["marker"], ls="", markerfacecolor="none",
                                              markeredgecolor="black", label="paper (Table 1, right axis)")
    handles["prompts"] = plt.Line2D([], [], marker="o", ms=3, ls="", color="grey", alpha=0.6,
                                    label="single prompts")
    fig.legend(handles=list(handles.values()), loc="lower center", ncol=min(len(handles), 5), frameon=False,
               bbox_to_anchor=(0.5, -0.08))
    if title:
        fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# 5. Values for the prose (keyed by the names the chapter glues them under)


def sample_sizes(designs: dict) -> dict:
    """How many paraphrase sets each design compares (MRPC: paraphrase pairs), 0 for an absent dataset:
    ``n_mrpc_pairs``, ``n_tapaco_sets``, ``n_pararel_sets``."""
    n_sets = {dataset: len(design.units) for dataset, design in designs.items()}
    return {"n_mrpc_pairs": int(n_sets.get("mrpc", 0)), "n_tapaco_sets": int(n_sets.get("tapaco", 0)),
            "n_pararel_sets": int(n_sets.get("pararel", 0))}


def comparison_values(comparison: pd.DataFrame, suffix: str = "") -> dict:
    """The numbers the prose quotes from :func:`gap_comparison`: per dataset of :data:`DATASETS`, the first
    base/tuned pair's ``base_gap``, ``tuned_gap``, ``mean_diff``, ``diff_low``, ``diff_high``,
    ``wilcoxon_p`` (NaN when absent) and ``direction`` ("n/a"), named ``<key><suffix>_<dataset>``; over
    all rows, ``n_same<suffix>`` (same sign as the paper), ``n_same_significant<suffix>`` and
    ``n_opposite_significant<suffix>`` (the interval excludes 0 on the paper's / the other side) and
    ``n_comparisons<suffix>``."""
    values = {}
    for dataset in DATASETS:
        rows = comparison[comparison["dataset"] == dataset]
        first = rows.iloc[0] if len(rows) else None
        for key in ("base_gap", "tuned_gap", "mean_diff", "diff_low", "diff_high", "wilcoxon_p"):
            values[f"{key}{suffix}_{dataset}"] = float(first[key]) if first is not None else NAN
        values[f"direction{suffix}_{dataset}"] = str(first["direction"]) if first is not None else "n/a"
    words = comparison["direction"].astype(str)
    values[f"n_same{suffix}"] = int(words.str.startswith("same").sum())
    values[f"n_same_significant{suffix}"] = int((words == _DIRECTION_WORDS["yes"]).sum())
    values[f"n_opposite_significant{suffix}"] = int((words == _DIRECTION_WORDS["no"]).sum())
    values[f"n_comparisons{suffix}"] = int(len(comparison))
    return values


def nonparaphrase_cosines(units: pd.DataFrame, representation: str, base: str | None,
                          tuned: str | None) -> dict:
    """eq. 4 per dataset, the mean cosine of non-paraphrase pairs over sets and prompts, of the ``base``
    and the ``tuned`` model: ``base_cos_nonpara_<dataset>``, ``tuned_cos_nonpara_<dataset>`` (NaN when
    absent)."""
    nonpara = units[units["representation"] == representation].groupby(["model", "dataset"])["cos_nonpara"].mean()
    return {f"{key}_cos_nonpara_{dataset}": float(nonpara.get((name, dataset), NAN))
            for key, name in (("base", base), ("tuned", tuned)) for dataset in DATASETS}


def paper_values(family: str = "LLaMA-7b") -> dict:
    """Table 1's numbers the prose quotes (:func:`ifhelpers.paper.gap_directions`), per dataset:
    ``paper_base_<d>`` (the base gap), ``paper_tuned_mean_<d>`` (mean over its tuned models),
    ``paper_n_above_<d>`` and ``paper_n_equal_<d>`` (how many tuned models are above / equal to it)."""
    directions = paper.gap_directions().set_index(["family", "dataset"])
    values = {}
    for dataset in DATASETS:
        row = directions.loc[(family, dataset)]
        values[f"paper_base_{dataset}"] = float(row["base_gap"])
        values[f"paper_tuned_mean_{dataset}"] = float(row["tuned_mean"])
        values[f"paper_n_above_{dataset}"] = int(row["n_tuned_above"])
        values[f"paper_n_equal_{dataset}"] = int(row["n_tuned_equal"])
    return values


def representation_values(by_representation: pd.DataFrame, units: pd.DataFrame, representation: str,
                          base: str | None, tuned: str | None) -> dict:
    """What the prose says about the choice of h^L (§2's "outermost representation"): the
    :func:`comparison_values` of the other representation (suffix ``_other``), both names
    (``main_representation``, ``other_representation``), ``n_sign_changes`` (:func:`sign_changes`),
    ``representation_phrase`` and the mean non-paraphrase cosine of ``base`` and ``tuned`` before
    (``*_cos_nonpara_pre``) and after the norm (``*_cos_nonpara_post``), averaged over datasets."""
    other = next(r for r in REPRESENTATIONS if r != representation)
    values = comparison_values(by_representation[by_representation["representation"] == other], suffix="_other")
    values["other_representation"] = other.replace("_", "-")
    values["main_representation"] = representation.replace("_", "-")
    n_changes = sign_changes(by_representation)
    values["n_sign_changes"] = n_changes
    values["representation_phrase"] = ("a direction that changes with the normalisation applied to the vector"
                                       if n_changes else
                                       "one vector of two possible (the direction holds for both here)")
    mean_cos = units.groupby(["model", "representation"])["cos_nonpara"].mean()
    for name, key in ((base, "base"), (tuned, "tuned")):
        for rep, tag in (("pre_norm", "pre"), ("final_norm", "post")):
            values[f"{key}_cos_nonpara_{tag}"] = float(mean_cos.get((name, rep), NAN))
    return values


def printed_eq2_values(units: pd.DataFrame, representation: str, model: str | None) -> dict:
    """eq. 2 as printed (1/M times the ordered-pair sum) against the mean over pairs, on the TaPaCo sets of
    ``model``: ``tapaco_min_size``, ``tapaco_max_size`` (set sizes), ``literal_gap_tapaco`` and
    ``pairs_gap_tapaco`` (the gap with each form, averaged over sets and prompts); 0 and NaN without
    TaPaCo rows."""
    chosen = units[(units["representation"] == representation) & (units["dataset"] == "tapaco")
                   & (units["model"] == model)]
    if chosen.empty:
        return {"tapaco_min_size": 0, "tapaco_max_size": 0, "literal_gap_tapaco": NAN, "pairs_gap_tapaco": NAN}
    return {"tapaco_min_size": int(chosen["n_members"].min()), "tapaco_max_size": int(chosen["n_members"].max()),
            "literal_gap_tapaco": float((chosen["cos_para_literal"] - chosen["cos_nonpara"]).mean()),
            "pairs_gap_tapaco": float(chosen["gap"].mean())}


# --------------------------------------------------------------------------------------------------
# 6. Headlines


def headlines(comparison: pd.DataFrame, labels: dict[str, str] | None = None, representation: str = "") -> list[dict]:
    """One headline row (:func:`ifhelpers.findings.row`) per dataset and base/tuned pair of
    :func:`gap_comparison`: the cosine gap, tuned − base, against the paper's Table 1 (and Table 4,
    :func:`ifhelpers.paper.gap_directions`), with :func:`ifhelpers.stats.verdict` on the paired interval.
    ``labels`` names the datasets (default :data:`DATASET_LABELS`)."""
    labels = labels or {}
    directions = paper.gap_directions()
    rows = []
    for _, c in comparison.iterrows():
        dataset = c["dataset"]
        parts, singles = [], {True: [], False: []}
        for _, p in directions[directions["dataset"] == dataset].iterrows():
            if p["n_tuned"] > 1:
                parts.append(f"{p['family']} {p['base_gap']:.3f}; {p['n_tuned']} tuned "
                             f"{p['tuned_min']:.3f}-{p['tuned_max']:.3f}, {p['n_tuned_above']} larger")
            else:
                singles[bool(p["n_tuned_above"])].append(p["family"])
        parts += [f"{', '.join(f)}: tuned {'larger' if up else 'not larger'} (Table 4)"
                  for up, f in singles.items() if f]
        label = labels.get(dataset, DATASET_LABELS.get(dataset, dataset))
        rows.append(findings.row(
            "§2, Table 1", f"cos(paraph.) − cos(¬paraph.), tuned − base: {label}", "; ".join(parts),
            f"{findings.diff_text(c['mean_diff'], c['diff_low'], c['diff_high'])} (base {c['base_gap']:.3f}, "
            f"tuned {c['tuned_gap']:.3f})",
            stats.verdict(c["mean_diff"], c["diff_low"], c["diff_high"]),
            estimate=c["mean_diff"], low=c["diff_low"], high=c["diff_high"], base=c["base"], tuned=c["tuned"],
            note=f"{int(c['n_sets'])} paraphrase sets; paired bootstrap interval; Wilcoxon p = {c['wilcoxon_p']:.2g}"
                 + (f"; representation {representation}" if representation else "")))
    return rows
