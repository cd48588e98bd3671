"""Checks of ifhelpers.stats against hand-derived values."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from ifhelpers import stats as s


def test_bootstrap_ci_two_units_percentile_is_exact():
    # units [0, 1]: a resample's mean is 0, 0.5 or 1 with probability 1/4, 1/2, 1/4.
    # P(mean = 0) = 25% > 2.5%, so the 2.5% quantile is 0 and the 97.5% quantile is 1.
    ci = s.bootstrap_ci([0.0, 1.0], method="percentile", n_resamples=2000)
    assert ci["estimate"] == 0.5
    assert ci["low"] == 0.0
    assert ci["high"] == 1.0
    assert ci["n"] == 2


def test_bootstrap_ci_wraps_scipy_and_is_seeded():
    values = np.array([0.2, 0.5, 0.1, 0.9, 0.4, 0.6, 0.3])
    ci = s.bootstrap_ci(values, n_resamples=500, seed=7)
    sorted_mean = lambda x, axis: np.mean(np.sort(x, axis=axis), axis=axis)  # noqa: E731 (each resample's units sorted)
    ref = scipy.stats.bootstrap((values,), sorted_mean, n_resamples=500, axis=0, rng=np.random.default_rng(7))
    assert ci["estimate"] == pytest.approx(values.mean())  # 3.0 / 7
    assert ci["low"] == pytest.approx(ref.confidence_interval.low)
    assert ci["high"] == pytest.approx(ref.confidence_interval.high)
    again = s.bootstrap_ci(values, n_resamples=500, seed=7)
    assert (ci["low"], ci["high"]) == (again["low"], again["high"])
    assert ci["low"] < ci["estimate"] < ci["high"]


@pytest.mark.parametrize("paired", [False, True])
def test_rounding_noise_does_not_move_a_small_sample_interval(paired):
    # Six units: 1.5% of the resamples are permutations of the sample, equal to it in exact arithmetic. Values
    # perturbed at 1e-12 relative (less than what fp32 kernels of two CPUs differ by) must give the same BCa
    # interval to 1e-9; summed in drawing order, those ties fell on either side by rounding and a bound moved
    # by ~1% of the interval's width.
    rng = np.random.default_rng(0)
    base = np.array([80.3, 20.17, 10.9, 5.41, 8.77, 7.02])
    tuned = np.array([3.1, 4.33, 2.07, 5.6, 4.2, 2.52])
    intervals = []
    for _ in range(12):
        noisy = base * (1 + 1e-12 * rng.standard_normal(base.size))
        if paired:
            row = s.paired_comparison(noisy, tuned, n_resamples=200)
            intervals.append((row["diff_low"], row["diff_high"]))
        else:
            ci = s.bootstrap_ci(noisy, n_resamples=200)
            intervals.append((ci["low"], ci["high"]))
    intervals = np.array(intervals, dtype=float)
    np.testing.assert_allclose(intervals, np.broadcast_to(intervals[0], intervals.shape), rtol=1e-9)


def test_bootstrap_ci_per_column_and_constant():
    # column 0 constant -> interval collapses to 1 ; column 1 mean (2+3+5)/3
    values = pd.DataFrame({"layer0": [1.0, 1.0, 1.0], "layer1": [2.0, 3.0, 5.0]})
    ci = s.bootstrap_ci(values, n_resamples=300)
    assert list(ci.index) == ["layer0", "layer1"]
    assert (ci.loc["layer0", "low"], ci.loc["layer0", "high"], ci.loc["layer0", "se"]) == (1.0, 1.0, 0.0)
    assert ci.loc["layer1", "estimate"] == pytest.approx(10 / 3)
    # a statistic other than the mean: median of [1, 2, 10] is 2
    assert s.bootstrap_ci([1.0, 2.0, 10.0], statistic=np.median, n_resamples=200)["estimate"] == 2.0


def test_bootstrap_ci_errors():
    with pytest.raises(ValueError, match="at least 2 units"):
        s.bootstrap_ci([1.0])
    with pytest.raises(ValueError, match="NaN"):
        s.bootstrap_ci([1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="confidence"):
        s.bootstrap_ci([1.0, 2.0], confidence=95)
    with pytest.raises(ValueError, match="1-D"):
        s.bootstrap_ci(np.ones((2, 2, 2)))


def test_paired_comparison_hand_values():
    base = [1.0, 2.0, 3.0, 4.0, 5.0]
    tuned = [2.0, 4.0, 6.0, 8.0, 10.0]
    # differences 1..5, all positive and distinct: W- = 0, and the exact two-sided
    # p-value is 2 * P(all 5 signs positive) = 2 / 2**5 = 0.0625
    row = s.paired_comparison(base, tuned, n_resamples=500)
    assert row["n"] == 5
    assert row["mean_diff"] == pytest.approx(3.0)
    assert row["base_mean"] == pytest.approx(3.0)
    assert row["tuned_mean"] == pytest.approx(6.0)
    assert row["wilcoxon_statistic"] == 0.0
    assert row["wilcoxon_p"] == pytest.approx(0.0625)
    assert 1.0 <= row["diff_low"] <= 3.0 <= row["diff_high"] <= 5.0


def test_paired_comparison_aligns_series_by_unit():
    base = pd.Series([1.0, 2.0, 3.0, 4.0], index=["r1", "r2", "r3", "r4"])
    tuned = pd.Series([5.0, 2.5, 3.5, 1.5], index=["r4", "r1", "r2", "r3"])
    # aligned differences: r1 2.5-1 = 1.5, r2 3.5-2 = 1.5, r3 1.5-3 = -1.5, r4 5-4 = 1
    #   -> mean 2.5/4 (pairing by position would give (4 + 0.5 + 0.5 - 2.5)/4 instead)
    row = s.paired_comparison(base, tuned, n_resamples=200)
    assert row["mean_diff"] == pytest.approx(2.5 / 4)
    with pytest.raises(ValueError, match="units do not match"):
        s.paired_comparison(base, tuned.rename({"r4": "r9"}))


def test_paired_comparison_degenerate_and_errors():
    row = s.paired_comparison([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert math.isnan(row["wilcoxon_p"]) and "zero" in row["note"]
    assert row["mean_diff"] == 0.0
    # a constant non-zero difference: the interval is that difference
    row = s.paired_comparison([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])
    assert (row["diff_low"], row["diff_high"]) == (0.5, 0.5)
    with pytest.raises(ValueError, match="length mismatch"):
        s.paired_comparison([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="at least 2"):
        s.paired_comparison([1.0], [2.0])
    with pytest.raises(ValueError, match="NaN"):
        s.paired_comparison([1.0, np.nan], [1.0, 2.0])


def test_pearson_by_layer_hand_values():
    # layer 0: x = [1, 2, 3], y = [1, 3, 2]: deviations [-1, 0, 1] and [-1, 1, 0]
    #   r = (1 + 0 + 0) / sqrt(2 * 2) = 0.5
    #   t = r sqrt(n-2) / sqrt(1 - r^2) = 1/sqrt3 ; df = 1 (Cauchy): F(t) = 1/2 + atan(t)/pi = 2/3
    #   p = 2 (1 - 2/3) = 2/3
    # layer 1: x = [3, 2, 1] -> r = -0.5, same p
    rates = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    out = s.pearson_by_layer(rates, [1.0, 3.0, 2.0])
    assert list(out.index) == [0, 1]
    assert out.loc[0, "r"] == pytest.approx(0.5)
    assert out.loc[0, "p_value"] == pytest.approx(2 / 3)
    assert out.loc[1, "r"] == pytest.approx(-0.5)
    assert bool(out["defined"].all())
    assert (out["n_models"] == 3).all()


def test_pearson_by_layer_undefined_cases():
    out = s.pearson_by_layer([[0.1, 0.2], [0.3, 0.4]], [0.8, 0.9])
    assert out["r"].isna().all() and out["p_value"].isna().all()
    assert not out["defined"].any()
    assert "not defined" in out.loc[0, "message"]
    # a constant layer is undefined, the other is defined
    out = s.pearson_by_layer([[0.5, 1.0], [0.5, 2.0], [0.5, 4.0]], [1.0, 2.0, 3.0])
    assert not out.loc[0, "defined"] and math.isnan(out.loc[0, "r"])
    assert out.loc[1, "defined"]


def test_pearson_by_layer_aligns_frames_and_errors():
    rates = pd.DataFrame({13: [1.0, 2.0, 3.0]}, index=["a", "b", "c"])
    cons = pd.Series([2.0, 1.0, 3.0], index=["b", "a", "c"])  # aligned: [1, 2, 3] -> r = 1
    out = s.pearson_by_layer(rates, cons)
    assert list(out.index) == [13]
    assert out.loc[13, "r"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="different models"):
        s.pearson_by_layer(rates, cons.rename({"c": "z"}))
    with pytest.raises(ValueError, match="models but consistency"):
        s.pearson_by_layer(np.ones((3, 2)), [1.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        s.pearson_by_layer([[1.0], [np.nan], [2.0]], [1.0, 2.0, 3.0])


def test_resample_statistic_draws_units_with_the_seeded_generator():
    units = np.array([1.0, 2.0, 4.0])
    draws = s.resample_statistic(units, lambda x: x.mean(axis=1), n_resamples=5, seed=3, batch=2)
    rng = np.random.default_rng(3)  # the same draws by hand, batch by batch (2, 2, 1 resamples)
    by_hand = np.concatenate([units[rng.integers(0, 3, size=(k, 3))].mean(1) for k in (2, 2, 1)])
    np.testing.assert_array_equal(draws, by_hand)
    assert s.percentile_interval(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0))


def test_stratified_mean_bootstrap_averages_strata_means():
    # strata means 3/4 and 1/3 -> estimate (3/4 + 1/3) / 2 = 13/24
    res = s.stratified_mean_bootstrap([np.array([1, 0, 1, 1.0]), np.array([0, 0, 1.0])], 500, seed=0)
    assert res["estimate"] == pytest.approx(13 / 24) and res["strata"] == 2
    assert 0 <= res["low"] < res["estimate"] < res["high"] <= 1
    constant = s.stratified_mean_bootstrap([np.ones(4), np.zeros(3)], 100, seed=0)
    assert (constant["low"], constant["high"]) == (0.5, 0.5)
    assert s.stratified_mean_bootstrap([], 10)["strata"] == 0


def test_compare_roles_pairs_every_base_with_every_tuned_model_on_shared_units():
    # unit u1 has two rows for model b (mean 0.2); unit u4 only for t (left out)
    table = pd.DataFrame({
        "model": ["b", "b", "b", "b", "t", "t", "t", "t"],
        "role": ["base"] * 4 + ["instruction-tuned"] * 4,
        "unit": ["u1", "u1", "u2", "u3", "u1", "u2", "u3", "u4"],
        "score": [0.1, 0.3, 0.5, 0.4, 0.6, 0.5, 0.9, 9.0],
        "task": "x"})
    out = s.compare_roles(table, "score", "unit", by="task", n_resamples=200)
    (row,) = out.to_dict("records")
    assert (row["task"], row["base"], row["tuned"], row["n"]) == ("x", "b", "t", 3)
    # differences 0.6-0.2, 0.5-0.5, 0.9-0.4 -> mean 0.3
    assert row["mean_diff"] == pytest.approx(0.3) and row["base_mean"] == pytest.approx(1.1 / 3)
    assert s.compare_roles(table[table["role"] == "base"], "score", "unit").empty


def test_verdict_without_a_direction_is_not_defined():
    from ifhelpers.stats import verdict

    assert verdict(5.0, 1.0, 9.0) == "yes" and verdict(5.0, 1.0, 9.0, paper_sign=-1) == "no"
    assert verdict(5.0, 1.0, 9.0, paper_sign=0) == "not defined"
    assert verdict(float("nan"), 1.0, 9.0) == "not defined"
