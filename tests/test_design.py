"""The statistics of the multi-seed experiment (ifhelpers.design), on cases with known variances."""

import numpy as np
import pytest

from ifhelpers import design


def test_slope_weights_give_the_ols_slope():
    doses = {"a": 0.0, "b": 1.0, "c": 2.0, "d": 2.6}
    w = design.slope_weights(doses)
    means = {"a": 10.0, "b": 12.0, "c": 13.0, "d": 15.5}
    expected = np.polyfit(list(doses.values()), list(means.values()), 1)[0]
    assert design.linear_contrast(means, w) == pytest.approx(expected)
    assert sum(w.values()) == pytest.approx(0)
    with pytest.raises(ValueError, match="two distinct doses"):
        design.slope_weights({"a": 1.0, "b": 1.0})


def test_bootstrap_variance_of_one_arm_matches_its_realised_seed_and_unit_spread():
    # y[s, u] = seed effect + unit effect, no interaction: the two-stage bootstrap variance of the mean
    # is var_pop(seed effects)/S + var_pop(unit effects)/U exactly (in expectation over resamples)
    rng = np.random.default_rng(1)
    seeds, units = rng.normal(0, 2.0, 6), rng.normal(0, 1.0, 30)
    cube = seeds[:, None] + units[None, :]
    out = design.hierarchical_bootstrap({"a": cube}, {"a": 1.0}, n_resamples=40_000, seed=0)
    expected = np.var(seeds) / 6 + np.var(units) / 30
    assert out["estimate"] == pytest.approx(cube.mean())
    assert out["se"] ** 2 == pytest.approx(expected, rel=0.03)
    assert out["n_seeds"] == {"a": 6} and out["n_units"] == 30


def test_paired_units_cancel_in_a_difference_and_seeds_of_each_arm_count():
    rng = np.random.default_rng(2)
    units = rng.normal(0, 5.0, 40)  # large, shared by both arms: must cancel
    seeds_a, seeds_b = rng.normal(0, 1.0, 5), rng.normal(3, 1.0, 5)
    cubes = {"a": seeds_a[:, None] + units, "b": seeds_b[:, None] + units}
    out = design.hierarchical_bootstrap(cubes, {"b": 1.0, "a": -1.0}, n_resamples=40_000, seed=0)
    expected = np.var(seeds_a) / 5 + np.var(seeds_b) / 5  # no unit term
    assert out["estimate"] == pytest.approx(seeds_b.mean() - seeds_a.mean())
    assert out["se"] ** 2 == pytest.approx(expected, rel=0.03)
    # resampling units only (one seed row per arm, the seed means) would miss the whole variance
    flat = {k: v.mean(axis=0, keepdims=True) for k, v in cubes.items()}
    assert design.hierarchical_bootstrap(flat, {"b": 1.0, "a": -1.0}, n_resamples=2000)["se"] < 1e-9


def test_variance_components_recover_known_components():
    rng = np.random.default_rng(3)
    truth = {"seed": 4.0, "unit": 9.0, "arm_unit": 1.0, "residual": 2.0}
    n_arms, n_seeds, n_units = 6, 8, 300
    units = rng.normal(0, 3.0, n_units)
    cubes = {}
    for a in range(n_arms):
        au = rng.normal(0, 1.0, n_units)
        s = rng.normal(0, 2.0, n_seeds)
        cubes[f"arm{a}"] = a + units + au + s[:, None] + rng.normal(0, np.sqrt(2.0), (n_seeds, n_units))
    got = design.variance_components(cubes)
    for key in ("unit", "arm_unit", "residual"):
        assert got[key] == pytest.approx(truth[key], rel=0.15), key
    assert got["seed"] == pytest.approx(truth["seed"], rel=0.4)  # 6 x 7 degrees of freedom only
    one_seed = design.variance_components({k: v[:1] for k, v in cubes.items()})
    assert np.isnan(one_seed["seed"]) and np.isnan(one_seed["residual"])


def test_contrast_se_matches_the_simulated_spread_of_a_contrast():
    rng = np.random.default_rng(4)
    comp = {"seed": 1.0, "unit": 25.0, "arm_unit": 0.5, "residual": 3.0}
    n_seeds, n_units = 3, 40
    weights = {"x": 1.0, "y": -1.0}

    def one_experiment():
        units = rng.normal(0, 5.0, n_units)
        means = {arm: (units + rng.normal(0, np.sqrt(0.5), n_units) + rng.normal(0, 1.0, n_seeds)[:, None]
                       + rng.normal(0, np.sqrt(3.0), (n_seeds, n_units))).mean() for arm in weights}
        return design.linear_contrast(means, weights)

    simulated = np.std([one_experiment() for _ in range(4000)])
    se = design.contrast_se(comp, weights, n_seeds, n_units)
    assert se == pytest.approx(np.sqrt(2 * (0.5 / 40 + 1.0 / 3 + 3.0 / 120)))
    assert simulated == pytest.approx(se, rel=0.05)
    # an untrained arm has no seed term; a single arm's mean keeps the unit term
    base = design.contrast_se(comp, weights, n_seeds, n_units, fixed=("y",))
    assert base == pytest.approx(np.sqrt(0.5 / 40 + 1.0 / 3 + 3.0 / 120 + 0.5 / 40 + 3.0 / 40))
    assert design.contrast_se(comp, {"x": 1.0}, n_seeds, n_units) == pytest.approx(
        np.sqrt(0.5 / 40 + 1.0 / 3 + 3.0 / 120 + 25.0 / 40))


def test_the_standard_error_of_an_interval():
    assert design.se_from_interval(-1.959964, 1.959964) == pytest.approx(1.0, abs=1e-6)
    assert design.se_from_interval(0.0, 1.0, confidence=0.9) == pytest.approx(1 / (2 * 1.644854), abs=1e-6)
    assert np.isnan(design.se_from_interval(np.nan, 1.0)) and np.isnan(design.se_from_interval(0.0, np.inf))


def test_minimum_detectable_effect_and_its_power():
    assert design.minimum_detectable_effect(1.0) == pytest.approx(1.959964 + 0.841621, rel=1e-5)
    # a true effect of one MDE is detected 80% of the time
    rng = np.random.default_rng(5)
    estimates = rng.normal(design.minimum_detectable_effect(2.0), 2.0, 100_000)
    assert np.mean(np.abs(estimates / 2.0) > 1.959964) == pytest.approx(0.8, abs=0.01)


def test_bad_cubes_are_refused():
    with pytest.raises(ValueError, match="same units"):
        design.hierarchical_bootstrap({"a": np.ones((2, 3)), "b": np.ones((2, 4))}, {"a": 1, "b": -1})
    with pytest.raises(ValueError, match="NaN"):
        design.variance_components({"a": np.array([[1.0, np.nan]])})
