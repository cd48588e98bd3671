"""Cosine similarity of paraphrases and non-paraphrases (paper §2, App. B.1 eq. 2-4; §4 Fig. 4).

Pure: arrays or tidy frames in, numbers out; nothing here imports the rest of the package
except its sibling metric modules.
"""

from __future__ import annotations

import numpy as np
import pandas as pd



NORMALISATIONS = ("pairs", "paper_literal")


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

    paper: eq. 2
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

    paper: eq. 3
    """
    per_set = paraphrase_cosine_per_set(reps, set_ids, normalisation, drop_singletons)
    values = per_set.to_numpy().mean(axis=0)
    return float(values[0]) if per_set.columns.equals(pd.Index(["cos"])) else values


def sample_nonparaphrase_pairs(set_ids, n_pairs: int, seed=0) -> pd.DataFrame:
    """Draw K random non-paraphrase pairs (App. B.1, text above eq. 4): the one sampler of eq. 4,
    used by Table 1 and by Fig. 4 alike.

    The paper takes "at random the sets of paraphrases p_i, p_j and the paraphrases s_k, s_l". Both
    sets are drawn from the same N paraphrase sets that eq. 3 averages over: the sets with at least
    two members (a set of one member has no pair, so it is not a paraphrase set of eq. 3, and it is
    not drawn here either), which keeps the draw symmetric in p_i and p_j. Every set is p_i of the
    same expected number of pairs, K/N: with K = qN + r, the first qN pairs run over the N sets in
    turn (pair k has p_i = the (k mod N)-th set, q pairs of its own per set, the unit a bootstrap over
    sets resamples) and the last r pairs take r distinct sets drawn uniformly at random, so no set
    weighs more for coming early in data order, and with K < N any set can be drawn. p_j is uniform
    over the other N − 1 sets; s_k and s_l are uniform members of each. The expected mean cosine is
    therefore the average, over ordered pairs of distinct sets, of the mean cosine between their
    members, for every K. Draws are independent (a pair can repeat). ``seed`` is an int or a
    :class:`numpy.random.Generator`; with K a multiple of N no draw of the remainder is made.

    Returns
    -------
    DataFrame with one row per pair: ``set_id`` (the label of p_i), ``row_a`` (s_k) and ``row_b``
    (s_l), rows of the representation array.

    paper: eq. 4 pairs
    """
    n_pairs = int(n_pairs)
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1; got {n_pairs}")
    if isinstance(set_ids, str):
        raise TypeError("set_ids must be a sequence of labels, not a string")
    set_ids = list(set_ids)
    codes, uniques = _codes(set_ids, len(set_ids))
    sizes = np.bincount(codes, minlength=len(uniques))
    paraphrase_sets = np.flatnonzero(sizes >= 2)  # codes of the N sets of eq. 3, first-appearance order
    n_sets = len(paraphrase_sets)
    if n_sets < 2:
        raise ValueError(
            f"non-paraphrase pairs need at least 2 distinct sets with two or more members; got {n_sets}"
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    second = rng.integers(n_sets - 1, size=n_pairs)
    remainder = n_pairs % n_sets
    first = np.arange(n_pairs - remainder) % n_sets
    if remainder:  # r distinct sets at random: every set is p_i of K/N pairs in expectation
        first = np.concatenate([first, rng.choice(n_sets, remainder, replace=False)])
    second = second + (second >= first)  # uniform over the other sets
    set_i, set_j = paraphrase_sets[first], paraphrase_sets[second]
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    member_k = rng.integers(sizes[set_i])
    member_l = rng.integers(sizes[set_j])
    return pd.DataFrame({"set_id": uniques[set_i].to_numpy(), "row_a": order[starts[set_i] + member_k],
                         "row_b": order[starts[set_j] + member_l]})


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
    ``pairs`` (int array (K, 2) of row indices, or that function's frame) is given. Returns a float or an ``(L,)``
    array. For MRPC's explicit non-paraphrase pairs use :func:`pair_cosines` directly.

    paper: eq. 4
    """
    arr = _as_reps(reps)
    if pairs is None:
        if set_ids is None:
            raise ValueError("give set_ids to sample non-paraphrase pairs, or explicit pairs")
        codes, _ = _codes(set_ids, arr.shape[0])
        pairs = sample_nonparaphrase_pairs(codes, n_pairs, seed)
    if isinstance(pairs, pd.DataFrame):
        pairs = pairs[["row_a", "row_b"]].to_numpy()
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

    paper: Fig. 4
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


def paraphrase_gap_per_set(reps, set_ids, pair_a, pair_b, pair_sets) -> pd.DataFrame:
    """The gap of Table 1 per paraphrase set, the units a bootstrap over sets resamples (App. B.1).

    For every paraphrase set p_i (rows of ``reps`` labelled by ``set_ids``; sets of one member are
    left out): ``cos_para`` = cos(p_i) (eq. 2, mean over pairs), ``cos_para_literal`` (eq. 2 as
    printed, see :func:`mean_pairwise_cosine`), ``cos_nonpara`` = the mean cosine of the
    non-paraphrase pairs attached to p_i (aligned rows ``pair_a[k]``, ``pair_b[k]`` with
    ``pair_sets[k]`` = p_i: the pairs of :func:`sample_nonparaphrase_pairs`, or MRPC's own), their
    number ``n_nonpara``, the set size ``n_members`` and ``gap = cos_para − cos_nonpara``. With as
    many pairs for every set, the mean of ``gap`` over sets is eq. 3 − eq. 4 exactly.

    ``reps`` and the pair arrays are ``(n, d)`` (one layer). Returns a DataFrame indexed by ``set_id``
    (first-appearance order of the sets).

    paper: Table 1; Table 4
    """
    arr = _as_reps(reps)
    if arr.ndim != 2:
        raise ValueError(f"reps must be (n, d) for the per-set gap; got shape {arr.shape}")
    para = paraphrase_cosine_per_set(arr, set_ids, drop_singletons=True)["cos"]
    literal = paraphrase_cosine_per_set(arr, set_ids, "paper_literal", drop_singletons=True)["cos"]
    sizes = pd.Series(list(set_ids)).value_counts()
    codes, groups = _codes(pair_sets, np.asarray(pair_a).shape[0], name="pair_sets")
    non = pd.Series(pair_cosines(pair_a, pair_b)).groupby(groups[codes].to_numpy()).agg(["mean", "size"])
    missing = para.index.difference(non.index)
    if len(missing):
        raise ValueError(f"paraphrase sets without non-paraphrase pairs, e.g. {list(missing[:3])}")
    out = pd.DataFrame({"n_members": sizes.reindex(para.index).to_numpy(), "cos_para": para.to_numpy(),
                        "cos_para_literal": literal.reindex(para.index).to_numpy(),
                        "cos_nonpara": non["mean"].reindex(para.index).to_numpy(),
                        "n_nonpara": non["size"].reindex(para.index).to_numpy()}, index=para.index)
    out["gap"] = out["cos_para"] - out["cos_nonpara"]
    return out


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

    paper: Fig. 6-7
    """
    arr = _as_reps(reps)
    pairs = _pairs_array(pairs, arr.shape[0])
    codes, uniques = _codes(groups, pairs.shape[0], name="groups")
    cos = pair_cosines(arr[pairs[:, 0]], arr[pairs[:, 1]]).reshape(pairs.shape[0], -1)
    sums = np.zeros((len(uniques), cos.shape[1]))
    np.add.at(sums, codes, cos)
    counts = np.bincount(codes, minlength=len(uniques))[:, None]
    return pd.DataFrame(sums / counts, index=uniques.rename("group"), columns=_layer_columns(arr))
