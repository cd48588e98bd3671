"""Statistics of a designed experiment with training seeds: two-stage bootstrap, variance components, power.

The paper compares models trained once each (§3); the tune-it-yourself chapter trains every arm
(training mixture) with several seeds and evaluates every model on the same units (ParaRel relations,
query sets, BECEL items). An arm's value is then a mean over seeds and units, and a difference of
arms has two sources of noise: which seeds were drawn (data draw, template choice, LoRA
initialisation, data order) and which evaluation units were drawn. This module gives

* :func:`hierarchical_bootstrap`: the interval of a *linear contrast* of arm means (a difference,
  the slope of a dose-response, one arm's mean), resampling seeds within every arm and the units
  once for all arms (they are paired: every model answers the same units);
* :func:`variance_components`: the method-of-moments (ANOVA) estimates of the seed, unit,
  arm × unit and residual variances, from a pilot;
* :func:`contrast_se` and :func:`minimum_detectable_effect`: the standard error a design of
  ``n_seeds`` × ``n_units`` gives a contrast, and the smallest true effect it detects with the
  stated power (two-sided test at level alpha): MDE = (z_{1−α/2} + z_{power}) · SE;
* :func:`se_from_interval`: the standard error of an estimate known by its interval alone (a comparison
  of models trained once, with a bootstrap interval over evaluation units), for the MDE of every headline;
* :func:`slope_weights`: the ordinary-least-squares slope of arm means on a dose as a contrast.

Model (per arm a, seed s, unit u): y = μ_a + u_u + (au)_{a,u} + s_{a,s} + e_{a,s,u}. A contrast
Σ w_a ȳ_a with Σ w_a = 0 loses the unit effect u_u and keeps
Var = Σ w_a² (σ²_au / U + σ²_seed / S_a + σ²_e / (S_a U)).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.stats

__all__ = ["slope_weights", "linear_contrast", "hierarchical_bootstrap", "variance_components", "contrast_se",
           "minimum_detectable_effect", "se_from_interval"]


def _cubes(cubes: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Arm -> (seeds, units) float arrays, checked: 2-D, finite, the same units in every arm."""
    out = {arm: np.atleast_2d(np.asarray(values, dtype=np.float64)) for arm, values in cubes.items()}
    if not out:
        raise ValueError("no arms given")
    n_units = {arm: cube.shape[1] for arm, cube in out.items()}
    if len(set(n_units.values())) != 1:
        raise ValueError(f"every arm must be scored on the same units; got units per arm {n_units}")
    bad = [arm for arm, cube in out.items() if cube.ndim != 2 or not np.all(np.isfinite(cube))]
    if bad:
        raise ValueError(f"arms {bad}: give (seeds, units) arrays without NaN (drop units an arm did not score)")
    return out


def slope_weights(doses: Mapping[str, float]) -> dict[str, float]:
    """The weights w_a with Σ w_a m_a = the OLS slope of arm means m_a on ``doses`` (x_a):
    w_a = (x_a − x̄) / Σ (x_b − x̄)². Needs two distinct doses."""
    x = np.array(list(doses.values()), dtype=np.float64)
    spread = np.sum((x - x.mean()) ** 2)
    if spread == 0:
        raise ValueError(f"a slope needs at least two distinct doses; got {dict(doses)}")
    return {arm: float((d - x.mean()) / spread) for arm, d in doses.items()}


def linear_contrast(arm_means: Mapping[str, float | np.ndarray], weights: Mapping[str, float]):
    """Σ w_a m_a over the arms of ``weights`` (arm means may be arrays of bootstrap draws)."""
    return sum(w * np.asarray(arm_means[arm]) for arm, w in weights.items())


def hierarchical_bootstrap(cubes: Mapping[str, np.ndarray], weights: Mapping[str, float], n_resamples: int = 2000,
                           confidence: float = 0.95, seed=0) -> dict:
    """A linear contrast of arm means with a two-stage (seeds, then units) percentile bootstrap interval.

    ``cubes`` maps every arm to its values, shape ``(n_seeds, n_units)``; the units (columns) are the
    same in every arm. An arm's mean is the mean of its cube. Each resample draws, for every arm on its
    own, ``n_seeds`` seeds with replacement (seeds of different arms are independent trainings) and,
    once for all arms, ``n_units`` units with replacement (paired units). An arm with one seed (the
    base model, which is not trained) contributes unit noise only.

    Returns ``estimate``, ``low``, ``high``, ``se`` (the standard deviation of the draws), ``n_seeds``
    (by arm), ``n_units`` and ``draws``. With S seeds the bootstrap's seed variance is (S − 1)/S of the
    unbiased one, so with 2 or 3 seeds the interval is narrower than it should be; :func:`contrast_se`
    gives the unbiased standard error.
    """
    cubes = _cubes({arm: cubes[arm] for arm in weights})
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n_units = next(iter(cubes.values())).shape[1]
    units = rng.integers(0, n_units, size=(n_resamples, n_units))
    draws = np.zeros(n_resamples)
    for arm, w in weights.items():
        cube = cubes[arm]
        seeds = rng.integers(0, len(cube), size=(n_resamples, len(cube)))
        # mean over the drawn seeds and units: average the drawn seeds' rows, then the drawn columns
        by_unit = cube[seeds].mean(axis=1)  # (resamples, units)
        draws += w * np.take_along_axis(by_unit, units, axis=1).mean(axis=1)
    estimate = float(linear_contrast({arm: cube.mean() for arm, cube in cubes.items()}, weights))
    alpha = (1 - confidence) / 2
    return {"estimate": estimate, "low": float(np.quantile(draws, alpha)), "high": float(np.quantile(draws, 1 - alpha)),
            "se": float(draws.std(ddof=1)), "n_seeds": {arm: len(c) for arm, c in cubes.items()},
            "n_units": n_units, "draws": draws}


def variance_components(cubes: Mapping[str, np.ndarray]) -> dict:
    """Method-of-moments estimates of the variance components of the model in the module docstring.

    ``cubes``: arm -> ``(n_seeds, n_units)`` (same units in every arm). Within every arm with two or
    more seeds, the two-way ANOVA without replication gives the residual (seed × unit) mean square
    MS_e and the seed mean square MS_s, E[MS_s] = σ²_e + U σ²_seed; they are pooled over arms by their
    degrees of freedom. Across arms, the seed-averaged values z_{a,u} give MS_au (arm × unit),
    E[MS_au] = σ²_au + σ²_e · mean(1/S_a), and MS_u (units), E[MS_u] = A σ²_unit + σ²_au + σ²_e · mean(1/S_a).
    Negative estimates are set to 0. ``seed`` and ``residual`` are NaN when no arm has two seeds (one
    seed cannot tell seed noise from the arm's effect); ``arm_unit`` and ``unit`` need two arms.

    Returns ``seed``, ``unit``, ``arm_unit``, ``residual`` (variances), ``n_arms``, ``n_seeds`` (by arm)
    and ``n_units``.
    """
    cubes = _cubes(cubes)
    n_units = next(iter(cubes.values())).shape[1]
    ss_e = df_e = ss_s = df_s = 0.0
    for cube in cubes.values():
        n_seeds = len(cube)
        if n_seeds < 2:
            continue
        row, col, grand = cube.mean(axis=1, keepdims=True), cube.mean(axis=0, keepdims=True), cube.mean()
        ss_e += float(np.sum((cube - row - col + grand) ** 2))
        df_e += (n_seeds - 1) * (n_units - 1)
        ss_s += float(n_units * np.sum((row - grand) ** 2))
        df_s += n_seeds - 1
    residual = ss_e / df_e if df_e else np.nan
    seed_var = max((ss_s / df_s - residual) / n_units, 0.0) if df_s else np.nan
    z = np.stack([cube.mean(axis=0) for cube in cubes.values()])  # arms x units
    n_arms = len(z)
    inverse_seeds = float(np.mean([1 / len(c) for c in cubes.values()]))
    noise = (residual if np.isfinite(residual) else 0.0) * inverse_seeds
    if n_arms >= 2 and n_units >= 2:
        d = z - z.mean(axis=1, keepdims=True) - z.mean(axis=0, keepdims=True) + z.mean()
        ms_au = float(np.sum(d ** 2)) / ((n_arms - 1) * (n_units - 1))
        ms_u = n_arms * float(np.var(z.mean(axis=0), ddof=1))
        arm_unit = max(ms_au - noise, 0.0)
        unit = max((ms_u - ms_au) / n_arms, 0.0)
    else:
        arm_unit = unit = np.nan
    return {"seed": seed_var, "unit": unit, "arm_unit": arm_unit, "residual": residual, "n_arms": n_arms,
            "n_seeds": {arm: len(c) for arm, c in cubes.items()}, "n_units": n_units}


def contrast_se(components: Mapping, weights: Mapping[str, float], n_seeds: int, n_units: int,
                fixed=()) -> float:
    """The standard error of the contrast Σ w_a ȳ_a in a design with ``n_seeds`` seeds per trained arm
    and ``n_units`` units, from :func:`variance_components`:
    Σ w_a² (σ²_au/U + σ²_seed/S + σ²_e/(S U)) + (Σ w_a)² σ²_unit/U. An arm in ``fixed`` is not trained
    (the base model): it has no seed term and its one evaluation counts as S = 1. NaN when a needed
    component is NaN."""
    var = 0.0
    for arm, w in weights.items():
        seeds, seed_var = (1, 0.0) if arm in fixed else (n_seeds, components["seed"])
        var += w ** 2 * (components["arm_unit"] / n_units + seed_var / seeds + components["residual"] / (seeds * n_units))
    total = sum(weights.values())
    if abs(total) > 1e-12:
        var += total ** 2 * components["unit"] / n_units
    return float(np.sqrt(var))


def minimum_detectable_effect(se: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true effect a two-sided test at level ``alpha`` detects with probability ``power``,
    for an estimate with standard error ``se``: (z_{1−α/2} + z_{power}) · se (2.80 · se at 0.05 and 0.8)."""
    return float((scipy.stats.norm.ppf(1 - alpha / 2) + scipy.stats.norm.ppf(power)) * se)


def se_from_interval(low: float, high: float, confidence: float = 0.95) -> float:
    """The standard error of an estimate read from its two-sided ``confidence`` interval, as if normal:
    (high − low) / (2 z_{(1+confidence)/2}) (width / 3.92 at 95%). For a percentile bootstrap interval this is
    the normal approximation; NaN when a bound is not finite. With a model trained once per arm, the
    interval holds evaluation noise only, so an MDE from it (:func:`minimum_detectable_effect`) is a lower
    bound: training seeds would add their own variance (chapter 5 measures it)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return float("nan")
    return float((high - low) / (2 * scipy.stats.norm.ppf((1 + confidence) / 2)))
