"""Uncertainty and comparisons for the paper's estimates, with scipy doing the work.

The paper reports point estimates (Tables 1, 2, 4-6) and, for the extraction rate, a
per-layer Pearson correlation across instruction-tuned models (§4, App. F Table 7). The
book adds intervals: :func:`bootstrap_ci` resamples the units a metric averages over
(paraphrase sets, relations, questions), and :func:`paired_comparison` compares the base
model with an instruction-tuned one on the same units. :func:`pearson_by_layer` is
Table 7's computation, refusing to give a number where the correlation is undefined.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.stats

#: The significance level of the paper's tests (Table 7's correlations, p ≤ 0.05) and of the book's.
SIGNIFICANCE = 0.05

__all__ = ["bootstrap_ci", "resample_statistic", "percentile_interval", "stratified_mean_bootstrap",
           "paired_comparison", "compare_roles", "pearson_by_layer", "verdict"]

# Keep each bootstrap batch (resamples x units x columns) near this many numbers, so
# that BCa's jackknife over thousands of units does not build an n x n array at once.
_BATCH_ELEMENTS = 5_000_000


def _batch(n_units: int, n_columns: int = 1) -> int:
    return max(1, _BATCH_ELEMENTS // max(1, n_units * n_columns))


def _on_sorted_units(statistic):
    """``statistic`` computed on each resample's units in sorted order, so that it depends on the multiset only.

    BCa's bias correction (Efron & Tibshirani 1993, eq. 14.14) counts the bootstrap statistics below the
    sample's own, ties as half (scipy). A resample that is a permutation of the sample (at 6 units,
    6!/6**6 = 1.5% of the draws) equals it in exact arithmetic, but a sum taken in another order differs in
    its last bits and falls on either side by rounding alone: a bound of a small sample then moved with the
    CPU (a smoke-size POSIX bound, 6 questions, -6.8 on one machine and -9.0 on another). Summing the sorted
    units gives every permutation the same float. ``statistic`` must be symmetric in the units (a mean, a
    median), as any bootstrap statistic is. Discrete scores (points out of a few prompts) also tie through
    different multisets of equal sum; those ties are still decided by rounding, but by the same rounding on
    every machine, since such scores are computed from counts.
    """
    def sorted_statistic(sample, axis):
        return statistic(np.sort(sample, axis=axis), axis=axis)

    return sorted_statistic


def _finite_1d_or_2d(values, name="values") -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (units) or 2-D (units, columns); got {arr.shape}")
    if arr.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 units to bootstrap; got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def bootstrap_ci(
    values,
    statistic=np.mean,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    method: str = "BCa",
):
    """Bootstrap confidence interval of a statistic over resampling units.

    A thin wrapper of :func:`scipy.stats.bootstrap`. The units are the rows of
    ``values``: paraphrase sets (App. B.1 eq. 3, from
    :func:`ifhelpers.metrics.cosine.paraphrase_cosine_per_set`), relations (ParaRel, §3) or
    questions (MMLU). A 2-D ``values`` (units × columns, e.g. sets × layers) gives one
    interval per column, resampling whole rows together.

    ``statistic`` must accept ``axis`` (as ``np.mean`` and ``np.median`` do) and is computed on
    each resample's units in sorted order (:func:`_on_sorted_units`), so that rounding cannot move
    the interval. If all values are identical the interval collapses to that value (scipy's BCa would
    give NaN). Results are deterministic given ``seed``.

    Returns
    -------
    Series (1-D input) or DataFrame indexed by column (2-D input) with ``estimate``,
    ``low``, ``high``, ``se``, ``n`` and ``confidence``.
    """
    arr = _finite_1d_or_2d(values)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence}")
    columns = values.columns if isinstance(values, pd.DataFrame) else None
    estimate = np.asarray(statistic(arr, axis=0), dtype=np.float64)
    constant = np.ptp(arr, axis=0) == 0
    with warnings.catch_warnings():
        if np.any(constant):  # handled below; silence scipy's degenerate-data warnings
            warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
        result = scipy.stats.bootstrap(
            (arr,),
            _on_sorted_units(statistic),
            n_resamples=n_resamples,
            confidence_level=confidence,
            method=method,
            axis=0,
            batch=_batch(arr.shape[0], 1 if arr.ndim == 1 else arr.shape[1]),
            rng=np.random.default_rng(seed),
        )
    low = np.where(constant, estimate, result.confidence_interval.low)
    high = np.where(constant, estimate, result.confidence_interval.high)
    se = np.where(constant, 0.0, result.standard_error)
    frame = pd.DataFrame(
        {
            "estimate": np.atleast_1d(estimate),
            "low": np.atleast_1d(low),
            "high": np.atleast_1d(high),
            "se": np.atleast_1d(se),
            "n": arr.shape[0],
            "confidence": confidence,
        },
        index=columns,
    )
    return frame.iloc[0].rename(None) if arr.ndim == 1 else frame


def resample_statistic(units, statistic, n_resamples: int = 2000, seed=0, batch: int | None = None) -> np.ndarray:
    """Bootstrap draws of ``statistic`` over the units on axis 0 of ``units`` (resampled with replacement).

    ``statistic`` takes a stack of resamples, shape ``(k, n_units, ...)``, and returns ``k`` values; it
    is called on batches of at most ``batch`` resamples (all at once when None). ``seed`` is an int
    or a :class:`numpy.random.Generator` (to draw several statistics from one stream). For statistics
    that are not smooth (a max − min), where scipy's BCa is unreliable, use these draws with
    :func:`percentile_interval`.
    """
    arr = np.asarray(units)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    size = n_resamples if batch is None else batch
    return np.concatenate([
        np.asarray(statistic(arr[rng.integers(0, len(arr), size=(min(size, n_resamples - b), len(arr)))]))
        for b in range(0, n_resamples, size)])


def percentile_interval(draws, confidence: float = 0.95) -> tuple[float, float]:
    """The percentile bootstrap interval of ``draws``: their (1 − c)/2 and (1 + c)/2 quantiles."""
    alpha = (1 - confidence) / 2
    return float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha))


def stratified_mean_bootstrap(strata, n_resamples: int = 2000, confidence: float = 0.95, seed=0) -> dict:
    """The mean over strata of each stratum's mean, with a percentile interval that resamples units within
    each stratum (e.g. BECEL items within tasks, for Table 2's average over tasks).

    ``strata`` is a list of 1-D arrays; ``seed`` an int or a Generator, drawn from stratum by stratum.
    Returns ``estimate``, ``low``, ``high`` and ``strata`` (how many were averaged).
    """
    strata = [np.asarray(s, dtype=np.float64) for s in strata]
    if not strata:
        return {"estimate": np.nan, "low": np.nan, "high": np.nan, "strata": 0}
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    draws = np.mean([resample_statistic(s, lambda x: x.mean(axis=1), n_resamples, rng) for s in strata], axis=0)
    low, high = percentile_interval(draws, confidence)
    return {"estimate": float(np.mean([s.mean() for s in strata])), "low": low, "high": high,
            "strata": len(strata)}


def _paired_arrays(base, tuned):
    if isinstance(base, pd.Series) and isinstance(tuned, pd.Series):
        if not base.index.is_unique or not tuned.index.is_unique:
            raise ValueError("paired Series need unique unit labels in their index")
        if set(base.index) != set(tuned.index):
            only_b = list(base.index.difference(tuned.index)[:5])
            only_t = list(tuned.index.difference(base.index)[:5])
            raise ValueError(
                f"units do not match: only in base {only_b}, only in tuned {only_t}"
            )
        tuned = tuned.reindex(base.index)
    b = np.asarray(base, dtype=np.float64)
    t = np.asarray(tuned, dtype=np.float64)
    if b.ndim != 1 or t.ndim != 1:
        raise ValueError("base and tuned must be 1-D (one value per unit)")
    if b.shape != t.shape:
        raise ValueError(f"length mismatch: base has {b.size} units, tuned has {t.size}")
    if b.size < 2:
        raise ValueError(f"a paired comparison needs at least 2 units; got {b.size}")
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(t))):
        raise ValueError("base or tuned contains NaN or infinite values")
    return b, t


def paired_comparison(
    base,
    tuned,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    alternative: str = "two-sided",
) -> pd.Series:
    """Compare an instruction-tuned model with the base model on matched units.

    Units are the same paraphrase sets / relations / questions scored by both models
    (pass aligned arrays, or two Series indexed by unit, which are aligned by label).
    The difference is ``tuned − base``, so positive means the instruction-tuned model
    scores higher, the direction of the paper's claims (§2, §3).

    * Wilcoxon signed-rank test of the paired differences
      (:func:`scipy.stats.wilcoxon`, zero differences dropped as in its default).
      When every difference is zero the test is undefined and its fields are NaN.
    * Paired bootstrap interval of the mean difference: :func:`bootstrap_ci` (BCa) of the
      per-unit differences, which resamples the units with both their scores.

    Returns
    -------
    Series: ``n``, ``base_mean``, ``tuned_mean``, ``mean_diff``, ``diff_low``,
    ``diff_high``, ``confidence``, ``wilcoxon_statistic``, ``wilcoxon_p``, ``note``.
    """
    b, t = _paired_arrays(base, tuned)
    diff = t - b
    note = ""
    if np.all(diff == 0):
        stat, p = np.nan, np.nan
        low = high = 0.0
        note = "all paired differences are zero; the Wilcoxon test is undefined"
    else:
        res = scipy.stats.wilcoxon(t, b, alternative=alternative)
        stat, p = float(res.statistic), float(res.pvalue)
        interval = bootstrap_ci(diff, n_resamples=n_resamples, confidence=confidence, seed=seed)
        low, high = float(interval["low"]), float(interval["high"])
    return pd.Series(
        {
            "n": int(b.size),
            "base_mean": float(b.mean()),
            "tuned_mean": float(t.mean()),
            "mean_diff": float(diff.mean()),
            "diff_low": low,
            "diff_high": high,
            "confidence": confidence,
            "wilcoxon_statistic": stat,
            "wilcoxon_p": p,
            "note": note,
        },
        dtype=object,
    )


def compare_roles(table: pd.DataFrame, value: str, unit, *, by=(), n_resamples: int = 2000,
                  confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Every instruction-tuned model against every base model on the units both scored (paired).

    ``table`` is tidy: ``model``, ``role``, the ``unit`` column(s) (paraphrase sets, items, subjects),
    ``value`` and the ``by`` columns (dataset, task, metric). A unit's value is the mean of its rows
    (e.g. over prompts or layers); units keep their order of first appearance. For each group of
    ``by`` and each (base, tuned) pair, :func:`paired_comparison` gives tuned − base with its paired
    bootstrap interval and Wilcoxon test. Returns the ``by`` columns, ``base``, ``tuned`` and the
    fields of :func:`paired_comparison`; empty (with those columns) without both roles.
    """
    by = [by] if isinstance(by, str) else list(by)
    units = [unit] if isinstance(unit, str) else list(unit)
    fields = ["n", "base_mean", "tuned_mean", "mean_diff", "diff_low", "diff_high", "confidence",
              "wilcoxon_statistic", "wilcoxon_p", "note"]
    rows = []
    for key, group in (table.groupby(by, sort=False) if by else [((), table)]):
        key = key if isinstance(key, tuple) else (key,)
        role_of = dict(zip(group["model"], group["role"]))
        means = {m: g.groupby(units, sort=False)[value].mean().dropna() for m, g in group.groupby("model", sort=False)}
        for base in (m for m in means if role_of[m] == "base"):
            for tuned in (m for m in means if role_of[m] == "instruction-tuned"):
                b, t = means[base], means[tuned]
                shared = b.index.intersection(t.index, sort=False)
                if len(shared) < 2:
                    continue
                result = paired_comparison(b.loc[shared], t.loc[shared], n_resamples=n_resamples,
                                           confidence=confidence, seed=seed)
                rows.append({**dict(zip(by, key)), "base": base, "tuned": tuned, **result.to_dict()})
    return pd.DataFrame(rows, columns=[*by, "base", "tuned", *fields])


def pearson_by_layer(rates, consistency) -> pd.DataFrame:
    """Pearson r and p-value per layer between extraction rate and consistency
    (§4 "Extraction of Predicted Attribute", App. F Table 7).

    Parameters
    ----------
    rates : array (n_models, L) or DataFrame (models × layers)
        Extraction rate of each model at each layer (:func:`ifhelpers.metrics.extraction.extraction_rate`).
    consistency : array (n_models,) or Series indexed by model
        ParaRel consistency of each model (Table 2). A DataFrame/Series pair is
        aligned by model label.

    With fewer than 3 models the correlation carries no information (two points always
    give r = ±1, and no p-value exists), so no number is returned: ``r`` and
    ``p_value`` are NaN, ``defined`` is False and ``message`` says why. The same holds
    for a layer where either variable is constant.

    Returns
    -------
    DataFrame indexed by ``layer`` with ``r``, ``p_value``, ``n_models``,
    ``defined``, ``message``.

    paper: Table 7
    """
    layers = None
    if isinstance(rates, pd.DataFrame):
        layers = rates.columns
        if isinstance(consistency, pd.Series):
            if set(rates.index) != set(consistency.index):
                raise ValueError("rates and consistency cover different models")
            consistency = consistency.reindex(rates.index)
    r_arr = np.asarray(rates, dtype=np.float64)
    c_arr = np.asarray(consistency, dtype=np.float64)
    if r_arr.ndim == 1:
        r_arr = r_arr[:, None]
    if r_arr.ndim != 2 or c_arr.ndim != 1:
        raise ValueError(
            f"rates must be (n_models, L) and consistency (n_models,); got {r_arr.shape}, {c_arr.shape}"
        )
    if r_arr.shape[0] != c_arr.shape[0]:
        raise ValueError(
            f"rates has {r_arr.shape[0]} models but consistency has {c_arr.shape[0]}"
        )
    if r_arr.shape[0] == 0 or r_arr.shape[1] == 0:
        raise ValueError("empty input")
    if not (np.all(np.isfinite(r_arr)) and np.all(np.isfinite(c_arr))):
        raise ValueError("rates or consistency contains NaN or infinite values")
    n_models, n_layers = r_arr.shape
    if layers is None:
        layers = pd.RangeIndex(n_layers)
    rows = []
    for j in range(n_layers):
        x = r_arr[:, j]
        if n_models < 3:
            rows.append((np.nan, np.nan, False,
                         f"Pearson correlation is not defined for {n_models} model(s); "
                         "at least 3 are needed"))
        elif np.ptp(x) == 0 or np.ptp(c_arr) == 0:
            rows.append((np.nan, np.nan, False,
                         "Pearson correlation is not defined: an input is constant"))
        else:
            res = scipy.stats.pearsonr(x, c_arr)
            rows.append((float(res.statistic), float(res.pvalue), True, ""))
    frame = pd.DataFrame(rows, columns=["r", "p_value", "defined", "message"], index=layers)
    frame.index.name = "layer"
    frame.insert(2, "n_models", n_models)
    return frame


def verdict(diff: float, low: float, high: float, paper_sign: int = 1) -> str:
    """Our difference (tuned − base) against the paper's direction (``paper_sign`` +1: tuned higher,
    -1: tuned lower): "yes" / "no" when the interval excludes 0 on the paper's / the other side,
    "n.s. (same sign)" / "n.s. (opposite sign)" when it contains 0, "not defined" without a number or
    without a direction (``paper_sign`` 0: the paper claims none)."""
    if diff is None or not np.isfinite(diff) or not paper_sign:
        return "not defined"
    d, lo, hi = paper_sign * diff, paper_sign * low, paper_sign * high
    lo, hi = min(lo, hi), max(lo, hi)
    if np.isfinite(lo) and lo > 0:
        return "yes"
    if np.isfinite(hi) and hi < 0:
        return "no"
    return "n.s. (same sign)" if d > 0 else "n.s. (opposite sign)" if d < 0 else "n.s."
