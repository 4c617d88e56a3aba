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


# -- the cost with a cutoff, McNemar, clustered rates --------------------------------------------

def test_cutoff_cost_equals_a_simulation_of_cut_and_restarted_runs():
    # Draw runs at random; cut each at t (a success after t is a failure that cost t); restart until a success.
    costs = np.array([120.0, 900.0, 45.0, 900.0, 300.0, 250.0, 80.0])
    ok = np.array([True, False, True, False, True, False, True])  # the 250 failure stopped itself (a failed search)
    rng = np.random.default_rng(11)
    for t in (50.0, 100.0, 260.0, 1000.0):
        totals = []
        for _ in range(20000):
            spent = 0.0
            while True:
                i = rng.integers(len(costs))
                spent += min(costs[i], t)
                if ok[i] and costs[i] <= t:
                    break
            totals.append(spent)
        assert stats.cutoff_cost(costs, ok, t) == pytest.approx(np.mean(totals), rel=0.03), t
    assert stats.cutoff_cost(costs, ok, 1e9) == stats.restart_cost(costs, ok)
    assert stats.cutoff_cost(costs, ok, 10.0) == math.inf


def test_the_best_cutoff_is_the_minimum_of_a_dense_scan():
    rng = np.random.default_rng(3)
    for _ in range(30):
        n = int(rng.integers(3, 25))
        costs = np.round(rng.lognormal(5, 1.2, n), 1)
        ok = rng.uniform(size=n) < 0.6
        grid = np.unique(np.concatenate([costs, np.linspace(0, 3000, 601)]))
        scan = [(stats.cutoff_cost(costs, ok, t), t) for t in grid]
        best = min(scan)
        got = stats.best_cutoff(costs, ok)
        if not ok.any():
            assert got.cost == math.inf and math.isnan(got.cutoff)
            continue
        assert got.cost == pytest.approx(best[0], rel=1e-12)
        assert got.cost <= stats.restart_cost(costs, ok)


def test_mcnemar_is_scipys_exact_binomial_test_on_the_discordant_pairs():
    scipy_stats = pytest.importorskip("scipy.stats", reason="scipy is an optional peer (the bench and test extras)")
    rng = np.random.default_rng(5)
    for _ in range(60):
        n = int(rng.integers(1, 40))
        a, b = rng.uniform(size=n) < rng.uniform(), rng.uniform(size=n) < rng.uniform()
        got = stats.mcnemar(a, b)
        assert (got.only_a, got.only_b) == (int(np.sum(a & ~b)), int(np.sum(~a & b)))
        discordant = got.only_a + got.only_b
        want = scipy_stats.binomtest(got.only_a, discordant, 0.5).pvalue if discordant else 1.0
        assert got.p == pytest.approx(want, rel=1e-12)


def test_a_clustered_rate_keeps_its_coverage_where_runs_share_starts():
    # 20 starts, 10 runs each (settings or methods from the same weights): a start's runs mostly agree.
    # The rate's true value is known; a run-by-run Wilson interval undercovers, the cluster bootstrap does not.
    rng = np.random.default_rng(9)
    truth, starts, per, covered, naive = 0.4, 20, 10, 0, 0
    trials = 300
    for t in range(trials):
        good = rng.uniform(size=starts) < truth  # a good start: its runs succeed 90%, a bad one 10%
        p = np.where(good, 0.9, 0.1)
        success = (rng.uniform(size=(starts, per)) < p[:, None]).ravel()
        mean_rate = truth * 0.9 + (1 - truth) * 0.1
        est = stats.pooled_rate(success, np.repeat(np.arange(starts), per), seed=t, resamples=500)
        covered += est.lo <= mean_rate <= est.hi
        lo, hi = stats.wilson(int(success.sum()), success.size)
        naive += lo <= mean_rate <= hi
    assert covered / trials >= 0.88  # near the nominal 95%
    assert naive / trials < 0.80  # the independent-runs interval is far too narrow here


def test_ratio_bounds_hold_every_ratio_of_values_inside_both_intervals():
    # Brute force: over a grid of values inside each interval, every ratio lies within the bounds, and the
    # bounds are attained at the intervals' ends.
    a, b = (8.0, 6.0, 10.0), (2.0, 1.5, 3.0)
    r = stats.ratio_bounds(a, b)
    ratios = [x / y for x in np.linspace(a[1], a[2], 41) for y in np.linspace(b[1], b[2], 41)]
    assert r.value == 4.0 and min(ratios) == pytest.approx(r.lo) and max(ratios) == pytest.approx(r.hi)
    assert stats.ratio_bounds((1.0, 0.5, math.inf), b).hi == math.inf
    with pytest.raises(ValueError, match="positive"):
        stats.ratio_bounds((1.0, 0.0, 2.0), b)


def test_two_rates_are_separated_exactly_where_scipys_wilson_intervals_do_not_overlap():
    scipy_stats = pytest.importorskip("scipy.stats", reason="scipy is the independent Wilson interval here")

    def ci(k, n):
        c = scipy_stats.binomtest(k, n).proportion_ci(method="wilson")
        return c.low, c.high

    for ka in range(0, 21, 2):
        for kb in range(0, 21, 3):
            (la, ha), (lb, hb) = ci(ka, 20), ci(kb, 20)
            assert stats.separated(ka, 20, kb, 20) == (ha < lb or hb < la), (ka, kb)
    assert stats.separated(19, 20, 4, 20) and not stats.separated(12, 20, 9, 20)
