"""bpkit.stats against textbook values, hand-worked examples and a simulation of restarts."""

import math

import numpy as np
import pytest

from bpkit import stats

# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, method 3
# (the Wilson score interval without continuity correction), 95%.
NEWCOMBE = [((81, 263), (0.2553, 0.3662)), ((15, 148), (0.0624, 0.1605)), ((0, 20), (0.0, 0.1611)),
            ((1, 29), (0.0061, 0.1718))]


@pytest.mark.parametrize("counts, expected", NEWCOMBE)
def test_wilson_matches_newcombes_table(counts, expected):
    lo, hi = stats.wilson(*counts)
    assert (round(lo, 4), round(hi, 4)) == expected


def test_wilson_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats", reason="scipy is an optional peer (the bench extra)")
    for k, n in [(0, 5), (3, 5), (5, 5), (17, 40), (199, 200)]:
        ci = scipy_stats.binomtest(k, n).proportion_ci(method="wilson")
        np.testing.assert_allclose(stats.wilson(k, n), (ci.low, ci.high), rtol=1e-12, atol=1e-15)


def test_wilson_refuses_what_is_not_a_count():
    for k, n in [(0.5, 10), (3, 2), (-1, 4), (0, 0), (True, 3)]:
        with pytest.raises(ValueError):
            stats.wilson(k, n)


def test_restart_cost_by_hand():
    # Two successes (cost 10 and 20 to the criterion), two failures (30 and 40, their whole runs).
    # p = 1/2, so a success takes on average (1 - p)/p = 1 failed attempt first:
    # E = mean failure cost * 1 + mean success cost = 35 + 15 = 50.
    costs, ok = [10, 30, 20, 40], [True, False, True, False]
    p = 2 / 4
    by_hand = np.mean([30, 40]) * (1 - p) / p + np.mean([10, 20])
    assert stats.restart_cost(costs, ok) == by_hand == 50.0
    # Averaging over the successes alone (15) is what hides the failures.
    assert stats.restart_cost([5, 7], [True, True]) == 6.0
    assert stats.restart_cost([5, 7], [False, False]) == math.inf


def test_restart_cost_equals_a_simulation_of_restarts():
    # Restart, drawing each attempt from the runs at random, until one succeeds; add up what was spent.
    costs = np.array([120.0, 900.0, 45.0, 900.0, 300.0, 900.0, 80.0])
    ok = np.array([True, False, True, False, True, False, True])
    rng = np.random.default_rng(7)
    totals = []
    for _ in range(20000):
        spent = 0.0
        while True:
            i = rng.integers(len(costs))
            spent += costs[i]
            if ok[i]:
                break
        totals.append(spent)
    se = np.std(totals) / math.sqrt(len(totals))
    assert abs(np.mean(totals) - stats.restart_cost(costs, ok)) < 4 * se


def test_bootstrap_interval_holds_the_estimate_and_is_a_point_without_spread():
    e = stats.bootstrap_restart_cost([10, 30, 20, 40, 15, 35], [True, False, True, False, True, True], seed=1)
    assert e.lo <= e.value <= e.hi and e.lo < e.hi
    flat = stats.bootstrap_restart_cost([12, 12, 12], [True, True, True])
    assert flat == (12.0, 12.0, 12.0)
    none = stats.bootstrap_restart_cost([5, 5], [False, False])
    assert none.value == math.inf and none.lo == none.hi == math.inf


def test_few_successes_give_an_interval_open_upwards():
    e = stats.bootstrap_restart_cost([10] + [100] * 9, [True] + [False] * 9)
    assert e.value == 910.0 and e.hi == math.inf  # a third of the resamples hold no success at all


def test_a_paired_ratio_sees_what_pairing_cancels():
    # A costs exactly twice B on every seed (the same initial weights, a perfectly correlated cost):
    # paired, every resample gives 2; unpaired, the seeds' spread shows up in the interval.
    b = np.array([10.0, 50.0, 20.0, 80.0, 30.0, 60.0])
    ok = np.ones(6, bool)
    paired = stats.bootstrap_cost_ratio(2 * b, ok, b, ok, paired=True)
    unpaired = stats.bootstrap_cost_ratio(2 * b, ok, b, ok, paired=False)
    assert paired == (2.0, 2.0, 2.0)
    assert unpaired.value == 2.0 and unpaired.lo < 2.0 < unpaired.hi


def test_ratio_where_one_side_never_succeeds():
    ok, never = [True, True], [False, False]
    assert stats.bootstrap_cost_ratio([5, 5], never, [5, 5], ok, paired=True).value == math.inf
    assert math.isnan(stats.bootstrap_cost_ratio([5, 5], never, [5, 5], never, paired=True).value)
    with pytest.raises(ValueError, match="same seeds"):
        stats.bootstrap_cost_ratio([5, 5, 5], [True] * 3, [5, 5], ok, paired=True)


def test_resampling_is_reproducible_from_its_seed():
    args = ([13.0 * i + i * i for i in range(1, 16)], [i % 3 != 0 for i in range(15)])
    assert stats.bootstrap_restart_cost(*args, seed=3) == stats.bootstrap_restart_cost(*args, seed=3)
    assert stats.bootstrap_restart_cost(*args, seed=3) != stats.bootstrap_restart_cost(*args, seed=4)


def test_bad_costs_are_refused():
    for costs, ok in [([1.0, float("nan")], [True, True]), ([-1.0], [True]), ([], []), ([1.0, 2.0], [True])]:
        with pytest.raises(ValueError):
            stats.restart_cost(costs, ok)
