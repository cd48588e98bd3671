"""Pure metric functions of the paper: arrays or tidy frames in, numbers out.

Every function here implements one quantity of Fierro, Li & Søgaard (2024), *Does
Instruction Tuning Make LLMs More Consistent?*, and its docstring names the equation or
section. Nothing here loads a model; representations, predictions and decoded tokens are
computed elsewhere and passed in.

Sections of this module follow the paper:

1. Consistency in vector space (§2, App. B.1 eq. 2-4, §4 Fig. 4): :func:`cosine_matrix`,
   :func:`mean_pairwise_cosine`, :func:`paraphrase_cosine_per_set`,
   :func:`paraphrase_cosine`, :func:`sample_nonparaphrase_pairs`, :func:`pair_cosines`,
   :func:`nonparaphrase_cosine`, :func:`paraphrase_gap`, :func:`grouped_pair_cosine`.
2. Factual consistency on ParaRel (§3, Elazar et al. 2021; App. E):
   :func:`pararel_query_pairs`, :func:`pararel_scores`, :func:`pararel_macro`.
3. MMLU accuracy and spread (§3, App. C.1): :func:`mmlu_predictions`,
   :func:`mmlu_accuracy`, :func:`spread`, :func:`mmlu_spread`, :func:`mmlu_summary`.
4. BECEL consistency (§3, App. C.2): :func:`becel_consistency`,
   :func:`becel_label_consistency`, :func:`accuracy`.
5. Subject attribute rate (§4, App. D, Fig. 2): :func:`clean_token`,
   :func:`attribute_set`, :func:`subject_attribute_rate`.
6. Extraction rate (§4 eq. 1, Fig. 5 and 8): :func:`extraction_rate`.
7. Relation similarity (§4 Fig. 3): :func:`relation_similarity`.

Representations are either ``(n, d)`` (one layer) or ``(n, L, d)`` (all layers; the
layer axis is the middle one). Functions given a 3-D array return one value per layer.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = [
    "cosine_matrix",
    "mean_pairwise_cosine",
    "paraphrase_cosine_per_set",
    "paraphrase_cosine",
    "sample_nonparaphrase_pairs",
    "pair_cosines",
    "nonparaphrase_cosine",
    "paraphrase_gap",
    "grouped_pair_cosine",
    "pararel_query_pairs",
    "pararel_scores",
    "pararel_macro",
    "mmlu_predictions",
    "mmlu_accuracy",
    "spread",
    "mmlu_spread",
    "mmlu_summary",
    "accuracy",
    "becel_consistency",
    "becel_label_consistency",
    "clean_token",
    "attribute_set",
    "subject_attribute_rate",
    "extraction_rate",
    "relation_similarity",
]

NORMALISATIONS = ("pairs", "paper_literal")

# --------------------------------------------------------------------------------------
# 1. Cosine similarity of paraphrases and non-paraphrases (§2, App. B.1)
# --------------------------------------------------------------------------------------


def _as_reps(reps, name="reps") -> np.ndarray:
    """Validate a ``(n, d)`` or ``(n, L, d)`` array of representations as float64."""
    arr = np.asarray(reps, dtype=np.float64)
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"{name} must be 2-D (n, d) or 3-D (n, L, d); got shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (no rows)")
    if arr.shape[-1] == 0:
        raise ValueError(f"{name} has zero-dimensional vectors (d = 0)")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _unit(arr: np.ndarray, name="reps") -> np.ndarray:
    """Scale every vector (last axis) to unit length; a zero vector has no cosine."""
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"{name} contains a zero vector; its cosine is undefined")
    return arr / norms


def _scalar_or_layers(values: np.ndarray):
    """A 0-d result becomes a Python float, a per-layer result stays an array."""
    values = np.asarray(values)
    return float(values) if values.ndim == 0 else values


def _layer_columns(arr: np.ndarray):
    """Column labels for per-unit tables: ``["cos"]`` for one layer, else layers."""
    if arr.ndim == 2:
        return pd.Index(["cos"])
    return pd.RangeIndex(arr.shape[1], name="layer")


def _check_normalisation(normalisation: str) -> None:
    if normalisation not in NORMALISATIONS:
        raise ValueError(
            f"normalisation must be one of {NORMALISATIONS}; got {normalisation!r}"
        )


def cosine_matrix(a, b=None) -> np.ndarray:
    """Cosine similarity of every row of ``a`` with every row of ``b`` (App. B.1).

    The building block of eq. 2-4: ``cos(s_i, s_j) = s_i·s_j / (|s_i| |s_j|)``.

    Parameters
    ----------
    a : array (n, d)
    b : array (m, d), optional
        Defaults to ``a`` (the set's own similarity matrix).

    Returns
    -------
    array (n, m)
    """
    a = _as_reps(a, "a")
    if a.ndim != 2:
        raise ValueError(f"cosine_matrix takes 2-D arrays; a has shape {a.shape}")
    b = a if b is None else _as_reps(b, "b")
    if b.ndim != 2:
        raise ValueError(f"cosine_matrix takes 2-D arrays; b has shape {b.shape}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"dimension mismatch: a is {a.shape}, b is {b.shape}")
    return _unit(a, "a") @ _unit(b, "b").T


def _per_set_offdiag(unit: np.ndarray, codes: np.ndarray, n_sets: int):
    """Sum of cos(s_i, s_j) over ordered pairs i != j within each set, and set sizes.

    Uses ``sum_{i != j} u_i·u_j = |sum_i u_i|^2 - sum_i |u_i|^2`` so the cost is
    linear in the set size and the layer axis is handled for free.
    """
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    u = unit[order]
    summed = np.add.reduceat(u, starts, axis=0)  # (G, [L,] d)
    sq_norms = np.add.reduceat(np.sum(u * u, axis=-1), starts, axis=0)  # (G, [L])
    offdiag = np.sum(summed * summed, axis=-1) - sq_norms
    sizes = np.bincount(codes, minlength=n_sets)
    return offdiag, sizes


def _normalise_offdiag(offdiag, sizes, normalisation):
    m = sizes.reshape((-1,) + (1,) * (offdiag.ndim - 1)).astype(np.float64)
    if normalisation == "pairs":
        return offdiag / (m * (m - 1))
    return offdiag / m


def mean_pairwise_cosine(vectors, normalisation: str = "pairs"):
    """Average cosine similarity within one paraphrase set, cos(p) (App. B.1 eq. 2).

    The paper prints eq. 2 as ``cos(p) = 1/M * sum_{i != j} cos(s_i, s_j)``: a sum over
    the M(M-1) *ordered* pairs divided by M, which is not a mean. We default to the mean
    over pairs (``normalisation="pairs"``): the ordered-pair sum divided by M(M-1), which
    equals the mean over the M(M-1)/2 unordered pairs because cosine is symmetric. The
    literal form (``normalisation="paper_literal"``) equals (M-1) times the mean, so it
    grows with the set size: a set of 5 paraphrases at mean cosine 0.5 scores 2.0 and a
    set of 2 scores 0.5. Datasets with different set sizes (MRPC pairs, TAPACO sets,
    ParaRel templates per relation) would then not be comparable, nor would the gap of
    eq. 3 minus eq. 4, where eq. 4 is a plain mean. Use the literal form only to check
    what the printed equation would give.

    Parameters
    ----------
    vectors : array (M, d) or (M, L, d)
        The M >= 2 members of one paraphrase set (optionally at every layer).
    normalisation : {"pairs", "paper_literal"}

    Returns
    -------
    float, or array (L,) for 3-D input.
    """
    _check_normalisation(normalisation)
    arr = _as_reps(vectors, "vectors")
    if arr.shape[0] < 2:
        raise ValueError(
            "a paraphrase set needs at least 2 members to have a pairwise cosine; "
            f"got {arr.shape[0]}"
        )
    unit = _unit(arr, "vectors")
    offdiag, sizes = _per_set_offdiag(unit, np.zeros(arr.shape[0], dtype=np.intp), 1)
    return _scalar_or_layers(_normalise_offdiag(offdiag, sizes, normalisation)[0])


def _codes(set_ids, n: int, name="set_ids"):
    """Integer codes (first-appearance order) and the distinct labels of ``set_ids``."""
    if isinstance(set_ids, str):
        raise TypeError(f"{name} must be a sequence of labels, not a string")
    labels = pd.Series(list(set_ids), dtype=object)
    if len(labels) != n:
        raise ValueError(f"{name} has length {len(labels)} but {n} are needed")
    codes, uniques = pd.factorize(labels, use_na_sentinel=True)
    if np.any(codes < 0):
        raise ValueError(f"{name} contains missing values (None/NaN)")
    return codes.astype(np.intp), pd.Index(uniques, name="set_id")


def paraphrase_cosine_per_set(
    reps, set_ids, normalisation: str = "pairs", drop_singletons: bool = False
) -> pd.DataFrame:
    """cos(p_i) of eq. 2 for every paraphrase set, the units to bootstrap over (App. B.1).

    Parameters
    ----------
    reps : array (n, d) or (n, L, d)
        One representation per input (e.g. last-token hidden state).
    set_ids : sequence of length n
        Which paraphrase set each row belongs to (any hashable labels).
    normalisation : {"pairs", "paper_literal"}
        See :func:`mean_pairwise_cosine`.
    drop_singletons : bool
        A set with one member has no pair. By default that is an error (it usually
        signals a filtering bug); with ``True`` such sets are left out.

    Returns
    -------
    DataFrame indexed by ``set_id`` (first-appearance order), with one column ``"cos"``
    for 2-D input or one column per layer (``layer`` 0..L-1) for 3-D input.
    """
    _check_normalisation(normalisation)
    arr = _as_reps(reps)
    codes, uniques = _codes(set_ids, arr.shape[0])
    offdiag, sizes = _per_set_offdiag(_unit(arr), codes, len(uniques))
    singles = sizes < 2
    if singles.any():
        if not drop_singletons:
            bad = list(uniques[singles][:5])
            raise ValueError(
                f"{int(singles.sum())} paraphrase set(s) have a single member and no "
                f"pair (e.g. {bad}); pass drop_singletons=True to leave them out"
            )
        if singles.all():
            raise ValueError("every paraphrase set has a single member; no pairs at all")
    with np.errstate(divide="ignore", invalid="ignore"):
        per_set = _normalise_offdiag(offdiag, sizes, normalisation)
    per_set = per_set.reshape(len(uniques), -1)
    frame = pd.DataFrame(per_set, index=uniques, columns=_layer_columns(arr))
    return frame.loc[~singles]


def paraphrase_cosine(
    reps, set_ids, normalisation: str = "pairs", drop_singletons: bool = False
):
    """cos(paraph.): macro average of cos(p_i) over the N paraphrase sets (App. B.1 eq. 3).

    Returns a float for ``(n, d)`` input or an ``(L,)`` array for ``(n, L, d)`` input
    (the per-layer curves of §4 Fig. 4). Arguments as in
    :func:`paraphrase_cosine_per_set`, whose rows this averages with equal weight.
    """
    per_set = paraphrase_cosine_per_set(reps, set_ids, normalisation, drop_singletons)
    values = per_set.to_numpy().mean(axis=0)
    return float(values[0]) if per_set.columns.equals(pd.Index(["cos"])) else values


def sample_nonparaphrase_pairs(set_ids, n_pairs: int, seed: int = 0) -> np.ndarray:
    """Draw K random non-paraphrase pairs as row indices (App. B.1, text above eq. 4).

    Follows the paper's description: "we take at random the sets of paraphrases p_i,
    p_j and the paraphrases s_k, s_l". Each draw picks an ordered pair of *distinct*
    sets uniformly, then one member of each set uniformly. Draws are independent, so a
    pair can repeat when K is large relative to the number of possible pairs. The result
    depends only on ``set_ids`` and ``seed``.

    Returns
    -------
    int array (K, 2): rows ``k`` and ``l`` of the representation array.
    """
    n_pairs = int(n_pairs)
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1; got {n_pairs}")
    if isinstance(set_ids, str):
        raise TypeError("set_ids must be a sequence of labels, not a string")
    set_ids = list(set_ids)
    codes, uniques = _codes(set_ids, len(set_ids))
    n_sets = len(uniques)
    if n_sets < 2:
        raise ValueError(
            f"non-paraphrase pairs need at least 2 distinct sets; got {n_sets}"
        )
    rng = np.random.default_rng(seed)
    set_i = rng.integers(n_sets, size=n_pairs)
    set_j = rng.integers(n_sets - 1, size=n_pairs)
    set_j = set_j + (set_j >= set_i)  # uniform over sets != set_i
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=n_sets)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    member_k = rng.integers(sizes[set_i])
    member_l = rng.integers(sizes[set_j])
    return np.stack([order[starts[set_i] + member_k], order[starts[set_j] + member_l]], 1)


def pair_cosines(a, b):
    """Cosine of each aligned pair ``(a[k], b[k])`` (App. B.1 eq. 4 summand).

    Use it for explicit pairs, e.g. MRPC's own non-paraphrase pairs, or the query pairs
    of §4 Fig. 3.

    Parameters
    ----------
    a, b : arrays of the same shape, (K, d) or (K, L, d)

    Returns
    -------
    array (K,) or (K, L)
    """
    a = _as_reps(a, "a")
    b = _as_reps(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: a is {a.shape}, b is {b.shape}")
    return np.sum(_unit(a, "a") * _unit(b, "b"), axis=-1)


def _pairs_array(pairs, n_rows: int) -> np.ndarray:
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"pairs must have shape (K, 2); got {pairs.shape}")
    if pairs.shape[0] == 0:
        raise ValueError("pairs is empty")
    if not np.issubdtype(pairs.dtype, np.integer):
        raise ValueError(f"pairs must hold integer row indices; got dtype {pairs.dtype}")
    if pairs.min() < 0 or pairs.max() >= n_rows:
        raise ValueError(f"pair indices must lie in [0, {n_rows}); got {pairs.min()}..{pairs.max()}")
    return pairs


def nonparaphrase_cosine(reps, set_ids, n_pairs: int = 1000, seed: int = 0, pairs=None):
    """cos(¬paraph.): mean cosine over K random non-paraphrase pairs (App. B.1 eq. 4).

    Pairs come from :func:`sample_nonparaphrase_pairs` (``n_pairs``, ``seed``) unless
    ``pairs`` (int array (K, 2) of row indices) is given. Returns a float or an ``(L,)``
    array. For MRPC's explicit non-paraphrase pairs use :func:`pair_cosines` directly.
    """
    arr = _as_reps(reps)
    if pairs is None:
        if set_ids is None:
            raise ValueError("give set_ids to sample non-paraphrase pairs, or explicit pairs")
        codes, _ = _codes(set_ids, arr.shape[0])
        pairs = sample_nonparaphrase_pairs(codes, n_pairs, seed)
    pairs = _pairs_array(pairs, arr.shape[0])
    return _scalar_or_layers(pair_cosines(arr[pairs[:, 0]], arr[pairs[:, 1]]).mean(axis=0))


def paraphrase_gap(
    reps,
    set_ids,
    *,
    n_pairs: int = 1000,
    seed: int = 0,
    nonparaphrase=None,
    normalisation: str = "pairs",
    drop_singletons: bool = False,
):
    """cos(paraph.) − cos(¬paraph.), the gap of Table 1, Table 4 and §4 Fig. 4.

    Sign: we follow Table 1's column header and §4 ("the bigger this gap the more the
    model makes a difference between paraphrases and non-paraphrases"). The last line of
    App. B.1 writes the opposite, ``cos(¬paraph.) − cos(paraph.)``; that sign would make
    every entry of Table 1 negative, so we read it as a typo.

    Parameters
    ----------
    reps, set_ids : as in :func:`paraphrase_cosine` (eq. 3).
    n_pairs, seed : random non-paraphrase pairs drawn from ``reps`` (eq. 4).
    nonparaphrase : optional tuple ``(a, b)`` of aligned arrays
        Explicit non-paraphrase pairs (MRPC ships its own); overrides sampling.
    normalisation, drop_singletons : see :func:`paraphrase_cosine_per_set`.

    Returns
    -------
    float, or array (L,) for ``(n, L, d)`` input (one gap per layer).
    """
    para = paraphrase_cosine(reps, set_ids, normalisation, drop_singletons)
    if nonparaphrase is None:
        non = nonparaphrase_cosine(reps, set_ids, n_pairs=n_pairs, seed=seed)
    else:
        if len(nonparaphrase) != 2:
            raise ValueError("nonparaphrase must be a tuple (a, b) of aligned arrays")
        non_a, non_b = nonparaphrase
        non = _scalar_or_layers(pair_cosines(non_a, non_b).mean(axis=0))
        if np.ndim(non) != np.ndim(para):
            raise ValueError(
                "paraphrase and non-paraphrase representations differ in having a layer axis"
            )
        if np.ndim(para) == 1 and np.shape(non) != np.shape(para):
            raise ValueError(
                f"layer count mismatch: {np.shape(para)} vs {np.shape(non)}"
            )
    return _scalar_or_layers(np.asarray(para) - np.asarray(non))


def grouped_pair_cosine(reps, pairs, groups) -> pd.DataFrame:
    """Mean cosine of given row pairs within each group, one row per group.

    The macro-average building block behind §4 Fig. 3 (groups = relations), and behind
    the consistent / inconsistent split of §4 Fig. 4 and App. E Fig. 6-7 (groups =
    facts, pairs = the paraphrase pairs from :func:`pararel_query_pairs` whose
    predictions agree or disagree). With all pairs of each set, the group means equal
    :func:`paraphrase_cosine_per_set` with ``normalisation="pairs"``.

    Parameters
    ----------
    reps : array (n, d) or (n, L, d)
    pairs : int array (K, 2) of row indices into ``reps``
    groups : sequence of length K, the group of each pair

    Returns
    -------
    DataFrame indexed by group (first-appearance order) with column ``"cos"`` or one
    column per layer; ``.mean()`` gives the macro average over groups.
    """
    arr = _as_reps(reps)
    pairs = _pairs_array(pairs, arr.shape[0])
    codes, uniques = _codes(groups, pairs.shape[0], name="groups")
    cos = pair_cosines(arr[pairs[:, 0]], arr[pairs[:, 1]]).reshape(pairs.shape[0], -1)
    sums = np.zeros((len(uniques), cos.shape[1]))
    np.add.at(sums, codes, cos)
    counts = np.bincount(codes, minlength=len(uniques))[:, None]
    return pd.DataFrame(sums / counts, index=uniques.rename("group"), columns=_layer_columns(arr))


# --------------------------------------------------------------------------------------
# 2. ParaRel factual consistency (§3; Elazar et al. 2021; App. E)
# --------------------------------------------------------------------------------------

_PARAREL_COLUMNS = ("relation", "fact_id", "template_id", "prediction", "gold")


def _check_columns(frame: pd.DataFrame, columns, what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame; got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(frame.columns)}")
    if len(frame) == 0:
        raise ValueError(f"{what} is empty")


def _check_pararel(frame: pd.DataFrame) -> None:
    _check_columns(frame, _PARAREL_COLUMNS, "ParaRel predictions")
    keys = ["relation", "fact_id", "template_id"]
    dup = frame.duplicated(keys)
    if dup.any():
        row = frame.loc[dup, keys].iloc[0].to_dict()
        raise ValueError(f"duplicate (relation, fact_id, template_id) query, e.g. {row}")
    if frame["prediction"].isna().any():
        raise ValueError("prediction contains missing values")


def _gold_set(gold) -> frozenset:
    if isinstance(gold, str):
        return frozenset([gold])
    if not isinstance(gold, Iterable) and pd.isna(gold):
        raise ValueError("gold contains a missing value")
    if isinstance(gold, Iterable):
        gold = frozenset(gold)
        if not gold:
            raise ValueError("gold contains an empty set of objects")
        return gold
    return frozenset([gold])


def pararel_query_pairs(predictions: pd.DataFrame) -> pd.DataFrame:
    """All pairs of paraphrased queries of the same fact, labelled consistent or not.

    §3 (Elazar et al. 2021): two queries of one fact (same relation and subject, two
    different templates) are *consistent* when their top-1 predictions are the same
    string. App. E / §4 Fig. 4 split the paraphrase cosines by this label.

    Parameters
    ----------
    predictions : DataFrame with columns ``relation``, ``fact_id``, ``template_id``,
        ``prediction`` (one row per query; normalise the strings beforehand, the
        comparison is exact) and ``gold`` (unused here).

    Returns
    -------
    DataFrame with one row per unordered pair: ``relation``, ``fact_id``,
    ``template_a``, ``template_b``, ``row_a``, ``row_b`` (positional rows of
    ``predictions``, i.e. of an aligned representation array), ``prediction_a``,
    ``prediction_b`` and ``consistent`` (bool). Facts with a single query give no pair.
    """
    _check_pararel(predictions)
    left = predictions[["relation", "fact_id", "template_id", "prediction"]].copy()
    left["row"] = np.arange(len(left))
    merged = left.merge(left, on=["relation", "fact_id"], suffixes=("_a", "_b"))
    merged = merged[merged["row_a"] < merged["row_b"]]
    out = pd.DataFrame(
        {
            "relation": merged["relation"].to_numpy(),
            "fact_id": merged["fact_id"].to_numpy(),
            "template_a": merged["template_id_a"].to_numpy(),
            "template_b": merged["template_id_b"].to_numpy(),
            "row_a": merged["row_a"].to_numpy(dtype=np.intp),
            "row_b": merged["row_b"].to_numpy(dtype=np.intp),
            "prediction_a": merged["prediction_a"].to_numpy(),
            "prediction_b": merged["prediction_b"].to_numpy(),
        }
    )
    out["consistent"] = out["prediction_a"].to_numpy() == out["prediction_b"].to_numpy()
    return out.sort_values(["row_a", "row_b"], kind="stable").reset_index(drop=True)


def pararel_scores(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per-relation ParaRel accuracy and consistency (§3, Table 2; Elazar et al. 2021).

    * accuracy: share of queries whose top-1 prediction is a correct object. ``gold``
      holds one object string or, for N-M relations, a collection of objects; any of
      them counts as correct.
    * consistency: share of pairs of paraphrased queries of the same fact (all
      unordered template pairs) whose top-1 predictions agree, pooled over the facts of
      the relation (Elazar et al.'s per-relation definition).

    Returns
    -------
    DataFrame indexed by ``relation`` with columns ``n_facts``, ``n_queries``,
    ``n_pairs``, ``accuracy``, ``consistency`` (fractions in [0, 1]).
    """
    _check_pararel(predictions)
    gold = predictions["gold"].map(_gold_set)
    correct = [p in g for p, g in zip(predictions["prediction"], gold)]
    queries = pd.DataFrame(
        {
            "relation": predictions["relation"].to_numpy(),
            "fact_id": predictions["fact_id"].to_numpy(),
            "correct": np.asarray(correct, dtype=float),
        }
    )
    by_rel = queries.groupby("relation", sort=True)
    scores = pd.DataFrame(
        {
            "n_facts": by_rel["fact_id"].nunique(),
            "n_queries": by_rel.size(),
            "accuracy": by_rel["correct"].mean(),
        }
    )
    pairs = pararel_query_pairs(predictions)
    pair_stats = pairs.groupby("relation", sort=True)["consistent"].agg(["size", "mean"])
    scores["n_pairs"] = pair_stats["size"].reindex(scores.index).fillna(0).astype(int)
    scores["consistency"] = pair_stats["mean"].reindex(scores.index).astype(float)
    no_pairs = scores.index[scores["n_pairs"] == 0]
    if len(no_pairs):
        raise ValueError(
            f"relation(s) {list(no_pairs)} have no fact queried with two templates; "
            "consistency is undefined for them"
        )
    return scores[["n_facts", "n_queries", "n_pairs", "accuracy", "consistency"]]


def pararel_macro(predictions_or_scores: pd.DataFrame) -> pd.Series:
    """Macro average over relations of ParaRel accuracy and consistency (Table 2).

    Accepts the tidy predictions (passed through :func:`pararel_scores`) or an
    already computed per-relation table. Returns a Series ``accuracy``,
    ``consistency``, ``n_relations``; values are fractions (Table 2 shows percent).
    """
    frame = predictions_or_scores
    if not {"accuracy", "consistency"}.issubset(getattr(frame, "columns", [])):
        frame = pararel_scores(frame)
    return pd.Series(
        {
            "accuracy": float(frame["accuracy"].mean()),
            "consistency": float(frame["consistency"].mean()),
            "n_relations": int(len(frame)),
        }
    )


# --------------------------------------------------------------------------------------
# 3. MMLU accuracy and spread (§3, App. C.1)
# --------------------------------------------------------------------------------------

_LETTERS = "ABCD"


def mmlu_predictions(choice_logprobs) -> np.ndarray:
    """Predicted option per question: argmax over the option letters' log-probs (§3).

    ``choice_logprobs`` is ``(n, 4)``, the log-probability of the answer letters A-D
    after the prompt. Ties go to the first (lowest) option, as ``np.argmax`` does.
    Returns an int array (n,) of option indices 0-3.
    """
    lp = np.asarray(choice_logprobs, dtype=np.float64)
    if lp.ndim != 2 or lp.shape[0] == 0 or lp.shape[1] < 2:
        raise ValueError(f"choice_logprobs must be (n, n_choices>=2) with n>0; got {lp.shape}")
    if np.isnan(lp).any():
        raise ValueError("choice_logprobs contains NaN")
    return np.argmax(lp, axis=1)


def _answer_indices(answers, n_choices: int) -> np.ndarray:
    ans = np.asarray(answers)
    if ans.dtype.kind in "UO":
        letters = _LETTERS[:n_choices]
        try:
            ans = np.array([letters.index(str(a).strip().upper()) for a in ans])
        except ValueError as err:
            raise ValueError(f"answers must be option letters {letters!r} or indices") from err
    ans = ans.astype(np.intp)
    if ans.min() < 0 or ans.max() >= n_choices:
        raise ValueError(f"answer indices must lie in [0, {n_choices})")
    return ans


def mmlu_accuracy(choice_logprobs, answers) -> float:
    """Zero-shot MMLU accuracy of one setup (§3, Table 2 "Acc."): share of questions
    whose argmax option (:func:`mmlu_predictions`) is the answer. ``answers`` are
    letters "A"-"D" or indices 0-3. Returns a fraction (Table 2 shows percent)."""
    pred = mmlu_predictions(choice_logprobs)
    ans = _answer_indices(answers, np.asarray(choice_logprobs).shape[1])
    if ans.shape != pred.shape:
        raise ValueError(f"answers has shape {ans.shape}, predictions {pred.shape}")
    return float(np.mean(pred == ans))


def spread(accuracies) -> float:
    """Accuracy spread, max − min over prompt paraphrases (§3, Sclar et al. 2024)."""
    acc = np.asarray(accuracies, dtype=np.float64).ravel()
    if acc.size < 2:
        raise ValueError(f"spread needs at least 2 accuracies; got {acc.size}")
    if np.isnan(acc).any():
        raise ValueError("accuracies contain NaN")
    return float(acc.max() - acc.min())


def mmlu_spread(
    frame: pd.DataFrame,
    instruction: str = "instruction",
    shuffle: str = "shuffle",
    correct: str = "correct",
) -> pd.DataFrame:
    """Per-shuffling accuracy of each instruction and its spread (§3, App. C.1).

    ``frame`` is tidy: one row per (instruction, shuffle, question) with a boolean or
    0/1 ``correct``. Accuracy of a setup is the share of its questions answered
    correctly (pooled over subjects). The spread is max − min accuracy across the
    instructions, computed within each shuffling of the options.

    Returns
    -------
    DataFrame indexed by shuffle: one accuracy column per instruction and ``spread``.
    """
    _check_columns(frame, (instruction, shuffle, correct), "MMLU results")
    if frame[correct].isna().any():
        raise ValueError(f"column {correct!r} contains missing values")
    values = frame[correct].astype(float)
    if not values.isin([0.0, 1.0]).all():
        raise ValueError(f"column {correct!r} must be boolean or 0/1")
    table = (
        frame.assign(_correct=values)
        .groupby([shuffle, instruction])["_correct"]
        .mean()
        .unstack(instruction)
    )
    if table.isna().any().any():
        raise ValueError("every (shuffle, instruction) setup must have results")
    if table.shape[1] < 2:
        raise ValueError("spread needs at least 2 instructions per shuffling")
    table["spread"] = table.max(axis=1) - table.min(axis=1)
    table.columns.name = None
    return table


def mmlu_summary(frame: pd.DataFrame, **columns) -> pd.Series:
    """MMLU "Acc." and "Spread" of Table 2 (App. C.1).

    ``accuracy`` is the mean over all instruction × shuffling setups (3 × 3 = 9 in the
    paper); ``spread`` is the per-shuffling spread of :func:`mmlu_spread` averaged over
    shufflings. Both are fractions (Table 2 shows percent). ``columns`` renames the
    ``instruction``/``shuffle``/``correct`` columns as in :func:`mmlu_spread`.
    """
    table = mmlu_spread(frame, **columns)
    acc = table.drop(columns="spread")
    return pd.Series(
        {
            "accuracy": float(acc.to_numpy().mean()),
            "spread": float(table["spread"].mean()),
            "n_setups": int(acc.size),
        }
    )


# --------------------------------------------------------------------------------------
# 4. BECEL consistency (§3, App. C.2; Jang et al. 2022)
# --------------------------------------------------------------------------------------

BECEL_KINDS = ("semantic", "symmetric", "negational")


def _aligned(a, b, names=("a", "b")):
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"{names[0]} and {names[1]} must be 1-D")
    if a.shape != b.shape:
        raise ValueError(f"length mismatch: {names[0]} has {a.size}, {names[1]} has {b.size}")
    if a.size == 0:
        raise ValueError("empty input")
    return a, b


def accuracy(predictions, labels) -> float:
    """Share of predictions equal to the gold labels (BECEL "Acc.", Table 6)."""
    p, y = _aligned(predictions, labels, ("predictions", "labels"))
    return float(np.mean(p == y))


def becel_consistency(
    pred_original, pred_perturbed, kind: str, condition_on=None
) -> float:
    """BECEL consistency, 1 − inconsistency, as BECEL's own code computes it (App. C.2).

    App. C.2 prints τ with the indicators swapped relative to "consistency = 1 − τ"
    (read literally, its "consistency" would be the *inconsistency*). We follow the
    benchmark's code, ``src/evaluation_metrics.py`` in github.com/MJ-Jang/BECEL
    (commit 65851497), where::

        semantic_inconsistency:  inconsistency = 1 - accuracy_score(prediction_original, prediction_paraphrase)
        symmetric_inconsistency: inconsistency = 1 - accuracy_score(prediction_original, prediction_symmetric)
        negational_inconsistency: inconsistency = accuracy_score(prediction_original, prediction_negated)

    So, with n aligned original/perturbed inputs:

    * ``"semantic"`` (paraphrased input) and ``"symmetric"`` (swapped sentence order):
      consistency = share of items whose two predictions are equal.
    * ``"negational"``: consistency = share of items whose prediction *changes*. The
      rule looks at predictions only: gold labels and whether the original prediction
      was correct play no part, and with 3-way NLI labels any change counts (e.g.
      entailment → neutral is as consistent as entailment → contradiction). Note that
      BECEL's WiC negational set keeps ``neg_label == label`` (negating sentence 2
      does not change the word's sense), yet the same rule rewards a changed
      prediction there; this is why WiC "Neg" is near 0.1 in Table 6. See
      :func:`becel_label_consistency` for a label-aware diagnostic.

    ``condition_on`` reproduces BECEL's optional "conditioned inconsistency" (defined
    for symmetric and negational): keep only items whose *original prediction* equals
    this class (the code filters on ``prediction_original``, not the gold label,
    although its docstring says "correct answer"), e.g. 2 (contradiction, a symmetric
    relation) for SNLI symmetry. BECEL's code tests ``if condition_correct_prediction:``,
    so passing class 0 silently disables the conditioning there; here 0 is a class
    like any other. The paper reports the unconditioned measure (default ``None``).

    Returns
    -------
    float in [0, 1]
    """
    if kind not in BECEL_KINDS:
        raise ValueError(f"kind must be one of {BECEL_KINDS}; got {kind!r}")
    orig, pert = _aligned(pred_original, pred_perturbed, ("pred_original", "pred_perturbed"))
    if condition_on is not None:
        if kind == "semantic":
            raise ValueError("BECEL defines the conditioned measure for symmetric and negational only")
        keep = orig == condition_on
        if not keep.any():
            raise ValueError(f"no item has original prediction {condition_on!r}")
        orig, pert = orig[keep], pert[keep]
    agree = float(np.mean(orig == pert))
    return 1.0 - agree if kind == "negational" else agree


def becel_label_consistency(
    pred_original, pred_perturbed, label_original, label_perturbed
) -> float:
    """Label-aware variant (diagnostic, *not* the paper's measure; cf. App. C.2).

    An item counts as consistent when the predictions change exactly when the gold
    labels change: ``(pred_o == pred_p) == (label_o == label_p)``. For sets whose
    perturbation always flips the label (BECEL's SNLI/RTE/MRPC negation) this equals
    the negational rule of :func:`becel_consistency`; for paraphrases (labels kept) it
    equals the semantic rule; for WiC negation (labels kept) it rewards keeping the
    prediction, unlike BECEL's code.
    """
    po, pp = _aligned(pred_original, pred_perturbed, ("pred_original", "pred_perturbed"))
    lo, lp = _aligned(label_original, label_perturbed, ("label_original", "label_perturbed"))
    if po.shape != lo.shape:
        raise ValueError(f"length mismatch: predictions {po.size}, labels {lo.size}")
    return float(np.mean((po == pp) == (lo == lp)))


# --------------------------------------------------------------------------------------
# 5. Subject attribute rate (§4 "Subjects", App. D, Fig. 2; Geva et al. 2023)
# --------------------------------------------------------------------------------------

_MARKERS = " \t\r\n\u2581\u0120\u010a"  # whitespace, sentencepiece '▁', GPT-2 'Ġ' and 'Ċ'


def clean_token(token: str) -> str:
    """Strip whitespace and word-boundary markers ('▁' sentencepiece, 'Ġ'/'Ċ' byte-BPE)
    from both ends of a decoded token, before the length and stopword filters (App. D)."""
    if not isinstance(token, str):
        raise TypeError(f"tokens must be strings; got {type(token).__name__}")
    return token.strip(_MARKERS)


def _keep(token: str, stopwords: frozenset, min_chars: int) -> bool:
    return len(token) >= min_chars and token.lower() not in stopwords


def _stopword_set(stopwords) -> frozenset:
    if isinstance(stopwords, str):
        raise TypeError("stopwords must be a collection of words, not a single string")
    return frozenset(w.lower() for w in stopwords)


def _flatten_tokens(tokens) -> list[str]:
    if isinstance(tokens, str):
        raise TypeError("pass a sequence of token strings, not a single string")
    flat = []
    for tok in tokens:
        if isinstance(tok, str):
            flat.append(tok)
        elif isinstance(tok, Iterable):
            flat.extend(_flatten_tokens(tok))
        else:
            raise TypeError(f"tokens must be strings; got {type(tok).__name__}")
    return flat


def attribute_set(
    snippet_tokens, stopwords, min_chars: int = 3, lowercase: bool = False
) -> frozenset:
    """The subject's attribute set A_s from its Wikipedia snippets (§4, App. D).

    Following Geva et al. (2023) as App. D describes: the tokens of the top-500
    snippets mentioning the subject, deduplicated, without NLTK stopwords and without
    tokens shorter than ``min_chars`` (3) characters. Tokenisation is the caller's
    (App. D's length filter targets "short sub-words", i.e. model tokens); pass a flat
    sequence of tokens or one sequence per snippet.

    Case: tokens are kept as they are by default (``lowercase=False``), since model
    vocabularies are case-sensitive ("Apple" and "apple" are different tokens) and
    neither paper mentions lower-casing. The stopword test is case-insensitive ("The"
    is dropped like "the") because NLTK's list is lower-case. Use ``lowercase=True``
    here *and* in :func:`subject_attribute_rate` to match case-insensitively.
    """
    stop = _stopword_set(stopwords)
    out = set()
    for tok in _flatten_tokens(snippet_tokens):
        tok = clean_token(tok)
        if _keep(tok, stop, min_chars):
            out.add(tok.lower() if lowercase else tok)
    return frozenset(out)


def subject_attribute_rate(
    top_tokens,
    attributes,
    stopwords,
    k: int = 50,
    min_chars: int = 3,
    lowercase: bool = False,
):
    """Attribute rate: share of the top-k projected tokens found in A_s (§4, Fig. 2).

    ``top_tokens`` are the decoded tokens of E h^l (last subject token at layer l),
    ranked best first: one ranked list for one layer, or one list per layer. Tokens
    are cleaned (:func:`clean_token`); stopwords and tokens shorter than ``min_chars``
    are dropped; the first ``k`` survivors are kept and the share of them in
    ``attributes`` is returned. Pass a ranking longer than ``k`` (e.g. top 100-200) so
    that k tokens survive the filter. Distinct vocabulary entries that clean to the
    same string (e.g. '▁Paris' and 'Paris') count separately, as separate tokens. If
    fewer than ``k`` survive, the share is over the survivors; if none survive the
    rate is NaN for that layer.

    Returns
    -------
    float for one list, array (L,) for one list per layer.
    """
    if isinstance(top_tokens, str):
        raise TypeError("pass a ranked sequence of token strings, not a single string")
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    attrs = frozenset(attributes)
    stop = _stopword_set(stopwords)
    seq = list(top_tokens)
    if len(seq) == 0:
        raise ValueError("top_tokens is empty")
    is_str = [isinstance(t, str) for t in seq]
    single = all(is_str)
    if any(is_str) and not single:
        raise TypeError("top_tokens must be a list of strings or a list of such lists")
    layers = [seq] if single else [list(layer) for layer in seq]
    rates = []
    for ranked in layers:
        if len(ranked) == 0 or not all(isinstance(t, str) for t in ranked):
            raise TypeError("each layer's top_tokens must be a non-empty list of strings")
        kept = []
        for tok in ranked:
            tok = clean_token(tok)
            if _keep(tok, stop, min_chars):
                kept.append(tok.lower() if lowercase else tok)
                if len(kept) == k:
                    break
        rates.append(np.mean([t in attrs for t in kept]) if kept else np.nan)
    return float(rates[0]) if single else np.asarray(rates, dtype=np.float64)


# --------------------------------------------------------------------------------------
# 6. Extraction rate (§4 eq. 1, Fig. 5 and 8)
# --------------------------------------------------------------------------------------


def extraction_rate(update_top1, final_prediction) -> np.ndarray:
    """Per-layer extraction rate of MHSA or MLP updates (§4 eq. 1, Fig. 5, App. F Fig. 8).

    An extraction event at layer l happens when the top-1 token of the update projected
    to the vocabulary, ``argmax(E a_l)`` (MHSA) or ``argmax(E f_l)`` (MLP), equals the
    model's final top-1 prediction o*. The rate is the share of queries with an event.

    Parameters
    ----------
    update_top1 : int array (n, L), token id of argmax(E a_l) per query and layer
    final_prediction : int array (n,), token id of o*

    Returns
    -------
    float array (L,)
    """
    top = np.asarray(update_top1)
    final = np.asarray(final_prediction)
    if top.ndim != 2:
        raise ValueError(f"update_top1 must be (n, L); got shape {top.shape}")
    if final.ndim != 1:
        raise ValueError(f"final_prediction must be (n,); got shape {final.shape}")
    if top.shape[0] != final.shape[0]:
        raise ValueError(
            f"update_top1 has {top.shape[0]} queries, final_prediction {final.shape[0]}"
        )
    if top.shape[0] == 0 or top.shape[1] == 0:
        raise ValueError("empty input")
    for name, arr in (("update_top1", top), ("final_prediction", final)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must hold integer token ids; got dtype {arr.dtype}")
    return np.mean(top == final[:, None], axis=0)


# --------------------------------------------------------------------------------------
# 7. Relation similarity (§4 "Relations", Fig. 3)
# --------------------------------------------------------------------------------------


def relation_similarity(reps, pairs, relations, per_relation: bool = False):
    """Cosine of query pairs per layer, macro-averaged over relations (§4, Fig. 3).

    ``pairs`` (int array (K, 2)) index rows of ``reps``; ``relations`` (length K) labels
    each pair (for cross-relation pairs, any label the caller groups by, e.g. the first
    query's relation). Choosing the pairs (different subjects and objects; templates
    ending in different tokens, footnote 6) is the caller's job. Returns the macro
    average, a float or ``(L,)`` array, or with ``per_relation=True`` the per-relation
    table of :func:`grouped_pair_cosine`.
    """
    table = grouped_pair_cosine(reps, pairs, relations)
    if per_relation:
        return table
    values = table.to_numpy().mean(axis=0)
    return float(values[0]) if table.columns.equals(pd.Index(["cos"])) else values
